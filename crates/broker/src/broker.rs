//! The broker's shared state: configuration, topics, cluster identity, the
//! producer id allocator, and the signal that wakes long-polling fetches.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::group_coordinator::GroupCoordinator;
use crate::listener::Endpoint;
use crate::membership::{BrokerInfo, Membership, SingleNode};
use crate::security::Security;
use crate::topic_registry::TopicRegistry;

/// Producer ids are reserved from the engine in blocks of this size, so
/// InitProducerId costs one durable write per block, and ids never repeat
/// across restarts (or, in cluster mode, across brokers).
const PRODUCER_ID_BLOCK: i64 = 1000;

pub struct Broker {
    pub config: BrokerConfig,
    pub topics: TopicRegistry,
    /// Consumer groups and committed offsets.
    pub groups: GroupCoordinator,
    pub cluster_id: String,
    /// The first listener's endpoint (a single address for logs and tools).
    pub advertised_host: String,
    pub advertised_port: i32,
    /// Bumped after every append; long-polling fetches wait on it.
    pub data_arrived: watch::Sender<u64>,
    /// The live brokers (this one alone, or the cluster's leases).
    pub membership: Arc<dyn Membership>,
    /// Users, ACLs, TLS and principal mapping.
    pub security: Security,
    /// This broker's endpoint on each listener.
    pub endpoints: Vec<Endpoint>,
    /// Warnings about connections closed for bad input, rate-limited.
    pub connection_log: crate::rate_limited_log::RateLimitedLog,
    /// Who produces to which topic (the console's event-flow graph).
    pub event_flow: crate::event_flow::EventFlow,
    /// Prometheus counters and histograms (see `metrics::render`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Transactional ids and their transactions.
    pub txn: crate::txn_coordinator::TransactionCoordinator,
    /// KIP-227 incremental fetch sessions.
    pub fetch_sessions: crate::fetch_session::FetchSessionCache,
    producer_ids: tokio::sync::Mutex<ProducerIdBlock>,
}

#[derive(Serialize, Deserialize)]
struct ClusterMeta {
    cluster_id: String,
    node_id: i32,
}

struct ProducerIdBlock {
    next: i64,
    end: i64,
}

impl Broker {
    /// A single-node broker: its cluster id lives in the data directory.
    pub fn new(
        config: BrokerConfig,
        topics: TopicRegistry,
        groups: GroupCoordinator,
        endpoints: Vec<Endpoint>,
    ) -> anyhow::Result<Broker> {
        let cluster_id = load_or_create_cluster_id(&config.data_dir, config.node_id)?;
        let store = Arc::new(herald_security::store::FileStore::new(&config.data_dir));
        let security = Security::new(&config.security, store)?;
        let me = BrokerInfo::new(config.node_id, None, endpoints.clone());
        let broker = Self::assemble(
            config,
            topics,
            groups,
            cluster_id,
            Arc::new(SingleNode(me)),
            security,
            endpoints,
        );
        // Transactions on the single-node engine (cluster mode refuses them).
        broker.txn.open(&broker.config)?;
        // Kafka's internal topics, read-only views of the coordinators' logs.
        use crate::internal_topics::{InternalView, Kind};
        if let Some(log) = broker.groups.internal_log() {
            let view = InternalView::new(Kind::Groups, log);
            broker.topics.register_internal(Arc::new(view));
        }
        if let Some(log) = broker.txn.internal_log() {
            let view = InternalView::new(Kind::Transactions, log);
            broker.topics.register_internal(Arc::new(view));
        }
        Ok(broker)
    }

    /// A broker of any engine, from its parts.
    pub fn assemble(
        config: BrokerConfig,
        topics: TopicRegistry,
        groups: GroupCoordinator,
        cluster_id: String,
        membership: Arc<dyn Membership>,
        security: Security,
        endpoints: Vec<Endpoint>,
    ) -> Broker {
        let (data_arrived, _) = watch::channel(0);
        let (advertised_host, advertised_port) = endpoints
            .first()
            .map(|e| (e.host.clone(), e.port))
            .unwrap_or_default();
        let metrics = Arc::new(crate::metrics::Metrics::new(config.metrics_enabled));
        let fetch_sessions =
            crate::fetch_session::FetchSessionCache::new(config.fetch_session_cache_slots_max);
        Broker {
            metrics,
            fetch_sessions,
            config,
            topics,
            groups,
            cluster_id,
            advertised_host,
            advertised_port,
            data_arrived,
            membership,
            security,
            endpoints,
            connection_log: crate::rate_limited_log::RateLimitedLog::new(),
            event_flow: crate::event_flow::EventFlow::default(),
            txn: Default::default(),
            producer_ids: tokio::sync::Mutex::new(ProducerIdBlock { next: 0, end: 0 }),
        }
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// The broker that coordinates a group (or transactional id): a rendezvous
    /// hash over all live brokers, so every broker agrees without asking.
    pub fn coordinator_for(&self, key: &str) -> BrokerInfo {
        let live = self.membership.live();
        crate::membership::rendezvous(key.as_bytes(), &live)
            .cloned()
            .unwrap_or_else(|| BrokerInfo::new(self.node_id(), None, self.endpoints.clone()))
    }

    /// Whether this broker coordinates `group` now.
    pub fn coordinates(&self, group: &str) -> bool {
        self.coordinator_for(group).node_id == self.node_id()
    }

    /// Wakes fetches waiting for data.
    pub fn notify_data_arrived(&self) {
        self.data_arrived.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A fresh producer id (never reused, even across restarts).
    pub async fn allocate_producer_id(&self) -> std::io::Result<i64> {
        let mut block = self.producer_ids.lock().await;
        if block.next >= block.end {
            let (start, end) = self
                .topics
                .engine()
                .allocate_producer_ids(PRODUCER_ID_BLOCK)
                .await?;
            block.next = start;
            block.end = end;
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}

/// The node id a data directory was created with (`meta.json`), if any: a
/// restart without `--node-id` keeps it, so changing the default never
/// renumbers an existing broker.
pub fn stored_node_id(dir: &Path) -> Option<i32> {
    let bytes = std::fs::read(dir.join("meta.json")).ok()?;
    serde_json::from_slice::<ClusterMeta>(&bytes)
        .ok()
        .map(|m| m.node_id)
}

fn load_or_create_cluster_id(dir: &Path, node_id: i32) -> anyhow::Result<String> {
    let path = dir.join("meta.json");
    if let Ok(bytes) = std::fs::read(&path) {
        let meta: ClusterMeta = serde_json::from_slice(&bytes)?;
        if meta.node_id != node_id {
            tracing::warn!(
                stored = meta.node_id,
                configured = node_id,
                "node id differs from the data directory's"
            );
        }
        return Ok(meta.cluster_id);
    }
    // Kafka cluster ids are 22-character URL-safe base64 of a UUID.
    let id = uuid::Uuid::new_v4().simple().to_string()[..22].to_string();
    let meta = ClusterMeta {
        cluster_id: id.clone(),
        node_id,
    };
    crate::fsutil::write_atomically(&path, &serde_json::to_vec_pretty(&meta)?)?;
    Ok(id)
}
