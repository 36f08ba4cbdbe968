//! The read path. A Fetch makes one query for all its partitions (each
//! partition's batches from the fetch offset, bounded by its byte limit and a
//! row limit), applies KIP-74's response budget, reads the byte ranges through
//! the block cache with ranged GETs grouped by object, and patches each batch's
//! base offset (the producer sent 0; the CRC does not cover it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use herald_broker::storage::{Offsets, ReadResult};
use herald_log::LogError;
use object_store::path::Path;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::cache::{BLOCK_BYTES, BlockCache};
use crate::objects::Store;
use kafka_protocol::ResponseError;

/// Batch rows one partition may contribute to one fetch.
const ROWS_PER_PARTITION_MAX: i64 = 1000;
/// Concurrent GETs of one broker (reads have their own HTTP client, so a
/// backlog of lagging consumers does not queue in front of uploads).
const GETS_IN_FLIGHT_MAX: usize = 32;

// RecordBatch v2 header fields (Kafka's DefaultRecordBatch).
const BASE_OFFSET_AT: usize = 0;
const LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const LAST_OFFSET_DELTA_AT: usize = 23;
const HEADER_BYTES: usize = 61;

pub struct Reader {
    pool: deadpool_postgres::Pool,
    store: Store,
    cache: Arc<BlockCache>,
    gets: Semaphore,
}

pub struct PartitionRead {
    pub topic_id: Uuid,
    pub partition: i32,
    pub offset: i64,
    pub max_bytes: usize,
}

struct Row {
    base_offset: i64,
    key: String,
    object_size: u64,
    byte_offset: u64,
    byte_size: u64,
}

fn storage_error(e: impl std::fmt::Display) -> LogError {
    tracing::warn!(error = %e, "cluster read failed");
    LogError::Coded {
        code: ResponseError::KafkaStorageError.code(),
        message: format!("cluster storage read failed: {e}"),
    }
}

impl Reader {
    pub fn new(pool: deadpool_postgres::Pool, store: Store, cache: Arc<BlockCache>) -> Reader {
        Reader {
            pool,
            store,
            cache,
            gets: Semaphore::new(GETS_IN_FLIGHT_MAX),
        }
    }

    pub async fn read(
        &self,
        reads: &[PartitionRead],
        budget: usize,
    ) -> Result<Vec<Result<ReadResult, LogError>>, LogError> {
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.pool.get().await.map_err(storage_error)?;
        let topic_ids: Vec<Uuid> = reads.iter().map(|r| r.topic_id).collect();
        let parts: Vec<i32> = reads.iter().map(|r| r.partition).collect();
        let offsets: Vec<i64> = reads.iter().map(|r| r.offset).collect();
        let maxes: Vec<i64> = reads.iter().map(|r| r.max_bytes as i64).collect();
        let rows = client
            .query(
                "SELECT k.idx, p.log_start_offset, p.high_watermark, b.base_offset, o.key, o.size,
                        b.byte_offset, b.byte_size
                 FROM unnest($1::uuid[], $2::int[], $3::bigint[], $4::bigint[])
                      WITH ORDINALITY AS k(topic_id, partition, fetch_offset, max_bytes, idx)
                 LEFT JOIN partitions p ON p.topic_id = k.topic_id AND p.partition = k.partition
                 LEFT JOIN LATERAL (
                     SELECT x.* FROM (
                         SELECT b.base_offset, b.last_offset, b.object_id, b.byte_offset, b.byte_size,
                                sum(b.byte_size) OVER (ORDER BY b.last_offset) AS cum
                         FROM batches b
                         WHERE b.topic_id = k.topic_id AND b.partition = k.partition
                           AND b.last_offset >= k.fetch_offset
                           AND k.fetch_offset >= p.log_start_offset
                           AND k.fetch_offset < p.high_watermark
                         ORDER BY b.last_offset
                         LIMIT $5
                     ) x WHERE x.cum - x.byte_size < k.max_bytes
                 ) b ON true
                 LEFT JOIN objects o ON o.object_id = b.object_id
                 ORDER BY k.idx, b.last_offset",
                &[&topic_ids, &parts, &offsets, &maxes, &ROWS_PER_PARTITION_MAX],
            )
            .await
            .map_err(storage_error)?;
        drop(client);
        // Per request: bounds (None: partition gone), rows.
        let mut bounds: Vec<Option<Offsets>> = vec![None; reads.len()];
        let mut found: Vec<Vec<Row>> = (0..reads.len()).map(|_| Vec::new()).collect();
        for r in rows {
            let idx: i64 = r.get(0);
            let Some(i) = usize::try_from(idx - 1).ok().filter(|i| *i < reads.len()) else {
                continue;
            };
            let start: Option<i64> = r.get(1);
            let hwm: Option<i64> = r.get(2);
            if let (Some(s), Some(h)) = (start, hwm) {
                bounds[i] = Some(Offsets {
                    log_start: s,
                    high_watermark: h,
                    last_stable: h,
                });
            }
            let base: Option<i64> = r.get(3);
            let key: Option<String> = r.get(4);
            if let (Some(base_offset), Some(key)) = (base, key) {
                let size: i64 = r.get(5);
                let off: i64 = r.get(6);
                let len: i32 = r.get(7);
                found[i].push(Row {
                    base_offset,
                    key,
                    object_size: size.max(0) as u64,
                    byte_offset: off.max(0) as u64,
                    byte_size: len.max(0) as u64,
                });
            }
        }
        // KIP-74 budget: the first partition with data may exceed it by its
        // first batch; after it, only rows that fit.
        let mut budget_left = budget;
        let mut total = 0usize;
        let mut plans: Vec<Result<(Offsets, Vec<Row>), LogError>> = Vec::with_capacity(reads.len());
        for (i, req) in reads.iter().enumerate() {
            let Some(b) = bounds[i] else {
                plans.push(Err(LogError::Coded {
                    code: ResponseError::UnknownTopicOrPartition.code(),
                    message: "unknown partition".into(),
                }));
                continue;
            };
            if req.offset < b.log_start || req.offset > b.high_watermark {
                plans.push(Err(LogError::OffsetOutOfRange {
                    offset: req.offset,
                    start: b.log_start,
                    end: b.high_watermark,
                }));
                continue;
            }
            let limit = req.max_bytes.min(budget_left);
            let mut taken = Vec::new();
            let mut used = 0usize;
            for row in std::mem::take(&mut found[i]) {
                let n = row.byte_size as usize;
                let first_of_response = total == 0 && taken.is_empty();
                if !first_of_response && used + n > limit {
                    break;
                }
                used += n;
                taken.push(row);
                if used >= limit {
                    break;
                }
            }
            total += used;
            budget_left = budget_left.saturating_sub(used);
            plans.push(Ok((b, taken)));
        }
        // Fetch the blocks not in the cache, grouped by object.
        let mut wanted: BTreeMap<String, (u64, BTreeSet<u64>)> = BTreeMap::new();
        for (_, rows) in plans.iter().flatten() {
            for row in rows {
                let end = row.byte_offset + row.byte_size;
                if row.byte_size == 0 || end > row.object_size {
                    continue;
                }
                let entry = wanted
                    .entry(row.key.clone())
                    .or_insert((row.object_size, BTreeSet::new()));
                for blk in row.byte_offset / BLOCK_BYTES..=(end - 1) / BLOCK_BYTES {
                    if self.cache.get(&row.key, blk).is_none() {
                        entry.1.insert(blk);
                    }
                }
            }
        }
        let fetches = wanted
            .into_iter()
            .filter(|(_, (_, blocks))| !blocks.is_empty())
            .map(|(key, (size, blocks))| self.fetch_blocks(key, size, blocks));
        for r in futures::future::join_all(fetches).await {
            r?;
        }
        let mut out = Vec::with_capacity(plans.len());
        for plan in plans {
            out.push(match plan {
                Err(e) => Err(e),
                Ok((offsets, rows)) => self.assemble(offsets, &rows),
            });
        }
        Ok(out)
    }

