//! Record batch (magic v2) framing: the 61-byte header Herald reads and writes.
//!
//! Batches are stored exactly as producers sent them. The broker only rewrites
//! the fields the CRC does not cover (base offset, partition leader epoch) and,
//! for `LogAppendTime` topics, the timestamp fields plus the CRC.
//!
//! Layout (big endian), offsets in bytes from the batch start:
//! ```text
//!  0 base_offset            i64   assigned by the broker
//!  8 batch_length           i32   bytes after this field
//! 12 partition_leader_epoch i32   set by the broker
//! 16 magic                  i8    must be 2
//! 17 crc                    u32   CRC32C of bytes 21..end
//! 21 attributes             i16   bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control,
//!                                 6 delete horizon in base_timestamp (KIP-534, cleaned markers)
//! 23 last_offset_delta      i32
//! 27 base_timestamp         i64
//! 35 max_timestamp          i64
//! 43 producer_id            i64
//! 51 producer_epoch         i16
//! 53 base_sequence          i32
//! 57 records_count          i32
//! 61 records...
//! ```

use crate::error::LogError;

/// Size of the fixed batch header.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Bytes before `batch_length` counts: base offset and the length itself.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Smallest legal `batch_length` (header without the first 12 bytes).
pub const BATCH_LENGTH_MIN: usize = BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES;

pub const OFFSET_BASE_OFFSET: usize = 0;
pub const OFFSET_LENGTH: usize = 8;
pub const OFFSET_LEADER_EPOCH: usize = 12;
pub const OFFSET_MAGIC: usize = 16;
pub const OFFSET_CRC: usize = 17;
pub const OFFSET_ATTRIBUTES: usize = 21;
pub const OFFSET_LAST_OFFSET_DELTA: usize = 23;
pub const OFFSET_BASE_TIMESTAMP: usize = 27;
pub const OFFSET_MAX_TIMESTAMP: usize = 35;
pub const OFFSET_PRODUCER_ID: usize = 43;
pub const OFFSET_PRODUCER_EPOCH: usize = 51;
pub const OFFSET_BASE_SEQUENCE: usize = 53;
pub const OFFSET_RECORDS_COUNT: usize = 57;

pub const ATTRIBUTE_COMPRESSION_MASK: i16 = 0x07;
pub const ATTRIBUTE_LOG_APPEND_TIME: i16 = 0x08;
pub const ATTRIBUTE_TRANSACTIONAL: i16 = 0x10;
pub const ATTRIBUTE_CONTROL: i16 = 0x20;
/// KIP-534: the batch's base timestamp is the time after which the cleaner
/// may remove it (set by compaction on transaction markers).
pub const ATTRIBUTE_DELETE_HORIZON: i16 = 0x40;

/// Kafka's `ControlRecordType` of a transaction marker's key.
pub const CONTROL_TYPE_ABORT: i16 = 0;
pub const CONTROL_TYPE_COMMIT: i16 = 1;
/// A control batch larger than this is not a transaction marker Herald
/// reads (one record of 10 key/value bytes is ~80 bytes; a horizon adds a
/// few varint bytes): recovery does not read bigger ones whole.
pub const MARKER_BATCH_BYTES_MAX: usize = 256;

