//! Hostile and malformed requests over raw TCP: the broker answers with a
//! Kafka error code or closes the connection, and keeps serving everyone else.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::BrokerProcess;
use herald_log::batch::build;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, MetadataRequest, ProduceRequest, ProduceResponse, RequestHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

fn connect(b: &BrokerProcess) -> TcpStream {
    let s = TcpStream::connect(&b.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

fn frame<R: Encodable>(key: ApiKey, version: i16, correlation_id: i32, req: &R) -> Vec<u8> {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str("bad-input-test"));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, key.request_header_version(version))
        .expect("header");
    req.encode(&mut body, version).expect("body");
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads one response frame; None if the broker closed the connection.
fn read_response(s: &mut TcpStream) -> Option<Bytes> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(Bytes::from(buf))
}

fn assert_closed(s: &mut TcpStream, what: &str) {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("{what}: expected the connection to be closed, got {other:?}"),
    }
}

fn assert_healthy(b: &mut BrokerProcess) {
    assert!(b.is_running(), "broker process died");
    let mut s = connect(b);
    s.write_all(&frame(
        ApiKey::ApiVersions,
        3,
        1,
        &kafka_protocol::messages::ApiVersionsRequest::default(),
    ))
    .expect("write");
    let mut resp = read_response(&mut s).expect("ApiVersions answered");
    let _corr = bytes::Buf::get_i32(&mut resp);
    let r = ApiVersionsResponse::decode(&mut resp, 3).expect("decode");
    assert_eq!(r.error_code, 0);
}

fn produce(s: &mut TcpStream, topic: &str, records: Vec<u8>) -> ProduceResponse {
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(Bytes::from(records));
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_string(topic.to_string()));
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    req.topic_data = vec![td];
    s.write_all(&frame(ApiKey::Produce, 9, 7, &req))
        .expect("write");
    let mut resp = read_response(s).expect("produce answered");
    let _corr = bytes::Buf::get_i32(&mut resp);
    let _tagged = bytes::Buf::get_u8(&mut resp);
    ProduceResponse::decode(&mut resp, 9).expect("decode produce response")
}

fn partition_error(r: &ProduceResponse) -> i16 {
    r.responses[0].partition_responses[0].error_code
}

#[test]
fn malformed_frames_close_the_connection_and_the_broker_survives() {
    let mut b = BrokerProcess::start(&["--socket-request-max-bytes", "1048576"]);

    // A frame larger than the cap: closed before anything is allocated.
    let mut s = connect(&b);
    s.write_all(&i32::MAX.to_be_bytes()).expect("write");
    assert_closed(&mut s, "oversized frame");

    // A negative size.
    let mut s = connect(&b);
    s.write_all(&(-5i32).to_be_bytes()).expect("write");
    assert_closed(&mut s, "negative frame size");

    // An unknown API key.
    let mut s = connect(&b);
    let mut f = BytesMut::new();
    f.put_i32(12);
    f.put_i16(999);
    f.put_i16(0);
    f.put_i32(1);
    f.put_i16(-1);
    f.put_i16(0);
    s.write_all(&f).expect("write");
    assert_closed(&mut s, "unknown api key");

    // Metadata claiming 2^31-1 topics in a 20-byte frame: no huge allocation, closed.
    let mut s = connect(&b);
    let mut f = BytesMut::new();
    f.put_i32(14);
    f.put_i16(ApiKey::Metadata as i16);
    f.put_i16(4);
    f.put_i32(2);
    f.put_i16(-1);
    f.put_i32(i32::MAX);
    s.write_all(&f).expect("write");
    assert_closed(&mut s, "absurd array count");

    // A flexible-version Metadata with a huge compact-array count.
    let mut s = connect(&b);
    let mut f = BytesMut::new();
    f.put_i32(15);
    f.put_i16(ApiKey::Metadata as i16);
    f.put_i16(12);
    f.put_i32(3);
    f.put_i16(-1);
    f.put_u8(0);
    f.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    s.write_all(&f).expect("write");
    assert_closed(&mut s, "absurd compact array count");

    // Pseudo-random garbage after a plausible header.
    let mut x: u64 = 0x2545F4914F6CDD1D;
    for i in 0..200 {
        let mut s = connect(&b);
        let len = 10 + (i * 7) % 300;
        let mut f = BytesMut::new();
        f.put_i32(len);
        f.put_i16((i % 70) as i16);
        f.put_i16((i % 14) as i16);
        for _ in 0..len - 4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            f.put_u8(x as u8);
        }
        let _ = s.write_all(&f);
        // Either an answer or a close; never a hang or a crash.
        let _ = read_response(&mut s);
    }
    assert_healthy(&mut b);
}

