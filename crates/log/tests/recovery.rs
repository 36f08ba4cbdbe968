//! Crash recovery: torn and corrupt tails of the active segment, and lost or
//! damaged index files.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{XorShift, read_all, segment_files, simple_batch, small_config, stored_form};
use herald_log::batch;
use herald_log::{LogConfig, PartitionLog};
use proptest::prelude::*;

/// A batch the test wrote, as the log must store it.
#[derive(Debug, Clone)]
struct Written {
    base: i64,
    stored: Vec<u8>,
    max_ts: i64,
}

impl Written {
    fn next(&self) -> i64 {
        batch::BatchHeader::parse(&self.stored)
            .unwrap()
            .next_offset()
    }
}

/// Appends one batch per `(records, value_len, ts)`.
fn write_batches(log: &mut PartitionLog, specs: &[(usize, usize, i64)]) -> Vec<Written> {
    let mut out = Vec::new();
    for (i, &(n, value_len, ts)) in specs.iter().enumerate() {
        let produced = simple_batch(n, value_len, ts, i as u8);
        let info = log.append(&produced, 0).unwrap();
        assert_eq!(info.last_offset - info.base_offset + 1, n as i64);
        out.push(Written {
            base: info.base_offset,
            stored: stored_form(&produced, info.base_offset),
            max_ts: ts,
        });
    }
    out
}

/// Checks that the log serves exactly `expected`, by whole-log reads, reads
/// at every offset, and timestamp searches.
fn assert_serves(log: &PartitionLog, expected: &[Written]) {
    let end = expected
        .last()
        .map(|w| w.next())
        .unwrap_or(log.log_start_offset());
    assert_serves_from(log, expected, 0, end);
}

/// As [`assert_serves`] for a log that starts at `start` and ends at `end`:
/// the batches of `expected` that end before `start` are no longer visible.
fn assert_serves_from(log: &PartitionLog, expected: &[Written], start: i64, end: i64) {
    assert_eq!(log.log_start_offset(), start, "log start offset");
    assert_eq!(log.log_end_offset(), end, "log end offset");
    let visible: Vec<&Written> = expected.iter().filter(|w| w.next() > start).collect();
    let all: Vec<Vec<u8>> = visible.iter().map(|w| w.stored.clone()).collect();
    assert_eq!(read_all(log, 1 << 20), all, "whole log");
    assert_eq!(read_all(log, 0), all, "batch by batch");
    for w in &visible {
        for offset in w.base.max(start)..w.next() {
            let got = log.read(offset, 1).unwrap();
            assert_eq!(got, w.stored, "read({offset})");
        }
    }
    assert!(log.read(end, 1 << 20).unwrap().is_empty());
    let mut timestamps: Vec<i64> = expected
        .iter()
        .flat_map(|w| [w.max_ts - 1, w.max_ts, w.max_ts + 1])
        .collect();
    timestamps.extend([-5, 0, i64::MAX]);
    for t in timestamps {
        let want = visible.iter().find(|w| w.max_ts >= t);
        let got = log.find_timestamp(t).unwrap();
        assert_eq!(
            got.as_ref().map(|h| h.header.base_offset),
            want.map(|w| w.base),
            "find_timestamp({t})"
        );
        if let (Some(got), Some(want)) = (got, want) {
            assert_eq!(got.batch, want.stored);
        }
    }
}

fn open(dir: &Path, config: &LogConfig) -> (PartitionLog, herald_log::OpenReport) {
    PartitionLog::open(dir, config.clone()).unwrap()
}

#[derive(Debug, Clone)]
enum Damage {
    /// Cut the file at this per mille of its length.
    Truncate { at: u16 },
    /// Overwrite `len` bytes from this per mille of its length with random bytes.
    Overwrite { at: u16, len: usize, seed: u64 },
    /// Zeros after the last batch (blocks allocated but never written).
    AppendZeros { len: usize },
    /// Garbage after the last batch.
    AppendJunk { len: usize, seed: u64 },
    /// A valid batch with a stale offset after the last batch.
    AppendStaleBatch,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (0u16..=1000).prop_map(|at| Damage::Truncate { at }),
        4 => (0u16..1000, 1usize..80, any::<u64>()).prop_map(|(at, len, seed)| Damage::Overwrite { at, len, seed }),
        1 => (1usize..5000).prop_map(|len| Damage::AppendZeros { len }),
        1 => (1usize..5000, any::<u64>()).prop_map(|(len, seed)| Damage::AppendJunk { len, seed }),
        1 => Just(Damage::AppendStaleBatch),
    ]
}

