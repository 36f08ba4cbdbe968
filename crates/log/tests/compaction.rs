//! Log compaction: a property test against a model of Kafka's cleaner
//! semantics, plus crashes at each step of the segment swap, corruption,
//! codecs, the key map bound, the dirty ratio, the compaction lag and
//! idempotent producer state.
//!
//! Records are decoded with `kafka-protocol`'s batch decoder, an
//! implementation independent of the cleaner's record parser.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::{segment_files, small_config};
use herald_log::batch::{self, BatchHeader, build};
use herald_log::records::{
    COMPRESSION_GZIP, COMPRESSION_LZ4, COMPRESSION_NONE, COMPRESSION_SNAPPY, COMPRESSION_ZSTD,
};
use herald_log::{CompactionReport, LogConfig, LogError, PartitionLog};
use kafka_protocol::records::RecordBatchDecoder;
use proptest::prelude::*;

const CODECS: [i16; 5] = [
    COMPRESSION_NONE,
    COMPRESSION_GZIP,
    COMPRESSION_SNAPPY,
    COMPRESSION_LZ4,
    COMPRESSION_ZSTD,
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct MRecord {
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

/// A batch as appended, with the records compaction left in it.
#[derive(Debug, Clone)]
struct MBatch {
    base: i64,
    last: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    codec: i16,
    base_ts: i64,
    max_ts: i64,
    records: Vec<MRecord>,
    present: bool,
}

fn compact_config(delete_retention_ms: u64) -> LogConfig {
    LogConfig {
        compact: true,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention: Duration::from_millis(delete_retention_ms),
        min_compaction_lag: Duration::ZERO,
        compaction_key_map_bytes_max: 64 << 20,
        ..small_config(1 << 30, 128)
    }
}

/// Every batch of the log, in order: whole, CRC-valid, offsets increasing.
fn read_batches(log: &PartitionLog) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    let end = log.log_end_offset();
    while next < end {
        let bytes = log.read(next, 1 << 20).unwrap();
        if bytes.is_empty() {
            // Only offsets that compaction removed are left before the end.
            break;
        }
        for b in batch::split(&bytes).unwrap() {
            let h = batch::validate(b).unwrap();
            assert!(
                h.base_offset >= next,
                "batch {} at or after {next}",
                h.base_offset
            );
            next = h.next_offset();
            out.push(b.to_vec());
        }
    }
    assert!(next <= end);
    out
}

/// A batch's header and records, decoded by kafka-protocol.
fn decode(b: &[u8]) -> (BatchHeader, Vec<MRecord>) {
    let h = batch::validate(b).unwrap();
    let mut buf = bytes::Bytes::copy_from_slice(b);
    let set = RecordBatchDecoder::decode(&mut buf).expect("kafka-protocol decodes the batch");
    let recs = set
        .records
        .iter()
        .map(|r| MRecord {
            offset: r.offset,
            key: r.key.as_ref().map(|k| k.to_vec()),
            value: r.value.as_ref().map(|v| v.to_vec()),
        })
        .collect();
    (h, recs)
}

fn all_records(log: &PartitionLog) -> Vec<MRecord> {
    read_batches(log).iter().flat_map(|b| decode(b).1).collect()
}

/// The producer table in a comparable form.
fn producer_lines(log: &PartitionLog) -> Vec<String> {
    let mut lines: Vec<String> = log
        .producers()
        .encode_snapshot(0)
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// Kafka's cleaner semantics, with Herald's documented tombstone rule.
#[derive(Debug)]
struct Model {
    batches: Vec<MBatch>,
    /// Segment bases; the last is the active segment.
    segments: Vec<i64>,
    end: i64,
    /// (clean end offset, cleaned at ms) per pass, as the checkpoint keeps them.
    passes: Vec<(i64, i64)>,
    delete_retention_ms: i64,
}

impl Model {
    fn new(delete_retention_ms: i64) -> Model {
        Model {
            batches: Vec::new(),
            segments: vec![0],
            end: 0,
            passes: Vec::new(),
            delete_retention_ms,
        }
    }

    fn roll(&mut self) {
        if *self.segments.last().unwrap() < self.end {
            self.segments.push(self.end);
        }
    }

    /// The checkpoint after a pass if one does work (None: no work).
    fn compact(&mut self, now_ms: i64) -> Option<i64> {
        let active = *self.segments.last().unwrap();
        let first_dirty = self.passes.last().map(|p| p.0).unwrap_or(0);
        if first_dirty >= active {
            return None;
        }
        let mut map: HashMap<Vec<u8>, i64> = HashMap::new();
        for b in self
            .batches
            .iter()
            .filter(|b| b.present && b.base >= first_dirty && b.last < active)
        {
            for r in &b.records {
                if let Some(k) = &r.key {
                    map.insert(k.clone(), r.offset);
                }
            }
        }
        let mut producer_last: HashMap<i64, i64> = HashMap::new();
        for b in self.batches.iter().filter(|b| b.producer_id >= 0) {
            producer_last.insert(b.producer_id, b.base);
        }
        let passes = self.passes.clone();
        let cleaned_at = |offset: i64| passes.iter().find(|p| p.0 > offset).map(|p| p.1);
        let retention = self.delete_retention_ms;
        for b in self
            .batches
            .iter_mut()
            .filter(|b| b.present && b.last < active)
        {
            b.records.retain(|r| {
                let Some(k) = &r.key else { return false };
                if map.get(k).is_some_and(|&o| o > r.offset) {
                    return false;
                }
                let expired = r.value.is_none()
                    && cleaned_at(r.offset).is_some_and(|at| now_ms - at >= retention);
                !expired
            });
            let producer_keeps =
                b.producer_id >= 0 && producer_last.get(&b.producer_id) == Some(&b.base);
            if b.records.is_empty() && !producer_keeps {
                b.present = false;
            }
        }
        let at = now_ms.max(self.passes.last().map(|p| p.1).unwrap_or(i64::MIN));
        self.passes.push((active, at));
        Some(active)
    }
}

/// The log serves exactly the model's batches and records.
fn check(log: &PartitionLog, model: &Model) {
    assert_eq!(log.log_start_offset(), 0, "compaction keeps the log start");
    assert_eq!(log.log_end_offset(), model.end, "log end offset");
    let got = read_batches(log);
    let want: Vec<&MBatch> = model.batches.iter().filter(|b| b.present).collect();
    let got_bases: Vec<i64> = got
        .iter()
        .map(|b| BatchHeader::parse(b).unwrap().base_offset)
        .collect();
    let want_bases: Vec<i64> = want.iter().map(|b| b.base).collect();
    assert_eq!(got_bases, want_bases, "batches present");
    for (g, w) in got.iter().zip(&want) {
        let (h, recs) = decode(g);
        assert_eq!(h.last_offset(), w.last, "last offset delta kept");
        assert_eq!(h.producer_id, w.producer_id);
        assert_eq!(h.producer_epoch, w.producer_epoch);
        assert_eq!(h.base_sequence, w.base_sequence);
        assert_eq!(h.base_timestamp, w.base_ts);
        assert_eq!(h.max_timestamp, w.max_ts);
        let codec = if w.records.is_empty() {
            COMPRESSION_NONE
        } else {
            w.codec
        };
        assert_eq!(h.compression(), codec, "codec of batch {}", w.base);
        assert_eq!(h.records_count as usize, w.records.len());
        assert_eq!(recs, w.records, "records of batch {}", w.base);
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// One batch: (key, value length) per record; producer index or none; codec.
    Append {
        records: Vec<(Option<u8>, Option<u8>)>,
        producer: Option<u8>,
        codec: i16,
    },
    Roll,
    Compact {
        advance_ms: i64,
    },
    CloseReopen,
    DropReopen,
}

fn op() -> impl Strategy<Value = Op> {
    let record = (
        prop::option::weighted(0.95, 0u8..8),
        prop::option::weighted(0.8, 0u8..40),
    );
    prop_oneof![
        10 => (
            prop::collection::vec(record, 1..6),
            prop::option::of(0u8..3),
            prop::sample::select(CODECS.to_vec()),
        )
            .prop_map(|(records, producer, codec)| Op::Append { records, producer, codec }),
        3 => Just(Op::Roll),
        3 => (0i64..3_000).prop_map(|advance_ms| Op::Compact { advance_ms }),
        1 => Just(Op::CloseReopen),
        1 => Just(Op::DropReopen),
    ]
}

fn reopen(dir: &Path, config: &LogConfig) -> PartitionLog {
    let (log, report) = PartitionLog::open(dir, config.clone()).unwrap();
    assert_eq!(report.truncated_bytes, 0, "nothing may be truncated");
    log
}

fn run_model(delete_retention_ms: u64, ops: Vec<Op>) {
    let tmp = common::tempdir();
    let dir = tmp.path().join("compacted-0");
    let config = compact_config(delete_retention_ms);
    let (mut log, _) = PartitionLog::open(&dir, config.clone()).unwrap();
    let mut model = Model::new(delete_retention_ms as i64);
    let mut now = 1_000_000i64;
    let mut sequences = [0i32; 3];

    for op in ops {
        match op {
            Op::Append {
                records,
                producer,
                codec,
            } => {
                now += 1;
                let keys: Vec<Option<Vec<u8>>> = records
                    .iter()
                    .map(|(k, _)| k.map(|k| format!("key-{k}").into_bytes()))
                    .collect();
                let values: Vec<Option<Vec<u8>>> = records
                    .iter()
                    .enumerate()
                    .map(|(i, (_, v))| {
                        v.map(|len| common::pattern(len as usize, (now as u8) ^ i as u8))
                    })
                    .collect();
                let simple: Vec<build::SimpleRecord<'_>> = keys
                    .iter()
                    .zip(&values)
                    .map(|(k, v)| build::SimpleRecord {
                        key: k.as_deref(),
                        value: v.as_deref(),
                        timestamp_ms: now,
                    })
                    .collect();
                let (producer_id, producer_epoch, base_sequence) = match producer {
                    Some(p) => (1000 + p as i64, 0i16, sequences[p as usize]),
                    None => (-1, -1, -1),
                };
                let produced = build::batch_with(
                    &simple,
                    build::Options {
                        producer_id,
                        producer_epoch,
                        base_sequence,
                        compression: codec,
                    },
                );
                let info = append_raw(&mut log, &produced, now).unwrap();
                assert!(!info.duplicate);
                assert_eq!(info.base_offset, model.end);
                if let Some(p) = producer {
                    sequences[p as usize] += records.len() as i32;
                }
                let n = records.len() as i64;
                model.batches.push(MBatch {
                    base: model.end,
                    last: model.end + n - 1,
                    producer_id,
                    producer_epoch,
                    base_sequence,
                    codec,
                    base_ts: now,
                    max_ts: now,
                    records: keys
                        .into_iter()
                        .zip(values)
                        .enumerate()
                        .map(|(i, (key, value))| MRecord {
                            offset: model.end + i as i64,
                            key,
                            value,
                        })
                        .collect(),
                    present: true,
                });
                model.end += n;
            }
            Op::Roll => {
                log.roll().unwrap();
                model.roll();
            }
            Op::Compact { advance_ms } => {
                now += advance_ms;
                let producers_before = producer_lines(&log);
                let report = log.compact(now).unwrap();
                let expected = model.compact(now);
                assert_eq!(
                    report.did_work() || report.bytes_before > 0,
                    expected.is_some(),
                    "{report:?}"
                );
                if let Some(end) = expected {
                    assert_eq!(report.first_dirty_offset, end);
                    assert!(!report.key_map_full);
                }
                assert_eq!(producer_lines(&log), producers_before);
            }
            Op::CloseReopen => {
                let before = producer_lines(&log);
                log.close().unwrap();
                log = reopen(&dir, &config);
                assert_eq!(producer_lines(&log), before, "producer state, clean reopen");
            }
            Op::DropReopen => {
                let before = producer_lines(&log);
                drop(log);
                log = reopen(&dir, &config);
                assert_eq!(
                    producer_lines(&log),
                    before,
                    "producer state, unclean reopen"
                );
            }
        }
        check(&log, &model);
    }
    // No intermediate file survives a finished pass.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".cleaned") && !name.ends_with(".swap"),
            "{name}"
        );
    }
    drop(log);
    let log = reopen(&dir, &config);
    check(&log, &model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn compacted_log_matches_model(
        delete_retention_ms in prop_oneof![Just(0u64), Just(1_000u64), Just(5_000u64)],
        ops in prop::collection::vec(op(), 1..60),
    ) {
        run_model(delete_retention_ms, ops);
    }
}

// ---------------------------------------------------------------------------
// Deterministic scenarios.

/// Appends one batch of `(key, value)` records (value None: tombstone).
fn append(log: &mut PartitionLog, recs: &[(&str, Option<&str>)], codec: i16, ts: i64) -> i64 {
    let simple: Vec<build::SimpleRecord<'_>> = recs
        .iter()
        .map(|(k, v)| build::SimpleRecord {
            key: Some(k.as_bytes()),
            value: v.map(str::as_bytes),
            timestamp_ms: ts,
        })
        .collect();
    let b = build::batch_with(
        &simple,
        build::Options {
            compression: codec,
            ..Default::default()
        },
    );
    append_raw(log, &b, ts).unwrap().base_offset
}

/// Latest value per key as the log serves it (None: tombstone).
fn latest_values(log: &PartitionLog) -> HashMap<Vec<u8>, Option<Vec<u8>>> {
    let mut m = HashMap::new();
    for r in all_records(log) {
        m.insert(r.key.unwrap(), r.value);
    }
    m
}

/// Three closed segments of overwritten keys (with a tombstone) and one key
/// per segment written once, and an active segment.
fn build_overwritten_log(dir: &Path, config: &LogConfig, codec: i16) -> PartitionLog {
    let (mut log, _) = PartitionLog::open(dir, config.clone()).unwrap();
    for round in 0..3 {
        let only = format!("only{round}");
        append(&mut log, &[(only.as_str(), Some("once"))], codec, 1000);
        for i in 0..4 {
            let v0 = format!("a{round}{i}");
            let v1 = format!("b{round}{i}");
            let v2 = format!("c{round}{i}");
            append(
                &mut log,
                &[("a", Some(&v0)), ("b", Some(&v1)), ("c", Some(&v2))],
                codec,
                1000,
            );
        }
        if round == 1 {
            append(&mut log, &[("b", None)], codec, 1000);
        }
        log.roll().unwrap();
    }
    append(&mut log, &[("a", Some("active"))], codec, 1000);
    log
}

#[test]
fn every_codec_survives_compaction() {
    for codec in CODECS {
        let tmp = common::tempdir();
        let dir = tmp.path().join("p");
        let config = compact_config(1 << 40);
        let mut log = build_overwritten_log(&dir, &config, codec);
        let before = latest_values(&log);
        let size_before = log.size_bytes();
        let report = log.compact(2000).unwrap();
        assert!(report.did_work(), "{codec}: {report:?}");
        assert_eq!(report.first_dirty_offset, log.log_end_offset() - 1);
        assert!(report.bytes_after < report.bytes_before, "{report:?}");
        assert_eq!(
            report.bytes_before - report.bytes_after,
            size_before - log.size_bytes()
        );
        assert_eq!(latest_values(&log), before, "codec {codec}");
        // Closed segments hold one record per key: only0..2, a, b, c from
        // round 2 (b's tombstone was superseded), then the active segment's record.
        let recs = all_records(&log);
        assert_eq!(recs.len(), 7, "codec {codec}: {recs:?}");
        for b in read_batches(&log) {
            let (h, _) = decode(&b);
            if h.records_count > 0 {
                assert_eq!(h.compression(), codec);
            }
        }
        let again = log.compact(3000).unwrap();
        assert!(!again.did_work(), "{again:?}");
        drop(log);
        let log = reopen(&dir, &config);
        assert_eq!(all_records(&log).len(), 7);
    }
}

#[test]
fn tombstones_stay_for_delete_retention_after_cleaning() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("p");
    let config = compact_config(10_000);
    let (mut log, _) = PartitionLog::open(&dir, config.clone()).unwrap();
    append(&mut log, &[("k", Some("v1")), ("x", Some("x1"))], 0, 0);
    append(&mut log, &[("k", None)], 0, 0);
    log.roll().unwrap();
    append(&mut log, &[("y", Some("y1"))], 0, 0);
    let r = log.compact(100_000).unwrap();
    assert_eq!((r.records_removed, r.tombstones_removed), (1, 0));
    // The tombstone entered the clean part at 100 000: it stays until 110 000.
    log.roll().unwrap();
    append(&mut log, &[("z", Some("z1"))], 0, 0);
    let r = log.compact(109_999).unwrap();
    assert_eq!(r.tombstones_removed, 0, "{r:?}");
    assert!(latest_values(&log).contains_key(&b"k"[..]));
    log.roll().unwrap();
    append(&mut log, &[("w", Some("w1"))], 0, 0);
    let r = log.compact(110_000).unwrap();
    assert_eq!(r.tombstones_removed, 1, "{r:?}");
    let values = latest_values(&log);
    assert!(!values.contains_key(&b"k"[..]));
    assert_eq!(values[&b"x"[..]], Some(b"x1".to_vec()));
}

#[test]
fn null_keys_go_and_committed_transactional_records_are_compacted() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("p");
    let config = compact_config(1 << 40);
    let (mut log, _) = PartitionLog::open(&dir, config.clone()).unwrap();
    // A null-key record from before the policy change, next to a keyed one.
    let b = build::batch(
        &[
            build::SimpleRecord {
                key: None,
                value: Some(b"old"),
                timestamp_ms: 0,
            },
            build::SimpleRecord {
                key: Some(b"k"),
                value: Some(b"v"),
                timestamp_ms: 0,
            },
        ],
        -1,
        -1,
        -1,
    );
    // A committed transaction: its records are cleaned like any other (Kafka).
    let mut tx = build::batch(
        &[build::SimpleRecord {
            key: Some(b"k"),
            value: Some(b"tx"),
            timestamp_ms: 0,
        }],
        5,
        0,
        0,
    );
    build::set_transactional(&mut tx);
    append_raw(&mut log, &b, 0).unwrap(); // 0, 1
    append_raw(&mut log, &tx, 0).unwrap(); // 2
    let commit = batch::EndTxnMarker {
        producer_id: 5,
        producer_epoch: 0,
        commit: true,
        coordinator_epoch: 0,
    };
    assert_eq!(log.write_marker(&commit, 0).unwrap().base_offset, 3);
    log.roll().unwrap();
    append_raw(&mut log, &b, 0).unwrap(); // 4, 5
    let data = |log: &PartitionLog| -> Vec<i64> {
        read_batches(log)
            .iter()
            .filter(|b| !batch::validate(b).unwrap().is_control())
            .flat_map(|b| decode(b).1)
            .map(|r| r.offset)
            .collect()
    };
    let r = log.compact(0).unwrap();
    assert_eq!(
        r.records_removed, 2,
        "the null-key record and k@1 go: {r:?}"
    );
    assert_eq!(data(&log), [2, 4, 5], "the committed k@2 shadows k@1");
    log.roll().unwrap();
    let r = log.compact(0).unwrap();
    assert_eq!(r.records_removed, 2, "{r:?}");
    assert_eq!(data(&log), [5]);
    // The producer's last batch stays (emptied), so its marker stays too.
    let batches = read_batches(&log);
    let headers: Vec<BatchHeader> = batches
        .iter()
        .map(|b| batch::validate(b).unwrap())
        .collect();
    assert_eq!(
        (headers[0].base_offset, headers[0].records_count),
        (2, 0),
        "empty transactional batch kept for producer 5"
    );
    assert!(headers[0].is_transactional());
    assert!(headers[1].is_control() && headers[1].delete_horizon_ms().is_none());
    assert_eq!(log.last_stable_offset(), log.high_watermark());
}

