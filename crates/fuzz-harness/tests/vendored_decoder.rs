//! The vendored kafka-protocol's record batch decoder (third_party/
//! kafka-protocol, HERALD-PATCH.md) with record counts from a hostile batch.

use bytes::Bytes;
use herald_log::batch::build::{SimpleRecord, batch};
use herald_log::batch::{OFFSET_ATTRIBUTES, OFFSET_CRC, OFFSET_RECORDS_COUNT};
use kafka_protocol::records::RecordBatchDecoder;

/// `decode_new_records` reserved `record_count` from the wire: -1 panicked
/// with a capacity overflow, i32::MAX preallocated ~2^31 records.
#[test]
fn negative_and_huge_record_counts_are_errors() {
    let recs = [SimpleRecord {
        key: Some(b"k"),
        value: Some(b"v"),
        timestamp_ms: 1,
    }];
    for count in [-1i32, i32::MIN, i32::MAX, 2] {
        let mut b = batch(&recs, -1, -1, -1);
        b[OFFSET_RECORDS_COUNT..OFFSET_RECORDS_COUNT + 4].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&b[OFFSET_ATTRIBUTES..]);
        b[OFFSET_CRC..OFFSET_CRC + 4].copy_from_slice(&crc.to_be_bytes());
        let mut buf = Bytes::from(b);
        assert!(
            RecordBatchDecoder::decode(&mut buf).is_err(),
            "count {count}"
        );
    }
}
