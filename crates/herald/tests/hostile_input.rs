//! The catalogue of hostile input (issue 12): each test sends what no client
//! would over raw TCP to a real broker process and asserts the exact answer
//! (a Kafka error code, or a closed connection and the broker's WARN line),
//! then that the broker still serves a connection opened before and one
//! opened after. The table is docs/reliability-parts/hostile-input.md.
//!
//! Each close case starts its own broker: the broker's WARN lines for bad
//! frames are rate-limited, so a case asserts the first occurrence only.

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::BrokerProcess;
use common::kafka_wire::{
    body_bytes, closed, connect, decode_frame, flexible, frame, header_bytes, read_frame, sized,
};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

const BAD_FRAME: &str = "closing connection: bad frame";
const BAD_REQUEST: &str = "closing connection: bad request";

/// Kafka error codes the cases expect.
mod code {
    pub const NONE: i16 = 0;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const INVALID_REQUEST: i16 = 42;
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

// ---------------------------------------------------------------------------
// Truncation at every request-header field. A Metadata v12 request (header
// v2: key, version, correlation id, client id, tagged fields); the size
// prefix always tells the truth about the bytes that follow, so the frame is
// complete and only too short, except where the client half-closes mid-frame.

/// Metadata v12's header, field by field.
fn metadata_header() -> Vec<u8> {
    header_bytes(ApiKey::Metadata, 12, 7)
}

/// A frame holding the first `n` bytes of the header only.
fn header_prefix(n: usize) -> Vec<u8> {
    sized(&metadata_header()[..n])
}

#[test]
fn truncated_size_prefix_then_eof_is_closed() {
    // Two of the four size bytes, then the client half-closes. The broker
    // sees a clean end of stream (no frame began) and closes without a WARN;
    // see the pending note in the table.
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    s.write_all(&[0, 0]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert!(closed(&mut s));
    c.still_serves();
}

#[test]
fn truncated_in_api_key() {
    let mut c = Case::start(&[]);
    c.expect_close(
        &header_prefix(1),
        false,
        &[BAD_FRAME, "frame size 1 outside"],
    );
}

#[test]
fn truncated_after_api_key() {
    let mut c = Case::start(&[]);
    c.expect_close(
        &header_prefix(2),
        false,
        &[BAD_FRAME, "frame size 2 outside"],
    );
}

#[test]
fn truncated_in_api_version() {
    let mut c = Case::start(&[]);
    c.expect_close(
        &header_prefix(3),
        false,
        &[BAD_FRAME, "frame size 3 outside"],
    );
}

#[test]
fn truncated_after_api_version() {
    let mut c = Case::start(&[]);
    c.expect_close(
        &header_prefix(4),
        false,
        &[BAD_FRAME, "frame size 4 outside"],
    );
}

#[test]
fn truncated_in_correlation_id() {
    let mut c = Case::start(&[]);
    c.expect_close(
        &header_prefix(6),
        false,
        &[BAD_FRAME, "frame size 6 outside"],
    );
}

#[test]
fn truncated_after_correlation_id() {
    let mut c = Case::start(&[]);
    c.expect_close(
        &header_prefix(8),
        false,
        &[BAD_FRAME, "frame size 8 outside"],
    );
}

#[test]
fn truncated_in_client_id_length() {
    let mut c = Case::start(&[]);
    c.expect_close(
        &header_prefix(9),
        false,
        &[BAD_FRAME, "frame size 9 outside"],
    );
}

#[test]
fn truncated_in_client_id() {
    // The length says 12 ("hostile-test"), three bytes of it follow.
    let mut c = Case::start(&[]);
    c.expect_close(
        &header_prefix(13),
        false,
        &[BAD_REQUEST, "malformed request (API 3 v12): request header"],
    );
}

#[test]
fn truncated_before_header_tagged_fields() {
    // The whole client id, then nothing: the flexible header's tagged-field
    // count is missing.
    let h = metadata_header();
    let mut c = Case::start(&[]);
    c.expect_close(
        &sized(&h[..h.len() - 1]),
        false,
        &[BAD_REQUEST, "malformed request (API 3 v12): request header"],
    );
}

#[test]
fn truncated_in_header_tagged_field() {
    // One tagged field announced (tag 0, 100 bytes), two bytes of it present.
    let mut h = metadata_header();
    h.pop();
    h.extend_from_slice(&[1, 0, 100, 0xaa, 0xbb]);
    let mut c = Case::start(&[]);
    c.expect_close(
        &sized(&h),
        false,
        &[BAD_REQUEST, "malformed request (API 3 v12): request header"],
    );
}

#[test]
fn header_tagged_field_count_huge() {
    // 2^32-1 tagged fields announced in a 20-byte frame.
    let mut h = metadata_header();
    h.pop();
    h.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut c = Case::start(&[]);
    c.expect_close(
        &sized(&h),
        false,
        &[BAD_REQUEST, "malformed request (API 3 v12): request header"],
    );
}

#[test]
fn truncated_body_in_complete_frame() {
    // A whole header, then the body cut inside the topics array count.
    let mut f = metadata_header();
    f.push(0x82); // a varint's first byte, continuation bit set, no second
    let mut c = Case::start(&[]);
    c.expect_close(
        &sized(&f),
        false,
        &[
            BAD_REQUEST,
            "malformed request (API 3 v12): Not enough bytes",
        ],
    );
}

#[test]
fn frame_cut_short_by_eof() {
    // The size prefix promises 100 bytes; 20 come, then the client half-closes.
    let mut f = 100i32.to_be_bytes().to_vec();
    f.extend_from_slice(&metadata_header());
    let mut c = Case::start(&[]);
    c.expect_close(&f, true, &[BAD_FRAME, "connection closed mid-frame"]);
}

// ---------------------------------------------------------------------------
// Frame sizes, API keys and versions.

/// A frame with a hand-made header: key, version, correlation id, no client id.
fn raw_header(key: i16, version: i16) -> Vec<u8> {
    let mut f = BytesMut::new();
    f.put_i16(key);
    f.put_i16(version);
    f.put_i32(9);
    f.put_i16(-1);
    f.to_vec()
}

#[test]
fn oversize_frame_is_closed_before_allocation() {
    let mut c = Case::start(&["--socket-request-max-bytes", "1048576"]);
    let rss_before = c.b.rss_kib();
    c.expect_close(
        &(1_048_577i32).to_be_bytes(),
        false,
        &[BAD_FRAME, "frame size 1048577 outside [10, 1048576]"],
    );
    assert!(c.b.rss_kib() < rss_before + 16 * 1024);
}

#[test]
fn frame_size_i32_max_is_closed_before_allocation() {
    let mut c = Case::start(&[]);
    let rss_before = c.b.rss_kib();
    c.expect_close(
        &i32::MAX.to_be_bytes(),
        false,
        &[BAD_FRAME, "frame size 2147483647 outside [10, 104857600]"],
    );
    assert!(c.b.rss_kib() < rss_before + 16 * 1024);
}

#[test]
fn negative_frame_size_is_closed() {
    let mut c = Case::start(&[]);
    c.expect_close(
        &i32::MIN.to_be_bytes(),
        false,
        &[BAD_FRAME, "frame size -2147483648 outside"],
    );
}

#[test]
fn zero_frame_size_is_closed() {
    let mut c = Case::start(&[]);
    c.expect_close(
        &0i32.to_be_bytes(),
        false,
        &[BAD_FRAME, "frame size 0 outside"],
    );
}

#[test]
fn unknown_api_key_is_closed() {
    let mut c = Case::start(&[]);
    c.expect_close(
        &sized(&raw_header(999, 0)),
        false,
        &[BAD_REQUEST, "unknown API key 999"],
    );
}

#[test]
fn negative_api_key_is_closed() {
    let mut c = Case::start(&[]);
    c.expect_close(
        &sized(&raw_header(-1, 0)),
        false,
        &[BAD_REQUEST, "unknown API key -1"],
    );
}

#[test]
fn unserved_api_key_is_closed() {
    // AddPartitionsToTxn (24): a Kafka API Herald does not serve (no transactions).
    let mut c = Case::start(&[]);
    c.expect_close(
        &sized(&raw_header(ApiKey::AddPartitionsToTxn as i16, 3)),
        false,
        &[BAD_REQUEST, "unknown API key 24"],
    );
}

#[test]
fn version_below_served_range_is_closed() {
    // Produce v2 (magic 0/1 records): advertised from v0 for librdkafka, served from v3.
    let mut c = Case::start(&[]);
    c.expect_close(
        &sized(&raw_header(ApiKey::Produce as i16, 2)),
        false,
        &[BAD_REQUEST, "unsupported version 2 of API 0"],
    );
}

#[test]
fn version_above_served_range_is_closed() {
    let mut c = Case::start(&[]);
    c.expect_close(
        &sized(&raw_header(ApiKey::Metadata as i16, 13)),
        false,
        &[BAD_REQUEST, "unsupported version 13 of API 3"],
    );
}

#[test]
fn negative_version_is_closed() {
    let mut c = Case::start(&[]);
    c.expect_close(
        &sized(&raw_header(ApiKey::Fetch as i16, -1)),
        false,
        &[BAD_REQUEST, "unsupported version -1 of API 1"],
    );
}

/// ApiVersions of a version Herald does not know: KIP-511's v0 answer with
/// UNSUPPORTED_VERSION and the ranges, and the connection stays usable.
fn api_versions_kip_511(version: i16) {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    // A future version's body is unknown: the broker must not try to read it.
    let mut f = raw_header(ApiKey::ApiVersions as i16, version);
    f.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    s.write_all(&sized(&f)).unwrap();
    let (corr, r): (i32, ApiVersionsResponse) = decode_frame(
        read_frame(&mut s).expect("answered"),
        ApiKey::ApiVersions,
        0,
    );
    assert_eq!(corr, 9);
    assert_eq!(r.error_code, code::UNSUPPORTED_VERSION);
    let own = r
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .expect("ApiVersions' own range");
    assert_eq!((own.min_version, own.max_version), (0, 4));
    assert!(r.api_keys.len() > 30, "every served API's range");
    // The client retries with a version it now knows, on the same connection.
    assert_serves(&mut s, 10);
    c.still_serves();
}

#[test]
fn api_versions_future_version_gets_kip_511_answer() {
    api_versions_kip_511(99);
}

#[test]
fn api_versions_negative_version_gets_kip_511_answer() {
    api_versions_kip_511(-3);
}

// ---------------------------------------------------------------------------
// Negative and huge lengths and counts in every API Herald serves. Each row
// of `length_cases!` encodes a valid request with kafka-protocol, marking one
// string (or bytes) field and the first field of one array's only element;
// `length_case` then finds the length prefix and the array count by the
// markers and makes five requests of it: string length negative, string
// length huge, array count negative, array count huge, body cut in half.
// Each is sent to its own broker. `every_served_api_has_length_cases` checks
// the rows against the ranges the broker advertises, so a newly served API
// fails the catalogue until it has a row.

/// The marked string or bytes field.
const M: &str = "hostile-str";
/// The string that starts an array's only element.
const E: &str = "hostile-elem";
/// A topic id that starts an array's only element.
const U: [u8; 16] = [0x5a; 16];

#[derive(Clone, Copy, Debug)]
enum Kind {
    Str,
    Bytes,
    Raw,
}

/// Where a field is: its marker, how it is encoded, and for an array element,
/// how many bytes of the element come before the marked field.
#[derive(Clone, Copy, Debug)]
struct At {
    marker: &'static [u8],
    kind: Kind,
    gap: usize,
}

const fn string(m: &'static str) -> Option<At> {
    Some(At {
        marker: m.as_bytes(),
        kind: Kind::Str,
        gap: 0,
    })
}

const fn bytes_field(m: &'static str) -> Option<At> {
    Some(At {
        marker: m.as_bytes(),
        kind: Kind::Bytes,
        gap: 0,
    })
}

/// An element whose marked string comes after `gap` bytes (an int8 resource type, a uuid).
const fn string_after(m: &'static str, gap: usize) -> Option<At> {
    Some(At {
        marker: m.as_bytes(),
        kind: Kind::Str,
        gap,
    })
}

const fn uuid_first() -> Option<At> {
    Some(At {
        marker: &U,
        kind: Kind::Raw,
        gap: 0,
    })
}

fn find(body: &[u8], marker: &[u8]) -> usize {
    body.windows(marker.len())
        .position(|w| w == marker)
        .unwrap_or_else(|| panic!("marker {marker:?} not in the encoded request"))
}

fn prefix_len(kind: Kind, flex: bool) -> usize {
    match (kind, flex) {
        (Kind::Raw, _) => 0,
        (_, true) => 1, // unsigned varint of length + 1, one byte for short markers
        (Kind::Str, false) => 2,
        (Kind::Bytes, false) => 4,
    }
}

/// Java reads a compact length of 2^32-1 as -1 - 1 = -2: negative.
const VARINT_NEGATIVE: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];
const VARINT_HUGE: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x07];

