//! Consumer groups: list, describe with lag, reset offsets (dry run first),
//! delete. ListGroups, DescribeGroups (classic groups), ConsumerGroupDescribe
//! (KIP-848 groups), OffsetFetch, ListOffsets, OffsetCommit and DeleteGroups,
//! as the caller. Lag = high watermark − committed, as `herald group
//! describe` (crates/herald/src/cli/group.rs) computes it.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerProtocolAssignment, DeleteGroupsRequest,
    DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
    TopicName,
};
use kafka_protocol::protocol::Decodable;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::ops::{self, sb};
use super::session::Caller;
use crate::AppState;

const LIST_GROUPS_VERSION: i16 = 5;
const DESCRIBE_GROUPS_VERSION: i16 = 5;
const CONSUMER_GROUP_DESCRIBE_VERSION: i16 = 0;
/// v7: one group, topics by name, `require_stable`.
const OFFSET_FETCH_VERSION: i16 = 7;
/// v8: the last version before KIP-848's member epochs; an admin commit
/// (generation -1, no member) is accepted by both kinds of empty group.
pub const OFFSET_COMMIT_VERSION: i16 = 8;
const DELETE_GROUPS_VERSION: i16 = 2;
/// Longest group id accepted.
const GROUP_ID_BYTES_MAX: usize = 255;
/// GET /api/groups describes this many groups (members, offsets, lag: three
/// requests each); the rest are listed as ListGroups gives them, lag null.
const GROUPS_DESCRIBED_MAX: usize = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/groups", get(list))
        .route("/groups/{id}", get(describe).delete(delete))
        .route("/groups/{id}/reset", post(reset))
}

fn check_group_id(id: &str) -> ApiResult<()> {
    if id.is_empty() || id.len() > GROUP_ID_BYTES_MAX {
        return Err(ApiError::bad_request(format!(
            "a group id has 1 to {GROUP_ID_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

#[derive(Serialize, Clone)]
struct AssignedTopic {
    topic: String,
    partitions: Vec<i32>,
}

#[derive(Serialize, Clone)]
struct Member {
    member_id: String,
    client_id: String,
    client_host: String,
    assignment: Vec<AssignedTopic>,
}

struct GroupInfo {
    state: String,
    kind: &'static str,
    protocol_type: String,
    protocol: String,
    members: Vec<Member>,
}

fn assigned(pairs: BTreeMap<String, Vec<i32>>) -> Vec<AssignedTopic> {
    pairs
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort();
            AssignedTopic { topic, partitions }
        })
        .collect()
}

/// A classic consumer member's assignment (ConsumerProtocolAssignment).
fn decode_assignment(bytes: &[u8]) -> Vec<AssignedTopic> {
    let mut buf = bytes::Bytes::copy_from_slice(bytes);
    if buf.len() < 2 {
        return Vec::new();
    }
    let version = bytes::Buf::get_i16(&mut buf);
    let Ok(a) = ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3)) else {
        return Vec::new();
    };
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for t in a.assigned_partitions {
        out.entry(t.topic.0.to_string())
            .or_default()
            .extend(t.partitions);
    }
    assigned(out)
}

/// The group's state and members: a classic group from DescribeGroups, a
/// KIP-848 one (which DescribeGroups shows as Dead) from ConsumerGroupDescribe.
async fn group_info(caller: &Caller, id: &str) -> ApiResult<GroupInfo> {
    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(sb(id))];
    let resp = caller.client.call(&req, DESCRIBE_GROUPS_VERSION).await?;
    let g = resp
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::new(StatusCode::BAD_GATEWAY, "BROKER", "empty answer"))?;
    if g.error_code != 0 {
        return Err(ApiError::kafka(
            g.error_code,
            g.error_message.as_ref().map(|m| m.as_str()),
        ));
    }
    if g.group_state.as_str() != "Dead" {
        let consumer = g.protocol_type.as_str() == "consumer";
        return Ok(GroupInfo {
            state: g.group_state.to_string(),
            kind: "classic",
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members: g
                .members
                .iter()
                .map(|m| Member {
                    member_id: m.member_id.to_string(),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    assignment: if consumer {
                        decode_assignment(&m.member_assignment)
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
        });
    }
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![GroupId(sb(id))];
    let resp = caller
        .client
        .call(&req, CONSUMER_GROUP_DESCRIBE_VERSION)
        .await?;
    let Some(g) = resp.groups.into_iter().next() else {
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "BROKER",
            "empty answer",
        ));
    };
    if g.error_code == kafka_protocol::ResponseError::GroupIdNotFound.code() {
        // No live group: what is left is its committed offsets, if any.
        return Ok(GroupInfo {
            state: "Dead".to_string(),
            kind: "classic",
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        });
    }
    if g.error_code != 0 {
        return Err(ApiError::kafka(
            g.error_code,
            g.error_message.as_ref().map(|m| m.as_str()),
        ));
    }
    Ok(GroupInfo {
        state: g.group_state.to_string(),
        kind: "consumer",
        protocol_type: "consumer".to_string(),
        protocol: g.assignor_name.to_string(),
        members: g
            .members
            .iter()
            .map(|m| {
                let mut parts: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for t in &m.assignment.topic_partitions {
                    parts
                        .entry(t.topic_name.0.to_string())
                        .or_default()
                        .extend(t.partitions.iter().copied());
                }
                Member {
                    member_id: m.member_id.to_string(),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    assignment: assigned(parts),
                }
            })
            .collect(),
    })
}

