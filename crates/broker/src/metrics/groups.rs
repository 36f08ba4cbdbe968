//! Consumer groups at scrape time: committed offsets, lag, members, state.
//!
//! Series are bounded like the partitions' (`metrics_partition_series_max`
//! committed-offset series, and as many groups); what is left out is counted
//! in `herald_consumer_group_series_dropped`.

use std::sync::Arc;

use super::encode::{Family, Value};
use super::storage::{HighWatermarks, partition_offsets};
use crate::broker::Broker;

pub async fn collect(broker: &Arc<Broker>, watermarks: &HighWatermarks, out: &mut Vec<Family>) {
    let max = broker.config.metrics_partition_series_max;
    let mut listed = broker.groups.list(&[], &[]);
    listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    let mut committed = Family::gauge(
        "herald_consumer_group_committed_offset",
        "Offset the group committed on the partition (the next record it will read).",
    );
    let mut lag = Family::gauge(
        "herald_consumer_group_lag",
        "High watermark minus committed offset (never below 0).",
    );
    let mut members = Family::gauge("herald_consumer_group_members", "Members of the group.");
    let mut state = Family::gauge(
        "herald_consumer_group_state",
        "1 for the group's current state (Empty, Stable, PreparingRebalance, ...).",
    );
    let (mut shown, mut dropped) = (0usize, 0u64);
    for (gi, g) in listed.iter().enumerate() {
        if gi >= max {
            dropped += 1;
            continue;
        }
        let id = &g.group_id;
        let described = broker.groups.describe(std::slice::from_ref(id));
        let count = described.first().map(|d| d.members.len()).unwrap_or(0);
        members.push(vec![("group", id.clone())], Value::Gauge(count as i64));
        state.push(
            vec![("group", id.clone()), ("state", g.state.clone())],
            Value::Gauge(1),
        );
        let (error, topics) = broker.groups.fetch_offsets(id, None, None);
        if error != 0 {
            continue;
        }
        for (topic, offsets) in topics {
            for o in offsets {
                if o.offset < 0 || o.error != 0 {
                    continue;
                }
                if shown >= max {
                    dropped += 1;
                    continue;
                }
                let high = match watermarks.get(&(topic.clone(), o.partition)) {
                    Some(h) => Some(*h),
                    // Past the partition cap, or a partition that is gone.
                    None => match broker
                        .topics
                        .get(&topic)
                        .and_then(|t| t.partition(o.partition))
                    {
                        Some(p) => partition_offsets(&p).await.map(|x| x.high_watermark),
                        None => None,
                    },
                };
                shown += 1;
                let l = || {
                    vec![
                        ("group", id.clone()),
                        ("topic", topic.clone()),
                        ("partition", o.partition.to_string()),
                    ]
                };
                committed.push(l(), Value::Gauge(o.offset));
                if let Some(h) = high {
                    lag.push(l(), Value::Gauge((h - o.offset).max(0)));
                }
            }
        }
    }
    out.extend([committed, lag, members, state]);
    out.push(
        Family::gauge(
            "herald_consumer_group_series_dropped",
            "Groups and committed offsets left out of the group series (over --metrics-partition-series-max).",
        )
        .with(vec![], Value::Gauge(dropped as i64)),
    );
}
