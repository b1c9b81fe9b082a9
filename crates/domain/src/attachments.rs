//! Attachments: files attached to a document, uploaded by the client straight to the blob store.
//!
//! The flow: `create` records a `pending` attachment and hands out a presigned `PUT` (15 minutes,
//! exact size and type signed in); the client uploads; `complete` checks the object with a `HEAD`
//! and marks it `ready`; `download` hands out a presigned `GET`. Pending uploads never completed
//! are swept by [`AttachmentService::sweep`]. An attachment follows its document into the trash
//! and back (the SQL adapter moves them with the document in the same transaction) and its object
//! is removed with a permanent delete ([`BlobPurge`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::{Access, AccessError, Caller};
use crate::blobs::{BlobKey, BlobMeta, BlobStore, PresignedRequest, UploadSpec};
use crate::documents::{Document, DocumentRepository};
use crate::feed::{Change, CommitError, EntityType, UnitOfWork, Write, WriteBatch};
use crate::pagination::{Limit, Page, decode_cursor, encode_cursor, page_from};
use crate::ports::{Clock, StoreError};
use crate::rbac::Action;
use crate::values::Invalid;
use crate::{AttachmentId, DocumentId, UserId, WorkspaceId};

/// Where a stored file is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// Created; the client has an upload URL; the object may not exist yet.
    Pending,
    /// Uploaded and checked.
    Ready,
    /// Removed by a user or swept; its object is gone (the row is a tombstone).
    Deleted,
}

impl FileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Pending => "pending",
            FileStatus::Ready => "ready",
            FileStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => FileStatus::Pending,
            "ready" => FileStatus::Ready,
            "deleted" => FileStatus::Deleted,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub id: AttachmentId,
    pub workspace_id: WorkspaceId,
    pub document_id: DocumentId,
    /// Always `BlobKey::attachment(workspace, document, id)`.
    pub storage_key: BlobKey,
    /// The client's name for the file: metadata only, never part of a key or a path.
    pub filename: String,
    pub content_type: String,
    /// Declared bytes; checked against the object before the attachment is `ready`.
    pub size: i64,
    pub sha256: Option<String>,
    pub status: FileStatus,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the upload URL of a pending attachment runs out.
    pub expires_at: Option<DateTime<Utc>>,
    /// Set while the document is in the trash, and on a tombstone.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Attachment {
    /// Visible through the API: not deleted, not in the trash with its document.
    pub fn is_live(&self) -> bool {
        self.deleted_at.is_none() && self.status != FileStatus::Deleted
    }
}

/// Limits and lifetimes of stored files (SECURITY.md "Limits"); configurable by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSettings {
    /// Largest attachment or uploaded context file (100 MiB).
    pub max_upload_bytes: u64,
    /// Bytes one workspace may hold in the blob store, pending uploads included (1 GiB).
    pub workspace_quota_bytes: u64,
    /// Largest context file kept inline in the database (256 KiB).
    pub max_inline_bytes: u64,
    /// Lifetime of an upload URL (15 minutes).
    pub upload_ttl: Duration,
    /// Lifetime of a download URL (15 minutes).
    pub download_ttl: Duration,
    /// How long after its URL ran out a pending upload is swept (1 hour).
    pub sweep_grace: Duration,
}

