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

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

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
}

impl Durability for PgDurability {
    fn wait(&self, point: i64) -> Pin<Box<dyn Future<Output = Result<(), LogError>> + Send>> {
        let mut rx = self.durable.subscribe();
        Box::pin(async move {
            match tokio::time::timeout(DURABLE_WAIT_MAX, rx.wait_for(|d| *d >= point)).await {
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
    let (durable, _) = watch::channel(0i64);
    let durability = Arc::new(PgDurability { durable });
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
                Ok(()) => break,
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
) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
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
            (Some(_), _) => {
                tracing::warn!(
                    group = g,
                    "group writes fenced: another broker took the group over"
                );
                if let Ok(mut e) = epochs.lock() {
                    e.remove(g);
                }
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
    Ok(())
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
            if ids(&live) == ids(&ready) {
                continue;
            }
            match load_owned(&pool, &epochs, &ownership, &broker, &live).await {
                Ok(n) => {
                    tracing::info!(brokers = ?ids(&live), loaded = n, "group ownership follows the live brokers");
                    if let Ok(mut r) = ownership.ready.write() {
                        *r = live;
                    }
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
        let already = epochs.lock().map(|e| e.contains_key(g)).unwrap_or(false);
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
