//! The client compatibility matrix against a 3-broker cluster (real
//! PostgreSQL and SeaweedFS): `compat/clients/run.py --cluster 3`, each client
//! against a fresh cluster. Results: docs/client-matrix-cluster.md when run by hand.

use std::process::Command;

#[test]
fn every_client_passes_every_scenario_on_a_three_broker_cluster() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new("python3")
        .arg("compat/clients/run.py")
        .args([
            "--cluster",
            "3",
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
        "client matrix on a cluster has failures (see target/compat-clients/results-cluster)"
    );
}
