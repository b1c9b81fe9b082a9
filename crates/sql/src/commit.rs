//! The unit of work: one database transaction per [`WriteBatch`].
//!
//! Order inside the transaction:
//! 1. the writes, in batch order, each with its precondition (`… WHERE version = ?` and
//!    friends; no row touched → `Stale`);
//! 2. the feed heads: `UPDATE workspaces SET change_seq = change_seq + n … RETURNING
//!    change_seq` for every workspace with changes or checks, which also row-locks each
//!    workspace until commit. Locks are taken in workspace-id order so that two batches
//!    spanning several workspaces cannot deadlock;
//! 3. the change rows, numbered `head - n + 1 ..= head` in batch order, gap-free because no
//!    other transaction can bump the same workspace before this one ends;
//! 4. the checks. They run after the lock on purpose: on Postgres (read committed) two
//!    concurrent demotions of the last two owners serialize on the workspace row, and the
//!    second one counts owners in a snapshot that includes the first one's commit.
//!
//! On SQLite the transaction starts with `BEGIN IMMEDIATE`, so writers queue on the database
//! lock (busy timeout) instead of failing on a lock upgrade.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use mdcreator_domain::attachments::FileStatus;
use mdcreator_domain::feed::{
    AuditEvent, Change, Check, CommitError, Committed, EntityType, UnitOfWork, Write, WriteBatch,
};
use mdcreator_domain::{DocumentId, Role, UserId, WorkspaceId};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, IdenStatic,
    PaginatorTrait, QueryFilter, QuerySelect,
};
use uuid::Uuid;

use crate::SqlStore;
use crate::entity::{
    attachments, audit_events, changes, context_files, document_shares, document_versions,
    documents, folders, invitations, users, workspace_members, workspaces,
};
use crate::error::{store_error, write_error};
use crate::rows;

/// Rows per multi-row `INSERT` of change entries (9 columns: far below both backends' limit on
/// bound parameters).
const CHANGE_ROWS_PER_INSERT: usize = 500;

#[async_trait::async_trait]
impl UnitOfWork for SqlStore {
    #[tracing::instrument(skip_all, fields(writes = batch.writes.len(), changes = batch.changes.len()))]
    async fn commit(&self, batch: WriteBatch) -> Result<Committed, CommitError> {
        let _turn = self.write_turn().await;
        let txn = self.begin_write().await.map_err(store)?;
        match apply(&txn, &batch, Utc::now()).await {
            Ok(committed) => {
                txn.commit().await.map_err(store)?;
                Ok(committed)
            }
            Err(e) => {
                if let Err(rollback) = txn.rollback().await {
                    // The connection is dropped from the pool anyway; the batch's error matters.
                    tracing::warn!(error = %rollback, "rollback failed");
                }
                Err(e)
            }
        }
    }
}

async fn apply(
    txn: &DatabaseTransaction,
    batch: &WriteBatch,
    now: DateTime<Utc>,
) -> Result<Committed, CommitError> {
    // The files a trash or restore moves along with their document are changed entities too:
    // their feed rows follow the batch's own.
    let mut moved_files: Vec<Change> = Vec::new();
    for write in &batch.writes {
        if let Write::TrashDocument { id, deleted_at, .. } = write {
            moved_files.extend(files_moving_with_document(txn, *id, deleted_at.is_some()).await?);
        }
        apply_write(txn, write, batch.actor, now).await?;
    }

    // Each workspace's changes, workspaces in order of first appearance.
    let mut feeds: Vec<(WorkspaceId, Vec<&Change>)> = Vec::new();
    for change in batch.changes.iter().chain(&moved_files) {
        match feeds.iter_mut().find(|(ws, _)| *ws == change.workspace_id) {
            Some((_, list)) => list.push(change),
            None => feeds.push((change.workspace_id, vec![change])),
        }
    }

    let mut bumps: BTreeMap<WorkspaceId, i64> = BTreeMap::new();
    for (ws, list) in &feeds {
        bumps.insert(*ws, list.len() as i64);
    }
    for check in &batch.checks {
        let Check::WorkspaceHasOwner(ws) = check;
        bumps.entry(*ws).or_insert(0);
    }
    let mut heads = HashMap::with_capacity(bumps.len());
    for (ws, n) in bumps {
        heads.insert(ws, bump_change_seq(txn, ws, n).await?);
    }
    // Every workspace with changes was bumped just above.
    let feeds: Vec<(WorkspaceId, i64, Vec<&Change>)> = feeds
        .into_iter()
        .map(|(ws, list)| (ws, heads.get(&ws).copied().unwrap_or_default(), list))
        .collect();

    let mut rows = Vec::with_capacity(batch.changes.len() + moved_files.len());
    for (_, head, list) in &feeds {
        let first = head - list.len() as i64 + 1;
        for (seq, change) in (first..).zip(list) {
            rows.push(rows::change_row(
                change,
                seq,
                *head,
                batch.actor,
                batch.device,
                now,
            ));
        }
    }
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(CHANGE_ROWS_PER_INSERT));
        changes::Entity::insert_many(std::mem::replace(&mut rows, rest))
            .exec_without_returning(txn)
            .await
            .map_err(|e| write_error("changes", e))?;
    }

    for check in &batch.checks {
        let Check::WorkspaceHasOwner(ws) = check;
        let owners = workspace_members::Entity::find()
            .filter(workspace_members::Column::WorkspaceId.eq(ws.0))
            .filter(workspace_members::Column::Role.eq(Role::Owner.as_str()))
            .count(txn)
            .await
            .map_err(store)?;
        if owners == 0 {
            return Err(CommitError::NoOwnerLeft);
        }
    }

    Ok(Committed {
        heads: feeds.iter().map(|(ws, head, _)| (*ws, *head)).collect(),
    })
}

