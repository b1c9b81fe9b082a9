//! Cross-cutting port types. Each area's own ports live in its module (`documents::ports`…).

use chrono::{DateTime, Utc};

/// A storage failure that no use case can do anything about except report.
///
/// Adapters MUST map "cannot reach the database / pool timed out" to `Unavailable` (the server
/// answers 503 with `Retry-After`) and everything else to `Unexpected`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("unexpected storage error")]
    Unexpected(#[source] anyhow::Error),
}

/// The time source of every use case; tests pin it.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock, at microsecond precision: what Postgres stores, so a time a response shows
/// is the time a later read shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        use chrono::SubsecRound;
        Utc::now().trunc_subsecs(6)
    }
}

/// A request refused by a rate limit; retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited; retry after {retry_after_secs} s")]
pub struct RateLimited {
    pub retry_after_secs: u64,
}

/// Fixed-window counters shared by every instance (Redis) or kept in process.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one hit on `key`. MUST return `Err(RateLimited)` once `limit` hits were counted in
    /// the current window of `window_secs`, and MUST NOT fail the request when its backend is
    /// unreachable (rate limiting is best-effort).
    async fn hit(&self, key: &str, limit: u32, window_secs: u64) -> Result<(), RateLimited>;
}
