//! The client compatibility matrix (kcat, confluent-kafka, kafka-python,
//! aiokafka, kafkajs, Java kafka-clients 4.3) against this build's broker:
//! `compat/clients/run.py`, each client against a fresh Herald process.
//! `.ci/run` installs the clients (`run.py --install-only`).

#[path = "common/matrix.rs"]
mod matrix;

#[test]
fn every_client_passes_every_scenario() {
    matrix::run_matrix(&[], "target/compat-clients/results");
}
