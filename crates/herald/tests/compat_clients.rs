//! The client compatibility matrix (kcat, confluent-kafka, kafka-python,
//! aiokafka, kafkajs, Java kafka-clients 4.3) against this build's broker:
//! `compat/clients/run.py`, each client against a fresh Herald process.
//! `.ci/run` installs the clients (`run.py --install-only`).

use std::process::Command;

#[test]
fn every_client_passes_every_scenario() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new("python3")
        .arg("compat/clients/run.py")
        .args([
            "--no-install",
            "--no-doc",
            "--herald-bin",
            env!("CARGO_BIN_EXE_herald"),
        ])
        .current_dir(&root)
        .status()
        .expect("python3 (run .ci/run first to install the clients)");
    assert!(
        status.success(),
        "client matrix has failures (see target/compat-clients/results)"
    );
}
