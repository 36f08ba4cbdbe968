//! Transactions on one partition log: the marker's bytes (checked with
//! kafka-protocol's decoder), producer state (open transactions, epochs,
//! coordinator epochs, eviction), the last stable offset, the aborted
//! transaction index on disk and the aborted transactions a read_committed
//! read reports, crash recovery of both, disk faults on a marker, and
//! compaction of aborted transactions and of markers.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Rec, make_batch, small_config, tempdir};
use herald_log::batch::{self, BatchHeader, EndTxnMarker, build};
use herald_log::fault::{self, ENOSPC, Fault, FileOp, Rule};
use herald_log::txn_index::{AbortedTxnEntry, TXN_INDEX_ENTRY_BYTES, txn_index_file_name};
use herald_log::{AbortedTxn, LogConfig, LogError, PartitionLog};
use kafka_protocol::records::RecordBatchDecoder;

/// Relaxed flushing: the high watermark is the log end (fsync on ack is
/// tested on its own below).
fn relaxed(segment_bytes: u64) -> LogConfig {
    LogConfig {
        flush_messages: u64::MAX,
        ..small_config(segment_bytes, 128)
    }
}

/// One transactional batch of `n` records with key `k<seq>` each.
fn txn_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let recs: Vec<Rec> = (0..n)
        .map(|i| Rec {
            key: Some(format!("k{pid}-{}", seq + i as i32).into_bytes()),
            value: Some(format!("v{pid}-{}", seq + i as i32).into_bytes()),
            ts: 1_000,
        })
        .collect();
    let mut b = make_batch(&recs, pid, epoch, seq);
    build::set_transactional(&mut b);
    b
}

fn plain_batch(n: usize) -> Vec<u8> {
    let recs: Vec<Rec> = (0..n)
        .map(|i| Rec {
            key: Some(format!("plain-{i}").into_bytes()),
            value: Some(b"x".to_vec()),
            ts: 1_000,
        })
        .collect();
    make_batch(&recs, -1, -1, -1)
}

fn marker(pid: i64, epoch: i16, commit: bool, coordinator_epoch: i32) -> EndTxnMarker {
    EndTxnMarker {
        producer_id: pid,
        producer_epoch: epoch,
        commit,
        coordinator_epoch,
    }
}

/// The aborted transaction index files of `dir`, decoded: (segment base, entries).
fn txn_indexes(dir: &Path) -> Vec<(String, Vec<AbortedTxnEntry>)> {
    let mut out = Vec::new();
    for p in common::segment_files(dir, "txnindex") {
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len() % TXN_INDEX_ENTRY_BYTES, 0, "{}", p.display());
        let entries = bytes
            .chunks_exact(TXN_INDEX_ENTRY_BYTES)
            .map(|c| AbortedTxnEntry::decode(c).expect("a sound entry"))
            .collect();
        out.push((
            p.file_name().unwrap().to_string_lossy().into_owned(),
            entries,
        ));
    }
    out.retain(|(_, e): &(String, Vec<AbortedTxnEntry>)| !e.is_empty());
    out
}

