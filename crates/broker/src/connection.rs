//! One client connection: frames in, requests dispatched in order, responses
//! out in the same order.
//!
//! The reader decodes and dispatches requests; a handler may answer later (a
//! produce waiting for fsync, a fetch waiting for data) and the reader goes on
//! meanwhile, up to `requests_in_flight_max` unanswered requests, which is
//! what lets pipelined produce requests share one fsync. The writer sends the
//! answers in request order.
//!
//! Memory per connection is bounded and small when idle: the read buffer is
//! allocated while bytes are pending and released once they are consumed, the
//! writer's coalescing buffer likewise, and a client that does not read its
//! answers stops being read once `connection_queued_response_bytes_max` bytes
//! wait for it. A connection with no complete request and nothing pending for
//! `connections_max_idle` is closed, so a slowloris writer cannot hold a slot.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, watch};

use crate::broker::Broker;
use crate::handlers::{self, Reply};
use crate::listener::SecurityProtocol;
use crate::sasl::{Authentication, Step};
use crate::server::PendingResponse;

/// Smallest request: api key, version, correlation id, client id length.
pub const FRAME_BYTES_MIN: usize = 10;
/// Bytes asked of the socket per read while no frame is being assembled.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// A frame's buffer starts at most this large and doubles as its bytes arrive,
/// so a client announcing 100 MiB and sending little reserves little.
const FRAME_BUFFER_BYTES_INITIAL_MAX: usize = 1024 * 1024;
/// Answers smaller than this are copied into one buffer and written together.
const COALESCE_BYTES_MAX: usize = 64 * 1024;

/// A listener as its connections see it.
pub struct ListenerMeta {
    pub name: Arc<str>,
    pub protocol: SecurityProtocol,
}

/// Writes a WARN line unless too many were written lately (20 000 fuzzed
/// frames must not write 20 000 lines); the next line counts those skipped.
macro_rules! warn_limited {
    ($broker:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $broker.connection_log.admit() {
            tracing::warn!(suppressed, $($arg)+);
        }
    };
}

/// What the reader and the writer of one connection share.
struct Outstanding {
    /// Answers handed to the writer and not yet written.
    responses: AtomicUsize,
    /// Bytes of ready answers (`Reply::Now`) not yet written.
    queued_bytes: AtomicUsize,
    /// Signalled whenever the writer wrote something.
    written: Notify,
    /// Whether this connection's slow reading was logged (once is enough).
    slow_logged: std::sync::atomic::AtomicBool,
    broker: Arc<Broker>,
    peer: SocketAddr,
    listener: Arc<str>,
}

impl Outstanding {
    /// Logs, once per connection, that its client does not read its answers.
    fn slow_reader(&self, queued_max: usize) {
        if self.slow_logged.swap(true, Ordering::Relaxed) {
            return;
        }
        warn_limited!(self.broker, peer = %self.peer, listener = %self.listener,
            queued_bytes = self.queued_bytes.load(Ordering::Relaxed),
            max = queued_max,
            "client is not reading its responses; pausing its requests");
    }
}

/// One answer for the writer: the response, and how many of its bytes the
/// reader counted in `queued_bytes` (those of an answer that was ready).
struct Answer {
    pending: PendingResponse,
    counted_bytes: usize,
}

