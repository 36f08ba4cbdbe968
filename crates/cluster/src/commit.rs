//! The commit of one WAL object: one PostgreSQL transaction that
//! 1. inserts the object's row (its key is unique: a retried commit finds the
//!    row and returns the answers stored with it, applying nothing twice);
//! 2. locks the partition rows it touches, in (topic id, partition) order, so
//!    that concurrent committers cannot deadlock;
//! 3. runs the idempotent-producer checks exactly as the single-node log does
//!    (herald_log::producer_state: epoch, sequence, a duplicate of one of the
//!    last five batches answered with its original offset);
//! 4. gives each accepted append contiguous offsets from the high watermark,
//!    records its batches and producer state, advances the high watermarks;
//! 5. notifies `herald_hwm`, which wakes long-polling fetches on every broker.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use herald_broker::storage::Appended;
use herald_log::LogError;
use herald_log::batch::BatchHeader;
use herald_log::producer_state::{CachedBatch, ProducerEntry, ProducerStateTable, SequenceVerdict};
use uuid::Uuid;

use kafka_protocol::ResponseError;

pub struct AppendInput {
    pub topic_id: Uuid,
    pub partition: i32,
    pub byte_offset: i64,
    pub byte_size: i32,
    pub headers: Vec<BatchHeader>,
}

pub struct CommitInput {
    pub key: String,
    pub size: i64,
    pub broker_id: i32,
    pub appends: Vec<AppendInput>,
}

#[derive(Debug)]
pub enum AppendResult {
    Ok(Appended),
    Err(LogError),
}

/// Bytes per stored answer: i16 code, i64 base offset, i64 log start.
const RESULT_BYTES: usize = 18;

