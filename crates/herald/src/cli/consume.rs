//! `herald consume TOPIC`: from the beginning, an offset, or a time; alone or
//! in a group; follows the topic until interrupted unless `-n` or `--exit`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use super::{Common, REQUEST_TIMEOUT, format_time_ms, metadata, parse_time_ms, require_topic};

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Start at the first retained record.
    #[arg(long, conflicts_with_all = ["offset", "from_time"])]
    pub from_beginning: bool,
    /// Start at this offset in every partition (negative: that many before the end).
    #[arg(long, allow_hyphen_values = true, conflicts_with = "from_time")]
    pub offset: Option<i64>,
    /// Start at the first record at or after this time: RFC 3339, -1h, or epoch ms.
    #[arg(long, allow_hyphen_values = true)]
    pub from_time: Option<String>,
    /// Consume as a member of this group (commits offsets).
    #[arg(long, short = 'g')]
    pub group: Option<String>,
    /// Only these partitions (comma separated).
    #[arg(long, short = 'p', value_delimiter = ',')]
    pub partitions: Vec<i32>,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// Stop at the end of the partitions instead of following.
    #[arg(long, short = 'e')]
    pub exit: bool,
    /// read_uncommitted (the default, as in Kafka's console consumer) shows
    /// every record, those of aborted and still open transactions too;
    /// read_committed stops at the last stable offset and leaves out records
    /// of aborted transactions.
    #[arg(long, value_enum, default_value_t = Isolation::ReadUncommitted)]
    pub isolation: Isolation,
    /// Output template: %t topic, %p partition, %o offset, %k key, %v value,
    /// %T timestamp (ms), %h headers, %% percent, \n \t.
    #[arg(long, short = 'f')]
    pub template: Option<String>,
}

/// A consumer's `isolation.level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Isolation {
    ReadUncommitted,
    ReadCommitted,
}

impl Isolation {
    /// librdkafka's name of the level.
    pub fn property(self) -> &'static str {
        match self {
            Isolation::ReadUncommitted => "read_uncommitted",
            Isolation::ReadCommitted => "read_committed",
        }
    }
}

fn render(template: &str, m: &BorrowedMessage<'_>) -> String {
    let key = m
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default();
    let value = m
        .payload()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    let headers = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|x| {
                    format!(
                        "{}={}",
                        x.key,
                        x.value
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek().copied()) {
            ('%', Some(n)) => {
                chars.next();
                match n {
                    't' => out.push_str(m.topic()),
                    'p' => out.push_str(&m.partition().to_string()),
                    'o' => out.push_str(&m.offset().to_string()),
                    'k' => out.push_str(&key),
                    'v' => out.push_str(&value),
                    'T' => out.push_str(&m.timestamp().to_millis().unwrap_or(-1).to_string()),
                    'h' => out.push_str(&headers),
                    '%' => out.push('%'),
                    other => {
                        out.push('%');
                        out.push(other);
                    }
                }
            }
            ('\\', Some('n')) => {
                chars.next();
                out.push('\n');
            }
            ('\\', Some('t')) => {
                chars.next();
                out.push('\t');
            }
            _ => out.push(c),
        }
    }
    out
}

fn to_json(m: &BorrowedMessage<'_>) -> serde_json::Value {
    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
    let headers: serde_json::Map<String, serde_json::Value> = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|x| (x.key.to_string(), json!(text(x.value))))
                .collect()
        })
        .unwrap_or_default();
    let ts = m.timestamp().to_millis().unwrap_or(-1);
    json!({
        "topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
        "timestamp": ts, "time": format_time_ms(ts),
        "key": text(m.key()), "value": text(m.payload()), "headers": headers,
    })
}

