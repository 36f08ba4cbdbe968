//! Record batches: CRC, codec bits, lying counts and deltas, compression bombs.

use super::*;

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
    eprintln!("zstd bomb: {} bytes for 2 GiB", bomb.len());
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

#[test]
fn nested_compression_on_a_producer_compression_topic_is_stored_unopened() {
    // As the bomb above: with compression.type=producer the records inside a
    // compressed batch are not looked at, so this one is stored as sent.
    // Kafka decompresses and would refuse it (pending the lead's decision).
    let batch = nested_gzip();
    let mut c = batch_case(&[], batch.clone(), code::NONE);
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
    assert_eq!(
        &got[HEADER_BYTES..],
        &batch[HEADER_BYTES..],
        "served as sent"
    );
    c.still_serves();
}
