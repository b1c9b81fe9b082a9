//! `/workspaces`, members, ownership transfer and invitations.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};

use mdcreator_domain::invitations::NewInvitation;
use mdcreator_domain::workspaces::WorkspacePatch;
use mdcreator_domain::{InvitationId, UserId, WorkspaceId};

use super::dto::{
    CreateInvitation, CreateWorkspace, CreatedInvitation, InvitationDto, ListOf, MemberDto,
    PatchMember, PatchWorkspace, TransferOwnership, WorkspaceDto,
};
use super::parse_id;
use crate::extract::{Authenticated, Reply, idempotent, json_body};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(get_one)
        .service(update)
        .service(remove)
        .service(members)
        .service(change_role)
        .service(remove_member)
        .service(transfer)
        .service(invitations)
        .service(invite)
        .service(revoke_invitation)
        .service(accept_invitation);
}

/// The caller's workspaces, each with the caller's role.
#[utoipa::path(tag = "workspaces", security(("bearer" = [])), responses((status = 200, body = ListOf<WorkspaceDto>)))]
#[get("/workspaces")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let items = state.workspaces.list(&auth.caller).await?;
    Ok(HttpResponse::Ok().json(ListOf::all(
        items.into_iter().map(WorkspaceDto::from).collect(),
    )))
}

/// Creates a workspace; the caller becomes its owner. Honours `Idempotency-Key`.
#[utoipa::path(tag = "workspaces", security(("bearer" = [])), request_body = CreateWorkspace, responses(
    (status = 201, body = WorkspaceDto), (status = 422, body = Problem),
))]
#[post("/workspaces")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Authenticated,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let r: CreateWorkspace = json_body(&req, &body)?;
    idempotent(&state, &req, &auth.caller, &body, || async {
        let view = state.workspaces.create(&auth.caller, &r.name).await?;
        let location = format!("/api/v1/workspaces/{}", view.workspace.id);
        Ok(Reply::json(StatusCode::CREATED, &WorkspaceDto::from(view))?
            .header("location", location))
    })
    .await
}

#[utoipa::path(tag = "workspaces", security(("bearer" = [])), params(("ws" = Uuid, Path)), responses(
    (status = 200, body = WorkspaceDto), (status = 404, body = Problem),
))]
#[get("/workspaces/{ws}")]
pub async fn get_one(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path, "workspace id")?;
    let view = state.workspaces.get(&auth.caller, ws).await?;
    Ok(HttpResponse::Ok().json(WorkspaceDto::from(view)))
}

/// Renames or changes settings (≥ admin).
#[utoipa::path(tag = "workspaces", security(("bearer" = [])), params(("ws" = Uuid, Path)), request_body = PatchWorkspace, responses(
    (status = 200, body = WorkspaceDto), (status = 403, body = Problem), (status = 404, body = Problem),
))]
#[patch("/workspaces/{ws}")]
pub async fn update(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path, "workspace id")?;
    let p: PatchWorkspace = json_body(&req, &body)?;
    let patch = WorkspacePatch {
        name: p.name,
        settings: p.settings,
    };
    let view = state.workspaces.update(&auth.caller, ws, patch).await?;
    Ok(HttpResponse::Ok().json(WorkspaceDto::from(view)))
}

/// Soft-deletes the workspace (owner).
#[utoipa::path(tag = "workspaces", security(("bearer" = [])), params(("ws" = Uuid, Path)), responses(
    (status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
))]
#[delete("/workspaces/{ws}")]
pub async fn remove(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path, "workspace id")?;
    state.workspaces.delete(&auth.caller, ws).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(tag = "members", security(("bearer" = [])), params(("ws" = Uuid, Path)), responses(
    (status = 200, body = ListOf<MemberDto>), (status = 404, body = Problem),
))]
#[get("/workspaces/{ws}/members")]
pub async fn members(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path, "workspace id")?;
    let items = state.members.list(&auth.caller, ws).await?;
    Ok(HttpResponse::Ok().json(ListOf::all(
        items.into_iter().map(MemberDto::from).collect(),
    )))
}

