//! The listeners: binding, accepting within the connection limits, TLS, and
//! the broker's background tasks. One connection's request loop is in
//! `connection`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::connection::ListenerMeta;
use crate::listener::{Endpoint, ListenerConfig, SecurityProtocol};
use crate::topic_registry::TopicRegistry;

/// A response that may not be ready yet; None means no response (acks=0).
pub type PendingResponse = Pin<Box<dyn Future<Output = Option<Bytes>> + Send>>;

/// How long shutdown waits for in-flight requests before closing connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A broker running in this process.
pub struct RunningBroker {
    /// The first listener's address.
    pub addr: SocketAddr,
    /// Every listener's name and bound address.
    pub listeners: Vec<(String, SocketAddr)>,
    pub broker: Arc<Broker>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningBroker {
    /// Stops accepting, answers in-flight requests, closes logs cleanly.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the broker stops (after `shutdown` from another handle).
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// The bound address of the listener named `name` (`SASL_SSL`).
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, a)| *a)
    }
}

/// A listener bound to its socket.
pub struct BoundListener {
    pub config: ListenerConfig,
    pub socket: TcpListener,
    pub endpoint: Endpoint,
}

/// Binds every listener of `config`; a TLS listener needs TLS settings.
pub async fn bind_listeners(config: &BrokerConfig) -> anyhow::Result<Vec<BoundListener>> {
    let mut out = Vec::new();
    for l in config.effective_listeners() {
        anyhow::ensure!(
            !l.protocol.tls() || config.security.tls.is_some(),
            "listener {} ({}) needs a certificate and key (--ssl-cert, --ssl-key)",
            l.name,
            l.protocol.name()
        );
        let socket = bind(l.bind, config.socket_listen_backlog)
            .map_err(|e| anyhow::anyhow!("binding listener {} on {}: {e}", l.name, l.bind))?;
        let addr = socket.local_addr()?;
        let (host, port) = match &l.advertised {
            Some((h, p)) => (h.clone(), if *p == 0 { addr.port() } else { *p }),
            None => (addr.ip().to_string(), addr.port()),
        };
        out.push(BoundListener {
            endpoint: Endpoint {
                listener: l.name.clone(),
                host,
                port: port as i32,
            },
            config: l,
            socket,
        });
    }
    Ok(out)
}

/// A listening socket with Kafka's `socket.listen.backlog.size`.
fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // A restarted broker rebinds its port while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Opens the data directory, recovers logs, binds the listeners and starts serving.
pub async fn start(config: BrokerConfig) -> anyhow::Result<RunningBroker> {
    std::fs::create_dir_all(&config.data_dir)?;
    let listeners = bind_listeners(&config).await?;
    let endpoints = listeners.iter().map(|l| l.endpoint.clone()).collect();
    let started = std::time::Instant::now();
    let topics = TopicRegistry::load(
        &config.data_dir,
        config.log.clone(),
        config.partitions_per_topic_max,
    )?;
    let groups = crate::group_coordinator::GroupCoordinator::open(&config)?;
    let broker = Arc::new(Broker::new(config, topics, groups, endpoints)?);
    broker.security.reload().await?;
    tracing::info!(
        data_dir = %broker.config.data_dir.display(),
        topics = broker.topics.list().len(),
        open_ms = started.elapsed().as_millis() as u64,
        "opened the local storage engine"
    );
    Ok(serve_broker(listeners, broker))
}

/// Serves an assembled broker (of any engine) on bound listeners.
pub fn serve_broker(listeners: Vec<BoundListener>, broker: Arc<Broker>) -> RunningBroker {
    let bound: Vec<(String, SocketAddr)> = listeners
        .iter()
        .map(|l| {
            let addr = l
                .socket
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            (l.config.name.clone(), addr)
        })
        .collect();
    for (l, (_, addr)) in listeners.iter().zip(&bound) {
        tracing::info!(
            listener = %l.config.name,
            protocol = l.config.protocol.name(),
            listen = %addr,
            engine = broker.topics.engine().kind(),
            authorizer = broker.security.authorizer.is_some(),
            "herald broker listening"
        );
    }
    let addr = bound
        .first()
        .map(|b| b.1)
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(serve(listeners, broker.clone(), shutdown_rx));
    RunningBroker {
        addr,
        listeners: bound,
        broker,
        shutdown,
        task,
    }
}

/// Reloads the topic catalog whenever the engine says another broker changed it.
async fn follow_topics(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = broker.topics.engine().topics_changed() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = broker.topics.refresh().await {
            tracing::warn!(error = %e, "reloading topics failed");
        }
    }
}

