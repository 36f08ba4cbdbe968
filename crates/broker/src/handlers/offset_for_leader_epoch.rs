//! OffsetForLeaderEpoch (key 23): the end offset of a leader epoch. A single
//! node never changes leader, so every partition has one epoch, 0, whose end
//! is the log end offset. Consumers use this to validate their positions.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s};
use crate::error::{ProtocolError, log_error_code};

pub fn handle(ctx: &Ctx, req: OffsetForLeaderEpochRequest) -> Result<Reply, ProtocolError> {
    super::reply_later(ctx, |ctx| async move { answer(&ctx, req).await })
}

async fn answer(ctx: &Ctx, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let mut resp = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let name = s(&t.topic.0);
        let allowed = ctx.authorize(Operation::Describe, ResourceType::Topic, &name);
        let topic = if allowed {
            ctx.broker.topics.get_fresh(&name).await
        } else {
            None
        };
        let mut tr = OffsetForLeaderTopicResult::default();
        tr.topic = t.topic.clone();
        for p in t.partitions {
            let mut e = EpochEndOffset::default();
            e.partition = p.partition;
            e.leader_epoch = -1;
            e.end_offset = -1;
            match topic.as_ref().and_then(|t| t.partition(p.partition)) {
                _ if !allowed => e.error_code = ResponseError::TopicAuthorizationFailed.code(),
                None => e.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(_) if p.current_leader_epoch > 0 => {
                    e.error_code = ResponseError::UnknownLeaderEpoch.code()
                }
                Some(part) => {
                    if p.leader_epoch == 0 {
                        match part.offsets().await {
                            Ok(o) => {
                                e.leader_epoch = 0;
                                e.end_offset = o.high_watermark;
                            }
                            Err(err) => e.error_code = log_error_code(&err),
                        }
                    }
                    // A later epoch than ours: undefined (-1, -1), as Kafka answers.
                }
            }
            tr.partitions.push(e);
        }
        resp.topics.push(tr);
    }
    resp
}
