//! DescribeGroups (key 15): state, protocol and members of classic groups.
//! Unknown (and KIP-848) groups are shown as Dead, as Kafka does before v6;
//! v6 (KIP-1043) answers GROUP_ID_NOT_FOUND with an error message instead.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;

/// READ, DELETE and DESCRIBE (AclOperation codes 3, 6, 8).
pub const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub fn handle(ctx: &Ctx, req: DescribeGroupsRequest) -> Result<Reply, ProtocolError> {
    let ids: Vec<String> = req.groups.iter().map(|g| s(&g.0)).collect();
    let ops = if req.include_authorized_operations {
        GROUP_AUTHORIZED_OPERATIONS
    } else {
        i32::MIN
    };
    let mut resp = DescribeGroupsResponse::default();
    resp.groups = ctx
        .broker
        .groups
        .describe(&ids)
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
            if ctx.version >= 6
                && d.error == 0
                && let Some(why) = d.not_found
            {
                g.error_code = kafka_protocol::ResponseError::GroupIdNotFound.code();
                g.error_message = Some(sb(why));
            }
            g.group_id = GroupId(sb(d.group_id));
            g.group_state = sb(d.state);
            g.protocol_type = sb(d.protocol_type);
            g.protocol_data = sb(d.protocol_data);
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
                    let mut dm = DescribedGroupMember::default();
                    dm.member_id = sb(m.member_id);
                    if ctx.version >= 4 {
                        dm.group_instance_id = m.instance_id.map(sb);
                    }
                    dm.client_id = sb(m.client_id);
                    dm.client_host = sb(m.client_host);
                    dm.member_metadata = m.metadata;
                    dm.member_assignment = m.assignment;
                    dm
                })
                .collect();
            g
        })
        .collect();
    ctx.reply(&resp)
}
