//! Prometheus metrics: what the broker counts while it serves, and
//! [`render`], the OpenMetrics text a `/metrics` endpoint returns.
//!
//! Counters and histograms are plain atomics bumped on the request path
//! (see each module); everything else (partition offsets, group lag, the
//! process) is read when scraped, so it costs nothing between scrapes.
//! When `BrokerConfig::metrics_enabled` is false (`--http-listen off`),
//! nothing is recorded on the request path and the traffic accessors stay at
//! zero (the console, their only user, is off too).
//!
//! prometheus-client encodes the text; its own metric types are not used
//! on the hot path (its `Histogram` locks per observation).

use std::sync::Arc;

pub mod connections;
pub mod encode;
pub mod fetch_sessions;
pub mod groups;
pub mod histogram;
pub mod process;
pub mod requests;
pub mod storage;
pub mod traffic;

use kafka_protocol::messages::ApiKey;

pub use storage::FsyncStats;
pub use traffic::{Inflow, TopicCounters, Traffic};

use crate::broker::Broker;
use encode::{Family, Value};

/// The Content-Type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub struct Metrics {
    enabled: bool,
    pub requests: requests::Requests,
    pub traffic: traffic::TopicTraffic,
    pub connections: connections::Connections,
    pub log: storage::LogActivity,
    pub fetch_sessions: fetch_sessions::FetchSessions,
}

impl Metrics {
    pub fn new(enabled: bool) -> Metrics {
        Metrics {
            enabled,
            requests: Default::default(),
            traffic: Default::default(),
            connections: Default::default(),
            log: Default::default(),
            fetch_sessions: Default::default(),
        }
    }

    /// Whether the request path records anything.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Counts a request (if enabled) and starts its latency timer.
    pub fn request_started(&self, api: ApiKey, version: i16) -> Option<requests::RequestTimer> {
        if !self.enabled {
            return None;
        }
        self.requests.started(api, version)
    }

    pub fn request_finished(&self, timer: Option<requests::RequestTimer>) {
        if let Some(t) = timer {
            self.requests.finish(t);
        }
    }

    /// A non-zero error code answered for `api`.
    pub fn request_error(&self, api: ApiKey, code: i16) {
        if self.enabled {
            self.requests.error(api, code);
        }
    }

    /// A request answered by closing the connection.
    pub fn request_closed_connection(&self, api: ApiKey) {
        if self.enabled {
            self.requests.connection_closed(api);
        }
    }

    /// The traffic counters of an existing topic; None when disabled.
    pub fn topic(&self, topic: &str) -> Option<Arc<TopicCounters>> {
        self.enabled.then(|| self.traffic.counters(topic))
    }

    /// A connection opened on `listener`; closing is counted when the guard drops.
    pub fn connection_opened(&self, listener: &str) -> Option<connections::ConnectionGuard> {
        if !self.enabled {
            return None;
        }
        self.connections.opened(listener)
    }

    /// Bytes and records in and out over all topics since start-up
    /// (cumulative; deleted topics' counts included).
    pub fn traffic_totals(&self) -> Traffic {
        self.traffic.totals()
    }

    /// Cumulative traffic per existing topic, by name.
    pub fn topic_traffic(&self) -> Vec<(String, Traffic)> {
        self.traffic.per_topic()
    }
}

/// The OpenMetrics text of every family (see docs/console.md for the list).
pub async fn render(broker: &Arc<Broker>) -> String {
    let m = &broker.metrics;
    m.traffic.retain(|t| broker.topics.get(t).is_some());
    let mut out: Vec<Family> = Vec::new();
    m.requests.collect(&mut out);
    m.traffic.collect(&mut out);
    let watermarks = storage::collect_partitions(broker, &mut out).await;
    groups::collect(broker, &watermarks, &mut out).await;
    m.connections.collect(&mut out);
    m.fetch_sessions.collect(&broker.fetch_sessions, &mut out);
    let security = &broker.security;
    let load = |a: &std::sync::atomic::AtomicU64| {
        Value::Counter(a.load(std::sync::atomic::Ordering::Relaxed))
    };
    out.push(
        Family::counter(
            "herald_auth_failures",
            "Failed SASL authentications (bad credentials, refused mechanism, timeout).",
        )
        .with(vec![], load(&security.auth_failures_total)),
    );
    out.push(
        Family::counter(
            "herald_tls_handshake_failures",
            "TLS handshakes that failed or timed out.",
        )
        .with(vec![], load(&security.tls_failures_total)),
    );
    out.push(
        Family::counter(
            "herald_authorization_denied",
            "Operations refused by the ACL authorizer.",
        )
        .with(vec![], load(&security.authorization_denials_total)),
    );
    out.push(
        Family::gauge(
            "herald_under_replicated_partitions",
            "Partitions with fewer in-sync replicas than replicas: always 0 (one replica per partition); for dashboards.",
        )
        .with(vec![], Value::Gauge(0)),
    );
    let fsync = broker.topics.engine().fsync_stats();
    m.log.collect(fsync.as_deref(), &mut out);
    process::collect(&mut out);
    encode::to_text(out)
}

#[cfg(test)]
mod tests;
