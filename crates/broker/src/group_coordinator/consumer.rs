//! KIP-848 consumer groups: the broker owns the assignment. Members heartbeat
//! (ConsumerGroupHeartbeat) with their epoch and subscription; the group epoch
//! is bumped on every membership or subscription (or subscribed topic metadata)
//! change, a target assignment is computed for the new epoch by a server-side
//! assignor, and each member is reconciled toward its target:
//!
//! - partitions the member must give up are revoked first (the member keeps
//!   its epoch until it reports them gone: `UnrevokedPartitions`);
//! - partitions still held by another member are withheld until released
//!   (`UnreleasedPartitions`), so no partition has two owners at once;
//! - otherwise the member moves to the target epoch (`Stable`).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::GroupConfig;
use super::assignor::{self, Assignment};
use super::offset_store::{
    ConsumerMemberValue, ConsumerTargetMeta, GROUP_TYPE_CONSUMER, GroupValue, Record,
    StoredAssignment,
};
use crate::topic_registry::TopicRegistry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
}

/// Rebalance timeout of a member that joined without one (librdkafka's
/// `max.poll.interval.ms` default).
const DEFAULT_REBALANCE_TIMEOUT: Duration = Duration::from_secs(300);

pub struct CMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub rebalance_timeout: Duration,
    pub subscribed_names: Vec<String>,
    pub regex: Option<String>,
    pub server_assignor: Option<String>,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    session_deadline: Instant,
    revocation_deadline: Option<Instant>,
    /// Left with epoch -2 (static member, expected back).
    pub left_static: bool,
}

pub struct HeartbeatRequest {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
    /// Version 0: the broker generates member ids.
    pub version: i16,
}

#[derive(Debug, Default)]
pub struct HeartbeatResult {
    pub error: i16,
    pub message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub assignment: Option<Assignment>,
}

impl HeartbeatResult {
    pub fn error(e: ResponseError, message: impl Into<String>) -> HeartbeatResult {
        HeartbeatResult {
            error: e.code(),
            message: Some(message.into()),
            ..Default::default()
        }
    }
}

pub struct ConsumerGroup {
    pub id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, CMember>,
    pub statics: HashMap<String, String>,
    pub target: HashMap<String, Assignment>,
    subscription_hash: u64,
    pub assignor: String,
    pub state_timestamp_ms: i64,
    /// The target metadata last computed (kept for snapshots).
    persisted_meta: Option<ConsumerTargetMeta>,
}

/// A KIP-848 group's records other than its group record, gathered on replay.
#[derive(Debug, Default)]
pub struct StoredConsumerGroup {
    pub members: BTreeMap<String, ConsumerMemberValue>,
    pub targets: BTreeMap<String, StoredAssignment>,
    pub meta: Option<ConsumerTargetMeta>,
}

pub fn to_stored(a: &Assignment) -> StoredAssignment {
    a.iter()
        .filter(|(_, ps)| !ps.is_empty())
        .map(|(t, ps)| (*t, ps.iter().copied().collect()))
        .collect()
}

pub fn from_stored(a: &StoredAssignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        if !ps.is_empty() {
            out.entry(*t).or_default().extend(ps.iter().copied());
        }
    }
    out
}

fn metadata_hash(map: &BTreeMap<String, (Uuid, i32)>) -> u64 {
    let mut h = DefaultHasher::new();
    map.hash(&mut h);
    h.finish()
}

fn contains_all(outer: &Assignment, inner: &Assignment) -> bool {
    inner
        .iter()
        .all(|(t, ps)| outer.get(t).is_some_and(|o| ps.is_subset(o)))
}

fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|o| !ps.is_disjoint(o)))
}

fn count(a: &Assignment) -> usize {
    a.values().map(|p| p.len()).sum()
}

fn normalize(mut a: Assignment) -> Assignment {
    a.retain(|_, p| !p.is_empty());
    a
}

impl ConsumerGroup {
    pub fn new(id: &str) -> ConsumerGroup {
        ConsumerGroup {
            id: id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            statics: HashMap::new(),
            target: HashMap::new(),
            subscription_hash: 0,
            assignor: assignor::UNIFORM.to_string(),
            state_timestamp_ms: crate::now_ms(),
            persisted_meta: None,
        }
    }

