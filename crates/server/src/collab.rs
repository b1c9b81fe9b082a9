//! Collaboration over HTTP: the WebSocket endpoint in front of the collaboration hub, single-use
//! connection tickets, and the presence list. A socket runs inside its response body, on its
//! connection's task (see [`socket`]).
//!
//! A live socket loses its access as soon as the workspace says so: every socket is registered
//! with the [`AccessWatch`], which re-checks a workspace's sockets when that workspace is poked
//! (membership and role changes are commits, and commits poke), and each socket re-checks itself
//! every `recheck_every` as a backstop (a lost poke, a revoked API token).
//!
//! What losing access means, per socket: a user removed from the workspace (or from the
//! document: trashed, grant withdrawn) is closed with 4403; a writer demoted to a role that may
//! not edit (commenter, viewer) is closed with 4403 too, not silently turned read-only, since
//! the client would go on typing into a document that drops its edits (y-websocket reconnects,
//! and the new socket is read-only); a read-only socket stays open when its user keeps read
//! access (a commenter demoted to viewer, an editor promoted: the new rights apply from the next
//! socket).

mod access_watch;
mod socket;

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_http::ws::Message;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use mdcreator_collab::{Close, CloseCode, Connection, Hub, JoinError, Outbound, Peer};
use mdcreator_domain::collab::tickets::{self, TICKET_TTL, Ticket, TicketError, TicketStore};
use mdcreator_domain::collab::{CollabError, CollabService, LiveAccess};
use mdcreator_domain::identity::AuthError;
use mdcreator_domain::{Caller, DocumentId};

pub use self::access_watch::AccessWatch;
use self::socket::{Inbound, Incoming, Outgoing, SocketBody};
use crate::extract::Authenticated;
use crate::problem::ApiError;
use crate::routes::parse_id;
use crate::state::AppState;

/// What the collaboration endpoints need, kept apart from the REST services.
pub struct CollabState {
    pub hub: Hub,
    pub service: Arc<CollabService>,
    /// In Redis when instances share one, so any instance takes any instance's tickets.
    pub tickets: Arc<dyn TicketStore>,
    /// Closes sockets whose user lost access, when their workspace is poked.
    pub watch: AccessWatch,
    pub allowed_origins: Vec<String>,
    /// Tokens, membership and roles of live sockets are checked again this often.
    pub recheck_every: Duration,
}

impl CollabState {
    /// The hub over the store, the fan-out, presence and tickets chosen at startup.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        settings: &crate::Settings,
        db: Arc<mdcreator_sql::SqlStore>,
        access: mdcreator_domain::access::Access,
        presence: Arc<dyn mdcreator_domain::presence::Presence>,
        fanout: Arc<dyn mdcreator_domain::fanout::Fanout>,
        clock: Arc<dyn mdcreator_domain::Clock>,
        limits: mdcreator_domain::values::Limits,
        tickets: Arc<dyn TicketStore>,
        // The unit of work REST writes use (the poking one): collaboration saves poke sync
        // clients like every other write.
        uow: Arc<dyn mdcreator_domain::feed::UnitOfWork>,
    ) -> CollabState {
        let service = Arc::new(CollabService::new(
            db.clone(),
            access,
            uow,
            presence,
            clock,
            limits,
        ));
        let hub_settings = mdcreator_collab::HubSettings {
            debounce: Duration::from_secs(settings.collab_debounce_secs),
            max_message_bytes: settings.collab_max_message_bytes,
            messages_per_sec: settings.collab_messages_per_sec,
            message_burst: settings.collab_message_burst,
            // Without Redis this is the only instance: rooms need no fan-out.
            shared: settings
                .redis_url
                .as_deref()
                .is_some_and(|u| !u.trim().is_empty()),
            ..mdcreator_collab::HubSettings::default()
        };
        CollabState {
            hub: Hub::new(db, service.clone(), fanout.clone(), hub_settings),
            watch: AccessWatch::new(fanout, service.clone()),
            service,
            tickets,
            allowed_origins: settings.allowed_origins(),
            recheck_every: Duration::from_secs(settings.collab_recheck_secs.max(1)),
        }
    }
}

/// SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Routes outside `/api/v1`: the WebSocket endpoint in both shapes clients use.
pub fn configure_ws(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws/documents/{id}", web::get().to(socket))
        .route("/ws/documents/{id}/{room}", web::get().to(socket));
}

/// Routes inside `/api/v1`.
pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.service(create_ticket).service(document_presence);
}

// ---- tickets ------------------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
pub struct TicketDto {
    pub ticket: String,
    pub expires_in: u64,
}

/// A single-use ticket for `GET /ws/documents/{id}?ticket=…` (≥ viewer), valid 60 s.
#[utoipa::path(tag = "collaboration", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = TicketDto), (status = 404, body = crate::problem::Problem),
))]
#[post("/documents/{id}/ws-ticket")]
pub async fn create_ticket(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let document: DocumentId = parse_id(&path, "document id")?;
    state
        .collab
        .service
        .join(&auth.caller, document)
        .await
        .map_err(collab_error)?;
    let ticket = Ticket {
        document,
        caller: auth.caller,
        display_name: auth.user.display_name.clone(),
        token_expires_at: jwt_expiry(&auth.token),
        token: auth.token,
    };
    let id = tickets::issue(state.collab.tickets.as_ref(), ticket)
        .await
        .map_err(|TicketError::Unavailable(e)| ApiError::unavailable(e))?;
    Ok(HttpResponse::Ok().json(TicketDto {
        ticket: id,
        expires_in: TICKET_TTL.as_secs(),
    }))
}

// ---- presence -----------------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
pub struct PresentUserDto {
    pub user_id: uuid::Uuid,
    pub display_name: String,
    pub since: DateTime<Utc>,
    pub connections: usize,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PresenceDto {
    pub items: Vec<PresentUserDto>,
}

/// Users connected to the document live, on any instance (≥ viewer).
#[utoipa::path(tag = "collaboration", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = PresenceDto), (status = 404, body = crate::problem::Problem),
))]
#[get("/documents/{id}/presence")]
pub async fn document_presence(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let document: DocumentId = parse_id(&path, "document id")?;
    let users = state
        .collab
        .service
        .presence(&auth.caller, document)
        .await
        .map_err(collab_error)?;
    Ok(HttpResponse::Ok().json(PresenceDto {
        items: users
            .into_iter()
            .map(|u| PresentUserDto {
                user_id: u.user_id.0,
                display_name: u.display_name,
                since: u.since,
                connections: u.connections,
            })
            .collect(),
    }))
}

fn collab_error(e: CollabError) -> ApiError {
    match e {
        CollabError::NotFound => ApiError::not_found("document_not_found", "document not found"),
        CollabError::Forbidden => ApiError::forbidden(),
        CollabError::Store(e) => e.into(),
    }
}

// ---- the socket ---------------------------------------------------------------------------

/// Ping every 30 s; a client silent on pongs for 60 s is gone.
const PING_EVERY: Duration = Duration::from_secs(30);
/// Queued messages sent in one turn of a socket's loop at most (its other duties wait meanwhile).
const OUTBOUND_BATCH: usize = 64;
const PONG_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize, Default)]
struct SocketQuery {
    token: Option<String>,
    ticket: Option<String>,
}

/// The upgrade is always accepted; refusals are close codes (browsers cannot read the status of
/// a failed upgrade, but they can read a close code). The socket then lives in the response
/// body (see the `socket` module).
async fn socket(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
    path: web::Path<Vec<String>>,
) -> Result<HttpResponse, actix_web::Error> {
    let mut response = actix_http::ws::handshake(req.head())?;
    let max = state.collab.hub.settings().max_message_bytes;
    let query: SocketQuery = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let request = SocketRequest {
        segments: path.into_inner(),
        origin: req
            .headers()
            .get(header::ORIGIN)
            .map(|v| v.to_str().unwrap_or("\u{0}").to_owned()),
        bearer: crate::extract::bearer_token(&req).ok(),
        query,
    };
    let incoming = Incoming::new(body.into_inner(), max);
    let out = Rc::new(Outgoing::default());
    let driver = serve(state.into_inner(), request, incoming, out.clone());
    Ok(
        HttpResponse::from(response.message_body(SocketBody::new(driver, out))?)
            .map_into_boxed_body(),
    )
}

