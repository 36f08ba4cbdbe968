//! Kafka's internal topics, `__consumer_offsets` and `__transaction_state`, as
//! read-only views of the coordinators' own logs.
//!
//! The group and transaction coordinators keep their state in internal logs in
//! Herald's own record format (`group_coordinator/offset_store.rs`,
//! `txn_coordinator/store.rs`). Lag tools (Burrow, kafka-lag-exporter, ...)
//! read `__consumer_offsets` with Kafka's schemas instead, so each log is
//! served as partition 0 of a topic of Kafka's name: a Fetch re-encodes every
//! record it returns into Kafka's key/value schemas, at its original offset,
//! in new uncompressed batches (same base and last offset, so consumers
//! advance exactly as over the log); ListOffsets answers the log's bounds.
//! Nothing on disk changes: data directories of older versions stay valid.
//!
//! Record versions, the ones Kafka 4.x writes:
//! - committed offset: `OffsetCommitKey` v1 (group, topic, partition),
//!   `OffsetCommitValue` v3 (offset, leader epoch, metadata, commit time);
//! - classic group: `GroupMetadataKey` v2 (group), `GroupMetadataValue` v3;
//! - transactional id: `TransactionLogKey` v0, `TransactionLogValue` v0.
//!
//! Records the view does not know (KIP-848 consumer-group records, kinds a
//! newer Herald wrote) are left out of their batch; the batch keeps its offset
//! range. Tombstones stay tombstones (key, null value).
//!
//! Clients cannot write these topics: Produce and DeleteRecords answer
//! INVALID_TOPIC_EXCEPTION as Kafka does.

use std::sync::Arc;

use bytes::Bytes;
use herald_log::batch::build::put_varint;
use herald_log::batch::{self, BatchHeader};
use herald_log::{LogConfig, LogError, records};

use crate::group_coordinator::offset_store::{GROUP_TYPE_CLASSIC, Record};
use crate::partition::Partition;
use crate::storage::{Appended, OffsetQuery, Offsets, PartitionStorage, ReadResult, StorageFuture};
use crate::txn_coordinator::store as txn_store;

/// Kafka's group coordinator topic.
pub const CONSUMER_OFFSETS: &str = "__consumer_offsets";
/// Kafka's transaction coordinator topic.
pub const TRANSACTION_STATE: &str = "__transaction_state";

/// Kafka's rule (`Topic.isInternal`): exactly these two names. User topics may
/// start with "__".
pub fn is_internal_name(name: &str) -> bool {
    name == CONSUMER_OFFSETS || name == TRANSACTION_STATE
}

/// Which coordinator's log a view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Groups,
    Transactions,
}

/// Partition 0 of an internal topic.
pub struct InternalView {
    name: &'static str,
    kind: Kind,
    log: Arc<Partition>,
}

impl std::fmt::Debug for InternalView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalView")
            .field("name", &self.name)
            .finish()
    }
}

fn ready<T: Send + 'static>(r: Result<T, LogError>) -> StorageFuture<T> {
    Box::pin(std::future::ready(r))
}

fn refused(what: &str, topic: &str) -> LogError {
    LogError::Coded {
        code: kafka_protocol::ResponseError::InvalidTopicException.code(),
        message: format!("cannot {what} internal topic {topic}"),
    }
}

