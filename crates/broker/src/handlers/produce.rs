//! Produce (key 0): validate each partition's batches, append them in request
//! order, and answer once the data is as durable as `acks` and the topic's
//! flush policy require (acks=all + flush.messages=1: after fsync).

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::{ProtocolError, log_error_code};

/// Bound on how long a produce waits for its records to be durable.
const DURABILITY_WAIT_MAX: Duration = Duration::from_secs(300);

pub fn handle(ctx: &Ctx, req: ProduceRequest) -> Result<Reply, ProtocolError> {
    let broker = &ctx.broker;
    let acks = req.acks;
    let valid_acks = matches!(acks, -1..=1);
    let transactional = req.transactional_id.is_some();
    let transactional_id = req.transactional_id.as_ref().map(|t| s(&t.0));
    let now = crate::now_ms();
    let arrived = std::time::Instant::now();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // Appends in flight: (topic idx, partition idx, its future). Each append is
    // ordered when it is called, here, in request order; only its answer waits.
    let mut pending = Vec::new();
    let txn_allowed = transactional_id
        .as_deref()
        .is_none_or(|id| ctx.authorize(Operation::Write, ResourceType::TransactionalId, id));
    for (ti, td) in req.topic_data.into_iter().enumerate() {
        let name = s(&td.name.0);
        let topic = broker.topics.get(&name);
        let allowed = ctx.authorize(Operation::Write, ResourceType::Topic, &name);
        let counters = topic.as_ref().and_then(|_| broker.metrics.topic(&name));
        let mut tr = TopicProduceResponse::default();
        tr.name = td.name.clone();
        for pd in td.partition_data {
            let mut pr = PartitionProduceResponse::default();
            pr.index = pd.index;
            pr.base_offset = -1;
            pr.log_append_time_ms = -1;
            pr.log_start_offset = -1;
            let partition = topic.as_ref().and_then(|t| t.partition(pd.index));
            if !valid_acks {
                pr.error_code = ResponseError::InvalidRequiredAcks.code();
            } else if !allowed {
                pr.error_code = ResponseError::TopicAuthorizationFailed.code();
            } else if transactional && !txn_allowed {
                pr.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            } else if transactional && !broker.txn.enabled() {
                pr.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
                if ctx.version >= 8 {
                    pr.error_message =
                        Some(sb("transactions are not supported in cluster mode yet"));
                }
            } else if let Some(p) = partition {
                let txn = pd.records.as_deref().map(transactional_producer);
                match (pd.records, txn) {
                    (None, _) => pr.error_code = ResponseError::InvalidRecord.code(),
                    (Some(_), Some(Err(why))) => {
                        pr.error_code = ResponseError::InvalidRecord.code();
                        if ctx.version >= 8 {
                            pr.error_message = Some(sb(why));
                        }
                    }
                    (Some(_), Some(Ok(Some(_)))) if !transactional => {
                        pr.error_code = ResponseError::InvalidRecord.code();
                        if ctx.version >= 8 {
                            pr.error_message =
                                Some(sb("transactional batches need a transactional id"));
                        }
                    }
                    (Some(_), Some(Ok(None))) if transactional => {
                        pr.error_code = ResponseError::InvalidRecord.code();
                        if ctx.version >= 8 {
                            pr.error_message = Some(sb(
                                "a produce with a transactional id carries transactional batches only",
                            ));
                        }
                    }
                    (Some(records), txn) => {
                        // (records, bytes) for the event-flow graph, read
                        // before the payload moves into the log.
                        let flow = broker.event_flow.enabled().then(|| {
                            (
                                herald_log::batch::count_records(&records),
                                records.len() as u64,
                            )
                        });
                        let inflow = counters
                            .clone()
                            .map(|c| crate::metrics::Inflow::measure(c, &records));
                        let append = match (txn, &transactional_id) {
                            // KIP-890 part 1: only into a partition of the
                            // producer's open transaction, ordered before its marker.
                            (Some(Ok(Some((pid, epoch)))), Some(id)) => {
                                broker.txn.produce(id, pid, epoch, &name, pd.index, || {
                                    p.append(records, acks, now)
                                })
                            }
                            _ => Ok(p.append(records, acks, now)),
                        };
                        match append {
                            Ok(fut) => {
                                pending.push((ti, tr.partition_responses.len(), inflow, flow, fut))
                            }
                            Err(e) => {
                                tracing::debug!(partition = pd.index, error = ?e, "transactional produce refused");
                                pr.error_code = e.code();
                            }
                        }
                    }
                }
            } else if crate::internal_topics::is_internal_name(&name) {
                // Kafka: INVALID_TOPIC_EXCEPTION for a produce to an internal
                // topic (cluster mode does not serve them at all).
                tracing::info!(topic = %name, "refused a produce to an internal topic");
                pr.error_code = ResponseError::InvalidTopicException.code();
            } else {
                pr.error_code = ResponseError::UnknownTopicOrPartition.code();
            }
            tr.partition_responses.push(pr);
        }
        responses.push(tr);
    }
    if !pending.is_empty() && broker.topics.engine().readable_on_append() {
        // Consumers may read the records now (before their fsync): wake them.
        broker.notify_data_arrived();
    }
    let ctx = ctx.clone();
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64)
        .clamp(Duration::from_secs(1), DURABILITY_WAIT_MAX);
    let version = ctx.version;
    let answer = async move {
        let mut appended = false;
        for (ti, pi, inflow, flow, fut) in pending {
            let topic = &responses[ti].name;
            let outcome = tokio::time::timeout(timeout, fut).await;
            if let (Some((records, bytes)), Ok(Ok(_))) = (flow, &outcome) {
                let by = crate::event_flow::Producer {
                    principal: &ctx.principal,
                    client_id: ctx.client_id.as_deref(),
                    transactional_id: transactional_id.as_deref(),
                };
                ctx.broker
                    .event_flow
                    .produced(by, topic.0.as_str(), records, bytes, now);
            }
            let pr = &mut responses[ti].partition_responses[pi];
            match outcome {
                Ok(Ok(a)) => {
                    appended = true;
                    if let Some(i) = inflow {
                        i.appended();
                    }
                    pr.base_offset = a.base_offset;
                    pr.log_append_time_ms = a.log_append_time_ms;
                    if version >= 5 {
                        pr.log_start_offset = a.log_start_offset;
                    }
                }
                Ok(Err(e)) => {
                    tracing::debug!(partition = pr.index, error = %e, "produce rejected");
                    set_error(pr, &e, version);
                }
                Err(_) => pr.error_code = ResponseError::RequestTimedOut.code(),
            }
        }
        if appended {
            ctx.broker.notify_data_arrived();
        }
        record_metrics(&ctx, &responses, acks, appended, arrived);
        if acks == 0 {
            return None;
        }
        let mut resp = ProduceResponse::default();
        resp.responses = responses;
        Some(ctx.encode(&resp))
    };
    Ok(Reply::Later(Box::pin(answer)))
}

