//! `herald serve`: every setting by flag, by `HERALD_*` environment variable,
//! or from a TOML file (`--config`), in that order of precedence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use herald_broker::BrokerConfig;
use herald_cluster::ClusterConfig;
use serde::Deserialize;

#[derive(Args, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys as the long flags, e.g. `data-dir`).
    #[arg(long, env = "HERALD_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9092].
    #[arg(long, env = "HERALD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// host:port given to clients [default: the listen address].
    #[arg(long, env = "HERALD_ADVERTISED")]
    pub advertised: Option<String>,
    /// Data directory [default: ./herald-data].
    #[arg(long, env = "HERALD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Broker id (`node.id`) [default: the id the data directory was created
    /// with, else 0].
    #[arg(long, env = "HERALD_NODE_ID")]
    pub node_id: Option<i32>,
    /// Partitions of auto-created topics (`num.partitions`) [default: 1].
    #[arg(long, env = "HERALD_NUM_PARTITIONS")]
    pub num_partitions: Option<i32>,
    /// Create unknown topics on Metadata requests [default: true].
    #[arg(long, env = "HERALD_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// Largest request frame in bytes (`socket.request.max.bytes`) [default: 104857600].
    #[arg(long, env = "HERALD_SOCKET_REQUEST_MAX_BYTES")]
    pub socket_request_max_bytes: Option<usize>,
    /// Largest record batch (`message.max.bytes`) [default: 1048588].
    #[arg(long, env = "HERALD_MESSAGE_MAX_BYTES")]
    pub message_max_bytes: Option<usize>,
    /// Segment size (`log.segment.bytes`) [default: 1073741824].
    #[arg(long, env = "HERALD_SEGMENT_BYTES")]
    pub segment_bytes: Option<u64>,
    /// Segment age before a roll (`log.roll.ms`) [default: 7 days].
    #[arg(long, env = "HERALD_SEGMENT_MS")]
    pub segment_ms: Option<u64>,
    /// Retention by time (`log.retention.ms`), -1 forever [default: 7 days].
    #[arg(long, env = "HERALD_RETENTION_MS", allow_hyphen_values = true)]
    pub retention_ms: Option<i64>,
    /// Retention by size per partition (`log.retention.bytes`), -1 unbounded [default: -1].
    #[arg(long, env = "HERALD_RETENTION_BYTES", allow_hyphen_values = true)]
    pub retention_bytes: Option<i64>,
    /// How often retention runs (`log.retention.check.interval.ms`) [default: 300000].
    #[arg(long, env = "HERALD_RETENTION_CHECK_INTERVAL_MS")]
    pub retention_check_interval_ms: Option<u64>,
    /// How often compacted topics are checked for cleaning (`log.cleaner.backoff.ms`) [default: 15000].
    #[arg(long, env = "HERALD_LOG_CLEANER_BACKOFF_MS")]
    pub log_cleaner_backoff_ms: Option<u64>,
    /// fsync after this many messages (`log.flush.interval.messages`); 1 = acks=all waits
    /// for fsync [default: 1]. A large value relaxes durability to the page cache.
    #[arg(long, env = "HERALD_FLUSH_MESSAGES")]
    pub flush_messages: Option<u64>,
    /// fsync unflushed data at least this often (`log.flush.interval.ms`) [default: never by time].
    #[arg(long, env = "HERALD_FLUSH_MS")]
    pub flush_ms: Option<u64>,
    /// Delay of the first rebalance of an empty classic group
    /// (`group.initial.rebalance.delay.ms`) [default: 0].
    #[arg(long, env = "HERALD_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// Smallest session timeout a classic member may ask for (`group.min.session.timeout.ms`) [default: 6000].
    #[arg(long, env = "HERALD_GROUP_MIN_SESSION_TIMEOUT_MS")]
    pub group_min_session_timeout_ms: Option<u64>,
    /// KIP-848 member session timeout (`group.consumer.session.timeout.ms`) [default: 45000].
    #[arg(long, env = "HERALD_GROUP_CONSUMER_SESSION_TIMEOUT_MS")]
    pub group_consumer_session_timeout_ms: Option<u64>,
    /// KIP-848 heartbeat interval (`group.consumer.heartbeat.interval.ms`) [default: 5000].
    #[arg(long, env = "HERALD_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS")]
    pub group_consumer_heartbeat_interval_ms: Option<u64>,
    /// Committed offsets of an empty group expire after this (`offsets.retention.minutes`) [default: 10080].
    #[arg(long, env = "HERALD_OFFSETS_RETENTION_MINUTES")]
    pub offsets_retention_minutes: Option<u64>,
    /// Size of the group state log (`__consumer_offsets`) past which it is
    /// rewritten as a snapshot of the live state, once it is also twice the
    /// last snapshot's size [default: 67108864].
    #[arg(long, env = "HERALD_OFFSETS_COMPACT_BYTES")]
    pub offsets_compact_bytes: Option<u64>,
    /// The longest `transaction.timeout.ms` a transactional producer may ask
    /// for (`transaction.max.timeout.ms`) [default: 900000].
    #[arg(long, env = "HERALD_TRANSACTION_MAX_TIMEOUT_MS")]
    pub transaction_max_timeout_ms: Option<u64>,
    /// How often open transactions past their timeout are aborted
    /// (`transaction.abort.timed.out.transaction.cleanup.interval.ms`) [default: 10000].
    #[arg(
        long,
        env = "HERALD_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS"
    )]
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: Option<u64>,
    /// An idle transactional id is forgotten after this
    /// (`transactional.id.expiration.ms`) [default: 604800000].
    #[arg(long, env = "HERALD_TRANSACTIONAL_ID_EXPIRATION_MS")]
    pub transactional_id_expiration_ms: Option<u64>,
    /// Kafka's `listeners`: `NAME://HOST:PORT`, comma separated; names are
    /// PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL or mapped by
    /// --listener-security-protocol-map [default: PLAINTEXT://127.0.0.1:9092].
    #[arg(long, env = "HERALD_LISTENERS")]
    pub listeners: Option<String>,
    /// `advertised.listeners`: what clients are told, per listener name.
    #[arg(long, env = "HERALD_ADVERTISED_LISTENERS")]
    pub advertised_listeners: Option<String>,
    /// `listener.security.protocol.map`: `INTERNAL:SSL,EXTERNAL:SASL_SSL`.
    #[arg(long, env = "HERALD_LISTENER_SECURITY_PROTOCOL_MAP")]
    pub listener_security_protocol_map: Option<String>,
    /// PEM certificate chain of SSL and SASL_SSL listeners (reloaded when it changes).
    #[arg(long, env = "HERALD_SSL_CERT")]
    pub ssl_cert: Option<PathBuf>,
    /// PEM private key of SSL and SASL_SSL listeners.
    #[arg(long, env = "HERALD_SSL_KEY")]
    pub ssl_key: Option<PathBuf>,
    /// PEM CA bundle that client certificates must chain to.
    #[arg(long, env = "HERALD_SSL_CA")]
    pub ssl_ca: Option<PathBuf>,
    /// `ssl.client.auth`: none, requested or required [default: none].
    #[arg(long, env = "HERALD_SSL_CLIENT_AUTH")]
    pub ssl_client_auth: Option<String>,
    /// How often the TLS files are checked for changes [default: 10000].
    #[arg(long, env = "HERALD_SSL_RELOAD_INTERVAL_MS")]
    pub ssl_reload_interval_ms: Option<u64>,
    /// `ssl.principal.mapping.rules` [default: DEFAULT].
    #[arg(long, env = "HERALD_SSL_PRINCIPAL_MAPPING_RULES")]
    pub ssl_principal_mapping_rules: Option<String>,
    /// `sasl.enabled.mechanisms` [default: PLAIN,SCRAM-SHA-256,SCRAM-SHA-512].
    #[arg(long, env = "HERALD_SASL_ENABLED_MECHANISMS")]
    pub sasl_enabled_mechanisms: Option<String>,
    /// `connections.max.reauth.ms` (KIP-368); 0 = sessions do not expire [default: 0].
    #[arg(long, env = "HERALD_CONNECTIONS_MAX_REAUTH_MS")]
    pub connections_max_reauth_ms: Option<u64>,
    /// `connection.failed.authentication.delay.ms` [default: 100].
    #[arg(long, env = "HERALD_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS")]
    pub connection_failed_authentication_delay_ms: Option<u64>,
    /// A TLS handshake or SASL authentication that takes longer closes the
    /// connection [default: 10000].
    #[arg(long, env = "HERALD_AUTHENTICATION_TIMEOUT_MS")]
    pub authentication_timeout_ms: Option<u64>,
    /// `max.connections`: open connections over all listeners [default: 10000].
    #[arg(long, env = "HERALD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// `max.connections.per.ip`: open connections from one address [default: unlimited].
    #[arg(long, env = "HERALD_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// `connections.max.idle.ms`: a connection with no complete request and
    /// no pending response for this long is closed [default: 600000].
    #[arg(long, env = "HERALD_CONNECTIONS_MAX_IDLE_MS")]
    pub connections_max_idle_ms: Option<u64>,
    /// `socket.listen.backlog.size`: connections queued by the kernel before
    /// accept (capped by net.core.somaxconn) [default: 1024].
    #[arg(long, env = "HERALD_SOCKET_LISTEN_BACKLOG_SIZE")]
    pub socket_listen_backlog_size: Option<u32>,
    /// HTTP server of the console, `/metrics`, `/healthz`, `/readyz` and the
    /// admin API: an address, or `off` (which also stops collecting metrics)
    /// [default: 127.0.0.1:9644].
    #[arg(long, env = "HERALD_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Serve the HTTP server over HTTPS with the broker's --ssl-cert and
    /// --ssl-key (no client certificate asked for) [default: false].
    #[arg(long, env = "HERALD_HTTP_TLS")]
    pub http_tls: Option<bool>,
    /// Unsent response bytes a connection may queue before the broker stops
    /// reading its requests [default: 16777216].
    #[arg(long, env = "HERALD_CONNECTION_QUEUED_RESPONSE_BYTES_MAX")]
    pub connection_queued_response_bytes_max: Option<usize>,
    /// Partitions (and group offsets) with their own series in /metrics;
    /// past it only totals and a dropped count [default: 2000].
    #[arg(long, env = "HERALD_METRICS_PARTITION_SERIES_MAX")]
    pub metrics_partition_series_max: Option<usize>,
    /// `acl` turns Kafka's ACL authorizer on [default: none].
    #[arg(long, env = "HERALD_AUTHORIZER")]
    pub authorizer: Option<String>,
    /// `super.users`: `User:admin;User:ops`.
    #[arg(long, env = "HERALD_SUPER_USERS")]
    pub super_users: Option<String>,
    /// `allow.everyone.if.no.acl.found` [default: false].
    #[arg(long, env = "HERALD_ALLOW_EVERYONE_IF_NO_ACL_FOUND")]
    pub allow_everyone_if_no_acl_found: Option<bool>,
    /// Cluster mode: the PostgreSQL database that orders records, `postgres://USER@HOST:PORT/DB`.
    /// With `--object-store`, this broker is one of a cluster (see docs/cluster.md).
    #[arg(long, env = "HERALD_CLUSTER_DB")]
    pub cluster_db: Option<String>,
    /// Cluster mode: where record batches live, `s3://BUCKET[/PREFIX]` (credentials and
    /// region from the AWS_* variables).
    #[arg(long, env = "HERALD_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// Cluster mode: an S3-compatible endpoint (`http://127.0.0.1:8333`); path-style addressing.
    #[arg(long, env = "HERALD_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Cluster mode: this broker's rack or zone; clients with `herald_az=ZONE` in their
    /// client.id are routed to brokers of their zone.
    #[arg(long, env = "HERALD_RACK")]
    pub rack: Option<String>,
    /// Cluster mode: a WAL object is cut after this many ms [default: 250].
    #[arg(long, env = "HERALD_CLUSTER_FLUSH_MS")]
    pub cluster_flush_ms: Option<u64>,
    /// Cluster mode: ...or once it holds this many bytes [default: 8388608].
    #[arg(long, env = "HERALD_CLUSTER_FLUSH_BYTES")]
    pub cluster_flush_bytes: Option<usize>,
    /// Cluster mode: bytes of object blocks each broker caches [default: 268435456].
    #[arg(long, env = "HERALD_CLUSTER_CACHE_BYTES")]
    pub cluster_cache_bytes: Option<usize>,
    /// Cluster mode: WAL objects older than this (seconds) that were never committed are deleted [default: 3600].
    #[arg(long, env = "HERALD_CLUSTER_ORPHAN_AGE_SECS")]
    pub cluster_orphan_age_secs: Option<u64>,
}