struct SocketRequest {
    segments: Vec<String>,
    origin: Option<String>,
    bearer: Option<String>,
    query: SocketQuery,
}

/// An authenticated, authorized socket.
struct Admitted {
    document: DocumentId,
    caller: Caller,
    display_name: String,
    /// An opaque bearer (an API token, which can be revoked) to verify again periodically.
    /// JWTs are not kept: their signature and claims cannot change, and their expiry is a timer.
    revocable_token: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    access: LiveAccess,
    /// The access watch's epoch before the access check (see `AccessWatch::register`).
    epoch: u64,
}

/// The socket's whole life, run by its response body. Admission and joining, which are short
/// and large, are boxed so that an open socket's state stays small.
async fn serve(
    state: Arc<AppState>,
    request: SocketRequest,
    mut incoming: Incoming,
    out: Rc<Outgoing>,
) {
    let admitted = match Box::pin(admit(&state, request)).await {
        Ok(a) => a,
        Err(close) => {
            tracing::info!(code = close.code.code(), reason = %close.reason, "refused a collaboration socket");
            out.close(&close);
            return;
        }
    };
    let peer = Peer {
        user_id: admitted.caller.user_id,
        display_name: admitted.display_name.clone(),
        writable: admitted.access.writable,
    };
    let connection = match Box::pin(state.collab.hub.connect(admitted.document, peer)).await {
        Ok(c) => c,
        Err(e) => {
            let code = match e {
                JoinError::ShuttingDown => CloseCode::GoingAway,
                JoinError::Unavailable => CloseCode::Internal,
            };
            out.close(&Close::new(code, e.to_string()));
            return;
        }
    };
    tracing::debug!(document = %admitted.document, user = %admitted.caller.user_id, writable = admitted.access.writable, "collaboration socket open");
    if let Some(close) = pump(&state, &admitted, connection, &mut incoming, &out).await {
        out.close(&close);
    }
}

async fn admit(state: &AppState, request: SocketRequest) -> Result<Admitted, Close> {
    let collab = &state.collab;
    let epoch = collab.watch.epoch();
    if let Some(origin) = &request.origin {
        let allowed = collab
            .allowed_origins
            .iter()
            .any(|o| o == origin.trim_end_matches('/'));
        if !allowed {
            return Err(Close::new(CloseCode::Forbidden, "origin not allowed"));
        }
    }
    let document: DocumentId = request
        .segments
        .first()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Close::new(CloseCode::NotFound, "no such document"))?;
    // y-websocket appends the room name: `/ws/documents/{id}/{id}`.
    if request
        .segments
        .get(1)
        .is_some_and(|room| room.parse::<DocumentId>().ok() != Some(document))
    {
        return Err(Close::new(
            CloseCode::NotFound,
            "the room must be the document id",
        ));
    }
    let (caller, display_name, token, expires_at) = match request.query.ticket.as_deref() {
        Some(id) => {
            let t = collab
                .tickets
                .take(id)
                .await
                .map_err(|TicketError::Unavailable(e)| {
                    tracing::warn!(error = ?e, "the ticket store is unavailable");
                    Close::new(CloseCode::Internal, "tickets unavailable")
                })?
                .filter(|t| t.document == document)
                .ok_or_else(|| {
                    Close::new(CloseCode::Unauthorized, "unknown, used or expired ticket")
                })?;
            (t.caller, t.display_name, t.token, t.token_expires_at)
        }
        None => {
            let token = request
                .query
                .token
                .or(request.bearer)
                .ok_or_else(|| Close::new(CloseCode::Unauthorized, "token missing"))?;
            let (caller, user) = state.auth.authenticate(&token).await.map_err(auth_close)?;
            let expires_at = jwt_expiry(&token);
            (caller, user.display_name, token, expires_at)
        }
    };
    if expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(Close::new(CloseCode::Unauthorized, "token expired"));
    }
    let access = collab
        .service
        .join(&caller, document)
        .await
        .map_err(|e| match e {
            CollabError::NotFound => Close::new(CloseCode::NotFound, "no such document"),
            CollabError::Forbidden => Close::new(CloseCode::Forbidden, "no access"),
            CollabError::Store(_) => Close::new(CloseCode::Internal, "storage unavailable"),
        })?;
    Ok(Admitted {
        document,
        caller,
        display_name,
        revocable_token: expires_at.is_none().then_some(token),
        expires_at,
        access,
        epoch,
    })
}

