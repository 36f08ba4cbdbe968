//! Produce v0–2 and Fetch v0–3: the versions that carry MessageSets (message
//! format v0/v1), which Herald does not serve (docs/compatibility.md says
//! why). Kafka 4.0 closes the connection on them; Herald answers instead, at
//! the request's own version, with UNSUPPORTED_VERSION on every partition
//! asked for (these versions have no top-level error field), so that an old
//! client reports "the version of API is not supported" rather than a broken
//! connection.
//!
//! The schemas are Kafka 3.x's (ProduceRequest.json, FetchRequest.json and
//! their responses); kafka-protocol 0.18 no longer knows these versions, so
//! they are read and written here. Every count is checked against the bytes
//! left before use, so the answer is bounded by the request's size.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

use crate::error::ProtocolError;

/// The first Produce version with record batches (message format v2).
pub const PRODUCE_MIN: i16 = 3;
/// The first Fetch version with record batches.
pub const FETCH_MIN: i16 = 4;

/// Whether `version` of `api_key` is one of the MessageSet versions this
/// module answers.
pub fn is_message_set_version(api_key: ApiKey, version: i16) -> bool {
    match api_key {
        ApiKey::Produce => (0..PRODUCE_MIN).contains(&version),
        ApiKey::Fetch => (0..FETCH_MIN).contains(&version),
        _ => false,
    }
}

fn malformed(api_key: ApiKey, version: i16, reason: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed {
        api_key: api_key as i16,
        version,
        reason: reason.into(),
    }
}

struct Reader {
    buf: Bytes,
    api_key: ApiKey,
    version: i16,
}

impl Reader {
    fn need(&self, n: usize) -> Result<(), ProtocolError> {
        if self.buf.remaining() < n {
            return Err(malformed(self.api_key, self.version, "truncated body"));
        }
        Ok(())
    }
    fn i16(&mut self) -> Result<i16, ProtocolError> {
        self.need(2)?;
        Ok(self.buf.get_i16())
    }
    fn i32(&mut self) -> Result<i32, ProtocolError> {
        self.need(4)?;
        Ok(self.buf.get_i32())
    }
    fn skip(&mut self, n: usize) -> Result<(), ProtocolError> {
        self.need(n)?;
        self.buf.advance(n);
        Ok(())
    }
    /// A non-null STRING, kept as its raw bytes (echoed back unchanged).
    fn string(&mut self) -> Result<Bytes, ProtocolError> {
        let n = self.i16()?;
        if n < 0 {
            return Err(malformed(self.api_key, self.version, "null topic name"));
        }
        self.need(n as usize)?;
        Ok(self.buf.split_to(n as usize))
    }
    /// An ARRAY count whose elements take at least `min_element` bytes each.
    fn count(&mut self, min_element: usize) -> Result<usize, ProtocolError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(0);
        }
        let n = n as usize;
        if n.saturating_mul(min_element) > self.buf.remaining() {
            return Err(malformed(
                self.api_key,
                self.version,
                format!("array of {n} elements in {} bytes", self.buf.remaining()),
            ));
        }
        Ok(n)
    }
}

/// The topics and partitions a MessageSet request names.
type Asked = Vec<(Bytes, Vec<i32>)>;

