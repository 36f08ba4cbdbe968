//! Property test: random operation sequences against an in-memory model of
//! the partition log, including its segment layout (roll, retention and
//! DeleteRecords all work on whole segments).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Rec, make_batch, pattern, small_config, stored_form};
use herald_log::batch;
use herald_log::{LogConfig, LogError, PartitionLog};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct RecSpec {
    key_len: Option<u8>,
    value_len: Option<u16>,
    ts: i64,
    seed: u8,
}

#[derive(Debug, Clone)]
enum Op {
    /// One produce request of one or more batches.
    Append(Vec<Vec<RecSpec>>),
    Roll,
    /// `at` per mille of the way from the log start to the log end; above
    /// 1000 asks for an offset past the end (must fail).
    DeleteBefore {
        at: u16,
    },
    Retention {
        bytes: Option<u64>,
        age_ms: Option<i64>,
        now_ms: i64,
    },
    CloseReopen,
    DropReopen,
}

/// Parameters of the reads done after an operation.
#[derive(Debug, Clone)]
struct Probe {
    at: u16,
    max_bytes: usize,
    ts: i64,
}

#[derive(Debug, Clone)]
struct MBatch {
    base: i64,
    records: i64,
    /// The batch as produced (base offset 0, leader epoch -1).
    produced: Vec<u8>,
    max_ts: i64,
}

impl MBatch {
    fn last(&self) -> i64 {
        self.base + self.records - 1
    }
    fn size(&self) -> u64 {
        self.produced.len() as u64
    }
    fn stored(&self) -> Vec<u8> {
        stored_form(&self.produced, self.base)
    }
}

#[derive(Debug, Clone)]
struct MSeg {
    base: i64,
    batches: Vec<MBatch>,
}

impl MSeg {
    fn new(base: i64) -> MSeg {
        MSeg {
            base,
            batches: Vec::new(),
        }
    }
    fn next(&self) -> i64 {
        self.batches
            .last()
            .map(|b| b.last() + 1)
            .unwrap_or(self.base)
    }
    fn size(&self) -> u64 {
        self.batches.iter().map(|b| b.size()).sum()
    }
    fn max_ts(&self) -> i64 {
        self.batches.iter().map(|b| b.max_ts).max().unwrap_or(-1)
    }
}

#[derive(Debug)]
struct Model {
    segs: Vec<MSeg>,
    start: i64,
    segment_bytes_max: u64,
}

impl Model {
    fn active(&self) -> &MSeg {
        self.segs.last().unwrap()
    }
    fn end(&self) -> i64 {
        self.active().next()
    }
    fn size(&self) -> u64 {
        self.segs.iter().map(|s| s.size()).sum()
    }
    fn roll(&mut self) {
        if !self.active().batches.is_empty() {
            let end = self.end();
            self.segs.push(MSeg::new(end));
        }
    }
    fn append(&mut self, produced: Vec<(Vec<u8>, i64, i64)>) -> i64 {
        let total: u64 = produced.iter().map(|(b, _, _)| b.len() as u64).sum();
        let active = self.active();
        if !active.batches.is_empty() && active.size() + total > self.segment_bytes_max {
            self.roll();
        }
        let base = self.end();
        let mut next = base;
        let seg = self.segs.last_mut().unwrap();
        for (bytes, records, max_ts) in produced {
            seg.batches.push(MBatch {
                base: next,
                records,
                produced: bytes,
                max_ts,
            });
            next += records;
        }
        base
    }
    fn delete_before(&mut self, offset: i64) {
        if offset <= self.start {
            return;
        }
        self.start = offset;
        while self.segs.len() >= 2 && self.segs[0].next() <= self.start {
            self.segs.remove(0);
        }
        if self.active().next() <= self.start && !self.active().batches.is_empty() {
            self.segs = vec![MSeg::new(self.start)];
        }
    }
    fn retention(&mut self, bytes: Option<u64>, age_ms: Option<i64>, now_ms: i64) -> usize {
        let mut deleted = 0;
        loop {
            if self.segs.len() < 2 {
                let a = self.active();
                if age_ms.is_some_and(|age| !a.batches.is_empty() && a.max_ts() < now_ms - age) {
                    self.roll();
                    continue;
                }
                break;
            }
            let oldest = &self.segs[0];
            let by_age = age_ms.is_some_and(|age| oldest.max_ts() < now_ms - age);
            let by_size = bytes.is_some_and(|max| self.size() - oldest.size() >= max);
            if !(by_age || by_size) {
                break;
            }
            let next = oldest.next();
            self.segs.remove(0);
            self.start = self.start.max(next);
            deleted += 1;
        }
        deleted
    }
    fn batches(&self) -> impl Iterator<Item = (usize, &MBatch)> {
        self.segs
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.batches.iter().map(move |b| (i, b)))
    }
    /// The stored bytes a read at `offset` must return.
    fn expected_read(&self, offset: i64, max_bytes: usize) -> Vec<u8> {
        let Some(seg) = self
            .segs
            .iter()
            .find(|s| s.base <= offset && offset < s.next())
        else {
            return Vec::new();
        };
        let i = seg.batches.iter().position(|b| b.last() >= offset).unwrap();
        let limit = max_bytes.max(seg.batches[i].produced.len());
        let mut out = Vec::new();
        for b in &seg.batches[i..] {
            if out.len() + b.produced.len() > limit {
                break;
            }
            out.extend_from_slice(&b.stored());
        }
        out
    }
    fn expected_timestamp_hit(&self, ts: i64) -> Option<&MBatch> {
        self.batches()
            .map(|(_, b)| b)
            .find(|b| b.last() >= self.start && b.max_ts >= ts)
    }
    /// ListOffsets MAX_TIMESTAMP as Kafka answers it: the first segment with the
    /// largest max timestamp, and in it the first batch to reach that timestamp.
    fn expected_max_timestamp(&self) -> Option<&MBatch> {
        let mut best: Option<&MSeg> = None;
        for s in self.segs.iter().filter(|s| !s.batches.is_empty()) {
            if best.is_none_or(|b| s.max_ts() > b.max_ts()) {
                best = Some(s);
            }
        }
        let s = best?;
        s.batches.iter().find(|b| b.max_ts == s.max_ts())
    }
}