fn entry(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxnEntry {
    AbortedTxnEntry {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

/// A read_committed read as the broker runs it: (batches' base offsets, aborted).
fn read_committed(
    log: &PartitionLog,
    offset: i64,
    max_bytes: usize,
) -> (Vec<i64>, Vec<AbortedTxn>) {
    let c = log.fetch_plan_committed(offset, max_bytes).unwrap();
    let data = match &c.plan {
        Some(p) => p.execute().unwrap(),
        None => Vec::new(),
    };
    let (records, aborted) = c.aborted.collect(offset, &data).unwrap();
    let bases = batch::split(records)
        .unwrap()
        .iter()
        .map(|b| batch::validate(b).unwrap().base_offset)
        .collect();
    (bases, aborted)
}

fn aborted(pairs: &[(i64, i64)]) -> Vec<AbortedTxn> {
    pairs
        .iter()
        .map(|&(producer_id, first_offset)| AbortedTxn {
            producer_id,
            first_offset,
        })
        .collect()
}

#[test]
fn marker_batch_bytes_are_kafkas() {
    let m = marker(0x0102_0304_0506, 7, true, 42);
    let mut b = build::marker(&m, 1_700_000_000_123);
    batch::assign_offset(&mut b, 99, 0);
    let h = batch::validate(&b).expect("CRC32C and framing");
    assert_eq!(b.len(), 78);
    assert_eq!(h.batch_length, 66);
    assert_eq!(
        h.attributes, 0x30,
        "transactional | control, uncompressed, CreateTime"
    );
    assert_eq!(
        (h.last_offset_delta, h.records_count, h.base_sequence),
        (0, 1, -1)
    );
    assert_eq!((h.producer_id, h.producer_epoch), (0x0102_0304_0506, 7));
    assert_eq!(
        (h.base_timestamp, h.max_timestamp),
        (1_700_000_000_123, 1_700_000_000_123)
    );
    // The record, byte by byte: length 16, attributes, timestamp delta 0,
    // offset delta 0, key (4 bytes: version 0, type 1 = COMMIT), value (6
    // bytes: version 0, coordinator epoch 42), no headers. Varints zigzag.
    assert_eq!(
        &b[61..],
        &[
            0x20, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 1, 0x0c, 0, 0, 0, 0, 0, 42, 0x00
        ]
    );
    assert_eq!(batch::parse_marker(&b, &h), Some(m));

    // An independent decoder reads it as Kafka's control batch.
    let mut buf = bytes::Bytes::copy_from_slice(&b);
    let set = RecordBatchDecoder::decode(&mut buf).expect("kafka-protocol decodes the marker");
    assert_eq!(set.records.len(), 1);
    let r = &set.records[0];
    assert!(r.control && r.transactional && !r.delete_horizon);
    assert_eq!(
        (r.producer_id, r.producer_epoch, r.offset),
        (0x0102_0304_0506, 7, 99)
    );
    assert_eq!(r.timestamp, 1_700_000_000_123);
    assert_eq!(r.key.as_deref(), Some(&[0u8, 0, 0, 1][..]));
    assert_eq!(r.value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 42][..]));

    // ABORT: type 0. With a delete horizon (KIP-534): bit 6, base timestamp
    // = horizon, the record's own timestamp unchanged.
    let a = marker(5, 0, false, 3);
    let b = build::marker_batch(&a, 1_000, Some(90_000));
    let h = batch::validate(&b).unwrap();
    assert_eq!(h.attributes, 0x70);
    assert_eq!(h.delete_horizon_ms(), Some(90_000));
    assert_eq!(h.max_timestamp, 1_000);
    assert_eq!(batch::parse_marker(&b, &h), Some(a));
    let mut buf = bytes::Bytes::copy_from_slice(&b);
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    assert!(set.records[0].delete_horizon && set.records[0].control);
    assert_eq!(set.records[0].timestamp, 1_000);
    assert_eq!(set.records[0].key.as_deref(), Some(&[0u8, 0, 0, 0][..]));

    // Producers may not write control batches, nor transactional ones
    // without a producer id.
    let log_dir = tempdir();
    let (mut log, _) = PartitionLog::open(log_dir.path(), relaxed(1 << 20)).unwrap();
    assert!(matches!(
        log.append(&build::marker(&a, 1), 0),
        Err(LogError::InvalidRecord(_))
    ));
    let mut anonymous = plain_batch(1);
    build::set_transactional(&mut anonymous);
    assert!(matches!(
        log.append(&anonymous, 0),
        Err(LogError::InvalidRecord(_))
    ));
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn last_stable_offset_with_two_interleaved_transactions() {
    let dir = tempdir();
    let (mut log, _) = PartitionLog::open(dir.path(), relaxed(1 << 20)).unwrap();
    assert_eq!(log.last_stable_offset(), 0);
    log.append(&plain_batch(2), 0).unwrap(); // 0, 1
    assert_eq!(log.last_stable_offset(), 2);
    log.append(&txn_batch(1, 0, 0, 2), 0).unwrap(); // 2, 3: txn 1 begins
    log.append(&plain_batch(1), 0).unwrap(); // 4
    log.append(&txn_batch(2, 0, 0, 1), 0).unwrap(); // 5: txn 2 begins
    log.append(&txn_batch(1, 0, 2, 1), 0).unwrap(); // 6
    assert_eq!(log.high_watermark(), 7);
    assert_eq!(log.last_stable_offset(), 2);
    assert_eq!(log.producers().open_txn_of(1), Some(2));
    assert_eq!(log.producers().open_txn_of(2), Some(5));

    // Reads stop at the LSO; read_uncommitted ones do not.
    assert_eq!(read_committed(&log, 0, 1 << 20), (vec![0], vec![]));
    assert_eq!(read_committed(&log, 2, 1 << 20), (vec![], vec![]));
    let all = log
        .fetch_plan(0, 1 << 20)
        .unwrap()
        .unwrap()
        .execute()
        .unwrap();
    assert_eq!(batch::split(&all).unwrap().len(), 5);

    // Txn 1 commits: the LSO moves to txn 2's first offset.
    let info = log.write_marker(&marker(1, 0, true, 0), 5).unwrap(); // 7
    assert_eq!((info.base_offset, info.last_offset), (7, 7));
    assert_eq!(log.last_stable_offset(), 5);
    assert_eq!(read_committed(&log, 0, 1 << 20), (vec![0, 2, 4], vec![]));
    // Txn 2 aborts: nothing is open, the LSO is the high watermark.
    log.write_marker(&marker(2, 0, false, 0), 6).unwrap(); // 8
    assert_eq!(log.last_stable_offset(), 9);
    assert_eq!(log.producers().open_txn_count(), 0);
    assert_eq!(
        read_committed(&log, 0, 1 << 20),
        (vec![0, 2, 4, 5, 6, 7, 8], aborted(&[(2, 5)]))
    );
    // The aborted transaction's entry: last stable offset 9 (none open).
    assert_eq!(
        txn_indexes(dir.path()),
        [(txn_index_file_name(0), vec![entry(2, 5, 8, 9)])]
    );
    // ProducerInfo's source: epochs, coordinator epochs, sequences.
    let p1 = log.producers().get(1).unwrap();
    assert_eq!(
        (
            p1.epoch,
            p1.coordinator_epoch,
            p1.last_sequence(),
            p1.txn_first_offset
        ),
        (0, 0, 2, None)
    );
    assert_eq!(p1.last_timestamp_ms, 5, "the marker's timestamp");
}

/// (fetch offset, max bytes, aborted (producer, first offset) expected).
type OverlapCase = (i64, usize, &'static [(i64, i64)]);

#[test]
fn abort_index_entries_and_the_aborted_transactions_a_read_reports() {
    let dir = tempdir();
    let (mut log, _) = PartitionLog::open(dir.path(), relaxed(1 << 20)).unwrap();
    log.append(&txn_batch(1, 0, 0, 1), 0).unwrap(); // 0: txn 1
    log.append(&txn_batch(2, 0, 0, 1), 0).unwrap(); // 1: txn 2
    log.write_marker(&marker(1, 0, false, 0), 0).unwrap(); // 2: abort 1 (2 open: lso 1)
    log.append(&plain_batch(1), 0).unwrap(); // 3
    log.append(&txn_batch(2, 0, 1, 1), 0).unwrap(); // 4
    log.write_marker(&marker(2, 0, true, 0), 0).unwrap(); // 5: commit 2
    log.append(&txn_batch(3, 0, 0, 2), 0).unwrap(); // 6, 7: txn 3
    log.append(&txn_batch(1, 0, 1, 1), 0).unwrap(); // 8: txn 1 again
    log.write_marker(&marker(3, 0, false, 0), 0).unwrap(); // 9: abort 3 (1 open: lso 8)
    log.write_marker(&marker(1, 0, false, 0), 0).unwrap(); // 10: abort 1 (lso 11)
    // A marker for a producer without an open transaction: written, no entry.
    log.write_marker(&marker(4, 0, false, 0), 0).unwrap(); // 11
    log.append(&plain_batch(1), 0).unwrap(); // 12
    assert_eq!(
        txn_indexes(dir.path()),
        [(
            txn_index_file_name(0),
            vec![entry(1, 0, 2, 1), entry(3, 6, 9, 8), entry(1, 8, 10, 11)]
        )]
    );
    // Overlap selection: marker at or after the fetch offset, first offset
    // below the end of what was read.
    let cases: [OverlapCase; 6] = [
        (0, 1 << 20, &[(1, 0), (3, 6), (1, 8)]),
        (2, 1 << 20, &[(1, 0), (3, 6), (1, 8)]),
        (3, 1 << 20, &[(3, 6), (1, 8)]),
        (9, 1 << 20, &[(3, 6), (1, 8)]),
        (10, 1 << 20, &[(1, 8)]),
        (11, 1 << 20, &[]),
    ];
    for (offset, max, expect) in cases {
        assert_eq!(
            read_committed(&log, offset, max).1,
            aborted(expect),
            "from {offset}"
        );
    }
    // A read of one batch reports only what overlaps it.
    let (bases, list) = read_committed(&log, 0, 1);
    assert_eq!(bases, [0]);
    assert_eq!(list, aborted(&[(1, 0)]));
    let (bases, list) = read_committed(&log, 3, 1);
    assert_eq!(bases, [3]);
    assert_eq!(list, aborted(&[]), "txn 3 starts after offset 3");
    let (bases, list) = read_committed(&log, 6, 1);
    assert_eq!(bases, [6]);
    assert_eq!(list, aborted(&[(3, 6)]));
}

#[test]
fn the_index_follows_its_segment_across_rolls_and_retention() {
    let dir = tempdir();
    let mut config = relaxed(400);
    let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    let mut seq = 0;
    let mut expected = Vec::new();
    for round in 0..6 {
        let first = log.append(&txn_batch(7, 0, seq, 2), 0).unwrap().base_offset;
        seq += 2;
        log.append(&plain_batch(2), 0).unwrap();
        let m = log
            .write_marker(&marker(7, 0, round % 2 == 1, 0), 0)
            .unwrap();
        if round % 2 == 0 {
            expected.push(entry(7, first, m.base_offset, m.base_offset + 1));
        }
    }
    assert!(log.segment_count() > 2);
    let on_disk: Vec<AbortedTxnEntry> = txn_indexes(dir.path())
        .into_iter()
        .flat_map(|(_, e)| e)
        .collect();
    assert_eq!(on_disk, expected);
    let (_, list) = read_committed(&log, 0, 1 << 20);
    assert!(!list.is_empty());
    // Retention deletes segments with their index files.
    config.retention_bytes_max = Some(500);
    log.set_config(config);
    assert!(log.apply_retention(0).unwrap() > 0);
    let remaining: Vec<String> = common::segment_files(dir.path(), "log")
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for p in common::segment_files(dir.path(), "txnindex") {
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(remaining.contains(&stem), "{stem} outlived its segment");
    }
    // DeleteRecords to the end: every segment but a fresh active one goes.
    let end = log.log_end_offset();
    log.delete_records_before(end).unwrap();
    assert_eq!(txn_indexes(dir.path()), []);
    assert_eq!(log.last_stable_offset(), end);
}

/// Writes a mix of transactions over several segments; returns the log
/// (not closed) and the number of offsets written.
fn write_mixed(dir: &Path, config: &LogConfig) -> PartitionLog {
    let (mut log, _) = PartitionLog::open(dir, config.clone()).unwrap();
    let mut seqs = [0i32; 4];
    for round in 0..12 {
        for pid in 1..=3i64 {
            let s = &mut seqs[pid as usize];
            log.append(&txn_batch(pid, 0, *s, 1 + (round % 2)), 0)
                .unwrap();
            *s += 1 + (round % 2) as i32;
        }
        log.append(&plain_batch(1), 0).unwrap();
        // One producer aborts, one commits, one stays open over rounds.
        let aborting = 1 + (round % 3) as i64;
        log.write_marker(&marker(aborting, 0, false, round as i32), 0)
            .unwrap();
        log.write_marker(
            &marker(1 + ((round + 1) % 3) as i64, 0, true, round as i32),
            0,
        )
        .unwrap();
    }
    // An abort in the active segment too (producer 3 ended in the last round).
    log.append(&txn_batch(3, 0, seqs[3], 1), 0).unwrap();
    log.write_marker(&marker(3, 0, false, 12), 0).unwrap();
    assert!(log.producers().open_txn_of(2).is_some());
    log
}

/// The aborted transaction index of the active (last) segment.
fn active_index(dir: &Path) -> std::path::PathBuf {
    let logs = common::segment_files(dir, "log");
    let stem = logs
        .last()
        .unwrap()
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    dir.join(format!("{stem}.txnindex"))
}

fn state_of(log: &PartitionLog) -> (i64, i64, Vec<String>) {
    let mut lines: Vec<String> = log
        .producers()
        .encode_snapshot(0)
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect();
    lines.sort();
    (log.log_end_offset(), log.last_stable_offset(), lines)
}

#[test]
fn crash_recovery_rebuilds_the_index_and_the_open_transactions() {
    // Each way of losing derived state: none (a crash after the last roll),
    // the active segment's index, every index and the producer snapshot,
    // a torn tail of an index.
    for damage in ["none", "active index", "everything", "torn tail"] {
        let dir = tempdir();
        let config = relaxed(900);
        let log = write_mixed(dir.path(), &config);
        assert!(
            log.segment_count() >= 3,
            "{damage}: the test spans segments"
        );
        assert!(log.producers().open_txn_count() > 0);
        let before = state_of(&log);
        let indexes_before = txn_indexes(dir.path());
        let reads_before: Vec<_> = (0..before.0)
            .step_by(5)
            .map(|o| read_committed(&log, o, 1 << 20))
            .collect();
        drop(log); // no clean close
        let files = common::segment_files(dir.path(), "txnindex");
        match damage {
            "none" => {}
            "active index" => std::fs::remove_file(active_index(dir.path())).unwrap(),
            "everything" => {
                for f in &files {
                    std::fs::remove_file(f).unwrap();
                }
                std::fs::remove_file(dir.path().join("producer-snapshot")).unwrap();
            }
            "torn tail" => {
                let f = &active_index(dir.path());
                let mut bytes = std::fs::read(f).unwrap();
                bytes.truncate(bytes.len() - 5);
                std::fs::write(f, bytes).unwrap();
            }
            _ => unreachable!(),
        }
        let (log, report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
        assert!(!report.clean_shutdown);
        assert_eq!(
            state_of(&log),
            before,
            "{damage}: producers, open transactions, LSO"
        );
        assert_eq!(
            txn_indexes(dir.path()),
            indexes_before,
            "{damage}: no duplicate, none missing"
        );
        let reads_after: Vec<_> = (0..before.0)
            .step_by(5)
            .map(|o| read_committed(&log, o, 1 << 20))
            .collect();
        assert_eq!(reads_after, reads_before, "{damage}");
        // A clean close and reopen keeps it all too.
        log.close().unwrap();
        let (log, report) = PartitionLog::open(dir.path(), config.clone()).unwrap();
        assert!(report.clean_shutdown);
        assert_eq!(state_of(&log), before);
        assert_eq!(txn_indexes(dir.path()), indexes_before);
    }
}

#[test]
fn a_crash_after_a_clean_close_replays_from_the_snapshot() {
    let dir = tempdir();
    let config = relaxed(1 << 20);
    let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    log.append(&txn_batch(1, 0, 0, 1), 0).unwrap(); // 0
    log.write_marker(&marker(1, 0, false, 0), 0).unwrap(); // 1
    log.append(&txn_batch(2, 0, 0, 1), 0).unwrap(); // 2 (open)
    log.close().unwrap();
    // The snapshot is as of offset 3, in the active segment.
    let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    assert_eq!(log.last_stable_offset(), 2);
    log.append(&txn_batch(3, 0, 0, 1), 0).unwrap(); // 3
    log.write_marker(&marker(3, 0, false, 0), 0).unwrap(); // 4 (2 open: lso 2)
    log.write_marker(&marker(2, 0, false, 0), 0).unwrap(); // 5
    let before = txn_indexes(dir.path());
    assert_eq!(
        before,
        [(
            txn_index_file_name(0),
            vec![entry(1, 0, 1, 2), entry(3, 3, 4, 2), entry(2, 2, 5, 6)]
        )]
    );
    drop(log);
    let (log, _) = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(txn_indexes(dir.path()), before);
    assert_eq!(log.last_stable_offset(), 6);
}

#[test]
fn a_torn_log_tail_takes_its_markers_and_entries_with_it() {
    let dir = tempdir();
    let config = relaxed(1 << 20);
    let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    log.append(&txn_batch(1, 0, 0, 1), 0).unwrap(); // 0
    log.append(&txn_batch(2, 0, 0, 1), 0).unwrap(); // 1
    log.write_marker(&marker(1, 0, false, 0), 0).unwrap(); // 2
    log.write_marker(&marker(2, 0, false, 0), 0).unwrap(); // 3
    drop(log);
    // The last marker is torn: recovery cuts it, and its entry, and
    // producer 2's transaction is open again.
    let path = dir.path().join(format!("{:020}.log", 0));
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);
    let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
    assert!(report.truncated_bytes > 0);
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.producers().open_txn_of(2), Some(1));
    assert_eq!(log.last_stable_offset(), 1);
    assert_eq!(
        txn_indexes(dir.path()),
        [(txn_index_file_name(0), vec![entry(1, 0, 2, 1)])]
    );
}

#[test]
fn marker_epochs_fence_and_reset_as_kafka_does() {
    let dir = tempdir();
    let (mut log, _) = PartitionLog::open(dir.path(), relaxed(1 << 20)).unwrap();
    log.append(&txn_batch(9, 3, 0, 2), 0).unwrap(); // 0, 1
    // A non-transactional write while the transaction is open is refused.
    let mut idem = make_batch(
        &[Rec {
            key: Some(b"k".to_vec()),
            value: None,
            ts: 0,
        }],
        9,
        3,
        2,
    );
    assert!(matches!(
        log.append(&idem, 0),
        Err(LogError::InvalidTxnState(_))
    ));
    // An older producer epoch, an older coordinator epoch: refused, nothing written.
    assert!(matches!(
        log.write_marker(&marker(9, 2, true, 0), 0),
        Err(LogError::InvalidProducerEpoch { got: 2, current: 3 })
    ));
    log.write_marker(&marker(9, 3, true, 5), 0).unwrap(); // 2
    assert!(matches!(
        log.write_marker(&marker(9, 3, false, 4), 0),
        Err(LogError::CoordinatorFenced { got: 4, current: 5 })
    ));
    assert_eq!(log.log_end_offset(), 3);
    // Same epoch: sequences continue (a retry is still a duplicate).
    let retry = log.append(&txn_batch(9, 3, 0, 2), 0).unwrap();
    assert!(retry.duplicate && retry.base_offset == 0);
    assert!(matches!(
        log.append(&txn_batch(9, 3, 0, 1), 0),
        Err(LogError::OutOfOrderSequence { expected: 2, .. })
    ));
    // After the marker the producer may write non-transactionally again.
    idem = make_batch(
        &[Rec {
            key: Some(b"k".to_vec()),
            value: None,
            ts: 0,
        }],
        9,
        3,
        2,
    );
    assert_eq!(log.append(&idem, 0).unwrap().base_offset, 3);
    log.append(&txn_batch(9, 3, 3, 1), 0).unwrap(); // 4, txn open
    // The coordinator fences the producer: an abort with a higher epoch
    // takes it, and drops the cached sequences, so the re-initialised
    // producer's first batch (that epoch, sequence 0) is accepted...
    log.write_marker(&marker(9, 4, false, 5), 0).unwrap(); // 5
    assert_eq!(log.producers().get(9).unwrap().epoch, 4);
    assert_eq!(log.producers().get(9).unwrap().last_sequence(), -1);
    assert_eq!(
        log.append(&txn_batch(9, 4, 0, 1), 0).unwrap().base_offset,
        6
    );
    // ... and the old epoch is fenced.
    assert!(matches!(
        log.append(&txn_batch(9, 3, 4, 1), 0),
        Err(LogError::InvalidProducerEpoch { got: 3, current: 4 })
    ));
    // A marker for a producer the partition never saw creates its state.
    log.write_marker(&marker(77, 1, true, 2), 0).unwrap();
    let p = log.producers().get(77).unwrap();
    assert_eq!(
        (p.epoch, p.coordinator_epoch, p.txn_first_offset),
        (1, 2, None)
    );
}

#[test]
fn with_fsync_on_ack_the_lso_waits_for_the_markers_fsync() {
    let dir = tempdir();
    let config = small_config(1 << 20, 128);
    assert!(config.fsync_on_ack());
    let (mut log, _) = PartitionLog::open(dir.path(), config).unwrap();
    log.append(&txn_batch(1, 0, 0, 2), 0).unwrap(); // 0, 1
    log.append(&plain_batch(1), 0).unwrap(); // 2
    log.flush().unwrap();
    assert_eq!((log.high_watermark(), log.last_stable_offset()), (3, 0));
    log.write_marker(&marker(1, 0, true, 0), 0).unwrap(); // 3
    // The marker is written but not durable: its transaction still holds
    // the LSO (Kafka: until the high watermark passes the marker).
    assert_eq!(log.producers().open_txn_count(), 0);
    assert_eq!((log.high_watermark(), log.last_stable_offset()), (3, 0));
    assert_eq!(read_committed(&log, 0, 1 << 20).0, Vec::<i64>::new());
    let target = log.sync_target().unwrap();
    target.sync().unwrap();
    log.mark_flushed(&target);
    assert_eq!((log.high_watermark(), log.last_stable_offset()), (4, 4));
    assert_eq!(read_committed(&log, 0, 1 << 20).0, vec![0, 2, 3]);
}

#[test]
fn a_marker_on_a_full_disk_is_undone_with_its_index_entry() {
    let dir = tempdir();
    let (mut log, _) = PartitionLog::open(dir.path(), relaxed(1 << 20)).unwrap();
    log.append(&txn_batch(1, 0, 0, 1), 0).unwrap(); // 0
    log.append(&txn_batch(2, 0, 0, 1), 0).unwrap(); // 1
    log.write_marker(&marker(2, 0, false, 0), 0).unwrap(); // 2: the index exists
    let size = log.size_bytes();
    // The marker's log write succeeds, its index entry's write finds no space.
    let index = dir.path().join(txn_index_file_name(0));
    let g = fault::inject(Rule {
        path_contains: index.to_string_lossy().into_owned(),
        op: FileOp::Write,
        fault: Fault::PartialWrite(ENOSPC),
        times: Some(1),
    });
    let e = log.write_marker(&marker(1, 0, false, 0), 0).unwrap_err();
    assert!(
        matches!(&e, LogError::Io(io) if fault::is_out_of_space(io)),
        "{e}"
    );
    assert_eq!(g.hits(), 1);
    drop(g);
    assert!(
        log.offline_reason().is_none(),
        "a full disk leaves the log online"
    );
    assert_eq!((log.size_bytes(), log.log_end_offset()), (size, 3));
    assert_eq!(log.producers().open_txn_of(1), Some(0), "still open");
    assert_eq!(std::fs::metadata(&index).unwrap().len(), 34);
    // Once space is back, the same marker goes through.
    assert_eq!(
        log.write_marker(&marker(1, 0, false, 0), 0)
            .unwrap()
            .base_offset,
        3
    );
    assert_eq!(
        txn_indexes(dir.path()),
        [(
            txn_index_file_name(0),
            vec![entry(2, 1, 2, 0), entry(1, 0, 3, 4)]
        )]
    );
}

#[test]
fn snapshot_version_1_is_still_read() {
    let dir = tempdir();
    let config = relaxed(1 << 20);
    let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    let b = make_batch(
        &[Rec {
            key: None,
            value: Some(b"v".to_vec()),
            ts: 1,
        }],
        42,
        0,
        0,
    );
    log.append(&b, 0).unwrap();
    log.close().unwrap();
    // What an older Herald wrote at its clean close.
    std::fs::write(
        dir.path().join("producer-snapshot"),
        "herald-producer-snapshot 1 1 1\n42 0 0 0:0:0\n",
    )
    .unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    let p = log.producers().get(42).expect("read from the v1 snapshot");
    assert_eq!(
        (p.epoch, p.last_sequence(), p.txn_first_offset),
        (0, 0, None)
    );
    assert_eq!((p.coordinator_epoch, p.last_timestamp_ms), (-1, -1));
    assert!(log.append(&b, 0).unwrap().duplicate);
    // The next one written is version 2, with the open transaction.
    log.append(&txn_batch(5, 0, 0, 1), 0).unwrap(); // 1
    log.close().unwrap();
    let text = std::fs::read_to_string(dir.path().join("producer-snapshot")).unwrap();
    assert!(
        text.starts_with("herald-producer-snapshot 2 2 2\n"),
        "{text}"
    );
    assert!(text.contains("\n5 0 1 0:0:1 1 -1 1000\n"), "{text}");
    let (log, _) = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(log.producers().open_txn_of(5), Some(1));
    assert_eq!(log.last_stable_offset(), 1);
}

fn compact_config() -> LogConfig {
    LogConfig {
        compact: true,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention: Duration::from_millis(1_000),
        ..relaxed(1 << 30)
    }
}

/// Every batch of the log: (base offset, is control, records, delete horizon).
fn layout(log: &PartitionLog) -> Vec<(i64, bool, i32, Option<i64>)> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let bytes = log.read(next, 1 << 20).unwrap();
        if bytes.is_empty() {
            break;
        }
        for b in batch::split(&bytes).unwrap() {
            let h: BatchHeader = batch::validate(b).unwrap();
            out.push((
                h.base_offset,
                h.is_control(),
                h.records_count,
                h.delete_horizon_ms(),
            ));
            next = h.next_offset();
        }
    }
    out
}

