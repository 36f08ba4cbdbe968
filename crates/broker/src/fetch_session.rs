//! Incremental fetch sessions (KIP-227), as Kafka's `FetchSession.scala`
//! keeps them: a consumer's full fetch (epoch 0) creates a session that
//! remembers its partitions, fetch offsets and the high watermark, last
//! stable and log start offsets last answered; its incremental fetches
//! (session id, next epoch) name only what changed, and their responses carry
//! only partitions with records, changed offsets or an error.
//!
//! The cache is bounded (`max.incremental.fetch.session.cache.slots`, 0
//! turns sessions off) with Kafka's eviction policy for unprivileged (consumer)
//! sessions: when the cache is full, a new session takes the slot of the least
//! recently used one if that one is stale (unused for `EVICTION_MS`), else of
//! the smallest session created more than `EVICTION_MS` ago, and only if the
//! new session has more partitions; otherwise it is not created and the
//! client fetches sessionless. Herald has no follower (privileged) fetches.
//!
//! Memory: a session holds at most `SESSION_PARTITIONS_MAX` partitions and the
//! whole cache `CACHE_PARTITIONS_MAX`; a session that would grow past either
//! is closed (the client gets FETCH_SESSION_ID_NOT_FOUND and starts over
//! with a full fetch, answered sessionless if it is still too large).
//!
//! Sessions are not bound to a connection (as in Kafka), but to the principal
//! that created them: another principal naming the id gets
//! FETCH_SESSION_ID_NOT_FOUND. ACLs are checked per request for every
//! partition a session carries, so revoking READ takes effect at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_request::FetchRequest;

/// Kafka's `MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS`: a session unused this
/// long is stale; one created this long ago may be evicted by a larger one.
pub const EVICTION_MS: u64 = 120_000;
/// Partitions one session may hold.
pub const SESSION_PARTITIONS_MAX: usize = 50_000;
/// Partitions all sessions together may hold (~100 bytes each).
pub const CACHE_PARTITIONS_MAX: usize = 1_000_000;

/// How a fetch request's topic is named: by id from v13, by name before.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Id(uuid::Uuid),
    Name(String),
}

/// What a session remembers of one partition.
#[derive(Clone, Debug)]
pub struct CachedPartition {
    pub topic: TopicKey,
    pub partition: i32,
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    pub current_leader_epoch: i32,
    /// Offsets last answered; -1: never answered (or an error), so the
    /// partition is in the next response whatever it holds.
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

impl CachedPartition {
    /// Kafka's `maybeUpdateResponseData`: whether an incremental response
    /// must carry this partition, remembering what it answers.
    pub fn must_respond(
        &mut self,
        records_len: usize,
        error_code: i16,
        high_watermark: i64,
        last_stable_offset: i64,
        log_start_offset: i64,
    ) -> bool {
        let mut must = records_len > 0;
        if self.high_watermark != high_watermark {
            must = true;
            self.high_watermark = high_watermark;
        }
        // Kafka compares the high watermark and log start offset only; the
        // last stable offset is compared too so that read_committed
        // consumers learn a moved LSO (their lag) without new records.
        if self.last_stable_offset != last_stable_offset {
            must = true;
            self.last_stable_offset = last_stable_offset;
        }
        if self.log_start_offset != log_start_offset {
            must = true;
            self.log_start_offset = log_start_offset;
        }
        if error_code != 0 {
            // Re-sent once the error is gone.
            self.high_watermark = -1;
            must = true;
        }
        must
    }
}

pub struct Session {
    pub id: i32,
    /// The epoch the next incremental request must carry.
    pub epoch: i32,
    pub uses_topic_ids: bool,
    pub principal: String,
    /// In request order; partitions that answered records move to the end
    /// (Kafka's rotation, so that a response size limit serves all in turn).
    pub partitions: Vec<CachedPartition>,
    index: HashMap<(TopicKey, i32), usize>,
    created_ms: u64,
    last_used_ms: u64,
    /// The size the eviction index knows it by.
    cached_size: usize,
}

impl Session {
    /// A session outside the cache, for comparing offsets only.
    pub fn detached(id: i32, partitions: Vec<CachedPartition>) -> Session {
        let mut s = Session {
            id,
            epoch: -1,
            uses_topic_ids: false,
            principal: String::new(),
            partitions,
            index: HashMap::new(),
            created_ms: 0,
            last_used_ms: 0,
            cached_size: 0,
        };
        s.reindex();
        s
    }

