//! Five cycles of the crash torture (`scripts/crash-torture.py`): kill -9 of
//! this build's `herald serve` under mixed load (idempotent producer on 12
//! partitions, a compacted topic, a retention topic, two consumer groups
//! committing), each followed by a restart and a check that nothing
//! acknowledged was lost, duplicated or reordered, that committed offsets never
//! went back and that the compacted topic ends with every key's latest value.
//! The 100-cycle run is recorded in docs/reliability.md ("Crash torture").

use std::process::Command;

#[test]
fn five_kill_9_cycles_under_mixed_load_lose_nothing_acknowledged() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("python3")
        .arg(root.join("scripts/crash-torture.py"))
        .args(["--cycles", "5", "--herald", env!("CARGO_BIN_EXE_herald")])
        // A slower load than the long run: a debug broker on a shared machine.
        .args(["--rate", "300"])
        .current_dir(&root)
        .output()
        .expect("python3 with confluent-kafka (tests/python/requirements.txt, see .ci/run)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "the crash torture found violations");
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("crash-torture: OK"))
        .expect("a summary line");
    // The script's own account: five cycles ran and acknowledged records were checked.
    assert!(summary.contains("cycles=5 "), "{summary}");
    assert!(summary.contains("violations=0"), "{summary}");
    let acked: u64 = summary
        .split_whitespace()
        .find_map(|w| w.strip_prefix("records_acked="))
        .and_then(|n| n.parse().ok())
        .expect("records_acked in the summary");
    assert!(acked > 0, "{summary}");
}

/// The checks are not vacuous: when half of a partition's newest segment is cut
/// away between a kill and the restart (a disk that lost acknowledged data),
/// the torture fails and names the missing records.
#[test]
fn the_torture_reports_acknowledged_records_that_a_damaged_disk_lost() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("python3")
        .arg(root.join("scripts/crash-torture.py"))
        .args(["--cycles", "1", "--herald", env!("CARGO_BIN_EXE_herald")])
        .args(["--rate", "300", "--inject-loss"])
        .current_dir(&root)
        .output()
        .expect("python3 with confluent-kafka (tests/python/requirements.txt, see .ci/run)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "the torture must fail");
    assert!(stdout.contains("crash-torture: FAILED"), "{stdout}");
    assert!(
        stdout.contains("VIOLATION: torture-main[0]: acknowledged record at offset"),
        "{stdout}"
    );
}