#[test]
fn compaction_removes_aborted_transactions_then_their_markers() {
    let dir = tempdir();
    let (mut log, _) = PartitionLog::open(dir.path(), compact_config()).unwrap();
    log.append(&txn_batch(1, 0, 0, 2), 0).unwrap(); // 0, 1: aborted below
    log.append(&txn_batch(2, 0, 0, 1), 0).unwrap(); // 2: committed below
    log.write_marker(&marker(1, 0, false, 0), 0).unwrap(); // 3
    log.write_marker(&marker(2, 0, true, 0), 0).unwrap(); // 4
    log.append(&txn_batch(1, 0, 2, 1), 0).unwrap(); // 5: producer 1's last batch, committed
    log.write_marker(&marker(1, 0, true, 0), 0).unwrap(); // 6
    log.append(&plain_batch(1), 0).unwrap(); // 7
    log.roll().unwrap();
    log.append(&plain_batch(1), 0).unwrap(); // 8 (active)

    // Pass 1: the aborted batch goes; every marker stays (its data was seen).
    let r = log.compact(10_000).unwrap();
    assert_eq!(
        (
            r.aborted_batches_removed,
            r.records_removed,
            r.markers_removed
        ),
        (1, 2, 0),
        "{r:?}"
    );
    assert_eq!(
        layout(&log),
        [
            (2, false, 1, None),
            (3, true, 1, None),
            (4, true, 1, None),
            (5, false, 1, None),
            (6, true, 1, None),
            (7, false, 1, None),
            (8, false, 1, None)
        ]
    );
    assert_eq!(
        txn_indexes(dir.path()),
        [(txn_index_file_name(0), vec![entry(1, 0, 3, 2)])]
    );
    // A read_committed consumer from 0 is told about the abort still.
    assert_eq!(read_committed(&log, 0, 1 << 20).1, aborted(&[(1, 0)]));

    // Pass 2 (new dirty data): marker 3's data is gone: its delete horizon
    // is set (now + delete.retention.ms); the others still have data.
    log.append(&plain_batch(1), 0).unwrap(); // 9
    log.roll().unwrap();
    log.compact(20_000).unwrap();
    let l = layout(&log);
    assert_eq!(l[1], (3, true, 1, Some(21_000)));
    assert_eq!(l[2], (4, true, 1, None));
    assert_eq!(
        txn_indexes(dir.path()).len(),
        1,
        "the entry stays with its marker"
    );

    // Pass 3 before the horizon: nothing happens to it. Pass 4 after: the
    // marker and its index entry go.
    log.append(&plain_batch(1), 0).unwrap(); // 10
    log.roll().unwrap();
    log.compact(20_500).unwrap();
    assert_eq!(layout(&log)[1], (3, true, 1, Some(21_000)));
    log.append(&plain_batch(1), 0).unwrap(); // 11
    log.roll().unwrap();
    let r = log.compact(21_000).unwrap();
    assert_eq!(r.markers_removed, 1, "{r:?}");
    let l = layout(&log);
    assert_eq!(l[0], (2, false, 1, None));
    assert_eq!(l[1], (4, true, 1, None));
    assert_eq!(txn_indexes(dir.path()), []);
    assert_eq!(read_committed(&log, 0, 1 << 20).1, aborted(&[]));

    // A rebuild from the log alone (no snapshot, a crash) agrees.
    let before = state_of(&log);
    drop(log);
    std::fs::remove_file(dir.path().join("producer-snapshot")).unwrap();
    let (log, _) = PartitionLog::open(dir.path(), compact_config()).unwrap();
    assert_eq!(state_of(&log).1, before.1);
    assert_eq!(log.producers().open_txn_count(), 0);
}