/// Serves one connection until the client closes it, sends something
/// unacceptable, goes idle, or the broker shuts down.
pub async fn serve<R, W>(
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
    let config = &broker.config;
    let idle = config.connections_max_idle;
    let queued_max = config.connection_queued_response_bytes_max;
    let outstanding = Arc::new(Outstanding {
        responses: AtomicUsize::new(0),
        queued_bytes: AtomicUsize::new(0),
        written: Notify::new(),
        slow_logged: Default::default(),
        broker: broker.clone(),
        peer,
        listener: listener.name.clone(),
    });
    let mut frames = FrameReader::new(rd);
    let (tx, rx) = mpsc::channel::<Answer>(config.requests_in_flight_max.max(1));
    let mut writer = tokio::spawn(write_responses(
        wr,
        rx,
        outstanding.clone(),
        idle,
        queued_max,
    ));
    let mut writer_done = false;
    let frame_max = config.frame_bytes_max;
    let security = &broker.security;
    let sasl_frame_max = security.config.sasl_frame_bytes_max.min(frame_max);
    let mut auth = Authentication::new(listener.protocol.sasl(), principal);
    let auth_deadline = tokio::time::Instant::now() + security.config.sasl_auth_timeout;
    let peer_name = peer.to_string();
    // An IPv4 client of a dual-stack listener is ::ffff:a.b.c.d: ACLs name it a.b.c.d.
    let client_ip: Arc<str> = peer.ip().to_canonical().to_string().into();
    let mut idle_deadline = tokio::time::Instant::now() + idle;
    // Sends one answer to the writer; false if the writer is gone.
    async fn send(
        tx: &mpsc::Sender<Answer>,
        outstanding: &Outstanding,
        pending: PendingResponse,
        counted_bytes: usize,
    ) -> bool {
        outstanding.responses.fetch_add(1, Ordering::Relaxed);
        outstanding
            .queued_bytes
            .fetch_add(counted_bytes, Ordering::Relaxed);
        tx.send(Answer {
            pending,
            counted_bytes,
        })
        .await
        .is_ok()
    }
    let ready = |b: Bytes| -> (PendingResponse, usize) {
        let n = b.len();
        (Box::pin(std::future::ready(Some(b))), n)
    };
    'requests: loop {
        // A client that does not read its answers is not read either.
        while outstanding.queued_bytes.load(Ordering::Relaxed) > queued_max {
            outstanding.slow_reader(queued_max);
            tokio::select! {
                _ = outstanding.written.notified() => {}
                _ = &mut writer, if !writer_done => { writer_done = true; break 'requests; }
                _ = shutdown.changed() => break 'requests,
            }
        }
        let raw = auth.expects_raw_token();
        // Before authentication frames are small (sasl.server.max.receive.size),
        // and a bare v0 token may be shorter than a request header.
        let (min, max) = match (auth.authenticated(), raw) {
            (true, false) => (FRAME_BYTES_MIN, frame_max),
            (_, true) => (0, sasl_frame_max),
            (false, false) => (FRAME_BYTES_MIN, sasl_frame_max),
        };
        let frame = tokio::select! {
            f = frames.next(min, max) => f,
            _ = shutdown.changed() => break,
            _ = &mut writer, if !writer_done => { writer_done = true; break; }
            _ = tokio::time::sleep_until(auth_deadline), if !auth.authenticated() => {
                security.authentication_failed(&peer_name, "", "", "not authenticated in time");
                break;
            }
            _ = tokio::time::sleep_until(idle_deadline) => {
                if outstanding.responses.load(Ordering::Relaxed) > 0 {
                    // Answers still pending (a long poll): not idle.
                    idle_deadline = tokio::time::Instant::now() + idle;
                    continue;
                }
                tracing::debug!(%peer, listener = %listener.name, idle_ms = idle.as_millis() as u64,
                    "closing idle connection (connections.max.idle.ms)");
                break;
            }
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break,
            // A client that resets its connection (killed, timed out) did
            // nothing wrong: no WARN for that.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                tracing::debug!(%peer, listener = %listener.name, error = %e, "connection reset by the client");
                break;
            }
            Err(e) => {
                warn_limited!(broker, %peer, listener = %listener.name, error = %e, "closing connection: bad frame");
                break;
            }
        };
        idle_deadline = tokio::time::Instant::now() + idle;
        if raw {
            match auth.raw_token(security, &peer_name, frame).await {
                Some(answer) => {
                    let (p, n) = ready(answer);
                    if !send(&tx, &outstanding, p, n).await {
                        break;
                    }
                    continue;
                }
                None => break,
            }
        }
        // The API of an answer given by `parse` itself (ApiVersions of an
        // unknown version, a MessageSet Produce or Fetch).
        let answered_api = frame
            .get(..2)
            .and_then(|k| ApiKey::try_from(i16::from_be_bytes([k[0], k[1]])).ok())
            .unwrap_or(ApiKey::ApiVersions);
        let mut req = match handlers::parse(frame) {
            Ok(Ok(r)) => r,
            Ok(Err(answer)) => {
                // It counts against the pre-authentication allowance like any
                // other request of its API.
                if let Some(why) = auth.refuse(answered_api) {
                    security.authentication_failed(&peer_name, "", "", why);
                    break;
                }
                let (p, n) = ready(answer);
                if !send(&tx, &outstanding, p, n).await {
                    break;
                }
                continue;
            }
            Err(e) => {
                warn_limited!(broker, %peer, error = %e, "closing connection: bad request");
                break;
            }
        };
        if let Some(why) = auth.refuse(req.api_key) {
            security.authentication_failed(&peer_name, "", "", why);
            tracing::debug!(%peer, api = ?req.api_key, why, "closing connection");
            break;
        }
        let metrics = &broker.metrics;
        let (api, timer) = (
            req.api_key,
            metrics.request_started(req.api_key, req.version),
        );
        let step = match req.api_key {
            ApiKey::SaslHandshake => match handlers::decode_body(&mut req) {
                Ok(body) => Some(auth.handshake(security, req.correlation_id, req.version, body)),
                Err(e) => {
                    metrics.request_closed_connection(api);
                    warn_limited!(broker, %peer, error = %e, "closing connection: bad request");
                    break;
                }
            },
            ApiKey::SaslAuthenticate => match handlers::decode_body(&mut req) {
                Ok(body) => Some(
                    auth.authenticate(security, &peer_name, req.correlation_id, req.version, body)
                        .await,
                ),
                Err(e) => {
                    metrics.request_closed_connection(api);
                    warn_limited!(broker, %peer, error = %e, "closing connection: bad request");
                    break;
                }
            },
            _ => None,
        };
        if let Some(step) = step {
            metrics.request_finished(timer);
            let (bytes, close) = match step {
                Step::Reply(b) => (b, false),
                Step::ReplyAndClose(b) => (b, true),
            };
            let (p, n) = ready(bytes);
            if !send(&tx, &outstanding, p, n).await || close {
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
        let sent = match handlers::dispatch(&broker, req, &conn).await {
            Ok(Reply::Now(Some(bytes))) => {
                metrics.request_finished(timer);
                let (p, n) = ready(bytes);
                send(&tx, &outstanding, p, n).await
            }
            Ok(Reply::Now(None)) => {
                metrics.request_finished(timer);
                // acks=0: no answer, but its turn in the order is kept.
                send(&tx, &outstanding, Box::pin(std::future::ready(None)), 0).await
            }
            Ok(Reply::Later(fut)) => {
                // Timed until the answer is ready, not until it is written.
                let fut = match timer {
                    None => fut,
                    Some(t) => {
                        let metrics = broker.metrics.clone();
                        Box::pin(async move {
                            let answer = fut.await;
                            metrics.request_finished(Some(t));
                            answer
                        })
                    }
                };
                send(&tx, &outstanding, fut, 0).await
            }
            Err(e) => {
                metrics.request_closed_connection(api);
                warn_limited!(broker, %peer, error = %e, "closing connection: bad request");
                break;
            }
        };
        if !sent {
            break;
        }
    }
    drop(tx);
    if !writer_done {
        let _ = writer.await;
    }
}

/// Reads size-prefixed frames. Cancel-safe: a frame being assembled stays in
/// the reader, so a select that gives up waiting loses nothing.
pub struct FrameReader<R> {
    inner: R,
    /// Bytes read and not yet consumed; no allocation while empty.
    buf: BytesMut,
    /// A frame larger than what was buffered, being filled: (bytes, size).
    partial: Option<(BytesMut, usize)>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::new(),
            partial: None,
        }
    }

    /// The next frame; None at a clean end of stream.
    pub async fn next(
        &mut self,
        frame_min: usize,
        frame_max: usize,
    ) -> std::io::Result<Option<Bytes>> {
        if self.partial.is_none() {
            while self.buf.len() < 4 {
                if self.buf.capacity() == self.buf.len() {
                    self.buf.reserve(READ_CHUNK_BYTES);
                }
                if self.inner.read_buf(&mut self.buf).await? == 0 {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    return Err(eof());
                }
            }
            let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
            if size < frame_min as i32 || size as i64 > frame_max as i64 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("frame size {size} outside [{frame_min}, {frame_max}]"),
                ));
            }
            let size = size as usize;
            self.buf.advance(4);
            if self.buf.len() >= size {
                // Its own allocation: a small frame kept by the engine must
                // not pin the whole read buffer.
                let frame = Bytes::copy_from_slice(&self.buf[..size]);
                self.buf.advance(size);
                self.release_if_empty();
                return Ok(Some(frame));
            }
            let mut frame = BytesMut::with_capacity(size.min(FRAME_BUFFER_BYTES_INITIAL_MAX));
            frame.extend_from_slice(&self.buf);
            self.buf = BytesMut::new();
            self.partial = Some((frame, size));
        }
        let Some((frame, size)) = self.partial.as_mut() else {
            return Err(eof());
        };
        while frame.len() < *size {
            if frame.capacity() == frame.len() {
                let more = (*size - frame.len()).min(frame.len().max(READ_CHUNK_BYTES));
                frame.reserve(more);
            }
            // Never read past this frame: what follows is the next request's.
            let wanted = (*size - frame.len()) as u64;
            // Read into uninitialised capacity: zeroing a large produce frame
            // first cost ~5% of the broker's CPU at 2M msgs/s.
            if (&mut self.inner).take(wanted).read_buf(frame).await? == 0 {
                return Err(eof());
            }
        }
        let (frame, _) = self.partial.take().unwrap_or_default();
        Ok(Some(frame.freeze()))
    }

    /// An idle connection holds no read buffer.
    fn release_if_empty(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }
}

