//! The catalogue of hostile input (issue 12): each test sends what no client
//! would over raw TCP to a real broker process and asserts the exact answer
//! (a Kafka error code, or a closed connection and the broker's WARN line),
//! then that the broker still serves a connection opened before and one
//! opened after. The table is docs/reliability.md ("A catalogue of hostile input").
//!
//! Each close case starts its own broker: the broker's WARN lines for bad
//! frames are rate-limited, so a case asserts the first occurrence only.

#[path = "../common/mod.rs"]
mod common;

mod batches;
mod big;
mod framing;
mod lengths;
mod limits;
mod sasl;
mod topics;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::BrokerProcess;
use common::kafka_wire::{
    body_bytes, closed, connect, creatable, decode_frame, flexible, frame, header_bytes,
    read_frame, sized,
};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

const BAD_FRAME: &str = "closing connection: bad frame";
const BAD_REQUEST: &str = "closing connection: bad request";

/// Kafka error codes the cases expect.
mod code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REQUEST: i16 = 42;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const INVALID_RECORD: i16 = 87;
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(sb(s))
}

/// A connection that answers ApiVersions: the broker is serving.
fn assert_serves(s: &mut TcpStream, correlation_id: i32) {
    s.write_all(&frame(
        ApiKey::ApiVersions,
        3,
        correlation_id,
        &ApiVersionsRequest::default(),
    ))
    .expect("write ApiVersions");
    let f = read_frame(s).expect("ApiVersions answered");
    let (corr, r): (i32, ApiVersionsResponse) = decode_frame(f, ApiKey::ApiVersions, 3);
    assert_eq!(corr, correlation_id);
    assert_eq!(r.error_code, 0);
}

/// One broker and a bystander connection opened before the hostile one.
struct Case {
    b: BrokerProcess,
    bystander: TcpStream,
}

impl Case {
    fn start(args: &[&str]) -> Case {
        let b = BrokerProcess::start(args);
        let mut bystander = connect(&b.addr);
        assert_serves(&mut bystander, 1);
        Case { b, bystander }
    }

    fn connect(&self) -> TcpStream {
        connect(&self.b.addr)
    }

    /// Sends `bytes` on a fresh connection (half-closing it if `eof`), then
    /// asserts the broker closed it and logged a line holding `needles`.
    fn expect_close(&mut self, bytes: &[u8], eof: bool, needles: &[&str]) -> String {
        let mut s = self.connect();
        // The broker may close before reading everything: a failed write is fine.
        let _ = s.write_all(bytes);
        if eof {
            let _ = s.shutdown(Shutdown::Write);
        }
        assert!(closed(&mut s), "connection left open ({needles:?})");
        let line = self
            .b
            .wait_log(needles)
            .unwrap_or_else(|| panic!("no log line with {needles:?}"));
        self.still_serves();
        line
    }

    /// The broker process lives, and serves the bystander and a newcomer.
    fn still_serves(&mut self) {
        assert!(self.b.is_running(), "broker died");
        assert_serves(&mut self.bystander, 2);
        let mut newcomer = self.connect();
        assert_serves(&mut newcomer, 3);
    }
}

/// Where `marker` first occurs in `body`.
fn find(body: &[u8], marker: &[u8]) -> usize {
    body.windows(marker.len())
        .position(|w| w == marker)
        .unwrap_or_else(|| panic!("marker {marker:?} not in the encoded request"))
}

// ---------------------------------------------------------------------------
// Requests answered with error codes: helpers.

/// Sends one request and decodes its answer.
fn call<Req: Encodable, Resp: kafka_protocol::protocol::Decodable>(
    s: &mut TcpStream,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    s.write_all(&frame(key, version, 77, req)).expect("write");
    let f = read_frame(s).unwrap_or_else(|| panic!("{key:?} not answered: connection closed"));
    let (corr, r) = decode_frame(f, key, version);
    assert_eq!(corr, 77);
    r
}

