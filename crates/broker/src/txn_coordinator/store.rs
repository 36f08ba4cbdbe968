//! Durable transaction state: an internal log like Kafka's `__transaction_state`.
//!
//! ```text
//! <data>/__transaction_state/    one herald_log::PartitionLog (not a user topic)
//! ```
//!
//! One record per change of a transactional id, last write wins on replay; a
//! record with a null value (tombstone) forgets the id (expiry). Integers are
//! big endian; strings are a u32 length then UTF-8 bytes (the encoding of
//! `group_coordinator/offset_store.rs`).
//!
//! ```text
//! key   = u8 key version (0) | transactional id str
//! value = u8 version (0) | producer id i64 | producer epoch i16 (as i32)
//!       | timeout ms i32 | state u8 | start ms i64 | last update ms i64
//!       | u32 partition count, (topic str | partition i32)...
//!       | u32 group count, group str...
//!       | u32 offset count, (group str | topic str | partition i32 | offset i64
//!                            | leader epoch i32 | commit ts i64 | metadata str)...
//! state = 0 Empty, 1 Ongoing, 2 PrepareCommit, 3 PrepareAbort,
//!         4 CompleteCommit, 5 CompleteAbort, 6 Dead, 7 PrepareEpochFence
//! ```
//!
//! The offsets of a transaction (TxnOffsetCommit) live here until it ends: a
//! commit decided (PrepareCommit durable) before a crash still commits them
//! after it, as Kafka's transactional offset records in `__consumer_offsets` do.
//!
//! Replay reads the whole log at start. The log is kept bounded as the group
//! state log is: past a threshold the live state is appended again after a
//! roll and, once fsynced, everything before it is dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use herald_log::batch::{self, BatchHeader, build};
use herald_log::{LogConfig, LogError};

use super::TxnState;
use crate::group_coordinator::offset_store::{OffsetValue, Reader, Writer, batch_records};
use crate::partition::Partition;

/// Directory of the internal log under the data directory.
pub const TXN_DIR: &str = "__transaction_state";
/// Largest record batch written (and accepted) in the log.
const BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;
const KEY_VERSION: u8 = 0;
const VALUE_VERSION: u8 = 0;
/// Compact when the log is larger than this and twice the last snapshot.
const COMPACT_BYTES_MIN: u64 = 16 * 1024 * 1024;

/// A transactional id's persisted state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// When the open transaction began, -1 if none.
    pub start_ms: i64,
    pub update_ms: i64,
    pub partitions: BTreeSet<(String, i32)>,
    /// Groups added with AddOffsetsToTxn.
    pub groups: BTreeSet<String>,
    /// TxnOffsetCommit's offsets: (group, topic, partition) -> offset.
    pub offsets: BTreeMap<(String, String, i32), OffsetValue>,
}

impl TxnMeta {
    pub fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMeta {
        TxnMeta {
            producer_id,
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            start_ms: -1,
            update_ms: now_ms,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            offsets: BTreeMap::new(),
        }
    }
}

pub(crate) fn state_code(s: TxnState) -> u8 {
    match s {
        TxnState::Empty => 0,
        TxnState::Ongoing => 1,
        TxnState::PrepareCommit => 2,
        TxnState::PrepareAbort => 3,
        TxnState::CompleteCommit => 4,
        TxnState::CompleteAbort => 5,
        TxnState::Dead => 6,
        TxnState::PrepareEpochFence => 7,
    }
}

fn state_of(code: u8) -> Option<TxnState> {
    Some(match code {
        0 => TxnState::Empty,
        1 => TxnState::Ongoing,
        2 => TxnState::PrepareCommit,
        3 => TxnState::PrepareAbort,
        4 => TxnState::CompleteCommit,
        5 => TxnState::CompleteAbort,
        6 => TxnState::Dead,
        7 => TxnState::PrepareEpochFence,
        _ => return None,
    })
}

