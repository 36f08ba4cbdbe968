//! ConsumerGroupDescribe (key 69, KIP-848): members, epochs, current and
//! target assignments of consumer groups.

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId, TopicName,
};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;

fn assignment(parts: Vec<(uuid::Uuid, String, Vec<i32>)>) -> Assignment {
    let mut a = Assignment::default();
    a.topic_partitions = parts
        .into_iter()
        .map(|(id, name, ps)| {
            let mut tp = TopicPartitions::default();
            tp.topic_id = id;
            tp.topic_name = TopicName(sb(name));
            tp.partitions = ps;
            tp
        })
        .collect();
    a
}

pub fn handle(ctx: &Ctx, req: ConsumerGroupDescribeRequest) -> Result<Reply, ProtocolError> {
    let ids: Vec<String> = req.group_ids.iter().map(|g| s(&g.0)).collect();
    let ops = if req.include_authorized_operations {
        super::describe_groups::GROUP_AUTHORIZED_OPERATIONS
    } else {
        i32::MIN
    };
    let mut resp = ConsumerGroupDescribeResponse::default();
    resp.groups = ctx
        .broker
        .groups
        .consumer_describe(&ids, &ctx.broker.topics)
        .into_iter()
        .map(|d| {
            let mut g = DescribedGroup::default();
            if !ctx.authorize(Operation::Describe, ResourceType::Group, &d.group_id) {
                g.error_code = kafka_protocol::ResponseError::GroupAuthorizationFailed.code();
                g.group_id = GroupId(sb(d.group_id));
                g.authorized_operations = i32::MIN;
                return g;
            }
            g.error_code = d.error;
            g.error_message = d.error_message.map(sb);
            g.group_id = GroupId(sb(d.group_id));
            g.group_state = sb(d.state);
            g.group_epoch = d.group_epoch;
            g.assignment_epoch = d.assignment_epoch;
            g.assignor_name = sb(d.assignor);
            g.authorized_operations = if ops == i32::MIN {
                ops
            } else {
                super::authorized_operations(
                    ctx,
                    ResourceType::Group,
                    &g.group_id.0,
                    super::GROUP_OPERATIONS,
                )
            };
            g.members = d
                .members
                .into_iter()
                .map(|m| {
                    let mut mm = Member::default();
                    mm.member_id = sb(m.member_id);
                    mm.instance_id = m.instance_id.map(sb);
                    mm.rack_id = m.rack_id.map(sb);
                    mm.member_epoch = m.member_epoch;
                    mm.client_id = sb(m.client_id);
                    mm.client_host = sb(m.client_host);
                    mm.subscribed_topic_names = m
                        .subscribed_topic_names
                        .into_iter()
                        .map(|n| TopicName(sb(n)))
                        .collect();
                    mm.subscribed_topic_regex = m.subscribed_topic_regex.map(sb);
                    mm.assignment = assignment(m.assignment);
                    mm.target_assignment = assignment(m.target_assignment);
                    // v1 (KIP-1099): every member of a Herald consumer group
                    // speaks the consumer protocol (1); classic members
                    // cannot join one. -1 (unknown) is v0's default.
                    if ctx.version >= 1 {
                        mm.member_type = 1;
                    }
                    mm
                })
                .collect();
            g
        })
        .collect();
    ctx.reply(&resp)
}
