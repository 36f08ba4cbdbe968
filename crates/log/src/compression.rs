//! The record-batch codecs (gzip, snappy, lz4, zstd) with a bound on every
//! decompression: a batch of a few bytes can inflate to gigabytes, so callers
//! always say how many bytes they are ready to hold.
//!
//! Used off the hot path only: topics whose `compression.type` names a codec
//! (batches are recompressed on append, as Kafka does), key checks on
//! compacted topics, the log cleaner, and ListOffsets by timestamp. Batches of
//! topics with `compression.type=producer` are never decompressed.

use std::io::Read;

use crate::batch::{self, ATTRIBUTE_COMPRESSION_MASK, BATCH_HEADER_BYTES, OFFSET_ATTRIBUTES};
use crate::error::LogError;

/// The codec ids of the batch attributes (bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Codec {
    pub fn from_id(id: i16) -> Result<Codec, LogError> {
        Ok(match id {
            0 => Codec::None,
            1 => Codec::Gzip,
            2 => Codec::Snappy,
            3 => Codec::Lz4,
            4 => Codec::Zstd,
            _ => return Err(LogError::InvalidRecord("unknown compression codec")),
        })
    }

    /// A topic's `compression.type` value; None for `producer` (keep as sent).
    pub fn from_topic_config(value: &str) -> Option<Codec> {
        match value {
            "uncompressed" => Some(Codec::None),
            "gzip" => Some(Codec::Gzip),
            "snappy" => Some(Codec::Snappy),
            "lz4" => Some(Codec::Lz4),
            "zstd" => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// xerial snappy-java framing, which Kafka clients use for snappy batches:
/// this magic, a version and a compatible version (i32 each), then blocks of
/// (i32 length, raw snappy).
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_BYTES: usize = 16;
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
const ZSTD_LEVEL: i32 = 3;
const LZ4_LEVEL: u32 = 4;

const TOO_LARGE: LogError = LogError::InvalidRecord("decompressed records exceed the limit");
const CORRUPT: LogError = LogError::InvalidRecord("records do not decompress");

/// Reads all of `reader`, failing once more than `bytes_max` come out.
fn read_bounded(reader: impl Read, bytes_max: usize) -> Result<Vec<u8>, LogError> {
    let mut out = Vec::new();
    reader
        .take(bytes_max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| CORRUPT)?;
    if out.len() > bytes_max {
        return Err(TOO_LARGE);
    }
    Ok(out)
}

fn snappy_block(block: &[u8], out: &mut Vec<u8>, bytes_max: usize) -> Result<(), LogError> {
    let len = snap::raw::decompress_len(block).map_err(|_| CORRUPT)?;
    if out.len() + len > bytes_max {
        return Err(TOO_LARGE);
    }
    let start = out.len();
    out.resize(start + len, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|_| CORRUPT)?;
    Ok(())
}

/// Decompresses a batch's records section, producing at most `bytes_max` bytes.
pub fn decompress(codec: Codec, input: &[u8], bytes_max: usize) -> Result<Vec<u8>, LogError> {
    match codec {
        Codec::None => {
            if input.len() > bytes_max {
                return Err(TOO_LARGE);
            }
            Ok(input.to_vec())
        }
        Codec::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(input), bytes_max),
        Codec::Lz4 => read_bounded(lz4::Decoder::new(input).map_err(|_| CORRUPT)?, bytes_max),
        Codec::Zstd => read_bounded(
            zstd::stream::read::Decoder::new(input).map_err(|_| CORRUPT)?,
            bytes_max,
        ),
        Codec::Snappy => {
            let mut out = Vec::new();
            if input.len() >= XERIAL_HEADER_BYTES && input.starts_with(XERIAL_MAGIC) {
                let mut rest = &input[XERIAL_HEADER_BYTES..];
                while !rest.is_empty() {
                    if rest.len() < 4 {
                        return Err(CORRUPT);
                    }
                    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    let block = rest.get(4..4 + len).ok_or(CORRUPT)?;
                    snappy_block(block, &mut out, bytes_max)?;
                    rest = &rest[4 + len..];
                }
            } else {
                snappy_block(input, &mut out, bytes_max)?;
            }
            Ok(out)
        }
    }
}

/// Compresses a records section with `codec` (snappy in xerial framing, lz4 as
/// an LZ4 frame, as Kafka's clients write them).
pub fn compress(codec: Codec, input: &[u8]) -> Result<Vec<u8>, LogError> {
    use std::io::Write;
    let io = |e: std::io::Error| LogError::Io(e);
    Ok(match codec {
        Codec::None => input.to_vec(),
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(input).map_err(io)?;
            e.finish().map_err(io)?
        }
        Codec::Lz4 => {
            let mut e = lz4::EncoderBuilder::new()
                .level(LZ4_LEVEL)
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::new())
                .map_err(io)?;
            e.write_all(input).map_err(io)?;
            let (out, result) = e.finish();
            result.map_err(io)?;
            out
        }
        Codec::Zstd => zstd::stream::encode_all(input, ZSTD_LEVEL).map_err(io)?,
        Codec::Snappy => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + input.len());
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut enc = snap::raw::Encoder::new();
            for chunk in input.chunks(XERIAL_BLOCK_BYTES) {
                let block = enc
                    .compress_vec(chunk)
                    .map_err(|_| LogError::InvalidRecord("snappy compression failed"))?;
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            out
        }
    })
}

