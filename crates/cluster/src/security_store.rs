//! Users' SCRAM credentials and ACLs in the cluster database, so that every
//! broker authenticates and authorizes alike. A change is one transaction
//! followed by `NOTIFY herald_security`; every broker then reloads its
//! snapshot (and also does so after a reconnect of the LISTEN connection,
//! since notifications sent meanwhile are lost).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use herald_security::acl::{AclBinding, Operation, PatternType, Permission, ResourceType};
use herald_security::scram::{ScramCredential, ScramMechanism};
use herald_security::store::{
    ACLS_MAX, Change, SecurityState, SecurityStore, StoreFuture, USERS_MAX,
};
use tokio::sync::Notify;

pub struct PgSecurityStore {
    pool: deadpool_postgres::Pool,
    changed: Arc<Notify>,
}

impl PgSecurityStore {
    pub fn new(pool: deadpool_postgres::Pool, changed: Arc<Notify>) -> PgSecurityStore {
        PgSecurityStore { pool, changed }
    }
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

// Enums are stored by their serde names ("Topic", "Prefixed", "SCRAM-SHA-512"),
// which is also how security.json spells them on a single node.
fn name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(s: String) -> std::io::Result<T> {
    serde_json::from_value(serde_json::Value::String(s.clone()))
        .map_err(|_| io(format!("unknown value {s:?} in the security tables")))
}

async fn load(pool: &deadpool_postgres::Pool) -> std::io::Result<SecurityState> {
    let client = pool.get().await.map_err(io)?;
    let mut state = SecurityState::default();
    let users = client
        .query(
            "SELECT username, mechanism, salt, iterations, stored_key, server_key
             FROM scram_credentials ORDER BY username, mechanism LIMIT $1",
            &[&(2 * USERS_MAX as i64 + 1)],
        )
        .await
        .map_err(io)?;
    // More rows than the bound: refuse the load (the old snapshot stays)
    // rather than silently drop some, which could drop a DENY.
    if users.len() > 2 * USERS_MAX {
        return Err(io(format!(
            "more than {USERS_MAX} users in the cluster database"
        )));
    }
    for r in users {
        let user: String = r.get(0);
        let mechanism: ScramMechanism = parse(r.get(1))?;
        let iterations: i32 = r.get(3);
        state.upsert_credential(
            &user,
            ScramCredential {
                mechanism,
                salt: r.get(2),
                iterations: iterations.max(0) as u32,
                stored_key: r.get(4),
                server_key: r.get(5),
            },
        );
    }
    let acls = client
        .query(
            "SELECT resource_type, resource_name, pattern_type, principal, host, operation, permission
             FROM acls LIMIT $1",
            &[&(ACLS_MAX as i64 + 1)],
        )
        .await
        .map_err(io)?;
    if acls.len() > ACLS_MAX {
        return Err(io(format!(
            "more than {ACLS_MAX} ACLs in the cluster database"
        )));
    }
    for r in acls {
        let resource_type: ResourceType = parse(r.get(0))?;
        let pattern_type: PatternType = parse(r.get(2))?;
        let operation: Operation = parse(r.get(5))?;
        let permission: Permission = parse(r.get(6))?;
        state.acls.push(AclBinding {
            resource_type,
            resource_name: r.get(1),
            pattern_type,
            principal: r.get(3),
            host: r.get(4),
            operation,
            permission,
        });
    }
    Ok(state)
}

async fn apply(pool: &deadpool_postgres::Pool, changes: Vec<Change>) -> std::io::Result<()> {
    let mut client = pool.get().await.map_err(io)?;
    let tx = client.transaction().await.map_err(io)?;
    // One writer at a time, so the bound checked below holds (READ COMMITTED
    // would let two concurrent transactions each pass it).
    tx.execute("SELECT pg_advisory_xact_lock(7263849150)", &[])
        .await
        .map_err(io)?;
    for c in &changes {
        match c {
            Change::UpsertCredential {
                user,
                credential: k,
            } => {
                tx.execute(
                    "INSERT INTO scram_credentials (username, mechanism, salt, iterations, stored_key, server_key)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (username, mechanism) DO UPDATE
                     SET salt = $3, iterations = $4, stored_key = $5, server_key = $6",
                    &[user, &name(&k.mechanism), &k.salt, &(k.iterations as i32), &k.stored_key, &k.server_key],
                )
                .await
                .map_err(io)?;
            }
            Change::DeleteCredential { user, mechanism } => {
                tx.execute(
                    "DELETE FROM scram_credentials WHERE username = $1 AND mechanism = $2",
                    &[user, &name(mechanism)],
                )
                .await
                .map_err(io)?;
            }
            Change::CreateAcls(acls) => {
                for a in acls {
                    tx.execute(
                        "INSERT INTO acls (resource_type, resource_name, pattern_type, principal, host, operation, permission)
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                        &[&name(&a.resource_type), &a.resource_name, &name(&a.pattern_type), &a.principal, &a.host, &name(&a.operation), &name(&a.permission)],
                    )
                    .await
                    .map_err(io)?;
                }
            }
            Change::DeleteAcls(acls) => {
                for a in acls {
                    tx.execute(
                        "DELETE FROM acls WHERE resource_type = $1 AND resource_name = $2 AND pattern_type = $3
                         AND principal = $4 AND host = $5 AND operation = $6 AND permission = $7",
                        &[&name(&a.resource_type), &a.resource_name, &name(&a.pattern_type), &a.principal, &a.host, &name(&a.operation), &name(&a.permission)],
                    )
                    .await
                    .map_err(io)?;
                }
            }
        }
    }
    let users: i64 = tx
        .query_one(
            "SELECT count(DISTINCT username) FROM scram_credentials",
            &[],
        )
        .await
        .map_err(io)?
        .get(0);
    let acls: i64 = tx
        .query_one("SELECT count(*) FROM acls", &[])
        .await
        .map_err(io)?
        .get(0);
    if users > USERS_MAX as i64 || acls > ACLS_MAX as i64 {
        return Err(io(format!("at most {USERS_MAX} users and {ACLS_MAX} ACLs")));
    }
    tx.execute("NOTIFY herald_security", &[])
        .await
        .map_err(io)?;
    tx.commit().await.map_err(io)
}

impl SecurityStore for PgSecurityStore {
    fn load(&self) -> StoreFuture<SecurityState> {
        let pool = self.pool.clone();
        Box::pin(async move { load(&pool).await })
    }

    fn apply(&self, changes: Vec<Change>) -> StoreFuture<()> {
        let pool = self.pool.clone();
        Box::pin(async move { apply(&pool, changes).await })
    }

    fn changed(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let n = self.changed.clone();
        Box::pin(async move { n.notified().await })
    }
}

/// The cluster's fake-salt secret (created by the first broker to ask), so
/// every broker answers an unknown user with the same salt.
pub async fn shared_secret(pool: &deadpool_postgres::Pool) -> anyhow::Result<[u8; 32]> {
    let client = pool.get().await?;
    let fresh = herald_security::random_bytes::<32>().to_vec();
    client
        .execute(
            "UPDATE cluster SET scram_secret = $1 WHERE id = 1 AND scram_secret IS NULL",
            &[&fresh],
        )
        .await?;
    let stored: Option<Vec<u8>> = client
        .query_one("SELECT scram_secret FROM cluster WHERE id = 1", &[])
        .await?
        .get(0);
    let stored = stored.unwrap_or(fresh);
    let mut out = [0u8; 32];
    anyhow::ensure!(stored.len() == 32, "cluster.scram_secret is not 32 bytes");
    out.copy_from_slice(&stored);
    Ok(out)
}