impl ServeArgs {
    fn merged_with_file(mut self) -> anyhow::Result<ServeArgs> {
        // Taken, so that merging twice (run, then into_config) reads it once.
        let Some(path) = self.config.take() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let file: ServeArgs =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = file.$f; } )* };
        }
        fill!(
            listen,
            advertised,
            data_dir,
            node_id,
            num_partitions,
            auto_create_topics,
            socket_request_max_bytes,
            message_max_bytes,
            segment_bytes,
            segment_ms,
            retention_ms,
            retention_bytes,
            retention_check_interval_ms,
            log_cleaner_backoff_ms,
            flush_messages,
            flush_ms,
            group_initial_rebalance_delay_ms,
            group_min_session_timeout_ms,
            group_consumer_session_timeout_ms,
            group_consumer_heartbeat_interval_ms,
            offsets_retention_minutes,
            offsets_compact_bytes,
            transaction_max_timeout_ms,
            transaction_abort_timed_out_transaction_cleanup_interval_ms,
            transactional_id_expiration_ms,
            metrics_partition_series_max,
            cluster_db,
            object_store,
            s3_endpoint,
            rack,
            cluster_flush_ms,
            cluster_flush_bytes,
            cluster_cache_bytes,
            cluster_orphan_age_secs,
            listeners,
            advertised_listeners,
            listener_security_protocol_map,
            ssl_cert,
            ssl_key,
            ssl_ca,
            ssl_client_auth,
            ssl_reload_interval_ms,
            ssl_principal_mapping_rules,
            sasl_enabled_mechanisms,
            connections_max_reauth_ms,
            connection_failed_authentication_delay_ms,
            authentication_timeout_ms,
            max_connections,
            max_connections_per_ip,
            connections_max_idle_ms,
            socket_listen_backlog_size,
            connection_queued_response_bytes_max,
            http_listen,
            http_tls,
            authorizer,
            super_users,
            allow_everyone_if_no_acl_found
        );
        Ok(self)
    }

    pub fn into_config(self) -> anyhow::Result<(BrokerConfig, Option<ClusterConfig>)> {
        let a = self.merged_with_file()?;
        let cluster = match (&a.cluster_db, &a.object_store) {
            (None, None) => None,
            (Some(db), Some(store)) => {
                let mut cc = ClusterConfig::new(db.clone(), store.clone());
                cc.s3_endpoint = a.s3_endpoint.clone();
                cc.rack = a.rack.clone();
                if let Some(v) = a.cluster_flush_ms {
                    anyhow::ensure!(
                        (1..=60_000).contains(&v),
                        "--cluster-flush-ms must be in 1..=60000"
                    );
                    cc.flush_interval = Duration::from_millis(v);
                }
                if let Some(v) = a.cluster_flush_bytes {
                    anyhow::ensure!(
                        (1024..=256 * 1024 * 1024).contains(&v),
                        "--cluster-flush-bytes must be in 1 KiB..=256 MiB"
                    );
                    cc.flush_bytes = v;
                }
                if let Some(v) = a.cluster_cache_bytes {
                    cc.cache_bytes = v;
                }
                if let Some(v) = a.cluster_orphan_age_secs {
                    cc.orphan_age = Duration::from_secs(v.max(1));
                }
                Some(cc)
            }
            _ => anyhow::bail!("cluster mode needs both --cluster-db and --object-store"),
        };
        let mut c = BrokerConfig::default();
        security(&a, &mut c)?;
        if let Some(v) = a.listen {
            c.listen = v;
        }
        if let Some(adv) = &a.advertised {
            let (host, port) = adv
                .rsplit_once(':')
                .context("--advertised must be host:port")?;
            c.advertised = Some((host.to_string(), port.parse().context("--advertised port")?));
        }
        if let Some(v) = a.data_dir {
            c.data_dir = v;
        }
        match a.node_id {
            Some(v) => c.node_id = v,
            None => {
                if let Some(v) = herald_broker::broker::stored_node_id(&c.data_dir) {
                    c.node_id = v;
                }
            }
        }
        if let Some(v) = a.num_partitions {
            anyhow::ensure!(v >= 1, "--num-partitions must be at least 1");
            c.default_partitions = v;
        }
        if let Some(v) = a.auto_create_topics {
            c.auto_create_topics = v;
        }
        if let Some(v) = a.socket_request_max_bytes {
            anyhow::ensure!(
                (1024..=i32::MAX as usize).contains(&v),
                "--socket-request-max-bytes out of range"
            );
            c.frame_bytes_max = v;
        }
        if let Some(v) = a.message_max_bytes {
            c.log.message_bytes_max = v;
        }
        if let Some(v) = a.segment_bytes {
            anyhow::ensure!(v >= 1024, "--segment-bytes must be at least 1024");
            c.log.segment_bytes_max = v;
        }
        if let Some(v) = a.segment_ms {
            c.log.segment_age_max = Duration::from_millis(v);
        }
        if let Some(v) = a.retention_ms {
            c.log.retention_age_max = (v >= 0).then(|| Duration::from_millis(v as u64));
        }
        if let Some(v) = a.retention_bytes {
            c.log.retention_bytes_max = (v >= 0).then_some(v as u64);
        }
        if let Some(v) = a.retention_check_interval_ms {
            c.retention_check_interval = Duration::from_millis(v.max(10));
        }
        if let Some(v) = a.log_cleaner_backoff_ms {
            c.log_cleaner_backoff = Duration::from_millis(v.max(10));
        }
        if let Some(v) = a.flush_messages {
            c.log.flush_messages = v.max(1);
        }
        if let Some(v) = a.flush_ms {
            c.log.flush_interval = Some(Duration::from_millis(v));
        }
        if let Some(v) = a.group_initial_rebalance_delay_ms {
            c.group_initial_rebalance_delay = Duration::from_millis(v);
        }
        if let Some(v) = a.group_min_session_timeout_ms {
            c.group_min_session_timeout = Duration::from_millis(v);
        }
        if let Some(v) = a.group_consumer_session_timeout_ms {
            anyhow::ensure!(
                v >= 1000,
                "--group-consumer-session-timeout-ms must be at least 1000"
            );
            c.group_consumer_session_timeout = Duration::from_millis(v);
        }
        if let Some(v) = a.group_consumer_heartbeat_interval_ms {
            anyhow::ensure!(
                v >= 100,
                "--group-consumer-heartbeat-interval-ms must be at least 100"
            );
            c.group_consumer_heartbeat_interval = Duration::from_millis(v);
        }
        if let Some(v) = a.offsets_retention_minutes {
            anyhow::ensure!(v >= 1, "--offsets-retention-minutes must be at least 1");
            c.offsets_retention = Duration::from_secs(v * 60);
        }
        if let Some(v) = a.transaction_max_timeout_ms {
            anyhow::ensure!(
                (1..=i32::MAX as u64).contains(&v),
                "--transaction-max-timeout-ms must be between 1 and {}",
                i32::MAX
            );
            c.transaction_max_timeout = Duration::from_millis(v);
        }
        if let Some(v) = a.transaction_abort_timed_out_transaction_cleanup_interval_ms {
            anyhow::ensure!(
                v >= 10,
                "--transaction-abort-timed-out-transaction-cleanup-interval-ms must be at least 10"
            );
            c.transaction_abort_check_interval = Duration::from_millis(v);
        }
        if let Some(v) = a.transactional_id_expiration_ms {
            anyhow::ensure!(
                v >= 1,
                "--transactional-id-expiration-ms must be at least 1"
            );
            c.transactional_id_expiration = Duration::from_millis(v);
        }
        if let Some(v) = a.offsets_compact_bytes {
            anyhow::ensure!(v >= 1, "--offsets-compact-bytes must be at least 1");
            c.offsets_compact_bytes = v;
        }
        if let Some(v) = a.metrics_partition_series_max {
            c.metrics_partition_series_max = v;
        }
        Ok((c, cluster))
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log line that cannot be written (stderr closed: the terminal or
        // the reading process went away) must not stop the broker; by default
        // tracing-subscriber reports it with eprintln!, which then panics.
        .log_internal_errors(false)
        .init();
    let args = args.merged_with_file()?;
    let http_listen = http_listen(args.http_listen.as_deref())?;
    let http_tls = args.http_tls.unwrap_or(false);
    let (mut config, cluster) = args.into_config()?;
    anyhow::ensure!(
        !http_tls || config.security.tls.is_some(),
        "--http-tls needs --ssl-cert and --ssl-key"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let http_listener = bind_http(http_listen).await?;
        // Nobody could read them: without the HTTP server no metrics are kept.
        config.metrics_enabled = http_listener.is_some();
        let broker = match cluster {
            None => herald_broker::start(config).await?,
            Some(cluster) => herald_cluster::start(config, cluster).await?,
        };
        let http = match http_listener {
            Some(l) => Some(herald_console::start_on(
                broker.broker.clone(),
                l,
                http_tls,
            )?),
            None => None,
        };
        wait_for_signal().await;
        tracing::info!("signal received, shutting down");
        if let Some(http) = http {
            http.shutdown().await;
        }
        broker.shutdown().await;
        anyhow::Ok(())
    })
}

