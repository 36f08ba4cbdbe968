//! Runs the client compatibility matrix (`compat/clients/run.py`).

use std::process::Command;

/// Runs `compat/clients/run.py` with `extra` arguments against this build's binary.
pub fn run_matrix(extra: &[&str], results: &str) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new("python3")
        .arg("compat/clients/run.py")
        .args(extra)
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
        "client matrix has failures (see {results})"
    );
}
