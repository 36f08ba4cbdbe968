//! Publishing events: an idempotent producer, acks=all, one await per event.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::event::{self, Encoding, Event};
use crate::{Error, Result};

/// Where a published event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub event_id: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// How long a transaction of an exactly-once subscriber may stay open before
/// the broker aborts it (one event's handler, its outputs and its offset).
const TRANSACTION_TIMEOUT_MS: &str = "60000";
/// Bound on each blocking transaction call (init, commit, abort, offsets).
pub(crate) const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    source: String,
    encoding: Encoding,
}

impl Publisher {
    /// A publisher for `brokers` that stamps `source` into every event.
    pub fn new(brokers: &str, source: &str) -> Result<Publisher> {
        Self::with_config(brokers, source, &[])
    }

    /// As `new`, with extra librdkafka properties.
    pub fn with_config(brokers: &str, source: &str, extra: &[(&str, &str)]) -> Result<Publisher> {
        let mut c = ClientConfig::new();
        // The source names the service; as its client id, the broker (and so
        // the console's event-flow graph and its logs) can tell services apart.
        c.set("bootstrap.servers", brokers)
            .set("client.id", source)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "30000");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        Ok(Publisher {
            producer: c.create()?,
            source: source.to_string(),
            encoding: Encoding::JsonEnvelope,
        })
    }

    /// A transactional publisher (exactly-once subscribers): `transactional_id`
    /// names it across restarts, so that a restarted instance fences its
    /// predecessor and aborts the transaction it left open. Waits for
    /// `init_transactions`.
    pub(crate) async fn transactional(
        brokers: &str,
        source: &str,
        transactional_id: &str,
        extra: &[(String, String)],
    ) -> Result<Publisher> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            .set("client.id", source)
            .set("transactional.id", transactional_id)
            .set("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS)
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "30000");
        for (k, v) in extra {
            c.set(k, v);
        }
        let producer: FutureProducer = c.create()?;
        let p = producer.clone();
        tokio::task::spawn_blocking(move || p.init_transactions(TXN_CALL_TIMEOUT))
            .await
            .map_err(|e| Error::Other(format!("init_transactions: {e}")))??;
        Ok(Publisher {
            producer,
            source: source.to_string(),
            encoding: Encoding::JsonEnvelope,
        })
    }

    /// The underlying producer (the transaction calls of exactly-once mode).
    pub(crate) fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Uses CloudEvents binary mode instead of the JSON envelope.
    pub fn with_encoding(mut self, encoding: Encoding) -> Publisher {
        self.encoding = encoding;
        self
    }

    /// Publishes one event and waits for the broker's acknowledgement.
    pub async fn publish<E: Event>(&self, event: &E) -> Result<Published> {
        let (value, headers, event_id) = event::encode(event, &self.source, self.encoding)?;
        let key = event.key();
        let record = FutureRecord::to(E::TOPIC)
            .key(&key)
            .payload(&value)
            .headers(to_headers(&headers));
        let delivery = self
            .producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| Error::Kafka(e))?;
        tracing::debug!(event_type = E::EVENT_TYPE, %event_id, partition = delivery.partition, offset = delivery.offset, "published");
        Ok(Published {
            event_id,
            topic: E::TOPIC.to_string(),
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }

    /// Publishes events in order, pipelined, and waits for every acknowledgement.
    pub async fn publish_all<E: Event>(&self, events: &[E]) -> Result<Vec<Published>> {
        let mut pending = Vec::with_capacity(events.len());
        for e in events {
            let (value, headers, event_id) = event::encode(e, &self.source, self.encoding)?;
            let key = e.key();
            let record = FutureRecord::to(E::TOPIC)
                .key(&key)
                .payload(&value)
                .headers(to_headers(&headers));
            let future = self
                .producer
                .send_result(record)
                .map_err(|(e, _)| Error::Kafka(e))?;
            pending.push((event_id, future));
        }
        let mut out = Vec::with_capacity(pending.len());
        for (event_id, f) in pending {
            let d = f
                .await
                .map_err(|_| Error::Other("producer closed".into()))?
                .map_err(|(e, _)| Error::Kafka(e))?;
            out.push(Published {
                event_id,
                topic: E::TOPIC.to_string(),
                partition: d.partition,
                offset: d.offset,
            });
        }
        Ok(out)
    }

    /// Publishes a raw record (used to route retries and dead letters).
    pub(crate) async fn publish_raw(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(String, Vec<u8>)],
    ) -> Result<(i32, i64)> {
        let mut h = OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(Header {
                key: k,
                value: Some(v.as_slice()),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(h);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        let d = self
            .producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| Error::Kafka(e))?;
        Ok((d.partition, d.offset))
    }
}

fn to_headers(headers: &[(String, String)]) -> OwnedHeaders {
    let mut h = OwnedHeaders::new();
    for (k, v) in headers {
        h = h.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    h
}
