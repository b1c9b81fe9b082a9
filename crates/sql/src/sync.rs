//! Sync: devices (reads, and the device writes of the unit of work) and the change feed's read
//! side — one snapshot per pull, and compaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mdcreator_domain::documents::DocumentSummary;
use mdcreator_domain::feed::{ChangeOp, CommitError, EntityType, Write};
use mdcreator_domain::members::MemberProfile;
use mdcreator_domain::sync::{
    ChangeFeed, Compaction, DEVICES_TABLE, Device, DeviceRepository, DocumentState, EntityRef,
    EntityState, FeedPage, FeedRow, FeedSnapshot, FeedWorkspace, MutationResult, RECENT_RESULTS,
};
use mdcreator_domain::{DeviceId, StoreError, UserId, WorkspaceId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    FromQueryResult, IsolationLevel, QueryFilter, QueryOrder, QuerySelect, Statement,
    TransactionOptions, TransactionTrait, Value,
};
use uuid::Uuid;

use crate::SqlStore;
use crate::entity::{
    attachments, context_files, device_results, devices, folders, users, workspace_members,
    workspaces,
};
use crate::error::{corrupt, store_error, write_error};
use crate::rows::{self, DocumentSummaryRow};

/// Bound `IN` lists: far below both backends' limits on parameters.
const IN_CHUNK: usize = 500;

// ---------------------------------------------------------------------------------------------
// devices

#[async_trait::async_trait]
impl DeviceRepository for SqlStore {
    async fn device(&self, id: DeviceId) -> Result<Option<Device>, StoreError> {
        let row = devices::Entity::find_by_id(id.0)
            .one(&self.db)
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut results = recent_results(&self.db, &[row.id]).await?;
        device(row, results.remove(&id.0).unwrap_or_default()).map(Some)
    }

    async fn devices_of(&self, user: UserId) -> Result<Vec<Device>, StoreError> {
        let found = devices::Entity::find()
            .filter(devices::Column::UserId.eq(user.0))
            .order_by_asc(devices::Column::CreatedAt)
            .order_by_asc(devices::Column::Id)
            .all(&self.db)
            .await
            .map_err(store_error)?;
        let ids: Vec<Uuid> = found.iter().map(|d| d.id).collect();
        let mut results = recent_results(&self.db, &ids).await?;
        found
            .into_iter()
            .map(|d| {
                let kept = results.remove(&d.id).unwrap_or_default();
                device(d, kept)
            })
            .collect()
    }
}

/// The `device_results` rows of these devices, oldest first per device.
async fn recent_results<C: ConnectionTrait>(
    db: &C,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<MutationResult>>, StoreError> {
    let mut by_device: HashMap<Uuid, Vec<MutationResult>> = HashMap::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let rows = device_results::Entity::find()
            .filter(device_results::Column::DeviceId.is_in(chunk.iter().copied()))
            .order_by_asc(device_results::Column::DeviceId)
            .order_by_asc(device_results::Column::MutationId)
            .all(db)
            .await
            .map_err(store_error)?;
        for row in rows {
            let result: MutationResult = serde_json::from_value(row.result.clone())
                .map_err(|_| corrupt("device result", row.result))?;
            by_device.entry(row.device_id).or_default().push(result);
        }
    }
    Ok(by_device)
}

/// A device from its row and its `device_results`. Devices that pushed before those existed
/// still have results in the `last_results` column; both count, the newest
/// [`RECENT_RESULTS`] kept.
fn device(m: devices::Model, kept: Vec<MutationResult>) -> Result<Device, StoreError> {
    let mut recent_results: Vec<MutationResult> = match m.last_results {
        serde_json::Value::Null => Vec::new(),
        json => {
            serde_json::from_value(json.clone()).map_err(|_| corrupt("device results", json))?
        }
    };
    recent_results.extend(kept);
    recent_results.sort_by_key(|r| r.mutation_id);
    recent_results.dedup_by_key(|r| r.mutation_id);
    let excess = recent_results.len().saturating_sub(RECENT_RESULTS);
    recent_results.drain(..excess);
    Ok(Device {
        id: m.id.into(),
        user_id: UserId(m.user_id),
        name: m.name,
        platform: m.platform,
        last_mutation_id: m.last_mutation_id,
        recent_results,
        created_at: m.created_at,
        last_seen_at: m.last_seen_at,
    })
}

