//! The group log's records: their kinds, and their keys and values byte by
//! byte (the format is in the header of `offset_store.rs` and in
//! docs/storage-format.md). Every count read is checked against the bytes
//! left and the `STORED_*_MAX` bounds before it is used.

const KEY_VERSION: u8 = 0;
const KIND_OFFSET: u8 = 1;
const KIND_GROUP: u8 = 2;
const KIND_CONSUMER_MEMBER: u8 = 3;
const KIND_CONSUMER_TARGET: u8 = 4;
const KIND_CONSUMER_TARGET_META: u8 = 5;
/// Most topics one stored assignment or subscription may name, and most
/// partitions of one topic in it (bounds decoding beyond the bytes present).
pub const STORED_TOPICS_MAX: usize = 100_000;
pub const STORED_PARTITIONS_MAX: usize = 1_000_000;
pub(super) const VALUE_VERSION: u8 = 0;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub commit_timestamp_ms: i64,
    pub metadata: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// 0 classic, 1 consumer (KIP-848).
    pub group_type: u8,
    pub protocol_type: String,
    pub generation: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<StoredMember>,
}

/// A KIP-848 assignment as stored: (topic id, partitions), topics in order.
pub type StoredAssignment = Vec<(uuid::Uuid, Vec<i32>)>;

/// A KIP-848 member's durable state (kind 3): enough for the member's next
/// heartbeat with its id and epoch to be accepted after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerMemberValue {
    pub member_epoch: i32,
    pub previous_epoch: i32,
    /// 0 stable, 1 unrevoked partitions, 2 unreleased partitions.
    pub state: u8,
    pub left_static: bool,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    pub regex: Option<String>,
    pub subscribed_names: Vec<String>,
    pub assigned: StoredAssignment,
    pub pending_revocation: StoredAssignment,
}

/// A KIP-848 group's target assignment metadata (kind 5): the epoch of the
/// target and the subscribed topics' metadata it was computed from (so a
/// restart does not take unchanged metadata for a change and bump the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerTargetMeta {
    pub assignment_epoch: i32,
    /// (topic name, topic id, partition count)
    pub topics: Vec<(String, uuid::Uuid, i32)>,
}

pub const GROUP_TYPE_CLASSIC: u8 = 0;
pub const GROUP_TYPE_CONSUMER: u8 = 1;

/// One logical change of group state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    Group {
        group: String,
        value: Option<GroupValue>,
    },
    /// A KIP-848 member; a tombstone when it leaves or is fenced.
    ConsumerMember {
        group: String,
        member_id: String,
        value: Option<ConsumerMemberValue>,
    },
    /// A KIP-848 member's target assignment; a tombstone when it leaves.
    ConsumerTarget {
        group: String,
        member_id: String,
        value: Option<StoredAssignment>,
    },
    ConsumerTargetMeta {
        group: String,
        value: Option<ConsumerTargetMeta>,
    },
}

fn write_assignment(w: &mut Writer, a: &StoredAssignment) {
    w.u32(a.len() as u32);
    for (t, ps) in a {
        w.0.extend_from_slice(t.as_bytes());
        w.u32(ps.len() as u32);
        for p in ps {
            w.i32(*p);
        }
    }
}

fn read_assignment(r: &mut Reader<'_>) -> Option<StoredAssignment> {
    let n = r.u32()? as usize;
    // A topic takes at least 20 bytes: a count beyond what is left is corrupt.
    if n > STORED_TOPICS_MAX || n > r.0.len() / 20 {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = r.uuid()?;
        let m = r.u32()? as usize;
        if m > STORED_PARTITIONS_MAX || m > r.0.len() / 4 {
            return None;
        }
        let mut ps = Vec::with_capacity(m);
        for _ in 0..m {
            ps.push(r.i32()?);
        }
        out.push((t, ps));
    }
    Some(out)
}

impl Record {
    /// The group a record belongs to.
    pub fn group(&self) -> &str {
        match self {
            Record::Offset { group, .. }
            | Record::Group { group, .. }
            | Record::ConsumerMember { group, .. }
            | Record::ConsumerTarget { group, .. }
            | Record::ConsumerTargetMeta { group, .. } => group,
        }
    }
}

pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    pub(crate) fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    pub(crate) fn opt_str(&mut self, v: Option<&str>) {
        match v {
            Some(s) => self.str(s),
            None => self.u32(u32::MAX),
        }
    }
}

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub(crate) fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn i64(&mut self) -> Option<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(i64::from_be_bytes(a))
    }
    pub(crate) fn uuid(&mut self) -> Option<uuid::Uuid> {
        let b = self.take(16)?;
        uuid::Uuid::from_slice(b).ok()
    }
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub(crate) fn str(&mut self) -> Option<String> {
        self.bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
    pub(crate) fn opt_str(&mut self) -> Option<Option<String>> {
        let n = self.u32()?;
        if n == u32::MAX {
            return Some(None);
        }
        let b = self.take(n as usize)?;
        Some(Some(String::from_utf8_lossy(b).into_owned()))
    }
}

