//! Consumer groups in cluster mode. Each group has one coordinator: the
//! rendezvous hash of its id over the live brokers (`Broker::coordinator_for`).
//! The coordinator runs the same state machine as a single node
//! (herald_broker::group_coordinator) and persists its records to
//! `group_records`, fenced by the group's `owner_epoch` in `group_owners`:
//! taking a group over bumps the epoch, so writes from a paused former owner
//! find a newer epoch and are refused.
//!
//! When the live brokers change, the loader claims and loads the groups that
//! now hash to this broker and forgets those that moved away. Until it is done,
//! requests for a group it is about to own answer COORDINATOR_LOAD_IN_PROGRESS.
//! When a broker joins, the groups it takes are loaded only after
//! `HANDOVER_GRACE`: their former owners read the live brokers once per
//! heartbeat, so by then they have stopped serving them (two brokers never
//! both answer for a group because one has not seen the other yet).
//!
//! A write fenced by a newer owner is dropped and its batch's operations are
//! not acknowledged (NOT_COORDINATOR for commits); the group stays fenced on
//! this broker (no re-claim on its next write) until ownership brings it back.

use std::collections::VecDeque;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use herald_broker::Broker;
use herald_broker::group_coordinator::offset_store::Record;
use herald_broker::group_coordinator::store::{Durability, GroupOwnership, GroupStore, Ownership};
use herald_broker::membership::{self, BrokerInfo, Membership};
use herald_log::LogError;
use tokio::sync::{mpsc, watch};

use crate::membership::Leases;

/// Group writes queued for the database beyond which new ones are refused
/// (logged; the in-memory state stays authoritative) rather than grow memory.
const QUEUED_WRITES_MAX: usize = 100_000;
/// Writes applied in one transaction.
const WRITES_PER_TX_MAX: usize = 2000;
/// How long a group operation waits for its records to be durable.
const DURABLE_WAIT_MAX: Duration = Duration::from_secs(30);
/// How long a joining broker waits before taking groups over: two heartbeats,
/// so that every former owner has read the new live brokers.
const HANDOVER_GRACE: Duration = Duration::from_secs(2 * crate::membership::HEARTBEAT.as_secs());
/// An operation's records are queued at most this long before it waits for
/// them (the same task, no I/O between): a fence recorded this far back may
/// cover them.
const FENCE_LOOKBACK: Duration = Duration::from_secs(1);
/// Fenced batches remembered for waiters.
const FENCES_MAX: usize = 64;
/// The epoch a group gets when a newer owner fenced this broker's writes.
const EPOCH_FENCED: i64 = -1;

type Epochs = Arc<Mutex<HashMap<String, i64>>>;

struct Write {
    group: String,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    /// A group tombstone: the group and all its offsets go.
    drop_group: bool,
}

fn group_of(r: &Record) -> &str {
    r.group()
}

pub struct PgGroupStore {
    tx: mpsc::UnboundedSender<(i64, Vec<Write>)>,
    queued: Arc<AtomicUsize>,
    seq: i64,
    durability: Arc<PgDurability>,
}

pub struct PgDurability {
    durable: watch::Sender<i64>,
    /// Recent transactions with fenced writes: (their first seq, when).
    fenced: Arc<Mutex<Fences>>,
}

type Fences = VecDeque<(i64, Instant)>;

