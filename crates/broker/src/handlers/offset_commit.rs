//! OffsetCommit (key 8): committed offsets with metadata and leader epoch,
//! checked against the group's generation (classic) or member epoch (KIP-848);
//! answered once durable in the group state log.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;
use crate::group_coordinator::{CommitPartition, CommitRequest};

pub fn handle(ctx: &Ctx, req: OffsetCommitRequest) -> Result<Reply, ProtocolError> {
    let v = ctx.version;
    let commit = CommitRequest {
        group_id: s(&req.group_id.0),
        generation_or_epoch: req.generation_id_or_member_epoch,
        member_id: s(&req.member_id),
        instance_id: if v >= 7 {
            req.group_instance_id.as_ref().map(s)
        } else {
            None
        },
        topics: req
            .topics
            .iter()
            .map(|t| {
                (
                    s(&t.name.0),
                    t.partitions
                        .iter()
                        .map(|p| CommitPartition {
                            partition: p.partition_index,
                            offset: p.committed_offset,
                            leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                            metadata: p.committed_metadata.as_ref().map(s),
                        })
                        .collect(),
                )
            })
            .collect(),
        version: v,
    };
    let mut commit = commit;
    let group_code = (!ctx.authorize(Operation::Read, ResourceType::Group, &commit.group_id))
        .then(|| kafka_protocol::ResponseError::GroupAuthorizationFailed.code());
    // A group it may not READ: every partition refused. Else the topics it may
    // not READ are refused and the rest is committed.
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut commit.topics)
        .into_iter()
        .partition(|(t, _)| {
            group_code.is_none() && ctx.authorize(Operation::Read, ResourceType::Topic, t)
        });
    commit.topics = allowed;
    let denied_code = group_code
        .unwrap_or_else(|| kafka_protocol::ResponseError::TopicAuthorizationFailed.code());
    let denied = denied
        .into_iter()
        .map(|(t, ps)| (t, ps.iter().map(|p| (p.partition, denied_code)).collect()));
    let mut results = if commit.topics.is_empty() {
        Vec::new()
    } else {
        ctx.broker.groups.commit(commit, &ctx.broker.topics)
    };
    results.extend(denied);
    let mut resp = OffsetCommitResponse::default();
    resp.topics = results
        .into_iter()
        .map(|(name, parts)| {
            let mut t = OffsetCommitResponseTopic::default();
            t.name = TopicName(sb(name));
            t.partitions = parts
                .into_iter()
                .map(|(p, code)| {
                    let mut r = OffsetCommitResponsePartition::default();
                    r.partition_index = p;
                    r.error_code = code;
                    r
                })
                .collect();
            t
        })
        .collect();
    // Kafka answers a commit its offsets log could not store with
    // NOT_COORDINATOR (retriable: the client finds the coordinator again).
    Ok(super::reply_when_durable_or(ctx, resp, |resp| {
        let code = kafka_protocol::ResponseError::NotCoordinator.code();
        for t in &mut resp.topics {
            for p in &mut t.partitions {
                if p.error_code == 0 {
                    p.error_code = code;
                }
            }
        }
    }))
}
