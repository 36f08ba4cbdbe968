//! Storage faults against an in-process broker (EmbeddedBroker on an
//! ephemeral port), with raw protocol assertions and librdkafka clients:
//! - the high watermark waits for fsync (fsync slowed by the fault seam);
//! - a failed fsync or write (EIO, injected) takes only its partition offline
//!   with KAFKA_STORAGE_ERROR, is never acknowledged, and a restart recovers
//!   every acknowledged record;
//! - a failed fsync of the group log is never acknowledged to OffsetCommit;
//! - a real full disk (an 8 MiB tmpfs, root only; skipped otherwise):
//!   produce, offset commits and topic metadata fail cleanly, acknowledged
//!   data stays intact, and everything works again once space is freed.
//!
//! Fault rules are process-wide; each matches on its own broker's data
//! directory, so the tests can run in parallel.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::kafka_wire::{connect, creatable, frame, read_response};
use herald_broker::EmbeddedBroker;
use herald_log::batch::{self, build::SimpleRecord};
use herald_log::fault::{self, EIO, Fault, FileOp, Rule};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, GroupId,
    ListOffsetsRequest, ListOffsetsResponse, OffsetCommitRequest, OffsetCommitResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

const KAFKA_STORAGE_ERROR: i16 = 56;
const NOT_COORDINATOR: i16 = 16;

// ---------------------------------------------------------------- log capture

/// Everything the broker logs in this process (one global subscriber).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Capture(sink.clone()))
            .try_init();
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        std::io::stderr().write_all(b)?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_lines(needle: &str, also: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    text.lines()
        .filter(|l| l.contains(needle) && l.contains(also))
        .map(String::from)
        .collect()
}

// ---------------------------------------------------------------- raw protocol

fn name(t: &str) -> TopicName {
    TopicName(StrBytes::from_string(t.to_string()))
}

fn value_of(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("rec-{i}-").into_bytes();
    while v.len() < len {
        v.push(b'a' + (v.len() % 26) as u8);
    }
    v.truncate(len.max(8));
    v
}

fn one_record_batch(value: &[u8]) -> Vec<u8> {
    batch::build::batch(
        &[SimpleRecord {
            key: Some(b"k"),
            value: Some(value),
            timestamp_ms: 1_700_000_000_000,
        }],
        -1,
        -1,
        -1,
    )
}

struct Produced {
    code: i16,
    base_offset: i64,
    message: Option<String>,
}

fn produce(addr: &str, topic: &str, partition: i32, value: &[u8], acks: i16) -> Produced {
    let mut s = connect(addr);
    let mut pd = PartitionProduceData::default();
    pd.index = partition;
    pd.records = Some(Bytes::from(one_record_batch(value)));
    let mut td = TopicProduceData::default();
    td.name = name(topic);
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = 10_000;
    req.topic_data = vec![td];
    s.write_all(&frame(ApiKey::Produce, 9, 1, &req)).unwrap();
    let r: ProduceResponse = read_response(&mut s, ApiKey::Produce, 9).expect("produce answered");
    let p = &r.responses[0].partition_responses[0];
    Produced {
        code: p.error_code,
        base_offset: p.base_offset,
        message: p.error_message.as_ref().map(|m| m.to_string()),
    }
}

struct Fetched {
    code: i16,
    high_watermark: i64,
    /// (offset, value) of every record returned.
    records: Vec<(i64, Vec<u8>)>,
}

