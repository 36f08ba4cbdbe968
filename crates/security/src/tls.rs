//! TLS 1.2/1.3 termination on rustls: a PEM chain and key, optional client
//! authentication against a CA bundle, and reloading of changed files without
//! a restart (new connections get the new files; open ones are untouched).

use std::path::PathBuf;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientAuth {
    #[default]
    None,
    Requested,
    Required,
}

impl std::str::FromStr for ClientAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(ClientAuth::None),
            "requested" => Ok(ClientAuth::Requested),
            "required" => Ok(ClientAuth::Required),
            _ => Err(format!(
                "ssl client auth must be none, requested or required, not {s:?}"
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1), unencrypted.
    pub key_path: PathBuf,
    /// PEM CA bundle that client certificates must chain to.
    pub ca_path: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Config(String),
}

/// The current TLS configuration of the broker's TLS listeners.
pub struct TlsContext {
    settings: TlsSettings,
    current: std::sync::RwLock<Arc<rustls::ServerConfig>>,
    stamp: std::sync::Mutex<Vec<Option<(std::time::SystemTime, u64)>>>,
}

impl TlsContext {
    /// Loads and checks the files; Requested/Required need `ca_path`.
    pub fn load(settings: TlsSettings) -> Result<Arc<TlsContext>, TlsError> {
        todo!()
    }
    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        todo!()
    }
    /// Reloads when a file's modification time or size changed. Ok(true):
    /// reloaded. Err: the new files are bad; the old configuration stays.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        todo!()
    }
}

/// The subject of a DER certificate as Java's `X500Principal.getName()`
/// (RFC 2253) writes it and Kafka's mapping rules see it: most specific RDN
/// first, `CN=alice,OU=ServiceUsers,O=Acme`, with RFC 2253 escaping.
pub fn subject_dn(cert_der: &[u8]) -> Option<String> {
    todo!()
}
