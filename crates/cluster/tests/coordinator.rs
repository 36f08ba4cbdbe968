//! The commit transaction against real PostgreSQL: concurrent committers on
//! overlapping partitions, Kafka's idempotent-producer rules, retried commits.

mod common;

use std::collections::BTreeMap;

use herald_cluster::commit::{self, AppendInput, AppendResult, CommitInput};
use uuid::Uuid;

fn append(topic: Uuid, partition: i32, h: herald_log::batch::BatchHeader) -> AppendInput {
    AppendInput {
        topic_id: topic,
        partition,
        byte_offset: 0,
        byte_size: 100,
        headers: vec![h],
    }
}

fn input(key: &str, appends: Vec<AppendInput>) -> CommitInput {
    CommitInput {
        key: key.to_string(),
        size: 100,
        broker_id: 1,
        appends,
    }
}

fn base(r: &AppendResult) -> i64 {
    match r {
        AppendResult::Ok(a) => a.base_offset,
        AppendResult::Err(e) => panic!("append refused: {e}"),
    }
}

fn code(r: &AppendResult) -> i16 {
    match r {
        AppendResult::Ok(_) => 0,
        AppendResult::Err(e) => herald_broker::error::log_error_code(e),
    }
}

/// (base, last) of every stored batch of a partition, in offset order, and its high watermark.
async fn stored(
    pool: &deadpool_postgres::Pool,
    topic: Uuid,
    partition: i32,
) -> (Vec<(i64, i64)>, i64) {
    let c = pool.get().await.unwrap();
    let rows = c
        .query(
            "SELECT base_offset, last_offset FROM batches WHERE topic_id = $1 AND partition = $2 ORDER BY base_offset",
            &[&topic, &partition],
        )
        .await
        .unwrap();
    let hwm: i64 = c
        .query_one(
            "SELECT high_watermark FROM partitions WHERE topic_id = $1 AND partition = $2",
            &[&topic, &partition],
        )
        .await
        .unwrap()
        .get(0);
    (rows.iter().map(|r| (r.get(0), r.get(1))).collect(), hwm)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_committers_leave_offsets_contiguous_and_unique() {
    let pg = herald_testkit::Postgres::start().unwrap();
    let pool = common::pool(&pg).await;
    let topic = common::create_topic(&pool, "t", 4).await;
    const COMMITTERS: usize = 8;
    const COMMITS: usize = 40;
    let mut tasks = Vec::new();
    for c in 0..COMMITTERS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            // (partition, base offset, records) of every accepted append.
            let mut acked = Vec::new();
            for i in 0..COMMITS {
                // Overlapping partitions in varying order: the locks must not deadlock.
                let parts: Vec<i32> = match (c + i) % 3 {
                    0 => vec![3, 1, 0],
                    1 => vec![0, 2, 3, 1],
                    _ => vec![2, 0],
                };
                let appends: Vec<AppendInput> = parts
                    .iter()
                    .map(|p| append(topic, *p, common::header(1 + ((c + i) % 4) as i32)))
                    .collect();
                let records: Vec<(i32, i64)> = appends
                    .iter()
                    .map(|a| (a.partition, a.headers[0].records_count as i64))
                    .collect();
                let results = commit::commit(&pool, &input(&format!("c{c}-{i}"), appends))
                    .await
                    .expect("commit");
                for ((p, n), r) in records.into_iter().zip(&results) {
                    acked.push((p, base(r), n));
                }
            }
            acked
        }));
    }
    let mut acked: Vec<(i32, i64, i64)> = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let mut by_partition: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
    for (p, b, n) in &acked {
        by_partition.entry(*p).or_default().push((*b, b + n - 1));
    }
    for p in 0..4 {
        let mut answered = by_partition.remove(&p).unwrap_or_default();
        answered.sort();
        let (rows, hwm) = stored(&pool, topic, p).await;
        assert_eq!(
            answered, rows,
            "partition {p}: the answers are exactly the stored batches"
        );
        let mut next = 0;
        for (b, l) in &rows {
            assert_eq!(
                *b, next,
                "partition {p}: offsets contiguous, no gap or overlap"
            );
            next = l + 1;
        }
        assert_eq!(next, hwm, "partition {p}: high watermark at the end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producers_follow_kafkas_rules() {
    let pg = herald_testkit::Postgres::start().unwrap();
    let pool = common::pool(&pg).await;
    let topic = common::create_topic(&pool, "t", 1).await;
    let h = |seq: i32, epoch: i16| common::idempotent_header(5, 42, epoch, seq);
    let mut bases = Vec::new();
    for (i, seq) in [0, 5, 10, 15, 20, 25].into_iter().enumerate() {
        let r = commit::commit(
            &pool,
            &input(&format!("k{i}"), vec![append(topic, 0, h(seq, 0))]),
        )
        .await
        .unwrap();
        bases.push(base(&r[0]));
    }
    assert_eq!(bases, vec![0, 5, 10, 15, 20, 25]);
    // A retry of one of the last five batches: its original offset, nothing appended.
    let r = commit::commit(&pool, &input("dup", vec![append(topic, 0, h(15, 0))]))
        .await
        .unwrap();
    assert_eq!(base(&r[0]), 15);
    let (_, hwm) = stored(&pool, topic, 0).await;
    assert_eq!(hwm, 30, "a duplicate is not appended");
    // A gap in the sequence.
    let r = commit::commit(&pool, &input("gap", vec![append(topic, 0, h(40, 0))]))
        .await
        .unwrap();
    assert_eq!(code(&r[0]), 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    // A new epoch must start at sequence 0; then the old epoch is fenced.
    let r = commit::commit(&pool, &input("e1-bad", vec![append(topic, 0, h(30, 1))]))
        .await
        .unwrap();
    assert_eq!(code(&r[0]), 45);
    let r = commit::commit(&pool, &input("e1", vec![append(topic, 0, h(0, 1))]))
        .await
        .unwrap();
    assert_eq!(base(&r[0]), 30);
    let r = commit::commit(&pool, &input("e0-late", vec![append(topic, 0, h(30, 0))]))
        .await
        .unwrap();
    assert_eq!(code(&r[0]), 47, "INVALID_PRODUCER_EPOCH");
    // The sequence wraps from i32::MAX to 0 (Kafka's inSequence).
    let wrap = common::idempotent_header(1, 43, 0, i32::MAX);
    let r = commit::commit(&pool, &input("w1", vec![append(topic, 0, wrap)]))
        .await
        .unwrap();
    assert_eq!(code(&r[0]), 0);
    let after = common::idempotent_header(1, 43, 0, 0);
    let r = commit::commit(&pool, &input("w2", vec![append(topic, 0, after)]))
        .await
        .unwrap();
    assert_eq!(code(&r[0]), 0, "MAX -> 0 is in sequence");
    // Only the last five batches per producer are kept.
    let c = pool.get().await.unwrap();
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM producer_state WHERE producer_id = 42",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "epoch 1 has one batch; epoch 0's rows are gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_retried_after_an_ambiguous_failure_applies_once() {
    let pg = herald_testkit::Postgres::start().unwrap();
    let pool = common::pool(&pg).await;
    let topic = common::create_topic(&pool, "t", 2).await;
    let make = || {
        input(
            "wal/x/retried",
            vec![
                append(topic, 0, common::header(3)),
                append(topic, 1, common::header(2)),
                append(topic, 0, common::header(1)),
            ],
        )
    };
    let first = commit::commit(&pool, &make()).await.unwrap();
    // The answer was "lost": the broker commits the same object again.
    let again = commit::commit(&pool, &make()).await.unwrap();
    let bases = |r: &[AppendResult]| r.iter().map(base).collect::<Vec<_>>();
    assert_eq!(bases(&first), vec![0, 0, 3]);
    assert_eq!(
        bases(&again),
        bases(&first),
        "the retry reads the original answers"
    );
    assert_eq!(stored(&pool, topic, 0).await.1, 4);
    assert_eq!(stored(&pool, topic, 1).await.1, 2);
    // Many brokers migrating at once do not fail.
    let mut migrations = Vec::new();
    for _ in 0..6 {
        let pool = common::pool(&pg);
        migrations.push(pool);
    }
    for m in migrations {
        m.await;
    }
}
