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
            } else if transactional {
                // Transactions are not implemented yet: refuse rather than pretend.
                pr.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
                if ctx.version >= 8 {
                    pr.error_message =
                        Some(sb("transactions are not supported by this broker yet"));
                }
            } else if let Some(p) = partition {
                match pd.records {
                    None => pr.error_code = ResponseError::InvalidRecord.code(),
                    Some(records) => {
                        // (records, bytes) for the event-flow graph, read
                        // before the payload moves into the log.
                        let flow = broker.event_flow.enabled().then(|| {
                            (
                                herald_log::batch::count_records(&records),
                                records.len() as u64,
                            )
                        });
                        pending.push((
                            ti,
                            tr.partition_responses.len(),
                            counters
                                .clone()
                                .map(|c| crate::metrics::Inflow::measure(c, &records)),
                            flow,
                            p.append(records, acks, now),
                        ))
                    }
                }
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
