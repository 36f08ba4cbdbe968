//! Broker settings. Defaults are the embedded single-node mode.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use herald_log::LogConfig;
use herald_security::tls::TlsSettings;

use crate::listener::ListenerConfig;

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address the Kafka listener binds (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Host and port given to clients in Metadata; None: the bound address.
    pub advertised: Option<(String, u16)>,
    /// Kafka's `listeners`; empty: one PLAINTEXT listener on `listen`, told
    /// to clients as `advertised`.
    pub listeners: Vec<ListenerConfig>,
    /// TLS, SASL and ACLs.
    pub security: SecurityConfig,
    pub data_dir: PathBuf,
    /// `node.id`.
    pub node_id: i32,
    /// Largest request frame accepted (`socket.request.max.bytes`).
    pub frame_bytes_max: usize,
    /// Requests of one connection being processed or waiting to be answered.
    pub requests_in_flight_max: usize,
    /// Open connections over all listeners (`max.connections`); more are closed at once.
    pub connections_max: usize,
    /// Open connections from one IP address (`max.connections.per.ip`).
    pub connections_per_ip_max: usize,
    /// `connections.max.idle.ms`: a connection that sends no complete request
    /// for this long, with no response pending, is closed.
    pub connections_max_idle: Duration,
    /// `socket.listen.backlog.size`: connections the kernel queues before accept.
    pub socket_listen_backlog: u32,
    /// Response bytes one connection may have queued and unsent before the
    /// broker stops reading its requests (a client that does not read its
    /// answers cannot make the broker buffer without bound).
    pub connection_queued_response_bytes_max: usize,
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
    /// Record Prometheus metrics on the request path (false with `--http-listen off`).
    pub metrics_enabled: bool,
    /// Partitions (and group offsets) with their own series in `/metrics`;
    /// beyond it only totals, and a count of what was left out.
    pub metrics_partition_series_max: usize,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a
    /// producer may ask for (InitProducerId answers INVALID_TRANSACTION_TIMEOUT).
    pub transaction_max_timeout: Duration,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how
    /// often open transactions past their timeout are looked for and aborted.
    pub transaction_abort_check_interval: Duration,
    /// `transactional.id.expiration.ms`: an idle transactional id with no
    /// open transaction is forgotten after this.
    pub transactional_id_expiration: Duration,
    /// Bound on transactional ids kept (a new one beyond it is refused).
    pub transactional_ids_max: usize,
    /// Bound on the partitions of one transaction.
    pub transaction_partitions_max: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised: None,
            listeners: Vec::new(),
            security: SecurityConfig::default(),
            data_dir: PathBuf::from("./herald-data"),
            // Kafka's single-broker id of old (`broker.id=0`), which client
            // test suites and docker images address; docs/architecture.md.
            node_id: 0,
            frame_bytes_max: 100 * 1024 * 1024,
            requests_in_flight_max: 64,
            connections_max: 10_000,
            connections_per_ip_max: usize::MAX,
            connections_max_idle: Duration::from_secs(600),
            // Kafka's default is 50; a burst of clients reconnecting after a
            // restart overflows that and waits for SYN retries.
            socket_listen_backlog: 1024,
            connection_queued_response_bytes_max: 16 * 1024 * 1024,
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
            metrics_enabled: true,
            metrics_partition_series_max: 2000,
            transaction_max_timeout: Duration::from_secs(900),
            transaction_abort_check_interval: Duration::from_secs(10),
            transactional_id_expiration: Duration::from_secs(7 * 24 * 3600),
            transactional_ids_max: 100_000,
            transaction_partitions_max: 10_000,
        }
    }
}

/// SASL mechanisms Herald serves.
pub const SASL_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// Certificate, key, CA and client authentication of SSL and SASL_SSL listeners.
    pub tls: Option<TlsSettings>,
    /// How often TLS files are checked for changes (reloaded without a restart).
    pub tls_reload_interval: Duration,
    /// `ssl.principal.mapping.rules`.
    pub principal_mapping_rules: String,
    /// `sasl.enabled.mechanisms`.
    pub sasl_mechanisms: Vec<String>,
    /// `connections.max.reauth.ms` (KIP-368); zero: sessions do not expire.
    pub reauth_max: Duration,
    /// A SASL connection that has not authenticated within this is closed; so
    /// is a TLS connection whose handshake takes longer.
    pub sasl_auth_timeout: Duration,
    /// `connection.failed.authentication.delay.ms`: a failed login is
    /// answered after this, to slow password guessing.
    pub auth_failure_delay: Duration,
    /// `sasl.server.max.receive.size`: frame cap before authentication.
    pub sasl_frame_bytes_max: usize,
    /// `authorizer.class.name` set: ACLs are checked.
    pub authorizer: bool,
    /// `super.users`.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_everyone_if_no_acl_found: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            tls: None,
            tls_reload_interval: Duration::from_secs(10),
            principal_mapping_rules: "DEFAULT".into(),
            sasl_mechanisms: SASL_MECHANISMS.iter().map(|m| m.to_string()).collect(),
            reauth_max: Duration::ZERO,
            sasl_auth_timeout: Duration::from_secs(10),
            auth_failure_delay: Duration::from_millis(100),
            sasl_frame_bytes_max: 512 * 1024,
            authorizer: false,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
        }
    }
}

impl BrokerConfig {
    /// The listeners to bind: `listeners`, or the one PLAINTEXT default.
    pub fn effective_listeners(&self) -> Vec<ListenerConfig> {
        if !self.listeners.is_empty() {
            return self.listeners.clone();
        }
        vec![ListenerConfig {
            name: "PLAINTEXT".into(),
            protocol: crate::listener::SecurityProtocol::Plaintext,
            bind: self.listen,
            advertised: self.advertised.clone(),
        }]
    }
}
