//! Broadcast between server instances: Yjs updates and awareness for collaboration rooms,
//! "workspace advanced" pokes for sync. Redis pub/sub in production, in-process by default.
//!
//! Fan-out is best effort by design: editing and saving never wait on it, and whatever it drops
//! is recovered from the database (collaboration reloads, sync pulls).

use std::pin::Pin;

use futures::Stream;

/// Messages of one topic, in publish order per publisher, until dropped.
pub type Subscription = Pin<Box<dyn Stream<Item = Vec<u8>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    /// The backend cannot be reached now; the caller logs and carries on.
    #[error("fan-out unavailable")]
    Unavailable(#[source] anyhow::Error),
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait Fanout: Send + Sync {
    /// Delivers `payload` to every subscription of `topic` on every instance, this one included.
    /// MUST return promptly (bounded wait) with `Unavailable` when the backend is down.
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), FanoutError>;

    /// Starts receiving `topic`. Everything published after this returns is delivered (while the
    /// backend is up); nothing published before is. Dropping the stream unsubscribes.
    async fn subscribe(&self, topic: &str) -> Result<Subscription, FanoutError>;
}

/// Topic names, in one place so every instance agrees.
pub mod topics {
    use crate::{DocumentId, WorkspaceId};

    /// Yjs updates and awareness of one document's collaboration room.
    pub fn document(id: DocumentId) -> String {
        format!("mdc:doc:{id}")
    }

    /// `{workspace_id, seq}` whenever a workspace's change feed advances.
    pub fn workspace(id: WorkspaceId) -> String {
        format!("mdc:ws:{id}")
    }

    /// `{workspace_id, seq}` whenever a commit advanced the workspace's feed with a write that can
    /// change who may open its documents ([`Write::may_change_access`]): what live sockets are
    /// re-checked on, so that content saves do not re-check them.
    ///
    /// [`Write::may_change_access`]: crate::feed::Write::may_change_access
    pub fn access(id: WorkspaceId) -> String {
        format!("mdc:ws-access:{id}")
    }

    /// `{workspace_id, seq}` whenever the user joins, leaves or changes role in a workspace, so
    /// that a sync event stream can follow memberships.
    pub fn user(id: crate::UserId) -> String {
        format!("mdc:user:{id}")
    }
}
