//! The records section of a v2 batch (bytes 61.. of the batch): the four
//! compression codecs and the framing of each record, read without decoding
//! more than the cleaner needs (offset delta, key, whether the value is null).
//!
//! Record layout (Kafka's `DefaultRecord`):
//! ```text
//! length          varint  bytes of the record after this field
//! attributes      i8      unused
//! timestampDelta  varlong from the batch's base timestamp
//! offsetDelta     varint  from the batch's base offset
//! keyLength       varint  -1: null key
//! key             bytes
//! valueLength     varint  -1: null value (a tombstone)
//! value           bytes
//! headers         varint count, then headers (not parsed: copied as they are)
//! ```
//! Everything here reads data that came from disk or a producer: every length
//! is checked against the bytes present before it is used, and decompression
//! is bounded, so corruption gives an error, never a panic or a huge allocation.

use bytes::Bytes;
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use crate::batch::BatchHeader;
use crate::error::LogError;

pub const COMPRESSION_NONE: i16 = 0;
pub const COMPRESSION_GZIP: i16 = 1;
pub const COMPRESSION_SNAPPY: i16 = 2;
pub const COMPRESSION_LZ4: i16 = 3;
pub const COMPRESSION_ZSTD: i16 = 4;

/// The smallest encoded record: length, attributes, timestamp delta, offset
/// delta, key length, value length and header count, one byte each.
pub const RECORD_BYTES_MIN: usize = 7;

/// One record of a batch, as the cleaner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value_is_null: bool,
    /// The whole encoded record, length prefix included: copied verbatim when kept.
    pub bytes: &'a [u8],
}

/// Reads a zigzag varlong at `*pos` (at most 10 bytes).
fn read_varlong(b: &[u8], pos: &mut usize) -> Result<i64, LogError> {
    let mut z: u64 = 0;
    for i in 0..10 {
        let byte = *b
            .get(*pos)
            .ok_or(LogError::InvalidRecord("truncated varint"))?;
        *pos += 1;
        z |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    Err(LogError::InvalidRecord("varint longer than 10 bytes"))
}

/// Reads a zigzag varint that must fit an i32.
fn read_varint(b: &[u8], pos: &mut usize) -> Result<i32, LogError> {
    let v = read_varlong(b, pos)?;
    i32::try_from(v).map_err(|_| LogError::InvalidRecord("varint out of i32 range"))
}

/// Reads a nullable byte string's length; None for -1.
fn read_length(b: &[u8], pos: &mut usize) -> Result<Option<usize>, LogError> {
    let len = read_varint(b, pos)?;
    if len == -1 {
        return Ok(None);
    }
    if len < 0 || len as usize > b.len() - *pos {
        return Err(LogError::InvalidRecord("record field length out of range"));
    }
    Ok(Some(len as usize))
}

/// Splits an uncompressed records section into records, checking the count
/// and the offset deltas (strictly increasing, within the batch) against the
/// header.
pub fn parse<'a>(section: &'a [u8], header: &BatchHeader) -> Result<Vec<RecordView<'a>>, LogError> {
    if header.records_count < 0 || header.records_count as usize > section.len() / RECORD_BYTES_MIN
    {
        return Err(LogError::InvalidRecord(
            "record count larger than the records section",
        ));
    }
    let mut out = Vec::with_capacity(header.records_count as usize);
    let mut pos = 0usize;
    let mut previous_delta: Option<i32> = None;
    while pos < section.len() {
        let start = pos;
        let len = read_varint(section, &mut pos)?;
        if len < 0 || len as usize > section.len() - pos {
            return Err(LogError::InvalidRecord("record length out of range"));
        }
        let body_end = pos + len as usize;
        let body = &section[..body_end];
        let mut p = pos;
        if p >= body_end {
            return Err(LogError::InvalidRecord("record without attributes"));
        }
        p += 1; // attributes
        read_varlong(body, &mut p)?; // timestamp delta
        let offset_delta = read_varint(body, &mut p)?;
        if offset_delta < 0
            || offset_delta > header.last_offset_delta
            || previous_delta.is_some_and(|d| offset_delta <= d)
        {
            return Err(LogError::InvalidRecord("record offset delta out of order"));
        }
        previous_delta = Some(offset_delta);
        let key = match read_length(body, &mut p)? {
            Some(n) => {
                let k = &body[p..p + n];
                p += n;
                Some(k)
            }
            None => None,
        };
        let value_is_null = match read_length(body, &mut p)? {
            Some(n) => {
                p += n;
                false
            }
            None => true,
        };
        read_varint(body, &mut p)?; // header count: present, headers themselves not parsed
        if p > body_end {
            return Err(LogError::InvalidRecord("record fields overrun its length"));
        }
        if out.len() == header.records_count as usize {
            return Err(LogError::InvalidRecord("more records than the batch count"));
        }
        out.push(RecordView {
            offset_delta,
            key,
            value_is_null,
            bytes: &section[start..body_end],
        });
        pos = body_end;
    }
    if out.len() != header.records_count as usize {
        return Err(LogError::InvalidRecord(
            "fewer records than the batch count",
        ));
    }
    Ok(out)
}

