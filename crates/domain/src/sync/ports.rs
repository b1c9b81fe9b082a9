//! The read side of the change feed: one consistent snapshot per pull, and compaction.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::attachments::Attachment;
use crate::context_files::ContextFile;
use crate::documents::DocumentSummary;
use crate::feed::{ChangeOp, EntityType};
use crate::folders::Folder;
use crate::members::MemberProfile;
use crate::ports::StoreError;
use crate::rbac::Role;
use crate::workspaces::Workspace;
use crate::{DeviceId, UserId, WorkspaceId};

/// A workspace the user belongs to, as the feed sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedWorkspace {
    pub id: WorkspaceId,
    pub role: Role,
    /// `change_seq`: the last seq handed out.
    pub head: i64,
    /// Rows with a seq up to this one may have been compacted away: a cursor below it is expired.
    pub horizon: i64,
}

/// The latest feed row of one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRow {
    pub seq: i64,
    pub entity_type: EntityType,
    pub entity_id: Uuid,
    pub op: ChangeOp,
    pub version: Option<i64>,
}

/// One page of a workspace's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    /// The latest row of each entity changed in `(after, end]`, by seq.
    pub rows: Vec<FeedRow>,
    /// The last seq this page covers; never inside a commit. The next page starts after it.
    pub end: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntityRef {
    pub entity_type: EntityType,
    pub id: Uuid,
}

/// A document with its content, unless that is larger than the inline limit.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentState {
    pub summary: DocumentSummary,
    /// `None`: larger than the inline limit; clients fetch it by reference.
    pub content: Option<String>,
}

/// The current state of an entity.
#[derive(Debug, Clone, PartialEq)]
pub enum EntityState {
    Workspace(Workspace),
    Member(MemberProfile),
    Folder(Folder),
    Document(DocumentState),
    ContextFile(ContextFile),
    Attachment(Attachment),
    Comment(crate::comments::Comment),
}

impl EntityState {
    pub fn entity_ref(&self) -> EntityRef {
        let (entity_type, id) = match self {
            EntityState::Workspace(w) => (EntityType::Workspace, w.id.0),
            EntityState::Member(m) => (EntityType::Member, m.member.user_id.0),
            EntityState::Folder(f) => (EntityType::Folder, f.id.0),
            EntityState::Document(d) => (EntityType::Document, d.summary.id.0),
            EntityState::ContextFile(f) => (EntityType::ContextFile, f.id.0),
            EntityState::Attachment(a) => (EntityType::Attachment, a.id.0),
            EntityState::Comment(c) => (EntityType::Comment, c.id.0),
        };
        EntityRef { entity_type, id }
    }

    /// Whether the entity is in the trash or deleted (then the feed shows a tombstone).
    pub fn is_gone(&self) -> bool {
        match self {
            EntityState::Workspace(w) => w.deleted_at.is_some(),
            EntityState::Member(_) => false,
            EntityState::Folder(f) => f.deleted_at.is_some(),
            EntityState::Document(d) => d.summary.deleted_at.is_some(),
            // Deleted, or in the trash with their document.
            EntityState::ContextFile(f) => !f.is_live(),
            EntityState::Attachment(a) => !a.is_live(),
            EntityState::Comment(c) => c.is_deleted(),
        }
    }
}

/// What one compaction run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compaction {
    pub workspaces: u64,
    pub rows: u64,
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Opens a read-only snapshot: every read through it sees the database as of one instant
    /// (Postgres: one REPEATABLE READ transaction; SQLite: one read transaction).
    async fn snapshot(&self) -> Result<Box<dyn FeedSnapshot>, StoreError>;

    /// Removes feed rows written before `cutoff` that no reader needs to converge: rows
    /// superseded by a later row of the same entity, and tombstones. For each workspace it MUST
    /// first raise the workspace's horizon to the highest seq it removes, in the same transaction.
    async fn compact(&self, cutoff: DateTime<Utc>) -> Result<Compaction, StoreError>;
}

/// Reads of one pull, all in the same snapshot.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait FeedSnapshot: Send {
    /// The device's owner and last applied mutation id; `None` when unknown.
    async fn device(&mut self, id: DeviceId) -> Result<Option<(UserId, i64)>, StoreError>;

    /// The workspaces `user` belongs to, not soft-deleted, by id.
    async fn memberships(&mut self, user: UserId) -> Result<Vec<FeedWorkspace>, StoreError>;

    /// The latest row of each entity changed after `after`, by seq: at most `limit` rows, more
    /// only when needed to end the page on a commit boundary (a page never splits the changes one
    /// transaction made).
    async fn changes(
        &mut self,
        workspace: WorkspaceId,
        after: i64,
        limit: u32,
    ) -> Result<FeedPage, StoreError>;

    /// The current state of those entities of `workspace` that still exist (trashed ones
    /// included; context files and attachments in any status, `deleted` included). Documents
    /// larger than `inline_bytes` come without content.
    async fn entities(
        &mut self,
        workspace: WorkspaceId,
        refs: Vec<EntityRef>,
        inline_bytes: usize,
    ) -> Result<Vec<EntityState>, StoreError>;

    /// Live documents shared to `user` by a grant (not revoked, not expired) in workspaces the
    /// user is not a member of.
    async fn shared_documents(
        &mut self,
        user: UserId,
        inline_bytes: usize,
    ) -> Result<Vec<DocumentState>, StoreError>;

    /// Ends the snapshot (dropping it unclosed ends it too).
    async fn close(&mut self) -> Result<(), StoreError>;
}
