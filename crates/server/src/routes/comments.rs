//! Comments (threads, replies, edit, delete, resolve/reopen) and the caller's notifications.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use mdcreator_domain::comments::{Comment, NewComment, Thread};
use mdcreator_domain::notifications::{Notification, NotificationKind};
use mdcreator_domain::pagination::Limit;
use mdcreator_domain::{CommentId, DocumentId, NotificationId};

use super::attachments::query;
use super::dto::ListOf;
use super::parse_id;
use crate::extract::{Authenticated, Reply, idempotent, json_body};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(edit)
        .service(remove)
        .service(resolve)
        .service(reopen)
        .service(notifications)
        .service(read_all)
        .service(read);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateComment {
    /// Markdown, at most 64 KiB. `@[<user id>]` or `@email` mentions notify members who can see
    /// the document.
    pub body: String,
    /// Reply to this thread (a top-level comment of the same document).
    pub parent_id: Option<Uuid>,
    /// Where the comment points: quoted text (a string) or a Yjs relative position (an object).
    #[schema(value_type = Option<Object>)]
    pub anchor: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchComment {
    /// The new Markdown body.
    pub body: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommentDto {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub document_id: Uuid,
    /// The thread's top-level comment; `null` for a top-level comment.
    pub parent_id: Option<Uuid>,
    pub author_id: Option<Uuid>,
    /// Markdown; `null` once deleted.
    pub body: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub anchor: Option<serde_json::Value>,
    /// The users the comment mentions (and notified).
    pub mentions: Vec<Uuid>,
    pub version: i64,
    pub resolved: bool,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A deleted top-level comment is still listed while its thread has replies.
    pub deleted: bool,
}

impl From<Comment> for CommentDto {
    fn from(c: Comment) -> Self {
        let deleted = c.is_deleted();
        Self {
            id: c.id.0,
            workspace_id: c.workspace_id.0,
            document_id: c.document_id.0,
            parent_id: c.parent_id.map(|p| p.0),
            author_id: c.author_id.map(|u| u.0),
            body: (!deleted).then_some(c.body),
            anchor: c.anchor.filter(|_| !deleted),
            mentions: if deleted {
                Vec::new()
            } else {
                c.mentions.into_iter().map(|u| u.0).collect()
            },
            version: c.version.0,
            resolved: c.resolved_at.is_some(),
            resolved_at: c.resolved_at,
            resolved_by: c.resolved_by.map(|u| u.0),
            created_at: c.created_at,
            updated_at: c.updated_at,
            deleted,
        }
    }
}

/// A top-level comment with its replies, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ThreadDto {
    #[serde(flatten)]
    pub comment: CommentDto,
    pub replies: Vec<CommentDto>,
}

impl From<Thread> for ThreadDto {
    fn from(t: Thread) -> Self {
        Self {
            comment: t.root.into(),
            replies: t.replies.into_iter().map(CommentDto::from).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationDto {
    pub id: Uuid,
    /// `mention` or `reply` (a reply in a thread the user started).
    #[schema(value_type = String, example = "mention")]
    pub kind: NotificationKind,
    pub workspace_id: Uuid,
    pub document_id: Uuid,
    pub comment_id: Uuid,
    /// The thread's top-level comment.
    pub thread_id: Uuid,
    /// Who wrote the comment.
    pub actor_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

impl From<Notification> for NotificationDto {
    fn from(n: Notification) -> Self {
        Self {
            id: n.id.0,
            kind: n.kind,
            workspace_id: n.workspace_id.0,
            document_id: n.document_id.0,
            comment_id: n.comment_id.0,
            thread_id: n.thread_id.0,
            actor_id: n.actor_id.map(|u| u.0),
            created_at: n.created_at,
            read_at: n.read_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CommentsQuery {
    /// `true`: resolved threads only; `false`: open threads only; absent: all.
    pub resolved: Option<bool>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NotificationsQuery {
    /// `true`: unread ones only.
    pub unread: Option<bool>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The document's threads, each top-level comment with its replies (≥ viewer). Paginated by
/// thread; `?resolved=` filters threads.
#[utoipa::path(tag = "comments", security(("bearer" = [])), params(("id" = Uuid, Path), CommentsQuery), responses(
    (status = 200, body = ListOf<ThreadDto>), (status = 404, body = Problem),
))]
#[get("/documents/{id}/comments")]
pub async fn list(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let document: DocumentId = parse_id(&path, "document id")?;
    let q: CommentsQuery = query(&req)?;
    let page = state
        .comments
        .list(
            &auth.caller,
            document,
            q.resolved,
            Limit::parse(q.limit)?,
            q.cursor.as_deref(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(ListOf::from_page(page, ThreadDto::from)))
}

/// Comments on the document, or replies in a thread with `parent_id` (≥ commenter). Mentions
/// notify the users named who can see the document; a reply notifies the thread's author.
/// Honours `Idempotency-Key`.
#[utoipa::path(tag = "comments", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = CreateComment, responses(
    (status = 201, body = CommentDto), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, description = "document_in_trash", body = Problem),
    (status = 413, description = "comment_too_large", body = Problem), (status = 422, body = Problem),
))]
#[post("/documents/{id}/comments")]
pub async fn create(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let document: DocumentId = parse_id(&path, "document id")?;
    let r: CreateComment = json_body(&req, &body)?;
    idempotent(&state, &req, &auth.caller, &body, || async {
        let request = NewComment {
            body: r.body,
            parent_id: r.parent_id.map(CommentId),
            anchor: r.anchor,
        };
        let comment = state
            .comments
            .create(&auth.caller, document, request)
            .await?;
        let location = format!("/api/v1/comments/{}", comment.id);
        Ok(
            Reply::json(StatusCode::CREATED, &CommentDto::from(comment))?
                .header("location", location),
        )
    })
    .await
}

/// Replaces a comment's body (its author only, ≥ commenter).
#[utoipa::path(tag = "comments", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = PatchComment, responses(
    (status = 200, body = CommentDto), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, description = "concurrent_change, document_in_trash", body = Problem),
    (status = 413, description = "comment_too_large", body = Problem), (status = 422, body = Problem),
))]
#[patch("/comments/{id}")]
pub async fn edit(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let id: CommentId = parse_id(&path, "comment id")?;
    let p: PatchComment = json_body(&req, &body)?;
    let comment = state.comments.edit(&auth.caller, id, p.body).await?;
    Ok(HttpResponse::Ok().json(CommentDto::from(comment)))
}

