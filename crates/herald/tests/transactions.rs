//! Kafka transactions with librdkafka (the rdkafka crate) against a real
//! Herald process: commit and abort across partitions seen by read_committed
//! and read_uncommitted consumers, fencing of a zombie producer, offsets
//! committed inside a transaction, and a broker restart.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{BrokerProcess, create_topic};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

fn txn_producer(b: &BrokerProcess, id: &str) -> TxnProducer {
    let p: TxnProducer = b
        .client_config()
        .set("transactional.id", id)
        .set("transaction.timeout.ms", "30000")
        .create()
        .expect("transactional producer");
    p.init_transactions(Duration::from_secs(30))
        .expect("init_transactions");
    p
}

fn send(p: &TxnProducer, topic: &str, partition: i32, value: &str) {
    p.send(
        BaseRecord::<str, str>::to(topic)
            .partition(partition)
            .key(value)
            .payload(value),
    )
    .map_err(|(e, _)| e)
    .expect("enqueue");
}

/// Every record of `topic` (all partitions, from the start) a consumer with
/// `isolation` reads until it has seen `expect_end` offsets or times out: by
/// partition, the values in order.
fn read_all(
    b: &BrokerProcess,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> BTreeMap<i32, Vec<String>> {
    let c: BaseConsumer = b.consumer(&[("isolation.level", isolation)]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut idle_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && idle_since.elapsed() < Duration::from_secs(3) {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                idle_since = Instant::now();
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                out.entry(m.partition()).or_default().push(v);
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    out
}

fn values(m: &BTreeMap<i32, Vec<String>>) -> Vec<String> {
    let mut v: Vec<String> = m.values().flatten().cloned().collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn commit_and_abort_across_partitions() {
    let b = BrokerProcess::start(&[]);
    create_topic(&b, "orders", 3).await;
    let p = txn_producer(&b, "tx-orders");
    p.begin_transaction().unwrap();
    for part in 0..3 {
        for i in 0..5 {
            send(&p, "orders", part, &format!("committed-{part}-{i}"));
        }
    }
    p.commit_transaction(Duration::from_secs(30))
        .expect("commit");
    p.begin_transaction().unwrap();
    for part in 0..3 {
        for i in 0..4 {
            send(&p, "orders", part, &format!("aborted-{part}-{i}"));
        }
    }
    p.flush(Duration::from_secs(10)).unwrap();
    p.abort_transaction(Duration::from_secs(30)).expect("abort");
    p.begin_transaction().unwrap();
    send(&p, "orders", 1, "committed-last");
    p.commit_transaction(Duration::from_secs(30))
        .expect("commit");

    let committed = read_all(&b, "orders", 3, "read_committed");
    let mut want: Vec<String> = (0..3)
        .flat_map(|part| (0..5).map(move |i| format!("committed-{part}-{i}")))
        .collect();
    want.push("committed-last".into());
    want.sort();
    assert_eq!(
        values(&committed),
        want,
        "read_committed sees exactly the committed records"
    );
    for part in 0..3 {
        let got = &committed[&part];
        let in_order: Vec<String> = (0..5).map(|i| format!("committed-{part}-{i}")).collect();
        assert_eq!(&got[..5], &in_order[..], "order within partition {part}");
    }
    let all = read_all(&b, "orders", 3, "read_uncommitted");
    let mut want_all = want.clone();
    want_all.extend((0..3).flat_map(|part| (0..4).map(move |i| format!("aborted-{part}-{i}"))));
    want_all.sort();
    assert_eq!(values(&all), want_all, "read_uncommitted sees both");
}

#[tokio::test(flavor = "multi_thread")]
async fn open_transaction_holds_back_read_committed_and_zombie_is_fenced() {
    let b = BrokerProcess::start(&[]);
    create_topic(&b, "lso", 1).await;
    let zombie = txn_producer(&b, "tx-z");
    zombie.begin_transaction().unwrap();
    send(&zombie, "lso", 0, "zombie-1");
    zombie.flush(Duration::from_secs(10)).unwrap();
    // A plain record after the open transaction's first offset.
    let plain = b.producer(&[]);
    plain
        .send(
            rdkafka::producer::FutureRecord::<str, str>::to("lso")
                .partition(0)
                .payload("plain"),
            Duration::from_secs(5),
        )
        .await
        .expect("plain produce");
    let before = read_all(&b, "lso", 1, "read_committed");
    assert!(
        values(&before).is_empty(),
        "nothing past the LSO: {before:?}"
    );

    // A second producer with the same id fences the first and aborts its transaction.
    let fresh = txn_producer(&b, "tx-z");
    let after = read_all(&b, "lso", 1, "read_committed");
    assert_eq!(values(&after), vec!["plain".to_string()]);
    send(&zombie, "lso", 0, "zombie-2");
    let r = zombie.commit_transaction(Duration::from_secs(30));
    let e = r.expect_err("the zombie cannot commit");
    assert!(
        e.rdkafka_error_code().is_some_and(|c| matches!(
            c,
            rdkafka::types::RDKafkaErrorCode::Fenced
                | rdkafka::types::RDKafkaErrorCode::ProducerFenced
                | rdkafka::types::RDKafkaErrorCode::InvalidProducerEpoch
        )),
        "fenced: {e:?}"
    );
    fresh.begin_transaction().unwrap();
    send(&fresh, "lso", 0, "fresh-1");
    fresh.commit_transaction(Duration::from_secs(30)).unwrap();
    let end = read_all(&b, "lso", 1, "read_committed");
    assert_eq!(
        values(&end),
        vec!["fresh-1".to_string(), "plain".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_in_a_transaction_and_restart() {
    let mut b = BrokerProcess::start(&[]);
    create_topic(&b, "in", 1).await;
    create_topic(&b, "out", 1).await;
    let group = "processor";
    let consumer: BaseConsumer =
        b.consumer(&[("group.id", group), ("enable.auto.commit", "false")]);
    consumer.subscribe(&["in"]).unwrap();
    let p = txn_producer(&b, "tx-proc");
    // Join the group (a poll that assigns).
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer.assignment().map(|a| a.count()).unwrap_or(0) == 0 && Instant::now() < deadline {
        let _ = consumer.poll(Duration::from_millis(100));
    }
    let committed_offset = |c: &BaseConsumer| -> Offset {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("in", 0);
        let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        got.find_partition("in", 0).unwrap().offset()
    };
    p.begin_transaction().unwrap();
    send(&p, "out", 0, "o1");
    let mut offs = TopicPartitionList::new();
    offs.add_partition_offset("in", 0, Offset::Offset(7))
        .unwrap();
    let meta = consumer.group_metadata().unwrap();
    p.send_offsets_to_transaction(&offs, &meta, Duration::from_secs(30))
        .expect("send_offsets_to_transaction");
    // A read_uncommitted client (require_stable false) sees the old offset; a
    // read_committed one (require_stable) is answered UNSTABLE_OFFSET_COMMIT,
    // which librdkafka retries until the transaction ends.
    let observer: BaseConsumer =
        b.consumer(&[("group.id", group), ("isolation.level", "read_uncommitted")]);
    assert_eq!(
        committed_offset(&observer),
        Offset::Invalid,
        "not visible before commit"
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("in", 0);
    assert!(
        consumer
            .committed_offsets(tpl, Duration::from_secs(2))
            .is_err(),
        "require_stable waits while the transaction holds the offset"
    );
    p.commit_transaction(Duration::from_secs(30)).unwrap();
    assert_eq!(committed_offset(&consumer), Offset::Offset(7));

    p.begin_transaction().unwrap();
    send(&p, "out", 0, "o2-aborted");
    let mut offs = TopicPartitionList::new();
    offs.add_partition_offset("in", 0, Offset::Offset(9))
        .unwrap();
    p.send_offsets_to_transaction(&offs, &meta, Duration::from_secs(30))
        .unwrap();
    p.abort_transaction(Duration::from_secs(30)).unwrap();
    assert_eq!(
        committed_offset(&consumer),
        Offset::Offset(7),
        "an abort keeps the offset"
    );
    drop(observer);
    drop(consumer);
    drop(p);

    // A restart keeps committed and aborted transactions as they were.
    b.stop();
    b.restart();
    let out = read_all(&b, "out", 1, "read_committed");
    assert_eq!(values(&out), vec!["o1".to_string()]);
    let p = txn_producer(&b, "tx-proc");
    p.begin_transaction().unwrap();
    send(&p, "out", 0, "o3");
    p.commit_transaction(Duration::from_secs(30)).unwrap();
    let out = read_all(&b, "out", 1, "read_committed");
    assert_eq!(values(&out), vec!["o1".to_string(), "o3".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_past_its_timeout_is_aborted() {
    let b = BrokerProcess::start(&[
        "--transaction-abort-timed-out-transaction-cleanup-interval-ms",
        "200",
    ]);
    create_topic(&b, "slow", 1).await;
    let p: TxnProducer = b
        .client_config()
        .set("transactional.id", "tx-slow")
        .set("transaction.timeout.ms", "2000")
        .create()
        .unwrap();
    p.init_transactions(Duration::from_secs(30)).unwrap();
    p.begin_transaction().unwrap();
    send(&p, "slow", 0, "never-visible");
    p.flush(Duration::from_secs(10)).unwrap();
    // The broker aborts it; the LSO then moves past its records.
    let deadline = Instant::now() + Duration::from_secs(20);
    let c: BaseConsumer = b.consumer(&[("isolation.level", "read_committed")]);
    loop {
        let (_, high) = c
            .fetch_watermarks("slow", 0, Duration::from_secs(5))
            .unwrap();
        // read_committed watermarks are the LSO: past the record and its marker.
        if high >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the LSO never moved: {high}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(values(&read_all(&b, "slow", 1, "read_committed")).is_empty());
    assert!(
        p.commit_transaction(Duration::from_secs(10)).is_err(),
        "the timed-out producer is fenced"
    );
    assert!(
        b.wait_log(&["aborting a transaction past its timeout"])
            .is_some()
    );
}