    fn reindex(&mut self) {
        self.index = self
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| ((p.topic.clone(), p.partition), i))
            .collect();
    }

    pub fn get_mut(&mut self, topic: &TopicKey, partition: i32) -> Option<&mut CachedPartition> {
        let i = *self.index.get(&(topic.clone(), partition))?;
        self.partitions.get_mut(i)
    }

    /// Moves the named partitions to the end, keeping their order.
    pub fn rotate(&mut self, answered: &[(TopicKey, i32)]) {
        if answered.is_empty() {
            return;
        }
        let moved: std::collections::HashSet<_> = answered.iter().cloned().collect();
        let (mut keep, back): (Vec<_>, Vec<_>) = std::mem::take(&mut self.partitions)
            .into_iter()
            .partition(|p| !moved.contains(&(p.topic.clone(), p.partition)));
        keep.extend(back);
        self.partitions = keep;
        self.reindex();
    }
}

/// Kafka's `nextEpoch`.
fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        -1
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// A fetch request's session fields, decided at arrival.
pub enum Context {
    /// Epoch -1 (or v<7, or no session created): every partition, session id 0.
    Sessionless,
    /// Epoch 0: every partition; a session is created when answered.
    Full,
    /// The session's partitions after this request's changes.
    Incremental {
        id: i32,
        epoch: i32,
        partitions: Vec<CachedPartition>,
    },
    /// Answered with this top-level error and nothing else.
    Error(ResponseError),
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<i32, Session>,
    /// (last used ms, id): the least recently used first.
    last_used: BTreeSet<(u64, i32)>,
    /// (size, id) of sessions created more than EVICTION_MS ago (as of their
    /// last use): Kafka's `evictableByAll`.
    evictable: BTreeSet<(usize, i32)>,
    partitions_total: usize,
}

impl Inner {
    fn remove(&mut self, id: i32) -> Option<Session> {
        let s = self.sessions.remove(&id)?;
        self.last_used.remove(&(s.last_used_ms, id));
        self.evictable.remove(&(s.cached_size, id));
        self.partitions_total = self.partitions_total.saturating_sub(s.cached_size);
        Some(s)
    }

    /// Forgets a session taken out of `sessions`.
    fn drop_taken(&mut self, s: &Session) {
        self.last_used.remove(&(s.last_used_ms, s.id));
        self.evictable.remove(&(s.cached_size, s.id));
        self.partitions_total = self.partitions_total.saturating_sub(s.cached_size);
    }

    /// Kafka's `touch`: marks the session used and re-files it by size.
    fn touch(&mut self, id: i32, now_ms: u64) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        self.last_used.remove(&(s.last_used_ms, id));
        self.evictable.remove(&(s.cached_size, id));
        self.partitions_total = self.partitions_total.saturating_sub(s.cached_size);
        s.last_used_ms = now_ms;
        s.cached_size = s.partitions.len();
        self.last_used.insert((now_ms, id));
        if now_ms.saturating_sub(s.created_ms) > EVICTION_MS {
            self.evictable.insert((s.cached_size, id));
        }
        self.partitions_total += s.cached_size;
    }
}

pub struct FetchSessionCache {
    slots_max: usize,
    inner: Mutex<Inner>,
    start: Instant,
    pub evictions_total: AtomicU64,
}

