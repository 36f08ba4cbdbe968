//! The client compatibility matrix against a 3-broker cluster (real
//! PostgreSQL and SeaweedFS): `compat/clients/run.py --cluster 3`, each client
//! against a fresh cluster. Results: docs/client-matrix-cluster.md when run by hand.

#[path = "common/matrix.rs"]
mod matrix;

#[test]
fn every_client_passes_every_scenario_on_a_three_broker_cluster() {
    matrix::run_matrix(&["--cluster", "3"], "target/compat-clients/results-cluster");
}
