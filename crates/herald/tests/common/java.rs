//! The Java client's jars, as `compat/clients/run.py --install-only` puts
//! them (`$HERALD_COMPAT_CLIENTS_DIR`, else `target/compat-clients`), and
//! compiling a Java check program against them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn libs_dir() -> PathBuf {
    std::env::var_os("HERALD_COMPAT_CLIENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/compat-clients"))
        .join("java/libs")
}

/// Every jar installed (none when the matrix's clients are not installed).
pub fn jars() -> Vec<String> {
    std::fs::read_dir(libs_dir())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().display().to_string())
                .filter(|p| p.ends_with(".jar"))
                .collect()
        })
        .unwrap_or_default()
}

/// The jars as a classpath; fails the test when kafka-clients is missing.
pub fn classpath() -> String {
    let jars = jars();
    assert!(
        jars.iter().any(|j| j.contains("kafka-clients")),
        "no kafka-clients jar in {}: run `python3 compat/clients/run.py --install-only` \
         (or set HERALD_COMPAT_CLIENTS_DIR)",
        libs_dir().display()
    );
    jars.join(":")
}

/// Compiles `source` (a path from the repository root) against the client
/// jars; returns the classpath to run it with and the directory holding its
/// classes (kept while the returned guard lives).
pub fn compile(source: &str) -> (String, tempfile::TempDir) {
    let cp = classpath();
    let classes = tempfile::tempdir().expect("tempdir");
    let src: &Path = &repo_root().join(source);
    let javac = Command::new("javac")
        .arg("-d")
        .arg(classes.path())
        .arg("-cp")
        .arg(&cp)
        .arg(src)
        .status()
        .expect("javac (a JDK)");
    assert!(javac.success(), "javac failed");
    (format!("{cp}:{}", classes.path().display()), classes)
}
