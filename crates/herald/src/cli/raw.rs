//! A minimal blocking Kafka client over one TCP connection, for the few calls
//! librdkafka's API does not expose (ApiVersions ranges, DescribeLogDirs,
//! IncrementalAlterConfigs, the controller id). It speaks the same security
//! protocols as the librdkafka clients (`--security-protocol` and friends):
//! TLS on rustls, then SASL PLAIN or SCRAM through SaslHandshake and
//! SaslAuthenticate.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::{Buf, Bytes, BytesMut};
use herald_security::scram::{ScramClient, ScramMechanism};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::{ClientSecurity, Common};

/// Largest response this client reads.
const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Kafka's UNSUPPORTED_SASL_MECHANISM.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;

/// The connection: plain TCP or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

pub struct RawClient {
    stream: Stream,
    correlation_id: i32,
}

impl RawClient {
    /// Connects to the first reachable bootstrap broker (`common.brokers`),
    /// with `common`'s security settings.
    pub fn connect(common: &Common) -> anyhow::Result<RawClient> {
        RawClient::connect_to(&common.brokers, common)
    }

    /// Connects to the first reachable of `brokers` (comma separated
    /// host:port, e.g. a group coordinator's address) with `common`'s
    /// security settings. An unreachable address moves on to the next one; a
    /// TLS or SASL failure is reported as is (another broker of the same
    /// cluster would refuse the same way).
    pub fn connect_to(brokers: &str, common: &Common) -> anyhow::Result<RawClient> {
        let security = common.security()?;
        let tls = if security.tls() {
            Some(Arc::new(tls_config(&security)?))
        } else {
            None
        };
        let mut last = None;
        for b in brokers.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            let addrs: Vec<_> = match std::net::ToSocketAddrs::to_socket_addrs(b) {
                Ok(a) => a.collect(),
                Err(e) => {
                    last = Some(anyhow::anyhow!("{b}: {e}"));
                    continue;
                }
            };
            for a in addrs {
                match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                    Ok(tcp) => {
                        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
                        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
                        let stream = match &tls {
                            Some(config) => Stream::Tls(Box::new(
                                tls_handshake(config.clone(), b, tcp)
                                    .with_context(|| format!("TLS with {b}"))?,
                            )),
                            None => Stream::Plain(tcp),
                        };
                        let mut client = RawClient {
                            stream,
                            correlation_id: 0,
                        };
                        if security.sasl() {
                            client
                                .authenticate(&security)
                                .with_context(|| format!("SASL with {b}"))?;
                        }
                        return Ok(client);
                    }
                    Err(e) => last = Some(anyhow::anyhow!("{b}: {e}")),
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no brokers given")))
            .with_context(|| format!("cannot reach the cluster at {brokers}"))
    }

    /// SaslHandshake v1, then SaslAuthenticate v2 rounds for the mechanism.
    fn authenticate(&mut self, security: &ClientSecurity) -> anyhow::Result<()> {
        let mechanism = security.mechanism.as_str();
        let scram = match mechanism {
            "PLAIN" => None,
            m => Some(ScramMechanism::from_name(m).with_context(|| {
                format!("unknown SASL mechanism {m:?} (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")
            })?),
        };
        let (Some(username), Some(password)) = (&security.username, &security.password) else {
            bail!(
                "{} needs --sasl-username and --sasl-password-file",
                security.protocol
            );
        };

        let mut req = SaslHandshakeRequest::default();
        req.mechanism = StrBytes::from_string(mechanism.to_string());
        let resp: SaslHandshakeResponse = self.call(ApiKey::SaslHandshake, 1, &req)?;
        if resp.error_code == UNSUPPORTED_SASL_MECHANISM {
            let offered: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
            bail!(
                "the broker does not offer SASL mechanism {mechanism}; it offers: {}",
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(", ")
                }
            );
        }
        if resp.error_code != 0 {
            bail!("SASL handshake failed: {}", error_name(resp.error_code));
        }

        match scram {
            None => {
                let mut token = Vec::with_capacity(username.len() + password.len() + 2);
                token.push(0);
                token.extend_from_slice(username.as_bytes());
                token.push(0);
                token.extend_from_slice(password.as_bytes());
                self.sasl_authenticate(token)?;
            }
            Some(m) => {
                let mut client = ScramClient::new(m, username, password.as_bytes());
                let server_first = self.sasl_authenticate(client.client_first())?;
                let client_final = client
                    .client_final(&server_first)
                    .context("the broker's SCRAM server-first message")?;
                let server_final = self.sasl_authenticate(client_final)?;
                client
                    .verify_server_final(&server_final)
                    .context("the broker's SCRAM server-final message")?;
            }
        }
        Ok(())
    }

