//! Comments (with their mentions) and notifications: reads, the rows ⇄ values mapping, and the
//! writes the unit of work applies for them.

use std::collections::HashMap;

use mdcreator_domain::comments::{Comment, CommentRepository, ThreadQuery};
use mdcreator_domain::feed::{CommitError, Write};
use mdcreator_domain::notifications::{Notification, NotificationKind, NotificationRepository};
use mdcreator_domain::{
    CommentId, DocumentId, NotificationId, StoreError, UserId, Version, WorkspaceId,
};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::SqlStore;
use crate::entity::{comment_mentions, comments, notifications};
use crate::error::{corrupt, store_error, write_error};

/// Ids per `IN (…)` list.
const IN_CHUNK: usize = 500;

#[async_trait::async_trait]
impl CommentRepository for SqlStore {
    async fn comment(&self, id: CommentId) -> Result<Option<Comment>, StoreError> {
        let row = comments::Entity::find_by_id(id.0)
            .one(&self.db)
            .await
            .map_err(store_error)?;
        Ok(with_mentions(&self.db, row.into_iter().collect())
            .await?
            .pop())
    }

    async fn threads(&self, query: ThreadQuery) -> Result<Vec<Comment>, StoreError> {
        use comments::Column as C;
        let reply = Alias::new("reply");
        let live_reply = Query::select()
            .expr(Expr::val(1))
            .from_as(comments::Entity, reply.clone())
            .and_where(Expr::col((reply.clone(), C::ParentId)).equals((comments::Entity, C::Id)))
            .and_where(Expr::col((reply, C::DeletedAt)).is_null())
            .to_owned();
        let mut select = comments::Entity::find()
            .filter(C::DocumentId.eq(query.document.0))
            .filter(C::ParentId.is_null())
            .filter(
                Condition::any()
                    .add(C::DeletedAt.is_null())
                    .add(Expr::exists(live_reply)),
            );
        select = match query.resolved {
            Some(true) => select.filter(C::ResolvedAt.is_not_null()),
            Some(false) => select.filter(C::ResolvedAt.is_null()),
            None => select,
        };
        if let Some(after) = query.after {
            select = select.filter(C::Id.gt(after.0));
        }
        // Ids are UUID v7: id order is creation order.
        let rows = select
            .order_by_asc(C::Id)
            .limit(u64::from(query.limit))
            .all(&self.db)
            .await
            .map_err(store_error)?;
        with_mentions(&self.db, rows).await
    }

    async fn replies(&self, roots: Vec<CommentId>) -> Result<Vec<Comment>, StoreError> {
        use comments::Column as C;
        let ids: Vec<Uuid> = roots.iter().map(|r| r.0).collect();
        let mut rows = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            rows.extend(
                comments::Entity::find()
                    .filter(C::ParentId.is_in(chunk.iter().copied()))
                    .filter(C::DeletedAt.is_null())
                    .order_by_asc(C::Id)
                    .all(&self.db)
                    .await
                    .map_err(store_error)?,
            );
        }
        rows.sort_by_key(|r| r.id);
        with_mentions(&self.db, rows).await
    }
}

#[async_trait::async_trait]
impl NotificationRepository for SqlStore {
    async fn notification(&self, id: NotificationId) -> Result<Option<Notification>, StoreError> {
        let row = notifications::Entity::find_by_id(id.0)
            .one(&self.db)
            .await
            .map_err(store_error)?;
        row.map(notification).transpose()
    }

    async fn notifications(
        &self,
        user: UserId,
        unread_only: bool,
        before: Option<NotificationId>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        use notifications::Column as C;
        let mut select = notifications::Entity::find().filter(C::UserId.eq(user.0));
        if unread_only {
            select = select.filter(C::ReadAt.is_null());
        }
        if let Some(before) = before {
            select = select.filter(C::Id.lt(before.0));
        }
        let rows = select
            .order_by_desc(C::Id)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(store_error)?;
        rows.into_iter().map(notification).collect()
    }
}

