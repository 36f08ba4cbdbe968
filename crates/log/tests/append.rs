//! Append-side rules: idempotent producer state (also across restarts),
//! multi-batch requests, and `LogAppendTime`.

mod common;

use std::path::Path;

use common::{Rec, make_batch, pattern, read_all, simple_batch, small_config};
use herald_log::batch::{self, ATTRIBUTE_LOG_APPEND_TIME, BATCH_HEADER_BYTES, BatchHeader};
use herald_log::{AppendInfo, LogConfig, LogError, PartitionLog};

const PID: i64 = 4242;
const EPOCH: i16 = 3;

fn producer_batch(pid: i64, epoch: i16, seq: i32, records: usize, seed: u8) -> Vec<u8> {
    let recs: Vec<Rec> = (0..records)
        .map(|i| Rec {
            key: Some(vec![seed]),
            value: Some(pattern(20 + i, seed)),
            ts: 1_000 + i as i64,
        })
        .collect();
    make_batch(&recs, pid, epoch, seq)
}

#[derive(Debug, Clone, Copy)]
enum Restart {
    None,
    Clean,
    Unclean,
}

fn restart(log: PartitionLog, dir: &Path, config: &LogConfig, how: Restart) -> PartitionLog {
    match how {
        Restart::None => return log,
        Restart::Clean => log.close().unwrap(),
        Restart::Unclean => drop(log),
    }
    let (log, report) = PartitionLog::open(dir, config.clone()).unwrap();
    assert_eq!(report.clean_shutdown, matches!(how, Restart::Clean));
    assert_eq!(report.truncated_bytes, 0);
    log
}

fn assert_duplicate(info: AppendInfo, original: AppendInfo) {
    assert!(
        info.duplicate,
        "{info:?} should be a duplicate of {original:?}"
    );
    assert_eq!(info.base_offset, original.base_offset);
    assert_eq!(info.last_offset, original.last_offset);
    assert_eq!(info.records, 0);
}

#[test]
fn producer_state_survives_restarts() {
    for how in [Restart::None, Restart::Clean, Restart::Unclean] {
        let tmp = common::tempdir();
        let dir = tmp.path().join("p");
        // Small segments: the producer's recent batches span several of them.
        let config = small_config(700, 100);
        let (mut log, _) = PartitionLog::open(&dir, config.clone()).unwrap();

        let mut sent = Vec::new(); // (bytes, info) of PID's batches
        let mut seq = 0;
        for i in 0..12u8 {
            let n = 1 + (i as usize % 4);
            let b = producer_batch(PID, EPOCH, seq, n, i);
            let info = log.append(&b, 0).unwrap();
            assert!(!info.duplicate);
            sent.push((b, info));
            seq += n as i32;
            // Other writers in between: another idempotent producer and a plain one.
            log.append(&producer_batch(77, 0, i as i32, 1, 100 + i), 0)
                .unwrap();
            log.append(&simple_batch(2, 30, 5, i), 0).unwrap();
        }
        assert!(log.segment_count() > 3);
        let end = log.log_end_offset();

        let mut log = restart(log, &dir, &config, how);
        assert_eq!(log.log_end_offset(), end);
        let entry = log.producers().get(PID).expect("producer state rebuilt");
        assert_eq!(entry.epoch, EPOCH);
        assert_eq!(entry.batches.len(), 5);

        // Retries of the last five batches are answered with their offsets.
        for (b, original) in &sent[sent.len() - 5..] {
            assert_duplicate(log.append(b, 0).unwrap(), *original);
        }
        // The sixth from last is no longer cached: it is out of sequence.
        let (old, _) = &sent[sent.len() - 6];
        assert!(matches!(
            log.append(old, 0),
            Err(LogError::OutOfOrderSequence { expected, .. }) if expected == seq
        ));
        // A gap in the sequence, and a replay of part of a batch, are refused.
        assert!(matches!(
            log.append(&producer_batch(PID, EPOCH, seq + 1, 1, 200), 0),
            Err(LogError::OutOfOrderSequence { expected, got }) if expected == seq && got == seq + 1
        ));
        assert!(matches!(
            log.append(&producer_batch(PID, EPOCH, seq - 1, 1, 201), 0),
            Err(LogError::OutOfOrderSequence { .. })
        ));
        // A fenced (older) epoch is refused.
        assert!(matches!(
            log.append(&producer_batch(PID, EPOCH - 1, seq, 1, 202), 0),
            Err(LogError::InvalidProducerEpoch { got, current }) if got == EPOCH - 1 && current == EPOCH
        ));
        assert_eq!(
            log.log_end_offset(),
            end,
            "nothing written by refused or duplicate batches"
        );

        // The next sequence is appended, and is itself recognised after a restart.
        let next = producer_batch(PID, EPOCH, seq, 2, 203);
        let info = log.append(&next, 0).unwrap();
        assert!(!info.duplicate);
        assert_eq!(info.base_offset, end);
        let mut log = restart(log, &dir, &config, how);
        assert_duplicate(log.append(&next, 0).unwrap(), info);

        // A new epoch starts again at sequence 0 and fences the old one.
        assert!(matches!(
            log.append(&producer_batch(PID, EPOCH + 1, 5, 1, 204), 0),
            Err(LogError::OutOfOrderSequence {
                expected: 0,
                got: 5
            })
        ));
        let bumped = producer_batch(PID, EPOCH + 1, 0, 1, 205);
        let bumped_info = log.append(&bumped, 0).unwrap();
        let mut log = restart(log, &dir, &config, how);
        assert_duplicate(log.append(&bumped, 0).unwrap(), bumped_info);
        assert!(matches!(
            log.append(&next, 0),
            Err(LogError::InvalidProducerEpoch { .. })
        ));

        // Whatever was refused, the log holds only valid, dense batches.
        let all = read_all(&log, 1 << 20);
        assert_eq!(all.len(), 12 * 3 + 2);
    }
}

