//! The local engine (the embedded default): one `herald_log::PartitionLog` per
//! partition under the data directory, topic metadata in `topic.json`.
//!
//! ```text
//! <data>/topics/<name>/topic.json     {"name","id","partitions","configs"}
//! <data>/topics/<name>/<partition>/   one partition log (see docs/storage-format.md)
//! <data>/deleted/                     topics being removed
//! <data>/producer-id-block            end of the reserved producer id block
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_log::batch::EndTxnMarker;
use herald_log::partition_log::RECORDS_DECOMPRESSED_BYTES_MAX;
use herald_log::{LogConfig, LogError, PartitionLog, TimestampHit, compression, records};

use super::{
    AbortedTxn, Appended, Engine, Isolation, OffsetQuery, Offsets, PartitionStorage, ProducerInfo,
    ReadRequest, ReadResult, StorageFuture, TopicMeta, TxnMarker,
};
use crate::partition::Partition;
use crate::topic_registry::TopicError;

/// Bound on how long an acks=all produce waits for its fsync.
const DURABILITY_WAIT_MAX: Duration = Duration::from_secs(300);

pub struct LocalEngine {
    root: PathBuf,
    data_dir: PathBuf,
    /// Bumped by partition flushers when an fsync moved a high watermark
    /// (fsync on ack): long-polling fetches wait on it.
    readable: Arc<tokio::sync::watch::Sender<u64>>,
    /// Observed by every partition's flusher.
    fsync_stats: Arc<crate::metrics::FsyncStats>,
}

impl LocalEngine {
    /// Prepares `<data>/topics` and finishes removing topics deleted before a crash.
    pub fn open(data_dir: &Path) -> Result<LocalEngine, TopicError> {
        let root = data_dir.join("topics");
        std::fs::create_dir_all(&root)?;
        let deleted = data_dir.join("deleted");
        if deleted.exists() {
            std::fs::remove_dir_all(&deleted)?;
        }
        Ok(LocalEngine {
            root,
            data_dir: data_dir.to_path_buf(),
            readable: Arc::new(tokio::sync::watch::channel(0).0),
            fsync_stats: Arc::default(),
        })
    }

    fn persist(&self, meta: &TopicMeta) -> Result<(), TopicError> {
        let bytes = serde_json::to_vec_pretty(meta).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomically(&self.root.join(&meta.name).join("topic.json"), &bytes)?;
        Ok(())
    }

    pub fn stored_topics(&self) -> Result<Vec<TopicMeta>, TopicError> {
        let mut metas = Vec::new();
        for entry in std::fs::read_dir(&self.root)? {
            let dir = entry?.path();
            let meta_path = dir.join("topic.json");
            let Ok(bytes) = std::fs::read(&meta_path) else {
                tracing::warn!(dir = %dir.display(), "skipping directory without topic.json");
                continue;
            };
            match serde_json::from_slice::<TopicMeta>(&bytes) {
                // The directory is the topic: metadata naming another topic
                // would make its deletion or update act on that one's files.
                Ok(m) if dir.file_name().is_some_and(|d| *d == *m.name) => metas.push(m),
                Ok(m) => {
                    tracing::error!(path = %meta_path.display(), name = %m.name, "topic metadata names another directory; topic skipped");
                }
                Err(e) => {
                    tracing::error!(path = %meta_path.display(), error = %e, "unreadable topic metadata; topic skipped");
                }
            }
        }
        Ok(metas)
    }

