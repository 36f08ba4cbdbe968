//! librdkafka's own integration tests against this build's broker: the CI
//! selection (`compat/librdkafka/quick.txt`, test-runner -Q), two transaction
//! tests that do nothing under -Q, and the security tests
//! (`compat/librdkafka/security.txt`: TLS, SASL, ACLs). `.ci/run` builds
//! the suite (`compat/librdkafka/build.sh`); the full sweep is
//! `compat/librdkafka/run.sh`, the whole security selection
//! `COMPAT_SECURITY=1 compat/librdkafka/run.sh`.

use std::process::Command;
use std::sync::Mutex;

/// The two selections run one after the other: both are timing-sensitive on
/// small machines, and the security run pins its broker and tests to separate
/// CPUs.
static SERIAL: Mutex<()> = Mutex::new(());

fn run(envs: &[(&str, &str)]) -> std::process::ExitStatus {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut cmd = Command::new("bash");
    cmd.arg("compat/librdkafka/run.sh")
        .current_dir(&root)
        .env("HERALD_BIN", env!("CARGO_BIN_EXE_herald"))
        .env("COMPAT_WRITE_DOC", "0");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.status().expect("bash")
}

#[test]
fn librdkafka_quick_selection_passes() {
    let status = run(&[("COMPAT_QUICK", "1")]);
    assert!(
        status.success(),
        "librdkafka quick selection failed (see target/librdkafka-tests/results)"
    );
}

/// 0061 consumer_lag (its second half: lag behind a transactional producer,
/// measured to the last stable offset) and 0137 barrier_batch_consume (its
/// "control msgs flow" sub-test: batch consume across commit markers) return
/// at once under test-runner -Q, so they run here in full mode; every row must
/// pass (COMPAT_STRICT). About 1.5 minutes on 2 cores.
#[test]
fn librdkafka_transaction_selection_passes() {
    let status = run(&[("COMPAT_TESTS", "0061,0137"), ("COMPAT_STRICT", "1")]);
    assert!(
        status.success(),
        "librdkafka 0061/0137 failed (see target/librdkafka-tests/results/*-full)"
    );
}

/// 0097 ssl_verify, 0115 producer_auth, 0119 consumer_auth, 0133 ssl_keys,
/// 0135 sasl_credentials and 0142 reauthentication under their security.txt
/// profiles (about 2 minutes on 2 cores); every row must meet its security.txt
/// expectation. The rest of security.txt (0081's ACL sub-tests, 0109) runs
/// with the whole selection.
#[test]
fn librdkafka_security_selection_passes() {
    let status = run(&[
        ("COMPAT_SECURITY", "1"),
        ("COMPAT_TESTS", "0097,0115,0119,0133,0135,0142"),
    ]);
    assert!(
        status.success(),
        "librdkafka security selection failed (see target/librdkafka-tests/results/*-security)"
    );
}
