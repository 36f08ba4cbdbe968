//! The group coordinator: classic consumer groups (`group.rs`), KIP-848
//! consumer groups (`consumer.rs`, with server-side assignors in
//! `assignor.rs`) and committed offsets, all kept durable in an internal log
//! (`offset_store.rs`).
//!
//! All group state sits behind one mutex, never held across an await. Handlers
//! call in, get an answer now or a channel answered when the group moves, and
//! wait for the internal log to be durable before they respond (so an
//! acknowledged commit or generation survives a crash). A background task
//! drives the timers (sessions, rebalance and sync timeouts, offset retention,
//! log compaction).

mod admin_api;
pub mod assignor;
mod classic_api;
pub mod consumer;
mod consumer_api;
pub mod consumer_protocol;
pub mod group;
pub mod group_configs;
pub mod offset_store;
mod offsets_api;
pub mod store;
pub mod topic_regex;

pub use admin_api::{DescribedGroup, DescribedMember, ListedGroup};
pub use consumer_api::{DescribedConsumerGroup, DescribedConsumerMember};
pub use offsets_api::{CommitPartition, CommitRequest, FetchedOffset};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald_log::LogError;
use kafka_protocol::ResponseError;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::topic_registry::TopicRegistry;
use consumer::ConsumerGroup;
use group::{Answer, ClassicGroup, ClassicState, JoinRequest, JoinResult, SyncResult};
use offset_store::{GROUP_TYPE_CONSUMER, GroupValue, OffsetStore, OffsetValue, Record};

/// How often group timers are checked.
const TICK: Duration = Duration::from_millis(50);
/// Empty groups without offsets are forgotten after this long (Kafka's cleanup interval).
const EMPTY_GROUP_GRACE: Duration = Duration::from_secs(600);
const CLEANUP_INTERVAL: Duration = Duration::from_secs(60);
/// Most protocols (assignors) one JoinGroup may name.
pub const PROTOCOLS_PER_MEMBER_MAX: usize = 64;
/// Most topic names one KIP-848 member may subscribe to by name.
pub const SUBSCRIBED_TOPICS_MAX: usize = 10_000;
/// Longest group id accepted.
pub const GROUP_ID_BYTES_MAX: usize = 4096;

#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub session_timeout_min: Duration,
    pub session_timeout_max: Duration,
    pub initial_rebalance_delay: Duration,
    /// Cap on one member's protocol metadata (all protocols) and on one assignment.
    pub member_metadata_bytes_max: usize,
    pub members_per_group_max: usize,
    /// Most groups the coordinator holds (a bound on its memory); a new group
    /// beyond it is refused with GROUP_MAX_SIZE_REACHED.
    pub groups_max: usize,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_bytes_max: usize,
    /// `offsets.retention.minutes`.
    pub offsets_retention: Duration,
    /// Compact the internal log once it is larger than this (and twice its live size).
    pub compact_bytes_min: u64,
    /// `group.consumer.session.timeout.ms` (KIP-848).
    pub consumer_session_timeout: Duration,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848).
    pub consumer_heartbeat_interval: Duration,
    pub consumer_default_assignor: String,
}

impl GroupConfig {
    pub fn from_broker(c: &BrokerConfig) -> GroupConfig {
        GroupConfig {
            session_timeout_min: c.group_min_session_timeout,
            session_timeout_max: c.group_max_session_timeout,
            initial_rebalance_delay: c.group_initial_rebalance_delay,
            member_metadata_bytes_max: 1024 * 1024,
            members_per_group_max: 10_000,
            groups_max: 100_000,
            offset_metadata_bytes_max: 4096,
            offsets_retention: c.offsets_retention,
            compact_bytes_min: c.offsets_compact_bytes,
            consumer_session_timeout: c.group_consumer_session_timeout,
            consumer_heartbeat_interval: c.group_consumer_heartbeat_interval,
            consumer_default_assignor: assignor::UNIFORM.to_string(),
        }
    }
}

