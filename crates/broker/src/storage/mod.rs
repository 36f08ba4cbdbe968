//! The storage seam: everything a Kafka handler needs from where records and
//! topic metadata live, and nothing more.
//!
//! Two engines implement it:
//! - `local` (the embedded default): segmented logs in the data directory,
//!   topic metadata in `topic.json` files (`storage/local.rs`, `herald-log`).
//! - `cluster` (crate `herald-cluster`): record batches in S3-compatible object
//!   storage, offsets, topics and producer state in PostgreSQL.
//!
//! Handlers see a topic's partitions as `Arc<dyn PartitionStorage>` (append,
//! offsets, lookups, DeleteRecords) and call `Engine::read` for a whole Fetch,
//! so an engine can serve many partitions with one query. The catalog
//! (`TopicRegistry`) keeps topics in memory for both engines and persists
//! changes through `Engine`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use herald_log::{LogConfig, LogError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::partition::Partition;
use crate::topic_registry::TopicError;

pub mod local;

/// A storage operation that finishes later.
pub type StorageFuture<T, E = LogError> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

/// A topic as stored: what every broker must agree on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// A partition's bounds: records live in `[log_start, high_watermark)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub log_start: i64,
    pub high_watermark: i64,
    /// The last stable offset (LSO): the first offset of the oldest
    /// transaction still open here, else the high watermark. A
    /// read_committed consumer reads below it only.
    pub last_stable: i64,
}

/// A Fetch's `isolation_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    #[default]
    ReadUncommitted,
    /// Below the last stable offset only, with the aborted transactions of
    /// the range read so that the consumer can drop their records.
    ReadCommitted,
}

/// An aborted transaction a read_committed Fetch reports
/// (`aborted_transactions`): the consumer drops this producer's
/// transactional batches from `first_offset` up to its abort marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
}

/// A transaction marker (a control batch) the transaction coordinator
/// writes to each partition of a transaction when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// COMMIT (true) or ABORT (false).
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// One producer's state on a partition (DescribeProducers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// -1 if unknown.
    pub last_sequence: i32,
    /// The max timestamp of its last batch, -1 if unknown.
    pub last_timestamp_ms: i64,
    /// -1 when no marker was written for it yet.
    pub coordinator_epoch: i32,
    /// First offset of its open transaction here, -1 if none.
    pub current_txn_start_offset: i64,
}

/// The answer to one appended produce payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    /// Broker time stamped into `LogAppendTime` batches, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// ListOffsets' questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetQuery {
    Earliest,
    Latest,
    /// The record with the largest timestamp.
    MaxTimestamp,
    /// The first record whose timestamp is at or after this (ms).
    AtOrAfter(i64),
}

/// One partition's part of a Fetch.
pub struct ReadRequest {
    pub partition: Arc<dyn PartitionStorage>,
    pub offset: i64,
    /// `partition_max_bytes` (already bounded by the broker's own limit).
    pub max_bytes: usize,
    pub isolation: Isolation,
}

/// What a read found: whole record batches starting with the one holding the
/// fetch offset (empty when there is nothing new), and the partition's bounds.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub offsets: Offsets,
    pub records: Bytes,
    /// With `Isolation::ReadCommitted`: the aborted transactions whose
    /// records may be among those read (empty otherwise).
    pub aborted: Vec<AbortedTxn>,
}

