//! `ClusterEngine`: herald_broker's storage seam (`storage::Engine`,
//! `storage::PartitionStorage`) over PostgreSQL and object storage. Topics
//! live in the `topics` and `partitions` tables; records in WAL objects
//! (`wal.rs`), found through the `batches` table (`read.rs`).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use herald_broker::storage::{
    Appended, Engine, OffsetQuery, Offsets, PartitionStorage, ReadRequest, ReadResult,
    StorageFuture, TopicMeta,
};
use herald_broker::topic_registry::TopicError;
use herald_log::{LogConfig, LogError, TimestampHit, batch};
use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

use crate::read::{PartitionRead, Reader};
use crate::wal::{PendingAppend, Wal};
use kafka_protocol::ResponseError;

/// How long an object no batch references is kept before deletion: longer than
/// the slowest fetch (fetch waits are capped at 30 s) so no reader loses it.
pub const OBJECT_DELETE_GRACE_SECS: i64 = 60;

pub struct ClusterEngine {
    pub(crate) pool: deadpool_postgres::Pool,
    pub(crate) wal: Arc<Wal>,
    pub(crate) reader: Arc<Reader>,
    pub(crate) topics_notify: Arc<Notify>,
}

fn db_error(e: impl std::fmt::Display) -> TopicError {
    TopicError::Io(std::io::Error::other(format!("cluster database: {e}")))
}

fn log_db_error(e: impl std::fmt::Display) -> LogError {
    tracing::warn!(error = %e, "cluster database error");
    LogError::Coded {
        code: ResponseError::KafkaStorageError.code(),
        message: format!("cluster database: {e}"),
    }
}

/// Topic configs cluster mode cannot honour yet are refused, not ignored.
pub fn check_supported(configs: &BTreeMap<String, String>) -> Result<(), TopicError> {
    if let Some(p) = configs.get("cleanup.policy")
        && p.split(',').any(|x| x.trim() == "compact")
    {
        return Err(TopicError::Unsupported(
            "cleanup.policy=compact is not supported in cluster mode yet".into(),
        ));
    }
    if configs.get("message.timestamp.type").map(String::as_str) == Some("LogAppendTime") {
        return Err(TopicError::Unsupported(
            "message.timestamp.type=LogAppendTime is not supported in cluster mode yet \
             (batches are stored exactly as produced)"
                .into(),
        ));
    }
    if let Some(c) = configs.get("compression.type")
        && c != "producer"
    {
        return Err(TopicError::Unsupported(format!(
            "compression.type={c} is not supported in cluster mode yet (batches are stored \
             exactly as produced; use compression.type=producer)"
        )));
    }
    Ok(())
}

impl ClusterEngine {
    async fn create(pool: deadpool_postgres::Pool, meta: TopicMeta) -> Result<(), TopicError> {
        check_supported(&meta.configs)?;
        let mut client = pool.get().await.map_err(db_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        let configs = serde_json::to_value(&meta.configs).map_err(db_error)?;
        let inserted = tx
            .execute(
                "INSERT INTO topics (topic_id, name, partitions, configs) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO NOTHING",
                &[&meta.id, &meta.name, &meta.partitions, &configs],
            )
            .await
            .map_err(db_error)?;
        if inserted == 0 {
            return Err(TopicError::AlreadyExists(meta.name));
        }
        partition_rows_and_notify(tx, &meta).await
    }

    async fn update(pool: deadpool_postgres::Pool, meta: TopicMeta) -> Result<(), TopicError> {
        check_supported(&meta.configs)?;
        let mut client = pool.get().await.map_err(db_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        let configs = serde_json::to_value(&meta.configs).map_err(db_error)?;
        let n = tx
            .execute(
                "UPDATE topics SET partitions = greatest(partitions, $2), configs = $3 WHERE topic_id = $1",
                &[&meta.id, &meta.partitions, &configs],
            )
            .await
            .map_err(db_error)?;
        if n == 0 {
            return Err(TopicError::Unknown(meta.name));
        }
        partition_rows_and_notify(tx, &meta).await
    }

    async fn delete(pool: deadpool_postgres::Pool, meta: TopicMeta) -> Result<(), TopicError> {
        let mut client = pool.get().await.map_err(db_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        // Lock the partitions first, as commits do, so no commit of this topic
        // runs between the deletes.
        tx.execute(
            "SELECT 1 FROM partitions WHERE topic_id = $1 ORDER BY partition FOR UPDATE",
            &[&meta.id],
        )
        .await
        .map_err(db_error)?;
        let rows = tx
            .query(
                "DELETE FROM batches WHERE topic_id = $1 RETURNING object_id",
                &[&meta.id],
            )
            .await
            .map_err(db_error)?;
        let mut objects: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        objects.sort_unstable();
        objects.dedup();
        tx.execute(
            "DELETE FROM producer_state WHERE topic_id = $1",
            &[&meta.id],
        )
        .await
        .map_err(db_error)?;
        tx.execute("DELETE FROM topics WHERE topic_id = $1", &[&meta.id])
            .await
            .map_err(db_error)?;
        mark_unreferenced(&tx, &objects).await.map_err(db_error)?;
        tx.execute("NOTIFY herald_topics", &[])
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)
    }
}

/// Gives a topic a row for each of its partitions (new ones only: a count
/// only grows), tells every broker, and commits.
async fn partition_rows_and_notify(
    tx: deadpool_postgres::Transaction<'_>,
    meta: &TopicMeta,
) -> Result<(), TopicError> {
    tx.execute(
        "INSERT INTO partitions (topic_id, partition) SELECT $1, generate_series(0, $2 - 1)
         ON CONFLICT DO NOTHING",
        &[&meta.id, &meta.partitions],
    )
    .await
    .map_err(db_error)?;
    tx.execute("NOTIFY herald_topics", &[])
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)
}

/// Marks the objects among `ids` that no batch references any more for deletion.
pub async fn mark_unreferenced(
    tx: &deadpool_postgres::Transaction<'_>,
    ids: &[i64],
) -> Result<u64, tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    tx.execute(
        "UPDATE objects o SET state = 'deleting', delete_after = now() + make_interval(secs => $2)
         WHERE o.object_id = ANY($1) AND o.state = 'live'
           AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.object_id = o.object_id)",
        &[&ids, &(OBJECT_DELETE_GRACE_SECS as f64)],
    )
    .await
}