#[test]
fn sequence_numbers_wrap_at_i32_max() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("p");
    let config = small_config(1 << 20, 4096);
    let (mut log, _) = PartitionLog::open(&dir, config.clone()).unwrap();
    log.append(&producer_batch(PID, 0, i32::MAX - 5, 4, 1), 0)
        .unwrap();
    // i32::MAX - 1, i32::MAX, 0
    let wrapping = producer_batch(PID, 0, i32::MAX - 1, 3, 2);
    let info = log.append(&wrapping, 0).unwrap();
    for how in [Restart::Clean, Restart::Unclean] {
        log = restart(log, &dir, &config, how);
        assert_duplicate(log.append(&wrapping, 0).unwrap(), info);
        assert!(matches!(
            log.append(&producer_batch(PID, 0, 0, 1, 3), 0),
            Err(LogError::OutOfOrderSequence {
                expected: 1,
                got: 0
            })
        ));
    }
    assert!(
        !log.append(&producer_batch(PID, 0, 1, 1, 4), 0)
            .unwrap()
            .duplicate
    );
}

fn concat(batches: &[Vec<u8>]) -> Vec<u8> {
    batches.concat()
}

/// A produce request may carry several batches; each producer's sequences
/// must continue from its state and from the batches before it in the request.
#[test]
fn multi_batch_requests_check_every_sequence() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("p");
    let config = small_config(1 << 20, 4096);
    let (mut log, _) = PartitionLog::open(&dir, config).unwrap();
    let first = producer_batch(PID, 0, 0, 2, 1);
    let first_info = log.append(&first, 0).unwrap();

    // Two batches continuing the sequence: 2..3 then 4..4.
    let ok = concat(&[
        producer_batch(PID, 0, 2, 2, 2),
        producer_batch(PID, 0, 4, 1, 3),
    ]);
    let info = log.append(&ok, 0).unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset, info.records),
        (2, 4, 3)
    );
    let end = log.log_end_offset();

    let refused: Vec<(&str, Vec<u8>)> = vec![
        (
            "first batch out of sequence",
            concat(&[
                producer_batch(PID, 0, 9, 1, 4),
                producer_batch(PID, 0, 10, 1, 5),
            ]),
        ),
        (
            "second batch out of sequence",
            concat(&[
                producer_batch(PID, 0, 5, 1, 4),
                producer_batch(PID, 0, 9, 1, 5),
            ]),
        ),
        (
            "first batch a duplicate",
            concat(&[first.clone(), producer_batch(PID, 0, 5, 1, 5)]),
        ),
        (
            "first batch from a fenced epoch",
            concat(&[producer_batch(PID, -1, 5, 1, 4), simple_batch(1, 1, 1, 1)]),
        ),
        (
            "the same batch twice",
            concat(&[
                producer_batch(PID, 0, 5, 1, 4),
                producer_batch(PID, 0, 5, 1, 4),
            ]),
        ),
    ];
    for (what, request) in refused {
        assert!(log.append(&request, 0).is_err(), "{what}: must be refused");
        assert_eq!(log.log_end_offset(), end, "{what}: nothing may be written");
    }
    // Two producers interleaved in one request, one of them new.
    let mixed = concat(&[
        producer_batch(PID, 0, 5, 1, 6),
        producer_batch(9, 0, 0, 2, 7),
        producer_batch(PID, 0, 6, 1, 8),
        producer_batch(9, 0, 2, 1, 9),
    ]);
    assert_eq!(log.append(&mixed, 0).unwrap().records, 5);
    assert_duplicate(log.append(&first, 0).unwrap(), first_info);
    assert_eq!(read_all(&log, 1 << 20).len(), 7);
}

