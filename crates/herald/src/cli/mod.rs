//! Client commands. They use librdkafka (the `rdkafka` crate), so they work
//! against Herald, Apache Kafka or Redpanda alike.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;

pub mod bench;
pub mod cluster;
pub mod consume;
pub mod group;
pub mod produce;
pub mod raw;
pub mod sink;
pub mod topic;

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
}

impl Common {
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        // Fail fast with a readable message when nothing listens.
        c.set("socket.connection.setup.timeout.ms", "5000");
        c.set("log_level", "3");
        for p in &self.properties {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("--property '{p}' is not key=value"))?;
            c.set(k, v);
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
