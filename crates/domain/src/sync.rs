//! Multi-device sync (SYNC.md): devices, the push of queued offline mutations (exactly once, in
//! order, with three-way merges of concurrent document edits), the pull of the change feed by an
//! opaque cursor, pokes when a workspace advances, and retention of the feed.
//!
//! Writes go through the same services as the REST API (documents, folders), each with a
//! [`UnitOfWork`](crate::feed::UnitOfWork) that adds the device's mutation-id advance to the very
//! batch the service commits, so a mutation and its acknowledgement share one transaction.

mod cursor;
mod devices;
mod merge;
mod mutations;
mod poke;
mod ports;
mod pull;
mod push;

pub use cursor::Cursor;
pub use devices::{Device, DeviceError, DeviceRepository, NewDevice};
pub use merge::{Merged, merge_text};
pub use mutations::{
    Mutation, MutationKind, MutationResult, MutationStatus, ProblemFormat, PushOutcome, Rejection,
    Stop, StopReason,
};
pub use poke::{Poke, PokePublisher, PokeStream, PokingUnitOfWork};
pub use ports::{
    ChangeFeed, Compaction, DocumentState, EntityRef, EntityState, FeedPage, FeedRow, FeedSnapshot,
    FeedWorkspace,
};
pub use pull::{ChangeData, PullPage, PullRequest, Scope, SyncChange, SyncError};
pub use push::{DEVICES_TABLE, PushError};

#[cfg(any(test, feature = "mocks"))]
pub use devices::MockDeviceRepository;
#[cfg(any(test, feature = "mocks"))]
pub use mutations::MockProblemFormat;
#[cfg(any(test, feature = "mocks"))]
pub use ports::{MockChangeFeed, MockFeedSnapshot};

use std::sync::Arc;

use crate::access::Access;
use crate::attachments::{AttachmentRepository, FileSettings};
use crate::blobs::BlobStore;
use crate::context_files::ContextFileRepository;
use crate::documents::{DocumentRepository, VersionRepository};
use crate::fanout::Fanout;
use crate::feed::UnitOfWork;
use crate::folders::FolderRepository;
use crate::ports::Clock;
use crate::values::Limits;
use crate::workspaces::WorkspaceRepository;

/// Most mutations one push may carry.
pub const MAX_MUTATIONS: usize = 500;
/// Most bytes one push body may have (checked by the HTTP layer).
pub const MAX_PUSH_BYTES: usize = 20 * 1024 * 1024;
/// How many results a device keeps for `duplicate` answers.
pub const RECENT_RESULTS: usize = 100;
/// Document bodies larger than this are pulled by reference (`content_url`).
pub const INLINE_CONTENT_BYTES: usize = 1024 * 1024;
/// Default and largest number of changes per pull.
pub const DEFAULT_PULL_LIMIT: u32 = 500;
pub const MAX_PULL_LIMIT: u32 = 1000;

/// Tunables of the sync use cases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncSettings {
    /// Feed rows older than this may be compacted (superseded rows and tombstones).
    pub retention: chrono::Duration,
    /// Document bodies above this many bytes are pulled by reference.
    pub inline_content_bytes: usize,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            retention: chrono::Duration::days(90),
            inline_content_bytes: INLINE_CONTENT_BYTES,
        }
    }
}

/// Every port the sync use cases talk through.
#[derive(Clone)]
pub struct SyncPorts {
    pub devices: Arc<dyn DeviceRepository>,
    pub feed: Arc<dyn ChangeFeed>,
    pub documents: Arc<dyn DocumentRepository>,
    pub versions: Arc<dyn VersionRepository>,
    pub folders: Arc<dyn FolderRepository>,
    /// Context files (`context_file.*` mutations), with what their service needs besides.
    pub context_files: Arc<dyn ContextFileRepository>,
    /// Storage usage, for the context files' quota (shared with attachments).
    pub storage: Arc<dyn AttachmentRepository>,
    pub blobs: Arc<dyn BlobStore>,
    pub files: FileSettings,
    pub workspaces: Arc<dyn WorkspaceRepository>,
    pub access: Access,
    /// Pass the [`PokingUnitOfWork`] so that pushes poke too.
    pub uow: Arc<dyn UnitOfWork>,
    pub fanout: Arc<dyn Fanout>,
    pub problems: Arc<dyn ProblemFormat>,
    /// Live collaboration rooms: pushed content changes reach open editors at once.
    pub live: Option<Arc<dyn crate::collab::LiveDocuments>>,
    pub clock: Arc<dyn Clock>,
    pub limits: Limits,
}

/// Devices, push, pull, pokes and retention.
pub struct SyncService {
    ports: SyncPorts,
    settings: SyncSettings,
    /// What `comment.*` mutations need; without it they are rejected as unsupported.
    comments: Option<CommentSources>,
}

/// The ports of the comments' service, for `comment.*` mutations.
#[derive(Clone)]
pub struct CommentSources {
    pub comments: Arc<dyn crate::comments::CommentRepository>,
    /// Resolves `@email` mentions.
    pub users: Arc<dyn crate::users::UserRepository>,
}

impl SyncService {
    pub fn new(ports: SyncPorts, settings: SyncSettings) -> Self {
        Self {
            ports,
            settings,
            comments: None,
        }
    }

    /// Takes `comment.create|update|delete|resolve` mutations.
    pub fn with_comments(mut self, sources: CommentSources) -> Self {
        self.comments = Some(sources);
        self
    }

    pub fn settings(&self) -> &SyncSettings {
        &self.settings
    }

    /// Compacts the change feed: rows older than the retention that a reader no longer needs
    /// (superseded ones, tombstones). Cursors older than what it removes get `CursorExpired`.
    #[tracing::instrument(skip_all)]
    pub async fn compact(&self) -> Result<Compaction, crate::StoreError> {
        let cutoff = self.ports.clock.now() - self.settings.retention;
        self.ports.feed.compact(cutoff).await
    }
}

#[cfg(test)]
mod tests;
