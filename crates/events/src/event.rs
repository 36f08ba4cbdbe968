//! Typed events and their wire form.
//!
//! JSON envelope (the default), as the record value:
//! `{"eventType":"OrderPlaced","eventId":"<UUID v7>","timestamp":"<RFC 3339>","source":"shop/orders","data":{...}}`
//! with the record key set to [`Event::key`] and headers `eventType` and `eventId`.
//!
//! CloudEvents binary mode: the value is `data` as JSON, and the attributes are
//! headers `ce_specversion` (1.0), `ce_type`, `ce_id`, `ce_source`, `ce_time`,
//! `content-type` (application/json).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A fact that happened, named in the past tense. Implement it for your types:
///
/// ```
/// use herald_events::Event;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct OrderPlaced { order_id: String, total_cents: u64 }
/// impl Event for OrderPlaced {
///     const EVENT_TYPE: &'static str = "OrderPlaced";
///     const TOPIC: &'static str = "orders";
///     fn key(&self) -> String { self.order_id.clone() }
/// }
/// ```
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The event type name carried in the envelope (`OrderPlaced`).
    const EVENT_TYPE: &'static str;
    /// The topic the event is published to.
    const TOPIC: &'static str;
    /// The key that orders events: events with the same key keep their order.
    fn key(&self) -> String;
}

/// How events are put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    JsonEnvelope,
    CloudEventsBinary,
}

/// The JSON envelope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    pub event_type: String,
    pub event_id: String,
    pub timestamp: String,
    pub source: String,
    pub data: T,
}

/// An event's metadata as received.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMeta {
    pub event_type: String,
    pub event_id: String,
    pub timestamp: String,
    pub source: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
}

pub const HEADER_EVENT_TYPE: &str = "eventType";
pub const HEADER_EVENT_ID: &str = "eventId";

pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// A received record decoded down to its envelope, with `data` still as JSON.
#[derive(Debug, Clone)]
pub(crate) struct RawEvent {
    pub meta: EventMeta,
    pub data: serde_json::Value,
}

/// Decodes a record's value and headers in either encoding.
pub(crate) fn decode(
    value: Option<&[u8]>,
    headers: &[(String, Vec<u8>)],
    topic: &str,
    partition: i32,
    offset: i64,
    key: Option<String>,
) -> Result<RawEvent, String> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let value = value.ok_or("record has no value")?;
    if let Some(ce_type) = header("ce_type") {
        let data: serde_json::Value = serde_json::from_slice(value)
            .map_err(|e| format!("CloudEvents data is not JSON: {e}"))?;
        return Ok(RawEvent {
            meta: EventMeta {
                event_type: ce_type,
                event_id: header("ce_id").unwrap_or_default(),
                timestamp: header("ce_time").unwrap_or_default(),
                source: header("ce_source").unwrap_or_default(),
                topic: topic.to_string(),
                partition,
                offset,
                key,
            },
            data,
        });
    }
    let env: Envelope<serde_json::Value> =
        serde_json::from_slice(value).map_err(|e| format!("not an event envelope: {e}"))?;
    Ok(RawEvent {
        meta: EventMeta {
            event_type: env.event_type,
            event_id: env.event_id,
            timestamp: env.timestamp,
            source: env.source,
            topic: topic.to_string(),
            partition,
            offset,
            key,
        },
        data: env.data,
    })
}

/// An encoded event: record value, headers, and the event id.
pub(crate) type Encoded = (Vec<u8>, Vec<(String, String)>, String);

/// Encodes an event.
pub(crate) fn encode<E: Event>(
    event: &E,
    source: &str,
    encoding: Encoding,
) -> serde_json::Result<Encoded> {
    let event_id = uuid::Uuid::now_v7().to_string();
    let timestamp = now_rfc3339();
    match encoding {
        Encoding::JsonEnvelope => {
            let env = Envelope {
                event_type: E::EVENT_TYPE.to_string(),
                event_id: event_id.clone(),
                timestamp,
                source: source.to_string(),
                data: event,
            };
            let headers = vec![
                (HEADER_EVENT_TYPE.to_string(), E::EVENT_TYPE.to_string()),
                (HEADER_EVENT_ID.to_string(), event_id.clone()),
            ];
            Ok((serde_json::to_vec(&env)?, headers, event_id))
        }
        Encoding::CloudEventsBinary => {
            let headers = vec![
                ("ce_specversion".to_string(), "1.0".to_string()),
                ("ce_type".to_string(), E::EVENT_TYPE.to_string()),
                ("ce_id".to_string(), event_id.clone()),
                ("ce_source".to_string(), source.to_string()),
                ("ce_time".to_string(), timestamp),
                ("content-type".to_string(), "application/json".to_string()),
            ];
            Ok((serde_json::to_vec(event)?, headers, event_id))
        }
    }
}
