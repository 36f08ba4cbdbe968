//! DescribeAcls (key 29): the bindings a filter selects, grouped by resource
//! pattern. Needs DESCRIBE on the cluster.

use std::collections::BTreeMap;

use herald_security::acl::{AclFilter, Operation};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: DescribeAclsRequest) -> Result<Reply, ProtocolError> {
    let mut resp = DescribeAclsResponse::default();
    let fail = |mut resp: DescribeAclsResponse, code: ResponseError, msg: String| {
        resp.error_code = code.code();
        resp.error_message = Some(sb(msg));
        ctx.reply(&resp)
    };
    let Some(authorizer) = &ctx.broker.security.authorizer else {
        return fail(
            resp,
            ResponseError::SecurityDisabled,
            "no authorizer is configured on the broker (--authorizer acl)".into(),
        );
    };
    if !ctx.authorize_cluster(Operation::Describe) {
        return fail(
            resp,
            ResponseError::ClusterAuthorizationFailed,
            "Authorization failed.".into(),
        );
    }
    let filter = match AclFilter::from_wire(
        req.resource_type_filter,
        req.resource_name_filter.as_ref().map(s),
        req.pattern_type_filter,
        req.principal_filter.as_ref().map(s),
        req.host_filter.as_ref().map(s),
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(e) => return fail(resp, ResponseError::InvalidRequest, e.to_string()),
    };
    let mut grouped: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in authorizer.acls().iter().filter(|b| filter.matches(b)) {
        let mut d = AclDescription::default();
        d.principal = sb(b.principal.clone());
        d.host = sb(b.host.clone());
        d.operation = b.operation.code();
        d.permission_type = b.permission.code();
        grouped
            .entry((
                b.resource_type.code(),
                b.resource_name.clone(),
                b.pattern_type.code(),
            ))
            .or_default()
            .push(d);
    }
    resp.resources = grouped
        .into_iter()
        .map(|((rt, name, pt), acls)| {
            let mut r = DescribeAclsResource::default();
            r.resource_type = rt;
            r.resource_name = sb(name);
            r.pattern_type = pt;
            r.acls = acls;
            r
        })
        .collect();
    ctx.reply(&resp)
}
