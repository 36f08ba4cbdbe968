//! DeleteTopics (key 20): by name (all versions) or topic id (v6+).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::{ProtocolError, topic_error_code};

pub fn handle(ctx: &Ctx, req: DeleteTopicsRequest) -> Result<Reply, ProtocolError> {
    super::reply_later(ctx, |ctx| async move { answer(&ctx, req).await })
}

async fn answer(ctx: &Ctx, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let topics = &ctx.broker.topics;
    // (name if known, id) of each requested topic.
    let mut wanted: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(s(&n.0)), uuid::Uuid::nil()))
        .collect();
    for t in &req.topics {
        match &t.name {
            Some(n) => wanted.push((Some(s(&n.0)), uuid::Uuid::nil())),
            None => wanted.push((
                topics.get_by_id(t.topic_id).map(|t| t.name.clone()),
                t.topic_id,
            )),
        }
    }
    let mut resp = DeleteTopicsResponse::default();
    // A topic named (or its id given) twice: Kafka deletes neither entry.
    let duplicates = super::duplicate_names(wanted.iter().filter_map(|(n, _)| n.clone()));
    for (name, id) in wanted {
        let mut r = DeletableTopicResult::default();
        r.topic_id = id;
        match name {
            None => r.error_code = ResponseError::UnknownTopicId.code(),
            Some(name) if duplicates.contains(&name) => {
                // Named as asked: by id, the name stays hidden.
                if id.is_nil() {
                    r.name = Some(TopicName(sb(name)));
                }
                r.error_code = ResponseError::InvalidRequest.code();
                if ctx.version >= 5 {
                    r.error_message = Some(sb(super::DUPLICATE_TOPIC_NAME));
                }
            }
            Some(name) if !ctx.authorize(Operation::Delete, ResourceType::Topic, &name) => {
                // Asked by id: the name is shown only to who may describe it.
                if id.is_nil() || ctx.may(Operation::Describe, ResourceType::Topic, &name) {
                    r.name = Some(TopicName(sb(name)));
                }
                r.error_code = ResponseError::TopicAuthorizationFailed.code();
            }
            Some(name) => {
                r.name = Some(TopicName(sb(name.clone())));
                topics.get_fresh(&name).await;
                let deleted = topics.delete(&name).await;
                if deleted.is_ok() {
                    // As Kafka does: committed offsets of a deleted topic go too,
                    // so a topic recreated under the same name starts clean.
                    ctx.broker.groups.delete_topic_offsets(&name);
                    ctx.broker.event_flow.forget_topic(&name);
                }
                match deleted {
                    Ok(t) if ctx.version >= 6 => r.topic_id = t.id,
                    Ok(_) => {}
                    Err(e) => {
                        r.error_code = topic_error_code(&e);
                        if ctx.version >= 5 {
                            r.error_message = Some(sb(e.to_string()));
                        }
                    }
                }
            }
        }
        resp.responses.push(r);
    }
    resp
}