fn active_log_file(dir: &Path) -> PathBuf {
    segment_files(dir, "log").pop().unwrap()
}

fn crash_and_recover(
    segment_bytes_max: u64,
    specs: Vec<(usize, usize, i64)>,
    delete_at: Option<u16>,
    damage: Damage,
) {
    let tmp = common::tempdir();
    let dir = tmp.path().join("p");
    let config = small_config(segment_bytes_max, 64);
    let (mut log, _) = open(&dir, &config);
    let written = write_batches(&mut log, &specs);
    // DeleteRecords (its checkpoint is durable at once) before the crash.
    let start = match delete_at {
        Some(at) => {
            let offset = log.log_end_offset() * at as i64 / 1000;
            log.delete_records_before(offset).unwrap()
        }
        None => 0,
    };
    drop(log); // crash: no close, no clean-shutdown marker

    let path = active_log_file(&dir);
    let active_base: i64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let (before, active): (Vec<Written>, Vec<Written>) =
        written.into_iter().partition(|w| w.base < active_base);
    let original = fs::read(&path).unwrap();
    assert_eq!(
        original.len(),
        active.iter().map(|w| w.stored.len()).sum::<usize>()
    );
    // Byte ranges of the active segment's batches.
    let mut ranges = Vec::new();
    let mut pos = 0;
    for w in &active {
        ranges.push(pos..pos + w.stored.len());
        pos += w.stored.len();
    }

    let mut after = original.clone();
    let kept = match &damage {
        Damage::Truncate { at } => {
            let cut = original.len() * *at as usize / 1000;
            after.truncate(cut);
            ranges.iter().filter(|r| r.end <= cut).count()
        }
        Damage::Overwrite { at, len, seed } => {
            let from = original.len() * *at as usize / 1000;
            let to = (from + len).min(original.len());
            let mut rng = XorShift(seed | 1);
            for b in &mut after[from..to] {
                *b = rng.next_u64() as u8;
            }
            // A batch is damaged by any change outside the partition leader
            // epoch, the one field neither the CRC nor recovery checks.
            let damaged = |r: &std::ops::Range<usize>| {
                r.clone().any(|i| {
                    let rel = i - r.start;
                    after[i] != original[i]
                        && !(batch::OFFSET_LEADER_EPOCH..batch::OFFSET_LEADER_EPOCH + 4)
                            .contains(&rel)
                })
            };
            ranges.iter().position(damaged).unwrap_or(ranges.len())
        }
        Damage::AppendZeros { len } => {
            after.resize(original.len() + len, 0);
            ranges.len()
        }
        Damage::AppendJunk { len, seed } => {
            let mut rng = XorShift(seed | 1);
            after.extend((0..*len).map(|_| rng.next_u64() as u8));
            ranges.len()
        }
        Damage::AppendStaleBatch => {
            let stale = before.first().or(active.first());
            if let Some(stale) = stale {
                after.extend_from_slice(&stale.stored);
            }
            ranges.len()
        }
    };
    fs::write(&path, &after).unwrap();
    let valid_bytes = ranges[..kept].last().map(|r| r.end).unwrap_or(0);

    // Segments wholly below the log start were deleted.
    let mut expected: Vec<Written> = before.into_iter().filter(|w| w.next() > start).collect();
    for (w, r) in active.iter().zip(&ranges).take(kept) {
        // Keep the bytes as they are on disk (an overwritten leader epoch stays).
        expected.push(Written {
            stored: after[r.clone()].to_vec(),
            ..w.clone()
        });
    }
    let end = expected.last().map(|w| w.next()).unwrap_or(active_base);
    // Offsets lost in the crash cannot stay deleted: the log start comes down
    // to the recovered end, and offsets written from there on are visible.
    let start = start.min(end);

    let (mut log, report) = open(&dir, &config);
    assert!(!report.clean_shutdown);
    assert_eq!(
        report.truncated_bytes,
        (after.len() - valid_bytes) as u64,
        "truncated bytes"
    );
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        valid_bytes as u64,
        "log file cut to its valid prefix"
    );
    assert_serves_from(&log, &expected, start, end);

    // Appending continues right after the last surviving batch.
    let more = write_batches(&mut log, &[(3, 10, 500_000), (1, 0, 7)]);
    assert_eq!(more[0].base, end, "append continues at the recovered end");
    expected.extend(more);
    let end = expected.last().unwrap().next();
    assert_serves_from(&log, &expected, start, end);

    drop(log);
    let (log, report) = open(&dir, &config);
    assert_eq!(report.truncated_bytes, 0);
    assert_serves_from(&log, &expected, start, end);
    log.close().unwrap();
    let (log, report) = open(&dir, &config);
    assert!(report.clean_shutdown);
    assert_eq!(report.truncated_bytes, 0);
    assert_serves_from(&log, &expected, start, end);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn crash_recovery_keeps_exactly_the_whole_batches(
        segment_bytes_max in 1_500u64..6_000,
        specs in prop::collection::vec((1usize..8, 0usize..200, 0i64..10_000), 1..40),
        delete_at in prop::option::weighted(0.3, 0u16..=1000),
        damage in damage(),
    ) {
        crash_and_recover(segment_bytes_max, specs, delete_at, damage);
    }
}