fn fetch_on(
    s: &mut TcpStream,
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
) -> Fetched {
    let mut fp = FetchPartition::default();
    fp.partition = partition;
    fp.fetch_offset = offset;
    fp.current_leader_epoch = -1;
    fp.last_fetched_epoch = -1;
    fp.log_start_offset = -1;
    fp.partition_max_bytes = 4 << 20;
    let mut ft = FetchTopic::default();
    ft.topic = name(topic);
    ft.partitions = vec![fp];
    let mut req = FetchRequest::default();
    req.max_wait_ms = max_wait_ms;
    req.min_bytes = 1;
    req.max_bytes = 8 << 20;
    req.topics = vec![ft];
    s.write_all(&frame(ApiKey::Fetch, 12, 2, &req)).unwrap();
    let r: FetchResponse = read_response(s, ApiKey::Fetch, 12).expect("fetch answered");
    let p = &r.responses[0].partitions[0];
    let mut records = Vec::new();
    if let Some(bytes) = &p.records {
        for b in batch::split(bytes).expect("whole batches") {
            batch::validate(b).expect("batch CRC");
            let mut buf = Bytes::copy_from_slice(b);
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
            for r in set.records {
                records.push((r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default()));
            }
        }
    }
    Fetched {
        code: p.error_code,
        high_watermark: p.high_watermark,
        records,
    }
}

fn fetch(addr: &str, topic: &str, partition: i32, offset: i64) -> Fetched {
    fetch_on(&mut connect(addr), topic, partition, offset, 0)
}

/// Every record from `offset` to the high watermark.
fn fetch_all(addr: &str, topic: &str, partition: i32) -> Vec<(i64, Vec<u8>)> {
    let mut s = connect(addr);
    let mut out = Vec::new();
    let mut next = 0;
    loop {
        let f = fetch_on(&mut s, topic, partition, next, 0);
        assert_eq!(f.code, 0, "fetch {topic}-{partition} at {next}");
        let got: Vec<_> = f.records.into_iter().filter(|(o, _)| *o >= next).collect();
        let Some(last) = got.last() else { break };
        next = last.0 + 1;
        out.extend(got);
        if next >= f.high_watermark {
            break;
        }
    }
    out
}

/// ListOffsets latest: (error code, offset).
fn latest(addr: &str, topic: &str, partition: i32) -> (i16, i64) {
    let mut s = connect(addr);
    let mut lp = ListOffsetsPartition::default();
    lp.partition_index = partition;
    lp.current_leader_epoch = -1;
    lp.timestamp = -1;
    let mut lt = ListOffsetsTopic::default();
    lt.name = name(topic);
    lt.partitions = vec![lp];
    let mut req = ListOffsetsRequest::default();
    req.replica_id = (-1).into();
    req.topics = vec![lt];
    s.write_all(&frame(ApiKey::ListOffsets, 5, 3, &req))
        .unwrap();
    let r: ListOffsetsResponse =
        read_response(&mut s, ApiKey::ListOffsets, 5).expect("list offsets answered");
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset)
}

fn create_topic(addr: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) -> i16 {
    let mut s = connect(addr);
    let t = creatable(topic, partitions, configs);
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 10_000;
    s.write_all(&frame(ApiKey::CreateTopics, 5, 4, &req))
        .unwrap();
    let r: CreateTopicsResponse =
        read_response(&mut s, ApiKey::CreateTopics, 5).expect("create topics answered");
    r.topics[0].error_code
}

/// A simple (groupless-generation) OffsetCommit of `offset` with `metadata`
/// for partitions `0..partitions`: the error codes.
fn commit(
    addr: &str,
    group: &str,
    topic: &str,
    partitions: i32,
    offset: i64,
    metadata: &str,
) -> Vec<i16> {
    let mut s = connect(addr);
    let mut t = OffsetCommitRequestTopic::default();
    t.name = name(topic);
    t.partitions = (0..partitions)
        .map(|i| {
            let mut p = OffsetCommitRequestPartition::default();
            p.partition_index = i;
            p.committed_offset = offset;
            p.committed_leader_epoch = -1;
            p.committed_metadata = Some(StrBytes::from_string(metadata.to_string()));
            p
        })
        .collect();
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group.to_string()));
    req.generation_id_or_member_epoch = -1;
    req.member_id = StrBytes::from_static_str("");
    req.topics = vec![t];
    s.write_all(&frame(ApiKey::OffsetCommit, 8, 5, &req))
        .unwrap();
    let r: OffsetCommitResponse =
        read_response(&mut s, ApiKey::OffsetCommit, 8).expect("offset commit answered");
    r.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// AlterConfigs (v1) of one topic config: the error code.