/// Advances the workspace's feed head by `n` (0 only locks the row) and returns the new head.
async fn bump_change_seq(
    txn: &DatabaseTransaction,
    workspace: WorkspaceId,
    n: i64,
) -> Result<i64, CommitError> {
    let statement = Query::update()
        .table(workspaces::Entity)
        .value(
            workspaces::Column::ChangeSeq,
            Expr::col(workspaces::Column::ChangeSeq).add(n),
        )
        .and_where(workspaces::Column::Id.eq(workspace.0))
        .returning_col(workspaces::Column::ChangeSeq)
        .to_owned();
    let row = txn
        .query_one(&statement)
        .await
        .map_err(|e| write_error("workspaces", e))?
        .ok_or(CommitError::Stale("workspaces"))?;
    row.try_get::<i64>("", workspaces::Column::ChangeSeq.as_str())
        .map_err(store)
}

async fn apply_write(
    txn: &DatabaseTransaction,
    write: &Write,
    actor: Option<UserId>,
    now: DateTime<Utc>,
) -> Result<(), CommitError> {
    match write {
        Write::InsertUser(user) => {
            let q = users::Entity::insert(rows::user_row(user));
            inserted("users", q.exec_without_returning(txn).await)
        }
        Write::UpdateUser(user) => {
            let r = users::Entity::update_many()
                .col_expr(
                    users::Column::Email,
                    Expr::value(rows::stored_email(&user.email)),
                )
                .col_expr(
                    users::Column::DisplayName,
                    Expr::value(user.display_name.clone()),
                )
                .col_expr(
                    users::Column::AvatarUrl,
                    Expr::value(user.avatar_url.clone()),
                )
                .col_expr(users::Column::UpdatedAt, Expr::value(user.updated_at))
                .filter(users::Column::Id.eq(user.id.0))
                .exec(txn)
                .await;
            one_row("users", r.map(|r| r.rows_affected))
        }
        Write::InsertWorkspace(workspace) => {
            let q = workspaces::Entity::insert(rows::workspace_row(workspace));
            inserted("workspaces", q.exec_without_returning(txn).await)
        }
        Write::UpdateWorkspace(w) => {
            let r = workspaces::Entity::update_many()
                .col_expr(workspaces::Column::Name, Expr::value(w.name.clone()))
                .col_expr(workspaces::Column::Slug, Expr::value(w.slug.clone()))
                .col_expr(
                    workspaces::Column::Settings,
                    Expr::value(w.settings.clone()),
                )
                .col_expr(workspaces::Column::UpdatedAt, Expr::value(w.updated_at))
                .col_expr(workspaces::Column::DeletedAt, Expr::value(w.deleted_at))
                .filter(workspaces::Column::Id.eq(w.id.0))
                .exec(txn)
                .await;
            one_row("workspaces", r.map(|r| r.rows_affected))
        }
        Write::PutMember {
            member,
            expected: None,
        } => {
            let q = workspace_members::Entity::insert(rows::member_row(member));
            inserted("workspace_members", q.exec_without_returning(txn).await)
        }
        Write::PutMember {
            member,
            expected: Some(expected),
        } => {
            use workspace_members::Column as C;
            let r = workspace_members::Entity::update_many()
                .col_expr(C::Role, Expr::value(member.role.as_str()))
                .col_expr(C::UpdatedAt, Expr::value(member.updated_at))
                .filter(C::WorkspaceId.eq(member.workspace_id.0))
                .filter(C::UserId.eq(member.user_id.0))
                .filter(C::Role.eq(expected.as_str()))
                .exec(txn)
                .await;
            one_row("workspace_members", r.map(|r| r.rows_affected))
        }
        Write::RemoveMember {
            workspace_id,
            user_id,
            expected,
        } => {
            use workspace_members::Column as C;
            let r = workspace_members::Entity::delete_many()
                .filter(C::WorkspaceId.eq(workspace_id.0))
                .filter(C::UserId.eq(user_id.0))
                .filter(C::Role.eq(expected.as_str()))
                .exec(txn)
                .await;
            one_row("workspace_members", r.map(|r| r.rows_affected))
        }
        Write::InsertInvitation(invitation) => {
            let q = invitations::Entity::insert(rows::invitation_row(invitation));
            inserted("invitations", q.exec_without_returning(txn).await)
        }
        Write::UpdateInvitation {
            invitation,
            expected_uses,
        } => {
            use invitations::Column as C;
            let r = invitations::Entity::update_many()
                .col_expr(C::Uses, Expr::value(invitation.uses))
                .col_expr(C::RevokedAt, Expr::value(invitation.revoked_at))
                .filter(C::Id.eq(invitation.id.0))
                .filter(C::Uses.eq(*expected_uses))
                .exec(txn)
                .await;
            one_row("invitations", r.map(|r| r.rows_affected))
        }
        Write::InsertFolder(folder) => {
            let q = folders::Entity::insert(rows::folder_row(folder));
            inserted("folders", q.exec_without_returning(txn).await)
        }
        Write::UpdateFolder {
            folder: f,
            expected,
        } => {
            use folders::Column as C;
            let r = folders::Entity::update_many()
                .col_expr(C::ParentId, Expr::value(f.parent_id.map(|p| p.0)))
                .col_expr(C::Name, Expr::value(f.name.clone()))
                .col_expr(C::Position, Expr::value(f.position))
                .col_expr(C::Version, Expr::value(f.version.0))
                .col_expr(C::UpdatedAt, Expr::value(f.updated_at))
                .col_expr(C::DeletedAt, Expr::value(f.deleted_at))
                .filter(C::Id.eq(f.id.0))
                .filter(C::Version.eq(expected.0))
                .exec(txn)
                .await;
            one_row("folders", r.map(|r| r.rows_affected))
        }
        Write::InsertDocument(document) => {
            let q = documents::Entity::insert(rows::document_row(document));
            inserted("documents", q.exec_without_returning(txn).await)
        }
        Write::SaveDocument {
            document: d,
            expected,
        } => {
            use documents::Column as C;
            let r = documents::Entity::update_many()
                .col_expr(C::Title, Expr::value(d.title.clone()))
                .col_expr(C::Content, Expr::value(d.content.clone()))
                .col_expr(C::ContentHash, Expr::value(d.content_hash.as_str()))
                .col_expr(C::Version, Expr::value(d.version.0))
                .col_expr(C::UpdatedBy, Expr::value(d.updated_by.map(|u| u.0)))
                .col_expr(C::UpdatedAt, Expr::value(d.updated_at))
                .filter(C::Id.eq(d.id.0))
                .filter(C::Version.eq(expected.0))
                .exec(txn)
                .await;
            one_row("documents", r.map(|r| r.rows_affected))
        }
        Write::PlaceDocument {
            id,
            folder_id,
            position,
            updated_by,
            updated_at,
        } => {
            use documents::Column as C;
            let r = documents::Entity::update_many()
                .col_expr(C::FolderId, Expr::value(folder_id.map(|f| f.0)))
                .col_expr(C::Position, Expr::value(*position))
                .col_expr(C::UpdatedBy, Expr::value(updated_by.0))
                .col_expr(C::UpdatedAt, Expr::value(*updated_at))
                .filter(C::Id.eq(id.0))
                .exec(txn)
                .await;
            one_row("documents", r.map(|r| r.rows_affected))
        }
        Write::TrashDocument {
            id,
            deleted_at,
            updated_by,
            updated_at,
        } => {
            use documents::Column as C;
            move_files_with_document(txn, *id, *deleted_at).await?;
            let r = documents::Entity::update_many()
                .col_expr(C::DeletedAt, Expr::value(*deleted_at))
                .col_expr(C::UpdatedBy, Expr::value(updated_by.0))
                .col_expr(C::UpdatedAt, Expr::value(*updated_at))
                .filter(C::Id.eq(id.0))
                .exec(txn)
                .await;
            one_row("documents", r.map(|r| r.rows_affected))
        }
        Write::DeleteDocument { id } => {
            let r = documents::Entity::delete_by_id(id.0).exec(txn).await;
            one_row("documents", r.map(|r| r.rows_affected))
        }
        Write::InsertVersion(version) => {
            let q = document_versions::Entity::insert(rows::version_row(version));
            inserted("document_versions", q.exec_without_returning(txn).await)
        }
        Write::InsertAttachment(attachment) => {
            let q = attachments::Entity::insert(rows::attachment_row(attachment));
            inserted("attachments", q.exec_without_returning(txn).await)
        }
        Write::UpdateAttachment {
            attachment: a,
            expected,
        } => {
            use attachments::Column as C;
            let r = attachments::Entity::update_many()
                .col_expr(C::Status, Expr::value(a.status.as_str()))
                .col_expr(C::Sha256, Expr::value(a.sha256.clone()))
                .col_expr(C::UpdatedAt, Expr::value(a.updated_at))
                .col_expr(C::ExpiresAt, Expr::value(a.expires_at))
                .col_expr(C::DeletedAt, Expr::value(a.deleted_at))
                .filter(C::Id.eq(a.id.0))
                .filter(C::Status.eq(expected.as_str()))
                .exec(txn)
                .await;
            one_row("attachments", r.map(|r| r.rows_affected))
        }
        Write::InsertDocumentGrant(grant) => {
            let row = document_shares::ActiveModel {
                id: Set(grant.id),
                document_id: Set(grant.document_id.0),
                user_id: Set(Some(grant.user_id.0)),
                link_token_hash: Set(None),
                role: Set(grant.role.as_str().to_owned()),
                expires_at: Set(grant.expires_at),
                revoked_at: Set(None),
                created_by: Set(grant.created_by.map(|u| u.0)),
                created_at: Set(grant.created_at),
            };
            let q = document_shares::Entity::insert(row);
            inserted("document_shares", q.exec_without_returning(txn).await)
        }
        Write::InsertContextFile(file) => {
            let q = context_files::Entity::insert(rows::context_file_row(file));
            inserted("context_files", q.exec_without_returning(txn).await)
        }
        Write::UpdateContextFile { file: f, expected } => {
            use context_files::Column as C;
            let (storage_key, inline_text) = rows::context_body(&f.body);
            let r = context_files::Entity::update_many()
                .col_expr(C::Name, Expr::value(f.name.clone()))
                .col_expr(C::ContentType, Expr::value(f.content_type.clone()))
                .col_expr(C::StorageKey, Expr::value(storage_key))
                .col_expr(C::InlineText, Expr::value(inline_text))
                .col_expr(C::ContentHash, Expr::value(rows::stored_hash(f)))
                .col_expr(C::Size, Expr::value(f.size))
                .col_expr(C::Version, Expr::value(f.version.0))
                .col_expr(C::Status, Expr::value(f.status.as_str()))
                .col_expr(C::UpdatedAt, Expr::value(f.updated_at))
                .col_expr(C::ExpiresAt, Expr::value(f.expires_at))
                .col_expr(C::DeletedAt, Expr::value(f.deleted_at))
                .filter(C::Id.eq(f.id.0))
                .filter(C::Version.eq(expected.0))
                .exec(txn)
                .await;
            one_row("context_files", r.map(|r| r.rows_affected))
        }
        Write::InsertComment(_)
        | Write::UpdateComment { .. }
        | Write::InsertNotification(_)
        | Write::ReadNotifications { .. } => crate::comments::apply_comment_write(txn, write).await,
        Write::InsertDevice(_) | Write::DeleteDevice { .. } | Write::AdvanceDevice { .. } => {
            crate::sync::apply_device_write(txn, write, now).await
        }
        Write::Audit(event) => {
            let q = audit_events::Entity::insert(audit_row(event, actor, now));
            inserted("audit_events", q.exec_without_returning(txn).await)
        }
    }
}

