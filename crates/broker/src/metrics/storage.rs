//! Storage: per-partition offsets and sizes read at scrape time (nothing
//! stored), fsync latency and group-commit sizes, produce-to-durable
//! latency, and retention and compaction activity.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::registry::Unit;

use super::encode::{Family, Value};
use super::histogram::{AtomicHistogram, RECORD_COUNT_BUCKETS};
use crate::broker::Broker;

/// Group-commit fsyncs of the local engine's partition logs. The engine owns
/// it (partitions are opened before the broker exists); an fsync costs
/// milliseconds, so it is always observed, metrics on or off.
pub struct FsyncStats {
    pub duration: AtomicHistogram,
    /// Offsets (records) one fsync made durable.
    pub records: AtomicHistogram,
}

impl Default for FsyncStats {
    fn default() -> Self {
        FsyncStats {
            duration: AtomicHistogram::seconds(),
            records: AtomicHistogram::new(RECORD_COUNT_BUCKETS, 1.0),
        }
    }
}

impl FsyncStats {
    /// One group-commit fsync took `took` and made `records` more offsets durable.
    pub fn synced(&self, took: Duration, records: u64) {
        self.duration.observe_duration(took);
        self.records.observe(records);
    }
}

/// Produce durability and the maintenance task's work.
pub struct LogActivity {
    /// acks=all Produce: request arrival to every partition acknowledged.
    pub produce_durable: AtomicHistogram,
    pub retention_segments_deleted: AtomicU64,
    pub retention_bytes_deleted: AtomicU64,
    /// Compaction passes that rewrote or deleted something.
    pub compaction_runs: AtomicU64,
    pub compaction_records_removed: AtomicU64,
    pub compaction_bytes_removed: AtomicU64,
}

impl Default for LogActivity {
    fn default() -> Self {
        LogActivity {
            produce_durable: AtomicHistogram::seconds(),
            retention_segments_deleted: AtomicU64::new(0),
            retention_bytes_deleted: AtomicU64::new(0),
            compaction_runs: AtomicU64::new(0),
            compaction_records_removed: AtomicU64::new(0),
            compaction_bytes_removed: AtomicU64::new(0),
        }
    }
}

impl LogActivity {
    pub fn retention(&self, segments: usize, bytes: u64) {
        self.retention_segments_deleted
            .fetch_add(segments as u64, Ordering::Relaxed);
        self.retention_bytes_deleted
            .fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn compacted(&self, report: &herald_log::CompactionReport) {
        if !report.did_work() {
            return;
        }
        self.compaction_runs.fetch_add(1, Ordering::Relaxed);
        self.compaction_records_removed
            .fetch_add(report.records_removed, Ordering::Relaxed);
        self.compaction_bytes_removed.fetch_add(
            report.bytes_before.saturating_sub(report.bytes_after),
            Ordering::Relaxed,
        );
    }

    pub fn collect(&self, fsync: Option<&FsyncStats>, out: &mut Vec<Family>) {
        let c = |a: &AtomicU64| Value::Counter(a.load(Ordering::Relaxed));
        out.push(
            Family::histogram(
                "herald_produce_durable_duration",
                "acks=all Produce: from the request's arrival to all its partitions acknowledged (after fsync with flush.messages=1).",
            )
            .unit(Unit::Seconds)
            .with(vec![], Value::Histogram(self.produce_durable.snapshot())),
        );
        if let Some(f) = fsync {
            out.push(
                Family::histogram(
                    "herald_log_fsync_duration",
                    "Duration of one group-commit fsync (fdatasync) of a partition log's active segment.",
                )
                .unit(Unit::Seconds)
                .with(vec![], Value::Histogram(f.duration.snapshot())),
            );
            out.push(
                Family::histogram(
                    "herald_log_group_commit_records",
                    "Records (offsets) one group-commit fsync made durable.",
                )
                .with(vec![], Value::Histogram(f.records.snapshot())),
            );
        }
        out.push(
            Family::counter(
                "herald_retention_segments_deleted",
                "Log segments deleted by retention.ms / retention.bytes.",
            )
            .with(vec![], c(&self.retention_segments_deleted)),
        );
        out.push(
            Family::counter(
                "herald_retention_deleted",
                "Bytes of log segments deleted by retention.",
            )
            .unit(Unit::Bytes)
            .with(vec![], c(&self.retention_bytes_deleted)),
        );
        out.push(
            Family::counter(
                "herald_compaction_runs",
                "Log compaction passes that removed something.",
            )
            .with(vec![], c(&self.compaction_runs)),
        );
        out.push(
            Family::counter(
                "herald_compaction_records_removed",
                "Records removed by log compaction (superseded keys and expired tombstones).",
            )
            .with(vec![], c(&self.compaction_records_removed)),
        );
        out.push(
            Family::counter(
                "herald_compaction_removed",
                "Bytes by which log compaction shrank the segments it rewrote.",
            )
            .unit(Unit::Bytes)
            .with(vec![], c(&self.compaction_bytes_removed)),
        );
    }
}

/// One partition's offsets at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct PartitionOffsets {
    pub log_start: i64,
    pub high_watermark: i64,
    pub log_end: i64,
    pub size_bytes: u64,
}

