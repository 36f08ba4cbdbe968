//! The classic group protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) as a
//! state machine: Empty -> PreparingRebalance -> CompletingRebalance -> Stable,
//! back to PreparingRebalance on any membership change. Dead groups are removed
//! from the coordinator's map rather than kept.
//!
//! Responses that must wait (a JoinGroup until the rebalance completes, a
//! follower's SyncGroup until the leader's assignment arrives) are oneshot
//! channels held by the member; the state machine answers them when it moves.
//! Nothing here blocks or does I/O: persistence goes out as `Record`s.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use super::GroupConfig;
use super::offset_store::{GROUP_TYPE_CLASSIC, GroupValue, Record, StoredMember};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl ClassicState {
    pub fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
        }
    }
}

/// An answer now, or a channel that will carry it.
pub enum Answer<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

#[derive(Debug, Clone, Default)]
pub struct JoinMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub members: Vec<JoinMember>,
}

impl JoinResult {
    pub fn error(member_id: &str, e: ResponseError) -> JoinResult {
        JoinResult {
            error: e.code(),
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(e: ResponseError) -> SyncResult {
        SyncResult {
            error: e.code(),
            ..Default::default()
        }
    }
}

pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
}

pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub join_waiter: Option<oneshot::Sender<JoinResult>>,
    pub sync_waiter: Option<oneshot::Sender<SyncResult>>,
    pub heartbeat_deadline: Instant,
    pub joined_seq: u64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
    fn answer_join(&mut self, r: JoinResult) {
        if let Some(tx) = self.join_waiter.take() {
            let _ = tx.send(r);
        }
    }
    fn answer_sync(&mut self, r: SyncResult) {
        if let Some(tx) = self.sync_waiter.take() {
            let _ = tx.send(r);
        }
    }
}

struct InitialDelay {
    delay: Duration,
    remaining: Duration,
    joined_during: bool,
}

pub struct ClassicGroup {
    pub id: String,
    pub state: ClassicState,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined; value: expiry.
    pub pending: HashMap<String, Instant>,
    /// group.instance.id -> member id.
    pub statics: HashMap<String, String>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pending_sync: HashSet<String>,
    rebalance_deadline: Option<Instant>,
    sync_deadline: Option<Instant>,
    initial_delay: Option<InitialDelay>,
    pub state_timestamp_ms: i64,
    join_seq: u64,
}