/// Advances a partition's log start to `before` (clamped to the high
/// watermark when -1), dropping the batches wholly below it. Returns the new
/// log start.
pub async fn advance_log_start(
    pool: &deadpool_postgres::Pool,
    topic_id: Uuid,
    partition: i32,
    before: i64,
) -> Result<i64, LogError> {
    let mut client = pool.get().await.map_err(log_db_error)?;
    let tx = client.transaction().await.map_err(log_db_error)?;
    let row = tx
        .query_opt(
            "SELECT log_start_offset, high_watermark FROM partitions
             WHERE topic_id = $1 AND partition = $2 FOR UPDATE",
            &[&topic_id, &partition],
        )
        .await
        .map_err(log_db_error)?
        .ok_or(LogError::Coded {
            code: ResponseError::UnknownTopicOrPartition.code(),
            message: "unknown partition".into(),
        })?;
    let (start, hwm): (i64, i64) = (row.get(0), row.get(1));
    let target = if before == -1 { hwm } else { before };
    if target < 0 || target > hwm {
        return Err(LogError::OffsetOutOfRange {
            offset: target,
            start,
            end: hwm,
        });
    }
    if target <= start {
        return Ok(start);
    }
    let rows = tx
        .query(
            "DELETE FROM batches WHERE topic_id = $1 AND partition = $2 AND last_offset < $3
             RETURNING object_id, byte_size",
            &[&topic_id, &partition, &target],
        )
        .await
        .map_err(log_db_error)?;
    let freed: i64 = rows.iter().map(|r| i64::from(r.get::<_, i32>(1))).sum();
    let mut objects: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    objects.sort_unstable();
    objects.dedup();
    tx.execute(
        "UPDATE partitions SET log_start_offset = $3, byte_size = greatest(byte_size - $4, 0)
         WHERE topic_id = $1 AND partition = $2",
        &[&topic_id, &partition, &target, &freed],
    )
    .await
    .map_err(log_db_error)?;
    mark_unreferenced(&tx, &objects)
        .await
        .map_err(log_db_error)?;
    tx.commit().await.map_err(log_db_error)?;
    Ok(target)
}

fn boxed<T: Send + 'static, E: Send + 'static>(
    f: impl std::future::Future<Output = Result<T, E>> + Send + 'static,
) -> StorageFuture<T, E> {
    Box::pin(f)
}

