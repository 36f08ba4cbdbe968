//! Broker settings. Defaults are the embedded single-node mode.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use herald_log::LogConfig;

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address the Kafka listener binds (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Host and port given to clients in Metadata; None: the bound address.
    pub advertised: Option<(String, u16)>,
    pub data_dir: PathBuf,
    /// `node.id`.
    pub node_id: i32,
    /// Largest request frame accepted (`socket.request.max.bytes`).
    pub frame_bytes_max: usize,
    /// Requests of one connection being processed or waiting to be answered.
    pub requests_in_flight_max: usize,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `num.partitions` for auto-created topics and CreateTopics without a count.
    pub default_partitions: i32,
    /// Largest partition count of one topic.
    pub partitions_per_topic_max: i32,
    /// Broker-wide defaults for topic configs (`log.*` settings).
    pub log: LogConfig,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval: Duration,
    /// `log.cleaner.backoff.ms`: how often compacted topics are checked for work.
    pub log_cleaner_backoff: Duration,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay: Duration,
    /// `offsets.retention.minutes`-like bound: committed-offset log compaction trigger.
    pub group_min_session_timeout: Duration,
    pub group_max_session_timeout: Duration,
    /// `group.consumer.session.timeout.ms`: KIP-848 member session timeout.
    pub group_consumer_session_timeout: Duration,
    /// `group.consumer.heartbeat.interval.ms`: KIP-848 heartbeat interval.
    pub group_consumer_heartbeat_interval: Duration,
    /// `offsets.retention.minutes`: committed offsets of an empty group expire after this.
    pub offsets_retention: Duration,
    /// The group state log is compacted once it is larger than this.
    pub offsets_compact_bytes: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised: None,
            data_dir: PathBuf::from("./herald-data"),
            node_id: 1,
            frame_bytes_max: 100 * 1024 * 1024,
            requests_in_flight_max: 64,
            auto_create_topics: true,
            default_partitions: 1,
            partitions_per_topic_max: 10_000,
            log: LogConfig::default(),
            retention_check_interval: Duration::from_secs(300),
            log_cleaner_backoff: Duration::from_secs(15),
            group_initial_rebalance_delay: Duration::from_millis(0),
            group_min_session_timeout: Duration::from_secs(6),
            group_max_session_timeout: Duration::from_secs(1800),
            group_consumer_session_timeout: Duration::from_secs(45),
            group_consumer_heartbeat_interval: Duration::from_secs(5),
            offsets_retention: Duration::from_secs(7 * 24 * 3600),
            offsets_compact_bytes: 64 * 1024 * 1024,
        }
    }
}
