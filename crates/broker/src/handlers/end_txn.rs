//! EndTxn (key 26): commit or abort the producer's open transaction. The
//! coordinator makes the decision durable, writes a marker to every partition
//! of the transaction and commits its offsets, then answers.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: EndTxnRequest) -> Result<Reply, ProtocolError> {
    let mut resp = EndTxnResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    let id = req.transactional_id.0.to_string();
    if !ctx.authorize(Operation::Write, ResourceType::TransactionalId, &id) {
        resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return ctx.reply(&resp);
    }
    let ctx = ctx.clone();
    Ok(Reply::Later(Box::pin(async move {
        let broker = ctx.broker.clone();
        match broker
            .txn
            .end_txn(
                &broker,
                &id,
                req.producer_id.0,
                req.producer_epoch,
                req.committed,
            )
            .await
        {
            Ok(()) => {
                resp.producer_id = req.producer_id;
                resp.producer_epoch = req.producer_epoch;
            }
            Err(e) => resp.error_code = super::fenced_for_version(e, ctx.version, 2).code(),
        }
        Some(ctx.encode(&resp))
    })))
}
