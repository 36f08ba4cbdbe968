//! Connecting to a secured cluster: TLS and SASL settings as the librdkafka
//! properties that `Publisher::with_config` and `SubscriberBuilder::config`
//! take, so publishers, subscribers, their admin calls and dead-letter replay
//! all authenticate alike.

use std::path::PathBuf;

#[derive(Clone, Debug, Default)]
pub struct ClientSecurity {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: String,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM CA bundle the brokers' certificates chain to.
    pub ca: Option<PathBuf>,
    /// Client certificate and key (mutual TLS).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl ClientSecurity {
    /// SASL/SCRAM-SHA-512 over TLS, the usual production setting.
    pub fn scram_sha512_over_tls(username: &str, password: &str, ca: PathBuf) -> ClientSecurity {
        ClientSecurity {
            protocol: "sasl_ssl".into(),
            mechanism: Some("SCRAM-SHA-512".into()),
            username: Some(username.into()),
            password: Some(password.into()),
            ca: Some(ca),
            ..Default::default()
        }
    }

    /// The librdkafka properties.
    pub fn properties(&self) -> Vec<(String, String)> {
        let mut out = vec![("security.protocol".to_string(), self.protocol.clone())];
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push((k.to_string(), v));
            }
        };
        put("sasl.mechanisms", self.mechanism.clone());
        put("sasl.username", self.username.clone());
        put("sasl.password", self.password.clone());
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        put("ssl.ca.location", path(&self.ca));
        put("ssl.certificate.location", path(&self.cert));
        put("ssl.key.location", path(&self.key));
        out
    }
}