    /// One SaslAuthenticate v2 round: the broker's auth bytes, or its refusal.
    fn sasl_authenticate(&mut self, auth_bytes: Vec<u8>) -> anyhow::Result<Bytes> {
        let mut req = SaslAuthenticateRequest::default();
        req.auth_bytes = Bytes::from(auth_bytes);
        let resp: SaslAuthenticateResponse = self.call(ApiKey::SaslAuthenticate, 2, &req)?;
        if resp.error_code != 0 {
            let message = match resp.error_message {
                Some(m) if !m.is_empty() => m.to_string(),
                _ => error_name(resp.error_code),
            };
            bail!("authentication failed: {message}");
        }
        Ok(resp.auth_bytes)
    }

    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> anyhow::Result<Resp> {
        self.correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(StrBytes::from_static_str("herald-cli"));
        let mut body = BytesMut::new();
        header.encode(&mut body, key.request_header_version(version))?;
        request.encode(&mut body, version)?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame)?;
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .context("the broker closed the connection")?;
        let size = i32::from_be_bytes(size);
        if size < 4 || size as usize > RESPONSE_BYTES_MAX {
            bail!("bad response size {size}");
        }
        let mut buf = vec![0u8; size as usize];
        self.stream.read_exact(&mut buf)?;
        let mut buf = Bytes::from(buf);
        let correlation = buf.get_i32();
        if correlation != self.correlation_id {
            bail!(
                "response correlation id {correlation}, expected {}",
                self.correlation_id
            );
        }
        if key.response_header_version(version) >= 1 {
            // Tagged fields of the response header (we send none, expect none).
            if !buf.has_remaining() {
                bail!("truncated response header");
            }
            let n = buf.get_u8();
            if n != 0 {
                bail!("unexpected tagged fields in response header");
            }
        }
        Resp::decode(&mut buf, version)
    }
}

/// A Kafka error code as its name (`SASL_AUTHENTICATION_FAILED`-like Debug
/// form), or the number if unknown.
pub fn error_name(code: i16) -> String {
    kafka_protocol::ResponseError::try_from_code(code)
        .map(|e| format!("{e:?} (error {code})"))
        .unwrap_or_else(|| format!("error {code}"))
}

/// The rustls client configuration: roots from `--ssl-ca` only (no system
/// roots), client certificate when `--ssl-cert` and `--ssl-key` are given.
fn tls_config(security: &ClientSecurity) -> anyhow::Result<ClientConfig> {
    let Some(ca) = &security.ca else {
        bail!(
            "{} needs --ssl-ca (a PEM bundle of the CA that signed the brokers' certificates)",
            security.protocol
        );
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading the CA bundle {}", ca.display()))?;
    for cert in certs {
        let cert = cert.with_context(|| format!("reading the CA bundle {}", ca.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("a certificate in {}", ca.display()))?;
    }
    if roots.is_empty() {
        bail!("no certificates in the CA bundle {}", ca.display());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    let config = match (&security.cert, &security.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("reading the private key {}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .context("the client certificate and key")?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => bail!("--ssl-cert and --ssl-key go together"),
    };
    Ok(config)
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the certificate {}", path.display()))?;
    if certs.is_empty() {
        bail!("no certificates in {}", path.display());
    }
    Ok(certs)
}

/// The name the broker's certificate must carry: the host part of
/// `host:port`, `[v6]:port` or a bare host.
fn server_name(broker: &str) -> anyhow::Result<ServerName<'static>> {
    let host = if let Some(rest) = broker.strip_prefix('[') {
        rest.split_once(']').map(|(h, _)| h).unwrap_or(rest)
    } else {
        match broker.rsplit_once(':') {
            // More than one ':' without brackets: a bare IPv6 address.
            Some((h, _)) if !h.contains(':') => h,
            _ => broker,
        }
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_string())
        .map_err(|_| anyhow::anyhow!("{host:?} is not a valid TLS server name"))
}

/// Runs the TLS handshake to completion, so that certificate errors surface
/// here rather than on the first request.
fn tls_handshake(
    config: Arc<ClientConfig>,
    broker: &str,
    mut tcp: TcpStream,
) -> anyhow::Result<StreamOwned<ClientConnection, TcpStream>> {
    let mut conn = ClientConnection::new(config, server_name(broker)?)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    Ok(StreamOwned::new(conn, tcp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        let dns = |s: &str| ServerName::try_from(s.to_string()).unwrap();
        let ip = |s: &str| ServerName::IpAddress(s.parse::<IpAddr>().unwrap().into());
        assert_eq!(server_name("localhost:9092").unwrap(), dns("localhost"));
        assert_eq!(
            server_name("broker-1.example.com").unwrap(),
            dns("broker-1.example.com")
        );
        assert_eq!(server_name("127.0.0.1:9093").unwrap(), ip("127.0.0.1"));
        assert_eq!(server_name("[::1]:9093").unwrap(), ip("::1"));
        assert_eq!(server_name("::1").unwrap(), ip("::1"));
        assert!(server_name("bad_host!:9092").is_err());
        assert!(server_name(":9092").is_err());
    }
}
