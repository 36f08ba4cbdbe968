//! `herald group ...`: list, describe with lag, reset offsets, delete.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use herald_broker::group_coordinator::consumer_protocol::assigned_partitions;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, OffsetFetchRequest,
    OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use super::raw::RawClient;
use super::{Common, REQUEST_TIMEOUT, Table, metadata, parse_time_ms, print_json, require_topic};

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups.
    List,
    /// Members, assignments, committed offsets and lag of a group.
    Describe { group: String },
    /// Move a group's committed offsets (dry run unless --execute).
    ResetOffsets(ResetArgs),
    /// Delete groups (they must have no active members).
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct ResetArgs {
    pub group: String,
    #[arg(long, short = 't')]
    pub topic: String,
    /// Only these partitions (comma separated; default all).
    #[arg(long, value_delimiter = ',')]
    pub partitions: Vec<i32>,
    #[arg(long, group = "target")]
    pub to_earliest: bool,
    #[arg(long, group = "target")]
    pub to_latest: bool,
    /// RFC 3339, -1h, or epoch ms.
    #[arg(long, group = "target", allow_hyphen_values = true)]
    pub to_timestamp: Option<String>,
    #[arg(long, group = "target")]
    pub to_offset: Option<i64>,
    #[arg(long, group = "target", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Apply the change (otherwise only show it).
    #[arg(long)]
    pub execute: bool,
}

