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

pub mod assignor;
pub mod consumer;
pub mod group;
pub mod group_configs;
pub mod offset_store;
pub mod store;
pub mod topic_regex;

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

/// One partition of an OffsetCommit.
pub struct CommitPartition {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

pub struct CommitRequest {
    pub group_id: String,
    pub generation_or_epoch: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub topics: Vec<(String, Vec<CommitPartition>)>,
    pub version: i16,
}

#[derive(Debug, Clone)]
pub struct FetchedOffset {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub error: i16,
}

#[derive(Debug, Clone, Default)]
pub struct DescribedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, Default)]
pub struct DescribedGroup {
    pub error: i16,
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol_data: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug, Clone)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    pub state: String,
    pub group_type: String,
}

/// A KIP-848 member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, Default)]
pub struct DescribedConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// (topic id, topic name, partitions)
    pub assignment: Vec<(uuid::Uuid, String, Vec<i32>)>,
    pub target_assignment: Vec<(uuid::Uuid, String, Vec<i32>)>,
}

#[derive(Debug, Clone, Default)]
pub struct DescribedConsumerGroup {
    pub error: i16,
    pub error_message: Option<String>,
    pub group_id: String,
    pub state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<DescribedConsumerMember>,
}

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
fn replay(records: Vec<Record>) -> HashMap<String, Group> {
    let mut offsets: HashMap<String, BTreeMap<String, BTreeMap<i32, OffsetValue>>> = HashMap::new();
    let mut metas: HashMap<String, Option<GroupValue>> = HashMap::new();
    for r in records {
        match r {
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
                Kind::Consumer(ConsumerGroup::restore(&id, v))
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
                Kind::Consumer(c) => out.push(c.record()),
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
        let groups = replay(records);
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

    /// Takes a group's stored state over (cluster mode: this broker became
    /// its coordinator), replacing whatever was in memory.
    pub fn install_group(&self, group_id: &str, records: Vec<Record>) {
        let mut loaded = replay(records);
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

    pub fn join(&self, group_id: &str, req: JoinRequest) -> Answer<JoinResult> {
        use ResponseError as E;
        let member_id = req.member_id.clone();
        if let Err(e) = self.check_group(group_id) {
            return Answer::Now(JoinResult::error(&member_id, e));
        }
        if req.session_timeout < self.cfg.session_timeout_min
            || req.session_timeout > self.cfg.session_timeout_max
        {
            return Answer::Now(JoinResult::error(&member_id, E::InvalidSessionTimeout));
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            return Answer::Now(JoinResult::error(&member_id, E::InconsistentGroupProtocol));
        }
        let meta_bytes: usize = req.protocols.iter().map(|(n, m)| n.len() + m.len()).sum();
        if meta_bytes > self.cfg.member_metadata_bytes_max
            || req.protocols.len() > PROTOCOLS_PER_MEMBER_MAX
        {
            tracing::info!(
                group = group_id,
                bytes = meta_bytes,
                "JoinGroup rejected: member metadata too large"
            );
            return Answer::Now(JoinResult::error(&member_id, E::InvalidRequest));
        }
        let now = Instant::now();
        let mut st = lock(&self.state);
        let mut records = Vec::new();
        let answer = {
            let group = match st.groups.get_mut(group_id) {
                Some(g) => g,
                None => {
                    if !member_id.is_empty() {
                        return Answer::Now(JoinResult::error(&member_id, E::UnknownMemberId));
                    }
                    if st.groups.len() >= self.cfg.groups_max {
                        tracing::warn!(
                            group = group_id,
                            max = self.cfg.groups_max,
                            "new group refused: too many groups"
                        );
                        return Answer::Now(JoinResult::error(&member_id, E::GroupMaxSizeReached));
                    }
                    st.groups.entry(group_id.to_string()).or_insert(Group {
                        kind: Kind::Classic(ClassicGroup::new(group_id)),
                        offsets: BTreeMap::new(),
                    })
                }
            };
            if let Kind::Consumer(c) = &group.kind {
                if !c.members.is_empty() {
                    return Answer::Now(JoinResult::error(
                        &member_id,
                        E::InconsistentGroupProtocol,
                    ));
                }
                tracing::info!(
                    group = group_id,
                    "empty consumer group converted to a classic group"
                );
                group.kind = Kind::Classic(ClassicGroup::new(group_id));
            }
            let Kind::Classic(g) = &mut group.kind else {
                return Answer::Now(JoinResult::error(&member_id, E::UnknownServerError));
            };
            g.join(req, &self.cfg, now, &mut records)
        };
        st.persist(&records);
        answer
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Answer<SyncResult> {
        if let Err(e) = self.check_group(group_id) {
            return Answer::Now(SyncResult::error(e));
        }
        let now = Instant::now();
        let mut st = lock(&self.state);
        let mut records = Vec::new();
        let answer = match st.groups.get_mut(group_id).map(|g| &mut g.kind) {
            Some(Kind::Classic(g)) => g.sync(
                member_id,
                instance_id,
                generation,
                protocol_type,
                protocol_name,
                assignments,
                &self.cfg,
                now,
                &mut records,
            ),
            _ => Answer::Now(SyncResult::error(ResponseError::UnknownMemberId)),
        };
        st.persist(&records);
        answer
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        if let Err(e) = self.check_group(group_id) {
            return e.code();
        }
        let mut st = lock(&self.state);
        match st.groups.get_mut(group_id).map(|g| &mut g.kind) {
            Some(Kind::Classic(g)) => {
                g.heartbeat(member_id, instance_id, generation, Instant::now())
            }
            _ => ResponseError::UnknownMemberId.code(),
        }
    }

    /// LeaveGroup: per-member error codes, or a group-level error.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, i16> {
        if let Err(e) = self.check_group(group_id) {
            return Err(e.code());
        }
        let now = Instant::now();
        let mut st = lock(&self.state);
        let mut records = Vec::new();
        let result = match st.groups.get_mut(group_id).map(|g| &mut g.kind) {
            Some(Kind::Classic(g)) => Ok(members
                .iter()
                .map(|(m, i)| g.leave(m, i.as_deref(), now, &self.cfg, &mut records))
                .collect()),
            _ => Err(ResponseError::UnknownMemberId.code()),
        };
        st.persist(&records);
        result
    }

    /// OffsetCommit: per topic, per partition error codes. The caller waits
    /// for durability (`wait_durable`) before answering.
    pub fn commit(
        &self,
        req: CommitRequest,
        topics: &TopicRegistry,
    ) -> Vec<(String, Vec<(i32, i16)>)> {
        use ResponseError as E;
        let all = |code: i16| -> PartitionErrors {
            req.topics
                .iter()
                .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (p.partition, code)).collect()))
                .collect()
        };
        if let Err(e) = self.check_group(&req.group_id) {
            return all(e.code());
        }
        let mut st = lock(&self.state);
        let group_error = match st.groups.get(&req.group_id) {
            None => {
                if st.groups.len() >= self.cfg.groups_max {
                    tracing::warn!(group = %req.group_id, max = self.cfg.groups_max, "new group refused: too many groups");
                    Some(E::GroupMaxSizeReached)
                } else if req.generation_or_epoch < 0 {
                    None
                } else {
                    Some(E::IllegalGeneration)
                }
            }
            Some(g) => match &g.kind {
                Kind::Classic(c) => c.validate_commit(
                    &req.member_id,
                    req.instance_id.as_deref(),
                    req.generation_or_epoch,
                ),
                Kind::Consumer(c) => {
                    if req.generation_or_epoch < 0 && c.members.is_empty() {
                        None
                    } else if !c.members.contains_key(&req.member_id) {
                        Some(E::UnknownMemberId)
                    } else if req.version < 9 {
                        // KIP-848 members commit with OffsetCommit v9+.
                        Some(E::UnsupportedVersion)
                    } else {
                        c.validate_member(&req.member_id, req.generation_or_epoch)
                    }
                }
            },
        };
        if let Some(e) = group_error {
            return all(e.code());
        }
        let now_ms = crate::now_ms();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(req.topics.len());
        let mut accepted: Vec<(String, i32, OffsetValue)> = Vec::new();
        for (topic, parts) in &req.topics {
            let count = topics.get(topic).map(|t| t.partition_count());
            let mut pr = Vec::with_capacity(parts.len());
            for p in parts {
                let metadata = p.metadata.clone().unwrap_or_default();
                let code = if count.is_none_or(|c| p.partition < 0 || p.partition >= c) {
                    E::UnknownTopicOrPartition.code()
                } else if metadata.len() > self.cfg.offset_metadata_bytes_max {
                    E::OffsetMetadataTooLarge.code()
                } else {
                    let v = OffsetValue {
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        commit_timestamp_ms: now_ms,
                        metadata,
                    };
                    records.push(Record::Offset {
                        group: req.group_id.clone(),
                        topic: topic.clone(),
                        partition: p.partition,
                        value: Some(v.clone()),
                    });
                    accepted.push((topic.clone(), p.partition, v));
                    0
                };
                pr.push((p.partition, code));
            }
            results.push((topic.clone(), pr));
        }
        if records.is_empty() {
            return results;
        }
        if let Err(e) = st.store.append(&records) {
            tracing::error!(error = %e, "offset commit not persisted");
            let code = crate::error::log_error_code(&e);
            for (_, pr) in results.iter_mut() {
                for (_, c) in pr.iter_mut() {
                    if *c == 0 {
                        *c = code;
                    }
                }
            }
            return results;
        }
        let group = st
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group {
                kind: Kind::Classic(ClassicGroup::new(&req.group_id)),
                offsets: BTreeMap::new(),
            });
        for (t, p, v) in accepted {
            group.offsets.entry(t).or_default().insert(p, v);
        }
        results
    }

    /// OffsetFetch for one group: group-level error, then per topic offsets.
    /// `topics` None: every committed offset of the group.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
        member: Option<(String, i32)>,
    ) -> (i16, Vec<(String, Vec<FetchedOffset>)>) {
        if let Err(e) = self.check_group(group_id)
            && e != ResponseError::InvalidGroupId
        {
            return (e.code(), Vec::new());
        }
        let st = lock(&self.state);
        let group = st.groups.get(group_id);
        if let Some((member_id, epoch)) = &member
            && let Some(Kind::Consumer(c)) = group.map(|g| &g.kind)
            && let Some(e) = c.validate_member(member_id, *epoch)
        {
            return (e.code(), Vec::new());
        }
        let missing = |p: i32| FetchedOffset {
            partition: p,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            error: 0,
        };
        let lookup = |t: &str, p: i32| -> FetchedOffset {
            match group.and_then(|g| g.offsets.get(t)).and_then(|m| m.get(&p)) {
                Some(v) => FetchedOffset {
                    partition: p,
                    offset: v.offset,
                    leader_epoch: v.leader_epoch,
                    metadata: v.metadata.clone(),
                    error: 0,
                },
                None => missing(p),
            }
        };
        let out = match topics {
            Some(ts) => ts
                .into_iter()
                .map(|(t, ps)| {
                    let offs = ps.iter().map(|p| lookup(&t, *p)).collect();
                    (t, offs)
                })
                .collect(),
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(t, ps)| (t.clone(), ps.keys().map(|p| lookup(t, *p)).collect()))
                        .collect()
                })
                .unwrap_or_default(),
        };
        (0, out)
    }

    /// OffsetDelete: group-level error, or per-partition errors.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
    ) -> Result<PartitionErrors, i16> {
        use ResponseError as E;
        if let Err(e) = self.check_group(group_id) {
            return Err(e.code());
        }
        let mut st = lock(&self.state);
        let Some(group) = st.groups.get_mut(group_id) else {
            return Err(E::GroupIdNotFound.code());
        };
        let subscribed: Option<std::collections::HashSet<String>> = match &group.kind {
            Kind::Classic(c) => {
                if c.is_empty() {
                    None
                } else if c.protocol_type.as_deref() == Some("consumer") {
                    c.subscribed_topics()
                } else {
                    return Err(E::NonEmptyGroup.code());
                }
            }
            Kind::Consumer(c) => {
                if c.members.is_empty() {
                    None
                } else {
                    Some(c.subscribed_topic_names().into_iter().collect())
                }
            }
        };
        let mut records = Vec::new();
        let mut out = Vec::new();
        for (t, ps) in topics {
            let busy = subscribed.as_ref().is_some_and(|s| s.contains(t));
            let mut pr = Vec::new();
            for p in ps {
                if busy {
                    pr.push((*p, E::GroupSubscribedToTopic.code()));
                    continue;
                }
                if let Some(m) = group.offsets.get_mut(t)
                    && m.remove(p).is_some()
                {
                    records.push(Record::Offset {
                        group: group_id.to_string(),
                        topic: t.clone(),
                        partition: *p,
                        value: None,
                    });
                }
                pr.push((*p, 0));
            }
            if group.offsets.get(t).is_some_and(|m| m.is_empty()) {
                group.offsets.remove(t);
            }
            out.push((t.clone(), pr));
        }
        st.persist(&records);
        Ok(out)
    }

    /// Drops every group's committed offsets of a deleted topic.
    pub fn delete_topic_offsets(&self, topic: &str) {
        let mut st = lock(&self.state);
        let mut records = Vec::new();
        for (id, g) in st.groups.iter_mut() {
            if let Some(parts) = g.offsets.remove(topic) {
                for p in parts.keys() {
                    records.push(Record::Offset {
                        group: id.clone(),
                        topic: topic.to_string(),
                        partition: *p,
                        value: None,
                    });
                }
            }
        }
        if !records.is_empty() {
            tracing::info!(
                topic,
                offsets = records.len(),
                "deleted committed offsets of a deleted topic"
            );
        }
        st.persist(&records);
    }

    pub fn delete_groups(&self, ids: &[String]) -> Vec<i16> {
        use ResponseError as E;
        let mut st = lock(&self.state);
        let mut records = Vec::new();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let code = match st.groups.get(id) {
                _ if self.check_group(id).is_err() => {
                    self.check_group(id).err().map(|e| e.code()).unwrap_or(0)
                }
                None => E::GroupIdNotFound.code(),
                Some(g) if g.has_members() => E::NonEmptyGroup.code(),
                Some(g) => {
                    for r in g.offset_records(id) {
                        if let Record::Offset {
                            group,
                            topic,
                            partition,
                            ..
                        } = r
                        {
                            records.push(Record::Offset {
                                group,
                                topic,
                                partition,
                                value: None,
                            });
                        }
                    }
                    records.push(Record::Group {
                        group: id.clone(),
                        value: None,
                    });
                    st.groups.remove(id);
                    tracing::info!(group = %id, "deleted group");
                    0
                }
            };
            out.push(code);
        }
        st.persist(&records);
        out
    }

    pub fn describe(&self, ids: &[String]) -> Vec<DescribedGroup> {
        let st = lock(&self.state);
        ids.iter()
            .map(|id| {
                let dead = DescribedGroup {
                    group_id: id.clone(),
                    state: "Dead".to_string(),
                    ..Default::default()
                };
                if let Err(e) = self.check_group(id)
                    && e != ResponseError::InvalidGroupId
                {
                    return DescribedGroup {
                        error: e.code(),
                        ..dead
                    };
                }
                match st.groups.get(id).map(|g| &g.kind) {
                    Some(Kind::Classic(g)) => {
                        let stable = g.state == ClassicState::Stable;
                        let protocol = g.protocol_name.clone().unwrap_or_default();
                        DescribedGroup {
                            error: 0,
                            group_id: id.clone(),
                            state: g.state.name().to_string(),
                            protocol_type: g.protocol_type.clone().unwrap_or_default(),
                            protocol_data: if stable {
                                protocol.clone()
                            } else {
                                String::new()
                            },
                            members: g
                                .members
                                .values()
                                .map(|m| DescribedMember {
                                    member_id: m.member_id.clone(),
                                    instance_id: m.instance_id.clone(),
                                    client_id: m.client_id.clone(),
                                    client_host: m.client_host.clone(),
                                    metadata: if stable {
                                        m.protocols
                                            .iter()
                                            .find(|(n, _)| *n == protocol)
                                            .map(|(_, b)| b.clone())
                                            .unwrap_or_default()
                                    } else {
                                        Bytes::new()
                                    },
                                    assignment: if stable {
                                        m.assignment.clone()
                                    } else {
                                        Bytes::new()
                                    },
                                })
                                .collect(),
                        }
                    }
                    // Not a classic group: DescribeGroups (v0-5) shows it as Dead.
                    _ => dead,
                }
            })
            .collect()
    }

    pub fn list(&self, states: &[String], types: &[String]) -> Vec<ListedGroup> {
        let st = lock(&self.state);
        let mut out: Vec<ListedGroup> = st
            .groups
            .iter()
            .filter(|(_, g)| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state_name()))
            })
            .filter(|(_, g)| {
                types.is_empty() || types.iter().any(|t| t.eq_ignore_ascii_case(g.type_name()))
            })
            .map(|(id, g)| ListedGroup {
                group_id: id.clone(),
                protocol_type: g.protocol_type(),
                state: g.state_name().to_string(),
                group_type: g.type_name().to_string(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        req: consumer::HeartbeatRequest,
        topics: &TopicRegistry,
    ) -> consumer::HeartbeatResult {
        use ResponseError as E;
        if let Err(e) = self.check_group(group_id) {
            return consumer::HeartbeatResult::error(
                e,
                "this broker does not coordinate the group now",
            );
        }
        let now = Instant::now();
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        let mut records = Vec::new();
        // This group's configs (KIP-848 group configs) over the broker's defaults.
        let cfg = match st.configs.get(group_id) {
            Some(o) => std::borrow::Cow::Owned(group_configs::apply(&self.cfg, o)),
            None => std::borrow::Cow::Borrowed(&self.cfg),
        };
        let at_capacity = st.groups.len() >= self.cfg.groups_max;
        let result = {
            let group = match st.groups.get_mut(group_id) {
                Some(g) => g,
                None if req.member_epoch == 0 && at_capacity => {
                    tracing::warn!(
                        group = group_id,
                        max = self.cfg.groups_max,
                        "new group refused: too many groups"
                    );
                    return consumer::HeartbeatResult::error(
                        E::GroupMaxSizeReached,
                        format!(
                            "the coordinator holds {} groups, its limit",
                            self.cfg.groups_max
                        ),
                    );
                }
                None if req.member_epoch == 0 => {
                    st.groups.entry(group_id.to_string()).or_insert(Group {
                        kind: Kind::Consumer(ConsumerGroup::new(group_id)),
                        offsets: BTreeMap::new(),
                    })
                }
                None => {
                    return consumer::HeartbeatResult::error(
                        E::UnknownMemberId,
                        format!("group {group_id} has no member {}", req.member_id),
                    );
                }
            };
            if let Kind::Classic(c) = &group.kind {
                if !c.is_empty() {
                    return consumer::HeartbeatResult::error(
                        E::GroupIdNotFound,
                        format!("group {group_id} is not a consumer group"),
                    );
                }
                tracing::info!(
                    group = group_id,
                    "empty classic group converted to a consumer group"
                );
                group.kind = Kind::Consumer(ConsumerGroup::new(group_id));
            }
            let Kind::Consumer(g) = &mut group.kind else {
                return consumer::HeartbeatResult::error(E::UnknownServerError, "unreachable");
            };
            g.heartbeat(req, topics, &cfg, now, &mut records)
        };
        st.persist(&records);
        result
    }

    /// One group's configs: (definition, effective value, overridden?). Any
    /// valid group id has them, existing or not (as in Kafka).
    pub fn group_configs(
        &self,
        group_id: &str,
    ) -> Vec<(&'static group_configs::GroupConfigDef, String, bool)> {
        let st = lock(&self.state);
        let overrides = st.configs.get(group_id);
        group_configs::GROUP_CONFIGS
            .iter()
            .map(|d| match overrides.and_then(|o| o.get(d.name)) {
                Some(v) => (d, v.clone(), true),
                None => (
                    d,
                    group_configs::broker_default(d.name, &self.cfg).unwrap_or_default(),
                    false,
                ),
            })
            .collect()
    }

    /// Changes one group's overrides with `edit` (validated as a whole; nothing
    /// is stored with `validate_only`). Takes effect at the members' next heartbeat.
    pub fn alter_group_configs(
        &self,
        group_id: &str,
        validate_only: bool,
        edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String>,
    ) -> Result<(), (ResponseError, String)> {
        if !valid_group_id(group_id) {
            return Err((
                ResponseError::InvalidGroupId,
                format!("invalid group id '{group_id}'"),
            ));
        }
        let mut st = lock(&self.state);
        let mut overrides = st.configs.get(group_id).cloned().unwrap_or_default();
        edit(&mut overrides).map_err(|m| (ResponseError::InvalidConfig, m))?;
        group_configs::validate(&overrides, &self.cfg)
            .map_err(|m| (ResponseError::InvalidConfig, m))?;
        if validate_only {
            return Ok(());
        }
        st.configs.set(group_id, overrides).map_err(|e| {
            tracing::error!(group = group_id, error = %e, "storing group configs failed");
            (ResponseError::KafkaStorageError, e.to_string())
        })
    }

    pub fn consumer_describe(
        &self,
        ids: &[String],
        topics: &TopicRegistry,
    ) -> Vec<DescribedConsumerGroup> {
        let st = lock(&self.state);
        let names: HashMap<uuid::Uuid, String> = topics
            .list()
            .iter()
            .map(|t| (t.id, t.name.clone()))
            .collect();
        let render = |a: &assignor::Assignment| -> Vec<(uuid::Uuid, String, Vec<i32>)> {
            a.iter()
                .map(|(t, ps)| {
                    (
                        *t,
                        names.get(t).cloned().unwrap_or_default(),
                        ps.iter().copied().collect(),
                    )
                })
                .collect()
        };
        ids.iter()
            .map(|id| match st.groups.get(id).map(|g| &g.kind) {
                Some(Kind::Consumer(g)) => DescribedConsumerGroup {
                    error: 0,
                    error_message: None,
                    group_id: id.clone(),
                    state: g.state_name().to_string(),
                    group_epoch: g.group_epoch,
                    assignment_epoch: g.assignment_epoch,
                    assignor: g.assignor.clone(),
                    members: g
                        .members
                        .values()
                        .map(|m| DescribedConsumerMember {
                            member_id: m.member_id.clone(),
                            instance_id: m.instance_id.clone(),
                            rack_id: m.rack_id.clone(),
                            member_epoch: m.epoch,
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            subscribed_topic_names: m.subscribed_names.clone(),
                            subscribed_topic_regex: m.regex.clone(),
                            assignment: render(&m.assigned),
                            target_assignment: render(
                                &g.target.get(&m.member_id).cloned().unwrap_or_default(),
                            ),
                        })
                        .collect(),
                },
                Some(Kind::Classic(_)) => DescribedConsumerGroup {
                    error: ResponseError::GroupIdNotFound.code(),
                    error_message: Some(format!("group {id} is not a consumer group")),
                    group_id: id.clone(),
                    ..Default::default()
                },
                None => DescribedConsumerGroup {
                    error: ResponseError::GroupIdNotFound.code(),
                    error_message: Some(format!("group {id} not found")),
                    group_id: id.clone(),
                    ..Default::default()
                },
            })
            .collect()
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
                        c.refresh(topics, &self.cfg);
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
mod tests {
    use super::*;
    use std::collections::BTreeMap as Map;

    fn config(dir: &std::path::Path) -> BrokerConfig {
        BrokerConfig {
            data_dir: dir.to_path_buf(),
            offsets_compact_bytes: 4096,
            ..BrokerConfig::default()
        }
    }

    fn join_req(member_id: &str) -> JoinRequest {
        JoinRequest {
            member_id: member_id.to_string(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
            require_known_member_id: false,
        }
    }

    #[tokio::test]
    async fn state_survives_compaction_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let topics = TopicRegistry::load(dir.path(), cfg.log.clone(), 100).unwrap();
        topics.create("t", 4, Map::new()).await.unwrap();
        {
            let groups = GroupCoordinator::open(&cfg).unwrap();
            for i in 0..300i64 {
                let res = groups.commit(
                    CommitRequest {
                        group_id: "g".into(),
                        generation_or_epoch: -1,
                        member_id: String::new(),
                        instance_id: None,
                        topics: vec![(
                            "t".into(),
                            vec![CommitPartition {
                                partition: (i % 4) as i32,
                                offset: i,
                                leader_epoch: 0,
                                metadata: Some(format!("m{i}")),
                            }],
                        )],
                        version: 8,
                    },
                    &topics,
                );
                assert_eq!(res[0].1[0].1, 0);
            }
            // An unknown partition and too much metadata are refused.
            let res = groups.commit(
                CommitRequest {
                    group_id: "g".into(),
                    generation_or_epoch: -1,
                    member_id: String::new(),
                    instance_id: None,
                    topics: vec![(
                        "t".into(),
                        vec![
                            CommitPartition {
                                partition: 9,
                                offset: 1,
                                leader_epoch: 0,
                                metadata: None,
                            },
                            CommitPartition {
                                partition: 0,
                                offset: 1,
                                leader_epoch: 0,
                                metadata: Some("x".repeat(5000)),
                            },
                        ],
                    )],
                    version: 8,
                },
                &topics,
            );
            assert_eq!(res[0].1[0].1, ResponseError::UnknownTopicOrPartition.code());
            assert_eq!(res[0].1[1].1, ResponseError::OffsetMetadataTooLarge.code());
            // A classic group with one member reaches Stable.
            let Answer::Later(rx) = groups.join("c", join_req("")) else {
                panic!("join should wait");
            };
            let j = rx.await.unwrap();
            assert_eq!(j.error, 0);
            assert_eq!(j.leader, j.member_id);
            let Answer::Later(rx) = groups.sync(
                "c",
                &j.member_id,
                None,
                j.generation,
                None,
                None,
                vec![(j.member_id.clone(), Bytes::from_static(b"assignment"))],
            ) else {
                panic!("sync should answer through the channel");
            };
            assert_eq!(&rx.await.unwrap().assignment[..], b"assignment");
            assert_eq!(
                groups.heartbeat("c", &j.member_id, None, j.generation + 1),
                22
            );
            let before = lock(&groups.state).store.size_bytes();
            groups.tick(&topics);
            let after = lock(&groups.state).store.size_bytes();
            assert!(after < before / 2, "compaction: {before} -> {after}");
            groups.wait_durable().await.unwrap();
            groups.close();
        }
        let groups = GroupCoordinator::open(&cfg).unwrap();
        let (err, offs) = groups.fetch_offsets("g", None, None);
        assert_eq!(err, 0);
        let got: Vec<(i32, i64, String)> = offs[0]
            .1
            .iter()
            .map(|o| (o.partition, o.offset, o.metadata.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 296, "m296".to_string()),
                (1, 297, "m297".to_string()),
                (2, 298, "m298".to_string()),
                (3, 299, "m299".to_string())
            ]
        );
        let d = &groups.describe(&["c".to_string()])[0];
        assert_eq!(d.state, "Stable");
        assert_eq!(d.members.len(), 1);
        assert_eq!(&d.members[0].assignment[..], b"assignment");
        let listed = groups.list(&[], &[]);
        assert_eq!(listed.len(), 2);
        // Deleting the topic drops its committed offsets.
        groups.delete_topic_offsets("t");
        assert!(groups.fetch_offsets("g", None, None).1.is_empty());
        // Deleting the non-empty group fails; the simple one goes with its offsets.
        assert_eq!(
            groups.delete_groups(&["c".into(), "g".into(), "nope".into()]),
            vec![
                ResponseError::NonEmptyGroup.code(),
                0,
                ResponseError::GroupIdNotFound.code()
            ]
        );
        assert!(groups.fetch_offsets("g", None, None).1.is_empty());
    }
}

#[cfg(test)]
mod group_config_tests {
    use super::*;

    fn heartbeat(groups: &GroupCoordinator, topics: &TopicRegistry) -> consumer::HeartbeatResult {
        groups.consumer_heartbeat(
            "g",
            consumer::HeartbeatRequest {
                member_id: "m1".into(),
                member_epoch: 0,
                instance_id: None,
                rack_id: None,
                rebalance_timeout_ms: 10_000,
                subscribed_topic_names: Some(vec!["t".into()]),
                subscribed_topic_regex: None,
                server_assignor: None,
                owned: Some(Default::default()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                version: 1,
            },
            topics,
        )
    }

    #[tokio::test]
    async fn group_config_overrides_reach_members_and_survive_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        };
        let topics = TopicRegistry::load(dir.path(), cfg.log.clone(), 100).unwrap();
        topics.create("t", 2, BTreeMap::new()).await.unwrap();
        {
            let groups = GroupCoordinator::open(&cfg).unwrap();
            let default_ms = cfg.group_consumer_heartbeat_interval.as_millis() as i32;
            assert_eq!(
                heartbeat(&groups, &topics).heartbeat_interval_ms,
                default_ms
            );
            // Out of range and unknown keys are refused, nothing stored.
            let bad = groups.alter_group_configs("g", false, |o| {
                o.insert("consumer.heartbeat.interval.ms".into(), "100".into());
                Ok(())
            });
            assert_eq!(bad.unwrap_err().0, ResponseError::InvalidConfig);
            let ok = groups.alter_group_configs("g", false, |o| {
                o.insert("consumer.heartbeat.interval.ms".into(), "7000".into());
                o.insert("consumer.session.timeout.ms".into(), "50000".into());
                Ok(())
            });
            assert!(ok.is_ok());
            let described = groups.group_configs("g");
            assert!(
                described
                    .iter()
                    .any(|(d, v, o)| d.name == "consumer.heartbeat.interval.ms"
                        && v == "7000"
                        && *o)
            );
        }
        let groups = GroupCoordinator::open(&cfg).unwrap();
        assert_eq!(heartbeat(&groups, &topics).heartbeat_interval_ms, 7000);
        // Another group keeps the broker defaults.
        assert!(
            groups
                .group_configs("other")
                .iter()
                .all(|(_, _, overridden)| !overridden)
        );
    }
}

#[cfg(test)]
mod groups_max_tests {
    use super::*;

    #[tokio::test]
    async fn a_new_group_beyond_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        };
        let topics = TopicRegistry::load(dir.path(), cfg.log.clone(), 100).unwrap();
        topics.create("t", 1, BTreeMap::new()).await.unwrap();
        let mut groups = GroupCoordinator::open(&cfg).unwrap();
        groups.cfg.groups_max = 2;
        let commit = |g: &GroupCoordinator, id: &str| {
            g.commit(
                CommitRequest {
                    group_id: id.into(),
                    generation_or_epoch: -1,
                    member_id: String::new(),
                    instance_id: None,
                    topics: vec![(
                        "t".into(),
                        vec![CommitPartition {
                            partition: 0,
                            offset: 1,
                            leader_epoch: -1,
                            metadata: None,
                        }],
                    )],
                    version: 8,
                },
                &topics,
            )[0]
            .1[0]
                .1
        };
        assert_eq!(commit(&groups, "a"), 0);
        assert_eq!(commit(&groups, "b"), 0);
        assert_eq!(
            commit(&groups, "c"),
            ResponseError::GroupMaxSizeReached.code()
        );
        assert_eq!(commit(&groups, "a"), 0, "existing groups still commit");
    }
}