impl InternalView {
    pub fn new(kind: Kind, log: Arc<Partition>) -> InternalView {
        let name = match kind {
            Kind::Groups => CONSUMER_OFFSETS,
            Kind::Transactions => TRANSACTION_STATE,
        };
        InternalView { name, kind, log }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// One Fetch's read: the log's batches from `offset`, at most `limit`
    /// bytes of them (the first batch always, when `first` is set, as KIP-74
    /// wants), translated.
    pub fn read(&self, offset: i64, limit: usize, first: bool) -> Result<ReadResult, LogError> {
        let (offsets, plan) = self.log.with_log(|log| {
            let offsets = Offsets {
                log_start: log.log_start_offset(),
                high_watermark: log.high_watermark(),
                last_stable: log.high_watermark(),
            };
            let plan = if limit == 0 && !first {
                None
            } else {
                log.fetch_plan(offset, limit)?
                    .filter(|p| first || p.len() <= limit)
            };
            Ok((offsets, plan))
        })?;
        let data = match plan {
            Some(p) => p.execute()?,
            None => Vec::new(),
        };
        let mut out = Vec::with_capacity(data.len());
        // Whole batches only: a trailing partial one is left out.
        let mut rest = &data[..];
        while let Some(total) = batch::peek_total_bytes(rest) {
            let Ok(total) = usize::try_from(total) else {
                break;
            };
            if total < batch::BATCH_HEADER_BYTES || total > rest.len() {
                break;
            }
            let (b, tail) = rest.split_at(total);
            if let Some(t) = self.translate_batch(b) {
                out.extend_from_slice(&t);
            }
            rest = tail;
        }
        // The coordinators write no transactional batches: nothing is
        // aborted, and read_committed reads the same.
        Ok(ReadResult {
            offsets,
            records: Bytes::from(out),
            aborted: Vec::new(),
        })
    }

    /// Re-encodes one batch of the internal log; None if it is not a batch
    /// Herald wrote (compressed or unreadable: skipped, logged).
    fn translate_batch(&self, b: &[u8]) -> Option<Vec<u8>> {
        let h = BatchHeader::parse(b).ok()?;
        let section = b.get(batch::BATCH_HEADER_BYTES..)?;
        if h.compression() != 0 {
            tracing::warn!(
                topic = self.name,
                offset = h.base_offset,
                "compressed batch in an internal log; left out of the view"
            );
            return None;
        }
        let recs = match records::parse(section, &h) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(topic = self.name, offset = h.base_offset, error = %e, "unreadable batch in an internal log; left out of the view");
                return None;
            }
        };
        let mut body = Vec::with_capacity(section.len() + 16 * recs.len());
        let mut count = 0i32;
        for r in &recs {
            let Some(key) = r.key else { continue };
            let value = r.value();
            let Some((k, v)) = self.translate(key, value) else {
                continue;
            };
            put_record(
                &mut body,
                r.timestamp_delta,
                r.offset_delta,
                &k,
                v.as_deref(),
            );
            count += 1;
        }
        // The original's header (offsets, timestamps, producer fields) over
        // the translated records, uncompressed.
        Some(herald_log::compression::with_records(
            b,
            herald_log::compression::Codec::None,
            &body,
            count,
        ))
    }

    /// One record in Kafka's schemas; None for kinds the view does not show.
    fn translate(&self, key: &[u8], value: Option<&[u8]>) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        match self.kind {
            Kind::Groups => group_record(&Record::decode(key, value)?),
            Kind::Transactions => {
                let (id, meta) = txn_store::decode(key, value)?;
                Some(txn_record(&id, meta.as_ref()))
            }
        }
    }
}

/// Kafka's classic (non-flexible) encodings: big-endian integers, i16-length
/// strings, i32-length bytes.
struct K(Vec<u8>);

impl K {
    fn i8(&mut self, v: i8) {
        self.0.push(v as u8);
    }
    fn i16(&mut self, v: i16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    /// Strings longer than i16::MAX bytes cannot be in Kafka's schema: cut
    /// (Herald limits group ids, topics and metadata far below that).
    fn str(&mut self, s: &str) {
        let b = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
        self.i16(b.len() as i16);
        self.0.extend_from_slice(b);
    }
    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.i16(-1),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.i32(b.len() as i32);
        self.0.extend_from_slice(b);
    }
}

/// Kafka's key versions in `__consumer_offsets`: the record type.
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// The value versions Kafka 4.x writes.
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;
pub const TRANSACTION_LOG_KEY_VERSION: i16 = 0;
pub const TRANSACTION_LOG_VALUE_VERSION: i16 = 0;

