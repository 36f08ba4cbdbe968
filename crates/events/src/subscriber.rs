//! Subscribing: one consumer group per subscriber, handlers by event type,
//! offsets committed only after the handler succeeded or the event was handed
//! to a retry or dead-letter topic (at-least-once), order kept per partition.
//! With `exactly_once`, each event's outputs and its offset commit in one
//! Kafka transaction instead (`exactly_once.rs`).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use tokio::sync::watch;

use crate::event::{self, Event, EventMeta};
use crate::idempotency::Deduplicator;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::publisher::{Published, Publisher};
use crate::retry::{self, RetryPolicy, headers as h};
use crate::{Error, Result};

/// What a handler returns on failure; any error type converts into it.
pub type HandlerError = anyhow::Error;

/// What a handler receives.
#[derive(Debug, Clone)]
pub struct Context<E> {
    pub event: E,
    pub meta: EventMeta,
    /// 1 for the first attempt; counts in-place attempts and retry topics.
    pub attempt: u32,
    outbox: Outbox,
}

impl<E> Context<E> {
    /// Publishes `event` as this handler's output. In exactly-once mode it
    /// goes into the handler's transaction: a read_committed consumer sees it
    /// only if the handler succeeds and the input's offset commits with it,
    /// never for an attempt that failed. Otherwise it is published at once
    /// (at-least-once: a redelivered input publishes it again).
    pub async fn publish<O: Event>(&self, event: &O) -> Result<Published> {
        self.outbox.0.publish(event).await
    }
}

/// Where a handler's outputs go: the subscriber's publisher, transactional
/// in exactly-once mode.
#[derive(Clone)]
pub(crate) struct Outbox(pub(crate) Publisher);

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox")
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = std::result::Result<(), HandlerError>> + Send>>;
/// Decodes `data` into the handler's type (Err: undecodable) and starts the handler.
pub(crate) type Handler = Arc<
    dyn Fn(serde_json::Value, EventMeta, u32, Outbox) -> std::result::Result<BoxFuture, String>
        + Send
        + Sync,
>;

pub struct SubscriberBuilder {
    brokers: String,
    group: String,
    topics: BTreeSet<String>,
    handlers: HashMap<String, Handler>,
    retry: RetryPolicy,
    dedup: Option<Arc<Deduplicator>>,
    config: Vec<(String, String)>,
    exactly_once: Option<String>,
    source: Option<String>,
}

impl SubscriberBuilder {
    /// Handles events of type `E` (subscribing to `E::TOPIC`).
    pub fn on<E, F, Fut>(mut self, handler: F) -> Self
    where
        E: Event,
        F: Fn(Context<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), HandlerError>> + Send + 'static,
    {
        self.topics.insert(E::TOPIC.to_string());
        let handler = Arc::new(handler);
        let wrapped: Handler = Arc::new(move |data, meta, attempt, outbox| {
            let event: E = serde_json::from_value(data)
                .map_err(|e| format!("cannot decode {}: {e}", E::EVENT_TYPE))?;
            let handler = handler.clone();
            Ok(Box::pin(async move {
                handler(Context {
                    event,
                    meta,
                    attempt,
                    outbox,
                })
                .await
            }))
        });
        self.handlers.insert(E::EVENT_TYPE.to_string(), wrapped);
        self
    }

    /// Also subscribes to `topic` (events without a handler are skipped).
    pub fn topic(mut self, topic: &str) -> Self {
        self.topics.insert(topic.to_string());
        self
    }

    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Exactly-once consume-transform-produce: each event is handled in a
    /// Kafka transaction that holds the outputs the handler publishes with
    /// [`Context::publish`] and the event's offset (sent with the consumer's
    /// group metadata, so a member fenced by a rebalance cannot commit). The
    /// subscriber reads with `isolation.level=read_committed`. A failing
    /// handler's transaction is aborted (its outputs are never visible to
    /// read_committed consumers) before the retry policy applies; routing to
    /// a retry or dead-letter topic commits in a transaction too. A rebalance
    /// aborts a transaction still open and the event is redelivered.
    ///
    /// `instance` names this instance of the group, stably across restarts
    /// (a pod ordinal, a host name): the transactional id is
    /// `herald-events.<group>.<instance>` (`.retry.<n>` for the retry
    /// consumers), so a restarted instance fences its predecessor and aborts
    /// what that one left open. Two live instances must not share it.
    pub fn exactly_once(mut self, instance: &str) -> Self {
        self.exactly_once = Some(instance.to_string());
        self
    }