impl Engine for ClusterEngine {
    fn kind(&self) -> &'static str {
        "cluster"
    }

    fn load_topics(&self) -> StorageFuture<Vec<TopicMeta>, TopicError> {
        let pool = self.pool.clone();
        boxed(async move {
            let client = pool.get().await.map_err(db_error)?;
            let rows = client
                .query(
                    "SELECT topic_id, name, partitions, configs FROM topics",
                    &[],
                )
                .await
                .map_err(db_error)?;
            let mut metas = Vec::with_capacity(rows.len());
            for r in rows {
                let configs: serde_json::Value = r.get(3);
                metas.push(TopicMeta {
                    id: r.get(0),
                    name: r.get(1),
                    partitions: r.get(2),
                    configs: serde_json::from_value(configs).unwrap_or_default(),
                });
            }
            Ok(metas)
        })
    }

    fn create_topic(&self, meta: TopicMeta) -> StorageFuture<(), TopicError> {
        boxed(Self::create(self.pool.clone(), meta))
    }

    fn update_topic(&self, meta: TopicMeta) -> StorageFuture<(), TopicError> {
        boxed(Self::update(self.pool.clone(), meta))
    }

    fn delete_topic(&self, meta: TopicMeta) -> StorageFuture<(), TopicError> {
        boxed(Self::delete(self.pool.clone(), meta))
    }

    fn open_partition(
        &self,
        topic: &TopicMeta,
        index: i32,
        config: LogConfig,
    ) -> Result<Arc<dyn PartitionStorage>, TopicError> {
        Ok(Arc::new(ClusterPartition {
            topic: topic.name.clone(),
            topic_id: topic.id,
            index,
            config: RwLock::new(config),
            wal: self.wal.clone(),
            reader: self.reader.clone(),
            pool: self.pool.clone(),
            closed: AtomicBool::new(false),
            size_bytes: AtomicU64::new(0),
        }))
    }

    fn topics_changed(&self) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let n = self.topics_notify.clone();
        Box::pin(async move { n.notified().await })
    }

    fn read(
        &self,
        reads: Vec<ReadRequest>,
        budget: usize,
    ) -> StorageFuture<Vec<Result<ReadResult, LogError>>, LogError> {
        let reader = self.reader.clone();
        let mut plan = Vec::with_capacity(reads.len());
        let mut refused = Vec::with_capacity(reads.len());
        for r in &reads {
            match r
                .partition
                .as_any()
                .downcast_ref::<ClusterPartition>()
                .map(|p| p.topic_id)
            {
                Some(topic_id) => {
                    refused.push(false);
                    plan.push(PartitionRead {
                        topic_id,
                        partition: r.partition.index(),
                        offset: r.offset,
                        max_bytes: r.max_bytes,
                    });
                }
                None => refused.push(true),
            }
        }
        boxed(async move {
            let mut results = reader.read(&plan, budget).await?.into_iter();
            Ok(refused
                .into_iter()
                .map(|bad| {
                    if bad {
                        Err(LogError::StorageUnavailable)
                    } else {
                        results.next().unwrap_or(Err(LogError::StorageUnavailable))
                    }
                })
                .collect())
        })
    }

    fn admit(&self, _bytes: usize) -> Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let wal = self.wal.clone();
        Box::pin(async move { wal.admit().await })
    }

    fn allocate_producer_ids(&self, count: i64) -> StorageFuture<(i64, i64), std::io::Error> {
        let pool = self.pool.clone();
        boxed(async move {
            let client = pool.get().await.map_err(std::io::Error::other)?;
            // The sequence steps by 1000: each nextval is a fresh block.
            let start: i64 = client
                .query_one("SELECT nextval('producer_ids')", &[])
                .await
                .map_err(std::io::Error::other)?
                .get(0);
            Ok((start, start + count.min(1000)))
        })
    }
}

pub struct ClusterPartition {
    topic: String,
    topic_id: Uuid,
    index: i32,
    config: RwLock<LogConfig>,
    wal: Arc<Wal>,
    reader: Arc<Reader>,
    pool: deadpool_postgres::Pool,
    closed: AtomicBool,
    size_bytes: AtomicU64,
}

impl std::fmt::Debug for ClusterPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterPartition({})", self.topic_id)
    }
}

impl ClusterPartition {
    fn validate(&self, records: &[u8]) -> Result<Vec<batch::BatchHeader>, LogError> {
        let max = self
            .config
            .read()
            .map(|c| c.message_bytes_max)
            .map_err(|_| LogError::StorageUnavailable)?;
        let batches = batch::split(records)?;
        if batches.is_empty() {
            return Err(LogError::InvalidRecord("no record batch"));
        }
        let mut headers = Vec::with_capacity(batches.len());
        for b in batches {
            if b.len() > max {
                return Err(LogError::MessageTooLarge {
                    bytes: b.len(),
                    max,
                });
            }
            headers.push(batch::validate_produced(b)?);
        }
        Ok(headers)
    }

    async fn offsets_now(&self) -> Result<Offsets, LogError> {
        let client = self.pool.get().await.map_err(log_db_error)?;
        let row = client
            .query_opt(
                "SELECT log_start_offset, high_watermark, byte_size FROM partitions
                 WHERE topic_id = $1 AND partition = $2",
                &[&self.topic_id, &self.index],
            )
            .await
            .map_err(log_db_error)?
            .ok_or(LogError::Coded {
                code: ResponseError::UnknownTopicOrPartition.code(),
                message: "unknown partition".into(),
            })?;
        let size: i64 = row.get(2);
        self.size_bytes.store(size.max(0) as u64, Ordering::Relaxed);
        Ok(Offsets {
            log_start: row.get(0),
            high_watermark: row.get(1),
            // Transactions are refused in cluster mode: nothing is ever open.
            last_stable: row.get(1),
        })
    }