    /// Rebuilds a group from its stored records. Timers restart from now
    /// (`now` is the broker's start or the group's load), as in Kafka.
    pub fn restore(
        id: &str,
        v: &GroupValue,
        stored: StoredConsumerGroup,
        now: Instant,
        session_timeout: Duration,
    ) -> ConsumerGroup {
        let mut g = ConsumerGroup::new(id);
        g.group_epoch = v.generation;
        g.assignment_epoch = v.generation;
        g.state_timestamp_ms = v.state_timestamp_ms;
        if let Some(a) = &v.protocol_name {
            g.assignor = a.clone();
        }
        // Metadata of a newer epoch than the group's is stale (left by an
        // older incarnation of the group): the target is recomputed.
        let meta = stored.meta.filter(|m| m.assignment_epoch <= g.group_epoch);
        g.persisted_meta = meta.clone();
        if let Some(m) = &meta {
            g.assignment_epoch = m.assignment_epoch;
            let map: BTreeMap<String, (Uuid, i32)> = m
                .topics
                .iter()
                .map(|(n, id, p)| (n.clone(), (*id, *p)))
                .collect();
            g.subscription_hash = metadata_hash(&map);
            g.target = stored
                .targets
                .into_iter()
                .map(|(m, a)| (m, from_stored(&a)))
                .collect();
        }
        for (member_id, m) in stored.members {
            // An epoch beyond the group's cannot have been given out by it.
            if m.member_epoch > g.group_epoch {
                continue;
            }
            let state = match m.state {
                1 => MemberState::UnrevokedPartitions,
                2 => MemberState::UnreleasedPartitions,
                _ => MemberState::Stable,
            };
            let rebalance_timeout = if m.rebalance_timeout_ms < 0 {
                DEFAULT_REBALANCE_TIMEOUT
            } else {
                Duration::from_millis(m.rebalance_timeout_ms as u64)
            };
            if let Some(i) = &m.instance_id {
                g.statics.insert(i.clone(), member_id.clone());
            }
            g.members.insert(
                member_id.clone(),
                CMember {
                    member_id,
                    instance_id: m.instance_id,
                    rack_id: m.rack_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    epoch: m.member_epoch,
                    previous_epoch: m.previous_epoch,
                    state,
                    rebalance_timeout,
                    subscribed_names: m.subscribed_names,
                    regex: m.regex,
                    server_assignor: m.server_assignor,
                    assigned: from_stored(&m.assigned),
                    pending_revocation: from_stored(&m.pending_revocation),
                    session_deadline: now + session_timeout,
                    revocation_deadline: (state == MemberState::UnrevokedPartitions)
                        .then(|| now + rebalance_timeout.max(Duration::from_secs(1))),
                    left_static: m.left_static,
                },
            );
        }
        if meta.is_none() && !g.members.is_empty() {
            // No target to reconcile toward: compute one at the next heartbeat.
            g.assignment_epoch = g.assignment_epoch.min(g.group_epoch.saturating_sub(1));
        }
        g.target.retain(|m, _| g.members.contains_key(m));
        g
    }

    /// Every record of this group's state (a snapshot).
    pub fn records(&self) -> Vec<Record> {
        let mut out = vec![self.record()];
        for id in self.members.keys() {
            out.push(self.member_record(id));
        }
        for (id, a) in &self.target {
            out.push(Record::ConsumerTarget {
                group: self.id.clone(),
                member_id: id.clone(),
                value: Some(to_stored(a)),
            });
        }
        if let Some(meta) = &self.persisted_meta {
            out.push(Record::ConsumerTargetMeta {
                group: self.id.clone(),
                value: Some(meta.clone()),
            });
        }
        out
    }

    fn stored_member(&self, id: &str) -> Option<ConsumerMemberValue> {
        let m = self.members.get(id)?;
        Some(ConsumerMemberValue {
            member_epoch: m.epoch,
            previous_epoch: m.previous_epoch,
            state: match m.state {
                MemberState::Stable => 0,
                MemberState::UnrevokedPartitions => 1,
                MemberState::UnreleasedPartitions => 2,
            },
            left_static: m.left_static,
            instance_id: m.instance_id.clone(),
            rack_id: m.rack_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            rebalance_timeout_ms: m.rebalance_timeout.as_millis().min(i32::MAX as u128) as i32,
            server_assignor: m.server_assignor.clone(),
            regex: m.regex.clone(),
            subscribed_names: m.subscribed_names.clone(),
            assigned: to_stored(&m.assigned),
            pending_revocation: to_stored(&m.pending_revocation),
        })
    }

