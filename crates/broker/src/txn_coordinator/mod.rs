//! The transaction coordinator: transactional ids, their producer ids and
//! epochs, and the state machine of each transaction (Kafka's
//! `TransactionCoordinator` and `TransactionStateManager`, KIP-98).
//!
//! ```text
//! Empty ──AddPartitions/AddOffsets──▶ Ongoing ──EndTxn──▶ PrepareCommit|PrepareAbort
//!   ▲                                   │ timeout: epoch bumped (fenced) │ markers written to
//!   │                                   └──────────▶ PrepareAbort        │ every partition, offsets
//!   └──InitProducerId (epoch bumped)◀── CompleteCommit|CompleteAbort ◀───┘ committed if COMMIT
//! ```
//!
//! Each change is appended to the durable log (`store.rs`) and fsynced before
//! it is answered. The decision to commit or abort (Prepare*) is durable
//! before any marker is written, so a crash in the middle is finished at the
//! next start (`tick` completes every Prepare* it finds): a committed
//! transaction stays committed, an aborted one aborted.
//!
//! Ordering against Produce (KIP-890 part 1): a transactional produce is
//! verified and its append called under the transactional id's lock, and
//! EndTxn switches the state to Prepare* under the same lock before any marker
//! is written; appends are ordered when called, so no verified batch can land
//! after its transaction's marker (no hanging transaction).
//!
//! The single-node engine only: in cluster mode the coordinator is not
//! opened and transactional producers are refused with a clear error.

pub mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::group_coordinator::offset_store::OffsetValue;
use crate::storage::TxnMarker;
use store::{TxnMeta, TxnStore};