    fn delete_sync(&self, meta: &TopicMeta) -> Result<(), TopicError> {
        // Rename first (atomic), then remove: a crash in between leaves only `deleted/`.
        let dir = self.root.join(&meta.name);
        let trash = self.data_dir.join("deleted");
        let target = trash.join(format!("{}-{}", meta.name, meta.id));
        let moved = std::fs::create_dir_all(&trash).and_then(|()| std::fs::rename(&dir, &target));
        match moved {
            Ok(()) => {
                // The rename is the deletion: durable before it is answered,
                // or an acknowledged deletion could come back after a power loss.
                crate::fsutil::sync_dir(&self.root)?;
                crate::fsutil::sync_dir(&trash)?;
                std::fs::remove_dir_all(&target)?
            }
            Err(e) if herald_log::fault::is_out_of_space(&e) => {
                // A full disk (on ext4 a new directory needs a block): delete
                // in place, `topic.json` first and durably, so that a crash
                // midway leaves a directory that is skipped, never a topic
                // missing some partitions. Deleting is how space is freed.
                tracing::warn!(topic = %meta.name, error = %e, "disk full: deleting the topic in place");
                match std::fs::remove_file(dir.join("topic.json")) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
                crate::fsutil::sync_dir(&dir)?;
                std::fs::remove_dir_all(&dir)?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    fn allocate_sync(&self, count: i64) -> std::io::Result<(i64, i64)> {
        let path = self.data_dir.join("producer-id-block");
        let start = match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<i64>().map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let end = start + count;
        crate::fsutil::write_atomically(&path, format!("{end}\n").as_bytes())?;
        Ok((start, end))
    }
}

fn ready<T: Send + 'static, E: Send + 'static>(r: Result<T, E>) -> StorageFuture<T, E> {
    Box::pin(std::future::ready(r))
}

impl Engine for LocalEngine {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn load_topics(&self) -> StorageFuture<Vec<TopicMeta>, TopicError> {
        ready(self.stored_topics())
    }

    fn create_topic(&self, meta: TopicMeta) -> StorageFuture<(), TopicError> {
        let dir = self.root.join(&meta.name);
        let r = (|| {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
            // The topic's directory entry, durable before the topic is
            // acknowledged (persist fsyncs the directory's own contents).
            crate::fsutil::sync_dir(&self.root)?;
            self.persist(&meta)
        })();
        if r.is_err() {
            // A disk that is full or failing: leave no topic directory
            // without its topic.json behind.
            let _ = std::fs::remove_dir_all(&dir);
        }
        ready(r)
    }

    fn update_topic(&self, meta: TopicMeta) -> StorageFuture<(), TopicError> {
        ready(self.persist(&meta))
    }

    fn delete_topic(&self, meta: TopicMeta) -> StorageFuture<(), TopicError> {
        ready(self.delete_sync(&meta))
    }

    fn open_partition(
        &self,
        topic: &TopicMeta,
        index: i32,
        config: LogConfig,
    ) -> Result<Arc<dyn PartitionStorage>, TopicError> {
        let dir = self.root.join(&topic.name).join(index.to_string());
        Ok(Partition::open(
            &dir,
            &topic.name,
            index,
            config,
            Some(self.readable.clone()),
            Some(self.fsync_stats.clone()),
        )?)
    }

    fn topics_changed(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(std::future::pending())
    }

    fn read(
        &self,
        reads: Vec<ReadRequest>,
        budget: usize,
    ) -> StorageFuture<Vec<Result<ReadResult, LogError>>, LogError> {
        let mut budget = budget;
        let mut total = 0usize;
        let mut out = Vec::with_capacity(reads.len());
        for r in reads {
            if let Some(view) = r
                .partition
                .as_any()
                .downcast_ref::<crate::internal_topics::InternalView>()
            {
                // Kafka's internal topics: a coordinator's log, translated.
                let limit = r.max_bytes.min(budget);
                let result = view.read(r.offset, limit, total == 0);
                if let Ok(rr) = &result {
                    total += rr.records.len();
                    budget = budget.saturating_sub(rr.records.len());
                }
                out.push(result);
                continue;
            }
            let Some(p) = r.partition.as_local() else {
                out.push(Err(LogError::StorageUnavailable));
                continue;
            };
            let limit = r.max_bytes.min(budget);
            let skip = limit == 0 && total > 0;
            // Plan under the lock, read after it: producers of this partition
            // do not wait for a consumer's disk read.
            let result = p
                .with_log(|log| {
                    let mut offsets = offsets_of(log);
                    let fits = |plan: &herald_log::ReadPlan| total == 0 || plan.len() <= limit;
                    Ok(match r.isolation {
                        Isolation::ReadUncommitted => {
                            let plan = if skip {
                                None
                            } else {
                                log.fetch_plan(r.offset, limit)?.filter(fits)
                            };
                            (offsets, plan, None)
                        }
                        Isolation::ReadCommitted => {
                            // Below the last stable offset only (planned with it,
                            // under the same lock).
                            let c = log.fetch_plan_committed(r.offset, limit)?;
                            offsets.last_stable = c.last_stable;
                            let plan = if skip { None } else { c.plan.filter(fits) };
                            (offsets, plan, Some(c.aborted))
                        }
                    })
                })
                .and_then(|(offsets, plan, aborted)| {
                    let mut data = match plan {
                        Some(plan) => plan.execute()?,
                        None => Vec::new(),
                    };
                    let mut list = Vec::new();
                    if let Some(a) = aborted
                        && !data.is_empty()
                    {
                        let (records, found) = a.collect(r.offset, &data)?;
                        let kept = records.len();
                        data.truncate(kept);
                        list = found
                            .into_iter()
                            .map(|t| AbortedTxn {
                                producer_id: t.producer_id,
                                first_offset: t.first_offset,
                            })
                            .collect();
                    }
                    Ok((offsets, data, list))
                });
            out.push(match result {
                Ok((offsets, data, aborted)) => {
                    total += data.len();
                    budget = budget.saturating_sub(data.len());
                    Ok(ReadResult {
                        offsets,
                        records: Bytes::from(data),
                        aborted,
                    })
                }
                Err(e) => Err(e),
            });
        }
        ready(Ok(out))
    }

    fn allocate_producer_ids(&self, count: i64) -> StorageFuture<(i64, i64), std::io::Error> {
        ready(self.allocate_sync(count))
    }

    fn readable_on_append(&self) -> bool {
        true
    }

    fn fsync_stats(&self) -> Option<Arc<crate::metrics::FsyncStats>> {
        Some(self.fsync_stats.clone())
    }

    fn readable_advanced(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.readable.subscribe())
    }
}

/// A partition's bounds, as every read and `offsets` answer them.
fn offsets_of(log: &PartitionLog) -> Offsets {
    Offsets {
        log_start: log.log_start_offset(),
        high_watermark: log.high_watermark(),
        last_stable: log.last_stable_offset(),
    }
}

/// Within the batch found by timestamp, the first record at or after `target`
/// (the batch header only bounds the batch). `target` None: the record holding
/// the batch's max timestamp. Falls back to the batch's base offset if its
/// records cannot be read (decompression is bounded, see herald_log::compression).
pub fn record_in_batch(hit: &TimestampHit, target: Option<i64>) -> (i64, i64) {
    let h = &hit.header;
    let fallback = (h.base_offset, h.max_timestamp);
    let Ok(section) = compression::records_section(&hit.batch, RECORDS_DECOMPRESSED_BYTES_MAX)
    else {
        return fallback;
    };
    let log_append_time = h.attributes & herald_log::batch::ATTRIBUTE_LOG_APPEND_TIME != 0;
    let Ok(parsed) = records::parse(&section, h) else {
        return fallback;
    };
    for r in parsed {
        let ts = if log_append_time {
            h.max_timestamp
        } else {
            h.base_timestamp.saturating_add(r.timestamp_delta)
        };
        let matches = match target {
            Some(t) => ts >= t,
            None => ts == h.max_timestamp,
        };
        if matches {
            return (h.base_offset + r.offset_delta as i64, ts);
        }
    }
    fallback
}

impl PartitionStorage for Partition {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn index(&self) -> i32 {
        self.index
    }

    fn append(self: Arc<Self>, records: Bytes, acks: i16, now_ms: i64) -> StorageFuture<Appended> {
        // Appended now, in call order; only the durability wait is deferred.
        let (info, fsync_on_ack) = match Partition::append(&self, &records, now_ms) {
            Ok(v) => v,
            Err(e) => return ready(Err(e)),
        };
        let log_start_offset = self.with_log(|l| Ok(l.log_start_offset())).unwrap_or(-1);
        let appended = Appended {
            base_offset: info.base_offset,
            log_append_time_ms: info.log_append_time_ms,
            log_start_offset,
        };
        if !(acks == -1 && fsync_on_ack) {
            return ready(Ok(appended));
        }
        let end = info.last_offset + 1;
        Box::pin(async move {
            match tokio::time::timeout(DURABILITY_WAIT_MAX, self.wait_durable(end)).await {
                Ok(Ok(())) => Ok(appended),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(LogError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "fsync did not finish in time",
                ))),
            }
        })
    }