impl Default for FileSettings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 100 * 1024 * 1024,
            workspace_quota_bytes: 1024 * 1024 * 1024,
            max_inline_bytes: 256 * 1024,
            upload_ttl: Duration::from_secs(15 * 60),
            download_ttl: Duration::from_secs(15 * 60),
            sweep_grace: Duration::from_secs(60 * 60),
        }
    }
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait AttachmentRepository: Send + Sync {
    /// The attachment in any state (tombstones and trashed ones included); `None` when unknown.
    async fn attachment(&self, id: AttachmentId) -> Result<Option<Attachment>, StoreError>;
    /// The document's live attachments (`deleted_at` null, not `deleted`), oldest first, ids
    /// strictly after `after`, at most `limit`.
    async fn attachments(
        &self,
        document: DocumentId,
        after: Option<AttachmentId>,
        limit: u32,
    ) -> Result<Vec<Attachment>, StoreError>;
    /// Bytes the workspace holds or has reserved in the blob store: the declared sizes of every
    /// attachment and uploaded context file whose status is not `deleted` (pending, ready, in the
    /// trash).
    async fn storage_used(&self, workspace: WorkspaceId) -> Result<u64, StoreError>;
    /// Pending attachments whose upload URL ran out before `before`, oldest first, at most `limit`.
    async fn expired_uploads(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Attachment>, StoreError>;
    /// The keys of every object the document's attachments and context files may hold (status
    /// not `deleted`), for a permanent delete.
    async fn blob_keys_of_document(&self, document: DocumentId)
    -> Result<Vec<BlobKey>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error("document not found")]
    DocumentNotFound,
    #[error("attachment not found")]
    NotFound,
    #[error("not allowed")]
    Forbidden,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("the document is in the trash")]
    DocumentInTrash,
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error("the upload has not been completed")]
    NotReady,
    #[error("the attachment changed meanwhile; retry")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccessError> for AttachmentError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NotFound => AttachmentError::NotFound,
            AccessError::Forbidden => AttachmentError::Forbidden,
            AccessError::Store(e) => AttachmentError::Store(e),
        }
    }
}

impl From<CommitError> for AttachmentError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Store(e) => AttachmentError::Store(e),
            _ => AttachmentError::Conflict,
        }
    }
}

/// Why an upload was refused or could not be completed (attachments and context files alike).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("files are limited to {limit} bytes")]
    TooLarge { limit: u64 },
    #[error(
        "the workspace's storage quota of {quota} bytes would be exceeded ({used} bytes used, {requested} requested)"
    )]
    QuotaExceeded {
        quota: u64,
        used: u64,
        requested: u64,
    },
    #[error("nothing was uploaded yet; PUT the file to the upload URL first")]
    UploadMissing,
    #[error("the upload does not match what was declared; it was discarded, upload again")]
    UploadMismatch {
        expected_size: i64,
        actual_size: u64,
        expected_type: String,
        actual_type: Option<String>,
    },
}

/// `POST /documents/{id}/attachments`, unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttachment {
    pub filename: String,
    pub content_type: String,
    pub size: i64,
}

/// A pending file and the request that uploads it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingUpload<T> {
    pub file: T,
    pub upload: PresignedRequest,
}

/// Longest file name kept, in characters (names are metadata; they may be long, not endless).
pub const MAX_FILENAME_CHARS: usize = 1024;

pub struct AttachmentService {
    attachments: Arc<dyn AttachmentRepository>,
    documents: Arc<dyn DocumentRepository>,
    blobs: Arc<dyn BlobStore>,
    access: Access,
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
    settings: FileSettings,
}

impl AttachmentService {
    pub fn new(
        attachments: Arc<dyn AttachmentRepository>,
        documents: Arc<dyn DocumentRepository>,
        blobs: Arc<dyn BlobStore>,
        access: Access,
        uow: Arc<dyn UnitOfWork>,
        clock: Arc<dyn Clock>,
        settings: FileSettings,
    ) -> Self {
        Self {
            attachments,
            documents,
            blobs,
            access,
            uow,
            clock,
            settings,
        }
    }

