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

mod record;

pub use record::{
    ConsumerMemberValue, ConsumerTargetMeta, GROUP_TYPE_CLASSIC, GROUP_TYPE_CONSUMER, GroupValue,
    OffsetValue, Record, STORED_PARTITIONS_MAX, STORED_TOPICS_MAX, StoredAssignment, StoredMember,
};
pub(crate) use record::{Reader, Writer};

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
    use super::record::VALUE_VERSION;
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
