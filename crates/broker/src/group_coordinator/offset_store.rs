//! Durable group state: an internal log like Kafka's `__consumer_offsets`.
//!
//! ```text
//! <data>/__consumer_offsets/    one herald_log::PartitionLog (not a user topic)
//! ```
//!
//! Each record is a key/value pair in an uncompressed v2 record batch. Keys
//! identify what the value replaces (last write wins on replay); a record with a
//! null value is a tombstone. All integers are big endian; strings and byte
//! fields are a u32 length then the bytes; optional strings use length
//! 0xFFFF_FFFF for null.
//!
//! ```text
//! key   = u8 key version (0) | u8 kind | fields
//!   kind 1, committed offset: group str | topic str | partition i32
//!   kind 2, group metadata:   group str
//!   kind 3, KIP-848 member:   group str | member id str
//!   kind 4, KIP-848 member's target assignment: group str | member id str
//!   kind 5, KIP-848 target assignment metadata: group str
//! offset value = u8 version (0) | offset i64 | leader epoch i32 | commit ts i64 | metadata str
//! group value  = u8 version (0) | u8 type (0 classic, 1 consumer) | protocol type str
//!              | generation (or group epoch) i32 | protocol name opt str | leader opt str
//!              | state timestamp i64 | member count u32 | members...
//! member       = member id str | instance id opt str | client id str | client host str
//!              | session timeout ms i32 | rebalance timeout ms i32
//!              | subscription (selected protocol's metadata) bytes | assignment bytes
//! consumer member value = u8 version (0) | member epoch i32 | previous epoch i32
//!              | u8 state (0 stable, 1 unrevoked, 2 unreleased) | u8 flags (bit 0 left static)
//!              | instance id opt str | rack id opt str | client id str | client host str
//!              | rebalance timeout ms i32 | server assignor opt str | regex opt str
//!              | topic name count u32 | names str... | assigned | pending revocation
//! target value = u8 version (0) | assignment
//! target metadata value = u8 version (0) | assignment epoch i32
//!              | topic count u32 | (topic name str | topic id 16 bytes | partitions i32)...
//! assignment   = topic count u32 | (topic id 16 bytes | partition count u32 | i32...)...
//! ```
//!
//! Replay reads the whole log at start. The log is kept bounded by snapshots:
//! once it grows past a threshold, the live state is appended again as fresh
//! records (after a roll, so the old data sits in older segments) and, once that
//! is fsynced, everything before the snapshot is dropped with
//! `delete_records_before`. A crash in the middle leaves old records plus a
//! prefix of the snapshot, which replays to the same state.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use herald_log::batch::{self, BatchHeader, build};
use herald_log::{LogConfig, LogError};

use crate::partition::Partition;

/// Directory of the internal log under the data directory.
pub const OFFSETS_DIR: &str = "__consumer_offsets";
/// Largest record batch written (and accepted) in the internal log.
const BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Records are grouped into batches of about this size.
const BATCH_BYTES_TARGET: usize = 512 * 1024;

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
const VALUE_VERSION: u8 = 0;

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

/// Reads a zigzag varint; None if truncated or too long.
fn varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Some(((v >> 1) as i64) ^ -((v & 1) as i64));
        }
    }
    None
}

/// Splits an uncompressed v2 batch into (key, value) pairs.
/// A record's key and (None for a tombstone) value.
type KeyValue<'a> = (&'a [u8], Option<&'a [u8]>);

pub(crate) fn batch_records(b: &[u8]) -> Option<Vec<KeyValue<'_>>> {
    let h = BatchHeader::parse(b).ok()?;
    if h.compression() != 0 || h.records_count < 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut pos = batch::BATCH_HEADER_BYTES;
    for _ in 0..h.records_count {
        let len = varint(b, &mut pos)?;
        let end = pos.checked_add(usize::try_from(len).ok()?)?;
        if end > b.len() {
            return None;
        }
        let rec = &b[..end];
        if pos >= end {
            return None;
        }
        pos += 1; // attributes
        varint(rec, &mut pos)?; // timestamp delta
        varint(rec, &mut pos)?; // offset delta
        let klen = varint(rec, &mut pos)?;
        let key = if klen < 0 {
            &rec[pos..pos]
        } else {
            let kend = pos.checked_add(usize::try_from(klen).ok()?)?;
            let k = rec.get(pos..kend)?;
            pos = kend;
            k
        };
        let vlen = varint(rec, &mut pos)?;
        let value = if vlen < 0 {
            None
        } else {
            Some(rec.get(pos..pos.checked_add(usize::try_from(vlen).ok()?)?)?)
        };
        out.push((key, value));
        pos = end;
    }
    Some(out)
}

