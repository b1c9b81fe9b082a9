//! Documents and their version history: list, create, read, save with optimistic locking,
//! rename/move, trash/restore, permanent delete, duplicate, versions, diff, restore a version.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::{Access, AccessError, Caller};
use crate::attachments::BlobPurge;
use crate::feed::{AuditEvent, Change, CommitError, EntityType, UnitOfWork, Write, WriteBatch};
use crate::folders::FolderRepository;
use crate::pagination::{Limit, Page, decode_cursor, encode_cursor, page_from};
use crate::ports::{Clock, StoreError};
use crate::rbac::{Action, Role};
use crate::values::{ContentHash, Invalid, Limits, Version, checked_name};
use crate::{DocumentId, FolderId, UserId, WorkspaceId};

#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: DocumentId,
    pub workspace_id: WorkspaceId,
    pub folder_id: Option<FolderId>,
    pub title: String,
    pub content: String,
    pub content_hash: ContentHash,
    pub version: Version,
    pub position: f64,
    pub created_by: Option<UserId>,
    pub updated_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Document {
    /// The strong entity tag: changes whenever the title or the content changes.
    pub fn etag(&self) -> String {
        etag(self.version, &self.content_hash)
    }

    pub fn summary(&self) -> DocumentSummary {
        DocumentSummary {
            id: self.id,
            workspace_id: self.workspace_id,
            folder_id: self.folder_id,
            title: self.title.clone(),
            content_hash: self.content_hash.clone(),
            version: self.version,
            position: self.position,
            created_by: self.created_by,
            updated_by: self.updated_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
        }
    }
}

/// `"<version>-<first 16 hex of the content hash>"`, quoted as HTTP wants.
pub fn etag(version: Version, hash: &ContentHash) -> String {
    let h = hash.as_str();
    format!("\"{}-{}\"", version.0, &h[..h.len().min(16)])
}

/// A document without its content (lists).
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentSummary {
    pub id: DocumentId,
    pub workspace_id: WorkspaceId,
    pub folder_id: Option<FolderId>,
    pub title: String,
    pub content_hash: ContentHash,
    pub version: Version,
    pub position: f64,
    pub created_by: Option<UserId>,
    pub updated_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Why a version was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionReason {
    Save,
    Merge,
    Restore,
    Collab,
    Import,
}

impl VersionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionReason::Save => "save",
            VersionReason::Merge => "merge",
            VersionReason::Restore => "restore",
            VersionReason::Collab => "collab",
            VersionReason::Import => "import",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "save" => VersionReason::Save,
            "merge" => VersionReason::Merge,
            "restore" => VersionReason::Restore,
            "collab" => VersionReason::Collab,
            "import" => VersionReason::Import,
            _ => return None,
        })
    }
}

/// One entry of a document's append-only history.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentVersion {
    pub document_id: DocumentId,
    pub version: Version,
    pub title: String,
    pub content: String,
    pub content_hash: ContentHash,
    pub author_id: Option<UserId>,
    pub reason: VersionReason,
    pub created_at: DateTime<Utc>,
}

/// A history entry without its content (lists).
#[derive(Debug, Clone, PartialEq)]
pub struct VersionSummary {
    pub version: Version,
    pub title: String,
    pub content_hash: ContentHash,
    pub size: i64,
    pub author_id: Option<UserId>,
    pub reason: VersionReason,
    pub created_at: DateTime<Utc>,
}

