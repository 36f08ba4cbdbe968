//! Heartbeat (key 12): keeps a classic member's session alive and tells it
//! when to rejoin (REBALANCE_IN_PROGRESS).

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: HeartbeatRequest) -> Result<Reply, ProtocolError> {
    let instance = if ctx.version >= 3 {
        req.group_instance_id.as_ref().map(s)
    } else {
        None
    };
    let mut resp = HeartbeatResponse::default();
    if !ctx.authorize(Operation::Read, ResourceType::Group, &s(&req.group_id.0)) {
        resp.error_code = kafka_protocol::ResponseError::GroupAuthorizationFailed.code();
        return ctx.reply(&resp);
    }
    resp.error_code = ctx.broker.groups.heartbeat(
        &s(&req.group_id.0),
        &s(&req.member_id),
        instance.as_deref(),
        req.generation_id,
    );
    ctx.reply(&resp)
}
