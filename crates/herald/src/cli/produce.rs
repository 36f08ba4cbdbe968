//! `herald produce TOPIC`: records from `--value` or stdin (one per line, or
//! JSON objects with `--json`), printing partition and offset of each.

use std::io::BufRead;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use super::{Common, metadata, print_json};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    pub topic: String,
    /// Record key (for every record).
    #[arg(long, short = 'k')]
    pub key: Option<String>,
    /// Record value; without it, one record per stdin line.
    #[arg(long, short = 'v')]
    pub value: Option<String>,
    /// Header key=value, repeatable.
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// Target partition (default: by key hash, or sticky without key).
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
    /// Compression codec: none, gzip, snappy, lz4, zstd.
    #[arg(long, short = 'z', default_value = "none")]
    pub compression: String,
    /// Required acks: all, 1 or 0.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// Split each stdin line into key and value at this separator.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// Stdin lines are JSON objects: {"key":..,"value":..,"headers":{..},"partition":..}.
    #[arg(long)]
    pub json: bool,
    /// Print only a summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

struct Rec {
    key: Option<String>,
    value: Option<String>,
    headers: Vec<(String, String)>,
    partition: Option<i32>,
}

fn parse_line(
    args: &ProduceArgs,
    line: &str,
    base_headers: &[(String, String)],
) -> anyhow::Result<Rec> {
    if args.json {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("not a JSON object: {line}"))?;
        let text = |x: &serde_json::Value| match x {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        let mut headers = base_headers.to_vec();
        if let Some(h) = v.get("headers").and_then(|h| h.as_object()) {
            for (k, val) in h {
                headers.push((k.clone(), text(val).unwrap_or_default()));
            }
        }
        return Ok(Rec {
            key: v.get("key").and_then(text).or_else(|| args.key.clone()),
            value: v.get("value").and_then(text),
            headers,
            partition: v
                .get("partition")
                .and_then(|p| p.as_i64())
                .map(|p| p as i32)
                .or(args.partition),
        });
    }
    let (key, value) = match &args.key_separator {
        Some(sep) => match line.split_once(sep.as_str()) {
            Some((k, v)) => (Some(k.to_string()), v.to_string()),
            None => (args.key.clone(), line.to_string()),
        },
        None => (args.key.clone(), line.to_string()),
    };
    Ok(Rec {
        key,
        value: Some(value),
        headers: base_headers.to_vec(),
        partition: args.partition,
    })
}

pub async fn run(common: &Common, args: ProduceArgs) -> anyhow::Result<()> {
    let acks = match args.acks.as_str() {
        "all" | "-1" => "all",
        "1" => "1",
        "0" => "0",
        other => bail!("--acks must be all, 1 or 0, not '{other}'"),
    };
    if !matches!(
        args.compression.as_str(),
        "none" | "gzip" | "snappy" | "lz4" | "zstd"
    ) {
        bail!("--compression must be none, gzip, snappy, lz4 or zstd");
    }
    let base_headers: Vec<(String, String)> = args
        .headers
        .iter()
        .map(|h| {
            h.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--header '{h}' is not key=value"))
        })
        .collect::<anyhow::Result<_>>()?;
    // Like a producer, ask for the topic with auto-creation allowed: brokers that
    // create topics on demand do so now; others answer "unknown topic" at once.
    let probe: rdkafka::consumer::BaseConsumer = {
        let mut c = common.client_config()?;
        c.set("group.id", "herald-cli")
            .set("allow.auto.create.topics", "true");
        c.create()?
    };
    let mut md = metadata(&probe, Some(&args.topic), &common.brokers)?;
    for _ in 0..10 {
        if super::require_topic(&md, &args.topic).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        md = metadata(&probe, Some(&args.topic), &common.brokers)?;
    }
    super::require_topic(&md, &args.topic)?;
    let mut cfg = common.client_config()?;
    cfg.set("acks", acks)
        .set("compression.type", &args.compression)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    let producer: FutureProducer = cfg.create()?;

    let records: Vec<Rec> = match &args.value {
        Some(v) => vec![Rec {
            key: args.key.clone(),
            value: Some(v.clone()),
            headers: base_headers.clone(),
            partition: args.partition,
        }],
        None => {
            let mut out = Vec::new();
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                if line.is_empty() {
                    continue;
                }
                out.push(parse_line(&args, &line, &base_headers)?);
            }
            out
        }
    };
    let mut futures = Vec::with_capacity(records.len());
    for r in &records {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let mut rec: FutureRecord<'_, String, String> =
            FutureRecord::to(&args.topic).headers(headers);
        if let Some(k) = &r.key {
            rec = rec.key(k);
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v);
        }
        if let Some(p) = r.partition {
            rec = rec.partition(p);
        }
        let mut rec = rec;
        loop {
            match producer.send_result(rec) {
                Ok(f) => {
                    futures.push(f);
                    break;
                }
                Err((e, back)) => {
                    if !matches!(
                        e,
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull
                        )
                    ) {
                        bail!("cannot produce to {}: {e}", args.topic);
                    }
                    rec = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    let mut ok = 0usize;
    let mut failed = 0usize;
    let mut last_error = None;
    for f in futures {
        match f.await {
            Ok(Ok(d)) => {
                ok += 1;
                if !args.quiet {
                    if common.json() {
                        println!(
                            "{}",
                            json!({"topic": args.topic, "partition": d.partition, "offset": d.offset})
                        );
                    } else {
                        println!("partition {} offset {}", d.partition, d.offset);
                    }
                }
            }
            Ok(Err((e, _))) => {
                failed += 1;
                last_error = Some(e.to_string());
            }
            Err(_) => {
                failed += 1;
                last_error = Some("producer closed".into());
            }
        }
    }
    if args.quiet {
        if common.json() {
            print_json(&json!({"topic": args.topic, "produced": ok, "failed": failed}));
        } else {
            println!("produced {ok} records to {}", args.topic);
        }
    }
    if failed > 0 {
        bail!(
            "{failed} records failed: {}",
            last_error.unwrap_or_default()
        );
    }
    Ok(())
}