/// Every cut position of a small active segment, one after another.
#[test]
fn every_truncation_point_of_the_active_segment() {
    let specs: Vec<(usize, usize, i64)> = (0..6)
        .map(|i| (1 + i % 3, 5 + 7 * i, 100 * i as i64))
        .collect();
    let tmp = common::tempdir();
    let config = small_config(1 << 20, 32);
    let template = tmp.path().join("template");
    let (mut log, _) = open(&template, &config);
    let written = write_batches(&mut log, &specs);
    drop(log);
    let path = active_log_file(&template);
    let full = fs::read(&path).unwrap();
    for cut in 0..=full.len() {
        let dir = tmp.path().join(format!("cut-{cut}"));
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join(path.file_name().unwrap()), &full[..cut]).unwrap();
        let mut expected = Vec::new();
        let mut end = 0;
        for w in &written {
            end += w.stored.len();
            if end <= cut {
                expected.push(w.clone());
            }
        }
        let (mut log, report) = open(&dir, &config);
        let valid: usize = expected.iter().map(|w| w.stored.len()).sum();
        assert_eq!(report.truncated_bytes as usize, cut - valid, "cut at {cut}");
        assert_serves(&log, &expected);
        let more = write_batches(&mut log, &[(2, 3, 9)]);
        assert_eq!(more[0].base, expected.last().map(|w| w.next()).unwrap_or(0));
        drop(log);
        fs::remove_dir_all(&dir).unwrap();
    }
}

/// Builds a log of several segments with dense indexes; returns what it holds.
fn build_indexed_log(dir: &Path, config: &LogConfig, clean: bool) -> Vec<Written> {
    let (mut log, _) = open(dir, config);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let specs: Vec<(usize, usize, i64)> = (0..120)
        .map(|i| {
            (
                1 + rng.below(6) as usize,
                rng.below(120) as usize,
                (i * 37 % 1000) as i64 + rng.below(400) as i64,
            )
        })
        .collect();
    let written = write_batches(&mut log, &specs);
    assert!(
        log.segment_count() >= 4,
        "want several segments, got {}",
        log.segment_count()
    );
    if clean {
        log.close().unwrap();
    } else {
        drop(log);
    }
    written
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = segment_files(dir, "index");
    files.extend(segment_files(dir, "timeindex"));
    files
        .into_iter()
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum IndexDamage {
    Delete,
    Torn,
    Garbage,
    Zeros,
    EntryBeyondLog,
    /// Last offset index entry points into the middle of a batch.
    LastPositionShifted,
    /// Last offset index entry names an offset that is not at its position.
    LastOffsetShifted,
    /// Last time index entry claims a timestamp no batch has.
    LastTimestampShifted,
    /// Last time index entry points past the batch that reached its timestamp.
    LastTimeOffsetShifted,
}

const INDEX_DAMAGES: [IndexDamage; 9] = [
    IndexDamage::Delete,
    IndexDamage::Torn,
    IndexDamage::Garbage,
    IndexDamage::Zeros,
    IndexDamage::EntryBeyondLog,
    IndexDamage::LastPositionShifted,
    IndexDamage::LastOffsetShifted,
    IndexDamage::LastTimestampShifted,
    IndexDamage::LastTimeOffsetShifted,
];

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}

