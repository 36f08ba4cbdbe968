//! SyncGroup (key 14): the leader hands out assignments; followers wait
//! (deferred) until it does.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;
use crate::group_coordinator::group::{Answer, SyncResult};

fn response(version: i16, r: SyncResult) -> SyncGroupResponse {
    let mut resp = SyncGroupResponse::default();
    resp.error_code = r.error;
    if version >= 5 {
        resp.protocol_type = r.protocol_type.map(sb);
        resp.protocol_name = r.protocol_name.map(sb);
    }
    resp.assignment = r.assignment;
    resp
}

pub fn handle(ctx: &Ctx, req: SyncGroupRequest) -> Result<Reply, ProtocolError> {
    let v = ctx.version;
    if !ctx.authorize(Operation::Read, ResourceType::Group, &s(&req.group_id.0)) {
        let r = SyncResult::error(ResponseError::GroupAuthorizationFailed);
        return ctx.reply(&response(v, r));
    }
    let instance = if v >= 3 {
        req.group_instance_id.as_ref().map(s)
    } else {
        None
    };
    let protocol_type = req.protocol_type.as_ref().map(s);
    let protocol_name = req.protocol_name.as_ref().map(s);
    let assignments = req
        .assignments
        .into_iter()
        .map(|a| (s(&a.member_id), a.assignment))
        .collect();
    let answer = ctx.broker.groups.sync(
        &s(&req.group_id.0),
        &s(&req.member_id),
        instance.as_deref(),
        req.generation_id,
        protocol_type.as_deref(),
        protocol_name.as_deref(),
        assignments,
    );
    match answer {
        Answer::Now(r) => Ok(super::reply_when_durable(ctx, response(v, r))),
        Answer::Later(rx) => {
            let ctx = ctx.clone();
            Ok(Reply::Later(Box::pin(async move {
                let r = rx
                    .await
                    .unwrap_or_else(|_| SyncResult::error(ResponseError::RebalanceInProgress));
                if let Err(e) = ctx.broker.groups.wait_durable().await {
                    tracing::error!(error = %e, "group state log not durable");
                }
                Some(ctx.encode(&response(v, r)))
            })))
        }
    }
}
