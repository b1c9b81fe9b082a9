//! [`RateLimiter`] inside one process (embedded default): fixed windows in a map.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use mdcreator_domain::ports::{RateLimited, RateLimiter};

/// Counts hits per key and window. Memory is bounded: expired windows are swept when the map grows.
#[derive(Default)]
pub struct InProcessRateLimiter {
    windows: Mutex<HashMap<String, (u64, u32)>>,
}

const SWEEP_ABOVE: usize = 100_000;

impl InProcessRateLimiter {
    fn hit_at(&self, key: &str, limit: u32, window_secs: u64, now: u64) -> Result<(), RateLimited> {
        let window_secs = window_secs.max(1);
        let start = now - now % window_secs;
        let mut windows = match self.windows.lock() {
            Ok(w) => w,
            // A panic elsewhere while holding the lock must not disable rate limiting for good.
            Err(poisoned) => poisoned.into_inner(),
        };
        if windows.len() > SWEEP_ABOVE {
            windows.retain(|_, (s, _)| *s + window_secs > now);
        }
        let entry = windows.entry(key.to_owned()).or_insert((start, 0));
        if entry.0 != start {
            *entry = (start, 0);
        }
        if entry.1 >= limit {
            return Err(RateLimited {
                retry_after_secs: (start + window_secs - now).max(1),
            });
        }
        entry.1 += 1;
        Ok(())
    }
}

#[async_trait::async_trait]
impl RateLimiter for InProcessRateLimiter {
    async fn hit(&self, key: &str, limit: u32, window_secs: u64) -> Result<(), RateLimited> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.hit_at(key, limit, window_secs, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_and_resets_each_window() {
        let l = InProcessRateLimiter::default();
        for _ in 0..3 {
            assert!(l.hit_at("a", 3, 60, 120).is_ok());
        }
        assert_eq!(
            l.hit_at("a", 3, 60, 150),
            Err(RateLimited {
                retry_after_secs: 30
            })
        );
        assert!(l.hit_at("b", 3, 60, 150).is_ok());
        assert!(l.hit_at("a", 3, 60, 180).is_ok());
    }
}
