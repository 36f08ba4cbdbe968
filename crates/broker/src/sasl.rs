//! One connection's authentication: the SASL sequence (SaslHandshake, then
//! tokens in SaslAuthenticate, or raw after a v0 handshake), KIP-368
//! re-authentication, and what a connection may send before it is done.
//!
//! Mechanisms: PLAIN (verified against the user's SCRAM credential, so one
//! user store serves both) and SCRAM-SHA-256/512. A failure of any kind
//! answers SASL_AUTHENTICATION_FAILED with the same message after the same
//! delay, so an unknown user and a wrong password look alike.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use herald_security::scram::{self, ScramCredential, ScramMechanism, ScramServer};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};

use crate::handlers::{encode_response, sb};
use crate::security::Security;

/// What the connection does after an authentication step.
pub enum Step {
    /// Send this frame and go on.
    Reply(Bytes),
    /// Send this frame, then close.
    ReplyAndClose(Bytes),
}

#[derive(Clone, Copy, Debug)]
enum Mechanism {
    Plain,
    Scram(ScramMechanism),
}

impl Mechanism {
    fn parse(name: &str) -> Option<Mechanism> {
        if name == "PLAIN" {
            return Some(Mechanism::Plain);
        }
        ScramMechanism::from_name(name).map(Mechanism::Scram)
    }
}

enum Pending {
    /// No exchange in progress.
    Idle,
    /// After SaslHandshake; the first token is next. `raw`: handshake v0,
    /// so tokens come as bare size-prefixed frames.
    Handshaken { mechanism: Mechanism, raw: bool },
    /// SCRAM between server-first and client-final.
    Scram { server: Box<ScramServer>, raw: bool },
}

pub struct Authentication {
    /// The listener is SASL_PLAINTEXT or SASL_SSL.
    sasl: bool,
    pub principal: Arc<str>,
    authenticated: bool,
    /// KIP-368: the session ends here; the client must re-authenticate first.
    expires: Option<Instant>,
    pending: Pending,
    /// ApiVersions requests seen before authentication (bounded).
    api_versions_before_auth: u32,
    /// The mechanism of the last successful authentication: KIP-368
    /// re-authentication must use the same one.
    mechanism: Option<&'static str>,
}

/// A client may retry ApiVersions (KIP-511 downgrade) but not loop on it.
const API_VERSIONS_BEFORE_AUTH_MAX: u32 = 4;
const AUTH_FAILED_MESSAGE: &str = "Authentication failed: Invalid username or password";

impl Authentication {
    /// `principal`: ANONYMOUS, or the client certificate's on an SSL listener.
    pub fn new(sasl: bool, principal: Arc<str>) -> Authentication {
        Authentication {
            sasl,
            principal,
            authenticated: !sasl,
            expires: None,
            pending: Pending::Idle,
            api_versions_before_auth: 0,
            mechanism: None,
        }
    }

    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// A v0 handshake was made: the next frame is a bare token.
    pub fn expects_raw_token(&self) -> bool {
        matches!(
            self.pending,
            Pending::Handshaken { raw: true, .. } | Pending::Scram { raw: true, .. }
        )
    }