#[test]
fn compaction_never_cleans_at_or_beyond_the_last_stable_offset() {
    let dir = tempdir();
    let (mut log, _) = PartitionLog::open(dir.path(), compact_config()).unwrap();
    log.append(&plain_batch(2), 0).unwrap(); // 0, 1
    log.append(&txn_batch(1, 0, 0, 1), 0).unwrap(); // 2: open
    log.append(&plain_batch(2), 0).unwrap(); // 3, 4: shadow 0, 1
    log.roll().unwrap();
    log.append(&plain_batch(2), 0).unwrap(); // 5, 6 (active): shadow 3, 4
    assert_eq!(log.last_stable_offset(), 2);
    log.compact(0).unwrap();
    // 0, 1 are below the LSO but their later keys are not in the cleaned
    // range: nothing is removed; nothing at or above 2 is touched.
    assert_eq!(
        layout(&log),
        [
            (0, false, 2, None),
            (2, false, 1, None),
            (3, false, 2, None),
            (5, false, 2, None)
        ]
    );
    // Once the transaction ends the rest is cleanable.
    log.write_marker(&marker(1, 0, false, 0), 0).unwrap(); // 7
    log.roll().unwrap();
    log.append(&plain_batch(1), 0).unwrap(); // 8
    log.compact(0).unwrap();
    let l = layout(&log);
    assert!(l.iter().all(|b| b.0 != 0 && b.0 != 3), "shadowed: {l:?}");
    assert!(
        l.contains(&(2, false, 0, None)),
        "the aborted batch is emptied, kept as producer 1's last: {l:?}"
    );
    assert!(
        l.contains(&(7, true, 1, None)),
        "the abort marker stays: data was seen"
    );
}
