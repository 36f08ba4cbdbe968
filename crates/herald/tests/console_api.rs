//! The console's JSON API on a `herald serve` process agrees with the CLI:
//! group lag per partition equals `herald group describe`, and a reset made
//! through the API is what the CLI then shows.

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
