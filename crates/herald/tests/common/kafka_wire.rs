//! A few raw Kafka requests for tests that must send what no client would
//! (a request before authentication, an absurd SASL token) and read exactly
//! what the broker answers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

pub fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s
}

pub fn frame<R: Encodable>(key: ApiKey, version: i16, correlation_id: i32, req: &R) -> Vec<u8> {
    let mut h = RequestHeader::default();
    h.request_api_key = key as i16;
    h.request_api_version = version;
    h.correlation_id = correlation_id;
    h.client_id = Some(StrBytes::from_static_str("hostile-test"));
    let mut body = BytesMut::new();
    h.encode(&mut body, key.request_header_version(version))
        .expect("header");
    req.encode(&mut body, version).expect("body");
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Reads one response; None if the broker closed the connection.
pub fn read_response<R: Decodable>(s: &mut TcpStream, key: ApiKey, version: i16) -> Option<R> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let size = i32::from_be_bytes(size) as usize;
    assert!(size < 16 * 1024 * 1024, "response size {size}");
    let mut buf = vec![0u8; size];
    s.read_exact(&mut buf).ok()?;
    let mut b = bytes::Bytes::from(buf);
    b.get_i32();
    if key.response_header_version(version) >= 1 {
        b.get_u8();
    }
    Some(R::decode(&mut b, version).expect("decode response"))
}

/// True when the peer closed the connection (EOF or reset) within the read
/// timeout. A few bytes before the close are allowed: a TLS server answers
/// garbage with an alert record, then closes.
pub fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 256];
    let mut seen = 0;
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(n) => {
                seen += n;
                if seen > 1024 {
                    return false;
                }
            }
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

/// One SASL/PLAIN login on a SASL_PLAINTEXT listener: the SaslAuthenticate
/// error code (0 on success), or None if the connection closed before.
pub fn plain_login(addr: &str, user: &str, password: &str) -> Option<i16> {
    let mut s = connect(addr);
    let mut hs = SaslHandshakeRequest::default();
    hs.mechanism = StrBytes::from_static_str("PLAIN");
    s.write_all(&frame(ApiKey::SaslHandshake, 1, 1, &hs)).ok()?;
    let r: SaslHandshakeResponse = read_response(&mut s, ApiKey::SaslHandshake, 1)?;
    assert_eq!(r.error_code, 0, "handshake");
    let mut auth = SaslAuthenticateRequest::default();
    auth.auth_bytes = format!("\0{user}\0{password}").into_bytes().into();
    s.write_all(&frame(ApiKey::SaslAuthenticate, 2, 2, &auth))
        .ok()?;
    let r: SaslAuthenticateResponse = read_response(&mut s, ApiKey::SaslAuthenticate, 2)?;
    if r.error_code != 0 {
        assert!(closed(&mut s), "connection left open after a failed login");
    }
    Some(r.error_code)
}

/// A SASL/PLAIN login with SaslHandshake v0: the token then travels as a bare
/// size-prefixed frame, and so does the answer. True if the broker answered
/// (success), false if it closed the connection (failure).
pub fn plain_login_v0(addr: &str, user: &str, password: &str) -> bool {
    let mut s = connect(addr);
    let mut hs = SaslHandshakeRequest::default();
    hs.mechanism = StrBytes::from_static_str("PLAIN");
    s.write_all(&frame(ApiKey::SaslHandshake, 0, 1, &hs))
        .unwrap();
    let r: SaslHandshakeResponse = read_response(&mut s, ApiKey::SaslHandshake, 0).unwrap();
    assert_eq!(r.error_code, 0);
    let token = format!("\0{user}\0{password}");
    s.write_all(&(token.len() as i32).to_be_bytes()).unwrap();
    s.write_all(token.as_bytes()).unwrap();
    let mut size = [0u8; 4];
    if s.read_exact(&mut size).is_err() {
        return false;
    }
    // PLAIN's final answer is empty; then ordinary requests may follow.
    assert_eq!(i32::from_be_bytes(size), 0);
    let req = kafka_protocol::messages::ApiVersionsRequest::default();
    s.write_all(&frame(ApiKey::ApiVersions, 0, 2, &req))
        .unwrap();
    let v: Option<kafka_protocol::messages::ApiVersionsResponse> =
        read_response(&mut s, ApiKey::ApiVersions, 0);
    v.is_some_and(|v| v.error_code == 0)
}

