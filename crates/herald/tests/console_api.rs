//! The console's JSON API on a `herald serve` process agrees with the CLI:
//! group lag per partition equals `herald group describe`, and a reset made
//! through the API is what the CLI then shows. The message browser reads
//! read_committed by default (a transactional producer that aborts).

mod common;

use std::process::Command;
use std::time::Duration;

use common::BrokerProcess;
use common::http::Session;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

fn cli_json(b: &BrokerProcess, args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(&all)
        .env("HERALD_BROKERS", &b.addr)
        .output()
        .expect("spawn herald");
    assert!(
        out.status.success(),
        "herald {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_group_lag_and_reset_agree_with_the_cli() {
    let b = BrokerProcess::start(&[]);
    common::create_topic(&b, "ledger", 2).await;
    let p = b.producer(&[]);
    for i in 0..10 {
        p.send(
            FutureRecord::to("ledger")
                .partition(i % 2)
                .key("k")
                .payload("v"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    }
    let c = b.consumer(&[("group.id", "billing")]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("ledger", 0, Offset::Offset(1))
        .unwrap();
    tpl.add_partition_offset("ledger", 1, Offset::Offset(4))
        .unwrap();
    c.commit(&tpl, CommitMode::Sync).unwrap();
    drop(c);

    let session = Session::anonymous(&b.http_addr());
    let get = |path: &str| {
        let r = session.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    };
    let lags = |api: &Value, cli: &Value| {
        let api_rows: Vec<(i64, i64, i64)> = api["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["partition"].as_i64().unwrap(),
                    o["committed"].as_i64().unwrap(),
                    o["lag"].as_i64().unwrap(),
                )
            })
            .collect();
        let cli_rows: Vec<(i64, i64, i64)> = cli["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["partition"].as_i64().unwrap(),
                    o["committed_offset"].as_i64().unwrap(),
                    o["lag"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(api_rows, cli_rows);
        assert_eq!(api["lag"], cli["total_lag"]);
        api_rows
    };
    let api = get("/api/groups/billing");
    let cli = cli_json(&b, &["group", "describe", "billing"]);
    assert_eq!(lags(&api, &cli), vec![(0, 1, 4), (1, 4, 1)]);

    let reset = json!({"topic": "ledger", "to": "earliest", "dry_run": false});
    let r = session.send("POST", "/api/groups/billing/reset", Some(&reset));
    assert_eq!(r.status, 200, "{}", r.body);
    let api = get("/api/groups/billing");
    let cli = cli_json(&b, &["group", "describe", "billing"]);
    assert_eq!(lags(&api, &cli), vec![(0, 0, 5), (1, 0, 5)]);
}

/// The values and offsets of a message page.
fn page_records(page: &Value) -> Vec<(i64, String)> {
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["offset"].as_i64().expect("offset"),
                m["value"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_browser_reads_committed_by_default() {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let b = BrokerProcess::start(&[]);
    common::create_topic(&b, "ledger-txn", 1).await;
    b.producer(&[])
        .send(
            FutureRecord::to("ledger-txn").key("p").payload("p0"),
            Duration::from_secs(10),
        )
        .await
        .expect("plain record");
    let txn: ThreadedProducer<DefaultProducerContext> = b
        .client_config()
        .set("transactional.id", "console-ledger")
        .create()
        .expect("transactional producer");
    let t = Duration::from_secs(30);
    txn.init_transactions(t).expect("init");
    let send = |values: &[&str]| {
        for v in values {
            txn.send(BaseRecord::<str, str>::to("ledger-txn").key(v).payload(v))
                .map_err(|(e, _)| e)
                .expect("enqueue");
        }
        txn.flush(t).expect("flush");
    };
    txn.begin_transaction().expect("begin");
    send(&["c1", "c2"]);
    txn.commit_transaction(t).expect("commit");
    txn.begin_transaction().expect("begin");
    send(&["a1", "a2"]);
    txn.abort_transaction(t).expect("abort");
    // Left open: its record is not stable yet.
    txn.begin_transaction().expect("begin");
    send(&["o1"]);

    let session = Session::anonymous(&b.http_addr());
    let get = |path: &str| {
        let r = session.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    };
    let v = |recs: &[(i64, &str)]| -> Vec<(i64, String)> {
        recs.iter().map(|(o, s)| (*o, s.to_string())).collect()
    };
    // Offsets: p0 0, c1 1, c2 2, commit marker 3, a1 4, a2 5, abort marker 6, o1 7.
    let committed = v(&[(0, "p0"), (1, "c1"), (2, "c2")]);
    let page = get("/api/topics/ledger-txn/messages?seek=oldest");
    assert_eq!(page["isolation"], "read_committed");
    assert_eq!(page_records(&page), committed);
    assert_eq!(
        page["next_cursor"],
        Value::Null,
        "the page ends at the open transaction"
    );
    let newest = get("/api/topics/ledger-txn/messages?seek=newest");
    assert_eq!(page_records(&newest), committed, "backward too");

    let dirty = get("/api/topics/ledger-txn/messages?seek=oldest&isolation=read_uncommitted");
    assert_eq!(dirty["isolation"], "read_uncommitted");
    assert_eq!(
        page_records(&dirty),
        v(&[
            (0, "p0"),
            (1, "c1"),
            (2, "c2"),
            (4, "a1"),
            (5, "a2"),
            (7, "o1")
        ]),
        "every record, and never a transaction marker"
    );
    let bad = session.get("/api/topics/ledger-txn/messages?isolation=dirty");
    assert_eq!(bad.status, 400, "{}", bad.body);

    txn.commit_transaction(t).expect("commit");
    let page = get("/api/topics/ledger-txn/messages?seek=oldest");
    assert_eq!(
        page_records(&page),
        v(&[(0, "p0"), (1, "c1"), (2, "c2"), (7, "o1")]),
        "committed now; the aborted records stay hidden"
    );
    let newest = get("/api/topics/ledger-txn/messages?seek=newest&limit=2");
    assert_eq!(page_records(&newest), v(&[(2, "c2"), (7, "o1")]));
}