/// A group-log record in Kafka's schemas; None for KIP-848 groups (Kafka
/// writes those as ConsumerGroup* records, which the view does not show yet).
pub fn group_record(r: &Record) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    match r {
        Record::Offset {
            group,
            topic,
            partition,
            value,
        } => {
            let mut k = K(Vec::with_capacity(8 + group.len() + topic.len()));
            k.i16(OFFSET_COMMIT_KEY_VERSION);
            k.str(group);
            k.str(topic);
            k.i32(*partition);
            let v = value.as_ref().map(|o| {
                let mut w = K(Vec::with_capacity(32 + o.metadata.len()));
                w.i16(OFFSET_COMMIT_VALUE_VERSION);
                w.i64(o.offset);
                w.i32(o.leader_epoch);
                w.str(&o.metadata);
                w.i64(o.commit_timestamp_ms);
                w.0
            });
            Some((k.0, v))
        }
        Record::Group { group, value } => {
            if value
                .as_ref()
                .is_some_and(|g| g.group_type != GROUP_TYPE_CLASSIC)
            {
                return None;
            }
            let mut k = K(Vec::with_capacity(4 + group.len()));
            k.i16(GROUP_METADATA_KEY_VERSION);
            k.str(group);
            let v = value.as_ref().map(|g| {
                let mut w = K(Vec::with_capacity(64));
                w.i16(GROUP_METADATA_VALUE_VERSION);
                w.str(&g.protocol_type);
                w.i32(g.generation);
                w.opt_str(g.protocol_name.as_deref());
                w.opt_str(g.leader.as_deref());
                w.i64(g.state_timestamp_ms);
                w.i32(g.members.len() as i32);
                for m in &g.members {
                    w.str(&m.member_id);
                    w.opt_str(m.instance_id.as_deref());
                    w.str(&m.client_id);
                    w.str(&m.client_host);
                    w.i32(m.rebalance_timeout_ms);
                    w.i32(m.session_timeout_ms);
                    w.bytes(&m.subscription);
                    w.bytes(&m.assignment);
                }
                w.0
            });
            Some((k.0, v))
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// A transaction-log record in Kafka's schemas (TransactionLogKey v0,
/// TransactionLogValue v0; Herald's state codes are Kafka's).
pub fn txn_record(id: &str, meta: Option<&txn_store::TxnMeta>) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut k = K(Vec::with_capacity(4 + id.len()));
    k.i16(TRANSACTION_LOG_KEY_VERSION);
    k.str(id);
    let v = meta.map(|m| {
        let mut w = K(Vec::with_capacity(64));
        w.i16(TRANSACTION_LOG_VALUE_VERSION);
        w.i64(m.producer_id);
        w.i16(m.producer_epoch);
        w.i32(m.timeout_ms);
        w.i8(txn_store::state_code(m.state) as i8);
        // Partitions grouped by topic (the set is ordered by topic).
        let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
        for (t, p) in &m.partitions {
            match topics.last_mut() {
                Some((last, ps)) if *last == t.as_str() => ps.push(*p),
                _ => topics.push((t.as_str(), vec![*p])),
            }
        }
        w.i32(topics.len() as i32);
        for (t, ps) in topics {
            w.str(t);
            w.i32(ps.len() as i32);
            for p in ps {
                w.i32(p);
            }
        }
        w.i64(m.update_ms);
        w.i64(m.start_ms);
        w.0
    });
    (k.0, v)
}

fn put_record(
    out: &mut Vec<u8>,
    ts_delta: i64,
    offset_delta: i32,
    key: &[u8],
    value: Option<&[u8]>,
) {
    let mut rec = Vec::with_capacity(16 + key.len() + value.map_or(0, |v| v.len()));
    rec.push(0); // attributes
    put_varint(&mut rec, ts_delta);
    put_varint(&mut rec, offset_delta as i64);
    put_varint(&mut rec, key.len() as i64);
    rec.extend_from_slice(key);
    match value {
        Some(v) => {
            put_varint(&mut rec, v.len() as i64);
            rec.extend_from_slice(v);
        }
        None => put_varint(&mut rec, -1),
    }
    put_varint(&mut rec, 0); // headers
    put_varint(out, rec.len() as i64);
    out.extend_from_slice(&rec);
}

impl PartitionStorage for InternalView {
    fn topic(&self) -> &str {
        self.name
    }
    fn index(&self) -> i32 {
        0
    }
    fn append(
        self: Arc<Self>,
        _records: Bytes,
        _acks: i16,
        _now_ms: i64,
    ) -> StorageFuture<Appended> {
        tracing::info!(topic = self.name, "refused a produce to an internal topic");
        ready(Err(refused("append to", self.name)))
    }
    fn offsets(self: Arc<Self>) -> StorageFuture<Offsets> {
        ready(self.log.with_log(|log| {
            Ok(Offsets {
                log_start: log.log_start_offset(),
                high_watermark: log.high_watermark(),
                last_stable: log.high_watermark(),
            })
        }))
    }
    fn lookup(self: Arc<Self>, query: OffsetQuery) -> StorageFuture<(i64, i64)> {
        // Offsets are the log's own: its lookups answer for the view.
        PartitionStorage::lookup(self.log.clone(), query)
    }
    fn delete_records(self: Arc<Self>, _before: i64) -> StorageFuture<i64> {
        ready(Err(refused("delete records of", self.name)))
    }
    fn size_bytes(&self) -> u64 {
        self.log.with_log(|l| Ok(l.size_bytes())).unwrap_or(0)
    }
    /// The coordinators own their logs' settings.
    fn set_config(&self, _config: LogConfig) -> Result<(), LogError> {
        Ok(())
    }
    /// The coordinator closes its log.
    fn close(&self) -> Result<(), LogError> {
        Ok(())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group_coordinator::offset_store::{
        GroupValue, OffsetStore, OffsetValue, StoredMember,
    };

    fn rd_i16(b: &[u8], p: &mut usize) -> i16 {
        let v = i16::from_be_bytes([b[*p], b[*p + 1]]);
        *p += 2;
        v
    }
    fn rd_str(b: &[u8], p: &mut usize) -> String {
        let n = rd_i16(b, p) as usize;
        let s = String::from_utf8(b[*p..*p + n].to_vec()).unwrap();
        *p += n;
        s
    }

    #[test]
    fn offset_commit_in_kafka_schema() {
        let r = Record::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
            value: Some(OffsetValue {
                offset: 42,
                leader_epoch: -1,
                commit_timestamp_ms: 1000,
                metadata: "m".into(),
            }),
        };
        let (k, v) = group_record(&r).unwrap();
        let mut p = 0;
        assert_eq!(rd_i16(&k, &mut p), 1);
        assert_eq!(rd_str(&k, &mut p), "g");
        assert_eq!(rd_str(&k, &mut p), "t");
        assert_eq!(&k[p..], &7i32.to_be_bytes());
        let v = v.unwrap();
        let mut p = 0;
        assert_eq!(rd_i16(&v, &mut p), 3);
        assert_eq!(&v[p..p + 8], &42i64.to_be_bytes());
        p += 8;
        assert_eq!(&v[p..p + 4], &(-1i32).to_be_bytes());
        p += 4;
        assert_eq!(rd_str(&v, &mut p), "m");
        assert_eq!(&v[p..], &1000i64.to_be_bytes());
        // KIP-848 groups are not shown.
        let g = Record::Group {
            group: "g".into(),
            value: Some(GroupValue {
                group_type: crate::group_coordinator::offset_store::GROUP_TYPE_CONSUMER,
                protocol_type: "consumer".into(),
                generation: 1,
                protocol_name: None,
                leader: None,
                state_timestamp_ms: 0,
                members: vec![],
            }),
        };
        assert!(group_record(&g).is_none());
    }

    #[tokio::test]
    async fn the_view_keeps_offsets_and_translates() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = OffsetStore::open(dir.path(), 1 << 30).unwrap();
        let member = StoredMember {
            member_id: "m-1".into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            subscription: vec![0, 1],
            assignment: vec![],
        };
        let recs = vec![
            Record::Group {
                group: "g".into(),
                value: Some(GroupValue {
                    group_type: GROUP_TYPE_CLASSIC,
                    protocol_type: "consumer".into(),
                    generation: 3,
                    protocol_name: Some("range".into()),
                    leader: Some("m-1".into()),
                    state_timestamp_ms: 5,
                    members: vec![member],
                }),
            },
            Record::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 0,
                value: Some(OffsetValue {
                    offset: 9,
                    leader_epoch: 0,
                    commit_timestamp_ms: 5,
                    metadata: String::new(),
                }),
            },
        ];
        let end = store.append(&recs).unwrap();
        let end2 = store.append(&recs[1..]).unwrap();
        OffsetStore::wait_durable(&store.partition(), end2)
            .await
            .unwrap();
        assert_eq!((end, end2), (2, 3));
        let view = InternalView::new(Kind::Groups, store.partition());
        let r = view.read(0, 1 << 20, true).unwrap();
        assert_eq!(r.offsets.high_watermark, 3);
        let batches = batch::split(&r.records).unwrap();
        assert_eq!(batches.len(), 2);
        let h0 = batch::validate(batches[0]).unwrap();
        assert_eq!(
            (h0.base_offset, h0.last_offset(), h0.records_count),
            (0, 1, 2)
        );
        let h1 = batch::validate(batches[1]).unwrap();
        assert_eq!((h1.base_offset, h1.records_count), (2, 1));
        let recs0 = records::parse(&batches[0][batch::BATCH_HEADER_BYTES..], &h0).unwrap();
        let k = recs0[0].key.unwrap();
        assert_eq!(&k[..2], &2i16.to_be_bytes());
        let v = recs0[0].value().unwrap();
        let mut p = 0;
        assert_eq!(rd_i16(v, &mut p), 3);
        assert_eq!(rd_str(v, &mut p), "consumer");
        // Reading from the middle starts at the batch holding the offset.
        let r = view.read(2, 1 << 20, true).unwrap();
        let h = batch::validate(&r.records).unwrap();
        assert_eq!(h.base_offset, 2);
        store.close();
    }
}
