//! A secured broker process for tests: listeners PLAINTEXT, SASL_PLAINTEXT,
//! SASL_SSL and SSL (client certificates requested) on free ports, a test PKI,
//! the ACL authorizer with `User:admin` as super user, and the admin user
//! created offline before the first start (as an operator would).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_testkit::pki::Pki;
use rdkafka::ClientConfig;

pub const ADMIN_PASSWORD: &str = "admin-secret";

pub struct SecureBroker {
    pub pki: Pki,
    child: Option<Child>,
    pub data: tempfile::TempDir,
    /// `localhost:PORT` of each listener.
    pub plaintext: String,
    pub sasl_plaintext: String,
    pub sasl_ssl: String,
    pub ssl: String,
    /// The broker's log lines so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

pub fn herald() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herald"))
}

/// `herald user create NAME` offline into `dir`.
pub fn create_user_offline(dir: &std::path::Path, name: &str, password: &str, mechanism: &str) {
    let mut child = herald()
        .args([
            "user",
            "create",
            name,
            "--mechanism",
            mechanism,
            "--password-stdin",
        ])
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("herald user create");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write password");
    assert!(
        child.wait().expect("wait").success(),
        "herald user create failed"
    );
}

impl SecureBroker {
    /// Client certificates requested (not required) on the TLS listeners.
    pub fn start(extra: &[&str]) -> SecureBroker {
        Self::start_with("requested", extra)
    }

    pub fn start_with(client_auth: &str, extra: &[&str]) -> SecureBroker {
        let pki = Pki::new().expect("pki");
        let data = tempfile::tempdir().expect("tempdir");
        create_user_offline(data.path(), "admin", ADMIN_PASSWORD, "SCRAM-SHA-512");
        let ports = herald_testkit::free_ports(4);
        let l = |name: &str, p: u16| format!("{name}://127.0.0.1:{p}");
        let a = |name: &str, p: u16| format!("{name}://localhost:{p}");
        let names = ["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"];
        let listeners: Vec<String> = names.iter().zip(&ports).map(|(n, p)| l(n, *p)).collect();
        let advertised: Vec<String> = names.iter().zip(&ports).map(|(n, p)| a(n, *p)).collect();
        let mut cmd = herald();
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data.path())
            .arg("--listeners")
            .arg(listeners.join(","))
            .arg("--advertised-listeners")
            .arg(advertised.join(","))
            .arg("--ssl-cert")
            .arg(&pki.server.cert)
            .arg("--ssl-key")
            .arg(&pki.server.key)
            .arg("--ssl-ca")
            .arg(&pki.ca)
            .args(["--ssl-client-auth", client_auth])
            .args(["--authorizer", "acl", "--super-users", "User:admin"])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("HERALD_TEST_LOG")
                    .unwrap_or_else(|_| "info,herald_broker::sasl=debug".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn herald");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var("HERALD_TEST_ECHO").is_ok() {
                    eprintln!("[herald] {line}");
                }
                sink.lock().unwrap().push(line);
            }
        });
        let b = SecureBroker {
            pki,
            child: Some(child),
            data,
            plaintext: format!("localhost:{}", ports[0]),
            sasl_plaintext: format!("localhost:{}", ports[1]),
            sasl_ssl: format!("localhost:{}", ports[2]),
            ssl: format!("localhost:{}", ports[3]),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while b.log_count("herald broker listening") < 4 {
            assert!(
                Instant::now() < deadline,
                "herald did not start: {:?}",
                b.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        b
    }

    pub fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits (up to 5 s) until at least `n` log lines contain `needle`.
    pub fn wait_log(&self, needle: &str, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.log_count(needle) < n {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Resident memory of the broker process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// librdkafka settings for SASL_SSL as `user`.
    pub fn sasl_ssl_config(&self, user: &str, password: &str, mechanism: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.sasl_ssl)
            .set("security.protocol", "sasl_ssl")
            .set("sasl.mechanisms", mechanism)
            .set("sasl.username", user)
            .set("sasl.password", password)
            .set("ssl.ca.location", self.pki.ca.display().to_string());
        c
    }

    pub fn admin_config(&self) -> ClientConfig {
        self.sasl_ssl_config("admin", ADMIN_PASSWORD, "SCRAM-SHA-512")
    }

    /// librdkafka settings for the SSL listener with a client certificate.
    pub fn mtls_config(&self, cert: &herald_testkit::pki::CertFiles) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.ssl)
            .set("security.protocol", "ssl")
            .set("ssl.ca.location", self.pki.ca.display().to_string())
            .set("ssl.certificate.location", cert.cert.display().to_string())
            .set("ssl.key.location", cert.key.display().to_string());
        c
    }

    /// The herald CLI connected as admin over SASL_SSL.
    pub fn cli_as_admin(&self) -> Command {
        let pw = self.data.path().join("admin.password");
        std::fs::write(&pw, format!("{ADMIN_PASSWORD}\n")).expect("password file");
        self.cli_as("admin", &pw)
    }

    /// The herald CLI over SASL_SSL (SCRAM-SHA-512) as `user`.
    pub fn cli_as(&self, user: &str, password_file: &std::path::Path) -> Command {
        let mut c = herald();
        c.args(["-b", &self.sasl_ssl, "--security-protocol", "SASL_SSL"])
            .args(["--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", user])
            .arg("--sasl-password-file")
            .arg(password_file)
            .arg("--ssl-ca")
            .arg(&self.pki.ca);
        c
    }

    /// Runs a CLI command as admin; panics with its output if it fails.
    pub fn admin_cli(&self, args: &[&str]) -> String {
        let out = self.cli_as_admin().args(args).output().expect("herald cli");
        assert!(
            out.status.success(),
            "herald {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates a SCRAM user online (AlterUserScramCredentials) as admin.
    pub fn create_user(&self, name: &str, password: &str, mechanism: &str) {
        let file: PathBuf = self.data.path().join(format!("{name}.password"));
        std::fs::write(&file, password).expect("password file");
        let f = file.display().to_string();
        self.admin_cli(&[
            "user",
            "create",
            name,
            "--mechanism",
            mechanism,
            "--password-file",
            &f,
        ]);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
