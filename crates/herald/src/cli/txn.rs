//! `herald txn ...`: transactions as `kafka-transactions.sh` shows them
//! (`list`, `describe`, `describe-producers`, with Kafka's column names and
//! order). librdkafka has no admin call for these, so they go through
//! `raw.rs`: ListTransactions to every broker (each lists the ids it
//! coordinates), DescribeTransactions to the id's coordinator
//! (FindCoordinator, key type 1), DescribeProducers to the partition's leader.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    ListTransactionsRequest, ListTransactionsResponse, MetadataRequest, MetadataResponse,
    ProducerId, TopicName, TransactionalId, metadata_request::MetadataRequestTopic,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::json;

use super::raw::{RawClient, error_name};
use super::{Common, Table, print_json};

/// FindCoordinator's key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

#[derive(Subcommand, Debug)]
pub enum TxnCommand {
    /// List transactional ids and their state (every broker's coordinated ids).
    List(ListArgs),
    /// The state of one transactional id: producer id and epoch, timeout,
    /// start time, the partitions of its open transaction.
    Describe {
        #[arg(value_name = "TRANSACTIONAL_ID")]
        transactional_id: String,
    },
    /// The producers with state on one partition (open transactions' start
    /// offsets), as its leader sees them.
    DescribeProducers(DescribeProducersArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only these states (Empty, Ongoing, PrepareCommit, PrepareAbort,
    /// CompleteCommit, CompleteAbort, PrepareEpochFence); repeatable.
    #[arg(long = "state", value_name = "STATE")]
    pub states: Vec<String>,
    /// Only these producer ids; repeatable.
    #[arg(long = "producer-id", value_name = "ID")]
    pub producer_ids: Vec<i64>,
    /// Only transactions running longer than this many milliseconds
    /// (ListTransactions v1, Kafka 3.8+).
    #[arg(long, value_name = "MS")]
    pub duration_filter: Option<i64>,
    /// Only ids the whole of which match this regular expression
    /// (ListTransactions v2, Kafka 4.1+).
    #[arg(long, value_name = "REGEX")]
    pub transactional_id_pattern: Option<String>,
}

#[derive(Args, Debug)]
pub struct DescribeProducersArgs {
    #[arg(long)]
    pub topic: String,
    #[arg(long)]
    pub partition: i32,
    /// Ask this broker instead of the partition's leader.
    #[arg(long)]
    pub broker_id: Option<i32>,
}

pub fn run(common: &Common, cmd: TxnCommand) -> anyhow::Result<()> {
    match cmd {
        TxnCommand::List(args) => list(common, &args),
        TxnCommand::Describe { transactional_id } => describe(common, &transactional_id),
        TxnCommand::DescribeProducers(args) => describe_producers(common, &args),
    }
}

/// The cluster's brokers (id, host:port) and, when `topic` is given, its
/// partitions' leaders, from a Metadata request to a bootstrap broker.
fn metadata(common: &Common, topic: Option<&str>) -> anyhow::Result<MetadataResponse> {
    let mut raw = RawClient::connect(common)?;
    let mut req = MetadataRequest::default();
    req.topics = Some(
        topic
            .map(|t| {
                let mut mt = MetadataRequestTopic::default();
                mt.name = Some(TopicName(StrBytes::from_string(t.to_string())));
                vec![mt]
            })
            .unwrap_or_default(),
    );
    req.allow_auto_topic_creation = false;
    raw.call(ApiKey::Metadata, 4, &req)
}

fn broker_addr(md: &MetadataResponse, id: i32) -> Option<String> {
    md.brokers
        .iter()
        .find(|b| b.node_id.0 == id)
        .map(|b| format!("{}:{}", b.host.as_str(), b.port))
}

/// The lowest ListTransactions version that carries the filters asked for,
/// so that brokers older than Kafka 4.1 still answer a plain list.
fn list_version(args: &ListArgs) -> i16 {
    if args.transactional_id_pattern.is_some() {
        2
    } else if args.duration_filter.is_some() {
        1
    } else {
        0
    }
}

fn list(common: &Common, args: &ListArgs) -> anyhow::Result<()> {
    let md = metadata(common, None)?;
    let mut req = ListTransactionsRequest::default();
    req.state_filters = args
        .states
        .iter()
        .map(|s| StrBytes::from_string(s.clone()))
        .collect();
    req.producer_id_filters = args.producer_ids.iter().map(|p| ProducerId(*p)).collect();
    req.duration_filter = args.duration_filter.unwrap_or(-1);
    req.transactional_id_pattern = args
        .transactional_id_pattern
        .clone()
        .map(StrBytes::from_string);
    let version = list_version(args);
    // (transactional id, coordinator, producer id, state)
    let mut rows: Vec<(String, i32, i64, String)> = Vec::new();
    let mut unknown_states: Vec<String> = Vec::new();
    for b in &md.brokers {
        let addr = format!("{}:{}", b.host.as_str(), b.port);
        let mut raw = RawClient::connect_to(&addr, common)
            .with_context(|| format!("broker {} at {addr}", b.node_id.0))?;
        let resp: ListTransactionsResponse = raw.call(ApiKey::ListTransactions, version, &req)?;
        if resp.error_code != 0 {
            bail!(
                "Failed to list transactions: broker {}: {}",
                b.node_id.0,
                error_name(resp.error_code)
            );
        }
        for s in resp.unknown_state_filters {
            if !unknown_states.contains(&s.to_string()) {
                unknown_states.push(s.to_string());
            }
        }
        for t in resp.transaction_states {
            rows.push((
                t.transactional_id.0.to_string(),
                b.node_id.0,
                t.producer_id.0,
                t.transaction_state.to_string(),
            ));
        }
    }
    rows.sort();
    if !unknown_states.is_empty() {
        eprintln!(
            "herald: unknown transaction states (matched nothing): {}",
            unknown_states.join(", ")
        );
    }
    if common.json() {
        print_json(&json!(
            rows.iter()
                .map(|(id, c, p, s)| json!({
                    "transactional_id": id, "coordinator": c, "producer_id": p, "state": s,
                }))
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    let mut t = Table::new(&[
        "TransactionalId",
        "Coordinator",
        "ProducerId",
        "TransactionState",
    ]);
    for (id, c, p, s) in rows {
        t.row(vec![id, c.to_string(), p.to_string(), s]);
    }
    t.print();
    Ok(())
}

fn describe(common: &Common, id: &str) -> anyhow::Result<()> {
    let mut raw = RawClient::connect(common)?;
    let mut fc = FindCoordinatorRequest::default();
    fc.key = StrBytes::from_string(id.to_string());
    fc.key_type = KEY_TYPE_TRANSACTION;
    let coord: FindCoordinatorResponse = raw.call(ApiKey::FindCoordinator, 1, &fc)?;
    if coord.error_code != 0 {
        bail!(
            "cannot find the coordinator of transactional-id `{id}`: {}",
            error_name(coord.error_code)
        );
    }
    let addr = format!("{}:{}", coord.host.as_str(), coord.port);
    let mut raw = RawClient::connect_to(&addr, common)
        .with_context(|| format!("the coordinator {} at {addr}", coord.node_id.0))?;
    let mut req = DescribeTransactionsRequest::default();
    req.transactional_ids = vec![TransactionalId(StrBytes::from_string(id.to_string()))];
    let resp: DescribeTransactionsResponse = raw.call(ApiKey::DescribeTransactions, 0, &req)?;
    let Some(d) = resp.transaction_states.into_iter().next() else {
        bail!("the coordinator answered nothing for transactional-id `{id}`");
    };
    if d.error_code != 0 {
        bail!(
            "Failed to describe transaction state of transactional-id `{id}`: {}",
            error_name(d.error_code)
        );
    }
    let now = herald_broker::now_ms();
    // Kafka prints "None" for both when no transaction is open.
    let (start, duration) = if d.transaction_start_time_ms >= 0 {
        (
            Some(d.transaction_start_time_ms),
            Some(now - d.transaction_start_time_ms),
        )
    } else {
        (None, None)
    };
    let partitions: Vec<String> = d
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| format!("{}-{p}", t.topic.0.as_str()))
        })
        .collect();
    if common.json() {
        print_json(&json!({
            "coordinator_id": coord.node_id.0,
            "transactional_id": id,
            "producer_id": d.producer_id.0,
            "producer_epoch": d.producer_epoch,
            "state": d.transaction_state.as_str(),
            "timeout_ms": d.transaction_timeout_ms,
            "start_time_ms": start,
            "duration_ms": duration,
            "topic_partitions": partitions,
        }));
        return Ok(());
    }
    let none = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_else(|| "None".into());
    let mut t = Table::new(&[
        "CoordinatorId",
        "TransactionalId",
        "ProducerId",
        "ProducerEpoch",
        "TransactionState",
        "TransactionTimeoutMs",
        "CurrentTransactionStartTimeMs",
        "TransactionDurationMs",
        "TopicPartitions",
    ]);
    t.row(vec![
        coord.node_id.0.to_string(),
        id.to_string(),
        d.producer_id.0.to_string(),
        d.producer_epoch.to_string(),
        d.transaction_state.to_string(),
        d.transaction_timeout_ms.to_string(),
        none(start),
        none(duration),
        partitions.join(","),
    ]);
    t.print();
    Ok(())
}

fn describe_producers(common: &Common, args: &DescribeProducersArgs) -> anyhow::Result<()> {
    let md = metadata(common, Some(&args.topic))?;
    let target = match args.broker_id {
        Some(id) => id,
        None => {
            let t = md
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == args.topic))
                .with_context(|| format!("unknown topic '{}'", args.topic))?;
            if t.error_code != 0 {
                bail!("topic '{}': {}", args.topic, error_name(t.error_code));
            }
            let p = t
                .partitions
                .iter()
                .find(|p| p.partition_index == args.partition)
                .with_context(|| {
                    format!("topic '{}' has no partition {}", args.topic, args.partition)
                })?;
            p.leader_id.0
        }
    };
    let addr = broker_addr(&md, target).with_context(|| format!("no broker {target}"))?;
    let mut raw = RawClient::connect_to(&addr, common)
        .with_context(|| format!("broker {target} at {addr}"))?;
    let mut t = TopicRequest::default();
    t.name = TopicName(StrBytes::from_string(args.topic.clone()));
    t.partition_indexes = vec![args.partition];
    let mut req = DescribeProducersRequest::default();
    req.topics = vec![t];
    let resp: DescribeProducersResponse = raw.call(ApiKey::DescribeProducers, 0, &req)?;
    let p = resp
        .topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == args.partition)
        .context("the broker answered nothing for the partition")?;
    if p.error_code != 0 {
        let reason = match &p.error_message {
            Some(m) if !m.is_empty() => format!("{}: {m}", error_name(p.error_code)),
            _ => error_name(p.error_code),
        };
        bail!(
            "Failed to describe producers for partition {}-{} on broker {target}: {reason}",
            args.topic,
            args.partition
        );
    }
    let mut producers = p.active_producers;
    producers.sort_by_key(|s| s.producer_id.0);
    if common.json() {
        print_json(&json!(
            producers
                .iter()
                .map(|s| json!({
                    "producer_id": s.producer_id.0,
                    "producer_epoch": s.producer_epoch,
                    "coordinator_epoch": s.coordinator_epoch,
                    "last_sequence": s.last_sequence,
                    "last_timestamp": s.last_timestamp,
                    "current_transaction_start_offset":
                        (s.current_txn_start_offset >= 0).then_some(s.current_txn_start_offset),
                }))
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    let mut t = Table::new(&[
        "ProducerId",
        "ProducerEpoch",
        "LatestCoordinatorEpoch",
        "LastSequence",
        "LastTimestamp",
        "CurrentTransactionStartOffset",
    ]);
    for s in producers {
        t.row(vec![
            s.producer_id.0.to_string(),
            s.producer_epoch.to_string(),
            s.coordinator_epoch.to_string(),
            s.last_sequence.to_string(),
            s.last_timestamp.to_string(),
            if s.current_txn_start_offset >= 0 {
                s.current_txn_start_offset.to_string()
            } else {
                "None".into()
            },
        ]);
    }
    t.print();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_asks_for_the_lowest_version_that_carries_its_filters() {
        let mut a = ListArgs {
            states: vec!["Ongoing".into()],
            producer_ids: vec![1],
            duration_filter: None,
            transactional_id_pattern: None,
        };
        assert_eq!(list_version(&a), 0);
        a.duration_filter = Some(1000);
        assert_eq!(list_version(&a), 1);
        a.transactional_id_pattern = Some("pay-.*".into());
        assert_eq!(list_version(&a), 2);
    }
}