    fn offsets(self: Arc<Self>) -> StorageFuture<Offsets> {
        ready(self.with_log(|l| Ok(offsets_of(l))))
    }

    fn write_marker(self: Arc<Self>, marker: TxnMarker, now_ms: i64) -> StorageFuture<i64> {
        let m = EndTxnMarker {
            producer_id: marker.producer_id,
            producer_epoch: marker.producer_epoch,
            commit: marker.commit,
            coordinator_epoch: marker.coordinator_epoch,
        };
        // Written now, in call order; only the durability wait is deferred.
        let (info, fsync_on_ack) = match Partition::write_marker(&self, &m, now_ms) {
            Ok(v) => v,
            Err(e) => return ready(Err(e)),
        };
        if !fsync_on_ack {
            return ready(Ok(info.base_offset));
        }
        let end = info.last_offset + 1;
        Box::pin(async move {
            match tokio::time::timeout(DURABILITY_WAIT_MAX, self.wait_durable(end)).await {
                Ok(Ok(())) => Ok(info.base_offset),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(LogError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "fsync did not finish in time",
                ))),
            }
        })
    }

    fn producers(self: Arc<Self>) -> StorageFuture<Vec<ProducerInfo>> {
        ready(self.with_log(|l| {
            Ok(l.producers()
                .iter()
                .map(|(producer_id, e)| ProducerInfo {
                    producer_id,
                    producer_epoch: e.epoch,
                    last_sequence: e.last_sequence(),
                    last_timestamp_ms: e.last_timestamp_ms,
                    coordinator_epoch: e.coordinator_epoch,
                    current_txn_start_offset: e.txn_first_offset.unwrap_or(-1),
                })
                .collect())
        }))
    }

    fn lookup(self: Arc<Self>, query: OffsetQuery) -> StorageFuture<(i64, i64)> {
        ready(self.with_log(|log| {
            // Offsets found by timestamp at or above the high watermark are not
            // shown yet (Kafka filters them the same way): not durable.
            let hw = log.high_watermark();
            let visible = |(offset, ts): (i64, i64)| {
                if offset >= hw { (-1, -1) } else { (offset, ts) }
            };
            Ok(match query {
                OffsetQuery::Latest => (hw, -1),
                OffsetQuery::Earliest => (log.log_start_offset(), -1),
                OffsetQuery::MaxTimestamp => match log.find_max_timestamp()? {
                    Some(hit) => visible(record_in_batch(&hit, None)),
                    None => (-1, -1),
                },
                OffsetQuery::AtOrAfter(t) => match log.find_timestamp(t)? {
                    Some(hit) => {
                        let (offset, ts) = record_in_batch(&hit, Some(t));
                        visible((offset.max(log.log_start_offset()), ts))
                    }
                    None => (-1, -1),
                },
            })
        }))
    }

    fn delete_records(self: Arc<Self>, before: i64) -> StorageFuture<i64> {
        ready(self.with_log(|log| {
            // Kafka: DeleteRecords may not pass the high watermark.
            let hw = log.high_watermark();
            let target = if before == -1 { hw } else { before };
            if target > hw {
                return Err(LogError::OffsetOutOfRange {
                    offset: target,
                    start: log.log_start_offset(),
                    end: hw,
                });
            }
            log.delete_records_before(target)
        }))
    }

    fn size_bytes(&self) -> u64 {
        self.with_log(|l| Ok(l.size_bytes())).unwrap_or(0)
    }

    fn set_config(&self, config: LogConfig) -> Result<(), LogError> {
        self.with_log(|l| {
            l.set_config(config);
            Ok(())
        })?;
        // A topic switched to fsync on ack reads only to the durable offset:
        // sync what was written before, or it stays unreadable until the next
        // produce.
        self.request_flush();
        Ok(())
    }

    fn close(&self) -> Result<(), LogError> {
        Partition::close(self)
    }

    fn as_local(&self) -> Option<&Partition> {
        Some(self)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests;