pub fn encode(id: &str, meta: Option<&TxnMeta>) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut k = Writer(Vec::with_capacity(8 + id.len()));
    k.u8(KEY_VERSION);
    k.str(id);
    let v = meta.map(|m| {
        let mut w = Writer(Vec::with_capacity(64));
        w.u8(VALUE_VERSION);
        w.i64(m.producer_id);
        w.i32(m.producer_epoch as i32);
        w.i32(m.timeout_ms);
        w.u8(state_code(m.state));
        w.i64(m.start_ms);
        w.i64(m.update_ms);
        w.u32(m.partitions.len() as u32);
        for (t, p) in &m.partitions {
            w.str(t);
            w.i32(*p);
        }
        w.u32(m.groups.len() as u32);
        for g in &m.groups {
            w.str(g);
        }
        w.u32(m.offsets.len() as u32);
        for ((g, t, p), o) in &m.offsets {
            w.str(g);
            w.str(t);
            w.i32(*p);
            w.i64(o.offset);
            w.i32(o.leader_epoch);
            w.i64(o.commit_timestamp_ms);
            w.str(&o.metadata);
        }
        w.0
    });
    (k.0, v)
}

/// (transactional id, state or None for a tombstone); None if unreadable.
/// Counts read from disk are checked against the bytes left before use.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<(String, Option<TxnMeta>)> {
    let mut k = Reader(key);
    if k.u8()? != KEY_VERSION {
        return None;
    }
    let id = k.str()?;
    let Some(value) = value else {
        return Some((id, None));
    };
    let mut r = Reader(value);
    if r.u8()? != VALUE_VERSION {
        return None;
    }
    let producer_id = r.i64()?;
    let producer_epoch = i16::try_from(r.i32()?).ok()?;
    let timeout_ms = r.i32()?;
    let state = state_of(r.u8()?)?;
    let start_ms = r.i64()?;
    let update_ms = r.i64()?;
    let mut partitions = BTreeSet::new();
    let n = r.u32()? as usize;
    if n > value.len() / 8 {
        return None;
    }
    for _ in 0..n {
        let t = r.str()?;
        partitions.insert((t, r.i32()?));
    }
    let mut groups = BTreeSet::new();
    let n = r.u32()? as usize;
    if n > value.len() / 4 {
        return None;
    }
    for _ in 0..n {
        groups.insert(r.str()?);
    }
    let mut offsets = BTreeMap::new();
    let n = r.u32()? as usize;
    if n > value.len() / 40 {
        return None;
    }
    for _ in 0..n {
        let g = r.str()?;
        let t = r.str()?;
        let p = r.i32()?;
        let v = OffsetValue {
            offset: r.i64()?,
            leader_epoch: r.i32()?,
            commit_timestamp_ms: r.i64()?,
            metadata: r.str()?,
        };
        offsets.insert((g, t, p), v);
    }
    Some((
        id,
        Some(TxnMeta {
            producer_id,
            producer_epoch,
            timeout_ms,
            state,
            start_ms,
            update_ms,
            partitions,
            groups,
            offsets,
        }),
    ))
}

/// The internal log of transaction state.
pub struct TxnStore {
    log: Arc<Partition>,
    last_snapshot_bytes: u64,
}

impl TxnStore {
    /// Opens the log and replays it: the live state of every transactional id.
    pub fn open(data_dir: &Path) -> anyhow::Result<(TxnStore, HashMap<String, TxnMeta>)> {
        let config = LogConfig {
            segment_bytes_max: 64 * 1024 * 1024,
            retention_age_max: None,
            retention_bytes_max: None,
            message_bytes_max: BATCH_BYTES_MAX,
            flush_messages: 1,
            ..LogConfig::default()
        };
        let log = Partition::open(&data_dir.join(TXN_DIR), TXN_DIR, 0, config, None, None)?;
        let mut live: HashMap<String, TxnMeta> = HashMap::new();
        let mut skipped = 0u64;
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
                    let Some(recs) = batch_records(b) else {
                        skipped += 1;
                        continue;
                    };
                    for (k, v) in recs {
                        match decode(k, v) {
                            Some((id, Some(m))) => {
                                live.insert(id, m);
                            }
                            Some((id, None)) => {
                                live.remove(&id);
                            }
                            None => skipped += 1,
                        }
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
            tracing::warn!(skipped, "transaction state log: skipped unreadable records");
        }
        let size = log.with_log(|l| Ok(l.size_bytes()))?;
        Ok((
            TxnStore {
                log,
                last_snapshot_bytes: size,
            },
            live,
        ))
    }

