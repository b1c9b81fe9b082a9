//! Rows ⇄ domain values. Reading back a value the domain would refuse (an unknown role, a
//! malformed e-mail) is a [`StoreError::Unexpected`], never a panic.

use chrono::{DateTime, Utc};
use mdcreator_domain::attachments::{Attachment, FileStatus};
use mdcreator_domain::blobs::BlobKey;
use mdcreator_domain::context_files::{ContextBody, ContextFile};
use mdcreator_domain::documents::{
    Document, DocumentSummary, DocumentVersion, VersionReason, VersionSummary,
};
use mdcreator_domain::feed::Change;
use mdcreator_domain::folders::Folder;
use mdcreator_domain::idempotency::StoredResponse;
use mdcreator_domain::identity::local::{
    CodePurpose, LocalAccount, PendingCode, RefreshToken, SigningKey,
};
use mdcreator_domain::invitations::{Invitation, InvitationKind};
use mdcreator_domain::members::Member;
use mdcreator_domain::users::User;
use mdcreator_domain::workspaces::Workspace;
use mdcreator_domain::{
    AttachmentId, ContentHash, ContextFileId, DeviceId, DocumentId, Email, Role, StoreError,
    UserId, Version,
};
use sea_orm::ActiveValue::Set;
use sea_orm::{DerivePartialModel, FromQueryResult, IntoActiveModel};
use uuid::Uuid;

use crate::entity::{
    attachments, changes, context_files, document_versions, documents, folders, invitations,
    local_accounts, refresh_tokens, signing_keys, users, workspace_members, workspaces,
};
use crate::error::corrupt;

// ---------------------------------------------------------------------------------------------
// rows read with partial selects

/// A document without `yjs_state` (the collaboration layer reads that on its own).
#[derive(Debug, DerivePartialModel)]
#[sea_orm(entity = "documents::Entity")]
pub(crate) struct DocumentRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub folder_id: Option<Uuid>,
    pub title: String,
    pub content: String,
    pub content_hash: String,
    pub version: i64,
    pub position: f64,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A document without `content` and `yjs_state` (lists).