pub fn run(common: &Common, args: ConsumeArgs) -> anyhow::Result<()> {
    let probe = common.query_consumer(None)?;
    let md = metadata(&probe, Some(&args.topic), &common.brokers)?;
    let partition_count = require_topic(&md, &args.topic)?;
    let partitions: Vec<i32> = if args.partitions.is_empty() {
        (0..partition_count).collect()
    } else {
        args.partitions.clone()
    };
    for p in &partitions {
        if *p < 0 || *p >= partition_count {
            bail!("topic '{}' has no partition {p}", args.topic);
        }
    }
    let mut cfg = common.client_config()?;
    cfg.set(
        "group.id",
        args.group.as_deref().unwrap_or("herald-cli-consume"),
    );
    // Commits are explicit: exactly the records printed (see the loop).
    cfg.set("enable.auto.commit", "false");
    cfg.set(
        "auto.offset.reset",
        if args.from_beginning {
            "earliest"
        } else {
            "latest"
        },
    );
    cfg.set("enable.partition.eof", "true");
    cfg.set("isolation.level", args.isolation.property());
    let consumer: BaseConsumer = cfg.create()?;

    // End offsets at start, for --exit.
    let mut remaining_eof: HashMap<i32, ()> = HashMap::new();
    if let Some(group) = &args.group {
        if args.offset.is_some() || args.from_time.is_some() {
            bail!(
                "--offset and --from-time pick positions without a group; to move group '{group}', use `herald group reset-offsets`"
            );
        }
        consumer.subscribe(&[&args.topic])?;
    } else {
        let mut tpl = TopicPartitionList::new();
        let start = match (&args.from_time, args.offset, args.from_beginning) {
            (Some(t), _, _) => {
                let ms = parse_time_ms(t)?;
                let mut q = TopicPartitionList::new();
                for p in &partitions {
                    q.add_partition_offset(&args.topic, *p, Offset::Offset(ms))?;
                }
                let found = consumer.offsets_for_times(q, REQUEST_TIMEOUT)?;
                for e in found.elements() {
                    tpl.add_partition_offset(&args.topic, e.partition(), e.offset())?;
                }
                None
            }
            (None, Some(o), _) if o < 0 => Some(Offset::OffsetTail(-o)),
            (None, Some(o), _) => Some(Offset::Offset(o)),
            (None, None, true) => Some(Offset::Beginning),
            (None, None, false) => Some(Offset::End),
        };
        if let Some(start) = start {
            for p in &partitions {
                tpl.add_partition_offset(&args.topic, *p, start)?;
            }
        }
        consumer.assign(&tpl)?;
    }
    for p in &partitions {
        remaining_eof.insert(*p, ());
    }
    let template = args.template.clone().unwrap_or_else(|| "%v\\n".into());
    let mut seen = 0u64;
    let started = Instant::now();
    // Next offset per partition of the records printed: what a group commits.
    let mut printed: HashMap<i32, i64> = HashMap::new();
    let mut last_commit = Instant::now();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    use std::io::Write;
    loop {
        if args.count.is_some_and(|n| seen >= n) {
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                remaining_eof.remove(&p);
                out.flush()?;
                if args.exit && remaining_eof.is_empty() {
                    break;
                }
            }
            Some(Err(e)) => bail!("consume failed: {e}"),
            Some(Ok(m)) => {
                seen += 1;
                printed.insert(m.partition(), m.offset() + 1);
                if common.json() {
                    writeln!(out, "{}", to_json(&m))?;
                } else {
                    write!(out, "{}", render(&template, &m))?;
                }
            }
        }
        if args.exit && args.group.is_some() && remaining_eof.is_empty() {
            break;
        }
        if args.exit && started.elapsed() > Duration::from_secs(3600) {
            break;
        }
        if args.group.is_some() && last_commit.elapsed() > Duration::from_secs(5) {
            out.flush()?;
            commit(
                &consumer,
                &args.topic,
                &printed,
                rdkafka::consumer::CommitMode::Async,
            )?;
            last_commit = Instant::now();
        }
    }
    out.flush()?;
    if args.group.is_some() {
        commit(
            &consumer,
            &args.topic,
            &printed,
            rdkafka::consumer::CommitMode::Sync,
        )?;
    }
    Ok(())
}

/// Commits the offsets after the records printed (nothing if none were).
fn commit(
    consumer: &BaseConsumer,
    topic: &str,
    printed: &HashMap<i32, i64>,
    mode: rdkafka::consumer::CommitMode,
) -> anyhow::Result<()> {
    if printed.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in printed {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))?;
    }
    consumer
        .commit(&tpl, mode)
        .map_err(|e| anyhow::anyhow!("committing offsets: {e}"))
}
