//! Kafka's internal topics against a real Herald process: `__consumer_offsets`
//! is listed (is_internal) and read with Kafka's record schemas by a regex
//! subscription (librdkafka), clients cannot produce to, create, delete or
//! resize it, a Metadata request for it creates no user topic, and a data
//! directory in which an older Herald auto-created a user topic of that name
//! still starts.

mod common;

use std::time::{Duration, Instant};

use common::kafka_wire::{connect, frame, read_response};
use common::{BrokerProcess, create_topic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::types::RDKafkaErrorCode;

/// A Kafka classic-encoding reader: what a lag tool's decoder does.
struct Rd<'a>(&'a [u8]);

impl Rd<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take(2).try_into().unwrap())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take(8).try_into().unwrap())
    }
    fn str(&mut self) -> String {
        let n = self.i16();
        if n < 0 {
            return String::new();
        }
        String::from_utf8(self.take(n as usize).to_vec()).unwrap()
    }
}

fn metadata(addr: &str, version: i16, topics: Option<Vec<&str>>, create: bool) -> MetadataResponse {
    let mut s = connect(addr);
    let mut req = MetadataRequest::default();
    req.topics = topics.map(|ts| {
        ts.into_iter()
            .map(|t| {
                let mut r = MetadataRequestTopic::default();
                r.name = Some(TopicName(StrBytes::from_string(t.to_string())));
                r
            })
            .collect()
    });
    req.allow_auto_topic_creation = create;
    use std::io::Write;
    s.write_all(&frame(ApiKey::Metadata, version, 1, &req))
        .unwrap();
    read_response(&mut s, ApiKey::Metadata, version).expect("metadata response")
}

fn find<'a>(
    r: &'a MetadataResponse,
    name: &str,
) -> Option<&'a kafka_protocol::messages::metadata_response::MetadataResponseTopic> {
    r.topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
}

#[tokio::test(flavor = "multi_thread")]
async fn regex_subscription_reads_consumer_offsets_in_kafkas_schema() {
    let b = BrokerProcess::start(&[]);
    create_topic(&b, "orders", 1).await;
    b.produce_to_partition_0("orders", 10).await;
    b.commit_partition_0("billing", "orders", 7);

    // librdkafka matches regex subscriptions against every topic Metadata
    // lists, internal ones included.
    let c: BaseConsumer = b.consumer(&[
        ("group.id", "offsets-reader"),
        ("auto.offset.reset", "earliest"),
        ("topic.metadata.refresh.interval.ms", "500"),
    ]);
    c.subscribe(&["^__.*"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = None;
    let mut topics_seen = std::collections::BTreeSet::new();
    while found.is_none() && Instant::now() < deadline {
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("message");
        topics_seen.insert(m.topic().to_string());
        let key = m.key().expect("key");
        let mut k = Rd(key);
        let version = k.i16();
        if m.topic() != "__consumer_offsets" || version > 1 {
            continue;
        }
        let (group, topic, partition) = (k.str(), k.str(), k.i32());
        if group != "billing" {
            continue;
        }
        let mut v = Rd(m.payload().expect("value"));
        assert_eq!(v.i16(), 3, "OffsetCommitValue version");
        let offset = v.i64();
        let _leader_epoch = v.i32();
        let _metadata = v.str();
        let commit_ts = v.i64();
        assert!(v.0.is_empty(), "value fully read");
        found = Some((topic, partition, offset, commit_ts, m.offset()));
    }
    let (topic, partition, offset, commit_ts, _at) =
        found.unwrap_or_else(|| panic!("no offset commit read; topics seen: {topics_seen:?}"));
    assert_eq!((topic.as_str(), partition, offset), ("orders", 0, 7));
    assert!(commit_ts > 0);
    assert!(
        c.assignment()
            .unwrap()
            .elements()
            .iter()
            .any(|e| e.topic() == "__consumer_offsets")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn internal_topics_are_listed_and_refuse_writes() {
    let b = BrokerProcess::start(&[]);
    // A user topic may start with "__": it is not internal.
    create_topic(&b, "__mine", 1).await;

    let all = metadata(&b.addr, 12, None, false);
    let offsets = find(&all, "__consumer_offsets").expect("__consumer_offsets listed");
    assert!(offsets.is_internal);
    assert_eq!(offsets.partitions.len(), 1);
    let txn = find(&all, "__transaction_state").expect("__transaction_state listed");
    assert!(txn.is_internal);
    assert!(!find(&all, "__mine").unwrap().is_internal);

    // By name, with auto-creation allowed: the internal topic, no user topic.
    let r = metadata(&b.addr, 12, Some(vec!["__consumer_offsets"]), true);
    let t = find(&r, "__consumer_offsets").unwrap();
    assert_eq!(t.error_code, 0);
    assert!(t.is_internal);
    assert!(
        !b.data_dir()
            .join("topics")
            .join("__consumer_offsets")
            .exists()
    );

    // Produce: INVALID_TOPIC_EXCEPTION, as Kafka.
    let p = b.producer(&[("message.timeout.ms", "5000"), ("retries", "0")]);
    let err = p
        .send(
            FutureRecord::<str, str>::to("__consumer_offsets")
                .partition(0)
                .payload("x"),
            Duration::from_secs(10),
        )
        .await
        .expect_err("produce to __consumer_offsets refused");
    assert_eq!(
        err.0.rdkafka_error_code(),
        Some(RDKafkaErrorCode::InvalidTopic),
        "{err:?}"
    );

    let admin = b.admin();
    let opts = AdminOptions::new();
    // CreateTopics: it exists.
    let r = admin
        .create_topics(
            &[NewTopic::new(
                "__consumer_offsets",
                3,
                TopicReplication::Fixed(1),
            )],
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::TopicAlreadyExists
    );
    // DeleteTopics and CreatePartitions: refused.
    let r = admin
        .delete_topics(&["__consumer_offsets"], &opts)
        .await
        .unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::TopicDeletionDisabled
    );
    let r = admin
        .create_partitions(&[NewPartitions::new("__transaction_state", 4)], &opts)
        .await
        .unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidPartitions
    );
    let all = metadata(&b.addr, 12, None, false);
    assert_eq!(
        find(&all, "__consumer_offsets").unwrap().partitions.len(),
        1
    );
}

/// An older Herald auto-created a user topic named `__consumer_offsets`:
/// that data directory still starts; the name is the internal topic's, the
/// old topic's files stay untouched.
#[tokio::test(flavor = "multi_thread")]
async fn an_old_user_topic_of_the_name_is_hidden() {
    let mut b = BrokerProcess::start(&[]);
    create_topic(&b, "old", 1).await;
    b.produce_to_partition_0("old", 3).await;
    b.stop();
    let topics = b.data_dir().join("topics");
    std::fs::rename(topics.join("old"), topics.join("__consumer_offsets")).unwrap();
    let meta_path = topics.join("__consumer_offsets").join("topic.json");
    let meta = std::fs::read_to_string(&meta_path).unwrap();
    std::fs::write(
        &meta_path,
        meta.replace("\"old\"", "\"__consumer_offsets\""),
    )
    .unwrap();
    b.restart();
    assert!(
        b.wait_log(&["user topic with the name of Kafka's internal topic"])
            .is_some()
    );
    let all = metadata(&b.addr, 12, None, false);
    assert!(find(&all, "__consumer_offsets").unwrap().is_internal);
    assert!(meta_path.exists());
}
