//! Client commands. They use librdkafka (the `rdkafka` crate), so they work
//! against Herald, Apache Kafka or Redpanda alike.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;

pub mod acl;
pub mod bench;
pub mod cluster;
pub mod consume;
pub mod group;
pub mod produce;
pub mod raw;
pub mod sink;
pub mod topic;
pub mod txn;
pub mod user;

/// How long a command waits for the cluster before giving up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Bootstrap brokers, comma separated.
    #[arg(
        long,
        short = 'b',
        env = "HERALD_BROKERS",
        default_value = "localhost:9092",
        global = true
    )]
    pub brokers: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    pub format: Format,
    /// Extra librdkafka properties (key=value), repeatable.
    #[arg(long = "property", short = 'X', global = true)]
    pub properties: Vec<String>,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL [default: PLAINTEXT].
    #[arg(long, env = "HERALD_SECURITY_PROTOCOL", global = true)]
    pub security_protocol: Option<String>,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 [default: SCRAM-SHA-512].
    #[arg(long, env = "HERALD_SASL_MECHANISM", global = true)]
    pub sasl_mechanism: Option<String>,
    #[arg(long, env = "HERALD_SASL_USERNAME", global = true)]
    pub sasl_username: Option<String>,
    /// A file holding the SASL password (a trailing newline is not part of it).
    #[arg(long, env = "HERALD_SASL_PASSWORD_FILE", global = true)]
    pub sasl_password_file: Option<PathBuf>,
    /// PEM CA bundle that the brokers' certificates must chain to.
    #[arg(long, env = "HERALD_SSL_CA", global = true)]
    pub ssl_ca: Option<PathBuf>,
    /// PEM client certificate (mutual TLS).
    #[arg(long, env = "HERALD_SSL_CERT", global = true)]
    pub ssl_cert: Option<PathBuf>,
    /// PEM client key (mutual TLS).
    #[arg(long, env = "HERALD_SSL_KEY", global = true)]
    pub ssl_key: Option<PathBuf>,
}

/// How a client connects: the flags above, or the same librdkafka
/// properties given with `-X` (flags win).
#[derive(Clone, Debug, Default)]
pub struct ClientSecurity {
    /// Upper case: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL.
    pub protocol: String,
    pub mechanism: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl ClientSecurity {
    pub fn tls(&self) -> bool {
        matches!(self.protocol.as_str(), "SSL" | "SASL_SSL")
    }
    pub fn sasl(&self) -> bool {
        matches!(self.protocol.as_str(), "SASL_PLAINTEXT" | "SASL_SSL")
    }
}

/// Reads a password file; one trailing newline (`\n` or `\r\n`) is not part of it.
pub fn read_password_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the password file {}", path.display()))?;
    Ok(strip_newline(text))
}

pub fn strip_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