#[test]
fn unknown_api_versions_version_gets_kip_511_answer() {
    let b = BrokerProcess::start(&[]);
    let mut s = connect(&b);
    let mut f = BytesMut::new();
    f.put_i32(10);
    f.put_i16(ApiKey::ApiVersions as i16);
    f.put_i16(99);
    f.put_i32(42);
    f.put_i16(-1);
    s.write_all(&f).expect("write");
    let mut resp = read_response(&mut s).expect("answered");
    assert_eq!(bytes::Buf::get_i32(&mut resp), 42);
    let r = ApiVersionsResponse::decode(&mut resp, 0).expect("v0 body");
    assert_eq!(r.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(
        r.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::ApiVersions as i16 && k.max_version >= 3)
    );
}

#[test]
fn bad_batches_get_error_codes_and_nothing_is_written() {
    let mut b = BrokerProcess::start(&["--message-max-bytes", "2000"]);
    let mut s = connect(&b);
    // Create the topic through Metadata auto-creation.
    let mut md = MetadataRequest::default();
    let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_static_str("victim")));
    md.topics = Some(vec![t]);
    md.allow_auto_topic_creation = true;
    s.write_all(&frame(ApiKey::Metadata, 9, 3, &md))
        .expect("write");
    read_response(&mut s).expect("metadata answered");

    let good = build::batch(
        &[build::SimpleRecord {
            key: Some(b"k"),
            value: Some(b"v"),
            timestamp_ms: 1,
        }],
        -1,
        -1,
        -1,
    );

    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 1] ^= 0xff;
    assert_eq!(
        partition_error(&produce(&mut s, "victim", bad_crc)),
        2,
        "CORRUPT_MESSAGE for a CRC mismatch"
    );

    let mut too_long = good.clone();
    too_long[8..12].copy_from_slice(&1_000_000i32.to_be_bytes());
    assert_eq!(
        partition_error(&produce(&mut s, "victim", too_long)),
        2,
        "CORRUPT_MESSAGE for a length beyond the bytes"
    );

    let mut huge_count = good.clone();
    huge_count[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    let crc = crc32c_of(&huge_count[21..]);
    huge_count[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        partition_error(&produce(&mut s, "victim", huge_count)),
        87,
        "INVALID_RECORD for a count beyond the bytes"
    );

    let big_value = vec![b'x'; 5000];
    let big = build::batch(
        &[build::SimpleRecord {
            key: None,
            value: Some(&big_value),
            timestamp_ms: 1,
        }],
        -1,
        -1,
        -1,
    );
    assert_eq!(
        partition_error(&produce(&mut s, "victim", big)),
        10,
        "MESSAGE_TOO_LARGE above max.message.bytes"
    );

    assert_eq!(
        partition_error(&produce(&mut s, "victim", vec![1, 2, 3])),
        2,
        "CORRUPT_MESSAGE for a torn batch"
    );

    // Nothing above was written: the first good batch lands at offset 0.
    let r = produce(&mut s, "victim", good);
    assert_eq!(partition_error(&r), 0);
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 0);
    assert_healthy(&mut b);
}

fn crc32c_of(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}