/// A transaction marker (Kafka's `EndTransactionMarker`): the control batch
/// the transaction coordinator writes to end a producer's transaction on a
/// partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// COMMIT (true) or ABORT (false).
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// The smallest possible encoded record (all varints one byte, no key/value/headers).
const RECORD_BYTES_MIN: usize = 7;

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The decoded fixed header of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Parses the header. `bytes` must hold at least [`BATCH_HEADER_BYTES`].
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, LogError> {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(LogError::CorruptBatch("batch shorter than its header"));
        }
        Ok(BatchHeader {
            base_offset: be_i64(bytes, OFFSET_BASE_OFFSET),
            batch_length: be_i32(bytes, OFFSET_LENGTH),
            partition_leader_epoch: be_i32(bytes, OFFSET_LEADER_EPOCH),
            magic: bytes[OFFSET_MAGIC] as i8,
            crc: be_u32(bytes, OFFSET_CRC),
            attributes: be_i16(bytes, OFFSET_ATTRIBUTES),
            last_offset_delta: be_i32(bytes, OFFSET_LAST_OFFSET_DELTA),
            base_timestamp: be_i64(bytes, OFFSET_BASE_TIMESTAMP),
            max_timestamp: be_i64(bytes, OFFSET_MAX_TIMESTAMP),
            producer_id: be_i64(bytes, OFFSET_PRODUCER_ID),
            producer_epoch: be_i16(bytes, OFFSET_PRODUCER_EPOCH),
            base_sequence: be_i32(bytes, OFFSET_BASE_SEQUENCE),
            records_count: be_i32(bytes, OFFSET_RECORDS_COUNT),
        })
    }

    /// Total bytes of the batch including base offset and length fields.
    /// Computed in i64: a negative length read from disk or the wire gives a
    /// small total (callers reject lengths below `BATCH_LENGTH_MIN`) instead
    /// of an overflow.
    pub fn total_bytes(&self) -> usize {
        (self.batch_length as i64 + LOG_OVERHEAD_BYTES as i64).max(0) as usize
    }
    /// Saturating: a base offset near i64::MAX read from disk must not
    /// overflow (recovery rejects such a batch by its offsets).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(self.last_offset_delta as i64)
    }
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }
    pub fn compression(&self) -> i16 {
        self.attributes & ATTRIBUTE_COMPRESSION_MASK
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTRIBUTE_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & ATTRIBUTE_CONTROL != 0
    }
    /// KIP-534's delete horizon (ms), when the cleaner set one.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & ATTRIBUTE_DELETE_HORIZON != 0).then_some(self.base_timestamp)
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
    /// The last sequence number in this batch (sequences wrap at i32::MAX).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        if last > i32::MAX as i64 {
            (last - i32::MAX as i64 - 1) as i32
        } else {
            last as i32
        }
    }
}

/// Reads the length prefix of the batch at the start of `bytes`, if 12 bytes are there.
pub fn peek_total_bytes(bytes: &[u8]) -> Option<i64> {
    if bytes.len() < LOG_OVERHEAD_BYTES {
        return None;
    }
    Some(be_i32(bytes, OFFSET_LENGTH) as i64 + LOG_OVERHEAD_BYTES as i64)
}

/// Validates one complete batch: framing, magic, CRC32C, counts.
pub fn validate(bytes: &[u8]) -> Result<BatchHeader, LogError> {
    let header = BatchHeader::parse(bytes)?;
    if header.magic != 2 {
        return Err(LogError::UnsupportedMagic(header.magic));
    }
    if (header.batch_length as i64) < BATCH_LENGTH_MIN as i64 || header.total_bytes() != bytes.len()
    {
        return Err(LogError::CorruptBatch(
            "batch length does not match its bytes",
        ));
    }
    let crc = crc32c::crc32c(&bytes[OFFSET_ATTRIBUTES..]);
    if crc != header.crc {
        return Err(LogError::CorruptBatch("CRC32C mismatch"));
    }
    if header.records_count < 0 || header.last_offset_delta < 0 {
        return Err(LogError::InvalidRecord(
            "negative record count or offset delta",
        ));
    }
    // An uncompressed batch cannot hold more records than its bytes allow.
    if header.compression() == 0
        && header.records_count as usize * RECORD_BYTES_MIN > bytes.len() - BATCH_HEADER_BYTES
    {
        return Err(LogError::InvalidRecord(
            "record count larger than the batch",
        ));
    }
    Ok(header)
}

