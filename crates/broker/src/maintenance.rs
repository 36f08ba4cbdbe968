//! Periodic work: time-based flushes (`flush.ms`), segment rolls by age
//! (`segment.ms`) and retention (`retention.ms`, `retention.bytes`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::broker::Broker;

const TICK: Duration = Duration::from_millis(100);

pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut last_retention = Instant::now();
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
        for topic in broker.topics.list() {
            for p in topic.partitions() {
                let result = p.with_log(|log| {
                    if let Some(interval) = log.config().flush_interval
                        && log.unflushed_messages() > 0
                        && log.since_last_flush() >= interval
                    {
                        p.request_flush();
                    }
                    log.roll_if_old()?;
                    if retention_due {
                        let deleted = log.apply_retention(now_ms)?;
                        if deleted > 0 {
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
