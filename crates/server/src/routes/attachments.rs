//! Attachments: create (presigned upload), complete, list, download (302), delete.

use std::collections::BTreeMap;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use mdcreator_domain::attachments::{Attachment, FileStatus, NewAttachment};
use mdcreator_domain::blobs::PresignedRequest;
use mdcreator_domain::pagination::Limit;
use mdcreator_domain::{AttachmentId, DocumentId};

use super::dto::ListOf;
use super::parse_id;
use crate::extract::{Authenticated, Reply, idempotent, json_body};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(complete)
        .service(download)
        .service(remove);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAttachment {
    /// The client's file name: kept as metadata only (never part of a storage key).
    pub filename: String,
    /// A media type; the upload must send exactly this `Content-Type`.
    pub content_type: String,
    /// Exact size in bytes (at most 100 MiB by default); the upload must be exactly this long.
    pub size: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentDto {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub document_id: Uuid,
    /// `pending` until completed, then `ready`.
    #[schema(value_type = String, example = "ready")]
    pub status: FileStatus,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    /// Hex SHA-256 of the bytes, when the store reported one.
    pub sha256: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// While pending: when the upload URL runs out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<Attachment> for AttachmentDto {
    fn from(a: Attachment) -> Self {
        Self {
            id: a.id.0,
            workspace_id: a.workspace_id.0,
            document_id: a.document_id.0,
            status: a.status,
            filename: a.filename,
            content_type: a.content_type,
            size: a.size,
            sha256: a.sha256,
            created_by: a.created_by.map(|u| u.0),
            created_at: a.created_at,
            updated_at: a.updated_at,
            expires_at: a.expires_at.filter(|_| a.status == FileStatus::Pending),
        }
    }
}

/// How to upload: send `method` to `url` with exactly these `headers` and the file as the body.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadDto {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
}

impl From<PresignedRequest> for UploadDto {
    fn from(r: PresignedRequest) -> Self {
        Self {
            method: r.method,
            url: r.url,
            headers: r.headers.into_iter().collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedAttachmentDto {
    #[serde(flatten)]
    pub attachment: AttachmentDto,
    pub upload: UploadDto,
}

/// A short-lived download URL.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkDto {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

impl From<PresignedRequest> for LinkDto {
    fn from(r: PresignedRequest) -> Self {
        Self {
            url: r.url,
            expires_at: r.expires_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DownloadQuery {
    /// `false` answers 200 `{url, expires_at}` instead of a 302.
    pub redirect: Option<bool>,
}

pub(crate) fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", format!("bad query string: {e}")))
}

/// Records a pending attachment and returns its presigned upload (15 minutes; ≥ editor).
/// Honours `Idempotency-Key`.
#[utoipa::path(tag = "attachments", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = CreateAttachment, responses(
    (status = 201, body = CreatedAttachmentDto), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, description = "document_in_trash", body = Problem),
    (status = 413, description = "file_too_large, quota_exceeded", body = Problem), (status = 422, body = Problem),
))]
#[post("/documents/{id}/attachments")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let document: DocumentId = parse_id(&path, "document id")?;
    let r: CreateAttachment = json_body(&req, &body)?;
    idempotent(&state, &req, &auth.caller, &body, || async {
        let pending = state
            .attachments
            .create(
                &auth.caller,
                document,
                NewAttachment {
                    filename: r.filename,
                    content_type: r.content_type,
                    size: r.size,
                },
            )
            .await?;
        let location = format!("/api/v1/attachments/{}", pending.file.id);
        let created = CreatedAttachmentDto {
            attachment: pending.file.into(),
            upload: pending.upload.into(),
        };
        Ok(Reply::json(StatusCode::CREATED, &created)?.header("location", location))
    })
    .await
}

/// The document's attachments, pending ones included (≥ viewer).
#[utoipa::path(tag = "attachments", security(("bearer" = [])), params(("id" = Uuid, Path), PageQuery), responses(
    (status = 200, body = ListOf<AttachmentDto>), (status = 404, body = Problem),
))]
#[get("/documents/{id}/attachments")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let document: DocumentId = parse_id(&path, "document id")?;
    let q: PageQuery = query(&req)?;
    let page = state
        .attachments
        .list(
            &auth.caller,
            document,
            Limit::parse(q.limit)?,
            q.cursor.as_deref(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(ListOf::from_page(page, AttachmentDto::from)))
}

/// Checks the upload (exists, declared size and type) and marks the attachment ready (≥ editor).
#[utoipa::path(tag = "attachments", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = AttachmentDto), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, description = "upload_missing", body = Problem),
    (status = 422, description = "upload_mismatch (the object was deleted)", body = Problem),
))]
#[post("/attachments/{id}/complete")]
pub async fn complete(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: AttachmentId = parse_id(&path, "attachment id")?;
    let attachment = state.attachments.complete(&auth.caller, id).await?;
    Ok(HttpResponse::Ok().json(AttachmentDto::from(attachment)))
}

/// Redirects (302) to a presigned download URL (15 minutes; ≥ viewer); `?redirect=false`
/// answers `{url, expires_at}` instead.
#[utoipa::path(tag = "attachments", security(("bearer" = [])), params(("id" = Uuid, Path), DownloadQuery), responses(
    (status = 302, description = "Location: the presigned URL"), (status = 200, body = LinkDto),
    (status = 404, body = Problem), (status = 409, description = "upload_pending", body = Problem),
))]
#[get("/attachments/{id}")]
pub async fn download(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id: AttachmentId = parse_id(&path, "attachment id")?;
    let q: DownloadQuery = query(&req)?;
    let link = state.attachments.download(&auth.caller, id).await?;
    if q.redirect.unwrap_or(true) {
        Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, link.url))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish())
    } else {
        Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(LinkDto::from(link)))
    }
}

/// Deletes the attachment and its stored object (≥ editor).
#[utoipa::path(tag = "attachments", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
))]
#[delete("/attachments/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: AttachmentId = parse_id(&path, "attachment id")?;
    state.attachments.delete(&auth.caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
