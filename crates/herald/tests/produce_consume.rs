//! librdkafka (rdkafka crate) against a real Herald process: idempotent keyed
//! produce into several partitions, consumed back in order; every codec.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{BrokerProcess, create_topic};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// Enqueues every record, then awaits every delivery; returns (partition, offset) per record.
async fn produce_all(
    p: &FutureProducer,
    topic: &str,
    records: &[(String, String)],
) -> Vec<(i32, i64)> {
    let mut futures = Vec::with_capacity(records.len());
    for (k, v) in records {
        let mut rec = FutureRecord::to(topic).key(k).payload(v);
        loop {
            match p.send_result(rec) {
                Ok(f) => {
                    futures.push(f);
                    break;
                }
                Err((e, r)) => {
                    assert!(
                        matches!(
                            e,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ),
                        "enqueue failed: {e}"
                    );
                    rec = r;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    }
    let mut out = Vec::with_capacity(futures.len());
    for f in futures {
        let d = f.await.expect("delivery future").expect("delivered");
        out.push((d.partition, d.offset));
    }
    out
}

/// Reads every partition from the beginning until `expected` messages arrived.
fn consume_all(
    c: &BaseConsumer,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> Vec<(i32, i64, String, String)> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = Vec::with_capacity(expected);
    while out.len() < expected {
        assert!(
            Instant::now() < deadline,
            "timed out: got {} of {expected}",
            out.len()
        );
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push((
                m.partition(),
                m.offset(),
                String::from_utf8(m.key().expect("key").to_vec()).expect("utf8"),
                String::from_utf8(m.payload().expect("payload").to_vec()).expect("utf8"),
            )),
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_keyed_100k_into_3_partitions_consumed_in_order() {
    let b = BrokerProcess::start(&[]);
    create_topic(&b, "orders", 3).await;
    let producer = b.producer(&[
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("linger.ms", "5"),
        ("compression.type", "lz4"),
    ]);
    const N: usize = 100_000;
    const KEYS: usize = 97;
    let mut per_key = vec![0u32; KEYS];
    let records: Vec<(String, String)> = (0..N)
        .map(|i| {
            let k = i % KEYS;
            let seq = per_key[k];
            per_key[k] += 1;
            (format!("key-{k}"), format!("key-{k}:{seq}"))
        })
        .collect();
    let delivered = produce_all(&producer, "orders", &records).await;
    assert_eq!(delivered.len(), N);

    let consumer = b.consumer(&[]);
    let got = consume_all(&consumer, "orders", 3, N);
    assert_eq!(got.len(), N, "every message consumed exactly once");
    // Offsets dense per partition, keys stick to one partition, per-key order kept.
    let mut next_offset: HashMap<i32, i64> = HashMap::new();
    let mut key_partition: HashMap<String, i32> = HashMap::new();
    let mut key_next: HashMap<String, u32> = HashMap::new();
    for (p, o, k, v) in &got {
        let e = next_offset.entry(*p).or_insert(0);
        assert_eq!(*o, *e, "offsets dense in partition {p}");
        *e += 1;
        assert_eq!(
            *key_partition.entry(k.clone()).or_insert(*p),
            *p,
            "key {k} in one partition"
        );
        let (vk, seq) = v.rsplit_once(':').expect("value format");
        assert_eq!(vk, k);
        let seq: u32 = seq.parse().expect("seq");
        let n = key_next.entry(k.clone()).or_insert(0);
        assert_eq!(seq, *n, "order of key {k}");
        *n += 1;
    }
    assert_eq!(next_offset.len(), 3, "all three partitions used");
    assert_eq!(next_offset.values().sum::<i64>(), N as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec_round_trips_with_headers() {
    let b = BrokerProcess::start(&[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&b, &topic, 1).await;
        let producer = b.producer(&[("compression.type", codec), ("linger.ms", "20")]);
        let mut futures = Vec::new();
        for i in 0..500 {
            let value = format!("{codec}-value-{i}-{}", "x".repeat(i % 50));
            let key = format!("k{i}");
            let headers = OwnedHeaders::new().insert(Header {
                key: "codec",
                value: Some(codec),
            });
            let rec = FutureRecord::to(&topic)
                .key(&key)
                .payload(&value)
                .headers(headers);
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
        consume_from_start(&b, &topic, 500, |i, m| {
            let value = format!("{codec}-value-{i}-{}", "x".repeat(i % 50));
            assert_eq!(m.payload(), Some(value.as_bytes()), "{codec} record {i}");
            let h = m.headers().expect("headers").get(0);
            assert_eq!(h.key, "codec");
            assert_eq!(h.value, Some(codec.as_bytes()));
        });
    }
}

/// Reads `n` records of partition 0 of `topic` from offset 0, checking that
/// offsets are dense and handing each to `check` with its index.
fn consume_from_start(
    b: &BrokerProcess,
    topic: &str,
    n: usize,
    mut check: impl FnMut(usize, &rdkafka::message::BorrowedMessage<'_>),
) {
    let c = b.consumer(&[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut i = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while i < n {
        assert!(Instant::now() < deadline, "{topic}: timed out at {i}");
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.expect("message");
            assert_eq!(m.offset(), i as i64);
            check(i, &m);
            i += 1;
        }
    }
}

async fn create_topic_with(b: &BrokerProcess, name: &str, configs: &[(&str, &str)]) {
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    let mut t = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    for r in b
        .admin()
        .create_topics(&[t], &AdminOptions::new())
        .await
        .expect("create_topics")
    {
        r.expect("topic created");
    }
}

/// The codec ids (attribute bits 0-2) of the batches in a partition's first segment.
fn stored_codecs(b: &BrokerProcess, topic: &str) -> Vec<u8> {
    let path = b
        .data_dir()
        .join("topics")
        .join(topic)
        .join("0")
        .join("00000000000000000000.log");
    let bytes = std::fs::read(&path).expect("segment");
    let mut codecs = Vec::new();
    let mut pos = 0;
    while pos + 61 <= bytes.len() {
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        codecs.push(bytes[pos + 22] & 0x07);
        pos += 12 + len;
    }
    codecs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_compression_type_recompresses_on_append() {
    let b = BrokerProcess::start(&[]);
    // (topic codec, its id, producer codec)
    for (codec, id, sent) in [
        ("zstd", 4u8, "lz4"),
        ("gzip", 1, "none"),
        ("snappy", 2, "zstd"),
        ("uncompressed", 0, "gzip"),
    ] {
        let topic = format!("recompress-{codec}");
        create_topic_with(&b, &topic, &[("compression.type", codec)]).await;
        let producer = b.producer(&[("compression.type", sent), ("linger.ms", "20")]);
        let mut futures = Vec::new();
        for i in 0..300 {
            let value = format!("{codec}-{i}-{}", "y".repeat(i % 40));
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "h",
                    value: Some("1"),
                })
                .insert(Header {
                    key: "h",
                    value: Some("2"),
                });
            let key = format!("k{i}");
            let rec = FutureRecord::to(&topic)
                .key(&key)
                .payload(&value)
                .headers(headers);
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
        let codecs = stored_codecs(&b, &topic);
        assert!(!codecs.is_empty());
        assert!(
            codecs.iter().all(|c| *c == id),
            "{codec}: stored as {codecs:?}"
        );
        consume_from_start(&b, &topic, 300, |i, m| {
            let value = format!("{codec}-{i}-{}", "y".repeat(i % 40));
            assert_eq!(m.payload(), Some(value.as_bytes()), "{codec} record {i}");
            let h = m.headers().expect("headers");
            assert_eq!(h.count(), 2, "duplicate header keys kept");
            assert_eq!(h.get(1).value, Some(&b"2"[..]));
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topic_refuses_records_without_key() {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    let b = BrokerProcess::start(&[]);
    create_topic_with(&b, "compacted", &[("cleanup.policy", "compact")]).await;
    let producer = b.producer(&[("linger.ms", "0")]);
    let keyed = producer
        .send(
            FutureRecord::to("compacted").key("k").payload("v"),
            Duration::from_secs(10),
        )
        .await;
    assert!(keyed.is_ok(), "keyed record accepted: {keyed:?}");
    let unkeyed = producer
        .send(
            FutureRecord::<(), _>::to("compacted").payload("v"),
            Duration::from_secs(10),
        )
        .await;
    match unkeyed {
        Err((KafkaError::MessageProduction(code), _)) => {
            assert_eq!(code, RDKafkaErrorCode::InvalidRecord)
        }
        other => panic!("expected INVALID_RECORD, got {other:?}"),
    }
}

/// Reads partition 0 of `topic` from the beginning to its end: (offset, key, value).
fn read_all(b: &BrokerProcess, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let c = b.consumer(&[("enable.partition.eof", "true")]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push((
                m.offset(),
                String::from_utf8_lossy(m.key().expect("key")).into_owned(),
                m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
            )),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    panic!("no end of partition within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topic_keeps_the_last_record_of_every_key() {
    let b = BrokerProcess::start(&["--log-cleaner-backoff-ms", "200"]);
    create_topic_with(
        &b,
        "latest",
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "300"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "0"),
        ],
    )
    .await;
    let producer = b.producer(&[("linger.ms", "5"), ("compression.type", "lz4")]);
    // 20 keys, 30 versions each; key-0 ends with a tombstone.
    let mut last: HashMap<String, (i64, Option<String>)> = HashMap::new();
    for version in 0..30 {
        let mut futures = Vec::new();
        for k in 0..20 {
            let key = format!("key-{k}");
            let value = (k != 0 || version < 29).then(|| format!("{key}=v{version}"));
            let mut rec = FutureRecord::to("latest").key(&key);
            if let Some(v) = &value {
                rec = rec.payload(v);
            }
            let f = producer
                .send_result(rec)
                .map_err(|(e, _)| e)
                .expect("enqueue");
            futures.push((key.clone(), value.clone(), f));
        }
        for (key, value, f) in futures {
            let d = f.await.expect("future").expect("delivered");
            last.insert(key, (d.offset, value));
        }
    }
    let end = last.values().map(|(o, _)| *o).max().expect("offsets") + 1;
    assert_eq!(end, 600);
    let latest = |last: &HashMap<String, (i64, Option<String>)>, with_tombstones: bool| {
        let mut v: Vec<(i64, String, Option<String>)> = last
            .iter()
            .filter(|(_, (_, v))| with_tombstones || v.is_some())
            .map(|(k, (o, v))| (*o, k.clone(), v.clone()))
            .collect();
        v.sort();
        v
    };
    // The active segment rolls after segment.ms and the cleaner runs every 200 ms:
    // wait until only the latest record of each key is left (the tombstone
    // too: it goes at a later pass, once it has been clean for delete.retention.ms).
    wait_for_log(&b, "latest", &latest(&last, true), &latest(&last, false)).await;
    // More versions of the live keys make the log dirty again; the next pass
    // also drops the tombstone, which has been clean for longer than 0 ms.
    for k in 1..20 {
        let key = format!("key-{k}");
        let value = format!("{key}=again");
        let d = producer
            .send(
                FutureRecord::to("latest").key(&key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
        last.insert(key, (d.offset, Some(value)));
    }
    last.remove("key-0");
    wait_for_log(&b, "latest", &latest(&last, false), &latest(&last, false)).await;
    // New records after compaction continue at the log end.
    let d = producer
        .send(
            FutureRecord::to("latest").key("key-0").payload("back"),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
    assert_eq!(d.offset, 619);
}

/// KIP-354: with `max.compaction.lag.ms`, a dirty record is compacted within
/// that time even though the dirty ratio never reaches
/// `min.cleanable.dirty.ratio` (1.0: Kafka compacts only above it) and
/// `segment.ms` would keep the segment open for a week; the same topic
/// without it stays as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_compaction_lag_compacts_below_the_dirty_ratio() {
    let b = BrokerProcess::start(&["--log-cleaner-backoff-ms", "200"]);
    let base = [
        ("cleanup.policy", "compact"),
        ("min.cleanable.dirty.ratio", "1.0"),
        ("delete.retention.ms", "0"),
    ];
    let mut bounded = base.to_vec();
    bounded.push(("max.compaction.lag.ms", "2000"));
    create_topic_with(&b, "lagged", &bounded).await;
    create_topic_with(&b, "unbounded", &base).await;
    let producer = b.producer(&[("linger.ms", "5")]);
    let mut last: HashMap<String, (i64, Option<String>)> = HashMap::new();
    for version in 0..5 {
        for k in 0..10 {
            let key = format!("key-{k}");
            let value = format!("{key}=v{version}");
            for topic in ["lagged", "unbounded"] {
                let d = producer
                    .send(
                        FutureRecord::to(topic).key(&key).payload(&value),
                        Duration::from_secs(10),
                    )
                    .await
                    .expect("delivered");
                if topic == "lagged" {
                    last.insert(key.clone(), (d.offset, Some(value.clone())));
                }
            }
        }
    }
    let mut latest: Vec<(i64, String, Option<String>)> = last
        .iter()
        .map(|(k, (o, v))| (*o, k.clone(), v.clone()))
        .collect();
    latest.sort();
    let started = Instant::now();
    wait_for_log(&b, "lagged", &latest, &latest).await;
    let took = started.elapsed();
    // Dirty for at least the lag (2 s, then a roll and a cleaner round).
    assert!(
        took >= Duration::from_millis(1000),
        "compacted after {took:?}"
    );
    assert_eq!(
        read_all(&b, "unbounded").len(),
        50,
        "no lag bound, ratio never reached"
    );
    // Kafka refuses min.compaction.lag.ms above max.compaction.lag.ms.
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    let t = NewTopic::new("conflicting", 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("min.compaction.lag.ms", "5000")
        .set("max.compaction.lag.ms", "1000");
    let r = b
        .admin()
        .create_topics(&[t], &AdminOptions::new())
        .await
        .expect("create_topics");
    match &r[0] {
        Err((_, code)) => assert_eq!(*code, rdkafka::types::RDKafkaErrorCode::InvalidConfig),
        Ok(t) => panic!("{t} created with min lag above max lag"),
    }
}

/// Waits until partition 0 of `topic` reads exactly `done`; every state on the
/// way keeps offsets increasing and holds every record of `kept`.
async fn wait_for_log(
    b: &BrokerProcess,
    topic: &str,
    done: &[(i64, String, Option<String>)],
    kept: &[(i64, String, Option<String>)],
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = read_all(b, topic);
        if got == done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted within 60 s: {} records, expected {}; first {:?}",
            got.len(),
            done.len(),
            got.first()
        );
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        for r in kept {
            assert!(got.contains(r), "{r:?} kept");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// KIP-74 across partitions: only the first partition with data may go past
/// fetch.max.bytes; librdkafka refuses a response larger than
/// receive.message.max.bytes (librdkafka's 0082 test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_max_bytes_bounds_a_response_over_partitions() {
    let b = BrokerProcess::start(&[]);
    create_topic(&b, "big", 3).await;
    let producer = b.producer(&[("linger.ms", "0"), ("message.max.bytes", "1000000")]);
    let value = vec![b'x'; 900 * 1024];
    for p in 0..3 {
        for _ in 0..3 {
            producer
                .send(
                    FutureRecord::<(), _>::to("big")
                        .partition(p)
                        .payload(&value),
                    Duration::from_secs(10),
                )
                .await
                .expect("delivered");
        }
    }
    let c = b.consumer(&[
        ("max.partition.fetch.bytes", "20000000"),
        ("fetch.max.bytes", "1000000"),
        ("receive.message.max.bytes", "1000512"),
    ]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("big", p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < 9 {
        assert!(Instant::now() < deadline, "only {got} of 9 within 30 s");
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                assert_eq!(m.payload().map(|p| p.len()), Some(900 * 1024));
                got += 1;
            }
            Some(Err(e)) => panic!("consume error (response too large?): {e}"),
            None => {}
        }
    }
}
