//! `Idempotency-Key` on creates: the first response to a (user, key) is stored for 24 h and
//! replayed to retries, so a retried create never makes a twin.

use chrono::{DateTime, Utc};

use crate::UserId;
use crate::ports::StoreError;

/// How long a key is remembered.
pub const KEY_LIFETIME_HOURS: i64 = 24;

/// A response as it was sent the first time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    /// Header name/value pairs worth replaying (content type, location, ETag).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The outcome of claiming a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or had expired): run the request, then `complete` or `release` it.
    Claimed,
    /// The key is taken: by a request with `request_hash`, finished (`Some`) or still running.
    Existing {
        request_hash: String,
        response: Option<StoredResponse>,
    },
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Atomically claims `(user, key)` for a request whose body and target hash to
    /// `request_hash`. An entry whose `expires_at` is before `now` MUST be treated as absent.
    async fn claim(
        &self,
        user: UserId,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Claim, StoreError>;
    /// Stores the response of a claimed key.
    async fn complete(
        &self,
        user: UserId,
        key: &str,
        response: &StoredResponse,
    ) -> Result<(), StoreError>;
    /// Forgets a claimed key whose request failed, so that a retry runs again.
    async fn release(&self, user: UserId, key: &str) -> Result<(), StoreError>;
}