/// Which folder a list is limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderFilter {
    Any,
    Root,
    In(FolderId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentSort {
    UpdatedAt,
    CreatedAt,
    Title,
}

/// The sort key of the last row of a page plus its id (ties).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SortKey {
    Time(DateTime<Utc>),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentPosition {
    pub key: SortKey,
    pub id: DocumentId,
}

/// A document list query as the repository runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentQuery {
    pub workspace_id: WorkspaceId,
    pub folder: FolderFilter,
    pub updated_since: Option<DateTime<Utc>>,
    /// Only trashed documents when `true`, only live ones otherwise.
    pub trashed: bool,
    pub sort: DocumentSort,
    pub descending: bool,
    /// Rows strictly after this position in the sort order.
    pub after: Option<DocumentPosition>,
    pub limit: u32,
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait DocumentRepository: Send + Sync {
    /// The document, trashed or not; `None` when unknown or permanently deleted.
    async fn document(&self, id: DocumentId) -> Result<Option<Document>, StoreError>;
    /// The same without its content: for checks that need only where a document is and whether
    /// it is trashed (a live document's content can be megabytes).
    async fn document_summary(&self, id: DocumentId)
    -> Result<Option<DocumentSummary>, StoreError>;
    /// At most `query.limit` rows in the query's order, ties broken by id in the same direction.
    async fn documents(&self, query: DocumentQuery) -> Result<Vec<DocumentSummary>, StoreError>;
    /// Live (not trashed) documents directly inside any of `folders`.
    async fn documents_in_folders(
        &self,
        workspace: WorkspaceId,
        folders: Vec<FolderId>,
    ) -> Result<Vec<DocumentSummary>, StoreError>;
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait VersionRepository: Send + Sync {
    /// Newest first, versions strictly below `before` when given, at most `limit`.
    async fn versions(
        &self,
        document: DocumentId,
        before: Option<Version>,
        limit: u32,
    ) -> Result<Vec<VersionSummary>, StoreError>;
    async fn version(
        &self,
        document: DocumentId,
        version: Version,
    ) -> Result<Option<DocumentVersion>, StoreError>;
}

/// A document shared with one user: a role on that document alone.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentGrant {
    pub id: uuid::Uuid,
    /// The document's workspace (not stored with the grant; for pokes).
    pub workspace_id: WorkspaceId,
    pub document_id: DocumentId,
    pub user_id: UserId,
    pub role: Role,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
}

/// Per-document grants (Sharing).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait DocumentGrants: Send + Sync {
    /// The role granted to `user` on this one document. MUST return `None` when there is no
    /// grant, or it is revoked or expired.
    async fn grant_of(
        &self,
        document: DocumentId,
        user: UserId,
    ) -> Result<Option<Role>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("workspace not found")]
    WorkspaceNotFound,
    #[error("document not found")]
    NotFound,
    #[error("folder not found")]
    FolderNotFound,
    #[error("version not found")]
    VersionNotFound,
    #[error("not allowed")]
    Forbidden,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("If-Match is required to change a document")]
    PreconditionRequired,
    #[error("the document has changed since that version")]
    VersionConflict {
        current: Version,
        content_hash: ContentHash,
        etag: String,
    },
    #[error("the document is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("only documents in the trash can be deleted permanently")]
    NotInTrash,
    #[error("the document is in the trash")]
    InTrash,
    #[error("a document with this id exists already")]
    Duplicate,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccessError> for DocumentError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NotFound => DocumentError::NotFound,
            AccessError::Forbidden => DocumentError::Forbidden,
            AccessError::Store(e) => DocumentError::Store(e),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument {
    /// Client-generated id (sync creates); a fresh one when absent.
    pub id: Option<DocumentId>,
    pub title: Option<String>,
    pub content: String,
    pub folder_id: Option<FolderId>,
}

/// `PATCH /documents/{id}`: absent fields are kept; `folder_id: Some(None)` moves to the root.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DocumentPatch {
    pub title: Option<String>,
    pub folder_id: Option<Option<FolderId>>,
    pub position: Option<f64>,
}

/// `GET /workspaces/{ws}/documents` parameters, unchecked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListDocuments {
    pub folder: Option<FolderFilter>,
    pub updated_since: Option<DateTime<Utc>>,
    pub trashed: bool,
    pub sort: Option<DocumentSort>,
    pub descending: Option<bool>,
    pub limit: Limit,
    pub cursor: Option<String>,
}