    /// Records a pending attachment and returns the presigned upload for it (≥ editor).
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, document = %document))]
    pub async fn create(
        &self,
        caller: &Caller,
        document: DocumentId,
        request: NewAttachment,
    ) -> Result<PendingUpload<Attachment>, AttachmentError> {
        let doc = self
            .document(caller, document, Action::Upload)
            .await
            .map_err(|e| match e {
                AttachmentError::NotFound => AttachmentError::DocumentNotFound,
                other => other,
            })?;
        if doc.deleted_at.is_some() {
            return Err(AttachmentError::DocumentInTrash);
        }
        let filename = checked_filename(&request.filename)?;
        let content_type = checked_content_type(&request.content_type)?;
        let size = checked_upload_size(request.size)?;
        check_upload_limit(size, &self.settings)?;
        check_quota(
            self.attachments.as_ref(),
            &self.settings,
            doc.workspace_id,
            size,
        )
        .await??;

        let now = self.clock.now();
        let id = AttachmentId::new();
        let key = BlobKey::attachment(doc.workspace_id, doc.id, id);
        let upload = self
            .blobs
            .presign_upload(
                &key,
                &UploadSpec {
                    size,
                    content_type: content_type.clone(),
                },
                self.settings.upload_ttl,
            )
            .await?;
        let attachment = Attachment {
            id,
            workspace_id: doc.workspace_id,
            document_id: doc.id,
            storage_key: key,
            filename,
            content_type,
            size: request.size,
            sha256: None,
            status: FileStatus::Pending,
            created_by: Some(caller.user_id),
            created_at: now,
            updated_at: now,
            expires_at: Some(upload.expires_at),
            deleted_at: None,
        };
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::InsertAttachment(attachment.clone()))
            .change(change(&attachment));
        self.uow.commit(batch).await?;
        Ok(PendingUpload {
            file: attachment,
            upload,
        })
    }

    /// Checks the uploaded object and marks the attachment ready (≥ editor). Idempotent.
    ///
    /// No object → [`AttachmentError::UploadMissing`]; a different size or type →
    /// [`AttachmentError::UploadMismatch`], and the object is deleted.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, attachment = %id))]
    pub async fn complete(
        &self,
        caller: &Caller,
        id: AttachmentId,
    ) -> Result<Attachment, AttachmentError> {
        let (mut attachment, doc) = self.attachment(caller, id, Action::Upload).await?;
        if doc.deleted_at.is_some() {
            return Err(AttachmentError::DocumentInTrash);
        }
        if attachment.status == FileStatus::Ready {
            return Ok(attachment);
        }
        let meta = self.blobs.head(&attachment.storage_key).await?;
        let meta = verify_upload(
            self.blobs.as_ref(),
            &attachment.storage_key,
            meta,
            attachment.size,
            &attachment.content_type,
        )
        .await??;
        attachment.status = FileStatus::Ready;
        attachment.sha256 = meta.sha256;
        attachment.expires_at = None;
        attachment.updated_at = self.clock.now();
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::UpdateAttachment {
                attachment: attachment.clone(),
                expected: FileStatus::Pending,
            })
            .change(change(&attachment));
        match self.uow.commit(batch).await {
            Ok(_) => Ok(attachment),
            // A concurrent complete won: report what is stored now.
            Err(CommitError::Stale(_)) => match self.attachments.attachment(id).await? {
                Some(a) if a.is_live() && a.status == FileStatus::Ready => Ok(a),
                _ => Err(AttachmentError::Conflict),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// The document's attachments, pending ones included (≥ viewer).
    pub async fn list(
        &self,
        caller: &Caller,
        document: DocumentId,
        limit: Limit,
        cursor: Option<&str>,
    ) -> Result<Page<Attachment>, AttachmentError> {
        self.document(caller, document, Action::ReadContent)
            .await
            .map_err(|e| match e {
                AttachmentError::NotFound => AttachmentError::DocumentNotFound,
                other => other,
            })?;
        let after = cursor.map(decode_cursor::<AttachmentId>).transpose()?;
        let rows = self
            .attachments
            .attachments(document, after, limit.get() + 1)
            .await?;
        Ok(page_from(rows, limit, |a| encode_cursor(&a.id)))
    }

    /// A presigned download of a ready attachment (≥ viewer).
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, attachment = %id))]
    pub async fn download(
        &self,
        caller: &Caller,
        id: AttachmentId,
    ) -> Result<PresignedRequest, AttachmentError> {
        let (attachment, _) = self.attachment(caller, id, Action::ReadContent).await?;
        if attachment.status != FileStatus::Ready {
            return Err(AttachmentError::NotReady);
        }
        Ok(self
            .blobs
            .presign_download(
                &attachment.storage_key,
                &attachment.filename,
                self.settings.download_ttl,
            )
            .await?)
    }

    /// Tombstones the attachment and removes its object (≥ editor).
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, attachment = %id))]
    pub async fn delete(&self, caller: &Caller, id: AttachmentId) -> Result<(), AttachmentError> {
        let (mut attachment, doc) = self.attachment(caller, id, Action::Upload).await?;
        if doc.deleted_at.is_some() {
            return Err(AttachmentError::DocumentInTrash);
        }
        let expected = attachment.status;
        let now = self.clock.now();
        attachment.status = FileStatus::Deleted;
        attachment.deleted_at = Some(now);
        attachment.updated_at = now;
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::UpdateAttachment {
                attachment: attachment.clone(),
                expected,
            })
            .change(change(&attachment));
        self.uow.commit(batch).await?;
        // After the commit: a failed commit must not lose the bytes of a live attachment.
        remove_objects(self.blobs.as_ref(), [attachment.storage_key]).await;
        Ok(())
    }

    /// Removes pending uploads whose URL ran out more than the grace period ago: the object (if a
    /// partial one exists) and the row (tombstoned, with a change-feed entry). Returns how many.
    #[tracing::instrument(skip_all)]
    pub async fn sweep(&self, limit: u32) -> Result<usize, StoreError> {
        let before = self.clock.now() - chrono_duration(self.settings.sweep_grace);
        let expired = self.attachments.expired_uploads(before, limit).await?;
        let mut swept = 0;
        for mut attachment in expired {
            self.blobs.delete(&attachment.storage_key).await?;
            let now = self.clock.now();
            attachment.status = FileStatus::Deleted;
            attachment.deleted_at = Some(now);
            attachment.updated_at = now;
            let batch = WriteBatch::default()
                .write(Write::UpdateAttachment {
                    attachment: attachment.clone(),
                    expected: FileStatus::Pending,
                })
                .change(change(&attachment));
            match self.uow.commit(batch).await {
                Ok(_) => swept += 1,
                // Completed or deleted meanwhile; a late complete finds its object gone and
                // answers `upload_missing`.
                Err(CommitError::Stale(_)) => {}
                Err(CommitError::Store(e)) => return Err(e),
                Err(e) => return Err(StoreError::Unexpected(e.into())),
            }
        }
        Ok(swept)
    }

    /// The document, if the caller may see it (404 otherwise) and perform `action` (403).
    async fn document(
        &self,
        caller: &Caller,
        id: DocumentId,
        action: Action,
    ) -> Result<Document, AttachmentError> {
        let doc = self
            .documents
            .document(id)
            .await?
            .ok_or(AttachmentError::NotFound)?;
        self.access
            .document(caller, doc.workspace_id, id, Action::ReadContent)
            .await?;
        self.access
            .document(caller, doc.workspace_id, id, action)
            .await?;
        Ok(doc)
    }

    /// A live attachment and its document, if the caller may see it and perform `action`.
    async fn attachment(
        &self,
        caller: &Caller,
        id: AttachmentId,
        action: Action,
    ) -> Result<(Attachment, Document), AttachmentError> {
        let attachment = self
            .attachments
            .attachment(id)
            .await?
            .ok_or(AttachmentError::NotFound)?;
        // Access first: outsiders learn nothing about tombstones either.
        let doc = self
            .document(caller, attachment.document_id, action)
            .await?;
        if !attachment.is_live() {
            return Err(AttachmentError::NotFound);
        }
        Ok((attachment, doc))
    }
}

