//! Connections per listener (listener names come from the configuration,
//! so the label is bounded) and authentication outcomes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::encode::{Family, Value};

#[derive(Default)]
pub struct ListenerCounters {
    open: AtomicI64,
    opened: AtomicU64,
    closed: AtomicU64,
}

#[derive(Default)]
pub struct Connections {
    /// Looked up once per connection, not per request.
    listeners: Mutex<HashMap<String, Arc<ListenerCounters>>>,
}

/// Held by a connection while it is open; closing is counted on drop.
pub struct ConnectionGuard(Arc<ListenerCounters>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.closed.fetch_add(1, Ordering::Relaxed);
    }
}

impl Connections {
    pub fn opened(&self, listener: &str) -> Option<ConnectionGuard> {
        let counters = {
            let mut m = self.listeners.lock().ok()?;
            match m.get(listener) {
                Some(c) => c.clone(),
                None => m.entry(listener.to_string()).or_default().clone(),
            }
        };
        counters.open.fetch_add(1, Ordering::Relaxed);
        counters.opened.fetch_add(1, Ordering::Relaxed);
        Some(ConnectionGuard(counters))
    }

    pub fn collect(&self, out: &mut Vec<Family>) {
        let mut listeners: Vec<_> = self
            .listeners
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        listeners.sort_by(|a, b| a.0.cmp(&b.0));
        let mut open = Family::gauge("herald_connections", "Open client connections.");
        let mut opened = Family::counter(
            "herald_connections_opened",
            "Client connections accepted (and admitted by the connection limits).",
        );
        let mut closed = Family::counter("herald_connections_closed", "Client connections closed.");
        for (name, c) in listeners {
            let l = || vec![("listener", name.clone())];
            open.push(l(), Value::Gauge(c.open.load(Ordering::Relaxed)));
            opened.push(l(), Value::Counter(c.opened.load(Ordering::Relaxed)));
            closed.push(l(), Value::Counter(c.closed.load(Ordering::Relaxed)));
        }
        out.extend([open, opened, closed]);
    }
}