#[test]
fn log_append_time_rewrites_timestamps() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("p");
    let config = LogConfig {
        log_append_time: true,
        ..small_config(2_000, 64)
    };
    let (mut log, _) = PartitionLog::open(&dir, config.clone()).unwrap();

    // (produced batches, append time)
    let mut sent: Vec<(Vec<Vec<u8>>, i64)> = Vec::new();
    for i in 0..30u8 {
        let now = 1_700_000_000_000 + i as i64 * 1_000;
        let n = 1 + i as usize % 3;
        let batches: Vec<Vec<u8>> = (0..n)
            .map(|j| {
                let recs: Vec<Rec> = (0..1 + j)
                    .map(|k| Rec {
                        key: None,
                        value: Some(pattern(40, i ^ k as u8)),
                        ts: 5 + k as i64 * 7,
                    })
                    .collect();
                make_batch(&recs, -1, -1, -1)
            })
            .collect();
        let info = log.append(&batches.concat(), now).unwrap();
        assert_eq!(info.log_append_time_ms, now);
        sent.push((batches, now));
    }
    let idem = producer_batch(PID, 0, 0, 2, 1);
    let idem_info = log.append(&idem, 1_800_000_000_000).unwrap();
    assert!(log.segment_count() > 2);

    for how in [Restart::None, Restart::Clean, Restart::Unclean] {
        log = restart(log, &dir, &config, how);
        let stored = read_all(&log, 1 << 20);
        let produced: Vec<(&Vec<u8>, i64)> = sent
            .iter()
            .flat_map(|(bs, now)| bs.iter().map(move |b| (b, *now)))
            .chain([(&idem, 1_800_000_000_000)])
            .collect();
        assert_eq!(stored.len(), produced.len());
        for (got, (orig, now)) in stored.iter().zip(&produced) {
            let h = batch::validate(got).expect("CRC recomputed after the rewrite");
            let o = BatchHeader::parse(orig).unwrap();
            assert_ne!(h.attributes & ATTRIBUTE_LOG_APPEND_TIME, 0);
            assert_eq!(h.max_timestamp, *now);
            assert_eq!(h.records_count, o.records_count);
            assert_eq!(h.producer_id, o.producer_id);
            assert_eq!(
                &got[BATCH_HEADER_BYTES..],
                &orig[BATCH_HEADER_BYTES..],
                "records untouched"
            );
        }
        // Searches and retention see the append time, not the producer's.
        for (i, (_, now)) in sent.iter().enumerate() {
            let hit = log.find_timestamp(*now).unwrap().unwrap();
            let want: i64 = sent[..i]
                .iter()
                .flat_map(|(bs, _)| bs)
                .map(|b| BatchHeader::parse(b).unwrap().records_count as i64)
                .sum();
            assert_eq!(hit.header.base_offset, want);
            assert_eq!(hit.header.max_timestamp, *now);
        }
        assert!(
            log.find_timestamp(100)
                .unwrap()
                .is_some_and(|h| h.header.base_offset == 0)
        );
        assert_eq!(
            log.find_max_timestamp()
                .unwrap()
                .unwrap()
                .header
                .base_offset,
            idem_info.base_offset
        );
        // A retry under LogAppendTime is still recognised.
        assert_duplicate(log.append(&idem, 1_900_000_000_000).unwrap(), idem_info);
    }
    let mut with_age = config.clone();
    with_age.retention_age_max = Some(std::time::Duration::from_secs(3600));
    log.set_config(with_age);
    // An hour after the last append, everything has expired.
    assert!(log.apply_retention(1_800_000_000_000 + 3_600_001).unwrap() > 0);
    assert_eq!(log.log_start_offset(), log.log_end_offset());
}

/// A batch lost in a crash is not remembered as written: its retry is
/// appended again, at the offset it had, while earlier ones stay duplicates.
#[test]
fn retry_of_a_batch_torn_by_a_crash_is_appended_again() {
    let tmp = common::tempdir();
    let dir = tmp.path().join("p");
    let config = small_config(1 << 20, 64);
    let (mut log, _) = PartitionLog::open(&dir, config.clone()).unwrap();
    let mut sent = Vec::new();
    for i in 0..4 {
        let b = producer_batch(PID, 0, i * 2, 2, i as u8);
        let info = log.append(&b, 0).unwrap();
        sent.push((b, info));
    }
    drop(log);
    let path = common::segment_files(&dir, "log").pop().unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 3)
        .unwrap();

    let (mut log, report) = PartitionLog::open(&dir, config).unwrap();
    assert_eq!(report.truncated_bytes as usize, sent[3].0.len() - 3);
    let (lost, lost_info) = &sent[3];
    assert_eq!(log.log_end_offset(), lost_info.base_offset);
    let again = log.append(lost, 0).unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.base_offset, lost_info.base_offset);
    assert_duplicate(log.append(&sent[2].0, 0).unwrap(), sent[2].1);
    assert_duplicate(log.append(lost, 0).unwrap(), again);
}