pub enum Kind {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

pub struct Group {
    pub kind: Kind,
    pub offsets: BTreeMap<String, BTreeMap<i32, OffsetValue>>,
}

impl Group {
    fn has_members(&self) -> bool {
        match &self.kind {
            Kind::Classic(g) => !g.is_empty(),
            Kind::Consumer(g) => !g.members.is_empty(),
        }
    }
    fn state_timestamp_ms(&self) -> i64 {
        match &self.kind {
            Kind::Classic(g) => g.state_timestamp_ms,
            Kind::Consumer(g) => g.state_timestamp_ms,
        }
    }
    fn protocol_type(&self) -> String {
        match &self.kind {
            Kind::Classic(g) => g.protocol_type.clone().unwrap_or_default(),
            Kind::Consumer(_) => "consumer".to_string(),
        }
    }
    fn state_name(&self) -> &'static str {
        match &self.kind {
            Kind::Classic(g) => g.state.name(),
            Kind::Consumer(g) => g.state_name(),
        }
    }
    fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Classic(_) => "classic",
            Kind::Consumer(_) => "consumer",
        }
    }
    fn offset_records(&self, group: &str) -> Vec<Record> {
        let mut out = Vec::new();
        for (t, ps) in &self.offsets {
            for (p, v) in ps {
                out.push(Record::Offset {
                    group: group.to_string(),
                    topic: t.clone(),
                    partition: *p,
                    value: Some(v.clone()),
                });
            }
        }
        out
    }
}

struct State {
    groups: HashMap<String, Group>,
    store: Box<dyn store::GroupStore>,
    configs: group_configs::GroupConfigStore,
    last_cleanup: Instant,
}

pub struct GroupCoordinator {
    state: Mutex<State>,
    durability: Arc<dyn store::Durability>,
    ownership: Arc<dyn store::GroupOwnership>,
    pub cfg: GroupConfig,
}

/// Per topic, (partition, error code) pairs.
pub type PartitionErrors = Vec<(String, Vec<(i32, i16)>)>;

pub fn valid_group_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= GROUP_ID_BYTES_MAX
}

/// Whole-name match of a KIP-848 subscription regex (see `topic_regex.rs`).
pub fn regex_match(pattern: &str, name: &str) -> bool {
    topic_regex::Regex::new(pattern).is_some_and(|r| r.is_match(name))
}