    /// The member's record (a tombstone if it is gone).
    fn member_record(&self, id: &str) -> Record {
        Record::ConsumerMember {
            group: self.id.clone(),
            member_id: id.to_string(),
            value: self.stored_member(id),
        }
    }

    /// Appends the member's record if its durable state differs from `before`.
    fn persist_member(
        &self,
        id: &str,
        before: Option<ConsumerMemberValue>,
        records: &mut Vec<Record>,
    ) {
        let after = self.stored_member(id);
        if after != before {
            records.push(Record::ConsumerMember {
                group: self.id.clone(),
                member_id: id.to_string(),
                value: after,
            });
        }
    }

    pub fn record(&self) -> Record {
        Record::Group {
            group: self.id.clone(),
            value: Some(GroupValue {
                group_type: GROUP_TYPE_CONSUMER,
                protocol_type: "consumer".to_string(),
                generation: self.group_epoch,
                protocol_name: Some(self.assignor.clone()),
                leader: None,
                state_timestamp_ms: self.state_timestamp_ms,
                members: Vec::new(),
            }),
        }
    }

    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    fn bump(&mut self, records: &mut Vec<Record>) {
        self.group_epoch = self.group_epoch.wrapping_add(1).max(1);
        self.state_timestamp_ms = crate::now_ms();
        records.push(self.record());
    }