#[derive(Clone, Copy, Debug)]
enum Mutation {
    StringLengthNegative,
    StringLengthHuge,
    ArrayCountNegative,
    ArrayCountHuge,
    BodyCutInHalf,
}

/// The body with one mutation applied; None if the request has no such field.
fn mutate(
    body: &[u8],
    flex: bool,
    str_at: Option<At>,
    arr_at: Option<At>,
    m: Mutation,
) -> Option<Vec<u8>> {
    use Mutation::*;
    let mut out = body.to_vec();
    match m {
        StringLengthNegative | StringLengthHuge => {
            let at = str_at?;
            let pos = find(body, at.marker);
            let n = prefix_len(at.kind, flex);
            let len = at.marker.len();
            let replacement: Vec<u8> = match (flex, at.kind, m) {
                (true, _, StringLengthNegative) => VARINT_NEGATIVE.to_vec(),
                (true, _, _) => VARINT_HUGE.to_vec(),
                (false, Kind::Str, StringLengthNegative) => (-2i16).to_be_bytes().to_vec(),
                (false, Kind::Str, _) => i16::MAX.to_be_bytes().to_vec(),
                (false, _, StringLengthNegative) => (-2i32).to_be_bytes().to_vec(),
                (false, _, _) => i32::MAX.to_be_bytes().to_vec(),
            };
            let expected: Vec<u8> = match (flex, at.kind) {
                (true, _) => vec![len as u8 + 1],
                (false, Kind::Str) => (len as i16).to_be_bytes().to_vec(),
                (false, _) => (len as i32).to_be_bytes().to_vec(),
            };
            assert_eq!(&body[pos - n..pos], &expected[..], "{at:?}: length prefix");
            out.splice(pos - n..pos, replacement);
        }
        ArrayCountNegative | ArrayCountHuge => {
            let at = arr_at?;
            let elem = find(body, at.marker) - prefix_len(at.kind, flex) - at.gap;
            let (n, expected, replacement): (usize, Vec<u8>, Vec<u8>) = match (flex, m) {
                (true, ArrayCountNegative) => (1, vec![2], VARINT_NEGATIVE.to_vec()),
                (true, _) => (1, vec![2], VARINT_HUGE.to_vec()),
                (false, ArrayCountNegative) => {
                    (4, vec![0, 0, 0, 1], (-2i32).to_be_bytes().to_vec())
                }
                (false, _) => (4, vec![0, 0, 0, 1], i32::MAX.to_be_bytes().to_vec()),
            };
            assert_eq!(
                &body[elem - n..elem],
                &expected[..],
                "{at:?}: array count of 1"
            );
            out.splice(elem - n..elem, replacement);
        }
        BodyCutInHalf => {
            if body.is_empty() {
                return None;
            }
            out.truncate(body.len() / 2);
        }
    }
    Some(out)
}

fn length_case(key: ApiKey, version: i16, body: &[u8], str_at: Option<At>, arr_at: Option<At>) {
    use Mutation::*;
    let flex = flexible(key, version);
    let needle = format!("malformed request (API {} v{version})", key as i16);
    // The unmutated request decodes: whatever it answers, the connection stays.
    {
        let b = BrokerProcess::start(&[]);
        let mut s = connect(&b.addr);
        let mut f = header_bytes(key, version, 5);
        f.extend_from_slice(body);
        s.write_all(&sized(&f)).unwrap();
        let answered = read_frame(&mut s).is_some();
        assert!(
            answered,
            "{key:?} v{version}: the valid request was not answered"
        );
        assert_eq!(b.log_count(&[&needle]), 0);
    }
    let mut tried = 0;
    for m in [
        StringLengthNegative,
        StringLengthHuge,
        ArrayCountNegative,
        ArrayCountHuge,
        BodyCutInHalf,
    ] {
        let Some(bad) = mutate(body, flex, str_at, arr_at, m) else {
            continue;
        };
        tried += 1;
        let mut c = Case::start(&[]);
        let rss_before = c.b.rss_kib();
        let mut f = header_bytes(key, version, 5);
        f.extend_from_slice(&bad);
        let line = c.expect_close(&sized(&f), false, &[BAD_REQUEST, &needle]);
        assert!(
            c.b.rss_kib() < rss_before + 16 * 1024,
            "{key:?} v{version} {m:?}: memory grew"
        );
        eprintln!("{key:?} v{version} {m:?}: {line}");
    }
    assert!(tried >= 1, "{key:?} v{version}: no mutation applies");
}

