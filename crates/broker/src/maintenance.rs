//! Periodic work: time-based flushes (`flush.ms`), segment rolls by age
//! (`segment.ms`), retention (`retention.ms`, `retention.bytes`) and log
//! compaction of `cleanup.policy=compact` topics (`log.cleaner.backoff.ms`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::broker::Broker;

const TICK: Duration = Duration::from_millis(100);

pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut last_retention = Instant::now();
    let mut last_cleaner = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => return,
        }
        let retention_due = last_retention.elapsed() >= broker.config.retention_check_interval;
        if retention_due {
            last_retention = Instant::now();
        }
        let now_ms = crate::now_ms();
        if last_cleaner.elapsed() >= broker.config.log_cleaner_backoff {
            last_cleaner = Instant::now();
            clean_compacted(&broker, now_ms).await;
        }
        for topic in broker.topics.list() {
            for p in topic.partitions() {
                let Some(p) = p.as_local() else { continue };
                let result = p.with_log(|log| {
                    if let Some(interval) = log.config().flush_interval
                        && log.unflushed_messages() > 0
                        && log.since_last_flush() >= interval
                    {
                        p.request_flush();
                    }
                    log.roll_if_old()?;
                    if retention_due {
                        let size_before = log.size_bytes();
                        let deleted = log.apply_retention(now_ms)?;
                        if deleted > 0 {
                            broker
                                .metrics
                                .log
                                .retention(deleted, size_before.saturating_sub(log.size_bytes()));
                            tracing::info!(topic = %topic.name, partition = p.index, deleted, "retention deleted segments");
                        }
                    }
                    Ok(())
                });
                if let Err(e) = result {
                    tracing::debug!(topic = %topic.name, partition = p.index, error = %e, "maintenance skipped");
                }
            }
        }
    }
}

/// One cleaner round: compacts every partition of a compacted topic that has
/// enough dirty data. A pass holds the partition's lock (appends to that
/// partition wait), so it runs on the blocking pool, one partition at a time,
/// to keep the runtime's workers and the other partitions free.
async fn clean_compacted(broker: &Arc<Broker>, now_ms: i64) {
    for topic in broker.topics.list() {
        for handle in topic.partitions() {
            let Some(p) = handle.as_local() else { continue };
            let compact = p.with_log(|l| Ok(l.config().compact)).unwrap_or(false);
            if !compact {
                continue;
            }
            let partition = handle.clone();
            let result = tokio::task::spawn_blocking(move || {
                partition
                    .as_local()
                    .ok_or(herald_log::LogError::StorageUnavailable)?
                    .with_log(|l| l.compact(now_ms))
            })
            .await;
            match result {
                Ok(Ok(report)) if report.did_work() => {
                    broker.metrics.log.compacted(&report);
                    tracing::info!(
                        topic = %topic.name,
                        partition = p.index,
                        ?report,
                        "compacted"
                    )
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(topic = %topic.name, partition = p.index, error = %e, "compaction failed")
                }
                Err(e) => tracing::error!(error = %e, "compaction task panicked"),
            }
        }
    }
}
