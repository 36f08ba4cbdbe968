//! The JSON admin API the console uses (documented in docs/console.md).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use herald_broker::Broker;
use serde::Serialize;

use crate::AppState;

/// What the API keeps between requests.
pub struct ApiState {
    pub broker: Arc<Broker>,
}

impl ApiState {
    pub fn new(broker: Arc<Broker>) -> Arc<ApiState> {
        Arc::new(ApiState { broker })
    }

    /// Starts the tasks that sample the broker for the live charts and rates.
    pub fn spawn_background(self: &Arc<Self>, _broker: Arc<Broker>) {}
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/info", get(info))
}

#[derive(Serialize)]
struct Info {
    cluster_id: String,
    node_id: i32,
    version: &'static str,
    engine: &'static str,
}

async fn info(State(state): State<AppState>) -> Json<Info> {
    let b = &state.broker;
    Json(Info {
        cluster_id: b.cluster_id.clone(),
        node_id: b.config.node_id,
        version: env!("CARGO_PKG_VERSION"),
        engine: b.topics.engine().kind(),
    })
}
