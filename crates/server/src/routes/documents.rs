//! Documents and versions.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use mdcreator_domain::documents::{
    Document, DocumentPatch, DocumentSort, FolderFilter, ListDocuments, NewDocument,
};
use mdcreator_domain::pagination::Limit;
use mdcreator_domain::{DocumentId, FolderId, WorkspaceId};

use super::dto::{
    ContentBody, CreateDocument, DiffDto, DocumentDto, DocumentSummaryDto, ListOf, PatchDocument,
    VersionDto, VersionSummaryDto,
};
use super::parse_id;
use crate::extract::{Authenticated, Reply, header_value, idempotent, json_body};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig, max_document_bytes: usize) {
    // Markdown bodies may be larger than JSON ones; only this route gets the document limit.
    cfg.service(
        web::resource("/documents/{id}/content")
            .app_data(web::PayloadConfig::new(max_document_bytes + 64 * 1024))
            .route(web::get().to(get_content))
            .route(web::put().to(put_content)),
    )
    .service(list)
    .service(create)
    .service(get_one)
    .service(update)
    .service(remove)
    .service(restore)
    .service(duplicate)
    .service(versions)
    .service(version)
    .service(diff)
    .service(restore_version);
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// A folder id, or `root` for documents outside any folder.
    pub folder_id: Option<String>,
    pub updated_since: Option<DateTime<Utc>>,
    /// `true` lists the trash.
    pub trashed: Option<bool>,
    /// `updated_at` (default), `created_at` or `title`.
    pub sort: Option<String>,
    /// `asc` or `desc`.
    pub order: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// `true` deletes a trashed document for good (≥ admin).
    pub permanent: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// The version to diff against; default the one before.
    pub against: Option<i64>,
}

fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", format!("bad query string: {e}")))
}

fn with_etag(status: StatusCode, document: Document) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::ETAG, document.etag()))
        .json(DocumentDto::from(document))
}

/// Documents of a workspace, newest first by default, without their content.
#[utoipa::path(tag = "documents", security(("bearer" = [])), params(("ws" = Uuid, Path), ListQuery), responses(
    (status = 200, body = ListOf<DocumentSummaryDto>), (status = 400, body = Problem), (status = 404, body = Problem),
))]
#[get("/workspaces/{ws}/documents")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path, "workspace id")?;
    let q: ListQuery = query(&req)?;
    let folder = match q.folder_id.as_deref() {
        None => None,
        Some("root") => Some(FolderFilter::Root),
        Some(id) => Some(FolderFilter::In(parse_id::<FolderId>(id, "folder_id")?)),
    };
    let sort = match q.sort.as_deref() {
        None => None,
        Some("updated_at") => Some(DocumentSort::UpdatedAt),
        Some("created_at") => Some(DocumentSort::CreatedAt),
        Some("title") => Some(DocumentSort::Title),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "sort must be updated_at, created_at or title",
            ));
        }
    };
    let descending = match q.order.as_deref() {
        None => None,
        Some("asc") => Some(false),
        Some("desc") => Some(true),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "order must be asc or desc",
            ));
        }
    };
    let params = ListDocuments {
        folder,
        updated_since: q.updated_since,
        trashed: q.trashed.unwrap_or(false),
        sort,
        descending,
        limit: Limit::parse(q.limit)?,
        cursor: q.cursor,
    };
    let page = state.documents.list(&auth.caller, ws, params).await?;
    Ok(HttpResponse::Ok().json(ListOf::from_page(page, DocumentSummaryDto::from)))
}

/// Creates a document (≥ editor). Honours `Idempotency-Key`; a client-chosen `id` makes replays safe too.
#[utoipa::path(tag = "documents", security(("bearer" = [])), params(("ws" = Uuid, Path)), request_body = CreateDocument, responses(
    (status = 201, body = DocumentDto), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, description = "document_exists", body = Problem), (status = 413, body = Problem), (status = 422, body = Problem),
))]
#[post("/workspaces/{ws}/documents")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path, "workspace id")?;
    let r: CreateDocument = json_body(&req, &body)?;
    idempotent(&state, &req, &auth.caller, &body, || async {
        let request = NewDocument {
            id: r.id.map(DocumentId),
            title: r.title,
            content: r.content,
            folder_id: r.folder_id.map(FolderId),
        };
        let document = state.documents.create(&auth.caller, ws, request).await?;
        let etag = document.etag();
        let location = format!("/api/v1/documents/{}", document.id);
        Ok(
            Reply::json(StatusCode::CREATED, &DocumentDto::from(document))?
                .header("etag", etag)
                .header("location", location),
        )
    })
    .await
}