impl PgDurability {
    fn new() -> PgDurability {
        PgDurability {
            durable: watch::channel(0i64).0,
            fenced: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    fn record_fence(&self, first: i64) {
        if let Ok(mut f) = self.fenced.lock() {
            if f.len() >= FENCES_MAX {
                f.pop_front();
            }
            f.push_back((first, Instant::now()));
        }
    }
}

/// Whether the operations up to `point`, whose wait began at `began`, may
/// have had writes fenced: a fence recorded since shortly before the wait, of
/// a transaction that began at or before `point`. Conservative: another
/// group's operation in the same window fails too, and its client retries.
fn maybe_fenced(fences: &Mutex<Fences>, point: i64, began: Instant) -> bool {
    let since = began.checked_sub(FENCE_LOOKBACK).unwrap_or(began);
    fences
        .lock()
        .map(|f| f.iter().any(|(first, at)| *first <= point && *at >= since))
        .unwrap_or(true)
}

impl Durability for PgDurability {
    fn wait(&self, point: i64) -> Pin<Box<dyn Future<Output = Result<(), LogError>> + Send>> {
        let began = Instant::now();
        let mut rx = self.durable.subscribe();
        let fences = self.fenced.clone();
        Box::pin(async move {
            match tokio::time::timeout(DURABLE_WAIT_MAX, rx.wait_for(|d| *d >= point)).await {
                Ok(Ok(_)) if maybe_fenced(&fences, point, began) => Err(LogError::Coded {
                    code: kafka_protocol::ResponseError::NotCoordinator.code(),
                    message: "another broker took the group over".into(),
                }),
                Ok(Ok(_)) => Ok(()),
                _ => Err(LogError::StorageUnavailable),
            }
        })
    }
}

impl GroupStore for PgGroupStore {
    fn append(&mut self, records: &[Record]) -> Result<(), LogError> {
        if records.is_empty() {
            return Ok(());
        }
        if self.queued.load(Ordering::Relaxed) >= QUEUED_WRITES_MAX {
            return Err(LogError::Coded {
                code: kafka_protocol::ResponseError::CoordinatorNotAvailable.code(),
                message: "the cluster database is not keeping up with group writes".into(),
            });
        }
        let writes: Vec<Write> = records
            .iter()
            .map(|r| {
                let (key, value) = r.encode();
                Write {
                    group: group_of(r).to_string(),
                    drop_group: matches!(r, Record::Group { value: None, .. }),
                    key,
                    value,
                }
            })
            .collect();
        self.seq += 1;
        self.queued.fetch_add(writes.len(), Ordering::Relaxed);
        self.tx
            .send((self.seq, writes))
            .map_err(|_| LogError::StorageUnavailable)
    }

    fn sync_point(&self) -> i64 {
        self.seq
    }

    fn durability(&self) -> Arc<dyn Durability> {
        self.durability.clone()
    }
}

/// Which groups this broker coordinates: by the live brokers for routing, by
/// the brokers its loads are complete for, for serving.
pub struct ClusterOwnership {
    node_id: i32,
    leases: Arc<Leases>,
    ready: RwLock<Vec<BrokerInfo>>,
}

impl GroupOwnership for ClusterOwnership {
    fn ownership(&self, group_id: &str) -> Ownership {
        let live = self.leases.live();
        let now = membership::rendezvous(group_id.as_bytes(), &live).map(|b| b.node_id);
        if now != Some(self.node_id) {
            return Ownership::NotMine;
        }
        let ready = self.ready.read().map(|r| r.clone()).unwrap_or_default();
        let then = membership::rendezvous(group_id.as_bytes(), &ready).map(|b| b.node_id);
        if then == Some(self.node_id) {
            Ownership::Mine
        } else {
            Ownership::Loading
        }
    }
}

pub struct Groups {
    pub store: PgGroupStore,
    pub ownership: Arc<ClusterOwnership>,
    epochs: Epochs,
    pool: deadpool_postgres::Pool,
}

/// The store and ownership for a cluster broker's group coordinator; starts the writer.
pub fn start(pool: deadpool_postgres::Pool, node_id: i32, leases: Arc<Leases>) -> Groups {
    let (tx, rx) = mpsc::unbounded_channel();
    let durability = Arc::new(PgDurability::new());
    let queued = Arc::new(AtomicUsize::new(0));
    let epochs: Epochs = Arc::new(Mutex::new(HashMap::new()));
    tokio::spawn(writer(
        pool.clone(),
        node_id,
        epochs.clone(),
        rx,
        durability.clone(),
        queued.clone(),
    ));
    Groups {
        store: PgGroupStore {
            tx,
            queued,
            seq: 0,
            durability,
        },
        ownership: Arc::new(ClusterOwnership {
            node_id,
            leases,
            ready: RwLock::new(Vec::new()),
        }),
        epochs,
        pool,
    }
}

async fn writer(
    pool: deadpool_postgres::Pool,
    node_id: i32,
    epochs: Epochs,
    mut rx: mpsc::UnboundedReceiver<(i64, Vec<Write>)>,
    durability: Arc<PgDurability>,
    queued: Arc<AtomicUsize>,
) {
    while let Some((mut seq, mut writes)) = rx.recv().await {
        let first = seq;
        while writes.len() < WRITES_PER_TX_MAX {
            match rx.try_recv() {
                Ok((s, w)) => {
                    seq = s;
                    writes.extend(w);
                }
                Err(_) => break,
            }
        }
        let n = writes.len();
        let mut delay = Duration::from_millis(20);
        loop {
            match write_batch(&pool, node_id, &epochs, &writes).await {
                Ok(fenced) => {
                    if fenced {
                        durability.record_fence(first);
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "writing group state failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
        queued.fetch_sub(n, Ordering::Relaxed);
        durability.durable.send_replace(seq);
    }
}

async fn claim(
    tx: &deadpool_postgres::Transaction<'_>,
    group: &str,
    node_id: i32,
) -> Result<i64, tokio_postgres::Error> {
    Ok(tx
        .query_one(
            "INSERT INTO group_owners (group_id, owner, owner_epoch) VALUES ($1, $2, 1)
             ON CONFLICT (group_id) DO UPDATE SET owner = $2, owner_epoch = group_owners.owner_epoch + 1
             RETURNING owner_epoch",
            &[&group, &node_id],
        )
        .await?
        .get(0))
}

async fn write_batch(
    pool: &deadpool_postgres::Pool,
    node_id: i32,
    epochs: &Epochs,
    writes: &[Write],
) -> anyhow::Result<bool> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut fenced = false;
    let mut groups: Vec<&str> = writes.iter().map(|w| w.group.as_str()).collect();
    groups.sort_unstable();
    groups.dedup();
    let mut allowed: HashSet<&str> = HashSet::new();
    for g in groups {
        let known = epochs.lock().ok().and_then(|e| e.get(g).copied());
        let current = tx
            .query_opt(
                "SELECT owner, owner_epoch FROM group_owners WHERE group_id = $1 FOR UPDATE",
                &[&g],
            )
            .await?
            .map(|r| (r.get::<_, i32>(0), r.get::<_, i64>(1)));
        match (known, current) {
            (Some(mine), Some((owner, epoch))) if owner == node_id && epoch == mine => {
                allowed.insert(g);
            }
            (Some(mine), _) => {
                // Kept fenced (not re-claimed on the next write) until
                // ownership brings the group back through `load_owned`.
                if mine != EPOCH_FENCED {
                    tracing::warn!(
                        group = g,
                        "group writes fenced: another broker took the group over"
                    );
                    if let Ok(mut e) = epochs.lock() {
                        e.insert(g.to_string(), EPOCH_FENCED);
                    }
                }
                fenced = true;
            }
            (None, _) => {
                // A group this broker created: claim it.
                let epoch = claim(&tx, g, node_id).await?;
                if let Ok(mut e) = epochs.lock() {
                    e.insert(g.to_string(), epoch);
                }
                allowed.insert(g);
            }
        }
    }
    for w in writes.iter().filter(|w| allowed.contains(w.group.as_str())) {
        if w.drop_group {
            tx.execute("DELETE FROM group_records WHERE group_id = $1", &[&w.group])
                .await?;
            continue;
        }
        match &w.value {
            Some(v) => {
                tx.execute(
                    "INSERT INTO group_records (group_id, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (group_id, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&w.group, &w.key, v],
                )
                .await?;
            }
            None => {
                tx.execute(
                    "DELETE FROM group_records WHERE group_id = $1 AND key = $2",
                    &[&w.group, &w.key],
                )
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(fenced)
}

impl Groups {
    /// Follows membership: loads the groups that became this broker's and
    /// forgets those that moved away, then serves them.
    pub async fn follow(
        pool: deadpool_postgres::Pool,
        epochs: Epochs,
        ownership: Arc<ClusterOwnership>,
        broker: Arc<Broker>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        // The grown live brokers being waited out, and since when.
        let mut grown: Option<(Vec<i32>, Instant)> = None;
        // Since when a group hashing to this broker has been fenced.
        let mut fenced_since: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
            }
            let live = ownership.leases.live();
            let ready = ownership
                .ready
                .read()
                .map(|r| r.clone())
                .unwrap_or_default();
            let ids = |v: &[BrokerInfo]| v.iter().map(|b| b.node_id).collect::<Vec<_>>();
            let me = ownership.node_id;
            let fenced_mine = epochs.lock().is_ok_and(|e| {
                e.iter().any(|(g, epoch)| {
                    *epoch == EPOCH_FENCED
                        && membership::rendezvous(g.as_bytes(), &live).map(|b| b.node_id)
                            == Some(me)
                })
            });
            if ids(&live) == ids(&ready) {
                grown = None;
                if !fenced_mine {
                    fenced_since = None;
                    continue;
                }
                // Another broker claimed a group that hashes here: its view
                // was stale. Claim it back once views have had time to agree.
                let since = *fenced_since.get_or_insert_with(Instant::now);
                if since.elapsed() < HANDOVER_GRACE {
                    continue;
                }
            } else if live
                .iter()
                .any(|b| !ready.iter().any(|r| r.node_id == b.node_id))
            {
                // A broker joined: the groups that move to it (maybe to this
                // broker) wait until every former owner has seen it.
                match &grown {
                    Some((l, t)) if *l == ids(&live) => {
                        if t.elapsed() < HANDOVER_GRACE {
                            continue;
                        }
                    }
                    _ => {
                        grown = Some((ids(&live), Instant::now()));
                        continue;
                    }
                }
            }
            match load_owned(&pool, &epochs, &ownership, &broker, &live).await {
                Ok(n) => {
                    tracing::info!(brokers = ?ids(&live), loaded = n, "group ownership follows the live brokers");
                    if let Ok(mut r) = ownership.ready.write() {
                        *r = live;
                    }
                    grown = None;
                    fenced_since = None;
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "loading groups failed; retrying")
                }
            }
        }
    }

    pub fn epochs(&self) -> Epochs {
        self.epochs.clone()
    }

    pub fn pool(&self) -> deadpool_postgres::Pool {
        self.pool.clone()
    }
}

async fn load_owned(
    pool: &deadpool_postgres::Pool,
    epochs: &Epochs,
    ownership: &ClusterOwnership,
    broker: &Broker,
    live: &[BrokerInfo],
) -> anyhow::Result<usize> {
    let me = ownership.node_id;
    let mine = |g: &str| membership::rendezvous(g.as_bytes(), live).map(|b| b.node_id) == Some(me);
    // Forget what moved away.
    for g in broker.groups.loaded_groups() {
        if !mine(&g) {
            broker.groups.unload_group(&g);
            if let Ok(mut e) = epochs.lock() {
                e.remove(&g);
            }
        }
    }
    let mut client = pool.get().await?;
    let all: Vec<String> = client
        .query("SELECT group_id FROM group_owners", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut loaded = 0;
    for g in all.iter().filter(|g| mine(g)) {
        let already = epochs
            .lock()
            .map(|e| e.get(g).is_some_and(|epoch| *epoch != EPOCH_FENCED))
            .unwrap_or(false);
        if already {
            continue;
        }
        let tx = client.transaction().await?;
        let epoch = claim(&tx, g, me).await?;
        let rows = tx
            .query(
                "SELECT key, value FROM group_records WHERE group_id = $1",
                &[g],
            )
            .await?;
        tx.commit().await?;
        let records: Vec<Record> = rows
            .iter()
            .filter_map(|r| {
                let k: Vec<u8> = r.get(0);
                let v: Vec<u8> = r.get(1);
                Record::decode(&k, Some(&v))
            })
            .collect();
        // Group metadata before offsets, as written.
        let (mut metas, offsets): (Vec<Record>, Vec<Record>) = records
            .into_iter()
            .partition(|r| matches!(r, Record::Group { .. }));
        metas.extend(offsets);
        broker.groups.install_group(g, metas);
        if let Ok(mut e) = epochs.lock() {
            e.insert(g.clone(), epoch);
        }
        loaded += 1;
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_fails_the_waiters_it_may_cover() {
        let d = PgDurability::new();
        let began = Instant::now();
        // Nothing fenced: every wait succeeds.
        assert!(!maybe_fenced(&d.fenced, 10, began));
        // Transaction of seqs 5..=8 fenced: waiters up to a point at or past
        // its first seq fail (their records may be in it), earlier ones not.
        d.record_fence(5);
        assert!(maybe_fenced(&d.fenced, 5, began));
        assert!(maybe_fenced(&d.fenced, 6, began));
        assert!(maybe_fenced(&d.fenced, 20, began));
        assert!(!maybe_fenced(&d.fenced, 4, began));
        // A wait that began well after the fence is not covered by it.
        let later = Instant::now() + FENCE_LOOKBACK + Duration::from_millis(10);
        assert!(!maybe_fenced(&d.fenced, 20, later));
        // Bounded.
        for i in 0..(FENCES_MAX as i64 * 2) {
            d.record_fence(100 + i);
        }
        assert_eq!(d.fenced.lock().unwrap().len(), FENCES_MAX);
    }
}