    /// Appends one transactional id's new state; returns the offset to wait
    /// for (`wait_durable`). Called in the order the changes were decided.
    pub fn append(&self, id: &str, meta: Option<&TxnMeta>) -> Result<i64, LogError> {
        let (k, v) = encode(id, meta);
        if k.len() + v.as_ref().map_or(0, |v| v.len()) > BATCH_BYTES_MAX - 1024 {
            return Err(LogError::MessageTooLarge {
                bytes: k.len() + v.as_ref().map_or(0, |v| v.len()),
                max: BATCH_BYTES_MAX - 1024,
            });
        }
        let now = crate::now_ms();
        let rec = [build::SimpleRecord {
            key: Some(&k),
            value: v.as_deref(),
            timestamp_ms: now,
        }];
        let b = build::batch(&rec, -1, -1, -1);
        let (info, _) = self.log.append(&b, now)?;
        Ok(info.last_offset + 1)
    }

    /// Resolves once everything below `end_offset` is on disk.
    pub async fn wait_durable(log: Arc<Partition>, end_offset: i64) -> Result<(), LogError> {
        crate::group_coordinator::offset_store::OffsetStore::wait_durable(&log, end_offset).await
    }

    pub fn partition(&self) -> Arc<Partition> {
        self.log.clone()
    }

    pub fn needs_compaction(&self) -> bool {
        let size = self.log.with_log(|l| Ok(l.size_bytes())).unwrap_or(0);
        size > COMPACT_BYTES_MIN && size > 2 * self.last_snapshot_bytes
    }

    /// Rewrites the live state and drops everything before it.
    pub fn compact(&mut self, live: &[(String, TxnMeta)]) -> Result<(), LogError> {
        let before = self.log.with_log(|l| Ok(l.size_bytes()))?;
        let start = self.log.with_log(|l| {
            l.roll()?;
            Ok(l.log_end_offset())
        })?;
        for (id, m) in live {
            self.append(id, Some(m))?;
        }
        let after = self.log.with_log(|l| {
            l.flush()?;
            l.delete_records_before(start)?;
            Ok(l.size_bytes())
        })?;
        self.last_snapshot_bytes = after;
        tracing::info!(
            before_bytes = before,
            after_bytes = after,
            ids = live.len(),
            "compacted transaction state log"
        );
        Ok(())
    }

    pub fn close(&self) {
        if let Err(e) = self.log.close() {
            tracing::error!(error = %e, "closing transaction state log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_truncations_never_panic() {
        let mut m = TxnMeta::new(7, 60_000, 5);
        m.producer_epoch = 3;
        m.state = TxnState::PrepareCommit;
        m.start_ms = 4;
        m.partitions.insert(("orders".into(), 2));
        m.groups.insert("g".into());
        m.offsets.insert(
            ("g".into(), "in".into(), 0),
            OffsetValue {
                offset: 10,
                leader_epoch: -1,
                commit_timestamp_ms: 9,
                metadata: "m".into(),
            },
        );
        let (k, v) = encode("tx", Some(&m));
        assert_eq!(decode(&k, v.as_deref()), Some(("tx".into(), Some(m))));
        let v = v.unwrap();
        for n in 0..v.len() {
            let _ = decode(&k, Some(&v[..n]));
        }
        let (k, v) = encode("tx", None);
        assert_eq!(decode(&k, v.as_deref()), Some(("tx".into(), None)));
    }
}