/// The answer to a Produce v0–2 or Fetch v0–3 request (`frame` whole, from
/// its API key on): Some(response frame), or None when no response may be
/// sent (Produce with acks=0: Kafka closes the connection on an error then).
pub fn refuse(
    frame: Bytes,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<Option<Bytes>, ProtocolError> {
    let mut buf = frame;
    // Non-flexible versions: request header v1.
    RequestHeader::decode(&mut buf, 1)
        .map_err(|e| malformed(api_key, version, format!("request header: {e}")))?;
    let mut r = Reader {
        buf,
        api_key,
        version,
    };
    let (asked, acks) = if api_key == ApiKey::Produce {
        let acks = r.i16()?;
        r.i32()?; // timeout_ms
        let mut asked = Asked::new();
        // topic: name (>= 2 bytes) + partition count (4).
        for _ in 0..r.count(6)? {
            let name = r.string()?;
            let mut partitions = Vec::new();
            // partition: index (4) + MessageSet size (4).
            for _ in 0..r.count(8)? {
                partitions.push(r.i32()?);
                let size = r.i32()?;
                if size > 0 {
                    r.skip(size as usize)?;
                }
            }
            asked.push((name, partitions));
        }
        (asked, acks)
    } else {
        r.i32()?; // replica_id
        r.i32()?; // max_wait_ms
        r.i32()?; // min_bytes
        if version >= 3 {
            r.i32()?; // max_bytes
        }
        let mut asked = Asked::new();
        for _ in 0..r.count(6)? {
            let name = r.string()?;
            let mut partitions = Vec::new();
            // partition: index (4) + fetch_offset (8) + partition_max_bytes (4).
            for _ in 0..r.count(16)? {
                partitions.push(r.i32()?);
                r.skip(12)?;
            }
            asked.push((name, partitions));
        }
        (asked, 1)
    };
    tracing::info!(
        api = ?api_key,
        version,
        "refused a MessageSet (message format v0/v1) request with UNSUPPORTED_VERSION"
    );
    if acks == 0 {
        return Ok(None);
    }
    Ok(Some(encode(api_key, version, correlation_id, &asked)))
}

fn encode(api_key: ApiKey, version: i16, correlation_id: i32, asked: &Asked) -> Bytes {
    let error = ResponseError::UnsupportedVersion.code();
    let mut out = BytesMut::with_capacity(64);
    out.put_i32(0); // size, set below
    out.put_i32(correlation_id); // response header v0
    if api_key == ApiKey::Fetch && version >= 1 {
        out.put_i32(0); // throttle_time_ms
    }
    out.put_i32(asked.len() as i32);
    for (name, partitions) in asked {
        out.put_i16(name.len() as i16);
        out.put_slice(name);
        out.put_i32(partitions.len() as i32);
        for p in partitions {
            out.put_i32(*p);
            out.put_i16(error);
            if api_key == ApiKey::Produce {
                out.put_i64(-1); // base_offset
                if version >= 2 {
                    out.put_i64(-1); // log_append_time_ms
                }
            } else {
                out.put_i64(-1); // high_watermark
                out.put_i32(0); // an empty MessageSet
            }
        }
    }
    if api_key == ApiKey::Produce && version >= 1 {
        out.put_i32(0); // throttle_time_ms
    }
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Produce v2 frame (from its API key on) naming `topic` partition 3.
    fn produce_v2(acks: i16) -> Vec<u8> {
        let mut f = BytesMut::new();
        f.put_i16(ApiKey::Produce as i16);
        f.put_i16(2);
        f.put_i32(77);
        f.put_i16(1);
        f.put_slice(b"c");
        f.put_i16(acks);
        f.put_i32(1000);
        f.put_i32(1);
        f.put_i16(5);
        f.put_slice(b"topic");
        f.put_i32(1);
        f.put_i32(3);
        f.put_i32(4);
        f.put_slice(&[0, 0, 0, 0]);
        f.to_vec()
    }

    #[test]
    fn a_whole_request_is_answered_every_prefix_refused_without_panic() {
        let frame = produce_v2(1);
        let answer = refuse(Bytes::from(frame.clone()), ApiKey::Produce, 2, 77)
            .expect("decodes")
            .expect("answered");
        // size, correlation id, 1 topic "topic", 1 partition 3, error 35,
        // base offset -1, log append time -1, throttle 0.
        assert_eq!(answer.len(), 4 + 4 + 4 + 7 + 4 + 4 + 2 + 8 + 8 + 4);
        assert_eq!(&answer[4..8], &77i32.to_be_bytes());
        assert_eq!(&answer[27..29], &35i16.to_be_bytes());
        for n in 0..frame.len() {
            let cut = Bytes::from(frame[..n].to_vec());
            assert!(
                refuse(cut, ApiKey::Produce, 2, 77).is_err(),
                "prefix of {n} bytes"
            );
        }
        assert_eq!(
            refuse(Bytes::from(produce_v2(0)), ApiKey::Produce, 2, 77).expect("decodes"),
            None,
            "acks=0 gets no answer"
        );
    }

    #[test]
    fn counts_beyond_the_bytes_left_are_refused_before_use() {
        let mut frame = produce_v2(1);
        // The topic count (after the 4-byte acks + timeout) set to i32::MAX.
        let at = 2 + 2 + 4 + 3 + 2 + 4;
        frame[at..at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(refuse(Bytes::from(frame), ApiKey::Produce, 2, 1).is_err());
    }
}
