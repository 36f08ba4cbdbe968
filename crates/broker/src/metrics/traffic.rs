//! Bytes and records in (Produce, counted once appended) and out (Fetch
//! responses) per topic.
//!
//! Each topic's counters are looked up once per topic of a request (a read
//! lock on a small map) and then bumped with relaxed atomic adds. Records
//! are counted from the record batch headers (`records_count` of each
//! batch, `herald_log::batch::count_records`), without decompressing.
//! Fetch counts the records of every batch it returns, including those of
//! the first batch before the fetch offset (Kafka returns whole batches).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::encode::{Family, Value};

/// Cumulative counters; the console samples and diffs them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub records_in: u64,
    pub records_out: u64,
}

impl std::ops::AddAssign for Traffic {
    fn add_assign(&mut self, o: Traffic) {
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.records_in += o.records_in;
        self.records_out += o.records_out;
    }
}

#[derive(Default)]
pub struct TopicCounters {
    bytes_in: AtomicU64,
    records_in: AtomicU64,
    bytes_out: AtomicU64,
    records_out: AtomicU64,
}

impl TopicCounters {
    pub fn add_in(&self, bytes: u64, records: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        self.records_in.fetch_add(records, Ordering::Relaxed);
    }
    pub fn add_out(&self, bytes: u64, records: u64) {
        if bytes > 0 {
            self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
            self.records_out.fetch_add(records, Ordering::Relaxed);
        }
    }
    fn read(&self) -> Traffic {
        Traffic {
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
        }
    }
}

/// One produce payload's bytes and records, counted once it is appended.
pub struct Inflow {
    counters: Arc<TopicCounters>,
    bytes: u64,
    records: u64,
}

impl Inflow {
    pub fn measure(counters: Arc<TopicCounters>, payload: &[u8]) -> Inflow {
        Inflow {
            counters,
            bytes: payload.len() as u64,
            records: record_count(payload),
        }
    }
    pub fn appended(self) {
        self.counters.add_in(self.bytes, self.records);
    }
}

#[derive(Default)]
pub struct TopicTraffic {
    topics: RwLock<HashMap<String, Arc<TopicCounters>>>,
    /// What deleted topics had counted, so that totals never go down.
    retired: Mutex<Traffic>,
}

impl TopicTraffic {
    /// The counters of `topic` (an existing topic: callers look it up first,
    /// so the map holds no more entries than there are topics).
    pub fn counters(&self, topic: &str) -> Arc<TopicCounters> {
        if let Ok(m) = self.topics.read()
            && let Some(c) = m.get(topic)
        {
            return c.clone();
        }
        match self.topics.write() {
            Ok(mut m) => m.entry(topic.to_string()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// Forgets topics that no longer exist (their counts stay in the totals).
    pub fn retain(&self, exists: impl Fn(&str) -> bool) {
        let Ok(mut m) = self.topics.write() else {
            return;
        };
        let gone: Vec<String> = m.keys().filter(|t| !exists(t)).cloned().collect();
        for t in gone {
            if let Some(c) = m.remove(&t)
                && let Ok(mut r) = self.retired.lock()
            {
                *r += c.read();
            }
        }
    }

    pub fn per_topic(&self) -> Vec<(String, Traffic)> {
        let mut v: Vec<_> = self
            .topics
            .read()
            .map(|m| m.iter().map(|(t, c)| (t.clone(), c.read())).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn totals(&self) -> Traffic {
        let mut t = self.retired.lock().map(|r| *r).unwrap_or_default();
        if let Ok(m) = self.topics.read() {
            for c in m.values() {
                t += c.read();
            }
        }
        t
    }

    pub fn collect(&self, out: &mut Vec<Family>) {
        let topics = self.per_topic();
        let mut families = [
            // Named as the issue and Kafka's BytesInPerSec are, so without
            // a UNIT line (OpenMetrics wants the unit last in the name).
            Family::counter(
                "herald_topic_bytes_in",
                "Record batch bytes appended by Produce.",
            ),
            Family::counter("herald_topic_records_in", "Records appended by Produce."),
            Family::counter(
                "herald_topic_bytes_out",
                "Record batch bytes returned by Fetch.",
            ),
            Family::counter(
                "herald_topic_records_out",
                "Records in the batches returned by Fetch.",
            ),
        ];
        for (topic, t) in topics {
            let values = [t.bytes_in, t.records_in, t.bytes_out, t.records_out];
            for (f, v) in families.iter_mut().zip(values) {
                f.push(vec![("topic", topic.clone())], Value::Counter(v));
            }
        }
        out.extend(families);
    }
}

/// Records in the whole batches of `payload`, from their headers.
pub fn record_count(payload: &[u8]) -> u64 {
    herald_log::batch::count_records(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_keep_what_deleted_topics_counted() {
        let t = TopicTraffic::default();
        t.counters("a").add_in(10, 2);
        t.counters("b").add_out(5, 1);
        t.retain(|name| name == "b");
        assert_eq!(t.per_topic().len(), 1);
        let total = t.totals();
        assert_eq!(
            (total.bytes_in, total.records_in, total.bytes_out),
            (10, 2, 5)
        );
    }
}
