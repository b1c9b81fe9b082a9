//! Context files: text the AI features use as context, per workspace or per document.
//!
//! Small text (≤ 256 KiB) lives inline in the database; larger files go to the blob store with
//! the attachments' upload flow (pending → upload → complete → ready). Reads need ≥ viewer of the
//! workspace, writes ≥ editor; updates need `If-Match`. Every write is in the change feed. A
//! document's context files follow it into the trash and back, like its attachments.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::access::{Access, AccessError, Caller};
use crate::attachments::{
    AttachmentRepository, FileSettings, FileStatus, UploadError, check_quota, check_upload_limit,
    checked_content_type, checked_upload_size, chrono_duration, remove_objects, verify_upload,
};
use crate::blobs::{BlobKey, BlobStore, PresignedRequest, UploadSpec};
use crate::documents::{DocumentRepository, etag};
use crate::feed::{Change, CommitError, EntityType, UnitOfWork, Write, WriteBatch};
use crate::pagination::{Limit, Page, decode_cursor, encode_cursor, page_from};
use crate::ports::{Clock, StoreError};
use crate::rbac::Action;
use crate::values::{ContentHash, Invalid, Version, checked_name};
use crate::{ContextFileId, DocumentId, UserId, WorkspaceId};

/// Where a context file's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextBody {
    Inline(String),
    Blob(BlobKey),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContextFile {
    pub id: ContextFileId,
    pub workspace_id: WorkspaceId,
    /// `None`: the whole workspace's context.
    pub document_id: Option<DocumentId>,
    pub name: String,
    pub content_type: String,
    pub body: ContextBody,
    /// SHA-256 of the bytes; `None` while pending, or when the blob store reports none.
    pub content_hash: Option<ContentHash>,
    pub size: i64,
    /// 1 when created, +1 on every change.
    pub version: Version,
    pub status: FileStatus,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl ContextFile {
    pub fn is_live(&self) -> bool {
        self.deleted_at.is_none() && self.status != FileStatus::Deleted
    }

    /// The strong entity tag `If-Match` is compared with.
    pub fn etag(&self) -> String {
        let hash = self
            .content_hash
            .clone()
            .unwrap_or_else(|| ContentHash::from_stored(String::new()));
        etag(self.version, &hash)
    }

    fn blob_key(&self) -> Option<&BlobKey> {
        match &self.body {
            ContextBody::Blob(key) => Some(key),
            ContextBody::Inline(_) => None,
        }
    }
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait ContextFileRepository: Send + Sync {
    /// The file in any state; `None` when unknown.
    async fn context_file(&self, id: ContextFileId) -> Result<Option<ContextFile>, StoreError>;
    /// Live files of the workspace (`deleted_at` null, not `deleted`), all of them or only those
    /// of `document` when given, oldest first, ids strictly after `after`, at most `limit`.
    async fn context_files(
        &self,
        workspace: WorkspaceId,
        document: Option<DocumentId>,
        after: Option<ContextFileId>,
        limit: u32,
    ) -> Result<Vec<ContextFile>, StoreError>;
    /// Pending uploads whose URL ran out before `before`, oldest first, at most `limit`.
    async fn expired_context_uploads(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ContextFile>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ContextFileError {
    #[error("workspace not found")]
    WorkspaceNotFound,
    #[error("document not found in this workspace")]
    DocumentNotFound,
    #[error("context file not found")]
    NotFound,
    #[error("not allowed")]
    Forbidden,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("inline context files are limited to {limit} bytes; upload larger files instead")]
    InlineTooLarge { limit: u64 },
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error("If-Match is required to change a context file")]
    PreconditionRequired,
    #[error("the context file has changed since that version")]
    VersionConflict { current: Version, etag: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccessError> for ContextFileError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NotFound => ContextFileError::NotFound,
            AccessError::Forbidden => ContextFileError::Forbidden,
            AccessError::Store(e) => ContextFileError::Store(e),
        }
    }
}

/// What a new context file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewContextContent {
    /// Text kept in the database.
    Inline {
        text: String,
        content_type: Option<String>,
    },
    /// A file uploaded to the blob store.
    Upload { size: i64, content_type: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContextFile {
    pub name: String,
    pub document_id: Option<DocumentId>,
    pub content: NewContextContent,
}

/// `PUT /context-files/{id}`: absent fields are kept; new `text` makes the file inline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextFilePatch {
    pub name: Option<String>,
    pub text: Option<String>,
    pub content_type: Option<String>,
}

/// A context file as read: inline text is in the file, a stored one comes with a download.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextFileRead {
    pub file: ContextFile,
    pub download: Option<PresignedRequest>,
}