/// Batch framing and record header bytes per record of a snapshot, roughly
/// (varint lengths and deltas plus a share of the batch header).
const SNAPSHOT_RECORD_OVERHEAD_BYTES: u64 = 16;

/// The internal log plus the bookkeeping that keeps it bounded.
pub struct OffsetStore {
    log: Arc<Partition>,
    /// Compact when the log is larger than this...
    compact_bytes_min: u64,
    /// ...and more than twice the size of the last snapshot.
    last_snapshot_bytes: u64,
}

impl OffsetStore {
    /// Opens the log and replays it; returns the store and the records in log order.
    pub fn open(
        data_dir: &Path,
        compact_bytes_min: u64,
    ) -> anyhow::Result<(OffsetStore, Vec<Record>)> {
        let config = LogConfig {
            segment_bytes_max: 64 * 1024 * 1024,
            retention_age_max: None,
            retention_bytes_max: None,
            message_bytes_max: BATCH_BYTES_MAX,
            flush_messages: 1,
            ..LogConfig::default()
        };
        let log = Partition::open(
            &data_dir.join(OFFSETS_DIR),
            OFFSETS_DIR,
            0,
            config,
            None,
            None,
        )?;
        let mut records = Vec::new();
        let mut skipped = 0u64;
        // Bytes of the last value of every live key: what a snapshot written
        // now would take, the baseline of the next compaction (see below).
        let mut live_bytes: HashMap<Vec<u8>, u64> = HashMap::new();
        log.with_log(|l| {
            let mut pos = l.log_start_offset();
            let end = l.log_end_offset();
            while pos < end {
                let chunk = l.read(pos, 4 * 1024 * 1024)?;
                if chunk.is_empty() {
                    break;
                }
                let mut next = pos;
                for b in batch::split(&chunk)? {
                    let h = BatchHeader::parse(b)?;
                    next = h.next_offset();
                    if h.next_offset() <= pos {
                        continue;
                    }
                    match batch_records(b) {
                        Some(recs) => {
                            for (k, v) in recs {
                                match v {
                                    Some(v) => live_bytes.insert(
                                        k.to_vec(),
                                        (k.len() + v.len()) as u64 + SNAPSHOT_RECORD_OVERHEAD_BYTES,
                                    ),
                                    None => live_bytes.remove(k),
                                };
                                match Record::decode(k, v) {
                                    Some(r) => records.push(r),
                                    None => skipped += 1,
                                }
                            }
                        }
                        None => skipped += 1,
                    }
                }
                if next <= pos {
                    break;
                }
                pos = next;
            }
            Ok(())
        })?;
        if skipped > 0 {
            tracing::warn!(skipped, "group state log: skipped unreadable records");
        }
        let size = log.with_log(|l| Ok(l.size_bytes()))?;
        // Not `size`: then every restart would double the size the log must
        // reach before it is compacted, and a broker restarted more often than
        // its group log doubles would never compact it (the log and the replay
        // at start would grow without bound). The live state's size is what the
        // last compaction would have left.
        let live: u64 = live_bytes.values().sum();
        Ok((
            OffsetStore {
                log,
                compact_bytes_min,
                last_snapshot_bytes: live.min(size),
            },
            records,
        ))
    }

    pub fn partition(&self) -> Arc<Partition> {
        self.log.clone()
    }

