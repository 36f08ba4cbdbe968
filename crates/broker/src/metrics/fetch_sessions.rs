//! KIP-227 fetch sessions: Fetch requests by kind, the partitions they name
//! and answer, and (read when scraped) the session cache's size and evictions.

use std::sync::atomic::{AtomicU64, Ordering};

use super::encode::{Family, Value};
use crate::fetch_session::FetchSessionCache;

/// How a Fetch was served (the `kind` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchKind {
    /// Epoch -1, v<7, or sessions off: every partition, session id 0.
    Sessionless,
    /// Epoch 0: every partition (a session is created if there is room).
    Full,
    /// Only what changed.
    Incremental,
    /// A session error (FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH, ...).
    Error,
}

const KINDS: [(FetchKind, &str); 4] = [
    (FetchKind::Sessionless, "sessionless"),
    (FetchKind::Full, "full"),
    (FetchKind::Incremental, "incremental"),
    (FetchKind::Error, "error"),
];

#[derive(Default)]
struct KindCounters {
    requests: AtomicU64,
    request_partitions: AtomicU64,
    response_partitions: AtomicU64,
    request_bytes: AtomicU64,
    response_bytes: AtomicU64,
}

#[derive(Default)]
pub struct FetchSessions {
    kinds: [KindCounters; 4],
}

impl FetchSessions {
    /// One Fetch answered: partitions and bytes (bodies, without headers)
    /// of its request and response.
    pub fn record(
        &self,
        kind: FetchKind,
        request_partitions: usize,
        response_partitions: usize,
        request_bytes: usize,
        response_bytes: usize,
    ) {
        let c = &self.kinds[kind as usize];
        c.request_bytes
            .fetch_add(request_bytes as u64, Ordering::Relaxed);
        c.response_bytes
            .fetch_add(response_bytes as u64, Ordering::Relaxed);
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.request_partitions
            .fetch_add(request_partitions as u64, Ordering::Relaxed);
        c.response_partitions
            .fetch_add(response_partitions as u64, Ordering::Relaxed);
    }

    pub fn collect(&self, cache: &FetchSessionCache, out: &mut Vec<Family>) {
        let mut requests = Family::counter(
            "herald_fetch_requests",
            "Fetch requests by KIP-227 session kind (sessionless, full, incremental, error).",
        );
        let mut req_parts = Family::counter(
            "herald_fetch_request_partitions",
            "Partitions named in Fetch requests, by session kind.",
        );
        let mut resp_parts = Family::counter(
            "herald_fetch_response_partitions",
            "Partitions carried by Fetch responses, by session kind.",
        );
        let mut req_bytes = Family::counter(
            "herald_fetch_request_bytes",
            "Bytes of Fetch request bodies, by session kind.",
        );
        let mut resp_bytes = Family::counter(
            "herald_fetch_response_bytes",
            "Bytes of Fetch responses (records included), by session kind.",
        );
        for (kind, name) in KINDS {
            let c = &self.kinds[kind as usize];
            let l = || vec![("kind", name.to_string())];
            requests.push(l(), Value::Counter(c.requests.load(Ordering::Relaxed)));
            req_parts.push(
                l(),
                Value::Counter(c.request_partitions.load(Ordering::Relaxed)),
            );
            resp_parts.push(
                l(),
                Value::Counter(c.response_partitions.load(Ordering::Relaxed)),
            );
            req_bytes.push(l(), Value::Counter(c.request_bytes.load(Ordering::Relaxed)));
            resp_bytes.push(
                l(),
                Value::Counter(c.response_bytes.load(Ordering::Relaxed)),
            );
        }
        let (sessions, partitions) = cache.sizes();
        out.extend([
            requests,
            req_parts,
            resp_parts,
            req_bytes,
            resp_bytes,
            Family::gauge(
                "herald_fetch_sessions",
                "Incremental fetch sessions in the cache (Kafka's NumIncrementalFetchSessions).",
            )
            .with(vec![], Value::Gauge(sessions as i64)),
            Family::gauge(
                "herald_fetch_session_partitions",
                "Partitions cached by all fetch sessions (NumIncrementalFetchPartitionsCached).",
            )
            .with(vec![], Value::Gauge(partitions as i64)),
            Family::counter(
                "herald_fetch_session_evictions",
                "Fetch sessions evicted to make room for another (IncrementalFetchSessionEvictionsPerSec).",
            )
            .with(
                vec![],
                Value::Counter(cache.evictions_total.load(Ordering::Relaxed)),
            ),
        ]);
    }
}
