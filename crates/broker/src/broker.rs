//! The broker's shared state: configuration, topics, cluster identity, the
//! producer id allocator, and the signal that wakes long-polling fetches.

use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::group_coordinator::GroupCoordinator;
use crate::topic_registry::TopicRegistry;

/// Producer ids are reserved on disk in blocks of this size, so InitProducerId
/// costs one fsync per block, and ids never repeat across restarts.
const PRODUCER_ID_BLOCK: i64 = 1000;

pub struct Broker {
    pub config: BrokerConfig,
    pub topics: TopicRegistry,
    /// Consumer groups and committed offsets.
    pub groups: GroupCoordinator,
    pub cluster_id: String,
    pub advertised_host: String,
    pub advertised_port: i32,
    /// Bumped after every append; long-polling fetches wait on it.
    pub data_arrived: watch::Sender<u64>,
    producer_ids: Mutex<ProducerIdBlock>,
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
    pub fn new(
        config: BrokerConfig,
        topics: TopicRegistry,
        groups: GroupCoordinator,
        advertised_host: String,
        advertised_port: i32,
    ) -> anyhow::Result<Broker> {
        let cluster_id = load_or_create_cluster_id(&config.data_dir, config.node_id)?;
        let next = read_producer_id_block(&config.data_dir)?;
        let (data_arrived, _) = watch::channel(0);
        Ok(Broker {
            config,
            topics,
            groups,
            cluster_id,
            advertised_host,
            advertised_port,
            data_arrived,
            producer_ids: Mutex::new(ProducerIdBlock { next, end: next }),
        })
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// Wakes fetches waiting for data.
    pub fn notify_data_arrived(&self) {
        self.data_arrived.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A fresh producer id (never reused, even across restarts).
    pub fn allocate_producer_id(&self) -> std::io::Result<i64> {
        let mut block = self
            .producer_ids
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        if block.next >= block.end {
            let end = block.next + PRODUCER_ID_BLOCK;
            write_producer_id_block(&self.config.data_dir, end)?;
            block.end = end;
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
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

fn read_producer_id_block(dir: &Path) -> anyhow::Result<i64> {
    match std::fs::read_to_string(dir.join("producer-id-block")) {
        Ok(s) => Ok(s.trim().parse::<i64>()?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e.into()),
    }
}

fn write_producer_id_block(dir: &Path, end: i64) -> std::io::Result<()> {
    crate::fsutil::write_atomically(
        &dir.join("producer-id-block"),
        format!("{end}\n").as_bytes(),
    )
}