/// Removes the stored objects of a permanently deleted document. The rows go with the document
/// (cascade); the objects are removed after the commit, best-effort: a failure is logged and
/// leaves an orphaned object, never a row pointing at nothing.
#[derive(Clone)]
pub struct BlobPurge {
    files: Arc<dyn AttachmentRepository>,
    blobs: Arc<dyn BlobStore>,
}

impl BlobPurge {
    pub fn new(files: Arc<dyn AttachmentRepository>, blobs: Arc<dyn BlobStore>) -> Self {
        Self { files, blobs }
    }

    /// The keys to remove once the document is gone (read before the delete).
    pub async fn keys_of(&self, document: DocumentId) -> Result<Vec<BlobKey>, StoreError> {
        self.files.blob_keys_of_document(document).await
    }

    pub async fn remove(&self, keys: Vec<BlobKey>) {
        remove_objects(self.blobs.as_ref(), keys).await;
    }
}

// ---------------------------------------------------------------------------------------------
// shared with context files

/// Trimmed, 1..=1024 characters, no control characters (NUL included). Path-like names
/// (`../x`, `/etc/passwd`) are kept as given: they are metadata and never reach a key.
pub(crate) fn checked_filename(raw: &str) -> Result<String, Invalid> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Invalid::new("filename", "must not be empty"));
    }
    if name.chars().count() > MAX_FILENAME_CHARS {
        return Err(Invalid::new(
            "filename",
            format!("must be at most {MAX_FILENAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid::new(
            "filename",
            "must not contain control characters (NUL included)",
        ));
    }
    Ok(name.to_owned())
}

