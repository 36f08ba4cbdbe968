//! The records section of a v2 batch (bytes 61.. of the batch): the framing
//! of each record, read without decoding more than the broker needs (offset
//! and timestamp deltas, key, whether the value is null). The codecs are in
//! `compression.rs`.
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

use crate::batch::BatchHeader;
use crate::compression::Codec;
use crate::error::LogError;

pub const COMPRESSION_NONE: i16 = Codec::None as i16;
pub const COMPRESSION_GZIP: i16 = Codec::Gzip as i16;
pub const COMPRESSION_SNAPPY: i16 = Codec::Snappy as i16;
pub const COMPRESSION_LZ4: i16 = Codec::Lz4 as i16;
pub const COMPRESSION_ZSTD: i16 = Codec::Zstd as i16;

/// Decompresses a records section written with codec id `codec` (the batch
/// attributes' bits 0-2), refusing output larger than `bytes_max`
/// (see [`crate::compression::decompress`]).
pub fn decompress(codec: i16, compressed: &[u8], bytes_max: usize) -> Result<Vec<u8>, LogError> {
    crate::compression::decompress(Codec::from_id(codec)?, compressed, bytes_max)
}

/// Compresses a records section with codec id `codec`.
pub fn compress(codec: i16, raw: &[u8]) -> Result<Vec<u8>, LogError> {
    crate::compression::compress(Codec::from_id(codec)?, raw)
}

/// The smallest encoded record: length, attributes, timestamp delta, offset
/// delta, key length, value length and header count, one byte each.
pub const RECORD_BYTES_MIN: usize = 7;

/// One record of a batch, as the cleaner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset_delta: i32,
    /// From the batch's base timestamp.
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value_is_null: bool,
    /// The whole encoded record, length prefix included: copied verbatim when kept.
    pub bytes: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// The value's bytes (None: null), read again from the record's bytes
    /// (off the produce path, which only needs to know it is there: markers).
    pub fn value(&self) -> Option<&'a [u8]> {
        let b = self.bytes;
        let mut p = 0;
        let len = read_varint(b, &mut p).ok()?;
        let body = b.get(..p.checked_add(usize::try_from(len).ok()?)?)?;
        p += 1; // attributes
        read_varlong(body, &mut p).ok()?;
        read_varint(body, &mut p).ok()?;
        if let Some(n) = read_length(body, &mut p).ok()? {
            p += n;
        }
        let n = read_length(body, &mut p).ok()??;
        body.get(p..p + n)
    }
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
    let mut out = Vec::with_capacity(checked_count(section, header)?);
    walk(section, header, |r| out.push(r))?;
    Ok(out)
}

/// Checks an uncompressed records section as [`parse`] does, without
/// keeping the records: what a produced batch must pass before it is
/// appended, so that a batch whose count or offset deltas lie never reaches
/// the log (Kafka refuses these too).
pub fn check(section: &[u8], header: &BatchHeader) -> Result<(), LogError> {
    walk(section, header, |_| {})
}

fn checked_count(section: &[u8], header: &BatchHeader) -> Result<usize, LogError> {
    if header.records_count < 0 || header.records_count as usize > section.len() / RECORD_BYTES_MIN
    {
        return Err(LogError::InvalidRecord(
            "record count larger than the records section",
        ));
    }
    Ok(header.records_count as usize)
}

fn walk<'a>(
    section: &'a [u8],
    header: &BatchHeader,
    mut each: impl FnMut(RecordView<'a>),
) -> Result<(), LogError> {
    let count = checked_count(section, header)?;
    let mut seen = 0usize;
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
        let timestamp_delta = read_varlong(body, &mut p)?;
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
        if seen == count {
            return Err(LogError::InvalidRecord("more records than the batch count"));
        }
        seen += 1;
        each(RecordView {
            offset_delta,
            timestamp_delta,
            key,
            value_is_null,
            bytes: &section[start..body_end],
        });
        pos = body_end;
    }
    if seen != count {
        return Err(LogError::InvalidRecord(
            "fewer records than the batch count",
        ));
    }
    Ok(())
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
