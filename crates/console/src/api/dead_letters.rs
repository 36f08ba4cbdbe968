//! Dead letters: the `*.dlq` topics of the events SDK and their replay.
//!
//! Replay does what the SDK's `replay_dead_letters` does
//! (crates/events/src/dead_letter.rs): every record after the committed
//! offsets of group `herald-dlq-replay.<source topic>` goes back to its
//! `herald.original.topic` without Herald's routing headers, and the group's
//! offsets record the progress, so the SDK and the console agree on what was
//! replayed. It runs as the caller (Read on the DLQ and the group, Write on
//! the target), bounded to [`REPLAY_RECORDS_MAX`] records a call. If the
//! browser goes away the handler stops between requests; what was produced
//! but not yet committed is replayed again next time (at least once, as the
//! SDK).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use serde::Serialize;

use super::error::{ApiError, ApiResult};
use super::groups::commit_offsets;
use super::messages::{produce_one, scan_permit};
use super::ops::{self, sb};
use super::session::Caller;
use crate::AppState;

/// The SDK's routing headers (crates/events/src/retry.rs, `headers::ALL`),
/// stripped on replay. The console does not link the SDK (it brings rdkafka).
pub const SDK_HEADERS: &[&str] = &[
    "herald.original.topic",
    "herald.original.partition",
    "herald.original.offset",
    "herald.attempts",
    "herald.error",
    "herald.failed.at",
    "herald.retry.not.before",
    "herald.group",
];
const ORIGINAL_TOPIC: &str = "herald.original.topic";
/// The suffix of a dead-letter topic (retry.rs `dead_letter_topic`).
pub const DLQ_SUFFIX: &str = ".dlq";
/// Records one replay call moves at most.
pub const REPLAY_RECORDS_MAX: usize = 100_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dead-letters", get(list))
        .route("/dead-letters/{topic}/replay", post(replay))
}

/// The SDK's progress group for a source topic.
pub fn replay_group(source: &str) -> String {
    format!("herald-dlq-replay.{source}")
}

#[derive(Serialize)]
struct DeadLetterRow {
    topic: String,
    source_topic: String,
    records: i64,
    /// Null when the principal may not read the replay group's offsets.
    replayed: Option<i64>,
}

/// Committed offsets of `group` on `topic`, partition → offset.
async fn committed_on(
    caller: &Caller,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> ApiResult<std::collections::BTreeMap<i32, i64>> {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::{GroupId, OffsetFetchRequest, TopicName};
    let mut t = OffsetFetchRequestTopic::default();
    t.name = TopicName(sb(topic));
    t.partition_indexes = partitions.to_vec();
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(sb(group));
    req.topics = Some(vec![t]);
    let resp = caller.client.call(&req, 7).await?;
    if resp.error_code != 0 {
        return Err(ApiError::kafka(resp.error_code, None));
    }
    let mut out = std::collections::BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                return Err(ApiError::kafka(p.error_code, None));
            }
            if p.committed_offset >= 0 {
                out.insert(p.partition_index, p.committed_offset);
            }
        }
    }
    Ok(out)
}

async fn list(caller: Caller) -> ApiResult<Json<Vec<DeadLetterRow>>> {
    let md = ops::metadata(&caller.client, None).await?;
    let mut rows = Vec::new();
    for t in md.topics {
        let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
            continue;
        };
        let Some(source) = name.strip_suffix(DLQ_SUFFIX) else {
            continue;
        };
        if t.error_code != 0 || source.is_empty() {
            continue;
        }
        let parts: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        let Ok(marks) = ops::watermarks(&caller.client, &name, &parts).await else {
            continue;
        };
        let records = marks.values().map(|(l, h)| (h - l).max(0)).sum();
        let replayed = committed_on(&caller, &replay_group(source), &name, &parts)
            .await
            .ok()
            .map(|c| {
                marks
                    .iter()
                    .map(|(p, (l, h))| c.get(p).map_or(0, |o| (o.min(h) - l).max(0)))
                    .sum()
            });
        rows.push(DeadLetterRow {
            source_topic: source.to_string(),
            topic: name,
            records,
            replayed,
        });
    }
    rows.sort_by(|a, b| a.topic.cmp(&b.topic));
    Ok(Json(rows))
}

