//! DeleteGroups (key 42): removes empty groups and their committed offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::{Ctx, Reply, s};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: DeleteGroupsRequest) -> Result<Reply, ProtocolError> {
    let ids: Vec<String> = req.groups_names.iter().map(|g| s(&g.0)).collect();
    let codes = ctx.broker.groups.delete_groups(&ids);
    let mut resp = DeleteGroupsResponse::default();
    resp.results = req
        .groups_names
        .into_iter()
        .zip(codes)
        .map(|(g, code)| {
            let mut r = DeletableGroupResult::default();
            r.group_id = g;
            r.error_code = code;
            r
        })
        .collect();
    Ok(super::reply_when_durable(ctx, resp))
}
