//! DeleteGroups (key 42): removes empty groups and their committed offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: DeleteGroupsRequest) -> Result<Reply, ProtocolError> {
    let ids: Vec<String> = req.groups_names.iter().map(|g| s(&g.0)).collect();
    let allowed: Vec<bool> = ids
        .iter()
        .map(|g| ctx.authorize(Operation::Delete, ResourceType::Group, g))
        .collect();
    let permitted: Vec<String> = ids
        .iter()
        .zip(&allowed)
        .filter(|(_, a)| **a)
        .map(|(g, _)| g.clone())
        .collect();
    let mut deleted = ctx.broker.groups.delete_groups(&permitted).into_iter();
    let codes: Vec<i16> = allowed
        .iter()
        .map(|a| {
            if *a {
                deleted.next().unwrap_or(0)
            } else {
                kafka_protocol::ResponseError::GroupAuthorizationFailed.code()
            }
        })
        .collect();
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
