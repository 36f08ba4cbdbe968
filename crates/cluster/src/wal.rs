//! The write path. Every broker gathers the produce payloads of all partitions
//! into one WAL object, cut every `flush_interval` or at `flush_bytes`; the
//! object is uploaded under a fresh key with `If-None-Match: *`; then one
//! PostgreSQL transaction per object (`commit.rs`) checks the idempotent
//! producers, assigns offsets and advances the high watermarks. A produce is
//! answered only after COMMIT.
//!
//! Uploads of successive objects overlap (up to `UPLOADS_IN_FLIGHT_MAX`), but
//! commits run one at a time in flush order, so a producer's pipelined requests
//! reach the sequence checks in the order it sent them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use herald_broker::storage::Appended;
use herald_log::LogError;
use herald_log::batch::BatchHeader;
use kafka_protocol::ResponseError;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::cache::BlockCache;
use crate::commit::{self, AppendResult, CommitInput};
use crate::objects::{self, Store};

/// Objects uploading while older ones wait for their commit.
const UPLOADS_IN_FLIGHT_MAX: usize = 8;
/// Upload attempts before the appends of an object fail.
const UPLOAD_ATTEMPTS_MAX: u32 = 5;
/// Commit attempts (an ambiguous failure is retried: commits are idempotent by key).
const COMMIT_ATTEMPTS_MAX: u32 = 8;

/// One produce payload of one partition waiting for its object.
pub struct PendingAppend {
    pub topic_id: uuid::Uuid,
    pub partition: i32,
    pub records: Bytes,
    pub headers: Vec<BatchHeader>,
    pub reply: oneshot::Sender<Result<Appended, LogError>>,
}

#[derive(Clone, Debug)]
pub struct WalConfig {
    pub flush_interval: Duration,
    pub flush_bytes: usize,
    /// Produce bytes buffered or uploading beyond which new requests wait.
    pub buffered_bytes_max: usize,
    pub node_id: i32,
    pub cluster_id: String,
    pub key_prefix: String,
}

struct Buffer {
    appends: Vec<PendingAppend>,
    bytes: usize,
}

/// The broker's WAL writer: `append` buffers, the flusher cuts objects.
pub struct Wal {
    config: WalConfig,
    buffer: Mutex<Buffer>,
    /// Bytes buffered plus bytes of objects not yet committed.
    outstanding: Mutex<usize>,
    space: Notify,
    cut_now: Notify,
}

impl Wal {
    pub fn start(
        config: WalConfig,
        store: Store,
        pool: deadpool_postgres::Pool,
        cache: Arc<BlockCache>,
    ) -> Arc<Wal> {
        let wal = Arc::new(Wal {
            config,
            buffer: Mutex::new(Buffer {
                appends: Vec::new(),
                bytes: 0,
            }),
            outstanding: Mutex::new(0),
            space: Notify::new(),
            cut_now: Notify::new(),
        });
        let (tx, rx) = mpsc::channel(UPLOADS_IN_FLIGHT_MAX);
        tokio::spawn(flusher(wal.clone(), store.clone(), cache, tx));
        tokio::spawn(committer(wal.clone(), pool, rx));
        wal
    }

    /// Buffers one payload; its reply arrives after the object is committed.
    pub fn append(&self, a: PendingAppend) {
        let n = a.records.len();
        let cut = {
            let Ok(mut b) = self.buffer.lock() else {
                let _ = a.reply.send(Err(LogError::StorageUnavailable));
                return;
            };
            b.bytes += n;
            b.appends.push(a);
            b.bytes >= self.config.flush_bytes
        };
        if let Ok(mut o) = self.outstanding.lock() {
            *o += n;
        }
        if cut {
            self.cut_now.notify_one();
        }
    }

    /// Waits while too much produce data is buffered or uploading.
    pub async fn admit(&self) {
        loop {
            let wait = self.space.notified();
            let full = self
                .outstanding
                .lock()
                .map(|o| *o >= self.config.buffered_bytes_max)
                .unwrap_or(false);
            if !full {
                return;
            }
            wait.await;
        }
    }

    fn release(&self, bytes: usize) {
        if let Ok(mut o) = self.outstanding.lock() {
            *o = o.saturating_sub(bytes);
        }
        self.space.notify_waiters();
    }

    fn take(&self) -> Vec<PendingAppend> {
        match self.buffer.lock() {
            Ok(mut b) => {
                b.bytes = 0;
                std::mem::take(&mut b.appends)
            }
            Err(_) => Vec::new(),
        }
    }
}

/// An object on its way: its upload, and the appends it carries.
struct Flight {
    cut_at: std::time::Instant,
    key: object_store::path::Path,
    size: usize,
    appends: Vec<PendingAppend>,
    /// (byte offset, byte size) of each append in the object.
    spans: Vec<(u64, u32)>,
    upload: tokio::task::JoinHandle<Result<(), String>>,
}