#[test]
fn compaction_is_off_without_the_policy_and_below_the_dirty_ratio() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("p");
    let config = LogConfig {
        compact: false,
        ..compact_config(0)
    };
    let mut log = build_overwritten_log(&dir, &config, 0);
    let files_before = segment_files(&dir, "log");
    let r = log.compact(1 << 40).unwrap();
    assert!(!r.did_work() && r.bytes_before == 0, "{r:?}");
    assert!(!dir.join("cleaner-checkpoint").exists());

    // Everything dirty: ratio 1.
    log.set_config(LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        ..compact_config(1 << 40)
    });
    let r = log.compact(0).unwrap();
    assert!(r.did_work());
    assert_eq!(r.dirty_ratio, 1.0);
    // A small dirty part after a larger clean one stays below 0.5.
    log.roll().unwrap();
    append(&mut log, &[("a", Some("y"))], 0, 0);
    let r = log.compact(0).unwrap();
    assert!(!r.did_work() && r.bytes_before == 0, "{r:?}");
    log.set_config(LogConfig {
        min_cleanable_dirty_ratio: 0.01,
        ..compact_config(1 << 40)
    });
    let r = log.compact(0).unwrap();
    assert!(r.did_work() && r.dirty_ratio < 0.5, "{r:?}");
    assert_eq!(segment_files(&dir, "log").len(), files_before.len() + 1);
}