/// A document's attachments and context files follow it into the trash (`Some`: live ones get
/// the document's `deleted_at`) and out of it (`None`: every one not `deleted` is live again).
/// Tombstones (`status = 'deleted'`) stay tombstones.
/// Feed rows for the attachments and context files [`move_files_with_document`] is about to
/// move: tombstones when the document goes to the trash (`trashing`), upserts when it comes back.
async fn files_moving_with_document(
    txn: &DatabaseTransaction,
    document: DocumentId,
    trashing: bool,
) -> Result<Vec<Change>, CommitError> {
    let deleted = FileStatus::Deleted.as_str();
    let change = |ws: Uuid, kind: EntityType, id: Uuid| {
        if trashing {
            Change::delete(WorkspaceId(ws), kind, id)
        } else {
            Change::upsert(WorkspaceId(ws), kind, id)
        }
    };
    let mut attachments_q = attachments::Entity::find()
        .select_only()
        .column(attachments::Column::Id)
        .column(attachments::Column::WorkspaceId)
        .filter(attachments::Column::DocumentId.eq(document.0));
    let mut files_q = context_files::Entity::find()
        .select_only()
        .column(context_files::Column::Id)
        .column(context_files::Column::WorkspaceId)
        .column(context_files::Column::Version)
        .filter(context_files::Column::DocumentId.eq(document.0));
    if trashing {
        attachments_q = attachments_q.filter(attachments::Column::DeletedAt.is_null());
        files_q = files_q.filter(context_files::Column::DeletedAt.is_null());
    } else {
        attachments_q = attachments_q
            .filter(attachments::Column::DeletedAt.is_not_null())
            .filter(attachments::Column::Status.ne(deleted));
        files_q = files_q
            .filter(context_files::Column::DeletedAt.is_not_null())
            .filter(context_files::Column::Status.ne(deleted));
    }
    let found: Vec<(Uuid, Uuid)> = attachments_q
        .into_tuple()
        .all(txn)
        .await
        .map_err(|e| write_error("attachments", e))?;
    let mut changes: Vec<Change> = found
        .into_iter()
        .map(|(id, ws)| change(ws, EntityType::Attachment, id))
        .collect();
    let found: Vec<(Uuid, Uuid, i64)> = files_q
        .into_tuple()
        .all(txn)
        .await
        .map_err(|e| write_error("context_files", e))?;
    changes.extend(
        found
            .into_iter()
            .map(|(id, ws, version)| change(ws, EntityType::ContextFile, id).with_version(version)),
    );
    Ok(changes)
}

