//! OffsetDelete (key 47): removes committed offsets of partitions the group
//! does not consume (GROUP_SUBSCRIBED_TO_TOPIC otherwise).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: OffsetDeleteRequest) -> Result<Reply, ProtocolError> {
    let topics: Vec<(String, Vec<i32>)> = req
        .topics
        .iter()
        .map(|t| {
            (
                s(&t.name.0),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let mut resp = OffsetDeleteResponse::default();
    if !ctx.authorize(Operation::Delete, ResourceType::Group, &s(&req.group_id.0)) {
        resp.error_code = kafka_protocol::ResponseError::GroupAuthorizationFailed.code();
        return ctx.reply(&resp);
    }
    // Partitions of topics the principal may not READ are refused one by one.
    let (topics, denied): (Vec<_>, Vec<_>) = topics
        .into_iter()
        .partition(|(t, _)| ctx.authorize(Operation::Read, ResourceType::Topic, t));
    match ctx
        .broker
        .groups
        .delete_offsets(&s(&req.group_id.0), &topics)
    {
        Err(code) => resp.error_code = code,
        Ok(results) => {
            let denied = denied.into_iter().map(|(t, ps)| {
                let code = kafka_protocol::ResponseError::TopicAuthorizationFailed.code();
                (t, ps.into_iter().map(|p| (p, code)).collect::<Vec<_>>())
            });
            resp.topics = results
                .into_iter()
                .chain(denied)
                .map(|(name, parts)| {
                    let mut t = OffsetDeleteResponseTopic::default();
                    t.name = TopicName(sb(name));
                    t.partitions = parts
                        .into_iter()
                        .map(|(p, code)| {
                            let mut r = OffsetDeleteResponsePartition::default();
                            r.partition_index = p;
                            r.error_code = code;
                            r
                        })
                        .collect();
                    t
                })
                .collect();
        }
    }
    Ok(super::reply_when_durable(ctx, resp))
}