/// Deletes a comment (its author, or ≥ admin). A deleted top-level comment stays listed, as
/// deleted, while its thread has replies.
#[utoipa::path(tag = "comments", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, description = "concurrent_change, document_in_trash", body = Problem),
))]
#[delete("/comments/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: CommentId = parse_id(&path, "comment id")?;
    state.comments.delete(&auth.caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Resolves a thread (≥ commenter; top-level comments only). Idempotent.
#[utoipa::path(tag = "comments", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = CommentDto), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, description = "concurrent_change, document_in_trash", body = Problem),
    (status = 422, description = "not_a_thread", body = Problem),
))]
#[post("/comments/{id}/resolve")]
pub async fn resolve(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_resolved(state, auth, path, true).await
}

/// Reopens a resolved thread (≥ commenter; top-level comments only). Idempotent.
#[utoipa::path(tag = "comments", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = CommentDto), (status = 403, body = Problem), (status = 404, body = Problem),
    (status = 409, description = "concurrent_change, document_in_trash", body = Problem),
    (status = 422, description = "not_a_thread", body = Problem),
))]
#[post("/comments/{id}/reopen")]
pub async fn reopen(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_resolved(state, auth, path, false).await
}

async fn set_resolved(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
    resolved: bool,
) -> Result<HttpResponse, ApiError> {
    let id: CommentId = parse_id(&path, "comment id")?;
    let comment = state
        .comments
        .set_resolved(&auth.caller, id, resolved)
        .await?;
    Ok(HttpResponse::Ok().json(CommentDto::from(comment)))
}

/// The caller's notifications, newest first; `?unread=true` for unread ones only.
#[utoipa::path(tag = "notifications", security(("bearer" = [])), params(NotificationsQuery), responses(
    (status = 200, body = ListOf<NotificationDto>),
))]
#[get("/notifications")]
pub async fn notifications(
    state: web::Data<AppState>,
    auth: Authenticated,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: NotificationsQuery = query(&req)?;
    let page = state
        .notifications
        .list(
            &auth.caller,
            q.unread.unwrap_or(false),
            Limit::parse(q.limit)?,
            q.cursor.as_deref(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(ListOf::from_page(page, NotificationDto::from)))
}

/// Marks one of the caller's notifications read (idempotent).
#[utoipa::path(tag = "notifications", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = NotificationDto), (status = 404, body = Problem),
))]
#[post("/notifications/{id}/read")]
pub async fn read(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: NotificationId = parse_id(&path, "notification id")?;
    let n = state.notifications.read(&auth.caller, id).await?;
    Ok(HttpResponse::Ok().json(NotificationDto::from(n)))
}

/// Marks every unread notification of the caller read.
#[utoipa::path(tag = "notifications", security(("bearer" = [])), responses((status = 204)))]
#[post("/notifications/read-all")]
pub async fn read_all(
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    state.notifications.read_all(&auth.caller).await?;
    Ok(HttpResponse::NoContent().finish())
}
