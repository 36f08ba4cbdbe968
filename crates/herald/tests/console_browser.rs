//! The console in a real browser: a real broker with its HTTP server on an
//! ephemeral port, data written by real clients (rdkafka, the shop example on
//! the events SDK), then crates/console/tests/browser/console.mjs clicks
//! through every page with playwright-core driving Debian's chromium and
//! checks what it sees against kcat and `herald group describe`.
//!
//! Needs node, `npm ci --prefix crates/console/tests/browser` and
//! /usr/bin/chromium (.ci/run installs them). HERALD_BROWSER_TESTS=0 skips it.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BrokerProcess, create_topic};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "orders";
const GROUP: &str = "billing";
const RECORDS: i32 = 20;
/// A group with one member subscribed to TOPIC during the whole run.
const LIVE_GROUP: &str = "live-readers";
const LIVE_CLIENT_ID: &str = "live-reader-1";
/// The seeding producer's client id: the event flow shows it → orders → billing.
const SEED_CLIENT_ID: &str = "seed-producer";
const PARTITIONS: i32 = 3;
/// The whole browser run; the scenarios take well under a minute.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `http listening on http://127.0.0.1:PORT ...` from the broker's log.
fn http_addr(b: &BrokerProcess) -> String {
    let line = b
        .wait_log(&["http listening on http://"])
        .expect("the broker printed its HTTP address");
    let at = line.find("http://").expect("an http:// address") + "http://".len();
    line[at..]
        .split(|c: char| c.is_whitespace() || c == '"')
        .next()
        .expect("address")
        .to_string()
}

/// Waits for `child`, killing it past `timeout`; returns (success, stdout+stderr).
fn wait_output(mut child: std::process::Child, timeout: Duration) -> (bool, String) {
    let mut out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = reader.join().unwrap_or_default();
    match status {
        Some(s) => (s.success(), text),
        None => (
            false,
            format!("{text}\nkilled: the browser tests ran past {SCRIPT_TIMEOUT:?}"),
        ),
    }
}

/// 20 JSON records keyed order-0..order-19 with totals 0, 10, ..., 190 and an
/// eventType header, spread over the partitions; then group `billing` commits
/// 4, 3 and 2 on them and has no members (so it can be reset).
async fn seed(b: &BrokerProcess) {
    create_topic(b, TOPIC, PARTITIONS).await;
    let producer = b.producer(&[("acks", "all"), ("client.id", SEED_CLIENT_ID)]);
    for i in 0..RECORDS {
        let key = format!("order-{i}");
        let value = format!(
            r#"{{"eventType":"OrderPlaced","order_id":"{key}","total":{},"items":[{{"sku":"sku-{i}","qty":1}}],"paid":false,"note":null}}"#,
            i * 10
        );
        producer
            .send(
                FutureRecord::to(TOPIC)
                    .partition(i % PARTITIONS)
                    .key(&key)
                    .payload(&value)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "eventType",
                        value: Some("OrderPlaced"),
                    })),
                Duration::from_secs(10),
            )
            .await
            .expect("produced");
    }
    let consumer = b.consumer(&[("group.id", GROUP)]);
    let mut tpl = TopicPartitionList::new();
    for (p, o) in [(0, 4), (1, 3), (2, 2)] {
        tpl.add_partition_offset(TOPIC, p, Offset::Offset(o))
            .expect("offset");
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .expect("group billing committed");
}