/// Sends `req` with every occurrence of each placeholder replaced by raw
/// bytes of the same length (names no `StrBytes` can hold: invalid UTF-8).
fn call_raw<Req: Encodable, Resp: kafka_protocol::protocol::Decodable>(
    s: &mut TcpStream,
    key: ApiKey,
    version: i16,
    req: &Req,
    swaps: &[(&str, &[u8])],
) -> Resp {
    let mut f = frame(key, version, 78, req);
    for (placeholder, raw) in swaps {
        assert_eq!(placeholder.len(), raw.len());
        let at = find(&f, placeholder.as_bytes());
        f[at..at + raw.len()].copy_from_slice(raw);
    }
    s.write_all(&f).expect("write");
    let f = read_frame(s).unwrap_or_else(|| panic!("{key:?} not answered: connection closed"));
    decode_frame(f, key, version).1
}

fn create_topics(s: &mut TcpStream, topics: Vec<CreatableTopic>) -> CreateTopicsResponse {
    let mut r = CreateTopicsRequest::default();
    r.topics = topics;
    r.timeout_ms = 5000;
    call(s, ApiKey::CreateTopics, 7, &r)
}

fn create_topic(s: &mut TcpStream, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let r = create_topics(s, vec![creatable(name, partitions, configs)]);
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

fn produce_to(s: &mut TcpStream, entries: &[(&str, i32, Bytes)]) -> ProduceResponse {
    let mut r = ProduceRequest::default();
    r.acks = -1;
    r.timeout_ms = 5000;
    for (topic, partition, records) in entries {
        let mut pd = PartitionProduceData::default();
        pd.index = *partition;
        pd.records = Some(records.clone());
        let mut td = TopicProduceData::default();
        td.name = topic_name(topic);
        td.partition_data = vec![pd];
        r.topic_data.push(td);
    }
    call(s, ApiKey::Produce, 9, &r)
}

/// The error code of the only partition of a one-entry produce.
fn produce_one(s: &mut TcpStream, topic: &str, records: Vec<u8>) -> i16 {
    let r = produce_to(s, &[(topic, 0, Bytes::from(records))]);
    r.responses[0].partition_responses[0].error_code
}

fn fetch_req_for(partitions: &[(&str, i32)], max_bytes: i32) -> FetchRequest {
    let mut r = FetchRequest::default();
    r.replica_id = BrokerId(-1);
    r.max_wait_ms = 0;
    r.max_bytes = max_bytes;
    for (topic, p) in partitions {
        let mut fp = FetchPartition::default();
        fp.partition = *p;
        fp.partition_max_bytes = 1 << 20;
        fp.log_start_offset = -1;
        let mut ft = FetchTopic::default();
        ft.topic = topic_name(topic);
        ft.partitions = vec![fp];
        r.topics.push(ft);
    }
    r
}

fn one_record(value: &[u8]) -> Vec<u8> {
    herald_log::batch::build::batch(
        &[herald_log::batch::build::SimpleRecord {
            key: Some(b"k"),
            value: Some(value),
            timestamp_ms: 1_700_000_000_000,
        }],
        -1,
        -1,
        -1,
    )
}

/// Every path under `dir`, relative to it.
fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The first good batch after refused ones lands at offset 0: nothing was written.
fn assert_nothing_written(s: &mut TcpStream, topic: &str) {
    let r = produce_to(s, &[(topic, 0, Bytes::from(one_record(b"after")))]);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 0),
        "something was appended before"
    );
}

fn partition_count(s: &mut TcpStream, topic: &str) -> Option<usize> {
    let mut req = MetadataRequest::default();
    let mut t = metadata_request::MetadataRequestTopic::default();
    t.name = Some(topic_name(topic));
    req.topics = Some(vec![t]);
    req.allow_auto_topic_creation = false;
    let r: MetadataResponse = call(s, ApiKey::Metadata, 12, &req);
    (r.topics[0].error_code == 0).then(|| r.topics[0].partitions.len())
}
