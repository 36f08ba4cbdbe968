//! A partition as the broker sees it: its log behind a mutex, plus the
//! group-commit flusher that makes acknowledged writes durable.
//!
//! Group commit: appends happen under the log's lock; an acks=all producer then
//! asks the flusher for an fsync and waits until the durable offset passes its
//! last offset. The flusher fsyncs without holding the lock, so while one fsync
//! runs, further appends accumulate and share the next one.
//!
//! With fsync on ack, an fsync is also what makes records readable: the high
//! watermark is the durable offset (see `PartitionLog::high_watermark`), and
//! the flusher signals `readable` after each one so long-polling fetches wake.
//!
//! A failed write or fsync takes the partition offline for good (until a
//! restart recovers it from disk): every call then fails with
//! `StorageUnavailable` (KAFKA_STORAGE_ERROR), every waiting producer is
//! answered with it, and one ERROR line says so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use herald_log::batch::EndTxnMarker;
use herald_log::{AppendInfo, LogConfig, LogError, PartitionLog};
use tokio::sync::{Notify, watch};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlushState {
    /// Every offset below this is on disk.
    durable_offset: i64,
    failed: bool,
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    log: Mutex<Option<PartitionLog>>,
    flush_request: Notify,
    flushed: watch::Sender<FlushState>,
    closed: AtomicBool,
    /// Set once the partition went offline (for its single ERROR line).
    offline: AtomicBool,
    /// Bumped when an fsync made more records readable (fsync on ack).
    readable: Option<Arc<watch::Sender<u64>>>,
    /// Where the flusher reports each fsync (metrics).
    fsync_stats: Option<Arc<crate::metrics::FsyncStats>>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Partition({}-{})", self.topic, self.index)
    }
}

impl Partition {
    /// Opens (recovering if needed) the partition's log and starts its flusher.
    /// Must be called inside a tokio runtime.
    pub fn open(
        dir: &std::path::Path,
        topic: &str,
        index: i32,
        config: LogConfig,
        readable: Option<Arc<watch::Sender<u64>>>,
        fsync_stats: Option<Arc<crate::metrics::FsyncStats>>,
    ) -> Result<Arc<Partition>, LogError> {
        let (log, report) = PartitionLog::open(dir, config)?;
        if !report.clean_shutdown && (report.batches_scanned > 0 || report.truncated_bytes > 0) {
            tracing::info!(
                topic,
                partition = index,
                batches = report.batches_scanned,
                truncated_bytes = report.truncated_bytes,
                ms = report.duration.as_millis() as u64,
                "recovered partition log"
            );
        }
        let end = log.log_end_offset();
        let (flushed, _) = watch::channel(FlushState {
            durable_offset: end,
            failed: false,
        });
        let p = Arc::new(Partition {
            topic: topic.to_string(),
            index,
            log: Mutex::new(Some(log)),
            flush_request: Notify::new(),
            flushed,
            closed: AtomicBool::new(false),
            offline: AtomicBool::new(false),
            readable,
            fsync_stats,
        });
        tokio::spawn(flusher(p.clone()));
        Ok(p)
    }

    /// Runs `f` on the log under its lock.
    pub fn with_log<R>(
        &self,
        f: impl FnOnce(&mut PartitionLog) -> Result<R, LogError>,
    ) -> Result<R, LogError> {
        let mut guard = self.log.lock().map_err(|_| LogError::StorageUnavailable)?;
        let Some(log) = guard.as_mut() else {
            return Err(LogError::StorageUnavailable);
        };
        if log.offline_reason().is_some() {
            return Err(LogError::StorageUnavailable);
        }
        let r = f(log);
        if let Some(reason) = log.offline_reason() {
            let reason = reason.to_string();
            // Failed before the lock is released: whoever finds the log
            // offline must also find every durability wait failed (a waiter
            // that cannot read the log end waits for offset 0, which a
            // stale durable offset would satisfy).
            self.flushed.send_modify(|s| s.failed = true);
            drop(guard);
            self.report_offline(&reason);
        }
        r
    }

    /// The partition's log went offline: one ERROR line. Callers have already
    /// failed every durability wait (KAFKA_STORAGE_ERROR to waiting producers).
    fn report_offline(&self, reason: &str) {
        if !self.offline.swap(true, Ordering::SeqCst) {
            tracing::error!(
                topic = %self.topic,
                partition = self.index,
                error = reason,
                "partition is offline: a write or fsync of its log failed; it answers KAFKA_STORAGE_ERROR until a restart recovers it"
            );
        }
    }

    /// Takes the partition offline after a failed fsync. Waiters fail first,
    /// then the log refuses calls (see `with_log`).
    fn go_offline(&self, reason: String) {
        self.flushed.send_modify(|s| s.failed = true);
        if let Ok(mut guard) = self.log.lock()
            && let Some(log) = guard.as_mut()
        {
            log.set_offline(reason.clone());
        }
        self.report_offline(&reason);
    }

