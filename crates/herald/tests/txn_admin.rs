//! The transactions admin APIs (ListTransactions, DescribeTransactions,
//! DescribeProducers) through real clients, the Java AdminClient 4.3 and the
//! `herald txn` commands, and `herald consume --isolation`, against a real
//! Herald process with a real transactional producer (librdkafka); and their
//! ACLs (`--authorizer acl`, SASL_SSL).

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{BrokerProcess, create_topic};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::Value;

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

fn txn_producer(b: &BrokerProcess, id: &str) -> TxnProducer {
    let p: TxnProducer = b
        .client_config()
        .set("transactional.id", id)
        .set("transaction.timeout.ms", "60000")
        .create()
        .expect("transactional producer");
    p.init_transactions(Duration::from_secs(30))
        .expect("init_transactions");
    p
}

/// Sends `values` to partition `partition` and waits until they are written.
fn send(p: &TxnProducer, topic: &str, partition: i32, values: &[&str]) {
    for v in values {
        p.send(
            BaseRecord::<str, str>::to(topic)
                .partition(partition)
                .key(v)
                .payload(v),
        )
        .map_err(|(e, _)| e)
        .expect("enqueue");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

fn herald(b: &BrokerProcess, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env("HERALD_BROKERS", &b.addr)
        .output()
        .expect("run herald")
}

fn ok(b: &BrokerProcess, args: &[&str]) -> String {
    let out = herald(b, args);
    assert!(
        out.status.success(),
        "herald {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn json(b: &BrokerProcess, args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(b, &all)).expect("valid JSON")
}

/// The cells of the table row whose first cell is `first`.
fn row(table: &str, first: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cells| cells.first().map(String::as_str) == Some(first))
        .unwrap_or_else(|| panic!("no row {first} in:\n{table}"))
}

fn header(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn txn_commands_show_a_transaction_through_its_life() {
    let b = BrokerProcess::start(&[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(create_topic(&b, "txn-cli", 2));

    // No transactional ids yet: only the header.
    let empty = ok(&b, &["txn", "list"]);
    assert_eq!(
        header(&empty),
        [
            "TransactionalId",
            "Coordinator",
            "ProducerId",
            "TransactionState"
        ]
    );
    assert_eq!(empty.lines().count(), 1, "{empty}");
    let unknown = herald(&b, &["txn", "describe", "nobody"]);
    assert!(!unknown.status.success());
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("nobody") && err.contains("TransactionalIdNotFound"),
        "{err}"
    );

    let p = txn_producer(&b, "cli-payments");
    let listed = json(&b, &["txn", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["transactional_id"], "cli-payments");
    assert_eq!(listed[0]["state"], "Empty");
    // The single node (the default --node-id, 0) coordinates every id.
    assert_eq!(listed[0]["coordinator"], 0);
    let pid = listed[0]["producer_id"].as_i64().expect("producer id");

    p.begin_transaction().expect("begin");
    send(&p, "txn-cli", 1, &["a", "b", "c"]);
    let table = ok(&b, &["txn", "list"]);
    assert_eq!(
        row(&table, "cli-payments"),
        ["cli-payments", "0", &pid.to_string(), "Ongoing"]
    );
    // Filters: by state, producer id, duration and pattern.
    let ids = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["txn", "list"];
        all.extend_from_slice(args);
        json(&b, &all)
            .as_array()
            .expect("array")
            .iter()
            .map(|t| t["transactional_id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(ids(&["--state", "Ongoing"]), ["cli-payments"]);
    assert!(ids(&["--state", "CompleteCommit"]).is_empty());
    assert_eq!(ids(&["--producer-id", &pid.to_string()]), ["cli-payments"]);
    assert!(ids(&["--producer-id", &(pid + 1000).to_string()]).is_empty());
    assert!(ids(&["--state", "Ongoing", "--duration-filter", "3600000"]).is_empty());
    assert_eq!(
        ids(&["--transactional-id-pattern", "cli-.*"]),
        ["cli-payments"]
    );
    assert!(ids(&["--transactional-id-pattern", "cli"]).is_empty());

    let d = ok(&b, &["txn", "describe", "cli-payments"]);
    assert_eq!(
        header(&d),
        [
            "CoordinatorId",
            "TransactionalId",
            "ProducerId",
            "ProducerEpoch",
            "TransactionState",
            "TransactionTimeoutMs",
            "CurrentTransactionStartTimeMs",
            "TransactionDurationMs",
            "TopicPartitions"
        ]
    );
    let r = row(&d, "0");
    assert_eq!(r[1], "cli-payments");
    assert_eq!(r[2], pid.to_string());
    assert_eq!(r[4], "Ongoing");
    assert_eq!(r[5], "60000");
    assert!(r[6].parse::<i64>().is_ok_and(|t| t > 0), "{d}");
    assert!(r[7].parse::<i64>().is_ok_and(|t| t >= 0), "{d}");
    assert_eq!(r[8], "txn-cli-1");

    let producers = ok(
        &b,
        &[
            "txn",
            "describe-producers",
            "--topic",
            "txn-cli",
            "--partition",
            "1",
        ],
    );
    assert_eq!(
        header(&producers),
        [
            "ProducerId",
            "ProducerEpoch",
            "LatestCoordinatorEpoch",
            "LastSequence",
            "LastTimestamp",
            "CurrentTransactionStartOffset"
        ]
    );
    let r = row(&producers, &pid.to_string());
    assert_eq!(r[3], "2", "three records: sequences 0..=2");
    assert_eq!(r[5], "0", "the open transaction starts at offset 0");
    let bad = herald(
        &b,
        &[
            "txn",
            "describe-producers",
            "--topic",
            "txn-cli",
            "--partition",
            "7",
        ],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no partition 7"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    p.abort_transaction(Duration::from_secs(30)).expect("abort");
    let after = json(&b, &["txn", "describe", "cli-payments"]);
    assert_eq!(after["state"], "CompleteAbort");
    assert_eq!(after["topic_partitions"], serde_json::json!([]));
    let producers = json(
        &b,
        &[
            "txn",
            "describe-producers",
            "--topic",
            "txn-cli",
            "--partition",
            "1",
        ],
    );
    let me = producers
        .as_array()
        .and_then(|a| a.iter().find(|p| p["producer_id"] == pid))
        .unwrap_or_else(|| panic!("{producers}"));
    assert_eq!(
        me["current_transaction_start_offset"],
        Value::Null,
        "no open transaction after the abort marker"
    );
}

#[test]
fn consume_isolation_read_committed_hides_aborted_and_open_transactions() {
    let b = BrokerProcess::start(&[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(create_topic(&b, "txn-iso", 1));
    let p = txn_producer(&b, "cli-iso");
    p.begin_transaction().expect("begin");
    send(&p, "txn-iso", 0, &["c1", "c2"]);
    p.commit_transaction(Duration::from_secs(30))
        .expect("commit");
    p.begin_transaction().expect("begin");
    send(&p, "txn-iso", 0, &["a1"]);
    p.abort_transaction(Duration::from_secs(30)).expect("abort");
    p.begin_transaction().expect("begin");
    send(&p, "txn-iso", 0, &["o1"]);

    let consume = |extra: &[&str]| {
        let mut args = vec!["consume", "txn-iso", "--from-beginning", "-e"];
        args.extend_from_slice(extra);
        ok(&b, &args)
    };
    assert_eq!(
        consume(&[]),
        "c1\nc2\na1\no1\n",
        "read_uncommitted is the default"
    );
    assert_eq!(
        consume(&["--isolation", "read_uncommitted"]),
        "c1\nc2\na1\no1\n"
    );
    assert_eq!(
        consume(&["--isolation", "read_committed"]),
        "c1\nc2\n",
        "stops at the open transaction, leaves out the aborted one"
    );
    p.commit_transaction(Duration::from_secs(30))
        .expect("commit");
    assert_eq!(consume(&["--isolation", "read_committed"]), "c1\nc2\no1\n");
    let help = ok(&b, &["consume", "--help"]);
    assert!(
        help.contains("read_uncommitted") && help.contains("console consumer"),
        "{help}"
    );
}

#[test]
fn java_admin_client_lists_and_describes_transactions_and_producers() {
    let (cp, _classes) = common::java::compile("tests/python/java/TxnAdminCheck.java");

    let b = BrokerProcess::start(&[]);
    let out = Command::new("java")
        .arg("-cp")
        .arg(&cp)
        .arg("TxnAdminCheck")
        .arg(&b.addr)
        .output()
        .expect("java");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "TxnAdminCheck failed:\n{stdout}\n{}",
        &stderr[stderr.len().saturating_sub(4000)..]
    );
    let line = |prefix: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no '{prefix}' in:\n{stdout}"))
            .trim()
            .to_string()
    };
    assert_eq!(
        line("describe unknown:"),
        "error=TransactionalIdNotFoundException"
    );
    assert_eq!(line("list after init:"), "Empty");
    let init = line("describe after init:");
    assert!(
        init.starts_with("state=Empty ")
            && init.contains(" timeout=60000 ")
            && init.contains(" start=none ")
            && init.contains(" coordinator=0 ")
            && init.ends_with("partitions=[]"),
        "{init}"
    );
    let ongoing = line("list ongoing:");
    let pid = ongoing
        .strip_prefix("Ongoing pid=")
        .unwrap_or_else(|| panic!("{ongoing}"));
    assert!(pid.parse::<i64>().is_ok_and(|p| p >= 0), "{ongoing}");
    let d = line("describe ongoing:");
    assert!(
        d.starts_with(&format!("state=Ongoing pid={pid} "))
            && d.contains(" start=present ")
            && d.contains("partitions=[jtxa-"),
        "{d}"
    );
    assert!(
        d.ends_with("-0]"),
        "only partition 0 is in the transaction: {d}"
    );
    assert_eq!(
        line("producers ongoing:"),
        format!("pid={pid} epoch={} lastSequence=2 txnStart=0", epoch(&d))
    );
    assert_eq!(
        line("filters:"),
        "ongoing=true completeCommit=false pid=true otherPid=false \
         duration100=true duration1h=false pattern=true prefix=false"
    );
    assert_eq!(line("list after abort:"), "CompleteAbort");
    let aborted = line("describe after abort:");
    assert!(
        aborted.starts_with(&format!("state=CompleteAbort pid={pid} "))
            && aborted.ends_with("partitions=[]"),
        "{aborted}"
    );
    assert_eq!(
        line("producers after abort:"),
        format!("pid={pid} epoch={} lastSequence=2 txnStart=none", epoch(&d))
    );
    assert_eq!(line("list after commit:"), "CompleteCommit");
    assert!(
        line("describe after commit:").starts_with("state=CompleteCommit "),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l == "done"), "{stdout}");
}

/// The `epoch=` of a `describe` line.
fn epoch(describe: &str) -> String {
    describe
        .split_whitespace()
        .find_map(|w| w.strip_prefix("epoch="))
        .unwrap_or_else(|| panic!("no epoch in {describe}"))
        .to_string()
}

#[test]
fn txn_admin_apis_show_only_what_the_principal_may_describe() {
    use common::secure::SecureBroker;
    let b = SecureBroker::start(&[]);
    b.create_user("alice", "alice-pw", "SCRAM-SHA-512");
    b.create_user("bob", "bob-pw", "SCRAM-SHA-512");
    b.admin_cli(&["topic", "create", "paid", "-p", "1"]);
    let acl = |args: &[&str]| {
        let mut v = vec!["acl", "create"];
        v.extend_from_slice(args);
        b.admin_cli(&v);
    };
    acl(&[
        "--principal",
        "User:alice",
        "--operation",
        "write,describe",
        "--transactional-id",
        "alice-",
        "--prefixed",
    ]);
    acl(&[
        "--principal",
        "User:alice",
        "--operation",
        "write,read,describe",
        "--topic",
        "paid",
    ]);
    // Bob may describe one of alice's ids, and nothing of the topic.
    acl(&[
        "--principal",
        "User:bob",
        "--operation",
        "describe",
        "--transactional-id",
        "alice-pay",
    ]);

    let alice = |id: &str| -> TxnProducer {
        let p: TxnProducer = b
            .sasl_ssl_config("alice", "alice-pw", "SCRAM-SHA-512")
            .set("transactional.id", id)
            .create()
            .expect("producer");
        p.init_transactions(Duration::from_secs(30))
            .expect("init_transactions");
        p
    };
    let pay = alice("alice-pay");
    let _ship = alice("alice-ship");
    pay.begin_transaction().expect("begin");
    send(&pay, "paid", 0, &["p1"]);

    let bob_pw = b.data.path().join("bob-cli.pw");
    std::fs::write(&bob_pw, "bob-pw").expect("password file");
    let bob = |args: &[&str]| {
        b.cli_as("bob", &bob_pw)
            .args(args)
            .output()
            .expect("herald")
    };
    let ids = |out: &Output| -> Vec<String> {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        v.as_array()
            .expect("array")
            .iter()
            .map(|t| t["transactional_id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        ids(&bob(&["--format", "json", "txn", "list"])),
        ["alice-pay"],
        "ListTransactions lists only the ids bob may DESCRIBE"
    );
    let admin_list = b.admin_cli(&["--format", "json", "txn", "list"]);
    let all: Value = serde_json::from_str(&admin_list).expect("JSON");
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");

    let denied = bob(&["txn", "describe", "alice-ship"]);
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("TransactionalIdAuthorizationFailed"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    let d = bob(&["--format", "json", "txn", "describe", "alice-pay"]);
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    let d: Value = serde_json::from_slice(&d.stdout).expect("JSON");
    assert_eq!(d["state"], "Ongoing");
    assert_eq!(
        d["topic_partitions"],
        serde_json::json!([]),
        "bob may not describe topic paid: its partition is left out"
    );
    let a: Value =
        serde_json::from_str(&b.admin_cli(&["--format", "json", "txn", "describe", "alice-pay"]))
            .expect("JSON");
    assert_eq!(a["topic_partitions"], serde_json::json!(["paid-0"]));

    // DescribeProducers needs READ on the topic (asked of the broker
    // directly: bob's Metadata does not even show the topic).
    let p = bob(&[
        "txn",
        "describe-producers",
        "--topic",
        "paid",
        "--partition",
        "0",
        "--broker-id",
        "0",
    ]);
    assert!(!p.status.success());
    assert!(
        String::from_utf8_lossy(&p.stderr).contains("TopicAuthorizationFailed"),
        "{}",
        String::from_utf8_lossy(&p.stderr)
    );
    let p = b.admin_cli(&[
        "txn",
        "describe-producers",
        "--topic",
        "paid",
        "--partition",
        "0",
    ]);
    assert_eq!(p.lines().count(), 2, "alice-pay's producer: {p}");
    pay.abort_transaction(Duration::from_secs(30))
        .expect("abort");
}
