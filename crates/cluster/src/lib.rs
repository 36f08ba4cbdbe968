//! Herald's cluster mode: stateless brokers on S3-compatible object storage
//! and PostgreSQL (see docs/cluster.md). A second storage engine behind the
//! same Kafka front end: `engine.rs` implements herald_broker's storage seam.
//!
//! - `db.rs`: connection pool, schema migrations under an advisory lock
//! - `objects.rs`: the S3 client, WAL object keys, the conditional-write probe
//! - `membership.rs`: broker leases
//! - `wal.rs` + `commit.rs`: the write path (one object per flush, one commit each)
//! - `read.rs` + `cache.rs`: the read path (one query per fetch, ranged GETs, block cache)
//! - `maintenance.rs`: retention, object garbage collection, the orphan reconciler
//! - `groups.rs`: group coordinators' records, fenced by owner epochs
//! - `notify.rs`: LISTEN/NOTIFY (long polls woken, topic changes seen at once)

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use herald_broker::membership::BrokerInfo;
use herald_broker::topic_registry::TopicRegistry;
use herald_broker::{Broker, BrokerConfig, RunningBroker};
use tokio::sync::Notify;

pub mod cache;
pub mod commit;
pub mod db;
pub mod engine;
pub mod groups;
pub mod maintenance;
pub mod membership;
pub mod notify;
pub mod objects;
pub mod read;
pub mod security_store;
pub mod wal;

/// Requests of one connection in flight in cluster mode (at least).
pub const CLUSTER_REQUESTS_IN_FLIGHT_MIN: usize = 1024;
/// Produce bytes buffered or uploading per broker, in flushes: enough to keep
/// uploads and commits pipelined (Little's law: rate × object round trip).
pub const WAL_BUFFERED_FLUSHES_MAX: usize = 8;

/// Cluster-mode settings (flags `--cluster-db`, `--object-store`, ...).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `postgres://USER@HOST:PORT/DB`
    pub database_url: String,
    /// `s3://BUCKET[/PREFIX]`
    pub object_store: String,
    /// Custom S3 endpoint (`http://127.0.0.1:8333`); None: AWS.
    pub s3_endpoint: Option<String>,
    pub rack: Option<String>,
    /// A WAL object is cut after this long...
    pub flush_interval: Duration,
    /// ...or once it holds this many bytes.
    pub flush_bytes: usize,
    /// Bytes of object blocks each broker caches.
    pub cache_bytes: usize,
    /// WAL objects older than this and never committed are deleted.
    pub orphan_age: Duration,
}

impl ClusterConfig {
    pub fn new(database_url: String, object_store: String) -> ClusterConfig {
        ClusterConfig {
            database_url,
            object_store,
            s3_endpoint: None,
            rack: None,
            flush_interval: Duration::from_millis(250),
            flush_bytes: 8 * 1024 * 1024,
            cache_bytes: 256 * 1024 * 1024,
            orphan_age: Duration::from_secs(3600),
        }
    }
}

/// Starts a cluster broker: migrates the schema, probes the object store,
/// registers the broker's lease, loads the topics and serves.
pub async fn start(config: BrokerConfig, cluster: ClusterConfig) -> anyhow::Result<RunningBroker> {
    let (write_store, prefix) = objects::s3(&cluster.object_store, cluster.s3_endpoint.as_deref())?;
    // Reads get their own client (own connection pool): a backlog of lagging
    // consumers does not queue in front of uploads.
    let (read_store, _) = objects::s3(&cluster.object_store, cluster.s3_endpoint.as_deref())?;
    start_with_stores(config, cluster, write_store, read_store, prefix).await
}

