//! Server-side partition assignors for KIP-848 consumer groups.
//!
//! - `uniform`: balanced (member partition counts differ by at most one among
//!   members with the same subscription) and sticky: a partition stays with its
//!   current owner unless balance requires moving it.
//! - `range`: per topic, sorted members get consecutive ranges, the first
//!   `partitions % members` one partition more (co-partitioning for joins).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

/// Topic id -> partitions.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";
pub const ASSIGNORS: &[&str] = &[UNIFORM, RANGE];

/// Bound on balancing passes of the uniform assignor (each pass moves at least one partition).
const BALANCE_PASSES_MAX: usize = 10_000;

pub struct AssignInput<'a> {
    /// Member id -> subscribed topic ids.
    pub members: &'a BTreeMap<String, BTreeSet<Uuid>>,
    /// Topic id -> partition count.
    pub topics: &'a BTreeMap<Uuid, i32>,
    /// The previous target assignment (stickiness).
    pub previous: &'a HashMap<String, Assignment>,
}

pub fn assign(name: &str, input: &AssignInput<'_>) -> HashMap<String, Assignment> {
    match name {
        RANGE => range(input),
        _ => uniform(input),
    }
}

fn subscribers(input: &AssignInput<'_>) -> BTreeMap<Uuid, Vec<String>> {
    let mut by_topic: BTreeMap<Uuid, Vec<String>> = BTreeMap::new();
    for (m, topics) in input.members {
        for t in topics {
            if input.topics.contains_key(t) {
                by_topic.entry(*t).or_default().push(m.clone());
            }
        }
    }
    by_topic
}

fn empty_result(input: &AssignInput<'_>) -> HashMap<String, Assignment> {
    input
        .members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect()
}

pub fn range(input: &AssignInput<'_>) -> HashMap<String, Assignment> {
    let mut out = empty_result(input);
    for (topic, members) in subscribers(input) {
        let n = input.topics.get(&topic).copied().unwrap_or(0).max(0) as usize;
        let k = members.len();
        if k == 0 {
            continue;
        }
        let per = n / k;
        let extra = n % k;
        let mut start = 0usize;
        for (i, m) in members.iter().enumerate() {
            let count = per + usize::from(i < extra);
            if count > 0
                && let Some(a) = out.get_mut(m)
            {
                a.entry(topic)
                    .or_default()
                    .extend((start..start + count).map(|p| p as i32));
            }
            start += count;
        }
    }
    out
}

pub fn uniform(input: &AssignInput<'_>) -> HashMap<String, Assignment> {
    let mut subscriptions = input.members.values();
    let homogeneous = match subscriptions.next() {
        Some(first) => subscriptions.all(|s| s == first),
        None => true,
    };
    if homogeneous {
        uniform_homogeneous(input)
    } else {
        uniform_heterogeneous(input)
    }
}

/// Every member subscribes to the same topics (the common case), as Kafka's
/// UniformHomogeneousAssignmentBuilder: each member has a quota of
/// `partitions / members` (the first `partitions % members` members that can
/// use it get one more); members keep their lowest-numbered current partitions
/// up to their quota; the rest go, in order, to members below quota.
fn uniform_homogeneous(input: &AssignInput<'_>) -> HashMap<String, Assignment> {
    let mut out = empty_result(input);
    let Some(topics) = input.members.values().next() else {
        return out;
    };
    let mut parts: Vec<(Uuid, i32)> = Vec::new();
    for t in topics {
        let n = input.topics.get(t).copied().unwrap_or(0).max(0);
        parts.extend((0..n).map(|p| (*t, p)));
    }
    let members: Vec<&String> = input.members.keys().collect();
    if members.is_empty() || parts.is_empty() {
        return out;
    }
    let min_quota = parts.len() / members.len();
    let mut extra = parts.len() % members.len();
    let valid: BTreeSet<(Uuid, i32)> = parts.iter().copied().collect();
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    let mut counts: Vec<usize> = vec![0; members.len()];
    // 1. Stickiness, up to the quota.
    for (i, m) in members.iter().enumerate() {
        let Some(prev) = input.previous.get(m.as_str()) else {
            continue;
        };
        let mut owned: Vec<(Uuid, i32)> = prev
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
            .filter(|tp| valid.contains(tp) && !taken.contains(tp))
            .collect();
        owned.sort();
        let mut quota = min_quota;
        if owned.len() > min_quota && extra > 0 {
            quota += 1;
            extra -= 1;
        }
        for tp in owned.into_iter().take(quota) {
            taken.insert(tp);
            counts[i] += 1;
            if let Some(a) = out.get_mut(m.as_str()) {
                a.entry(tp.0).or_default().insert(tp.1);
            }
        }
    }
    // 2. The rest, in partition order, to members under their quota.
    let mut free = parts.iter().filter(|tp| !taken.contains(tp));
    for (i, m) in members.iter().enumerate() {
        while counts[i] < min_quota {
            let Some(tp) = free.next() else { break };
            counts[i] += 1;
            if let Some(a) = out.get_mut(m.as_str()) {
                a.entry(tp.0).or_default().insert(tp.1);
            }
        }
    }
    for (i, m) in members.iter().enumerate() {
        if extra == 0 {
            break;
        }
        if counts[i] == min_quota {
            let Some(tp) = free.next() else { break };
            counts[i] += 1;
            extra -= 1;
            if let Some(a) = out.get_mut(m.as_str()) {
                a.entry(tp.0).or_default().insert(tp.1);
            }
        }
    }
    out
}