/// One partition of one topic, as a storage engine keeps it.
pub trait PartitionStorage: Send + Sync + std::fmt::Debug {
    fn topic(&self) -> &str;
    fn index(&self) -> i32;
    /// Appends one produce payload (stored as sent, after validation and the
    /// idempotent-producer checks). Resolves once the records are as durable as
    /// `acks` and the topic's flush policy require.
    ///
    /// The append is ordered when this is called, not when the future is
    /// polled: appends called in order on one partition apply in that order
    /// (a pipelining producer relies on it). Dropping the future does not
    /// cancel the append.
    fn append(self: Arc<Self>, records: Bytes, acks: i16, now_ms: i64) -> StorageFuture<Appended>;
    fn offsets(self: Arc<Self>) -> StorageFuture<Offsets>;
    /// (offset, timestamp) answering a ListOffsets query; (-1, -1) if none.
    fn lookup(self: Arc<Self>, query: OffsetQuery) -> StorageFuture<(i64, i64)>;
    /// DeleteRecords: advances the log start to `before` (-1: the high
    /// watermark) and returns the new log start.
    fn delete_records(self: Arc<Self>, before: i64) -> StorageFuture<i64>;
    /// Writes a transaction marker: a control batch that ends the producer's
    /// open transaction on this partition (a partition without one still
    /// gets the marker, as Kafka writes it). Ordered like `append`; resolves
    /// with the marker's offset once it is as durable as `acks=all` requires.
    fn write_marker(self: Arc<Self>, _marker: TxnMarker, _now_ms: i64) -> StorageFuture<i64> {
        Box::pin(std::future::ready(Err(LogError::Coded {
            code: kafka_protocol::ResponseError::InvalidTxnState.code(),
            message: "this storage engine does not support transactions".into(),
        })))
    }
    /// The producers with state on this partition (DescribeProducers).
    fn producers(self: Arc<Self>) -> StorageFuture<Vec<ProducerInfo>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
    /// Bytes stored for this partition (DescribeLogDirs), best effort.
    fn size_bytes(&self) -> u64;
    /// New topic settings (AlterConfigs, dynamic broker defaults).
    fn set_config(&self, config: LogConfig) -> Result<(), LogError>;
    /// Releases the partition (shutdown, topic deleted); later calls fail.
    fn close(&self) -> Result<(), LogError>;
    /// The engine's own type, for the engine that opened it.
    fn as_any(&self) -> &dyn std::any::Any;
    /// The local log, for the local engine's maintenance (retention, rolls,
    /// compaction). Other engines run their own.
    fn as_local(&self) -> Option<&Partition> {
        None
    }
}

/// A storage engine: where topics and records are persisted.
pub trait Engine: Send + Sync {
    /// "local" or "cluster" (logs, DescribeConfigs).
    fn kind(&self) -> &'static str;
    /// Every stored topic (at start-up, and when `topics_changed` fires).
    fn load_topics(&self) -> StorageFuture<Vec<TopicMeta>, TopicError>;
    /// Stores a new topic; AlreadyExists if another broker stored one first.
    fn create_topic(&self, meta: TopicMeta) -> StorageFuture<(), TopicError>;
    /// Stores a topic's new partition count or configs.
    fn update_topic(&self, meta: TopicMeta) -> StorageFuture<(), TopicError>;
    /// Removes a topic and, eventually, its records (its partitions are closed first).
    fn delete_topic(&self, meta: TopicMeta) -> StorageFuture<(), TopicError>;
    /// A handle on one partition of a stored topic.
    fn open_partition(
        &self,
        topic: &TopicMeta,
        index: i32,
        config: LogConfig,
    ) -> Result<Arc<dyn PartitionStorage>, TopicError>;
    /// Resolves when another broker changed the stored topics (never, for a
    /// single node): the catalog then reloads them.
    fn topics_changed(&self) -> Pin<Box<dyn Future<Output = ()> + Send>>;
    /// One Fetch's reads. `budget` is the response's byte limit: KIP-74, only
    /// the first partition with data may exceed it (by its first batch); after
    /// it a partition whose next batch does not fit the rest sends nothing.
    fn read(
        &self,
        reads: Vec<ReadRequest>,
        budget: usize,
    ) -> StorageFuture<Vec<Result<ReadResult, LogError>>, LogError>;
    /// Waits until the engine can take `bytes` more of produce data (cluster
    /// mode bounds what is buffered and uploading); the connection reads no
    /// further request meanwhile, which is how a producer is slowed down.
    fn admit(&self, _bytes: usize) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(std::future::ready(()))
    }
    /// Whether appended records may be readable before `append`'s future
    /// resolves (the local log: at once with relaxed flushing; with fsync on
    /// ack once fsynced, see `readable_advanced`), so Produce can wake
    /// long-polling fetches right away.
    fn readable_on_append(&self) -> bool {
        false
    }
    /// Changes when records became readable other than by an append (the
    /// local engine with fsync on ack: when an fsync moves a high watermark),
    /// so that long-polling fetches wake. None: appends are the only signal.
    fn readable_advanced(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
    /// The engine's group-commit fsync statistics, if it fsyncs (the local engine).
    fn fsync_stats(&self) -> Option<Arc<crate::metrics::FsyncStats>> {
        None
    }
    /// A block of never-used producer ids, `[start, end)`.
    fn allocate_producer_ids(&self, count: i64) -> StorageFuture<(i64, i64), std::io::Error>;
}
