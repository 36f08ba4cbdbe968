//! Samples the broker once a second for what the console shows live: the
//! throughput series of the Overview, per-topic rates, and the event-flow
//! graph's edge rates and group lag. Rates are differences of cumulative
//! counters (the broker's metrics and event-flow records) over the window.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_broker::Broker;
use herald_broker::event_flow::ProducerKey;
use herald_broker::group_coordinator::consumer_protocol::assigned_partitions;
use herald_broker::metrics::Traffic;
use serde::Serialize;

/// Seconds of throughput the Overview charts keep.
pub const SERIES_SAMPLES_MAX: usize = 300;
/// Window of the rates on topics and edges.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);
/// Groups and partitions one sample reads, whatever the broker holds.
const GROUPS_SAMPLED_MAX: usize = 2_000;
const GROUP_PARTITIONS_SAMPLED_MAX: usize = 20_000;

/// One second of broker-wide throughput, per second.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct SeriesPoint {
    pub t: i64,
    pub bytes_in: f64,
    pub bytes_out: f64,
    pub records_in: f64,
    pub records_out: f64,
}

/// Rates of one topic over the window, per second.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct TopicRate {
    pub records_in_per_s: f64,
    pub bytes_in_per_s: f64,
    pub records_out_per_s: f64,
    pub bytes_out_per_s: f64,
}

/// A producer → topic edge.
#[derive(Clone, Debug)]
pub struct ProducerRate {
    pub key: ProducerKey,
    pub records_per_s: f64,
    pub bytes_per_s: f64,
    pub last_seen_ms: i64,
}

/// A topic → group edge: how fast the group's committed offsets advance.
#[derive(Clone, Debug)]
pub struct GroupTopic {
    pub group: String,
    pub topic: String,
    pub records_per_s: f64,
    pub lag: i64,
}

/// One group as the graph shows it.
#[derive(Clone, Debug)]
pub struct GroupNode {
    pub group: String,
    pub state: String,
    pub lag: i64,
    /// Topics of its members' assignments or subscriptions, besides commits.
    pub topics: Vec<String>,
}

/// The latest computed view.
#[derive(Default)]
pub struct Latest {
    pub series: VecDeque<SeriesPoint>,
    pub topics: HashMap<String, TopicRate>,
    pub producers: Vec<ProducerRate>,
    pub group_topics: Vec<GroupTopic>,
    pub groups: Vec<GroupNode>,
}

/// Counters at one instant.
struct Snapshot {
    at: Instant,
    totals: Traffic,
    topics: HashMap<String, Traffic>,
    producers: HashMap<ProducerKey, (u64, u64)>,
    /// Σ committed offsets per (group, topic).
    committed: HashMap<(String, String), i64>,
}

#[derive(Default)]
pub struct Sampler {
    pub latest: Mutex<Latest>,
}

fn per_s(now: u64, then: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    now.saturating_sub(then) as f64 / secs
}

impl Sampler {
    /// Runs until the server (and so `sampler`'s last other owner) is gone.
    pub fn spawn(sampler: &Arc<Sampler>, broker: Arc<Broker>) {
        let weak = Arc::downgrade(sampler);
        tokio::spawn(async move {
            let mut history: VecDeque<Snapshot> = VecDeque::new();
            let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let Some(sampler) = weak.upgrade() else {
                    return;
                };
                let (snapshot, groups) = take(&broker).await;
                sampler.update(&mut history, snapshot, groups, herald_broker::now_ms());
            }
        });
    }

    fn update(
        &self,
        history: &mut VecDeque<Snapshot>,
        now: Snapshot,
        groups: Vec<(GroupNode, HashMap<String, i64>)>,
        now_ms: i64,
    ) {
        let Ok(mut latest) = self.latest.lock() else {
            return;
        };
        if let Some(prev) = history.back() {
            let secs = now.at.duration_since(prev.at).as_secs_f64();
            let (a, b) = (&now.totals, &prev.totals);
            latest.series.push_back(SeriesPoint {
                t: now_ms,
                bytes_in: per_s(a.bytes_in, b.bytes_in, secs),
                bytes_out: per_s(a.bytes_out, b.bytes_out, secs),
                records_in: per_s(a.records_in, b.records_in, secs),
                records_out: per_s(a.records_out, b.records_out, secs),
            });
            while latest.series.len() > SERIES_SAMPLES_MAX {
                latest.series.pop_front();
            }
        }
        // The oldest snapshot still inside the window is the rates' base.
        while history.len() > 1
            && history
                .get(1)
                .is_some_and(|s| now.at.duration_since(s.at) >= RATE_WINDOW)
        {
            history.pop_front();
        }
        if let Some(base) = history.front() {
            let secs = now.at.duration_since(base.at).as_secs_f64();
            latest.topics = now
                .topics
                .iter()
                .map(|(name, t)| {
                    let b = base.topics.get(name).copied().unwrap_or_default();
                    let rate = TopicRate {
                        records_in_per_s: per_s(t.records_in, b.records_in, secs),
                        bytes_in_per_s: per_s(t.bytes_in, b.bytes_in, secs),
                        records_out_per_s: per_s(t.records_out, b.records_out, secs),
                        bytes_out_per_s: per_s(t.bytes_out, b.bytes_out, secs),
                    };
                    (name.clone(), rate)
                })
                .collect();
            latest.producers = now
                .producers
                .iter()
                .map(|(key, (records, bytes))| {
                    let (r0, b0) = base.producers.get(key).copied().unwrap_or((0, 0));
                    ProducerRate {
                        key: key.clone(),
                        records_per_s: per_s(*records, r0, secs),
                        bytes_per_s: per_s(*bytes, b0, secs),
                        last_seen_ms: 0,
                    }
                })
                .collect();
            let mut edges = Vec::new();
            for (node, lags) in &groups {
                for (topic, lag) in lags {
                    let key = (node.group.clone(), topic.clone());
                    let c = now.committed.get(&key).copied().unwrap_or(0);
                    // A group that committed for the first time inside the
                    // window is measured from the first sample that has it
                    // (not from nothing: its first offset is no progress).
                    let (c0, since) = history
                        .iter()
                        .find_map(|s| s.committed.get(&key).map(|c0| (*c0, s.at)))
                        .unwrap_or((c, base.at));
                    let secs = now.at.duration_since(since).as_secs_f64();
                    edges.push(GroupTopic {
                        group: node.group.clone(),
                        topic: topic.clone(),
                        records_per_s: per_s(c.max(0) as u64, c0.max(0) as u64, secs),
                        lag: *lag,
                    });
                }
            }
            latest.group_topics = edges;
        }
        latest.groups = groups.into_iter().map(|(g, _)| g).collect();
        history.push_back(now);
    }

    /// The last `seen_ms` of each producer edge comes from the broker's
    /// record (the sampler keeps only counters).
    pub fn producers(&self, broker: &Broker) -> Vec<ProducerRate> {
        let seen: HashMap<ProducerKey, i64> = broker
            .event_flow
            .producers()
            .into_iter()
            .map(|(k, e)| (k, e.last_seen_ms))
            .collect();
        let Ok(latest) = self.latest.lock() else {
            return Vec::new();
        };
        latest
            .producers
            .iter()
            .filter_map(|p| {
                let last = *seen.get(&p.key)?;
                Some(ProducerRate {
                    last_seen_ms: last,
                    ..p.clone()
                })
            })
            .collect()
    }
}

