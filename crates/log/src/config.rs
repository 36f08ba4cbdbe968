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
    /// `cleanup.policy` contains `compact`: records must have keys.
    pub compact: bool,
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
        }
    }
}

impl LogConfig {
    /// Whether acks=all writes wait for fsync before they are acknowledged.
    pub fn fsync_on_ack(&self) -> bool {
        self.flush_messages <= 1
    }
}