#[test]
fn min_compaction_lag_holds_young_segments_back() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("p");
    let config = LogConfig {
        min_compaction_lag: Duration::from_secs(3600),
        ..compact_config(1 << 40)
    };
    let (mut log, _) = PartitionLog::open(&dir, config.clone()).unwrap();
    let hour = 3_600_000;
    append(&mut log, &[("k", Some("old"))], 0, 0);
    log.roll().unwrap();
    append(&mut log, &[("k", Some("young"))], 0, 10 * hour);
    log.roll().unwrap();
    append(&mut log, &[("k", Some("active"))], 0, 10 * hour);
    // At 10h30 only the first segment is old enough: "young" is not mapped,
    // so "old" is the latest in the cleanable range and stays.
    let r = log.compact(10 * hour + hour / 2).unwrap();
    assert_eq!(r.records_removed, 0, "{r:?}");
    assert_eq!(r.first_dirty_offset, 1);
    assert_eq!(all_records(&log).len(), 3);
    // At 11h both closed segments are cleanable: "old" goes.
    let r = log.compact(11 * hour).unwrap();
    assert_eq!(r.records_removed, 1, "{r:?}");
    assert_eq!(r.first_dirty_offset, 2);
    let recs = all_records(&log);
    assert_eq!(recs.iter().map(|r| r.offset).collect::<Vec<_>>(), [1, 2]);
}