#[derive(Serialize)]
struct Replayed {
    replayed: usize,
    /// Records still to replay (beyond this call's bound).
    remaining: i64,
}

/// librdkafka's default partitioner (`consistent_random`: CRC-32 of the key),
/// which the SDK's publisher uses: a replayed record goes where the SDK's
/// replay would send it.
fn librdkafka_partition(key: &[u8], count: usize) -> usize {
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(key);
    crc as usize % count.max(1)
}

async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path(topic): Path<String>,
) -> ApiResult<Json<Replayed>> {
    let (dlq, source) = match topic.strip_suffix(DLQ_SUFFIX) {
        Some(s) if !s.is_empty() => (topic.clone(), s.to_string()),
        _ => (format!("{topic}{DLQ_SUFFIX}"), topic.clone()),
    };
    let _permit = scan_permit(&state)?;
    let group = replay_group(&source);
    let meta = ops::topic_meta(&caller.client, &dlq).await?;
    let parts: Vec<i32> = meta.partitions.iter().map(|(p, _)| *p).collect();
    // read_committed: a dead letter whose transaction was aborted (an
    // exactly-once subscriber's routing that did not commit) is not one.
    let isolation = ops::Isolation::ReadCommitted;
    let marks = ops::watermarks_with(&caller.client, &dlq, &parts, isolation).await?;
    let committed = committed_on(&caller, &group, &dlq, &parts).await?;
    let mut targets: std::collections::BTreeMap<String, usize> = Default::default();
    let mut replayed = 0usize;
    let mut round_robin = 0usize;
    let mut remaining = 0i64;
    for p in parts {
        let (low, high) = marks[&p];
        let mut pos = committed.get(&p).copied().unwrap_or(low).max(low);
        while pos < high && replayed < REPLAY_RECORDS_MAX {
            let f = ops::fetch(&caller.client, &dlq, &[(p, pos)], 0, isolation)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    ApiError::new(StatusCode::BAD_GATEWAY, "BROKER", "empty fetch answer")
                })?;
            let mut done_to = pos;
            for r in f.records.iter().filter(|r| r.offset < high) {
                if replayed >= REPLAY_RECORDS_MAX {
                    break;
                }
                let target = r
                    .headers
                    .iter()
                    .find(|(k, _)| k.as_str() == ORIGINAL_TOPIC)
                    .and_then(|(_, v)| v.as_ref())
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .filter(|t| !t.is_empty())
                    .unwrap_or(&source)
                    .to_string();
                let count = match targets.get(&target) {
                    Some(c) => *c,
                    None => {
                        let c = ops::topic_meta(&caller.client, &target)
                            .await?
                            .partitions
                            .len();
                        targets.insert(target.clone(), c);
                        c
                    }
                };
                let partition = match r.key.as_deref() {
                    Some(k) => librdkafka_partition(k, count),
                    None => {
                        round_robin += 1;
                        round_robin % count.max(1)
                    }
                } as i32;
                let clean: IndexMap<StrBytes, Option<Bytes>> = r
                    .headers
                    .iter()
                    .filter(|(k, _)| !SDK_HEADERS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                produce_one(
                    &caller,
                    &target,
                    partition,
                    r.key.clone(),
                    r.value.clone(),
                    clean,
                )
                .await?;
                replayed += 1;
                done_to = r.offset + 1;
            }
            // Past control batches and gaps too, when the whole fetch was used.
            if done_to == pos || f.records.iter().all(|r| r.offset < done_to) {
                done_to = done_to.max(f.next_offset.min(high));
            }
            if done_to <= pos {
                break;
            }
            // Progress after each fetch: a replay cut short resumes here.
            commit_offsets(&caller, &group, &[(dlq.clone(), p, done_to)]).await?;
            pos = done_to;
        }
        remaining += (high - pos).max(0);
    }
    tracing::info!(dlq = %dlq, principal = %caller.principal, replayed, "console replayed dead letters");
    Ok(Json(Replayed {
        replayed,
        remaining,
    }))
}
