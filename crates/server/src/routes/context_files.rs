//! Context files: per workspace (or per document), inline text or an upload like attachments.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use mdcreator_domain::attachments::FileStatus;
use mdcreator_domain::blobs::PresignedRequest;
use mdcreator_domain::context_files::{
    ContextBody, ContextFile, ContextFilePatch, NewContextContent, NewContextFile,
};
use mdcreator_domain::pagination::Limit;
use mdcreator_domain::values::Invalid;
use mdcreator_domain::{ContextFileId, DocumentId, WorkspaceId};

use super::attachments::{LinkDto, UploadDto, query};
use super::dto::ListOf;
use super::parse_id;
use crate::extract::{Authenticated, Reply, header_value, idempotent, json_body};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(get_one)
        .service(update)
        .service(remove)
        .service(complete);
}

/// Either `content` (text kept inline, ≤ 256 KiB) or `size` + `content_type` (an upload).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContextFile {
    pub name: String,
    /// Limits the file to one document of the workspace.
    pub document_id: Option<Uuid>,
    pub content: Option<String>,
    /// Default for inline text: `text/markdown; charset=utf-8`.
    pub content_type: Option<String>,
    /// Bytes of a file to upload instead of inline `content`.
    pub size: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateContextFile {
    pub name: Option<String>,
    /// New text (makes an uploaded file inline).
    pub content: Option<String>,
    pub content_type: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContextFileDto {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub document_id: Option<Uuid>,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub content_hash: Option<String>,
    pub version: i64,
    #[schema(value_type = String, example = "ready")]
    pub status: FileStatus,
    /// `inline` (text in `content`) or `blob` (bytes behind `download`).
    pub storage: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<LinkDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<UploadDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ContextFileDto {
    /// Lists leave the text out; single reads (and sync pulls) carry it.
    pub(crate) fn new(f: ContextFile, with_content: bool) -> Self {
        let (storage, content) = match f.body {
            ContextBody::Inline(text) => ("inline", Some(text).filter(|_| with_content)),
            ContextBody::Blob(_) => ("blob", None),
        };
        Self {
            id: f.id.0,
            workspace_id: f.workspace_id.0,
            document_id: f.document_id.map(|d| d.0),
            name: f.name,
            content_type: f.content_type,
            size: f.size,
            content_hash: f.content_hash.map(|h| h.as_str().to_owned()),
            version: f.version.0,
            status: f.status,
            storage,
            content,
            download: None,
            upload: None,
            expires_at: f.expires_at.filter(|_| f.status == FileStatus::Pending),
            created_by: f.created_by.map(|u| u.0),
            created_at: f.created_at,
            updated_at: f.updated_at,
        }
    }

    fn with_upload(mut self, upload: Option<PresignedRequest>) -> Self {
        self.upload = upload.map(UploadDto::from);
        self
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only the files of this document.
    pub document_id: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn with_etag(status: StatusCode, etag: String, dto: &ContextFileDto) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::ETAG, etag))
        .json(dto)
}

/// The workspace's context files (≥ viewer), without their text.
#[utoipa::path(tag = "context files", security(("bearer" = [])), params(("ws" = Uuid, Path), ListQuery), responses(
    (status = 200, body = ListOf<ContextFileDto>), (status = 404, body = Problem),
))]
#[get("/workspaces/{ws}/context-files")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path, "workspace id")?;
    let q: ListQuery = query(&req)?;
    let document = q
        .document_id
        .as_deref()
        .map(|d| parse_id::<DocumentId>(d, "document_id"))
        .transpose()?;
    let page = state
        .context_files
        .list(
            &auth.caller,
            ws,
            document,
            Limit::parse(q.limit)?,
            q.cursor.as_deref(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(ListOf::from_page(page, |f| ContextFileDto::new(f, false))))
}

