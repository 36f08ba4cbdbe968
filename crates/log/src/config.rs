//! Per-partition log settings (Kafka topic config names in comments).

use std::time::Duration;

use crate::compression::Codec;

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment once it reaches this size.
    pub segment_bytes_max: u64,
    /// `segment.ms`: roll the active segment once it is this old.
    pub segment_age_max: Duration,
    /// `retention.ms`: delete segments whose newest record is older (None: forever).
    pub retention_age_max: Option<Duration>,
    /// `retention.bytes`: delete oldest segments while the log is larger (None: unbounded).
    pub retention_bytes_max: Option<u64>,
    /// `segment.index.bytes`-like interval: one sparse index entry per this many log bytes.
    pub index_interval_bytes: u64,
    /// `max.message.bytes`: the largest batch accepted.
    pub message_bytes_max: usize,
    /// `flush.messages`: fsync after this many messages. 1 means every acknowledged write
    /// (acks=all) waits for its fsync.
    pub flush_messages: u64,
    /// `flush.ms`: fsync at least this often while data is unflushed (None: never by time).
    pub flush_interval: Option<Duration>,
    /// `message.timestamp.type` = LogAppendTime.
    pub log_append_time: bool,
    /// `cleanup.policy` contains `compact`: [`crate::PartitionLog::compact`] keeps
    /// only the last record of each key in closed segments. Retention still
    /// applies as configured (`compact,delete` is both).
    pub compact: bool,
    /// `delete.retention.ms`: how long a tombstone (null value) stays readable
    /// after it entered the cleaned part of the log, so that a consumer reading
    /// from the start sees the delete before the tombstone itself goes.
    pub delete_retention: Duration,
    /// `min.cleanable.dirty.ratio`: compact only once the dirty (never cleaned)
    /// bytes are at least this fraction of the cleanable bytes.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a segment holding a record younger than this
    /// (by record timestamp) is not cleaned, nor anything after it.
    pub min_compaction_lag: Duration,
    /// `max.compaction.lag.ms`: a record may stay uncompacted at most this
    /// long (KIP-354). A dirty segment whose first batch is older is cleaned
    /// whatever the dirty ratio, and the active segment of a compacted log
    /// rolls by then (None: Kafka's default `Long.MAX_VALUE`, no bound).
    pub max_compaction_lag: Option<Duration>,
    /// Memory bound of one compaction pass's key map (Kafka's
    /// `log.cleaner.dedupe.buffer.size`, per partition here). A key costs its
    /// length plus [`crate::compaction::KEY_MAP_ENTRY_OVERHEAD_BYTES`]; a pass
    /// whose dirty keys do not fit cleans up to the last batch that fitted.
    pub compaction_key_map_bytes_max: u64,
    /// `compression.type` naming a codec: batches are recompressed to it on
    /// append (None: `producer`, stored as sent).
    pub compression: Option<Codec>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 1 << 30,
            segment_age_max: Duration::from_secs(7 * 24 * 3600),
            retention_age_max: Some(Duration::from_secs(7 * 24 * 3600)),
            retention_bytes_max: None,
            index_interval_bytes: 4096,
            message_bytes_max: 1_048_588,
            flush_messages: 1,
            flush_interval: None,
            log_append_time: false,
            compact: false,
            compression: None,
            delete_retention: Duration::from_secs(24 * 3600),
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag: Duration::ZERO,
            max_compaction_lag: None,
            compaction_key_map_bytes_max: 64 << 20,
        }
    }
}

impl LogConfig {
    /// Whether acks=all writes wait for fsync before they are acknowledged.
    pub fn fsync_on_ack(&self) -> bool {
        self.flush_messages <= 1
    }

    /// How old the active segment may grow before it rolls: `segment.ms`, or
    /// `max.compaction.lag.ms` when that is shorter on a compacted log (as
    /// Kafka's `LogConfig.maxSegmentMs`), since only closed segments are
    /// cleaned.
    pub fn segment_roll_age(&self) -> Duration {
        match self.max_compaction_lag {
            Some(lag) if self.compact => self.segment_age_max.min(lag),
            _ => self.segment_age_max,
        }
    }
}
