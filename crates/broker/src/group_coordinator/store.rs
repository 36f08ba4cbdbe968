//! Where the group coordinator's records go: the seam between the group state
//! machine and its persistence. The single node appends them to its internal
//! log (`offset_store.rs`); cluster mode writes them to PostgreSQL, fenced by
//! the group's owner epoch (crate `herald-cluster`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use herald_log::LogError;

use super::offset_store::{OffsetStore, Record};
use crate::partition::Partition;

pub trait GroupStore: Send {
    /// Persists records, in order (called under the coordinator's lock).
    fn append(&mut self, records: &[Record]) -> Result<(), LogError>;
    /// A point covering every append so far (called under the coordinator's
    /// lock, so it orders after them); `Durability::wait` waits for it.
    fn sync_point(&self) -> i64;
    /// Whether the store would like a snapshot to shrink it.
    fn needs_compaction(&self) -> bool {
        false
    }
    /// Replaces what is stored with `snapshot`.
    fn compact(&mut self, _snapshot: &[Record]) -> Result<(), LogError> {
        Ok(())
    }
    fn size_bytes(&self) -> u64 {
        0
    }
    fn close(&self) {}
    /// The waiter for sync points, used without the coordinator's lock.
    fn durability(&self) -> Arc<dyn Durability>;
    /// The local log, served as `__consumer_offsets` (`internal_topics.rs`).
    fn internal_log(&self) -> Option<Arc<crate::partition::Partition>> {
        None
    }
}

pub trait Durability: Send + Sync {
    /// Resolves once everything up to `point` is durable.
    fn wait(&self, point: i64) -> Pin<Box<dyn Future<Output = Result<(), LogError>> + Send>>;
}

/// Which groups this broker coordinates now (cluster mode moves them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    Mine,
    /// Another broker's: the client must ask FindCoordinator again.
    NotMine,
    /// Ours, but its state is still being loaded.
    Loading,
}

pub trait GroupOwnership: Send + Sync {
    fn ownership(&self, group_id: &str) -> Ownership;
}

/// A single node coordinates every group.
pub struct AllMine;

impl GroupOwnership for AllMine {
    fn ownership(&self, _group_id: &str) -> Ownership {
        Ownership::Mine
    }
}

impl GroupStore for OffsetStore {
    fn internal_log(&self) -> Option<Arc<crate::partition::Partition>> {
        Some(self.partition())
    }
    fn append(&mut self, records: &[Record]) -> Result<(), LogError> {
        OffsetStore::append(self, records).map(|_| ())
    }
    fn sync_point(&self) -> i64 {
        self.partition().log_end_offset().unwrap_or(0)
    }
    fn needs_compaction(&self) -> bool {
        OffsetStore::needs_compaction(self)
    }
    fn compact(&mut self, snapshot: &[Record]) -> Result<(), LogError> {
        OffsetStore::compact(self, snapshot)
    }
    fn size_bytes(&self) -> u64 {
        OffsetStore::size_bytes(self)
    }
    fn close(&self) {
        OffsetStore::close(self)
    }
    fn durability(&self) -> Arc<dyn Durability> {
        Arc::new(LogDurability(self.partition()))
    }
}

struct LogDurability(Arc<Partition>);

impl Durability for LogDurability {
    fn wait(&self, point: i64) -> Pin<Box<dyn Future<Output = Result<(), LogError>> + Send>> {
        let log = self.0.clone();
        Box::pin(async move { OffsetStore::wait_durable(&log, point).await })
    }
}
