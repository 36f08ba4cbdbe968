//! TxnOffsetCommit (key 28): offsets committed inside a transaction
//! (`sendOffsetsToTransaction`). They are kept with the transaction and become
//! the group's committed offsets only when it commits; an abort drops them.
//! Until then OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s};
use crate::error::ProtocolError;
use crate::group_coordinator::offset_store::OffsetValue;

pub fn handle(ctx: &Ctx, req: TxnOffsetCommitRequest) -> Result<Reply, ProtocolError> {
    let broker = &ctx.broker;
    let id = req.transactional_id.0.to_string();
    let group = req.group_id.0.to_string();
    let group_error = if !ctx.authorize(Operation::Write, ResourceType::TransactionalId, &id) {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if !ctx.authorize(Operation::Read, ResourceType::Group, &group) {
        Some(ResponseError::GroupAuthorizationFailed)
    } else {
        broker
            .groups
            .validate_txn_commit(
                &group,
                req.member_id.as_str(),
                req.group_instance_id.as_ref().map(|i| i.as_str()),
                req.generation_id,
            )
            .err()
    };
    let now = crate::now_ms();
    let mut codes: Vec<(String, Vec<(i32, i16)>)> = Vec::with_capacity(req.topics.len());
    let mut offsets = Vec::new();
    for t in &req.topics {
        let name = s(&t.name.0);
        let allowed = ctx.authorize(Operation::Read, ResourceType::Topic, &name);
        let count = broker.topics.get(&name).map(|x| x.partition_count());
        let mut ps = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let metadata = p
                .committed_metadata
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            let code = if let Some(e) = group_error {
                e.code()
            } else if !allowed {
                ResponseError::TopicAuthorizationFailed.code()
            } else if count.is_none_or(|c| p.partition_index < 0 || p.partition_index >= c) {
                ResponseError::UnknownTopicOrPartition.code()
            } else if metadata.len() > broker.groups.cfg.offset_metadata_bytes_max {
                ResponseError::OffsetMetadataTooLarge.code()
            } else {
                offsets.push((
                    name.clone(),
                    p.partition_index,
                    OffsetValue {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        commit_timestamp_ms: now,
                        metadata,
                    },
                ));
                0
            };
            ps.push((p.partition_index, code));
        }
        codes.push((name, ps));
    }
    let ctx = ctx.clone();
    Ok(Reply::Later(Box::pin(async move {
        if !offsets.is_empty()
            && let Err(e) = ctx
                .broker
                .txn
                .txn_offset_commit(&id, req.producer_id.0, req.producer_epoch, &group, offsets)
                .await
        {
            let code = super::fenced_for_version(e, ctx.version, 3).code();
            for (_, ps) in codes.iter_mut() {
                for (_, c) in ps.iter_mut() {
                    if *c == 0 {
                        *c = code;
                    }
                }
            }
        }
        let mut resp = TxnOffsetCommitResponse::default();
        resp.topics = codes
            .into_iter()
            .map(|(name, ps)| {
                let mut tr = TxnOffsetCommitResponseTopic::default();
                tr.name = kafka_protocol::messages::TopicName(name.into());
                tr.partitions = ps
                    .into_iter()
                    .map(|(p, c)| {
                        let mut r = TxnOffsetCommitResponsePartition::default();
                        r.partition_index = p;
                        r.error_code = c;
                        r
                    })
                    .collect();
                tr
            })
            .collect();
        Some(ctx.encode(&resp))
    })))
}
