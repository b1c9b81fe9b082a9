//! `/auth/*`: signup, confirmation, login, refresh, logout, password reset.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::extract::{Authenticated, client_address, json_body};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;
use mdcreator_domain::identity::TokenSet;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(signup)
        .service(confirm)
        .service(resend_code)
        .service(login)
        .service(refresh)
        .service(logout)
        .service(forgot_password)
        .service(reset_password);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub email: String,
    pub password: String,
    pub display_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignupResponse {
    /// `true`: log in now. `false`: confirm with the code that was sent first.
    pub confirmed: bool,
    pub detail: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pub email: String,
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub email: String,
    pub code: String,
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Cognito only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Always `Bearer`.
    pub token_type: &'static str,
}

impl From<TokenSet> for TokenResponse {
    fn from(t: TokenSet) -> Self {
        Self {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            id_token: t.id_token,
            expires_in: t.expires_in,
            token_type: "Bearer",
        }
    }
}

fn no_store(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("cache-control", "no-store"))
        .json(body)
}

/// Creates an account. Without a mail sender the account is confirmed at once (and says so).
#[utoipa::path(tag = "auth", request_body = SignupRequest, responses(
    (status = 201, body = SignupResponse),
    (status = 409, description = "email_taken", body = Problem),
    (status = 422, description = "validation_failed", body = Problem),
))]
#[post("/auth/signup")]
pub async fn signup(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let r: SignupRequest = json_body(&req, &body)?;
    let outcome = state
        .auth
        .sign_up(&r.email, &r.password, &r.display_name)
        .await?;
    let detail = if outcome.confirmed {
        "account created and confirmed (no mail sender is configured); log in now"
    } else {
        "account created; confirm it with the code sent to your e-mail"
    };
    Ok(HttpResponse::Created().json(SignupResponse {
        confirmed: outcome.confirmed,
        detail: detail.into(),
    }))
}

/// Confirms an account with the e-mailed code.
#[utoipa::path(tag = "auth", request_body = ConfirmRequest, responses(
    (status = 204), (status = 400, description = "code_mismatch, code_expired", body = Problem),
))]
#[post("/auth/confirm")]
pub async fn confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let r: ConfirmRequest = json_body(&req, &body)?;
    state.auth.confirm(&r.email, &r.code).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sends a new confirmation code (always 202: no account enumeration).
#[utoipa::path(tag = "auth", request_body = EmailRequest, responses((status = 202)))]
#[post("/auth/resend-code")]
pub async fn resend_code(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let r: EmailRequest = json_body(&req, &body)?;
    state.auth.resend_code(&r.email).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Logs in with e-mail and password (10 attempts a minute per e-mail and per address).
#[utoipa::path(tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = TokenResponse),
    (status = 401, description = "invalid_credentials", body = Problem),
    (status = 403, description = "account_not_confirmed", body = Problem),
    (status = 429, description = "rate_limited", body = Problem),
))]
#[post("/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let r: LoginRequest = json_body(&req, &body)?;
    let address = client_address(&req);
    let tokens = state
        .auth
        .login(&r.email, &r.password, address.as_deref())
        .await?;
    Ok(no_store(StatusCode::OK, &TokenResponse::from(tokens)))
}

/// Exchanges a refresh token for new tokens (built-in accounts rotate the refresh token).
#[utoipa::path(tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, body = TokenResponse),
    (status = 401, description = "invalid_refresh_token", body = Problem),
))]
#[post("/auth/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let r: RefreshRequest = json_body(&req, &body)?;
    let tokens = state.auth.refresh(&r.refresh_token).await?;
    Ok(no_store(StatusCode::OK, &TokenResponse::from(tokens)))
}

/// Revokes every refresh token of the caller (global sign-out).
#[utoipa::path(tag = "auth", security(("bearer" = [])), responses((status = 204), (status = 401, body = Problem)))]
#[post("/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    state.auth.logout(&auth.token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Starts a password reset (always 202: no account enumeration).
#[utoipa::path(tag = "auth", request_body = EmailRequest, responses((status = 202), (status = 429, body = Problem)))]
#[post("/auth/password/forgot")]
pub async fn forgot_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let r: EmailRequest = json_body(&req, &body)?;
    state.auth.forgot_password(&r.email).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Sets a new password with the e-mailed code; signs out every session.
#[utoipa::path(tag = "auth", request_body = ResetRequest, responses(
    (status = 204), (status = 400, description = "code_mismatch, code_expired", body = Problem),
))]
#[post("/auth/password/reset")]
pub async fn reset_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let r: ResetRequest = json_body(&req, &body)?;
    state
        .auth
        .reset_password(&r.email, &r.code, &r.new_password)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
