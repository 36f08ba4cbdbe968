//! The partition side of transactions against an in-process broker and a
//! real client: transactional batches (built with `herald_log::batch::build`,
//! producer id/epoch and the transactional bit) appended through the
//! broker's own partition handle, transaction markers written through
//! `PartitionStorage::write_marker` on the local engine, then read by
//! librdkafka (`rdkafka`) consumers with `isolation.level=read_committed`
//! and `read_uncommitted`, which must see exactly the records their
//! isolation allows (librdkafka parses the markers and drops aborted
//! transactions' records with the Fetch response's aborted transactions).
//! A raw read_committed Fetch waiting at the last stable offset is woken by
//! the commit marker that moves it.
//!
//! The batches go through the partition handle rather than Produce: Produce
//! verifies transactional writes against the transaction coordinator
//! (AddPartitionsToTxn), which is not what this test is about.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::kafka_wire::{connect, frame, read_response};
use herald_broker::config::BrokerConfig;
use herald_broker::storage::{PartitionStorage, TxnMarker};
use herald_log::batch::{self, build};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

const TOPIC: &str = "txn-partition";

struct InProcess {
    rt: tokio::runtime::Runtime,
    running: Option<herald_broker::server::RunningBroker>,
    _data: tempfile::TempDir,
}

impl InProcess {
    fn start() -> InProcess {
        let data = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = BrokerConfig {
            data_dir: data.path().to_path_buf(),
            listen: ([127, 0, 0, 1], 0).into(),
            ..BrokerConfig::default()
        };
        let running = rt
            .block_on(herald_broker::server::start(config))
            .expect("broker starts");
        InProcess {
            rt,
            running: Some(running),
            _data: data,
        }
    }

    fn addr(&self) -> String {
        self.running.as_ref().unwrap().addr.to_string()
    }

    fn partition(&self) -> Arc<dyn PartitionStorage> {
        let broker = &self.running.as_ref().unwrap().broker;
        let topic = match broker.topics.get(TOPIC) {
            Some(t) => t,
            None => self
                .rt
                .block_on(broker.topics.create(TOPIC, 1, BTreeMap::new()))
                .expect("topic created"),
        };
        topic.partition(0).expect("partition 0")
    }

    /// Appends one batch (acks=all: answered once durable); its base offset.
    fn append(&self, batch: Vec<u8>) -> i64 {
        let p = self.partition();
        self.rt
            .block_on(p.append(Bytes::from(batch), -1, herald_broker::now_ms()))
            .expect("append")
            .base_offset
    }

    fn marker(&self, producer_id: i64, commit: bool) -> i64 {
        let p = self.partition();
        self.rt
            .block_on(p.write_marker(
                TxnMarker {
                    producer_id,
                    producer_epoch: 0,
                    commit,
                    coordinator_epoch: 0,
                },
                herald_broker::now_ms(),
            ))
            .expect("marker written")
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }
}

/// One batch of `values`; transactional for a producer id >= 0.
fn batch_of(producer_id: i64, sequence: i32, values: &[&str]) -> Vec<u8> {
    let recs: Vec<build::SimpleRecord<'_>> = values
        .iter()
        .map(|v| build::SimpleRecord {
            key: Some(b"k"),
            value: Some(v.as_bytes()),
            timestamp_ms: herald_broker::now_ms(),
        })
        .collect();
    if producer_id < 0 {
        return build::batch(&recs, -1, -1, -1);
    }
    let mut b = build::batch(&recs, producer_id, 0, sequence);
    build::set_transactional(&mut b);
    b
}

fn consumer(addr: &str, isolation: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "txn-partition-unused")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).expect("assign");
    c
}