    async fn fetch_blocks(
        &self,
        key: String,
        size: u64,
        blocks: BTreeSet<u64>,
    ) -> Result<(), LogError> {
        let _permit = self.gets.acquire().await.map_err(storage_error)?;
        let ranges: Vec<std::ops::Range<u64>> = blocks
            .iter()
            .map(|b| b * BLOCK_BYTES..((b + 1) * BLOCK_BYTES).min(size))
            .collect();
        let path = Path::from(key.as_str());
        let data = self
            .store
            .get_ranges(&path, &ranges)
            .await
            .map_err(storage_error)?;
        for (blk, bytes) in blocks.into_iter().zip(data) {
            self.cache.insert(&key, blk, bytes);
        }
        Ok(())
    }

    fn assemble(&self, offsets: Offsets, rows: &[Row]) -> Result<ReadResult, LogError> {
        let total: u64 = rows.iter().map(|r| r.byte_size).sum();
        let mut out = BytesMut::with_capacity(total as usize);
        for row in rows {
            let start_len = out.len();
            let end = row.byte_offset + row.byte_size;
            let mut pos = row.byte_offset;
            while pos < end {
                let blk = pos / BLOCK_BYTES;
                let block = self
                    .cache
                    .get(&row.key, blk)
                    .ok_or_else(|| storage_error(format!("block {blk} of {} missing", row.key)))?;
                let in_block = (pos - blk * BLOCK_BYTES) as usize;
                let take = ((end - pos) as usize).min(block.len().saturating_sub(in_block));
                if take == 0 {
                    return Err(storage_error(format!(
                        "object {} is shorter than recorded",
                        row.key
                    )));
                }
                out.extend_from_slice(&block[in_block..in_block + take]);
                pos += take as u64;
            }
            patch_offsets(&mut out[start_len..], row.base_offset)?;
        }
        Ok(ReadResult {
            offsets,
            records: Bytes::from(out),
            aborted: Vec::new(),
        })
    }
}

/// Gives the batches of one stored append their offsets, from `base`.
pub fn patch_offsets(bytes: &mut [u8], base: i64) -> Result<(), LogError> {
    let mut pos = 0usize;
    let mut next = base;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < HEADER_BYTES {
            return Err(LogError::CorruptBatch(
                "stored batch shorter than its header",
            ));
        }
        let length = i32::from_be_bytes([
            rest[LENGTH_AT],
            rest[LENGTH_AT + 1],
            rest[LENGTH_AT + 2],
            rest[LENGTH_AT + 3],
        ]);
        let total = usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_add(12))
            .filter(|t| *t >= HEADER_BYTES && *t <= rest.len())
            .ok_or(LogError::CorruptBatch("stored batch length out of bounds"))?;
        let delta = i32::from_be_bytes([
            rest[LAST_OFFSET_DELTA_AT],
            rest[LAST_OFFSET_DELTA_AT + 1],
            rest[LAST_OFFSET_DELTA_AT + 2],
            rest[LAST_OFFSET_DELTA_AT + 3],
        ]);
        let b = &mut bytes[pos..pos + total];
        b[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&next.to_be_bytes());
        b[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&0i32.to_be_bytes());
        next += i64::from(delta.max(0)) + 1;
        pos += total;
    }
    Ok(())
}
