//! FindCoordinator (key 10): the coordinator of a group (key type 0) or a
//! transactional id (key type 1) is a rendezvous hash of the key over the live
//! brokers (`Broker::coordinator_for`); a single node is its own. v4+ batches keys.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use herald_security::acl::{Operation, ResourceType};

use super::{Ctx, Reply, sb};
use crate::error::ProtocolError;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub fn handle(ctx: &Ctx, req: FindCoordinatorRequest) -> Result<Reply, ProtocolError> {
    let broker = &ctx.broker;
    let key_type_ok = matches!(req.key_type, KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION);
    let mut resp = FindCoordinatorResponse::default();
    if ctx.version >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let mut c = Coordinator::default();
                c.key = k.clone();
                if key_type_ok && !authorized(ctx, req.key_type, k.as_str()) {
                    c.node_id = BrokerId(-1);
                    c.port = -1;
                    c.error_code = denied_code(req.key_type);
                } else if key_type_ok {
                    let b = broker.coordinator_for(k.as_str());
                    match b.endpoint(&ctx.listener) {
                        Some((host, port)) => {
                            c.node_id = BrokerId(b.node_id);
                            c.host = sb(host);
                            c.port = port;
                        }
                        None => {
                            c.node_id = BrokerId(-1);
                            c.port = -1;
                            c.error_code = ResponseError::CoordinatorNotAvailable.code();
                        }
                    }
                } else {
                    c.node_id = BrokerId(-1);
                    c.port = -1;
                    c.error_code = ResponseError::InvalidRequest.code();
                    c.error_message = Some(sb(format!("unsupported key type {}", req.key_type)));
                }
                c
            })
            .collect();
    } else if key_type_ok && !authorized(ctx, req.key_type, req.key.as_str()) {
        resp.node_id = BrokerId(-1);
        resp.port = -1;
        resp.error_code = denied_code(req.key_type);
    } else if key_type_ok {
        let b = broker.coordinator_for(req.key.as_str());
        match b.endpoint(&ctx.listener) {
            Some((host, port)) => {
                resp.node_id = BrokerId(b.node_id);
                resp.host = sb(host);
                resp.port = port;
                // Kafka's v1-3 answer carries Errors.NONE.message(), "NONE".
                if ctx.version >= 1 {
                    resp.error_message = Some(sb("NONE"));
                }
            }
            None => {
                resp.node_id = BrokerId(-1);
                resp.port = -1;
                resp.error_code = ResponseError::CoordinatorNotAvailable.code();
            }
        }
    } else {
        resp.node_id = BrokerId(-1);
        resp.port = -1;
        resp.error_code = ResponseError::InvalidRequest.code();
        if ctx.version >= 1 {
            resp.error_message = Some(sb(format!("unsupported key type {}", req.key_type)));
        }
    }
    ctx.reply(&resp)
}

/// DESCRIBE on the group or transactional id the key names.
fn authorized(ctx: &Ctx, key_type: i8, key: &str) -> bool {
    let resource = if key_type == KEY_TYPE_GROUP {
        ResourceType::Group
    } else {
        ResourceType::TransactionalId
    };
    ctx.authorize(Operation::Describe, resource, key)
}

fn denied_code(key_type: i8) -> i16 {
    if key_type == KEY_TYPE_GROUP {
        ResponseError::GroupAuthorizationFailed.code()
    } else {
        ResponseError::TransactionalIdAuthorizationFailed.code()
    }
}