    /// The `source` stamped into the events handlers publish with
    /// [`Context::publish`], and the client id of the subscriber's producers
    /// (default `herald-events/<group>`).
    pub fn source(mut self, source: &str) -> Self {
        self.source = Some(source.to_string());
        self
    }

    /// Skips events whose id was handled within `window`.
    pub fn deduplicate(mut self, window: Duration) -> Self {
        self.dedup = Some(Arc::new(Deduplicator::new(window, 100_000)));
        self
    }

    /// Extra librdkafka consumer property.
    /// TLS and SASL settings (see `ClientSecurity`).
    pub fn security(mut self, security: &crate::ClientSecurity) -> Self {
        self.config.extend(security.properties());
        self
    }

    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.config.push((key.to_string(), value.to_string()));
        self
    }

    pub fn build(self) -> Result<Subscriber> {
        if self.topics.is_empty() {
            return Err(Error::Other(
                "a subscriber needs at least one handler or topic".into(),
            ));
        }
        let source = self
            .source
            .unwrap_or_else(|| format!("herald-events/{}", self.group));
        let publisher = Publisher::new(&self.brokers, &source)?;
        Ok(Subscriber {
            inner: Arc::new(Inner {
                brokers: self.brokers,
                group: self.group,
                topics: self.topics.into_iter().collect(),
                handlers: self.handlers,
                retry: self.retry,
                dedup: self.dedup,
                config: self.config,
                publisher,
                metrics: Metrics::default(),
                exactly_once: self.exactly_once,
                source,
            }),
        })
    }
}

pub(crate) struct Inner {
    pub(crate) brokers: String,
    pub(crate) group: String,
    pub(crate) topics: Vec<String>,
    pub(crate) handlers: HashMap<String, Handler>,
    pub(crate) retry: RetryPolicy,
    pub(crate) dedup: Option<Arc<Deduplicator>>,
    pub(crate) config: Vec<(String, String)>,
    /// Retries and dead letters of at-least-once mode; outputs there too.
    pub(crate) publisher: Publisher,
    pub(crate) metrics: Metrics,
    /// The instance name, in exactly-once mode.
    pub(crate) exactly_once: Option<String>,
    /// Stamped into published events; the producers' client id.
    pub(crate) source: String,
}

#[derive(Clone)]
pub struct Subscriber {
    inner: Arc<Inner>,
}

/// How a message's processing ended.
pub(crate) enum Outcome {
    Handled,
    Skipped,
    Retried,
    DeadLettered,
}

impl Subscriber {
    /// A subscriber in consumer group `group`.
    pub fn builder(brokers: &str, group: &str) -> SubscriberBuilder {
        SubscriberBuilder {
            brokers: brokers.to_string(),
            group: group.to_string(),
            topics: BTreeSet::new(),
            handlers: HashMap::new(),
            retry: RetryPolicy::default(),
            dedup: None,
            config: Vec::new(),
            exactly_once: None,
            source: None,
        }
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// Consumes until `shutdown` completes, then finishes the event in hand,
    /// commits, and leaves the group.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let inner = &self.inner;
        inner.ensure_topics().await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut loops = tokio::task::JoinSet::new();
        // Level 0: the main topics; level n: `<topic>.retry.<n>`, each its own group,
        // so a waiting retry never holds back fresh events.
        for level in 0..=inner.retry.retry_topic_delays.len() {
            let inner = self.inner.clone();
            let stop = stop_rx.clone();
            if inner.exactly_once.is_some() {
                loops.spawn(async move { inner.consume_level_exactly_once(level, stop).await });
            } else {
                loops.spawn(async move { inner.consume_level(level, stop).await });
            }
        }
        tokio::pin!(shutdown);
        let mut result = Ok(());
        tokio::select! {
            _ = &mut shutdown => {}
            Some(r) = loops.join_next() => {
                result = r.map_err(|e| Error::Other(e.to_string())).and_then(|r| r);
            }
        }
        let _ = stop_tx.send(true);
        while let Some(r) = loops.join_next().await {
            if let Ok(Err(e)) = r
                && result.is_ok()
            {
                result = Err(e);
            }
        }
        result
    }
}

