//! Who is calling: login, sessions, and CSRF protection.
//!
//! With SASL listeners configured, the console requires a login with the
//! same credentials as Kafka clients (checked as SASL/PLAIN checks them,
//! against the user's SCRAM credential) and acts as that principal; without,
//! it acts as `User:ANONYMOUS`, as a client of a PLAINTEXT listener would.
//! A session is a random cookie (HttpOnly, SameSite=Strict). Every mutating
//! request must carry the session's CSRF token in `X-Herald-CSRF` (a page on
//! another site cannot read it) and, when the browser sends an Origin, come
//! from this server's own origin.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use herald_broker::Broker;

use super::error::{ApiError, ApiResult};
use crate::AppState;
use crate::kafka::KafkaClient;

pub const SESSION_COOKIE: &str = "herald_session";
pub const CSRF_HEADER: &str = "x-herald-csrf";
/// Sessions kept at once; the least recently used goes first beyond it.
pub const SESSIONS_MAX: usize = 1024;
/// A session unused this long is forgotten.
pub const SESSION_IDLE_MAX: Duration = Duration::from_secs(8 * 3600);
/// Longest username and password a login may send.
const CREDENTIAL_BYTES_MAX: usize = 1024;

struct Session {
    principal: Arc<str>,
    csrf: String,
    last_used: Instant,
}

/// The sessions of one HTTP server.
pub struct Sessions {
    /// Whether a login is required (SASL listeners are configured).
    pub auth_required: bool,
    /// Served over HTTPS: cookies are `Secure`.
    pub https: bool,
    map: Mutex<HashMap<String, Session>>,
}

fn random_token() -> String {
    herald_security::random_bytes::<32>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Sessions {
    pub fn new(broker: &Broker, https: bool) -> Sessions {
        Sessions {
            https,
            auth_required: broker
                .config
                .effective_listeners()
                .iter()
                .any(|l| l.protocol.sasl()),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn create(&self, principal: &str) -> (String, String) {
        let id = random_token();
        let csrf = random_token();
        let Ok(mut map) = self.map.lock() else {
            return (id, csrf);
        };
        map.retain(|_, s| s.last_used.elapsed() < SESSION_IDLE_MAX);
        if map.len() >= SESSIONS_MAX
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Session {
                principal: Arc::from(principal),
                csrf: csrf.clone(),
                last_used: Instant::now(),
            },
        );
        (id, csrf)
    }

    /// The session's principal and CSRF token, if the cookie names a live one.
    fn lookup(&self, id: &str) -> Option<(Arc<str>, String)> {
        let mut map = self.map.lock().ok()?;
        let s = map.get_mut(id)?;
        if s.last_used.elapsed() >= SESSION_IDLE_MAX {
            map.remove(id);
            return None;
        }
        s.last_used = Instant::now();
        Some((s.principal.clone(), s.csrf.clone()))
    }

    fn remove(&self, id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(id);
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(id: &str, https: bool) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    let v = format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The caller of an API route: the principal it acts as, and a Kafka client
/// that sends requests as that principal.
#[derive(Clone)]
pub struct Caller {
    pub principal: Arc<str>,
    pub client: KafkaClient,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> ApiResult<Caller> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "log in first")
        })
    }
}

fn peer(req: &Request) -> SocketAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Whether `Origin`, when sent, is this server (the `Host` it was asked as).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(|h| h.to_str()),
    ) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o == host)
}

/// Runs before every `/api/` route: resolves the session into a [`Caller`],
/// refuses unauthenticated calls when a login is required, and refuses
/// mutating calls without the session's CSRF token or from another origin.
pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD);
    if mutating && !same_origin(req.headers()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "CSRF",
            "cross-origin request refused",
        )
        .into_response();
    }
    // The session and login routes work without a session.
    if path.ends_with("/session") || path.ends_with("/login") {
        return next.run(req).await;
    }
    let sessions = &state.api.sessions;
    let session = cookie(req.headers(), SESSION_COOKIE).and_then(|id| sessions.lookup(&id));
    let principal: Arc<str> = match (&session, sessions.auth_required) {
        (Some((p, _)), _) => p.clone(),
        (None, false) if !mutating => Arc::from(herald_security::ANONYMOUS),
        (None, false) => {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "CSRF",
                "no session: load /api/session",
            )
            .into_response();
        }
        (None, true) => {
            return ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "log in first")
                .into_response();
        }
    };
    if mutating {
        let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let expected = session.as_ref().map(|(_, csrf)| csrf.as_str());
        if sent.is_none() || sent != expected {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "CSRF",
                "missing or wrong X-Herald-CSRF",
            )
            .into_response();
        }
    }
    let client = KafkaClient::new(state.broker.clone(), &principal, peer(&req));
    req.extensions_mut().insert(Caller { principal, client });
    next.run(req).await
}

#[derive(Serialize)]
struct SessionInfo {
    auth_required: bool,
    user: Option<String>,
    csrf: Option<String>,
    mechanisms: Vec<String>,
}

/// `GET /api/session`: who the browser is. Without auth, it gets an
/// anonymous session (and so a CSRF token) on first call.
pub async fn session(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let sessions = &state.api.sessions;
    let mechanisms = state.broker.config.security.sasl_mechanisms.clone();
    let found = cookie(&headers, SESSION_COOKIE).and_then(|id| sessions.lookup(&id));
    if let Some((principal, csrf)) = found {
        return Json(SessionInfo {
            auth_required: sessions.auth_required,
            user: Some(principal.to_string()),
            csrf: Some(csrf),
            mechanisms,
        })
        .into_response();
    }
    if sessions.auth_required {
        return Json(SessionInfo {
            auth_required: true,
            user: None,
            csrf: None,
            mechanisms,
        })
        .into_response();
    }
    let (id, csrf) = sessions.create(herald_security::ANONYMOUS);
    (
        [(header::SET_COOKIE, set_cookie(&id, sessions.https))],
        Json(SessionInfo {
            auth_required: false,
            user: Some(herald_security::ANONYMOUS.to_string()),
            csrf: Some(csrf),
            mechanisms,
        }),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct Login {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct LoggedIn {
    user: String,
    csrf: String,
}

/// `POST /api/login`: the user's Kafka credentials.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(login): Json<Login>,
) -> Response {
    let security = &state.broker.security;
    if login.username.len() > CREDENTIAL_BYTES_MAX || login.password.len() > CREDENTIAL_BYTES_MAX {
        return ApiError::bad_request("username or password too long").into_response();
    }
    let ok = herald_broker::sasl::verify_user_password(
        security,
        &login.username,
        login.password.into_bytes(),
    )
    .await;
    if !ok {
        security.authentication_failed(
            &peer.to_string(),
            "console",
            &login.username,
            "invalid username or password",
        );
        // As a failed SASL authentication: slows password guessing.
        tokio::time::sleep(security.config.auth_failure_delay).await;
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "SASL_AUTHENTICATION_FAILED",
            "invalid username or password",
        )
        .into_response();
    }
    let principal = format!("User:{}", login.username);
    tracing::info!(peer = %peer, user = %login.username, "console login");
    let (id, csrf) = state.api.sessions.create(&principal);
    (
        [(
            header::SET_COOKIE,
            set_cookie(&id, state.api.sessions.https),
        )],
        Json(LoggedIn {
            user: principal,
            csrf,
        }),
    )
        .into_response()
}

/// `POST /api/logout`.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        state.api.sessions.remove(&id);
    }
    let clear =
        HeaderValue::from_static("herald_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, clear)], StatusCode::NO_CONTENT).into_response()
}
