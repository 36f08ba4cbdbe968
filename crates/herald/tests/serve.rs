//! `herald serve` as a process: configuration by flag, environment and TOML
//! file; clean shutdown on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BrokerProcess, create_topic};
use rdkafka::producer::FutureRecord;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_in_flight_and_closes_logs_cleanly() {
    let mut b = BrokerProcess::start(&[]);
    create_topic(&b, "graceful", 1).await;
    let p = b.producer(&[("acks", "all")]);
    for i in 0..100 {
        let v = format!("v{i}");
        p.send(
            FutureRecord::<(), _>::to("graceful").payload(&v),
            Duration::from_secs(5),
        )
        .await
        .expect("delivered");
    }
    let started = Instant::now();
    b.stop();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped in {:?}",
        started.elapsed()
    );
    let marker = b.data_dir().join("topics/graceful/0/.clean-shutdown");
    assert!(marker.exists(), "the partition log was closed cleanly");
    b.restart();
    let c = b.consumer(&[]);
    use rdkafka::consumer::Consumer;
    let (low, high) = c
        .fetch_watermarks("graceful", 0, Duration::from_secs(5))
        .expect("watermarks");
    assert_eq!((low, high), (0, 100));
}

/// Starts `herald serve` with the given env and args; returns the stderr lines up to "listening".
fn start_with(env: &[(&str, &str)], args: &[&str]) -> (std::process::Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.arg("serve")
        .args(args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut line = String::new();
    let mut reader = BufReader::new(stderr);
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if line.contains("listening") {
            break;
        }
    }
    (child, line)
}

#[test]
fn settings_come_from_flags_env_and_a_toml_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nnum-partitions = 4\nretention-ms = 60000\n",
    )
    .expect("write");
    let data = dir.path().join("data");
    let started = Instant::now();
    let (mut child, line) = start_with(
        &[
            ("HERALD_DATA_DIR", data.to_str().expect("utf8")),
            ("HERALD_CONFIG", config.to_str().expect("utf8")),
        ],
        &["--node-id", "7"],
    );
    assert!(line.contains("listening"), "{line}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "started in {:?}",
        started.elapsed()
    );
    let addr = line
        .split("listen=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("address")
        .to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "--brokers",
            &addr,
            "--format",
            "json",
            "produce",
            "auto",
            "-v",
            "x",
        ])
        .output()
        .expect("produce");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "--brokers",
            &addr,
            "--format",
            "json",
            "topic",
            "describe",
            "auto",
        ])
        .output()
        .expect("describe");
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        d["partitions"].as_array().map(|a| a.len()),
        Some(4),
        "num-partitions from the TOML file"
    );
    let retention = d["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .find(|c| c["name"] == "retention.ms")
        .expect("retention")
        .clone();
    assert_eq!(
        retention["value"], "60000",
        "broker default from the TOML file"
    );
    let info = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--brokers", &addr, "--format", "json", "cluster", "info"])
        .output()
        .expect("info");
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("json");
    assert_eq!(info["controller_id"], 7, "node id from the flag");
    assert!(
        data.join("meta.json").exists(),
        "data dir from the environment"
    );
    let _ = child.kill();
    let _ = child.wait();

    // A bad file is a one-line error and a non-zero exit.
    std::fs::write(&config, "no-such-setting = 1\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--config", config.to_str().expect("utf8")])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("herald: parsing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
