//! sarama (Debian's golang-github-shopify-sarama-dev, 1.22.1) against a real
//! broker: with its default config (Version V0_8_2_0) it reads offsets with
//! ListOffsets v0 and commits with OffsetCommit v1 through its default offset
//! manager; its consumer group (V0_11_0_0, the first version with record
//! batches) consumes and commits. The Go program is
//! tests/go/sarama-offsets/main.go, built here offline in GOPATH mode.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::BrokerProcess;

/// Builds the Go program; None (the test is skipped) without `go` or sarama.
fn build() -> Option<PathBuf> {
    let sarama = "/usr/share/gocode/src/github.com/Shopify/sarama";
    if Command::new("go").arg("version").output().is_err() || !std::path::Path::new(sarama).exists()
    {
        eprintln!(
            "SKIPPED: needs `go` and Debian's golang-github-shopify-sarama-dev (.ci/run installs them)"
        );
        return None;
    }
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/go/sarama-offsets");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sarama-offsets");
    let gopath = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gopath");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        // Debian's Go sources: GOPATH mode, no module proxy, no network.
        .env("GO111MODULE", "off")
        .env("GOPATH", format!("/usr/share/gocode:{}", gopath.display()))
        .env("GOCACHE", gopath.join("cache"))
        .env("GOFLAGS", "")
        .status()
        .expect("run go build");
    assert!(status.success(), "go build of sarama-offsets failed");
    Some(out)
}

fn run(bin: &PathBuf, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .output()
        .expect("run sarama-offsets");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "sarama-offsets {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{out}"))
}

#[test]
fn sarama_with_its_default_config_commits_offsets() {
    let Some(bin) = build() else { return };
    let b = BrokerProcess::start(&[]);
    let topic = "sarama-topic";
    let status = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--brokers", &b.addr, "topic", "create", topic, "-p", "1"])
        .status()
        .expect("herald topic create");
    assert!(status.success());

    // The consumer group: produces 5, consumes them, commits 5.
    let out = run(&bin, &["group", &b.addr, topic, "sarama-group", "5"]);
    assert_eq!(value(&out, "consumed"), "5", "{out}");
    assert_eq!(value(&out, "committed"), "5", "{out}");

    // The default config: ListOffsets v0 sees the 5, nothing committed yet
    // for this group, a commit of 3 (OffsetCommit v1) reads back as 3.
    let out = run(&bin, &["default", &b.addr, topic, "sarama-default", "3"]);
    assert_eq!(value(&out, "version"), "0.8.2.0", "{out}");
    assert_eq!(value(&out, "newest"), "5", "{out}");
    // OffsetNewest when nothing is committed (sarama's Offsets.Initial).
    assert_eq!(value(&out, "initial"), "-1", "{out}");
    assert_eq!(value(&out, "committed"), "3", "{out}");
    // A default-config producer sends Produce v0 (message format v0): refused
    // with UNSUPPORTED_VERSION, which sarama reports as such.
    assert!(
        value(&out, "produce-v0").contains("version of API is not supported"),
        "{out}"
    );
    // A second run resumes from the commit.
    let out = run(&bin, &["default", &b.addr, topic, "sarama-default", "4"]);
    assert_eq!(value(&out, "initial"), "3", "{out}");
    assert_eq!(value(&out, "committed"), "4", "{out}");
}
