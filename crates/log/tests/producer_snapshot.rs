//! Idempotent producer state survives retention deleting every batch of a
//! producer, through the snapshot written at rolls and clean closes.

mod common;

use common::{Rec, make_batch, simple_batch, small_config, tempdir};
use herald_log::PartitionLog;

fn producer_batch(seq: i32) -> Vec<u8> {
    make_batch(
        &[Rec {
            key: None,
            value: Some(vec![7u8; 40]),
            ts: 1,
        }],
        42,
        0,
        seq,
    )
}

#[test]
fn producer_state_outlives_its_deleted_segments() {
    for clean in [true, false] {
        let dir = tempdir();
        let mut config = small_config(2048, 256);
        let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).expect("open");
        let mut last = None;
        for seq in 0..5 {
            last = Some(log.append(&producer_batch(seq), 1).expect("append"));
        }
        let last = last.expect("appended");
        // Other traffic rolls segments, then retention by size drops the producer's.
        for i in 0..60 {
            log.append(&simple_batch(2, 100, 2, i as u8), 2)
                .expect("append");
        }
        config.retention_bytes_max = Some(4096);
        log.set_config(config.clone());
        let deleted = log.apply_retention(i64::MAX / 2).expect("retention");
        assert!(deleted > 0);
        assert!(
            log.log_start_offset() > last.last_offset,
            "the producer's batches are gone"
        );

        if clean {
            log.close().expect("close");
        } else {
            drop(log);
        }
        let (mut log, _) = PartitionLog::open(dir.path(), config).expect("reopen");
        let retry = log.append(&producer_batch(4), 3).expect("retry");
        assert!(
            retry.duplicate,
            "clean={clean}: a retry of the last batch is still recognised"
        );
        assert_eq!(retry.base_offset, last.base_offset);
        let gap = log.append(&producer_batch(9), 3);
        assert!(
            gap.is_err(),
            "clean={clean}: a sequence gap is still refused"
        );
        let next = log.append(&producer_batch(5), 3).expect("next");
        assert!(!next.duplicate);
    }
}

#[test]
fn a_snapshot_past_the_log_end_is_ignored() {
    let dir = tempdir();
    let config = small_config(1 << 20, 256);
    let (mut log, _) = PartitionLog::open(dir.path(), config.clone()).expect("open");
    log.append(&producer_batch(0), 1).expect("append");
    log.close().expect("close");
    // A snapshot claiming a later offset (the log was cut after it was written).
    std::fs::write(
        dir.path().join("producer-snapshot"),
        "herald-producer-snapshot 1 999 1\n42 0 998 0:0:998\n",
    )
    .expect("write");
    let (mut log, _) = PartitionLog::open(dir.path(), config).expect("reopen");
    // Rebuilt from the log: seq 1 follows seq 0 written at offset 0.
    assert!(!log.append(&producer_batch(1), 2).expect("append").duplicate);
    assert!(log.append(&producer_batch(1), 2).expect("retry").duplicate);
}