/// The comments of `workspace` with these ids, in any state, with their mentions (pull).
pub(crate) async fn comments_by_ids<C: ConnectionTrait>(
    db: &C,
    workspace: WorkspaceId,
    ids: &[Uuid],
) -> Result<Vec<Comment>, StoreError> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(IN_CHUNK) {
        rows.extend(
            comments::Entity::find()
                .filter(comments::Column::WorkspaceId.eq(workspace.0))
                .filter(comments::Column::Id.is_in(chunk.iter().copied()))
                .all(db)
                .await
                .map_err(store_error)?,
        );
    }
    with_mentions(db, rows).await
}

/// Applies a comment or notification write inside the unit of work's transaction.
pub(crate) async fn apply_comment_write(
    txn: &DatabaseTransaction,
    write: &Write,
) -> Result<(), CommitError> {
    match write {
        Write::InsertComment(c) => {
            comments::Entity::insert(comment_row(c))
                .exec_without_returning(txn)
                .await
                .map_err(|e| write_error("comments", e))?;
            insert_mentions(txn, c).await
        }
        Write::UpdateComment {
            comment: c,
            expected,
        } => {
            use comments::Column as C;
            let updated = comments::Entity::update_many()
                .col_expr(C::Body, Expr::value(c.body.clone()))
                .col_expr(C::Anchor, Expr::value(c.anchor.clone()))
                .col_expr(C::Version, Expr::value(c.version.0))
                .col_expr(C::ResolvedAt, Expr::value(c.resolved_at))
                .col_expr(C::ResolvedBy, Expr::value(c.resolved_by.map(|u| u.0)))
                .col_expr(C::UpdatedAt, Expr::value(c.updated_at))
                .col_expr(C::DeletedAt, Expr::value(c.deleted_at))
                .filter(C::Id.eq(c.id.0))
                .filter(C::Version.eq(expected.0))
                .exec(txn)
                .await
                .map_err(|e| write_error("comments", e))?;
            if updated.rows_affected == 0 {
                return Err(CommitError::Stale("comments"));
            }
            comment_mentions::Entity::delete_many()
                .filter(comment_mentions::Column::CommentId.eq(c.id.0))
                .exec(txn)
                .await
                .map_err(|e| write_error("comment_mentions", e))?;
            insert_mentions(txn, c).await
        }
        Write::InsertNotification(n) => notifications::Entity::insert(notification_row(n))
            .exec_without_returning(txn)
            .await
            .map(drop)
            .map_err(|e| write_error("notifications", e)),
        Write::ReadNotifications { user, id, at } => {
            use notifications::Column as C;
            let mut update = notifications::Entity::update_many()
                .col_expr(C::ReadAt, Expr::value(*at))
                .filter(C::UserId.eq(user.0))
                .filter(C::ReadAt.is_null());
            if let Some(id) = id {
                update = update.filter(C::Id.eq(id.0));
            }
            update
                .exec(txn)
                .await
                .map(drop)
                .map_err(|e| write_error("notifications", e))
        }
        other => Err(CommitError::Store(StoreError::Unexpected(anyhow::anyhow!(
            "not a comment write: {other:?}"
        )))),
    }
}

async fn insert_mentions(txn: &DatabaseTransaction, c: &Comment) -> Result<(), CommitError> {
    if c.mentions.is_empty() {
        return Ok(());
    }
    let rows = c.mentions.iter().map(|u| comment_mentions::ActiveModel {
        comment_id: Set(c.id.0),
        user_id: Set(u.0),
    });
    comment_mentions::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await
        .map(drop)
        .map_err(|e| write_error("comment_mentions", e))
}