/// Committed offsets of the group: (topic, partition) → offset (≥ 0 only).
async fn committed(caller: &Caller, id: &str) -> ApiResult<BTreeMap<(String, i32), i64>> {
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(sb(id));
    req.topics = None;
    req.require_stable = false;
    let resp = caller.client.call(&req, OFFSET_FETCH_VERSION).await?;
    if resp.error_code != 0 {
        return Err(ApiError::kafka(resp.error_code, None));
    }
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.error_code == 0 && p.committed_offset >= 0 {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct OffsetRow {
    topic: String,
    partition: i32,
    committed: i64,
    high_watermark: i64,
    lag: i64,
}

/// Committed offsets with the high watermark and lag of each.
async fn offsets_with_lag(caller: &Caller, id: &str) -> ApiResult<Vec<OffsetRow>> {
    let committed = committed(caller, id).await?;
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in committed.keys() {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    let mut rows = Vec::new();
    for (topic, parts) in by_topic {
        // A topic deleted since the commit has no high watermark: shown as 0.
        let highs = ops::list_offsets(&caller.client, topic, &parts, ops::LATEST)
            .await
            .unwrap_or_default();
        for p in parts {
            let c = committed[&(topic.to_string(), p)];
            let hw = highs.get(&p).copied().unwrap_or(-1);
            rows.push(OffsetRow {
                topic: topic.to_string(),
                partition: p,
                committed: c,
                high_watermark: hw,
                lag: (hw - c).max(0),
            });
        }
    }
    Ok(rows)
}

#[derive(Serialize)]
struct GroupRow {
    group_id: String,
    state: String,
    protocol_type: String,
    #[serde(rename = "type")]
    kind: String,
    members: usize,
    /// Null past [`GROUPS_DESCRIBED_MAX`] groups.
    lag: Option<i64>,
    topics: Vec<String>,
}

async fn list(caller: Caller) -> ApiResult<Json<Vec<GroupRow>>> {
    let req = ListGroupsRequest::default();
    let resp = caller.client.call(&req, LIST_GROUPS_VERSION).await?;
    if resp.error_code != 0 {
        return Err(ApiError::kafka(resp.error_code, None));
    }
    let mut groups = resp.groups;
    groups.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    let mut rows = Vec::new();
    for (i, g) in groups.into_iter().enumerate() {
        let id = g.group_id.0.to_string();
        let kind_listed = g.group_type.to_string();
        if i >= GROUPS_DESCRIBED_MAX {
            rows.push(GroupRow {
                group_id: id,
                state: g.group_state.to_string(),
                protocol_type: g.protocol_type.to_string(),
                kind: if kind_listed.is_empty() {
                    "classic".into()
                } else {
                    kind_listed
                },
                members: 0,
                lag: None,
                topics: Vec::new(),
            });
            continue;
        }
        // A group that vanished or that the principal may not describe
        // meanwhile is listed with what ListGroups said.
        let info = group_info(&caller, &id).await.ok();
        let offsets = offsets_with_lag(&caller, &id).await.unwrap_or_default();
        let mut topics: BTreeSet<String> = offsets.iter().map(|o| o.topic.clone()).collect();
        if let Some(i) = &info {
            for m in &i.members {
                topics.extend(m.assignment.iter().map(|a| a.topic.clone()));
            }
        }
        let kind = match kind_listed.as_str() {
            "" => info
                .as_ref()
                .map(|i| i.kind)
                .unwrap_or("classic")
                .to_string(),
            _ => kind_listed,
        };
        rows.push(GroupRow {
            group_id: id,
            state: info
                .as_ref()
                .map(|i| i.state.clone())
                .unwrap_or_else(|| g.group_state.to_string()),
            protocol_type: g.protocol_type.to_string(),
            kind,
            members: info.as_ref().map(|i| i.members.len()).unwrap_or(0),
            lag: Some(offsets.iter().map(|o| o.lag).sum()),
            topics: topics.into_iter().collect(),
        });
    }
    rows.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    Ok(Json(rows))
}

#[derive(Serialize)]
struct GroupDetail {
    group_id: String,
    state: String,
    #[serde(rename = "type")]
    kind: &'static str,
    protocol_type: String,
    protocol: String,
    members: Vec<Member>,
    offsets: Vec<OffsetRow>,
    lag: i64,
}

async fn describe(caller: Caller, Path(id): Path<String>) -> ApiResult<Json<GroupDetail>> {
    check_group_id(&id)?;
    let info = group_info(&caller, &id).await?;
    let offsets = offsets_with_lag(&caller, &id).await?;
    if info.state == "Dead" && offsets.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "GROUP_ID_NOT_FOUND",
            format!("no group '{id}'"),
        ));
    }
    Ok(Json(GroupDetail {
        group_id: id,
        state: info.state,
        kind: info.kind,
        protocol_type: info.protocol_type,
        protocol: info.protocol,
        members: info.members,
        lag: offsets.iter().map(|o| o.lag).sum(),
        offsets,
    }))
}

