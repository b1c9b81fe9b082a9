//! The single write path: a [`WriteBatch`] of row writes, preconditions and change-feed entries
//! that an adapter commits atomically, appending the per-workspace change feed (SYNC.md) in the
//! same transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::attachments::{Attachment, FileStatus};
use crate::comments::Comment;
use crate::context_files::ContextFile;
use crate::documents::{Document, DocumentVersion};
use crate::folders::Folder;
use crate::invitations::Invitation;
use crate::members::Member;
use crate::notifications::Notification;
use crate::ports::StoreError;
use crate::users::User;
use crate::workspaces::Workspace;
use crate::{DeviceId, DocumentId, NotificationId, Role, UserId, Version, WorkspaceId};

/// The kinds of entity the change feed carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityType {
    Workspace,
    Folder,
    Document,
    Comment,
    Attachment,
    ContextFile,
    Member,
}

impl EntityType {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Workspace => "workspace",
            EntityType::Folder => "folder",
            EntityType::Document => "document",
            EntityType::Comment => "comment",
            EntityType::Attachment => "attachment",
            EntityType::ContextFile => "context_file",
            EntityType::Member => "member",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Upsert,
    Delete,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Upsert => "upsert",
            ChangeOp::Delete => "delete",
        }
    }
}

/// One change-feed entry; the adapter adds `seq`, actor, device and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub workspace_id: WorkspaceId,
    pub entity_type: EntityType,
    pub entity_id: Uuid,
    pub op: ChangeOp,
    pub version: Option<i64>,
}

impl Change {
    pub fn upsert(workspace_id: WorkspaceId, entity_type: EntityType, entity_id: Uuid) -> Self {
        Self {
            workspace_id,
            entity_type,
            entity_id,
            op: ChangeOp::Upsert,
            version: None,
        }
    }

    pub fn delete(workspace_id: WorkspaceId, entity_type: EntityType, entity_id: Uuid) -> Self {
        Self {
            op: ChangeOp::Delete,
            ..Self::upsert(workspace_id, entity_type, entity_id)
        }
    }

    pub fn with_version(mut self, version: i64) -> Self {
        self.version = Some(version);
        self
    }
}

/// An append-only audit record (membership, roles, deletes, restores).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub workspace_id: WorkspaceId,
    pub action: &'static str,
    pub target_type: EntityType,
    pub target_id: Option<Uuid>,
    pub details: serde_json::Value,
}

/// One row write. Preconditions are part of the write: when one does not hold the adapter MUST
/// roll the whole batch back and return [`CommitError::Stale`].
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    InsertUser(User),
    /// Overwrites the user's profile fields.
    UpdateUser(User),
    InsertWorkspace(Workspace),
    /// Overwrites name, slug, settings, `updated_at`, `deleted_at` (never `change_seq`).
    UpdateWorkspace(Workspace),
    /// Inserts the member (`expected: None`; `Duplicate` if present) or changes its role when the
    /// stored role equals `expected`.
    PutMember {
        member: Member,
        expected: Option<Role>,
    },
    /// Deletes the member when its stored role equals `expected`.
    RemoveMember {
        workspace_id: WorkspaceId,
        user_id: UserId,
        expected: Role,
    },
    InsertInvitation(Invitation),
    /// Overwrites `uses` and `revoked_at` when the stored `uses` equals `expected_uses`.
    UpdateInvitation {
        invitation: Invitation,
        expected_uses: i32,
    },
    InsertFolder(Folder),
    /// Overwrites the folder when its stored version equals `expected`.
    UpdateFolder {
        folder: Folder,
        expected: Version,
    },
    InsertDocument(Document),
    /// Overwrites title, content, hash, version, `updated_by/at` when the stored version equals
    /// `expected`.
    SaveDocument {
        document: Document,
        expected: Version,
    },
    /// Sets folder and position (a move); no precondition, the version does not change.
    PlaceDocument {
        id: DocumentId,
        folder_id: Option<crate::FolderId>,
        position: f64,
        updated_by: UserId,
        updated_at: DateTime<Utc>,
    },
    /// Moves a document to the trash (`Some`) or out of it (`None`). Its attachments and context
    /// files follow: trashing sets their `deleted_at` (live ones only), restoring clears it on
    /// every one whose status is not `deleted`. The adapter MUST append a feed row for each file
    /// it moves (a tombstone when trashing, an upsert when restoring), after the batch's changes.
    TrashDocument {
        id: DocumentId,
        deleted_at: Option<DateTime<Utc>>,
        updated_by: UserId,
        updated_at: DateTime<Utc>,
    },
    /// Removes the document and, by cascade, its versions and everything hanging off it.
    DeleteDocument {
        id: DocumentId,
    },
    InsertVersion(DocumentVersion),
    InsertAttachment(Attachment),
    /// Overwrites status, sha256, `updated_at`, `expires_at` and `deleted_at` when the stored
    /// status equals `expected`.
    UpdateAttachment {
        attachment: Attachment,
        expected: FileStatus,
    },
    InsertContextFile(ContextFile),
    /// Shares one document with one user (`document_shares`).
    InsertDocumentGrant(crate::documents::DocumentGrant),
    /// Overwrites everything but the ids, `created_*` and `workspace/document` when the stored
    /// version equals `expected`.
    UpdateContextFile {
        file: ContextFile,
        expected: Version,
    },
    /// Inserts the comment and its mentions (`Duplicate("comments")` when the id is taken).
    InsertComment(Comment),
    /// Overwrites body, anchor, mentions, version, resolution, `updated_at` and `deleted_at` when
    /// the stored version equals `expected`.
    UpdateComment {
        comment: Comment,
        expected: Version,
    },
    InsertNotification(Notification),
    /// Marks `user`'s unread notifications read at `at`: the one with `id`, or all of them when
    /// `None`. Touching no row is not an error (they were read already).
    ReadNotifications {
        user: UserId,
        id: Option<NotificationId>,
        at: DateTime<Utc>,
    },
    Audit(AuditEvent),
    /// Registers a sync device.
    InsertDevice(crate::sync::Device),
    /// Removes a device of `user` (`Stale` when it is gone or not theirs).
    DeleteDevice {
        id: DeviceId,
        user: UserId,
    },
    /// Records that `device` applied (or rejected) mutation `new_last`: sets its
    /// `last_mutation_id`, appends `result` to its recent results (keeping the newest
    /// [`RECENT_RESULTS`](crate::sync::RECENT_RESULTS)) and touches `last_seen_at`. The device row
    /// is locked; when its stored `last_mutation_id` is not `expected_last` the adapter MUST fail
    /// with `Stale(`[`DEVICES_TABLE`](crate::sync::DEVICES_TABLE)`)`, so that a mutation and its
    /// acknowledgement commit exactly once.
    AdvanceDevice {
        device: DeviceId,
        expected_last: i64,
        new_last: i64,
        result: crate::sync::MutationResult,
    },
}