fn alter_topic_config(addr: &str, topic: &str, key: &str, value: &str) -> i16 {
    alter_topic_config_v(addr, topic, key, value, 1)
}
/// AlterConfigs of one topic config at version `v`: the error code.
fn alter_topic_config_v(addr: &str, topic: &str, key: &str, value: &str, v: i16) -> i16 {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
    let mut s = connect(addr);
    let mut c = AlterableConfig::default();
    c.name = StrBytes::from_string(key.to_string());
    c.value = Some(StrBytes::from_string(value.to_string()));
    let mut r = AlterConfigsResource::default();
    r.resource_type = 2;
    r.resource_name = StrBytes::from_string(topic.to_string());
    r.configs = vec![c, {
        // AlterConfigs replaces the whole set: keep the segment size.
        let mut c = AlterableConfig::default();
        c.name = StrBytes::from_static_str("segment.bytes");
        c.value = Some(StrBytes::from_static_str("1048576"));
        c
    }];
    let mut req = AlterConfigsRequest::default();
    req.resources = vec![r];
    s.write_all(&frame(ApiKey::AlterConfigs, v, 6, &req))
        .unwrap();
    let resp: AlterConfigsResponse =
        read_response(&mut s, ApiKey::AlterConfigs, v).expect("alter configs answered");
    resp.responses[0].error_code
}

// ---------------------------------------------------------------- rdkafka

fn rd_producer(addr: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("acks", "all")
        .set("message.timeout.ms", "4000")
        .set("linger.ms", "0")
        .create()
        .expect("producer")
}

fn rd_send(p: &FutureProducer, topic: &str, partition: i32, value: &[u8]) -> Result<i64, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        p.send(
            FutureRecord::to(topic)
                .partition(partition)
                .key("k")
                .payload(value),
            Duration::from_secs(5),
        )
        .await
        .map(|d| d.offset)
        .map_err(|(e, _)| e.to_string())
    })
}

/// Reads `partition` from `offset` with librdkafka until `count` records or `wait`.
fn rd_consume(
    addr: &str,
    topic: &str,
    partition: i32,
    offset: i64,
    count: usize,
    wait: Duration,
) -> Vec<(i64, Vec<u8>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", format!("rd-{topic}-{partition}"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
        .unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    while out.len() < count && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push((m.offset(), m.payload().unwrap_or_default().to_vec()));
        }
    }
    out
}

fn rule(path_contains: String, op: FileOp, fault: Fault) -> fault::FaultGuard {
    fault::inject(Rule {
        path_contains,
        op,
        fault,
        times: None,
    })
}

fn partition_dir(data: &Path, topic: &str, partition: i32) -> String {
    format!("{}/topics/{topic}/{partition}/", data.display())
}

// ---------------------------------------------------------------- tests