/// `device_results` rows older than the newest [`RECENT_RESULTS`] are removed every this many
/// mutations (one indexed delete instead of one per mutation).
const PRUNE_RESULTS_EVERY: i64 = 20;

/// The device writes of a batch (see [`Write::AdvanceDevice`] for the contract).
pub(crate) async fn apply_device_write(
    txn: &DatabaseTransaction,
    write: &Write,
    now: DateTime<Utc>,
) -> Result<(), CommitError> {
    use devices::Column as C;
    match write {
        Write::InsertDevice(d) => {
            let row = devices::ActiveModel {
                id: sea_orm::Set(d.id.0),
                user_id: sea_orm::Set(d.user_id.0),
                name: sea_orm::Set(d.name.clone()),
                platform: sea_orm::Set(d.platform.clone()),
                last_mutation_id: sea_orm::Set(d.last_mutation_id),
                last_results: sea_orm::Set(results_json(&d.recent_results)),
                created_at: sea_orm::Set(d.created_at),
                last_seen_at: sea_orm::Set(d.last_seen_at),
            };
            devices::Entity::insert(row)
                .exec_without_returning(txn)
                .await
                .map(drop)
                .map_err(|e| write_error(DEVICES_TABLE, e))
        }
        Write::DeleteDevice { id, user } => {
            let r = devices::Entity::delete_many()
                .filter(C::Id.eq(id.0))
                .filter(C::UserId.eq(user.0))
                .exec(txn)
                .await
                .map_err(|e| write_error(DEVICES_TABLE, e))?;
            if r.rows_affected == 0 {
                return Err(CommitError::Stale(DEVICES_TABLE));
            }
            Ok(())
        }
        Write::AdvanceDevice {
            device,
            expected_last,
            new_last,
            result,
        } => {
            // One conditional update: it locks the row (Postgres; SQLite's write transaction
            // holds the database lock), so two pushes of one device serialize here, and the
            // second, re-checking the condition after the first commits, touches no row.
            let r = devices::Entity::update_many()
                .col_expr(C::LastMutationId, Expr::value(*new_last))
                .col_expr(C::LastSeenAt, Expr::value(now))
                .filter(C::Id.eq(device.0))
                .filter(C::LastMutationId.eq(*expected_last))
                .exec(txn)
                .await
                .map_err(|e| write_error(DEVICES_TABLE, e))?;
            if r.rows_affected == 0 {
                return Err(CommitError::Stale(DEVICES_TABLE));
            }
            // One small row per mutation, not a rewrite of the last hundred results.
            let row = device_results::ActiveModel {
                device_id: sea_orm::Set(device.0),
                mutation_id: sea_orm::Set(*new_last),
                result: sea_orm::Set(serde_json::to_value(result.stored()).unwrap_or_default()),
            };
            device_results::Entity::insert(row)
                .exec_without_returning(txn)
                .await
                .map_err(|e| write_error(DEVICES_TABLE, e))?;
            if new_last % PRUNE_RESULTS_EVERY == 0 {
                device_results::Entity::delete_many()
                    .filter(device_results::Column::DeviceId.eq(device.0))
                    .filter(
                        device_results::Column::MutationId.lte(*new_last - RECENT_RESULTS as i64),
                    )
                    .exec(txn)
                    .await
                    .map_err(|e| write_error(DEVICES_TABLE, e))?;
            }
            Ok(())
        }
        other => Err(CommitError::Store(StoreError::Unexpected(anyhow::anyhow!(
            "not a device write: {other:?}"
        )))),
    }
}

fn results_json(results: &[MutationResult]) -> serde_json::Value {
    serde_json::to_value(results).unwrap_or(serde_json::Value::Array(Vec::new()))
}

// ---------------------------------------------------------------------------------------------
// the feed