/// What `--http-listen` asks for.
enum HttpListen {
    /// Not given: the default address, if it is free.
    Default,
    Given(SocketAddr),
    Off,
}

fn http_listen(value: Option<&str>) -> anyhow::Result<HttpListen> {
    let Some(value) = value else {
        return Ok(HttpListen::Default);
    };
    if value.eq_ignore_ascii_case("off") {
        return Ok(HttpListen::Off);
    }
    value
        .parse()
        .map(HttpListen::Given)
        .with_context(|| format!("--http-listen {value:?}: expected HOST:PORT or off"))
}

/// Binds the HTTP listener. A given address that cannot be bound is an
/// error; the default one in use (a second broker on this machine) only
/// turns the HTTP server off, with a warning that says how to move it.
async fn bind_http(listen: HttpListen) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    match listen {
        HttpListen::Off => Ok(None),
        HttpListen::Given(addr) => herald_console::bind(addr).await.map(Some),
        HttpListen::Default => {
            let addr: SocketAddr = herald_console::HTTP_LISTEN_DEFAULT.parse()?;
            match herald_console::bind(addr).await {
                Ok(l) => Ok(Some(l)),
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "console, /metrics and the admin API are off: pass --http-listen HOST:PORT to move them (or off)"
                    );
                    Ok(None)
                }
            }
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, fall back to Ctrl-C only.
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Listeners, TLS, SASL and ACL settings.
fn security(a: &ServeArgs, c: &mut BrokerConfig) -> anyhow::Result<()> {
    use herald_broker::listener;
    if let Some(l) = &a.listeners {
        anyhow::ensure!(
            a.listen.is_none() && a.advertised.is_none(),
            "give --listeners/--advertised-listeners or --listen/--advertised, not both"
        );
        let map = match &a.listener_security_protocol_map {
            Some(m) => listener::parse_protocol_map(m).map_err(anyhow::Error::msg)?,
            None => Vec::new(),
        };
        c.listeners = listener::parse_listeners(l, a.advertised_listeners.as_deref(), &map)
            .map_err(anyhow::Error::msg)?;
    } else {
        anyhow::ensure!(
            a.advertised_listeners.is_none(),
            "--advertised-listeners needs --listeners"
        );
    }
    let s = &mut c.security;
    match (&a.ssl_cert, &a.ssl_key) {
        (Some(cert), Some(key)) => {
            let client_auth = match &a.ssl_client_auth {
                Some(v) => v.parse().map_err(anyhow::Error::msg)?,
                None => Default::default(),
            };
            s.tls = Some(herald_security::tls::TlsSettings {
                cert_path: cert.clone(),
                key_path: key.clone(),
                ca_path: a.ssl_ca.clone(),
                client_auth,
            });
        }
        (None, None) => anyhow::ensure!(
            a.ssl_ca.is_none() && a.ssl_client_auth.is_none(),
            "--ssl-ca and --ssl-client-auth need --ssl-cert and --ssl-key"
        ),
        _ => anyhow::bail!("--ssl-cert and --ssl-key go together"),
    }
    if let Some(v) = a.ssl_reload_interval_ms {
        s.tls_reload_interval = Duration::from_millis(v.max(100));
    }
    if let Some(r) = &a.ssl_principal_mapping_rules {
        s.principal_mapping_rules = r.clone();
    }
    if let Some(m) = &a.sasl_enabled_mechanisms {
        s.sasl_mechanisms = m
            .split(',')
            .map(|m| m.trim().to_ascii_uppercase())
            .filter(|m| !m.is_empty())
            .collect();
    }
    if let Some(v) = a.connections_max_reauth_ms {
        s.reauth_max = Duration::from_millis(v);
    }
    if let Some(v) = a.connection_failed_authentication_delay_ms {
        s.auth_failure_delay = Duration::from_millis(v.min(10_000));
    }
    if let Some(v) = a.authentication_timeout_ms {
        anyhow::ensure!(v >= 100, "--authentication-timeout-ms must be at least 100");
        s.sasl_auth_timeout = Duration::from_millis(v);
    }
    if let Some(v) = a.max_connections {
        anyhow::ensure!(v >= 1, "--max-connections must be at least 1");
        c.connections_max = v;
    }
    if let Some(v) = a.max_connections_per_ip {
        anyhow::ensure!(v >= 1, "--max-connections-per-ip must be at least 1");
        c.connections_per_ip_max = v;
    }
    if let Some(v) = a.connections_max_idle_ms {
        anyhow::ensure!(v >= 100, "--connections-max-idle-ms must be at least 100");
        c.connections_max_idle = Duration::from_millis(v);
    }
    if let Some(v) = a.socket_listen_backlog_size {
        anyhow::ensure!(v >= 1, "--socket-listen-backlog-size must be at least 1");
        c.socket_listen_backlog = v;
    }
    if let Some(v) = a.connection_queued_response_bytes_max {
        anyhow::ensure!(
            v >= 64 * 1024,
            "--connection-queued-response-bytes-max must be at least 65536"
        );
        c.connection_queued_response_bytes_max = v;
    }
    match a.authorizer.as_deref() {
        None | Some("none") | Some("") => {}
        Some("acl") => s.authorizer = true,
        Some(other) => anyhow::bail!("--authorizer must be acl or none, not {other:?}"),
    }
    if let Some(u) = &a.super_users {
        s.super_users = u
            .split(';')
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
    }
    if let Some(v) = a.allow_everyone_if_no_acl_found {
        s.allow_everyone_if_no_acl_found = v;
    }
    Ok(())
}
