//! Helpers shared by the integration tests: batch builders and whole-log readers.
#![allow(dead_code)]

use herald_log::batch::{self, BatchHeader, build::SimpleRecord};
use herald_log::{LogConfig, PartitionLog};

/// One record as the tests describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub ts: i64,
}

/// Deterministic bytes so that content mismatches are visible.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(31)))
        .collect()
}

/// Encodes `recs` as one valid uncompressed batch (base offset 0).
pub fn make_batch(recs: &[Rec], producer_id: i64, epoch: i16, base_sequence: i32) -> Vec<u8> {
    let simple: Vec<SimpleRecord<'_>> = recs
        .iter()
        .map(|r| SimpleRecord {
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            timestamp_ms: r.ts,
        })
        .collect();
    batch::build::batch(&simple, producer_id, epoch, base_sequence)
}

/// A batch of `n` records with values of `value_len` bytes, all at `ts`.
pub fn simple_batch(n: usize, value_len: usize, ts: i64, seed: u8) -> Vec<u8> {
    let recs: Vec<Rec> = (0..n)
        .map(|i| Rec {
            key: None,
            value: Some(pattern(value_len, seed.wrapping_add(i as u8))),
            ts,
        })
        .collect();
    make_batch(&recs, -1, -1, -1)
}

/// What the log must hold for a produced batch written at `base_offset`.
pub fn stored_form(produced: &[u8], base_offset: i64) -> Vec<u8> {
    let mut b = produced.to_vec();
    batch::assign_offset(&mut b, base_offset, 0);
    b
}

/// A config with small segments and a dense index, no time/size retention.
pub fn small_config(segment_bytes_max: u64, index_interval_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes_max,
        index_interval_bytes,
        retention_age_max: None,
        retention_bytes_max: None,
        ..LogConfig::default()
    }
}

/// Reads every batch from the log start to the log end, checking framing,
/// CRC and offset continuity on the way.
pub fn read_all(log: &PartitionLog, max_bytes: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    let end = log.log_end_offset();
    while next < end {
        let bytes = log.read(next, max_bytes).expect("read inside the log");
        let batches = batch::split(&bytes).expect("read returns whole batches");
        assert!(
            !batches.is_empty(),
            "empty read at {next} below the log end {end}"
        );
        let first = batch::validate(batches[0]).expect("valid batch");
        assert!(
            first.base_offset <= next && next <= first.last_offset(),
            "first batch [{}, {}] does not contain {next}",
            first.base_offset,
            first.last_offset()
        );
        let mut expect = first.base_offset;
        for b in batches {
            let h: BatchHeader = batch::validate(b).expect("valid batch");
            assert_eq!(h.base_offset, expect, "offsets not dense");
            expect = h.next_offset();
            out.push(b.to_vec());
        }
        next = expect;
    }
    assert_eq!(next, end);
    out
}

/// A small deterministic generator for tests that are not property tests.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Segment files in `dir` with the given extension, sorted by base offset.
pub fn segment_files(dir: &std::path::Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// A scratch directory, on tmpfs when the machine has one. These tests make
/// crashes by dropping the log and editing its files, not by losing the page
/// cache, so fsync has nothing to prove here, and on a disk it dominates the
/// run time (each roll fsyncs four times).
pub fn tempdir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}