#[test]
fn console_pages_in_chromium() {
    if !browser_tests_enabled() {
        return;
    }
    let b = BrokerProcess::start_with_env(
        &["--num-partitions", "3"],
        &[("HERALD_HTTP_LISTEN".into(), "127.0.0.1:0".into())],
        "127.0.0.1:0",
    );
    let http = http_addr(&b);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(seed(&b));
    // The shop's seven services against this broker, so the event flow has
    // them inside its window (the scenarios check it first); 100 orders
    // dead-letter one (order 99).
    let report = rt
        .block_on(shop::run_shop(shop::ShopOptions {
            brokers: b.addr.clone(),
            orders: 100,
            show: 0,
            partitions: 3,
            quiet: true,
        }))
        .expect("the shop ran");
    assert!(report.dead_lettered >= 1, "{report:?}");

    // A group with a live member for the whole run: the group page shows its
    // client id, host and assignment, and refuses a reset while it is there.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let member = {
        let consumer = b.consumer(&[
            ("group.id", LIVE_GROUP),
            ("client.id", LIVE_CLIENT_ID),
            ("session.timeout.ms", "10000"),
        ]);
        let stop = stop.clone();
        std::thread::spawn(move || {
            consumer.subscribe(&[TOPIC]).expect("subscribe");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = consumer.poll(Duration::from_millis(100));
            }
        })
    };
    run_script(
        &[
            ("BASE_URL", format!("http://{http}")),
            ("BOOTSTRAP", b.addr.clone()),
            ("LIVE_GROUP", LIVE_GROUP.into()),
            ("LIVE_CLIENT_ID", LIVE_CLIENT_ID.into()),
            ("TOPIC", TOPIC.into()),
            ("GROUP", GROUP.into()),
            ("SHOP", "1".into()),
            ("SEED_CLIENT_ID", SEED_CLIENT_ID.into()),
        ],
        &b.log,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = member.join();
}

/// With SASL listeners the console asks for the same credentials: the login
/// page, a refused password, the user's session and its CSRF token, logout.
#[test]
fn console_login_in_chromium() {
    if !browser_tests_enabled() {
        return;
    }
    let b = common::secure::SecureBroker::start(&["--http-listen", "127.0.0.1:0"]);
    let http = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = b.log.lock().ok().and_then(|l| {
                l.iter()
                    .find_map(|line| line.split("http listening on http://").nth(1))
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_string)
            });
            if let Some(addr) = found {
                break addr;
            }
            assert!(Instant::now() < deadline, "no http listening line");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    run_script(
        &[
            ("BASE_URL", format!("http://{http}")),
            ("SUITE", "auth".into()),
            ("LOGIN_USER", "admin".into()),
            ("LOGIN_PASSWORD", common::secure::ADMIN_PASSWORD.into()),
        ],
        &b.log,
    );
}

fn browser_tests_enabled() -> bool {
    if std::env::var("HERALD_BROWSER_TESTS").as_deref() == Ok("0") {
        eprintln!("console_browser: skipped (HERALD_BROWSER_TESTS=0)");
        return false;
    }
    let tests = repo_root().join("crates/console/tests/browser");
    assert!(
        tests.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci --prefix crates/console/tests/browser` \
         (or set HERALD_BROWSER_TESTS=0 to skip the browser tests)"
    );
    assert!(
        Path::new(&chromium()).exists(),
        "{} is missing: apt-get install chromium (or set HERALD_BROWSER_TESTS=0)",
        chromium()
    );
    true
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Runs console.mjs with `vars`, prints its output, fails the test if any
/// scenario failed.
fn run_script(vars: &[(&str, String)], broker_log: &std::sync::Mutex<Vec<String>>) {
    let root = repo_root();
    let tests = root.join("crates/console/tests/browser");
    let child = Command::new("node")
        .arg(tests.join("console.mjs"))
        .current_dir(&tests)
        .env("HERALD_BIN", env!("CARGO_BIN_EXE_herald"))
        // Under target/ by default, so a test run leaves tracked files alone;
        // `HERALD_SCREENSHOT_DIR=$PWD/docs/console` regenerates the docs' ones.
        .env(
            "SCREENSHOT_DIR",
            std::env::var_os("HERALD_SCREENSHOT_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots")
                }),
        )
        .env("CHROMIUM", chromium())
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // One stream, in order: the script's own lines and node's errors.
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node is installed");
    let (ok, output) = wait_output(child, SCRIPT_TIMEOUT);
    println!("{output}");
    let tail: Vec<String> = broker_log
        .lock()
        .map(|l| l.iter().rev().take(20).cloned().collect())
        .unwrap_or_default();
    assert!(
        ok,
        "the browser tests failed (output above; broker log, newest first: {tail:?})"
    );
    assert!(
        output.contains(" passed, 0 failed"),
        "the script reported its scenarios: {output}"
    );
}