async fn flusher(wal: Arc<Wal>, store: Store, cache: Arc<BlockCache>, tx: mpsc::Sender<Flight>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wal.config.flush_interval) => {}
            _ = wal.cut_now.notified() => {}
        }
        let appends = wal.take();
        if appends.is_empty() {
            continue;
        }
        let size: usize = appends.iter().map(|a| a.records.len()).sum();
        let mut body = BytesMut::with_capacity(size);
        let mut spans = Vec::with_capacity(appends.len());
        for a in &appends {
            spans.push((body.len() as u64, a.records.len() as u32));
            body.extend_from_slice(&a.records);
        }
        let body = body.freeze();
        let id = uuid::Uuid::now_v7();
        let key = objects::wal_key(&wal.config.key_prefix, &wal.config.cluster_id, id);
        // The writer reads its own fresh objects from memory (Fetch right after
        // Produce is the common case).
        cache.insert_object(key.as_ref(), &body);
        let upload = tokio::spawn(upload(store.clone(), key.clone(), body));
        let flight = Flight {
            cut_at: std::time::Instant::now(),
            key,
            size,
            appends,
            spans,
            upload,
        };
        if tx.send(flight).await.is_err() {
            return;
        }
    }
}

async fn upload(store: Store, key: object_store::path::Path, body: Bytes) -> Result<(), String> {
    let mut delay = Duration::from_millis(20);
    let mut last = String::new();
    for attempt in 1..=UPLOAD_ATTEMPTS_MAX {
        match objects::put_new(&store, &key, body.clone()).await {
            Ok(()) => return Ok(()),
            // Our key is fresh: if it exists, an earlier attempt of ours wrote
            // it and only the response was lost.
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. })
                if attempt > 1 =>
            {
                return Ok(());
            }
            Err(e) => {
                last = e.to_string();
                tracing::warn!(%key, attempt, error = %last, "object upload failed; retrying");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
    Err(last)
}

async fn committer(wal: Arc<Wal>, pool: deadpool_postgres::Pool, mut rx: mpsc::Receiver<Flight>) {
    let mut queue: VecDeque<Flight> = VecDeque::new();
    loop {
        let flight = match queue.pop_front() {
            Some(f) => f,
            None => match rx.recv().await {
                Some(f) => f,
                None => return,
            },
        };
        let cut_at = flight.cut_at;
        let waited = cut_at.elapsed();
        let uploaded = match flight.upload.await {
            Ok(r) => r,
            Err(e) => Err(format!("upload task failed: {e}")),
        };
        let Flight {
            key,
            size,
            appends,
            spans,
            ..
        } = flight;
        if let Err(e) = uploaded {
            tracing::error!(%key, error = %e, "object upload failed; its produce requests fail");
            for a in appends {
                let _ = a.reply.send(Err(LogError::Coded {
                    code: ResponseError::KafkaStorageError.code(),
                    message: format!("object storage write failed: {e}"),
                }));
            }
            wal.release(size);
            continue;
        }
        let input = CommitInput {
            key: key.to_string(),
            size: size as i64,
            broker_id: wal.config.node_id,
            appends: appends
                .iter()
                .zip(&spans)
                .map(|(a, (off, len))| commit::AppendInput {
                    topic_id: a.topic_id,
                    partition: a.partition,
                    byte_offset: *off as i64,
                    byte_size: *len as i32,
                    headers: a.headers.clone(),
                })
                .collect(),
        };
        let uploaded_after = cut_at.elapsed();
        let results = commit_with_retries(&pool, &input).await;
        tracing::debug!(
            key = %input.key,
            bytes = size,
            appends = input.appends.len(),
            queued_ms = waited.as_millis() as u64,
            uploaded_ms = uploaded_after.as_millis() as u64,
            committed_ms = cut_at.elapsed().as_millis() as u64,
            "object committed"
        );
        for (a, r) in appends.into_iter().zip(results) {
            let _ = a.reply.send(match r {
                AppendResult::Ok(appended) => Ok(appended),
                AppendResult::Err(e) => Err(e),
            });
        }
        wal.release(size);
    }
}

/// Commits, retrying failures: a retry after an ambiguous failure (the
/// connection lost around COMMIT) finds the object's row and reads the
/// original answers, so an object is never applied twice.
async fn commit_with_retries(
    pool: &deadpool_postgres::Pool,
    input: &CommitInput,
) -> Vec<AppendResult> {
    let mut delay = Duration::from_millis(50);
    let mut last = String::new();
    for attempt in 1..=COMMIT_ATTEMPTS_MAX {
        match commit::commit(pool, input).await {
            Ok(r) => return r,
            Err(e) => {
                last = format!("{e:#}");
                tracing::warn!(key = %input.key, attempt, error = %last, "commit failed; retrying");
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
    tracing::error!(key = %input.key, error = %last, "commit failed for good; its produce requests fail");
    // The object may be committed after all (a commit whose answer was lost on
    // every attempt); the producer's retry is then answered as a duplicate.
    input
        .appends
        .iter()
        .map(|_| {
            AppendResult::Err(LogError::Coded {
                code: ResponseError::RequestTimedOut.code(),
                message: format!("the cluster database did not confirm the commit: {last}"),
            })
        })
        .collect()
}