/// The server-first message a SASL listener answers to a SCRAM client-first
/// for `user` (the salt and iterations it reveals), without finishing.
pub fn scram_server_first(addr: &str, mechanism: &str, user: &str) -> String {
    let mut s = connect(addr);
    let mut hs = SaslHandshakeRequest::default();
    hs.mechanism = StrBytes::from_string(mechanism.to_string());
    s.write_all(&frame(ApiKey::SaslHandshake, 1, 1, &hs))
        .unwrap();
    let r: SaslHandshakeResponse = read_response(&mut s, ApiKey::SaslHandshake, 1).unwrap();
    assert_eq!(r.error_code, 0, "handshake");
    let mut auth = SaslAuthenticateRequest::default();
    auth.auth_bytes = format!("n,,n={user},r=fixedclientnonce")
        .into_bytes()
        .into();
    s.write_all(&frame(ApiKey::SaslAuthenticate, 2, 2, &auth))
        .unwrap();
    let r: SaslAuthenticateResponse = read_response(&mut s, ApiKey::SaslAuthenticate, 2).unwrap();
    assert_eq!(r.error_code, 0);
    String::from_utf8_lossy(&r.auth_bytes).into_owned()
}

/// A request header alone (no size prefix), in the header version the API's
/// `version` uses (v2, flexible, carries an empty tagged-field section).
pub fn header_bytes(key: ApiKey, version: i16, correlation_id: i32) -> Vec<u8> {
    let mut h = RequestHeader::default();
    h.request_api_key = key as i16;
    h.request_api_version = version;
    h.correlation_id = correlation_id;
    h.client_id = Some(StrBytes::from_static_str("hostile-test"));
    let mut out = BytesMut::new();
    h.encode(&mut out, key.request_header_version(version))
        .expect("header");
    out.to_vec()
}

/// A request body alone, encoded at `version`.
pub fn body_bytes<R: Encodable>(req: &R, version: i16) -> Vec<u8> {
    let mut out = BytesMut::new();
    req.encode(&mut out, version).expect("body");
    out.to_vec()
}

/// `payload` behind its i32 size prefix.
pub fn sized(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// Whether `key` at `version` uses the flexible (compact, tagged) encoding.
pub fn flexible(key: ApiKey, version: i16) -> bool {
    key.request_header_version(version) >= 2
}

/// Reads one response frame whole (correlation id first); None if the broker
/// closed the connection.
pub fn read_frame(s: &mut TcpStream) -> Option<bytes::Bytes> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let size = i32::from_be_bytes(size);
    assert!(
        (0..64 * 1024 * 1024).contains(&size),
        "response size {size}"
    );
    let mut buf = vec![0u8; size as usize];
    s.read_exact(&mut buf).ok()?;
    Some(bytes::Bytes::from(buf))
}

/// Decodes a response frame read by `read_frame`: its correlation id and body.
pub fn decode_frame<R: Decodable>(mut frame: bytes::Bytes, key: ApiKey, version: i16) -> (i32, R) {
    let correlation_id = frame.get_i32();
    if key.response_header_version(version) >= 1 {
        frame.get_u8();
    }
    let r = R::decode(&mut frame, version).expect("decode response");
    (correlation_id, r)
}

/// A CreateTopics entry: `name` with `partitions` and topic configs.
pub fn creatable(
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> kafka_protocol::messages::create_topics_request::CreatableTopic {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let mut t = CreatableTopic::default();
    t.name = kafka_protocol::messages::TopicName(StrBytes::from_string(name.to_string()));
    t.num_partitions = partitions;
    t.replication_factor = 1;
    t.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut c = CreatableTopicConfig::default();
            c.name = StrBytes::from_string(k.to_string());
            c.value = Some(StrBytes::from_string(v.to_string()));
            c
        })
        .collect();
    t
}
