//! Herald's storage engine: segmented, append-only partition logs of Kafka
//! record batches with sparse offset and time indexes, retention, and crash
//! recovery. No networking here; the broker drives it.

pub mod batch;
pub mod compaction;
pub mod compression;
pub mod config;
pub mod error;
pub mod fault;
pub mod offset_index;
pub mod partition_log;
pub mod producer_state;
pub mod records;
pub mod segment;
pub mod time_index;
pub mod txn_index;

pub use compaction::CompactionReport;
pub use config::LogConfig;
pub use error::{LogError, Result};
pub use partition_log::{
    ABORTED_TXNS_PER_READ_MAX, AbortedTxn, AbortedTxnsPlan, AppendInfo, CommittedRead, OpenReport,
    PartitionLog, SyncTarget, TimestampHit,
};
pub use segment::ReadPlan;
