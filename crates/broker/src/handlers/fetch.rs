//! Fetch (key 1): returns whole batches from each requested partition, starting
//! with the batch that contains the fetch offset. A fetch that finds fewer than
//! `min_bytes` waits until a produce brings more or `max_wait_ms` passes, and is
//! answered as soon as `min_bytes` is reached.
//!
//! read_committed (`isolation_level` 1): the engine reads below the last
//! stable offset only, so only data below it counts towards `min_bytes`; a
//! fetch waiting there is woken when the LSO moves, by the engine's
//! `readable_advanced` signal, which the local engine bumps when it writes a
//! transaction marker (at once with relaxed flushing, after the marker's
//! fsync with fsync on ack). Appends of transactional data wake it too (it
//! then finds nothing new below the LSO and waits on).
//!
//! Incremental fetch sessions (KIP-227, `crate::fetch_session`): a full fetch
//! (epoch 0, v7+) creates a session when answered; an incremental one reads
//! every partition of its session, at the offsets the session remembers, and
//! answers only the partitions with records, changed offsets or an error.
//! Every read partition is authorized per request, session or not.

use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::protocol::Encodable;

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::{ProtocolError, log_error_code};
use crate::fetch_session::{CachedPartition, Context, TopicKey, topic_key};
use crate::metrics::fetch_sessions::FetchKind;
use crate::storage::{Isolation, ReadRequest};

/// Upper bound on one fetch's wait, whatever the client asks.
const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);
/// Upper bound on one fetch response's bytes, whatever the client asks.
const FETCH_RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The partitions one fetch reads: the request's, or its session's.
struct PlanTopic {
    name: TopicName,
    id: uuid::Uuid,
    key: TopicKey,
    partitions: Vec<PlanPartition>,
}

struct PlanPartition {
    partition: i32,
    fetch_offset: i64,
    partition_max_bytes: i32,
    current_leader_epoch: i32,
}

fn plan_from_request(version: i16, req: &FetchRequest) -> Vec<PlanTopic> {
    req.topics
        .iter()
        .map(|ft| PlanTopic {
            name: ft.topic.clone(),
            id: ft.topic_id,
            key: topic_key(version >= 13, &ft.topic_id, &ft.topic.0),
            partitions: ft
                .partitions
                .iter()
                .map(|fp| PlanPartition {
                    partition: fp.partition,
                    fetch_offset: fp.fetch_offset,
                    partition_max_bytes: fp.partition_max_bytes,
                    current_leader_epoch: fp.current_leader_epoch,
                })
                .collect(),
        })
        .collect()
}

/// A session's partitions, consecutive ones of a topic in one topic entry.
fn plan_from_session(partitions: &[CachedPartition]) -> Vec<PlanTopic> {
    let mut plan: Vec<PlanTopic> = Vec::new();
    for c in partitions {
        let p = PlanPartition {
            partition: c.partition,
            fetch_offset: c.fetch_offset,
            partition_max_bytes: c.partition_max_bytes,
            current_leader_epoch: c.current_leader_epoch,
        };
        match plan.last_mut() {
            Some(t) if t.key == c.topic => t.partitions.push(p),
            _ => {
                let (name, id) = match &c.topic {
                    TopicKey::Id(id) => (TopicName::default(), *id),
                    TopicKey::Name(n) => (TopicName(sb(n.clone())), uuid::Uuid::nil()),
                };
                plan.push(PlanTopic {
                    name,
                    id,
                    key: c.topic.clone(),
                    partitions: vec![p],
                });
            }
        }
    }
    plan
}

struct Collected {
    response: FetchResponse,
    bytes: usize,
    has_error: bool,
    /// Each topic response's traffic counters (metrics on).
    counters: Vec<Option<std::sync::Arc<crate::metrics::TopicCounters>>>,
}

