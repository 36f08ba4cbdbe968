//! OffsetFetch (key 9): committed offsets of one group (v1-7) or several
//! (v8+); a partition without a committed offset gets offset -1.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: OffsetFetchRequest) -> Result<Reply, ProtocolError> {
    let mut resp = OffsetFetchResponse::default();
    if ctx.version >= 8 {
        resp.groups = req
            .groups
            .iter()
            .map(|g| {
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (s(&t.name.0), t.partition_indexes.clone()))
                        .collect()
                });
                let member = match (&g.member_id, ctx.version >= 9) {
                    (Some(m), true) if !m.is_empty() => Some((s(m), g.member_epoch)),
                    _ => None,
                };
                let (error, offsets) =
                    fetch(ctx, &s(&g.group_id.0), topics, member, req.require_stable);
                let mut rg = OffsetFetchResponseGroup::default();
                rg.group_id = g.group_id.clone();
                rg.error_code = error;
                rg.topics = offsets
                    .into_iter()
                    .map(|(name, parts)| {
                        let mut t = OffsetFetchResponseTopics::default();
                        t.name = TopicName(sb(name));
                        t.partitions = parts
                            .into_iter()
                            .map(|o| {
                                let mut p = OffsetFetchResponsePartitions::default();
                                p.partition_index = o.partition;
                                p.committed_offset = o.offset;
                                p.committed_leader_epoch = o.leader_epoch;
                                p.metadata = Some(sb(o.metadata));
                                p.error_code = o.error;
                                p
                            })
                            .collect();
                        t
                    })
                    .collect();
                rg
            })
            .collect();
        return ctx.reply(&resp);
    }
    let topics = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (s(&t.name.0), t.partition_indexes.clone()))
            .collect()
    });
    let asked = topics.clone();
    let (error, mut offsets) = fetch(ctx, &s(&req.group_id.0), topics, None, req.require_stable);
    if ctx.version >= 2 {
        resp.error_code = error;
    } else if error != 0 && offsets.is_empty() {
        // v0-1 have no top-level error: as Kafka, every asked-for partition
        // carries it (else NOT_COORDINATOR would read as "nothing committed").
        offsets = asked
            .unwrap_or_default()
            .into_iter()
            .map(|(t, parts)| {
                let parts = parts
                    .into_iter()
                    .map(|partition| crate::group_coordinator::FetchedOffset {
                        partition,
                        offset: -1,
                        leader_epoch: -1,
                        metadata: String::new(),
                        error,
                    })
                    .collect();
                (t, parts)
            })
            .collect();
    }
    resp.topics = offsets
        .into_iter()
        .map(|(name, parts)| {
            let mut t = OffsetFetchResponseTopic::default();
            t.name = TopicName(sb(name));
            t.partitions = parts
                .into_iter()
                .map(|o| {
                    let mut p = OffsetFetchResponsePartition::default();
                    p.partition_index = o.partition;
                    p.committed_offset = o.offset;
                    p.committed_leader_epoch = o.leader_epoch;
                    p.metadata = Some(sb(o.metadata));
                    p.error_code = if ctx.version < 2 && error != 0 {
                        error
                    } else {
                        o.error
                    };
                    p
                })
                .collect();
            t
        })
        .collect();
    ctx.reply(&resp)
}

type Offsets = Vec<(String, Vec<crate::group_coordinator::FetchedOffset>)>;

/// The group's offsets as the principal may see them: DESCRIBE on the group,
/// and on each topic (asked-for topics it may not describe are refused, the
/// others of an all-topics fetch are left out).
fn fetch(
    ctx: &Ctx,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    member: Option<(String, i32)>,
    require_stable: bool,
) -> (i16, Offsets) {
    use kafka_protocol::ResponseError as E;
    if !ctx.authorize(Operation::Describe, ResourceType::Group, group) {
        return (E::GroupAuthorizationFailed.code(), Vec::new());
    }
    let listed = topics.is_some();
    let (error, mut offsets) = ctx.broker.groups.fetch_offsets(group, topics, member);
    if listed {
        for (t, parts) in &mut offsets {
            if !ctx.authorize(Operation::Describe, ResourceType::Topic, t) {
                for p in parts {
                    p.offset = -1;
                    p.leader_epoch = -1;
                    p.metadata.clear();
                    p.error = E::TopicAuthorizationFailed.code();
                }
            }
        }
    } else {
        offsets.retain(|(t, _)| ctx.may(Operation::Describe, ResourceType::Topic, t));
    }
    if require_stable {
        // KIP-447: an offset an open transaction will replace is not stable yet.
        for (t, parts) in &mut offsets {
            for p in parts.iter_mut() {
                if p.error == 0 && ctx.broker.txn.has_pending_offset(group, t, p.partition) {
                    p.offset = -1;
                    p.leader_epoch = -1;
                    p.metadata.clear();
                    p.error = E::UnstableOffsetCommit.code();
                }
            }
        }
    }
    (error, offsets)
}
