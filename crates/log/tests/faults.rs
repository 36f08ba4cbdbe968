//! Storage faults through the `herald_log::fault` seam: a full disk undoes the
//! failed append and the log stays usable; EIO takes it offline for good; with
//! fsync on ack, consumers (`fetch_plan`, `high_watermark`) see only what an
//! fsync made durable. Each test uses its own directory, which its rules match.

mod common;

use common::{read_all, simple_batch, small_config, tempdir};
use herald_log::fault::{self, EIO, ENOSPC, Fault, FileOp, Rule};
use herald_log::{LogConfig, LogError, PartitionLog};

fn rule(dir: &std::path::Path, op: FileOp, fault: Fault, times: Option<u64>) -> fault::FaultGuard {
    fault::inject(Rule {
        path_contains: dir.to_string_lossy().into_owned(),
        op,
        fault,
        times,
    })
}

fn fetched(log: &PartitionLog, offset: i64) -> Vec<u8> {
    match log.fetch_plan(offset, 1 << 20).unwrap() {
        Some(p) => p.execute().unwrap(),
        None => Vec::new(),
    }
}

#[test]
fn short_write_on_full_disk_is_undone_and_the_log_stays_online() {
    let dir = tempdir();
    let config = small_config(1 << 20, 64);
    let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    for i in 0..5 {
        log.append(&simple_batch(3, 100, 1_000 + i, i as u8), 0)
            .unwrap();
    }
    log.flush().unwrap();
    let size_before = log.size_bytes();
    let end_before = log.log_end_offset();
    let files_before = std::fs::metadata(dir.path().join(format!("{:020}.log", 0)))
        .unwrap()
        .len();

    let g = rule(
        dir.path(),
        FileOp::Write,
        Fault::PartialWrite(ENOSPC),
        Some(1),
    );
    let e = log.append(&simple_batch(3, 100, 2_000, 9), 0).unwrap_err();
    assert!(
        matches!(&e, LogError::Io(io) if fault::is_out_of_space(io)),
        "{e}"
    );
    assert_eq!(g.hits(), 1);
    drop(g);
    // Nothing of the failed append remains, in memory or on disk.
    assert_eq!(log.size_bytes(), size_before);
    assert_eq!(log.log_end_offset(), end_before);
    assert_eq!(
        std::fs::metadata(dir.path().join(format!("{:020}.log", 0)))
            .unwrap()
            .len(),
        files_before
    );
    assert!(log.offline_reason().is_none());

    // Space is back: appends work, offsets continue densely.
    let info = log.append(&simple_batch(2, 100, 3_000, 10), 0).unwrap();
    assert_eq!(info.base_offset, end_before);
    log.close().unwrap();
    let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
    assert!(report.clean_shutdown);
    assert_eq!(log.log_end_offset(), end_before + 2);
    assert_eq!(read_all(&log, 1 << 20).len(), 6);
}

#[test]
fn index_write_failure_on_full_disk_is_undone() {
    let dir = tempdir();
    // An index entry every 64 bytes: the second append writes one.
    let config = small_config(1 << 20, 64);
    let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    log.append(&simple_batch(3, 100, 1_000, 1), 0).unwrap();
    let g = fault::inject(Rule {
        path_contains: format!("{}/{:020}.index", dir.path().display(), 0),
        op: FileOp::Write,
        fault: Fault::Errno(ENOSPC),
        times: Some(1),
    });
    let e = log.append(&simple_batch(3, 100, 1_001, 2), 0).unwrap_err();
    assert!(matches!(e, LogError::Io(_)));
    assert_eq!(g.hits(), 1);
    drop(g);
    assert_eq!(log.log_end_offset(), 3);
    log.append(&simple_batch(3, 100, 1_002, 3), 0).unwrap();
    // Reopened without the clean marker: the indexes on disk agree with the log.
    drop(log);
    let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(read_all(&log, 1 << 20).len(), 2);
}

#[test]
fn segment_roll_on_full_disk_keeps_the_old_segment_active() {
    let dir = tempdir();
    let config = small_config(600, 64);
    let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    log.append(&simple_batch(3, 150, 1_000, 1), 0).unwrap();
    let segments = log.segment_count();
    // The next append needs a roll; its new segment cannot be created.
    let g = rule(dir.path(), FileOp::Create, Fault::Errno(ENOSPC), Some(1));
    let e = log.append(&simple_batch(3, 150, 1_001, 2), 0).unwrap_err();
    assert!(
        matches!(&e, LogError::Io(io) if fault::is_out_of_space(io)),
        "{e}"
    );
    drop(g);
    assert_eq!(log.segment_count(), segments);
    assert!(log.offline_reason().is_none());
    assert_eq!(common::segment_files(dir.path(), "log").len(), segments);
    let info = log.append(&simple_batch(3, 150, 1_002, 3), 0).unwrap();
    assert_eq!(info.base_offset, 3);
    assert_eq!(log.segment_count(), segments + 1);
}

