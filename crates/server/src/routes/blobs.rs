//! `PUT`/`GET /api/v1/blobs/{signed}`: the embedded blob store's own presigned URLs.
//!
//! No bearer token: the signature in the path is the authorisation, like an S3 presigned URL.
//! Mounted only when the server runs on [`FsBlobStore`]; with S3 these paths are 404.

use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;

use mdcreator_blobs_local::{FsBlobStore, LinkError, ReceiveError};
use mdcreator_domain::blobs::content_disposition;

use crate::extract::header_value;
use crate::problem::{ApiError, Problem};

/// The embedded store, shared with the attachment services.
#[derive(Clone)]
pub struct LocalBlobs(pub Arc<FsBlobStore>);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/blobs/{signed}")
            .route(web::put().to(upload))
            .route(web::get().to(download)),
    );
}

/// Stores an upload: exactly the signed size, with the signed `Content-Type`.
#[utoipa::path(put, path = "/api/v1/blobs/{signed}", tag = "attachments",
    params(("signed" = String, Path, description = "the signed token of an upload URL")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses(
    (status = 200, description = "stored"), (status = 400, body = Problem), (status = 403, description = "invalid_signature, link_expired", body = Problem),
    (status = 413, description = "upload_too_large", body = Problem), (status = 415, description = "content_type_mismatch", body = Problem),
))]
pub async fn upload(
    store: Option<web::Data<LocalBlobs>>,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let store = store.ok_or_else(not_served)?;
    let grant = store
        .0
        .verify_upload(&path, Utc::now())
        .map_err(link_error)?;
    let content_type = header_value(&req, header::CONTENT_TYPE);
    let content_length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    store
        .0
        .receive(&grant, content_type.as_deref(), content_length, body)
        .await
        .map_err(receive_error)?;
    Ok(HttpResponse::Ok().finish())
}

/// Sends a stored object as an attachment download.
#[utoipa::path(get, path = "/api/v1/blobs/{signed}", tag = "attachments",
    params(("signed" = String, Path, description = "the signed token of a download URL")), responses(
    (status = 200, content_type = "application/octet-stream", body = Vec<u8>),
    (status = 403, description = "invalid_signature, link_expired", body = Problem), (status = 404, body = Problem),
))]
pub async fn download(
    store: Option<web::Data<LocalBlobs>>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let store = store.ok_or_else(not_served)?;
    let grant = store
        .0
        .verify_download(&path, Utc::now())
        .map_err(link_error)?;
    let object = store
        .0
        .open_download(&grant.key)
        .await
        .map_err(|e| ApiError::internal(e.into()))?
        .ok_or_else(|| ApiError::not_found("blob_not_found", "the file is gone"))?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            object
                .content_type
                .unwrap_or_else(|| "application/octet-stream".to_owned()),
        ))
        .insert_header((
            header::CONTENT_DISPOSITION,
            content_disposition(&grant.filename),
        ))
        // Served from the API's own origin: never rendered, never sniffed, never cached by
        // shared caches.
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "sandbox; default-src 'none'",
        ))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .no_chunking(object.size)
        .streaming(object.body))
}

fn not_served() -> ApiError {
    ApiError::not_found("route_not_found", "no such endpoint")
}

fn link_error(e: LinkError) -> ApiError {
    match e {
        LinkError::Invalid => {
            ApiError::new(StatusCode::FORBIDDEN, "invalid_signature", e.to_string())
        }
        LinkError::Expired => ApiError::new(StatusCode::FORBIDDEN, "link_expired", e.to_string()),
    }
}

fn receive_error(e: ReceiveError) -> ApiError {
    match e {
        ReceiveError::TooLarge { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload_too_large",
            e.to_string(),
        )
        .with("limit", limit),
        ReceiveError::Incomplete { .. } => {
            ApiError::bad_request("upload_incomplete", e.to_string())
        }
        ReceiveError::ContentTypeMismatch { .. } => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type_mismatch",
            e.to_string(),
        ),
        ReceiveError::Body(_) => ApiError::bad_request("malformed_body", e.to_string()),
        ReceiveError::Io(io) => ApiError::internal(io.into()),
    }
}
