//! InitProducerId (key 22): hands out producer ids for idempotent producers.
//! A producer that presents its current id and epoch (KIP-360) gets the epoch
//! bumped. With a transactional id the transaction coordinator answers
//! (`txn_coordinator`): same id, bumped epoch, older producers fenced.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: InitProducerIdRequest) -> Result<Reply, ProtocolError> {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if let Some(id) = req.transactional_id.as_ref().map(|t| t.0.to_string()) {
        return transactional(ctx, req, id, resp);
    }
    // KIP-679: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic.
    if !ctx.may(
        Operation::IdempotentWrite,
        ResourceType::Cluster,
        herald_security::acl::CLUSTER_NAME,
    ) && !ctx.broker.security.authorize_any(
        &ctx.principal,
        &ctx.client_ip,
        Operation::Write,
        ResourceType::Topic,
    ) {
        ctx.authorize_cluster(Operation::IdempotentWrite); // counted and logged
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return ctx.reply(&resp);
    }
    let existing = req.producer_id.0;
    if existing >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        resp.producer_id = ProducerId(existing);
        resp.producer_epoch = req.producer_epoch + 1;
        return ctx.reply(&resp);
    }
    let ctx = ctx.clone();
    Ok(Reply::Later(Box::pin(async move {
        match ctx.broker.allocate_producer_id().await {
            Ok(id) => {
                resp.producer_id = ProducerId(id);
                resp.producer_epoch = 0;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot persist the producer id block");
                resp.error_code = ResponseError::KafkaStorageError.code();
            }
        }
        Some(ctx.encode(&resp))
    })))
}

fn transactional(
    ctx: &Ctx,
    req: InitProducerIdRequest,
    id: String,
    mut resp: InitProducerIdResponse,
) -> Result<Reply, ProtocolError> {
    if !ctx.authorize(Operation::Write, ResourceType::TransactionalId, &id) {
        resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return ctx.reply(&resp);
    }
    if !ctx.broker.txn.enabled() {
        tracing::warn!(client = ?ctx.client_id, transactional_id = %id, "refusing a transactional producer: transactions are not supported in cluster mode yet");
        resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return ctx.reply(&resp);
    }
    if id.is_empty() {
        resp.error_code = ResponseError::InvalidRequest.code();
        return ctx.reply(&resp);
    }
    let ctx = ctx.clone();
    Ok(Reply::Later(Box::pin(async move {
        let r = ctx
            .broker
            .txn
            .init_producer_id(
                &ctx.broker,
                &id,
                req.transaction_timeout_ms,
                req.producer_id.0,
                req.producer_epoch,
            )
            .await;
        match r {
            Ok((pid, epoch)) => {
                resp.producer_id = ProducerId(pid);
                resp.producer_epoch = epoch;
            }
            Err(e) => resp.error_code = super::fenced_for_version(e, ctx.version, 4).code(),
        }
        Some(ctx.encode(&resp))
    })))
}
