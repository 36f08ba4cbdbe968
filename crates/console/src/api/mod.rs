//! The JSON admin API the console uses (documented in docs/console.md).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::middleware;
use axum::routing::{get, post};
use herald_broker::Broker;
use serde::Serialize;

use crate::AppState;

pub mod dead_letters;
pub mod error;
pub mod filter;
pub mod flow;
pub mod groups;
pub mod messages;
pub mod ops;
pub mod overview;
pub mod sampler;
pub mod session;
pub mod tail;
pub mod topics;

/// What the API keeps between requests.
pub struct ApiState {
    pub broker: Arc<Broker>,
    pub sessions: session::Sessions,
    pub sampler: Arc<sampler::Sampler>,
    /// Message scans, tails, resets and the produce form's round robin.
    pub scans: messages::ScanLimits,
}

impl ApiState {
    pub fn new(broker: Arc<Broker>, https: bool) -> Arc<ApiState> {
        Arc::new(ApiState {
            sessions: session::Sessions::new(&broker, https),
            sampler: Arc::default(),
            scans: messages::ScanLimits::default(),
            broker,
        })
    }

    /// Starts the tasks that sample the broker for the live charts and rates.
    pub fn spawn_background(self: &Arc<Self>, broker: Arc<Broker>) {
        sampler::Sampler::spawn(&self.sampler, broker);
    }
}

/// Every `/api/` route, behind the session and CSRF guard.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/session", get(session::session))
        .route("/login", post(session::login))
        .route("/logout", post(session::logout))
        .route("/info", get(info))
        .merge(overview::routes())
        .merge(flow::routes())
        .merge(topics::routes())
        .merge(messages::routes())
        .merge(tail::routes())
        .merge(groups::routes())
        .merge(dead_letters::routes())
        .layer(middleware::from_fn_with_state(state, session::guard))
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
