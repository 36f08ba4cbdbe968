//! Skips events already handled within a time window, by event id. Kafka
//! delivers at least once; this makes a handler effectively once for
//! redeliveries that happen within the window (after a crash or rebalance).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Ids with the time they were seen, and the same in arrival order for expiry.
type Seen = (HashMap<String, Instant>, VecDeque<(Instant, String)>);

pub struct Deduplicator {
    window: Duration,
    capacity: usize,
    inner: Mutex<Seen>,
}

impl Deduplicator {
    /// Remembers at most `capacity` ids, each for `window`.
    pub fn new(window: Duration, capacity: usize) -> Deduplicator {
        Deduplicator {
            window,
            capacity: capacity.max(1),
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// True if `id` was seen within the window; records it otherwise.
    pub fn seen(&self, id: &str) -> bool {
        let now = Instant::now();
        let Ok(mut guard) = self.inner.lock() else {
            return false;
        };
        let (ids, order) = &mut *guard;
        while let Some((t, old)) = order.front() {
            if now.duration_since(*t) > self.window || ids.len() > self.capacity {
                if ids.get(old) == Some(t) {
                    ids.remove(old);
                }
                order.pop_front();
            } else {
                break;
            }
        }
        if let Some(t) = ids.get(id)
            && now.duration_since(*t) <= self.window
        {
            return true;
        }
        ids.insert(id.to_string(), now);
        order.push_back((now, id.to_string()));
        false
    }
}

impl Deduplicator {
    /// Forgets `id` (its handling did not take effect: an exactly-once
    /// transaction that was aborted), so a redelivery is handled again.
    pub fn forget(&self, id: &str) {
        if let Ok(mut guard) = self.inner.lock() {
            guard.0.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_window_and_forgets_after() {
        let d = Deduplicator::new(Duration::from_millis(50), 100);
        assert!(!d.seen("a"));
        assert!(d.seen("a"));
        assert!(!d.seen("b"));
        std::thread::sleep(Duration::from_millis(80));
        assert!(!d.seen("a"));
    }

    #[test]
    fn a_forgotten_id_is_new_again() {
        let d = Deduplicator::new(Duration::from_secs(60), 100);
        assert!(!d.seen("a"));
        d.forget("a");
        assert!(!d.seen("a"));
        assert!(d.seen("a"));
    }
}
