//! Truncation at every header field; frame sizes, API keys and versions.

use super::*;

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
    // Two of the four size bytes, then the client half-closes: a frame began
    // and did not end, logged like an end inside the body.
    let mut c = Case::start(&[]);
    c.expect_close(&[0, 0], true, &[BAD_FRAME, "connection closed mid-frame"]);
}

#[test]
fn half_a_frame_then_silence_is_closed_after_the_idle_time() {
    // A slowloris: part of a frame, no EOF. Closed once
    // connections.max.idle.ms passes without a complete request.
    let mut c = Case::start(&["--connections-max-idle-ms", "500"]);
    let mut s = c.connect();
    s.write_all(&[0, 0, 0, 40, 0, 3]).unwrap();
    let started = std::time::Instant::now();
    assert!(closed(&mut s));
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
    // The bystander went idle too; a newcomer is served.
    assert!(c.b.is_running(), "broker died");
    let mut newcomer = c.connect();
    assert_serves(&mut newcomer, 3);
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

/// Metadata v12 for no topics, whose body's tagged-field section (its last
/// byte, a count of 0) is replaced by `tags`.
fn metadata_with_body_tags(tags: &[u8]) -> Vec<u8> {
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![]);
    let mut body = body_bytes(&req, 12);
    assert_eq!(body.pop(), Some(0), "no tagged fields");
    body.extend_from_slice(tags);
    let mut f = metadata_header();
    f.extend_from_slice(&body);
    sized(&f)
}

#[test]
fn unknown_tagged_fields_are_ignored() {
    // Tagged fields Herald does not know, in the header and in the body, are
    // skipped, as Kafka skips them: the request is answered.
    let mut c = Case::start(&[]);
    let mut s = c.connect();
    let mut f = metadata_header();
    f.pop();
    f.extend_from_slice(&[1, 90, 3, 0xaa, 0xbb, 0xcc]);
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![]);
    f.extend_from_slice(&body_bytes(&req, 12));
    s.write_all(&sized(&f)).unwrap();
    let (corr, _): (i32, MetadataResponse) =
        decode_frame(read_frame(&mut s).expect("answered"), ApiKey::Metadata, 12);
    assert_eq!(corr, 7);
    s.write_all(&metadata_with_body_tags(&[2, 90, 1, 0xaa, 91, 0]))
        .unwrap();
    let (corr, _): (i32, MetadataResponse) =
        decode_frame(read_frame(&mut s).expect("answered"), ApiKey::Metadata, 12);
    assert_eq!(corr, 7);
    c.still_serves();
}

#[test]
fn body_tagged_field_beyond_the_frame() {
    // One tagged field of 100 bytes announced, one present.
    let mut c = Case::start(&[]);
    c.expect_close(
        &metadata_with_body_tags(&[1, 90, 100, 0xaa]),
        false,
        &[BAD_REQUEST, "malformed request (API 3 v12)"],
    );
}

#[test]
fn body_tagged_field_size_huge() {
    let mut c = Case::start(&[]);
    c.expect_close(
        &metadata_with_body_tags(&[1, 90, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        false,
        &[BAD_REQUEST, "malformed request (API 3 v12)"],
    );
}

#[test]
fn body_tagged_field_count_huge() {
    let mut c = Case::start(&[]);
    c.expect_close(
        &metadata_with_body_tags(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
        false,
        &[BAD_REQUEST, "malformed request (API 3 v12)"],
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
    // WriteTxnMarkers (27): broker-to-broker in Kafka; Herald's coordinator
    // writes markers itself and does not serve it.
    let mut c = Case::start(&[]);
    c.expect_close(
        &sized(&raw_header(ApiKey::WriteTxnMarkers as i16, 1)),
        false,
        &[BAD_REQUEST, "unknown API key 27"],
    );
}

#[test]
fn message_set_version_without_a_body_is_closed() {
    // Produce v2 (magic 0/1 records): advertised from v0 for librdkafka, served
    // from v3. A whole request is answered UNSUPPORTED_VERSION per partition
    // (tests/old_versions.rs); one with no body cannot be, and is closed.
    let mut c = Case::start(&[]);
    c.expect_close(
        &sized(&raw_header(ApiKey::Produce as i16, 2)),
        false,
        &[BAD_REQUEST, "malformed request (API 0 v2)"],
    );
}

#[test]
fn version_below_served_range_is_closed() {
    // OffsetForLeaderEpoch v1: no schema left to answer in.
    let mut c = Case::start(&[]);
    c.expect_close(
        &sized(&raw_header(ApiKey::OffsetForLeaderEpoch as i16, 1)),
        false,
        &[BAD_REQUEST, "unsupported version 1 of API 23"],
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