/// Members subscribe to different topics: greedy balance, then moves from
/// members that have two or more partitions than an eligible member.
fn uniform_heterogeneous(input: &AssignInput<'_>) -> HashMap<String, Assignment> {
    let names: Vec<&String> = input.members.keys().collect();
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let subs = subscribers(input);
    let eligible: BTreeMap<Uuid, Vec<usize>> = subs
        .iter()
        .map(|(t, ms)| {
            (
                *t,
                ms.iter()
                    .filter_map(|m| index.get(m.as_str()).copied())
                    .collect(),
            )
        })
        .collect();
    let mut parts: Vec<(Uuid, i32)> = Vec::new();
    for t in eligible.keys() {
        let n = input.topics.get(t).copied().unwrap_or(0).max(0);
        parts.extend((0..n).map(|p| (*t, p)));
    }
    let mut owner: Vec<Option<usize>> = vec![None; parts.len()];
    let mut count = vec![0usize; names.len()];
    let pos_of: HashMap<(Uuid, i32), usize> =
        parts.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    // 1. Stickiness: keep what members had if they still subscribe to it.
    for (m, prev) in input.previous {
        let Some(&mi) = index.get(m.as_str()) else {
            continue;
        };
        for (t, ps) in prev {
            if !input.members[names[mi]].contains(t) {
                continue;
            }
            for p in ps {
                if let Some(&i) = pos_of.get(&(*t, *p))
                    && owner[i].is_none()
                {
                    owner[i] = Some(mi);
                    count[mi] += 1;
                }
            }
        }
    }
    // 2. Unowned partitions go to the least loaded eligible member.
    for (i, (t, _)) in parts.iter().enumerate() {
        if owner[i].is_some() {
            continue;
        }
        if let Some(&best) = eligible[t].iter().min_by_key(|&&m| (count[m], m)) {
            owner[i] = Some(best);
            count[best] += 1;
        }
    }
    // 3. Balance: move partitions from members that have two or more than an
    //    eligible member. Each move lowers the sum of squared counts, so this ends.
    for _ in 0..BALANCE_PASSES_MAX {
        let mut moved = false;
        for (i, (t, _)) in parts.iter().enumerate() {
            let Some(o) = owner[i] else { continue };
            if let Some(&best) = eligible[t].iter().min_by_key(|&&m| (count[m], m))
                && count[o] > count[best] + 1
            {
                owner[i] = Some(best);
                count[o] -= 1;
                count[best] += 1;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut out = empty_result(input);
    for (i, (t, p)) in parts.iter().enumerate() {
        if let Some(o) = owner[i]
            && let Some(a) = out.get_mut(names[o].as_str())
        {
            a.entry(*t).or_default().insert(*p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_disjoint_cover(out: &HashMap<String, Assignment>, topics: &BTreeMap<Uuid, i32>) {
        let mut seen = BTreeSet::new();
        for a in out.values() {
            for (t, ps) in a {
                for p in ps {
                    assert!(seen.insert((*t, *p)), "partition assigned twice");
                }
            }
        }
        let total: i32 = topics.values().sum();
        assert_eq!(seen.len(), total as usize);
    }

    #[test]
    fn uniform_is_sticky_like_kafka() {
        let t = Uuid::new_v4();
        let topics: BTreeMap<Uuid, i32> = [(t, 6)].into_iter().collect();
        let sub: BTreeSet<Uuid> = [t].into_iter().collect();
        let mut members = BTreeMap::new();
        members.insert("c0".to_string(), sub.clone());
        let mut previous = HashMap::new();
        let a1 = uniform(&AssignInput {
            members: &members,
            topics: &topics,
            previous: &previous,
        });
        assert_eq!(a1["c0"][&t].len(), 6);
        previous = a1;
        members.insert("c1".to_string(), sub.clone());
        let a2 = uniform(&AssignInput {
            members: &members,
            topics: &topics,
            previous: &previous,
        });
        assert_eq!(
            a2["c0"][&t].iter().copied().collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(
            a2["c1"][&t].iter().copied().collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        previous = a2;
        members.insert("c2".to_string(), sub);
        let a3 = uniform(&AssignInput {
            members: &members,
            topics: &topics,
            previous: &previous,
        });
        assert_eq!(a3["c0"][&t].iter().copied().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(a3["c1"][&t].iter().copied().collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(a3["c2"][&t].iter().copied().collect::<Vec<_>>(), vec![2, 5]);
    }

    #[test]
    fn uniform_and_range_balance_and_cover() {
        let t1 = Uuid::new_v4();
        let t2 = Uuid::new_v4();
        let topics: BTreeMap<Uuid, i32> = [(t1, 6), (t2, 3)].into_iter().collect();
        let all: BTreeSet<Uuid> = [t1, t2].into_iter().collect();
        let mut members = BTreeMap::new();
        for m in ["a", "b", "c", "d"] {
            members.insert(m.to_string(), all.clone());
        }
        let previous = HashMap::new();
        let input = AssignInput {
            members: &members,
            topics: &topics,
            previous: &previous,
        };
        for name in ASSIGNORS {
            let out = assign(name, &input);
            check_disjoint_cover(&out, &topics);
            if *name == UNIFORM {
                let counts: Vec<usize> = out
                    .values()
                    .map(|a| a.values().map(|p| p.len()).sum())
                    .collect();
                assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
            }
        }
        // Stickiness: removing a member only moves that member's partitions.
        let before = uniform(&input);
        members.remove("d");
        let input2 = AssignInput {
            members: &members,
            topics: &topics,
            previous: &before,
        };
        let after = uniform(&input2);
        check_disjoint_cover(&after, &topics);
        for m in ["a", "b", "c"] {
            for (t, ps) in &before[m] {
                for p in ps {
                    assert!(after[m].get(t).is_some_and(|s| s.contains(p)));
                }
            }
        }
    }
}