/// Validates a producer's batch: as [`validate`], plus what Kafka requires of
/// new data (at least one record, offset deltas dense, not a control batch).
pub fn validate_produced(bytes: &[u8]) -> Result<BatchHeader, LogError> {
    let header = validate(bytes)?;
    if header.records_count == 0 {
        return Err(LogError::InvalidRecord("empty batch"));
    }
    if header.last_offset_delta != header.records_count - 1 {
        return Err(LogError::InvalidRecord(
            "last offset delta does not match the record count",
        ));
    }
    if header.is_control() {
        return Err(LogError::InvalidRecord(
            "producers may not write control batches",
        ));
    }
    // A transaction is a producer id's: its batches must carry one, and
    // sequence numbers (Kafka's transactional producer is idempotent).
    if header.is_transactional() && (!header.has_producer_id() || header.base_sequence < 0) {
        return Err(LogError::InvalidRecord(
            "transactional batch without producer id or sequence",
        ));
    }
    // Codec ids 5-7 name no codec: no consumer could read the batch. Checked
    // here, not in `validate`, so that recovery never truncates a log that an
    // older Herald accepted such a batch into.
    crate::compression::Codec::from_id(header.compression())?;
    // An uncompressed batch's records are walked (one varint pass, no copy):
    // a count or offset deltas that lie would otherwise be stored and served.
    if header.compression() == 0 {
        crate::records::check(&bytes[BATCH_HEADER_BYTES..], &header)?;
    }
    Ok(header)
}

/// Splits a produce payload (one or more concatenated batches) into batches,
/// checking each length against the bytes present before using it.
pub fn split(bytes: &[u8]) -> Result<Vec<&[u8]>, LogError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let total =
            peek_total_bytes(rest).ok_or(LogError::CorruptBatch("truncated batch length"))?;
        if total < BATCH_HEADER_BYTES as i64 || total > rest.len() as i64 {
            return Err(LogError::CorruptBatch("batch length out of range"));
        }
        let (batch, tail) = rest.split_at(total as usize);
        out.push(batch);
        rest = tail;
    }
    Ok(out)
}

/// Records in the complete batches of `bytes` (a produce payload or a fetch
/// response's records), read from each header without allocating; stops at
/// the first truncated or malformed batch (a fetch may end inside one).
pub fn count_records(bytes: &[u8]) -> u64 {
    let mut records = 0u64;
    let mut rest = bytes;
    while rest.len() >= BATCH_HEADER_BYTES {
        let Some(total) = peek_total_bytes(rest) else {
            break;
        };
        if total < BATCH_HEADER_BYTES as i64 || total > rest.len() as i64 {
            break;
        }
        records += be_i32(rest, OFFSET_RECORDS_COUNT).max(0) as u64;
        rest = &rest[total as usize..];
    }
    records
}

/// Where the complete batches at the start of `bytes` end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchesEnd {
    /// The offset after the last complete batch.
    pub next_offset: i64,
    /// The first batch's length.
    pub first_batch_bytes: usize,
}

/// The end of the complete batches of `bytes` (a read's records), read from
/// their headers without allocating; None if there is no complete batch.
pub fn end_of_batches(bytes: &[u8]) -> Option<BatchesEnd> {
    let mut rest = bytes;
    let mut end: Option<BatchesEnd> = None;
    while rest.len() >= BATCH_HEADER_BYTES {
        let total = peek_total_bytes(rest)?;
        if total < BATCH_HEADER_BYTES as i64 || total > rest.len() as i64 {
            break;
        }
        let next = be_i64(rest, OFFSET_BASE_OFFSET)
            .saturating_add(be_i32(rest, OFFSET_LAST_OFFSET_DELTA).max(0) as i64)
            .saturating_add(1);
        let first = end.map_or(total as usize, |e| e.first_batch_bytes);
        end = Some(BatchesEnd {
            next_offset: next,
            first_batch_bytes: first,
        });
        rest = &rest[total as usize..];
    }
    end
}