/// Damages the index file `path` (an `.index` or `.timeindex`). Returns false
/// if this damage does not apply to that file (too few entries).
fn damage_index(path: &Path, damage: IndexDamage, rng: &mut XorShift) -> bool {
    let mut b = fs::read(path).unwrap();
    let is_time = path.extension().unwrap() == "timeindex";
    let entry = if is_time { 12 } else { 8 };
    let n = b.len() / entry;
    match damage {
        IndexDamage::Delete => {
            fs::remove_file(path).unwrap();
            return true;
        }
        IndexDamage::Torn => {
            if b.is_empty() {
                return false;
            }
            b.truncate(b.len() - 1 - rng.below(entry as u64 - 1) as usize);
        }
        IndexDamage::Garbage => {
            if n < 2 {
                return false;
            }
            for x in &mut b {
                *x = rng.next_u64() as u8;
            }
        }
        IndexDamage::Zeros => {
            if n < 2 {
                return false;
            }
            b.fill(0);
        }
        IndexDamage::EntryBeyondLog => {
            if is_time {
                return false;
            }
            b.extend_from_slice(&u32::MAX.to_be_bytes());
            b.extend_from_slice(&(u32::MAX - 1).to_be_bytes());
        }
        IndexDamage::LastPositionShifted => {
            if is_time || n == 0 {
                return false;
            }
            let at = b.len() - 4;
            let p = be_u32(&b[at..]) + 1;
            b[at..].copy_from_slice(&p.to_be_bytes());
        }
        IndexDamage::LastOffsetShifted => {
            if is_time || n == 0 {
                return false;
            }
            let at = b.len() - 8;
            let o = be_u32(&b[at..]) + 1;
            b[at..at + 4].copy_from_slice(&o.to_be_bytes());
        }
        IndexDamage::LastTimestampShifted => {
            if !is_time || n == 0 {
                return false;
            }
            let at = b.len() - 12;
            let t = i64::from_be_bytes(b[at..at + 8].try_into().unwrap()) + 1;
            b[at..at + 8].copy_from_slice(&t.to_be_bytes());
        }
        IndexDamage::LastTimeOffsetShifted => {
            if !is_time || n == 0 {
                return false;
            }
            let at = b.len() - 4;
            let o = be_u32(&b[at..]) + 1;
            b[at..].copy_from_slice(&o.to_be_bytes());
        }
    }
    fs::write(path, &b).unwrap();
    true
}

/// Lost or damaged index files are rebuilt to what they were, and the log
/// serves the same data, after clean and unclean shutdowns.
#[test]
fn damaged_indexes_are_rebuilt() {
    let tmp = common::tempdir();
    let config = small_config(4096, 64);
    let mut rng = XorShift(12345);
    let mut applied = 0;
    for clean in [true, false] {
        for damage in INDEX_DAMAGES {
            for ext in ["index", "timeindex"] {
                let dir = tmp.path().join(format!("{clean}-{damage:?}-{ext}"));
                let written = build_indexed_log(&dir, &config, clean);
                let good = snapshot(&dir);
                // A middle segment (trusted after either shutdown) and the active one.
                let files = segment_files(&dir, ext);
                let targets = [
                    files[files.len() / 2].clone(),
                    files[files.len() - 1].clone(),
                ];
                let mut any = false;
                for t in &targets {
                    any |= damage_index(t, damage, &mut rng);
                }
                if !any {
                    continue;
                }
                applied += 1;
                let (mut log, report) = open(&dir, &config);
                assert_eq!(report.clean_shutdown, clean);
                assert_eq!(
                    report.truncated_bytes, 0,
                    "{damage:?} {ext}: no log data may be lost"
                );
                assert_serves(&log, &written);
                let now = snapshot(&dir);
                assert_eq!(now.len(), good.len());
                for ((path, got), (_, want)) in now.iter().zip(&good) {
                    assert!(
                        got == want,
                        "{damage:?} (clean: {clean}): {} not rebuilt",
                        path.display()
                    );
                }
                // And the log goes on working.
                let mut expected = written;
                expected.extend(write_batches(&mut log, &[(2, 2, 2)]));
                log.close().unwrap();
                let (log, _) = open(&dir, &config);
                assert_serves(&log, &expected);
                drop(log);
                fs::remove_dir_all(&dir).unwrap();
            }
        }
    }
    assert!(applied >= 20, "only {applied} damages applied");
}

/// A damaged index entry in the middle of an index that otherwise looks
/// sound must not make reads return anything but the right batches.
#[test]
fn a_wrong_middle_index_entry_does_not_corrupt_reads() {
    let tmp = common::tempdir();
    let config = small_config(4096, 64);
    for clean in [true, false] {
        let dir = tmp.path().join(format!("{clean}"));
        let written = build_indexed_log(&dir, &config, clean);
        let files = segment_files(&dir, "index");
        let mut damaged = 0;
        for path in &files {
            let mut b = fs::read(path).unwrap();
            let n = b.len() / 8;
            if n < 3 {
                continue;
            }
            // Shift the position of a middle entry by one byte: still strictly
            // between its neighbours, so the file looks well formed.
            let at = (n / 2) * 8 + 4;
            let p = be_u32(&b[at..]) + 1;
            assert!(p < be_u32(&b[at + 8..]));
            b[at..at + 4].copy_from_slice(&p.to_be_bytes());
            fs::write(path, &b).unwrap();
            damaged += 1;
        }
        assert!(damaged >= 2);
        let (log, report) = open(&dir, &config);
        assert_eq!(report.truncated_bytes, 0);
        assert_serves(&log, &written);
    }
}

