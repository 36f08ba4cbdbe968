//! librdkafka's own integration tests, the CI selection (`compat/librdkafka/quick.txt`,
//! test-runner -Q), against this build's broker. `.ci/run` builds the suite
//! (`compat/librdkafka/build.sh`); the full sweep is `compat/librdkafka/run.sh`.

use std::process::Command;

#[test]
fn librdkafka_quick_selection_passes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new("bash")
        .arg("compat/librdkafka/run.sh")
        .current_dir(&root)
        .env("HERALD_BIN", env!("CARGO_BIN_EXE_herald"))
        .env("COMPAT_QUICK", "1")
        .env("COMPAT_WRITE_DOC", "0")
        .status()
        .expect("bash");
    assert!(
        status.success(),
        "librdkafka quick selection failed (see target/librdkafka-tests/results)"
    );
}
