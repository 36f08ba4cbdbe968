//! Metadata (key 3): brokers, controller, topics with partitions and topic ids.
//! Unknown topics are auto-created when both the broker and the request allow it.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::{ProtocolError, topic_error_code};
use crate::membership::{self, BrokerInfo};
use crate::topic_registry::{Topic, TopicError};

use super::OPERATIONS_NOT_REQUESTED;

/// The brokers a client is routed to: the live ones, limited to its zone when
/// its `client.id` names one (see `membership::client_zone`).
pub fn routing_brokers(ctx: &Ctx) -> Vec<BrokerInfo> {
    membership::eligible(
        ctx.broker.membership.live(),
        membership::client_zone(ctx.client_id.as_deref()),
    )
}

/// The broker named leader of a partition: a rendezvous hash over `brokers`.
pub fn partition_leader(brokers: &[BrokerInfo], topic: &Topic, partition: i32, me: i32) -> i32 {
    if brokers.len() <= 1 {
        return brokers.first().map(|b| b.node_id).unwrap_or(me);
    }
    membership::rendezvous(&membership::partition_key(&topic.id, partition), brokers)
        .map(|b| b.node_id)
        .unwrap_or(me)
}

pub fn topic_entry(
    ctx: &Ctx,
    topic: &Topic,
    with_ops: bool,
    brokers: &[BrokerInfo],
) -> MetadataResponseTopic {
    let me = ctx.broker.node_id();
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(sb(topic.name.clone())));
    if ctx.version >= 10 {
        t.topic_id = topic.id;
    }
    t.is_internal = topic.is_internal() && ctx.version >= 1;
    t.topic_authorized_operations = if with_ops {
        super::authorized_operations(
            ctx,
            ResourceType::Topic,
            &topic.name,
            super::TOPIC_OPERATIONS,
        )
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    t.partitions = (0..topic.partition_count())
        .map(|i| {
            let mut p = MetadataResponsePartition::default();
            // Every broker can serve every partition (cluster mode stores
            // records once, in object storage), so the leader is its only replica.
            let node = partition_leader(brokers, topic, i, me);
            p.partition_index = i;
            p.leader_id = BrokerId(node);
            if ctx.version >= 7 {
                p.leader_epoch = 0;
            }
            p.replica_nodes = vec![BrokerId(node)];
            p.isr_nodes = vec![BrokerId(node)];
            p
        })
        .collect();
    t
}

fn error_entry(name: Option<String>, id: uuid::Uuid, code: i16) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = name.map(|n| TopicName(sb(n)));
    t.topic_id = id;
    t.error_code = code;
    t.topic_authorized_operations = OPERATIONS_NOT_REQUESTED;
    t
}

pub fn handle(ctx: &Ctx, req: MetadataRequest) -> Result<Reply, ProtocolError> {
    super::reply_later(ctx, |ctx| async move { answer(&ctx, req).await })
}

async fn answer(ctx: &Ctx, req: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.broker;
    let with_ops = req.include_topic_authorized_operations;
    // v0: an empty list means all topics; v1+: null means all.
    let requested = match req.topics {
        None => None,
        Some(t) if t.is_empty() && ctx.version == 0 => None,
        Some(t) => Some(t),
    };
    // Auto-creation is allowed by default before v4 (no flag yet).
    let allow_create =
        broker.config.auto_create_topics && (ctx.version < 4 || req.allow_auto_topic_creation);
    let routed = routing_brokers(ctx);
    let mut topics = Vec::new();
    match requested {
        None => {
            // Topics the principal may not describe are left out.
            for t in broker.topics.list_fresh().await {
                if ctx.may(Operation::Describe, ResourceType::Topic, &t.name) {
                    topics.push(topic_entry(ctx, &t, with_ops, &routed));
                }
            }
        }
        Some(list) => {
            for rt in list {
                let found: Result<Arc<Topic>, (Option<String>, i16)> = match &rt.name {
                    Some(name) => {
                        let name = s(&name.0);
                        // Kafka checks DESCRIBE first, existing or not, so a
                        // denied client cannot probe which topics exist.
                        if !ctx.authorize(Operation::Describe, ResourceType::Topic, &name) {
                            topics.push(error_entry(
                                Some(name),
                                uuid::Uuid::nil(),
                                ResponseError::TopicAuthorizationFailed.code(),
                            ));
                            continue;
                        }
                        match broker.topics.get_fresh(&name).await {
                            Some(t) => Ok(t),
                            None if allow_create && may_create(ctx, &name) => {
                                let n = broker.config.default_partitions;
                                match broker.topics.create(&name, n, BTreeMap::new()).await {
                                    Ok(t) => Ok(t),
                                    // Lost a race with another creator: fine.
                                    Err(TopicError::AlreadyExists(_)) => {
                                        broker.topics.get(&name).ok_or((
                                            Some(name.clone()),
                                            ResponseError::UnknownTopicOrPartition.code(),
                                        ))
                                    }
                                    Err(e) => Err((Some(name), topic_error_code(&e))),
                                }
                            }
                            // Kafka: a topic that would be auto-created but may not be.
                            None if allow_create => {
                                Err((Some(name), ResponseError::TopicAuthorizationFailed.code()))
                            }
                            None => {
                                Err((Some(name), ResponseError::UnknownTopicOrPartition.code()))
                            }
                        }
                    }
                    // Topic ids are not secret (Kafka answers
                    // TOPIC_AUTHORIZATION_FAILED for an id it may not describe).
                    None => match broker.topics.get_by_id(rt.topic_id) {
                        None => Err((None, ResponseError::UnknownTopicId.code())),
                        Some(t)
                            if !ctx.authorize(
                                Operation::Describe,
                                ResourceType::Topic,
                                &t.name,
                            ) =>
                        {
                            Err((None, ResponseError::TopicAuthorizationFailed.code()))
                        }
                        Some(t) => Ok(t),
                    },
                };
                match found {
                    Ok(t) => topics.push(topic_entry(ctx, &t, with_ops, &routed)),
                    Err((name, code)) => topics.push(error_entry(
                        name,
                        if ctx.version >= 10 {
                            rt.topic_id
                        } else {
                            uuid::Uuid::nil()
                        },
                        code,
                    )),
                }
            }
        }
    }
    let mut resp = MetadataResponse::default();
    resp.brokers = broker
        .membership
        .live()
        .into_iter()
        .filter_map(|info| {
            // The endpoints of the listener this client came in on.
            let (host, port) = info.endpoint(&ctx.listener)?;
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(info.node_id);
            b.host = sb(host);
            b.port = port;
            if ctx.version >= 1 {
                b.rack = info.rack.clone().map(sb);
            }
            Some(b)
        })
        .collect();
    if ctx.version >= 2 {
        resp.cluster_id = Some(sb(broker.cluster_id.clone()));
    }
    if ctx.version >= 1 {
        resp.controller_id = BrokerId(broker.membership.controller());
    }
    resp.topics = topics;
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        super::authorized_operations(
            ctx,
            ResourceType::Cluster,
            herald_security::acl::CLUSTER_NAME,
            super::CLUSTER_OPERATIONS,
        )
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    resp
}

/// Auto-creation needs CREATE on the cluster or on the topic.
fn may_create(ctx: &Ctx, name: &str) -> bool {
    ctx.may(
        Operation::Create,
        ResourceType::Cluster,
        herald_security::acl::CLUSTER_NAME,
    ) || ctx.authorize(Operation::Create, ResourceType::Topic, name)
}