impl Collected {
    /// The answer: applies the session (creates one after a full fetch,
    /// keeps only what changed for an incremental one), counts what it
    /// carries, then encodes it.
    fn answer(
        mut self,
        ctx: &Ctx,
        session: &Context,
        plan: &[PlanTopic],
        request_partitions: usize,
        request_bytes: usize,
    ) -> Option<bytes::Bytes> {
        let sessions = &ctx.broker.fetch_sessions;
        let (kind, session_id, epoch) = match session {
            Context::Full => {
                let mut seen = std::collections::HashSet::new();
                let mut cached = Vec::new();
                for (t, tr) in plan.iter().zip(&self.response.responses) {
                    for (p, pd) in t.partitions.iter().zip(&tr.partitions) {
                        if !seen.insert((t.key.clone(), p.partition)) {
                            continue;
                        }
                        let ok = pd.error_code == 0;
                        cached.push(CachedPartition {
                            topic: t.key.clone(),
                            partition: p.partition,
                            fetch_offset: p.fetch_offset,
                            partition_max_bytes: p.partition_max_bytes,
                            current_leader_epoch: p.current_leader_epoch,
                            high_watermark: if ok { pd.high_watermark } else { -1 },
                            last_stable_offset: pd.last_stable_offset,
                            log_start_offset: pd.log_start_offset,
                        });
                    }
                }
                let id = sessions.create(ctx.version >= 13, &ctx.principal, cached);
                self.response.session_id = id;
                (FetchKind::Full, id, 0)
            }
            Context::Incremental {
                id,
                epoch,
                partitions,
            } => {
                self.keep_changed(ctx, *id, plan, partitions);
                self.response.session_id = *id;
                (FetchKind::Incremental, *id, *epoch)
            }
            _ => (FetchKind::Sessionless, 0, -1),
        };
        let response_partitions: usize = self
            .response
            .responses
            .iter()
            .map(|t| t.partitions.len())
            .sum();
        tracing::debug!(
            session_id,
            epoch,
            kind = ?kind,
            request_partitions,
            response_partitions,
            "fetch"
        );
        let metrics = &ctx.broker.metrics;
        let encoded = ctx.encode(&self.response);
        if metrics.enabled() {
            metrics.fetch_sessions.record(
                kind,
                request_partitions,
                response_partitions,
                request_bytes,
                encoded.len(),
            );
        }
        if metrics.enabled() {
            for (tr, c) in self.response.responses.iter().zip(&self.counters) {
                for pd in &tr.partitions {
                    metrics.request_error(ctx.api_key, pd.error_code);
                    if let (Some(c), Some(r)) = (c, &pd.records) {
                        c.add_out(r.len() as u64, crate::metrics::traffic::record_count(r));
                    }
                }
            }
        }
        Some(encoded)
    }

    /// Kafka's incremental response: only partitions with records, a changed
    /// high watermark, last stable or log start offset, or an error; those
    /// that answered records move to the end of the session.
    fn keep_changed(
        &mut self,
        ctx: &Ctx,
        id: i32,
        plan: &[PlanTopic],
        snapshot: &[CachedPartition],
    ) {
        let responses = std::mem::take(&mut self.response.responses);
        let counters = std::mem::take(&mut self.counters);
        ctx.broker.fetch_sessions.with_session(id, |session| {
            // Closed meanwhile (a close pipelined behind this long poll):
            // compared with the session as this request found it.
            let mut detached;
            let session = match session {
                Some(s) => s,
                None => {
                    detached = crate::fetch_session::Session::detached(id, snapshot.to_vec());
                    &mut detached
                }
            };
            let mut answered = Vec::new();
            for ((t, mut tr), c) in plan.iter().zip(responses).zip(counters) {
                tr.partitions.retain(|pd| {
                    let records_len = pd.records.as_ref().map_or(0, |r| r.len());
                    let keep = session
                        .get_mut(&t.key, pd.partition_index)
                        .is_none_or(|cp| {
                            cp.must_respond(
                                records_len,
                                pd.error_code,
                                pd.high_watermark,
                                pd.last_stable_offset,
                                pd.log_start_offset,
                            )
                        });
                    if records_len > 0 {
                        answered.push((t.key.clone(), pd.partition_index));
                    }
                    keep
                });
                if !tr.partitions.is_empty() {
                    self.response.responses.push(tr);
                    self.counters.push(c);
                }
            }
            session.rotate(&answered);
        });
    }
}

