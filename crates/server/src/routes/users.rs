//! `/users/me`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};

use mdcreator_domain::users::UserPatch;

use super::dto::{ApiTokenDto, CreateApiToken, CreatedApiToken, ListOf, PatchMe, UserDto};
use super::parse_id;
use crate::extract::{Authenticated, Reply, idempotent, json_body};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(me)
        .service(update_me)
        .service(tokens)
        .service(create_token)
        .service(revoke_token);
}

/// The caller's profile (created on the first authenticated call).
#[utoipa::path(tag = "users", security(("bearer" = [])), responses((status = 200, body = UserDto), (status = 401, body = Problem)))]
#[get("/users/me")]
pub async fn me(auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(UserDto::from(auth.user))
}

/// Changes the display name or avatar.
#[utoipa::path(tag = "users", security(("bearer" = [])), request_body = PatchMe, responses(
    (status = 200, body = UserDto), (status = 422, body = Problem),
))]
#[patch("/users/me")]
pub async fn update_me(
    state: web::Data<AppState>,
    auth: Authenticated,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let p: PatchMe = json_body(&req, &body)?;
    let patch = UserPatch {
        display_name: p.display_name,
        avatar_url: p.avatar_url,
    };
    let user = state.users.update_me(&auth.caller, patch).await?;
    Ok(HttpResponse::Ok().json(UserDto::from(user)))
}

/// The caller's personal API tokens (never the secrets).
#[utoipa::path(tag = "users", security(("bearer" = [])), responses((status = 200, body = ListOf<ApiTokenDto>)))]
#[get("/users/me/tokens")]
pub async fn tokens(
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let items = state.api_tokens.list(&auth.caller).await?;
    Ok(HttpResponse::Ok().json(ListOf::all(
        items.into_iter().map(ApiTokenDto::from).collect(),
    )))
}

/// Creates a personal API token (`read` or `read_write`); the token is shown once. Only from a
/// signed-in session: tokens cannot create tokens.
#[utoipa::path(tag = "users", security(("bearer" = [])), request_body = CreateApiToken, responses(
    (status = 201, body = CreatedApiToken), (status = 403, description = "session_required", body = Problem), (status = 422, body = Problem),
))]
#[post("/users/me/tokens")]
pub async fn create_token(
    state: web::Data<AppState>,
    auth: Authenticated,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let r: CreateApiToken = json_body(&req, &body)?;
    idempotent(&state, &req, &auth.caller, &body, || async {
        let issued = state
            .api_tokens
            .create(&auth.caller, &r.name, &r.scope, r.expires_in_days)
            .await?;
        let t = issued.token;
        let dto = CreatedApiToken {
            id: t.id,
            name: t.name,
            scope: t.scope.as_str().to_owned(),
            token: issued.secret,
            created_at: t.created_at,
            expires_at: t.expires_at,
        };
        Ok(Reply::json(StatusCode::CREATED, &dto)?.header("cache-control", "no-store"))
    })
    .await
}

#[utoipa::path(tag = "users", security(("bearer" = [])), params(("id" = uuid::Uuid, Path)), responses(
    (status = 204), (status = 404, body = Problem),
))]
#[delete("/users/me/tokens/{id}")]
pub async fn revoke_token(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: uuid::Uuid = parse_id(&path, "token id")?;
    state.api_tokens.revoke(&auth.caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
