//! ListGroups (key 16): every group, filtered by state (v4+) and type (v5).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use herald_security::acl::{CLUSTER_NAME, Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: ListGroupsRequest) -> Result<Reply, ProtocolError> {
    let states: Vec<String> = req.states_filter.iter().map(s).collect();
    let types: Vec<String> = req.types_filter.iter().map(s).collect();
    let mut resp = ListGroupsResponse::default();
    // DESCRIBE on the cluster shows every group; else those the principal may describe.
    let all = ctx.may(Operation::Describe, ResourceType::Cluster, CLUSTER_NAME);
    resp.groups = ctx
        .broker
        .groups
        .list(&states, &types)
        .into_iter()
        .filter(|g| all || ctx.may(Operation::Describe, ResourceType::Group, &g.group_id))
        .map(|g| {
            let mut l = ListedGroup::default();
            l.group_id = GroupId(sb(g.group_id));
            l.protocol_type = sb(g.protocol_type);
            l.group_state = sb(g.state);
            l.group_type = sb(g.group_type);
            l
        })
        .collect();
    ctx.reply(&resp)
}