/// Moves messages both ways until one side closes. `Some(close)`: close the socket with it.
async fn pump(
    state: &AppState,
    admitted: &Admitted,
    mut connection: Connection,
    incoming: &mut Incoming,
    out: &Outgoing,
) -> Option<Close> {
    let start = Instant::now();
    let every = state.collab.recheck_every;
    let mut next_ping = start + PING_EVERY;
    let mut next_recheck = start + every;
    let expires = admitted
        .expires_at
        .map(|at| start + (at - Utc::now()).to_std().unwrap_or_default());
    let mut last_pong = start;
    let mut watched = state.collab.watch.register(
        admitted.access.workspace_id,
        admitted.caller,
        admitted.document,
        admitted.access.writable,
        admitted.epoch,
    );
    // One timer for pings, re-checks and the token's expiry: whichever is due first.
    let due = |next_ping: Instant, next_recheck: Instant| {
        let next = next_ping.min(next_recheck);
        expires.map_or(next, |e| next.min(e))
    };
    let timer = tokio::time::sleep_until(due(next_ping, next_recheck));
    tokio::pin!(timer);
    loop {
        tokio::select! {
            message = incoming.next() => match message {
                Some(Ok(Inbound::Binary(bytes))) => {
                    if let Err(close) = connection.receive(bytes) {
                        return Some(close);
                    }
                }
                Some(Ok(Inbound::Text)) => {
                    return Some(Close::new(CloseCode::BadMessage, "binary messages only"));
                }
                Some(Ok(Inbound::Ping(payload))) => out.send(Message::Pong(payload)),
                Some(Ok(Inbound::Pong)) => last_pong = Instant::now(),
                Some(Ok(Inbound::Close)) => {
                    out.send(Message::Close(None));
                    return None;
                }
                Some(Err(close)) => return Some(close),
                None => return None,
            },
            first = connection.next() => {
                // What queued meanwhile goes out in the same turn, not one message per wake-up.
                let mut next = first;
                for _ in 0..OUTBOUND_BATCH {
                    match next {
                        Some(Outbound::Binary(bytes)) => out.send(Message::Binary(bytes)),
                        Some(Outbound::Close(code, reason)) => {
                            return Some(Close::new(code, reason));
                        }
                        None => return Some(Close::new(CloseCode::TooSlow, "too slow to keep up")),
                    }
                    next = match connection.try_next() {
                        Some(n) => Some(n),
                        None => break,
                    };
                }
            }
            () = &mut timer => {
                let now = Instant::now();
                if expires.is_some_and(|e| now >= e) {
                    return Some(Close::new(CloseCode::Unauthorized, "token expired"));
                }
                if now >= next_ping {
                    if now.duration_since(last_pong) > PONG_TIMEOUT {
                        tracing::info!(document = %admitted.document, "no pong for 60 s; closing");
                        return None;
                    }
                    out.send(Message::Ping(Bytes::new()));
                    next_ping = now + PING_EVERY;
                }
                if now >= next_recheck {
                    if let Err(close) = Box::pin(recheck_access(state, admitted)).await {
                        return Some(close);
                    }
                    next_recheck = Instant::now() + every;
                }
                timer.as_mut().reset(due(next_ping, next_recheck));
            }
            close = watched.revoked() => return Some(close),
        }
        // What this turn sent is written before the next turn: a slow client holds its socket
        // back (its room drops it once its queue is full), not this socket's memory.
        out.sent().await;
    }
}

