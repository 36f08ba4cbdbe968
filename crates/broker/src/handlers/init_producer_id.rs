//! InitProducerId (key 22): hands out producer ids for idempotent producers.
//! A producer that presents its current id and epoch (KIP-360) gets the epoch
//! bumped; transactional ids are refused until transactions are implemented.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: InitProducerIdRequest) -> Result<Reply, ProtocolError> {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if req.transactional_id.is_some() {
        tracing::info!(client = ?ctx.client_id, "refusing a transactional producer: transactions are not implemented");
        resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return ctx.reply(&resp);
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