#[async_trait::async_trait]
impl ChangeFeed for SqlStore {
    async fn snapshot(&self) -> Result<Box<dyn FeedSnapshot>, StoreError> {
        let options = match self.backend() {
            // One snapshot for every statement of the transaction.
            DbBackend::Postgres => TransactionOptions {
                isolation_level: Some(IsolationLevel::RepeatableRead),
                access_mode: Some(AccessMode::ReadOnly),
                ..TransactionOptions::default()
            },
            // A deferred read transaction in WAL mode reads one snapshot from its first read on.
            _ => TransactionOptions::default(),
        };
        let txn = self
            .db
            .begin_with_options(options)
            .await
            .map_err(store_error)?;
        Ok(Box::new(SqlFeedSnapshot { txn: Some(txn) }))
    }

    #[tracing::instrument(skip_all)]
    async fn compact(&self, cutoff: DateTime<Utc>) -> Result<Compaction, StoreError> {
        let backend = self.backend();
        let sql = format!(
            "SELECT DISTINCT workspace_id FROM changes WHERE at < {}",
            param(backend, 1)
        );
        let candidates: Vec<Uuid> = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [Value::from(cutoff)],
            ))
            .await
            .map_err(store_error)?
            .iter()
            .map(|r| r.try_get::<Uuid>("", "workspace_id"))
            .collect::<Result<_, _>>()
            .map_err(store_error)?;
        let mut report = Compaction::default();
        for ws in candidates {
            let removed = self.compact_workspace(ws, cutoff).await?;
            if removed > 0 {
                report.workspaces += 1;
                report.rows += removed;
            }
        }
        if report.rows > 0 {
            tracing::info!(
                workspaces = report.workspaces,
                rows = report.rows,
                "change feed compacted"
            );
        }
        Ok(report)
    }
}

impl SqlStore {
    /// One workspace's compaction, in one transaction: the horizon first, then the rows.
    async fn compact_workspace(&self, ws: Uuid, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let backend = self.backend();
        let _turn = self.write_turn().await;
        let txn = self.begin_write().await.map_err(store_error)?;
        // Rows a reader no longer needs: tombstones, and rows a later row of the entity
        // supersedes — both written before the cutoff.
        let doomed = format!(
            "FROM changes c WHERE c.workspace_id = {p1} AND c.at < {p2} AND (c.op = 'delete' OR \
             EXISTS (SELECT 1 FROM changes n WHERE n.workspace_id = c.workspace_id \
             AND n.entity_type = c.entity_type AND n.entity_id = c.entity_id AND n.seq > c.seq))",
            p1 = param(backend, 1),
            p2 = param(backend, 2)
        );
        let values = || [Value::from(ws), Value::from(cutoff)];
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                format!("SELECT MAX(c.seq) AS top, COUNT(*) AS n {doomed}"),
                values(),
            ))
            .await
            .map_err(store_error)?;
        let (top, count) = match row {
            Some(r) => (
                r.try_get::<Option<i64>>("", "top").map_err(store_error)?,
                r.try_get::<i64>("", "n").map_err(store_error)?,
            ),
            None => (None, 0),
        };
        let Some(top) = top.filter(|_| count > 0) else {
            txn.rollback().await.map_err(store_error)?;
            return Ok(0);
        };
        workspaces::Entity::update_many()
            .col_expr(workspaces::Column::FeedHorizonSeq, Expr::value(top))
            .filter(workspaces::Column::Id.eq(ws))
            .filter(workspaces::Column::FeedHorizonSeq.lt(top))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        let deleted = txn
            .execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "DELETE FROM changes WHERE workspace_id = {p1} AND seq IN (SELECT c.seq {doomed})",
                    p1 = param(backend, 1)
                ),
                values(),
            ))
            .await
            .map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        Ok(deleted.rows_affected())
    }
}

/// The `n`th (1-based) bind parameter in the backend's syntax.
fn param(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    }
}

struct SqlFeedSnapshot {
    txn: Option<DatabaseTransaction>,
}

impl SqlFeedSnapshot {
    fn txn(&self) -> Result<&DatabaseTransaction, StoreError> {
        self.txn
            .as_ref()
            .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("the snapshot is closed")))
    }
}