/// Committed offsets of every partition of `group`, via the group's coordinator.
fn committed(common: &Common, group: &str) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut raw = RawClient::connect(common)?;
    let mut fc = FindCoordinatorRequest::default();
    fc.key = StrBytes::from_string(group.to_string());
    let coord: FindCoordinatorResponse = raw.call(ApiKey::FindCoordinator, 1, &fc)?;
    if coord.error_code != 0 {
        bail!(
            "cannot find the coordinator of group '{group}' (error {})",
            coord.error_code
        );
    }
    let addr = format!("{}:{}", coord.host.as_str(), coord.port);
    let mut raw = RawClient::connect_to(&addr, common).or_else(|_| RawClient::connect(common))?;
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group.to_string()));
    req.topics = None;
    let resp: OffsetFetchResponse = raw.call(ApiKey::OffsetFetch, 3, &req)?;
    if resp.error_code != 0 {
        bail!(
            "cannot read the offsets of group '{group}' (error {})",
            resp.error_code
        );
    }
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.committed_offset >= 0 {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

pub async fn run(common: &Common, cmd: GroupCommand) -> anyhow::Result<()> {
    match cmd {
        GroupCommand::List => {
            let c = common.query_consumer(None)?;
            metadata(&c, None, &common.brokers)?;
            let list = c.fetch_group_list(None, REQUEST_TIMEOUT)?;
            let mut groups: Vec<_> = list
                .groups()
                .iter()
                .map(|g| {
                    (
                        g.name().to_string(),
                        g.state().to_string(),
                        g.protocol_type().to_string(),
                        g.members().len(),
                    )
                })
                .collect();
            groups.sort();
            if common.json() {
                print_json(&json!(groups.iter().map(|(n, s, t, m)| json!({"group": n, "state": s, "protocol_type": t, "members": m})).collect::<Vec<_>>()));
            } else {
                let mut t = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE", "MEMBERS"]);
                for (n, s, p, m) in groups {
                    t.row(vec![n, s, p, m.to_string()]);
                }
                t.print();
            }
        }
        GroupCommand::Describe { group } => describe(common, &group)?,
        GroupCommand::ResetOffsets(args) => reset(common, args)?,
        GroupCommand::Delete { groups } => {
            metadata(&common.query_consumer(None)?, None, &common.brokers)?;
            let admin: AdminClient<DefaultClientContext> = common.client_config()?.create()?;
            let names: Vec<&str> = groups.iter().map(String::as_str).collect();
            let opts = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
            let results = admin.delete_groups(&names, &opts).await?;
            let mut failed = Vec::new();
            for r in &results {
                match r {
                    Ok(g) if !common.json() => println!("deleted group {g}"),
                    Ok(_) => {}
                    Err((g, code)) => failed.push(format!("{g}: {code}")),
                }
            }
            if common.json() {
                print_json(&json!(
                    results
                        .iter()
                        .map(|r| match r {
                            Ok(g) => json!({"group": g, "status": "deleted"}),
                            Err((g, c)) => json!({"group": g, "status": format!("error: {c}")}),
                        })
                        .collect::<Vec<_>>()
                ));
            }
            if !failed.is_empty() {
                bail!("could not delete {}", failed.join(", "));
            }
        }
    }
    Ok(())
}

fn describe(common: &Common, group: &str) -> anyhow::Result<()> {
    let c = common.query_consumer(None)?;
    metadata(&c, None, &common.brokers)?;
    let list = c.fetch_group_list(Some(group), REQUEST_TIMEOUT)?;
    let info = list
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .context("group not in the response")?;
    let offsets = committed(common, group)?;
    if info.state() == "Dead" && offsets.is_empty() {
        bail!("unknown group '{group}'");
    }
    // Owner of each partition from the members' assignments.
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    let mut members = Vec::new();
    for m in info.members() {
        let parts = m.assignment().map(assigned_partitions).unwrap_or_default();
        for tp in &parts {
            owner.insert(tp.clone(), m.id().to_string());
        }
        members.push((
            m.id().to_string(),
            m.client_id().to_string(),
            m.client_host().to_string(),
            parts,
        ));
    }
    let mut keys: Vec<(String, i32)> = offsets.keys().cloned().collect();
    keys.extend(owner.keys().cloned());
    keys.sort();
    keys.dedup();
    let mut rows = Vec::new();
    for (topic, p) in keys {
        let (_, end) = c
            .fetch_watermarks(&topic, p, REQUEST_TIMEOUT)
            .unwrap_or((-1, -1));
        let committed = offsets.get(&(topic.clone(), p)).copied();
        let lag = committed.map(|o| (end - o).max(0));
        rows.push((
            topic.clone(),
            p,
            committed,
            end,
            lag,
            owner.get(&(topic, p)).cloned(),
        ));
    }
    if common.json() {
        print_json(&json!({
            "group": group, "state": info.state(), "protocol_type": info.protocol_type(), "protocol": info.protocol(),
            "members": members.iter().map(|(id, cid, host, parts)| json!({
                "member_id": id, "client_id": cid, "host": host,
                "assignment": parts.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "offsets": rows.iter().map(|(t, p, c, e, l, o)| json!({
                "topic": t, "partition": p, "committed_offset": c, "end_offset": e, "lag": l, "member_id": o,
            })).collect::<Vec<_>>(),
            "total_lag": rows.iter().filter_map(|r| r.4).sum::<i64>(),
        }));
        return Ok(());
    }
    println!("GROUP     {group}");
    println!("STATE     {}", info.state());
    println!("PROTOCOL  {} {}", info.protocol_type(), info.protocol());
    println!("MEMBERS   {}\n", members.len());
    let mut t = Table::new(&["TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"]);
    for (topic, p, c, e, l, o) in &rows {
        t.row(vec![
            topic.clone(),
            p.to_string(),
            c.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            e.to_string(),
            l.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            o.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    t.print();
    Ok(())
}

fn reset(common: &Common, args: ResetArgs) -> anyhow::Result<()> {
    let c = common.query_consumer(Some(&args.group))?;
    let md = metadata(&c, Some(&args.topic), &common.brokers)?;
    let count = require_topic(&md, &args.topic)?;
    let partitions: Vec<i32> = if args.partitions.is_empty() {
        (0..count).collect()
    } else {
        args.partitions.clone()
    };
    let list = c.fetch_group_list(Some(&args.group), REQUEST_TIMEOUT)?;
    if let Some(g) = list.groups().iter().find(|g| g.name() == args.group)
        && !matches!(g.state(), "Empty" | "Dead" | "")
    {
        bail!(
            "group '{}' is {} with {} members; stop its consumers before resetting offsets",
            args.group,
            g.state(),
            g.members().len()
        );
    }
    let current = committed(common, &args.group)?;
    let at_time = match &args.to_timestamp {
        Some(t) => {
            let ms = parse_time_ms(t)?;
            let mut q = TopicPartitionList::new();
            for p in &partitions {
                q.add_partition_offset(&args.topic, *p, Offset::Offset(ms))?;
            }
            Some(c.offsets_for_times(q, REQUEST_TIMEOUT)?)
        }
        None => None,
    };
    let mut plan = Vec::new();
    for p in &partitions {
        let (low, high) = c.fetch_watermarks(&args.topic, *p, REQUEST_TIMEOUT)?;
        let cur = current.get(&(args.topic.clone(), *p)).copied();
        let target = if args.to_earliest {
            low
        } else if args.to_latest {
            high
        } else if let Some(o) = args.to_offset {
            o
        } else if let Some(s) = args.shift_by {
            cur.unwrap_or(low) + s
        } else if let Some(found) = &at_time {
            match found.find_partition(&args.topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => high,
            }
        } else {
            bail!(
                "choose one of --to-earliest, --to-latest, --to-timestamp, --to-offset, --shift-by"
            );
        };
        plan.push((*p, cur, target.clamp(low, high)));
    }
    if args.execute {
        let mut tpl = TopicPartitionList::new();
        for (p, _, t) in &plan {
            tpl.add_partition_offset(&args.topic, *p, Offset::Offset(*t))?;
        }
        c.commit(&tpl, CommitMode::Sync)
            .with_context(|| format!("committing new offsets for group '{}'", args.group))?;
    }
    if common.json() {
        print_json(&json!({
            "group": args.group, "topic": args.topic, "executed": args.execute,
            "partitions": plan.iter().map(|(p, c, t)| json!({"partition": p, "current": c, "new": t})).collect::<Vec<_>>(),
        }));
    } else {
        let mut t = Table::new(&["TOPIC", "PARTITION", "CURRENT", "NEW"]);
        for (p, cur, new) in &plan {
            t.row(vec![
                args.topic.clone(),
                p.to_string(),
                cur.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                new.to_string(),
            ]);
        }
        t.print();
        if !args.execute {
            println!("\ndry run: nothing changed; add --execute to apply");
        }
    }
    Ok(())
}