/// Polls until the partition's end (librdkafka's EOF: the last stable
/// offset for read_committed, the high watermark otherwise): (offset,
/// value) of every record delivered on the way.
fn until_eof(c: &BaseConsumer) -> Vec<(i64, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => out.push((
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            Some(Err(KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("consumer error: {e}"),
        }
    }
    panic!("no end of partition within 60 s; got {out:?}");
}

fn values(records: &[(i64, String)]) -> Vec<(i64, &str)> {
    records.iter().map(|(o, v)| (*o, v.as_str())).collect()
}

/// What a read_committed Fetch answered for the partition.
struct Fetched {
    last_stable: i64,
    /// (producer id, first offset)
    aborted: Vec<(i64, i64)>,
    /// (offset, value) of the data records sent
    records: Vec<(i64, String)>,
}

/// A read_committed Fetch v12 at `offset`.
fn fetch_committed(s: &mut std::net::TcpStream, offset: i64, max_wait_ms: i32) -> Fetched {
    let mut fp = FetchPartition::default();
    fp.partition = 0;
    fp.fetch_offset = offset;
    fp.current_leader_epoch = -1;
    fp.last_fetched_epoch = -1;
    fp.log_start_offset = -1;
    fp.partition_max_bytes = 1 << 20;
    let mut ft = FetchTopic::default();
    ft.topic = TopicName(StrBytes::from_static_str(TOPIC));
    ft.partitions = vec![fp];
    let mut req = FetchRequest::default();
    req.max_wait_ms = max_wait_ms;
    req.min_bytes = 1;
    req.max_bytes = 1 << 20;
    req.isolation_level = 1;
    req.topics = vec![ft];
    s.write_all(&frame(ApiKey::Fetch, 12, 7, &req)).unwrap();
    let r: FetchResponse = read_response(s, ApiKey::Fetch, 12).expect("fetch answered");
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let aborted = p
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    let mut records = Vec::new();
    for b in batch::split(p.records.as_deref().unwrap_or_default()).unwrap() {
        let h = batch::validate(b).expect("batch CRC");
        if h.is_control() {
            continue;
        }
        let mut buf = Bytes::copy_from_slice(b);
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
        for r in set.records {
            let v = r.value.map(|v| v.to_vec()).unwrap_or_default();
            records.push((r.offset, String::from_utf8_lossy(&v).into_owned()));
        }
    }
    Fetched {
        last_stable: p.last_stable_offset,
        aborted,
        records,
    }
}

#[test]
fn markers_written_by_the_engine_decide_what_each_isolation_level_reads() {
    let b = InProcess::start();
    // Producer 1000 aborts, 1001 commits, 1002 stays open for now.
    assert_eq!(b.append(batch_of(1000, 0, &["a1", "a2"])), 0); // 0, 1
    assert_eq!(b.append(batch_of(1001, 0, &["b1"])), 2);
    assert_eq!(b.append(batch_of(-1, 0, &["n1"])), 3);
    assert_eq!(b.marker(1000, false), 4);
    assert_eq!(b.marker(1001, true), 5);
    assert_eq!(b.append(batch_of(1002, 0, &["o1"])), 6);
    assert_eq!(b.append(batch_of(-1, 0, &["n2"])), 7);
    let offsets = b.rt.block_on(b.partition().offsets()).unwrap();
    assert_eq!((offsets.high_watermark, offsets.last_stable), (8, 6));

    // read_uncommitted: every data record, markers hidden.
    let all = until_eof(&consumer(&b.addr(), "read_uncommitted"));
    assert_eq!(
        values(&all),
        [
            (0, "a1"),
            (1, "a2"),
            (2, "b1"),
            (3, "n1"),
            (6, "o1"),
            (7, "n2")
        ]
    );
    // read_committed: the aborted records dropped, nothing at or after the
    // open transaction's first offset (the LSO).
    let committed = consumer(&b.addr(), "read_committed");
    assert_eq!(values(&until_eof(&committed)), [(2, "b1"), (3, "n1")]);

    // What the consumer was told: the LSO and the aborted transaction.
    let mut s = connect(&b.addr());
    let f = fetch_committed(&mut s, 0, 0);
    assert_eq!(f.last_stable, 6);
    assert_eq!(f.aborted, [(1000, 0)]);
    assert_eq!(
        values(&f.records),
        [(0, "a1"), (1, "a2"), (2, "b1"), (3, "n1")],
        "the broker sends the aborted records; the consumer drops them"
    );

    // A read_committed Fetch waiting at the LSO is woken by the commit
    // marker that moves it: answered with the records then, not at the end
    // of its 20 s wait.
    let addr = b.addr();
    let waiting = std::thread::spawn(move || {
        let mut s = connect(&addr);
        s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
        let started = Instant::now();
        let got = fetch_committed(&mut s, 6, 20_000);
        (got, started.elapsed())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(b.marker(1002, true), 8);
    let (f, waited) = waiting.join().unwrap();
    assert_eq!(f.last_stable, 9);
    assert!(f.aborted.is_empty());
    assert_eq!(values(&f.records), [(6, "o1"), (7, "n2")]);
    assert!(
        waited < Duration::from_secs(20),
        "woken by the marker, not by the wait's end ({waited:?})"
    );

    // The read_committed consumer goes on to the new LSO.
    assert_eq!(values(&until_eof(&committed)), [(6, "o1"), (7, "n2")]);
}