#[test]
fn max_compaction_lag_cleans_below_the_dirty_ratio() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("p");
    let hour = 3_600_000;
    // The ratio alone never allows a pass (Kafka cleans only above it).
    let config = LogConfig {
        min_cleanable_dirty_ratio: 1.0,
        max_compaction_lag: Some(Duration::from_secs(3600)),
        ..compact_config(1 << 40)
    };
    let (mut log, _) = PartitionLog::open(&dir, config.clone()).unwrap();
    append(&mut log, &[("k", Some("first"))], 0, hour);
    append(&mut log, &[("k", Some("second"))], 0, 3 * hour / 2);
    log.roll().unwrap();
    append(&mut log, &[("k", Some("active"))], 0, 3 * hour / 2);
    // Dirty for less than the lag: nothing.
    let r = log.compact(3 * hour / 2).unwrap();
    assert!(!r.did_work() && !r.forced_by_max_compaction_lag, "{r:?}");
    // The first batch of the dirty segment is older than the lag: cleaned.
    let r = log.compact(2 * hour + 1).unwrap();
    assert!(
        r.forced_by_max_compaction_lag && r.records_removed == 1,
        "{r:?}"
    );
    let recs = all_records(&log);
    assert_eq!(recs.iter().map(|r| r.offset).collect::<Vec<_>>(), [1, 2]);
    // Without the bound, the same log stays as it is.
    let dir2 = tmp.path().join("q");
    let unbounded = LogConfig {
        max_compaction_lag: None,
        ..config.clone()
    };
    let (mut log2, _) = PartitionLog::open(&dir2, unbounded).unwrap();
    append(&mut log2, &[("k", Some("first"))], 0, hour);
    append(&mut log2, &[("k", Some("second"))], 0, 3 * hour / 2);
    log2.roll().unwrap();
    let r = log2.compact(100 * hour).unwrap();
    assert!(!r.did_work(), "{r:?}");
    // The active segment of a compacted log rolls by the lag at the latest.
    assert_eq!(config.segment_roll_age(), Duration::from_secs(3600));
    let not_compacted = LogConfig {
        compact: false,
        ..config
    };
    assert_eq!(
        not_compacted.segment_roll_age(),
        not_compacted.segment_age_max
    );
}