    /// Appends records; returns the log end offset to wait for (durability).
    pub fn append(&self, records: &[Record]) -> Result<i64, LogError> {
        let now = crate::now_ms();
        let mut encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        let mut bytes = 0usize;
        let mut end = self.log.log_end_offset()?;
        for r in records {
            let (mut k, mut v) = r.encode();
            if v.as_ref()
                .is_some_and(|v| v.len() + k.len() > BATCH_BYTES_MAX - 1024)
                && let Record::Group {
                    group,
                    value: Some(g),
                } = r
            {
                // Too large to store with its members: keep the group itself
                // (members rejoin after a restart).
                tracing::warn!(group = %group, "group record too large; stored without members");
                let slim = Record::Group {
                    group: group.clone(),
                    value: Some(GroupValue {
                        members: Vec::new(),
                        ..g.clone()
                    }),
                };
                (k, v) = slim.encode();
            }
            bytes += k.len() + v.as_ref().map_or(0, |v| v.len()) + 16;
            encoded.push((k, v));
            if bytes >= BATCH_BYTES_TARGET {
                end = self.write_batch(&encoded, now)?;
                encoded.clear();
                bytes = 0;
            }
        }
        if !encoded.is_empty() {
            end = self.write_batch(&encoded, now)?;
        }
        Ok(end)
    }

    fn write_batch(&self, recs: &[(Vec<u8>, Option<Vec<u8>>)], now: i64) -> Result<i64, LogError> {
        let simple: Vec<build::SimpleRecord<'_>> = recs
            .iter()
            .map(|(k, v)| build::SimpleRecord {
                key: Some(k),
                value: v.as_deref(),
                timestamp_ms: now,
            })
            .collect();
        let b = build::batch(&simple, -1, -1, -1);
        let (info, _) = self.log.append(&b, now)?;
        Ok(info.last_offset + 1)
    }

    /// Waits until everything below `end_offset` is on disk.
    pub async fn wait_durable(log: &Partition, end_offset: i64) -> Result<(), LogError> {
        match tokio::time::timeout(Duration::from_secs(60), log.wait_durable(end_offset)).await {
            Ok(r) => r,
            Err(_) => Err(LogError::StorageUnavailable),
        }
    }

    pub fn needs_compaction(&self) -> bool {
        let size = self.log.with_log(|l| Ok(l.size_bytes())).unwrap_or(0);
        size > self.compact_bytes_min && size > 2 * self.last_snapshot_bytes
    }

    /// Rewrites the live state `snapshot` and drops everything before it.
    pub fn compact(&mut self, snapshot: &[Record]) -> Result<(), LogError> {
        let before = self.log.with_log(|l| Ok(l.size_bytes()))?;
        let start = self.log.with_log(|l| {
            l.roll()?;
            Ok(l.log_end_offset())
        })?;
        self.append(snapshot)?;
        let after = self.log.with_log(|l| {
            l.flush()?;
            l.delete_records_before(start)?;
            Ok(l.size_bytes())
        })?;
        self.last_snapshot_bytes = after;
        tracing::info!(
            before_bytes = before,
            after_bytes = after,
            records = snapshot.len(),
            "compacted group state log"
        );
        Ok(())
    }

    pub fn size_bytes(&self) -> u64 {
        self.log.with_log(|l| Ok(l.size_bytes())).unwrap_or(0)
    }

