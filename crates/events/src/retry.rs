//! Retry policy: a few quick attempts in place (exponential backoff with
//! jitter), then non-blocking retry topics `<topic>.retry.<n>` with fixed
//! delays, then the dead-letter topic `<topic>.dlq`.

use std::time::Duration;

/// Header names Herald's SDK writes on retried and dead-lettered records.
pub mod headers {
    pub const ORIGINAL_TOPIC: &str = "herald.original.topic";
    pub const ORIGINAL_PARTITION: &str = "herald.original.partition";
    pub const ORIGINAL_OFFSET: &str = "herald.original.offset";
    pub const ATTEMPTS: &str = "herald.attempts";
    pub const ERROR: &str = "herald.error";
    pub const FAILED_AT: &str = "herald.failed.at";
    /// Epoch ms before which a retry-topic record must not be handled.
    pub const NOT_BEFORE: &str = "herald.retry.not.before";
    /// The consumer group whose handler failed. Retry topics are shared by all
    /// groups of a topic; each group's retry consumers take only their own records.
    pub const GROUP: &str = "herald.group";

    pub const ALL: &[&str] = &[
        ORIGINAL_TOPIC,
        ORIGINAL_PARTITION,
        ORIGINAL_OFFSET,
        ATTEMPTS,
        ERROR,
        FAILED_AT,
        NOT_BEFORE,
        GROUP,
    ];
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in place before moving the event on (1: no in-place retry).
    pub attempts_in_place: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Delay of each retry topic, in order; empty: straight to the dead-letter topic.
    pub retry_topic_delays: Vec<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts_in_place: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            retry_topic_delays: vec![Duration::from_secs(5), Duration::from_secs(30)],
        }
    }
}

impl RetryPolicy {
    /// Backoff before in-place attempt `attempt` (1-based, after a failure):
    /// exponential, capped, with "equal jitter" (half fixed, half random).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_backoff);
        let half = capped / 2;
        half + half.mul_f64(jitter_fraction())
    }
}

/// A cheap pseudo-random fraction in [0, 1) (jitter needs spread, not security).
fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

pub fn retry_topic(topic: &str, level: usize) -> String {
    format!("{topic}.retry.{level}")
}

pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// The main topic of a topic name that may be a retry topic.
pub fn base_topic(topic: &str) -> &str {
    match topic.rfind(".retry.") {
        Some(i) if topic[i + 7..].parse::<usize>().is_ok() => &topic[..i],
        _ => topic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            ..Default::default()
        };
        for _ in 0..20 {
            let b1 = p.backoff(1);
            assert!(b1 >= Duration::from_millis(50) && b1 <= Duration::from_millis(100));
            let b5 = p.backoff(5);
            assert!(b5 >= Duration::from_millis(200) && b5 <= Duration::from_millis(400));
        }
    }

    #[test]
    fn topic_names() {
        assert_eq!(retry_topic("orders", 1), "orders.retry.1");
        assert_eq!(base_topic("orders.retry.2"), "orders");
        assert_eq!(base_topic("orders"), "orders");
        assert_eq!(base_topic("a.retry.x"), "a.retry.x");
        assert_eq!(dead_letter_topic("orders"), "orders.dlq");
    }
}
