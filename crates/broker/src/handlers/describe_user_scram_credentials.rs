//! DescribeUserScramCredentials (key 50, KIP-554): each user's mechanisms and
//! iterations, never a secret. Needs DESCRIBE on the cluster.

use std::collections::HashSet;

use herald_security::acl::Operation;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;

pub fn handle(ctx: &Ctx, req: DescribeUserScramCredentialsRequest) -> Result<Reply, ProtocolError> {
    let mut resp = DescribeUserScramCredentialsResponse::default();
    if !ctx.authorize_cluster(Operation::Describe) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        resp.error_message = Some(sb("Authorization failed."));
        return ctx.reply(&resp);
    }
    let state = ctx.broker.security.state();
    let result = |user: &str| {
        let mut r = DescribeUserScramCredentialsResult::default();
        r.user = sb(user);
        match state.users.get(user) {
            Some(creds) => {
                r.credential_infos = creds
                    .iter()
                    .map(|c| {
                        let mut i = CredentialInfo::default();
                        i.mechanism = c.mechanism.kafka_type();
                        i.iterations = c.iterations as i32;
                        i
                    })
                    .collect();
            }
            None => {
                r.error_code = ResponseError::ResourceNotFound.code();
                r.error_message = Some(sb(format!(
                    "Attempt to describe a user credential that does not exist: {user}"
                )));
            }
        }
        r
    };
    resp.results = match &req.users {
        // Null or empty: every user.
        None => state.users.keys().map(|u| result(u)).collect(),
        Some(users) if users.is_empty() => state.users.keys().map(|u| result(u)).collect(),
        Some(users) => {
            let names: Vec<String> = users.iter().map(|u| s(&u.name)).collect();
            let mut seen = HashSet::new();
            let dups: HashSet<&String> = names.iter().filter(|n| !seen.insert(*n)).collect();
            let mut done = HashSet::new();
            names
                .iter()
                .filter(|n| done.insert(*n))
                .map(|n| {
                    if dups.contains(n) {
                        let mut r = DescribeUserScramCredentialsResult::default();
                        r.user = sb(n.clone());
                        r.error_code = ResponseError::DuplicateResource.code();
                        r.error_message = Some(sb(format!("Cannot describe the user {n} twice")));
                        r
                    } else {
                        result(n)
                    }
                })
                .collect()
        }
    };
    ctx.reply(&resp)
}
