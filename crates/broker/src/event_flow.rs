//! What the broker sees of its producers, for the console's event-flow graph
//! (producers → topics → consumer groups). A record does not carry who
//! produced it, so no outside tool can draw this; the broker knows each
//! Produce request's principal, client id and transactional id.
//!
//! Cumulative counters per (principal, client id, transactional id, topic);
//! the console samples them and turns differences into rates. Recording is off
//! until the console's HTTP server starts, and bounded: at most
//! [`PRODUCER_EDGES_MAX`] edges, the least recently seen forgotten first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Producer → topic edges kept at once.
pub const PRODUCER_EDGES_MAX: usize = 10_000;
/// Longest client id or transactional id kept (Kafka allows 32 767 bytes).
const CLIENT_ID_BYTES_MAX: usize = 256;

/// Who produced to which topic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProducerKey {
    pub principal: String,
    pub client_id: String,
    pub transactional_id: Option<String>,
    pub topic: String,
}

/// What one producer sent to one topic, since it was first seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProducerEdge {
    pub records: u64,
    pub bytes: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// The producer of one Produce request, as its header and connection say.
#[derive(Clone, Copy, Debug)]
pub struct Producer<'a> {
    pub principal: &'a str,
    pub client_id: Option<&'a str>,
    pub transactional_id: Option<&'a str>,
}

#[derive(Default)]
pub struct EventFlow {
    enabled: AtomicBool,
    producers: Mutex<HashMap<ProducerKey, ProducerEdge>>,
}

fn bounded(s: &str) -> String {
    if s.len() <= CLIENT_ID_BYTES_MAX {
        return s.to_string();
    }
    let mut end = CLIENT_ID_BYTES_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

impl EventFlow {
    /// Starts recording (the console is running).
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// `records` (`bytes`) appended to `topic` by one Produce request's partition.
    pub fn produced(&self, by: Producer<'_>, topic: &str, records: u64, bytes: u64, now_ms: i64) {
        if !self.enabled() {
            return;
        }
        let key = ProducerKey {
            principal: by.principal.to_string(),
            client_id: bounded(by.client_id.unwrap_or("")),
            transactional_id: by.transactional_id.map(bounded),
            topic: topic.to_string(),
        };
        let Ok(mut map) = self.producers.lock() else {
            return;
        };
        if !map.contains_key(&key)
            && map.len() >= PRODUCER_EDGES_MAX
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.last_seen_ms)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        let edge = map.entry(key).or_insert(ProducerEdge {
            first_seen_ms: now_ms,
            ..ProducerEdge::default()
        });
        edge.records += records;
        edge.bytes += bytes;
        edge.last_seen_ms = now_ms;
    }

    /// Every edge, with its counters now.
    pub fn producers(&self) -> Vec<(ProducerKey, ProducerEdge)> {
        match self.producers.lock() {
            Ok(map) => map.iter().map(|(k, e)| (k.clone(), *e)).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// A deleted topic's edges go with it.
    pub fn forget_topic(&self, topic: &str) {
        if let Ok(mut map) = self.producers.lock() {
            map.retain(|k, _| k.topic != topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by<'a>(principal: &'a str, client_id: Option<&'a str>) -> Producer<'a> {
        Producer {
            principal,
            client_id,
            transactional_id: None,
        }
    }

    #[test]
    fn records_only_once_enabled_and_sums_per_edge() {
        let flow = EventFlow::default();
        flow.produced(by("User:a", Some("shop/payment")), "payments", 3, 30, 1);
        assert!(flow.producers().is_empty());
        flow.enable();
        flow.produced(by("User:a", Some("shop/payment")), "payments", 3, 30, 1);
        flow.produced(by("User:a", Some("shop/payment")), "payments", 2, 20, 5);
        flow.produced(by("User:a", None), "payments", 1, 10, 6);
        let mut edges = flow.producers();
        edges.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(edges.len(), 2);
        assert_eq!(edges[1].0.client_id, "shop/payment");
        assert_eq!(
            edges[1].1,
            ProducerEdge {
                records: 5,
                bytes: 50,
                first_seen_ms: 1,
                last_seen_ms: 5
            }
        );
        flow.forget_topic("payments");
        assert!(flow.producers().is_empty());
    }

    #[test]
    fn the_edge_count_is_bounded_and_the_stalest_goes() {
        let flow = EventFlow::default();
        flow.enable();
        for i in 0..PRODUCER_EDGES_MAX + 5 {
            let id = format!("c{i}");
            flow.produced(by("User:a", Some(&id)), "t", 1, 1, i as i64);
        }
        let edges = flow.producers();
        assert_eq!(edges.len(), PRODUCER_EDGES_MAX);
        assert!(!edges.iter().any(|(k, _)| k.client_id == "c0"));
        let long = "x".repeat(10_000);
        flow.produced(by("User:a", Some(&long)), "t", 1, 1, i64::MAX);
        assert!(
            flow.producers()
                .iter()
                .all(|(k, _)| k.client_id.len() <= CLIENT_ID_BYTES_MAX)
        );
    }
}
