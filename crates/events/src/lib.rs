//! Herald's event-driven SDK: typed events in a JSON envelope (or CloudEvents
//! binary mode), publishers that await the broker's acknowledgement, and
//! subscribers that dispatch by event type, commit only after success, retry
//! with backoff, move failures to non-blocking retry topics and finally to a
//! dead-letter topic. Works against Herald or any Kafka cluster.
//!
//! See `docs/events.md` for a complete example.

pub mod dead_letter;
pub mod event;
mod exactly_once;
pub mod idempotency;
pub mod metrics;
pub mod publisher;
pub mod retry;
pub mod security;
pub mod subscriber;

pub use event::{Encoding, Envelope, Event, EventMeta};
pub use idempotency::Deduplicator;
pub use metrics::{Metrics, MetricsSnapshot};
pub use publisher::{Published, Publisher};
pub use retry::RetryPolicy;
pub use security::ClientSecurity;
pub use subscriber::{Context, HandlerError, Subscriber, SubscriberBuilder};

#[cfg(feature = "embedded")]
pub use herald_broker::EmbeddedBroker;

/// SDK errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The guide in `docs/events.md`, compiled and run as a doc test.
#[doc = include_str!("../../../docs/events.md")]
#[cfg(doctest)]
pub struct EventsGuide;
