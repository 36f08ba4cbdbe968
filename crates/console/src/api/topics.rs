//! Topics: list, create, describe (partitions and configs), delete, alter
//! configs. Metadata, CreateTopics, DeleteTopics, DescribeConfigs,
//! IncrementalAlterConfigs, ListOffsets and DescribeLogDirs, as the caller.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, patch};
use axum::{Json, Router};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, DescribeLogDirsRequest,
    IncrementalAlterConfigsRequest, TopicName,
};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::ops::{self, sb};
use super::session::Caller;
use crate::AppState;

const CREATE_TOPICS_VERSION: i16 = 7;
const DELETE_TOPICS_VERSION: i16 = 6;
const DESCRIBE_CONFIGS_VERSION: i16 = 4;
const INCREMENTAL_ALTER_CONFIGS_VERSION: i16 = 1;
const DESCRIBE_LOG_DIRS_VERSION: i16 = 4;
/// DescribeConfigs / IncrementalAlterConfigs resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// Most configs one PATCH or create may carry.
const CONFIGS_MAX: usize = 256;
/// Most partitions a topic may be created with from the console.
const PARTITIONS_MAX: i32 = 10_000;
/// The broker's timeout for CreateTopics and DeleteTopics.
const ADMIN_TIMEOUT_MS: i32 = 30_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/topics", get(list).post(create))
        .route("/topics/{name}", get(describe).delete(delete))
        .route("/topics/{name}/configs", patch(alter_configs))
}

#[derive(Serialize)]
struct TopicRow {
    name: String,
    id: String,
    partitions: usize,
    internal: bool,
    /// Null when the principal may not describe the cluster (DescribeLogDirs).
    size_bytes: Option<i64>,
    records: i64,
    records_in_per_s: f64,
    bytes_in_per_s: f64,
    dead_letter: bool,
}

/// Partition sizes by topic, if the principal may describe the cluster.
async fn sizes(caller: &Caller) -> Option<BTreeMap<String, i64>> {
    let mut req = DescribeLogDirsRequest::default();
    req.topics = None;
    let resp = caller
        .client
        .call(&req, DESCRIBE_LOG_DIRS_VERSION)
        .await
        .ok()?;
    if resp.error_code != 0 {
        return None;
    }
    let mut out = BTreeMap::new();
    for dir in resp.results {
        for t in dir.topics {
            let size: i64 = t.partitions.iter().map(|p| p.partition_size.max(0)).sum();
            *out.entry(t.name.0.to_string()).or_insert(0) += size;
        }
    }
    Some(out)
}

