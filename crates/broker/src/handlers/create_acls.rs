//! CreateAcls (key 30): adds ACL bindings, durably, all valid ones in one
//! change. Needs ALTER on the cluster; without an authorizer: SECURITY_DISABLED.

use herald_security::acl::{AclBinding, Operation, PatternType, Permission, ResourceType};
use herald_security::store::Change;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;

/// Bindings one request may create.
const CREATIONS_MAX: usize = 1000;

pub fn handle(ctx: &Ctx, req: CreateAclsRequest) -> Result<Reply, ProtocolError> {
    if req.creations.len() > CREATIONS_MAX {
        // Absurd counts close the connection instead of costing work.
        return Err(ProtocolError::Malformed {
            api_key: ctx.api_key as i16,
            version: ctx.version,
            reason: format!("{} entries, more than {CREATIONS_MAX}", req.creations.len()),
        });
    }
    super::reply_later(ctx, |ctx| async move { answer(&ctx, req).await })
}

fn failed(code: ResponseError, message: impl Into<String>) -> AclCreationResult {
    let mut r = AclCreationResult::default();
    r.error_code = code.code();
    r.error_message = Some(sb(message.into()));
    r
}

/// A wire creation as a binding, or why not.
pub fn binding(
    resource_type: i8,
    resource_name: String,
    pattern_type: i8,
    principal: String,
    host: String,
    operation: i8,
    permission: i8,
) -> Result<AclBinding, String> {
    let b = AclBinding {
        resource_type: ResourceType::from_code(resource_type)
            .ok_or_else(|| format!("invalid resource type {resource_type}"))?,
        resource_name,
        pattern_type: PatternType::from_code(pattern_type)
            .ok_or_else(|| format!("invalid pattern type {pattern_type}"))?,
        principal,
        host,
        operation: Operation::from_code(operation)
            .ok_or_else(|| format!("invalid operation {operation}"))?,
        permission: Permission::from_code(permission)
            .ok_or_else(|| format!("invalid permission type {permission}"))?,
    };
    b.validate().map_err(|e| e.to_string())?;
    Ok(b)
}

async fn answer(ctx: &Ctx, req: CreateAclsRequest) -> CreateAclsResponse {
    let mut resp = CreateAclsResponse::default();
    let all = |r: AclCreationResult| vec![r; req.creations.len()];
    if ctx.broker.security.authorizer.is_none() {
        resp.results = all(failed(
            ResponseError::SecurityDisabled,
            "no authorizer is configured on the broker (--authorizer acl)",
        ));
        return resp;
    }
    if !ctx.authorize_cluster(Operation::Alter) {
        resp.results = all(failed(
            ResponseError::ClusterAuthorizationFailed,
            "Authorization failed.",
        ));
        return resp;
    }
    if req.creations.len() > CREATIONS_MAX {
        resp.results = all(failed(
            ResponseError::InvalidRequest,
            format!("at most {CREATIONS_MAX} ACLs per request"),
        ));
        return resp;
    }
    let parsed: Vec<Result<AclBinding, String>> = req
        .creations
        .iter()
        .map(|c| {
            binding(
                c.resource_type,
                s(&c.resource_name),
                c.resource_pattern_type,
                s(&c.principal),
                s(&c.host),
                c.operation,
                c.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclBinding> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let stored = if valid.is_empty() {
        Ok(())
    } else {
        ctx.broker
            .security
            .apply(vec![Change::CreateAcls(valid.clone())])
            .await
    };
    if stored.is_ok() && !valid.is_empty() {
        tracing::info!(principal = %ctx.principal, count = valid.len(), "ACLs created");
    }
    resp.results = parsed
        .into_iter()
        .map(|p| match (p, &stored) {
            (Err(why), _) => failed(ResponseError::InvalidRequest, why),
            (Ok(_), Err(e)) => {
                tracing::error!(error = %e, "storing ACLs failed");
                failed(
                    ResponseError::UnknownServerError,
                    format!("storing ACLs failed: {e}"),
                )
            }
            (Ok(_), Ok(())) => AclCreationResult::default(),
        })
        .collect();
    resp
}