/// `start` with the object store clients given (tests wrap them to inject faults).
pub async fn start_with_stores(
    mut config: BrokerConfig,
    cluster: ClusterConfig,
    write_store: objects::Store,
    read_store: objects::Store,
    prefix: String,
) -> anyhow::Result<RunningBroker> {
    std::fs::create_dir_all(&config.data_dir)?;
    // Every produce waits for a flush, an upload and a commit (hundreds of ms),
    // so a producer that sends small requests back to back (linger.ms=0) needs
    // many in flight per connection to keep its rate; produce bytes stay
    // bounded by the WAL's admission limit, not by this count.
    config.requests_in_flight_max = config
        .requests_in_flight_max
        .max(CLUSTER_REQUESTS_IN_FLIGHT_MIN);
    let listeners = herald_broker::server::bind_listeners(&config).await?;
    let endpoints: Vec<herald_broker::listener::Endpoint> =
        listeners.iter().map(|l| l.endpoint.clone()).collect();

    let pg_config = db::parse_config(&cluster.database_url)?;
    let pool = db::pool(pg_config.clone())?;
    let version = db::migrate(&pool).await.with_context(|| {
        format!(
            "preparing the cluster database {}",
            redact(&cluster.database_url)
        )
    })?;
    let cluster_id = cluster_id(&pool).await?;

    objects::probe_conditional_writes(&write_store, &prefix)
        .await
        .context("checking the object store")?;

    let me = BrokerInfo::new(config.node_id, cluster.rack.clone(), endpoints.clone());
    let leases = membership::Leases::register(&pool, me).await?;

    let cache = Arc::new(cache::BlockCache::new(cluster.cache_bytes));
    let wal = wal::Wal::start(
        wal::WalConfig {
            flush_interval: cluster.flush_interval,
            flush_bytes: cluster.flush_bytes,
            buffered_bytes_max: cluster.flush_bytes * WAL_BUFFERED_FLUSHES_MAX,
            node_id: config.node_id,
            cluster_id: cluster_id.clone(),
            key_prefix: prefix.clone(),
        },
        write_store.clone(),
        pool.clone(),
        cache.clone(),
    );
    let reader = Arc::new(read::Reader::new(pool.clone(), read_store, cache));
    let topics_notify = Arc::new(Notify::new());
    let hwm_notify = Arc::new(Notify::new());
    let security_notify = Arc::new(Notify::new());
    let mut security = herald_broker::security::Security::new(
        &config.security,
        Arc::new(security_store::PgSecurityStore::new(
            pool.clone(),
            security_notify.clone(),
        )),
    )?;
    security.secret = security_store::shared_secret(&pool).await?;
    let engine = Arc::new(engine::ClusterEngine {
        pool: pool.clone(),
        wal,
        reader,
        topics_notify: topics_notify.clone(),
    });
    let topics = TopicRegistry::empty(
        engine,
        &config.data_dir,
        config.log.clone(),
        config.partitions_per_topic_max,
    )?;
    topics.refresh().await?;
    let cluster_groups = groups::start(pool.clone(), config.node_id, leases.clone());
    let group_epochs = cluster_groups.epochs();
    let group_ownership = cluster_groups.ownership.clone();
    let groups = herald_broker::group_coordinator::GroupCoordinator::open_with(
        &config,
        Box::new(cluster_groups.store),
        Vec::new(),
        group_ownership.clone(),
    )?;
    let broker = Arc::new(Broker::assemble(
        config,
        topics,
        groups,
        cluster_id.clone(),
        leases.clone(),
        security,
        endpoints,
    ));
    broker.security.reload().await?;
    tracing::info!(
        node_id = broker.node_id(),
        cluster_id,
        schema_version = version,
        object_store = %cluster.object_store,
        brokers = ?leases.node_ids(),
        "cluster mode"
    );
    let running = herald_broker::server::serve_broker(listeners, broker.clone());
    let shutdown = running.shutdown_handle().subscribe();
    tokio::spawn(membership::run(leases, pool.clone(), shutdown.clone()));
    tokio::spawn(groups::Groups::follow(
        pool.clone(),
        group_epochs,
        group_ownership,
        broker.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(notify::listen(
        pg_config,
        topics_notify,
        hwm_notify.clone(),
        security_notify,
        shutdown.clone(),
    ));
    {
        let broker = broker.clone();
        tokio::spawn(async move {
            loop {
                hwm_notify.notified().await;
                broker.notify_data_arrived();
            }
        });
    }
    tokio::spawn(maintenance::run(
        broker,
        pool,
        write_store,
        prefix,
        cluster.orphan_age,
        shutdown,
    ));
    Ok(running)
}

/// The cluster's id: made by the first broker, read by the others.
async fn cluster_id(pool: &deadpool_postgres::Pool) -> anyhow::Result<String> {
    let client = pool.get().await?;
    let fresh = uuid::Uuid::new_v4().simple().to_string()[..22].to_string();
    client
        .execute(
            "INSERT INTO cluster (id, cluster_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
            &[&fresh],
        )
        .await?;
    Ok(client
        .query_one("SELECT cluster_id FROM cluster WHERE id = 1", &[])
        .await?
        .get(0))
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The users and ACLs of a cluster database, for `herald user` before any
/// broker runs (the schema is migrated first).
pub async fn offline_security_store(
    database_url: &str,
) -> anyhow::Result<security_store::PgSecurityStore> {
    let pg_config = db::parse_config(database_url)?;
    let pool = db::pool(pg_config)?;
    db::migrate(&pool)
        .await
        .with_context(|| format!("preparing the cluster database {}", redact(database_url)))?;
    Ok(security_store::PgSecurityStore::new(
        pool,
        Arc::new(Notify::new()),
    ))
}