/// Partition errors, and for acks=all the time until durable.
fn record_metrics(
    ctx: &Ctx,
    responses: &[TopicProduceResponse],
    acks: i16,
    appended: bool,
    arrived: std::time::Instant,
) {
    let metrics = &ctx.broker.metrics;
    if !metrics.enabled() {
        return;
    }
    for pr in responses.iter().flat_map(|t| &t.partition_responses) {
        metrics.request_error(ctx.api_key, pr.error_code);
    }
    if acks == -1 && appended {
        metrics
            .log
            .produce_durable
            .observe_duration(arrived.elapsed());
    }
}

fn set_error(pr: &mut PartitionProduceResponse, e: &herald_log::LogError, version: i16) {
    pr.error_code = log_error_code(e);
    if version >= 8 {
        pr.error_message = Some(sb(e.to_string()));
        if let herald_log::LogError::InvalidRecords { records, .. } = e {
            pr.record_errors = records
                .iter()
                .map(|(index, why)| {
                    let mut r = BatchIndexAndErrorMessage::default();
                    r.batch_index = *index;
                    r.batch_index_error_message = Some(sb(*why));
                    r
                })
                .collect();
        }
    }
}

/// The producer of a payload's transactional batches: None if no batch is
/// transactional, (producer id, epoch) if all are and agree; a payload that
/// mixes them, or carries control batches (only the coordinator writes
/// those), is refused. Reads the 61-byte headers only (no allocation).
fn transactional_producer(records: &[u8]) -> Result<Option<(i64, i16)>, &'static str> {
    use herald_log::batch::{BATCH_HEADER_BYTES, BatchHeader, peek_total_bytes};
    let mut rest = records;
    let mut found: Option<(i64, i16)> = None;
    let mut plain = false;
    while rest.len() >= BATCH_HEADER_BYTES {
        let Ok(h) = BatchHeader::parse(rest) else {
            break;
        };
        if h.is_control() {
            return Err("control batches are written by the transaction coordinator only");
        }
        if h.is_transactional() {
            if !h.has_producer_id() {
                return Err("a transactional batch without a producer id");
            }
            match found {
                Some(f) if f != (h.producer_id, h.producer_epoch) => {
                    return Err("transactional batches of different producers");
                }
                _ => found = Some((h.producer_id, h.producer_epoch)),
            }
        } else {
            plain = true;
        }
        // The log validates lengths; a bad one just ends this scan.
        let Some(total) = peek_total_bytes(rest).filter(|t| *t > 0 && *t <= rest.len() as i64)
        else {
            break;
        };
        rest = &rest[total as usize..];
    }
    if plain && found.is_some() {
        return Err("transactional and non-transactional batches in one payload");
    }
    Ok(found)
}