    pub fn close(&self) {
        if let Err(e) = self.log.close() {
            tracing::error!(error = %e, "closing group state log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let recs = vec![
            Record::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: Some(OffsetValue {
                    offset: 42,
                    leader_epoch: -1,
                    commit_timestamp_ms: 7,
                    metadata: "meta".into(),
                }),
            },
            Record::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: None,
            },
            Record::Group {
                group: "g".into(),
                value: Some(GroupValue {
                    group_type: GROUP_TYPE_CLASSIC,
                    protocol_type: "consumer".into(),
                    generation: 5,
                    protocol_name: Some("range".into()),
                    leader: None,
                    state_timestamp_ms: 9,
                    members: vec![StoredMember {
                        member_id: "m".into(),
                        instance_id: Some("i".into()),
                        client_id: "c".into(),
                        client_host: "/127.0.0.1".into(),
                        session_timeout_ms: 10,
                        rebalance_timeout_ms: 20,
                        subscription: vec![1, 2],
                        assignment: vec![],
                    }],
                }),
            },
        ];
        let mut recs = recs;
        recs.extend(kip848_records());
        for r in &recs {
            let (k, v) = r.encode();
            assert_eq!(Record::decode(&k, v.as_deref()).as_ref(), Some(r));
            // Truncations never panic.
            for n in 0..k.len() {
                let _ = Record::decode(&k[..n], v.as_deref());
            }
            if let Some(v) = &v {
                for n in 0..v.len() {
                    let _ = Record::decode(&k, Some(&v[..n]));
                }
            }
        }
    }

    fn kip848_records() -> Vec<Record> {
        let t = uuid::Uuid::from_u128(0x1234);
        vec![
            Record::ConsumerMember {
                group: "g".into(),
                member_id: "m".into(),
                value: Some(ConsumerMemberValue {
                    member_epoch: 7,
                    previous_epoch: 6,
                    state: 1,
                    left_static: true,
                    instance_id: Some("i".into()),
                    rack_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    server_assignor: Some("uniform".into()),
                    regex: None,
                    subscribed_names: vec!["a".into(), "b".into()],
                    assigned: vec![(t, vec![0, 2])],
                    pending_revocation: vec![(t, vec![1])],
                }),
            },
            Record::ConsumerMember {
                group: "g".into(),
                member_id: "m".into(),
                value: None,
            },
            Record::ConsumerTarget {
                group: "g".into(),
                member_id: "m".into(),
                value: Some(vec![(t, vec![0, 1, 2])]),
            },
            Record::ConsumerTarget {
                group: "g".into(),
                member_id: "m".into(),
                value: None,
            },
            Record::ConsumerTargetMeta {
                group: "g".into(),
                value: Some(ConsumerTargetMeta {
                    assignment_epoch: 7,
                    topics: vec![("a".into(), t, 3)],
                }),
            },
            Record::ConsumerTargetMeta {
                group: "g".into(),
                value: None,
            },
        ]
    }

    /// Counts beyond the bytes present are refused before any allocation.
    #[test]
    fn kip848_counts_are_bounded() {
        let (k, _) = Record::ConsumerTarget {
            group: "g".into(),
            member_id: "m".into(),
            value: None,
        }
        .encode();
        let mut v = vec![VALUE_VERSION];
        v.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Record::decode(&k, Some(&v)), None);
        let mut v = vec![VALUE_VERSION];
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend_from_slice(&[0u8; 16]);
        v.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Record::decode(&k, Some(&v)), None);
        let (k, _) = Record::ConsumerTargetMeta {
            group: "g".into(),
            value: None,
        }
        .encode();
        let mut v = vec![VALUE_VERSION];
        v.extend_from_slice(&1i32.to_be_bytes());
        v.extend_from_slice(&1_000_000u32.to_be_bytes());
        assert_eq!(Record::decode(&k, Some(&v)), None);
        // An unknown value version is skipped, not misread.
        let (k, v) = kip848_records()[0].encode();
        let mut v = v.unwrap();
        v[0] = 1;
        assert_eq!(Record::decode(&k, Some(&v)), None);
    }

    /// The fuzz seed `kip848-member-target-meta` was written by hand (in
    /// Python) from docs/storage-format.md: the docs and the code agree.
    #[test]
    fn kip848_records_decode_as_documented() {
        let seed = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../fuzz/corpus/group_log/kip848-member-target-meta"),
        )
        .unwrap();
        let mut rest = &seed[1..];
        let mut recs = Vec::new();
        while rest.len() >= 2 {
            let (kl, vl) = (rest[0] as usize, rest[1] as usize);
            rest = &rest[2..];
            let k = &rest[..kl];
            rest = &rest[kl..];
            let v = (vl != 255).then(|| &rest[..vl]);
            rest = &rest[if vl == 255 { 0 } else { vl }..];
            recs.push(Record::decode(k, v).expect("decodes"));
        }
        assert_eq!(recs.len(), 7);
        let t = uuid::Uuid::from_bytes(std::array::from_fn(|i| i as u8));
        assert_eq!(
            recs[1],
            Record::ConsumerMember {
                group: "g".into(),
                member_id: "m1".into(),
                value: Some(ConsumerMemberValue {
                    member_epoch: 3,
                    previous_epoch: 2,
                    state: 1,
                    left_static: false,
                    instance_id: None,
                    rack_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 30_000,
                    server_assignor: None,
                    regex: None,
                    subscribed_names: vec!["t".into()],
                    assigned: vec![(t, vec![0, 1])],
                    pending_revocation: vec![(t, vec![2])],
                }),
            }
        );
        assert_eq!(
            recs[3],
            Record::ConsumerTargetMeta {
                group: "g".into(),
                value: Some(ConsumerTargetMeta {
                    assignment_epoch: 3,
                    topics: vec![("t".into(), t, 3)],
                }),
            }
        );
        for r in &recs {
            let (k, v) = r.encode();
            assert_eq!(Record::decode(&k, v.as_deref()).as_ref(), Some(r));
        }
    }

    fn offset(group: &str, p: i32, o: i64) -> Record {
        Record::Offset {
            group: group.into(),
            topic: "t".into(),
            partition: p,
            value: Some(OffsetValue {
                offset: o,
                leader_epoch: 0,
                commit_timestamp_ms: 0,
                metadata: String::new(),
            }),
        }
    }

    #[tokio::test]
    async fn replays_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut store, recs) = OffsetStore::open(dir.path(), 4096).unwrap();
            assert!(recs.is_empty());
            for i in 0..200 {
                let end = store.append(&[offset("g", i % 4, i as i64)]).unwrap();
                OffsetStore::wait_durable(&store.partition(), end)
                    .await
                    .unwrap();
            }
            assert!(store.needs_compaction());
            let live: Vec<Record> = (196..200).map(|i| offset("g", i % 4, i as i64)).collect();
            store.compact(&live).unwrap();
            assert!(store.size_bytes() < 4096);
            assert!(!store.needs_compaction());
            store.append(&[offset("g", 0, 1000)]).unwrap();
            store.close();
        }
        let (_store, recs) = OffsetStore::open(dir.path(), 4096).unwrap();
        assert_eq!(recs.len(), 5);
        assert_eq!(recs[4], offset("g", 0, 1000));
    }

    /// Regression (crash torture): the compaction baseline after a restart was
    /// the log's whole size, so a broker restarted before its group log doubled
    /// never compacted it. Overwrites of four keys reopened many times must
    /// still get compacted once past the threshold.
    #[tokio::test]
    async fn a_restart_does_not_postpone_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut i = 0i64;
        for _restart in 0..20 {
            let (store, _) = OffsetStore::open(dir.path(), 4096).unwrap();
            for _ in 0..10 {
                let end = store.append(&[offset("g", (i % 4) as i32, i)]).unwrap();
                OffsetStore::wait_durable(&store.partition(), end)
                    .await
                    .unwrap();
                i += 1;
            }
            if store.size_bytes() > 4096 {
                // Four live offsets: far less than half of the log.
                assert!(
                    store.needs_compaction(),
                    "{} bytes after {i} commits and a restart, not compacted",
                    store.size_bytes()
                );
                return;
            }
            store.close();
        }
        panic!("the log never grew past 4096 bytes");
    }

    /// The baseline after a restart is the live state: a log that is mostly
    /// live keys is not rewritten at every start.
    #[tokio::test]
    async fn a_log_of_live_keys_is_not_compacted_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, _) = OffsetStore::open(dir.path(), 4096).unwrap();
            for chunk in 0..10 {
                let live: Vec<Record> = (0..20).map(|p| offset("g", chunk * 20 + p, 1)).collect();
                let end = store.append(&live).unwrap();
                OffsetStore::wait_durable(&store.partition(), end)
                    .await
                    .unwrap();
            }
            assert!(store.size_bytes() > 4096);
            store.close();
        }
        let (store, recs) = OffsetStore::open(dir.path(), 4096).unwrap();
        assert_eq!(recs.len(), 200);
        assert!(!store.needs_compaction());
    }
}