#[derive(Debug, DerivePartialModel)]
#[sea_orm(entity = "documents::Entity")]
pub(crate) struct DocumentSummaryRow {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub folder_id: Option<Uuid>,
    pub title: String,
    pub content_hash: String,
    pub version: i64,
    pub position: f64,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A history entry without its content; `size` is computed by the database.
#[derive(Debug, FromQueryResult)]
pub(crate) struct VersionSummaryRow {
    pub version: i64,
    pub title: String,
    pub content_hash: String,
    pub size: i64,
    pub author_id: Option<Uuid>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// rows → domain

pub(crate) fn user(m: users::Model) -> Result<User, StoreError> {
    Ok(User {
        id: UserId(m.id),
        subject: m.subject,
        email: email(&m.email)?,
        display_name: m.display_name,
        avatar_url: m.avatar_url,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub(crate) fn workspace(m: workspaces::Model) -> Workspace {
    Workspace {
        id: m.id.into(),
        name: m.name,
        slug: m.slug,
        settings: m.settings,
        created_by: m.created_by.map(UserId),
        created_at: m.created_at,
        updated_at: m.updated_at,
        deleted_at: m.deleted_at,
    }
}

pub(crate) fn member(m: workspace_members::Model) -> Result<Member, StoreError> {
    Ok(Member {
        workspace_id: m.workspace_id.into(),
        user_id: UserId(m.user_id),
        role: role(&m.role)?,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub(crate) fn invitation(m: invitations::Model) -> Result<Invitation, StoreError> {
    let kind = match m.kind.as_str() {
        "email" => InvitationKind::Email,
        "link" => InvitationKind::Link,
        other => return Err(corrupt("invitation kind", other)),
    };
    Ok(Invitation {
        id: m.id.into(),
        workspace_id: m.workspace_id.into(),
        kind,
        email: m.email.as_deref().map(email).transpose()?,
        role: role(&m.role)?,
        token_hash: m.token_hash,
        max_uses: m.max_uses,
        uses: m.uses,
        expires_at: m.expires_at,
        revoked_at: m.revoked_at,
        created_by: m.created_by.map(UserId),
        created_at: m.created_at,
    })
}

pub(crate) fn folder(m: folders::Model) -> Folder {
    Folder {
        id: m.id.into(),
        workspace_id: m.workspace_id.into(),
        parent_id: m.parent_id.map(Into::into),
        name: m.name,
        position: m.position,
        version: Version(m.version),
        created_at: m.created_at,
        updated_at: m.updated_at,
        deleted_at: m.deleted_at,
    }
}

pub(crate) fn document(m: DocumentRow) -> Document {
    Document {
        id: m.id.into(),
        workspace_id: m.workspace_id.into(),
        folder_id: m.folder_id.map(Into::into),
        title: m.title,
        content: m.content,
        content_hash: ContentHash::from_stored(m.content_hash),
        version: Version(m.version),
        position: m.position,
        created_by: m.created_by.map(UserId),
        updated_by: m.updated_by.map(UserId),
        created_at: m.created_at,
        updated_at: m.updated_at,
        deleted_at: m.deleted_at,
    }
}

pub(crate) fn document_summary(m: DocumentSummaryRow) -> DocumentSummary {
    DocumentSummary {
        id: m.id.into(),
        workspace_id: m.workspace_id.into(),
        folder_id: m.folder_id.map(Into::into),
        title: m.title,
        content_hash: ContentHash::from_stored(m.content_hash),
        version: Version(m.version),
        position: m.position,
        created_by: m.created_by.map(UserId),
        updated_by: m.updated_by.map(UserId),
        created_at: m.created_at,
        updated_at: m.updated_at,
        deleted_at: m.deleted_at,
    }
}

pub(crate) fn version(m: document_versions::Model) -> Result<DocumentVersion, StoreError> {
    Ok(DocumentVersion {
        document_id: m.document_id.into(),
        version: Version(m.version),
        title: m.title,
        content: m.content,
        content_hash: ContentHash::from_stored(m.content_hash),
        author_id: m.author_id.map(UserId),
        reason: reason(&m.reason)?,
        created_at: m.created_at,
    })
}

pub(crate) fn version_summary(m: VersionSummaryRow) -> Result<VersionSummary, StoreError> {
    Ok(VersionSummary {
        version: Version(m.version),
        title: m.title,
        content_hash: ContentHash::from_stored(m.content_hash),
        size: m.size,
        author_id: m.author_id.map(UserId),
        reason: reason(&m.reason)?,
        created_at: m.created_at,
    })
}

pub(crate) fn local_account(m: local_accounts::Model) -> Result<LocalAccount, StoreError> {
    let code = match (m.code_hash, m.code_purpose, m.code_expires_at) {
        (Some(hash), Some(purpose), Some(expires_at)) => Some(PendingCode {
            hash,
            purpose: match purpose.as_str() {
                "confirm" => CodePurpose::Confirm,
                "reset" => CodePurpose::Reset,
                other => return Err(corrupt("code purpose", other)),
            },
            expires_at,
            attempts: m.code_attempts,
        }),
        _ => None,
    };
    Ok(LocalAccount {
        user_id: UserId(m.user_id),
        email: email(&m.email)?,
        password_hash: m.password_hash,
        verified: m.verified,
        code,
    })
}

pub(crate) fn refresh_token(m: refresh_tokens::Model) -> RefreshToken {
    RefreshToken {
        id: m.id,
        user_id: UserId(m.user_id),
        family_id: m.family_id,
        token_hash: m.token_hash,
        expires_at: m.expires_at,
        revoked_at: m.revoked_at,
        created_at: m.created_at,
    }
}

pub(crate) fn signing_key(m: signing_keys::Model) -> SigningKey {
    SigningKey {
        kid: m.kid,
        algorithm: m.algorithm,
        private_key: m.private_key,
        public_jwk: m.public_jwk,
        created_at: m.created_at,
        retired_at: m.retired_at,
    }
}

/// A finished response as stored: status, headers as a JSON array of `[name, value]` pairs.
pub(crate) fn stored_response(
    status: Option<i32>,
    headers: Option<serde_json::Value>,
    body: Option<Vec<u8>>,
) -> Result<Option<StoredResponse>, StoreError> {
    let Some(status) = status else {
        return Ok(None);
    };
    let status = u16::try_from(status).map_err(|_| corrupt("response status", status))?;
    let headers: Vec<(String, String)> = match headers {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(json) => {
            serde_json::from_value(json.clone()).map_err(|_| corrupt("response headers", json))?
        }
    };
    Ok(Some(StoredResponse {
        status,
        headers,
        body: body.unwrap_or_default(),
    }))
}

pub(crate) fn headers_json(headers: &[(String, String)]) -> serde_json::Value {
    serde_json::Value::Array(
        headers
            .iter()
            .map(|(name, value)| serde_json::json!([name, value]))
            .collect(),
    )
}

pub(crate) fn role(stored: &str) -> Result<Role, StoreError> {
    stored.parse().map_err(|_| corrupt("role", stored))
}

fn email(stored: &str) -> Result<Email, StoreError> {
    Email::parse(stored).map_err(|_| corrupt("e-mail", stored))
}

fn reason(stored: &str) -> Result<VersionReason, StoreError> {
    VersionReason::parse(stored).ok_or_else(|| corrupt("version reason", stored))
}

// ---------------------------------------------------------------------------------------------
// domain → rows

pub(crate) fn user_row(u: &User) -> users::ActiveModel {
    users::Model {
        id: u.id.0,
        subject: u.subject.clone(),
        email: stored_email(&u.email),
        display_name: u.display_name.clone(),
        avatar_url: u.avatar_url.clone(),
        created_at: u.created_at,
        updated_at: u.updated_at,
        deleted_at: None,
    }
    .into_active_model()
}

pub(crate) fn workspace_row(w: &Workspace) -> workspaces::ActiveModel {
    workspaces::Model {
        id: w.id.0,
        name: w.name.clone(),
        slug: w.slug.clone(),
        change_seq: 0,
        feed_horizon_seq: 0,
        settings: w.settings.clone(),
        created_by: w.created_by.map(|u| u.0),
        created_at: w.created_at,
        updated_at: w.updated_at,
        deleted_at: w.deleted_at,
    }
    .into_active_model()
}

pub(crate) fn member_row(m: &Member) -> workspace_members::ActiveModel {
    workspace_members::Model {
        workspace_id: m.workspace_id.0,
        user_id: m.user_id.0,
        role: m.role.as_str().to_owned(),
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
    .into_active_model()
}

pub(crate) fn invitation_row(i: &Invitation) -> invitations::ActiveModel {
    invitations::Model {
        id: i.id.0,
        workspace_id: i.workspace_id.0,
        kind: i.kind.as_str().to_owned(),
        email: i.email.as_ref().map(stored_email),
        role: i.role.as_str().to_owned(),
        token_hash: i.token_hash.clone(),
        max_uses: i.max_uses,
        uses: i.uses,
        expires_at: i.expires_at,
        revoked_at: i.revoked_at,
        created_by: i.created_by.map(|u| u.0),
        created_at: i.created_at,
    }
    .into_active_model()
}

pub(crate) fn folder_row(f: &Folder) -> folders::ActiveModel {
    folders::Model {
        id: f.id.0,
        workspace_id: f.workspace_id.0,
        parent_id: f.parent_id.map(|p| p.0),
        name: f.name.clone(),
        position: f.position,
        version: f.version.0,
        created_at: f.created_at,
        updated_at: f.updated_at,
        deleted_at: f.deleted_at,
    }
    .into_active_model()
}

pub(crate) fn document_row(d: &Document) -> documents::ActiveModel {
    documents::Model {
        id: d.id.0,
        workspace_id: d.workspace_id.0,
        folder_id: d.folder_id.map(|f| f.0),
        title: d.title.clone(),
        content: d.content.clone(),
        content_hash: d.content_hash.as_str().to_owned(),
        version: d.version.0,
        position: d.position,
        yjs_state: None,
        created_by: d.created_by.map(|u| u.0),
        updated_by: d.updated_by.map(|u| u.0),
        created_at: d.created_at,
        updated_at: d.updated_at,
        deleted_at: d.deleted_at,
    }
    .into_active_model()
}

pub(crate) fn version_row(v: &DocumentVersion) -> document_versions::ActiveModel {
    document_versions::Model {
        document_id: v.document_id.0,
        version: v.version.0,
        title: v.title.clone(),
        content: v.content.clone(),
        content_hash: v.content_hash.as_str().to_owned(),
        author_id: v.author_id.map(|u| u.0),
        reason: v.reason.as_str().to_owned(),
        created_at: v.created_at,
    }
    .into_active_model()
}

/// One change-feed row; `seq`, the commit's last seq, actor, device and time come from the
/// committing batch.
pub(crate) fn change_row(
    c: &Change,
    seq: i64,
    commit_end_seq: i64,
    actor: Option<UserId>,
    device: Option<DeviceId>,
    at: DateTime<Utc>,
) -> changes::ActiveModel {
    changes::Model {
        workspace_id: c.workspace_id.0,
        seq,
        entity_type: c.entity_type.as_str().to_owned(),
        entity_id: c.entity_id,
        op: c.op.as_str().to_owned(),
        version: c.version,
        actor_id: actor.map(|u| u.0),
        device_id: device.map(|d| d.0),
        at,
        commit_end_seq: Some(commit_end_seq),
    }
    .into_active_model()
}

pub(crate) fn local_account_row(
    a: &LocalAccount,
    now: DateTime<Utc>,
) -> local_accounts::ActiveModel {
    let mut row = local_accounts::ActiveModel {
        user_id: Set(a.user_id.0),
        email: Set(stored_email(&a.email)),
        password_hash: Set(a.password_hash.clone()),
        verified: Set(a.verified),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    set_code(&mut row, a.code.as_ref());
    row
}

/// Sets the pending-code columns (all `NULL` and 0 attempts when there is none).
pub(crate) fn set_code(row: &mut local_accounts::ActiveModel, code: Option<&PendingCode>) {
    row.code_hash = Set(code.map(|c| c.hash.clone()));
    row.code_purpose = Set(code.map(|c| c.purpose.as_str().to_owned()));
    row.code_expires_at = Set(code.map(|c| c.expires_at));
    row.code_attempts = Set(code.map_or(0, |c| c.attempts));
}

pub(crate) fn refresh_token_row(t: &RefreshToken) -> refresh_tokens::ActiveModel {
    refresh_tokens::Model {
        id: t.id,
        user_id: t.user_id.0,
        family_id: t.family_id,
        token_hash: t.token_hash.clone(),
        device_id: None,
        expires_at: t.expires_at,
        revoked_at: t.revoked_at,
        replaced_by: None,
        created_at: t.created_at,
    }
    .into_active_model()
}

pub(crate) fn signing_key_row(k: &SigningKey) -> signing_keys::ActiveModel {
    signing_keys::Model {
        kid: k.kid.clone(),
        algorithm: k.algorithm.clone(),
        private_key: k.private_key.clone(),
        public_jwk: k.public_jwk.clone(),
        created_at: k.created_at,
        retired_at: k.retired_at,
    }
    .into_active_model()
}

/// E-mails are stored lower-case so that equality is case-insensitive on both backends.
pub(crate) fn stored_email(email: &Email) -> String {
    email.as_str().to_lowercase()
}

// ---------------------------------------------------------------------------------------------
// attachments and context files

pub(crate) fn attachment(m: attachments::Model) -> Result<Attachment, StoreError> {
    Ok(Attachment {
        id: AttachmentId(m.id),
        workspace_id: m.workspace_id.into(),
        document_id: DocumentId(m.document_id),
        storage_key: BlobKey::parse(&m.storage_key)
            .map_err(|_| corrupt("attachment storage key", &m.storage_key))?,
        filename: m.filename,
        content_type: m.content_type,
        size: m.size,
        sha256: m.sha256,
        status: file_status(&m.status)?,
        created_by: m.created_by.map(UserId),
        created_at: m.created_at,
        updated_at: m.updated_at,
        expires_at: m.expires_at,
        deleted_at: m.deleted_at,
    })
}

pub(crate) fn attachment_row(a: &Attachment) -> attachments::ActiveModel {
    attachments::Model {
        id: a.id.0,
        workspace_id: a.workspace_id.0,
        document_id: a.document_id.0,
        storage_key: a.storage_key.as_str().to_owned(),
        filename: a.filename.clone(),
        content_type: a.content_type.clone(),
        size: a.size,
        sha256: a.sha256.clone(),
        status: a.status.as_str().to_owned(),
        created_by: a.created_by.map(|u| u.0),
        created_at: a.created_at,
        updated_at: a.updated_at,
        expires_at: a.expires_at,
        deleted_at: a.deleted_at,
    }
    .into_active_model()
}

pub(crate) fn context_file(m: context_files::Model) -> Result<ContextFile, StoreError> {
    let body = match (m.storage_key, m.inline_text) {
        (Some(key), None) => ContextBody::Blob(
            BlobKey::parse(&key).map_err(|_| corrupt("context file storage key", &key))?,
        ),
        (None, Some(text)) => ContextBody::Inline(text),
        (key, text) => {
            return Err(corrupt("context file body", (key, text.map(|t| t.len()))));
        }
    };
    Ok(ContextFile {
        id: ContextFileId(m.id),
        workspace_id: m.workspace_id.into(),
        document_id: m.document_id.map(DocumentId),
        name: m.name,
        content_type: m.content_type,
        body,
        content_hash: Some(m.content_hash)
            .filter(|h| !h.is_empty())
            .map(ContentHash::from_stored),
        size: m.size,
        version: Version(m.version),
        status: file_status(&m.status)?,
        created_by: m.created_by.map(UserId),
        created_at: m.created_at,
        updated_at: m.updated_at,
        expires_at: m.expires_at,
        deleted_at: m.deleted_at,
    })
}

pub(crate) fn context_file_row(f: &ContextFile) -> context_files::ActiveModel {
    let (storage_key, inline_text) = context_body(&f.body);
    context_files::Model {
        id: f.id.0,
        workspace_id: f.workspace_id.0,
        document_id: f.document_id.map(|d| d.0),
        name: f.name.clone(),
        content_type: f.content_type.clone(),
        storage_key,
        inline_text,
        content_hash: stored_hash(f),
        size: f.size,
        version: f.version.0,
        status: f.status.as_str().to_owned(),
        created_by: f.created_by.map(|u| u.0),
        created_at: f.created_at,
        updated_at: f.updated_at,
        expires_at: f.expires_at,
        deleted_at: f.deleted_at,
    }
    .into_active_model()
}

/// `(storage_key, inline_text)`: exactly one is set.
pub(crate) fn context_body(body: &ContextBody) -> (Option<String>, Option<String>) {
    match body {
        ContextBody::Blob(key) => (Some(key.as_str().to_owned()), None),
        ContextBody::Inline(text) => (None, Some(text.clone())),
    }
}

/// An unknown hash (pending upload, a store that reports none) is stored as `""`.
pub(crate) fn stored_hash(f: &ContextFile) -> String {
    f.content_hash
        .as_ref()
        .map(|h| h.as_str().to_owned())
        .unwrap_or_default()
}

fn file_status(stored: &str) -> Result<FileStatus, StoreError> {
    FileStatus::parse(stored).ok_or_else(|| corrupt("file status", stored))
}