/// Changes a member's role (≥ admin; never above your own; only owners touch owners).
#[utoipa::path(tag = "members", security(("bearer" = [])), params(("ws" = Uuid, Path), ("user" = Uuid, Path)), request_body = PatchMember, responses(
    (status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "last_owner", body = Problem),
))]
#[patch("/workspaces/{ws}/members/{user}")]
pub async fn change_role(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path.0, "workspace id")?;
    let user: UserId = parse_id(&path.1, "user id")?;
    let p: PatchMember = json_body(&req, &body)?;
    state
        .members
        .change_role(&auth.caller, ws, user, p.role)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Removes a member (≥ admin), or leaves when the user is the caller.
#[utoipa::path(tag = "members", security(("bearer" = [])), params(("ws" = Uuid, Path), ("user" = Uuid, Path)), responses(
    (status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "last_owner", body = Problem),
))]
#[delete("/workspaces/{ws}/members/{user}")]
pub async fn remove_member(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path.0, "workspace id")?;
    let user: UserId = parse_id(&path.1, "user id")?;
    state.members.remove(&auth.caller, ws, user).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Makes another member owner; the caller becomes admin (owner).
#[utoipa::path(tag = "members", security(("bearer" = [])), params(("ws" = Uuid, Path)), request_body = TransferOwnership, responses(
    (status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
))]
#[post("/workspaces/{ws}/transfer-ownership")]
pub async fn transfer(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path, "workspace id")?;
    let r: TransferOwnership = json_body(&req, &body)?;
    state
        .members
        .transfer_ownership(&auth.caller, ws, UserId(r.user_id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Open invitations (≥ admin).
#[utoipa::path(tag = "invitations", security(("bearer" = [])), params(("ws" = Uuid, Path)), responses(
    (status = 200, body = ListOf<InvitationDto>), (status = 403, body = Problem), (status = 404, body = Problem),
))]
#[get("/workspaces/{ws}/invitations")]
pub async fn invitations(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path, "workspace id")?;
    let items = state.invitations.list(&auth.caller, ws).await?;
    Ok(HttpResponse::Ok().json(ListOf::all(
        items.into_iter().map(InvitationDto::from).collect(),
    )))
}

/// Invites by e-mail (single use) or as a link (≥ admin; role ≤ yours). The token is shown once.
#[utoipa::path(tag = "invitations", security(("bearer" = [])), params(("ws" = Uuid, Path)), request_body = CreateInvitation, responses(
    (status = 201, body = CreatedInvitation), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
))]
#[post("/workspaces/{ws}/invitations")]
pub async fn invite(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path, "workspace id")?;
    let r: CreateInvitation = json_body(&req, &body)?;
    idempotent(&state, &req, &auth.caller, &body, || async {
        let request = NewInvitation {
            email: r.email,
            role: r.role,
            max_uses: r.max_uses,
            expires_in_days: r.expires_in_days,
        };
        let issued = state.invitations.create(&auth.caller, ws, request).await?;
        let i = issued.invitation;
        let dto = CreatedInvitation {
            id: i.id.0,
            token: issued.token,
            role: i.role,
            email: i.email.map(|e| e.as_str().to_owned()),
            kind: i.kind.as_str().to_owned(),
            max_uses: i.max_uses,
            expires_at: i.expires_at,
        };
        Ok(Reply::json(StatusCode::CREATED, &dto)?.header("cache-control", "no-store"))
    })
    .await
}

#[utoipa::path(tag = "invitations", security(("bearer" = [])), params(("ws" = Uuid, Path), ("id" = Uuid, Path)), responses(
    (status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
))]
#[delete("/workspaces/{ws}/invitations/{id}")]
pub async fn revoke_invitation(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let ws: WorkspaceId = parse_id(&path.0, "workspace id")?;
    let id: InvitationId = parse_id(&path.1, "invitation id")?;
    state.invitations.revoke(&auth.caller, ws, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Joins the invitation's workspace (e-mail invitations only for that address).
#[utoipa::path(tag = "invitations", security(("bearer" = [])), params(("token" = String, Path)), responses(
    (status = 200, body = WorkspaceDto), (status = 403, description = "invitation_email_mismatch", body = Problem),
    (status = 404, body = Problem), (status = 410, description = "invitation_expired", body = Problem),
))]
#[post("/invitations/{token}/accept")]
pub async fn accept_invitation(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = state.invitations.accept(&auth.caller, &path).await?;
    Ok(HttpResponse::Ok().json(WorkspaceDto::from(view)))
}