#[test]
fn high_watermark_waits_for_fsync() {
    logs();
    let b = EmbeddedBroker::start().expect("broker");
    let addr = b.bootstrap_servers();
    assert_eq!(create_topic(&addr, "hw", 1, &[]), 0);
    assert_eq!(produce(&addr, "hw", 0, b"first", -1).code, 0);
    assert_eq!(fetch(&addr, "hw", 0, 0).high_watermark, 1);

    // Every fsync of the partition now takes 3 s.
    const FSYNC_DELAY: Duration = Duration::from_secs(3);
    let slow = rule(
        partition_dir(b.data_dir(), "hw", 0),
        FileOp::Fsync,
        Fault::Delay(FSYNC_DELAY),
    );
    let answered = Arc::new(AtomicBool::new(false));
    let producer = {
        let (addr, answered) = (addr.clone(), answered.clone());
        std::thread::spawn(move || {
            let p = produce(&addr, "hw", 0, b"second", -1);
            answered.store(true, Ordering::SeqCst);
            p
        })
    };
    // Wait until its fsync has started: from then on it runs for FSYNC_DELAY.
    let started = Instant::now();
    while slow.hits() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no fsync started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let fsync_started = Instant::now();
    // A long-polling fetch waiting for offset 1 (answered when it is durable).
    let poller = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            let f = fetch_on(&mut connect(&addr), "hw", 0, 1, 10_000);
            (f, t.elapsed())
        })
    };
    // acks=1 is answered before the fsync, but its record is not readable either.
    let acks1 = produce(&addr, "hw", 0, b"third", 1);
    assert_eq!((acks1.code, acks1.base_offset), (0, 2));

    let f = fetch(&addr, "hw", 0, 1);
    assert_eq!(f.code, 0);
    assert_eq!(f.high_watermark, 1, "high watermark moved before the fsync");
    assert!(f.records.is_empty(), "records readable before their fsync");
    assert_eq!(latest(&addr, "hw", 0), (0, 1));
    let early = rd_consume(&addr, "hw", 0, 1, 1, Duration::from_millis(800));
    assert!(
        early.is_empty(),
        "librdkafka read an unsynced record: {early:?}"
    );
    assert!(
        !answered.load(Ordering::SeqCst),
        "acks=all answered before its fsync"
    );
    assert!(
        fsync_started.elapsed() < FSYNC_DELAY - Duration::from_millis(300),
        "inconclusive: the checks took longer than the fsync delay"
    );

    let second = producer.join().unwrap();
    assert_eq!((second.code, second.base_offset), (0, 1));
    // (`fsync_started` was seen a little after the fsync began: polling.)
    assert!(
        fsync_started.elapsed() >= FSYNC_DELAY / 2,
        "answered {:?} after its fsync started",
        fsync_started.elapsed()
    );
    let (polled, _took) = poller.join().unwrap();
    assert_eq!(polled.code, 0);
    assert!(
        !polled.records.is_empty(),
        "the long poll was not woken by the fsync"
    );
    assert_eq!(polled.records[0], (1, b"second".to_vec()));
    drop(slow);
    // The acks=1 record becomes readable with the next fsync.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 3 && Instant::now() < deadline {
        seen = fetch_all(&addr, "hw", 0);
    }
    let values: Vec<_> = seen.iter().map(|(_, v)| v.as_slice()).collect();
    assert_eq!(values, [&b"first"[..], b"second", b"third"]);
    let rd = rd_consume(&addr, "hw", 0, 0, 3, Duration::from_secs(10));
    assert_eq!(rd.len(), 3);
    assert_eq!(latest(&addr, "hw", 0), (0, 3));
}

