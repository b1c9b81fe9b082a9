//! Operations endpoints: liveness, readiness, the built-in issuer's JWKS.

use actix_web::{HttpResponse, get, web};
use serde_json::json;

use crate::problem::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz).service(jwks);
}

/// The process is up.
#[utoipa::path(tag = "operations", responses((status = 200, description = "up")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The database is reachable and migrated (and Redis, when configured).
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "ready"),
    (status = 503, description = "not ready", body = crate::problem::Problem),
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.readiness.check().await {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({ "status": "ready" }))),
        Err(reason) => {
            Err(ApiError::unavailable(anyhow::anyhow!(reason.clone())).with("reason", reason))
        }
    }
}

/// The built-in token issuer's public keys (built-in accounts only).
#[utoipa::path(tag = "auth", responses(
    (status = 200, description = "JWKS"),
    (status = 404, description = "another issuer is in charge", body = crate::problem::Problem),
))]
#[get("/.well-known/jwks.json")]
pub async fn jwks(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let keys = state.keys.as_ref().ok_or_else(|| {
        ApiError::not_found("not_found", "tokens are issued by an external provider")
    })?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=300"))
        .json(keys.jwks()))
}
