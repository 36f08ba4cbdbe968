//! AlterConfigs (key 33, replaces a topic's overrides) and
//! IncrementalAlterConfigs (key 44, SET/DELETE/APPEND/SUBTRACT per key).
//! Also GROUP resources (KIP-848 group configs, see
//! `group_coordinator/group_configs.rs`) and BROKER resources (dynamic broker
//! configs, see `dynamic_config.rs`).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::{Ctx, Reply, s, sb};
use crate::dynamic_config;
use crate::error::{ProtocolError, topic_error_code};
use crate::topic_config;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

type Outcome = Result<Change, (i16, String)>;

/// A validated change, stored after validation (storing may wait on the engine).
enum Change {
    None,
    Topic(String, BTreeMap<String, String>),
    Broker(BTreeMap<String, String>),
}

async fn store(ctx: &Ctx, outcome: Outcome) -> Result<(), (i16, String)> {
    let stored = match outcome? {
        Change::None => return Ok(()),
        Change::Topic(name, overrides) => ctx.broker.topics.set_overrides(&name, overrides).await,
        Change::Broker(configs) => ctx.broker.topics.set_dynamic_broker_configs(configs).await,
    };
    stored.map_err(|e| (topic_error_code(&e), e.to_string()))
}

fn apply_topic(
    _ctx: &Ctx,
    topic: &str,
    overrides: BTreeMap<String, String>,
    validate_only: bool,
) -> Outcome {
    topic_config::validate_all(&overrides).map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
    if validate_only {
        return Ok(Change::None);
    }
    Ok(Change::Topic(topic.to_string(), overrides))
}

fn alter_group(
    ctx: &Ctx,
    group: &str,
    validate_only: bool,
    edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String>,
) -> Outcome {
    ctx.broker
        .groups
        .alter_group_configs(group, validate_only, edit)
        .map(|_| Change::None)
        .map_err(|(e, m)| (e.code(), m))
}

/// Replaces the dynamic broker configs with `edit`'s result (see dynamic_config.rs).
fn alter_broker(
    ctx: &Ctx,
    validate_only: bool,
    edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String>,
) -> Outcome {
    let topics = &ctx.broker.topics;
    let mut configs = topics.dynamic_broker_configs();
    edit(&mut configs).map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
    for (k, v) in &configs {
        dynamic_config::validate(k, v).map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
    }
    if validate_only {
        return Ok(Change::None);
    }
    Ok(Change::Broker(configs))
}

/// Applies one incremental operation to a config map. APPEND and SUBTRACT are
/// for list configs (`cleanup.policy` and its broker synonym); `default` is the
/// value in force when the map has none.
fn apply_op(
    map: &mut BTreeMap<String, String>,
    op: i8,
    key: String,
    value: Option<String>,
    default: impl FnOnce() -> String,
) -> Result<(), String> {
    match (op, value) {
        (OP_SET, Some(v)) => {
            map.insert(key, v);
        }
        (OP_DELETE, _) => {
            map.remove(&key);
        }
        (op @ (OP_APPEND | OP_SUBTRACT), Some(v))
            if key == "cleanup.policy" || key == "log.cleanup.policy" =>
        {
            let current = map.get(&key).cloned().unwrap_or_else(default);
            let mut items: Vec<String> = current
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect();
            for item in v.split(',').map(|x| x.trim().to_string()) {
                if op == OP_APPEND && !items.contains(&item) {
                    items.push(item);
                } else if op == OP_SUBTRACT {
                    items.retain(|x| *x != item);
                }
            }
            map.insert(key, items.join(","));
        }
        (op, _) => return Err(format!("operation {op} is not valid for '{key}'")),
    }
    Ok(())
}

fn check_resource(ctx: &Ctx, resource_type: i8, name: &str) -> Result<(), (i16, String)> {
    super::describe_configs::config_access(
        ctx,
        resource_type,
        name,
        herald_security::acl::Operation::AlterConfigs,
    )?;
    match resource_type {
        RESOURCE_TOPIC if ctx.broker.topics.get(name).is_none() => Err((
            ResponseError::UnknownTopicOrPartition.code(),
            format!("unknown topic '{name}'"),
        )),
        RESOURCE_TOPIC | RESOURCE_GROUP => Ok(()),
        RESOURCE_BROKER if !name.is_empty() && name != ctx.broker.node_id().to_string() => Err((
            ResponseError::InvalidRequest.code(),
            format!("this is broker {}, not '{name}'", ctx.broker.node_id()),
        )),
        RESOURCE_BROKER => Ok(()),
        other => Err((
            ResponseError::InvalidRequest.code(),
            format!("resource type {other} is not supported"),
        )),
    }
}