fn enc<R: Encodable>(req: R, v: i16) -> Vec<u8> {
    body_bytes(&req, v)
}

macro_rules! length_cases {
    ($($test:ident: $key:ident, $ver:literal, str = $str:expr, arr = $arr:expr, $build:expr;)*) => {
        /// (API, version) of every row.
        const LENGTH_CASES: &[(ApiKey, i16)] = &[$((ApiKey::$key, $ver)),*];
        $(
            #[test]
            fn $test() {
                let build: fn(i16) -> Vec<u8> = $build;
                length_case(ApiKey::$key, $ver, &build($ver), $str, $arr);
            }
        )*
    };
}

fn produce_req(v: i16) -> Vec<u8> {
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    let mut td = TopicProduceData::default();
    td.name = topic_name(E);
    td.partition_data = vec![pd];
    let mut r = ProduceRequest::default();
    r.transactional_id = Some(TransactionalId(sb(M)));
    r.acks = 1;
    r.timeout_ms = 1000;
    r.topic_data = vec![td];
    enc(r, v)
}

fn fetch_req(v: i16) -> Vec<u8> {
    let mut fp = FetchPartition::default();
    fp.partition = 0;
    fp.partition_max_bytes = 1024;
    let mut ft = FetchTopic::default();
    if v >= 13 {
        ft.topic_id = uuid::Uuid::from_bytes(U);
    } else {
        ft.topic = topic_name(E);
    }
    ft.partitions = vec![fp];
    let mut r = FetchRequest::default();
    r.max_wait_ms = 0;
    r.max_bytes = 1024;
    r.topics = vec![ft];
    if v >= 11 {
        r.rack_id = sb(M);
    }
    enc(r, v)
}

fn fetch_string_field(v: i16) -> Option<At> {
    if v >= 11 { string(M) } else { string(E) }
}