#[test]
fn a_tiny_key_map_converges_over_several_passes() {
    let tmp = common::tempdir();
    let full_dir = tmp.path().join("full");
    let tiny_dir = tmp.path().join("tiny");
    let full = compact_config(1 << 40);
    // Room for the keys of one round (only<n>, a, b, c), not two.
    let tiny = LogConfig {
        compaction_key_map_bytes_max: 4 * 64 + 8 + 5,
        ..full.clone()
    };
    let mut a = build_overwritten_log(&full_dir, &full, COMPRESSION_LZ4);
    let mut b = build_overwritten_log(&tiny_dir, &tiny, COMPRESSION_LZ4);
    let r = a.compact(5000).unwrap();
    assert!(!r.key_map_full);
    let mut passes = 0;
    let mut saw_full = false;
    loop {
        let r = b.compact(5000).unwrap();
        saw_full |= r.key_map_full;
        if !r.did_work() && !r.key_map_full && r.first_dirty_offset == a.log_end_offset() - 1 {
            break;
        }
        passes += 1;
        assert!(passes < 100, "does not converge: {r:?}");
    }
    assert!(saw_full && passes > 1, "{passes} passes");
    assert_eq!(all_records(&b), all_records(&a));

    // A map that cannot hold one batch's keys is an error, not a stall.
    let none_dir = tmp.path().join("none");
    let none = LogConfig {
        compaction_key_map_bytes_max: 64,
        ..full
    };
    let mut c = build_overwritten_log(&none_dir, &none, COMPRESSION_NONE);
    assert!(matches!(c.compact(0), Err(LogError::InvalidRecord(_))));
}