#[test]
fn eio_on_write_takes_the_log_offline_and_restart_recovers() {
    let dir = tempdir();
    let config = small_config(1 << 20, 64);
    let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).unwrap();
    log.append(&simple_batch(3, 100, 1_000, 1), 0).unwrap();
    log.flush().unwrap();
    let g = rule(dir.path(), FileOp::Write, Fault::PartialWrite(EIO), None);
    assert!(log.append(&simple_batch(3, 100, 1_001, 2), 0).is_err());
    assert!(log.offline_reason().is_some());
    // Offline: everything is refused, and it is not closed as clean.
    assert!(matches!(
        log.append(&simple_batch(1, 10, 1_002, 3), 0),
        Err(LogError::StorageUnavailable)
    ));
    assert!(log.flush().is_err());
    assert!(log.close().is_err());
    drop(g);
    let (log, report) = PartitionLog::open(dir.path(), config).unwrap();
    assert!(!report.clean_shutdown);
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(read_all(&log, 1 << 20).len(), 1);
}

#[test]
fn failed_fsync_takes_the_log_offline_and_is_not_retried() {
    let dir = tempdir();
    let (mut log, _) = PartitionLog::open(dir.path(), small_config(1 << 20, 64)).unwrap();
    log.append(&simple_batch(3, 100, 1_000, 1), 0).unwrap();
    let g = rule(dir.path(), FileOp::Fsync, Fault::Errno(EIO), None);
    assert!(log.flush().is_err());
    assert!(log.offline_reason().is_some());
    let hits = g.hits();
    drop(g);
    // Even with the disk "healthy" again, no later fsync pretends to succeed.
    assert!(log.flush().is_err());
    assert!(log.sync_target().is_err());
    assert_eq!(hits, 1);
    assert_eq!(log.high_watermark(), 0);
}

#[test]
fn with_fsync_on_ack_consumers_see_only_fsynced_records() {
    let dir = tempdir();
    let config = LogConfig {
        flush_messages: 1,
        ..small_config(1 << 20, 64)
    };
    let (mut log, _) = PartitionLog::open(dir.path(), config).unwrap();
    log.append(&simple_batch(2, 50, 1_000, 1), 0).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.high_watermark(), 0);
    assert!(fetched(&log, 0).is_empty());

    // A group-commit fsync: taken, then appends arrive while it runs.
    let target = log.sync_target().unwrap();
    log.append(&simple_batch(3, 50, 1_001, 2), 0).unwrap();
    target.sync().unwrap();
    log.mark_flushed(&target);
    assert_eq!(log.high_watermark(), 2);
    let bytes = fetched(&log, 0);
    let batches = herald_log::batch::split(&bytes).unwrap();
    assert_eq!(batches.len(), 1, "only the fsynced batch is readable");
    assert!(fetched(&log, 2).is_empty());
    // The broker's own reads are not capped.
    assert_eq!(read_all(&log, 1 << 20).len(), 2);

    log.flush().unwrap();
    assert_eq!(log.high_watermark(), 5);
    assert_eq!(
        herald_log::batch::split(&fetched(&log, 0)).unwrap().len(),
        2
    );

    // A roll fsyncs the old segment: all below the new base is durable.
    log.append(&simple_batch(1, 50, 1_002, 3), 0).unwrap();
    log.roll().unwrap();
    assert_eq!(log.high_watermark(), 6);
    log.append(&simple_batch(1, 50, 1_003, 4), 0).unwrap();
    assert_eq!(log.high_watermark(), 6);
    assert!(fetched(&log, 6).is_empty());
}

#[test]
fn relaxed_flush_exposes_the_log_end() {
    let dir = tempdir();
    let config = LogConfig {
        flush_messages: 10_000,
        ..small_config(1 << 20, 64)
    };
    let (mut log, _) = PartitionLog::open(dir.path(), config).unwrap();
    log.append(&simple_batch(2, 50, 1_000, 1), 0).unwrap();
    assert_eq!(log.high_watermark(), 2);
    assert!(!fetched(&log, 0).is_empty());
}

#[test]
fn delayed_fsync_is_only_delayed() {
    let dir = tempdir();
    let (mut log, _) = PartitionLog::open(dir.path(), small_config(1 << 20, 64)).unwrap();
    log.append(&simple_batch(1, 50, 1_000, 1), 0).unwrap();
    let g = rule(
        dir.path(),
        FileOp::Fsync,
        Fault::Delay(std::time::Duration::from_millis(50)),
        None,
    );
    let t = std::time::Instant::now();
    log.flush().unwrap();
    assert!(t.elapsed() >= std::time::Duration::from_millis(50));
    assert_eq!(g.hits(), 1);
    assert_eq!(log.high_watermark(), 1);
}
