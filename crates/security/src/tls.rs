//! TLS 1.2/1.3 termination on rustls: a PEM chain and key, optional client
//! authentication against a CA bundle, and reloading of changed files without
//! a restart (new connections get the new files; open ones are untouched).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use x509_parser::der_parser::asn1_rs::{Any, Class, Tag, ToDer};
use x509_parser::x509::{AttributeTypeAndValue, RelativeDistinguishedName, X509Name};

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
        // Stat before reading: a change racing the read then shows up as a
        // stamp difference at the next check instead of being missed.
        let stamp = stamps(&settings);
        let config = build_config(&settings)?;
        Ok(Arc::new(TlsContext {
            settings,
            current: std::sync::RwLock::new(Arc::new(config)),
            stamp: std::sync::Mutex::new(stamp),
        }))
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        tokio_rustls::TlsAcceptor::from(current.clone())
    }

    /// Reloads when a file's modification time or size changed. Ok(true):
    /// reloaded. Err: the new files are bad; the old configuration stays.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        // Held throughout so concurrent callers do not build twice or store
        // stamps out of order.
        let mut stamp = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamps(&self.settings);
        if now == *stamp {
            return Ok(false);
        }
        // On error the stamps stay old, so a half-written rotation (key
        // written, cert not yet) is retried at the next check.
        let config = build_config(&self.settings)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        *stamp = now;
        Ok(true)
    }
}

type Stamp = Option<(std::time::SystemTime, u64)>;

/// (mtime, len) of the certificate, key and CA files, in that order; None
/// for a file that cannot be stat'ed (the build then reports why).
fn stamps(settings: &TlsSettings) -> Vec<Stamp> {
    let mut paths = vec![settings.cert_path.as_path(), settings.key_path.as_path()];
    if let Some(ca) = &settings.ca_path {
        paths.push(ca.as_path());
    }
    paths
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(p).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

fn file_error(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| file_error(path, format!("cannot read: {e}")))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(
            path,
            "no certificate found (expected PEM \"BEGIN CERTIFICATE\" sections)",
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        pem::Error::NoItemsFound => file_error(
            path,
            "no private key found (expected an unencrypted PEM \"PRIVATE KEY\", \
             \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" section)",
        ),
        e => file_error(path, format!("bad PEM: {e}")),
    })
}