/// A document with its content; `ETag` header.
#[utoipa::path(tag = "documents", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = DocumentDto), (status = 404, body = Problem),
))]
#[get("/documents/{id}")]
pub async fn get_one(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: DocumentId = parse_id(&path, "document id")?;
    let document = state.documents.get(&auth.caller, id).await?;
    Ok(with_etag(StatusCode::OK, document))
}

/// The Markdown alone (`text/markdown`); honours `If-None-Match`.
#[utoipa::path(get, path = "/api/v1/documents/{id}/content", tag = "documents", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, content_type = "text/markdown", body = String), (status = 304), (status = 404, body = Problem),
))]
pub async fn get_content(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id: DocumentId = parse_id(&path, "document id")?;
    let document = state.documents.get(&auth.caller, id).await?;
    let etag = document.etag();
    let not_modified = header_value(&req, header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if not_modified {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag))
        .content_type("text/markdown; charset=utf-8")
        .body(document.content))
}

/// Replaces the Markdown (`text/markdown`, or JSON `{content}`); needs `If-Match`.
#[utoipa::path(put, path = "/api/v1/documents/{id}/content", tag = "documents", security(("bearer" = [])), params(("id" = Uuid, Path)),
    request_body(content = String, content_type = "text/markdown"), responses(
    (status = 200, body = DocumentDto), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 412, description = "version_conflict (with current_version, current_etag)", body = Problem),
    (status = 413, body = Problem), (status = 415, body = Problem), (status = 428, description = "precondition_required", body = Problem),
))]
pub async fn put_content(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id: DocumentId = parse_id(&path, "document id")?;
    let content_type = header_value(&req, header::CONTENT_TYPE).unwrap_or_default();
    let mime: Option<mime::Mime> = content_type.parse().ok();
    let content = match mime.as_ref().map(|m| (m.type_(), m.subtype())) {
        Some((mime::TEXT, sub)) if sub == "markdown" || sub == mime::PLAIN => {
            String::from_utf8(body.to_vec()).map_err(|e| {
                ApiError::bad_request(
                    "invalid_utf8",
                    format!(
                        "the body is not UTF-8 (byte {})",
                        e.utf8_error().valid_up_to()
                    ),
                )
            })?
        }
        // JSON bodies carry a whole document here, so they get the document limit too.
        Some((mime::APPLICATION, mime::JSON)) => json_body::<ContentBody>(&req, &body)?.content,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send text/markdown, or application/json {\"content\": …}",
            ));
        }
    };
    let if_match = header_value(&req, header::IF_MATCH);
    let document = state
        .documents
        .put_content(&auth.caller, id, content, if_match.as_deref())
        .await?;
    Ok(with_etag(StatusCode::OK, document))
}

/// Renames (needs `If-Match`), moves or reorders a document.
#[utoipa::path(tag = "documents", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = PatchDocument, responses(
    (status = 200, body = DocumentDto), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 412, body = Problem), (status = 422, body = Problem), (status = 428, body = Problem),
))]
#[patch("/documents/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id: DocumentId = parse_id(&path, "document id")?;
    let p: PatchDocument = json_body(&req, &body)?;
    let patch = DocumentPatch {
        title: p.title,
        folder_id: p.folder_id.map(|o| o.map(FolderId)),
        position: p.position,
    };
    let if_match = header_value(&req, header::IF_MATCH);
    let document = state
        .documents
        .update(&auth.caller, id, patch, if_match.as_deref())
        .await?;
    Ok(with_etag(StatusCode::OK, document))
}