fn rec_spec() -> impl Strategy<Value = RecSpec> {
    (
        prop::option::weighted(0.3, 0u8..16),
        prop::option::weighted(0.95, prop_oneof![3 => 0u16..40, 1 => 0u16..300]),
        0i64..10_000,
        any::<u8>(),
    )
        .prop_map(|(key_len, value_len, ts, seed)| RecSpec {
            key_len,
            value_len,
            ts,
            seed,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let batch = prop::collection::vec(rec_spec(), 1..12);
    prop_oneof![
        12 => prop::collection::vec(batch, 1..4).prop_map(Op::Append),
        1 => Just(Op::Roll),
        2 => (0u16..1100).prop_map(|at| Op::DeleteBefore { at }),
        2 => (
            prop::option::weighted(0.6, 0u64..30_000),
            prop::option::weighted(0.5, 0i64..10_000),
            0i64..12_000,
        )
            .prop_map(|(bytes, age_ms, now_ms)| Op::Retention { bytes, age_ms, now_ms }),
        1 => Just(Op::CloseReopen),
        1 => Just(Op::DropReopen),
    ]
}

fn probe() -> impl Strategy<Value = Probe> {
    (
        0u16..=1000,
        prop_oneof![Just(0usize), 0usize..6_000],
        -10i64..10_100,
    )
        .prop_map(|(at, max_bytes, ts)| Probe { at, max_bytes, ts })
}

fn between(start: i64, end: i64, at: u16) -> i64 {
    start + (end - start) * at as i64 / 1000
}

fn build(spec: &[RecSpec]) -> (Vec<u8>, i64, i64) {
    let recs: Vec<Rec> = spec
        .iter()
        .map(|r| Rec {
            key: r.key_len.map(|n| pattern(n as usize, r.seed ^ 0x55)),
            value: r.value_len.map(|n| pattern(n as usize, r.seed)),
            ts: r.ts,
        })
        .collect();
    let max_ts = spec.iter().map(|r| r.ts).max().unwrap();
    (make_batch(&recs, -1, -1, -1), recs.len() as i64, max_ts)
}

fn check(log: &PartitionLog, model: &Model, probe: &Probe) {
    assert_eq!(log.log_start_offset(), model.start, "log start offset");
    assert_eq!(log.log_end_offset(), model.end(), "log end offset");
    assert_eq!(log.segment_count(), model.segs.len(), "segment count");
    assert_eq!(log.size_bytes(), model.size(), "log size");

    // Every batch from the start, in reads of the probe's size.
    let mut next = model.start;
    while next < model.end() {
        let got = log.read(next, probe.max_bytes).unwrap();
        assert_eq!(
            got,
            model.expected_read(next, probe.max_bytes),
            "read({next}, {})",
            probe.max_bytes
        );
        let batches = batch::split(&got).unwrap();
        let first = batch::validate(batches[0]).unwrap();
        assert!(first.base_offset <= next && next <= first.last_offset());
        let mut expect = first.base_offset;
        for b in batches {
            let h = batch::validate(b).unwrap();
            assert_eq!(h.base_offset, expect);
            expect = h.next_offset();
        }
        next = expect;
    }

    // A read at a random offset inside the log, at its end, and outside it.
    let at = between(model.start, model.end(), probe.at);
    assert_eq!(
        log.read(at, probe.max_bytes).unwrap(),
        model.expected_read(at, probe.max_bytes)
    );
    assert!(log.read(model.end(), probe.max_bytes).unwrap().is_empty());
    assert!(matches!(
        log.read(model.end() + 1, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    if model.start > 0 {
        assert!(matches!(
            log.read(model.start - 1, 100),
            Err(LogError::OffsetOutOfRange { .. })
        ));
    }

    // Search by timestamp.
    let hit = log.find_timestamp(probe.ts).unwrap();
    match model.expected_timestamp_hit(probe.ts) {
        None => assert!(
            hit.is_none(),
            "find_timestamp({}) found {:?}",
            probe.ts,
            hit.map(|h| h.header)
        ),
        Some(b) => {
            let hit = hit.unwrap_or_else(|| panic!("find_timestamp({}) found nothing", probe.ts));
            assert_eq!(
                hit.header.base_offset, b.base,
                "find_timestamp({})",
                probe.ts
            );
            assert_eq!(hit.batch, b.stored());
            batch::validate(&hit.batch).unwrap();
        }
    }
    let max = log.find_max_timestamp().unwrap();
    match model.expected_max_timestamp() {
        None => assert!(max.is_none()),
        Some(b) => {
            let max = max.expect("find_max_timestamp found nothing");
            assert_eq!(max.header.base_offset, b.base, "find_max_timestamp");
            assert_eq!(max.batch, b.stored());
        }
    }
}

fn reopen(dir: &Path, config: &LogConfig, clean: bool) -> PartitionLog {
    let (log, report) = PartitionLog::open(dir, config.clone()).unwrap();
    assert_eq!(report.clean_shutdown, clean);
    assert_eq!(
        report.truncated_bytes, 0,
        "nothing was torn, nothing may be truncated"
    );
    log
}

fn run(segment_bytes_max: u64, index_interval_bytes: u64, ops: Vec<(Op, Probe)>) {
    let tmp = common::tempdir();
    let dir = tmp.path().join("topic-0");
    let config = small_config(segment_bytes_max, index_interval_bytes);
    let (mut log, _) = PartitionLog::open(&dir, config.clone()).unwrap();
    let mut model = Model {
        segs: vec![MSeg::new(0)],
        start: 0,
        segment_bytes_max,
    };
    let mut now = 1_000_000i64;

    for (op, probe) in ops {
        match op {
            Op::Append(specs) => {
                let built: Vec<_> = specs.iter().map(|s| build(s)).collect();
                let mut request = Vec::new();
                for (b, _, _) in &built {
                    request.extend_from_slice(b);
                }
                let records: i64 = built.iter().map(|(_, n, _)| n).sum();
                now += 1;
                let info = log.append(&request, now).unwrap();
                let base = model.append(built);
                assert_eq!(info.base_offset, base);
                assert_eq!(info.last_offset, base + records - 1);
                assert_eq!(info.records, records as u64);
                assert!(!info.duplicate);
                assert_eq!(info.log_append_time_ms, -1);
            }
            Op::Roll => {
                log.roll().unwrap();
                model.roll();
            }
            Op::DeleteBefore { at } => {
                let target = if at > 1000 {
                    model.end() + 1 + (at - 1000) as i64
                } else {
                    between(model.start, model.end(), at)
                };
                let r = log.delete_records_before(target);
                if target > model.end() {
                    assert!(matches!(r, Err(LogError::OffsetOutOfRange { .. })), "{r:?}");
                } else {
                    model.delete_before(target);
                    assert_eq!(r.unwrap(), model.start);
                }
            }
            Op::Retention {
                bytes,
                age_ms,
                now_ms,
            } => {
                log.set_config(LogConfig {
                    retention_bytes_max: bytes,
                    retention_age_max: age_ms.map(|a| Duration::from_millis(a as u64)),
                    ..config.clone()
                });
                let deleted = log.apply_retention(now_ms).unwrap();
                log.set_config(config.clone());
                assert_eq!(
                    deleted,
                    model.retention(bytes, age_ms, now_ms),
                    "segments deleted"
                );
            }
            Op::CloseReopen => {
                log.close().unwrap();
                log = reopen(&dir, &config, true);
            }
            Op::DropReopen => {
                drop(log);
                log = reopen(&dir, &config, false);
            }
        }
        check(&log, &model, &probe);
    }
    // Whatever happened, a final unclean restart serves the same log.
    drop(log);
    let log = reopen(&dir, &config, false);
    let probe = Probe {
        at: 500,
        max_bytes: 1 << 20,
        ts: 0,
    };
    check(&log, &model, &probe);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(
        segment_bytes_max in 1_024u64..8_192,
        index_interval_bytes in 32u64..2_048,
        ops in prop::collection::vec((op(), probe()), 1..150),
    ) {
        run(segment_bytes_max, index_interval_bytes, ops);
    }

    /// Tiny segments (many single-batch ones) and an index entry for every
    /// batch or nearly.
    #[test]
    fn log_matches_model_tiny_segments_dense_index(
        segment_bytes_max in 256u64..2_048,
        index_interval_bytes in prop_oneof![Just(0u64), Just(1u64), 2u64..128],
        ops in prop::collection::vec((op(), probe()), 1..150),
    ) {
        run(segment_bytes_max, index_interval_bytes, ops);
    }
}
