//! [`RateLimiter`] shared by every instance: one Redis counter per key and window.
//!
//! A window starts with its first hit and lasts `window_secs` (Redis' clock, so instances with
//! skewed clocks still agree). When Redis cannot be reached the request is let through: rate
//! limiting is best effort, and an outage must not lock everybody out.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fred::prelude::Client;
use fred::types::Value;

use mdcreator_domain::ports::{RateLimited, RateLimiter};

use crate::clients::fail_fast;
use crate::script::LuaScript;

/// Counts hits in Redis; see the module docs.
#[derive(Clone)]
pub struct RedisRateLimiter {
    client: Client,
    timeout: Duration,
    /// Unix second of the last "Redis unreachable" warning.
    last_warning: Arc<AtomicU64>,
}

/// Counts the hit and returns `{hits in this window, milliseconds left in it}`. A counter without
/// an expiry (first hit, or one left behind by anything) gets the window's.
static HIT: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        r"
local hits = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  left = tonumber(ARGV[1])
  redis.call('PEXPIRE', KEYS[1], left)
end
return {hits, left}
",
    )
});

const WARN_EVERY_SECS: u64 = 60;

impl RedisRateLimiter {
    pub(crate) fn new(client: Client, timeout: Duration) -> Self {
        Self {
            client,
            timeout,
            last_warning: Arc::new(AtomicU64::new(0)),
        }
    }

    fn warn_unreachable(&self, error: &fred::error::Error) {
        let now = unix_now();
        let last = self.last_warning.load(Ordering::Relaxed);
        if now >= last + WARN_EVERY_SECS
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = %error,
                "Redis unreachable: rate limits are not enforced until it is back \
                 (logged at most once a minute)"
            );
        }
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    #[tracing::instrument(level = "debug", skip_all, fields(limit = limit, window_secs = window_secs))]
    async fn hit(&self, key: &str, limit: u32, window_secs: u64) -> Result<(), RateLimited> {
        let window_ms = window_secs.max(1).saturating_mul(1000);
        // The window length is part of the key: one key may be limited over several windows.
        let counter = format!("mdc:rl:{window_secs}:{key}");
        let reply: Result<Vec<i64>, _> = HIT
            .run(
                &self.client,
                &fail_fast(self.timeout),
                &[&counter],
                vec![Value::Integer(i64::try_from(window_ms).unwrap_or(i64::MAX))],
            )
            .await;
        match reply.as_deref() {
            Ok(&[hits, left_ms]) => {
                if hits > i64::from(limit) {
                    let retry_after_secs = u64::try_from(left_ms).unwrap_or(0).div_ceil(1000);
                    Err(RateLimited {
                        retry_after_secs: retry_after_secs.max(1),
                    })
                } else {
                    Ok(())
                }
            }
            Ok(other) => {
                tracing::error!(reply = ?other, "unexpected rate-limit script reply");
                Ok(())
            }
            Err(e) => {
                self.warn_unreachable(e);
                Ok(())
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
