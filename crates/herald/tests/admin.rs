//! Admin operations through librdkafka's admin API and consumer metadata calls.

mod common;

use std::time::Duration;

use common::{BrokerProcess, create_topic};
use rdkafka::admin::{
    AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_lifecycle_configs_partitions_records() {
    let b = BrokerProcess::start(&[]);
    let admin = b.admin();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));

    // Create with an override; a second create fails with TOPIC_ALREADY_EXISTS; bad configs are refused.
    let t = NewTopic::new("events", 2, TopicReplication::Fixed(1)).set("retention.ms", "3600000");
    let r = admin.create_topics(&[t], &opts).await.expect("create");
    assert!(r[0].is_ok(), "{r:?}");
    let again = admin
        .create_topics(
            &[NewTopic::new("events", 2, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .expect("create");
    assert!(
        matches!(
            &again[0],
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))
        ),
        "{again:?}"
    );
    let bad =
        NewTopic::new("bad-config", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon");
    let r = admin.create_topics(&[bad], &opts).await.expect("create");
    assert!(
        matches!(
            &r[0],
            Err((_, rdkafka::types::RDKafkaErrorCode::InvalidConfig))
        ),
        "{r:?}"
    );
    let rf3 = NewTopic::new("rf3", 1, TopicReplication::Fixed(3));
    let r = admin.create_topics(&[rf3], &opts).await.expect("create");
    assert!(
        matches!(
            &r[0],
            Err((
                _,
                rdkafka::types::RDKafkaErrorCode::InvalidReplicationFactor
            ))
        ),
        "{r:?}"
    );

    // Describe: the override is a dynamic topic config, the rest are defaults.
    let d = admin
        .describe_configs(&[ResourceSpecifier::Topic("events")], &opts)
        .await
        .expect("describe");
    let res = d[0].as_ref().expect("resource");
    let retention = res.get("retention.ms").expect("retention.ms listed");
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    let seg = res.get("segment.bytes").expect("segment.bytes listed");
    assert_eq!(seg.source, ConfigSource::Default);
    assert!(
        res.entries.len() >= 15,
        "every topic config listed, got {}",
        res.entries.len()
    );
    let broker = admin
        .describe_configs(&[ResourceSpecifier::Broker(1)], &opts)
        .await
        .expect("describe broker");
    assert!(
        broker[0]
            .as_ref()
            .expect("broker")
            .get("num.partitions")
            .is_some()
    );

    // Alter (AlterConfigs replaces the overrides).
    let alter = AlterConfig::new(ResourceSpecifier::Topic("events"))
        .set("cleanup.policy", "delete")
        .set("max.message.bytes", "2048");
    let r = admin.alter_configs(&[alter], &opts).await.expect("alter");
    assert!(r[0].is_ok(), "{r:?}");
    let d = admin
        .describe_configs(&[ResourceSpecifier::Topic("events")], &opts)
        .await
        .expect("describe");
    let res = d[0].as_ref().expect("resource");
    assert_eq!(
        res.get("max.message.bytes")
            .and_then(|e| e.value.as_deref()),
        Some("2048")
    );
    assert_eq!(
        res.get("retention.ms").map(|e| &e.source),
        Some(&ConfigSource::Default)
    );

    // Create partitions: 2 -> 4, then shrinking is refused.
    let r = admin
        .create_partitions(&[NewPartitions::new("events", 4)], &opts)
        .await
        .expect("partitions");
    assert!(r[0].is_ok(), "{r:?}");
    let r = admin
        .create_partitions(&[NewPartitions::new("events", 3)], &opts)
        .await
        .expect("partitions");
    assert!(r[0].is_err(), "shrinking must fail: {r:?}");
    let consumer = b.consumer(&[]);
    let md = consumer
        .fetch_metadata(Some("events"), Duration::from_secs(5))
        .expect("metadata");
    assert_eq!(md.topics()[0].partitions().len(), 4);

    // Produce 10 records into partition 0, delete the first 4, and check the low watermark.
    let producer = b.producer(&[]);
    for i in 0..10 {
        let v = format!("v{i}");
        producer
            .send(
                FutureRecord::<(), _>::to("events").partition(0).payload(&v),
                Duration::from_secs(5),
            )
            .await
            .expect("produce");
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("events", 0, Offset::Offset(4))
        .expect("tpl");
    let r = admin
        .delete_records(&tpl, &opts)
        .await
        .expect("delete records");
    assert_eq!(r.elements()[0].offset(), Offset::Offset(4));
    let (low, high) = consumer
        .fetch_watermarks("events", 0, Duration::from_secs(5))
        .expect("watermarks");
    assert_eq!((low, high), (4, 10));

    // Delete the topic.
    let r = admin
        .delete_topics(&["events"], &opts)
        .await
        .expect("delete");
    assert!(r[0].is_ok(), "{r:?}");
    let r = admin
        .delete_topics(&["events"], &opts)
        .await
        .expect("delete");
    assert!(
        matches!(
            &r[0],
            Err((_, rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition))
        ),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_finds_the_first_record_at_or_after() {
    let b = BrokerProcess::start(&[]);
    create_topic(&b, "timed", 1).await;
    let producer = b.producer(&[("linger.ms", "50")]);
    // Ten records 1 s apart in event time, all sent in one batch.
    let base: i64 = 1_700_000_000_000;
    let mut futures = Vec::new();
    for i in 0..10i64 {
        let v = format!("v{i}");
        let rec = FutureRecord::<(), _>::to("timed")
            .payload(&v)
            .timestamp(base + i * 1000);
        futures.push(
            producer
                .send_result(rec)
                .map_err(|(e, _)| e)
                .expect("enqueue"),
        );
    }
    for f in futures {
        f.await.expect("future").expect("delivered");
    }
    let consumer = b.consumer(&[]);
    for (ts, want) in [(base - 1, 0), (base, 0), (base + 3500, 4), (base + 9000, 9)] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("timed", 0, Offset::Offset(ts))
            .expect("tpl");
        let r = consumer
            .offsets_for_times(tpl, Duration::from_secs(5))
            .expect("offsets_for_times");
        assert_eq!(
            r.elements()[0].offset(),
            Offset::Offset(want),
            "timestamp {ts}"
        );
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("timed", 0, Offset::Offset(base + 60_000))
        .expect("tpl");
    let r = consumer
        .offsets_for_times(tpl, Duration::from_secs(5))
        .expect("offsets_for_times");
    assert_eq!(
        r.elements()[0].offset(),
        Offset::End,
        "after the last record: end"
    );
}