/// Reloads users and ACLs when another broker changed them, and TLS files
/// when they change on disk.
async fn follow_security(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let interval = broker.security.config.tls_reload_interval;
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = broker.security.changed() => {
                if let Err(e) = broker.security.reload().await {
                    tracing::warn!(error = %e, "reloading users and ACLs failed");
                }
            }
            _ = tick.tick() => {
                let sec = &broker.security;
                if sec.reload_needed.load(std::sync::atomic::Ordering::Relaxed)
                    && let Err(e) = sec.reload().await
                {
                    tracing::warn!(error = %e, "reloading users and ACLs failed again");
                }
                let sasl_own = match (&sec.tls, &sec.tls_sasl) {
                    (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                    _ => false,
                };
                let contexts = sec.tls.iter().chain(sec.tls_sasl.iter().filter(|_| sasl_own));
                for tls in contexts {
                    match tls.reload_if_changed() {
                        Ok(true) => tracing::info!("TLS certificate, key or CA reloaded"),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "TLS files changed but cannot be loaded; keeping the previous ones"),
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn accept_loop(
    socket: TcpListener,
    meta: Arc<ListenerMeta>,
    tx: mpsc::Sender<(TcpStream, SocketAddr, Arc<ListenerMeta>)>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    if tx.send((stream, peer, meta.clone())).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(listener = %meta.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn serve(
    listeners: Vec<BoundListener>,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let maintenance = tokio::spawn(crate::maintenance::run(broker.clone(), shutdown.clone()));
    let group_timers = tokio::spawn(crate::group_coordinator::run_timers(
        broker.clone(),
        shutdown.clone(),
    ));
    let txn_timers = tokio::spawn(crate::txn_coordinator::run_timers(
        broker.clone(),
        shutdown.clone(),
    ));
    let topic_follower = tokio::spawn(follow_topics(broker.clone(), shutdown.clone()));
    let security_follower = tokio::spawn(follow_security(broker.clone(), shutdown.clone()));
    let (accepted_tx, mut accepted) = mpsc::channel(64);
    let mut acceptors = Vec::new();
    for l in listeners {
        let meta = Arc::new(ListenerMeta {
            name: l.config.name.clone().into(),
            protocol: l.config.protocol,
        });
        acceptors.push(tokio::spawn(accept_loop(
            l.socket,
            meta,
            accepted_tx.clone(),
            shutdown.clone(),
        )));
    }
    drop(accepted_tx);
    let slots = Arc::new(tokio::sync::Semaphore::new(broker.config.connections_max));
    let per_ip = PerIp::new(broker.config.connections_per_ip_max);
    let mut trim = crate::memory::TrimAfterClose::default();
    loop {
        tokio::select! {
            a = accepted.recv() => match a {
                Some((stream, peer, meta)) => match (slots.clone().try_acquire_owned(), per_ip.admit(peer.ip())) {
                    (Ok(permit), Some(ip_slot)) => {
                        trim.opened(connections.len() + 1);
                        connections.spawn(accept_connection(broker.clone(), stream, peer, meta, shutdown.clone(), (permit, ip_slot)));
                    }
                    (Ok(_), None) => {
                        if let Some(suppressed) = broker.security.connection_refusals.admit() {
                            tracing::warn!(%peer, max = broker.config.connections_per_ip_max, suppressed, "refusing a connection: too many from this address");
                        }
                        drop(stream);
                    }
                    (Err(_), _) => {
                        if let Some(suppressed) = broker.security.connection_refusals.admit() {
                            tracing::warn!(%peer, max = broker.config.connections_max, suppressed, "refusing a connection: too many connections");
                        }
                        drop(stream);
                    }
                },
                None => break,
            },
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {
                trim.closed(connections.len());
            }
        }
    }
    for a in acceptors {
        let _ = a.await;
    }
    tracing::info!(
        connections = connections.len(),
        "shutting down: answering in-flight requests"
    );
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    let _ = maintenance.await;
    let _ = group_timers.await;
    let _ = txn_timers.await;
    let _ = topic_follower.await;
    let _ = security_follower.await;
    broker.groups.close();
    broker.txn.close();
    broker.topics.close_all();
    tracing::info!("herald broker stopped");
}

/// TLS if the listener speaks it, then the request loop.
async fn accept_connection(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerMeta>,
    shutdown: watch::Receiver<bool>,
    _slots: (tokio::sync::OwnedSemaphorePermit, IpSlot),
) {
    let _ = stream.set_nodelay(true);
    let _counted = broker.metrics.connection_opened(&listener.name);
    let anonymous: Arc<str> = Arc::from(herald_security::ANONYMOUS);
    if !listener.protocol.tls() {
        let (rd, wr) = stream.into_split();
        crate::connection::serve(broker, rd, wr, peer, listener, anonymous, shutdown).await;
        return;
    }
    let context = if listener.protocol == SecurityProtocol::SaslSsl {
        &broker.security.tls_sasl
    } else {
        &broker.security.tls
    };
    let Some(tls) = context.clone() else {
        return; // bind_listeners refuses this configuration
    };
    // A client that does not finish its handshake in time is dropped: a
    // half-open handshake holds a connection slot and a little memory.
    let handshake_timeout = broker.security.config.sasl_auth_timeout;
    let stream = match tokio::time::timeout(handshake_timeout, tls.acceptor().accept(stream)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            broker
                .security
                .tls_handshake_failed(&peer.to_string(), &e.to_string());
            return;
        }
        Err(_) => {
            broker
                .security
                .tls_handshake_failed(&peer.to_string(), "handshake timed out");
            return;
        }
    };
    // On SSL the client certificate names the principal; on SASL_SSL, SASL does.
    let principal = if listener.protocol == SecurityProtocol::Ssl {
        let cert = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first().cloned());
        match cert {
            None => anonymous,
            Some(der) => {
                let dn = herald_security::tls::subject_dn(&der);
                match dn.as_deref().and_then(|d| broker.security.mapper.map(d)) {
                    Some(name) => Arc::from(format!("User:{name}")),
                    None => {
                        broker.security.tls_handshake_failed(
                            &peer.to_string(),
                            &format!("no ssl.principal.mapping.rules rule matches the certificate subject {dn:?}"),
                        );
                        return;
                    }
                }
            }
        }
    } else {
        anonymous
    };
    let (rd, wr) = tokio::io::split(stream);
    crate::connection::serve(broker, rd, wr, peer, listener, principal, shutdown).await;
}

/// Open connections per client address (`max.connections.per.ip`).
struct PerIp {
    max: usize,
    open: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

/// One connection's share of its address's allowance, given back on drop.
struct IpSlot {
    ip: std::net::IpAddr,
    open: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

impl PerIp {
    fn new(max: usize) -> PerIp {
        PerIp {
            max,
            open: Default::default(),
        }
    }

    fn admit(&self, ip: std::net::IpAddr) -> Option<IpSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            ip,
            open: self.open.clone(),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