#[test]
fn eio_takes_only_its_partition_offline_and_restart_recovers() {
    logs();
    let data = tempfile::tempdir().unwrap();
    let b = EmbeddedBroker::start_in(data.path(), |_| {}).expect("broker");
    let addr = b.bootstrap_servers();
    assert_eq!(create_topic(&addr, "eio", 2, &[]), 0);
    assert_eq!(create_topic(&addr, "eio-write", 1, &[]), 0);
    let mut acked: Vec<(i32, i64, Vec<u8>)> = Vec::new();
    for i in 0..5 {
        for (t, p) in [("eio", 0), ("eio", 1), ("eio-write", 0)] {
            let v = value_of(i, 100 + i);
            let r = produce(&addr, t, p, &v, -1);
            assert_eq!(r.code, 0);
            if t == "eio" {
                acked.push((p, r.base_offset, v));
            }
        }
    }

    // fsync of eio-0 fails.
    let g = rule(
        partition_dir(data.path(), "eio", 0),
        FileOp::Fsync,
        Fault::Errno(EIO),
    );
    let r = produce(&addr, "eio", 0, b"never-acked", -1);
    assert_eq!(r.code, KAFKA_STORAGE_ERROR);
    assert_eq!(r.base_offset, -1);
    assert!(g.hits() >= 1);
    drop(g);
    // Offline for good: the disk "works" again, yet nothing is retried or acknowledged.
    let r = produce(&addr, "eio", 0, b"never-acked-2", -1);
    assert_eq!(r.code, KAFKA_STORAGE_ERROR, "{:?}", r.message);
    assert_eq!(fetch(&addr, "eio", 0, 0).code, KAFKA_STORAGE_ERROR);
    assert_eq!(latest(&addr, "eio", 0).0, KAFKA_STORAGE_ERROR);
    let rd = rd_producer(&addr);
    assert!(rd_send(&rd, "eio", 0, b"rd-never").is_err());
    // The other partition works, with librdkafka too.
    let off = rd_send(&rd, "eio", 1, b"rd-ok").expect("eio-1 works");
    acked.push((1, off, b"rd-ok".to_vec()));
    assert_eq!(fetch(&addr, "eio", 1, 0).code, 0);

    // A write of eio-write-0 fails half-way (a torn batch on disk).
    let g = rule(
        partition_dir(data.path(), "eio-write", 0),
        FileOp::Write,
        Fault::PartialWrite(EIO),
    );
    let r = produce(&addr, "eio-write", 0, &value_of(99, 5000), -1);
    assert_eq!(r.code, KAFKA_STORAGE_ERROR);
    drop(g);
    assert_eq!(
        produce(&addr, "eio-write", 0, b"x", -1).code,
        KAFKA_STORAGE_ERROR
    );
    assert_eq!(fetch(&addr, "eio-write", 0, 0).code, KAFKA_STORAGE_ERROR);

    // One ERROR line per partition that went offline.
    for t in ["topic=eio partition=0", "topic=eio-write partition=0"] {
        let lines = log_lines("partition is offline", t);
        assert_eq!(lines.len(), 1, "{t}: {lines:?}");
        assert!(lines[0].contains("ERROR"));
    }
    assert!(log_lines("partition is offline", "topic=eio partition=1").is_empty());

    // Restart: recovery rebuilds both partitions from disk. The failed write
    // was undone, but a device may leave a torn batch behind regardless:
    // append one, as a failed write whose undo also failed would.
    drop(rd);
    drop(b);
    let seg = data
        .path()
        .join(format!("topics/eio-write/0/{:020}.log", 0));
    let torn = one_record_batch(&value_of(98, 3000));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&torn[..torn.len() / 2])
        .unwrap();
    let b = EmbeddedBroker::start_in(data.path(), |_| {}).expect("restart");
    let addr = b.bootstrap_servers();
    for p in [0, 1] {
        let got = fetch_all(&addr, "eio", p);
        let want: Vec<_> = acked
            .iter()
            .filter(|(q, _, _)| *q == p)
            .map(|(_, o, v)| (*o, v.clone()))
            .collect();
        // Every acknowledged record, in order; an unacknowledged one may follow.
        assert!(
            got.len() >= want.len(),
            "eio-{p}: {} < {}",
            got.len(),
            want.len()
        );
        assert_eq!(&got[..want.len()], &want[..], "eio-{p}");
        for (o, v) in &got[want.len()..] {
            assert!(
                v.starts_with(b"never-acked"),
                "eio-{p}@{o}: unexpected {v:?}"
            );
        }
    }
    let w = fetch_all(&addr, "eio-write", 0);
    assert_eq!(w.len(), 5, "the torn batch was truncated");
    assert_eq!(
        log_lines("truncated a torn or corrupt tail", "eio-write").len(),
        1
    );
    let r = produce(&addr, "eio-write", 0, b"after", -1);
    assert_eq!((r.code, r.base_offset), (0, 5));
    assert_eq!(produce(&addr, "eio", 0, b"after", -1).code, 0);
}

