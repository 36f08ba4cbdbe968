//! AlterUserScramCredentials (key 51, KIP-554): deletions and upsertions of
//! SCRAM credentials. The client sends the salted password, so the password
//! never reaches the broker; StoredKey and ServerKey are derived here and the
//! salted password is dropped. Needs ALTER on the cluster.

use std::collections::HashMap;

use herald_security::acl::Operation;
use herald_security::scram::{self, ScramCredential, ScramMechanism};
use herald_security::store::Change;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};

use super::{Ctx, Reply, s, sb};
use crate::error::ProtocolError;

/// Changes one request may carry; salts are at most this long.
const ALTERATIONS_MAX: usize = 1000;
const SALT_BYTES_MAX: usize = 1024;

pub fn handle(ctx: &Ctx, req: AlterUserScramCredentialsRequest) -> Result<Reply, ProtocolError> {
    let n = req.deletions.len() + req.upsertions.len();
    if n > ALTERATIONS_MAX {
        // Absurd counts close the connection instead of costing work.
        return Err(ProtocolError::Malformed {
            api_key: ctx.api_key as i16,
            version: ctx.version,
            reason: format!("{n} alterations, more than {ALTERATIONS_MAX}"),
        });
    }
    super::reply_later(ctx, |ctx| async move { answer(&ctx, req).await })
}

async fn answer(
    ctx: &Ctx,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    use ResponseError as E;
    let mut resp = AlterUserScramCredentialsResponse::default();
    // Results per user, in first-seen order; a user's first error wins.
    let mut order: Vec<String> = Vec::new();
    let mut errors: HashMap<String, (E, String)> = HashMap::new();
    let mut listed: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut note = |order: &mut Vec<String>, user: &str, err: Option<(E, String)>| {
        if listed.insert(user.to_string()) {
            order.push(user.to_string());
        }
        if let Some(e) = err {
            errors.entry(user.to_string()).or_insert(e);
        }
    };
    // Authorization first, and in linear time: one result per distinct user.
    if !ctx.authorize_cluster(Operation::Alter) {
        let mut seen = std::collections::HashSet::new();
        resp.results = req
            .deletions
            .iter()
            .map(|d| &d.name)
            .chain(req.upsertions.iter().map(|u| &u.name))
            .filter(|n| seen.insert(n.as_str()))
            .map(|n| {
                let mut r = AlterUserScramCredentialsResult::default();
                r.user = n.clone();
                r.error_code = E::ClusterAuthorizationFailed.code();
                r.error_message = Some(sb("Authorization failed."));
                r
            })
            .collect();
        return resp;
    }
    let state = ctx.broker.security.state();
    let mut changes: Vec<(String, Change)> = Vec::new();
    let mut seen: HashMap<(String, i8), usize> = HashMap::new();
    for d in &req.deletions {
        let user = s(&d.name);
        *seen.entry((user.clone(), d.mechanism)).or_default() += 1;
        let outcome = mechanism_of(&user, d.mechanism).and_then(|m| {
            if state.credential(&user, m).is_none() {
                return Err((
                    E::ResourceNotFound,
                    "Attempt to delete a user credential that does not exist".into(),
                ));
            }
            Ok(Change::DeleteCredential {
                user: user.clone(),
                mechanism: m,
            })
        });
        match outcome {
            Ok(change) => {
                changes.push((user.clone(), change));
                note(&mut order, &user, None);
            }
            Err(e) => note(&mut order, &user, Some(e)),
        }
    }
    for u in &req.upsertions {
        let user = s(&u.name);
        *seen.entry((user.clone(), u.mechanism)).or_default() += 1;
        let outcome = mechanism_of(&user, u.mechanism).and_then(|m| {
            let iterations = scram::ITERATIONS_MIN as i32..=scram::ITERATIONS_MAX as i32;
            if !iterations.contains(&u.iterations) {
                return Err((
                    E::UnacceptableCredential,
                    format!(
                        "Iterations must be in {}..={}",
                        scram::ITERATIONS_MIN,
                        scram::ITERATIONS_MAX
                    ),
                ));
            }
            if u.salt.is_empty() || u.salt.len() > SALT_BYTES_MAX {
                return Err((E::UnacceptableCredential, "Salt must not be empty".into()));
            }
            if u.salted_password.len() != m.digest_bytes() {
                return Err((
                    E::UnacceptableCredential,
                    "Salted password has the wrong length for the mechanism".into(),
                ));
            }
            Ok(Change::UpsertCredential {
                user: user.clone(),
                credential: ScramCredential::from_salted_password(
                    m,
                    &u.salted_password,
                    u.salt.to_vec(),
                    u.iterations as u32,
                ),
            })
        });
        match outcome {
            Ok(change) => {
                changes.push((user.clone(), change));
                note(&mut order, &user, None);
            }
            Err(e) => note(&mut order, &user, Some(e)),
        }
    }
    // A user named twice for one mechanism: all its alterations are refused.
    for ((user, _), n) in &seen {
        if *n > 1 {
            errors.insert(
                user.clone(),
                (
                    E::DuplicateResource,
                    "A user credential cannot be altered twice in the same request".into(),
                ),
            );
        }
    }
    let changes: Vec<Change> = changes
        .into_iter()
        .filter(|(u, _)| !errors.contains_key(u))
        .map(|(_, c)| c)
        .collect();
    let stored = if changes.is_empty() {
        Ok(())
    } else {
        ctx.broker.security.apply(changes).await
    };
    if let Err(e) = &stored {
        tracing::error!(error = %e, "storing SCRAM credentials failed");
    }
    resp.results = order
        .into_iter()
        .map(|user| {
            let mut r = AlterUserScramCredentialsResult::default();
            // Kafka answers null on success; the crate's default is "".
            r.error_message = None;
            match errors.get(&user) {
                Some((code, msg)) => {
                    r.error_code = code.code();
                    r.error_message = Some(sb(msg.clone()));
                }
                None => {
                    if let Err(e) = &stored {
                        r.error_code = E::UnknownServerError.code();
                        r.error_message = Some(sb(format!("storing credentials failed: {e}")));
                    } else {
                        tracing::info!(principal = %ctx.principal, user = %user, "SCRAM credentials altered");
                    }
                }
            }
            r.user = sb(user);
            r
        })
        .collect();
    resp
}

/// The checks deletions and upsertions share: a user name, a known mechanism.
fn mechanism_of(user: &str, mechanism: i8) -> Result<ScramMechanism, (ResponseError, String)> {
    if user.is_empty() {
        return Err((
            ResponseError::UnacceptableCredential,
            "Username must not be empty".into(),
        ));
    }
    ScramMechanism::from_kafka_type(mechanism).ok_or((
        ResponseError::UnsupportedSaslMechanism,
        "Unknown SCRAM mechanism".into(),
    ))
}