fn new_member_id(client_id: &str) -> String {
    // Kafka's format: client id, a dash, a UUID.
    let prefix: String = client_id.chars().take(128).collect();
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

impl ClassicGroup {
    pub fn new(id: &str) -> ClassicGroup {
        ClassicGroup {
            id: id.to_string(),
            state: ClassicState::Empty,
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            statics: HashMap::new(),
            pending_sync: HashSet::new(),
            rebalance_deadline: None,
            sync_deadline: None,
            initial_delay: None,
            state_timestamp_ms: crate::now_ms(),
            join_seq: 0,
        }
    }

    /// Rebuilds a group from its stored record: members come back as a Stable
    /// group whose sessions start now (clients that are still alive just go on
    /// heartbeating; the others expire).
    pub fn restore(id: &str, v: &GroupValue, now: Instant) -> ClassicGroup {
        let mut g = ClassicGroup::new(id);
        g.protocol_type = (!v.protocol_type.is_empty()).then(|| v.protocol_type.clone());
        g.generation = v.generation;
        g.protocol_name = v.protocol_name.clone();
        g.state_timestamp_ms = v.state_timestamp_ms;
        let protocol = v.protocol_name.clone().unwrap_or_default();
        for m in &v.members {
            let session = Duration::from_millis(m.session_timeout_ms.max(0) as u64);
            g.join_seq += 1;
            if let Some(i) = &m.instance_id {
                g.statics.insert(i.clone(), m.member_id.clone());
            }
            g.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout: session,
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocol_type: v.protocol_type.clone(),
                    protocols: vec![(protocol.clone(), Bytes::from(m.subscription.clone()))],
                    assignment: Bytes::from(m.assignment.clone()),
                    join_waiter: None,
                    sync_waiter: None,
                    heartbeat_deadline: now + session,
                    joined_seq: g.join_seq,
                },
            );
        }
        if !g.members.is_empty() && g.protocol_name.is_some() {
            g.state = ClassicState::Stable;
            g.leader = v
                .leader
                .clone()
                .filter(|l| g.members.contains_key(l))
                .or_else(|| g.members.keys().next().cloned());
        } else {
            g.members.clear();
            g.statics.clear();
        }
        g
    }

    /// The record that persists this group's metadata.
    pub fn record(&self) -> Record {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let stable = self.state == ClassicState::Stable;
        Record::Group {
            group: self.id.clone(),
            value: Some(GroupValue {
                group_type: GROUP_TYPE_CLASSIC,
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                generation: self.generation,
                protocol_name: self.protocol_name.clone(),
                leader: self.leader.clone(),
                state_timestamp_ms: self.state_timestamp_ms,
                members: if stable {
                    self.members
                        .values()
                        .map(|m| StoredMember {
                            member_id: m.member_id.clone(),
                            instance_id: m.instance_id.clone(),
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            session_timeout_ms: m.session_timeout.as_millis() as i32,
                            rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                            subscription: m.metadata_for(&protocol).to_vec(),
                            assignment: m.assignment.to_vec(),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    fn set_state(&mut self, s: ClassicState) {
        self.state = s;
        self.state_timestamp_ms = crate::now_ms();
    }

    /// Protocols every member supports, in the order of the first member's preference.
    fn candidate_protocols(&self, except: Option<&str>) -> Option<Vec<String>> {
        let mut it = self
            .members
            .values()
            .filter(|m| Some(m.member_id.as_str()) != except);
        let first = it.next()?;
        let mut c: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in it {
            c.retain(|n| m.protocols.iter().any(|(p, _)| p == n));
        }
        Some(c)
    }

    fn supports(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
        except: Option<&str>,
    ) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        match self.candidate_protocols(except) {
            None => true,
            Some(c) => {
                self.protocol_type.as_deref() == Some(protocol_type)
                    && protocols.iter().any(|(n, _)| c.contains(n))
            }
        }
    }

    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols(None)?;
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n))
                && let Some(v) = votes.iter_mut().find(|(c, _)| c == n)
            {
                v.1 += 1;
            }
        }
        let mut best: Option<(String, usize)> = None;
        for (c, n) in votes {
            if best.as_ref().is_none_or(|(_, b)| n > *b) {
                best = Some((c, n));
            }
        }
        best.map(|(c, _)| c)
    }

    fn static_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        match instance_id {
            Some(i) => self.statics.get(i).is_some_and(|m| m != member_id),
            None => false,
        }
    }

    fn current_join_result(&self, member_id: &str, leader_view: bool) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let protocol = self.protocol_name.clone().unwrap_or_default();
        JoinResult {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            member_id: member_id.to_string(),
            members: if leader_view && leader == member_id {
                self.members
                    .values()
                    .map(|m| JoinMember {
                        member_id: m.member_id.clone(),
                        instance_id: m.instance_id.clone(),
                        metadata: m.metadata_for(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            leader,
        }
    }

    pub fn join(
        &mut self,
        req: JoinRequest,
        cfg: &GroupConfig,
        now: Instant,
        records: &mut Vec<Record>,
    ) -> Answer<JoinResult> {
        use ResponseError as E;
        let err = |id: &str, e| Answer::Now(JoinResult::error(id, e));
        let was_pending = self.pending.contains_key(&req.member_id);
        let known_static = req
            .instance_id
            .as_ref()
            .is_some_and(|i| self.statics.contains_key(i));
        let is_new = (req.member_id.is_empty() && !known_static) || was_pending;
        // Pending (MEMBER_ID_REQUIRED) members count too, so they cannot pile up.
        let size = self.members.len() + self.pending.len() - usize::from(was_pending);
        if is_new && size >= cfg.members_per_group_max {
            return err(&req.member_id, E::GroupMaxSizeReached);
        }
        if req.member_id.is_empty() {
            if let Some(instance) = req.instance_id.clone() {
                if let Some(old) = self.statics.get(&instance).cloned()
                    && self.members.contains_key(&old)
                {
                    return self.replace_static(req, &old, cfg, now, records);
                }
                let id = new_member_id(&req.client_id);
                return self.add_member(id, req, cfg, now, records);
            }
            let id = new_member_id(&req.client_id);
            if req.require_known_member_id {
                self.pending.insert(id.clone(), now + req.session_timeout);
                return err(&id, E::MemberIdRequired);
            }
            return self.add_member(id, req, cfg, now, records);
        }
        if self.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return self.add_member(id, req, cfg, now, records);
        }
        if self.static_fenced(&req.member_id, req.instance_id.as_deref()) {
            return err(&req.member_id, E::FencedInstanceId);
        }
        if !self.members.contains_key(&req.member_id) {
            return err(&req.member_id, E::UnknownMemberId);
        }
        if !self.supports(&req.protocol_type, &req.protocols, Some(&req.member_id)) {
            return err(&req.member_id, E::InconsistentGroupProtocol);
        }
        // A known member rejoins.
        let id = req.member_id.clone();
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        let changed = self
            .members
            .get(&id)
            .is_some_and(|m| m.protocols != req.protocols);
        match self.state {
            ClassicState::Empty => err(&id, E::UnknownMemberId),
            ClassicState::PreparingRebalance => {
                let rx = self.update_member(&id, req, now);
                self.try_complete_join(now, cfg, false, records);
                Answer::Later(rx)
            }
            ClassicState::CompletingRebalance => {
                if !changed {
                    // The member lost the JoinGroup response: send it again.
                    return Answer::Now(self.current_join_result(&id, true));
                }
                let rx = self.update_member(&id, req, now);
                self.prepare_rebalance(now, cfg);
                self.try_complete_join(now, cfg, false, records);
                Answer::Later(rx)
            }
            ClassicState::Stable => {
                if !changed && !is_leader {
                    if let Some(m) = self.members.get_mut(&id) {
                        m.heartbeat_deadline = now + m.session_timeout;
                    }
                    return Answer::Now(self.current_join_result(&id, false));
                }
                let rx = self.update_member(&id, req, now);
                self.prepare_rebalance(now, cfg);
                self.try_complete_join(now, cfg, false, records);
                Answer::Later(rx)
            }
        }
    }

    fn update_member(
        &mut self,
        id: &str,
        req: JoinRequest,
        now: Instant,
    ) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = self.members.get_mut(id) {
            m.protocols = req.protocols;
            m.protocol_type = req.protocol_type;
            m.session_timeout = req.session_timeout;
            m.rebalance_timeout = req.rebalance_timeout;
            m.client_id = req.client_id;
            m.client_host = req.client_host;
            m.heartbeat_deadline = now + m.session_timeout;
            // A second JoinGroup replaces the first one's wait.
            m.answer_join(JoinResult::error(id, ResponseError::RebalanceInProgress));
            m.join_waiter = Some(tx);
        }
        if let Some(d) = self.initial_delay.as_mut() {
            d.joined_during = true;
        }
        rx
    }

    fn add_member(
        &mut self,
        id: String,
        req: JoinRequest,
        cfg: &GroupConfig,
        now: Instant,
        records: &mut Vec<Record>,
    ) -> Answer<JoinResult> {
        if !self.supports(&req.protocol_type, &req.protocols, None) {
            return Answer::Now(JoinResult::error(
                &id,
                ResponseError::InconsistentGroupProtocol,
            ));
        }
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        let (tx, rx) = oneshot::channel();
        self.join_seq += 1;
        if let Some(i) = &req.instance_id {
            self.statics.insert(i.clone(), id.clone());
        }
        self.members.insert(
            id.clone(),
            Member {
                member_id: id.clone(),
                instance_id: req.instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout: req.session_timeout,
                rebalance_timeout: req.rebalance_timeout,
                protocol_type: req.protocol_type,
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(tx),
                sync_waiter: None,
                heartbeat_deadline: now + req.session_timeout,
                joined_seq: self.join_seq,
            },
        );
        if self.leader.is_none() {
            self.leader = Some(id);
        }
        if let Some(d) = self.initial_delay.as_mut() {
            d.joined_during = true;
        }
        match self.state {
            ClassicState::PreparingRebalance => {}
            _ => self.prepare_rebalance(now, cfg),
        }
        self.try_complete_join(now, cfg, false, records);
        Answer::Later(rx)
    }

    /// KIP-345: a static member restarted (empty member id, known instance id).
    /// It takes over the old member's id and assignment; in a Stable group whose
    /// selected protocol does not change, without a rebalance.
    fn replace_static(
        &mut self,
        req: JoinRequest,
        old_id: &str,
        cfg: &GroupConfig,
        now: Instant,
        records: &mut Vec<Record>,
    ) -> Answer<JoinResult> {
        if !self.supports(&req.protocol_type, &req.protocols, Some(old_id)) {
            return Answer::Now(JoinResult::error(
                "",
                ResponseError::InconsistentGroupProtocol,
            ));
        }
        let new_id = new_member_id(&req.client_id);
        let Some(mut m) = self.members.remove(old_id) else {
            return Answer::Now(JoinResult::error("", ResponseError::UnknownMemberId));
        };
        m.answer_join(JoinResult::error(old_id, ResponseError::FencedInstanceId));
        m.answer_sync(SyncResult::error(ResponseError::FencedInstanceId));
        let old_protocols = std::mem::replace(&mut m.protocols, req.protocols);
        m.member_id = new_id.clone();
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.session_timeout = req.session_timeout;
        m.rebalance_timeout = req.rebalance_timeout;
        m.heartbeat_deadline = now + m.session_timeout;
        self.members.insert(new_id.clone(), m);
        if let Some(i) = &req.instance_id {
            self.statics.insert(i.clone(), new_id.clone());
        }
        let old_leader = self.leader.clone().unwrap_or_default();
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        match self.state {
            ClassicState::Stable if self.select_protocol() == self.protocol_name => {
                records.push(self.record());
                let mut r = self.current_join_result(&new_id, false);
                // The old leader id, so that the new member does not assign
                // (its SyncGroup would not be broadcast by a Stable group).
                r.leader = old_leader;
                tracing::info!(group = %self.id, old = old_id, new = %new_id, "static member rejoined without rebalance");
                Answer::Now(r)
            }
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                let _ = old_protocols;
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.join_waiter = Some(tx);
                }
                self.prepare_rebalance(now, cfg);
                self.try_complete_join(now, cfg, false, records);
                Answer::Later(rx)
            }
            ClassicState::PreparingRebalance | ClassicState::Empty => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&new_id) {
                    m.join_waiter = Some(tx);
                }
                self.try_complete_join(now, cfg, false, records);
                Answer::Later(rx)
            }
        }
    }

    fn prepare_rebalance(&mut self, now: Instant, cfg: &GroupConfig) {
        if self.state == ClassicState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                m.answer_sync(SyncResult::error(ResponseError::RebalanceInProgress));
            }
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO);
        if self.state == ClassicState::Empty && !cfg.initial_rebalance_delay.is_zero() {
            let delay = cfg.initial_rebalance_delay.min(timeout);
            self.initial_delay = Some(InitialDelay {
                delay,
                remaining: timeout.saturating_sub(delay),
                joined_during: false,
            });
            self.rebalance_deadline = Some(now + delay);
        } else {
            self.initial_delay = None;
            self.rebalance_deadline = Some(now + timeout);
        }
        self.set_state(ClassicState::PreparingRebalance);
        tracing::debug!(group = %self.id, generation = self.generation, "preparing rebalance");
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    fn try_complete_join(
        &mut self,
        now: Instant,
        cfg: &GroupConfig,
        deadline_passed: bool,
        records: &mut Vec<Record>,
    ) {
        if self.state != ClassicState::PreparingRebalance {
            return;
        }
        if let Some(d) = self.initial_delay.as_mut() {
            if !deadline_passed {
                return;
            }
            if d.joined_during && !d.remaining.is_zero() {
                let step = d.delay.min(d.remaining);
                d.remaining -= step;
                d.joined_during = false;
                self.rebalance_deadline = Some(now + step);
                return;
            }
            self.initial_delay = None;
        } else if !(deadline_passed || self.all_joined() || self.members.is_empty()) {
            return;
        }
        self.complete_join(now, cfg, records);
    }

    fn complete_join(&mut self, now: Instant, _cfg: &GroupConfig, records: &mut Vec<Record>) {
        // Members that did not rejoin in time are out.
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.drop_member(&id);
        }
        self.rebalance_deadline = None;
        self.generation = self.generation.wrapping_add(1).max(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.set_state(ClassicState::Empty);
            records.push(self.record());
            tracing::info!(group = %self.id, generation = self.generation, "group is empty");
            return;
        }
        self.protocol_name = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.member_id.clone());
        }
        self.set_state(ClassicState::CompletingRebalance);
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO);
        self.sync_deadline = Some(now + timeout);
        self.pending_sync = self.members.keys().cloned().collect();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let r = self.current_join_result(&id, true);
            if let Some(m) = self.members.get_mut(&id) {
                m.heartbeat_deadline = now + m.session_timeout;
                m.answer_join(r);
            }
        }
        tracing::info!(
            group = %self.id,
            generation = self.generation,
            members = self.members.len(),
            protocol = self.protocol_name.as_deref().unwrap_or(""),
            "rebalance: join complete"
        );
    }

    /// Removes a member without any state transition.
    fn drop_member(&mut self, id: &str) {
        if let Some(mut m) = self.members.remove(id) {
            m.answer_join(JoinResult::error(id, ResponseError::UnknownMemberId));
            m.answer_sync(SyncResult::error(ResponseError::UnknownMemberId));
            if let Some(i) = &m.instance_id
                && self.statics.get(i).is_some_and(|x| x == id)
            {
                self.statics.remove(i);
            }
        }
        self.pending_sync.remove(id);
        if self.leader.as_deref() == Some(id) {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.member_id.clone());
        }
    }

    /// Removes a member (leave or expiry) and rebalances the rest.
    pub fn remove_member(
        &mut self,
        id: &str,
        now: Instant,
        cfg: &GroupConfig,
        records: &mut Vec<Record>,
        why: &str,
    ) {
        tracing::info!(group = %self.id, member = id, reason = why, "member removed");
        self.drop_member(id);
        match self.state {
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                self.prepare_rebalance(now, cfg);
                self.try_complete_join(now, cfg, false, records);
            }
            ClassicState::PreparingRebalance => self.try_complete_join(now, cfg, false, records),
            ClassicState::Empty => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        cfg: &GroupConfig,
        now: Instant,
        records: &mut Vec<Record>,
    ) -> Answer<SyncResult> {
        use ResponseError as E;
        let err = |e| Answer::Now(SyncResult::error(e));
        if self.static_fenced(member_id, instance_id) {
            return err(E::FencedInstanceId);
        }
        if !self.members.contains_key(member_id) {
            return err(E::UnknownMemberId);
        }
        if generation != self.generation {
            return err(E::IllegalGeneration);
        }
        if protocol_type.is_some_and(|p| Some(p) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|p| Some(p) != self.protocol_name.as_deref())
        {
            return err(E::InconsistentGroupProtocol);
        }
        let ok = |g: &ClassicGroup, assignment: Bytes| SyncResult {
            error: 0,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            assignment,
        };
        match self.state {
            ClassicState::Empty => err(E::UnknownMemberId),
            ClassicState::PreparingRebalance => err(E::RebalanceInProgress),
            ClassicState::Stable => {
                self.pending_sync.remove(member_id);
                let Some(m) = self.members.get_mut(member_id) else {
                    return err(E::UnknownMemberId);
                };
                m.heartbeat_deadline = now + m.session_timeout;
                let a = m.assignment.clone();
                Answer::Now(ok(self, a))
            }
            ClassicState::CompletingRebalance => {
                let is_leader = self.leader.as_deref() == Some(member_id);
                if is_leader
                    && assignments
                        .iter()
                        .any(|(_, a)| a.len() > cfg.member_metadata_bytes_max)
                {
                    return err(E::InvalidRequest);
                }
                self.pending_sync.remove(member_id);
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(member_id) {
                    m.heartbeat_deadline = now + m.session_timeout;
                    m.answer_sync(SyncResult::error(E::RebalanceInProgress));
                    m.sync_waiter = Some(tx);
                }
                if is_leader {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.member_id).unwrap_or_default();
                    }
                    self.set_state(ClassicState::Stable);
                    records.push(self.record());
                    let (pt, pn) = (self.protocol_type.clone(), self.protocol_name.clone());
                    for m in self.members.values_mut() {
                        let r = SyncResult {
                            error: 0,
                            protocol_type: pt.clone(),
                            protocol_name: pn.clone(),
                            assignment: m.assignment.clone(),
                        };
                        m.answer_sync(r);
                    }
                    tracing::info!(group = %self.id, generation = self.generation, "rebalance: group stable");
                }
                Answer::Later(rx)
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        use ResponseError as E;
        if self.static_fenced(member_id, instance_id) {
            return E::FencedInstanceId.code();
        }
        let state = self.state;
        let current = self.generation;
        let Some(m) = self.members.get_mut(member_id) else {
            return E::UnknownMemberId.code();
        };
        if state == ClassicState::Empty {
            return E::UnknownMemberId.code();
        }
        if generation != current {
            return E::IllegalGeneration.code();
        }
        m.heartbeat_deadline = now + m.session_timeout;
        match state {
            ClassicState::PreparingRebalance => E::RebalanceInProgress.code(),
            _ => 0,
        }
    }

    /// LeaveGroup for one member identity; returns its error code.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
        cfg: &GroupConfig,
        records: &mut Vec<Record>,
    ) -> i16 {
        use ResponseError as E;
        let id = match instance_id {
            Some(i) => match self.statics.get(i) {
                None => return E::UnknownMemberId.code(),
                Some(m) if !member_id.is_empty() && m != member_id => {
                    return E::FencedInstanceId.code();
                }
                Some(m) => m.clone(),
            },
            None => member_id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            self.try_complete_join(now, cfg, false, records);
            return 0;
        }
        if !self.members.contains_key(&id) {
            return E::UnknownMemberId.code();
        }
        self.remove_member(&id, now, cfg, records, "left the group");
        0
    }

    /// Offset commit checks for a classic group; None if allowed.
    pub fn validate_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Option<ResponseError> {
        use ResponseError as E;
        if generation < 0 && self.state == ClassicState::Empty {
            return None;
        }
        if self.static_fenced(member_id, instance_id) {
            return Some(E::FencedInstanceId);
        }
        if !self.members.contains_key(member_id) {
            return Some(E::UnknownMemberId);
        }
        if generation != self.generation {
            return Some(E::IllegalGeneration);
        }
        if self.state == ClassicState::CompletingRebalance {
            return Some(E::RebalanceInProgress);
        }
        None
    }

    /// Timers: session expiry, pending-member expiry, rebalance and sync timeouts.
    pub fn tick(&mut self, now: Instant, cfg: &GroupConfig, records: &mut Vec<Record>) {
        let before = self.pending.len();
        self.pending.retain(|_, deadline| *deadline > now);
        if self.pending.len() != before {
            self.try_complete_join(now, cfg, false, records);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none() && m.sync_waiter.is_none() && m.heartbeat_deadline <= now
            })
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            self.remove_member(&id, now, cfg, records, "session timeout");
        }
        // A member whose JoinGroup connection closed will not read the answer:
        // drop it rather than hold the rebalance until its timeout.
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.as_ref().is_some_and(|w| w.is_closed()))
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id, now, cfg, records, "connection closed during JoinGroup");
        }
        for m in self.members.values_mut() {
            if m.sync_waiter.as_ref().is_some_and(|w| w.is_closed()) {
                m.sync_waiter = None;
            }
        }
        if self.state == ClassicState::PreparingRebalance
            && self.rebalance_deadline.is_some_and(|d| d <= now)
        {
            self.try_complete_join(now, cfg, true, records);
        }
        if matches!(
            self.state,
            ClassicState::CompletingRebalance | ClassicState::Stable
        ) && !self.pending_sync.is_empty()
            && self.sync_deadline.is_some_and(|d| d <= now)
        {
            let late: Vec<String> = self.pending_sync.iter().cloned().collect();
            for id in late {
                self.drop_member(&id);
                tracing::info!(group = %self.id, member = %id, "member removed: no SyncGroup within the rebalance timeout");
            }
            self.pending_sync.clear();
            self.prepare_rebalance(now, cfg);
            self.try_complete_join(now, cfg, false, records);
        }
    }

    /// Topics the members subscribe to (consumer protocol metadata), for OffsetDelete.
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") || self.members.is_empty() {
            return None;
        }
        let protocol = self.protocol_name.clone()?;
        let mut out = HashSet::new();
        for m in self.members.values() {
            let meta = m.metadata_for(&protocol);
            if let Some(topics) = parse_subscription_topics(&meta) {
                out.extend(topics);
            }
        }
        Some(out)
    }
}

/// Topic names of a ConsumerProtocolSubscription (version i16, then an array of
/// strings: the part every version shares).
pub fn parse_subscription_topics(meta: &[u8]) -> Option<Vec<String>> {
    let mut pos = 2usize;
    let n = i32::from_be_bytes(meta.get(pos..pos + 4)?.try_into().ok()?);
    pos += 4;
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        let len = i16::from_be_bytes(meta.get(pos..pos + 2)?.try_into().ok()?);
        pos += 2;
        let len = usize::try_from(len).ok()?;
        let s = meta.get(pos..pos + len)?;
        pos += len;
        out.push(String::from_utf8_lossy(s).into_owned());
    }
    Some(out)
}