/// Reads every requested partition (one `Engine::read` call) and builds the response.
async fn collect(ctx: &Ctx, req: &FetchRequest, plan: &[PlanTopic]) -> Collected {
    let broker = &ctx.broker;
    let max_bytes = if req.max_bytes <= 0 {
        FETCH_RESPONSE_BYTES_MAX
    } else {
        (req.max_bytes as usize).min(FETCH_RESPONSE_BYTES_MAX)
    };
    let mut has_error = false;
    let read_committed = req.isolation_level == 1;
    let mut responses = Vec::with_capacity(plan.len());
    let mut counters = Vec::with_capacity(plan.len());
    // The reads to make, and where each answer goes: (topic idx, partition idx).
    let mut reads = Vec::new();
    let mut slots = Vec::new();
    for ft in plan {
        let topic = if ctx.version >= 13 {
            broker.topics.get_by_id(ft.id)
        } else {
            broker.topics.get(&s(&ft.name.0))
        };
        // Unknown topic ids stay UNKNOWN_TOPIC_ID; by name, READ is checked
        // first so that a denied client learns nothing of what exists.
        let allowed = match (&topic, ctx.version >= 13) {
            (Some(t), _) => ctx.authorize(Operation::Read, ResourceType::Topic, &t.name),
            (None, true) => true,
            (None, false) => ctx.authorize(Operation::Read, ResourceType::Topic, &s(&ft.name.0)),
        };
        counters.push(
            topic
                .as_ref()
                .filter(|_| allowed)
                .and_then(|t| broker.metrics.topic(&t.name)),
        );
        let mut tr = FetchableTopicResponse::default();
        tr.topic = ft.name.clone();
        tr.topic_id = ft.id;
        if let Some(t) = &topic
            && ctx.version < 13
        {
            tr.topic = TopicName(sb(t.name.clone()));
        }
        for fp in &ft.partitions {
            let mut pd = PartitionData::default();
            pd.partition_index = fp.partition;
            pd.high_watermark = -1;
            pd.last_stable_offset = -1;
            pd.log_start_offset = -1;
            pd.preferred_read_replica = BrokerId(-1);
            pd.aborted_transactions = if read_committed {
                Some(Vec::new())
            } else {
                None
            };
            let partition = topic.as_ref().and_then(|t| t.partition(fp.partition));
            match partition {
                _ if !allowed => {
                    pd.error_code = ResponseError::TopicAuthorizationFailed.code();
                    has_error = true;
                }
                None => {
                    pd.error_code = if ctx.version >= 13 && topic.is_none() {
                        ResponseError::UnknownTopicId.code()
                    } else {
                        ResponseError::UnknownTopicOrPartition.code()
                    };
                    has_error = true;
                }
                Some(_) if fp.current_leader_epoch > 0 => {
                    // Herald's partitions are always in leader epoch 0.
                    pd.error_code = ResponseError::UnknownLeaderEpoch.code();
                    has_error = true;
                }
                Some(p) => {
                    slots.push((responses.len(), tr.partitions.len()));
                    reads.push(ReadRequest {
                        partition: p,
                        offset: fp.fetch_offset,
                        max_bytes: fp.partition_max_bytes.max(0) as usize,
                        isolation: if read_committed {
                            Isolation::ReadCommitted
                        } else {
                            Isolation::ReadUncommitted
                        },
                    });
                }
            }
            tr.partitions.push(pd);
        }
        responses.push(tr);
    }
    let partitions: Vec<_> = reads.iter().map(|r| r.partition.clone()).collect();
    let results = match broker.topics.engine().read(reads, max_bytes).await {
        Ok(r) => r,
        Err(e) => partitions.iter().map(|_| Err(clone_error(&e))).collect(),
    };
    let mut total = 0usize;
    for (((ti, pi), result), p) in slots.into_iter().zip(results).zip(partitions) {
        let pd = &mut responses[ti].partitions[pi];
        match result {
            Ok(r) => {
                pd.high_watermark = r.offsets.high_watermark;
                pd.last_stable_offset = r.offsets.last_stable;
                if read_committed {
                    pd.aborted_transactions = Some(
                        r.aborted
                            .iter()
                            .map(|a| {
                                let mut t = AbortedTransaction::default();
                                t.producer_id = ProducerId(a.producer_id);
                                t.first_offset = a.first_offset;
                                t
                            })
                            .collect(),
                    );
                }
                if ctx.version >= 5 {
                    pd.log_start_offset = r.offsets.log_start;
                }
                total += r.records.len();
                pd.records = Some(r.records);
            }
            Err(e) => {
                pd.error_code = log_error_code(&e);
                if let Ok(o) = p.offsets().await {
                    pd.high_watermark = o.high_watermark;
                    pd.last_stable_offset = o.last_stable;
                    if ctx.version >= 5 {
                        pd.log_start_offset = o.log_start;
                    }
                }
                has_error = true;
            }
        }
    }
    let mut response = FetchResponse::default();
    response.responses = responses;
    response.session_id = 0;
    Collected {
        response,
        bytes: total,
        has_error,
        counters,
    }
}