/// Bound on how long one marker write may take before the completion is
/// retried by the timer.
const MARKER_WAIT_MAX: Duration = Duration::from_secs(60);

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

    fn preparing(self) -> bool {
        matches!(
            self,
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
        )
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

type Entry = Arc<Mutex<TxnMeta>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The limits the coordinator works within (from `BrokerConfig`).
#[derive(Debug, Clone, Copy)]
pub struct TxnLimits {
    pub max_timeout_ms: i32,
    pub ids_max: usize,
    pub partitions_max: usize,
    pub id_expiration_ms: i64,
}

impl Default for TxnLimits {
    fn default() -> Self {
        TxnLimits::from_config(&BrokerConfig::default())
    }
}

impl TxnLimits {
    pub fn from_config(c: &BrokerConfig) -> TxnLimits {
        TxnLimits {
            max_timeout_ms: i32::try_from(c.transaction_max_timeout.as_millis())
                .unwrap_or(i32::MAX),
            ids_max: c.transactional_ids_max,
            partitions_max: c.transaction_partitions_max,
            id_expiration_ms: i64::try_from(c.transactional_id_expiration.as_millis())
                .unwrap_or(i64::MAX),
        }
    }
}

/// The coordinator of every transactional id this broker owns.
#[derive(Default)]
pub struct TransactionCoordinator {
    /// Lock order: `ids` is never held while an entry, `store` or `pending`
    /// is taken; an entry may be held while `store` or `pending` is taken.
    ids: Mutex<HashMap<String, Entry>>,
    /// None until `open` (and for good in cluster mode).
    store: Mutex<Option<TxnStore>>,
    /// group -> transactional ids holding offsets for it (require_stable).
    pending: Mutex<HashMap<String, BTreeSet<String>>>,
    limits: Mutex<TxnLimits>,
}

/// Kafka's answer for a producer id or epoch that does not match.
fn check_producer(m: &TxnMeta, producer_id: i64, epoch: i16) -> Result<(), ResponseError> {
    if m.producer_id != producer_id {
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    if m.producer_epoch != epoch {
        return Err(ResponseError::ProducerFenced);
    }
    Ok(())
}

/// A transaction log write that failed: retriable for the client.
fn store_error(e: herald_log::LogError) -> ResponseError {
    tracing::error!(error = %e, "transaction state not persisted");
    ResponseError::CoordinatorNotAvailable
}

impl TransactionCoordinator {
    /// Opens the transaction state log under the data directory and replays it.
    pub fn open(&self, config: &BrokerConfig) -> anyhow::Result<()> {
        let (store, live) = TxnStore::open(&config.data_dir)?;
        let mut pending = lock(&self.pending);
        let mut ids = lock(&self.ids);
        let mut prepared = 0;
        for (id, m) in live {
            for (g, _, _) in m.offsets.keys() {
                pending.entry(g.clone()).or_default().insert(id.clone());
            }
            prepared += usize::from(m.state.preparing());
            ids.insert(id, Arc::new(Mutex::new(m)));
        }
        if !ids.is_empty() {
            tracing::info!(
                transactional_ids = ids.len(),
                prepared,
                "transaction state loaded"
            );
        }
        *lock(&self.limits) = TxnLimits::from_config(config);
        *lock(&self.store) = Some(store);
        Ok(())
    }

    /// The transaction state log (served as `__transaction_state`), once opened.
    pub fn internal_log(&self) -> Option<Arc<crate::partition::Partition>> {
        lock(&self.store).as_ref().map(|s| s.partition())
    }

    /// Whether transactions are served (the single-node engine).
    pub fn enabled(&self) -> bool {
        lock(&self.store).is_some()
    }

    pub fn close(&self) {
        if let Some(s) = lock(&self.store).as_ref() {
            s.close();
        }
    }

    fn limits(&self) -> TxnLimits {
        *lock(&self.limits)
    }

    fn entry(&self, id: &str) -> Option<Entry> {
        lock(&self.ids).get(id).cloned()
    }

    /// Appends a new state for `id` (under its entry's lock); the offset to
    /// wait for.
    fn persist(
        &self,
        id: &str,
        meta: Option<&TxnMeta>,
    ) -> Result<(i64, Arc<crate::partition::Partition>), ResponseError> {
        let st = lock(&self.store);
        let Some(store) = st.as_ref() else {
            return Err(ResponseError::CoordinatorNotAvailable);
        };
        let end = store.append(id, meta).map_err(store_error)?;
        Ok((end, store.partition()))
    }

    async fn wait(
        (end, log): (i64, Arc<crate::partition::Partition>),
    ) -> Result<(), ResponseError> {
        TxnStore::wait_durable(log, end).await.map_err(store_error)
    }

    /// InitProducerId with a transactional id: the producer id and the new
    /// epoch. An open transaction is aborted first (its producer fenced).
    pub async fn init_producer_id(
        &self,
        broker: &Arc<Broker>,
        id: &str,
        timeout_ms: i32,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<(i64, i16), ResponseError> {
        let limits = self.limits();
        if timeout_ms <= 0 || timeout_ms > limits.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        if !self.enabled() {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let entry = match self.entry(id) {
            Some(e) => e,
            None => {
                let pid = broker.allocate_producer_id().await.map_err(|e| {
                    tracing::error!(error = %e, "cannot persist the producer id block");
                    ResponseError::CoordinatorNotAvailable
                })?;
                let now = crate::now_ms();
                let fresh = {
                    let mut ids = lock(&self.ids);
                    if let Some(e) = ids.get(id) {
                        Err(e.clone())
                    } else if ids.len() >= limits.ids_max {
                        tracing::warn!(
                            max = limits.ids_max,
                            "new transactional id refused: too many"
                        );
                        return Err(ResponseError::CoordinatorNotAvailable);
                    } else {
                        let e = Arc::new(Mutex::new(TxnMeta::new(pid, timeout_ms, now)));
                        ids.insert(id.to_string(), e.clone());
                        Ok(e)
                    }
                };
                match fresh {
                    Ok(e) => {
                        let w = {
                            let m = lock(&e);
                            self.persist(id, Some(&m))
                        };
                        match w {
                            Ok(w) => Self::wait(w).await?,
                            Err(err) => {
                                lock(&self.ids).remove(id);
                                return Err(err);
                            }
                        }
                        tracing::debug!(
                            transactional_id = id,
                            producer_id = pid,
                            "new transactional id"
                        );
                        return Ok((pid, 0));
                    }
                    Err(existing) => existing,
                }
            }
        };
        // At most two rounds: abort an open transaction, then bump.
        for round in 0..3 {
            enum Next {
                Abort(i64, Arc<crate::partition::Partition>),
                Done((i64, Arc<crate::partition::Partition>), (i64, i16)),
                NewId,
            }
            let next = {
                let mut m = lock(&entry);
                if m.state.preparing() {
                    return Err(ResponseError::ConcurrentTransactions);
                }
                // KIP-360: a producer that names itself must be the current one.
                if round == 0
                    && producer_id >= 0
                    && (producer_id != m.producer_id || producer_epoch != m.producer_epoch)
                {
                    return Err(ResponseError::ProducerFenced);
                }
                let now = crate::now_ms();
                let mut new = m.clone();
                new.update_ms = now;
                if m.state == TxnState::Ongoing {
                    // Fence the old producer and abort what it left open.
                    new.producer_epoch = m.producer_epoch.saturating_add(1);
                    new.state = TxnState::PrepareAbort;
                    let w = self.persist(id, Some(&new))?;
                    *m = new;
                    Next::Abort(w.0, w.1)
                } else if m.producer_epoch >= i16::MAX - 1 {
                    Next::NewId
                } else {
                    new.producer_epoch = m.producer_epoch + 1;
                    new.timeout_ms = timeout_ms;
                    new.state = TxnState::Empty;
                    new.start_ms = -1;
                    new.partitions.clear();
                    new.groups.clear();
                    new.offsets.clear();
                    let w = self.persist(id, Some(&new))?;
                    let answer = (new.producer_id, new.producer_epoch);
                    *m = new;
                    Next::Done(w, answer)
                }
            };
            match next {
                Next::Done(w, answer) => {
                    Self::wait(w).await?;
                    return Ok(answer);
                }
                Next::Abort(end, log) => {
                    Self::wait((end, log)).await?;
                    tracing::info!(
                        transactional_id = id,
                        "InitProducerId: aborting the open transaction of the previous producer"
                    );
                    if !self.complete(broker, id).await {
                        return Err(ResponseError::ConcurrentTransactions);
                    }
                }
                Next::NewId => {
                    // The epoch is exhausted: a new producer id, epoch 0.
                    let pid = broker.allocate_producer_id().await.map_err(|e| {
                        tracing::error!(error = %e, "cannot persist the producer id block");
                        ResponseError::CoordinatorNotAvailable
                    })?;
                    let w = {
                        let mut m = lock(&entry);
                        if m.state.preparing() || m.state == TxnState::Ongoing {
                            return Err(ResponseError::ConcurrentTransactions);
                        }
                        let new = TxnMeta::new(pid, timeout_ms, crate::now_ms());
                        let w = self.persist(id, Some(&new))?;
                        *m = new;
                        w
                    };
                    Self::wait(w).await?;
                    return Ok((pid, 0));
                }
            }
        }
        Err(ResponseError::ConcurrentTransactions)
    }

    /// Starts the transaction if none is open, and adds to it (under the
    /// entry's lock); returns the write to wait for, if any.
    fn begin_and<F>(
        &self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        change: F,
    ) -> Result<Option<(i64, Arc<crate::partition::Partition>)>, ResponseError>
    where
        F: FnOnce(&mut TxnMeta) -> Result<bool, ResponseError>,
    {
        let Some(entry) = self.entry(id) else {
            return Err(ResponseError::InvalidProducerIdMapping);
        };
        let mut m = lock(&entry);
        check_producer(&m, producer_id, producer_epoch)?;
        if m.state.preparing() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if m.state == TxnState::Dead {
            return Err(ResponseError::InvalidTxnState);
        }
        let now = crate::now_ms();
        let mut new = m.clone();
        if m.state != TxnState::Ongoing {
            new.state = TxnState::Ongoing;
            new.start_ms = now;
            new.partitions.clear();
            new.groups.clear();
            new.offsets.clear();
        }
        let changed = change(&mut new)?;
        if !changed && m.state == TxnState::Ongoing {
            return Ok(None);
        }
        new.update_ms = now;
        let w = self.persist(id, Some(&new))?;
        *m = new;
        Ok(Some(w))
    }

    /// AddPartitionsToTxn.
    pub async fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), ResponseError> {
        let max = self.limits().partitions_max;
        let w = self.begin_and(id, producer_id, producer_epoch, |m| {
            let before = m.partitions.len();
            m.partitions.extend(partitions.iter().cloned());
            if m.partitions.len() > max {
                tracing::warn!(
                    transactional_id = id,
                    max,
                    "transaction refused: too many partitions"
                );
                return Err(ResponseError::InvalidRequest);
            }
            Ok(m.partitions.len() != before)
        })?;
        if let Some(w) = w {
            Self::wait(w).await?;
        }
        Ok(())
    }

    /// AddPartitionsToTxn v4+ with `verify_only`: whether each partition is in
    /// the open transaction (INVALID_TXN_STATE if not).
    pub fn verify_partitions(
        &self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<bool>, ResponseError> {
        let Some(entry) = self.entry(id) else {
            return Err(ResponseError::InvalidProducerIdMapping);
        };
        let m = lock(&entry);
        check_producer(&m, producer_id, producer_epoch)?;
        let open = m.state == TxnState::Ongoing;
        Ok(partitions
            .iter()
            .map(|p| open && m.partitions.contains(p))
            .collect())
    }

    /// AddOffsetsToTxn.
    pub async fn add_offsets(
        &self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group: &str,
    ) -> Result<(), ResponseError> {
        let w = self.begin_and(id, producer_id, producer_epoch, |m| {
            Ok(m.groups.insert(group.to_string()))
        })?;
        if let Some(w) = w {
            Self::wait(w).await?;
        }
        Ok(())
    }

    /// TxnOffsetCommit: the offsets are kept with the transaction and become
    /// the group's committed offsets when it commits.
    pub async fn txn_offset_commit(
        &self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group: &str,
        offsets: Vec<(String, i32, OffsetValue)>,
    ) -> Result<(), ResponseError> {
        let Some(entry) = self.entry(id) else {
            return Err(ResponseError::InvalidProducerIdMapping);
        };
        let w = {
            let mut m = lock(&entry);
            // Kafka's group coordinator answers a stale epoch INVALID_PRODUCER_EPOCH.
            if m.producer_id != producer_id {
                return Err(ResponseError::InvalidProducerIdMapping);
            }
            if m.producer_epoch != producer_epoch {
                return Err(ResponseError::InvalidProducerEpoch);
            }
            if m.state.preparing() {
                return Err(ResponseError::ConcurrentTransactions);
            }
            if m.state != TxnState::Ongoing || !m.groups.contains(group) {
                // AddOffsetsToTxn first (KIP-890 part 1 verification).
                return Err(ResponseError::InvalidTxnState);
            }
            let mut new = m.clone();
            for (t, p, v) in offsets {
                new.offsets.insert((group.to_string(), t, p), v);
            }
            new.update_ms = crate::now_ms();
            let w = self.persist(id, Some(&new))?;
            *m = new;
            lock(&self.pending)
                .entry(group.to_string())
                .or_default()
                .insert(id.to_string());
            w
        };
        Self::wait(w).await
    }

    /// Whether an open transaction holds an offset for this group partition
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        let ids: Vec<String> = match lock(&self.pending).get(group) {
            Some(ids) => ids.iter().cloned().collect(),
            None => return false,
        };
        ids.iter().any(|id| {
            self.entry(id).is_some_and(|e| {
                lock(&e)
                    .offsets
                    .contains_key(&(group.to_string(), topic.to_string(), partition))
            })
        })
    }

    /// Produce with a transactional id: verifies that the partition is in the
    /// producer's open transaction (KIP-890 part 1) and, still under the
    /// transactional id's lock, calls `append` (which orders the write).
    pub fn produce<R>(
        &self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
        append: impl FnOnce() -> R,
    ) -> Result<R, ResponseError> {
        let Some(entry) = self.entry(id) else {
            return Err(ResponseError::InvalidProducerIdMapping);
        };
        let m = lock(&entry);
        if m.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if producer_epoch < m.producer_epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if producer_epoch != m.producer_epoch
            || m.state != TxnState::Ongoing
            || !m.partitions.contains(&(topic.to_string(), partition))
        {
            return Err(ResponseError::InvalidTxnState);
        }
        Ok(append())
    }

    /// EndTxn: commit or abort the open transaction. Answers once the
    /// decision is durable and, unless a partition failed (then the timer
    /// retries), once every marker is written.
    pub async fn end_txn(
        &self,
        broker: &Arc<Broker>,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), ResponseError> {
        let Some(entry) = self.entry(id) else {
            return Err(ResponseError::InvalidProducerIdMapping);
        };
        let w = {
            let mut m = lock(&entry);
            check_producer(&m, producer_id, producer_epoch)?;
            match (m.state, commit) {
                (TxnState::Ongoing, _) => {}
                // A retry of an EndTxn whose answer was lost.
                (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                    return Ok(());
                }
                (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                    return Err(ResponseError::ConcurrentTransactions);
                }
                _ => return Err(ResponseError::InvalidTxnState),
            }
            let mut new = m.clone();
            new.state = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            new.update_ms = crate::now_ms();
            let w = self.persist(id, Some(&new))?;
            *m = new;
            w
        };
        Self::wait(w).await?;
        if !self.complete(broker, id).await {
            tracing::warn!(
                transactional_id = id,
                "transaction markers not all written yet: retried by the coordinator's timer"
            );
        }
        Ok(())
    }

    /// Writes the markers of a prepared transaction to its partitions,
    /// commits its offsets if it commits, and marks it complete. Idempotent:
    /// a marker written twice only ends an already ended transaction.
    /// False if something failed (the transaction stays prepared).
    async fn complete(&self, broker: &Arc<Broker>, id: &str) -> bool {
        let Some(entry) = self.entry(id) else {
            return true;
        };
        let (marker, partitions, offsets, state) = {
            let m = lock(&entry);
            let commit = match m.state {
                TxnState::PrepareCommit => true,
                TxnState::PrepareAbort => false,
                _ => return true,
            };
            let marker = TxnMarker {
                producer_id: m.producer_id,
                producer_epoch: m.producer_epoch,
                commit,
                coordinator_epoch: 0,
            };
            (marker, m.partitions.clone(), m.offsets.clone(), m.state)
        };
        let now = crate::now_ms();
        let mut writes = Vec::with_capacity(partitions.len());
        for (t, p) in &partitions {
            match broker.topics.get(t).and_then(|topic| topic.partition(*p)) {
                Some(part) => writes.push((t.clone(), *p, part.write_marker(marker, now))),
                None => {
                    tracing::info!(topic = %t, partition = p, "no marker for a deleted partition")
                }
            }
        }
        let mut ok = true;
        for (t, p, w) in writes {
            match tokio::time::timeout(MARKER_WAIT_MAX, w).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(transactional_id = id, topic = %t, partition = p, error = %e, "transaction marker not written");
                    ok = false;
                }
                Err(_) => {
                    tracing::warn!(transactional_id = id, topic = %t, partition = p, "transaction marker timed out");
                    ok = false;
                }
            }
        }
        if !partitions.is_empty() {
            broker.notify_data_arrived();
        }
        if !ok {
            return false;
        }
        if marker.commit && !offsets.is_empty() {
            let mut by_group: BTreeMap<String, Vec<(String, i32, OffsetValue)>> = BTreeMap::new();
            for ((g, t, p), v) in offsets {
                by_group.entry(g).or_default().push((t, p, v));
            }
            for (g, offs) in by_group {
                if let Err(e) = broker.groups.commit_transactional(&g, offs) {
                    tracing::warn!(transactional_id = id, group = %g, error = %e, "transactional offsets not committed yet");
                    return false;
                }
            }
            if let Err(e) = broker.groups.wait_durable().await {
                tracing::warn!(transactional_id = id, error = %e, "transactional offsets not durable");
                return false;
            }
        }
        let groups: Vec<String> = {
            let mut m = lock(&entry);
            if m.state != state {
                return true;
            }
            let mut new = m.clone();
            new.state = if marker.commit {
                TxnState::CompleteCommit
            } else {
                TxnState::CompleteAbort
            };
            new.start_ms = -1;
            new.update_ms = crate::now_ms();
            new.partitions.clear();
            new.offsets.clear();
            let groups = std::mem::take(&mut new.groups).into_iter().collect();
            // Later writes are durable only after this one: a later
            // transaction's durable start implies this end.
            if self.persist(id, Some(&new)).is_err() {
                return false;
            }
            *m = new;
            groups
        };
        let mut pending = lock(&self.pending);
        for g in groups {
            if let Some(ids) = pending.get_mut(&g) {
                ids.remove(id);
                if ids.is_empty() {
                    pending.remove(&g);
                }
            }
        }
        true
    }

    /// The timer's work: finishes prepared transactions (after a crash, or
    /// when a marker failed), aborts those past their timeout (fencing their
    /// producer), forgets expired ids, and keeps the log bounded.
    pub async fn tick(&self, broker: &Arc<Broker>) {
        if !self.enabled() {
            return;
        }
        let now = crate::now_ms();
        let limits = self.limits();
        let entries: Vec<(String, Entry)> = lock(&self.ids)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (id, entry) in entries {
            enum Work {
                Complete,
                AbortTimedOut((i64, Arc<crate::partition::Partition>)),
                Expire,
                Nothing,
            }
            let work = {
                let mut m = lock(&entry);
                match m.state {
                    s if s.preparing() => Work::Complete,
                    TxnState::Ongoing if now - m.start_ms > m.timeout_ms as i64 => {
                        tracing::info!(transactional_id = %id, timeout_ms = m.timeout_ms, "aborting a transaction past its timeout");
                        let mut new = m.clone();
                        // Bumping the epoch fences the producer that left it open.
                        new.producer_epoch = m.producer_epoch.saturating_add(1);
                        new.state = TxnState::PrepareAbort;
                        new.update_ms = now;
                        match self.persist(&id, Some(&new)) {
                            Ok(w) => {
                                *m = new;
                                Work::AbortTimedOut(w)
                            }
                            Err(_) => Work::Nothing,
                        }
                    }
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                        if now - m.update_ms > limits.id_expiration_ms =>
                    {
                        Work::Expire
                    }
                    _ => Work::Nothing,
                }
            };
            match work {
                Work::Complete => {
                    self.complete(broker, &id).await;
                }
                Work::AbortTimedOut(w) => {
                    if Self::wait(w).await.is_ok() {
                        self.complete(broker, &id).await;
                    }
                }
                Work::Expire => {
                    let m = lock(&entry);
                    if matches!(
                        m.state,
                        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                    ) && self.persist(&id, None).is_ok()
                    {
                        lock(&self.ids).remove(&id);
                        tracing::info!(transactional_id = %id, "transactional id expired");
                    }
                }
                Work::Nothing => {}
            }
        }
        self.maybe_compact();
    }

    fn maybe_compact(&self) {
        let ids = lock(&self.ids);
        let mut store = lock(&self.store);
        let Some(s) = store.as_mut() else { return };
        if !s.needs_compaction() {
            return;
        }
        // Every entry must be idle (not mid-change) for the snapshot to be
        // the latest state of each; else try again at the next tick.
        let mut live = Vec::with_capacity(ids.len());
        for (id, e) in ids.iter() {
            match e.try_lock() {
                Ok(m) => live.push((id.clone(), m.clone())),
                Err(_) => return,
            }
        }
        if let Err(e) = s.compact(&live) {
            tracing::warn!(error = %e, "transaction state log not compacted");
        }
    }

    /// Every transactional id known (ListTransactions filters this).
    pub fn list(&self) -> Vec<TxnListing> {
        let entries: Vec<(String, Entry)> = lock(&self.ids)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out: Vec<TxnListing> = entries
            .into_iter()
            .map(|(id, e)| {
                let m = lock(&e);
                TxnListing {
                    transactional_id: id,
                    producer_id: m.producer_id,
                    state: m.state,
                    start_time_ms: m.start_ms,
                }
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }

    /// One transactional id, None if unknown.
    pub fn describe(&self, transactional_id: &str) -> Option<TxnDescription> {
        let e = self.entry(transactional_id)?;
        let m = lock(&e);
        let mut partitions: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in &m.partitions {
            partitions.entry(t.clone()).or_default().push(*p);
        }
        Some(TxnDescription {
            transactional_id: transactional_id.to_string(),
            state: m.state,
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            timeout_ms: m.timeout_ms,
            start_time_ms: m.start_ms,
            partitions,
        })
    }
}

/// Runs the coordinator's timer until shutdown: the first tick right away
/// (it finishes what a crash interrupted), then every
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
pub async fn run_timers(broker: Arc<Broker>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    if !broker.txn.enabled() {
        return;
    }
    let interval = broker
        .config
        .transaction_abort_check_interval
        .max(Duration::from_millis(10));
    loop {
        broker.txn.tick(&broker).await;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}