/// A unified diff between two versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionDiff {
    pub from: Version,
    pub to: Version,
    pub unified: String,
}

/// Longest title, in characters.
pub const MAX_TITLE: usize = 500;
const UNTITLED: &str = "Untitled";

pub struct DocumentService {
    documents: Arc<dyn DocumentRepository>,
    versions: Arc<dyn VersionRepository>,
    folders: Arc<dyn FolderRepository>,
    access: Access,
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    /// Removes stored attachment/context-file objects after a permanent delete.
    purge: Option<BlobPurge>,
    /// Live collaboration rooms that must see saved text at once.
    live: Option<Arc<dyn crate::collab::LiveDocuments>>,
}

impl DocumentService {
    pub fn new(
        documents: Arc<dyn DocumentRepository>,
        versions: Arc<dyn VersionRepository>,
        folders: Arc<dyn FolderRepository>,
        access: Access,
        uow: Arc<dyn UnitOfWork>,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> Self {
        Self {
            documents,
            versions,
            folders,
            access,
            uow,
            clock,
            limits,
            purge: None,
            live: None,
        }
    }

    /// Saved content (REST, version restore) is also applied to the document's live room.
    pub fn with_live_documents(mut self, live: Arc<dyn crate::collab::LiveDocuments>) -> Self {
        self.live = Some(live);
        self
    }

    /// Permanent deletes also remove the document's objects from the blob store.
    pub fn with_blob_purge(mut self, purge: BlobPurge) -> Self {
        self.purge = Some(purge);
        self
    }

    pub async fn list(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        params: ListDocuments,
    ) -> Result<Page<DocumentSummary>, DocumentError> {
        self.access
            .workspace(caller, workspace, Action::ReadContent)
            .await
            .map_err(workspace_error)?;
        let sort = params.sort.unwrap_or(DocumentSort::UpdatedAt);
        let descending = params.descending.unwrap_or(sort != DocumentSort::Title);
        let after = params
            .cursor
            .as_deref()
            .map(decode_cursor::<DocumentPosition>)
            .transpose()?;
        if let Some(after) = &after {
            let fits = matches!(
                (&after.key, sort),
                (SortKey::Text(_), DocumentSort::Title)
                    | (
                        SortKey::Time(_),
                        DocumentSort::UpdatedAt | DocumentSort::CreatedAt
                    )
            );
            if !fits {
                return Err(Invalid::new("cursor", "belongs to another sort order").into());
            }
        }
        let query = DocumentQuery {
            workspace_id: workspace,
            folder: params.folder.unwrap_or(FolderFilter::Any),
            updated_since: params.updated_since,
            trashed: params.trashed,
            sort,
            descending,
            after,
            limit: params.limit.get() + 1,
        };
        let rows = self.documents.documents(query).await?;
        Ok(page_from(rows, params.limit, |d| {
            let key = match sort {
                DocumentSort::UpdatedAt => SortKey::Time(d.updated_at),
                DocumentSort::CreatedAt => SortKey::Time(d.created_at),
                DocumentSort::Title => SortKey::Text(d.title.clone()),
            };
            encode_cursor(&DocumentPosition { key, id: d.id })
        }))
    }

    #[tracing::instrument(skip_all, fields(user = %caller.user_id, workspace = %workspace))]
    pub async fn create(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        request: NewDocument,
    ) -> Result<Document, DocumentError> {
        self.access
            .workspace(caller, workspace, Action::EditDocuments)
            .await
            .map_err(workspace_error)?;
        let title = match request.title.as_deref() {
            Some(t) => checked_name("title", t, MAX_TITLE)?,
            None => UNTITLED.to_owned(),
        };
        self.check_size(&request.content)?;
        if let Some(folder) = request.folder_id {
            self.check_folder(workspace, folder).await?;
        }
        let now = self.clock.now();
        let document = Document {
            id: request.id.unwrap_or_default(),
            workspace_id: workspace,
            folder_id: request.folder_id,
            title,
            content_hash: ContentHash::of(&request.content),
            content: request.content,
            version: Version::FIRST,
            position: 0.0,
            created_by: Some(caller.user_id),
            updated_by: Some(caller.user_id),
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        self.insert(caller, &document, VersionReason::Save).await?;
        Ok(document)
    }

    pub async fn get(&self, caller: &Caller, id: DocumentId) -> Result<Document, DocumentError> {
        self.readable(caller, id).await
    }

    /// Saves someone's diverging text of `original` as a new document `id` next to it (a sync
    /// conflict copy): same workspace, same folder (the root when that is gone). Whoever may edit
    /// the original may make one. A caller who edits it only through a document grant (a shared
    /// document, not a workspace member with edit rights) could not see a plain new document of
    /// that workspace, so the copy comes with a grant of the same role to the caller, in the same
    /// transaction: it then arrives with the caller's other shared documents.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, document = %original.id))]
    pub async fn create_conflict_copy(
        &self,
        caller: &Caller,
        original: &Document,
        id: DocumentId,
        title: String,
        content: String,
    ) -> Result<Document, DocumentError> {
        let workspace = original.workspace_id;
        let member = self
            .access
            .workspace(caller, workspace, Action::EditDocuments)
            .await;
        let grant = match member {
            Ok(_) => None,
            Err(AccessError::Store(e)) => return Err(e.into()),
            Err(_) => Some(
                self.access
                    .document(caller, workspace, original.id, Action::EditDocuments)
                    .await?,
            ),
        };
        let title = checked_name("title", &title, MAX_TITLE)?;
        self.check_size(&content)?;
        let folder_id = match original.folder_id {
            Some(folder) => self
                .folders
                .folder(folder)
                .await?
                .filter(|f| f.workspace_id == workspace && f.deleted_at.is_none())
                .map(|f| f.id),
            None => None,
        };
        let now = self.clock.now();
        let document = Document {
            id,
            workspace_id: workspace,
            folder_id,
            title,
            content_hash: ContentHash::of(&content),
            content,
            version: Version::FIRST,
            position: 0.0,
            created_by: Some(caller.user_id),
            updated_by: Some(caller.user_id),
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let mut batch = WriteBatch::by(caller.user_id)
            .write(Write::InsertDocument(document.clone()))
            .write(Write::InsertVersion(version_of(
                &document,
                caller.user_id,
                VersionReason::Save,
                now,
            )));
        if let Some(role) = grant {
            batch = batch
                .write(Write::InsertDocumentGrant(DocumentGrant {
                    id: uuid::Uuid::now_v7(),
                    workspace_id: workspace,
                    document_id: id,
                    user_id: caller.user_id,
                    role,
                    expires_at: None,
                    created_by: Some(caller.user_id),
                    created_at: now,
                }))
                .write(Write::Audit(AuditEvent {
                    workspace_id: workspace,
                    action: "document.share",
                    target_type: EntityType::Document,
                    target_id: Some(id.0),
                    details: serde_json::json!({
                        "user_id": caller.user_id,
                        "role": role.as_str(),
                        "reason": "sync_conflict_copy",
                        "original_id": original.id,
                    }),
                }));
        }
        let batch = batch.change(document_change(&document));
        self.uow.commit(batch).await.map_err(|e| match e {
            CommitError::Duplicate(_) => DocumentError::Duplicate,
            other => commit_error(other, &document),
        })?;
        Ok(document)
    }

    /// Replaces the content. `if_match` must be the current ETag.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, document = %id))]
    pub async fn put_content(
        &self,
        caller: &Caller,
        id: DocumentId,
        content: String,
        if_match: Option<&str>,
    ) -> Result<Document, DocumentError> {
        self.check_size(&content)?;
        let document = self.writable(caller, id, Action::EditDocuments).await?;
        let if_match = if_match.ok_or(DocumentError::PreconditionRequired)?;
        check_etag(&document, if_match)?;
        let title = document.title.clone();
        self.save(caller, document, title, content, VersionReason::Save)
            .await
    }

    /// Writes `title` and/or `content` as the version after `expected`, in one step (sync
    /// pushes and their merges, whose `reason` is `merge`). `VersionConflict` when the document
    /// is no longer at `expected`.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, document = %id))]
    pub async fn save_version(
        &self,
        caller: &Caller,
        id: DocumentId,
        expected: Version,
        title: Option<String>,
        content: Option<String>,
        reason: VersionReason,
    ) -> Result<Document, DocumentError> {
        if let Some(content) = &content {
            self.check_size(content)?;
        }
        let document = self.writable(caller, id, Action::EditDocuments).await?;
        if document.version != expected {
            return Err(conflict(&document));
        }
        let title = match title {
            Some(t) => checked_name("title", &t, MAX_TITLE)?,
            None => document.title.clone(),
        };
        let content = content.unwrap_or_else(|| document.content.clone());
        self.save(caller, document, title, content, reason).await
    }

    /// Renames (needs `if_match`), moves and reorders.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, document = %id))]
    pub async fn update(
        &self,
        caller: &Caller,
        id: DocumentId,
        patch: DocumentPatch,
        if_match: Option<&str>,
    ) -> Result<Document, DocumentError> {
        let mut document = self.writable(caller, id, Action::EditDocuments).await?;
        let title = patch
            .title
            .as_deref()
            .map(|t| checked_name("title", t, MAX_TITLE))
            .transpose()?;
        let position = match patch.position {
            Some(p) if !p.is_finite() || p.abs() > 1e15 => {
                return Err(Invalid::new("position", "must be a finite number").into());
            }
            other => other,
        };
        if let Some(Some(folder)) = patch.folder_id {
            self.check_folder(document.workspace_id, folder).await?;
        }
        // The precondition of a rename is checked before anything is written: a refused PATCH
        // must not have moved the document either.
        let renaming = title.as_ref().is_some_and(|t| *t != document.title);
        if renaming {
            let if_match = if_match.ok_or(DocumentError::PreconditionRequired)?;
            check_etag(&document, if_match)?;
        }
        if patch.folder_id.is_some() || position.is_some() {
            let now = self.clock.now();
            document.folder_id = patch.folder_id.unwrap_or(document.folder_id);
            document.position = position.unwrap_or(document.position);
            document.updated_by = Some(caller.user_id);
            document.updated_at = now;
            let batch = WriteBatch::by(caller.user_id)
                .write(Write::PlaceDocument {
                    id,
                    folder_id: document.folder_id,
                    position: document.position,
                    updated_by: caller.user_id,
                    updated_at: now,
                })
                .change(document_change(&document));
            self.uow
                .commit(batch)
                .await
                .map_err(|e| commit_error(e, &document))?;
        }
        match title {
            Some(title) if renaming => {
                let content = document.content.clone();
                self.save(caller, document, title, content, VersionReason::Save)
                    .await
            }
            _ => Ok(document),
        }
    }

    /// Moves the document to the trash (a tombstone in the change feed). Idempotent.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, document = %id))]
    pub async fn trash(&self, caller: &Caller, id: DocumentId) -> Result<Document, DocumentError> {
        let mut document = self.any_state(caller, id, Action::EditDocuments).await?;
        if document.deleted_at.is_some() {
            return Ok(document);
        }
        let now = self.clock.now();
        document.deleted_at = Some(now);
        document.updated_at = now;
        document.updated_by = Some(caller.user_id);
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::TrashDocument {
                id,
                deleted_at: Some(now),
                updated_by: caller.user_id,
                updated_at: now,
            })
            .write(audit(&document, "document.trash"))
            .change(document_change(&document));
        self.uow
            .commit(batch)
            .await
            .map_err(|e| commit_error(e, &document))?;
        Ok(document)
    }

    /// Takes the document out of the trash; to the root when its folder is gone. Idempotent.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, document = %id))]
    pub async fn restore(
        &self,
        caller: &Caller,
        id: DocumentId,
    ) -> Result<Document, DocumentError> {
        let mut document = self.any_state(caller, id, Action::EditDocuments).await?;
        if document.deleted_at.is_none() {
            return Ok(document);
        }
        let now = self.clock.now();
        let mut batch = WriteBatch::by(caller.user_id);
        if let Some(folder) = document.folder_id {
            let live = self
                .folders
                .folder(folder)
                .await?
                .is_some_and(|f| f.deleted_at.is_none());
            if !live {
                document.folder_id = None;
                batch = batch.write(Write::PlaceDocument {
                    id,
                    folder_id: None,
                    position: document.position,
                    updated_by: caller.user_id,
                    updated_at: now,
                });
            }
        }
        document.deleted_at = None;
        document.updated_at = now;
        document.updated_by = Some(caller.user_id);
        let batch = batch
            .write(Write::TrashDocument {
                id,
                deleted_at: None,
                updated_by: caller.user_id,
                updated_at: now,
            })
            .write(audit(&document, "document.restore"))
            .change(document_change(&document));
        self.uow
            .commit(batch)
            .await
            .map_err(|e| commit_error(e, &document))?;
        Ok(document)
    }

    /// Deletes a trashed document for good (≥ admin).
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, document = %id))]
    pub async fn delete_permanently(
        &self,
        caller: &Caller,
        id: DocumentId,
    ) -> Result<(), DocumentError> {
        let document = self
            .any_state(caller, id, Action::DeletePermanently)
            .await?;
        if document.deleted_at.is_none() {
            return Err(DocumentError::NotInTrash);
        }
        let objects = match &self.purge {
            Some(purge) => purge.keys_of(id).await?,
            None => Vec::new(),
        };
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::DeleteDocument { id })
            .write(audit(&document, "document.delete_permanently"))
            .change(
                Change::delete(document.workspace_id, EntityType::Document, id.0)
                    .with_version(document.version.0),
            );
        self.uow
            .commit(batch)
            .await
            .map_err(|e| commit_error(e, &document))?;
        if let Some(purge) = &self.purge {
            purge.remove(objects).await;
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(user = %caller.user_id, document = %id))]
    pub async fn duplicate(
        &self,
        caller: &Caller,
        id: DocumentId,
    ) -> Result<Document, DocumentError> {
        let source = self.writable(caller, id, Action::EditDocuments).await?;
        // The copy lands in the source's workspace, so the caller needs editor rights there.
        self.access
            .workspace(caller, source.workspace_id, Action::EditDocuments)
            .await?;
        let now = self.clock.now();
        let mut title: String = source.title.chars().take(MAX_TITLE - 7).collect();
        title.push_str(" (copy)");
        let copy = Document {
            id: DocumentId::new(),
            title,
            version: Version::FIRST,
            created_by: Some(caller.user_id),
            updated_by: Some(caller.user_id),
            created_at: now,
            updated_at: now,
            deleted_at: None,
            ..source
        };
        self.insert(caller, &copy, VersionReason::Save).await?;
        Ok(copy)
    }

    pub async fn versions(
        &self,
        caller: &Caller,
        id: DocumentId,
        limit: Limit,
        cursor: Option<&str>,
    ) -> Result<Page<VersionSummary>, DocumentError> {
        self.readable(caller, id).await?;
        let before = cursor.map(decode_cursor::<i64>).transpose()?.map(Version);
        let rows = self.versions.versions(id, before, limit.get() + 1).await?;
        Ok(page_from(rows, limit, |v| encode_cursor(&v.version.0)))
    }

    pub async fn version(
        &self,
        caller: &Caller,
        id: DocumentId,
        version: i64,
    ) -> Result<DocumentVersion, DocumentError> {
        self.readable(caller, id).await?;
        self.versions
            .version(id, Version(version))
            .await?
            .ok_or(DocumentError::VersionNotFound)
    }

    /// Unified diff from `against` (default: the version before) to `version`.
    pub async fn diff(
        &self,
        caller: &Caller,
        id: DocumentId,
        version: i64,
        against: Option<i64>,
    ) -> Result<VersionDiff, DocumentError> {
        self.readable(caller, id).await?;
        let against = against.unwrap_or(version - 1);
        let to = self
            .versions
            .version(id, Version(version))
            .await?
            .ok_or(DocumentError::VersionNotFound)?;
        let from = self
            .versions
            .version(id, Version(against))
            .await?
            .ok_or(DocumentError::VersionNotFound)?;
        let unified = similar::TextDiff::from_lines(&from.content, &to.content)
            .unified_diff()
            .context_radius(3)
            .header(&format!("v{}", from.version), &format!("v{}", to.version))
            .to_string();
        Ok(VersionDiff {
            from: from.version,
            to: to.version,
            unified,
        })
    }

    /// Makes version `n`'s title and content current again as a new version (reason `restore`).
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, document = %id))]
    pub async fn restore_version(
        &self,
        caller: &Caller,
        id: DocumentId,
        version: i64,
    ) -> Result<Document, DocumentError> {
        let document = self.writable(caller, id, Action::RestoreVersion).await?;
        let old = self
            .versions
            .version(id, Version(version))
            .await?
            .ok_or(DocumentError::VersionNotFound)?;
        self.save(
            caller,
            document,
            old.title,
            old.content,
            VersionReason::Restore,
        )
        .await
    }

    /// Writes a new title/content as the next version, compare-and-swap on the current version.
    async fn save(
        &self,
        caller: &Caller,
        current: Document,
        title: String,
        content: String,
        reason: VersionReason,
    ) -> Result<Document, DocumentError> {
        if title == current.title && content == current.content {
            return Ok(current);
        }
        let now = self.clock.now();
        let expected = current.version;
        let document = Document {
            title,
            content_hash: ContentHash::of(&content),
            content,
            version: expected.next(),
            updated_by: Some(caller.user_id),
            updated_at: now,
            ..current.clone()
        };
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::SaveDocument {
                document: document.clone(),
                expected,
            })
            .write(Write::InsertVersion(version_of(
                &document,
                caller.user_id,
                reason,
                now,
            )))
            .change(document_change(&document));
        match self.uow.commit(batch).await {
            Ok(_) => {
                if let Some(live) = self
                    .live
                    .as_ref()
                    .filter(|_| current.content != document.content)
                {
                    live.apply_text(document.id, &document.content).await;
                }
                Ok(document)
            }
            Err(CommitError::Stale(_)) => {
                // Someone saved first: report their version, so the client can merge.
                let latest = self
                    .documents
                    .document(current.id)
                    .await?
                    .ok_or(DocumentError::NotFound)?;
                Err(conflict(&latest))
            }
            Err(e) => Err(commit_error(e, &current)),
        }
    }

    async fn insert(
        &self,
        caller: &Caller,
        document: &Document,
        reason: VersionReason,
    ) -> Result<(), DocumentError> {
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::InsertDocument(document.clone()))
            .write(Write::InsertVersion(version_of(
                document,
                caller.user_id,
                reason,
                document.created_at,
            )))
            .change(document_change(document));
        self.uow.commit(batch).await.map_err(|e| match e {
            CommitError::Duplicate(_) => DocumentError::Duplicate,
            other => commit_error(other, document),
        })?;
        Ok(())
    }

    fn check_size(&self, content: &str) -> Result<(), DocumentError> {
        if content.len() > self.limits.max_document_bytes {
            return Err(DocumentError::TooLarge {
                limit: self.limits.max_document_bytes,
            });
        }
        Ok(())
    }

    async fn check_folder(
        &self,
        workspace: WorkspaceId,
        folder: FolderId,
    ) -> Result<(), DocumentError> {
        let ok = self
            .folders
            .folder(folder)
            .await?
            .is_some_and(|f| f.workspace_id == workspace && f.deleted_at.is_none());
        if ok {
            Ok(())
        } else {
            Err(DocumentError::FolderNotFound)
        }
    }

    /// A live or trashed document the caller may act on with `action`.
    async fn any_state(
        &self,
        caller: &Caller,
        id: DocumentId,
        action: Action,
    ) -> Result<Document, DocumentError> {
        let document = self
            .documents
            .document(id)
            .await?
            .ok_or(DocumentError::NotFound)?;
        // One check gives both answers: 404 for outsiders, 403 for members below the action.
        self.access
            .document(caller, document.workspace_id, id, action)
            .await?;
        Ok(document)
    }

    /// A readable document, trashed ones included (the trash is browsable).
    async fn readable(&self, caller: &Caller, id: DocumentId) -> Result<Document, DocumentError> {
        self.any_state(caller, id, Action::ReadContent).await
    }

    /// A live document the caller may change.
    async fn writable(
        &self,
        caller: &Caller,
        id: DocumentId,
        action: Action,
    ) -> Result<Document, DocumentError> {
        let document = self.any_state(caller, id, action).await?;
        if document.deleted_at.is_some() {
            return Err(DocumentError::InTrash);
        }
        Ok(document)
    }
}

