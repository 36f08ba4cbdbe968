//! Herald's HTTP server: `/metrics` (Prometheus), `/healthz`, `/readyz`, the
//! JSON admin API under `/api/` and the console (static files embedded in the
//! binary). It runs beside the Kafka listeners, in the same process, and sees
//! what no outside tool can: every client's id and principal.

pub mod api;
pub mod assets;
pub mod kafka;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use herald_broker::Broker;
use tokio::sync::watch;

/// Where the HTTP server listens by default: loopback only, Redpanda's admin port.
pub const HTTP_LISTEN_DEFAULT: &str = "127.0.0.1:9644";

/// The state every route sees.
#[derive(Clone)]
pub struct AppState {
    pub broker: Arc<Broker>,
    pub api: Arc<api::ApiState>,
}

/// A running HTTP server.
pub struct RunningHttp {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningHttp {
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Binds `addr` (port 0 picks a free one) and serves until shut down.
pub async fn start(broker: Arc<Broker>, addr: SocketAddr) -> anyhow::Result<RunningHttp> {
    let listener = bind(addr).await?;
    start_on(broker, listener, false)
}

/// Binds the HTTP listener (before the broker starts, so that a port in use
/// is known before anything else is done).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind the HTTP listener {addr}: {e}"))
}

/// Serves on a bound listener until shut down; over HTTPS with the broker's
/// certificate when `https` (the broker must have one).
pub fn start_on(
    broker: Arc<Broker>,
    listener: tokio::net::TcpListener,
    https: bool,
) -> anyhow::Result<RunningHttp> {
    let addr = listener.local_addr()?;
    let tls = match (https, &broker.security.tls_sasl, &broker.security.tls) {
        (false, _, _) => None,
        // The SASL_SSL context asks for no client certificate (browsers have none).
        (true, Some(t), _) | (true, None, Some(t)) => Some(t.clone()),
        (true, None, None) => anyhow::bail!("--http-tls needs --ssl-cert and --ssl-key"),
    };
    broker.event_flow.enable();
    let api = api::ApiState::new(broker.clone(), tls.is_some());
    if api.sessions.auth_required && tls.is_none() && !addr.ip().is_loopback() {
        // Passwords would cross the network in clear text.
        tracing::warn!(
            %addr,
            "the console's login is served over plain HTTP on a non-loopback address; put it behind a TLS proxy or bind it to 127.0.0.1"
        );
    }
    api.spawn_background(broker.clone());
    let state = AppState {
        broker: broker.clone(),
        api,
    };
    let app = router(state);
    let (shutdown, mut stop) = watch::channel(false);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let make = app.into_make_service_with_connect_info::<SocketAddr>();
    let task = match tls {
        None => tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, make)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        }),
        Some(tls) => {
            // tap_io: axum gives ConnectInfo<SocketAddr> for tapped listeners.
            use axum::serve::ListenerExt;
            let incoming = tls::TlsIncoming::new(listener, tls)?.tap_io(|_| {});
            tokio::spawn(async move {
                if let Err(e) = axum::serve(incoming, make)
                    .with_graceful_shutdown(stopped)
                    .await
                {
                    tracing::error!(error = %e, "HTTPS server stopped");
                }
            })
        }
    };
    tracing::info!("http listening on {scheme}://{addr} (console, /metrics, /api)");
    Ok(RunningHttp {
        addr,
        shutdown,
        task,
    })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/api", api::routes(state.clone()))
        .fallback(assets::serve)
        .with_state(state)
}

/// The process is up and answering.
async fn healthz() -> &'static str {
    "ok\n"
}

/// The broker serves Kafka requests: it has loaded its topics (the HTTP
/// server starts after that) and is among the live brokers (in cluster mode,
/// it holds its lease in PostgreSQL, so clients are sent to it).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let me = state.broker.config.node_id;
    if state
        .broker
        .membership
        .live()
        .iter()
        .any(|b| b.node_id == me)
    {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: broker {me} is not among the live brokers\n"),
        )
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = herald_broker::metrics::render(&state.broker).await;
    (
        [(header::CONTENT_TYPE, herald_broker::metrics::CONTENT_TYPE)],
        body,
    )
}