#[test]
fn producer_state_survives_compaction_and_reopen() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("p");
    let config = compact_config(1 << 40);
    let (mut log, _) = PartitionLog::open(&dir, config.clone()).unwrap();
    let pid = 77;
    let produce = |log: &mut PartitionLog, seq: i32, value: &[u8]| {
        let b = build::batch_with(
            &[build::SimpleRecord {
                key: Some(b"k"),
                value: Some(value),
                timestamp_ms: 0,
            }],
            build::Options {
                producer_id: pid,
                producer_epoch: 3,
                base_sequence: seq,
                compression: COMPRESSION_ZSTD,
            },
        );
        (b.clone(), append_raw(log, &b, 0).unwrap())
    };
    for seq in 0..4 {
        produce(&mut log, seq, b"old");
    }
    let (last, last_info) = produce(&mut log, 4, b"last");
    log.roll().unwrap();
    // A record without producer supersedes all of the producer's records.
    append(&mut log, &[("k", Some("other"))], 0, 0);
    log.roll().unwrap();
    let before = producer_lines(&log);
    let r = log.compact(0).unwrap();
    assert_eq!(r.records_removed, 5);
    assert_eq!(r.batches_removed, 4, "all but the producer's last batch");
    let batches = read_batches(&log);
    let (h, recs) = decode(&batches[0]);
    assert_eq!((h.base_offset, h.records_count, h.producer_id), (4, 0, pid));
    assert_eq!(h.last_sequence(), 4);
    assert!(recs.is_empty());
    assert_eq!(producer_lines(&log), before);
    // A retry of the last batch is still a duplicate; the next sequence goes on.
    assert!(append_raw(&mut log, &last, 0).unwrap().duplicate);

    log.close().unwrap();
    let mut log = reopen(&dir, &config);
    assert_eq!(producer_lines(&log), before, "clean reopen");
    drop(log);
    // Without the snapshot, state comes from batch headers alone: the empty
    // batch still gives the producer's epoch and last sequence.
    std::fs::remove_file(dir.join("producer-snapshot")).unwrap();
    log = reopen(&dir, &config);
    let dup = append_raw(&mut log, &last, 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, last_info.base_offset);
    let (_, next) = produce(&mut log, 5, b"next");
    assert!(!next.duplicate);
    assert!(matches!(
        append_raw(
            &mut log,
            &build::batch_with(
                &[build::SimpleRecord {
                    key: Some(b"k"),
                    value: Some(b"x"),
                    timestamp_ms: 0
                }],
                build::Options {
                    producer_id: pid,
                    producer_epoch: 3,
                    base_sequence: 9,
                    compression: 0
                },
            ),
            0
        ),
        Err(LogError::OutOfOrderSequence { .. })
    ));
}

#[test]
fn corruption_in_a_segment_being_cleaned_is_an_error() {
    for damage in 0..4 {
        let tmp = common::tempdir();
        let dir = tmp.path().join("p");
        let config = compact_config(1 << 40);
        let mut log = build_overwritten_log(&dir, &config, COMPRESSION_GZIP);
        let first = &segment_files(&dir, "log")[0];
        let mut bytes = std::fs::read(first).unwrap();
        let second = batch::peek_total_bytes(&bytes).unwrap() as usize;
        match damage {
            // A flipped bit in a record: CRC mismatch.
            0 => bytes[second + 70] ^= 0x10,
            // A batch length beyond the file.
            1 => bytes[second + 8..second + 12].copy_from_slice(&i32::MAX.to_be_bytes()),
            // A negative batch length.
            2 => bytes[second + 8..second + 12].copy_from_slice(&(-5i32).to_be_bytes()),
            // A CRC-valid batch whose compressed records are garbage.
            _ => {
                let end = second + batch::peek_total_bytes(&bytes[second..]).unwrap() as usize;
                for b in &mut bytes[second + 61..end] {
                    *b = 0xa5;
                }
                let crc = crc32c::crc32c(&bytes[second + 21..end]);
                bytes[second + 17..second + 21].copy_from_slice(&crc.to_be_bytes());
            }
        }
        std::fs::write(first, &bytes).unwrap();
        let r = log.compact(0);
        assert!(
            matches!(
                r,
                Err(LogError::CorruptBatch(_)) | Err(LogError::InvalidRecord(_))
            ),
            "damage {damage}: {r:?}"
        );
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !name.ends_with(".cleaned") && !name.ends_with(".swap"),
                "{name}"
            );
        }
        assert!(!dir.join("cleaner-checkpoint").exists());
    }
}

// ---------------------------------------------------------------------------
// Crashes during the swap, simulated by leaving each step's files behind.

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[derive(Debug, Clone, Copy)]
enum CrashPoint {
    /// Part of `.log.cleaned` written.
    CleanedPartial,
    /// `.log.cleaned` complete, not yet renamed.
    CleanedComplete,
    /// `.log.swap` in place, old `.log` and indexes still there.
    SwapWithOldIndexes,
    /// `.log.swap` in place, old indexes deleted.
    SwapIndexesDeleted,
    /// New `.log` in place, indexes not yet rebuilt, checkpoint not written.
    SwappedNoIndexes,
    /// Every segment swapped and indexed, checkpoint not written.
    NoCheckpoint,
}

