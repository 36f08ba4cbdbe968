//! A log line that may be written at most so often, so that a flood of bad
//! input (failed logins, denials, malformed frames) cannot flood the log or
//! the disk under it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `LINES_PER_WINDOW` lines per window; the next admitted line says
/// how many were suppressed. A flood of denials or failed logins must not
/// flood the log (or the disk under it).
pub struct RateLimitedLog {
    inner: Mutex<(Instant, u32, u64)>,
}

const LOG_WINDOW: Duration = Duration::from_secs(10);
const LINES_PER_WINDOW: u32 = 20;

impl Default for RateLimitedLog {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimitedLog {
    pub fn new() -> RateLimitedLog {
        RateLimitedLog {
            inner: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// Some(suppressed since the last line) if a line may be written now.
    pub fn admit(&self) -> Option<u64> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now.duration_since(g.0) >= LOG_WINDOW {
            g.0 = now;
            g.1 = 0;
        }
        if g.1 < LINES_PER_WINDOW {
            g.1 += 1;
            let suppressed = g.2;
            g.2 = 0;
            Some(suppressed)
        } else {
            g.2 += 1;
            None
        }
    }
}