impl Record {
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut k = Writer(Vec::with_capacity(64));
        k.u8(KEY_VERSION);
        match self {
            Record::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                k.u8(KIND_OFFSET);
                k.str(group);
                k.str(topic);
                k.i32(*partition);
                let v = value.as_ref().map(|v| {
                    let mut w = Writer(Vec::with_capacity(32 + v.metadata.len()));
                    w.u8(VALUE_VERSION);
                    w.i64(v.offset);
                    w.i32(v.leader_epoch);
                    w.i64(v.commit_timestamp_ms);
                    w.str(&v.metadata);
                    w.0
                });
                (k.0, v)
            }
            Record::Group { group, value } => {
                k.u8(KIND_GROUP);
                k.str(group);
                let v = value.as_ref().map(|g| {
                    let mut w = Writer(Vec::with_capacity(64));
                    w.u8(VALUE_VERSION);
                    w.u8(g.group_type);
                    w.str(&g.protocol_type);
                    w.i32(g.generation);
                    w.opt_str(g.protocol_name.as_deref());
                    w.opt_str(g.leader.as_deref());
                    w.i64(g.state_timestamp_ms);
                    w.u32(g.members.len() as u32);
                    for m in &g.members {
                        w.str(&m.member_id);
                        w.opt_str(m.instance_id.as_deref());
                        w.str(&m.client_id);
                        w.str(&m.client_host);
                        w.i32(m.session_timeout_ms);
                        w.i32(m.rebalance_timeout_ms);
                        w.bytes(&m.subscription);
                        w.bytes(&m.assignment);
                    }
                    w.0
                });
                (k.0, v)
            }
            Record::ConsumerMember {
                group,
                member_id,
                value,
            } => {
                k.u8(KIND_CONSUMER_MEMBER);
                k.str(group);
                k.str(member_id);
                let v = value.as_ref().map(|m| {
                    let mut w = Writer(Vec::with_capacity(128));
                    w.u8(VALUE_VERSION);
                    w.i32(m.member_epoch);
                    w.i32(m.previous_epoch);
                    w.u8(m.state);
                    w.u8(u8::from(m.left_static));
                    w.opt_str(m.instance_id.as_deref());
                    w.opt_str(m.rack_id.as_deref());
                    w.str(&m.client_id);
                    w.str(&m.client_host);
                    w.i32(m.rebalance_timeout_ms);
                    w.opt_str(m.server_assignor.as_deref());
                    w.opt_str(m.regex.as_deref());
                    w.u32(m.subscribed_names.len() as u32);
                    for n in &m.subscribed_names {
                        w.str(n);
                    }
                    write_assignment(&mut w, &m.assigned);
                    write_assignment(&mut w, &m.pending_revocation);
                    w.0
                });
                (k.0, v)
            }
            Record::ConsumerTarget {
                group,
                member_id,
                value,
            } => {
                k.u8(KIND_CONSUMER_TARGET);
                k.str(group);
                k.str(member_id);
                let v = value.as_ref().map(|a| {
                    let mut w = Writer(Vec::with_capacity(64));
                    w.u8(VALUE_VERSION);
                    write_assignment(&mut w, a);
                    w.0
                });
                (k.0, v)
            }
            Record::ConsumerTargetMeta { group, value } => {
                k.u8(KIND_CONSUMER_TARGET_META);
                k.str(group);
                let v = value.as_ref().map(|m| {
                    let mut w = Writer(Vec::with_capacity(64));
                    w.u8(VALUE_VERSION);
                    w.i32(m.assignment_epoch);
                    w.u32(m.topics.len() as u32);
                    for (name, id, n) in &m.topics {
                        w.str(name);
                        w.0.extend_from_slice(id.as_bytes());
                        w.i32(*n);
                    }
                    w.0
                });
                (k.0, v)
            }
        }
    }

    /// Decodes one record; None if it is not one Herald wrote (skipped on replay).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<Record> {
        let mut k = Reader(key);
        if k.u8()? != KEY_VERSION {
            return None;
        }
        match k.u8()? {
            KIND_OFFSET => {
                let group = k.str()?;
                let topic = k.str()?;
                let partition = k.i32()?;
                let value = match value {
                    None => None,
                    Some(v) => {
                        let mut r = Reader(v);
                        if r.u8()? != VALUE_VERSION {
                            return None;
                        }
                        Some(OffsetValue {
                            offset: r.i64()?,
                            leader_epoch: r.i32()?,
                            commit_timestamp_ms: r.i64()?,
                            metadata: r.str()?,
                        })
                    }
                };
                Some(Record::Offset {
                    group,
                    topic,
                    partition,
                    value,
                })
            }
            KIND_GROUP => {
                let group = k.str()?;
                let value = match value {
                    None => None,
                    Some(v) => {
                        let mut r = Reader(v);
                        if r.u8()? != VALUE_VERSION {
                            return None;
                        }
                        let group_type = r.u8()?;
                        let protocol_type = r.str()?;
                        let generation = r.i32()?;
                        let protocol_name = r.opt_str()?;
                        let leader = r.opt_str()?;
                        let state_timestamp_ms = r.i64()?;
                        let n = r.u32()? as usize;
                        // Each member takes at least 32 bytes: bound the allocation.
                        let mut members = Vec::with_capacity(n.min(r.0.len() / 32));
                        for _ in 0..n {
                            members.push(StoredMember {
                                member_id: r.str()?,
                                instance_id: r.opt_str()?,
                                client_id: r.str()?,
                                client_host: r.str()?,
                                session_timeout_ms: r.i32()?,
                                rebalance_timeout_ms: r.i32()?,
                                subscription: r.bytes()?.to_vec(),
                                assignment: r.bytes()?.to_vec(),
                            });
                        }
                        Some(GroupValue {
                            group_type,
                            protocol_type,
                            generation,
                            protocol_name,
                            leader,
                            state_timestamp_ms,
                            members,
                        })
                    }
                };
                Some(Record::Group { group, value })
            }
            KIND_CONSUMER_MEMBER => {
                let group = k.str()?;
                let member_id = k.str()?;
                let value = match value {
                    None => None,
                    Some(v) => {
                        let mut r = Reader(v);
                        if r.u8()? != VALUE_VERSION {
                            return None;
                        }
                        let member_epoch = r.i32()?;
                        let previous_epoch = r.i32()?;
                        let state = r.u8()?;
                        let flags = r.u8()?;
                        let instance_id = r.opt_str()?;
                        let rack_id = r.opt_str()?;
                        let client_id = r.str()?;
                        let client_host = r.str()?;
                        let rebalance_timeout_ms = r.i32()?;
                        let server_assignor = r.opt_str()?;
                        let regex = r.opt_str()?;
                        let n = r.u32()? as usize;
                        // A name takes at least 4 bytes.
                        if n > STORED_TOPICS_MAX || n > r.0.len() / 4 {
                            return None;
                        }
                        let mut subscribed_names = Vec::with_capacity(n);
                        for _ in 0..n {
                            subscribed_names.push(r.str()?);
                        }
                        let assigned = read_assignment(&mut r)?;
                        let pending_revocation = read_assignment(&mut r)?;
                        Some(ConsumerMemberValue {
                            member_epoch,
                            previous_epoch,
                            state,
                            left_static: flags & 1 != 0,
                            instance_id,
                            rack_id,
                            client_id,
                            client_host,
                            rebalance_timeout_ms,
                            server_assignor,
                            regex,
                            subscribed_names,
                            assigned,
                            pending_revocation,
                        })
                    }
                };
                Some(Record::ConsumerMember {
                    group,
                    member_id,
                    value,
                })
            }
            KIND_CONSUMER_TARGET => {
                let group = k.str()?;
                let member_id = k.str()?;
                let value = match value {
                    None => None,
                    Some(v) => {
                        let mut r = Reader(v);
                        if r.u8()? != VALUE_VERSION {
                            return None;
                        }
                        Some(read_assignment(&mut r)?)
                    }
                };
                Some(Record::ConsumerTarget {
                    group,
                    member_id,
                    value,
                })
            }
            KIND_CONSUMER_TARGET_META => {
                let group = k.str()?;
                let value = match value {
                    None => None,
                    Some(v) => {
                        let mut r = Reader(v);
                        if r.u8()? != VALUE_VERSION {
                            return None;
                        }
                        let assignment_epoch = r.i32()?;
                        let n = r.u32()? as usize;
                        // A topic takes at least 24 bytes.
                        if n > STORED_TOPICS_MAX || n > r.0.len() / 24 {
                            return None;
                        }
                        let mut topics = Vec::with_capacity(n);
                        for _ in 0..n {
                            topics.push((r.str()?, r.uuid()?, r.i32()?));
                        }
                        Some(ConsumerTargetMeta {
                            assignment_epoch,
                            topics,
                        })
                    }
                };
                Some(Record::ConsumerTargetMeta { group, value })
            }
            _ => None,
        }
    }
}
