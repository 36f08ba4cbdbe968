//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3), earliest
//! local (-4), and the first offset whose timestamp is >= a given time.

use herald_log::partition_log::RECORDS_DECOMPRESSED_BYTES_MAX;
use herald_log::{LogError, TimestampHit, compression, records};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{Ctx, Reply, s};
use crate::error::{ProtocolError, log_error_code};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

/// Within the batch found by timestamp, the first record at or after `target`
/// (the batch header only bounds the batch). `target` None: the record holding
/// the batch's max timestamp. Falls back to the batch's base offset if its
/// records cannot be read (decompression is bounded, see herald_log::compression).
fn record_in_batch(hit: &TimestampHit, target: Option<i64>) -> (i64, i64) {
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

fn lookup(p: &crate::partition::Partition, timestamp: i64) -> Result<(i64, i64), LogError> {
    p.with_log(|log| {
        Ok(match timestamp {
            LATEST => (log.log_end_offset(), -1),
            EARLIEST | EARLIEST_LOCAL => (log.log_start_offset(), -1),
            MAX_TIMESTAMP => match log.find_max_timestamp()? {
                Some(hit) => record_in_batch(&hit, None),
                None => (-1, -1),
            },
            t if t >= 0 => match log.find_timestamp(t)? {
                Some(hit) => {
                    let (offset, ts) = record_in_batch(&hit, Some(t));
                    (offset.max(log.log_start_offset()), ts)
                }
                None => (-1, -1),
            },
            _ => return Err(LogError::InvalidRecord("unknown ListOffsets timestamp")),
        })
    })
}

pub fn handle(ctx: &Ctx, req: ListOffsetsRequest) -> Result<Reply, ProtocolError> {
    let mut resp = ListOffsetsResponse::default();
    for lt in req.topics {
        let topic = ctx.broker.topics.get(&s(&lt.name.0));
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
                None => pr.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(_) if lp.current_leader_epoch > 0 => {
                    pr.error_code = ResponseError::UnknownLeaderEpoch.code();
                }
                Some(p) => match lookup(&p, lp.timestamp) {
                    Ok((offset, ts)) => {
                        pr.offset = offset;
                        pr.timestamp = ts;
                    }
                    Err(e) => pr.error_code = log_error_code(&e),
                },
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    ctx.reply(&resp)
}