/// Same for a time index entry that skips ahead: a search from it would miss
/// the batches it skips.
#[test]
fn a_wrong_middle_time_index_entry_does_not_corrupt_searches() {
    let tmp = common::tempdir();
    let config = small_config(4096, 64);
    for clean in [true, false] {
        let dir = tmp.path().join(format!("{clean}"));
        let written = build_indexed_log(&dir, &config, clean);
        let mut damaged = 0;
        for path in segment_files(&dir, "timeindex") {
            let mut b = fs::read(&path).unwrap();
            let n = b.len() / 12;
            if n < 3 {
                continue;
            }
            // Give a middle entry the offset of the next one (offsets may repeat).
            let at = (n / 2) * 12 + 8;
            let next: [u8; 4] = b[at + 12..at + 16].try_into().unwrap();
            b[at..at + 4].copy_from_slice(&next);
            fs::write(&path, &b).unwrap();
            damaged += 1;
        }
        assert!(damaged >= 2);
        let (log, report) = open(&dir, &config);
        assert_eq!(report.truncated_bytes, 0);
        assert_serves(&log, &written);
    }
}

/// Sound index files are trusted as they are: an open does not rewrite them
/// (an unsynced rewrite could be cut short by a later crash), except the
/// active segment's after an unclean shutdown, which is rebuilt.
#[test]
fn sound_index_files_are_not_rewritten_at_open() {
    let tmp = common::tempdir();
    let config = small_config(4096, 64);
    for clean in [true, false] {
        let dir = tmp.path().join(format!("{clean}"));
        let written = build_indexed_log(&dir, &config, clean);
        let mut files = segment_files(&dir, "index");
        files.extend(segment_files(&dir, "timeindex"));
        let active = segment_files(&dir, "log").pop().unwrap();
        let mtimes: Vec<_> = files
            .iter()
            .map(|p| fs::metadata(p).unwrap().modified().unwrap())
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (log, _) = open(&dir, &config);
        for (p, before) in files.iter().zip(&mtimes) {
            let rebuilt = !clean && p.file_stem() == active.file_stem();
            let after = fs::metadata(p).unwrap().modified().unwrap();
            assert_eq!(
                after != *before,
                rebuilt,
                "{} (clean: {clean})",
                p.display()
            );
        }
        assert_serves(&log, &written);
    }
}

/// Found by the `segment` fuzz target (fuzz/artifacts/segment/crash-5465875...):
/// a batch header with a negative length overflowed `total_bytes()` during
/// the recovery scan (a panic in debug builds; a wrapped length in release).
/// Also a base offset near i64::MAX, whose last offset overflowed.
#[test]
fn recovery_stops_at_negative_lengths_and_offsets_near_the_end_of_i64() {
    for (length, base) in [
        (-1i32, 0i64),
        (i32::MIN, 0),
        (i32::MAX, 0),
        (100, i64::MAX - 1),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        {
            let (mut log, _) = PartitionLog::open(&path, small_config(1 << 20, 64)).unwrap();
            log.append(&simple_batch(2, 10, 5, 1), 0).unwrap();
            log.close().unwrap();
        }
        let seg = segment_files(&path, "log").remove(0);
        let mut bytes = fs::read(&seg).unwrap();
        let good = bytes.len();
        let mut bad = bytes[..batch::BATCH_HEADER_BYTES].to_vec();
        bad[0..8].copy_from_slice(&base.to_be_bytes());
        bad[8..12].copy_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(&bad);
        fs::write(&seg, &bytes).unwrap();
        fs::remove_file(path.join(herald_log::partition_log::CLEAN_SHUTDOWN_FILE)).unwrap();
        let (log, report) = PartitionLog::open(&path, small_config(1 << 20, 64)).unwrap();
        assert_eq!(log.log_end_offset(), 2, "length {length}, base {base}");
        assert_eq!(report.truncated_bytes as usize, bytes.len() - good);
    }
}
