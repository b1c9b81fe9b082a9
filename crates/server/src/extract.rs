//! Request plumbing shared by handlers: the authenticated caller, JSON bodies, replies, and
//! `Idempotency-Key`.

use std::future::Future;

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use chrono::Duration;
use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use mdcreator_domain::Caller;
use mdcreator_domain::idempotency::{Claim, KEY_LIFETIME_HOURS, StoredResponse};
use mdcreator_domain::identity::TokenError;
use mdcreator_domain::users::User;

use crate::problem::{ApiError, body_error};
use crate::state::AppState;

/// The caller behind a valid bearer token (provisioned on first sight), rate-limited per user.
pub struct Authenticated {
    pub caller: Caller,
    pub user: User,
    pub token: String,
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no app state")))?;
            let token = token?;
            let (caller, user) = state.auth.authenticate(&token).await?;
            state
                .limiter
                .hit(
                    &format!("user:{}", caller.user_id),
                    state.requests_per_minute,
                    60,
                )
                .await
                .map_err(|l| ApiError::too_many_requests(l.retry_after_secs))?;
            tracing::Span::current().record("user_id", tracing::field::display(caller.user_id));
            Ok(Authenticated {
                caller,
                user,
                token,
            })
        })
    }
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(TokenError::Missing)?
        .to_str()
        .map_err(|_| TokenError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(TokenError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(TokenError::Malformed.into());
    }
    Ok(token.trim().to_owned())
}

/// Parses a JSON body, refusing other content types and unknown fields (the DTOs deny them).
pub fn json_body<T: DeserializeOwned>(req: &HttpRequest, body: &[u8]) -> Result<T, ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ));
    }
    let value = serde_json::from_slice(body).map_err(|e| body_error(&e))?;
    // Every request body is a JSON object; serde would also take a struct as an array of its
    // fields in order, which is not a shape the API accepts.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object",
        ));
    }
    Ok(value)
}

/// The value of an `If-Match` / `If-None-Match` header.
pub fn header_value(req: &HttpRequest, name: header::HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The client address for per-address limits (the ALB's `X-Forwarded-For` first hop is not
/// trusted blindly: actix's `realip_remote_addr` takes the header only as given).
pub fn client_address(req: &HttpRequest) -> Option<String> {
    req.connection_info()
        .realip_remote_addr()
        .map(str::to_owned)
}

/// A response built by a handler, storable for idempotent replays.
pub struct Reply {
    status: StatusCode,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Self, ApiError> {
        let body = serde_json::to_vec(value).map_err(|e| ApiError::internal(e.into()))?;
        Ok(Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        })
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn into_response(self, replayed: bool) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        for (name, value) in self.headers {
            response.append_header((name, value));
        }
        if replayed {
            response.insert_header(("idempotent-replayed", "true"));
        }
        response.body(self.body)
    }

    fn stored(&self) -> StoredResponse {
        StoredResponse {
            status: self.status.as_u16(),
            headers: self.headers.clone(),
            body: self.body.clone(),
        }
    }
}

impl From<Reply> for HttpResponse {
    fn from(reply: Reply) -> Self {
        reply.into_response(false)
    }
}

/// Runs a create at most once per `Idempotency-Key` (per user, 24 h): a retry with the same key
/// and the same request gets the first response again, and nothing new is created.
pub async fn idempotent<F, Fut>(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    body: &[u8],
    run: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Reply, ApiError>>,
{
    let Some(key) = header_value(req, header::HeaderName::from_static("idempotency-key")) else {
        return run().await.map(HttpResponse::from);
    };
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    let mut hasher = Sha256::new();
    hasher.update(req.method().as_str());
    hasher.update(b" ");
    hasher.update(req.path());
    hasher.update(b"\n");
    hasher.update(body);
    let request_hash = hex::encode(hasher.finalize());
    let now = state.clock.now();
    let claim = state
        .idempotency
        .claim(
            caller.user_id,
            &key,
            &request_hash,
            now,
            now + Duration::hours(KEY_LIFETIME_HOURS),
        )
        .await?;
    match claim {
        Claim::Existing {
            request_hash: theirs,
            ..
        } if theirs != request_hash => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request",
        )),
        Claim::Existing { response: None, .. } => {
            let mut e = ApiError::conflict(
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still running",
            );
            e = e.with("retry_after", 1);
            Err(e)
        }
        Claim::Existing {
            response: Some(stored),
            ..
        } => {
            let reply = Reply {
                status: StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
                headers: stored.headers,
                body: stored.body,
            };
            Ok(reply.into_response(true))
        }
        Claim::Claimed => match run().await {
            Ok(reply) => {
                if let Err(e) = state
                    .idempotency
                    .complete(caller.user_id, &key, &reply.stored())
                    .await
                {
                    // The create happened; failing now would invite a duplicate retry.
                    tracing::error!(error = ?e, "could not store an idempotent response");
                }
                Ok(reply.into_response(false))
            }
            Err(error) => {
                if let Err(e) = state.idempotency.release(caller.user_id, &key).await {
                    tracing::warn!(error = ?e, "could not release an idempotency key");
                }
                Err(error)
            }
        },
    }
}