/// Rows with their mentions (user-id order, as the domain keeps them).
async fn with_mentions<C: ConnectionTrait>(
    db: &C,
    rows: Vec<comments::Model>,
) -> Result<Vec<Comment>, StoreError> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut mentions: HashMap<Uuid, Vec<UserId>> = HashMap::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let found: Vec<(Uuid, Uuid)> = comment_mentions::Entity::find()
            .select_only()
            .column(comment_mentions::Column::CommentId)
            .column(comment_mentions::Column::UserId)
            .filter(comment_mentions::Column::CommentId.is_in(chunk.iter().copied()))
            .order_by_asc(comment_mentions::Column::UserId)
            .into_tuple()
            .all(db)
            .await
            .map_err(store_error)?;
        for (comment, user) in found {
            mentions.entry(comment).or_default().push(UserId(user));
        }
    }
    Ok(rows
        .into_iter()
        .map(|m| {
            let mentioned = mentions.remove(&m.id).unwrap_or_default();
            comment(m, mentioned)
        })
        .collect())
}

fn comment(m: comments::Model, mentions: Vec<UserId>) -> Comment {
    Comment {
        id: CommentId(m.id),
        workspace_id: WorkspaceId(m.workspace_id),
        document_id: DocumentId(m.document_id),
        parent_id: m.parent_id.map(CommentId),
        author_id: m.author_id.map(UserId),
        body: m.body,
        anchor: m.anchor,
        mentions,
        version: Version(m.version),
        resolved_at: m.resolved_at,
        resolved_by: m.resolved_by.map(UserId),
        created_at: m.created_at,
        updated_at: m.updated_at,
        deleted_at: m.deleted_at,
    }
}

fn comment_row(c: &Comment) -> comments::ActiveModel {
    comments::ActiveModel {
        id: Set(c.id.0),
        workspace_id: Set(c.workspace_id.0),
        document_id: Set(c.document_id.0),
        parent_id: Set(c.parent_id.map(|p| p.0)),
        author_id: Set(c.author_id.map(|u| u.0)),
        body: Set(c.body.clone()),
        anchor: Set(c.anchor.clone()),
        version: Set(c.version.0),
        resolved_at: Set(c.resolved_at),
        resolved_by: Set(c.resolved_by.map(|u| u.0)),
        created_at: Set(c.created_at),
        updated_at: Set(c.updated_at),
        deleted_at: Set(c.deleted_at),
    }
}

/// What `notifications.payload` holds: the ids a client needs to open the comment.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    workspace_id: Uuid,
    document_id: Uuid,
    comment_id: Uuid,
    thread_id: Uuid,
    actor_id: Option<Uuid>,
}

fn notification(m: notifications::Model) -> Result<Notification, StoreError> {
    let kind =
        NotificationKind::parse(&m.kind).ok_or_else(|| corrupt("notification kind", &m.kind))?;
    let p: Payload = serde_json::from_value(m.payload.clone())
        .map_err(|_| corrupt("notification payload", &m.payload))?;
    Ok(Notification {
        id: NotificationId(m.id),
        user_id: UserId(m.user_id),
        kind,
        workspace_id: WorkspaceId(p.workspace_id),
        document_id: DocumentId(p.document_id),
        comment_id: CommentId(p.comment_id),
        thread_id: CommentId(p.thread_id),
        actor_id: p.actor_id.map(UserId),
        created_at: m.created_at,
        read_at: m.read_at,
    })
}

fn notification_row(n: &Notification) -> notifications::ActiveModel {
    let payload = Payload {
        workspace_id: n.workspace_id.0,
        document_id: n.document_id.0,
        comment_id: n.comment_id.0,
        thread_id: n.thread_id.0,
        actor_id: n.actor_id.map(|u| u.0),
    };
    notifications::ActiveModel {
        id: Set(n.id.0),
        user_id: Set(n.user_id.0),
        kind: Set(n.kind.as_str().to_owned()),
        payload: Set(serde_json::to_value(payload).unwrap_or_default()),
        read_at: Set(n.read_at),
        created_at: Set(n.created_at),
        comment_id: Set(Some(n.comment_id.0)),
    }
}