impl Write {
    /// Whether this write can change who may open a document, and with which role: membership,
    /// roles, grants, trash, deletion, and (to be safe) users, workspaces and folders. Content,
    /// history, files, comments, notifications and devices cannot. There is no catch-all arm: a
    /// new kind of write has to be decided here.
    pub fn may_change_access(&self) -> bool {
        match self {
            Write::InsertUser(_)
            | Write::UpdateUser(_)
            | Write::InsertWorkspace(_)
            | Write::UpdateWorkspace(_)
            | Write::PutMember { .. }
            | Write::RemoveMember { .. }
            | Write::UpdateFolder { .. }
            | Write::TrashDocument { .. }
            | Write::DeleteDocument { .. }
            | Write::InsertDocumentGrant(_) => true,
            Write::InsertInvitation(_)
            | Write::UpdateInvitation { .. }
            | Write::InsertFolder(_)
            | Write::InsertDocument(_)
            | Write::SaveDocument { .. }
            | Write::PlaceDocument { .. }
            | Write::InsertVersion(_)
            | Write::InsertAttachment(_)
            | Write::UpdateAttachment { .. }
            | Write::InsertContextFile(_)
            | Write::UpdateContextFile { .. }
            | Write::InsertComment(_)
            | Write::UpdateComment { .. }
            | Write::InsertNotification(_)
            | Write::ReadNotifications { .. }
            | Write::Audit(_)
            | Write::InsertDevice(_)
            | Write::DeleteDevice { .. }
            | Write::AdvanceDevice { .. } => false,
        }
    }
}

/// Invariants checked after the writes, inside the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The workspace still has at least one owner; else [`CommitError::NoOwnerLeft`].
    WorkspaceHasOwner(WorkspaceId),
}

/// Everything one use case writes, committed all or nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WriteBatch {
    pub actor: Option<UserId>,
    pub device: Option<DeviceId>,
    pub writes: Vec<Write>,
    pub checks: Vec<Check>,
    pub changes: Vec<Change>,
}

impl WriteBatch {
    pub fn by(actor: UserId) -> Self {
        Self {
            actor: Some(actor),
            ..Self::default()
        }
    }

    pub fn write(mut self, write: Write) -> Self {
        self.writes.push(write);
        self
    }

    pub fn check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    pub fn change(mut self, change: Change) -> Self {
        self.changes.push(change);
        self
    }
}

/// The new head of each workspace's change feed after a commit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Committed {
    pub heads: Vec<(WorkspaceId, i64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// A precondition of a write did not hold (someone else wrote first, or the row is gone).
    #[error("stale write to {0}")]
    Stale(&'static str),
    /// An insert hit a unique key; the payload names the table.
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    /// [`Check::WorkspaceHasOwner`] failed.
    #[error("the workspace would have no owner")]
    NoOwnerLeft,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The transactional write port.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait UnitOfWork: Send + Sync {
    /// Applies `batch.writes` in order, then checks `batch.checks`, then appends `batch.changes`
    /// to each workspace's feed with gap-free `seq` values taken from `workspaces.change_seq`
    /// in the same transaction (locking the workspace row, so commit order equals `seq` order).
    /// All or nothing: on any error nothing is stored.
    async fn commit(&self, batch: WriteBatch) -> Result<Committed, CommitError>;
}