#[test]
fn failed_group_log_fsync_is_not_acknowledged() {
    logs();
    let b = EmbeddedBroker::start().expect("broker");
    let addr = b.bootstrap_servers();
    assert_eq!(create_topic(&addr, "commits", 2, &[]), 0);
    assert_eq!(commit(&addr, "g1", "commits", 2, 5, ""), [0, 0]);
    // Let the flusher settle (a second flush request may still be pending), so
    // the first failing fsync is the one covering the next commit: its append
    // succeeds and only its durability fails.
    std::thread::sleep(Duration::from_millis(500));
    let g = rule(
        format!("{}/__consumer_offsets/", b.data_dir().display()),
        FileOp::Fsync,
        Fault::Errno(EIO),
    );
    let codes = commit(&addr, "g1", "commits", 2, 7, "");
    assert_eq!(
        codes,
        [NOT_COORDINATOR, NOT_COORDINATOR],
        "commit acknowledged although its fsync was to fail (fault hits so far: {})",
        g.hits()
    );
    assert_eq!(g.hits(), 1, "the commit's own fsync failed");
    drop(g);
    // Still refused: the group log is offline until a restart.
    assert_eq!(
        commit(&addr, "g1", "commits", 2, 8, ""),
        [NOT_COORDINATOR, NOT_COORDINATOR]
    );
    // Produce and fetch are not affected.
    assert_eq!(produce(&addr, "commits", 0, b"v", -1).code, 0);
}

// ---------------------------------------------------------------- disk full

/// A small filesystem (size-limited tmpfs, or a loop-mounted ext4 image),
/// unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
    _image: Option<tempfile::NamedTempFile>,
}

fn run(cmd: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} failed (root and loop devices needed): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

impl SmallFs {
    fn tmpfs(size: &str) -> Result<SmallFs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let opt = format!("size={size}");
        run(
            "mount",
            &[
                "-t".as_ref(),
                "tmpfs".as_ref(),
                "-o".as_ref(),
                opt.as_ref(),
                "tmpfs".as_ref(),
                dir.path().as_os_str(),
            ],
        )?;
        Ok(SmallFs { dir, _image: None })
    }

    /// ext4 with a journal and real fsync, in an image of `mib` MiB.
    fn ext4(mib: u64) -> Result<SmallFs, String> {
        let image = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        image
            .as_file()
            .set_len(mib << 20)
            .map_err(|e| e.to_string())?;
        // -m 0: no blocks reserved for root (the test runs as root).
        run(
            "mkfs.ext4",
            &[
                "-q".as_ref(),
                "-F".as_ref(),
                "-m".as_ref(),
                "0".as_ref(),
                image.path().as_os_str(),
            ],
        )?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                image.path().as_os_str(),
                dir.path().as_os_str(),
            ],
        )?;
        Ok(SmallFs {
            dir,
            _image: Some(image),
        })
    }
    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the filesystem with `name` until ENOSPC; returns its size. Rounds
/// are repeated after an fsync until one writes nothing: ext4 refuses delayed
/// allocations a little early and frees its reservations at writeback.
fn fill(dir: &Path, name: &str) -> u64 {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .unwrap();
    let chunk = vec![0x5au8; 4096];
    let mut total = 0u64;
    loop {
        let mut round = 0u64;
        while f.write_all(&chunk).is_ok() {
            round += chunk.len() as u64;
        }
        // Blocks may be smaller than the chunk (1 KiB on a small ext4).
        while f.write_all(&chunk[..1]).is_ok() {
            round += 1;
        }
        let _ = f.sync_all();
        total += round;
        if round == 0 {
            return total;
        }
    }
}

fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "tmp") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn disk_full_on_a_small_tmpfs() {
    logs();
    match SmallFs::tmpfs("8m") {
        Ok(fs) => disk_full(fs, "tfull"),
        Err(why) => eprintln!("SKIPPED disk_full_on_a_small_tmpfs: {why}"),
    }
}

#[test]
fn disk_full_on_a_small_ext4_image() {
    logs();
    match SmallFs::ext4(16) {
        Ok(fs) => disk_full(fs, "efull"),
        Err(why) => eprintln!("SKIPPED disk_full_on_a_small_ext4_image: {why}"),
    }
}