async fn delete(caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    check_group_id(&id)?;
    let mut req = DeleteGroupsRequest::default();
    req.groups_names = vec![GroupId(sb(&id))];
    let resp = caller.client.call(&req, DELETE_GROUPS_VERSION).await?;
    for r in resp.results {
        if r.error_code != 0 {
            return Err(ApiError::kafka(r.error_code, None));
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct ResetBody {
    topic: Option<String>,
    to: String,
    timestamp: Option<i64>,
    offset: Option<i64>,
    /// A preview unless `false` is sent.
    #[serde(default = "yes")]
    dry_run: bool,
}

fn yes() -> bool {
    true
}

#[derive(Serialize)]
struct ResetRow {
    topic: String,
    partition: i32,
    current: Option<i64>,
    new: i64,
    lag_after: i64,
}

#[derive(Serialize)]
struct ResetAnswer {
    dry_run: bool,
    offsets: Vec<ResetRow>,
}

/// Commits `offsets` for the group as an admin (generation -1, no member),
/// as Kafka's AdminClient alterConsumerGroupOffsets does. A group that gained
/// a member meanwhile answers UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION: 409.
pub async fn commit_offsets(
    caller: &Caller,
    group: &str,
    offsets: &[(String, i32, i64)],
) -> ApiResult<()> {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (t, p, o) in offsets {
        let mut cp = OffsetCommitRequestPartition::default();
        cp.partition_index = *p;
        cp.committed_offset = *o;
        cp.committed_leader_epoch = -1;
        cp.committed_metadata = Some(sb(""));
        by_topic.entry(t.as_str()).or_default().push(cp);
    }
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(sb(group));
    req.generation_id_or_member_epoch = -1;
    req.member_id = sb("");
    req.group_instance_id = None;
    req.retention_time_ms = -1;
    req.topics = by_topic
        .into_iter()
        .map(|(t, parts)| {
            let mut ct = OffsetCommitRequestTopic::default();
            ct.name = TopicName(sb(t));
            ct.partitions = parts;
            ct
        })
        .collect();
    let resp = caller.client.call(&req, OFFSET_COMMIT_VERSION).await?;
    use kafka_protocol::ResponseError as E;
    for t in resp.topics {
        for p in t.partitions {
            let code = p.error_code;
            if code == 0 {
                continue;
            }
            if code == E::UnknownMemberId.code()
                || code == E::IllegalGeneration.code()
                || code == E::RebalanceInProgress.code()
            {
                return Err(non_empty(group));
            }
            return Err(ApiError::kafka(code, None));
        }
    }
    Ok(())
}

fn non_empty(group: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "NON_EMPTY_GROUP",
        format!("group '{group}' has active members; stop its consumers before resetting offsets"),
    )
}

async fn reset(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ops::JsonBody(body): ops::JsonBody<ResetBody>,
) -> ApiResult<Json<ResetAnswer>> {
    check_group_id(&id)?;
    // One reset at a time per server (redpanda#6083).
    let Ok(_one) = state.api.scans.reset.try_lock() else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RESET_IN_PROGRESS",
            "another offset reset is running; try again",
        ));
    };
    let info = group_info(&caller, &id).await?;
    if !info.members.is_empty() && !body.dry_run {
        return Err(non_empty(&id));
    }
    let current = committed(&caller, &id).await?;
    let topics: Vec<String> = match &body.topic {
        Some(t) => vec![t.clone()],
        None => current
            .keys()
            .map(|(t, _)| t.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    if topics.is_empty() {
        return Err(ApiError::bad_request(
            "the group has no committed offsets: name a topic",
        ));
    }
    let mut rows = Vec::new();
    for topic in &topics {
        let meta = ops::topic_meta(&caller.client, topic).await?;
        let parts: Vec<i32> = match &body.topic {
            Some(_) => meta.partitions.iter().map(|(p, _)| *p).collect(),
            // Without a topic: the partitions the group has committed.
            None => current
                .keys()
                .filter(|(t, _)| t == topic)
                .map(|(_, p)| *p)
                .filter(|p| meta.partitions.iter().any(|(q, _)| q == p))
                .collect(),
        };
        let marks = ops::watermarks(&caller.client, topic, &parts).await?;
        let at_time = match body.to.as_str() {
            "timestamp" => {
                let ts = body.timestamp.filter(|t| *t >= 0).ok_or_else(|| {
                    ApiError::bad_request("to=timestamp needs timestamp (epoch ms)")
                })?;
                // One index lookup per partition, in one request.
                Some(ops::list_offsets(&caller.client, topic, &parts, ts).await?)
            }
            _ => None,
        };
        for p in parts {
            let (low, high) = marks.get(&p).copied().unwrap_or((0, 0));
            let target = match body.to.as_str() {
                "earliest" => low,
                "latest" => high,
                "offset" => body
                    .offset
                    .ok_or_else(|| ApiError::bad_request("to=offset needs offset"))?,
                "timestamp" => at_time
                    .as_ref()
                    .and_then(|m| m.get(&p).copied())
                    .filter(|o| *o >= 0)
                    .unwrap_or(high),
                other => {
                    return Err(ApiError::bad_request(format!(
                        "bad 'to' {other:?}: earliest, latest, timestamp or offset"
                    )));
                }
            };
            let new = target.clamp(low, high);
            rows.push(ResetRow {
                topic: topic.clone(),
                partition: p,
                current: current.get(&(topic.clone(), p)).copied(),
                new,
                lag_after: (high - new).max(0),
            });
        }
    }
    if !body.dry_run {
        let plan: Vec<(String, i32, i64)> = rows
            .iter()
            .map(|r| (r.topic.clone(), r.partition, r.new))
            .collect();
        commit_offsets(&caller, &id, &plan).await?;
        tracing::info!(group = %id, principal = %caller.principal, to = %body.to, partitions = plan.len(), "console reset group offsets");
    }
    Ok(Json(ResetAnswer {
        dry_run: body.dry_run,
        offsets: rows,
    }))
}