length_cases! {
    lengths_produce_v3: Produce, 3, str = string(M), arr = string(E), produce_req;
    lengths_produce_v11: Produce, 11, str = string(M), arr = string(E), produce_req;
    lengths_fetch_v4: Fetch, 4, str = fetch_string_field(4), arr = string(E), fetch_req;
    lengths_fetch_v12: Fetch, 12, str = fetch_string_field(12), arr = string(E), fetch_req;
    lengths_fetch_v16: Fetch, 16, str = fetch_string_field(16), arr = uuid_first(), fetch_req;
    lengths_list_offsets_v1: ListOffsets, 1, str = string(E), arr = string(E), |v| {
        let mut t = list_offsets_request::ListOffsetsTopic::default();
        t.name = topic_name(E);
        let mut r = ListOffsetsRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_list_offsets_v8: ListOffsets, 8, str = string(E), arr = string(E), |v| {
        let mut t = list_offsets_request::ListOffsetsTopic::default();
        t.name = topic_name(E);
        let mut r = ListOffsetsRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_metadata_v0: Metadata, 0, str = string(E), arr = string(E), |v| {
        let mut t = metadata_request::MetadataRequestTopic::default();
        t.name = Some(topic_name(E));
        let mut r = MetadataRequest::default();
        r.topics = Some(vec![t]);
        enc(r, v)
    };
    lengths_metadata_v1: Metadata, 1, str = string(E), arr = string(E), |v| {
        let mut t = metadata_request::MetadataRequestTopic::default();
        t.name = Some(topic_name(E));
        let mut r = MetadataRequest::default();
        r.topics = Some(vec![t]);
        enc(r, v)
    };
    lengths_metadata_v12: Metadata, 12, str = string(E), arr = string_after(E, 16), |v| {
        let mut t = metadata_request::MetadataRequestTopic::default();
        t.name = Some(topic_name(E));
        let mut r = MetadataRequest::default();
        r.topics = Some(vec![t]);
        enc(r, v)
    };
    lengths_api_versions_v3: ApiVersions, 3, str = string(M), arr = None, |v| {
        let mut r = ApiVersionsRequest::default();
        r.client_software_name = sb(M);
        r.client_software_version = sb("1.0");
        enc(r, v)
    };
    lengths_api_versions_v4: ApiVersions, 4, str = string(M), arr = None, |v| {
        let mut r = ApiVersionsRequest::default();
        r.client_software_name = sb(M);
        r.client_software_version = sb("1.0");
        enc(r, v)
    };
    lengths_create_topics_v2: CreateTopics, 2, str = string(E), arr = string(E), |v| {
        let mut t = CreatableTopic::default();
        t.name = topic_name(E);
        t.num_partitions = 1;
        t.replication_factor = 1;
        let mut r = CreateTopicsRequest::default();
        r.topics = vec![t];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_create_topics_v7: CreateTopics, 7, str = string(E), arr = string(E), |v| {
        let mut t = CreatableTopic::default();
        t.name = topic_name(E);
        t.num_partitions = 1;
        t.replication_factor = 1;
        let mut r = CreateTopicsRequest::default();
        r.topics = vec![t];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_delete_topics_v1: DeleteTopics, 1, str = string(E), arr = string(E), |v| {
        let mut r = DeleteTopicsRequest::default();
        r.topic_names = vec![topic_name(E)];
        enc(r, v)
    };
    lengths_delete_topics_v6: DeleteTopics, 6, str = string(E), arr = string(E), |v| {
        let mut t = delete_topics_request::DeleteTopicState::default();
        t.name = Some(topic_name(E));
        let mut r = DeleteTopicsRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_delete_records_v0: DeleteRecords, 0, str = string(E), arr = string(E), |v| {
        let mut t = delete_records_request::DeleteRecordsTopic::default();
        t.name = topic_name(E);
        let mut r = DeleteRecordsRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_delete_records_v2: DeleteRecords, 2, str = string(E), arr = string(E), |v| {
        let mut t = delete_records_request::DeleteRecordsTopic::default();
        t.name = topic_name(E);
        let mut r = DeleteRecordsRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_init_producer_id_v0: InitProducerId, 0, str = string(M), arr = None, |v| {
        let mut r = InitProducerIdRequest::default();
        r.transactional_id = Some(TransactionalId(sb(M)));
        enc(r, v)
    };
    lengths_init_producer_id_v5: InitProducerId, 5, str = string(M), arr = None, |v| {
        let mut r = InitProducerIdRequest::default();
        r.transactional_id = Some(TransactionalId(sb(M)));
        enc(r, v)
    };
    lengths_offset_for_leader_epoch_v2: OffsetForLeaderEpoch, 2, str = string(E), arr = string(E), |v| {
        let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
        t.topic = topic_name(E);
        let mut r = OffsetForLeaderEpochRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_offset_for_leader_epoch_v4: OffsetForLeaderEpoch, 4, str = string(E), arr = string(E), |v| {
        let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
        t.topic = topic_name(E);
        let mut r = OffsetForLeaderEpochRequest::default();
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_describe_configs_v1: DescribeConfigs, 1, str = string(E), arr = string_after(E, 1), |v| {
        let mut res = describe_configs_request::DescribeConfigsResource::default();
        res.resource_type = 2;
        res.resource_name = sb(E);
        let mut r = DescribeConfigsRequest::default();
        r.resources = vec![res];
        enc(r, v)
    };
    lengths_describe_configs_v4: DescribeConfigs, 4, str = string(E), arr = string_after(E, 1), |v| {
        let mut res = describe_configs_request::DescribeConfigsResource::default();
        res.resource_type = 2;
        res.resource_name = sb(E);
        let mut r = DescribeConfigsRequest::default();
        r.resources = vec![res];
        enc(r, v)
    };
    lengths_alter_configs_v0: AlterConfigs, 0, str = string(E), arr = string_after(E, 1), |v| {
        let mut res = alter_configs_request::AlterConfigsResource::default();
        res.resource_type = 2;
        res.resource_name = sb(E);
        let mut r = AlterConfigsRequest::default();
        r.resources = vec![res];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_alter_configs_v2: AlterConfigs, 2, str = string(E), arr = string_after(E, 1), |v| {
        let mut res = alter_configs_request::AlterConfigsResource::default();
        res.resource_type = 2;
        res.resource_name = sb(E);
        let mut r = AlterConfigsRequest::default();
        r.resources = vec![res];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_create_partitions_v0: CreatePartitions, 0, str = string(E), arr = string(E), |v| {
        let mut t = create_partitions_request::CreatePartitionsTopic::default();
        t.name = topic_name(E);
        t.count = 2;
        let mut r = CreatePartitionsRequest::default();
        r.topics = vec![t];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_create_partitions_v3: CreatePartitions, 3, str = string(E), arr = string(E), |v| {
        let mut t = create_partitions_request::CreatePartitionsTopic::default();
        t.name = topic_name(E);
        t.count = 2;
        let mut r = CreatePartitionsRequest::default();
        r.topics = vec![t];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_incremental_alter_configs_v0: IncrementalAlterConfigs, 0, str = string(E), arr = string_after(E, 1), |v| {
        let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
        res.resource_type = 2;
        res.resource_name = sb(E);
        let mut r = IncrementalAlterConfigsRequest::default();
        r.resources = vec![res];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_incremental_alter_configs_v1: IncrementalAlterConfigs, 1, str = string(E), arr = string_after(E, 1), |v| {
        let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
        res.resource_type = 2;
        res.resource_name = sb(E);
        let mut r = IncrementalAlterConfigsRequest::default();
        r.resources = vec![res];
        r.validate_only = true;
        enc(r, v)
    };
    lengths_describe_cluster_v0: DescribeCluster, 0, str = None, arr = None, |v| {
        enc(DescribeClusterRequest::default(), v)
    };
    lengths_describe_cluster_v1: DescribeCluster, 1, str = None, arr = None, |v| {
        enc(DescribeClusterRequest::default(), v)
    };
    lengths_describe_log_dirs_v1: DescribeLogDirs, 1, str = string(E), arr = string(E), |v| {
        let mut t = describe_log_dirs_request::DescribableLogDirTopic::default();
        t.topic = topic_name(E);
        let mut r = DescribeLogDirsRequest::default();
        r.topics = Some(vec![t]);
        enc(r, v)
    };
    lengths_describe_log_dirs_v4: DescribeLogDirs, 4, str = string(E), arr = string(E), |v| {
        let mut t = describe_log_dirs_request::DescribableLogDirTopic::default();
        t.topic = topic_name(E);
        let mut r = DescribeLogDirsRequest::default();
        r.topics = Some(vec![t]);
        enc(r, v)
    };
    lengths_find_coordinator_v0: FindCoordinator, 0, str = string(M), arr = None, |v| {
        let mut r = FindCoordinatorRequest::default();
        r.key = sb(M);
        enc(r, v)
    };
    lengths_find_coordinator_v6: FindCoordinator, 6, str = string(E), arr = string(E), |v| {
        let mut r = FindCoordinatorRequest::default();
        r.coordinator_keys = vec![sb(E)];
        enc(r, v)
    };
    lengths_join_group_v0: JoinGroup, 0, str = string(M), arr = string(E), |v| {
        let mut p = join_group_request::JoinGroupRequestProtocol::default();
        p.name = sb(E);
        p.metadata = Bytes::from_static(b"m");
        let mut r = JoinGroupRequest::default();
        r.group_id = GroupId(sb(M));
        r.session_timeout_ms = 10_000;
        r.protocol_type = sb("consumer");
        r.protocols = vec![p];
        enc(r, v)
    };
    lengths_join_group_v9: JoinGroup, 9, str = string(M), arr = string(E), |v| {
        let mut p = join_group_request::JoinGroupRequestProtocol::default();
        p.name = sb(E);
        p.metadata = Bytes::from_static(b"m");
        let mut r = JoinGroupRequest::default();
        r.group_id = GroupId(sb(M));
        r.session_timeout_ms = 10_000;
        r.rebalance_timeout_ms = 10_000;
        r.member_id = sb("m-1");
        r.protocol_type = sb("consumer");
        r.protocols = vec![p];
        enc(r, v)
    };
    lengths_sync_group_v0: SyncGroup, 0, str = string(M), arr = string(E), |v| {
        let mut a = sync_group_request::SyncGroupRequestAssignment::default();
        a.member_id = sb(E);
        let mut r = SyncGroupRequest::default();
        r.group_id = GroupId(sb(M));
        r.member_id = sb("m-1");
        r.assignments = vec![a];
        enc(r, v)
    };
    lengths_sync_group_v5: SyncGroup, 5, str = string(M), arr = string(E), |v| {
        let mut a = sync_group_request::SyncGroupRequestAssignment::default();
        a.member_id = sb(E);
        let mut r = SyncGroupRequest::default();
        r.group_id = GroupId(sb(M));
        r.member_id = sb("m-1");
        r.assignments = vec![a];
        enc(r, v)
    };
    lengths_heartbeat_v0: Heartbeat, 0, str = string(M), arr = None, |v| {
        let mut r = HeartbeatRequest::default();
        r.group_id = GroupId(sb(M));
        enc(r, v)
    };
    lengths_heartbeat_v4: Heartbeat, 4, str = string(M), arr = None, |v| {
        let mut r = HeartbeatRequest::default();
        r.group_id = GroupId(sb(M));
        enc(r, v)
    };
    lengths_leave_group_v0: LeaveGroup, 0, str = string(M), arr = None, |v| {
        let mut r = LeaveGroupRequest::default();
        r.group_id = GroupId(sb(M));
        r.member_id = sb("m-1");
        enc(r, v)
    };
    lengths_leave_group_v5: LeaveGroup, 5, str = string(M), arr = string(E), |v| {
        let mut m = leave_group_request::MemberIdentity::default();
        m.member_id = sb(E);
        let mut r = LeaveGroupRequest::default();
        r.group_id = GroupId(sb(M));
        r.members = vec![m];
        enc(r, v)
    };
    lengths_offset_commit_v2: OffsetCommit, 2, str = string(M), arr = string(E), |v| {
        let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
        t.name = topic_name(E);
        let mut r = OffsetCommitRequest::default();
        r.group_id = GroupId(sb(M));
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_offset_commit_v9: OffsetCommit, 9, str = string(M), arr = string(E), |v| {
        let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
        t.name = topic_name(E);
        let mut r = OffsetCommitRequest::default();
        r.group_id = GroupId(sb(M));
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_offset_fetch_v1: OffsetFetch, 1, str = string(M), arr = string(E), |v| {
        let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
        t.name = topic_name(E);
        let mut r = OffsetFetchRequest::default();
        r.group_id = GroupId(sb(M));
        r.topics = Some(vec![t]);
        enc(r, v)
    };
    lengths_offset_fetch_v9: OffsetFetch, 9, str = string(E), arr = string(E), |v| {
        let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
        g.group_id = GroupId(sb(E));
        let mut r = OffsetFetchRequest::default();
        r.groups = vec![g];
        enc(r, v)
    };
    lengths_offset_delete_v0: OffsetDelete, 0, str = string(M), arr = string(E), |v| {
        let mut t = offset_delete_request::OffsetDeleteRequestTopic::default();
        t.name = topic_name(E);
        let mut r = OffsetDeleteRequest::default();
        r.group_id = GroupId(sb(M));
        r.topics = vec![t];
        enc(r, v)
    };
    lengths_delete_groups_v0: DeleteGroups, 0, str = string(E), arr = string(E), |v| {
        let mut r = DeleteGroupsRequest::default();
        r.groups_names = vec![GroupId(sb(E))];
        enc(r, v)
    };
    lengths_delete_groups_v2: DeleteGroups, 2, str = string(E), arr = string(E), |v| {
        let mut r = DeleteGroupsRequest::default();
        r.groups_names = vec![GroupId(sb(E))];
        enc(r, v)
    };
    lengths_describe_groups_v0: DescribeGroups, 0, str = string(E), arr = string(E), |v| {
        let mut r = DescribeGroupsRequest::default();
        r.groups = vec![GroupId(sb(E))];
        enc(r, v)
    };
    lengths_describe_groups_v5: DescribeGroups, 5, str = string(E), arr = string(E), |v| {
        let mut r = DescribeGroupsRequest::default();
        r.groups = vec![GroupId(sb(E))];
        enc(r, v)
    };
    lengths_list_groups_v4: ListGroups, 4, str = string(E), arr = string(E), |v| {
        let mut r = ListGroupsRequest::default();
        r.states_filter = vec![sb(E)];
        enc(r, v)
    };
    lengths_list_groups_v5: ListGroups, 5, str = string(E), arr = string(E), |v| {
        let mut r = ListGroupsRequest::default();
        r.types_filter = vec![sb(E)];
        enc(r, v)
    };
    lengths_consumer_group_heartbeat_v0: ConsumerGroupHeartbeat, 0, str = string(M), arr = string(E), |v| {
        let mut r = ConsumerGroupHeartbeatRequest::default();
        r.group_id = GroupId(sb(M));
        r.member_id = sb("m-1");
        r.subscribed_topic_names = Some(vec![topic_name(E)]);
        enc(r, v)
    };
    lengths_consumer_group_heartbeat_v1: ConsumerGroupHeartbeat, 1, str = string(M), arr = string(E), |v| {
        let mut r = ConsumerGroupHeartbeatRequest::default();
        r.group_id = GroupId(sb(M));
        r.member_id = sb("m-1");
        r.subscribed_topic_names = Some(vec![topic_name(E)]);
        enc(r, v)
    };
    lengths_consumer_group_describe_v0: ConsumerGroupDescribe, 0, str = string(E), arr = string(E), |v| {
        let mut r = ConsumerGroupDescribeRequest::default();
        r.group_ids = vec![GroupId(sb(E))];
        enc(r, v)
    };
    lengths_describe_acls_v1: DescribeAcls, 1, str = string(M), arr = None, |v| {
        let mut r = DescribeAclsRequest::default();
        r.resource_type_filter = 1;
        r.resource_name_filter = Some(sb(M));
        r.pattern_type_filter = 1;
        r.operation = 1;
        r.permission_type = 1;
        enc(r, v)
    };
    lengths_describe_acls_v3: DescribeAcls, 3, str = string(M), arr = None, |v| {
        let mut r = DescribeAclsRequest::default();
        r.resource_type_filter = 1;
        r.resource_name_filter = Some(sb(M));
        r.pattern_type_filter = 1;
        r.operation = 1;
        r.permission_type = 1;
        enc(r, v)
    };
    lengths_create_acls_v1: CreateAcls, 1, str = string(E), arr = string_after(E, 1), |v| {
        let mut a = create_acls_request::AclCreation::default();
        a.resource_type = 2;
        a.resource_name = sb(E);
        a.resource_pattern_type = 3;
        a.principal = sb("User:x");
        a.host = sb("*");
        a.operation = 3;
        a.permission_type = 3;
        let mut r = CreateAclsRequest::default();
        r.creations = vec![a];
        enc(r, v)
    };
    lengths_create_acls_v3: CreateAcls, 3, str = string(E), arr = string_after(E, 1), |v| {
        let mut a = create_acls_request::AclCreation::default();
        a.resource_type = 2;
        a.resource_name = sb(E);
        a.resource_pattern_type = 3;
        a.principal = sb("User:x");
        a.host = sb("*");
        a.operation = 3;
        a.permission_type = 3;
        let mut r = CreateAclsRequest::default();
        r.creations = vec![a];
        enc(r, v)
    };
    lengths_delete_acls_v1: DeleteAcls, 1, str = string(E), arr = string_after(E, 1), |v| {
        let mut f = delete_acls_request::DeleteAclsFilter::default();
        f.resource_type_filter = 2;
        f.resource_name_filter = Some(sb(E));
        f.pattern_type_filter = 3;
        f.operation = 1;
        f.permission_type = 1;
        let mut r = DeleteAclsRequest::default();
        r.filters = vec![f];
        enc(r, v)
    };
    lengths_delete_acls_v3: DeleteAcls, 3, str = string(E), arr = string_after(E, 1), |v| {
        let mut f = delete_acls_request::DeleteAclsFilter::default();
        f.resource_type_filter = 2;
        f.resource_name_filter = Some(sb(E));
        f.pattern_type_filter = 3;
        f.operation = 1;
        f.permission_type = 1;
        let mut r = DeleteAclsRequest::default();
        r.filters = vec![f];
        enc(r, v)
    };
    lengths_describe_user_scram_credentials_v0: DescribeUserScramCredentials, 0, str = string(E), arr = string(E), |v| {
        let mut u = describe_user_scram_credentials_request::UserName::default();
        u.name = sb(E);
        let mut r = DescribeUserScramCredentialsRequest::default();
        r.users = Some(vec![u]);
        enc(r, v)
    };
    lengths_alter_user_scram_credentials_v0: AlterUserScramCredentials, 0, str = string(E), arr = string(E), |v| {
        let mut d = alter_user_scram_credentials_request::ScramCredentialDeletion::default();
        d.name = sb(E);
        d.mechanism = 1;
        let mut r = AlterUserScramCredentialsRequest::default();
        r.deletions = vec![d];
        enc(r, v)
    };
    lengths_sasl_handshake_v0: SaslHandshake, 0, str = string(M), arr = None, |v| {
        let mut r = SaslHandshakeRequest::default();
        r.mechanism = sb(M);
        enc(r, v)
    };
    lengths_sasl_handshake_v1: SaslHandshake, 1, str = string(M), arr = None, |v| {
        let mut r = SaslHandshakeRequest::default();
        r.mechanism = sb(M);
        enc(r, v)
    };
    lengths_sasl_authenticate_v0: SaslAuthenticate, 0, str = bytes_field(M), arr = None, |v| {
        let mut r = SaslAuthenticateRequest::default();
        r.auth_bytes = Bytes::from_static(M.as_bytes());
        enc(r, v)
    };
    lengths_sasl_authenticate_v2: SaslAuthenticate, 2, str = bytes_field(M), arr = None, |v| {
        let mut r = SaslAuthenticateRequest::default();
        r.auth_bytes = Bytes::from_static(M.as_bytes());
        enc(r, v)
    };
}

/// The rows above cover every API the broker advertises, at its highest
/// version and at its lowest served one.
#[test]
fn every_served_api_has_length_cases() {
    let b = BrokerProcess::start(&[]);
    let mut s = connect(&b.addr);
    s.write_all(&frame(
        ApiKey::ApiVersions,
        3,
        1,
        &ApiVersionsRequest::default(),
    ))
    .unwrap();
    let (_, r): (i32, ApiVersionsResponse) =
        decode_frame(read_frame(&mut s).unwrap(), ApiKey::ApiVersions, 3);
    let mut missing = Vec::new();
    for k in &r.api_keys {
        let key = ApiKey::try_from(k.api_key).expect("a known key");
        // Produce is advertised from v0 for librdkafka but served from v3.
        let min = if key == ApiKey::Produce {
            3
        } else {
            k.min_version
        };
        for v in [min, k.max_version] {
            let v = match (key, v) {
                // ApiVersions v0-2 and ListGroups v0-3 have no fields at all.
                (ApiKey::ApiVersions, v) if v < 3 => 3,
                (ApiKey::ListGroups, v) if v < 4 => 4,
                _ => v,
            };
            if !LENGTH_CASES.contains(&(key, v)) {
                missing.push(format!("{key:?} v{v}"));
            }
        }
    }
    assert!(missing.is_empty(), "no length/count rows for {missing:?}");
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

fn creatable(name: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopic {
    let mut t = CreatableTopic::default();
    t.name = topic_name(name);
    t.num_partitions = partitions;
    t.replication_factor = 1;
    t.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut c = CreatableTopicConfig::default();
            c.name = sb(k);
            c.value = Some(sb(v));
            c
        })
        .collect();
    t
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

// ---------------------------------------------------------------------------
// Topic names. Kafka allows ASCII alphanumerics, '.', '_' and '-', at most
// 249 bytes, and not "." or "..": anything else is INVALID_TOPIC_EXCEPTION,
// and nothing may reach the filesystem (no directory inside the data
// directory, nor beside it through "../").

/// CreateTopics v7 with a bad name (raw bytes) and a good one: the bad one
/// is refused, the good one created, and only the good one is on disk.
fn create_topics_refuses_name(raw: &[u8]) {
    let mut c = Case::start(&[]);
    let data = c.b.data_dir().to_path_buf();
    let before = tree(&data);
    let placeholder: String = "p".repeat(raw.len());
    let mut s = c.connect();
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![
        creatable(&placeholder, 1, &[]),
        creatable("good-one", 1, &[]),
    ];
    req.timeout_ms = 5000;
    let r: CreateTopicsResponse = call_raw(
        &mut s,
        ApiKey::CreateTopics,
        7,
        &req,
        &[(&placeholder, raw)],
    );
    assert_eq!(r.topics.len(), 2);
    assert_eq!(
        r.topics[0].error_code,
        code::INVALID_TOPIC_EXCEPTION,
        "{:?}",
        r.topics[0].error_message
    );
    assert_eq!(r.topics[1].error_code, code::NONE);
    let after = tree(&data);
    let new: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
    assert!(
        new.iter().all(|p| p.starts_with("topics/good-one")),
        "unexpected paths in the data directory: {new:?}"
    );
    assert!(
        new.iter().any(|p| p.contains("good-one")),
        "good topic on disk: {after:?}"
    );
    // Nothing beside the data directory either (the temp dir's parent).
    let escape = data.join("..").join("hostile-escape");
    assert!(!escape.exists(), "{} exists", escape.display());
    c.still_serves();
}

#[test]
fn create_topics_invalid_utf8_name() {
    create_topics_refuses_name(b"bad\xff\xfe-name");
}

#[test]
fn create_topics_name_with_slash() {
    create_topics_refuses_name(b"a/b");
}

#[test]
fn create_topics_name_climbing_out_of_the_data_dir() {
    create_topics_refuses_name(b"../hostile-escape");
}

#[test]
fn create_topics_name_dot_dot() {
    create_topics_refuses_name(b"..");
}

#[test]
fn create_topics_name_dot() {
    create_topics_refuses_name(b".");
}

#[test]
fn create_topics_name_with_control_characters() {
    create_topics_refuses_name(b"a\x00b\nc\x7f");
}

#[test]
fn create_topics_name_of_250_bytes() {
    create_topics_refuses_name(&[b'x'; 250]);
    // 249 is the longest allowed.
    let c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, &"y".repeat(249), 1, &[]);
}

/// The bad names every name case below sends at once.
const BAD_NAMES: &[&[u8]] = &[
    b"bad\xff\xfe-name",
    b"a/b",
    b"../hostile-escape",
    b"..",
    b".",
    b"a\x00b\nc\x7f",
    &[b'x'; 250],
];

#[test]
fn metadata_auto_create_refuses_invalid_names() {
    let mut c = Case::start(&[]);
    let data = c.b.data_dir().to_path_buf();
    let before = tree(&data);
    let placeholders: Vec<String> = BAD_NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{}", (b'A' + i as u8) as char).repeat(n.len()))
        .collect();
    let mut req = MetadataRequest::default();
    let mut topics: Vec<_> = placeholders
        .iter()
        .map(|p| {
            let mut t = metadata_request::MetadataRequestTopic::default();
            t.name = Some(topic_name(p));
            t
        })
        .collect();
    let mut good = metadata_request::MetadataRequestTopic::default();
    good.name = Some(topic_name("auto-good"));
    topics.push(good);
    req.topics = Some(topics);
    req.allow_auto_topic_creation = true;
    let swaps: Vec<(&str, &[u8])> = placeholders
        .iter()
        .zip(BAD_NAMES)
        .map(|(p, n)| (p.as_str(), *n))
        .collect();
    let mut s = c.connect();
    let r: MetadataResponse = call_raw(&mut s, ApiKey::Metadata, 12, &req, &swaps);
    assert_eq!(r.topics.len(), BAD_NAMES.len() + 1);
    for t in &r.topics[..BAD_NAMES.len()] {
        assert_eq!(t.error_code, code::INVALID_TOPIC_EXCEPTION, "{:?}", t.name);
    }
    assert_eq!(
        r.topics[BAD_NAMES.len()].error_code,
        code::NONE,
        "auto-created"
    );
    let new: Vec<_> = tree(&data)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(
        new.iter().all(|p| p.starts_with("topics/auto-good")),
        "{new:?}"
    );
    assert!(!data.join("..").join("hostile-escape").exists());
    c.still_serves();
}

#[test]
fn produce_to_invalid_names_creates_nothing() {
    let mut c = Case::start(&[]);
    let data = c.b.data_dir().to_path_buf();
    let before = tree(&data);
    let placeholders: Vec<String> = BAD_NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{}", (b'A' + i as u8) as char).repeat(n.len()))
        .collect();
    let records = Bytes::from(one_record(b"v"));
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    for p in &placeholders {
        let mut pd = PartitionProduceData::default();
        pd.index = 0;
        pd.records = Some(records.clone());
        let mut td = TopicProduceData::default();
        td.name = topic_name(p);
        td.partition_data = vec![pd];
        req.topic_data.push(td);
    }
    let swaps: Vec<(&str, &[u8])> = placeholders
        .iter()
        .zip(BAD_NAMES)
        .map(|(p, n)| (p.as_str(), *n))
        .collect();
    let mut s = c.connect();
    let r: ProduceResponse = call_raw(&mut s, ApiKey::Produce, 9, &req, &swaps);
    assert_eq!(r.responses.len(), BAD_NAMES.len());
    for t in &r.responses {
        assert_eq!(
            t.partition_responses[0].error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "{:?}",
            t.name
        );
    }
    assert_eq!(tree(&data), before, "produce created something");
    assert!(!data.join("..").join("hostile-escape").exists());
    c.still_serves();
}

// ---------------------------------------------------------------------------
// Duplicates in one request.

#[test]
fn create_topics_duplicate_name_is_refused_for_both() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    let r = create_topics(
        &mut s,
        vec![creatable("twice", 1, &[]), creatable("twice", 3, &[])],
    );
    assert_eq!(r.topics.len(), 2);
    for t in &r.topics {
        assert_eq!(t.error_code, code::INVALID_REQUEST);
        assert_eq!(t.error_message.as_deref(), Some("Duplicate topic name."));
    }
    // Neither was created: a later create of the name succeeds.
    create_topic(&mut s, "twice", 1, &[]);
    c.still_serves();
}

#[test]
fn produce_duplicate_topic_and_partition_appends_each_in_order() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "dup", 1, &[]);
    let a = Bytes::from(one_record(b"a"));
    let b = Bytes::from(one_record(b"b"));
    // The topic twice, each with partition 0.
    let r = produce_to(&mut s, &[("dup", 0, a.clone()), ("dup", 0, b.clone())]);
    let offsets: Vec<_> = r
        .responses
        .iter()
        .map(|t| {
            (
                t.partition_responses[0].error_code,
                t.partition_responses[0].base_offset,
            )
        })
        .collect();
    assert_eq!(offsets, vec![(0, 0), (0, 1)]);
    // Partition 0 twice within one topic entry.
    let mut pd_a = PartitionProduceData::default();
    pd_a.records = Some(a);
    let mut pd_b = PartitionProduceData::default();
    pd_b.records = Some(b);
    let mut td = TopicProduceData::default();
    td.name = topic_name("dup");
    td.partition_data = vec![pd_a, pd_b];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    req.topic_data = vec![td];
    let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, &req);
    let offsets: Vec<_> = r.responses[0]
        .partition_responses
        .iter()
        .map(|p| (p.error_code, p.base_offset))
        .collect();
    assert_eq!(offsets, vec![(0, 2), (0, 3)]);
    c.still_serves();
}

#[test]
fn fetch_duplicate_topic_and_partition_answers_each() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "dupf", 1, &[]);
    assert_eq!(produce_one(&mut s, "dupf", one_record(b"x")), 0);
    let mut req = fetch_req_for(&[("dupf", 0), ("dupf", 0)], 1 << 20);
    // And partition 0 twice inside the first topic entry.
    let extra = req.topics[0].partitions[0].clone();
    req.topics[0].partitions.push(extra);
    let r: FetchResponse = call(&mut s, ApiKey::Fetch, 12, &req);
    let answers: Vec<_> = r
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            (
                p.error_code,
                p.high_watermark,
                p.records.as_ref().map_or(0, |b| b.len()) > 0,
            )
        })
        .collect();
    assert_eq!(answers, vec![(0, 1, true); 3]);
    c.still_serves();
}

// ---------------------------------------------------------------------------
// Record batches. Offsets of the v2 batch header (herald_log::batch).

const OFFSET_CRC: usize = 17;
const OFFSET_ATTRIBUTES: usize = 21;
const OFFSET_LAST_OFFSET_DELTA: usize = 23;
const OFFSET_RECORDS_COUNT: usize = 57;
const HEADER_BYTES: usize = 61;

fn recrc(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[OFFSET_ATTRIBUTES..]);
    b[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A v2 batch of `count` records whose records section is `section`,
/// compressed with `codec` (attribute bits 0-2), CRC correct.
fn batch_with_section(codec: i16, section: &[u8], count: i32) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i64(0);
    b.put_i32((HEADER_BYTES - 12 + section.len()) as i32);
    b.put_i32(-1);
    b.put_i8(2);
    b.put_u32(0);
    b.put_i16(codec);
    b.put_i32(count - 1);
    b.put_i64(1_700_000_000_000);
    b.put_i64(1_700_000_000_000);
    b.put_i64(-1);
    b.put_i16(-1);
    b.put_i32(-1);
    b.put_i32(count);
    b.put_slice(section);
    let mut b = b.to_vec();
    recrc(&mut b);
    b
}

fn records(values: &[&[u8]], timestamps: &[i64]) -> Vec<u8> {
    let recs: Vec<_> = values
        .iter()
        .zip(timestamps)
        .map(|(v, t)| herald_log::batch::build::SimpleRecord {
            key: Some(b"k"),
            value: Some(v),
            timestamp_ms: *t,
        })
        .collect();
    herald_log::batch::build::batch(&recs, -1, -1, -1)
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

fn batch_case(topic_configs: &[(&str, &str)], batch: Vec<u8>, expected: i16) -> Case {
    let c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "victim", 1, topic_configs);
    let r = produce_to(&mut s, &[("victim", 0, Bytes::from(batch))]);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, expected, "{:?}", p.error_message);
    if expected != 0 {
        assert_nothing_written(&mut s, "victim");
    }
    c
}

#[test]
fn batch_with_wrong_crc_is_corrupt_message() {
    let mut b = one_record(b"v");
    let n = b.len();
    b[n - 1] ^= 0xff;
    batch_case(&[], b, code::CORRUPT_MESSAGE).still_serves();
}

#[test]
fn batch_with_unknown_codec_bits_is_invalid_record() {
    for codec in 5..=7u8 {
        let mut b = one_record(b"v");
        b[OFFSET_ATTRIBUTES + 1] |= codec;
        recrc(&mut b);
        batch_case(&[], b, code::INVALID_RECORD).still_serves();
    }
}

#[test]
fn batch_whose_offset_deltas_go_backwards_is_invalid_record() {
    let mut b = records(&[b"a", b"b"], &[5, 5]);
    // Record 0: [length, attributes, timestamp delta, offset delta 0, ...];
    // record 1 follows, its offset delta (zigzag 2 = 1) set back to 0.
    let first_len = b[HEADER_BYTES] as usize / 2;
    let second = HEADER_BYTES + 1 + first_len;
    assert_eq!(b[second + 3], 2);
    b[second + 3] = 0;
    recrc(&mut b);
    batch_case(&[], b, code::INVALID_RECORD).still_serves();
}

#[test]
fn batch_whose_timestamps_go_backwards_is_kept_as_sent() {
    // Kafka allows any order of record timestamps (only their distance from
    // now is bounded, by message.timestamp.*.max.ms): appended, read back.
    let t0 = 1_700_000_000_000;
    let b = records(&[b"late", b"early"], &[t0 + 5000, t0]);
    let mut c = batch_case(&[], b.clone(), code::NONE);
    let mut s = c.connect();
    let r: FetchResponse = call(
        &mut s,
        ApiKey::Fetch,
        12,
        &fetch_req_for(&[("victim", 0)], 1 << 20),
    );
    let got = r.responses[0].partitions[0]
        .records
        .clone()
        .expect("records");
    assert_eq!(&got[HEADER_BYTES..], &b[HEADER_BYTES..], "records as sent");
    c.still_serves();
}

#[test]
fn batch_whose_count_is_too_high_is_invalid_record() {
    let mut b = records(&[b"a"], &[1]);
    b[OFFSET_RECORDS_COUNT..OFFSET_RECORDS_COUNT + 4].copy_from_slice(&3i32.to_be_bytes());
    b[OFFSET_LAST_OFFSET_DELTA..OFFSET_LAST_OFFSET_DELTA + 4].copy_from_slice(&2i32.to_be_bytes());
    recrc(&mut b);
    batch_case(&[], b, code::INVALID_RECORD).still_serves();
}

#[test]
fn batch_whose_count_is_i32_max_is_invalid_record() {
    let mut b = records(&[b"a"], &[1]);
    b[OFFSET_RECORDS_COUNT..OFFSET_RECORDS_COUNT + 4].copy_from_slice(&i32::MAX.to_be_bytes());
    b[OFFSET_LAST_OFFSET_DELTA..OFFSET_LAST_OFFSET_DELTA + 4]
        .copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    recrc(&mut b);
    batch_case(&[], b, code::INVALID_RECORD).still_serves();
}

#[test]
fn batch_whose_count_is_too_low_is_invalid_record() {
    let mut b = records(&[b"a", b"b", b"c"], &[1, 1, 1]);
    b[OFFSET_RECORDS_COUNT..OFFSET_RECORDS_COUNT + 4].copy_from_slice(&1i32.to_be_bytes());
    b[OFFSET_LAST_OFFSET_DELTA..OFFSET_LAST_OFFSET_DELTA + 4].copy_from_slice(&0i32.to_be_bytes());
    recrc(&mut b);
    batch_case(&[], b, code::INVALID_RECORD).still_serves();
}

/// A zstd stream of `gib` GiB of zeros (about 40 KiB per GiB), made without
/// holding the zeros.
fn zstd_bomb(gib: usize) -> Vec<u8> {
    let mut e = zstd::stream::Encoder::new(Vec::new(), 1).expect("encoder");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..gib * 1024 {
        e.write_all(&zeros).expect("compress");
    }
    e.finish().expect("finish")
}

const ZSTD: i16 = 4;
const GZIP: i16 = 1;

#[test]
fn zstd_bomb_on_a_recompressing_topic_is_refused_with_bounded_memory() {
    // compression.type=gzip: the broker must decompress to recompress. 2 GiB
    // in a batch of ~100 KiB; decompression stops at 128 MiB.
    let bomb = zstd_bomb(2);
    assert!(bomb.len() < 1 << 20, "the bomb fits message.max.bytes");
    let batch = batch_with_section(ZSTD, &bomb, 1);
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "victim", 1, &[("compression.type", "gzip")]);
    let rss_before = c.b.rss_kib();
    let code = produce_one(&mut s, "victim", batch);
    assert_eq!(code, code::INVALID_RECORD);
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = c.b.rss_kib();
    eprintln!(
        "zstd bomb (gzip topic): RSS {rss_before} -> {rss_after} KiB, peak {} KiB",
        c.b.rss_peak_kib()
    );
    // Decompression stops at 128 MiB (RECORDS_DECOMPRESSED_BYTES_MAX), not 2 GiB.
    assert!(
        c.b.rss_peak_kib() < rss_before + 200 * 1024,
        "peak unbounded"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS left inflated: {rss_before} -> {rss_after} KiB"
    );
    assert_nothing_written(&mut s, "victim");
    c.still_serves();
}

#[test]
fn zstd_bomb_on_a_producer_compression_topic_is_stored_unopened() {
    // compression.type=producer (the default): Herald never decompresses a
    // produced batch; the bomb is stored and served as sent, memory flat.
    // Kafka decompresses to validate each record and would refuse it.
    let bomb = zstd_bomb(2);
    let batch = batch_with_section(ZSTD, &bomb, 1);
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "victim", 1, &[]);
    let rss_before = c.b.rss_kib();
    assert_eq!(produce_one(&mut s, "victim", batch), code::NONE);
    let rss_after = c.b.rss_kib();
    eprintln!(
        "zstd bomb (producer topic): RSS {rss_before} -> {rss_after} KiB, peak {} KiB",
        c.b.rss_peak_kib()
    );
    assert!(rss_after < rss_before + 16 * 1024);
    c.still_serves();
}

#[test]
fn zstd_bomb_on_a_compacted_topic_is_refused_with_bounded_memory() {
    // Compacted topics read every key: decompression is bounded there too.
    let batch = batch_with_section(ZSTD, &zstd_bomb(2), 1);
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "victim", 1, &[("cleanup.policy", "compact")]);
    let rss_before = c.b.rss_kib();
    assert_eq!(produce_one(&mut s, "victim", batch), code::INVALID_RECORD);
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = c.b.rss_kib();
    eprintln!(
        "zstd bomb (compacted topic): RSS {rss_before} -> {rss_after} KiB, peak {} KiB",
        c.b.rss_peak_kib()
    );
    // Decompression stops at 128 MiB (RECORDS_DECOMPRESSED_BYTES_MAX), not 2 GiB.
    assert!(
        c.b.rss_peak_kib() < rss_before + 200 * 1024,
        "peak unbounded"
    );
    assert!(rss_after < rss_before + 64 * 1024);
    assert_nothing_written(&mut s, "victim");
    c.still_serves();
}

/// A gzip batch whose records section is a second gzip stream of records.
fn nested_gzip() -> Vec<u8> {
    let plain = records(&[b"a"], &[1]);
    let inner = herald_log::records::compress(GZIP, &plain[HEADER_BYTES..]).unwrap();
    let outer = herald_log::records::compress(GZIP, &inner).unwrap();
    batch_with_section(GZIP, &outer, 1)
}

#[test]
fn nested_compression_on_a_recompressing_topic_is_invalid_record() {
    batch_case(
        &[("compression.type", "lz4")],
        nested_gzip(),
        code::INVALID_RECORD,
    )
    .still_serves();
}

#[test]
fn nested_compression_on_a_compacted_topic_is_invalid_record() {
    batch_case(
        &[("cleanup.policy", "compact")],
        nested_gzip(),
        code::INVALID_RECORD,
    )
    .still_serves();
}

// ---------------------------------------------------------------------------
// Big requests: bounded memory, a sane answer.

#[test]
fn fetch_for_ten_thousand_partitions() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "wide", 100, &[]);
    for p in 0..100 {
        let r = produce_to(
            &mut s,
            &[("wide", p, Bytes::from(one_record(&[b'x'; 100])))],
        );
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let rss_before = c.b.rss_kib();
    // Partitions 0..10 000 of one topic: 100 exist, 9 900 do not.
    let mut req = fetch_req_for(&[("wide", 0)], 64 << 20);
    req.topics[0].partitions = (0..10_000)
        .map(|p| {
            let mut fp = FetchPartition::default();
            fp.partition = p;
            fp.partition_max_bytes = 1 << 20;
            fp.log_start_offset = -1;
            fp
        })
        .collect();
    let r: FetchResponse = call(&mut s, ApiKey::Fetch, 12, &req);
    let parts = &r.responses[0].partitions;
    assert_eq!(parts.len(), 10_000);
    let with_data = parts
        .iter()
        .filter(|p| p.error_code == 0 && p.records.as_ref().is_some_and(|b| !b.is_empty()))
        .count();
    let unknown = parts
        .iter()
        .filter(|p| p.error_code == code::UNKNOWN_TOPIC_OR_PARTITION)
        .count();
    assert_eq!((with_data, unknown), (100, 9_900));
    std::thread::sleep(Duration::from_millis(300));
    let rss_after = c.b.rss_kib();
    eprintln!(
        "Fetch of 10 000 partitions: RSS {rss_before} -> {rss_after} KiB, peak {} KiB",
        c.b.rss_peak_kib()
    );
    assert!(c.b.rss_peak_kib() < rss_before + 64 * 1024);
    assert!(rss_after < rss_before + 32 * 1024);
    c.still_serves();
}

#[test]
fn join_group_with_ten_megabytes_of_metadata_is_invalid_request() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    let rss_before = c.b.rss_kib();
    let mut p = join_group_request::JoinGroupRequestProtocol::default();
    p.name = sb("range");
    p.metadata = Bytes::from(vec![0x42u8; 10 << 20]);
    let mut req = JoinGroupRequest::default();
    req.group_id = GroupId(sb("fat-group"));
    req.session_timeout_ms = 10_000;
    req.rebalance_timeout_ms = 10_000;
    req.protocol_type = sb("consumer");
    req.protocols = vec![p];
    let r: JoinGroupResponse = call(&mut s, ApiKey::JoinGroup, 9, &req);
    assert_eq!(r.error_code, code::INVALID_REQUEST);
    assert!(
        c.b.wait_log(&["JoinGroup rejected: member metadata too large"])
            .is_some()
    );
    std::thread::sleep(Duration::from_millis(300));
    let rss_after = c.b.rss_kib();
    eprintln!(
        "JoinGroup with 10 MiB of metadata: RSS {rss_before} -> {rss_after} KiB, peak {} KiB",
        c.b.rss_peak_kib()
    );
    assert!(
        c.b.rss_peak_kib() < rss_before + 48 * 1024,
        "peak: the frame, about once"
    );
    assert!(
        rss_after < rss_before + 24 * 1024,
        "{rss_before} -> {rss_after} KiB"
    );
    // The group was not created, and a normal join still works.
    let mut p = join_group_request::JoinGroupRequestProtocol::default();
    p.name = sb("range");
    p.metadata = Bytes::from_static(b"small");
    req.protocols = vec![p];
    let r: JoinGroupResponse = call(&mut s, ApiKey::JoinGroup, 9, &req);
    // v4+: a first join without a member id is asked to rejoin with one.
    assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
    c.still_serves();
}

#[test]
fn thousand_pipelined_requests_are_all_answered_in_order() {
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    create_topic(&mut s, "pipe", 1, &[]);
    let rss_before = c.b.rss_kib();
    // 1 000 requests of three kinds, written before reading anything.
    let mut all = Vec::new();
    for i in 0..1000 {
        let f = match i % 3 {
            0 => frame(ApiKey::ApiVersions, 3, i, &ApiVersionsRequest::default()),
            1 => {
                let mut md = MetadataRequest::default();
                let mut t = metadata_request::MetadataRequestTopic::default();
                t.name = Some(topic_name("pipe"));
                md.topics = Some(vec![t]);
                frame(ApiKey::Metadata, 12, i, &md)
            }
            _ => {
                let mut pd = PartitionProduceData::default();
                pd.records = Some(Bytes::from(one_record(format!("{i}").as_bytes())));
                let mut td = TopicProduceData::default();
                td.name = topic_name("pipe");
                td.partition_data = vec![pd];
                let mut req = ProduceRequest::default();
                req.acks = -1;
                req.timeout_ms = 5000;
                req.topic_data = vec![td];
                frame(ApiKey::Produce, 9, i, &req)
            }
        };
        all.extend_from_slice(&f);
    }
    // Written from another thread: the broker stops reading while its
    // in-flight allowance is full, and this thread reads meanwhile.
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&all).unwrap());
    std::thread::sleep(Duration::from_secs(1));
    let rss_full = c.b.rss_kib();
    let mut produced = 0;
    for i in 0..1000 {
        let f = read_frame(&mut s).unwrap_or_else(|| panic!("closed after {i} answers"));
        let corr = i32::from_be_bytes([f[0], f[1], f[2], f[3]]);
        assert_eq!(corr, i, "answers out of order");
        if i % 3 == 2 {
            let (_, r): (i32, ProduceResponse) = decode_frame(f, ApiKey::Produce, 9);
            let p = &r.responses[0].partition_responses[0];
            assert_eq!((p.error_code, p.base_offset), (0, produced));
            produced += 1;
        }
    }
    writer.join().unwrap();
    eprintln!(
        "1 000 pipelined: RSS {rss_before} -> {rss_full} KiB unread, peak {} KiB",
        c.b.rss_peak_kib()
    );
    assert!(rss_full < rss_before + 32 * 1024);
    c.still_serves();
}