pub(crate) fn collect_headers(m: &BorrowedMessage<'_>) -> Vec<(String, Vec<u8>)> {
    m.headers()
        .map(|hs| {
            hs.iter()
                .map(|x| {
                    (
                        x.key.to_string(),
                        x.value.map(|v| v.to_vec()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn header_str(headers: &[(String, Vec<u8>)], name: &str) -> Option<String> {
    headers
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Inner {
    fn consumer(&self, group: &str) -> Result<StreamConsumer> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", group)
            .set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            // Offsets are stored only once an event is done with (at-least-once).
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000");
        for (k, v) in &self.config {
            c.set(k, v);
        }
        Ok(c.create()?)
    }

    /// The consumer group and topics of a level: the main topics (0) or
    /// `<topic>.retry.<level>` in group `<group>.retry.<level>`.
    pub(crate) fn level_group_and_topics(&self, level: usize) -> (String, Vec<String>) {
        if level == 0 {
            (self.group.clone(), self.topics.clone())
        } else {
            (
                format!("{}.retry.{level}", self.group),
                self.topics
                    .iter()
                    .map(|t| retry::retry_topic(t, level))
                    .collect(),
            )
        }
    }

    /// Creates retry and dead-letter topics beside each main topic, with its partition count.
    pub(crate) async fn ensure_topics(&self) -> Result<()> {
        let mut ac = ClientConfig::new();
        ac.set("bootstrap.servers", &self.brokers);
        // The same security (and other) properties as the consumers.
        for (k, v) in &self.config {
            ac.set(k, v);
        }
        let admin: AdminClient<DefaultClientContext> = ac.create()?;
        let probe = self.consumer(&self.group)?;
        let mut new = Vec::new();
        for t in &self.topics {
            let md = probe.fetch_metadata(Some(t), Duration::from_secs(10))?;
            let mut partitions = md
                .topics()
                .first()
                .map(|x| x.partitions().len() as i32)
                .unwrap_or(0);
            if partitions == 0 {
                let _ = admin
                    .create_topics(
                        &[NewTopic::new(t, 1, TopicReplication::Fixed(-1))],
                        &AdminOptions::new(),
                    )
                    .await?;
                partitions = 1;
            }
            for level in 1..=self.retry.retry_topic_delays.len() {
                new.push((retry::retry_topic(t, level), partitions));
            }
            new.push((retry::dead_letter_topic(t), partitions));
        }
        let topics: Vec<NewTopic> = new
            .iter()
            .map(|(n, p)| NewTopic::new(n, *p, TopicReplication::Fixed(-1)))
            .collect();
        for r in admin
            .create_topics(topics.iter(), &AdminOptions::new())
            .await?
        {
            match r {
                Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, e)) => return Err(Error::Other(format!("cannot create {t}: {e}"))),
            }
        }
        Ok(())
    }

    async fn consume_level(
        self: Arc<Self>,
        level: usize,
        mut stop: watch::Receiver<bool>,
    ) -> Result<()> {
        let (group, topics) = self.level_group_and_topics(level);
        let consumer = self.consumer(&group)?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        loop {
            let msg = tokio::select! {
                m = consumer.recv() => m,
                _ = stop.changed() => break,
            };
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(group = %group, error = %e, "consume error");
                    continue;
                }
            };
            if level > 0 {
                let headers = collect_headers(&msg);
                if header_str(&headers, h::GROUP).as_deref() != Some(self.group.as_str()) {
                    // Another group's retry: not ours to handle.
                    let _ = consumer.store_offset_from_message(&msg);
                    continue;
                }
                // Wait until the retry is due; records of one retry topic share one
                // delay, so the head is always the first due.
                if let Some(due) =
                    header_str(&headers, h::NOT_BEFORE).and_then(|v| v.parse::<i64>().ok())
                {
                    let wait = due - now_ms();
                    if wait > 0 {
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                            _ = stop.changed() => break,
                        }
                    }
                }
            }
            let outcome = self.process(&msg, level).await;
            match outcome {
                Ok(_) => {
                    if let Err(e) = consumer.store_offset_from_message(&msg) {
                        tracing::warn!(error = %e, "storing offset");
                    }
                }
                Err(e) => {
                    // Could not even route the event (broker down): do not store its
                    // offset; it is redelivered after a restart or rebalance.
                    tracing::error!(group = %group, error = %e, "event left unprocessed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(group = %group, error = %e, "final commit");
        }
        consumer.unsubscribe();
        Ok(())
    }

    async fn process(&self, msg: &BorrowedMessage<'_>, level: usize) -> Result<Outcome> {
        let headers = collect_headers(msg);
        let key = msg.key().map(|k| String::from_utf8_lossy(k).into_owned());
        let raw = match event::decode(
            msg.payload(),
            &headers,
            msg.topic(),
            msg.partition(),
            msg.offset(),
            key,
        ) {
            Ok(r) => r,
            Err(reason) => {
                self.dead_letter(msg, &headers, 0, &reason, "undecodable")
                    .await?;
                return Ok(Outcome::DeadLettered);
            }
        };
        let Some(handler) = self.handlers.get(&raw.meta.event_type) else {
            self.metrics.skipped();
            return Ok(Outcome::Skipped);
        };
        if let Some(d) = &self.dedup
            && level == 0
            && !raw.meta.event_id.is_empty()
            && d.seen(&raw.meta.event_id)
        {
            self.metrics.skipped();
            return Ok(Outcome::Skipped);
        }
        let before: u32 = header_str(&headers, h::ATTEMPTS)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut last_error = String::new();
        for in_place in 1..=self.retry.attempts_in_place.max(1) {
            let attempt = before + in_place;
            let outbox = Outbox(self.publisher.clone());
            let fut = match handler(raw.data.clone(), raw.meta.clone(), attempt, outbox) {
                Ok(f) => f,
                Err(reason) => {
                    self.dead_letter(msg, &headers, attempt - 1, &reason, &raw.meta.event_type)
                        .await?;
                    return Ok(Outcome::DeadLettered);
                }
            };
            let started = Instant::now();
            match fut.await {
                Ok(()) => {
                    self.metrics
                        .handled(&raw.meta.event_type, started.elapsed());
                    return Ok(Outcome::Handled);
                }
                Err(e) => {
                    last_error = format!("{e:#}");
                    tracing::debug!(event_type = %raw.meta.event_type, attempt, error = %last_error, "handler failed");
                    if in_place < self.retry.attempts_in_place {
                        tokio::time::sleep(self.retry.backoff(in_place)).await;
                    }
                }
            }
        }
        let attempts = before + self.retry.attempts_in_place.max(1);
        self.route_failure(
            &self.publisher,
            msg,
            &headers,
            level,
            attempts,
            &last_error,
            &raw.meta.event_type,
        )
        .await
    }

    /// Hands an event whose handler failed `attempts` times on to the next
    /// retry topic, or to the dead-letter topic after the last one, through
    /// `publisher` (transactional in exactly-once mode).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn route_failure(
        &self,
        publisher: &Publisher,
        msg: &BorrowedMessage<'_>,
        headers: &[(String, Vec<u8>)],
        level: usize,
        attempts: u32,
        last_error: &str,
        event_type: &str,
    ) -> Result<Outcome> {
        if level < self.retry.retry_topic_delays.len() {
            let next = level + 1;
            let delay = self.retry.retry_topic_delays[level];
            let base = retry::base_topic(msg.topic()).to_string();
            let mut out = self.carried_headers(msg, headers, attempts, last_error);
            out.push((
                h::NOT_BEFORE.to_string(),
                (now_ms() + delay.as_millis() as i64)
                    .to_string()
                    .into_bytes(),
            ));
            publisher
                .publish_raw(
                    &retry::retry_topic(&base, next),
                    msg.key(),
                    msg.payload(),
                    &out,
                )
                .await?;
            self.metrics.retried(event_type);
            Ok(Outcome::Retried)
        } else {
            self.dead_letter_via(publisher, msg, headers, attempts, last_error, event_type)
                .await?;
            Ok(Outcome::DeadLettered)
        }
    }

    /// Original headers (minus Herald's routing headers) plus the routing headers,
    /// keeping the first original topic/partition/offset across retry hops.
    pub(crate) fn carried_headers(
        &self,
        msg: &BorrowedMessage<'_>,
        headers: &[(String, Vec<u8>)],
        attempts: u32,
        error: &str,
    ) -> Vec<(String, Vec<u8>)> {
        let original_topic =
            header_str(headers, h::ORIGINAL_TOPIC).unwrap_or_else(|| msg.topic().to_string());
        let original_partition = header_str(headers, h::ORIGINAL_PARTITION)
            .unwrap_or_else(|| msg.partition().to_string());
        let original_offset =
            header_str(headers, h::ORIGINAL_OFFSET).unwrap_or_else(|| msg.offset().to_string());
        let mut out: Vec<(String, Vec<u8>)> = headers
            .iter()
            .filter(|(k, _)| !h::ALL.contains(&k.as_str()))
            .cloned()
            .collect();
        out.push((h::ORIGINAL_TOPIC.into(), original_topic.into_bytes()));
        out.push((
            h::ORIGINAL_PARTITION.into(),
            original_partition.into_bytes(),
        ));
        out.push((h::ORIGINAL_OFFSET.into(), original_offset.into_bytes()));
        out.push((h::ATTEMPTS.into(), attempts.to_string().into_bytes()));
        out.push((h::ERROR.into(), error.as_bytes().to_vec()));
        out.push((h::FAILED_AT.into(), event::now_rfc3339().into_bytes()));
        out.push((h::GROUP.into(), self.group.clone().into_bytes()));
        out
    }

    async fn dead_letter(
        &self,
        msg: &BorrowedMessage<'_>,
        headers: &[(String, Vec<u8>)],
        attempts: u32,
        error: &str,
        event_type: &str,
    ) -> Result<()> {
        self.dead_letter_via(&self.publisher, msg, headers, attempts, error, event_type)
            .await
    }

    /// Moves an event to `<topic>.dlq` through `publisher`.
    pub(crate) async fn dead_letter_via(
        &self,
        publisher: &Publisher,
        msg: &BorrowedMessage<'_>,
        headers: &[(String, Vec<u8>)],
        attempts: u32,
        error: &str,
        event_type: &str,
    ) -> Result<()> {
        let base = retry::base_topic(msg.topic()).to_string();
        let out = self.carried_headers(msg, headers, attempts, error);
        publisher
            .publish_raw(
                &retry::dead_letter_topic(&base),
                msg.key(),
                msg.payload(),
                &out,
            )
            .await?;
        self.metrics.dead_lettered(event_type);
        tracing::warn!(topic = %base, partition = msg.partition(), offset = msg.offset(), attempts, error, "event dead-lettered");
        Ok(())
    }
}
