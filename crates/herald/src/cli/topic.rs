//! `herald topic ...`

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::Subcommand;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use serde_json::json;

use super::raw::RawClient;
use super::{Common, REQUEST_TIMEOUT, Table, metadata, print_json, require_topic};

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create topics.
    Create {
        #[arg(required = true)]
        topics: Vec<String>,
        /// Partitions per topic (-1: the broker's default).
        #[arg(long, short = 'p', default_value_t = -1, allow_hyphen_values = true)]
        partitions: i32,
        /// Replication factor (-1: the broker's default).
        #[arg(long, short = 'r', default_value_t = -1, allow_hyphen_values = true)]
        replicas: i32,
        /// Topic config key=value, repeatable.
        #[arg(long = "config", short = 'c')]
        configs: Vec<String>,
    },
    /// List topics.
    List,
    /// Partitions, offsets, sizes and configs of a topic.
    Describe { topic: String },
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Grow a topic to a new partition count.
    AddPartitions {
        topic: String,
        /// The new total number of partitions.
        #[arg(long, short = 'n')]
        count: usize,
    },
    /// Set or remove topic configs (IncrementalAlterConfigs).
    AlterConfig {
        topic: String,
        /// key=value to set, repeatable.
        #[arg(long)]
        set: Vec<String>,
        /// key to reset to the default, repeatable.
        #[arg(long)]
        delete: Vec<String>,
    },
}

fn admin(common: &Common) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    Ok(common.client_config()?.create()?)
}

fn key_values(items: &[String], what: &str) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("{what} '{kv}' is not key=value"))
        })
        .collect()
}

fn opts() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT))
}

pub async fn run(common: &Common, cmd: TopicCommand) -> anyhow::Result<()> {
    match cmd {
        TopicCommand::Create {
            topics,
            partitions,
            replicas,
            configs,
        } => {
            let configs = key_values(&configs, "--config")?;
            // Check reachability first, for a readable error.
            metadata(&common.query_consumer(None)?, None, &common.brokers)?;
            let admin = admin(common)?;
            let new: Vec<NewTopic> = topics
                .iter()
                .map(|t| {
                    let mut n = NewTopic::new(t, partitions, TopicReplication::Fixed(replicas));
                    for (k, v) in &configs {
                        n = n.set(k, v);
                    }
                    n
                })
                .collect();
            let results = admin.create_topics(new.iter(), &opts()).await?;
            let mut failed = Vec::new();
            let mut rows = Vec::new();
            for r in results {
                match r {
                    Ok(name) => rows.push((name, "created".to_string())),
                    Err((name, code)) => {
                        failed.push(format!("{name}: {code}"));
                        rows.push((name, format!("error: {code}")));
                    }
                }
            }
            if common.json() {
                print_json(&json!(
                    rows.iter()
                        .map(|(t, s)| json!({"topic": t, "status": s}))
                        .collect::<Vec<_>>()
                ));
            } else {
                let mut t = Table::new(&["TOPIC", "STATUS"]);
                for (n, s) in &rows {
                    t.row(vec![n.clone(), s.clone()]);
                }
                t.print();
            }
            if !failed.is_empty() {
                bail!("could not create {}", failed.join(", "));
            }
        }
        TopicCommand::List => {
            let c = common.query_consumer(None)?;
            let md = metadata(&c, None, &common.brokers)?;
            let mut topics: Vec<_> = md
                .topics()
                .iter()
                .map(|t| (t.name().to_string(), t.partitions().len()))
                .collect();
            topics.sort();
            if common.json() {
                print_json(&json!(
                    topics
                        .iter()
                        .map(|(n, p)| json!({"name": n, "partitions": p}))
                        .collect::<Vec<_>>()
                ));
            } else {
                let mut t = Table::new(&["NAME", "PARTITIONS"]);
                for (n, p) in topics {
                    t.row(vec![n, p.to_string()]);
                }
                t.print();
            }
        }
        TopicCommand::Describe { topic } => describe(common, &topic).await?,
        TopicCommand::Delete { topics } => {
            metadata(&common.query_consumer(None)?, None, &common.brokers)?;
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            let results = admin(common)?.delete_topics(&names, &opts()).await?;
            let mut failed = Vec::new();
            for r in &results {
                match r {
                    Ok(n) => {
                        if !common.json() {
                            println!("deleted {n}");
                        }
                    }
                    Err((n, code)) => failed.push(format!("{n}: {code}")),
                }
            }
            if common.json() {
                print_json(&json!(
                    results
                        .iter()
                        .map(|r| match r {
                            Ok(n) => json!({"topic": n, "status": "deleted"}),
                            Err((n, c)) => json!({"topic": n, "status": format!("error: {c}")}),
                        })
                        .collect::<Vec<_>>()
                ));
            }
            if !failed.is_empty() {
                bail!("could not delete {}", failed.join(", "));
            }
        }
        TopicCommand::AddPartitions { topic, count } => {
            let md = metadata(&common.query_consumer(None)?, Some(&topic), &common.brokers)?;
            require_topic(&md, &topic)?;
            let r = admin(common)?
                .create_partitions(&[NewPartitions::new(&topic, count)], &opts())
                .await?;
            if let Some(Err((n, code))) = r.first() {
                bail!("could not add partitions to {n}: {code}");
            }
            if common.json() {
                print_json(&json!({"topic": topic, "partitions": count}));
            } else {
                println!("{topic} now has {count} partitions");
            }
        }
        TopicCommand::AlterConfig { topic, set, delete } => {
            let set = key_values(&set, "--set")?;
            if set.is_empty() && delete.is_empty() {
                bail!("nothing to change: give --set key=value or --delete key");
            }
            let mut res = AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = kafka_protocol::protocol::StrBytes::from_string(topic.clone());
            for (k, v) in &set {
                let mut c = AlterableConfig::default();
                c.name = kafka_protocol::protocol::StrBytes::from_string(k.clone());
                c.config_operation = 0;
                c.value = Some(kafka_protocol::protocol::StrBytes::from_string(v.clone()));
                res.configs.push(c);
            }
            for k in &delete {
                let mut c = AlterableConfig::default();
                c.name = kafka_protocol::protocol::StrBytes::from_string(k.clone());
                c.config_operation = 1;
                res.configs.push(c);
            }
            let mut req = IncrementalAlterConfigsRequest::default();
            req.resources = vec![res];
            let mut raw = RawClient::connect(common)?;
            let resp: IncrementalAlterConfigsResponse =
                raw.call(ApiKey::IncrementalAlterConfigs, 0, &req)?;
            for r in &resp.responses {
                if r.error_code != 0 {
                    let msg = r
                        .error_message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default();
                    let err = kafka_protocol::ResponseError::try_from_code(r.error_code)
                        .map(|e| format!("{e:?}"))
                        .unwrap_or_else(|| r.error_code.to_string());
                    bail!("could not alter {topic}: {err} {msg}");
                }
            }
            if common.json() {
                print_json(
                    &json!({"topic": topic, "set": set.iter().map(|(k, v)| json!({k: v})).collect::<Vec<_>>(), "deleted": delete}),
                );
            } else {
                println!("altered {topic}");
            }
        }
    }
    Ok(())
}

