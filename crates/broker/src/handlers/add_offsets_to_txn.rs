//! AddOffsetsToTxn (key 25): the producer will commit a group's offsets in
//! its transaction (`sendOffsetsToTransaction`); TxnOffsetCommit follows,
//! sent to the group's coordinator.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: AddOffsetsToTxnRequest) -> Result<Reply, ProtocolError> {
    let mut resp = AddOffsetsToTxnResponse::default();
    let id = req.transactional_id.0.to_string();
    let group = req.group_id.0.to_string();
    if !ctx.authorize(Operation::Write, ResourceType::TransactionalId, &id) {
        resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return ctx.reply(&resp);
    }
    if !ctx.authorize(Operation::Read, ResourceType::Group, &group) {
        resp.error_code = ResponseError::GroupAuthorizationFailed.code();
        return ctx.reply(&resp);
    }
    if let Err(e) = ctx.broker.groups.check_group(&group) {
        resp.error_code = e.code();
        return ctx.reply(&resp);
    }
    let ctx = ctx.clone();
    Ok(Reply::Later(Box::pin(async move {
        if let Err(e) = ctx
            .broker
            .txn
            .add_offsets(&id, req.producer_id.0, req.producer_epoch, &group)
            .await
        {
            resp.error_code = super::fenced_for_version(e, ctx.version, 2).code();
        }
        Some(ctx.encode(&resp))
    })))
}
