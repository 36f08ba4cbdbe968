//! The herald client commands against a real Herald broker: output (text and
//! JSON), exit codes, and readable errors.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::BrokerProcess;
use serde_json::Value;

fn herald(b: &BrokerProcess, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env("HERALD_BROKERS", &b.addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herald");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).expect("stdin");
        }
    }
    child.wait_with_output().expect("output")
}

fn ok(b: &BrokerProcess, args: &[&str], stdin: Option<&str>) -> String {
    let out = herald(b, args, stdin);
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
    serde_json::from_str(&ok(b, &all, None)).expect("valid JSON")
}

#[test]
fn topic_create_describe_produce_consume() {
    let b = BrokerProcess::start(&[]);
    let out = ok(
        &b,
        &[
            "topic",
            "create",
            "shop",
            "-p",
            "2",
            "-c",
            "retention.ms=3600000",
        ],
        None,
    );
    assert!(out.contains("shop") && out.contains("created"), "{out}");

    let d = json(&b, &["topic", "describe", "shop"]);
    assert_eq!(d["partitions"].as_array().map(|a| a.len()), Some(2));
    let retention = d["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .find(|c| c["name"] == "retention.ms")
        .expect("retention.ms")
        .clone();
    assert_eq!(retention["value"], "3600000");
    assert_eq!(retention["source"], "topic");

    // Keyed records, one partition chosen explicitly, read back with a template.
    let produced = ok(
        &b,
        &[
            "produce",
            "shop",
            "-p",
            "1",
            "--key-separator",
            ":",
            "-H",
            "source=test",
        ],
        Some("o1:OrderPlaced\no2:PaymentReceived\n"),
    );
    assert_eq!(produced, "partition 1 offset 0\npartition 1 offset 1\n");
    let consumed = ok(
        &b,
        &[
            "consume",
            "shop",
            "--from-beginning",
            "-e",
            "-f",
            "%p %o %k %v %h\\n",
        ],
        None,
    );
    assert_eq!(
        consumed,
        "1 0 o1 OrderPlaced source=test\n1 1 o2 PaymentReceived source=test\n"
    );

    let lines = ok(
        &b,
        &[
            "--format",
            "json",
            "consume",
            "shop",
            "--from-beginning",
            "-n",
            "2",
        ],
        None,
    );
    let first: Value =
        serde_json::from_str(lines.lines().next().expect("a line")).expect("json line");
    assert_eq!(first["key"], "o1");
    assert_eq!(first["headers"]["source"], "test");

    // Describe shows offsets and sizes.
    let d = json(&b, &["topic", "describe", "shop"]);
    let p1 = &d["partitions"][1];
    assert_eq!(p1["high_watermark"], 2);
    assert!(p1["size_bytes"].as_i64().unwrap_or(0) > 0, "{p1}");

    // Alter a config, then list and delete.
    ok(
        &b,
        &[
            "topic",
            "alter-config",
            "shop",
            "--set",
            "segment.ms=600000",
        ],
        None,
    );
    let d = json(&b, &["topic", "describe", "shop"]);
    assert!(
        d["configs"]
            .as_array()
            .expect("configs")
            .iter()
            .any(|c| c["name"] == "segment.ms" && c["value"] == "600000")
    );
    ok(&b, &["topic", "add-partitions", "shop", "-n", "3"], None);
    let list = json(&b, &["topic", "list"]);
    assert!(
        list.as_array()
            .expect("list")
            .iter()
            .any(|t| t["name"] == "shop" && t["partitions"] == 3)
    );
    ok(&b, &["topic", "delete", "shop"], None);
    let list = json(&b, &["topic", "list"]);
    assert!(
        !list
            .as_array()
            .expect("list")
            .iter()
            .any(|t| t["name"] == "shop")
    );
}

#[test]
fn consume_from_a_timestamp() {
    let b = BrokerProcess::start(&[]);
    ok(&b, &["topic", "create", "clock", "-p", "1"], None);
    ok(&b, &["produce", "clock", "-q"], Some("early-1\nearly-2\n"));
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let cut = herald_broker::now_ms();
    std::thread::sleep(std::time::Duration::from_millis(50));
    ok(&b, &["produce", "clock", "-q"], Some("late-1\nlate-2\n"));
    let out = ok(
        &b,
        &["consume", "clock", "--from-time", &cut.to_string(), "-e"],
        None,
    );
    assert_eq!(out, "late-1\nlate-2\n");
    let out = ok(&b, &["consume", "clock", "--from-time", "-1h", "-e"], None);
    assert_eq!(out.lines().count(), 4);
    let rfc = humantime_rfc3339(cut);
    let out = ok(&b, &["consume", "clock", "--from-time", &rfc, "-e"], None);
    assert_eq!(out, "late-1\nlate-2\n");
}

fn humantime_rfc3339(ms: i64) -> String {
    // Format epoch ms as RFC 3339 with the herald binary's own parser in mind (UTC, millis).
    let secs = ms / 1000;
    let millis = ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

#[test]
fn errors_are_one_line_with_non_zero_exit() {
    let b = BrokerProcess::start(&[]);
    let out = herald(&b, &["topic", "describe", "missing"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim(), "herald: unknown topic 'missing'");

    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--brokers", "127.0.0.1:1", "topic", "list"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("herald: cannot reach the cluster at 127.0.0.1:1"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let out = herald(&b, &["topic", "create"], None);
    assert!(!out.status.success());
    let out = herald(&b, &["produce", "x", "--acks", "2", "-v", "v"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--acks must be all, 1 or 0"));
}

#[test]
fn cluster_info_lists_the_broker_and_api_versions() {
    let b = BrokerProcess::start(&[]);
    let info = json(&b, &["cluster", "info"]);
    assert_eq!(info["controller_id"], 0);
    assert_eq!(info["brokers"][0]["id"], 0);
    assert!(
        info["apis"]
            .as_array()
            .expect("apis")
            .iter()
            .any(|a| a["name"] == "Fetch" && a["max_version"] == 16)
    );
}

#[test]
fn group_describe_shows_lag_and_reset_offsets_moves_the_group() {
    let b = BrokerProcess::start(&[]);
    ok(&b, &["topic", "create", "ledger", "-p", "2"], None);
    ok(
        &b,
        &["produce", "ledger", "-p", "0", "-q"],
        Some("a\nb\nc\nd\ne\n"),
    );
    ok(
        &b,
        &["produce", "ledger", "-p", "1", "-q"],
        Some("f\ng\nh\ni\nj\n"),
    );
    // A group member reads 6 of the 10 records and commits as it leaves.
    let read = ok(
        &b,
        &[
            "consume",
            "ledger",
            "-g",
            "billing",
            "--from-beginning",
            "-n",
            "6",
        ],
        None,
    );
    assert_eq!(read.lines().count(), 6);

    let d = json(&b, &["group", "describe", "billing"]);
    assert_eq!(d["state"], "Empty", "{d}");
    assert_eq!(
        d["total_lag"], 4,
        "10 produced, 6 consumed and committed: {d}"
    );
    let offsets = d["offsets"].as_array().expect("offsets");
    assert_eq!(offsets.len(), 2);
    for o in offsets {
        assert_eq!(o["end_offset"], 5);
        assert_eq!(
            o["lag"].as_i64().unwrap_or(-1),
            5 - o["committed_offset"].as_i64().unwrap_or(-1)
        );
    }
    let list = json(&b, &["group", "list"]);
    assert!(
        list.as_array()
            .expect("groups")
            .iter()
            .any(|g| g["group"] == "billing"),
        "{list}"
    );

    // Dry run by default: nothing moves.
    let plan = json(
        &b,
        &[
            "group",
            "reset-offsets",
            "billing",
            "-t",
            "ledger",
            "--to-earliest",
        ],
    );
    assert_eq!(plan["executed"], false);
    assert!(
        plan["partitions"]
            .as_array()
            .expect("plan")
            .iter()
            .all(|p| p["new"] == 0)
    );
    assert_eq!(json(&b, &["group", "describe", "billing"])["total_lag"], 4);

    ok(
        &b,
        &[
            "group",
            "reset-offsets",
            "billing",
            "-t",
            "ledger",
            "--to-earliest",
            "--execute",
        ],
        None,
    );
    assert_eq!(json(&b, &["group", "describe", "billing"])["total_lag"], 10);
    ok(
        &b,
        &[
            "group",
            "reset-offsets",
            "billing",
            "-t",
            "ledger",
            "--shift-by",
            "3",
            "--execute",
        ],
        None,
    );
    let d = json(&b, &["group", "describe", "billing"]);
    assert_eq!(d["total_lag"], 4, "3 of 5 in each partition: {d}");
    ok(
        &b,
        &[
            "group",
            "reset-offsets",
            "billing",
            "-t",
            "ledger",
            "--to-latest",
            "--execute",
        ],
        None,
    );
    assert_eq!(json(&b, &["group", "describe", "billing"])["total_lag"], 0);

    // Resuming the group reads nothing more; after a reset to offset 4, two records.
    ok(
        &b,
        &[
            "group",
            "reset-offsets",
            "billing",
            "-t",
            "ledger",
            "--to-offset",
            "4",
            "--execute",
        ],
        None,
    );
    let again = ok(&b, &["consume", "ledger", "-g", "billing", "-n", "2"], None);
    let mut lines: Vec<&str> = again.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, vec!["e", "j"]);

    ok(&b, &["group", "delete", "billing"], None);
    let out = herald(&b, &["group", "describe", "billing"], None);
    assert!(!out.status.success(), "deleted group is unknown");
}