fn check_etag(document: &Document, if_match: &str) -> Result<(), DocumentError> {
    let current = document.etag();
    let matches = if_match.split(',').map(str::trim).any(|tag| tag == current);
    if matches {
        Ok(())
    } else {
        Err(conflict(document))
    }
}

fn conflict(document: &Document) -> DocumentError {
    DocumentError::VersionConflict {
        current: document.version,
        content_hash: document.content_hash.clone(),
        etag: document.etag(),
    }
}

fn version_of(
    document: &Document,
    author: UserId,
    reason: VersionReason,
    at: DateTime<Utc>,
) -> DocumentVersion {
    DocumentVersion {
        document_id: document.id,
        version: document.version,
        title: document.title.clone(),
        content: document.content.clone(),
        content_hash: document.content_hash.clone(),
        author_id: Some(author),
        reason,
        created_at: at,
    }
}

fn document_change(document: &Document) -> Change {
    let change = if document.deleted_at.is_some() {
        Change::delete(document.workspace_id, EntityType::Document, document.id.0)
    } else {
        Change::upsert(document.workspace_id, EntityType::Document, document.id.0)
    };
    change.with_version(document.version.0)
}

fn audit(document: &Document, action: &'static str) -> Write {
    Write::Audit(AuditEvent {
        workspace_id: document.workspace_id,
        action,
        target_type: EntityType::Document,
        target_id: Some(document.id.0),
        details: serde_json::json!({ "title": document.title }),
    })
}

fn workspace_error(e: AccessError) -> DocumentError {
    match e {
        AccessError::NotFound => DocumentError::WorkspaceNotFound,
        other => other.into(),
    }
}

fn commit_error(e: CommitError, document: &Document) -> DocumentError {
    match e {
        CommitError::Store(e) => DocumentError::Store(e),
        CommitError::Stale(_) => conflict(document),
        CommitError::Duplicate(_) => DocumentError::Duplicate,
        CommitError::NoOwnerLeft => {
            DocumentError::Store(StoreError::Unexpected(anyhow::anyhow!(e)))
        }
    }
}

#[cfg(test)]
mod tests;