fn eof() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "connection closed mid-frame",
    )
}

/// Writes answers in request order. Ready answers are coalesced into one
/// write; answers already buffered are sent before waiting on one that is not
/// ready (a produce waiting for its fsync, a long poll), or they would sit in
/// the buffer for as long as the next one took. A client that takes none of
/// our bytes for `stall_max` is dropped.
async fn write_responses<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Answer>,
    outstanding: Arc<Outstanding>,
    stall_max: Duration,
    queued_max: usize,
) {
    let mut out = BytesMut::new();
    // Answers in `out` not yet written, and their counted bytes.
    let mut unflushed = (0usize, 0usize);
    let flush = async |wr: &mut W, out: &mut BytesMut, unflushed: &mut (usize, usize)| -> bool {
        if !out.is_empty() && !write_bounded(wr, out, stall_max, || {}).await {
            return false;
        }
        // Release the buffer: an idle connection holds none.
        *out = BytesMut::new();
        settle(&outstanding, unflushed.0, unflushed.1);
        *unflushed = (0, 0);
        true
    };
    while let Some(Answer {
        mut pending,
        counted_bytes,
    }) = rx.recv().await
    {
        let answer = tokio::select! {
            biased;
            a = &mut pending => a,
            _ = std::future::ready(()) => {
                if !flush(&mut wr, &mut out, &mut unflushed).await {
                    return;
                }
                pending.await
            }
        };
        match answer {
            // Empty: the response could not be encoded (see handlers::encode_response).
            Some(bytes) if bytes.is_empty() => {
                let _ = flush(&mut wr, &mut out, &mut unflushed).await;
                return;
            }
            Some(bytes) if out.len() + bytes.len() <= COALESCE_BYTES_MAX => {
                out.extend_from_slice(&bytes);
                unflushed.0 += 1;
                unflushed.1 += counted_bytes;
            }
            Some(bytes) => {
                // A large answer computed late (a fetch) counts while it is
                // written: a client that does not read it pauses its reader.
                let counted_bytes = if counted_bytes == 0 {
                    outstanding
                        .queued_bytes
                        .fetch_add(bytes.len(), Ordering::Relaxed);
                    bytes.len()
                } else {
                    counted_bytes
                };
                if !flush(&mut wr, &mut out, &mut unflushed).await {
                    return;
                }
                let slow = || {
                    if outstanding.queued_bytes.load(Ordering::Relaxed) > queued_max {
                        outstanding.slow_reader(queued_max);
                    }
                };
                if !write_bounded(&mut wr, &bytes, stall_max, slow).await {
                    return;
                }
                settle(&outstanding, 1, counted_bytes);
            }
            None => {
                unflushed.0 += 1;
                unflushed.1 += counted_bytes;
            }
        }
        if (rx.is_empty() || out.len() >= COALESCE_BYTES_MAX)
            && !flush(&mut wr, &mut out, &mut unflushed).await
        {
            return;
        }
    }
    let _ = flush(&mut wr, &mut out, &mut unflushed).await;
    let _ = wr.shutdown().await;
}

/// How long a write may wait for the client before that is worth a log line.
const SLOW_READER_AFTER: Duration = Duration::from_secs(1);

/// Writes `data` and flushes; false on an error or if the client took longer
/// than `stall_max`. `slow` runs once the write has waited `SLOW_READER_AFTER`.
async fn write_bounded<W: AsyncWrite + Unpin>(
    wr: &mut W,
    data: &[u8],
    stall_max: Duration,
    slow: impl FnOnce(),
) -> bool {
    let write = async {
        wr.write_all(data).await?;
        wr.flush().await
    };
    tokio::pin!(write);
    tokio::select! {
        r = &mut write => return r.is_ok(),
        _ = tokio::time::sleep(SLOW_READER_AFTER) => slow(),
    }
    matches!(
        tokio::time::timeout(stall_max.saturating_sub(SLOW_READER_AFTER), write).await,
        Ok(Ok(()))
    )
}

/// `responses` answers of `bytes` counted bytes were written.
fn settle(outstanding: &Outstanding, responses: usize, bytes: usize) {
    if responses == 0 && bytes == 0 {
        return;
    }
    outstanding
        .responses
        .fetch_sub(responses, Ordering::Relaxed);
    outstanding.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
    outstanding.written.notify_one();
}