/// Partition sizes from DescribeLogDirs (key 35), if the broker answers it.
fn partition_sizes(common: &Common, topic: &str) -> BTreeMap<i32, i64> {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
    let mut sizes = BTreeMap::new();
    let Ok(mut raw) = RawClient::connect(common) else {
        return sizes;
    };
    let mut t = DescribableLogDirTopic::default();
    t.topic = TopicName(kafka_protocol::protocol::StrBytes::from_string(
        topic.to_string(),
    ));
    t.partitions = (0..10_000).collect();
    let mut req = DescribeLogDirsRequest::default();
    req.topics = Some(vec![t]);
    if let Ok(resp) = raw.call::<_, DescribeLogDirsResponse>(ApiKey::DescribeLogDirs, 1, &req) {
        for dir in resp.results {
            for t in dir.topics {
                for p in t.partitions {
                    sizes.insert(p.partition_index, p.partition_size);
                }
            }
        }
    }
    sizes
}

async fn describe(common: &Common, topic: &str) -> anyhow::Result<()> {
    let c = common.query_consumer(None)?;
    let md = metadata(&c, Some(topic), &common.brokers)?;
    require_topic(&md, topic)?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .context("topic in metadata")?;
    let sizes = partition_sizes(common, topic);
    let mut parts = Vec::new();
    for p in t.partitions() {
        let (low, high) = c.fetch_watermarks(topic, p.id(), REQUEST_TIMEOUT)?;
        parts.push((
            p.id(),
            p.leader(),
            p.replicas().to_vec(),
            low,
            high,
            sizes.get(&p.id()).copied(),
        ));
    }
    let d = admin(common)?
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &opts())
        .await?;
    let mut configs = Vec::new();
    if let Some(Ok(res)) = d.first() {
        for e in &res.entries {
            let source = match e.source {
                ConfigSource::DynamicTopic => "topic",
                ConfigSource::Default => "default",
                ConfigSource::StaticBroker => "broker",
                ConfigSource::DynamicBroker | ConfigSource::DynamicDefaultBroker => {
                    "broker (dynamic)"
                }
                ConfigSource::Unknown => "unknown",
            };
            configs.push((e.name.clone(), e.value.clone().unwrap_or_default(), source));
        }
    }
    if common.json() {
        print_json(&json!({
            "name": topic,
            "partitions": parts.iter().map(|(id, leader, replicas, low, high, size)| json!({
                "partition": id, "leader": leader, "replicas": replicas,
                "log_start_offset": low, "high_watermark": high, "records": high - low, "size_bytes": size,
            })).collect::<Vec<_>>(),
            "configs": configs.iter().map(|(k, v, s)| json!({"name": k, "value": v, "source": s})).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    println!("NAME        {topic}");
    println!("PARTITIONS  {}\n", parts.len());
    let mut tp = Table::new(&[
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "LOG-START",
        "HIGH-WATERMARK",
        "RECORDS",
        "SIZE",
    ]);
    for (id, leader, replicas, low, high, size) in &parts {
        tp.row(vec![
            id.to_string(),
            leader.to_string(),
            format!("{replicas:?}"),
            low.to_string(),
            high.to_string(),
            (high - low).to_string(),
            size.map(human_bytes).unwrap_or_else(|| "-".into()),
        ]);
    }
    tp.print();
    println!();
    let mut tc = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
    for (k, v, s) in configs {
        tc.row(vec![k, v, s.to_string()]);
    }
    tc.print();
    Ok(())
}

pub fn human_bytes(b: i64) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GiB", b / 1024.0 / 1024.0 / 1024.0)
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b} B")
    }
}