/// Moves the document to the trash, or with `?permanent=true` deletes a trashed one for good.
#[utoipa::path(tag = "documents", security(("bearer" = [])), params(("id" = Uuid, Path), DeleteQuery), responses(
    (status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "not_in_trash", body = Problem),
))]
#[delete("/documents/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id: DocumentId = parse_id(&path, "document id")?;
    let q: DeleteQuery = query(&req)?;
    if q.permanent.unwrap_or(false) {
        state.documents.delete_permanently(&auth.caller, id).await?;
    } else {
        state.documents.trash(&auth.caller, id).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Takes the document out of the trash (≥ editor).
#[utoipa::path(tag = "documents", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = DocumentDto), (status = 403, body = Problem), (status = 404, body = Problem),
))]
#[post("/documents/{id}/restore")]
pub async fn restore(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: DocumentId = parse_id(&path, "document id")?;
    let document = state.documents.restore(&auth.caller, id).await?;
    Ok(with_etag(StatusCode::OK, document))
}

/// Copies the document next to it (≥ editor). Honours `Idempotency-Key`.
#[utoipa::path(tag = "documents", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 201, body = DocumentDto), (status = 403, body = Problem), (status = 404, body = Problem),
))]
#[post("/documents/{id}/duplicate")]
pub async fn duplicate(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id: DocumentId = parse_id(&path, "document id")?;
    idempotent(&state, &req, &auth.caller, b"", || async {
        let copy = state.documents.duplicate(&auth.caller, id).await?;
        let etag = copy.etag();
        Ok(Reply::json(StatusCode::CREATED, &DocumentDto::from(copy))?.header("etag", etag))
    })
    .await
}

/// The version history, newest first.
#[utoipa::path(tag = "versions", security(("bearer" = [])), params(("id" = Uuid, Path), PageQuery), responses(
    (status = 200, body = ListOf<VersionSummaryDto>), (status = 404, body = Problem),
))]
#[get("/documents/{id}/versions")]
pub async fn versions(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id: DocumentId = parse_id(&path, "document id")?;
    let q: PageQuery = query(&req)?;
    let page = state
        .documents
        .versions(
            &auth.caller,
            id,
            Limit::parse(q.limit)?,
            q.cursor.as_deref(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(ListOf::from_page(page, VersionSummaryDto::from)))
}

fn version_number(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
        ApiError::bad_request("invalid_version", "the version must be a positive integer")
    })
}

#[utoipa::path(tag = "versions", security(("bearer" = [])), params(("id" = Uuid, Path), ("n" = i64, Path)), responses(
    (status = 200, body = VersionDto), (status = 404, body = Problem),
))]
#[get("/documents/{id}/versions/{n}")]
pub async fn version(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id: DocumentId = parse_id(&path.0, "document id")?;
    let n = version_number(&path.1)?;
    let v = state.documents.version(&auth.caller, id, n).await?;
    Ok(HttpResponse::Ok().json(VersionDto::from(v)))
}

/// A unified diff from `against` (default n−1) to version n.
#[utoipa::path(tag = "versions", security(("bearer" = [])), params(("id" = Uuid, Path), ("n" = i64, Path), DiffQuery), responses(
    (status = 200, body = DiffDto), (status = 404, body = Problem),
))]
#[get("/documents/{id}/versions/{n}/diff")]
pub async fn diff(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id: DocumentId = parse_id(&path.0, "document id")?;
    let n = version_number(&path.1)?;
    let q: DiffQuery = query(&req)?;
    let d = state.documents.diff(&auth.caller, id, n, q.against).await?;
    Ok(HttpResponse::Ok().json(DiffDto {
        from_version: d.from.0,
        to_version: d.to.0,
        diff: d.unified,
    }))
}

/// Makes version n current again, as a new version (≥ editor).
#[utoipa::path(tag = "versions", security(("bearer" = [])), params(("id" = Uuid, Path), ("n" = i64, Path)), responses(
    (status = 200, body = DocumentDto), (status = 403, body = Problem), (status = 404, body = Problem),
))]
#[post("/documents/{id}/versions/{n}/restore")]
pub async fn restore_version(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id: DocumentId = parse_id(&path.0, "document id")?;
    let n = version_number(&path.1)?;
    let document = state.documents.restore_version(&auth.caller, id, n).await?;
    Ok(with_etag(StatusCode::OK, document))
}
