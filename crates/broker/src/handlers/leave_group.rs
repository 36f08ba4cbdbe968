//! LeaveGroup (key 13): one member (v0-2) or a batch of member identities
//! (v3+, by member id and/or group.instance.id).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: LeaveGroupRequest) -> Result<Reply, ProtocolError> {
    let members: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        req.members
            .iter()
            .map(|m| (s(&m.member_id), m.group_instance_id.as_ref().map(s)))
            .collect()
    } else {
        vec![(s(&req.member_id), None)]
    };
    let mut resp = LeaveGroupResponse::default();
    if !ctx.authorize(Operation::Read, ResourceType::Group, &s(&req.group_id.0)) {
        resp.error_code = kafka_protocol::ResponseError::GroupAuthorizationFailed.code();
        return ctx.reply(&resp);
    }
    match ctx.broker.groups.leave(&s(&req.group_id.0), &members) {
        Err(code) => resp.error_code = code,
        Ok(codes) => {
            if ctx.version >= 3 {
                resp.members = req
                    .members
                    .into_iter()
                    .zip(codes)
                    .map(|(m, code)| {
                        let mut r = MemberResponse::default();
                        r.member_id = m.member_id;
                        r.group_instance_id = m.group_instance_id;
                        r.error_code = code;
                        r
                    })
                    .collect();
            } else {
                resp.error_code = codes.first().copied().unwrap_or(0);
            }
        }
    }
    Ok(super::reply_when_durable(ctx, resp))
}
