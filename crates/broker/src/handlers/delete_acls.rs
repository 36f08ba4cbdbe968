//! DeleteAcls (key 31): removes the bindings each filter selects, durably, in
//! one change; answers which were removed. Needs ALTER on the cluster.

use herald_security::acl::{AclBinding, AclFilter, Operation};
use herald_security::store::Change;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;

/// Filters one request may carry.
const FILTERS_MAX: usize = 1000;

pub fn handle(ctx: &Ctx, req: DeleteAclsRequest) -> Result<Reply, ProtocolError> {
    if req.filters.len() > FILTERS_MAX {
        // Absurd counts close the connection instead of costing work.
        return Err(ProtocolError::Malformed {
            api_key: ctx.api_key as i16,
            version: ctx.version,
            reason: format!("{} entries, more than {FILTERS_MAX}", req.filters.len()),
        });
    }
    super::reply_later(ctx, |ctx| async move { answer(&ctx, req).await })
}

fn failed(code: ResponseError, message: impl Into<String>) -> DeleteAclsFilterResult {
    let mut r = DeleteAclsFilterResult::default();
    r.error_code = code.code();
    r.error_message = Some(sb(message.into()));
    r
}

async fn answer(ctx: &Ctx, req: DeleteAclsRequest) -> DeleteAclsResponse {
    let mut resp = DeleteAclsResponse::default();
    let n = req.filters.len();
    let Some(authorizer) = &ctx.broker.security.authorizer else {
        resp.filter_results = vec![
            failed(
                ResponseError::SecurityDisabled,
                "no authorizer is configured on the broker (--authorizer acl)"
            );
            n
        ];
        return resp;
    };
    if !ctx.authorize_cluster(Operation::Alter) {
        resp.filter_results = vec![
            failed(
                ResponseError::ClusterAuthorizationFailed,
                "Authorization failed."
            );
            n
        ];
        return resp;
    }
    if n > FILTERS_MAX {
        resp.filter_results = vec![
            failed(
                ResponseError::InvalidRequest,
                format!("at most {FILTERS_MAX} filters per request")
            );
            n
        ];
        return resp;
    }
    let current = authorizer.acls();
    let selected: Vec<Result<Vec<AclBinding>, String>> = req
        .filters
        .iter()
        .map(|f| {
            let filter = AclFilter::from_wire(
                f.resource_type_filter,
                f.resource_name_filter.as_ref().map(s),
                f.pattern_type_filter,
                f.principal_filter.as_ref().map(s),
                f.host_filter.as_ref().map(s),
                f.operation,
                f.permission_type,
            )
            .map_err(|e| e.to_string())?;
            Ok(current
                .iter()
                .filter(|b| filter.matches(b))
                .cloned()
                .collect())
        })
        .collect();
    let mut doomed: Vec<AclBinding> = selected
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .flatten()
        .cloned()
        .collect();
    doomed.sort();
    doomed.dedup();
    let stored = if doomed.is_empty() {
        Ok(())
    } else {
        ctx.broker
            .security
            .apply(vec![Change::DeleteAcls(doomed.clone())])
            .await
    };
    if stored.is_ok() && !doomed.is_empty() {
        tracing::info!(principal = %ctx.principal, count = doomed.len(), "ACLs deleted");
    }
    resp.filter_results = selected
        .into_iter()
        .map(|r| match (r, &stored) {
            (Err(why), _) => failed(ResponseError::InvalidRequest, why),
            (Ok(_), Err(e)) => failed(
                ResponseError::UnknownServerError,
                format!("storing ACLs failed: {e}"),
            ),
            (Ok(bindings), Ok(())) => {
                let mut fr = DeleteAclsFilterResult::default();
                // Kafka answers null on success (ApiError.NONE); the crate's default is "".
                fr.error_message = None;
                fr.matching_acls = bindings
                    .into_iter()
                    .map(|b| {
                        let mut m = DeleteAclsMatchingAcl::default();
                        m.error_message = None;
                        m.resource_type = b.resource_type.code();
                        m.resource_name = sb(b.resource_name);
                        m.pattern_type = b.pattern_type.code();
                        m.principal = sb(b.principal);
                        m.host = sb(b.host);
                        m.operation = b.operation.code();
                        m.permission_type = b.permission.code();
                        m
                    })
                    .collect();
                fr
            }
        })
        .collect();
    resp
}