const MAX_NAME: usize = 255;
const DEFAULT_TEXT_TYPE: &str = "text/markdown; charset=utf-8";

pub struct ContextFileService {
    files: Arc<dyn ContextFileRepository>,
    storage: Arc<dyn AttachmentRepository>,
    documents: Arc<dyn DocumentRepository>,
    blobs: Arc<dyn BlobStore>,
    access: Access,
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
    settings: FileSettings,
}

/// The ports a [`ContextFileService`] needs.
pub struct ContextFilePorts {
    pub files: Arc<dyn ContextFileRepository>,
    /// Storage usage for the quota (shared with attachments).
    pub storage: Arc<dyn AttachmentRepository>,
    pub documents: Arc<dyn DocumentRepository>,
    pub blobs: Arc<dyn BlobStore>,
    pub uow: Arc<dyn UnitOfWork>,
    pub clock: Arc<dyn Clock>,
}

impl ContextFileService {
    pub fn new(ports: ContextFilePorts, access: Access, settings: FileSettings) -> Self {
        Self {
            files: ports.files,
            storage: ports.storage,
            documents: ports.documents,
            blobs: ports.blobs,
            access,
            uow: ports.uow,
            clock: ports.clock,
            settings,
        }
    }

    /// Creates an inline file, or a pending one with its presigned upload (≥ editor).
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, workspace = %workspace))]
    pub async fn create(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        request: NewContextFile,
    ) -> Result<(ContextFile, Option<PresignedRequest>), ContextFileError> {
        self.create_with_id(caller, workspace, ContextFileId::new(), request)
            .await
    }

    /// [`Self::create`] with a client-chosen id (sync pushes). The caller checks the id is free:
    /// a taken one fails the insert.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, workspace = %workspace, context_file = %id))]
    pub async fn create_with_id(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: ContextFileId,
        request: NewContextFile,
    ) -> Result<(ContextFile, Option<PresignedRequest>), ContextFileError> {
        self.access
            .workspace(caller, workspace, Action::EditContextFiles)
            .await
            .map_err(workspace_error)?;
        let name = checked_name("name", &request.name, MAX_NAME)?;
        if let Some(document) = request.document_id {
            let live = self
                .documents
                .document(document)
                .await?
                .is_some_and(|d| d.workspace_id == workspace && d.deleted_at.is_none());
            if !live {
                return Err(ContextFileError::DocumentNotFound);
            }
        }
        let now = self.clock.now();
        let mut file = ContextFile {
            id,
            workspace_id: workspace,
            document_id: request.document_id,
            name,
            content_type: String::new(),
            body: ContextBody::Inline(String::new()),
            content_hash: None,
            size: 0,
            version: Version::FIRST,
            status: FileStatus::Ready,
            created_by: Some(caller.user_id),
            created_at: now,
            updated_at: now,
            expires_at: None,
            deleted_at: None,
        };
        let upload = match request.content {
            NewContextContent::Inline { text, content_type } => {
                self.set_inline(&mut file, text, content_type.as_deref())?;
                None
            }
            NewContextContent::Upload { size, content_type } => {
                let content_type = checked_content_type(&content_type)?;
                let size_u = checked_upload_size(size)?;
                check_upload_limit(size_u, &self.settings)?;
                check_quota(self.storage.as_ref(), &self.settings, workspace, size_u).await??;
                let key = BlobKey::context_file(workspace, id);
                let upload = self
                    .blobs
                    .presign_upload(
                        &key,
                        &UploadSpec {
                            size: size_u,
                            content_type: content_type.clone(),
                        },
                        self.settings.upload_ttl,
                    )
                    .await?;
                file.content_type = content_type;
                file.body = ContextBody::Blob(key);
                file.size = size;
                file.status = FileStatus::Pending;
                file.expires_at = Some(upload.expires_at);
                Some(upload)
            }
        };
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::InsertContextFile(file.clone()))
            .change(change(&file));
        self.uow.commit(batch).await.map_err(commit_error)?;
        Ok((file, upload))
    }

    /// Checks an uploaded file and marks it ready (≥ editor). Idempotent.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, context_file = %id))]
    pub async fn complete(
        &self,
        caller: &Caller,
        id: ContextFileId,
    ) -> Result<ContextFile, ContextFileError> {
        let mut file = self.file(caller, id, Action::EditContextFiles).await?;
        if file.status == FileStatus::Ready {
            return Ok(file);
        }
        let Some(key) = file.blob_key().cloned() else {
            return Ok(file);
        };
        let meta = self.blobs.head(&key).await?;
        let meta = verify_upload(
            self.blobs.as_ref(),
            &key,
            meta,
            file.size,
            &file.content_type,
        )
        .await??;
        let expected = file.version;
        file.status = FileStatus::Ready;
        file.content_hash = meta.sha256.map(ContentHash::from_stored);
        file.expires_at = None;
        file.version = expected.next();
        file.updated_at = self.clock.now();
        self.save(caller, &file, expected).await?;
        Ok(file)
    }

    /// Files of the workspace, or of one document (≥ viewer).
    pub async fn list(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        document: Option<DocumentId>,
        limit: Limit,
        cursor: Option<&str>,
    ) -> Result<Page<ContextFile>, ContextFileError> {
        self.access
            .workspace(caller, workspace, Action::ReadContent)
            .await
            .map_err(workspace_error)?;
        let after = cursor.map(decode_cursor::<ContextFileId>).transpose()?;
        let rows = self
            .files
            .context_files(workspace, document, after, limit.get() + 1)
            .await?;
        Ok(page_from(rows, limit, |f| encode_cursor(&f.id)))
    }

    /// One file, with a presigned download when its bytes are in the blob store (≥ viewer).
    pub async fn get(
        &self,
        caller: &Caller,
        id: ContextFileId,
    ) -> Result<ContextFileRead, ContextFileError> {
        let file = self.file(caller, id, Action::ReadContent).await?;
        let download = match (file.blob_key(), file.status) {
            (Some(key), FileStatus::Ready) => Some(
                self.blobs
                    .presign_download(key, &file.name, self.settings.download_ttl)
                    .await?,
            ),
            _ => None,
        };
        Ok(ContextFileRead { file, download })
    }

    /// Renames and/or replaces the text (≥ editor, `If-Match` with the current ETag). New text
    /// makes a stored file inline; its object is removed.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, context_file = %id))]
    pub async fn update(
        &self,
        caller: &Caller,
        id: ContextFileId,
        patch: ContextFilePatch,
        if_match: Option<&str>,
    ) -> Result<ContextFile, ContextFileError> {
        let current = self.file(caller, id, Action::EditContextFiles).await?;
        let if_match = if_match.ok_or(ContextFileError::PreconditionRequired)?;
        if !if_match
            .split(',')
            .map(str::trim)
            .any(|t| t == current.etag())
        {
            return Err(conflict(&current));
        }
        self.patch(caller, current, patch).await
    }

    /// [`Self::update`] with the version the client edited as the precondition instead of an
    /// ETag (sync pushes): `VersionConflict` unless the file is still at `base`.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, context_file = %id))]
    pub async fn update_from_version(
        &self,
        caller: &Caller,
        id: ContextFileId,
        patch: ContextFilePatch,
        base: Version,
    ) -> Result<ContextFile, ContextFileError> {
        let current = self.file(caller, id, Action::EditContextFiles).await?;
        if current.version != base {
            return Err(conflict(&current));
        }
        self.patch(caller, current, patch).await
    }

    async fn patch(
        &self,
        caller: &Caller,
        current: ContextFile,
        patch: ContextFilePatch,
    ) -> Result<ContextFile, ContextFileError> {
        let mut file = current.clone();
        if let Some(name) = patch.name {
            file.name = checked_name("name", &name, MAX_NAME)?;
        }
        match (patch.text, patch.content_type) {
            (Some(text), content_type) => {
                let content_type = content_type.or_else(|| match current.body {
                    ContextBody::Inline(_) => Some(current.content_type.clone()),
                    ContextBody::Blob(_) => None,
                });
                self.set_inline(&mut file, text, content_type.as_deref())?;
                file.status = FileStatus::Ready;
                file.expires_at = None;
            }
            (None, Some(_)) => {
                return Err(Invalid::new("content_type", "can only change along with text").into());
            }
            (None, None) => {}
        }
        if file == current {
            return Ok(current);
        }
        file.version = current.version.next();
        file.updated_at = self.clock.now();
        self.save(caller, &file, current.version).await?;
        if let (Some(old), None) = (current.blob_key(), file.blob_key()) {
            remove_objects(self.blobs.as_ref(), [old.clone()]).await;
        }
        Ok(file)
    }

    /// Tombstones the file and removes its object, if any (≥ editor).
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, context_file = %id))]
    pub async fn delete(&self, caller: &Caller, id: ContextFileId) -> Result<(), ContextFileError> {
        let mut file = self.file(caller, id, Action::EditContextFiles).await?;
        let expected = file.version;
        let now = self.clock.now();
        file.status = FileStatus::Deleted;
        file.deleted_at = Some(now);
        file.updated_at = now;
        file.version = expected.next();
        self.save(caller, &file, expected).await?;
        if let Some(key) = file.blob_key() {
            remove_objects(self.blobs.as_ref(), [key.clone()]).await;
        }
        Ok(())
    }

    /// Removes pending uploads whose URL ran out more than the grace period ago.
    #[tracing::instrument(skip_all)]
    pub async fn sweep(&self, limit: u32) -> Result<usize, StoreError> {
        let before = self.clock.now() - chrono_duration(self.settings.sweep_grace);
        let expired = self.files.expired_context_uploads(before, limit).await?;
        let mut swept = 0;
        for mut file in expired {
            if let Some(key) = file.blob_key() {
                self.blobs.delete(key).await?;
            }
            let expected = file.version;
            let now = self.clock.now();
            file.status = FileStatus::Deleted;
            file.deleted_at = Some(now);
            file.updated_at = now;
            file.version = expected.next();
            let batch = WriteBatch::default()
                .write(Write::UpdateContextFile {
                    file: file.clone(),
                    expected,
                })
                .change(change(&file));
            match self.uow.commit(batch).await {
                Ok(_) => swept += 1,
                Err(CommitError::Stale(_)) => {}
                Err(CommitError::Store(e)) => return Err(e),
                Err(e) => return Err(StoreError::Unexpected(e.into())),
            }
        }
        Ok(swept)
    }

    fn set_inline(
        &self,
        file: &mut ContextFile,
        text: String,
        content_type: Option<&str>,
    ) -> Result<(), ContextFileError> {
        if text.len() as u64 > self.settings.max_inline_bytes {
            return Err(ContextFileError::InlineTooLarge {
                limit: self.settings.max_inline_bytes,
            });
        }
        file.content_type = match content_type {
            Some(t) => checked_content_type(t)?,
            None => DEFAULT_TEXT_TYPE.to_owned(),
        };
        file.size = text.len() as i64;
        file.content_hash = Some(ContentHash::of(&text));
        file.body = ContextBody::Inline(text);
        Ok(())
    }

    async fn save(
        &self,
        caller: &Caller,
        file: &ContextFile,
        expected: Version,
    ) -> Result<(), ContextFileError> {
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::UpdateContextFile {
                file: file.clone(),
                expected,
            })
            .change(change(file));
        match self.uow.commit(batch).await {
            Ok(_) => Ok(()),
            Err(CommitError::Stale(_)) => {
                let latest = self
                    .files
                    .context_file(file.id)
                    .await?
                    .filter(ContextFile::is_live)
                    .ok_or(ContextFileError::NotFound)?;
                Err(conflict(&latest))
            }
            Err(e) => Err(commit_error(e)),
        }
    }

    /// A live file the caller may see (404 otherwise) and act on with `action` (403).
    async fn file(
        &self,
        caller: &Caller,
        id: ContextFileId,
        action: Action,
    ) -> Result<ContextFile, ContextFileError> {
        let file = self
            .files
            .context_file(id)
            .await?
            .ok_or(ContextFileError::NotFound)?;
        self.access
            .workspace(caller, file.workspace_id, Action::ReadContent)
            .await?;
        self.access
            .workspace(caller, file.workspace_id, action)
            .await?;
        if !file.is_live() {
            return Err(ContextFileError::NotFound);
        }
        Ok(file)
    }
}

fn conflict(file: &ContextFile) -> ContextFileError {
    ContextFileError::VersionConflict {
        current: file.version,
        etag: file.etag(),
    }
}

fn change(file: &ContextFile) -> Change {
    let change = if file.is_live() {
        Change::upsert(file.workspace_id, EntityType::ContextFile, file.id.0)
    } else {
        Change::delete(file.workspace_id, EntityType::ContextFile, file.id.0)
    };
    change.with_version(file.version.0)
}

fn workspace_error(e: AccessError) -> ContextFileError {
    match e {
        AccessError::NotFound => ContextFileError::WorkspaceNotFound,
        other => other.into(),
    }
}

fn commit_error(e: CommitError) -> ContextFileError {
    match e {
        CommitError::Store(e) => ContextFileError::Store(e),
        // The document or workspace went away meanwhile.
        CommitError::Stale(_) => ContextFileError::DocumentNotFound,
        other => ContextFileError::Store(StoreError::Unexpected(other.into())),
    }
}

#[cfg(test)]
mod tests;
