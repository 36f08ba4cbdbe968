//! The transaction coordinator: transactional ids, their producer ids and
//! epochs, and the state machine of each transaction (Kafka's
//! `TransactionCoordinator` and `TransactionStateManager`).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// A transaction's state, as Kafka names it (ListTransactions,
/// DescribeTransactions, `kafka-transactions.sh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// One transactional id (ListTransactions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
    /// When the open transaction began (ms since the epoch), -1 if none.
    pub start_time_ms: i64,
}

/// One transactional id in full (DescribeTransactions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub state: TxnState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// When the open transaction began (ms since the epoch), -1 if none.
    pub start_time_ms: i64,
    /// The partitions in the open transaction, by topic.
    pub partitions: BTreeMap<String, Vec<i32>>,
}

/// The coordinator of every transactional id this broker owns.
#[derive(Default)]
pub struct TransactionCoordinator {
    state: Mutex<BTreeMap<String, TxnDescription>>,
}

impl TransactionCoordinator {
    /// Every transactional id known (ListTransactions filters this).
    pub fn list(&self) -> Vec<TxnListing> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.values()
            .map(|d| TxnListing {
                transactional_id: d.transactional_id.clone(),
                producer_id: d.producer_id,
                state: d.state,
                start_time_ms: d.start_time_ms,
            })
            .collect()
    }

    /// One transactional id, None if unknown.
    pub fn describe(&self, transactional_id: &str) -> Option<TxnDescription> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.get(transactional_id).cloned()
    }
}