/// A media type `type/subtype` with optional parameters, printable ASCII, at most 255 bytes.
/// It is signed into the upload, so it must be a valid header value.
pub(crate) fn checked_content_type(raw: &str) -> Result<String, Invalid> {
    let bad = || Invalid::new("content_type", "must be a media type like image/png");
    let value = raw.trim();
    if value.is_empty() || value.len() > 255 || !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(bad());
    }
    let essence = value.split(';').next().unwrap_or_default().trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match essence.split_once('/') {
        Some((t, s)) if token(t) && token(s) => Ok(value.to_owned()),
        _ => Err(bad()),
    }
}

pub(crate) fn checked_upload_size(size: i64) -> Result<u64, Invalid> {
    u64::try_from(size).map_err(|_| Invalid::new("size", "must not be negative"))
}

pub(crate) fn check_upload_limit(size: u64, settings: &FileSettings) -> Result<(), UploadError> {
    if size > settings.max_upload_bytes {
        return Err(UploadError::TooLarge {
            limit: settings.max_upload_bytes,
        });
    }
    Ok(())
}

pub(crate) async fn check_quota(
    files: &dyn AttachmentRepository,
    settings: &FileSettings,
    workspace: WorkspaceId,
    requested: u64,
) -> Result<Result<(), UploadError>, StoreError> {
    let used = files.storage_used(workspace).await?;
    if used.saturating_add(requested) > settings.workspace_quota_bytes {
        return Ok(Err(UploadError::QuotaExceeded {
            quota: settings.workspace_quota_bytes,
            used,
            requested,
        }));
    }
    Ok(Ok(()))
}

/// Compares the stored object with what was declared. A mismatching object is deleted.
pub(crate) async fn verify_upload(
    blobs: &dyn BlobStore,
    key: &BlobKey,
    meta: Option<BlobMeta>,
    size: i64,
    content_type: &str,
) -> Result<Result<BlobMeta, UploadError>, StoreError> {
    let Some(meta) = meta else {
        return Ok(Err(UploadError::UploadMissing));
    };
    let size_ok = u64::try_from(size).is_ok_and(|s| s == meta.size);
    // Stores that do not report a type are judged on the size alone.
    let type_ok = meta
        .content_type
        .as_deref()
        .is_none_or(|t| t.trim().eq_ignore_ascii_case(content_type.trim()));
    if size_ok && type_ok {
        return Ok(Ok(meta));
    }
    blobs.delete(key).await?;
    Ok(Err(UploadError::UploadMismatch {
        expected_size: size,
        actual_size: meta.size,
        expected_type: content_type.to_owned(),
        actual_type: meta.content_type,
    }))
}

pub(crate) async fn remove_objects(blobs: &dyn BlobStore, keys: impl IntoIterator<Item = BlobKey>) {
    for key in keys {
        if let Err(e) = blobs.delete(&key).await {
            tracing::warn!(error = ?e, key = %key, "could not remove a stored object; it is orphaned");
        }
    }
}

pub(crate) fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn change(attachment: &Attachment) -> Change {
    if attachment.is_live() {
        Change::upsert(
            attachment.workspace_id,
            EntityType::Attachment,
            attachment.id.0,
        )
    } else {
        Change::delete(
            attachment.workspace_id,
            EntityType::Attachment,
            attachment.id.0,
        )
    }
}

#[cfg(test)]
mod tests;