impl Common {
    /// `-X` properties as (key, value).
    pub fn property_pairs(&self) -> anyhow::Result<Vec<(String, String)>> {
        self.properties
            .iter()
            .map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                    .with_context(|| format!("--property '{p}' is not key=value"))
            })
            .collect()
    }

    /// The security settings, from flags and `-X` properties.
    pub fn security(&self) -> anyhow::Result<ClientSecurity> {
        let props = self.property_pairs()?;
        let prop = |k: &str| {
            props
                .iter()
                .rev()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.clone())
        };
        let protocol = self
            .security_protocol
            .clone()
            .or_else(|| prop("security.protocol"))
            .unwrap_or_else(|| "PLAINTEXT".into())
            .to_ascii_uppercase();
        if !matches!(
            protocol.as_str(),
            "PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL"
        ) {
            bail!(
                "unknown security protocol {protocol:?} (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)"
            );
        }
        let mechanism = self
            .sasl_mechanism
            .clone()
            .or_else(|| prop("sasl.mechanisms"))
            .or_else(|| prop("sasl.mechanism"))
            .unwrap_or_else(|| "SCRAM-SHA-512".into())
            .to_ascii_uppercase();
        let password = match &self.sasl_password_file {
            Some(path) => Some(read_password_file(path)?),
            None => prop("sasl.password"),
        };
        let sec = ClientSecurity {
            protocol,
            mechanism,
            username: self.sasl_username.clone().or_else(|| prop("sasl.username")),
            password,
            ca: self
                .ssl_ca
                .clone()
                .or_else(|| prop("ssl.ca.location").map(PathBuf::from)),
            cert: self
                .ssl_cert
                .clone()
                .or_else(|| prop("ssl.certificate.location").map(PathBuf::from)),
            key: self
                .ssl_key
                .clone()
                .or_else(|| prop("ssl.key.location").map(PathBuf::from)),
        };
        if sec.sasl() && (sec.username.is_none() || sec.password.is_none()) {
            bail!(
                "{} needs --sasl-username and --sasl-password-file",
                sec.protocol
            );
        }
        Ok(sec)
    }

    /// The security settings as librdkafka properties.
    pub fn security_properties(&self) -> anyhow::Result<Vec<(String, String)>> {
        let sec = self.security()?;
        let mut out = vec![(
            "security.protocol".to_string(),
            sec.protocol.to_ascii_lowercase(),
        )];
        if sec.sasl() {
            out.push(("sasl.mechanisms".into(), sec.mechanism.clone()));
            out.push((
                "sasl.username".into(),
                sec.username.clone().unwrap_or_default(),
            ));
            out.push((
                "sasl.password".into(),
                sec.password.clone().unwrap_or_default(),
            ));
        }
        let path = |p: &PathBuf| p.display().to_string();
        for (k, v) in [
            ("ssl.ca.location", &sec.ca),
            ("ssl.certificate.location", &sec.cert),
            ("ssl.key.location", &sec.key),
        ] {
            if let Some(p) = v {
                out.push((k.into(), path(p)));
            }
        }
        Ok(out)
    }

    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        // Fail fast with a readable message when nothing listens.
        c.set("socket.connection.setup.timeout.ms", "5000");
        c.set("log_level", "3");
        for (k, v) in self.security_properties()? {
            c.set(k, v);
        }
        // Other -X properties pass through as given (the ones above were read
        // from them or overridden by flags).
        for (k, v) in self.property_pairs()? {
            if !matches!(
                k.as_str(),
                "security.protocol"
                    | "sasl.mechanisms"
                    | "sasl.mechanism"
                    | "sasl.username"
                    | "sasl.password"
                    | "ssl.ca.location"
                    | "ssl.certificate.location"
                    | "ssl.key.location"
            ) {
                c.set(k, v);
            }
        }
        Ok(c)
    }

    /// A consumer used for metadata and offset queries (never subscribes).
    pub fn query_consumer(&self, group: Option<&str>) -> anyhow::Result<BaseConsumer> {
        let mut c = self.client_config()?;
        c.set("group.id", group.unwrap_or("herald-cli"));
        c.set("enable.auto.commit", "false");
        Ok(c.create()?)
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }
}

/// Fetches metadata, turning "nothing answered" into a readable error.
pub fn metadata(
    consumer: &BaseConsumer,
    topic: Option<&str>,
    brokers: &str,
) -> anyhow::Result<Metadata> {
    consumer
        .fetch_metadata(topic, REQUEST_TIMEOUT)
        .map_err(|e| anyhow::anyhow!("cannot reach the cluster at {brokers}: {e}"))
}

/// Checks that `topic` exists, with a one-line error otherwise.
pub fn require_topic(md: &Metadata, topic: &str) -> anyhow::Result<i32> {
    match md.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() => Ok(t.partitions().len() as i32),
        _ => bail!("unknown topic '{topic}'"),
    }
}

/// An aligned text table; bold headers only on a terminal.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }
    pub fn row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(c.chars().count());
                }
            }
        }
        let tty = std::io::stdout().is_terminal();
        let mut out = String::new();
        let line = |cells: &[String]| {
            let mut l = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(c);
                } else {
                    l.push_str(&format!("{:<w$}  ", c, w = widths[i]));
                }
            }
            l.trim_end().to_string()
        };
        let header = line(&self.headers);
        if tty {
            out.push_str(&format!("\x1b[1m{header}\x1b[0m\n"));
        } else {
            out.push_str(&header);
            out.push('\n');
        }
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
    pub fn print(&self) {
        print!("{}", self.render());
    }
}

pub fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into())
    );
}

/// Parses `--from-time`: RFC 3339 (`2026-11-26T08:00:00Z`), a relative time
/// (`-1h`, `-15m`), or epoch milliseconds.
pub fn parse_time_ms(s: &str) -> anyhow::Result<i64> {
    if let Some(rel) = s.strip_prefix('-') {
        let d = humantime::parse_duration(rel)
            .with_context(|| format!("bad relative time '{s}' (e.g. -1h, -30m)"))?;
        return Ok(herald_broker::now_ms() - d.as_millis() as i64);
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .with_context(|| format!("bad time '{s}' (RFC 3339, -1h, or epoch ms)"))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0))
}

/// Formats epoch milliseconds as RFC 3339.
pub fn format_time_ms(ms: i64) -> String {
    if ms < 0 {
        return "-".into();
    }
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms as u64))
        .to_string()
}