fn build_config(settings: &TlsSettings) -> Result<rustls::ServerConfig, TlsError> {
    let chain = read_certs(&settings.cert_path)?;
    let key = read_key(&settings.key_path)?;
    // Explicit provider: the process default may be unset, or ambiguous when
    // another crate in the build enables ring.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(format!("TLS versions: {e}")))?;

    let builder = match settings.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let Some(ca_path) = &settings.ca_path else {
                return Err(TlsError::Config(
                    "ssl client auth requested or required needs a CA file".into(),
                ));
            };
            let mut roots = rustls::RootCertStore::empty();
            for (i, cert) in read_certs(ca_path)?.into_iter().enumerate() {
                roots.add(cert).map_err(|e| {
                    file_error(ca_path, format!("unusable CA certificate #{}: {e}", i + 1))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| file_error(ca_path, format!("client verifier: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };

    builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => file_error(
            &settings.key_path,
            format!(
                "private key does not match the certificate in {}",
                settings.cert_path.display()
            ),
        ),
        rustls::Error::InvalidCertificate(e) => {
            file_error(&settings.cert_path, format!("bad certificate: {e}"))
        }
        e => file_error(&settings.key_path, format!("unusable private key: {e}")),
    })
}

/// The subject of a DER certificate as Java's `X500Principal.getName()`
/// (RFC 2253) writes it and Kafka's mapping rules see it: most specific RDN
/// first, `CN=alice,OU=ServiceUsers,O=Acme`, with RFC 2253 escaping.
pub fn subject_dn(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    rfc2253(cert.subject())
}

/// Java's `X500Name.getRFC2253Name()`: RDNs last to first, comma separated,
/// the AVAs of a multi-valued RDN in encoded order joined by `+`.
fn rfc2253(name: &X509Name<'_>) -> Option<String> {
    let rdns: Vec<&RelativeDistinguishedName<'_>> = name.iter().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, ava) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            write_ava(&mut out, ava)?;
        }
    }
    Some(out)
}

/// The RFC 2253 keywords Java knows; any other type prints as its OID.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// Java's `AVA.toRFC2253String()`.
fn write_ava(out: &mut String, ava: &AttributeTypeAndValue<'_>) -> Option<()> {
    let oid = ava.attr_type().to_id_string();
    let value = ava.attr_value();
    let text = keyword(&oid).and_then(|_| directory_string(value));
    out.push_str(keyword(&oid).unwrap_or(&oid));
    out.push('=');
    let Some(text) = text else {
        // OID types and non-string values: `#` and the hex of the value's DER.
        let der = value.to_der_vec().ok()?;
        out.push('#');
        for b in der {
            let _ = write!(out, "{b:02x}");
        }
        return Some(());
    };
    // Java escapes `=` and `#` anywhere too, and NUL as `\00`.
    let mut escaped: Vec<char> = Vec::with_capacity(text.len());
    for c in text.chars() {
        if ",=+<>#;\"\\".contains(c) {
            escaped.extend(['\\', c]);
        } else if c == '\0' {
            escaped.extend(['\\', '0', '0']);
        } else {
            escaped.push(c);
        }
    }
    let blank = |c: &char| *c == ' ' || *c == '\r';
    let lead = escaped.iter().take_while(|c| blank(c)).count();
    let trail = escaped.iter().rev().take_while(|c| blank(c)).count();
    let end = escaped.len().saturating_sub(trail);
    for (i, c) in escaped.iter().enumerate() {
        if i < lead || i >= end {
            out.push('\\');
        }
        out.push(*c);
    }
    Some(())
}

/// The text of a value of one of the string types Java prints as text
/// (`AVA.isDerString(value, false)`); None for any other type.
fn directory_string(value: &Any<'_>) -> Option<String> {
    if value.header.class() != Class::Universal || value.header.is_constructed() {
        return None;
    }
    let data = value.data;
    match value.tag() {
        Tag::PrintableString | Tag::Ia5String | Tag::GeneralString | Tag::Utf8String => {
            Some(String::from_utf8_lossy(data).into_owned())
        }
        // Teletex as Latin-1, the usual reading of it in certificates.
        Tag::T61String => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testcert::{Leaf, TestCa, dn};
    use rcgen::DnType;
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_rustls::{TlsConnector, client, server};

    struct Files {
        dir: tempfile::TempDir,
        bumps: std::cell::Cell<u64>,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().unwrap(),
                bumps: std::cell::Cell::new(0),
            }
        }
        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
        /// Writes `name`, giving it a fresh mtime so a rewrite is seen even
        /// within the filesystem's timestamp granularity.
        fn write(&self, name: &str, content: &str) -> PathBuf {
            let path = self.path(name);
            std::fs::write(&path, content).unwrap();
            self.bumps.set(self.bumps.get() + 1);
            let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.bumps.get());
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(mtime)
                .unwrap();
            path
        }
        fn settings(&self, server: &Leaf, ca_pem: Option<&str>, auth: ClientAuth) -> TlsSettings {
            TlsSettings {
                cert_path: self.write("server.pem", &server.cert_pem),
                key_path: self.write("server.key", &server.key_pem),
                ca_path: ca_pem.map(|pem| self.write("ca.pem", pem)),
                client_auth: auth,
            }
        }
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    fn connector(
        server_ca: &TestCa,
        client: Option<&Leaf>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(server_ca.cert_pem().as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some(leaf) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from(leaf.cert_der.clone())],
                    PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
                )
                .unwrap(),
        };
        TlsConnector::from(Arc::new(config))
    }

    type Pair = (
        std::io::Result<server::TlsStream<DuplexStream>>,
        std::io::Result<client::TlsStream<DuplexStream>>,
    );

    async fn handshake(ctx: &TlsContext, connector: &TlsConnector) -> Pair {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let name = ServerName::try_from("localhost").unwrap();
        let (server, client) = tokio::join!(
            ctx.acceptor().accept(server_io),
            connector.connect(name, client_io)
        );
        (server, client)
    }

    /// Round trips a message each way over an established pair.
    async fn exchange(
        server: &mut server::TlsStream<DuplexStream>,
        client: &mut client::TlsStream<DuplexStream>,
    ) {
        client.write_all(b"ping").await.unwrap();
        client.flush().await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.unwrap();
        server.flush().await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
    }

    fn server_subject(client: &client::TlsStream<DuplexStream>) -> String {
        let certs = client.get_ref().1.peer_certificates().unwrap();
        subject_dn(&certs[0]).unwrap()
    }

    fn client_subject(server: &server::TlsStream<DuplexStream>) -> Option<String> {
        let certs = server.get_ref().1.peer_certificates()?;
        subject_dn(&certs[0])
    }

    fn svc_a(ca: &TestCa) -> Leaf {
        ca.client(dn(&[
            (DnType::OrganizationName, "Acme"),
            (DnType::OrganizationalUnitName, "ServiceUsers"),
            (DnType::CommonName, "svc-a"),
        ]))
    }

    /// The handshake failed on the server; in TLS 1.3 the client may have
    /// finished first, and then sees the failure on its first read.
    async fn assert_rejected(pair: Pair) {
        let (server, client) = pair;
        assert!(server.is_err(), "server accepted the connection");
        if let Ok(mut client) = client {
            let mut buf = [0u8; 1];
            let read = client.read(&mut buf).await;
            assert!(!matches!(read, Ok(n) if n > 0), "client read data");
        }
    }

    const BOTH: &[&rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];

    #[tokio::test]
    async fn no_client_auth() {
        let ca = TestCa::new("Test CA");
        let files = Files::new();
        let ctx = TlsContext::load(files.settings(&ca.server("server-1"), None, ClientAuth::None))
            .unwrap();
        for versions in [BOTH, &[&rustls::version::TLS12]] {
            let (server, client) = handshake(&ctx, &connector(&ca, None, versions)).await;
            let (mut server, mut client) = (server.unwrap(), client.unwrap());
            assert_eq!(server_subject(&client), "CN=server-1");
            assert_eq!(client_subject(&server), None);
            exchange(&mut server, &mut client).await;
        }
        // A client that trusts another CA refuses the server.
        let other = TestCa::new("Other CA");
        let (_, client) = handshake(&ctx, &connector(&other, None, BOTH)).await;
        assert!(client.is_err());
    }

    #[tokio::test]
    async fn required_client_auth() {
        let ca = TestCa::new("Test CA");
        let files = Files::new();
        let settings = files.settings(
            &ca.server("server-1"),
            Some(&ca.cert_pem()),
            ClientAuth::Required,
        );
        let ctx = TlsContext::load(settings).unwrap();
        let good = svc_a(&ca);
        for versions in [BOTH, &[&rustls::version::TLS12]] {
            let (server, client) = handshake(&ctx, &connector(&ca, Some(&good), versions)).await;
            let (mut server, mut client) = (server.unwrap(), client.unwrap());
            assert_eq!(
                client_subject(&server).as_deref(),
                Some("CN=svc-a,OU=ServiceUsers,O=Acme")
            );
            exchange(&mut server, &mut client).await;
        }

        // No certificate.
        assert_rejected(handshake(&ctx, &connector(&ca, None, BOTH)).await).await;
        // A certificate from a CA the broker does not trust.
        let rogue = TestCa::new("Test CA");
        let forged = svc_a(&rogue);
        assert_rejected(handshake(&ctx, &connector(&ca, Some(&forged), BOTH)).await).await;
    }

    #[tokio::test]
    async fn requested_client_auth() {
        let ca = TestCa::new("Test CA");
        let files = Files::new();
        let settings = files.settings(
            &ca.server("server-1"),
            Some(&ca.cert_pem()),
            ClientAuth::Requested,
        );
        let ctx = TlsContext::load(settings).unwrap();

        let (server, client) = handshake(&ctx, &connector(&ca, None, BOTH)).await;
        let (mut server, mut client) = (server.unwrap(), client.unwrap());
        assert_eq!(client_subject(&server), None);
        exchange(&mut server, &mut client).await;

        let good = svc_a(&ca);
        let (server, _) = handshake(&ctx, &connector(&ca, Some(&good), BOTH)).await;
        assert_eq!(
            client_subject(&server.unwrap()).as_deref(),
            Some("CN=svc-a,OU=ServiceUsers,O=Acme")
        );

        // A certificate that is presented must verify.
        let forged = svc_a(&TestCa::new("Rogue CA"));
        assert_rejected(handshake(&ctx, &connector(&ca, Some(&forged), BOTH)).await).await;
    }

    fn load_err(settings: TlsSettings) -> String {
        match TlsContext::load(settings) {
            Ok(_) => panic!("loaded"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn load_errors() {
        let ca = TestCa::new("Test CA");
        let files = Files::new();
        let server = ca.server("server-1");
        let good = files.settings(&server, Some(&ca.cert_pem()), ClientAuth::Required);
        let cert = good.cert_path.display().to_string();
        let key = good.key_path.display().to_string();
        let ca_file = good.ca_path.clone().unwrap().display().to_string();

        let missing = TlsSettings {
            cert_path: files.path("absent.pem"),
            ..good.clone()
        };
        let err = load_err(missing);
        assert!(err.contains("absent.pem: cannot read"), "{err}");

        // No certificate: the key file given as the certificate.
        let err = load_err(TlsSettings {
            cert_path: good.key_path.clone(),
            ..good.clone()
        });
        assert!(
            err.starts_with(&format!("{key}: no certificate found")),
            "{err}"
        );

        // No key: the certificate file given as the key.
        let err = load_err(TlsSettings {
            key_path: good.cert_path.clone(),
            ..good.clone()
        });
        assert!(
            err.starts_with(&format!("{cert}: no private key found")),
            "{err}"
        );

        // Another certificate's key.
        let other = ca.server("server-2");
        let err = load_err(TlsSettings {
            key_path: files.write("other.key", &other.key_pem),
            ..good.clone()
        });
        let other_key = files.path("other.key").display().to_string();
        assert_eq!(
            err,
            format!("{other_key}: private key does not match the certificate in {cert}")
        );

        // Garbage PEM.
        let err = load_err(TlsSettings {
            cert_path: files.write("garbage.pem", "-----BEGIN CERTIFICATE-----\n!!!\n"),
            ..good.clone()
        });
        assert!(err.contains("garbage.pem: bad PEM"), "{err}");

        // Client auth without a CA file.
        for auth in [ClientAuth::Requested, ClientAuth::Required] {
            let err = load_err(TlsSettings {
                ca_path: None,
                client_auth: auth,
                ..good.clone()
            });
            assert!(err.contains("needs a CA file"), "{err}");
        }
        // A CA file with no certificate.
        std::fs::write(good.ca_path.as_ref().unwrap(), "").unwrap();
        let err = load_err(good.clone());
        assert!(
            err.starts_with(&format!("{ca_file}: no certificate found")),
            "{err}"
        );
        // A CA file that is not a CA certificate at all.
        std::fs::write(
            good.ca_path.as_ref().unwrap(),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = load_err(good.clone());
        assert!(err.starts_with(&format!("{ca_file}: ")), "{err}");
    }

    #[tokio::test]
    async fn reload_on_change() {
        let ca = TestCa::new("Test CA");
        let files = Files::new();
        let settings = files.settings(
            &ca.server("server-1"),
            Some(&ca.cert_pem()),
            ClientAuth::Required,
        );
        let ctx = TlsContext::load(settings).unwrap();
        let client_cert = svc_a(&ca);
        let connector = connector(&ca, Some(&client_cert), BOTH);
        assert!(!ctx.reload_if_changed().unwrap());

        let (server, client) = handshake(&ctx, &connector).await;
        let (mut old_server, mut old_client) = (server.unwrap(), client.unwrap());
        assert_eq!(server_subject(&old_client), "CN=server-1");

        // Rotation: key first, then the certificate.
        let next = ca.server("server-2-rotated");
        files.write("server.key", &next.key_pem);
        // Half-written: the new key with the old certificate fails and the
        // old configuration keeps serving.
        assert!(ctx.reload_if_changed().is_err());
        let (_, client) = handshake(&ctx, &connector).await;
        assert_eq!(server_subject(&client.unwrap()), "CN=server-1");
        // Then the certificate; the failed attempt is retried.
        files.write("server.pem", &next.cert_pem);
        assert!(ctx.reload_if_changed().unwrap());
        assert!(!ctx.reload_if_changed().unwrap());

        let (server, client) = handshake(&ctx, &connector).await;
        let (mut server, mut client) = (server.unwrap(), client.unwrap());
        assert_eq!(server_subject(&client), "CN=server-2-rotated");
        exchange(&mut server, &mut client).await;
        // The connection made before the reload still works.
        exchange(&mut old_server, &mut old_client).await;

        // A garbage certificate: Err, and the last good files still serve.
        files.write("server.pem", "not a certificate");
        let err = ctx.reload_if_changed().unwrap_err().to_string();
        assert!(err.contains("no certificate found"), "{err}");
        assert!(
            ctx.reload_if_changed().is_err(),
            "retried at the next check"
        );
        let (server, client) = handshake(&ctx, &connector).await;
        let (mut server, mut client) = (server.unwrap(), client.unwrap());
        assert_eq!(server_subject(&client), "CN=server-2-rotated");
        exchange(&mut server, &mut client).await;

        // A deleted file is an error too, not a panic.
        std::fs::remove_file(files.path("ca.pem")).unwrap();
        assert!(ctx.reload_if_changed().is_err());
    }

    /// (OID DER content, value tag, value).
    type Ava<'a> = (&'a [u8], u8, &'a [u8]);

    /// Builds a DER Name from RDNs of AVAs.
    fn name_der(rdns: &[&[Ava<'_>]]) -> Vec<u8> {
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            assert!(content.len() < 128);
            let mut v = vec![tag, content.len() as u8];
            v.extend_from_slice(content);
            v
        }
        let mut seq = Vec::new();
        for rdn in rdns {
            let mut set = Vec::new();
            for (oid, tag, value) in *rdn {
                let mut ava = tlv(0x06, oid);
                ava.extend(tlv(*tag, value));
                set.extend(tlv(0x30, &ava));
            }
            seq.extend(tlv(0x31, &set));
        }
        tlv(0x30, &seq)
    }

    fn format_name(der: &[u8]) -> String {
        use x509_parser::prelude::FromDer;
        let (_, name) = X509Name::from_der(der).unwrap();
        rfc2253(&name).unwrap()
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const OU: &[u8] = &[0x55, 0x04, 0x0b];
    const DC: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19];
    const UID: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01];
    const EMAIL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];
    const UTF8: u8 = 0x0c;
    const PRINTABLE: u8 = 0x13;
    const IA5: u8 = 0x16;
    const BMP: u8 = 0x1e;

    #[test]
    fn subject_dn_format() {
        // Reverse order, multi-valued RDN with `+`, keywords, OID types as hex.
        let der = name_der(&[
            &[(DC, IA5, b"com")],
            &[(DC, IA5, b"acme")],
            &[(OU, UTF8, b"eng"), (UID, UTF8, b"u1")],
            &[(EMAIL, IA5, b"a@b")],
            &[(CN, BMP, &[0, b'b', 0, b'o', 0, b'b'])],
        ]);
        assert_eq!(
            format_name(&der),
            "CN=bob,1.2.840.113549.1.9.1=#1603614062,OU=eng+UID=u1,DC=acme,DC=com"
        );
        // A keyword type with a non-string value is hex too.
        let der = name_der(&[&[(CN, 0x02, &[0x05])]]);
        assert_eq!(format_name(&der), "CN=#020105");
        // Escaping as Java does it: specials anywhere (Java adds `=` and
        // `#`), NUL as \00, leading and trailing spaces.
        let der = name_der(&[&[(CN, UTF8, b" a,b+c\"d\\e<f>g;h=i#j\0k ")]]);
        assert_eq!(
            format_name(&der),
            r#"CN=\ a\,b\+c\"d\\e\<f\>g\;h\=i\#j\00k\ "#
        );
        let der = name_der(&[&[(CN, PRINTABLE, b"#x")], &[(CN, UTF8, "é ü".as_bytes())]]);
        assert_eq!(format_name(&der), r"CN=é ü,CN=\#x");
        let der = name_der(&[&[(CN, UTF8, b"  ")]]);
        assert_eq!(format_name(&der), r"CN=\ \ ");
        assert_eq!(format_name(&name_der(&[])), "");
    }

    #[test]
    fn subject_dn_of_certificates() {
        let ca = TestCa::new("Test CA");
        let b = ca.client(dn(&[
            (DnType::CommonName, "SVC-B"),
            (DnType::OrganizationName, "Acme"),
        ]));
        assert_eq!(subject_dn(&b.cert_der).as_deref(), Some("O=Acme,CN=SVC-B"));
        let c = ca.client(dn(&[
            (DnType::CountryName, "US"),
            (DnType::StateOrProvinceName, "MD"),
            (DnType::LocalityName, "Fulton"),
            (DnType::OrganizationName, "Acme, Inc."),
            (DnType::CommonName, "svc c"),
        ]));
        assert_eq!(
            subject_dn(&c.cert_der).as_deref(),
            Some(r"CN=svc c,O=Acme\, Inc.,L=Fulton,ST=MD,C=US")
        );
        // Not a certificate: None, not a panic.
        assert_eq!(subject_dn(b""), None);
        assert_eq!(subject_dn(&b.cert_der[..b.cert_der.len() / 2]), None);
        assert_eq!(subject_dn(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
