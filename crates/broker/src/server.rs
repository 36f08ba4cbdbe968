//! The TCP listener and per-connection request loop.
//!
//! Each connection has a reader that decodes and dispatches requests in order
//! and a writer that sends responses in the same order. A handler may answer
//! later (a produce waiting for fsync, a fetch waiting for data); the reader goes
//! on meanwhile, up to `requests_in_flight_max` unanswered requests, which is
//! what lets pipelined produce requests share one fsync.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::handlers::{self, Reply};
use crate::listener::{Endpoint, ListenerConfig, SecurityProtocol};
use crate::sasl::{Authentication, Step};
use crate::topic_registry::TopicRegistry;

/// A response that may not be ready yet; None means no response (acks=0).
pub type PendingResponse = Pin<Box<dyn Future<Output = Option<Bytes>> + Send>>;

/// How long shutdown waits for in-flight requests before closing connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Smallest request: api key, version, correlation id, client id length.
const FRAME_BYTES_MIN: usize = 10;

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
        let socket = TcpListener::bind(l.bind)
            .await
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

/// A listener as its connections see it.
struct ListenerMeta {
    name: Arc<str>,
    protocol: SecurityProtocol,
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
    loop {
        tokio::select! {
            a = accepted.recv() => match a {
                Some((stream, peer, meta)) => match (slots.clone().try_acquire_owned(), per_ip.admit(peer.ip())) {
                    (Ok(permit), Some(ip_slot)) => {
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
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
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
    let _ = topic_follower.await;
    let _ = security_follower.await;
    broker.groups.close();
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
    let anonymous: Arc<str> = Arc::from(herald_security::ANONYMOUS);
    if !listener.protocol.tls() {
        let (rd, wr) = stream.into_split();
        serve_connection(broker, rd, wr, peer, listener, anonymous, shutdown).await;
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
    serve_connection(broker, rd, wr, peer, listener, principal, shutdown).await;
}

async fn serve_connection<R, W>(
    broker: Arc<Broker>,
    rd: R,
    wr: W,
    peer: SocketAddr,
    listener: Arc<ListenerMeta>,
    principal: Arc<str>,
    mut shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let (tx, rx) = mpsc::channel::<PendingResponse>(broker.config.requests_in_flight_max.max(1));
    let writer = tokio::spawn(write_responses(wr, rx));
    let frame_max = broker.config.frame_bytes_max;
    let security = &broker.security;
    let sasl_frame_max = security.config.sasl_frame_bytes_max.min(frame_max);
    let mut auth = Authentication::new(listener.protocol.sasl(), principal);
    let auth_deadline = tokio::time::Instant::now() + security.config.sasl_auth_timeout;
    let peer_name = peer.to_string();
    // An IPv4 client of a dual-stack listener is ::ffff:a.b.c.d: ACLs name it a.b.c.d.
    let client_ip: Arc<str> = peer.ip().to_canonical().to_string().into();
    loop {
        let raw = auth.expects_raw_token();
        // Before authentication frames are small (sasl.server.max.receive.size),
        // and a bare v0 token may be shorter than a request header.
        let (min, max) = match (auth.authenticated(), raw) {
            (true, false) => (FRAME_BYTES_MIN, frame_max),
            (_, true) => (0, sasl_frame_max),
            (false, false) => (FRAME_BYTES_MIN, sasl_frame_max),
        };
        let frame = tokio::select! {
            f = read_frame(&mut rd, min, max) => f,
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep_until(auth_deadline), if !auth.authenticated() => {
                security.authentication_failed(&peer_name, "", "", "not authenticated in time");
                break;
            }
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(%peer, listener = %listener.name, error = %e, "closing connection: bad frame");
                break;
            }
        };
        if raw {
            match auth.raw_token(security, &peer_name, frame).await {
                Some(answer) => {
                    if tx
                        .send(Box::pin(std::future::ready(Some(answer))))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    continue;
                }
                None => break,
            }
        }
        let mut req = match handlers::parse(frame) {
            Ok(Ok(r)) => r,
            Ok(Err(answer)) => {
                // Only ApiVersions is answered this way; it counts against the
                // pre-authentication allowance like any other.
                if let Some(why) = auth.refuse(ApiKey::ApiVersions) {
                    security.authentication_failed(&peer_name, "", "", why);
                    break;
                }
                if tx
                    .send(Box::pin(std::future::ready(Some(answer))))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad request");
                break;
            }
        };
        if let Some(why) = auth.refuse(req.api_key) {
            security.authentication_failed(&peer_name, "", "", why);
            tracing::debug!(%peer, api = ?req.api_key, why, "closing connection");
            break;
        }
        let step = match req.api_key {
            ApiKey::SaslHandshake => match handlers::decode_body(&mut req) {
                Ok(body) => Some(auth.handshake(security, req.correlation_id, req.version, body)),
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing connection: bad request");
                    break;
                }
            },
            ApiKey::SaslAuthenticate => match handlers::decode_body(&mut req) {
                Ok(body) => Some(
                    auth.authenticate(security, &peer_name, req.correlation_id, req.version, body)
                        .await,
                ),
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing connection: bad request");
                    break;
                }
            },
            _ => None,
        };
        if let Some(step) = step {
            let (bytes, close) = match step {
                Step::Reply(b) => (b, false),
                Step::ReplyAndClose(b) => (b, true),
            };
            if tx
                .send(Box::pin(std::future::ready(Some(bytes))))
                .await
                .is_err()
                || close
            {
                break;
            }
            continue;
        }
        let conn = handlers::Connection {
            peer,
            client_ip: client_ip.clone(),
            listener: listener.name.clone(),
            principal: auth.principal.clone(),
        };
        match handlers::dispatch(&broker, req, &conn).await {
            Ok(Reply::Now(bytes)) => {
                if tx.send(Box::pin(std::future::ready(bytes))).await.is_err() {
                    break;
                }
            }
            Ok(Reply::Later(fut)) => {
                if tx.send(fut).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad request");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// Reads one size-prefixed frame; None at a clean end of stream.
async fn read_frame<R: AsyncReadExt + Unpin>(
    rd: &mut R,
    frame_min: usize,
    frame_max: usize,
) -> std::io::Result<Option<Bytes>> {
    let mut size = [0u8; 4];
    match rd.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let size = i32::from_be_bytes(size);
    if size < frame_min as i32 || size as i64 > frame_max as i64 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame size {size} outside [{frame_min}, {frame_max}]"),
        ));
    }
    // Read into uninitialised capacity: zeroing a large produce frame first cost
    // ~5% of the broker's CPU at 2M msgs/s.
    let size = size as usize;
    let mut buf = BytesMut::with_capacity(size);
    let mut limited = (&mut *rd).take(size as u64);
    while buf.len() < size {
        if limited.read_buf(&mut buf).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed mid-frame",
            ));
        }
    }
    Ok(Some(buf.freeze()))
}

async fn write_responses<W: AsyncWrite + Unpin>(wr: W, mut rx: mpsc::Receiver<PendingResponse>) {
    let mut w = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(mut pending) = rx.recv().await {
        // Answers already written wait in the buffer only while the next one
        // is ready too: if it is not (a produce waiting for its fsync or
        // commit, a long poll), send what is buffered first. Without this an
        // answer sat in the buffer for as long as the next one took.
        let answer = tokio::select! {
            biased;
            a = &mut pending => a,
            _ = std::future::ready(()) => {
                if w.flush().await.is_err() {
                    return;
                }
                pending.await
            }
        };
        if let Some(bytes) = answer {
            // Empty: the response could not be encoded (see handlers::encode_response).
            if bytes.is_empty() || w.write_all(&bytes).await.is_err() {
                let _ = w.flush().await;
                return;
            }
        }
        if rx.is_empty() && w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.flush().await;
    let _ = w.into_inner().shutdown().await;
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
