//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3), earliest
//! local (-4), and the first offset whose timestamp is >= a given time.

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