#[derive(Debug, FromQueryResult)]
struct ChangeRow {
    seq: i64,
    entity_type: String,
    entity_id: Uuid,
    op: String,
    version: Option<i64>,
    commit_end_seq: Option<i64>,
}

#[derive(Debug, FromQueryResult)]
struct DocumentStateRow {
    id: Uuid,
    workspace_id: Uuid,
    folder_id: Option<Uuid>,
    title: String,
    content_hash: String,
    version: i64,
    position: f64,
    created_by: Option<Uuid>,
    updated_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
    content: Option<String>,
}

impl DocumentStateRow {
    fn into_state(self) -> DocumentState {
        let content = self.content;
        let summary: DocumentSummary = rows::document_summary(DocumentSummaryRow {
            id: self.id,
            workspace_id: self.workspace_id,
            folder_id: self.folder_id,
            title: self.title,
            content_hash: self.content_hash,
            version: self.version,
            position: self.position,
            created_by: self.created_by,
            updated_by: self.updated_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
        });
        DocumentState { summary, content }
    }
}

/// The document columns of [`DocumentStateRow`], `content` only up to `inline` bytes.
fn document_columns(backend: DbBackend, inline: usize) -> String {
    let size = match backend {
        DbBackend::Postgres => "octet_length(d.content)",
        _ => "length(CAST(d.content AS blob))",
    };
    format!(
        "d.id, d.workspace_id, d.folder_id, d.title, d.content_hash, d.version, d.position, \
         d.created_by, d.updated_by, d.created_at, d.updated_at, d.deleted_at, \
         CASE WHEN {size} <= {inline} THEN d.content END AS content"
    )
}

fn entity_type(stored: &str) -> Result<EntityType, StoreError> {
    Ok(match stored {
        "workspace" => EntityType::Workspace,
        "folder" => EntityType::Folder,
        "document" => EntityType::Document,
        "comment" => EntityType::Comment,
        "attachment" => EntityType::Attachment,
        "context_file" => EntityType::ContextFile,
        "member" => EntityType::Member,
        other => return Err(corrupt("entity type", other)),
    })
}

fn feed_row(r: &ChangeRow) -> Result<FeedRow, StoreError> {
    Ok(FeedRow {
        seq: r.seq,
        entity_type: entity_type(&r.entity_type)?,
        entity_id: r.entity_id,
        op: match r.op.as_str() {
            "upsert" => ChangeOp::Upsert,
            "delete" => ChangeOp::Delete,
            other => return Err(corrupt("change op", other)),
        },
        version: r.version,
    })
}

impl SqlFeedSnapshot {
    /// The latest row of each entity changed in `(after, upto]`, by seq, at most `limit`.
    async fn latest_rows(
        &self,
        ws: WorkspaceId,
        after: i64,
        upto: Option<i64>,
        limit: Option<u64>,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        let txn = self.txn()?;
        let backend = txn.get_database_backend();
        let mut values: Vec<Value> = vec![ws.0.into(), after.into()];
        let mut sql = format!(
            "SELECT c.seq, c.entity_type, c.entity_id, c.op, c.version, c.commit_end_seq \
             FROM changes c WHERE c.workspace_id = {} AND c.seq > {}",
            param(backend, 1),
            param(backend, 2)
        );
        if let Some(upto) = upto {
            values.push(upto.into());
            sql.push_str(&format!(" AND c.seq <= {}", param(backend, values.len())));
        }
        sql.push_str(
            " AND NOT EXISTS (SELECT 1 FROM changes n WHERE n.workspace_id = c.workspace_id \
             AND n.entity_type = c.entity_type AND n.entity_id = c.entity_id AND n.seq > c.seq) \
             ORDER BY c.seq",
        );
        if let Some(limit) = limit {
            values.push((limit as i64).into());
            sql.push_str(&format!(" LIMIT {}", param(backend, values.len())));
        }
        ChangeRow::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .all(txn)
            .await
            .map_err(store_error)
    }
}

