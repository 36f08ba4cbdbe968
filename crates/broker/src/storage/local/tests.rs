//! The local engine's transaction side through the storage seam: markers
//! through `write_marker` (durable as acks=all requires, waking long-polling
//! fetches), the last stable offset in every `Offsets`, read_committed reads
//! with their aborted transactions, `producers()`.

use std::time::Duration;

use bytes::Bytes;
use herald_log::batch::{self, build};

use super::*;

fn meta(name: &str) -> TopicMeta {
    TopicMeta {
        name: name.to_string(),
        id: uuid::Uuid::new_v4(),
        partitions: 1,
        configs: Default::default(),
    }
}

fn txn_batch(pid: i64, seq: i32, values: &[&str]) -> Bytes {
    let recs: Vec<build::SimpleRecord<'_>> = values
        .iter()
        .map(|v| build::SimpleRecord {
            key: None,
            value: Some(v.as_bytes()),
            timestamp_ms: 1_000,
        })
        .collect();
    let mut b = build::batch(&recs, pid, 0, seq);
    build::set_transactional(&mut b);
    Bytes::from(b)
}

fn marker(pid: i64, commit: bool) -> TxnMarker {
    TxnMarker {
        producer_id: pid,
        producer_epoch: 0,
        commit,
        coordinator_epoch: 3,
    }
}

async fn read(
    engine: &LocalEngine,
    p: &Arc<dyn PartitionStorage>,
    offset: i64,
    isolation: Isolation,
) -> ReadResult {
    let mut results = engine
        .read(
            vec![ReadRequest {
                partition: p.clone(),
                offset,
                max_bytes: 1 << 20,
                isolation,
            }],
            1 << 20,
        )
        .await
        .unwrap();
    results.remove(0).unwrap()
}

fn bases(records: &[u8]) -> Vec<i64> {
    batch::split(records)
        .unwrap()
        .iter()
        .map(|b| batch::validate(b).unwrap().base_offset)
        .collect()
}

/// Waits (bounded) for the engine's readable signal to change.
async fn woken(rx: &mut tokio::sync::watch::Receiver<u64>) -> bool {
    tokio::time::timeout(Duration::from_secs(30), rx.changed())
        .await
        .is_ok_and(|r| r.is_ok())
}

#[tokio::test]
async fn markers_end_transactions_for_read_committed_readers() {
    for fsync_on_ack in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let engine = LocalEngine::open(dir.path()).unwrap();
        let m = meta("t");
        engine.create_topic(m.clone()).await.unwrap();
        let config = LogConfig {
            flush_messages: if fsync_on_ack { 1 } else { u64::MAX },
            ..LogConfig::default()
        };
        let p = engine.open_partition(&m, 0, config).unwrap();
        let mut readable = engine.readable_advanced().unwrap();

        // Producer 1 (to abort) at 0-1, producer 2 (to commit) at 2.
        p.clone()
            .append(txn_batch(1, 0, &["a1", "a2"]), -1, 0)
            .await
            .unwrap();
        p.clone()
            .append(txn_batch(2, 0, &["c1"]), -1, 0)
            .await
            .unwrap();
        let o = p.clone().offsets().await.unwrap();
        assert_eq!((o.high_watermark, o.last_stable), (3, 0), "{fsync_on_ack}");
        let r = read(&engine, &p, 0, Isolation::ReadCommitted).await;
        assert!(r.records.is_empty() && r.aborted.is_empty());
        assert_eq!(r.offsets.last_stable, 0);
        assert_eq!(
            bases(
                &read(&engine, &p, 0, Isolation::ReadUncommitted)
                    .await
                    .records
            ),
            [0, 2]
        );

        readable.borrow_and_update();
        let abort_at = p.clone().write_marker(marker(1, false), 5).await.unwrap();
        assert_eq!(abort_at, 3);
        assert!(woken(&mut readable).await, "the LSO moved: fetches wake");
        assert_eq!(p.clone().offsets().await.unwrap().last_stable, 2);
        let commit_at = p.clone().write_marker(marker(2, true), 6).await.unwrap();
        assert_eq!(commit_at, 4);
        // Resolved: as durable as acks=all requires (readable at once).
        let o = p.clone().offsets().await.unwrap();
        assert_eq!((o.high_watermark, o.last_stable), (5, 5));

        let r = read(&engine, &p, 0, Isolation::ReadCommitted).await;
        assert_eq!(bases(&r.records), [0, 2, 3, 4]);
        assert_eq!(
            r.aborted,
            [AbortedTxn {
                producer_id: 1,
                first_offset: 0
            }]
        );
        let r = read(&engine, &p, 4, Isolation::ReadCommitted).await;
        assert!(r.aborted.is_empty(), "the abort marker is before offset 4");
        let r = read(&engine, &p, 0, Isolation::ReadUncommitted).await;
        assert!(r.aborted.is_empty(), "read_uncommitted reports none");

        // DescribeProducers' view.
        let mut infos = p.clone().producers().await.unwrap();
        infos.sort_by_key(|i| i.producer_id);
        assert_eq!(
            infos,
            [
                ProducerInfo {
                    producer_id: 1,
                    producer_epoch: 0,
                    last_sequence: 1,
                    last_timestamp_ms: 5,
                    coordinator_epoch: 3,
                    current_txn_start_offset: -1,
                },
                ProducerInfo {
                    producer_id: 2,
                    producer_epoch: 0,
                    last_sequence: 0,
                    last_timestamp_ms: 6,
                    coordinator_epoch: 3,
                    current_txn_start_offset: -1,
                }
            ]
        );
        // An open transaction shows its start.
        p.clone()
            .append(txn_batch(2, 1, &["c2"]), -1, 0)
            .await
            .unwrap();
        let infos = p.clone().producers().await.unwrap();
        let two = infos.iter().find(|i| i.producer_id == 2).unwrap();
        assert_eq!(two.current_txn_start_offset, 5);

        // A fenced marker is refused with its Kafka code, nothing written.
        let old = TxnMarker {
            coordinator_epoch: 2,
            ..marker(2, true)
        };
        let e = p.clone().write_marker(old, 7).await.unwrap_err();
        assert_eq!(
            crate::error::log_error_code(&e),
            kafka_protocol::ResponseError::TransactionCoordinatorFenced.code()
        );
        assert_eq!(p.clone().offsets().await.unwrap().high_watermark, 6);
        p.close().unwrap();
    }
}
