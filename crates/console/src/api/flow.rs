//! `GET /api/flow`: the event-flow graph, producers → topics → consumer
//! groups, from what the broker observed (see herald_broker::event_flow) and
//! the groups' committed offsets. Only topics and groups the caller may
//! Describe appear; the console's own requests are left out.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use herald_security::acl::{Operation, ResourceType};
use serde::{Deserialize, Serialize};

use super::sampler::RATE_WINDOW;
use super::session::Caller;
use crate::AppState;
use crate::kafka::CONSOLE_CLIENT_ID;

/// How long a producer that went quiet stays in the graph, by default and at most.
const WINDOW_SECONDS_DEFAULT: u64 = 300;
const WINDOW_SECONDS_MAX: u64 = 86_400;
/// Nodes one answer holds (the browser draws every one).
const NODES_MAX: usize = 2_000;

#[derive(Deserialize)]
struct FlowQuery {
    window: Option<u64>,
}

#[derive(Serialize, Default)]
struct Node {
    id: String,
    kind: &'static str,
    label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transactional_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lag: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
}

#[derive(Serialize)]
struct Edge {
    from: String,
    to: String,
    records_per_s: f64,
    bytes_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lag: Option<i64>,
}

#[derive(Serialize)]
struct Flow {
    window_seconds: u64,
    rate_window_seconds: u64,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
    truncated: bool,
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/flow", get(flow))
}

fn topic_id(name: &str) -> String {
    format!("topic:{name}")
}

async fn flow(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<FlowQuery>,
) -> Json<Flow> {
    let window = q
        .window
        .unwrap_or(WINDOW_SECONDS_DEFAULT)
        .clamp(1, WINDOW_SECONDS_MAX);
    let since_ms = herald_broker::now_ms() - (window as i64) * 1000;
    let broker = &state.broker;
    let may_topic = |t: &str| {
        broker.topics.get(t).is_some()
            && caller
                .client
                .may(Operation::Describe, ResourceType::Topic, t)
    };
    let mut producers: BTreeMap<String, Node> = BTreeMap::new();
    let mut topics: BTreeSet<String> = BTreeSet::new();
    let mut edges = Vec::new();
    for p in state.api.sampler.producers(broker) {
        let k = &p.key;
        if p.last_seen_ms < since_ms || k.client_id == CONSOLE_CLIENT_ID || !may_topic(&k.topic) {
            continue;
        }
        let who = k.transactional_id.as_deref().unwrap_or(&k.client_id);
        let id = format!("producer:{}|{}", k.principal, who);
        producers.entry(id.clone()).or_insert_with(|| Node {
            id: id.clone(),
            kind: "producer",
            label: if who.is_empty() {
                "(no client id)".to_string()
            } else {
                who.to_string()
            },
            client_id: Some(k.client_id.clone()),
            principal: Some(k.principal.clone()),
            transactional_id: k.transactional_id.clone(),
            ..Node::default()
        });
        topics.insert(k.topic.clone());
        edges.push(Edge {
            from: id,
            to: topic_id(&k.topic),
            records_per_s: p.records_per_s,
            bytes_per_s: p.bytes_per_s,
            lag: None,
        });
    }
    let mut groups = Vec::new();
    if let Ok(latest) = state.api.sampler.latest.lock() {
        for g in &latest.groups {
            if !caller
                .client
                .may(Operation::Describe, ResourceType::Group, &g.group)
            {
                continue;
            }
            let mut any = false;
            for e in latest.group_topics.iter().filter(|e| e.group == g.group) {
                if !may_topic(&e.topic) {
                    continue;
                }
                any = true;
                topics.insert(e.topic.clone());
                edges.push(Edge {
                    from: topic_id(&e.topic),
                    to: format!("group:{}", g.group),
                    records_per_s: e.records_per_s,
                    bytes_per_s: 0.0,
                    lag: Some(e.lag),
                });
            }
            if any {
                groups.push(Node {
                    id: format!("group:{}", g.group),
                    kind: "group",
                    label: g.group.clone(),
                    lag: Some(g.lag),
                    state: Some(g.state.clone()),
                    ..Node::default()
                });
            }
        }
    }
    let mut nodes: Vec<Node> = producers.into_values().collect();
    nodes.extend(topics.into_iter().map(|t| Node {
        id: topic_id(&t),
        kind: "topic",
        label: t,
        ..Node::default()
    }));
    nodes.extend(groups);
    let truncated = nodes.len() > NODES_MAX;
    if truncated {
        nodes.truncate(NODES_MAX);
        let kept: BTreeSet<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        edges.retain(|e| kept.contains(e.from.as_str()) && kept.contains(e.to.as_str()));
    }
    Json(Flow {
        window_seconds: window,
        rate_window_seconds: RATE_WINDOW.as_secs(),
        nodes,
        edges,
        truncated,
    })
}
