//! Produce (key 0): validate each partition's batches, append them in request
//! order, and answer once the data is as durable as `acks` and the topic's
//! flush policy require (acks=all + flush.messages=1: after fsync).

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{Ctx, Reply, s, sb};
use crate::error::{ProtocolError, log_error_code};

/// Bound on how long an acks=all produce waits for its fsync.
const DURABILITY_WAIT_MAX: Duration = Duration::from_secs(300);

pub fn handle(ctx: &Ctx, req: ProduceRequest) -> Result<Reply, ProtocolError> {
    let broker = &ctx.broker;
    let acks = req.acks;
    let valid_acks = matches!(acks, -1..=1);
    let transactional = req.transactional_id.is_some();
    let now = crate::now_ms();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // Partitions whose acknowledgement waits for fsync: (topic idx, partition idx, partition, end offset).
    let mut waits = Vec::new();
    let mut appended = false;
    for (ti, td) in req.topic_data.into_iter().enumerate() {
        let name = s(&td.name.0);
        let topic = broker.topics.get(&name);
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
                    Some(records) => match p.append(&records, now) {
                        Ok((info, fsync_on_ack)) => {
                            appended |= !info.duplicate;
                            pr.base_offset = info.base_offset;
                            pr.log_append_time_ms = info.log_append_time_ms;
                            if ctx.version >= 5 {
                                pr.log_start_offset =
                                    p.with_log(|l| Ok(l.log_start_offset())).unwrap_or(-1);
                            }
                            if acks == -1 && fsync_on_ack {
                                waits.push((
                                    ti,
                                    tr.partition_responses.len(),
                                    p.clone(),
                                    info.last_offset + 1,
                                ));
                            }
                        }
                        Err(e) => {
                            tracing::debug!(topic = %name, partition = pd.index, error = %e, "produce rejected");
                            pr.error_code = log_error_code(&e);
                            if ctx.version >= 8 {
                                pr.error_message = Some(sb(e.to_string()));
                                if let herald_log::LogError::InvalidRecords { records, .. } = &e {
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
                    },
                }
            } else {
                pr.error_code = ResponseError::UnknownTopicOrPartition.code();
            }
            tr.partition_responses.push(pr);
        }
        responses.push(tr);
    }
    if appended {
        broker.notify_data_arrived();
    }
    if acks == 0 {
        return Ok(Reply::Now(None));
    }
    let mut resp = ProduceResponse::default();
    resp.responses = responses;
    if waits.is_empty() {
        return ctx.reply(&resp);
    }
    let ctx = ctx.clone();
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64)
        .clamp(Duration::from_secs(1), DURABILITY_WAIT_MAX);
    Ok(Reply::Later(Box::pin(async move {
        for (ti, pi, p, end) in waits {
            let code = match tokio::time::timeout(timeout, p.wait_durable(end)).await {
                Ok(Ok(())) => 0,
                Ok(Err(e)) => log_error_code(&e),
                Err(_) => ResponseError::RequestTimedOut.code(),
            };
            if code != 0 {
                let pr = &mut resp.responses[ti].partition_responses[pi];
                pr.error_code = code;
                pr.base_offset = -1;
            }
        }
        Some(ctx.encode(&resp))
    })))
}
