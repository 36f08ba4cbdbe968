//! Kafka requests: how many per API and version, how long until each answer
//! was ready, and the errors answered.
//!
//! Counts and latencies live in fixed arrays indexed by API key and version
//! (both bounded by what `handlers::parse` accepts), so recording a request
//! is a few relaxed atomic adds, no map lookup and no lock.
//!
//! Errors (`herald_kafka_request_errors_total`) are counted, as Kafka's
//! `RequestMetrics` errors are, once per error code in a response: every
//! non-zero partition error code of Produce and Fetch responses, plus
//! `CONNECTION_CLOSED` for any request the broker could not decode and
//! answered by closing the connection. Other APIs' error codes are not
//! counted (their responses are not re-read).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::ApiKey;

use super::encode::{Family, Value};
use super::histogram::AtomicHistogram;
use prometheus_client::registry::Unit;

/// API keys below this are counted (Kafka's highest is below 100).
const API_KEYS: usize = 128;
/// Versions below this are counted (Kafka's highest is below 20).
const VERSIONS: usize = 32;

/// The `error` label of a request answered by closing the connection.
pub const CONNECTION_CLOSED: &str = "CONNECTION_CLOSED";

pub struct Requests {
    counts: Box<[AtomicU64]>,
    durations: Box<[AtomicHistogram]>,
    /// (api key, error code, or None for a closed connection): count.
    /// Only errors take this lock.
    errors: Mutex<HashMap<(i16, Option<i16>), u64>>,
}

/// A request being served; `finish` records its latency.
pub struct RequestTimer {
    api: usize,
    start: Instant,
}

fn index(api: ApiKey) -> Option<usize> {
    usize::try_from(api as i16).ok().filter(|i| *i < API_KEYS)
}

impl Default for Requests {
    fn default() -> Self {
        Requests {
            counts: (0..API_KEYS * VERSIONS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            durations: (0..API_KEYS).map(|_| AtomicHistogram::seconds()).collect(),
            errors: Mutex::new(HashMap::new()),
        }
    }
}

impl Requests {
    /// Counts a request and starts its timer.
    pub fn started(&self, api: ApiKey, version: i16) -> Option<RequestTimer> {
        let api = index(api)?;
        let v = usize::try_from(version).ok().filter(|v| *v < VERSIONS)?;
        self.counts[api * VERSIONS + v].fetch_add(1, Ordering::Relaxed);
        Some(RequestTimer {
            api,
            start: Instant::now(),
        })
    }

    /// The request's answer is ready (or it was dropped).
    pub fn finish(&self, timer: RequestTimer) {
        self.durations[timer.api].observe_duration(timer.start.elapsed());
    }

    /// A non-zero error code answered for `api` (once per partition error).
    pub fn error(&self, api: ApiKey, code: i16) {
        if code != 0 {
            self.bump_error(api as i16, Some(code));
        }
    }

    /// A request of `api` the broker answered by closing the connection.
    pub fn connection_closed(&self, api: ApiKey) {
        self.bump_error(api as i16, None);
    }

    fn bump_error(&self, api: i16, code: Option<i16>) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry((api, code)).or_default() += 1;
        }
    }

    /// Total requests of `api` so far (all versions).
    pub fn count(&self, api: ApiKey) -> u64 {
        let Some(a) = index(api) else { return 0 };
        self.counts[a * VERSIONS..(a + 1) * VERSIONS]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    pub fn collect(&self, out: &mut Vec<Family>) {
        let mut requests = Family::counter(
            "herald_kafka_requests",
            "Kafka requests received, by API and version.",
        );
        let mut durations = Family::histogram(
            "herald_kafka_request_duration",
            "Time from a decoded request to its response being ready (a long-polling fetch includes its wait).",
        )
        .unit(Unit::Seconds);
        for a in 0..API_KEYS {
            let Some(name) = api_name(a as i16) else {
                continue;
            };
            for v in 0..VERSIONS {
                let n = self.counts[a * VERSIONS + v].load(Ordering::Relaxed);
                if n > 0 {
                    requests.push(
                        vec![("api", name.clone()), ("version", v.to_string())],
                        Value::Counter(n),
                    );
                }
            }
            if !self.durations[a].is_empty() {
                durations.push(
                    vec![("api", name)],
                    Value::Histogram(self.durations[a].snapshot()),
                );
            }
        }
        let mut errors = Family::counter(
            "herald_kafka_request_errors",
            "Error codes answered (once per partition error of Produce and Fetch), and requests answered by closing the connection (error=\"CONNECTION_CLOSED\").",
        );
        let mut counted: Vec<_> = self
            .errors
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        counted.sort();
        for ((api, code), n) in counted {
            let error = match code {
                None => CONNECTION_CLOSED.to_string(),
                Some(c) => error_name(c),
            };
            errors.push(
                vec![
                    ("api", api_name(api).unwrap_or_else(|| api.to_string())),
                    ("error", error),
                ],
                Value::Counter(n),
            );
        }
        out.extend([requests, errors, durations]);
    }
}

/// "Produce", "Fetch", ... (kafka-protocol's names, which are Kafka's).
fn api_name(key: i16) -> Option<String> {
    ApiKey::try_from(key).ok().map(|k| format!("{k:?}"))
}

/// Kafka's name of an error code: 3 is "UNKNOWN_TOPIC_OR_PARTITION".
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_CODE_{c}"),
        Some(e) => {
            let camel = e.to_string();
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(56), "KAFKA_STORAGE_ERROR");
        assert_eq!(error_name(0), "NONE");
    }

    #[test]
    fn out_of_range_versions_are_not_counted() {
        let r = Requests::default();
        assert!(r.started(ApiKey::Produce, 99).is_none());
        assert!(r.started(ApiKey::Produce, -1).is_none());
        let t = r.started(ApiKey::Produce, 9).expect("counted");
        r.finish(t);
        assert_eq!(r.count(ApiKey::Produce), 1);
    }
}