/// An engine-wide read failure, repeated for each partition.
fn clone_error(e: &herald_log::LogError) -> herald_log::LogError {
    match e {
        herald_log::LogError::OffsetOutOfRange { offset, start, end } => {
            herald_log::LogError::OffsetOutOfRange {
                offset: *offset,
                start: *start,
                end: *end,
            }
        }
        _ => herald_log::LogError::StorageUnavailable,
    }
}

pub fn handle(ctx: &Ctx, req: FetchRequest) -> Result<Reply, ProtocolError> {
    let request_partitions: usize = req.topics.iter().map(|t| t.partitions.len()).sum();
    // Sized only for the metrics (the frame's length is not passed down).
    let request_bytes = if ctx.broker.metrics.enabled() {
        req.compute_size(ctx.version).unwrap_or(0)
    } else {
        0
    };
    let session = ctx
        .broker
        .fetch_sessions
        .context(ctx.version, &req, &ctx.principal);
    let plan = match &session {
        Context::Error(e) => {
            tracing::debug!(
                session_id = req.session_id,
                epoch = req.session_epoch,
                error = ?e,
                "fetch session refused"
            );
            let metrics = &ctx.broker.metrics;
            metrics.request_error(ctx.api_key, e.code());
            let mut response = FetchResponse::default();
            response.error_code = e.code();
            let encoded = ctx.encode(&response);
            if metrics.enabled() {
                metrics.fetch_sessions.record(
                    FetchKind::Error,
                    request_partitions,
                    0,
                    request_bytes,
                    encoded.len(),
                );
            }
            return Ok(Reply::Now(Some(encoded)));
        }
        Context::Incremental { partitions, .. } => plan_from_session(partitions),
        _ => plan_from_request(ctx.version, &req),
    };
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MAX);
    let min_bytes = req.min_bytes.max(0) as usize;
    // Subscribe before reading, so an append between the read and the wait is not missed.
    let mut arrivals = ctx.broker.data_arrived.subscribe();
    // With fsync on ack, records become readable when their fsync completes.
    let mut readable = ctx.broker.topics.engine().readable_advanced();
    let ctx = ctx.clone();
    let deadline = Instant::now() + wait;
    Ok(Reply::Later(Box::pin(async move {
        let first = collect(&ctx, &req, &plan).await;
        if first.bytes >= min_bytes.max(1) || first.has_error || wait.is_zero() || min_bytes == 0 {
            return first.answer(&ctx, &session, &plan, request_partitions, request_bytes);
        }
        loop {
            // Timed out, or the broker is shutting down (sender gone): answer with what there is.
            let done = !matches!(
                tokio::time::timeout_at(
                    deadline.into(),
                    next_arrival(&mut arrivals, &mut readable)
                )
                .await,
                Ok(true)
            );
            let c = collect(&ctx, &req, &plan).await;
            if done || c.bytes >= min_bytes || c.has_error {
                return c.answer(&ctx, &session, &plan, request_partitions, request_bytes);
            }
        }
    })))
}

/// Waits for an append or a high watermark moved by an fsync; false once the
/// broker is shutting down (a sender gone).
async fn next_arrival(
    arrivals: &mut tokio::sync::watch::Receiver<u64>,
    readable: &mut Option<tokio::sync::watch::Receiver<u64>>,
) -> bool {
    match readable {
        Some(r) => tokio::select! {
            a = arrivals.changed() => a.is_ok(),
            b = r.changed() => b.is_ok(),
        },
        None => arrivals.changed().await.is_ok(),
    }
}
