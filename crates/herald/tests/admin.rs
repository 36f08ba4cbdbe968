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
        .describe_configs(&[ResourceSpecifier::Broker(0)], &opts)
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

/// Kafka answers success with a null error message where its code sets
/// ApiError.NONE (CreateTopics, AlterConfigs, IncrementalAlterConfigs), and
/// FindCoordinator v1-3 with Errors.NONE.message(), "NONE". The crate's
/// defaults are "", which clients that compare against null trip on.
#[test]
fn successful_answers_carry_kafkas_error_messages() {
    use kafka_protocol::messages::{
        AlterConfigsRequest, AlterConfigsResponse, ApiKey, CreateTopicsRequest,
        CreateTopicsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
        IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    };
    use kafka_protocol::protocol::StrBytes;
    use std::io::Write;
    let b = BrokerProcess::start(&[]);
    let mut s = common::kafka_wire::connect(&b.addr);
    let sb = |v: &str| StrBytes::from_string(v.to_string());

    for (i, version) in [2i16, 5, 7].into_iter().enumerate() {
        let mut req = CreateTopicsRequest::default();
        req.timeout_ms = 10_000;
        req.topics = vec![common::kafka_wire::creatable(
            &format!("null-msg-{version}"),
            1,
            &[],
        )];
        s.write_all(&common::kafka_wire::frame(
            ApiKey::CreateTopics,
            version,
            i as i32,
            &req,
        ))
        .expect("send");
        let resp: CreateTopicsResponse =
            common::kafka_wire::read_response(&mut s, ApiKey::CreateTopics, version)
                .expect("answered");
        assert_eq!(resp.topics[0].error_code, 0, "v{version}");
        assert_eq!(
            resp.topics[0].error_message, None,
            "CreateTopics v{version}"
        );
    }

    let mut alter = AlterConfigsRequest::default();
    let mut res = kafka_protocol::messages::alter_configs_request::AlterConfigsResource::default();
    res.resource_type = 2;
    res.resource_name = sb("null-msg-2");
    let mut c = kafka_protocol::messages::alter_configs_request::AlterableConfig::default();
    c.name = sb("retention.ms");
    c.value = Some(sb("60000"));
    res.configs = vec![c];
    alter.resources = vec![res];
    s.write_all(&common::kafka_wire::frame(
        ApiKey::AlterConfigs,
        2,
        10,
        &alter,
    ))
    .expect("send");
    let resp: AlterConfigsResponse =
        common::kafka_wire::read_response(&mut s, ApiKey::AlterConfigs, 2).expect("answered");
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(resp.responses[0].error_message, None, "AlterConfigs");

    let mut inc = IncrementalAlterConfigsRequest::default();
    let mut res =
        kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource::default(
        );
    res.resource_type = 2;
    res.resource_name = sb("null-msg-5");
    let mut c =
        kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig::default();
    c.name = sb("retention.ms");
    c.config_operation = 0;
    c.value = Some(sb("60000"));
    res.configs = vec![c];
    inc.resources = vec![res];
    s.write_all(&common::kafka_wire::frame(
        ApiKey::IncrementalAlterConfigs,
        1,
        11,
        &inc,
    ))
    .expect("send");
    let resp: IncrementalAlterConfigsResponse =
        common::kafka_wire::read_response(&mut s, ApiKey::IncrementalAlterConfigs, 1)
            .expect("answered");
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(
        resp.responses[0].error_message, None,
        "IncrementalAlterConfigs"
    );

    let mut find = FindCoordinatorRequest::default();
    find.key = sb("some-group");
    s.write_all(&common::kafka_wire::frame(
        ApiKey::FindCoordinator,
        2,
        12,
        &find,
    ))
    .expect("send");
    let resp: FindCoordinatorResponse =
        common::kafka_wire::read_response(&mut s, ApiKey::FindCoordinator, 2).expect("answered");
    assert_eq!(resp.error_code, 0);
    assert_eq!(
        resp.error_message.as_ref().map(|m| m.as_str()),
        Some("NONE")
    );
}

/// The default broker id is 0 (Kafka's single broker of old); a data
/// directory created under another id keeps it across restarts without
/// `--node-id` (data directories from before this default say 1).
#[test]
fn default_node_id_is_zero_and_a_data_directory_keeps_its_own() {
    let mut b = BrokerProcess::start(&[]);
    let ids = |b: &BrokerProcess| -> Vec<i32> {
        let c = b.consumer(&[]);
        let md = c
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata");
        md.brokers().iter().map(|x| x.id()).collect()
    };
    assert_eq!(ids(&b), [0]);
    b.stop();
    let meta_path = b.data_dir().join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).expect("meta.json")).expect("json");
    assert_eq!(meta["node_id"], 0);
    meta["node_id"] = 1.into();
    std::fs::write(&meta_path, serde_json::to_vec(&meta).expect("json")).expect("write");
    b.restart();
    assert_eq!(
        ids(&b),
        [1],
        "the data directory's id wins over the default"
    );
}
