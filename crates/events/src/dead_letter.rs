//! Replaying a dead-letter topic back into its source topic, once the cause
//! of the failures is fixed.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::publisher::Publisher;
use crate::retry::{self, headers as h};
use crate::{Error, Result};

/// Moves every record currently in `<topic>.dlq` (not yet replayed) back to
/// its original topic, without Herald's routing headers. Progress is kept as
/// the committed offsets of group `herald-dlq-replay.<topic>`, so a second call
/// replays only what arrived since. Returns how many records were replayed.
pub async fn replay_dead_letters(brokers: &str, topic: &str) -> Result<usize> {
    replay_dead_letters_with(brokers, topic, &[]).await
}

/// As `replay_dead_letters`, with extra librdkafka properties (security).
pub async fn replay_dead_letters_with(
    brokers: &str,
    topic: &str,
    extra: &[(String, String)],
) -> Result<usize> {
    let dlq = retry::dead_letter_topic(topic);
    let group = format!("herald-dlq-replay.{topic}");
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        // Dead letters an exactly-once subscriber routed in a transaction
        // that aborted are not dead letters; the end of a partition is then
        // its last stable offset, told by a partition EOF (the last offsets
        // may be transaction markers, never delivered as records).
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    for (k, v) in extra {
        cc.set(k, v);
    }
    let consumer: BaseConsumer = cc.create()?;
    let md = consumer.fetch_metadata(Some(&dlq), Duration::from_secs(10))?;
    let partitions = md
        .topics()
        .first()
        .map(|t| t.partitions().len() as i32)
        .unwrap_or(0);
    if partitions == 0 {
        return Ok(0);
    }
    let extra_refs: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let publisher =
        Publisher::with_config(brokers, &format!("herald-dlq-replay/{topic}"), &extra_refs)?;
    let mut query = TopicPartitionList::new();
    for p in 0..partitions {
        query.add_partition(&dlq, p);
    }
    let committed = consumer.committed_offsets(query, Duration::from_secs(10))?;
    let mut assign = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(&dlq, p, Duration::from_secs(10))?;
        let start = match committed.find_partition(&dlq, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o.max(low),
            _ => low,
        };
        if start < high {
            assign.add_partition_offset(&dlq, p, Offset::Offset(start))?;
            ends.push((p, high));
        }
    }
    if ends.is_empty() {
        return Ok(0);
    }
    consumer.assign(&assign)?;
    let mut replayed = 0usize;
    let mut done: std::collections::HashMap<i32, i64> = std::collections::HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while done.len() < ends.len() {
        if std::time::Instant::now() > deadline {
            return Err(Error::Other(format!(
                "replay of {dlq} did not finish in time"
            )));
        }
        let m = match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                if let Some((_, end)) = ends.iter().find(|(q, _)| *q == p) {
                    done.insert(p, *end);
                }
                continue;
            }
            Some(m) => m?,
        };
        let headers = crate::subscriber::collect_headers(&m);
        let target = crate::subscriber::header_str(&headers, h::ORIGINAL_TOPIC)
            .unwrap_or_else(|| topic.to_string());
        let clean: Vec<(String, Vec<u8>)> = headers
            .into_iter()
            .filter(|(k, _)| !h::ALL.contains(&k.as_str()))
            .collect();
        publisher
            .publish_raw(&target, m.key(), m.payload(), &clean)
            .await?;
        replayed += 1;
        let mut c = TopicPartitionList::new();
        c.add_partition_offset(&dlq, m.partition(), Offset::Offset(m.offset() + 1))?;
        consumer.commit(&c, CommitMode::Sync)?;
        if let Some((_, end)) = ends.iter().find(|(p, _)| *p == m.partition())
            && m.offset() + 1 >= *end
        {
            done.insert(m.partition(), *end);
        }
    }
    Ok(replayed)
}