#[test]
fn a_crash_at_each_swap_step_recovers_to_old_or_new() {
    let tmp = common::tempdir();
    let original = tmp.path().join("original");
    let config = compact_config(1 << 40);
    let mut log = build_overwritten_log(&original, &config, COMPRESSION_SNAPPY);
    log.flush().unwrap();
    let old_records = all_records(&log);
    let latest = latest_values(&log);
    // The compacted result, computed on a copy.
    let compacted = tmp.path().join("compacted");
    copy_dir(&original, &compacted);
    let (mut c, _) = PartitionLog::open(&compacted, config.clone()).unwrap();
    let report: CompactionReport = c.compact(0).unwrap();
    assert!(report.segments_cleaned >= 2, "{report:?}");
    let new_records = all_records(&c);
    drop(c);
    let first = segment_files(&original, "log")[0].clone();
    let name = first.file_name().unwrap().to_string_lossy().into_owned();
    let new_first = std::fs::read(compacted.join(&name)).unwrap();
    let old_first = std::fs::read(&first).unwrap();
    assert_ne!(new_first, old_first);

    for point in [
        CrashPoint::CleanedPartial,
        CrashPoint::CleanedComplete,
        CrashPoint::SwapWithOldIndexes,
        CrashPoint::SwapIndexesDeleted,
        CrashPoint::SwappedNoIndexes,
        CrashPoint::NoCheckpoint,
    ] {
        let dir = tmp.path().join(format!("{point:?}"));
        copy_dir(&original, &dir);
        let index = dir.join(name.replace(".log", ".index"));
        let time_index = dir.join(name.replace(".log", ".timeindex"));
        let expect_new_first = match point {
            CrashPoint::CleanedPartial => {
                std::fs::write(
                    dir.join(format!("{name}.cleaned")),
                    &new_first[..new_first.len() / 2],
                )
                .unwrap();
                false
            }
            CrashPoint::CleanedComplete => {
                std::fs::write(dir.join(format!("{name}.cleaned")), &new_first).unwrap();
                false
            }
            CrashPoint::SwapWithOldIndexes => {
                std::fs::write(dir.join(format!("{name}.swap")), &new_first).unwrap();
                true
            }
            CrashPoint::SwapIndexesDeleted => {
                std::fs::write(dir.join(format!("{name}.swap")), &new_first).unwrap();
                std::fs::remove_file(&index).unwrap();
                std::fs::remove_file(&time_index).unwrap();
                true
            }
            CrashPoint::SwappedNoIndexes => {
                std::fs::write(dir.join(&name), &new_first).unwrap();
                std::fs::remove_file(&index).unwrap();
                std::fs::remove_file(&time_index).unwrap();
                true
            }
            CrashPoint::NoCheckpoint => {
                // Segments the pass deleted are gone too.
                for f in std::fs::read_dir(&dir).unwrap() {
                    let f = f.unwrap();
                    if !compacted.join(f.file_name()).exists() {
                        std::fs::remove_file(f.path()).unwrap();
                    }
                }
                for f in std::fs::read_dir(&compacted).unwrap() {
                    let f = f.unwrap();
                    let n = f.file_name().to_string_lossy().into_owned();
                    if n != "cleaner-checkpoint" {
                        std::fs::copy(f.path(), dir.join(&n)).unwrap();
                    }
                }
                true
            }
        };
        // Unclean open (no marker), as after a crash.
        let (mut log, _) = PartitionLog::open(&dir, config.clone()).unwrap();
        let recs = all_records(&log);
        // The first segment is wholly old or wholly new; the others are old
        // (except after NoCheckpoint, where all are new).
        let seg_end = segment_bases(&dir)[1];
        let first_part: Vec<&MRecord> = recs.iter().filter(|r| r.offset < seg_end).collect();
        let want_old: Vec<&MRecord> = old_records.iter().filter(|r| r.offset < seg_end).collect();
        let want_new: Vec<&MRecord> = new_records.iter().filter(|r| r.offset < seg_end).collect();
        if expect_new_first {
            assert_eq!(first_part, want_new, "{point:?}");
        } else {
            assert_eq!(first_part, want_old, "{point:?}");
        }
        assert_eq!(
            latest_values(&log),
            latest,
            "{point:?}: a latest value was lost"
        );
        for entry in std::fs::read_dir(&dir).unwrap() {
            let n = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !n.ends_with(".cleaned") && !n.ends_with(".swap"),
                "{point:?}: {n}"
            );
        }
        assert!(
            index.exists() && time_index.exists(),
            "{point:?}: indexes rebuilt"
        );
        // Compaction from there reaches the same log as an uninterrupted one.
        log.compact(0).unwrap();
        assert_eq!(all_records(&log), new_records, "{point:?}");
        drop(log);
        let log = reopen(&dir, &config);
        assert_eq!(all_records(&log), new_records, "{point:?}");
    }
}

fn segment_bases(dir: &Path) -> Vec<i64> {
    segment_files(dir, "log")
        .iter()
        .map(|p| {
            p.file_stem()
                .unwrap()
                .to_string_lossy()
                .parse::<i64>()
                .unwrap()
        })
        .collect()
}

#[test]
fn gaps_left_by_compaction_survive_reopen_and_reads() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("p");
    let config = compact_config(1 << 40);
    let (mut log, _) = PartitionLog::open(&dir, config.clone()).unwrap();
    // Segment 0: k=1 (offset 0), k=2 (1); segment 2: k=2 (2), x (3); segment 4: k=1 (4).
    append(&mut log, &[("k", Some("1"))], 0, 0);
    append(&mut log, &[("k", Some("2"))], 0, 0);
    log.roll().unwrap();
    append(&mut log, &[("k", Some("3"))], 0, 0);
    append(&mut log, &[("x", Some("x"))], 0, 0);
    log.roll().unwrap();
    append(&mut log, &[("k", Some("4"))], 0, 0);
    log.roll().unwrap();
    append(&mut log, &[("y", Some("y"))], 0, 0);
    let r = log.compact(0).unwrap();
    // Segment 0 emptied (kept: it is the first); segment 4's batch stays.
    assert_eq!(r.records_removed, 3, "{r:?}");
    assert_eq!(r.segments_deleted, 0);
    let check = |log: &PartitionLog| {
        assert_eq!(log.log_start_offset(), 0);
        let offsets: Vec<i64> = all_records(log).iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [3, 4, 5]);
        // A read inside a gap returns the next batch.
        for (at, first) in [(0, 3), (1, 3), (2, 3), (3, 3), (4, 4)] {
            let b = log.read(at, 1).unwrap();
            assert_eq!(
                BatchHeader::parse(&b).unwrap().base_offset,
                first,
                "read({at})"
            );
        }
    };
    check(&log);
    log.close().unwrap();
    let log = reopen(&dir, &config);
    assert_eq!(log.segment_count(), 4);
    check(&log);
    drop(log);
    let mut log = reopen(&dir, &config);
    check(&log);
    // A later pass that empties a middle segment deletes it.
    append(&mut log, &[("x", Some("x2"))], 0, 0);
    log.roll().unwrap();
    let r = log.compact(0).unwrap();
    assert_eq!(r.segments_deleted, 1, "{r:?}");
    assert_eq!(log.segment_count(), 4);
    drop(log);
    let log = reopen(&dir, &config);
    let offsets: Vec<i64> = all_records(&log).iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [4, 5, 6]);
}