/// Reads one partition through the storage interface the handlers use.
pub async fn partition_offsets(
    p: &Arc<dyn crate::storage::PartitionStorage>,
) -> Option<PartitionOffsets> {
    if let Some(local) = p.as_local() {
        // One lock for all four values.
        return local
            .with_log(|l| {
                Ok(PartitionOffsets {
                    log_start: l.log_start_offset(),
                    high_watermark: l.high_watermark(),
                    log_end: l.log_end_offset(),
                    size_bytes: l.size_bytes(),
                })
            })
            .ok();
    }
    let o = p.clone().offsets().await.ok()?;
    Some(PartitionOffsets {
        log_start: o.log_start,
        high_watermark: o.high_watermark,
        // Engines without a separate log end (cluster mode) expose what is
        // committed, which is the high watermark.
        log_end: o.high_watermark,
        size_bytes: p.size_bytes(),
    })
}

/// High watermarks read for the per-partition series, for group lag.
pub type HighWatermarks = HashMap<(String, i32), i64>;

/// Per-partition gauges (the first `metrics_partition_series_max`, in topic
/// and partition order) and totals over all partitions.
pub async fn collect_partitions(broker: &Arc<Broker>, out: &mut Vec<Family>) -> HighWatermarks {
    let max = broker.config.metrics_partition_series_max;
    // User topics only: the internal topics are views of the coordinators'
    // logs, which have their own series (as the console's overview counts).
    let mut topics: Vec<_> = broker
        .topics
        .list()
        .into_iter()
        .filter(|t| !t.is_internal())
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let mut start = Family::gauge(
        "herald_partition_log_start_offset",
        "First offset still stored in the partition.",
    );
    let mut hw = Family::gauge(
        "herald_partition_high_watermark",
        "Offset after the last record consumers may read (the durable end with fsync on ack).",
    );
    let mut end = Family::gauge(
        "herald_partition_log_end_offset",
        "Offset the next appended record gets.",
    );
    let mut size = Family::gauge(
        "herald_partition_log_size",
        "Bytes the partition's log stores.",
    )
    .unit(Unit::Bytes);
    let mut watermarks = HighWatermarks::new();
    let (mut partitions, mut shown, mut total_bytes) = (0u64, 0usize, 0u64);
    for t in &topics {
        for p in t.partitions() {
            partitions += 1;
            if shown >= max {
                total_bytes += p.size_bytes();
                continue;
            }
            let Some(o) = partition_offsets(&p).await else {
                continue; // offline or closing: no series rather than a made-up one
            };
            shown += 1;
            total_bytes += o.size_bytes;
            let l = || {
                vec![
                    ("topic", t.name.clone()),
                    ("partition", p.index().to_string()),
                ]
            };
            start.push(l(), Value::Gauge(o.log_start));
            hw.push(l(), Value::Gauge(o.high_watermark));
            end.push(l(), Value::Gauge(o.log_end));
            size.push(l(), Value::Gauge(o.size_bytes as i64));
            watermarks.insert((t.name.clone(), p.index()), o.high_watermark);
        }
    }
    let dropped = partitions.saturating_sub(shown as u64);
    out.extend([start, hw, end, size]);
    out.push(
        Family::gauge(
            "herald_partition_series_dropped",
            "Partitions left out of the per-partition series (over --metrics-partition-series-max, or unreadable).",
        )
        .with(vec![], Value::Gauge(dropped as i64)),
    );
    out.push(
        Family::gauge("herald_topics", "Topics.").with(vec![], Value::Gauge(topics.len() as i64)),
    );
    out.push(
        Family::gauge("herald_partitions", "Partitions over all topics.")
            .with(vec![], Value::Gauge(partitions as i64)),
    );
    out.push(
        Family::gauge("herald_log_size", "Bytes stored over all partitions.")
            .unit(Unit::Bytes)
            .with(vec![], Value::Gauge(total_bytes as i64)),
    );
    watermarks
}
