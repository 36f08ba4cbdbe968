//! Counters of a subscriber, readable as a snapshot; every change is also a
//! `tracing` event (target `herald_events::metrics`) for log-based metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Metrics {
    handled: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    skipped: AtomicU64,
    aborted: AtomicU64,
    handler_micros_total: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    pub handled: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    /// Duplicates skipped by the deduplicator and events no handler wanted.
    pub skipped: u64,
    /// Exactly-once mode: transactions aborted (a failed handler attempt, a
    /// commit that could not complete, a rebalance).
    pub aborted: u64,
    pub handler_micros_total: u64,
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            handled: self.handled.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            aborted: self.aborted.load(Ordering::Relaxed),
            handler_micros_total: self.handler_micros_total.load(Ordering::Relaxed),
        }
    }
    pub(crate) fn handled(&self, event_type: &str, took: Duration) {
        self.handled.fetch_add(1, Ordering::Relaxed);
        self.handler_micros_total
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        tracing::trace!(target: "herald_events::metrics", event_type, handler_us = took.as_micros() as u64, "handled");
    }
    pub(crate) fn retried(&self, event_type: &str) {
        self.retried.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "herald_events::metrics", event_type, "retried");
    }
    pub(crate) fn dead_lettered(&self, event_type: &str) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(target: "herald_events::metrics", event_type, "dead-lettered");
    }
    pub(crate) fn skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn aborted(&self, reason: &str) {
        self.aborted.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "herald_events::metrics", reason, "transaction aborted");
    }
}
