//! The subscriber's exactly-once mode (`SubscriberBuilder::exactly_once`):
//! consume-transform-produce in Kafka transactions (KIP-98, with KIP-447's
//! group-metadata fencing).
//!
//! Each level (the main topics, each retry topic) has its own consumer and
//! its own transactional producer, `transactional.id` =
//! `herald-events.<level group>.<instance>`. One event is one transaction:
//! begin, run the handler (its `Context::publish` calls produce inside the
//! transaction), send the event's next offset with the consumer's group
//! metadata, commit. Nothing else commits offsets (auto commit is off), and
//! the consumer reads read_committed, so what an upstream transaction aborted
//! is never handled.
//!
//! - A handler error aborts its transaction (its outputs stay invisible to
//!   read_committed consumers), then the retry policy applies as in
//!   at-least-once mode: attempts in place (each its own transaction), then
//!   the retry topics and the dead-letter topic, the routing and the offset
//!   committed together.
//! - A commit that cannot complete is aborted and the event redelivered
//!   (the consumer seeks back to it); so is a transaction during which a
//!   rebalance revoked partitions (`RebalanceWatch`): its offsets might
//!   belong to another member now, and the coordinator would refuse them.
//! - A fatal producer error (fenced: another instance took the same
//!   transactional id) stops the subscriber with that error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::Producer;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::event;
use crate::publisher::{Publisher, TXN_CALL_TIMEOUT};
use crate::retry::headers as h;
use crate::subscriber::{Inner, Outbox, Outcome, collect_headers, header_str, now_ms};
use crate::{Error, Result};

/// Pause after a transaction was aborted for redelivery, so a broker that
/// refuses every commit is not asked again in a tight loop.
const REDELIVERY_PAUSE: Duration = Duration::from_millis(200);

/// Counts partition revocations of one consumer. A transaction that began
/// before a revocation is aborted instead of committed.
#[derive(Default)]
pub(crate) struct RebalanceWatch {
    revocations: AtomicU64,
}

impl RebalanceWatch {
    fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::SeqCst)
    }
}

impl ClientContext for RebalanceWatch {}

impl ConsumerContext for RebalanceWatch {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance
            && partitions.count() > 0
        {
            self.revocations.fetch_add(1, Ordering::SeqCst);
        }
    }
}

type TxnConsumer = StreamConsumer<RebalanceWatch>;

/// Why an event's transaction did not commit.
pub(crate) enum TxnFailure {
    /// Aborted: the event is to be delivered again.
    Aborted(String),
    /// The producer cannot go on.
    Fatal(Error),
}

impl From<Error> for TxnFailure {
    fn from(e: Error) -> Self {
        TxnFailure::Fatal(e)
    }
}

/// Runs a blocking transaction call of `publisher`'s producer off the async
/// threads (librdkafka's transaction API waits for the coordinator).
async fn blocking<T: Send + 'static>(
    publisher: &Publisher,
    call: impl FnOnce(&rdkafka::producer::FutureProducer) -> rdkafka::error::KafkaResult<T>
    + Send
    + 'static,
) -> std::result::Result<T, KafkaError> {
    let p = publisher.producer().clone();
    tokio::task::spawn_blocking(move || call(&p))
        .await
        .unwrap_or(Err(KafkaError::Canceled))
}

fn is_fatal(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(t) => t.is_fatal(),
        _ => false,
    }
}

fn is_retriable(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(t) => t.is_retriable(),
        _ => false,
    }
}

