//! `GET /api/overview`: the Overview page's figures and live throughput.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use herald_security::acl::{CLUSTER_NAME, Operation, ResourceType};
use serde::Serialize;

use super::sampler::SeriesPoint;
use super::session::Caller;
use crate::AppState;

#[derive(Serialize)]
struct Broker {
    node_id: i32,
    host: String,
    port: i32,
}

#[derive(Serialize)]
struct Overview {
    topics: usize,
    partitions: usize,
    disk_bytes: u64,
    brokers: Vec<Broker>,
    /// Broker-wide throughput; empty for a principal that may not Describe
    /// the cluster (it would show other principals' traffic).
    series: Vec<SeriesPoint>,
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/overview", get(overview))
}

async fn overview(State(state): State<AppState>, caller: Caller) -> Json<Overview> {
    let b = &state.broker;
    let mut topics = 0;
    let mut partitions = 0;
    let mut disk_bytes = 0;
    for t in b.topics.list() {
        // User topics: the internal ones are the coordinators' logs (the
        // Topics page lists them behind its "internal topics" switch).
        if t.is_internal() {
            continue;
        }
        if !caller
            .client
            .may(Operation::Describe, ResourceType::Topic, &t.name)
        {
            continue;
        }
        topics += 1;
        for p in t.partitions() {
            partitions += 1;
            disk_bytes += p.size_bytes();
        }
    }
    let brokers = b
        .membership
        .live()
        .into_iter()
        .map(|m| Broker {
            node_id: m.node_id,
            host: m.host,
            port: m.port,
        })
        .collect();
    let series = if caller
        .client
        .may(Operation::Describe, ResourceType::Cluster, CLUSTER_NAME)
    {
        match state.api.sampler.latest.lock() {
            Ok(l) => l.series.iter().copied().collect(),
            Err(_) => Vec::new(),
        }
    } else {
        Vec::new()
    };
    Json(Overview {
        topics,
        partitions,
        disk_bytes,
        brokers,
        series,
    })
}