impl FetchSessionCache {
    pub fn new(slots_max: usize) -> FetchSessionCache {
        FetchSessionCache {
            slots_max,
            inner: Mutex::default(),
            start: Instant::now(),
            evictions_total: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent-enough state.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sessions and partitions cached (the metrics' gauges).
    pub fn sizes(&self) -> (usize, usize) {
        let g = self.lock();
        (g.sessions.len(), g.partitions_total)
    }

    /// Decides how a request is served (Kafka's `FetchManager.newContext`):
    /// closes, checks or updates its session.
    pub fn context(&self, version: i16, req: &FetchRequest, principal: &str) -> Context {
        if version < 7 {
            return Context::Sessionless;
        }
        let (id, epoch) = (req.session_id, req.session_epoch);
        if epoch == 0 || epoch == -1 {
            // A full fetch closes the session it names.
            if id != 0 {
                let mut g = self.lock();
                if g.sessions
                    .get(&id)
                    .is_some_and(|s| s.principal == principal)
                {
                    g.remove(id);
                }
            }
            return if epoch == -1 || self.slots_max == 0 {
                Context::Sessionless
            } else {
                Context::Full
            };
        }
        if id == 0 {
            // An incremental epoch without a session: Kafka's FetchMetadata
            // calls this invalid too.
            return Context::Error(ResponseError::InvalidFetchSessionEpoch);
        }
        let uses_topic_ids = version >= 13;
        let now = self.now_ms();
        let mut g = self.lock();
        match g.sessions.get(&id) {
            Some(s) if s.principal == principal => {
                if s.epoch != epoch {
                    return Context::Error(ResponseError::InvalidFetchSessionEpoch);
                }
                if s.uses_topic_ids != uses_topic_ids {
                    return Context::Error(ResponseError::FetchSessionTopicIdError);
                }
            }
            _ => return Context::Error(ResponseError::FetchSessionIdNotFound),
        }
        // Taken out while it changes (the lock is held throughout).
        let Some(mut s) = g.sessions.remove(&id) else {
            return Context::Error(ResponseError::FetchSessionIdNotFound);
        };
        // Added or updated partitions, then forgotten ones.
        for ft in &req.topics {
            let key = topic_key(uses_topic_ids, &ft.topic_id, &ft.topic.0);
            for fp in &ft.partitions {
                if let Some(c) = s.get_mut(&key, fp.partition) {
                    c.fetch_offset = fp.fetch_offset;
                    c.partition_max_bytes = fp.partition_max_bytes;
                    c.current_leader_epoch = fp.current_leader_epoch;
                    continue;
                }
                if s.partitions.len() >= SESSION_PARTITIONS_MAX {
                    g.drop_taken(&s);
                    tracing::info!(
                        session_id = id,
                        "fetch session closed: more than {SESSION_PARTITIONS_MAX} partitions"
                    );
                    return Context::Error(ResponseError::FetchSessionIdNotFound);
                }
                s.index
                    .insert((key.clone(), fp.partition), s.partitions.len());
                s.partitions.push(CachedPartition {
                    topic: key.clone(),
                    partition: fp.partition,
                    fetch_offset: fp.fetch_offset,
                    partition_max_bytes: fp.partition_max_bytes,
                    current_leader_epoch: fp.current_leader_epoch,
                    high_watermark: -1,
                    last_stable_offset: -1,
                    log_start_offset: -1,
                });
            }
        }
        let mut forgotten = std::collections::HashSet::new();
        for ft in &req.forgotten_topics_data {
            let key = topic_key(uses_topic_ids, &ft.topic_id, &ft.topic.0);
            for p in &ft.partitions {
                if s.index.contains_key(&(key.clone(), *p)) {
                    forgotten.insert((key.clone(), *p));
                }
            }
        }
        if !forgotten.is_empty() {
            s.partitions
                .retain(|c| !forgotten.contains(&(c.topic.clone(), c.partition)));
            s.reindex();
        }
        if s.partitions.is_empty() {
            g.drop_taken(&s);
            return Context::Sessionless;
        }
        let grown = s.partitions.len().saturating_sub(s.cached_size);
        if g.partitions_total + grown > CACHE_PARTITIONS_MAX {
            g.drop_taken(&s);
            tracing::info!(
                session_id = id,
                "fetch session closed: the cache holds {CACHE_PARTITIONS_MAX} partitions"
            );
            return Context::Error(ResponseError::FetchSessionIdNotFound);
        }
        s.epoch = next_epoch(s.epoch);
        let partitions = s.partitions.clone();
        g.sessions.insert(id, s);
        g.touch(id, now);
        Context::Incremental {
            id,
            epoch,
            partitions,
        }
    }

    /// Kafka's `maybeCreateSession` after a full fetch is answered: the new
    /// session's id, or 0 when there is no room (or nothing to remember).
    pub fn create(
        &self,
        uses_topic_ids: bool,
        principal: &str,
        partitions: Vec<CachedPartition>,
    ) -> i32 {
        let size = partitions.len();
        if self.slots_max == 0 || size == 0 || size > SESSION_PARTITIONS_MAX {
            return 0;
        }
        let now = self.now_ms();
        let mut g = self.lock();
        if g.sessions.len() >= self.slots_max && !self.try_evict(&mut g, size, now) {
            return 0;
        }
        if g.partitions_total + size > CACHE_PARTITIONS_MAX {
            return 0;
        }
        let id = loop {
            let id = (uuid::Uuid::new_v4().as_u128() as u32 & 0x7fff_ffff) as i32;
            if id != 0 && !g.sessions.contains_key(&id) {
                break id;
            }
        };
        let mut s = Session {
            id,
            epoch: 1,
            uses_topic_ids,
            principal: principal.to_string(),
            partitions,
            index: HashMap::new(),
            created_ms: now,
            last_used_ms: now,
            cached_size: 0,
        };
        s.reindex();
        g.sessions.insert(id, s);
        g.last_used.insert((now, id));
        g.touch(id, now);
        id
    }

    /// Kafka's `tryEvict` for an unprivileged session of `size` partitions.
    fn try_evict(&self, g: &mut Inner, size: usize, now: u64) -> bool {
        let Some(&(last_used, lru)) = g.last_used.first() else {
            return false;
        };
        let victim = if now.saturating_sub(last_used) > EVICTION_MS {
            lru
        } else {
            match g.evictable.first() {
                // Kafka's EvictableKey order: a new key (size, id 0) below the
                // smallest evictable one cannot evict it; equal size neither.
                Some(&(s, id)) if size > s => id,
                _ => return false,
            }
        };
        g.remove(victim);
        self.evictions_total.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// After an incremental response: updates the session's cached offsets
    /// through `f` (which decides what the response carries) and rotates.
    pub fn with_session<R>(&self, id: i32, f: impl FnOnce(Option<&mut Session>) -> R) -> R {
        let mut g = self.lock();
        f(g.sessions.get_mut(&id))
    }
}

pub fn topic_key(uses_topic_ids: bool, id: &uuid::Uuid, name: &str) -> TopicKey {
    if uses_topic_ids {
        TopicKey::Id(*id)
    } else {
        TopicKey::Name(name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(n: usize) -> Vec<CachedPartition> {
        (0..n)
            .map(|i| CachedPartition {
                topic: TopicKey::Name("t".into()),
                partition: i as i32,
                fetch_offset: 0,
                partition_max_bytes: 1024,
                current_leader_epoch: -1,
                high_watermark: 0,
                last_stable_offset: 0,
                log_start_offset: 0,
            })
            .collect()
    }

    #[test]
    fn full_cache_evicts_only_stale_or_old_smaller_sessions() {
        let c = FetchSessionCache::new(2);
        let a = c.create(false, "User:a", parts(3));
        let b = c.create(false, "User:a", parts(5));
        assert!(a > 0 && b > 0 && a != b);
        // Full, nothing stale or old: refused.
        assert_eq!(c.create(false, "User:a", parts(10)), 0);
        assert_eq!(c.evictions_total.load(Ordering::Relaxed), 0);
        // Pretend both were created long ago and touched since.
        {
            let mut g = c.lock();
            for id in [a, b] {
                if let Some(s) = g.sessions.get_mut(&id) {
                    s.created_ms = 0;
                }
            }
            let now = EVICTION_MS + 10;
            g.touch(a, now);
            g.touch(b, now);
        }
        // Not larger than the smallest old one: refused.
        assert_eq!(c.create(false, "User:a", parts(3)), 0);
        // Larger: evicts the smallest (a).
        let d = c.create(false, "User:a", parts(4));
        assert!(d > 0);
        assert_eq!(c.evictions_total.load(Ordering::Relaxed), 1);
        let g = c.lock();
        assert!(!g.sessions.contains_key(&a) && g.sessions.contains_key(&b));
        assert_eq!(g.partitions_total, 9);
    }

    #[test]
    fn zero_slots_disables_sessions() {
        let c = FetchSessionCache::new(0);
        assert_eq!(c.create(false, "User:a", parts(3)), 0);
    }

    #[test]
    fn next_epoch_wraps_to_one() {
        assert_eq!(next_epoch(1), 2);
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(-1), -1);
    }
}
