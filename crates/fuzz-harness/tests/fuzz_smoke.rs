//! A bounded coverage-guided run of every fuzz target, in `cargo test`.
//!
//! Builds the cargo-fuzz crate (`fuzz/`) with cargo itself, using the flags
//! `cargo fuzz build -s none` passes to rustc (cargo-fuzz 0.13.2,
//! src/project.rs: sancov module pass, inline 8-bit counters, PC table,
//! compare tracing, stack depth, `--cfg fuzzing`, debug assertions), so CI
//! needs no `cargo install cargo-fuzz` (about 6 minutes per fresh machine).
//! Two differences, both to build in less time at some cost in executions
//! per second: cargo-fuzz also forces `-Ccodegen-units=1`, and the smoke
//! run builds with `fuzz/Cargo.toml`'s `smoke` profile (dependencies at
//! opt-level 1, Herald's crates at 3).
//!
//! Then runs each target for `HERALD_FUZZ_SMOKE_SECONDS` (default 8; CI time is bounded, the long runs are in docs/reliability.md) from
//! its committed corpus, with libFuzzer's RSS limit and a 10 s per-input
//! timeout, and fails on any crash, OOM or timeout, printing the saved input.
//! `HERALD_FUZZ_SMOKE=0` skips it (printing that it did).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use herald_fuzz_harness::TARGETS;

/// `cargo fuzz build -s none`'s RUSTFLAGS, less `-Ccodegen-units=1`.
const FUZZ_RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing \
    -Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
    -Cllvm-args=-sanitizer-coverage-stack-depth \
    -Cdebug-assertions";

const TRIPLE: &str = "x86_64-unknown-linux-gnu";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn seconds() -> u64 {
    std::env::var("HERALD_FUZZ_SMOKE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

#[test]
fn every_fuzz_target_runs_without_a_crash() {
    if std::env::var("HERALD_FUZZ_SMOKE").is_ok_and(|v| v == "0") {
        eprintln!("fuzz smoke run skipped: HERALD_FUZZ_SMOKE=0");
        return;
    }
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        eprintln!("fuzz smoke run skipped: libFuzzer builds are set up for x86_64 Linux only");
        return;
    }
    let fuzz = repo().join("fuzz");
    let target_dir = std::env::var("HERALD_FUZZ_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| fuzz.join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    let status = Command::new(&cargo)
        .args(["build", "--profile", "smoke", "--bins", "--target", TRIPLE])
        .arg("--manifest-path")
        .arg(fuzz.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", FUZZ_RUSTFLAGS)
        // The test's own environment may carry flags for the workspace build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the fuzz targets failed");
    eprintln!(
        "fuzz targets built in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let bin_dir = target_dir.join(TRIPLE).join("smoke");
    let work = tempfile::Builder::new()
        .prefix("herald-fuzz-smoke-")
        .tempdir()
        .expect("tmp");
    let mut failures = Vec::new();
    for target in TARGETS {
        let corpus = work.path().join("corpus").join(target);
        let artifacts = work.path().join("artifacts").join(target);
        std::fs::create_dir_all(&corpus).expect("mkdir");
        std::fs::create_dir_all(&artifacts).expect("mkdir");
        let run_started = Instant::now();
        // New inputs go to the temporary corpus; the committed one is only read.
        let output = Command::new(bin_dir.join(target))
            .arg(format!("-max_total_time={}", seconds()))
            .args(["-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1"])
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg(&corpus)
            .arg(fuzz.join("corpus").join(target))
            .env(
                "TMPDIR",
                if Path::new("/dev/shm").is_dir() {
                    "/dev/shm"
                } else {
                    "/tmp"
                },
            )
            .output()
            .expect("the fuzz target runs");
        let log = String::from_utf8_lossy(&output.stderr);
        let runs = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map(|n| n.trim().to_string())
            .unwrap_or_else(|| "?".into());
        eprintln!(
            "{target}: {runs} inputs in {:.0} s",
            run_started.elapsed().as_secs_f64()
        );
        if !output.status.success() {
            let saved: Vec<String> = std::fs::read_dir(&artifacts)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.path().display().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            failures.push(format!(
                "{target} failed ({}); saved inputs {saved:?}\n{}",
                output.status,
                tail.join("\n")
            ));
            // Keep the crash for the regression replay: copy it into fuzz/artifacts.
            for path in saved {
                let p = Path::new(&path);
                let dest = fuzz.join("artifacts").join(target);
                let _ = std::fs::create_dir_all(&dest);
                if let Some(name) = p.file_name() {
                    let _ = std::fs::copy(p, dest.join(name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