/// Reads every counter once, and each group's lag per topic.
async fn take(broker: &Arc<Broker>) -> (Snapshot, Vec<(GroupNode, HashMap<String, i64>)>) {
    let totals = broker.metrics.traffic_totals();
    let topics = broker.metrics.topic_traffic().into_iter().collect();
    let producers = broker
        .event_flow
        .producers()
        .into_iter()
        .map(|(k, e)| (k, (e.records, e.bytes)))
        .collect();
    let mut committed = HashMap::new();
    let mut groups = Vec::new();
    let mut partitions_read = 0usize;
    let mut watermarks: HashMap<(String, i32), Option<i64>> = HashMap::new();
    for listed in broker
        .groups
        .list(&[], &[])
        .into_iter()
        .take(GROUPS_SAMPLED_MAX)
    {
        let id = listed.group_id;
        let mut lags: HashMap<String, i64> = HashMap::new();
        let (error, offsets) = broker.groups.fetch_offsets(&id, None, None);
        if error == 0 {
            for (topic, offsets) in offsets {
                for o in offsets.iter().filter(|o| o.error == 0 && o.offset >= 0) {
                    if partitions_read >= GROUP_PARTITIONS_SAMPLED_MAX {
                        break;
                    }
                    partitions_read += 1;
                    *committed.entry((id.clone(), topic.clone())).or_insert(0) += o.offset;
                    let key = (topic.clone(), o.partition);
                    if !watermarks.contains_key(&key) {
                        let hw = high_watermark(broker, &topic, o.partition).await;
                        watermarks.insert(key.clone(), hw);
                    }
                    let lag = watermarks
                        .get(&key)
                        .copied()
                        .flatten()
                        .map(|hw| (hw - o.offset).max(0))
                        .unwrap_or(0);
                    *lags.entry(topic.clone()).or_insert(0) += lag;
                }
            }
        }
        let described = broker.groups.describe(std::slice::from_ref(&id));
        let mut topics: Vec<String> = described
            .first()
            .map(|d| {
                d.members
                    .iter()
                    .flat_map(|m| {
                        assigned_partitions(&m.assignment)
                            .into_iter()
                            .map(|(t, _)| t)
                    })
                    .collect()
            })
            .unwrap_or_default();
        topics.sort();
        topics.dedup();
        for t in &topics {
            lags.entry(t.clone()).or_insert(0);
        }
        groups.push((
            GroupNode {
                group: id,
                state: listed.state,
                lag: lags.values().sum(),
                topics,
            },
            lags,
        ));
    }
    let snapshot = Snapshot {
        at: Instant::now(),
        totals,
        topics,
        producers,
        committed,
    };
    (snapshot, groups)
}

async fn high_watermark(broker: &Broker, topic: &str, partition: i32) -> Option<i64> {
    let p = broker.topics.get(topic)?.partition(partition)?;
    p.offsets().await.ok().map(|o| o.high_watermark)
}
