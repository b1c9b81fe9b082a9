//! Who is connected to a document right now, across instances: a Redis hash with heartbeats and a
//! TTL in production, a map in process in the embedded mode.

use chrono::{DateTime, Utc};

use crate::{DocumentId, UserId};

/// One live connection to a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEntry {
    /// Unique per connection (instance id + connection number), so one user on two tabs is two
    /// entries.
    pub connection_id: String,
    pub user_id: UserId,
    pub display_name: String,
    /// When the connection was opened.
    pub since: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// The backend cannot be reached now; callers log and carry on (presence is best effort).
    #[error("presence unavailable")]
    Unavailable(#[source] anyhow::Error),
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait Presence: Send + Sync {
    /// Records (or renews) `entry` for `document` until `ttl_secs` from now. Calling it again with
    /// the same `connection_id` is the heartbeat. MUST return promptly (bounded wait).
    async fn join(
        &self,
        document: DocumentId,
        entry: PresenceEntry,
        ttl_secs: u64,
    ) -> Result<(), PresenceError>;

    /// Forgets one connection. Unknown ids are not an error.
    async fn leave(&self, document: DocumentId, connection_id: &str) -> Result<(), PresenceError>;

    /// The connections whose TTL has not run out, oldest first. MUST NOT return expired entries.
    async fn list(&self, document: DocumentId) -> Result<Vec<PresenceEntry>, PresenceError>;
}