    /// Whether a write or fsync failure took the partition offline.
    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::SeqCst)
    }

    /// Appends one produce payload; asks for an fsync when the flush policy says so.
    pub fn append(&self, records: &[u8], now_ms: i64) -> Result<(AppendInfo, bool), LogError> {
        self.with_log(|log| {
            let info = log.append(records, now_ms)?;
            let fsync_on_ack = log.config().fsync_on_ack();
            if log.unflushed_messages() >= log.config().flush_messages {
                self.flush_request.notify_one();
            }
            Ok((info, fsync_on_ack))
        })
    }

    /// Writes a transaction marker, ordered like an append (under the same
    /// lock); asks for an fsync when the flush policy says so. Returns the
    /// marker's append and whether acks=all waits for its fsync. With relaxed
    /// flushing the marker is readable, and the last stable offset moved, at
    /// once: long-polling fetches are woken here (with fsync on ack the
    /// flusher wakes them once the marker is durable, which is when the last
    /// stable offset moves).
    pub fn write_marker(
        &self,
        marker: &EndTxnMarker,
        now_ms: i64,
    ) -> Result<(AppendInfo, bool), LogError> {
        let written = self.with_log(|log| {
            let info = log.write_marker(marker, now_ms)?;
            let fsync_on_ack = log.config().fsync_on_ack();
            if log.unflushed_messages() >= log.config().flush_messages {
                self.flush_request.notify_one();
            }
            Ok((info, fsync_on_ack))
        })?;
        if !written.1 {
            self.notify_readable();
        }
        Ok(written)
    }

    /// Wakes long-polling fetches: more of this partition became readable.
    pub fn notify_readable(&self) {
        if let Some(r) = &self.readable {
            r.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// Asks for an fsync (no-op if nothing is unflushed).
    pub fn request_flush(&self) {
        self.flush_request.notify_one();
    }

    /// Waits until every offset below `end_offset` is durable.
    pub async fn wait_durable(&self, end_offset: i64) -> Result<(), LogError> {
        let mut rx = self.flushed.subscribe();
        self.flush_request.notify_one();
        let state = rx
            .wait_for(|s| s.failed || s.durable_offset >= end_offset)
            .await
            .map_err(|_| LogError::StorageUnavailable)?;
        if state.failed {
            Err(LogError::StorageUnavailable)
        } else {
            Ok(())
        }
    }

    pub fn log_end_offset(&self) -> Result<i64, LogError> {
        self.with_log(|l| Ok(l.log_end_offset()))
    }

    /// Stops the flusher and takes the log out; later calls fail with StorageUnavailable.
    fn take_log(&self) -> Result<Option<PartitionLog>, LogError> {
        self.closed.store(true, Ordering::SeqCst);
        self.flush_request.notify_one();
        Ok(self
            .log
            .lock()
            .map_err(|_| LogError::StorageUnavailable)?
            .take())
    }

    /// Flushes and closes the log cleanly.
    pub fn close(&self) -> Result<(), LogError> {
        match self.take_log()? {
            Some(log) => log.close(),
            None => Ok(()),
        }
    }

    /// Closes and deletes the log's files.
    pub fn delete(&self) -> Result<(), LogError> {
        match self.take_log()? {
            Some(log) => log.delete(),
            None => Ok(()),
        }
    }
}

async fn flusher(p: Arc<Partition>) {
    loop {
        p.flush_request.notified().await;
        if p.closed.load(Ordering::SeqCst) {
            return;
        }
        let Ok(target) = p.with_log(|l| l.sync_target()) else {
            return;
        };
        let job = target.clone();
        let started = std::time::Instant::now();
        let synced = tokio::task::spawn_blocking(move || job.sync()).await;
        let took = started.elapsed();
        match synced {
            Ok(Ok(())) => {
                // The durable offset of the log (what readers see) is advanced
                // before producers are answered: an acknowledged record is
                // always readable.
                let durable = p.with_log(|l| {
                    l.mark_flushed(&target);
                    Ok(l.durable_offset())
                });
                let Ok(durable) = durable else { return };
                if let Some(stats) = &p.fsync_stats {
                    let before = p.flushed.borrow().durable_offset;
                    stats.synced(took, durable.saturating_sub(before).max(0) as u64);
                }
                let advanced = p.flushed.send_if_modified(|s| {
                    if durable > s.durable_offset {
                        s.durable_offset = durable;
                        true
                    } else {
                        false
                    }
                });
                if advanced && let Some(r) = &p.readable {
                    r.send_modify(|v| *v = v.wrapping_add(1));
                }
            }
            Ok(Err(e)) => {
                // Never retried: after a failed fsync the kernel may have
                // dropped the dirty pages, so a later fsync proves nothing.
                p.go_offline(format!("fsync failed: {e}"));
                return;
            }
            Err(e) => {
                p.go_offline(format!("fsync task failed: {e}"));
                return;
            }
        }
    }
}