/// The uncompressed length a snappy stream declares, read before anything is
/// allocated for it (the codec allocates what the stream declares, up to 4 GiB).
/// Xerial framing (what Kafka clients write) or raw snappy, as the codec accepts.
fn snappy_declared_bytes(compressed: &[u8]) -> Result<u64, LogError> {
    // The whole 16-byte header, as the codec matches it to choose the framing.
    const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
    const XERIAL_HEADER_BYTES: usize = XERIAL_HEADER.len();
    fn preamble(block: &[u8]) -> Result<u64, LogError> {
        // Raw snappy starts with the uncompressed length as a little-endian base-128 u32.
        let mut v: u64 = 0;
        for (i, byte) in block.iter().take(5).enumerate() {
            v |= ((byte & 0x7f) as u64) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(LogError::CorruptBatch("snappy block without a length"))
    }
    if compressed.len() < XERIAL_HEADER_BYTES
        || compressed[..XERIAL_HEADER_BYTES] != XERIAL_HEADER[..]
    {
        return preamble(compressed);
    }
    let mut total = 0u64;
    let mut pos = XERIAL_HEADER_BYTES;
    while pos < compressed.len() {
        let Some(len) = compressed.get(pos..pos + 4) else {
            return Err(LogError::CorruptBatch("truncated snappy block length"));
        };
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        pos += 4;
        let Some(block) = compressed.get(pos..pos.saturating_add(len)) else {
            return Err(LogError::CorruptBatch("snappy block beyond the batch"));
        };
        total += preamble(block)?;
        pos += len;
    }
    Ok(total)
}

/// Decompresses a records section written with `codec`, refusing output larger
/// than `bytes_max`.
///
/// Limit: snappy's declared size is checked before decompressing; gzip, lz4
/// and zstd output is checked after the codec produced it (the codecs of
/// `kafka-protocol` decompress into memory whole), so a hostile batch can make
/// this allocate up to its codec's expansion ratio times its size before it is
/// refused. Batches are CRC-checked before they get here, so only a producer
/// (not bit rot) can send one.
pub fn decompress(codec: i16, compressed: &[u8], bytes_max: usize) -> Result<Vec<u8>, LogError> {
    let mut input = Bytes::copy_from_slice(compressed);
    let take = |out: &mut Bytes| Ok(std::mem::take(out));
    let out = match codec {
        COMPRESSION_NONE => return Ok(compressed.to_vec()),
        COMPRESSION_GZIP => <Gzip as Decompressor<Bytes>>::decompress(&mut input, take),
        COMPRESSION_SNAPPY => {
            if snappy_declared_bytes(compressed)? > bytes_max as u64 {
                return Err(LogError::CorruptBatch(
                    "decompressed records exceed the cleaner's limit",
                ));
            }
            <Snappy as Decompressor<Bytes>>::decompress(&mut input, take)
        }
        COMPRESSION_LZ4 => <Lz4 as Decompressor<Bytes>>::decompress(&mut input, take),
        COMPRESSION_ZSTD => <Zstd as Decompressor<Bytes>>::decompress(&mut input, take),
        _ => return Err(LogError::CorruptBatch("unknown compression codec")),
    }
    .map_err(|_| LogError::CorruptBatch("records do not decompress"))?;
    if out.len() > bytes_max {
        return Err(LogError::CorruptBatch(
            "decompressed records exceed the cleaner's limit",
        ));
    }
    Ok(out.to_vec())
}

/// Compresses a records section with `codec` (framing as Kafka clients write it).
pub fn compress(codec: i16, raw: &[u8]) -> Result<Vec<u8>, LogError> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len() / 2 + 64);
    let fill = |buf: &mut bytes::BytesMut| {
        buf.extend_from_slice(raw);
        Ok(())
    };
    match codec {
        COMPRESSION_NONE => return Ok(raw.to_vec()),
        COMPRESSION_GZIP => <Gzip as Compressor<Vec<u8>>>::compress(&mut out, fill),
        COMPRESSION_SNAPPY => <Snappy as Compressor<Vec<u8>>>::compress(&mut out, fill),
        COMPRESSION_LZ4 => <Lz4 as Compressor<Vec<u8>>>::compress(&mut out, fill),
        COMPRESSION_ZSTD => <Zstd as Compressor<Vec<u8>>>::compress(&mut out, fill),
        _ => return Err(LogError::CorruptBatch("unknown compression codec")),
    }
    .map_err(|_| LogError::CorruptBatch("records do not compress"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{self, build};

    fn records_of(b: &[u8]) -> (BatchHeader, Vec<u8>) {
        let h = batch::validate(b).unwrap();
        let section =
            decompress(h.compression(), &b[batch::BATCH_HEADER_BYTES..], 1 << 20).unwrap();
        (h, section)
    }

    #[test]
    fn every_codec_round_trips_and_parses() {
        let recs = [
            build::SimpleRecord {
                key: Some(b"a"),
                value: Some(b"one"),
                timestamp_ms: 1,
            },
            build::SimpleRecord {
                key: None,
                value: Some(b"two"),
                timestamp_ms: 2,
            },
            build::SimpleRecord {
                key: Some(b"a"),
                value: None,
                timestamp_ms: 3,
            },
        ];
        for codec in [
            COMPRESSION_NONE,
            COMPRESSION_GZIP,
            COMPRESSION_SNAPPY,
            COMPRESSION_LZ4,
            COMPRESSION_ZSTD,
        ] {
            let b = build::batch_with(
                &recs,
                build::Options {
                    compression: codec,
                    ..Default::default()
                },
            );
            let (h, section) = records_of(&b);
            assert_eq!(h.compression(), codec);
            let parsed = parse(&section, &h).unwrap();
            assert_eq!(parsed.len(), 3);
            assert_eq!(parsed[0].key, Some(&b"a"[..]));
            assert!(!parsed[0].value_is_null);
            assert_eq!(parsed[1].key, None);
            assert!(parsed[2].value_is_null);
            assert_eq!(
                parsed.iter().map(|r| r.offset_delta).collect::<Vec<_>>(),
                [0, 1, 2]
            );
            let total: usize = parsed.iter().map(|r| r.bytes.len()).sum();
            assert_eq!(total, section.len());
        }
    }

    #[test]
    fn corrupt_sections_are_errors() {
        let recs = [build::SimpleRecord {
            key: Some(b"key"),
            value: Some(b"value"),
            timestamp_ms: 1,
        }];
        let b = build::batch(&recs, -1, -1, -1);
        let (h, section) = records_of(&b);
        // Every truncation and every single-byte change errs or parses; never panics.
        for cut in 0..section.len() {
            assert!(parse(&section[..cut], &h).is_err());
        }
        for i in 0..section.len() {
            for v in [0x00, 0x7f, 0x80, 0xff] {
                let mut s = section.clone();
                s[i] = v;
                let _ = parse(&s, &h);
            }
        }
        let mut big = h;
        big.records_count = i32::MAX;
        assert!(parse(&section, &big).is_err());
        // Garbage does not decompress, and a declared snappy size over the limit is refused.
        for codec in 1..=4 {
            assert!(decompress(codec, &section, 1 << 20).is_err());
        }
        assert!(decompress(7, &section, 1 << 20).is_err());
        let big_snappy = compress(COMPRESSION_SNAPPY, &vec![0u8; 100_000]).unwrap();
        assert!(decompress(COMPRESSION_SNAPPY, &big_snappy, 99_999).is_err());
        assert_eq!(
            decompress(COMPRESSION_SNAPPY, &big_snappy, 100_000)
                .unwrap()
                .len(),
            100_000
        );
        let big_zstd = compress(COMPRESSION_ZSTD, &vec![0u8; 100_000]).unwrap();
        assert!(decompress(COMPRESSION_ZSTD, &big_zstd, 99_999).is_err());
    }
}
