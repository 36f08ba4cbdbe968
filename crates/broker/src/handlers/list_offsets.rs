//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3), earliest
//! local (-4), and the first offset whose timestamp is >= a given time.
//!
//! v0 (removed in Kafka 4.0, still sent by Burrow and sarama's default config)
//! answers a list of up to `max_num_offsets` offsets, newest first, as Kafka
//! 3.x did for a log of one segment: see [`old_style_offsets`].

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s};
use crate::error::{ProtocolError, log_error_code};
use crate::storage::OffsetQuery;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

fn query(timestamp: i64) -> Option<OffsetQuery> {
    match timestamp {
        LATEST => Some(OffsetQuery::Latest),
        EARLIEST | EARLIEST_LOCAL => Some(OffsetQuery::Earliest),
        MAX_TIMESTAMP => Some(OffsetQuery::MaxTimestamp),
        t if t >= 0 => Some(OffsetQuery::AtOrAfter(t)),
        _ => None,
    }
}

pub fn handle(ctx: &Ctx, req: ListOffsetsRequest) -> Result<Reply, ProtocolError> {
    super::reply_later(ctx, |ctx| async move { answer(&ctx, req).await })
}

async fn answer(ctx: &Ctx, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    let read_committed = req.isolation_level == 1;
    for lt in req.topics {
        let name = s(&lt.name.0);
        let allowed = ctx.authorize(Operation::Describe, ResourceType::Topic, &name);
        let topic = if allowed {
            ctx.broker.topics.get_fresh(&name).await
        } else {
            None
        };
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = lt.name.clone();
        for lp in lt.partitions {
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = lp.partition_index;
            pr.timestamp = -1;
            pr.offset = -1;
            if ctx.version >= 4 {
                pr.leader_epoch = 0;
            }
            match topic.as_ref().and_then(|t| t.partition(lp.partition_index)) {
                _ if !allowed => pr.error_code = ResponseError::TopicAuthorizationFailed.code(),
                None => pr.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(_) if lp.current_leader_epoch > 0 => {
                    pr.error_code = ResponseError::UnknownLeaderEpoch.code();
                }
                Some(p) if ctx.version == 0 => {
                    match old_style_offsets(p, lp.timestamp, lp.max_num_offsets).await {
                        Ok(offsets) => pr.old_style_offsets = offsets,
                        Err(code) => pr.error_code = code,
                    }
                }
                Some(p) => match query(lp.timestamp) {
                    None => pr.error_code = ResponseError::InvalidRequest.code(),
                    // read_committed: nothing at or past the last stable offset.
                    Some(q) if read_committed && q != OffsetQuery::Earliest => {
                        match p.clone().offsets().await {
                            Ok(o) if q == OffsetQuery::Latest => pr.offset = o.last_stable,
                            Ok(o) => match p.lookup(q).await {
                                Ok((offset, ts)) if offset < o.last_stable => {
                                    pr.offset = offset;
                                    pr.timestamp = ts;
                                }
                                Ok(_) => {}
                                Err(e) => pr.error_code = log_error_code(&e),
                            },
                            Err(e) => pr.error_code = log_error_code(&e),
                        }
                    }
                    Some(q) => match p.lookup(q).await {
                        Ok((offset, ts)) => {
                            pr.offset = offset;
                            pr.timestamp = ts;
                        }
                        Err(e) => pr.error_code = log_error_code(&e),
                    },
                },
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

/// ListOffsets v0's answer. Kafka 3.x (`UnifiedLog.legacyFetchOffsetsBefore`)
/// listed each segment's base offset (at least the log start) with the
/// segment's last-modified time, plus the log end offset stamped "now" when
/// the last segment held data, and returned, newest first, up to
/// `max_num_offsets` of them starting at: the end for -1 (latest), the first
/// for -2 (earliest), else the newest entry modified at or before the
/// timestamp (none for other negative values: an empty list). A consumer's
/// answer was capped at the high watermark.
///
/// Herald's storage has no segments in cluster mode and its local segments are
/// an implementation detail, so the log is treated as one segment whose entry
/// for a timestamp is record-precise: the first offset whose record timestamp
/// is at or after it (the high watermark if none), where Kafka gave the base
/// of an older segment, an offset at or below that one. The list is then that
/// entry and the log start, distinct, newest first.
async fn old_style_offsets(
    p: std::sync::Arc<dyn crate::storage::PartitionStorage>,
    timestamp: i64,
    max_num_offsets: i32,
) -> Result<Vec<i64>, i16> {
    if max_num_offsets < 0 {
        // Kafka 3.x threw NegativeArraySizeException (UNKNOWN_SERVER_ERROR).
        return Err(ResponseError::InvalidRequest.code());
    }
    let o = p.clone().offsets().await.map_err(|e| log_error_code(&e))?;
    let newest = match timestamp {
        LATEST => o.high_watermark,
        EARLIEST => o.log_start,
        t if t >= 0 => match p.lookup(OffsetQuery::AtOrAfter(t)).await {
            Ok((offset, _)) if offset >= 0 => offset,
            Ok(_) => o.high_watermark,
            Err(e) => return Err(log_error_code(&e)),
        },
        _ => return Ok(Vec::new()),
    };
    let mut offsets = vec![newest];
    if newest > o.log_start {
        offsets.push(o.log_start);
    }
    offsets.truncate(max_num_offsets as usize);
    Ok(offsets)
}