    pub fn remove_member(&mut self, id: &str, records: &mut Vec<Record>, why: &str) {
        if let Some(m) = self.members.remove(id) {
            if let Some(i) = &m.instance_id
                && self.statics.get(i).is_some_and(|x| x == id)
            {
                self.statics.remove(i);
            }
            self.target.remove(id);
            tracing::info!(group = %self.id, member = id, reason = why, "consumer group member removed");
            self.bump(records);
            for r in [
                Record::ConsumerMember {
                    group: self.id.clone(),
                    member_id: id.to_string(),
                    value: None,
                },
                Record::ConsumerTarget {
                    group: self.id.clone(),
                    member_id: id.to_string(),
                    value: None,
                },
            ] {
                records.push(r);
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        topics: &TopicRegistry,
        cfg: &GroupConfig,
        now: Instant,
        records: &mut Vec<Record>,
    ) -> HeartbeatResult {
        use ResponseError as E;
        let interval = cfg.consumer_heartbeat_interval.as_millis() as i32;
        // Leaving.
        if req.member_epoch == -1 || req.member_epoch == -2 {
            let id = match req.instance_id.as_deref().and_then(|i| self.statics.get(i)) {
                Some(m) => m.clone(),
                None => req.member_id.clone(),
            };
            if id != req.member_id && !req.member_id.is_empty() {
                return HeartbeatResult::error(
                    E::FencedInstanceId,
                    "instance id belongs to another member",
                );
            }
            if !self.members.contains_key(&id) {
                return HeartbeatResult::error(
                    E::UnknownMemberId,
                    format!("member {id} is not in group {}", self.id),
                );
            }
            if req.member_epoch == -2 && req.instance_id.is_some() {
                let before = self.stored_member(&id);
                if let Some(m) = self.members.get_mut(&id) {
                    m.left_static = true;
                    m.session_deadline = now + cfg.consumer_session_timeout;
                }
                self.persist_member(&id, before, records);
            } else {
                self.remove_member(&id, records, "left the group");
                self.refresh(topics, cfg, records);
            }
            return HeartbeatResult {
                member_id: Some(req.member_id),
                member_epoch: req.member_epoch,
                heartbeat_interval_ms: interval,
                ..Default::default()
            };
        }
        let full_request = req.member_epoch == 0
            || (req.rebalance_timeout_ms != -1
                && req.subscribed_topic_names.is_some()
                && req.owned.is_some());
        let mut member_id = req.member_id.clone();
        let mut joined = false;
        let before = self.stored_member(&member_id);
        if req.member_epoch == 0 {
            if member_id.is_empty() {
                member_id = Uuid::new_v4().to_string();
            }
            if let Some(instance) = &req.instance_id
                && let Some(old) = self.statics.get(instance).cloned()
                && old != member_id
            {
                let old_left = self.members.get(&old).is_some_and(|m| m.left_static);
                if !old_left && self.members.contains_key(&old) {
                    return HeartbeatResult::error(
                        E::UnreleasedInstanceId,
                        format!("static member {instance} is still in use by {old}"),
                    );
                }
                // The static member is back: it takes over the old member's assignment.
                if let Some(mut m) = self.members.remove(&old) {
                    m.member_id = member_id.clone();
                    m.left_static = false;
                    m.session_deadline = now + cfg.consumer_session_timeout;
                    records.push(Record::ConsumerMember {
                        group: self.id.clone(),
                        member_id: old.clone(),
                        value: None,
                    });
                    records.push(Record::ConsumerTarget {
                        group: self.id.clone(),
                        member_id: old.clone(),
                        value: None,
                    });
                    if let Some(t) = self.target.remove(&old) {
                        records.push(Record::ConsumerTarget {
                            group: self.id.clone(),
                            member_id: member_id.clone(),
                            value: Some(to_stored(&t)),
                        });
                        self.target.insert(member_id.clone(), t);
                    }
                    self.members.insert(member_id.clone(), m);
                }
                self.statics.insert(instance.clone(), member_id.clone());
            }
            if let Some(m) = self.members.get_mut(&member_id) {
                if !m.left_static && req.instance_id.is_some() && m.epoch > 0 {
                    // A rejoin of a live static member keeps its assignment.
                } else if req.instance_id.is_none() {
                    // A dynamic member rejoining owns nothing any more.
                    m.assigned.clear();
                    m.pending_revocation.clear();
                    m.state = MemberState::Stable;
                    m.epoch = 0;
                }
                m.left_static = false;
            } else {
                if self.members.len() >= cfg.members_per_group_max {
                    return HeartbeatResult::error(E::GroupMaxSizeReached, "the group is full");
                }
                if let Some(i) = &req.instance_id {
                    self.statics.insert(i.clone(), member_id.clone());
                }
                self.members.insert(
                    member_id.clone(),
                    CMember {
                        member_id: member_id.clone(),
                        instance_id: req.instance_id.clone(),
                        rack_id: req.rack_id.clone(),
                        client_id: req.client_id.clone(),
                        client_host: req.client_host.clone(),
                        epoch: 0,
                        previous_epoch: -1,
                        state: MemberState::Stable,
                        rebalance_timeout: if req.rebalance_timeout_ms < 0 {
                            DEFAULT_REBALANCE_TIMEOUT
                        } else {
                            Duration::from_millis(req.rebalance_timeout_ms as u64)
                        },
                        subscribed_names: Vec::new(),
                        regex: None,
                        server_assignor: None,
                        assigned: Assignment::new(),
                        pending_revocation: Assignment::new(),
                        session_deadline: now + cfg.consumer_session_timeout,
                        revocation_deadline: None,
                        left_static: false,
                    },
                );
                tracing::info!(group = %self.id, member = %member_id, "consumer group member joined");
                joined = true;
            }
        } else {
            let Some(m) = self.members.get(&member_id) else {
                return HeartbeatResult::error(
                    E::UnknownMemberId,
                    format!("member {member_id} is not in group {}", self.id),
                );
            };
            if m.left_static {
                return HeartbeatResult::error(E::FencedMemberEpoch, "the static member left");
            }
            if req.member_epoch != m.epoch {
                let lost_response = req.member_epoch == m.previous_epoch
                    && req
                        .owned
                        .as_ref()
                        .is_some_and(|o| contains_all(&m.assigned, o));
                if !lost_response {
                    return HeartbeatResult::error(
                        E::FencedMemberEpoch,
                        format!(
                            "epoch {} is not the member's epoch {}",
                            req.member_epoch, m.epoch
                        ),
                    );
                }
            }
        }
        // Update the member's subscription.
        let mut changed = joined;
        if let Some(m) = self.members.get_mut(&member_id) {
            m.session_deadline = now + cfg.consumer_session_timeout;
            m.client_id = req.client_id.clone();
            m.client_host = req.client_host.clone();
            if req.rebalance_timeout_ms >= 0 {
                m.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms as u64);
            }
            if req.rack_id.is_some() {
                m.rack_id = req.rack_id.clone();
            }
            if let Some(mut names) = req.subscribed_topic_names.clone() {
                names.sort();
                names.dedup();
                if names != m.subscribed_names {
                    m.subscribed_names = names;
                    changed = true;
                }
            }
            if req.subscribed_topic_regex.is_some() {
                let regex = req.subscribed_topic_regex.clone().filter(|r| !r.is_empty());
                if regex != m.regex {
                    m.regex = regex;
                    changed = true;
                }
            }
            if req.server_assignor.is_some() && req.server_assignor != m.server_assignor {
                m.server_assignor = req.server_assignor.clone();
                changed = true;
            }
        }
        if changed {
            self.bump(records);
        }
        // Subscribed topics' metadata (new partitions or topics bump the epoch).
        let (topic_map, hash) = self.subscribed_metadata(topics);
        if hash != self.subscription_hash {
            self.subscription_hash = hash;
            if !changed && self.group_epoch > 0 {
                self.bump(records);
            }
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target(&topic_map, topics, cfg, records);
        }
        // Reconcile this member toward its target.
        let before_assigned = self.members.get(&member_id).map(|m| m.assigned.clone());
        self.reconcile(&member_id, req.owned.as_ref(), now);
        // A member new under this id (or taken over) has no record yet.
        let before = if member_id == req.member_id {
            before
        } else {
            None
        };
        self.persist_member(&member_id, before, records);
        let Some(m) = self.members.get(&member_id) else {
            return HeartbeatResult::error(E::UnknownMemberId, "member vanished");
        };
        let send_assignment = full_request || before_assigned.as_ref() != Some(&m.assigned);
        HeartbeatResult {
            error: 0,
            message: None,
            member_id: Some(member_id.clone()),
            member_epoch: m.epoch,
            heartbeat_interval_ms: interval,
            assignment: send_assignment.then(|| m.assigned.clone()),
        }
    }

    /// Subscribed topic names that exist -> (id, partitions), and a hash of it.
    fn subscribed_metadata(&self, topics: &TopicRegistry) -> (BTreeMap<String, (Uuid, i32)>, u64) {
        let mut out = BTreeMap::new();
        let regexes: Vec<super::topic_regex::Regex> = self
            .members
            .values()
            .filter_map(|m| m.regex.as_deref())
            .filter_map(super::topic_regex::Regex::new)
            .collect();
        if !regexes.is_empty() {
            for t in topics.list() {
                if !t.is_internal() && regexes.iter().any(|r| r.is_match(&t.name)) {
                    out.insert(t.name.clone(), (t.id, t.partition_count()));
                }
            }
        }
        for m in self.members.values() {
            for n in &m.subscribed_names {
                if out.contains_key(n) {
                    continue;
                }
                if let Some(t) = topics.get(n) {
                    out.insert(n.clone(), (t.id, t.partition_count()));
                }
            }
        }
        let h = metadata_hash(&out);
        (out, h)
    }

    fn compute_target(
        &mut self,
        topic_map: &BTreeMap<String, (Uuid, i32)>,
        _topics: &TopicRegistry,
        cfg: &GroupConfig,
        records: &mut Vec<Record>,
    ) {
        let mut subs: BTreeMap<String, BTreeSet<Uuid>> = BTreeMap::new();
        for m in self.members.values() {
            let regex = m.regex.as_deref().and_then(super::topic_regex::Regex::new);
            let mut set = BTreeSet::new();
            for (name, (id, _)) in topic_map {
                if m.subscribed_names.binary_search(name).is_ok()
                    || regex.as_ref().is_some_and(|r| r.is_match(name))
                {
                    set.insert(*id);
                }
            }
            subs.insert(m.member_id.clone(), set);
        }
        let parts: BTreeMap<Uuid, i32> = topic_map.values().map(|(id, n)| (*id, *n)).collect();
        // The assignor most members ask for; the default otherwise.
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor.as_deref() {
                *votes.entry(a).or_default() += 1;
            }
        }
        let name = votes
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(a, _)| a.to_string())
            .unwrap_or_else(|| cfg.consumer_default_assignor.clone());
        let started = Instant::now();
        let target = assignor::assign(
            &name,
            &assignor::AssignInput {
                members: &subs,
                topics: &parts,
                previous: &self.target,
            },
        );
        let target: HashMap<String, Assignment> =
            target.into_iter().map(|(k, v)| (k, normalize(v))).collect();
        // Persist the members' targets that changed, then the target's epoch.
        for (id, a) in &target {
            if self.target.get(id) != Some(a) {
                records.push(Record::ConsumerTarget {
                    group: self.id.clone(),
                    member_id: id.clone(),
                    value: Some(to_stored(a)),
                });
            }
        }
        for id in self.target.keys() {
            if !target.contains_key(id) {
                records.push(Record::ConsumerTarget {
                    group: self.id.clone(),
                    member_id: id.clone(),
                    value: None,
                });
            }
        }
        self.target = target;
        self.assignor = name;
        self.assignment_epoch = self.group_epoch;
        let meta = ConsumerTargetMeta {
            assignment_epoch: self.assignment_epoch,
            topics: topic_map
                .iter()
                .map(|(n, (id, p))| (n.clone(), *id, *p))
                .collect(),
        };
        records.push(Record::ConsumerTargetMeta {
            group: self.id.clone(),
            value: Some(meta.clone()),
        });
        self.persisted_meta = Some(meta);
        tracing::info!(
            group = %self.id,
            epoch = self.group_epoch,
            members = self.members.len(),
            assignor = %self.assignor,
            us = started.elapsed().as_micros() as u64,
            "computed target assignment"
        );
    }

    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now: Instant) {
        let target_epoch = self.assignment_epoch;
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        // Partitions other members still hold.
        let mut held: HashMap<(Uuid, i32), ()> = HashMap::new();
        for (id, m) in &self.members {
            if id == member_id {
                continue;
            }
            for a in [&m.assigned, &m.pending_revocation] {
                for (t, ps) in a {
                    for p in ps {
                        held.insert((*t, *p), ());
                    }
                }
            }
        }
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        match m.state {
            MemberState::UnrevokedPartitions => {
                let revoked = owned.is_some_and(|o| !intersects(o, &m.pending_revocation));
                if !revoked {
                    return;
                }
                m.pending_revocation.clear();
                m.revocation_deadline = None;
            }
            MemberState::Stable if m.epoch == target_epoch => return,
            _ => {}
        }
        let mut keep = Assignment::new();
        let mut revoke = Assignment::new();
        for (t, ps) in &m.assigned {
            for p in ps {
                if target.get(t).is_some_and(|s| s.contains(p)) {
                    keep.entry(*t).or_default().insert(*p);
                } else {
                    revoke.entry(*t).or_default().insert(*p);
                }
            }
        }
        if count(&revoke) > 0 {
            m.assigned = keep;
            m.pending_revocation = revoke;
            m.state = MemberState::UnrevokedPartitions;
            m.revocation_deadline = Some(now + m.rebalance_timeout.max(Duration::from_secs(1)));
            return;
        }
        let mut unreleased = false;
        let mut next = keep;
        for (t, ps) in &target {
            for p in ps {
                if next.get(t).is_some_and(|s| s.contains(p)) {
                    continue;
                }
                if held.contains_key(&(*t, *p)) {
                    unreleased = true;
                } else {
                    next.entry(*t).or_default().insert(*p);
                }
            }
        }
        m.assigned = next;
        if m.epoch != target_epoch {
            m.previous_epoch = m.epoch;
            m.epoch = target_epoch;
        }
        m.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
    }

    /// Timers: session expiry and revocation timeouts.
    /// Computes the target assignment now if the group epoch moved past it
    /// (members left or expired), rather than at the next heartbeat.
    pub fn refresh(
        &mut self,
        topics: &TopicRegistry,
        cfg: &GroupConfig,
        records: &mut Vec<Record>,
    ) {
        if self.group_epoch > self.assignment_epoch && !self.members.is_empty() {
            let (topic_map, hash) = self.subscribed_metadata(topics);
            self.subscription_hash = hash;
            self.compute_target(&topic_map, topics, cfg, records);
        }
    }

    pub fn tick(&mut self, now: Instant, records: &mut Vec<Record>) {
        let expired: Vec<(String, &'static str)> = self
            .members
            .values()
            .filter_map(|m| {
                if m.session_deadline <= now {
                    Some((m.member_id.clone(), "session timeout"))
                } else if m.revocation_deadline.is_some_and(|d| d <= now) {
                    Some((
                        m.member_id.clone(),
                        "did not revoke partitions within the rebalance timeout",
                    ))
                } else {
                    None
                }
            })
            .collect();
        for (id, why) in expired {
            self.remove_member(&id, records, why);
        }
    }

    /// OffsetCommit/OffsetFetch member checks; None if allowed.
    pub fn validate_member(&self, member_id: &str, epoch: i32) -> Option<ResponseError> {
        let Some(m) = self.members.get(member_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        if epoch == m.epoch || (epoch == m.previous_epoch && epoch >= 0) {
            None
        } else {
            Some(ResponseError::StaleMemberEpoch)
        }
    }

    pub fn subscribed_topic_names(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed_names.iter().cloned())
            .collect()
    }
}
