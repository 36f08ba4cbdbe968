//! Runs the Python client suites (kafka-python, confluent-kafka) in
//! `tests/python` with pytest; each module starts its own Herald process from
//! this build's binary.

use std::process::Command;

#[test]
fn python_client_suites_pass() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new("python3")
        .args(["-m", "pytest", "-q", "-x", "tests/python"])
        .current_dir(&root)
        .env("HERALD_BIN", env!("CARGO_BIN_EXE_herald"))
        .status()
        .expect("python3 with pytest, kafka-python and confluent-kafka (see .ci/run)");
    assert!(status.success(), "pytest failed");
}
