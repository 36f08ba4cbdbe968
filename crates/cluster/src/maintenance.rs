//! Background work of cluster mode, in bounded passes so that no statement
//! runs long (Inkless learnt this: unbounded retention scans ran past their
//! timeout):
//! - retention by time and size advances each partition's log start, at most
//!   `RETENTION_ROWS_MAX` batches per partition per pass;
//! - objects no batch references are deleted once their grace period is over;
//! - the orphan reconciler deletes WAL objects that were uploaded but never
//!   committed (a broker crashed between PUT and COMMIT).
//!
//! Every broker runs the passes; they are safe to run concurrently (row locks
//! and idempotent deletes), and each works on what it finds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use herald_broker::Broker;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use tokio::sync::watch;

use crate::engine::{ClusterPartition, advance_log_start};
use crate::objects::Store;

const RETENTION_ROWS_MAX: i64 = 2000;
const DELETE_OBJECTS_MAX: i64 = 500;
const ORPHAN_LIST_MAX: usize = 5000;
const GC_INTERVAL: Duration = Duration::from_secs(10);

pub async fn run(
    broker: Arc<Broker>,
    pool: deadpool_postgres::Pool,
    store: Store,
    prefix: String,
    orphan_age: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_retention = Instant::now();
    let mut last_orphans = Instant::now();
    let tick = GC_INTERVAL.min(broker.config.retention_check_interval);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.changed() => return,
        }
        if last_retention.elapsed() >= broker.config.retention_check_interval {
            last_retention = Instant::now();
            if let Err(e) = retention_pass(&broker, &pool).await {
                tracing::warn!(error = %format!("{e:#}"), "retention pass failed");
            }
        }
        match collect_garbage(&pool, &store).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(objects = n, "deleted unreferenced objects"),
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "object garbage collection failed"),
        }
        if last_orphans.elapsed() >= orphan_age.min(Duration::from_secs(600)) {
            last_orphans = Instant::now();
            match reconcile_orphans(&pool, &store, &prefix, &broker.cluster_id, orphan_age).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    objects = n,
                    "deleted orphan objects (uploaded, never committed)"
                ),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "orphan reconciliation failed"),
            }
        }
    }
}

/// One retention pass over every partition with a time or size limit.
pub async fn retention_pass(broker: &Broker, pool: &deadpool_postgres::Pool) -> anyhow::Result<()> {
    let now = herald_broker::now_ms();
    for topic in broker.topics.list() {
        for p in topic.partitions() {
            let Some(cp) = p.as_any().downcast_ref::<ClusterPartition>() else {
                continue;
            };
            let Some(config) = cp.config() else { continue };
            let age = config.retention_age_max.map(|d| now - d.as_millis() as i64);
            let size = config.retention_bytes_max;
            if age.is_none() && size.is_none() {
                continue;
            }
            let client = pool.get().await?;
            let total: i64 = client
                .query_opt(
                    "SELECT byte_size FROM partitions WHERE topic_id = $1 AND partition = $2",
                    &[&cp.topic_id(), &p.index()],
                )
                .await?
                .map(|r| r.get(0))
                .unwrap_or(0);
            let rows = client
                .query(
                    "SELECT b.last_offset, b.max_timestamp, b.byte_size FROM batches b
                     JOIN partitions p ON p.topic_id = b.topic_id AND p.partition = b.partition
                     WHERE b.topic_id = $1 AND b.partition = $2 AND b.last_offset < p.high_watermark
                     ORDER BY b.base_offset LIMIT $3",
                    &[&cp.topic_id(), &p.index(), &RETENTION_ROWS_MAX],
                )
                .await?;
            drop(client);
            let mut remaining = total;
            let mut new_start = None;
            for r in rows {
                let (last, ts, bytes): (i64, i64, i32) = (r.get(0), r.get(1), r.get(2));
                let too_old = age.is_some_and(|cut| ts < cut);
                let too_big = size.is_some_and(|max| remaining - i64::from(bytes) >= max as i64);
                if !(too_old || too_big) {
                    break;
                }
                remaining -= i64::from(bytes);
                new_start = Some(last + 1);
            }
            if let Some(start) = new_start {
                let s = advance_log_start(pool, cp.topic_id(), p.index(), start).await?;
                tracing::info!(topic = %topic.name, partition = p.index(), log_start = s, "retention advanced the log start");
            }
        }
    }
    Ok(())
}

/// Deletes objects whose grace period is over, and marks objects that lost
/// their last batch without being marked (two deletions racing on one object).
pub async fn collect_garbage(
    pool: &deadpool_postgres::Pool,
    store: &Store,
) -> anyhow::Result<usize> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE objects o SET state = 'deleting', delete_after = now() + make_interval(secs => $1)
             WHERE o.object_id IN (
                 SELECT object_id FROM objects WHERE state = 'live' AND created_at < now() - interval '5 minutes'
                 AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.object_id = objects.object_id)
                 LIMIT $2)",
            &[&(crate::engine::OBJECT_DELETE_GRACE_SECS as f64), &DELETE_OBJECTS_MAX],
        )
        .await?;
    let rows = client
        .query(
            "SELECT object_id, key FROM objects WHERE state = 'deleting' AND delete_after < now()
             ORDER BY object_id LIMIT $1",
            &[&DELETE_OBJECTS_MAX],
        )
        .await?;
    let mut done = Vec::new();
    for r in rows {
        let (id, key): (i64, String) = (r.get(0), r.get(1));
        match store.delete(&Path::from(key.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => done.push(id),
            Err(e) => tracing::warn!(%key, error = %e, "deleting an object failed; retried later"),
        }
    }
    if !done.is_empty() {
        client
            .execute("DELETE FROM objects WHERE object_id = ANY($1)", &[&done])
            .await?;
    }
    Ok(done.len())
}

/// Deletes WAL objects older than `age` that the database does not know.
pub async fn reconcile_orphans(
    pool: &deadpool_postgres::Pool,
    store: &Store,
    prefix: &str,
    cluster_id: &str,
    age: Duration,
) -> anyhow::Result<usize> {
    let dir = if prefix.is_empty() {
        Path::from(format!("wal/{cluster_id}"))
    } else {
        Path::from(format!("{prefix}/wal/{cluster_id}"))
    };
    let cutoff_ms = herald_broker::now_ms() - age.as_millis() as i64;
    let mut old = Vec::new();
    let mut listing = store.list(Some(&dir));
    let mut seen = 0usize;
    while let Some(meta) = listing.next().await {
        let meta = meta?;
        seen += 1;
        if seen > ORPHAN_LIST_MAX {
            break;
        }
        let Some(name) = meta.location.filename() else {
            continue;
        };
        let Ok(id) = uuid::Uuid::parse_str(name) else {
            continue;
        };
        let Some(ts) = id.get_timestamp() else {
            continue;
        };
        let (secs, nanos) = ts.to_unix();
        let ms = secs as i64 * 1000 + i64::from(nanos / 1_000_000);
        if ms < cutoff_ms {
            old.push(meta.location.to_string());
        }
    }
    if old.is_empty() {
        return Ok(0);
    }
    let client = pool.get().await?;
    let known: std::collections::HashSet<String> = client
        .query("SELECT key FROM objects WHERE key = ANY($1)", &[&old])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut deleted = 0;
    for key in old.iter().filter(|k| !known.contains(*k)) {
        match store.delete(&Path::from(key.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
            Err(e) => tracing::warn!(%key, error = %e, "deleting an orphan failed"),
        }
    }
    Ok(deleted)
}
