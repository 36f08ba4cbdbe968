//! The broker's security state: users' SCRAM credentials and ACLs (a snapshot
//! of the store, reloaded when it changes), the authorizer, the TLS context
//! and the principal mapping of client certificates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use herald_security::acl::{Authorizer, Operation, ResourceType};
use herald_security::principal::PrincipalMapper;
use herald_security::scram::{ScramCredential, ScramMechanism};
use herald_security::store::{Change, SecurityState, SecurityStore};
use herald_security::tls::TlsContext;

use crate::config::SecurityConfig;
pub use crate::rate_limited_log::RateLimitedLog;

pub struct Security {
    pub config: SecurityConfig,
    store: Arc<dyn SecurityStore>,
    state: RwLock<Arc<SecurityState>>,
    /// Serialises load-and-install, so an older read never replaces a newer one.
    reloading: tokio::sync::Mutex<()>,
    /// A reload failed (the store was unreachable): retried on the next tick.
    pub reload_needed: std::sync::atomic::AtomicBool,
    /// None: no authorizer configured; every request is allowed.
    pub authorizer: Option<Authorizer>,
    /// SSL listeners' TLS (with `ssl.client.auth`).
    pub tls: Option<Arc<TlsContext>>,
    /// SASL_SSL listeners' TLS: as Kafka, the broker-wide `ssl.client.auth`
    /// does not apply to them (SASL names the client), so no client
    /// certificate is asked for.
    pub tls_sasl: Option<Arc<TlsContext>>,
    pub mapper: PrincipalMapper,
    /// Derives the fake salts of unknown users (so they look like known ones).
    pub secret: [u8; 32],
    pub auth_failures_total: AtomicU64,
    pub authorization_denials_total: AtomicU64,
    denial_log: RateLimitedLog,
    failure_log: RateLimitedLog,
    tls_log: RateLimitedLog,
    /// Connections refused over `connections_max`.
    pub connection_refusals: RateLimitedLog,
    pub tls_failures_total: AtomicU64,
}

impl Security {
    pub fn new(config: &SecurityConfig, store: Arc<dyn SecurityStore>) -> anyhow::Result<Security> {
        let tls = match &config.tls {
            Some(t) => Some(TlsContext::load(t.clone())?),
            None => None,
        };
        let tls_sasl = match &config.tls {
            Some(t) if t.client_auth != herald_security::tls::ClientAuth::None => {
                Some(TlsContext::load(herald_security::tls::TlsSettings {
                    client_auth: herald_security::tls::ClientAuth::None,
                    ..t.clone()
                })?)
            }
            _ => tls.clone(),
        };
        let mapper = PrincipalMapper::parse(&config.principal_mapping_rules)?;
        for m in &config.sasl_mechanisms {
            anyhow::ensure!(
                crate::config::SASL_MECHANISMS.contains(&m.as_str()),
                "SASL mechanism {m} is not supported (supported: {})",
                crate::config::SASL_MECHANISMS.join(", ")
            );
        }
        for u in &config.super_users {
            anyhow::ensure!(
                u.strip_prefix("User:").is_some_and(|n| !n.is_empty()),
                "super user {u:?} is not of the form User:NAME"
            );
        }
        let authorizer = config.authorizer.then(|| {
            Authorizer::new(
                config.super_users.clone(),
                config.allow_everyone_if_no_acl_found,
            )
        });
        Ok(Security {
            config: config.clone(),
            store,
            state: RwLock::new(Arc::new(SecurityState::default())),
            reloading: tokio::sync::Mutex::new(()),
            reload_needed: std::sync::atomic::AtomicBool::new(false),
            authorizer,
            tls,
            tls_sasl,
            mapper,
            secret: herald_security::random_bytes(),
            auth_failures_total: AtomicU64::new(0),
            authorization_denials_total: AtomicU64::new(0),
            denial_log: RateLimitedLog::new(),
            failure_log: RateLimitedLog::new(),
            tls_log: RateLimitedLog::new(),
            connection_refusals: RateLimitedLog::new(),
            tls_failures_total: AtomicU64::new(0),
        })
    }

    /// Reads users and ACLs from the store and installs them (ACLs and
    /// users from the same read). On failure the old snapshot stays and
    /// `reload_needed` makes the broker retry.
    pub async fn reload(&self) -> std::io::Result<()> {
        let _one_at_a_time = self.reloading.lock().await;
        let state = match self.store.load().await {
            Ok(s) => s,
            Err(e) => {
                self.reload_needed.store(true, Ordering::Relaxed);
                return Err(e);
            }
        };
        if let Some(a) = &self.authorizer {
            a.replace(state.acls.clone());
        }
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(state);
        self.reload_needed.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Applies changes durably, then reloads. Once the store has the change
    /// the call succeeds; a failed reload after it is retried in the
    /// background (and logged), not reported as a failed change.
    pub async fn apply(&self, changes: Vec<Change>) -> std::io::Result<()> {
        self.store.apply(changes).await?;
        if let Err(e) = self.reload().await {
            tracing::error!(error = %e, "users and ACLs changed, but reloading them failed; retrying");
        }
        Ok(())
    }

    /// Resolves when another broker changed users or ACLs.
    pub fn changed(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        self.store.changed()
    }

    pub fn state(&self) -> Arc<SecurityState> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.state().credential(user, mechanism).cloned()
    }

    pub fn mechanism_enabled(&self, name: &str) -> bool {
        self.config.sasl_mechanisms.iter().any(|m| m == name)
    }

    /// Whether `principal` at `host` may do `operation` on the resource; a
    /// denial is counted and logged (rate-limited).
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let Some(a) = &self.authorizer else {
            return true;
        };
        let allowed = a.authorize(principal, host, operation, resource_type, name);
        if !allowed {
            self.denied(principal, host, operation, resource_type, name);
        }
        allowed
    }

    /// Like `authorize`, without counting or logging a denial: for filtering
    /// (Metadata hiding topics, ListGroups) where a denial is expected.
    pub fn allowed_quietly(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.authorizer
            .as_ref()
            .is_none_or(|a| a.authorize(principal, host, operation, resource_type, name))
    }

    /// KIP-679's check by resource type (an idempotent producer).
    pub fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        self.authorizer
            .as_ref()
            .is_none_or(|a| a.authorize_any(principal, host, operation, resource_type))
    }

    fn denied(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) {
        self.authorization_denials_total
            .fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.denial_log.admit() {
            tracing::info!(
                principal,
                host,
                operation = ?operation,
                resource_type = ?resource_type,
                resource = name,
                suppressed,
                "authorization denied"
            );
        }
    }

    /// Counts and logs (rate-limited) a failed authentication.
    pub fn authentication_failed(&self, peer: &str, mechanism: &str, user: &str, why: &str) {
        self.auth_failures_total.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.failure_log.admit() {
            tracing::info!(
                peer,
                mechanism,
                user,
                reason = why,
                suppressed,
                "authentication failed"
            );
        }
    }
}

impl Security {
    /// Counts and logs (rate-limited) a TLS handshake that failed.
    pub fn tls_handshake_failed(&self, peer: &str, why: &str) {
        self.tls_failures_total.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.tls_log.admit() {
            tracing::info!(peer, reason = why, suppressed, "TLS handshake failed");
        }
    }
}