#[async_trait::async_trait]
impl FeedSnapshot for SqlFeedSnapshot {
    async fn device(&mut self, id: DeviceId) -> Result<Option<(UserId, i64)>, StoreError> {
        let row: Option<(Uuid, i64)> = devices::Entity::find_by_id(id.0)
            .select_only()
            .column(devices::Column::UserId)
            .column(devices::Column::LastMutationId)
            .into_tuple()
            .one(self.txn()?)
            .await
            .map_err(store_error)?;
        Ok(row.map(|(user, last)| (UserId(user), last)))
    }

    async fn memberships(&mut self, user: UserId) -> Result<Vec<FeedWorkspace>, StoreError> {
        let found = workspace_members::Entity::find()
            .find_also_related(workspaces::Entity)
            .filter(workspace_members::Column::UserId.eq(user.0))
            .filter(workspaces::Column::DeletedAt.is_null())
            .order_by_asc(workspace_members::Column::WorkspaceId)
            .all(self.txn()?)
            .await
            .map_err(store_error)?;
        found
            .into_iter()
            .filter_map(|(m, w)| w.map(|w| (m, w)))
            .map(|(m, w)| {
                Ok(FeedWorkspace {
                    id: w.id.into(),
                    role: rows::role(&m.role)?,
                    head: w.change_seq,
                    horizon: w.feed_horizon_seq,
                })
            })
            .collect()
    }

    async fn changes(
        &mut self,
        workspace: WorkspaceId,
        after: i64,
        limit: u32,
    ) -> Result<FeedPage, StoreError> {
        let limit = u64::from(limit.max(1));
        let mut rows = self
            .latest_rows(workspace, after, None, Some(limit + 1))
            .await?;
        let end = if rows.len() as u64 <= limit {
            let head: Option<i64> = workspaces::Entity::find_by_id(workspace.0)
                .select_only()
                .column(workspaces::Column::ChangeSeq)
                .into_tuple()
                .one(self.txn()?)
                .await
                .map_err(store_error)?;
            head.unwrap_or(after)
                .max(rows.last().map_or(after, |r| r.seq))
        } else {
            // End at the commit boundary of the last row that fits: the rest of its commit
            // comes along even beyond the limit.
            let last = &rows[limit as usize - 1];
            let end = last.commit_end_seq.unwrap_or(last.seq).max(last.seq);
            let next = rows[limit as usize].seq;
            rows.retain(|r| r.seq <= end);
            if next <= end {
                let more = self.latest_rows(workspace, next, Some(end), None).await?;
                rows.extend(more);
            }
            end
        };
        Ok(FeedPage {
            rows: rows.iter().map(feed_row).collect::<Result<_, _>>()?,
            end,
        })
    }

