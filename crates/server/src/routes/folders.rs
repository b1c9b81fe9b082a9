//! Folders: the tree, create, rename/move/reorder, delete.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};

use mdcreator_domain::folders::{FolderPatch, NewFolder};
use mdcreator_domain::{FolderId, WorkspaceId};

use super::dto::{CreateFolder, FolderDto, ListOf, PatchFolder};
use super::parse_id;
use crate::extract::{Authenticated, Reply, idempotent, json_body};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(tree)
        .service(create)
        .service(update)
        .service(remove);
}

/// The folder tree (each folder with `children`).
#[utoipa::path(tag = "folders", security(("bearer" = [])), params(("ws" = Uuid, Path)), responses(
    (status = 200, body = ListOf<FolderDto>), (status = 404, body = Problem),
))]
#[get("/workspaces/{ws}/folders")]
pub async fn tree(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path, "workspace id")?;
    let nodes = state.folders.tree(&auth.caller, ws).await?;
    Ok(HttpResponse::Ok().json(ListOf::all(
        nodes.into_iter().map(FolderDto::from).collect(),
    )))
}

/// Creates a folder (≥ editor). Honours `Idempotency-Key`.
#[utoipa::path(tag = "folders", security(("bearer" = [])), params(("ws" = Uuid, Path)), request_body = CreateFolder, responses(
    (status = 201, body = FolderDto), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
))]
#[post("/workspaces/{ws}/folders")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path, "workspace id")?;
    let r: CreateFolder = json_body(&req, &body)?;
    idempotent(&state, &req, &auth.caller, &body, || async {
        let request = NewFolder {
            name: r.name,
            parent_id: r.parent_id.map(FolderId),
            position: r.position,
        };
        let folder = state.folders.create(&auth.caller, ws, request).await?;
        Reply::json(StatusCode::CREATED, &FolderDto::from(folder))
    })
    .await
}

/// Renames, moves (no cycles) or reorders a folder (≥ editor).
#[utoipa::path(tag = "folders", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = PatchFolder, responses(
    (status = 200, body = FolderDto), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, description = "folder_cycle", body = Problem), (status = 422, body = Problem),
))]
#[patch("/folders/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id: FolderId = parse_id(&path, "folder id")?;
    let p: PatchFolder = json_body(&req, &body)?;
    let patch = FolderPatch {
        name: p.name,
        parent_id: p.parent_id.map(|o| o.map(FolderId)),
        position: p.position,
    };
    let folder = state.folders.update(&auth.caller, id, patch).await?;
    Ok(HttpResponse::Ok().json(FolderDto::from(folder)))
}

/// Moves the folder, its sub-folders and their documents to the trash (≥ editor).
#[utoipa::path(tag = "folders", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
))]
#[delete("/folders/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: FolderId = parse_id(&path, "folder id")?;
    state.folders.delete(&auth.caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
