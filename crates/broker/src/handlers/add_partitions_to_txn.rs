//! AddPartitionsToTxn (key 24): the producer names the partitions it will
//! write in its open transaction (starting it), so that EndTxn knows where to
//! write markers. v4+ batches several transactional ids (broker-to-broker in
//! Kafka) and may only verify (`verify_only`, KIP-890 part 1).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s};
use crate::error::ProtocolError;

/// Bound on the transactions of one v4+ request.
const TRANSACTIONS_PER_REQUEST_MAX: usize = 1_000;

struct Txn {
    id: String,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    topics: Vec<AddPartitionsToTxnTopic>,
}

pub fn handle(ctx: &Ctx, req: AddPartitionsToTxnRequest) -> Result<Reply, ProtocolError> {
    let v4 = ctx.version >= 4;
    let txns: Vec<Txn> = if v4 {
        req.transactions
            .into_iter()
            .map(|t| Txn {
                id: t.transactional_id.0.to_string(),
                producer_id: t.producer_id.0,
                producer_epoch: t.producer_epoch,
                verify_only: t.verify_only,
                topics: t.topics,
            })
            .collect()
    } else {
        vec![Txn {
            id: req.v3_and_below_transactional_id.0.to_string(),
            producer_id: req.v3_and_below_producer_id.0,
            producer_epoch: req.v3_and_below_producer_epoch,
            verify_only: false,
            topics: req.v3_and_below_topics,
        }]
    };
    let mut resp = AddPartitionsToTxnResponse::default();
    if v4 {
        if !ctx.authorize_cluster(Operation::ClusterAction) {
            resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
            return ctx.reply(&resp);
        }
        if txns.len() > TRANSACTIONS_PER_REQUEST_MAX {
            resp.error_code = ResponseError::InvalidRequest.code();
            return ctx.reply(&resp);
        }
    }
    let ctx = ctx.clone();
    Ok(Reply::Later(Box::pin(async move {
        let mut results = Vec::with_capacity(txns.len());
        for t in txns {
            results.push((t.id.clone(), one(&ctx, t).await));
        }
        if v4 {
            resp.results_by_transaction = results
                .into_iter()
                .map(|(id, topics)| {
                    let mut r = AddPartitionsToTxnResult::default();
                    r.transactional_id = kafka_protocol::messages::TransactionalId(id.into());
                    r.topic_results = topics;
                    r
                })
                .collect();
        } else if let Some((_, topics)) = results.pop() {
            resp.results_by_topic_v3_and_below = topics;
        }
        Some(ctx.encode(&resp))
    })))
}

/// One transaction's partitions, each with its error code (all the same
/// unless some partitions are refused: then the others are
/// OPERATION_NOT_ATTEMPTED, as Kafka answers).
async fn one(ctx: &Ctx, t: Txn) -> Vec<AddPartitionsToTxnTopicResult> {
    let broker = &ctx.broker;
    let mut codes: Vec<(String, Vec<(i32, i16)>)> = Vec::with_capacity(t.topics.len());
    let mut refused = false;
    let id_allowed = ctx.authorize(Operation::Write, ResourceType::TransactionalId, &t.id);
    for topic in &t.topics {
        let name = s(&topic.name.0);
        let allowed = ctx.authorize(Operation::Write, ResourceType::Topic, &name);
        let count = broker.topics.get(&name).map(|x| x.partition_count());
        let ps = topic
            .partitions
            .iter()
            .map(|p| {
                let code = if !id_allowed {
                    ResponseError::TransactionalIdAuthorizationFailed.code()
                } else if !allowed {
                    ResponseError::TopicAuthorizationFailed.code()
                } else if count.is_none_or(|c| *p < 0 || *p >= c) {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    0
                };
                refused |= code != 0;
                (*p, code)
            })
            .collect();
        codes.push((name, ps));
    }
    let partitions: Vec<(String, i32)> = codes
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |(p, _)| (t.clone(), *p)))
        .collect();
    if refused {
        for (_, ps) in codes.iter_mut() {
            for (_, c) in ps.iter_mut() {
                if *c == 0 {
                    *c = ResponseError::OperationNotAttempted.code();
                }
            }
        }
    } else if t.verify_only {
        match broker
            .txn
            .verify_partitions(&t.id, t.producer_id, t.producer_epoch, &partitions)
        {
            Ok(present) => {
                let mut it = present.into_iter();
                for (_, ps) in codes.iter_mut() {
                    for (_, c) in ps.iter_mut() {
                        if !it.next().unwrap_or(false) {
                            *c = ResponseError::InvalidTxnState.code();
                        }
                    }
                }
            }
            Err(e) => set_all(&mut codes, e.code()),
        }
    } else if !partitions.is_empty() {
        let r = broker
            .txn
            .add_partitions(&t.id, t.producer_id, t.producer_epoch, &partitions)
            .await;
        if let Err(e) = r {
            set_all(
                &mut codes,
                super::fenced_for_version(e, ctx.version, 2).code(),
            );
        }
    }
    codes
        .into_iter()
        .map(|(name, ps)| {
            let mut tr = AddPartitionsToTxnTopicResult::default();
            tr.name = kafka_protocol::messages::TopicName(name.into());
            tr.results_by_partition = ps
                .into_iter()
                .map(|(p, c)| {
                    let mut r = AddPartitionsToTxnPartitionResult::default();
                    r.partition_index = p;
                    r.partition_error_code = c;
                    r
                })
                .collect();
            tr
        })
        .collect()
}

fn set_all(codes: &mut [(String, Vec<(i32, i16)>)], code: i16) {
    for (_, ps) in codes.iter_mut() {
        for (_, c) in ps.iter_mut() {
            *c = code;
        }
    }
}