    async fn lookup_now(&self, query: OffsetQuery) -> Result<(i64, i64), LogError> {
        let o = self.offsets_now().await?;
        let (sql, target) = match query {
            OffsetQuery::Earliest => return Ok((o.log_start, -1)),
            OffsetQuery::Latest => return Ok((o.high_watermark, -1)),
            OffsetQuery::MaxTimestamp => (
                "SELECT base_offset FROM batches WHERE topic_id = $1 AND partition = $2
                   AND last_offset >= $3 AND max_timestamp >= $4
                 ORDER BY max_timestamp DESC, base_offset LIMIT 1",
                None,
            ),
            OffsetQuery::AtOrAfter(t) => (
                "SELECT base_offset FROM batches WHERE topic_id = $1 AND partition = $2
                   AND last_offset >= $3 AND max_timestamp >= $4
                 ORDER BY base_offset LIMIT 1",
                Some(t),
            ),
        };
        let client = self.pool.get().await.map_err(log_db_error)?;
        let row = client
            .query_opt(
                sql,
                &[
                    &self.topic_id,
                    &self.index,
                    &o.log_start,
                    &target.unwrap_or(i64::MIN),
                ],
            )
            .await
            .map_err(log_db_error)?;
        drop(client);
        let Some(row) = row else { return Ok((-1, -1)) };
        let base: i64 = row.get(0);
        // Read that append (all its batches) to find the exact record.
        let read = self
            .reader
            .read(
                &[PartitionRead {
                    topic_id: self.topic_id,
                    partition: self.index,
                    offset: base,
                    max_bytes: 1,
                }],
                1,
            )
            .await?
            .pop()
            .unwrap_or(Err(LogError::StorageUnavailable))?;
        let mut best: Option<(i64, i64)> = None;
        for b in batch::split(&read.records)? {
            let header = batch::BatchHeader::parse(b)?;
            let hit = TimestampHit {
                header,
                batch: b.to_vec(),
            };
            match target {
                Some(t) if header.max_timestamp >= t => {
                    let (off, ts) = herald_broker::storage::local::record_in_batch(&hit, Some(t));
                    return Ok((off.max(o.log_start), ts));
                }
                Some(_) => {}
                None => {
                    if best.is_none_or(|(_, ts)| header.max_timestamp > ts) {
                        best = Some(herald_broker::storage::local::record_in_batch(&hit, None));
                    }
                }
            }
        }
        Ok(best.unwrap_or((-1, -1)))
    }
}

impl PartitionStorage for ClusterPartition {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn index(&self) -> i32 {
        self.index
    }

    fn append(
        self: Arc<Self>,
        records: Bytes,
        _acks: i16,
        _now_ms: i64,
    ) -> StorageFuture<Appended> {
        if self.closed.load(Ordering::SeqCst) {
            return boxed(std::future::ready(Err(LogError::StorageUnavailable)));
        }
        let headers = match self.validate(&records) {
            Ok(h) => h,
            Err(e) => return boxed(std::future::ready(Err(e))),
        };
        let (tx, rx) = oneshot::channel();
        // Buffered now (call order); acks 0, 1 and all alike are answered after
        // the commit: durable in object storage and the database.
        self.wal.append(PendingAppend {
            topic_id: self.topic_id,
            partition: self.index,
            records,
            headers,
            reply: tx,
        });
        boxed(async move { rx.await.unwrap_or(Err(LogError::StorageUnavailable)) })
    }

    fn offsets(self: Arc<Self>) -> StorageFuture<Offsets> {
        boxed(async move { self.offsets_now().await })
    }

    fn lookup(self: Arc<Self>, query: OffsetQuery) -> StorageFuture<(i64, i64)> {
        boxed(async move { self.lookup_now(query).await })
    }

    fn delete_records(self: Arc<Self>, before: i64) -> StorageFuture<i64> {
        boxed(async move { advance_log_start(&self.pool, self.topic_id, self.index, before).await })
    }

    fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Relaxed)
    }

    fn set_config(&self, config: LogConfig) -> Result<(), LogError> {
        *self
            .config
            .write()
            .map_err(|_| LogError::StorageUnavailable)? = config;
        Ok(())
    }

    fn close(&self) -> Result<(), LogError> {
        self.closed.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl ClusterPartition {
    pub fn topic_id(&self) -> Uuid {
        self.topic_id
    }
    pub fn config(&self) -> Option<LogConfig> {
        self.config.read().ok().map(|c| c.clone())
    }
}
