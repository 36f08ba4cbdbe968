//! Broker leases in PostgreSQL. A broker registers at start (taking over its
//! node id's row at once, with a higher incarnation), renews its lease every
//! `HEARTBEAT`, and is live while the lease has not expired. Each renewal also
//! reads the live brokers, which Metadata and the rendezvous hashes use.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use herald_broker::membership::{BrokerInfo, Membership};

pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A broker that missed this many heartbeats is dead.
pub const LEASE: Duration = Duration::from_secs(4);

pub struct Leases {
    me: BrokerInfo,
    incarnation: i64,
    live: RwLock<Vec<BrokerInfo>>,
}

impl Membership for Leases {
    fn live(&self) -> Vec<BrokerInfo> {
        let mut v = self.live.read().map(|l| l.clone()).unwrap_or_default();
        if !v.iter().any(|b| b.node_id == self.me.node_id) {
            v.push(self.me.clone());
            v.sort_by_key(|b| b.node_id);
        }
        v
    }
}

impl Leases {
    /// Registers this broker; returns its leases handle.
    pub async fn register(
        pool: &deadpool_postgres::Pool,
        me: BrokerInfo,
    ) -> anyhow::Result<Arc<Leases>> {
        let client = pool.get().await?;
        let lease = LEASE.as_secs_f64();
        let row = client
            .query_one(
                "INSERT INTO brokers (node_id, host, port, rack, incarnation, lease_expires, renewed_at, started_at, listeners)
                 VALUES ($1, $2, $3, $4, 1, now() + make_interval(secs => $5), now(), now(), $6)
                 ON CONFLICT (node_id) DO UPDATE SET host = $2, port = $3, rack = $4, listeners = $6,
                     incarnation = brokers.incarnation + 1,
                     lease_expires = now() + make_interval(secs => $5), renewed_at = now(), started_at = now()
                 RETURNING incarnation",
                &[
                    &me.node_id,
                    &me.host,
                    &me.port,
                    &me.rack,
                    &lease,
                    &serde_json::to_value(&me.endpoints)?,
                ],
            )
            .await?;
        let incarnation: i64 = row.get(0);
        tracing::info!(
            node_id = me.node_id,
            incarnation,
            "registered in the cluster"
        );
        let leases = Arc::new(Leases {
            me,
            incarnation,
            live: RwLock::new(Vec::new()),
        });
        leases.refresh(pool).await?;
        Ok(leases)
    }

    /// Renews the lease and reads the live brokers. False if a newer process
    /// with this node id took the registration over.
    pub async fn renew(&self, pool: &deadpool_postgres::Pool) -> anyhow::Result<bool> {
        let client = pool.get().await?;
        let n = client
            .execute(
                "UPDATE brokers SET lease_expires = now() + make_interval(secs => $3), renewed_at = now()
                 WHERE node_id = $1 AND incarnation = $2",
                &[&self.me.node_id, &self.incarnation, &LEASE.as_secs_f64()],
            )
            .await?;
        drop(client);
        self.refresh(pool).await?;
        Ok(n == 1)
    }

    async fn refresh(&self, pool: &deadpool_postgres::Pool) -> anyhow::Result<()> {
        let client = pool.get().await?;
        let rows = client
            .query(
                "SELECT node_id, host, port, rack,
                        (extract(epoch FROM now() - renewed_at) * 1000)::bigint, listeners
                 FROM brokers WHERE lease_expires > now() ORDER BY node_id",
                &[],
            )
            .await?;
        let live: Vec<BrokerInfo> = rows
            .iter()
            .map(|r| BrokerInfo {
                node_id: r.get(0),
                host: r.get(1),
                port: r.get(2),
                rack: r.get(3),
                lease_age_ms: r.get(4),
                // A row the broker wrote is well-formed; an unreadable one
                // falls back to host and port (BrokerInfo::endpoint).
                endpoints: serde_json::from_value(r.get(5)).unwrap_or_default(),
            })
            .collect();
        if let Ok(mut l) = self.live.write() {
            *l = live;
        }
        Ok(())
    }

    /// Gives the lease up (clean shutdown): the others see this broker leave at once.
    pub async fn leave(&self, pool: &deadpool_postgres::Pool) {
        if let Ok(client) = pool.get().await {
            let _ = client
                .execute(
                    "UPDATE brokers SET lease_expires = now() WHERE node_id = $1 AND incarnation = $2",
                    &[&self.me.node_id, &self.incarnation],
                )
                .await;
        }
    }

    pub fn node_ids(&self) -> Vec<i32> {
        self.live().iter().map(|b| b.node_id).collect()
    }
}

/// Renews the lease every heartbeat until shutdown.
pub async fn run(
    leases: Arc<Leases>,
    pool: deadpool_postgres::Pool,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(HEARTBEAT);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut known = leases.node_ids();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => {
                leases.leave(&pool).await;
                return;
            }
        }
        match leases.renew(&pool).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(
                    node_id = leases.me.node_id,
                    "another process registered with this node id; this one stops renewing"
                );
                return;
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "lease renewal failed"),
        }
        let now = leases.node_ids();
        if now != known {
            tracing::info!(brokers = ?now, "live brokers changed");
            known = now;
        }
    }
}