/// The transaction marker in a control batch (whole, validated): its type and
/// coordinator epoch; None if the batch holds no COMMIT or ABORT marker
/// (another control type, or a record Herald cannot read, which Kafka also
/// skips as `ControlRecordType.UNKNOWN`).
pub fn parse_marker(bytes: &[u8], header: &BatchHeader) -> Option<EndTxnMarker> {
    if !header.is_control() || header.compression() != 0 || header.records_count < 1 {
        return None;
    }
    let section = bytes.get(BATCH_HEADER_BYTES..)?;
    let records = crate::records::parse(section, header).ok()?;
    let record = records.first()?;
    // Key: i16 version (0 now; later ones keep the layout), i16 type.
    let key = record.key?;
    if key.len() < 4 || be_i16(key, 0) < 0 {
        return None;
    }
    let commit = match be_i16(key, 2) {
        CONTROL_TYPE_ABORT => false,
        CONTROL_TYPE_COMMIT => true,
        _ => return None,
    };
    // Value: i16 version, i32 coordinator epoch.
    let value = record.value()?;
    if value.len() < 6 || be_i16(value, 0) < 0 {
        return None;
    }
    Some(EndTxnMarker {
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        commit,
        coordinator_epoch: be_i32(value, 2),
    })
}

/// Overwrites the base offset and partition leader epoch (not covered by the CRC).
pub fn assign_offset(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[OFFSET_BASE_OFFSET..OFFSET_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    batch[OFFSET_LEADER_EPOCH..OFFSET_LEADER_EPOCH + 4]
        .copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Marks the batch as `LogAppendTime` with `now_ms` and recomputes the CRC.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = be_i16(batch, OFFSET_ATTRIBUTES) | ATTRIBUTE_LOG_APPEND_TIME;
    batch[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[OFFSET_MAX_TIMESTAMP..OFFSET_MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..]);
    batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Builds valid batches (any codec); used by tests and tools.
pub mod build {
    use super::*;

    /// Appends `v` as a zigzag varint (record fields).
    pub fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            if z < 0x80 {
                out.push(z as u8);
                return;
            }
            out.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }

    /// One record: key, value, timestamp delta from the batch's first timestamp.
    pub struct SimpleRecord<'a> {
        pub key: Option<&'a [u8]>,
        pub value: Option<&'a [u8]>,
        pub timestamp_ms: i64,
    }

    /// Producer fields and codec of a built batch.
    #[derive(Debug, Clone, Copy)]
    pub struct Options {
        pub producer_id: i64,
        pub producer_epoch: i16,
        pub base_sequence: i32,
        /// Codec id (`crate::records::COMPRESSION_*`).
        pub compression: i16,
    }

    impl Default for Options {
        fn default() -> Self {
            Options {
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
                compression: 0,
            }
        }
    }

    /// The record of a transaction marker (Kafka's `EndTransactionMarker`):
    /// key = i16 version 0 + i16 type (0 ABORT, 1 COMMIT), value = i16
    /// version 0 + i32 coordinator epoch, no headers.
    fn marker_record(marker: &EndTxnMarker, timestamp_delta: i64) -> Vec<u8> {
        let kind = if marker.commit {
            CONTROL_TYPE_COMMIT
        } else {
            CONTROL_TYPE_ABORT
        };
        let mut rec = vec![0u8]; // attributes
        put_varint(&mut rec, timestamp_delta);
        put_varint(&mut rec, 0); // offset delta
        put_varint(&mut rec, 4);
        rec.extend_from_slice(&0i16.to_be_bytes());
        rec.extend_from_slice(&kind.to_be_bytes());
        put_varint(&mut rec, 6);
        rec.extend_from_slice(&0i16.to_be_bytes());
        rec.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
        put_varint(&mut rec, 0); // headers
        let mut out = Vec::with_capacity(rec.len() + 1);
        put_varint(&mut out, rec.len() as i64);
        out.extend_from_slice(&rec);
        out
    }

    /// A transaction marker batch with base offset 0, as Kafka writes one:
    /// attributes transactional | control (0x30), uncompressed, one record,
    /// base sequence -1, the marker's producer id and epoch, both timestamps
    /// `timestamp_ms`.
    pub fn marker(marker: &EndTxnMarker, timestamp_ms: i64) -> Vec<u8> {
        marker_batch(marker, timestamp_ms, None)
    }

    /// The marker batch with KIP-534's delete horizon: attribute bit 6 set,
    /// base timestamp = `delete_horizon_ms`; the record keeps its timestamp
    /// (`timestamp_ms`, as a delta from the horizon) and max timestamp stays
    /// `timestamp_ms`.
    pub fn marker_batch(
        marker: &EndTxnMarker,
        timestamp_ms: i64,
        delete_horizon_ms: Option<i64>,
    ) -> Vec<u8> {
        let base_ts = delete_horizon_ms.unwrap_or(timestamp_ms);
        let mut attributes = ATTRIBUTE_TRANSACTIONAL | ATTRIBUTE_CONTROL;
        if delete_horizon_ms.is_some() {
            attributes |= ATTRIBUTE_DELETE_HORIZON;
        }
        let body = marker_record(marker, timestamp_ms.wrapping_sub(base_ts));
        let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + body.len());
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&((BATCH_LENGTH_MIN + body.len()) as i32).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.push(2);
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
        out.extend_from_slice(&base_ts.to_be_bytes());
        out.extend_from_slice(&timestamp_ms.to_be_bytes());
        out.extend_from_slice(&marker.producer_id.to_be_bytes());
        out.extend_from_slice(&marker.producer_epoch.to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out[OFFSET_ATTRIBUTES..]);
        out[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Sets the transactional attribute of a built batch (and its CRC).
    pub fn set_transactional(batch: &mut [u8]) {
        let attributes = be_i16(batch, OFFSET_ATTRIBUTES) | ATTRIBUTE_TRANSACTIONAL;
        batch[OFFSET_ATTRIBUTES..OFFSET_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        let crc = crc32c::crc32c(&batch[OFFSET_ATTRIBUTES..]);
        batch[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// Encodes `records` as one uncompressed batch with base offset 0.
    pub fn batch(
        records: &[SimpleRecord<'_>],
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Vec<u8> {
        batch_with(
            records,
            Options {
                producer_id,
                producer_epoch,
                base_sequence,
                compression: 0,
            },
        )
    }

    /// Encodes `records` as one batch with base offset 0, compressed as `options` says.
    pub fn batch_with(records: &[SimpleRecord<'_>], options: Options) -> Vec<u8> {
        assert!(!records.is_empty());
        let base_ts = records[0].timestamp_ms;
        let max_ts = records
            .iter()
            .map(|r| r.timestamp_ms)
            .max()
            .unwrap_or(base_ts);
        let mut body = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let mut rec = vec![0u8]; // attributes
            put_varint(&mut rec, r.timestamp_ms - base_ts);
            put_varint(&mut rec, i as i64);
            match r.key {
                Some(k) => {
                    put_varint(&mut rec, k.len() as i64);
                    rec.extend_from_slice(k);
                }
                None => put_varint(&mut rec, -1),
            }
            match r.value {
                Some(v) => {
                    put_varint(&mut rec, v.len() as i64);
                    rec.extend_from_slice(v);
                }
                None => put_varint(&mut rec, -1),
            }
            put_varint(&mut rec, 0); // headers
            put_varint(&mut body, rec.len() as i64);
            body.extend_from_slice(&rec);
        }
        let body =
            crate::records::compress(options.compression, &body).expect("a known codec compresses");
        let attributes = options.compression & ATTRIBUTE_COMPRESSION_MASK;
        let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + body.len());
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&((BATCH_LENGTH_MIN + body.len()) as i32).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.push(2);
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&((records.len() - 1) as i32).to_be_bytes());
        out.extend_from_slice(&base_ts.to_be_bytes());
        out.extend_from_slice(&max_ts.to_be_bytes());
        out.extend_from_slice(&options.producer_id.to_be_bytes());
        out.extend_from_slice(&options.producer_epoch.to_be_bytes());
        out.extend_from_slice(&options.base_sequence.to_be_bytes());
        out.extend_from_slice(&(records.len() as i32).to_be_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out[OFFSET_ATTRIBUTES..]);
        out[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_batch_validates_and_crc_catches_flips() {
        let recs = [build::SimpleRecord {
            key: Some(b"k"),
            value: Some(b"v"),
            timestamp_ms: 5,
        }];
        let mut b = build::batch(&recs, -1, -1, -1);
        let h = validate_produced(&b).unwrap();
        assert_eq!(h.records_count, 1);
        assert_eq!(h.max_timestamp, 5);
        assign_offset(&mut b, 42, 0);
        assert_eq!(validate(&b).unwrap().base_offset, 42);
        let n = b.len();
        b[n - 1] ^= 1;
        assert!(matches!(validate(&b), Err(LogError::CorruptBatch(_))));
    }

    #[test]
    fn split_rejects_lengths_beyond_the_buffer() {
        let recs = [build::SimpleRecord {
            key: None,
            value: Some(b"x"),
            timestamp_ms: 0,
        }];
        let b = build::batch(&recs, -1, -1, -1);
        let mut two = b.clone();
        two.extend_from_slice(&b);
        assert_eq!(split(&two).unwrap().len(), 2);
        assert!(split(&two[..two.len() - 1]).is_err());
        let mut bad = b.clone();
        bad[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(split(&bad).is_err());
    }

    #[test]
    fn count_records_sums_complete_batches_and_stops_at_a_cut_one() {
        let recs = [
            build::SimpleRecord {
                key: None,
                value: Some(b"x"),
                timestamp_ms: 0,
            },
            build::SimpleRecord {
                key: None,
                value: Some(b"y"),
                timestamp_ms: 0,
            },
        ];
        let b = build::batch(&recs, -1, -1, -1);
        let mut three = b.clone();
        three.extend_from_slice(&b);
        three.extend_from_slice(&b);
        assert_eq!(count_records(&three), 6);
        assert_eq!(count_records(&three[..three.len() - 1]), 4);
        assert_eq!(count_records(&[]), 0);
        let mut bad = b.clone();
        bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(count_records(&bad), 0);
    }

    fn two_records() -> Vec<u8> {
        let recs = [
            build::SimpleRecord {
                key: None,
                value: Some(b"a"),
                timestamp_ms: 7,
            },
            build::SimpleRecord {
                key: None,
                value: Some(b"b"),
                timestamp_ms: 7,
            },
        ];
        build::batch(&recs, -1, -1, -1)
    }

    fn recrc(b: &mut [u8]) {
        let crc = crc32c::crc32c(&b[OFFSET_ATTRIBUTES..]);
        b[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }

    // Regression (hostile_input.rs): these were appended as they came.
    #[test]
    fn produced_batches_whose_records_lie_are_refused() {
        let good = two_records();
        validate_produced(&good).unwrap();

        // The header says one record, two are present.
        let mut fewer = good.clone();
        fewer[OFFSET_RECORDS_COUNT..OFFSET_RECORDS_COUNT + 4].copy_from_slice(&1i32.to_be_bytes());
        fewer[OFFSET_LAST_OFFSET_DELTA..OFFSET_LAST_OFFSET_DELTA + 4]
            .copy_from_slice(&0i32.to_be_bytes());
        recrc(&mut fewer);
        assert!(matches!(
            validate_produced(&fewer),
            Err(LogError::InvalidRecord(_))
        ));

        // The second record's offset delta goes back to 0. Record 0 is
        // [len, attributes, ts delta, offset delta, ...]; record 1 follows.
        let mut backwards = good.clone();
        let first_len = backwards[BATCH_HEADER_BYTES] as usize / 2; // zigzag, one byte
        let second = BATCH_HEADER_BYTES + 1 + first_len;
        assert_eq!(backwards[second + 3], 2, "offset delta 1, zigzag");
        backwards[second + 3] = 0;
        recrc(&mut backwards);
        assert!(validate(&backwards).is_ok(), "framing and CRC still fine");
        assert!(matches!(
            validate_produced(&backwards),
            Err(LogError::InvalidRecord("record offset delta out of order"))
        ));

        // Codec id 7 names no codec.
        let mut codec = good.clone();
        codec[OFFSET_ATTRIBUTES + 1] |= 0x07;
        recrc(&mut codec);
        assert!(validate(&codec).is_ok(), "recovery keeps such a batch");
        assert!(matches!(
            validate_produced(&codec),
            Err(LogError::InvalidRecord("unknown compression codec"))
        ));
    }
}
