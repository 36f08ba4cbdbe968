//! Kafka behaviour in cluster mode, two brokers in this process on real
//! PostgreSQL and SeaweedFS, driven by librdkafka: topics created on one broker
//! are seen by the other at once; ListOffsets (latest, by time), DeleteRecords
//! and OFFSET_OUT_OF_RANGE; retention; refused configs; topic deletion.

mod common;

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

fn config(addr: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr);
    c
}

async fn produce(addr: &str, topic: &str, n: usize, timestamp: Option<i64>) {
    let p: FutureProducer = config(addr).set("linger.ms", "2").create().unwrap();
    let mut futs = Vec::new();
    for i in 0..n {
        let v = format!("{i}");
        let mut r = FutureRecord::<(), _>::to(topic).partition(0).payload(&v);
        if let Some(t) = timestamp {
            r = r.timestamp(t + i as i64);
        }
        futs.push(p.send_result(r).unwrap());
    }
    for f in futs {
        f.await.unwrap().unwrap();
    }
}

/// librdkafka 2.10+ retires its bootstrap connection after the first metadata
/// answer; a query in flight on it fails with DestroyBroker: ask again.
fn watermarks(c: &BaseConsumer, topic: &str) -> (i64, i64) {
    let mut last = None;
    for _ in 0..5 {
        match c.fetch_watermarks(topic, 0, Duration::from_secs(10)) {
            Ok(w) => return w,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("watermarks of {topic}: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_brokers_behave_like_kafka() {
    let env = common::env();
    let dir = tempfile::tempdir().unwrap();
    let a = common::broker(
        &env,
        1,
        dir.path(),
        common::cluster_config(&env),
        common::store(&env.s3),
    )
    .await;
    let b = common::broker(
        &env,
        2,
        dir.path(),
        common::cluster_config(&env),
        common::store(&env.s3),
    )
    .await;
    let (addr_a, addr_b) = (a.addr.to_string(), b.addr.to_string());
    let admin_a: AdminClient<DefaultClientContext> = config(&addr_a).create().unwrap();
    let admin_b: AdminClient<DefaultClientContext> = config(&addr_b).create().unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));

    // Created on A, with replication factor 3: seen by B at once.
    for r in admin_a
        .create_topics(
            &[NewTopic::new("orders", 2, TopicReplication::Fixed(3))],
            &opts,
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let seen_by_b = Instant::now();
    loop {
        let md = b.broker.topics.get("orders");
        if md.is_some_and(|t| t.partition_count() == 2) {
            break;
        }
        assert!(
            seen_by_b.elapsed() < Duration::from_secs(2),
            "broker 2 did not see the topic"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "topic seen by the other broker after {:?}",
        seen_by_b.elapsed()
    );

    // Compaction is refused in cluster mode, with Kafka's code.
    let r = admin_b
        .create_topics(
            &[NewTopic::new("compacted", 1, TopicReplication::Fixed(1))
                .set("cleanup.policy", "compact")],
            &opts,
        )
        .await
        .unwrap();
    assert!(
        matches!(&r[0], Err((_, RDKafkaErrorCode::InvalidConfig))),
        "{r:?}"
    );

    // ListOffsets: latest and by timestamp, asked of the other broker.
    produce(&addr_a, "orders", 100, Some(1_000_000)).await;
    let consumer: BaseConsumer = config(&addr_b)
        .set("group.id", "unused")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .create()
        .unwrap();
    let (low, high) = watermarks(&consumer, "orders");
    assert_eq!((low, high), (0, 100));
    let mut q = TopicPartitionList::new();
    q.add_partition_offset("orders", 0, Offset::Offset(1_000_042))
        .unwrap();
    let found = consumer
        .offsets_for_times(q, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        found.find_partition("orders", 0).unwrap().offset(),
        Offset::Offset(42)
    );

    // DeleteRecords through B; then a fetch below the log start is out of range.
    let mut del = TopicPartitionList::new();
    del.add_partition_offset("orders", 0, Offset::Offset(40))
        .unwrap();
    let deleted = admin_b.delete_records(&del, &opts).await.unwrap();
    assert_eq!(
        deleted.find_partition("orders", 0).unwrap().offset(),
        Offset::Offset(40)
    );
    let (low, high) = watermarks(&consumer, "orders");
    assert_eq!((low, high), (40, 100));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("orders", 0, Offset::Offset(10))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "no OFFSET_OUT_OF_RANGE");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::OffsetOutOfRange)))
            | Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => break,
            Some(Ok(m)) => panic!("read offset {} below the log start", m.offset()),
            _ => {}
        }
    }
    // Reading from the log start gives offsets 40.. with their values.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("orders", 0, Offset::Offset(40))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let m = loop {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            break m.detach();
        }
    };
    assert_eq!(m.offset(), 40);
    assert_eq!(m.payload(), Some(&b"40"[..]));

    // Retention by time: old records go, in a pass of the maintenance task.
    for r in admin_a
        .create_topics(
            &[NewTopic::new("short", 1, TopicReplication::Fixed(1)).set("retention.ms", "1000")],
            &opts,
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let now = herald_broker::now_ms();
    produce(&addr_a, "short", 10, Some(now - 60_000)).await;
    produce(&addr_a, "short", 5, Some(now)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (low, high) = watermarks(&consumer, "short");
        assert_eq!(high, 15);
        if low == 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retention did not advance the log start (at {low})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Deleted on B: gone from A at once.
    for r in admin_b.delete_topics(&["orders"], &opts).await.unwrap() {
        r.unwrap();
    }
    let gone = Instant::now();
    while a.broker.topics.get("orders").is_some() {
        assert!(
            gone.elapsed() < Duration::from_secs(2),
            "broker 1 still has the deleted topic"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let c = common::pool(&env.pg).await.get().await.unwrap();
    let rows: i64 = c
        .query_one(
            "SELECT count(*) FROM batches b JOIN topics t USING (topic_id) WHERE t.name = 'orders'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    a.shutdown().await;
    b.shutdown().await;
}