    /// Why `api_key` may not be served now, if it may not.
    pub fn refuse(&mut self, api_key: ApiKey) -> Option<&'static str> {
        if matches!(api_key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) {
            return None;
        }
        if !self.authenticated {
            if api_key == ApiKey::ApiVersions
                && self.api_versions_before_auth < API_VERSIONS_BEFORE_AUTH_MAX
            {
                self.api_versions_before_auth += 1;
                return None;
            }
            return Some("request before SASL authentication");
        }
        if self.expires.is_some_and(|e| Instant::now() >= e) {
            return Some("SASL session expired without re-authentication");
        }
        None
    }

    pub fn handshake(
        &mut self,
        security: &Security,
        correlation_id: i32,
        version: i16,
        req: SaslHandshakeRequest,
    ) -> Step {
        let mut resp = SaslHandshakeResponse::default();
        resp.mechanisms = security
            .config
            .sasl_mechanisms
            .iter()
            .map(|m| sb(m.clone()))
            .collect();
        let encode = |resp: &SaslHandshakeResponse| {
            encode_response(correlation_id, ApiKey::SaslHandshake, version, resp)
        };
        // Not on a SASL listener, or in the middle of an exchange.
        if !self.sasl || !matches!(self.pending, Pending::Idle) {
            resp.error_code = ResponseError::IllegalSaslState.code();
            return Step::ReplyAndClose(encode(&resp));
        }
        // KIP-368: re-authentication needs the v1 sequence.
        if self.authenticated && version == 0 {
            resp.error_code = ResponseError::IllegalSaslState.code();
            return Step::ReplyAndClose(encode(&resp));
        }
        let name = req.mechanism.as_str();
        if self.authenticated && self.mechanism.is_some_and(|m| m != name) {
            resp.error_code = ResponseError::UnsupportedSaslMechanism.code();
            tracing::info!(
                mechanism = name,
                "re-authentication with another mechanism refused"
            );
            return Step::ReplyAndClose(encode(&resp));
        }
        match Mechanism::parse(name).filter(|_| security.mechanism_enabled(name)) {
            Some(mechanism) => {
                self.pending = Pending::Handshaken {
                    mechanism,
                    raw: version == 0,
                };
                Step::Reply(encode(&resp))
            }
            None => {
                resp.error_code = ResponseError::UnsupportedSaslMechanism.code();
                tracing::info!(
                    mechanism = name,
                    "SASL handshake with an unsupported mechanism"
                );
                Step::ReplyAndClose(encode(&resp))
            }
        }
    }

    /// A SaslAuthenticate request.
    pub async fn authenticate(
        &mut self,
        security: &Security,
        peer: &str,
        correlation_id: i32,
        version: i16,
        req: SaslAuthenticateRequest,
    ) -> Step {
        let encode = move |resp: &SaslAuthenticateResponse| {
            encode_response(correlation_id, ApiKey::SaslAuthenticate, version, resp)
        };
        if matches!(self.pending, Pending::Idle) || self.expects_raw_token() {
            let mut resp = SaslAuthenticateResponse::default();
            resp.error_code = ResponseError::IllegalSaslState.code();
            resp.error_message = Some(sb("SaslAuthenticate before SaslHandshake"));
            return Step::ReplyAndClose(encode(&resp));
        }
        let started = tokio::time::Instant::now();
        let outcome = self.step(security, peer, &req.auth_bytes).await;
        let mut resp = SaslAuthenticateResponse::default();
        match outcome {
            Ok((bytes, done)) => {
                resp.auth_bytes = bytes;
                if done && version >= 1 {
                    resp.session_lifetime_ms = security.config.reauth_max.as_millis() as i64;
                }
                Step::Reply(encode(&resp))
            }
            Err(()) => {
                // Answered at a fixed time after the token arrived, whatever
                // work the failure took (PBKDF2 of another cost, an unknown user).
                tokio::time::sleep_until(started + security.config.auth_failure_delay).await;
                resp.error_code = ResponseError::SaslAuthenticationFailed.code();
                resp.error_message = Some(sb(AUTH_FAILED_MESSAGE));
                Step::ReplyAndClose(encode(&resp))
            }
        }
    }

    /// A bare token after a v0 handshake; the answer is a bare token too. A
    /// failure closes the connection (v0 has no way to carry an error).
    pub async fn raw_token(
        &mut self,
        security: &Security,
        peer: &str,
        token: Bytes,
    ) -> Option<Bytes> {
        let started = tokio::time::Instant::now();
        match self.step(security, peer, &token).await {
            Ok((bytes, _)) => {
                let mut out = BytesMut::with_capacity(4 + bytes.len());
                out.put_i32(bytes.len() as i32);
                out.put_slice(&bytes);
                Some(out.freeze())
            }
            Err(()) => {
                tokio::time::sleep_until(started + security.config.auth_failure_delay).await;
                None
            }
        }
    }

    /// One token of the exchange: Ok((answer, finished)) or Err (failed, logged).
    async fn step(
        &mut self,
        security: &Security,
        peer: &str,
        token: &[u8],
    ) -> Result<(Bytes, bool), ()> {
        match std::mem::replace(&mut self.pending, Pending::Idle) {
            Pending::Idle => Err(()),
            Pending::Handshaken {
                mechanism: Mechanism::Plain,
                ..
            } => {
                let parsed = match herald_security::plain::parse(token) {
                    Ok(p) => p,
                    Err(e) => {
                        security.authentication_failed(peer, "PLAIN", "", &e.to_string());
                        return Err(());
                    }
                };
                let ok = verify_user_password(security, &parsed.username, parsed.password).await;
                if !ok {
                    security.authentication_failed(
                        peer,
                        "PLAIN",
                        &parsed.username,
                        "invalid username or password",
                    );
                    return Err(());
                }
                self.succeed(security, peer, &parsed.username, "PLAIN")?;
                Ok((Bytes::new(), true))
            }
            Pending::Handshaken {
                mechanism: Mechanism::Scram(m),
                raw,
            } => {
                let first = match scram::parse_client_first(token) {
                    Ok(f) => f,
                    Err(e) => {
                        security.authentication_failed(peer, m.name(), "", &e.to_string());
                        return Err(());
                    }
                };
                if first.token_auth {
                    security.authentication_failed(
                        peer,
                        m.name(),
                        &first.username,
                        "delegation tokens are not supported",
                    );
                    return Err(());
                }
                let cred = security.credential(&first.username, m);
                let (server, answer) = ScramServer::start(m, first, cred, &security.secret);
                self.pending = Pending::Scram {
                    server: Box::new(server),
                    raw,
                };
                Ok((Bytes::from(answer), false))
            }
            Pending::Scram { server, .. } => {
                let user = server.username().to_string();
                let mechanism = server.mechanism().name();
                match server.finish(token) {
                    Ok(answer) => {
                        self.succeed(security, peer, &user, mechanism)?;
                        Ok((Bytes::from(answer), true))
                    }
                    Err(e) => {
                        security.authentication_failed(peer, mechanism, &user, &e.to_string());
                        Err(())
                    }
                }
            }
        }
    }

    fn succeed(
        &mut self,
        security: &Security,
        peer: &str,
        user: &str,
        mechanism: &str,
    ) -> Result<(), ()> {
        let principal = format!("User:{user}");
        // KIP-368: re-authentication may not change who the connection is.
        if self.authenticated && self.sasl && *self.principal != *principal {
            security.authentication_failed(
                peer,
                mechanism,
                user,
                "re-authentication as a different principal",
            );
            return Err(());
        }
        self.principal = principal.into();
        self.authenticated = true;
        self.mechanism = Some(match mechanism {
            "PLAIN" => "PLAIN",
            "SCRAM-SHA-256" => "SCRAM-SHA-256",
            _ => "SCRAM-SHA-512",
        });
        let reauth = security.config.reauth_max;
        self.expires = (reauth > Duration::ZERO).then(|| Instant::now() + reauth);
        tracing::debug!(peer, user, mechanism, "authenticated");
        Ok(())
    }
}

/// Checks a username and password as SASL/PLAIN does, against the user's
/// SCRAM credential (the console's login uses it too).
pub async fn verify_user_password(security: &Security, username: &str, password: Vec<u8>) -> bool {
    let creds = security
        .credential(username, ScramMechanism::Sha512)
        .or_else(|| security.credential(username, ScramMechanism::Sha256));
    verify_plain(creds, password, &security.secret).await
}

/// PBKDF2 with thousands of iterations takes milliseconds: off the reactor.
/// An unknown user is checked against a throwaway credential so that the
/// work, and the time, is the same.
async fn verify_plain(cred: Option<ScramCredential>, password: Vec<u8>, secret: &[u8; 32]) -> bool {
    let secret = *secret;
    tokio::task::spawn_blocking(move || match cred {
        Some(c) => c.verify_password(&password),
        None => {
            let dummy = ScramCredential::from_salted_password(
                ScramMechanism::Sha512,
                &[0u8; 64],
                secret[..16].to_vec(),
                scram::ITERATIONS_MIN,
            );
            let _ = dummy.verify_password(&password);
            false
        }
    })
    .await
    .unwrap_or(false)
}