impl Inner {
    fn consumer_exactly_once(&self, group: &str) -> Result<TxnConsumer> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", group)
            .set("group.id", group)
            // Offsets commit only inside transactions.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000");
        for (k, v) in &self.config {
            c.set(k, v);
        }
        Ok(c.create_with_context(RebalanceWatch::default())?)
    }

    pub(crate) async fn consume_level_exactly_once(
        self: Arc<Self>,
        level: usize,
        mut stop: watch::Receiver<bool>,
    ) -> Result<()> {
        let (group, topics) = self.level_group_and_topics(level);
        let instance = self.exactly_once.clone().unwrap_or_default();
        let transactional_id = format!("herald-events.{group}.{instance}");
        let txn =
            Publisher::transactional(&self.brokers, &self.source, &transactional_id, &self.config)
                .await?;
        let consumer = self.consumer_exactly_once(&group)?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        let mut result = Ok(());
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
            let processed = if level > 0 {
                let headers = collect_headers(&msg);
                if header_str(&headers, h::GROUP).as_deref() != Some(self.group.as_str()) {
                    // Another group's retry: only its offset to commit.
                    self.offsets_only(&consumer, &txn, &msg).await
                } else {
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
                    self.process_exactly_once(&consumer, &txn, &msg, level)
                        .await
                        .map(|_| ())
                }
            } else {
                self.process_exactly_once(&consumer, &txn, &msg, level)
                    .await
                    .map(|_| ())
            };
            match processed {
                Ok(()) => {}
                Err(TxnFailure::Aborted(reason)) => {
                    tracing::warn!(group = %group, topic = msg.topic(), partition = msg.partition(), offset = msg.offset(), %reason, "transaction aborted; the event is delivered again");
                    // Back to this event; a no-op if the partition went to
                    // another member meanwhile (it resumes from the committed
                    // offset). Asynchronous (timeout 0): queued records of the
                    // partition are dropped, fetching restarts here.
                    if let Err(e) = consumer.seek(
                        msg.topic(),
                        msg.partition(),
                        Offset::Offset(msg.offset()),
                        Duration::ZERO,
                    ) {
                        tracing::debug!(group = %group, error = %e, "seek back");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(REDELIVERY_PAUSE) => {}
                        _ = stop.changed() => break,
                    }
                }
                Err(TxnFailure::Fatal(e)) => {
                    tracing::error!(group = %group, %transactional_id, error = %e, "transactional producer failed; stopping");
                    result = Err(e);
                    break;
                }
            }
        }
        consumer.unsubscribe();
        result
    }

    /// Begins a transaction; returns the revocation count it started under.
    fn begin(
        &self,
        consumer: &TxnConsumer,
        txn: &Publisher,
    ) -> std::result::Result<u64, TxnFailure> {
        let revocations = consumer.context().revocations();
        // Local state only in librdkafka (the coordinator hears of the
        // transaction with its first partition), so not off-thread.
        txn.producer()
            .begin_transaction()
            .map_err(|e| TxnFailure::Fatal(Error::Kafka(e)))?;
        Ok(revocations)
    }

    async fn abort(&self, txn: &Publisher, reason: &str) -> std::result::Result<(), TxnFailure> {
        let mut last = None;
        for _ in 0..3 {
            match blocking(txn, |p| p.abort_transaction(TXN_CALL_TIMEOUT)).await {
                Ok(()) => {
                    self.metrics.aborted(reason);
                    return Ok(());
                }
                Err(e) if is_retriable(&e) => last = Some(e),
                Err(e) => return Err(TxnFailure::Fatal(Error::Kafka(e))),
            }
        }
        Err(TxnFailure::Fatal(Error::Other(format!(
            "could not abort the transaction: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        ))))
    }

    /// Commits the open transaction with `msg`'s next offset, unless a
    /// rebalance revoked partitions since it began (then aborts it).
    async fn commit(
        &self,
        consumer: &TxnConsumer,
        txn: &Publisher,
        msg: &BorrowedMessage<'_>,
        revocations_at_begin: u64,
    ) -> std::result::Result<(), TxnFailure> {
        if consumer.context().revocations() != revocations_at_begin {
            let reason = "a rebalance revoked partitions during the transaction";
            self.abort(txn, reason).await?;
            return Err(TxnFailure::Aborted(reason.into()));
        }
        let Some(group_metadata) = consumer.group_metadata() else {
            let reason = "the consumer has no group metadata";
            self.abort(txn, reason).await?;
            return Err(TxnFailure::Aborted(reason.into()));
        };
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(
                msg.topic(),
                msg.partition(),
                Offset::Offset(msg.offset() + 1),
            )
            .map_err(|e| TxnFailure::Fatal(Error::Kafka(e)))?;
        let sent = blocking(txn, move |p| {
            p.send_offsets_to_transaction(&offsets, &group_metadata, TXN_CALL_TIMEOUT)
        })
        .await;
        let committed = match sent {
            Ok(()) => {
                let mut outcome = blocking(txn, |p| p.commit_transaction(TXN_CALL_TIMEOUT)).await;
                // A retriable commit error leaves the outcome open: ask again.
                for _ in 0..2 {
                    match &outcome {
                        Err(e) if is_retriable(e) => {
                            outcome =
                                blocking(txn, |p| p.commit_transaction(TXN_CALL_TIMEOUT)).await;
                        }
                        _ => break,
                    }
                }
                outcome
            }
            Err(e) => Err(e),
        };
        match committed {
            Ok(()) => Ok(()),
            Err(e) if is_fatal(&e) => Err(TxnFailure::Fatal(Error::Kafka(e))),
            Err(e) => {
                let reason = format!("commit: {e}");
                self.abort(txn, &reason).await?;
                Err(TxnFailure::Aborted(reason))
            }
        }
    }

    /// A transaction with nothing but `msg`'s offset (a skipped event).
    async fn offsets_only(
        &self,
        consumer: &TxnConsumer,
        txn: &Publisher,
        msg: &BorrowedMessage<'_>,
    ) -> std::result::Result<(), TxnFailure> {
        let revocations = self.begin(consumer, txn)?;
        self.commit(consumer, txn, msg, revocations).await
    }

    async fn process_exactly_once(
        &self,
        consumer: &TxnConsumer,
        txn: &Publisher,
        msg: &BorrowedMessage<'_>,
        level: usize,
    ) -> std::result::Result<Outcome, TxnFailure> {
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
                let revocations = self.begin(consumer, txn)?;
                if let Err(e) = self
                    .dead_letter_via(txn, msg, &headers, 0, &reason, "undecodable")
                    .await
                {
                    let reason = format!("dead-lettering: {e}");
                    self.abort(txn, &reason).await?;
                    return Err(TxnFailure::Aborted(reason));
                }
                self.commit(consumer, txn, msg, revocations).await?;
                return Ok(Outcome::DeadLettered);
            }
        };
        let Some(handler) = self.handlers.get(&raw.meta.event_type) else {
            self.offsets_only(consumer, txn, msg).await?;
            self.metrics.skipped();
            return Ok(Outcome::Skipped);
        };
        // The id is remembered as handled only if its transaction commits.
        let dedup = self
            .dedup
            .as_ref()
            .filter(|_| level == 0 && !raw.meta.event_id.is_empty());
        if let Some(d) = dedup
            && d.seen(&raw.meta.event_id)
        {
            self.offsets_only(consumer, txn, msg).await?;
            self.metrics.skipped();
            return Ok(Outcome::Skipped);
        }
        let forget = |r: std::result::Result<Outcome, TxnFailure>| {
            if r.is_err()
                && let Some(d) = dedup
            {
                d.forget(&raw.meta.event_id);
            }
            r
        };
        let before: u32 = header_str(&headers, h::ATTEMPTS)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut last_error = String::new();
        for in_place in 1..=self.retry.attempts_in_place.max(1) {
            let attempt = before + in_place;
            let revocations = self.begin(consumer, txn)?;
            let fut = match handler(
                raw.data.clone(),
                raw.meta.clone(),
                attempt,
                Outbox(txn.clone()),
            ) {
                Ok(f) => f,
                Err(reason) => {
                    let routed = self
                        .dead_letter_via(
                            txn,
                            msg,
                            &headers,
                            attempt - 1,
                            &reason,
                            &raw.meta.event_type,
                        )
                        .await;
                    if let Err(e) = routed {
                        let reason = format!("dead-lettering: {e}");
                        self.abort(txn, &reason).await?;
                        return forget(Err(TxnFailure::Aborted(reason)));
                    }
                    return forget(
                        self.commit(consumer, txn, msg, revocations)
                            .await
                            .map(|_| Outcome::DeadLettered),
                    );
                }
            };
            let started = Instant::now();
            match fut.await {
                Ok(()) => {
                    forget(
                        self.commit(consumer, txn, msg, revocations)
                            .await
                            .map(|_| Outcome::Handled),
                    )?;
                    self.metrics
                        .handled(&raw.meta.event_type, started.elapsed());
                    return Ok(Outcome::Handled);
                }
                Err(e) => {
                    last_error = format!("{e:#}");
                    tracing::debug!(event_type = %raw.meta.event_type, attempt, error = %last_error, "handler failed; aborting its transaction");
                    self.abort(txn, "handler failed").await?;
                    if in_place < self.retry.attempts_in_place {
                        tokio::time::sleep(self.retry.backoff(in_place)).await;
                    }
                }
            }
        }
        let attempts = before + self.retry.attempts_in_place.max(1);
        let revocations = self.begin(consumer, txn)?;
        let routed = self
            .route_failure(
                txn,
                msg,
                &headers,
                level,
                attempts,
                &last_error,
                &raw.meta.event_type,
            )
            .await;
        let outcome = match routed {
            Ok(o) => o,
            Err(e) => {
                let reason = format!("routing the failed event: {e}");
                self.abort(txn, &reason).await?;
                return forget(Err(TxnFailure::Aborted(reason)));
            }
        };
        forget(
            self.commit(consumer, txn, msg, revocations)
                .await
                .map(|_| outcome),
        )
    }
}