/// The disk-full scenario on `fs`; `t` names the topic (distinct per
/// filesystem, since log lines are matched by it).
fn disk_full(fs: SmallFs, t: &str) {
    let data = fs.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let b = EmbeddedBroker::start_in(&data, |_| {}).expect("broker");
    let addr = b.bootstrap_servers();
    // Small segments, so rolls happen while the disk fills.
    assert_eq!(
        create_topic(&addr, t, 4, &[("segment.bytes", "1048576")]),
        0
    );
    assert_eq!(commit(&addr, "gfull", t, 4, 0, ""), [0, 0, 0, 0]);
    let topic_json = std::fs::read(data.join(format!("topics/{t}/topic.json"))).unwrap();
    // 1 MiB held outside the data directory, freed later as an operator would.
    std::fs::write(fs.path().join("reserve"), vec![1u8; 1 << 20]).unwrap();

    // Fill with 60 KiB records until produce fails.
    let mut acked: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut refused = None;
    for i in 0..400 {
        let v = value_of(i, 60 * 1024);
        let r = produce(&addr, t, 0, &v, -1);
        if r.code == 0 {
            acked.push((r.base_offset, v));
        } else {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("the filesystem never filled");
    assert!(acked.len() > 20, "only {} records fitted", acked.len());
    assert_eq!(refused.code, KAFKA_STORAGE_ERROR, "{:?}", refused.message);
    let msg = refused.message.unwrap_or_default();
    assert!(msg.contains("No space left"), "{msg}");
    assert_eq!(log_lines("disk full", &format!("topics/{t}/0")).len(), 1);
    // Whatever slack remains in allocated pages is taken too.
    let filler = fill(&fs.path(), "filler");

    // Still refused, and the partition stays online (no offline line).
    let r = produce(&addr, t, 0, &value_of(1000, 60 * 1024), -1);
    assert_eq!(r.code, KAFKA_STORAGE_ERROR);
    assert!(log_lines("partition is offline", &format!("topic={t} ")).is_empty());
    // Everything acknowledged is intact.
    assert_eq!(fetch_all(&addr, t, 0), acked);

    // The group log: commits with 4 KB metadata need new pages.
    let meta = "m".repeat(4000);
    let codes = commit(&addr, "gfull", t, 4, 7, &meta);
    assert!(codes.iter().all(|c| *c == NOT_COORDINATOR), "{codes:?}");
    // Topic metadata: CreateTopics and a config change fail with an error and
    // leave no half-written file.
    let code = create_topic(&addr, &format!("{t}-new"), 2, &[]);
    assert_eq!(code, KAFKA_STORAGE_ERROR);
    assert!(!data.join(format!("topics/{t}-new")).exists());
    // (Undoing the create freed its few blocks again: take them.)
    fill(&fs.path(), "filler2");
    let code = alter_topic_config(&addr, t, "retention.ms", "86400000");
    assert_eq!(code, KAFKA_STORAGE_ERROR, "config change on a full disk");
    assert_eq!(
        std::fs::read(data.join(format!("topics/{t}/topic.json"))).unwrap(),
        topic_json
    );
    assert_eq!(tmp_files(&data), Vec::<PathBuf>::new());

    // A restart on the full disk: the broker starts and serves what it has.
    drop(b);
    let b = EmbeddedBroker::start_in(&data, |_| {}).expect("start on a full disk");
    let addr = b.bootstrap_servers();
    assert_eq!(fetch_all(&addr, t, 0), acked);
    fill(&fs.path(), "filler3");
    let r = produce(&addr, t, 0, &value_of(1001, 60 * 1024), -1);
    assert_eq!(r.code, KAFKA_STORAGE_ERROR);

    // An idempotent librdkafka producer sends now: KAFKA_STORAGE_ERROR is
    // retriable, so it keeps retrying the same sequence until space is back.
    let pending = {
        let (addr, t) = (addr.clone(), t.to_string());
        std::thread::spawn(move || {
            let p: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .set("enable.idempotence", "true")
                .set("message.timeout.ms", "60000")
                .set("retry.backoff.ms", "100")
                .create()
                .expect("producer");
            rd_send(&p, &t, 0, &value_of(3000, 60 * 1024))
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!pending.is_finished(), "acknowledged on a full disk");

    // Space is freed: everything works again, without a restart.
    assert!(filler < 1 << 20, "the log did not fill the disk");
    std::fs::remove_file(fs.path().join("filler3")).unwrap();
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    std::fs::remove_file(fs.path().join("filler2")).unwrap();
    std::fs::remove_file(fs.path().join("reserve")).unwrap();
    let mut r = produce(&addr, t, 0, &value_of(2000, 60 * 1024), -1);
    assert_eq!(
        r.code, 0,
        "produce still fails after space was freed: {:?}",
        r.message
    );
    acked.push((r.base_offset, value_of(2000, 60 * 1024)));
    let retried = pending.join().unwrap().expect("the retried send lands");
    acked.push((retried, value_of(3000, 60 * 1024)));
    acked.sort_by_key(|(o, _)| *o);
    let rd = rd_producer(&addr);
    let off = rd_send(&rd, t, 0, b"rdkafka after the disk was freed").expect("rd produce");
    acked.push((off, b"rdkafka after the disk was freed".to_vec()));
    r = produce(&addr, t, 1, b"other partition", -1);
    assert_eq!(r.code, 0);
    assert_eq!(commit(&addr, "gfull", t, 4, 9, &meta), [0, 0, 0, 0]);
    assert_eq!(create_topic(&addr, &format!("{t}-new"), 2, &[]), 0);
    assert!(log_lines("appends succeed again", &format!("topics/{t}/0")).len() == 1);
    assert_eq!(fetch_all(&addr, t, 0), acked);
    let rd_all = rd_consume(&addr, t, 0, 0, acked.len(), Duration::from_secs(20));
    assert_eq!(rd_all, acked);

    // The config change works now too.
    assert_eq!(alter_topic_config(&addr, t, "retention.ms", "86400000"), 0);

    // And everything is still there after a restart.
    drop(rd);
    drop(b);
    let b = EmbeddedBroker::start_in(&data, |_| {}).expect("restart");
    assert_eq!(fetch_all(&b.bootstrap_servers(), t, 0), acked);
    drop(b);
}

#[test]
fn topic_metadata_write_failure_is_answered_and_leaves_no_file() {
    logs();
    let b = EmbeddedBroker::start().expect("broker");
    let addr = b.bootstrap_servers();
    assert_eq!(
        create_topic(&addr, "meta", 1, &[("segment.bytes", "1048576")]),
        0
    );
    let json = b.data_dir().join("topics/meta/topic.json");
    let before = std::fs::read(&json).unwrap();
    let g = rule(
        format!("{}/topics/", b.data_dir().display()),
        FileOp::Create,
        Fault::Errno(fault::ENOSPC),
    );
    // AlterConfigs, every version served. (Raw only: the rdkafka crate's
    // `alter_configs` reports every resource as Ok, ignoring its error code;
    // see rdkafka 0.39 src/admin.rs, AlterConfigsFuture.)
    for v in 0..=2 {
        assert_eq!(
            alter_topic_config_v(&addr, "meta", "retention.ms", "86400000", v),
            KAFKA_STORAGE_ERROR,
            "AlterConfigs v{v}"
        );
    }
    // CreateTopics: refused, and no directory left behind.
    assert_eq!(create_topic(&addr, "meta-new", 1, &[]), KAFKA_STORAGE_ERROR);
    assert!(!b.data_dir().join("topics/meta-new").exists());
    assert!(g.hits() >= 2);
    drop(g);
    assert_eq!(std::fs::read(&json).unwrap(), before);
    assert_eq!(tmp_files(b.data_dir()), Vec::<PathBuf>::new());
    // The refused change is not in force either.
    assert_eq!(
        alter_topic_config(&addr, "meta", "retention.ms", "86400000"),
        0
    );
    assert_ne!(std::fs::read(&json).unwrap(), before);
    assert_eq!(create_topic(&addr, "meta-new", 1, &[]), 0);
}
