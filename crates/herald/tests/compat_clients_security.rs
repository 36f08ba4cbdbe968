//! The client compatibility matrix over TLS and SASL with the ACL authorizer:
//! `compat/clients/run.py --security sasl_ssl` (SCRAM-SHA-512 over TLS) and
//! `--security mtls` (an SSL listener requiring client certificates, the
//! principal mapped from the certificate), each client against a fresh broker,
//! plus the `acl_denied` scenario. The PKI is made with the `openssl` CLI.
//! Results: docs/client-matrix-security.md when run by hand.

#[path = "common/matrix.rs"]
mod matrix;

/// Both modes in one test, one after the other (the suites load the machine).
#[test]
fn every_client_passes_every_scenario_over_sasl_ssl_and_mtls() {
    matrix::run_matrix(
        &["--security", "sasl_ssl"],
        "target/compat-clients/results-sasl_ssl",
    );
    matrix::run_matrix(
        &["--security", "mtls"],
        "target/compat-clients/results-mtls",
    );
}
