//! Fetch (key 1): returns whole batches from each requested partition, starting
//! with the batch that contains the fetch offset. A fetch that finds fewer than
//! `min_bytes` waits until a produce brings more or `max_wait_ms` passes, and is
//! answered as soon as `min_bytes` is reached.
//!
//! Incremental fetch sessions (KIP-227) are not created: the response carries
//! session id 0, which tells clients to keep sending full fetches.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};

use super::{Ctx, Reply, s, sb};
use crate::error::{ProtocolError, log_error_code};

/// Upper bound on one fetch's wait, whatever the client asks.
const FETCH_WAIT_MAX: Duration = Duration::from_secs(30);
/// Upper bound on one fetch response's bytes, whatever the client asks.
const FETCH_RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

struct Collected {
    response: FetchResponse,
    bytes: usize,
    has_error: bool,
}

fn collect(ctx: &Ctx, req: &FetchRequest) -> Collected {
    let broker = &ctx.broker;
    let max_bytes = if req.max_bytes <= 0 {
        FETCH_RESPONSE_BYTES_MAX
    } else {
        (req.max_bytes as usize).min(FETCH_RESPONSE_BYTES_MAX)
    };
    let mut budget = max_bytes;
    let mut total = 0usize;
    let mut has_error = false;
    let read_committed = req.isolation_level == 1;
    let mut responses = Vec::with_capacity(req.topics.len());
    for ft in &req.topics {
        let topic = if ctx.version >= 13 {
            broker.topics.get_by_id(ft.topic_id)
        } else {
            broker.topics.get(&s(&ft.topic.0))
        };
        let mut tr = FetchableTopicResponse::default();
        tr.topic = ft.topic.clone();
        tr.topic_id = ft.topic_id;
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
                None => {
                    pd.error_code = if ctx.version >= 13 && topic.is_none() {
                        ResponseError::UnknownTopicId.code()
                    } else {
                        ResponseError::UnknownTopicOrPartition.code()
                    };
                    has_error = true;
                }
                Some(_) if fp.current_leader_epoch > 0 => {
                    // Herald's single leader is always in epoch 0.
                    pd.error_code = ResponseError::UnknownLeaderEpoch.code();
                    has_error = true;
                }
                Some(p) => {
                    let limit = (fp.partition_max_bytes.max(0) as usize).min(budget);
                    // Plan under the lock, read after it: producers of this
                    // partition do not wait for a consumer's disk read.
                    let result = p
                        .with_log(|log| {
                            let hw = log.log_end_offset();
                            let start = log.log_start_offset();
                            // KIP-74: only the first partition with data may exceed the
                            // budget (by its first batch); after it, a partition whose
                            // first batch does not fit the rest of the budget sends
                            // nothing this time (Kafka's minOneMessage=false).
                            let plan = if limit == 0 && total > 0 {
                                None
                            } else {
                                log.read_plan(fp.fetch_offset, limit)?
                                    .filter(|plan| total == 0 || plan.len() <= limit)
                            };
                            Ok((hw, start, plan))
                        })
                        .and_then(|(hw, start, plan)| {
                            let data = match plan {
                                Some(plan) => plan.execute()?,
                                None => Vec::new(),
                            };
                            Ok((hw, start, data))
                        });
                    match result {
                        Ok((hw, start, data)) => {
                            pd.high_watermark = hw;
                            pd.last_stable_offset = hw;
                            if ctx.version >= 5 {
                                pd.log_start_offset = start;
                            }
                            total += data.len();
                            budget = budget.saturating_sub(data.len());
                            pd.records = Some(Bytes::from(data));
                        }
                        Err(e) => {
                            pd.error_code = log_error_code(&e);
                            if let Ok((hw, start)) =
                                p.with_log(|l| Ok((l.log_end_offset(), l.log_start_offset())))
                            {
                                pd.high_watermark = hw;
                                pd.last_stable_offset = hw;
                                if ctx.version >= 5 {
                                    pd.log_start_offset = start;
                                }
                            }
                            has_error = true;
                        }
                    }
                }
            }
            tr.partitions.push(pd);
        }
        responses.push(tr);
    }
    let mut response = FetchResponse::default();
    response.responses = responses;
    response.session_id = 0;
    Collected {
        response,
        bytes: total,
        has_error,
    }
}

pub fn handle(ctx: &Ctx, req: FetchRequest) -> Result<Reply, ProtocolError> {
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MAX);
    let min_bytes = req.min_bytes.max(0) as usize;
    // Subscribe before reading, so an append between the read and the wait is not missed.
    let mut arrivals = ctx.broker.data_arrived.subscribe();
    let first = collect(ctx, &req);
    if first.bytes >= min_bytes.max(1) || first.has_error || wait.is_zero() || min_bytes == 0 {
        return ctx.reply(&first.response);
    }
    let ctx = ctx.clone();
    let deadline = Instant::now() + wait;
    Ok(Reply::Later(Box::pin(async move {
        loop {
            // Timed out, or the broker is shutting down (sender gone): answer with what there is.
            let done = !matches!(
                tokio::time::timeout_at(deadline.into(), arrivals.changed()).await,
                Ok(Ok(()))
            );
            let c = collect(&ctx, &req);
            if done || c.bytes >= min_bytes || c.has_error {
                return Some(ctx.encode(&c.response));
            }
        }
    })))
}