pub fn regex_valid(pattern: &str) -> bool {
    topic_regex::Regex::new(pattern).is_some()
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Rebuilds groups from their records, in write order (last write wins; a
/// group tombstone drops the group's offsets too).
fn replay(records: Vec<Record>, session_timeout: Duration) -> HashMap<String, Group> {
    let mut offsets: HashMap<String, BTreeMap<String, BTreeMap<i32, OffsetValue>>> = HashMap::new();
    let mut metas: HashMap<String, Option<GroupValue>> = HashMap::new();
    let mut consumers: HashMap<String, consumer::StoredConsumerGroup> = HashMap::new();
    for r in records {
        match r {
            Record::ConsumerMember {
                group,
                member_id,
                value,
            } => {
                let c = consumers.entry(group).or_default();
                match value {
                    Some(v) => c.members.insert(member_id, v),
                    None => c.members.remove(&member_id),
                };
            }
            Record::ConsumerTarget {
                group,
                member_id,
                value,
            } => {
                let c = consumers.entry(group).or_default();
                match value {
                    Some(v) => c.targets.insert(member_id, v),
                    None => c.targets.remove(&member_id),
                };
            }
            Record::ConsumerTargetMeta { group, value } => {
                consumers.entry(group).or_default().meta = value;
            }
            Record::Offset {
                group,
                topic,
                partition,
                value,
            } => match value {
                Some(v) => {
                    offsets
                        .entry(group)
                        .or_default()
                        .entry(topic)
                        .or_default()
                        .insert(partition, v);
                }
                None => {
                    if let Some(g) = offsets.get_mut(&group)
                        && let Some(t) = g.get_mut(&topic)
                    {
                        t.remove(&partition);
                        if t.is_empty() {
                            g.remove(&topic);
                        }
                    }
                }
            },
            Record::Group { group, value } => {
                if value.is_none() {
                    offsets.remove(&group);
                    consumers.remove(&group);
                }
                metas.insert(group, value);
            }
        }
    }
    let now = Instant::now();
    let mut groups = HashMap::new();
    let ids: BTreeSet<String> = offsets.keys().chain(metas.keys()).cloned().collect();
    for id in ids {
        let offs = offsets.remove(&id).unwrap_or_default();
        let kind = match metas.get(&id) {
            Some(Some(v)) if v.group_type == GROUP_TYPE_CONSUMER => {
                let stored = consumers.remove(&id).unwrap_or_default();
                Kind::Consumer(ConsumerGroup::restore(&id, v, stored, now, session_timeout))
            }
            Some(Some(v)) => Kind::Classic(ClassicGroup::restore(&id, v, now)),
            Some(None) if offs.is_empty() => continue,
            _ => Kind::Classic(ClassicGroup::new(&id)),
        };
        groups.insert(
            id,
            Group {
                kind,
                offsets: offs,
            },
        );
    }
    groups
}

impl State {
    /// Appends what the state machine produced; errors are logged (the
    /// in-memory state stays authoritative until restart).
    fn persist(&mut self, records: &[Record]) {
        if records.is_empty() {
            return;
        }
        if let Err(e) = self.store.append(records) {
            tracing::error!(error = %e, "could not persist group state");
        }
    }

    fn snapshot(&self) -> Vec<Record> {
        let mut out = Vec::new();
        for (id, g) in &self.groups {
            match &g.kind {
                Kind::Classic(c) => {
                    if c.generation > 0 || c.protocol_type.is_some() {
                        out.push(c.record());
                    }
                }
                Kind::Consumer(c) => out.extend(c.records()),
            }
            out.extend(g.offset_records(id));
        }
        out
    }
}

impl GroupCoordinator {
    /// Opens the internal log under the data directory and replays it.
    pub fn open(config: &BrokerConfig) -> anyhow::Result<GroupCoordinator> {
        let cfg = GroupConfig::from_broker(config);
        let (store, records) = OffsetStore::open(&config.data_dir, cfg.compact_bytes_min)?;
        Self::open_with(config, Box::new(store), records, Arc::new(store::AllMine))
    }

    /// A coordinator over any store, starting from `records` (in write order),
    /// coordinating the groups `ownership` says are this broker's.
    pub fn open_with(
        config: &BrokerConfig,
        store: Box<dyn store::GroupStore>,
        records: Vec<Record>,
        ownership: Arc<dyn store::GroupOwnership>,
    ) -> anyhow::Result<GroupCoordinator> {
        let cfg = GroupConfig::from_broker(config);
        let started = Instant::now();
        let configs = group_configs::GroupConfigStore::open(&config.data_dir)?;
        let n = records.len();
        let groups = replay(records, cfg.consumer_session_timeout);
        tracing::info!(
            groups = groups.len(),
            records = n,
            log_bytes = store.size_bytes(),
            ms = started.elapsed().as_millis() as u64,
            "loaded group state"
        );
        Ok(GroupCoordinator {
            durability: store.durability(),
            state: Mutex::new(State {
                groups,
                store,
                configs,
                last_cleanup: Instant::now(),
            }),
            ownership,
            cfg,
        })
    }

    /// The local group log (served as `__consumer_offsets`); None in cluster mode.
    pub fn internal_log(&self) -> Option<Arc<crate::partition::Partition>> {
        lock(&self.state).store.internal_log()
    }

    /// Takes a group's stored state over (cluster mode: this broker became
    /// its coordinator), replacing whatever was in memory.
    pub fn install_group(&self, group_id: &str, records: Vec<Record>) {
        let mut loaded = replay(records, self.cfg.consumer_session_timeout);
        let mut st = lock(&self.state);
        match loaded.remove(group_id) {
            Some(g) => {
                st.groups.insert(group_id.to_string(), g);
            }
            None => {
                st.groups.remove(group_id);
            }
        }
    }

    /// Forgets a group (cluster mode: another broker coordinates it now).
    pub fn unload_group(&self, group_id: &str) {
        lock(&self.state).groups.remove(group_id);
    }

    /// The groups held in memory.
    pub fn loaded_groups(&self) -> Vec<String> {
        lock(&self.state).groups.keys().cloned().collect()
    }

    /// InvalidGroupId, NotCoordinator, CoordinatorLoadInProgress, or Ok.
    pub fn check_group(&self, group_id: &str) -> Result<(), ResponseError> {
        if !valid_group_id(group_id) {
            return Err(ResponseError::InvalidGroupId);
        }
        match self.ownership.ownership(group_id) {
            store::Ownership::Mine => Ok(()),
            store::Ownership::NotMine => Err(ResponseError::NotCoordinator),
            store::Ownership::Loading => Err(ResponseError::CoordinatorLoadInProgress),
        }
    }

    /// The log end offset once every operation that started before now has
    /// appended its records: wait for it to be durable before answering.
    pub fn sync_point(&self) -> i64 {
        lock(&self.state).store.sync_point()
    }

    /// Waits until all group state written so far is durable.
    pub async fn wait_durable(&self) -> Result<(), LogError> {
        let end = self.sync_point();
        self.durability.wait(end).await
    }

    pub fn close(&self) {
        let st = lock(&self.state);
        st.store.close();
    }

    /// One pass of the timers.
    pub fn tick(&self, topics: &TopicRegistry) {
        let now = Instant::now();
        let mut st = lock(&self.state);
        let mut records = Vec::new();
        for g in st.groups.values_mut() {
            match &mut g.kind {
                Kind::Classic(c) => c.tick(now, &self.cfg, &mut records),
                Kind::Consumer(c) => {
                    let before = records.len();
                    c.tick(now, &mut records);
                    if records.len() != before {
                        c.refresh(topics, &self.cfg, &mut records);
                    }
                }
            }
        }
        if now.duration_since(st.last_cleanup) >= CLEANUP_INTERVAL {
            st.last_cleanup = now;
            self.cleanup(&mut st, &mut records);
        }
        st.persist(&records);
        if st.store.needs_compaction() {
            let snapshot = st.snapshot();
            if let Err(e) = st.store.compact(&snapshot) {
                tracing::error!(error = %e, "compacting group state log failed");
            }
        }
    }

    /// Offset retention and removal of long-empty groups.
    fn cleanup(&self, st: &mut State, records: &mut Vec<Record>) {
        let now_ms = crate::now_ms();
        let retention = self.cfg.offsets_retention.as_millis() as i64;
        let mut dead = Vec::new();
        for (id, g) in st.groups.iter_mut() {
            if g.has_members() {
                continue;
            }
            let since_empty = g.state_timestamp_ms();
            let had_protocol = !g.protocol_type().is_empty();
            for (t, ps) in g.offsets.iter_mut() {
                ps.retain(|p, v| {
                    let base = if had_protocol {
                        since_empty.max(v.commit_timestamp_ms)
                    } else {
                        v.commit_timestamp_ms
                    };
                    let keep = now_ms - base < retention;
                    if !keep {
                        records.push(Record::Offset {
                            group: id.clone(),
                            topic: t.clone(),
                            partition: *p,
                            value: None,
                        });
                    }
                    keep
                });
            }
            g.offsets.retain(|_, ps| !ps.is_empty());
            if g.offsets.is_empty() && now_ms - since_empty >= EMPTY_GROUP_GRACE.as_millis() as i64
            {
                dead.push(id.clone());
            }
        }
        for id in dead {
            st.groups.remove(&id);
            records.push(Record::Group {
                group: id,
                value: None,
            });
        }
    }
}

/// Drives the coordinator's timers until shutdown.
pub async fn run_timers(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => return,
        }
        broker.groups.tick(&broker.topics);
    }
}

#[cfg(test)]
mod tests;