/// The token still verifies (API tokens can be revoked), the user is still a member, and a
/// writer is still allowed to write.
async fn recheck_access(state: &AppState, admitted: &Admitted) -> Result<(), Close> {
    if let Some(token) = &admitted.revocable_token {
        match state.auth.authenticate(token).await {
            Ok(_) => {}
            Err(AuthError::Token(mdcreator_domain::identity::TokenError::Unavailable(_))) => {}
            Err(e @ AuthError::Token(_)) => return Err(auth_close(e)),
            Err(_) => {}
        }
    }
    let now = state
        .collab
        .service
        .join(&admitted.caller, admitted.document)
        .await;
    match lost_access(admitted.access.writable, &now) {
        Some(close) => Err(close),
        None => Ok(()),
    }
}

/// Whether a socket opened with `writable` rights must close, given what
/// [`CollabService::join`] says now (see the module docs). Storage trouble closes nothing.
fn lost_access(writable: bool, now: &Result<LiveAccess, CollabError>) -> Option<Close> {
    match now {
        Ok(access) if writable && !access.writable => Some(Close::new(
            CloseCode::Forbidden,
            "no longer allowed to edit",
        )),
        Ok(_) => None,
        Err(CollabError::NotFound | CollabError::Forbidden) => {
            Some(Close::new(CloseCode::Forbidden, "access revoked"))
        }
        Err(CollabError::Store(_)) => None,
    }
}

fn auth_close(e: AuthError) -> Close {
    match e {
        AuthError::Token(mdcreator_domain::identity::TokenError::Unavailable(_)) => {
            Close::new(CloseCode::Internal, "token keys unavailable")
        }
        AuthError::Token(t) => Close::new(CloseCode::Unauthorized, t.code()),
        _ => Close::new(CloseCode::Unauthorized, "authentication failed"),
    }
}

/// The `exp` of a JWT (already verified by the caller); `None` for opaque API tokens.
fn jwt_expiry(token: &str) -> Option<DateTime<Utc>> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    DateTime::from_timestamp(claims.get("exp")?.as_i64()?, 0)
}

#[cfg(test)]
mod tests {
    use mdcreator_domain::{Role, StoreError, WorkspaceId};

    use super::*;

    fn now(role: Role, writable: bool) -> Result<LiveAccess, CollabError> {
        Ok(LiveAccess {
            workspace_id: WorkspaceId::new(),
            role,
            writable,
        })
    }

    #[test]
    fn which_sockets_lose_access() {
        let code = |c: Option<Close>| c.map(|c| c.code);
        // Removed (or the document is gone): closed, writer or not.
        for writable in [true, false] {
            for gone in [CollabError::NotFound, CollabError::Forbidden] {
                assert_eq!(
                    code(lost_access(writable, &Err(gone))),
                    Some(CloseCode::Forbidden)
                );
            }
        }
        // A writer demoted below editing is closed; one still editing stays.
        assert_eq!(
            code(lost_access(true, &now(Role::Commenter, false))),
            Some(CloseCode::Forbidden)
        );
        assert_eq!(code(lost_access(true, &now(Role::Editor, true))), None);
        // A read-only socket stays while its user can read, promoted or demoted.
        assert_eq!(code(lost_access(false, &now(Role::Viewer, false))), None);
        assert_eq!(code(lost_access(false, &now(Role::Admin, true))), None);
        // Storage trouble closes nothing: the next check decides.
        let down = Err(CollabError::Store(StoreError::Unavailable(
            anyhow::anyhow!("down"),
        )));
        assert_eq!(code(lost_access(true, &down)), None);
    }
}