#[test]
fn delete_records_and_retention_work_on_a_compacted_log() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("p");
    let config = compact_config(1 << 40);
    let mut log = build_overwritten_log(&dir, &config, COMPRESSION_NONE);
    log.compact(0).unwrap();
    let kept: Vec<i64> = all_records(&log).iter().map(|r| r.offset).collect();
    // Offset 1 was removed: DeleteRecords into the gap.
    assert!(!kept.contains(&1));
    assert_eq!(log.delete_records_before(1).unwrap(), 1);
    let r = log.compact(0).unwrap();
    assert!(!r.did_work());
    assert_eq!(log.log_start_offset(), 1, "compaction keeps the log start");
    let visible: Vec<i64> = kept.iter().copied().filter(|&o| o >= 1).collect();
    let offsets =
        |log: &PartitionLog| -> Vec<i64> { all_records(log).iter().map(|r| r.offset).collect() };
    assert_eq!(offsets(&log), visible);
    // More data, another pass: the start stays.
    append(&mut log, &[("only0", Some("again"))], 0, 0);
    log.roll().unwrap();
    let r = log.compact(0).unwrap();
    assert!(r.did_work());
    assert_eq!(log.log_start_offset(), 1);
    let after: Vec<i64> = offsets(&log);
    // DeleteRecords(1) deleted segment 0 (its only record was at 0). A restart
    // moves the start up to the first segment's base, as Kafka's does: no
    // record lies between, so nothing visible changes.
    assert!(segment_bases(&dir)[0] > 1);
    log.close().unwrap();
    let log = reopen(&dir, &config);
    let start = segment_bases(&dir)[0];
    assert_eq!(
        (log.log_start_offset(), offsets(&log)),
        (start, after.clone())
    );
    drop(log);
    let mut log = reopen(&dir, &config);
    assert_eq!(
        (log.log_start_offset(), offsets(&log)),
        (start, after.clone())
    );
    // Retention by size deletes whole (cleaned) segments from the oldest.
    log.set_config(LogConfig {
        retention_bytes_max: Some(1),
        ..config.clone()
    });
    let deleted = log.apply_retention(0).unwrap();
    assert!(deleted >= 1);
    // The active segment is empty (just rolled): retention stops at the last closed one.
    assert_eq!(log.segment_count(), 2);
    let left = offsets(&log);
    assert!(!left.is_empty() && left.len() < after.len());
    assert!(log.log_start_offset() <= left[0]);
    drop(log);
    let log = reopen(&dir, &config);
    assert_eq!(offsets(&log), left);
    assert!(log.log_start_offset() <= left[0]);
}

#[test]
fn open_still_drops_the_segments_after_a_truncated_one() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("p");
    let config = small_config(1 << 30, 64);
    let (mut log, _) = PartitionLog::open(&dir, config.clone()).unwrap();
    for _ in 0..3 {
        for i in 0..3 {
            append_raw(&mut log, &common::simple_batch(2, 10, 0, i), 0).unwrap();
        }
        log.roll().unwrap();
    }
    log.close().unwrap();
    // The middle segment's last batch claims more bytes than the file has,
    // and its index is gone: the recovery scan truncates it there.
    let logs = segment_files(&dir, "log");
    let middle = &logs[1];
    let mut bytes = std::fs::read(middle).unwrap();
    let mut pos = 0usize;
    let mut last = 0usize;
    while pos < bytes.len() {
        last = pos;
        pos += batch::peek_total_bytes(&bytes[pos..]).unwrap() as usize;
    }
    bytes[last + 8..last + 12].copy_from_slice(&1_000_000i32.to_be_bytes());
    std::fs::write(middle, &bytes).unwrap();
    std::fs::remove_file(middle.with_extension("index")).unwrap();
    let (log, report) = PartitionLog::open(&dir, config).unwrap();
    assert!(report.truncated_bytes > 0);
    // Segment 0 whole, segment 6 without its last batch; 12 and 18 dropped.
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.log_end_offset(), 10);
}

/// Appends as if the topic were not compacted yet: the broker refuses records
/// without a key on compacted topics (`PartitionLog::append`), but a log can
/// hold them from before its policy changed, and the cleaner must handle them.
fn append_raw(
    log: &mut PartitionLog,
    bytes: &[u8],
    now_ms: i64,
) -> herald_log::Result<herald_log::AppendInfo> {
    let config = log.config().clone();
    let mut relaxed = config.clone();
    relaxed.compact = false;
    log.set_config(relaxed);
    let result = log.append(bytes, now_ms);
    log.set_config(config);
    result
}