async fn move_files_with_document(
    txn: &DatabaseTransaction,
    document: DocumentId,
    deleted_at: Option<DateTime<Utc>>,
) -> Result<(), CommitError> {
    let deleted = FileStatus::Deleted.as_str();
    match deleted_at {
        Some(at) => {
            attachments::Entity::update_many()
                .col_expr(attachments::Column::DeletedAt, Expr::value(at))
                .filter(attachments::Column::DocumentId.eq(document.0))
                .filter(attachments::Column::DeletedAt.is_null())
                .exec(txn)
                .await
                .map_err(|e| write_error("attachments", e))?;
            context_files::Entity::update_many()
                .col_expr(context_files::Column::DeletedAt, Expr::value(at))
                .filter(context_files::Column::DocumentId.eq(document.0))
                .filter(context_files::Column::DeletedAt.is_null())
                .exec(txn)
                .await
                .map_err(|e| write_error("context_files", e))?;
        }
        None => {
            let none: Option<DateTime<Utc>> = None;
            attachments::Entity::update_many()
                .col_expr(attachments::Column::DeletedAt, Expr::value(none))
                .filter(attachments::Column::DocumentId.eq(document.0))
                .filter(attachments::Column::Status.ne(deleted))
                .exec(txn)
                .await
                .map_err(|e| write_error("attachments", e))?;
            context_files::Entity::update_many()
                .col_expr(context_files::Column::DeletedAt, Expr::value(none))
                .filter(context_files::Column::DocumentId.eq(document.0))
                .filter(context_files::Column::Status.ne(deleted))
                .exec(txn)
                .await
                .map_err(|e| write_error("context_files", e))?;
        }
    }
    Ok(())
}

fn audit_row(
    event: &AuditEvent,
    actor: Option<UserId>,
    now: DateTime<Utc>,
) -> audit_events::ActiveModel {
    audit_events::ActiveModel {
        id: Set(Uuid::now_v7()),
        workspace_id: Set(event.workspace_id.0),
        actor_id: Set(actor.map(|u| u.0)),
        action: Set(event.action.to_owned()),
        target_type: Set(event.target_type.as_str().to_owned()),
        target_id: Set(event.target_id),
        details: Set(event.details.clone()),
        at: Set(now),
    }
}

fn inserted(table: &'static str, result: Result<u64, DbErr>) -> Result<(), CommitError> {
    result.map(drop).map_err(|e| write_error(table, e))
}

/// A guarded update or delete must touch exactly its row; none means the precondition failed
/// or the row is gone.
fn one_row(table: &'static str, result: Result<u64, DbErr>) -> Result<(), CommitError> {
    match result {
        Ok(0) => Err(CommitError::Stale(table)),
        Ok(_) => Ok(()),
        Err(e) => Err(write_error(table, e)),
    }
}

fn store(e: DbErr) -> CommitError {
    CommitError::Store(store_error(e))
}
