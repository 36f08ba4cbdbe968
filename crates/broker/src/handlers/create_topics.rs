//! CreateTopics (key 19).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::{ProtocolError, topic_error_code};
use crate::topic_config;

pub fn handle(ctx: &Ctx, req: CreateTopicsRequest) -> Result<Reply, ProtocolError> {
    super::reply_later(ctx, |ctx| async move { answer(&ctx, req).await })
}

async fn answer(ctx: &Ctx, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let broker = &ctx.broker;
    let node = broker.node_id();
    let mut resp = CreateTopicsResponse::default();
    // CREATE on the cluster covers every topic; else it is checked per topic.
    let cluster_create = ctx.may(
        Operation::Create,
        ResourceType::Cluster,
        herald_security::acl::CLUSTER_NAME,
    );
    // Without this the first of a name given twice was created and the
    // second told TOPIC_ALREADY_EXISTS.
    let duplicates = super::duplicate_names(req.topics.iter().map(|t| s(&t.name.0)));
    for ct in req.topics {
        let name = s(&ct.name.0);
        let mut r = CreatableTopicResult::default();
        // Kafka answers null on success; the crate's default is "".
        r.error_message = None;
        r.name = ct.name.clone();
        r.num_partitions = -1;
        r.replication_factor = -1;
        let mut configs = BTreeMap::new();
        for c in &ct.configs {
            if let Some(v) = &c.value {
                configs.insert(s(&c.name), s(v));
            }
        }
        let partitions = if !ct.assignments.is_empty() {
            ct.assignments.len() as i32
        } else if ct.num_partitions == -1 {
            broker.config.default_partitions
        } else {
            ct.num_partitions
        };
        // In cluster mode every broker serves every partition from one copy in
        // object storage: any replication factor and any live brokers in an
        // assignment are accepted (and reported as 1).
        let shared = broker.topics.engine().kind() != "local";
        let live: Vec<i32> = broker.membership.live().iter().map(|b| b.node_id).collect();
        let bad_assignment = ct.assignments.iter().enumerate().any(|(i, a)| {
            a.partition_index != i as i32
                || if shared {
                    a.broker_ids.iter().any(|b| !live.contains(&b.0))
                } else {
                    a.broker_ids.iter().any(|b| b.0 != node) || a.broker_ids.len() > 1
                }
        });
        let result = if duplicates.contains(&name) {
            Err((
                ResponseError::InvalidRequest.code(),
                super::DUPLICATE_TOPIC_NAME.to_string(),
            ))
        } else if !cluster_create && !ctx.authorize(Operation::Create, ResourceType::Topic, &name) {
            Err((
                ResponseError::TopicAuthorizationFailed.code(),
                "Authorization failed.".to_string(),
            ))
        } else if !shared && !matches!(ct.replication_factor, -1 | 1) {
            Err((
                ResponseError::InvalidReplicationFactor.code(),
                format!(
                    "replication factor {} is larger than the 1 available broker",
                    ct.replication_factor
                ),
            ))
        } else if bad_assignment {
            Err((
                ResponseError::InvalidReplicaAssignment.code(),
                if shared {
                    "replicas must be live brokers".to_string()
                } else {
                    "replicas must be this broker only".to_string()
                },
            ))
        } else if req.validate_only {
            broker
                .topics
                .validate_create(&name, partitions, &configs)
                .map_err(|e| (topic_error_code(&e), e.to_string()))
                .map(|_| None)
        } else {
            broker
                .topics
                .create(&name, partitions, configs.clone())
                .await
                .map_err(|e| (topic_error_code(&e), e.to_string()))
                .map(Some)
        };
        match result {
            Ok(topic) => {
                if let Some(t) = &topic
                    && ctx.version >= 7
                {
                    r.topic_id = t.id;
                }
                if ctx.version < 5 {
                    resp.topics.push(r);
                    continue;
                }
                r.num_partitions = partitions;
                r.replication_factor = 1;
                // As Kafka: the configs are shown only to who may describe them.
                if !ctx.may(Operation::DescribeConfigs, ResourceType::Topic, &name) {
                    r.topic_config_error_code = ResponseError::TopicAuthorizationFailed.code();
                    resp.topics.push(r);
                    continue;
                }
                let effective = topic_config::effective(&configs, &broker.topics.base_log_config());
                r.configs = Some(
                    effective
                        .into_iter()
                        .map(|(k, (v, is_override))| {
                            let mut c = CreatableTopicConfigs::default();
                            c.name = sb(k);
                            c.value = Some(sb(v));
                            c.config_source = if is_override {
                                topic_config::SOURCE_DYNAMIC_TOPIC
                            } else {
                                topic_config::SOURCE_DEFAULT
                            };
                            c
                        })
                        .collect(),
                );
            }
            Err((code, msg)) => {
                r.error_code = code;
                r.error_message = Some(sb(msg));
                if ctx.version >= 5 {
                    r.topic_config_error_code = code;
                }
            }
        }
        resp.topics.push(r);
    }
    resp
}