/// Creates a context file (≥ editor): inline `content`, or `size` + `content_type` for a
/// presigned upload to complete with `POST /context-files/{id}/complete`. Honours
/// `Idempotency-Key`.
#[utoipa::path(tag = "context files", security(("bearer" = [])), params(("ws" = Uuid, Path)), request_body = CreateContextFile, responses(
    (status = 201, body = ContextFileDto), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 413, description = "context_file_too_large, file_too_large, quota_exceeded", body = Problem), (status = 422, body = Problem),
))]
#[post("/workspaces/{ws}/context-files")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path, "workspace id")?;
    let r: CreateContextFile = json_body(&req, &body)?;
    let content = match (r.content, r.size, r.content_type) {
        (Some(text), None, content_type) => NewContextContent::Inline { text, content_type },
        (None, Some(size), Some(content_type)) => NewContextContent::Upload { size, content_type },
        (None, Some(_), None) => {
            return Err(Invalid::new("content_type", "is required for an upload").into());
        }
        (Some(_), Some(_), _) => {
            return Err(Invalid::new("size", "send either content or size, not both").into());
        }
        (None, None, _) => {
            return Err(Invalid::new("content", "send content (inline) or size (upload)").into());
        }
    };
    idempotent(&state, &req, &auth.caller, &body, || async {
        let (file, upload) = state
            .context_files
            .create(
                &auth.caller,
                ws,
                NewContextFile {
                    name: r.name,
                    document_id: r.document_id.map(DocumentId),
                    content,
                },
            )
            .await?;
        let etag = file.etag();
        let location = format!("/api/v1/context-files/{}", file.id);
        let dto = ContextFileDto::new(file, true).with_upload(upload);
        Ok(Reply::json(StatusCode::CREATED, &dto)?
            .header("etag", etag)
            .header("location", location))
    })
    .await
}

/// One context file with its text, or a download URL for an uploaded one (≥ viewer); `ETag`.
#[utoipa::path(tag = "context files", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = ContextFileDto), (status = 404, body = Problem),
))]
#[get("/context-files/{id}")]
pub async fn get_one(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ContextFileId = parse_id(&path, "context file id")?;
    let read = state.context_files.get(&auth.caller, id).await?;
    let etag = read.file.etag();
    let mut dto = ContextFileDto::new(read.file, true);
    dto.download = read.download.map(LinkDto::from);
    Ok(with_etag(StatusCode::OK, etag, &dto))
}

/// Renames and/or replaces the text (≥ editor); needs `If-Match` with the current `ETag`.
#[utoipa::path(tag = "context files", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = UpdateContextFile, responses(
    (status = 200, body = ContextFileDto), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 412, description = "version_conflict", body = Problem), (status = 413, body = Problem),
    (status = 422, body = Problem), (status = 428, description = "precondition_required", body = Problem),
))]
#[put("/context-files/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id: ContextFileId = parse_id(&path, "context file id")?;
    let r: UpdateContextFile = json_body(&req, &body)?;
    let if_match = header_value(&req, header::IF_MATCH);
    let file = state
        .context_files
        .update(
            &auth.caller,
            id,
            ContextFilePatch {
                name: r.name,
                text: r.content,
                content_type: r.content_type,
            },
            if_match.as_deref(),
        )
        .await?;
    let etag = file.etag();
    Ok(with_etag(
        StatusCode::OK,
        etag,
        &ContextFileDto::new(file, true),
    ))
}

/// Deletes the context file and any stored object (≥ editor).
#[utoipa::path(tag = "context files", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
))]
#[delete("/context-files/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ContextFileId = parse_id(&path, "context file id")?;
    state.context_files.delete(&auth.caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Checks an uploaded context file and marks it ready (≥ editor).
#[utoipa::path(tag = "context files", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = ContextFileDto), (status = 404, body = Problem),
    (status = 409, description = "upload_missing", body = Problem), (status = 422, description = "upload_mismatch", body = Problem),
))]
#[post("/context-files/{id}/complete")]
pub async fn complete(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: ContextFileId = parse_id(&path, "context file id")?;
    let file = state.context_files.complete(&auth.caller, id).await?;
    let etag = file.etag();
    Ok(with_etag(
        StatusCode::OK,
        etag,
        &ContextFileDto::new(file, true),
    ))
}