async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<TopicRow>>> {
    let md = ops::metadata(&caller.client, None).await?;
    let sizes = sizes(&caller).await;
    // The sampler's per-topic rates; only topics Metadata showed are listed.
    let rates: BTreeMap<String, (f64, f64)> = match state.api.sampler.latest.lock() {
        Ok(l) => l
            .topics
            .iter()
            .map(|(t, r)| (t.clone(), (r.records_in_per_s, r.bytes_in_per_s)))
            .collect(),
        Err(_) => BTreeMap::new(),
    };
    let mut rows = Vec::new();
    for t in md.topics {
        let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
            continue;
        };
        if t.error_code != 0 {
            continue;
        }
        let parts: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        // A topic deleted meanwhile or not readable: its counts are unknown, not an error.
        let records = match ops::watermarks(&caller.client, &name, &parts).await {
            Ok(w) => w.values().map(|(l, h)| (h - l).max(0)).sum(),
            Err(_) => 0,
        };
        let (records_in_per_s, bytes_in_per_s) = rates.get(&name).copied().unwrap_or_default();
        rows.push(TopicRow {
            id: t.topic_id.to_string(),
            partitions: parts.len(),
            internal: t.is_internal,
            size_bytes: sizes.as_ref().map(|s| s.get(&name).copied().unwrap_or(0)),
            records,
            records_in_per_s,
            bytes_in_per_s,
            dead_letter: name.ends_with(".dlq"),
            name,
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(rows))
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    partitions: Option<i32>,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Created {
    name: String,
    id: String,
}

async fn create(
    caller: Caller,
    ops::JsonBody(body): ops::JsonBody<CreateBody>,
) -> ApiResult<impl IntoResponse> {
    ops::check_topic_name(&body.name)?;
    let partitions = body.partitions.unwrap_or(1);
    if !(1..=PARTITIONS_MAX).contains(&partitions) {
        return Err(ApiError::bad_request(format!(
            "partitions must be 1 to {PARTITIONS_MAX}"
        )));
    }
    if body.configs.len() > CONFIGS_MAX {
        return Err(ApiError::bad_request("too many configs"));
    }
    let mut t = CreatableTopic::default();
    t.name = TopicName(sb(&body.name));
    t.num_partitions = partitions;
    t.replication_factor = -1;
    t.configs = body
        .configs
        .iter()
        .map(|(k, v)| {
            let mut c = CreatableTopicConfig::default();
            c.name = sb(k);
            c.value = Some(sb(v));
            c
        })
        .collect();
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = ADMIN_TIMEOUT_MS;
    let resp = caller.client.call(&req, CREATE_TOPICS_VERSION).await?;
    let r = resp
        .topics
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::new(StatusCode::BAD_GATEWAY, "BROKER", "empty answer"))?;
    if r.error_code != 0 {
        return Err(ApiError::kafka(
            r.error_code,
            r.error_message.as_ref().map(|m| m.as_str()),
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(Created {
            name: body.name,
            id: r.topic_id.to_string(),
        }),
    ))
}

#[derive(Serialize)]
struct PartitionRow {
    partition: i32,
    leader: i32,
    log_start_offset: i64,
    high_watermark: i64,
}

#[derive(Serialize)]
struct ConfigRow {
    name: String,
    value: Option<String>,
    source: &'static str,
    read_only: bool,
    sensitive: bool,
}

#[derive(Serialize)]
struct TopicDetail {
    name: String,
    id: String,
    internal: bool,
    partitions: Vec<PartitionRow>,
    configs: Vec<ConfigRow>,
}

/// Kafka's names of DescribeConfigs' `config_source`.
fn source_name(s: i8) -> &'static str {
    match s {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

async fn describe(caller: Caller, Path(name): Path<String>) -> ApiResult<Json<TopicDetail>> {
    let meta = ops::topic_meta(&caller.client, &name).await?;
    let parts: Vec<i32> = meta.partitions.iter().map(|(p, _)| *p).collect();
    let marks = ops::watermarks(&caller.client, &name, &parts).await?;
    let mut res = DescribeConfigsResource::default();
    res.resource_type = RESOURCE_TOPIC;
    res.resource_name = sb(&name);
    res.configuration_keys = None;
    let mut req = DescribeConfigsRequest::default();
    req.resources = vec![res];
    let resp = caller.client.call(&req, DESCRIBE_CONFIGS_VERSION).await?;
    let mut configs = Vec::new();
    for r in resp.results {
        if r.error_code != 0 {
            return Err(ApiError::kafka(
                r.error_code,
                r.error_message.as_ref().map(|m| m.as_str()),
            ));
        }
        for c in r.configs {
            configs.push(ConfigRow {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: source_name(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            });
        }
    }
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(TopicDetail {
        name: meta.name,
        id: meta.id.to_string(),
        internal: meta.internal,
        partitions: meta
            .partitions
            .iter()
            .map(|(p, leader)| {
                let (l, h) = marks.get(p).copied().unwrap_or((-1, -1));
                PartitionRow {
                    partition: *p,
                    leader: *leader,
                    log_start_offset: l,
                    high_watermark: h,
                }
            })
            .collect(),
        configs,
    }))
}

async fn delete(caller: Caller, Path(name): Path<String>) -> ApiResult<StatusCode> {
    ops::check_topic_name(&name)?;
    let mut t = DeleteTopicState::default();
    t.name = Some(TopicName(sb(&name)));
    let mut req = DeleteTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = ADMIN_TIMEOUT_MS;
    let resp = caller.client.call(&req, DELETE_TOPICS_VERSION).await?;
    for r in resp.responses {
        if r.error_code != 0 {
            return Err(ApiError::kafka(
                r.error_code,
                r.error_message.as_ref().map(|m| m.as_str()),
            ));
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct AlterBody {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    delete: Vec<String>,
}

async fn alter_configs(
    caller: Caller,
    Path(name): Path<String>,
    ops::JsonBody(body): ops::JsonBody<AlterBody>,
) -> ApiResult<StatusCode> {
    ops::check_topic_name(&name)?;
    if body.set.len() + body.delete.len() > CONFIGS_MAX {
        return Err(ApiError::bad_request("too many configs"));
    }
    let mut configs: Vec<AlterableConfig> = body
        .set
        .iter()
        .map(|(k, v)| {
            let mut c = AlterableConfig::default();
            c.name = sb(k);
            c.config_operation = OP_SET;
            c.value = Some(sb(v));
            c
        })
        .collect();
    configs.extend(body.delete.iter().map(|k| {
        let mut c = AlterableConfig::default();
        c.name = sb(k);
        c.config_operation = OP_DELETE;
        c.value = None;
        c
    }));
    let mut res = AlterConfigsResource::default();
    res.resource_type = RESOURCE_TOPIC;
    res.resource_name = sb(&name);
    res.configs = configs;
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![res];
    let resp = caller
        .client
        .call(&req, INCREMENTAL_ALTER_CONFIGS_VERSION)
        .await?;
    for r in resp.responses {
        if r.error_code != 0 {
            return Err(ApiError::kafka(
                r.error_code,
                r.error_message.as_ref().map(|m| m.as_str()),
            ));
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
