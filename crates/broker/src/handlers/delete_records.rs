//! DeleteRecords (key 21): advances partitions' log start offsets.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s};
use crate::error::{ProtocolError, log_error_code};

/// Offset -1 in the request means "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

pub fn handle(ctx: &Ctx, req: DeleteRecordsRequest) -> Result<Reply, ProtocolError> {
    super::reply_later(ctx, |ctx| async move { answer(&ctx, req).await })
}

async fn answer(ctx: &Ctx, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut resp = DeleteRecordsResponse::default();
    for t in req.topics {
        let name = s(&t.name.0);
        let allowed = ctx.authorize(Operation::Delete, ResourceType::Topic, &name);
        let topic = if allowed {
            ctx.broker.topics.get_fresh(&name).await
        } else {
            None
        };
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut pr = DeleteRecordsPartitionResult::default();
            pr.partition_index = p.partition_index;
            pr.low_watermark = -1;
            match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                _ if !allowed => pr.error_code = ResponseError::TopicAuthorizationFailed.code(),
                None => pr.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(part) => {
                    let r = part
                        .delete_records(if p.offset == HIGH_WATERMARK {
                            -1
                        } else {
                            p.offset
                        })
                        .await;
                    match r {
                        Ok(low) => pr.low_watermark = low,
                        Err(e) => pr.error_code = log_error_code(&e),
                    }
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}
