//! Devices and sync (SYNC.md): `POST/GET/DELETE /devices`, `GET /sync/pull`, `POST /sync/push`,
//! `GET /sync/events` (server-sent events).

pub mod dto;
pub mod pokes;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};

use mdcreator_domain::DeviceId;
use mdcreator_domain::sync::{MAX_PUSH_BYTES, Mutation, NewDevice, PullRequest};

use self::dto::{CreateDevice, DeviceDto, PullQuery, PullResponse, PushRequest, PushResponse};
use super::dto::ListOf;
use super::parse_id;
use crate::extract::{Authenticated, Reply, idempotent, json_body};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(register_device)
        .service(devices)
        .service(delete_device)
        .service(pull)
        .service(
            // A push of 500 offline edits may be far larger than an ordinary JSON body.
            web::resource("/sync/push")
                .app_data(web::PayloadConfig::new(MAX_PUSH_BYTES))
                .route(web::post().to(push)),
        )
        .service(pokes::events);
}

/// Registers a device of the caller (a desktop install, a browser profile). Honours
/// `Idempotency-Key`.
#[utoipa::path(tag = "sync", security(("bearer" = [])), request_body = CreateDevice, responses(
    (status = 201, body = DeviceDto), (status = 409, description = "too_many_devices", body = Problem), (status = 422, body = Problem),
))]
#[post("/devices")]
pub async fn register_device(
    state: web::Data<AppState>,
    auth: Authenticated,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let r: CreateDevice = json_body(&req, &body)?;
    idempotent(&state, &req, &auth.caller, &body, || async {
        let device = state
            .sync
            .register_device(
                &auth.caller,
                NewDevice {
                    name: r.name,
                    platform: r.platform,
                },
            )
            .await?;
        let location = format!("/api/v1/devices/{}", device.id);
        Ok(
            Reply::json(StatusCode::CREATED, &DeviceDto::from(device))?
                .header("location", location),
        )
    })
    .await
}

/// The caller's devices, oldest first.
#[utoipa::path(tag = "sync", security(("bearer" = [])), responses((status = 200, body = ListOf<DeviceDto>)))]
#[get("/devices")]
pub async fn devices(
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let devices = state.sync.devices(&auth.caller).await?;
    Ok(HttpResponse::Ok().json(ListOf::all(
        devices.into_iter().map(DeviceDto::from).collect(),
    )))
}

/// Forgets a device of the caller (its queued mutations can no longer be pushed).
#[utoipa::path(tag = "sync", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204), (status = 404, body = Problem),
))]
#[delete("/devices/{id}")]
pub async fn delete_device(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: DeviceId = parse_id(&path, "device id")?;
    state.sync.delete_device(&auth.caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The changes since `cursor` across the caller's workspaces: the latest state of each changed
/// entity (or a tombstone), whole workspaces for ones joined, a `workspace` tombstone for ones
/// left, and documents shared to the caller under the `shared` pseudo-workspace.
#[utoipa::path(tag = "sync", security(("bearer" = [])), params(PullQuery), responses(
    (status = 200, body = PullResponse), (status = 400, body = Problem), (status = 404, description = "device_not_found", body = Problem),
    (status = 410, description = "cursor_expired: pull again without a cursor", body = Problem),
))]
#[get("/sync/pull")]
pub async fn pull(
    state: web::Data<AppState>,
    auth: Authenticated,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: PullQuery = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", format!("bad query string: {e}")))?;
    let limit = match q.limit {
        None => None,
        Some(n) => Some(u32::try_from(n).map_err(|_| {
            ApiError::from(mdcreator_domain::values::Invalid::new(
                "limit",
                "must be between 1 and 1000",
            ))
        })?),
    };
    let device = q
        .device_id
        .as_deref()
        .map(|d| parse_id::<DeviceId>(d, "device_id"))
        .transpose()?;
    let page = state
        .sync
        .pull(
            &auth.caller,
            PullRequest {
                cursor: q.cursor,
                limit,
                device,
            },
        )
        .await?;
    Ok(HttpResponse::Ok().json(PullResponse {
        changes: page.changes.into_iter().map(Into::into).collect(),
        cursor: page.cursor,
        has_more: page.has_more,
        last_mutation_id: page.last_mutation_id,
    }))
}

/// Applies a device's queued mutations in order, each exactly once (at most 500 mutations and
/// 20 MiB per push).
#[utoipa::path(post, path = "/sync/push", tag = "sync", security(("bearer" = [])), request_body = PushRequest, responses(
    (status = 200, body = PushResponse), (status = 403, body = Problem), (status = 404, description = "device_not_found", body = Problem),
    (status = 413, description = "too_many_mutations or body_too_large", body = Problem),
))]
pub async fn push(
    state: web::Data<AppState>,
    auth: Authenticated,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let r: PushRequest = json_body(&req, &body)?;
    let mutations: Vec<Mutation> = r.mutations.into_iter().map(Into::into).collect();
    let outcome = state
        .sync
        .push(&auth.caller, DeviceId(r.device_id), mutations)
        .await?;
    Ok(HttpResponse::Ok().json(PushResponse::from(outcome)))
}
