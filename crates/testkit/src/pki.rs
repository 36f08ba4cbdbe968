//! A throwaway PKI for TLS tests: a CA, a server certificate for
//! `localhost`/`127.0.0.1`, client certificates with chosen subjects, and the
//! bad cases (a second, untrusted CA; an expired certificate), written as PEM
//! files into a temp dir.

use std::path::{Path, PathBuf};

pub use rcgen::DnType;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The trusted CA's certificate.
    pub ca: PathBuf,
    /// A CA nobody trusts (its certificates must be refused).
    pub rogue_ca: PathBuf,
    pub server: CertFiles,
    issuer: CertifiedIssuer<'static, KeyPair>,
    rogue: CertifiedIssuer<'static, KeyPair>,
}

fn ca(name: &str) -> anyhow::Result<CertifiedIssuer<'static, KeyPair>> {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(CertifiedIssuer::self_signed(p, KeyPair::generate()?)?)
}

fn write(path: &Path, text: &str) -> anyhow::Result<PathBuf> {
    std::fs::write(path, text)?;
    Ok(path.to_path_buf())
}

impl Pki {
    pub fn new() -> anyhow::Result<Pki> {
        let dir = tempfile::Builder::new().prefix("herald-pki-").tempdir()?;
        let issuer = ca("Herald Test CA")?;
        // Same name, different key: only the key tells them apart.
        let rogue = ca("Herald Test CA")?;
        let ca_path = write(&dir.path().join("ca.pem"), &issuer.pem())?;
        let rogue_path = write(&dir.path().join("rogue-ca.pem"), &rogue.pem())?;
        let mut pki = Pki {
            server: CertFiles {
                cert: PathBuf::new(),
                key: PathBuf::new(),
            },
            ca: ca_path,
            rogue_ca: rogue_path,
            issuer,
            rogue,
            dir,
        };
        pki.server = pki.server_cert("server", "localhost")?;
        Ok(pki)
    }

    /// A server certificate for `localhost` and 127.0.0.1 (CN `cn`).
    pub fn server_cert(&self, file: &str, cn: &str) -> anyhow::Result<CertFiles> {
        let mut p = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(file, p, &self.issuer)
    }

    /// A client certificate whose subject has these attributes, most
    /// general first in the certificate: `[(O, "Acme"), (OU, ..), (CN, ..)]`
    /// prints as `CN=..,OU=..,O=Acme`.
    pub fn client_cert(&self, file: &str, subject: &[(DnType, &str)]) -> anyhow::Result<CertFiles> {
        self.sign(file, client_params(subject)?, &self.issuer)
    }

    /// A client certificate signed by the rogue CA.
    pub fn rogue_client_cert(&self, file: &str, cn: &str) -> anyhow::Result<CertFiles> {
        self.sign(
            file,
            client_params(&[(DnType::CommonName, cn)])?,
            &self.rogue,
        )
    }

    /// A client certificate that expired yesterday.
    pub fn expired_client_cert(&self, file: &str, cn: &str) -> anyhow::Result<CertFiles> {
        let mut p = client_params(&[(DnType::CommonName, cn)])?;
        let now = time_now();
        p.not_before = now - time::Duration::days(30);
        p.not_after = now - time::Duration::days(1);
        self.sign(file, p, &self.issuer)
    }

    fn sign(
        &self,
        file: &str,
        p: CertificateParams,
        issuer: &CertifiedIssuer<'static, KeyPair>,
    ) -> anyhow::Result<CertFiles> {
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, issuer)?;
        Ok(CertFiles {
            cert: write(&self.dir.path().join(format!("{file}.pem")), &cert.pem())?,
            key: write(
                &self.dir.path().join(format!("{file}-key.pem")),
                &key.serialize_pem(),
            )?,
        })
    }
}

fn client_params(subject: &[(DnType, &str)]) -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    for (t, v) in subject {
        dn.push(t.clone(), *v);
    }
    p.distinguished_name = dn;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(p)
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