fn encode_results(results: &[(i16, i64, i64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(results.len() * RESULT_BYTES);
    for (code, base, start) in results {
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(&base.to_be_bytes());
        out.extend_from_slice(&start.to_be_bytes());
    }
    out
}

fn decode_results(bytes: &[u8], expected: usize) -> anyhow::Result<Vec<AppendResult>> {
    anyhow::ensure!(
        bytes.len() == expected * RESULT_BYTES,
        "stored commit answers have {} bytes, expected {}",
        bytes.len(),
        expected * RESULT_BYTES
    );
    Ok(bytes
        .chunks_exact(RESULT_BYTES)
        .map(|c| {
            let code = i16::from_be_bytes([c[0], c[1]]);
            let base = i64::from_be_bytes(c[2..10].try_into().unwrap_or([0; 8]));
            let start = i64::from_be_bytes(c[10..18].try_into().unwrap_or([0; 8]));
            if code == 0 {
                AppendResult::Ok(Appended {
                    base_offset: base,
                    log_append_time_ms: -1,
                    log_start_offset: start,
                })
            } else {
                AppendResult::Err(LogError::Coded {
                    code,
                    message: "refused when first committed".into(),
                })
            }
        })
        .collect())
}

struct PartitionRow {
    log_start: i64,
    hwm: i64,
    added_bytes: i64,
    producers: ProducerStateTable,
    touched: std::collections::BTreeSet<i64>,
}

/// Runs the commit transaction (see the module comment).
pub async fn commit(
    pool: &deadpool_postgres::Pool,
    input: &CommitInput,
) -> anyhow::Result<Vec<AppendResult>> {
    let mut client = pool.get().await.context("getting a database connection")?;
    let tx = client.transaction().await?;
    let inserted = tx
        .query_opt(
            "INSERT INTO objects (key, size, broker_id, results) VALUES ($1, $2, $3, '')
             ON CONFLICT (key) DO NOTHING RETURNING object_id",
            &[&input.key, &input.size, &input.broker_id],
        )
        .await?;
    let Some(row) = inserted else {
        let stored: Vec<u8> = tx
            .query_one("SELECT results FROM objects WHERE key = $1", &[&input.key])
            .await?
            .get(0);
        tx.rollback().await?;
        tracing::info!(key = %input.key, "commit was already applied; answering as first committed");
        return decode_results(&stored, input.appends.len());
    };
    let object_id: i64 = row.get(0);

    // Lock the partitions in a fixed order.
    let mut keys: Vec<(Uuid, i32)> = input
        .appends
        .iter()
        .map(|a| (a.topic_id, a.partition))
        .collect();
    keys.sort();
    keys.dedup();
    let topic_ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
    let parts: Vec<i32> = keys.iter().map(|k| k.1).collect();
    let rows = tx
        .query(
            "SELECT p.topic_id, p.partition, p.log_start_offset, p.high_watermark
             FROM partitions p
             JOIN unnest($1::uuid[], $2::int[]) AS k(topic_id, partition)
               ON p.topic_id = k.topic_id AND p.partition = k.partition
             ORDER BY p.topic_id, p.partition
             FOR UPDATE OF p",
            &[&topic_ids, &parts],
        )
        .await?;
    let mut state: BTreeMap<(Uuid, i32), PartitionRow> = BTreeMap::new();
    for r in rows {
        state.insert(
            (r.get(0), r.get(1)),
            PartitionRow {
                log_start: r.get(2),
                hwm: r.get(3),
                added_bytes: 0,
                producers: ProducerStateTable::default(),
                touched: Default::default(),
            },
        );
    }

    // Producer state of the producers in this object.
    let mut pkeys: Vec<(Uuid, i32, i64)> = input
        .appends
        .iter()
        .flat_map(|a| {
            a.headers
                .iter()
                .filter(|h| h.has_producer_id())
                .map(move |h| (a.topic_id, a.partition, h.producer_id))
        })
        .collect();
    pkeys.sort();
    pkeys.dedup();
    if !pkeys.is_empty() {
        let t: Vec<Uuid> = pkeys.iter().map(|k| k.0).collect();
        let p: Vec<i32> = pkeys.iter().map(|k| k.1).collect();
        let id: Vec<i64> = pkeys.iter().map(|k| k.2).collect();
        let rows = tx
            .query(
                "SELECT s.topic_id, s.partition, s.producer_id, s.epoch, s.base_seq, s.last_seq, s.base_offset
                 FROM producer_state s
                 JOIN unnest($1::uuid[], $2::int[], $3::bigint[]) AS k(topic_id, partition, producer_id)
                   ON s.topic_id = k.topic_id AND s.partition = k.partition AND s.producer_id = k.producer_id
                 ORDER BY s.row_id",
                &[&t, &p, &id],
            )
            .await?;
        let mut entries: HashMap<(Uuid, i32, i64), ProducerEntry> = HashMap::new();
        for r in rows {
            let k = (r.get(0), r.get(1), r.get(2));
            let e = entries.entry(k).or_default();
            e.epoch = r.get(3);
            e.batches.push_back(CachedBatch {
                first_sequence: r.get(4),
                last_sequence: r.get(5),
                base_offset: r.get(6),
            });
        }
        for ((t, p, id), e) in entries {
            if let Some(ps) = state.get_mut(&(t, p)) {
                ps.producers.insert(id, e);
            }
        }
    }

    let now = herald_broker::now_ms();
    let mut answers: Vec<(i16, i64, i64)> = Vec::with_capacity(input.appends.len());
    let mut results = Vec::with_capacity(input.appends.len());
    // New batches rows.
    let (mut b_topic, mut b_part, mut b_base, mut b_last) = (vec![], vec![], vec![], vec![]);
    let (mut b_off, mut b_size, mut b_maxts) = (vec![], vec![], vec![]);
    for a in &input.appends {
        let Some(ps) = state.get_mut(&(a.topic_id, a.partition)) else {
            let e = LogError::Coded {
                code: ResponseError::UnknownTopicOrPartition.code(),
                message: "the partition was deleted".into(),
            };
            answers.push((herald_broker::error::log_error_code(&e), -1, -1));
            results.push(AppendResult::Err(e));
            continue;
        };
        match check_append(&ps.producers, &a.headers) {
            Err(e) => {
                answers.push((herald_broker::error::log_error_code(&e), -1, -1));
                results.push(AppendResult::Err(e));
            }
            Ok(Some(original)) => {
                let appended = Appended {
                    base_offset: original,
                    log_append_time_ms: -1,
                    log_start_offset: ps.log_start,
                };
                answers.push((0, original, ps.log_start));
                results.push(AppendResult::Ok(appended));
            }
            Ok(None) => {
                let base = ps.hwm;
                let mut next = base;
                let mut max_ts = -1i64;
                for h in &a.headers {
                    let mut assigned = *h;
                    assigned.base_offset = next;
                    ps.producers.record(&assigned);
                    if assigned.has_producer_id() {
                        ps.touched.insert(assigned.producer_id);
                    }
                    next += h.last_offset_delta as i64 + 1;
                    max_ts = max_ts.max(h.max_timestamp);
                }
                ps.hwm = next;
                ps.added_bytes += a.byte_size as i64;
                b_topic.push(a.topic_id);
                b_part.push(a.partition);
                b_base.push(base);
                b_last.push(next - 1);
                b_off.push(a.byte_offset);
                b_size.push(a.byte_size);
                b_maxts.push(max_ts);
                answers.push((0, base, ps.log_start));
                results.push(AppendResult::Ok(Appended {
                    base_offset: base,
                    log_append_time_ms: -1,
                    log_start_offset: ps.log_start,
                }));
            }
        }
    }

    if !b_topic.is_empty() {
        tx.execute(
            "INSERT INTO batches (topic_id, partition, base_offset, last_offset, object_id,
                                  byte_offset, byte_size, max_timestamp, append_time)
             SELECT t, p, b, l, $8, o, s, m, $9
             FROM unnest($1::uuid[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[],
                         $6::int[], $7::bigint[]) AS v(t, p, b, l, o, s, m)",
            &[
                &b_topic, &b_part, &b_base, &b_last, &b_off, &b_size, &b_maxts, &object_id, &now,
            ],
        )
        .await?;
    }
    // Producer state: each touched producer's rows replaced by its current
    // entry (at most five batches, all of its current epoch).
    let (mut s_topic, mut s_part, mut s_pid) = (vec![], vec![], vec![]);
    let (mut n_topic, mut n_part, mut n_pid, mut n_epoch) = (vec![], vec![], vec![], vec![]);
    let (mut n_first, mut n_last, mut n_base) = (vec![], vec![], vec![]);
    for ((t, p), ps) in &state {
        for pid in &ps.touched {
            s_topic.push(*t);
            s_part.push(*p);
            s_pid.push(*pid);
            if let Some(e) = ps.producers.get(*pid) {
                for b in &e.batches {
                    n_topic.push(*t);
                    n_part.push(*p);
                    n_pid.push(*pid);
                    n_epoch.push(e.epoch);
                    n_first.push(b.first_sequence);
                    n_last.push(b.last_sequence);
                    n_base.push(b.base_offset);
                }
            }
        }
    }
    if !s_topic.is_empty() {
        tx.execute(
            "DELETE FROM producer_state s
             USING unnest($1::uuid[], $2::int[], $3::bigint[]) AS k(topic_id, partition, producer_id)
             WHERE s.topic_id = k.topic_id AND s.partition = k.partition AND s.producer_id = k.producer_id",
            &[&s_topic, &s_part, &s_pid],
        )
        .await?;
        tx.execute(
            "INSERT INTO producer_state (topic_id, partition, producer_id, epoch, base_seq, last_seq, base_offset)
             SELECT * FROM unnest($1::uuid[], $2::int[], $3::bigint[], $4::smallint[], $5::int[], $6::int[], $7::bigint[])",
            &[&n_topic, &n_part, &n_pid, &n_epoch, &n_first, &n_last, &n_base],
        )
        .await?;
    }
    let (mut u_topic, mut u_part, mut u_hwm, mut u_bytes) = (vec![], vec![], vec![], vec![]);
    for ((t, p), ps) in &state {
        if ps.added_bytes > 0 {
            u_topic.push(*t);
            u_part.push(*p);
            u_hwm.push(ps.hwm);
            u_bytes.push(ps.added_bytes);
        }
    }
    if !u_topic.is_empty() {
        tx.execute(
            "UPDATE partitions p SET high_watermark = v.h, byte_size = p.byte_size + v.b
             FROM unnest($1::uuid[], $2::int[], $3::bigint[], $4::bigint[]) AS v(t, pa, h, b)
             WHERE p.topic_id = v.t AND p.partition = v.pa",
            &[&u_topic, &u_part, &u_hwm, &u_bytes],
        )
        .await?;
        tx.execute("NOTIFY herald_hwm", &[]).await?;
    }
    let encoded = encode_results(&answers);
    if b_topic.is_empty() {
        // Nothing of it is referenced: the garbage collector may delete it.
        tx.execute(
            "UPDATE objects SET results = $2, state = 'deleting', delete_after = now() WHERE object_id = $1",
            &[&object_id, &encoded],
        )
        .await?;
    } else {
        tx.execute(
            "UPDATE objects SET results = $2 WHERE object_id = $1",
            &[&object_id, &encoded],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(results)
}

/// The idempotence check of one append, against a partition's producer state:
/// None to append, Some(base offset) for a duplicate of a cached batch.
/// Mirrors herald_log::PartitionLog's rule: batches of a producer already
/// earlier in the same append are checked against that append's own state.
fn check_append(
    producers: &ProducerStateTable,
    headers: &[BatchHeader],
) -> Result<Option<i64>, LogError> {
    let mut in_request = ProducerStateTable::default();
    for h in headers {
        let verdict = if h.has_producer_id() && in_request.get(h.producer_id).is_some() {
            in_request.check(h)?
        } else {
            producers.check(h)?
        };
        match verdict {
            SequenceVerdict::Append => in_request.record(h),
            SequenceVerdict::Duplicate { base_offset } if headers.len() == 1 => {
                return Ok(Some(base_offset));
            }
            SequenceVerdict::Duplicate { .. } => {
                return Err(LogError::InvalidRecord(
                    "duplicate batch inside a multi-batch request",
                ));
            }
        }
    }
    Ok(None)
}
