//! `/users/me`.

use actix_web::{HttpRequest, HttpResponse, get, patch, web};

use mdcreator_domain::users::UserPatch;

use super::dto::{PatchMe, UserDto};
use crate::extract::{Authenticated, json_body};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(me).service(update_me);
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
