//! Herald's Kafka protocol server: frames, API version negotiation, one handler
//! per API, topic and partition management, and producer state.

pub mod broker;
pub mod config;
pub mod connection;
pub mod dynamic_config;
pub mod embedded;
pub mod error;
pub mod event_flow;
pub mod fetch_session;
pub mod fsutil;
pub mod group_coordinator;
pub mod handlers;
pub mod internal_topics;
pub mod listener;
pub mod maintenance;
pub mod membership;
pub mod memory;
pub mod metrics;
pub mod partition;
pub mod rate_limited_log;
pub mod sasl;
pub mod security;
pub mod server;
pub mod storage;
pub mod topic_config;
pub mod topic_registry;
pub mod txn_coordinator;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use embedded::EmbeddedBroker;
pub use server::{RunningBroker, start};

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