pub fn handle_incremental(
    ctx: &Ctx,
    req: IncrementalAlterConfigsRequest,
) -> Result<Reply, ProtocolError> {
    super::reply_later(ctx, |ctx| async move {
        handle_incremental_answer(&ctx, req).await
    })
}

async fn handle_incremental_answer(
    ctx: &Ctx,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    // Topics another broker created an instant ago are loaded before the checks.
    for res in &req.resources {
        if res.resource_type == RESOURCE_TOPIC {
            ctx.broker.topics.get_fresh(&s(&res.resource_name)).await;
        }
    }
    let mut resp = IncrementalAlterConfigsResponse::default();
    for res in req.resources {
        let name = s(&res.resource_name);
        let outcome = check_resource(ctx, res.resource_type, &name).and_then(|_| {
            let ops: Vec<(i8, String, Option<String>)> = res
                .configs
                .iter()
                .map(|c| (c.config_operation, s(&c.name), c.value.as_ref().map(s)))
                .collect();
            if res.resource_type == RESOURCE_GROUP {
                return alter_group(ctx, &name, req.validate_only, |overrides| {
                    for (op, key, value) in ops {
                        apply_op(overrides, op, key, value, String::new)?;
                    }
                    Ok(())
                });
            }
            let base = ctx.broker.topics.base_log_config();
            if res.resource_type == RESOURCE_BROKER {
                return alter_broker(ctx, req.validate_only, |configs| {
                    for (op, key, value) in ops {
                        let topic_key = dynamic_config::topic_key(&key).unwrap_or_default();
                        apply_op(configs, op, key, value, || {
                            topic_config::broker_default(topic_key, &base)
                        })?;
                    }
                    Ok(())
                });
            }
            let topic = ctx
                .broker
                .topics
                .get(&name)
                .ok_or((ResponseError::UnknownTopicOrPartition.code(), name.clone()))?;
            let mut overrides = topic.overrides();
            for (op, key, value) in ops {
                let k = key.clone();
                apply_op(&mut overrides, op, key, value, || {
                    topic_config::broker_default(&k, &base)
                })
                .map_err(|m| (ResponseError::InvalidConfig.code(), m))?;
            }
            apply_topic(ctx, &name, overrides, req.validate_only)
        });
        let outcome = store(ctx, outcome).await;
        let mut r = kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        // Kafka answers null on success (ApiError.NONE); the crate's default is "".
        r.error_message = None;
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        if let Err((code, msg)) = outcome {
            r.error_code = code;
            r.error_message = Some(sb(msg));
        }
        resp.responses.push(r);
    }
    resp
}

pub fn handle_alter(ctx: &Ctx, req: AlterConfigsRequest) -> Result<Reply, ProtocolError> {
    super::reply_later(
        ctx,
        |ctx| async move { handle_alter_answer(&ctx, req).await },
    )
}

async fn handle_alter_answer(ctx: &Ctx, req: AlterConfigsRequest) -> AlterConfigsResponse {
    // Topics another broker created an instant ago are loaded before the checks.
    for res in &req.resources {
        if res.resource_type == RESOURCE_TOPIC {
            ctx.broker.topics.get_fresh(&s(&res.resource_name)).await;
        }
    }
    let mut resp = AlterConfigsResponse::default();
    for res in req.resources {
        let name = s(&res.resource_name);
        let outcome = check_resource(ctx, res.resource_type, &name).and_then(|_| {
            let overrides: BTreeMap<String, String> = res
                .configs
                .iter()
                .filter_map(|c| c.value.as_ref().map(|v| (s(&c.name), s(v))))
                .collect();
            if res.resource_type == RESOURCE_GROUP {
                return alter_group(ctx, &name, req.validate_only, |o| {
                    *o = overrides;
                    Ok(())
                });
            }
            if res.resource_type == RESOURCE_BROKER {
                // AlterConfigs replaces the whole set, as in Kafka.
                return alter_broker(ctx, req.validate_only, |c| {
                    *c = overrides;
                    Ok(())
                });
            }
            apply_topic(ctx, &name, overrides, req.validate_only)
        });
        let outcome = store(ctx, outcome).await;
        let mut r =
            kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse::default(
            );
        // Kafka answers null on success (ApiError.NONE); the crate's default is "".
        r.error_message = None;
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        if let Err((code, msg)) = outcome {
            r.error_code = code;
            r.error_message = Some(sb(msg));
        }
        resp.responses.push(r);
    }
    resp
}