// ---------------------------------------------------------------------------
// Before SASL authentication (a SASL_PLAINTEXT listener). More in
// security_hostile.rs: a 100 MiB SaslAuthenticate frame and a 100 MiB v0
// token, Produce before authentication, half-open TLS handshakes.

use common::secure::SecureBroker;

fn sasl_still_serves(b: &SecureBroker) {
    assert_eq!(
        common::kafka_wire::plain_login(&b.sasl_plaintext, "admin", common::secure::ADMIN_PASSWORD),
        Some(0),
        "an authenticated client is still served"
    );
}

#[test]
fn metadata_before_sasl_authentication_is_closed() {
    let b = SecureBroker::start(&[]);
    let mut s = connect(&b.sasl_plaintext);
    // ApiVersions is allowed first (clients ask before the handshake)...
    assert_serves(&mut s, 1);
    // ...anything else is not.
    s.write_all(&frame(ApiKey::Metadata, 12, 2, &MetadataRequest::default()))
        .unwrap();
    assert!(closed(&mut s), "Metadata before authentication was served");
    assert!(b.wait_log("request before SASL authentication", 1));
    sasl_still_serves(&b);
}

#[test]
fn api_versions_flood_before_sasl_authentication_is_closed() {
    // Four ApiVersions before authenticating are answered; the fifth closes.
    let b = SecureBroker::start(&[]);
    let mut s = connect(&b.sasl_plaintext);
    for i in 0..4 {
        assert_serves(&mut s, i);
    }
    s.write_all(&frame(
        ApiKey::ApiVersions,
        3,
        5,
        &ApiVersionsRequest::default(),
    ))
    .unwrap();
    assert!(closed(&mut s));
    assert!(b.wait_log("request before SASL authentication", 1));
    sasl_still_serves(&b);
}

#[test]
fn oversize_frame_before_sasl_authentication_is_closed() {
    // Before authentication frames are capped at 512 KiB (Kafka's
    // sasl.server.max.receive.size), not socket.request.max.bytes.
    let b = SecureBroker::start(&[]);
    let mut s = connect(&b.sasl_plaintext);
    let _ = s.write_all(&(1024 * 1024i32).to_be_bytes());
    assert!(closed(&mut s));
    assert!(b.wait_log("frame size 1048576 outside [10, 524288]", 1));
    sasl_still_serves(&b);
}