/// The records section of a validated batch, decompressed (at most `bytes_max`).
pub fn records_section(batch: &[u8], bytes_max: usize) -> Result<Vec<u8>, LogError> {
    let header = batch::BatchHeader::parse(batch)?;
    let codec = Codec::from_id(header.compression())?;
    decompress(codec, &batch[BATCH_HEADER_BYTES..], bytes_max)
}

/// Rebuilds a validated batch with its records compressed by `target`: every
/// header field stays (offsets, producer, sequence, timestamps), the codec bits,
/// the length and the CRC change. Returns None when it already uses `target`.
pub fn recompress(
    batch: &[u8],
    target: Codec,
    bytes_max: usize,
) -> Result<Option<Vec<u8>>, LogError> {
    let header = batch::BatchHeader::parse(batch)?;
    if Codec::from_id(header.compression())? == target {
        return Ok(None);
    }
    let records = records_section(batch, bytes_max)?;
    // What came out must be records: a second compressed layer or garbage
    // would otherwise be re-wrapped in a valid batch and served.
    crate::records::check(&records, &header)?;
    let body = compress(target, &records)?;
    Ok(Some(with_records(
        batch,
        target,
        &body,
        header.records_count,
    )))
}

/// `batch`'s header followed by `body` (`records_count` records compressed with
/// `codec`), with the length, codec bits, record count and CRC made to match.
/// Every other header field (offsets, producer, sequence, timestamps) stays.
pub fn with_records(batch: &[u8], codec: Codec, body: &[u8], records_count: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + body.len());
    out.extend_from_slice(&batch[..BATCH_HEADER_BYTES]);
    out.extend_from_slice(body);
    let length = (out.len() - batch::LOG_OVERHEAD_BYTES) as i32;
    out[batch::OFFSET_LENGTH..batch::OFFSET_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    let attributes = i16::from_be_bytes([out[OFFSET_ATTRIBUTES], out[OFFSET_ATTRIBUTES + 1]]);
    let attributes = (attributes & !ATTRIBUTE_COMPRESSION_MASK) | codec as i16;
    out[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    out[batch::OFFSET_RECORDS_COUNT..batch::OFFSET_RECORDS_COUNT + 4]
        .copy_from_slice(&records_count.to_be_bytes());
    let crc = crc32c::crc32c(&out[OFFSET_ATTRIBUTES..]);
    out[batch::OFFSET_CRC..batch::OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    #[test]
    fn every_codec_round_trips_and_is_bounded() {
        let input: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in ALL {
            let c = compress(codec, &input).unwrap();
            assert_eq!(
                decompress(codec, &c, input.len()).unwrap(),
                input,
                "{codec:?}"
            );
            assert!(
                matches!(
                    decompress(codec, &c, input.len() - 1),
                    Err(LogError::InvalidRecord(_))
                ),
                "{codec:?} must honour the bound"
            );
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let garbage: Vec<u8> = (0..512u32).map(|i| (i * 7919 % 256) as u8).collect();
        for codec in ALL[1..].iter() {
            assert!(decompress(*codec, &garbage, 1 << 20).is_err(), "{codec:?}");
        }
        // xerial framing with a block length beyond the input
        let mut x = XERIAL_MAGIC.to_vec();
        x.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff]);
        assert!(decompress(Codec::Snappy, &x, 1 << 20).is_err());
    }

    // Regression (hostile_input.rs): a gzip batch whose records section is
    // itself a gzip stream was re-wrapped as lz4 and appended.
    #[test]
    fn recompress_refuses_what_does_not_decompress_to_records() {
        let records = [batch::build::SimpleRecord {
            key: Some(b"k"),
            value: Some(b"v"),
            timestamp_ms: 1,
        }];
        let plain = batch::build::batch(&records, -1, -1, -1);
        let section = &plain[BATCH_HEADER_BYTES..];
        let nested = compress(Codec::Gzip, &compress(Codec::Gzip, section).unwrap()).unwrap();
        let outer = with_records(&plain, Codec::Gzip, &nested, 1);
        batch::validate_produced(&outer).expect("framing and CRC are fine");
        assert!(matches!(
            recompress(&outer, Codec::Lz4, 1 << 20),
            Err(LogError::InvalidRecord(_))
        ));
        // One layer is fine.
        let once = with_records(
            &plain,
            Codec::Gzip,
            &compress(Codec::Gzip, section).unwrap(),
            1,
        );
        assert!(recompress(&once, Codec::Lz4, 1 << 20).unwrap().is_some());
    }

    #[test]
    fn recompress_keeps_the_records_and_header() {
        let records: Vec<batch::build::SimpleRecord> = (0..20)
            .map(|i| batch::build::SimpleRecord {
                key: Some(b"k"),
                value: Some(b"some value that compresses well, some value"),
                timestamp_ms: 1_700_000_000_000 + i,
            })
            .collect();
        let plain = batch::build::batch(&records, 7, 0, 0);
        let original = records_section(&plain, 1 << 20).unwrap();
        let mut current = plain.clone();
        for target in [
            Codec::Zstd,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Gzip,
            Codec::None,
        ] {
            let next = recompress(&current, target, 1 << 20).unwrap().unwrap();
            let h = batch::validate_produced(&next).unwrap();
            assert_eq!(h.compression(), target as i16);
            assert_eq!(records_section(&next, 1 << 20).unwrap(), original);
            assert_eq!(
                next[23..61],
                plain[23..61],
                "header fields after attributes kept"
            );
            current = next;
        }
        assert!(
            recompress(&current, Codec::None, 1 << 20)
                .unwrap()
                .is_none()
        );
    }
}
