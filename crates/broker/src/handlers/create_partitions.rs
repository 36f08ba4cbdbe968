//! CreatePartitions (key 37): grows a topic's partition count.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::{ProtocolError, topic_error_code};

pub fn handle(ctx: &Ctx, req: CreatePartitionsRequest) -> Result<Reply, ProtocolError> {
    super::reply_later(ctx, |ctx| async move { answer(&ctx, req).await })
}

async fn answer(ctx: &Ctx, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let node = ctx.broker.node_id();
    let mut resp = CreatePartitionsResponse::default();
    // Without this a topic named twice grew twice (1 -> 3, then 3 -> 5).
    let duplicates = super::duplicate_names(req.topics.iter().map(|t| s(&t.name.0)));
    for t in req.topics {
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name.clone();
        if duplicates.contains(&s(&t.name.0)) {
            r.error_code = ResponseError::InvalidRequest.code();
            r.error_message = Some(sb(super::DUPLICATE_TOPIC_NAME));
            resp.results.push(r);
            continue;
        }
        let shared = ctx.broker.topics.engine().kind() != "local";
        let live: Vec<i32> = ctx
            .broker
            .membership
            .live()
            .iter()
            .map(|b| b.node_id)
            .collect();
        let bad_assignment = t.assignments.as_ref().is_some_and(|a| {
            a.iter().any(|x| {
                if shared {
                    x.broker_ids.iter().any(|b| !live.contains(&b.0))
                } else {
                    x.broker_ids.len() > 1 || x.broker_ids.iter().any(|b| b.0 != node)
                }
            })
        });
        if !ctx.authorize(Operation::Alter, ResourceType::Topic, &s(&t.name.0)) {
            r.error_code = ResponseError::TopicAuthorizationFailed.code();
            r.error_message = Some(sb("Authorization failed."));
        } else if bad_assignment {
            r.error_code = ResponseError::InvalidReplicaAssignment.code();
            r.error_message = Some(sb("replicas must be this broker only"));
        } else if let Err(e) = ctx
            .broker
            .topics
            .add_partitions(&s(&t.name.0), t.count, req.validate_only)
            .await
        {
            r.error_code = topic_error_code(&e);
            r.error_message = Some(sb(e.to_string()));
        }
        resp.results.push(r);
    }
    resp
}