    async fn entities(
        &mut self,
        workspace: WorkspaceId,
        refs: Vec<EntityRef>,
        inline_bytes: usize,
    ) -> Result<Vec<EntityState>, StoreError> {
        let txn = self.txn()?;
        let backend = txn.get_database_backend();
        let mut by_type: HashMap<EntityType, Vec<Uuid>> = HashMap::new();
        for r in refs {
            by_type.entry(r.entity_type).or_default().push(r.id);
        }
        let mut states = Vec::new();
        if by_type.contains_key(&EntityType::Workspace) {
            let w = workspaces::Entity::find_by_id(workspace.0)
                .one(txn)
                .await
                .map_err(store_error)?;
            states.extend(w.map(|w| EntityState::Workspace(rows::workspace(w))));
        }
        for chunk in by_type
            .get(&EntityType::Member)
            .map_or(&[][..], |v| v)
            .chunks(IN_CHUNK)
        {
            let found = workspace_members::Entity::find()
                .find_also_related(users::Entity)
                .filter(workspace_members::Column::WorkspaceId.eq(workspace.0))
                .filter(workspace_members::Column::UserId.is_in(chunk.iter().copied()))
                .all(txn)
                .await
                .map_err(store_error)?;
            for (member, user) in found {
                let user = user.ok_or_else(|| corrupt("member without user", member.user_id))?;
                let user = rows::user(user)?;
                states.push(EntityState::Member(MemberProfile {
                    member: rows::member(member)?,
                    email: user.email,
                    display_name: user.display_name,
                }));
            }
        }
        for chunk in by_type
            .get(&EntityType::Folder)
            .map_or(&[][..], |v| v)
            .chunks(IN_CHUNK)
        {
            let found = folders::Entity::find()
                .filter(folders::Column::WorkspaceId.eq(workspace.0))
                .filter(folders::Column::Id.is_in(chunk.iter().copied()))
                .all(txn)
                .await
                .map_err(store_error)?;
            states.extend(
                found
                    .into_iter()
                    .map(|f| EntityState::Folder(rows::folder(f))),
            );
        }
        for chunk in by_type
            .get(&EntityType::ContextFile)
            .map_or(&[][..], |v| v)
            .chunks(IN_CHUNK)
        {
            let found = context_files::Entity::find()
                .filter(context_files::Column::WorkspaceId.eq(workspace.0))
                .filter(context_files::Column::Id.is_in(chunk.iter().copied()))
                .all(txn)
                .await
                .map_err(store_error)?;
            for f in found {
                states.push(EntityState::ContextFile(rows::context_file(f)?));
            }
        }
        for chunk in by_type
            .get(&EntityType::Attachment)
            .map_or(&[][..], |v| v)
            .chunks(IN_CHUNK)
        {
            let found = attachments::Entity::find()
                .filter(attachments::Column::WorkspaceId.eq(workspace.0))
                .filter(attachments::Column::Id.is_in(chunk.iter().copied()))
                .all(txn)
                .await
                .map_err(store_error)?;
            for a in found {
                states.push(EntityState::Attachment(rows::attachment(a)?));
            }
        }
        if let Some(ids) = by_type.get(&EntityType::Comment) {
            let found = crate::comments::comments_by_ids(txn, workspace, ids).await?;
            states.extend(found.into_iter().map(EntityState::Comment));
        }
        for chunk in by_type
            .get(&EntityType::Document)
            .map_or(&[][..], |v| v)
            .chunks(IN_CHUNK)
        {
            let mut values: Vec<Value> = vec![workspace.0.into()];
            let mut marks = Vec::with_capacity(chunk.len());
            for id in chunk {
                values.push((*id).into());
                marks.push(param(backend, values.len()));
            }
            let sql = format!(
                "SELECT {} FROM documents d WHERE d.workspace_id = {} AND d.id IN ({})",
                document_columns(backend, inline_bytes),
                param(backend, 1),
                marks.join(", ")
            );
            let found = DocumentStateRow::find_by_statement(Statement::from_sql_and_values(
                backend, sql, values,
            ))
            .all(txn)
            .await
            .map_err(store_error)?;
            states.extend(
                found
                    .into_iter()
                    .map(|d| EntityState::Document(d.into_state())),
            );
        }
        Ok(states)
    }

    async fn shared_documents(
        &mut self,
        user: UserId,
        inline_bytes: usize,
    ) -> Result<Vec<DocumentState>, StoreError> {
        let txn = self.txn()?;
        let backend = txn.get_database_backend();
        let sql = format!(
            "SELECT {columns} FROM documents d JOIN workspaces w ON w.id = d.workspace_id \
             WHERE d.deleted_at IS NULL AND w.deleted_at IS NULL \
             AND EXISTS (SELECT 1 FROM document_shares s WHERE s.document_id = d.id \
               AND s.user_id = {p1} AND s.revoked_at IS NULL \
               AND (s.expires_at IS NULL OR s.expires_at > {p2})) \
             AND NOT EXISTS (SELECT 1 FROM workspace_members m \
               WHERE m.workspace_id = d.workspace_id AND m.user_id = {p1}) \
             ORDER BY d.id",
            columns = document_columns(backend, inline_bytes),
            p1 = param(backend, 1),
            p2 = param(backend, 2),
        );
        let found = DocumentStateRow::find_by_statement(Statement::from_sql_and_values(
            backend,
            sql,
            [Value::from(user.0), Value::from(Utc::now())],
        ))
        .all(txn)
        .await
        .map_err(store_error)?;
        Ok(found
            .into_iter()
            .map(DocumentStateRow::into_state)
            .collect())
    }

    async fn close(&mut self) -> Result<(), StoreError> {
        match self.txn.take() {
            Some(txn) => txn.commit().await.map_err(store_error),
            None => Ok(()),
        }
    }
}
