//! JoinGroup (key 11): joins a classic group. The response waits (deferred)
//! until the rebalance completes; the connection keeps serving meanwhile.

use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;
use crate::group_coordinator::group::{Answer, JoinRequest, JoinResult};

pub fn ms(v: i32) -> Duration {
    Duration::from_millis(v.max(0) as u64)
}

fn response(version: i16, r: JoinResult) -> JoinGroupResponse {
    let mut resp = JoinGroupResponse::default();
    resp.error_code = r.error;
    resp.generation_id = r.generation;
    if version >= 7 {
        resp.protocol_type = r.protocol_type.map(sb);
        resp.protocol_name = r.protocol_name.map(sb);
    } else {
        resp.protocol_name = Some(sb(r.protocol_name.unwrap_or_default()));
    }
    resp.leader = sb(r.leader);
    resp.member_id = sb(r.member_id);
    resp.members = r
        .members
        .into_iter()
        .map(|m| {
            let mut jm = JoinGroupResponseMember::default();
            jm.member_id = sb(m.member_id);
            if version >= 5 {
                jm.group_instance_id = m.instance_id.map(sb);
            }
            jm.metadata = m.metadata;
            jm
        })
        .collect();
    resp
}

pub fn handle(ctx: &Ctx, req: JoinGroupRequest) -> Result<Reply, ProtocolError> {
    let v = ctx.version;
    let member_id = s(&req.member_id);
    if !ctx.authorize(Operation::Read, ResourceType::Group, &s(&req.group_id.0)) {
        let r = JoinResult::error(&member_id, ResponseError::GroupAuthorizationFailed);
        return ctx.reply(&response(v, r));
    }
    let join = JoinRequest {
        member_id: member_id.clone(),
        instance_id: if v >= 5 {
            req.group_instance_id.as_ref().map(s)
        } else {
            None
        },
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.client_host.clone(),
        session_timeout: ms(req.session_timeout_ms),
        rebalance_timeout: if v >= 1 {
            ms(req.rebalance_timeout_ms)
        } else {
            ms(req.session_timeout_ms)
        },
        protocol_type: s(&req.protocol_type),
        protocols: req
            .protocols
            .iter()
            .map(|p| (s(&p.name), p.metadata.clone()))
            .collect(),
        require_known_member_id: v >= 4,
    };
    match ctx.broker.groups.join(&s(&req.group_id.0), join) {
        Answer::Now(r) => Ok(super::reply_when_durable(ctx, response(v, r))),
        Answer::Later(rx) => {
            let ctx = ctx.clone();
            Ok(Reply::Later(Box::pin(async move {
                let r = rx.await.unwrap_or_else(|_| {
                    JoinResult::error(&member_id, ResponseError::UnknownMemberId)
                });
                if let Err(e) = ctx.broker.groups.wait_durable().await {
                    tracing::error!(error = %e, "group state log not durable");
                }
                Some(ctx.encode(&response(v, r)))
            })))
        }
    }
}
