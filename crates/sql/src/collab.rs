//! The Yjs update log (`document_updates`) and compacted state (`documents.yjs_state`).

use chrono::Utc;
use mdcreator_domain::collab::{MergeFn, StoredYjs, YjsStore};
use mdcreator_domain::{DocumentId, StoreError};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::{Alias, Expr};
use sea_orm::{
    ColumnTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement,
};

use crate::SqlStore;

/// SQLite: the highest id the document's updates have had (see the migration
/// `m20261128_000001_update_log_by_document`): the highest in the log, or any a compaction
/// merged. No row when the document does not exist. Parameter: document id. Appends then take
/// the next ids in order with [`SQLITE_INSERT`], in the same transaction.
///
/// Two statements, not one `INSERT … SELECT … RETURNING`: an insert whose `SELECT` reads the
/// table it inserts into, and any `RETURNING`, each go through a temporary table that SQLite
/// creates and drops on every execution (a b-tree and a pager of its own; 85 VDBE opcodes
/// against 38 + 25 here).
pub(crate) const SQLITE_LAST_ID: &str = "SELECT max(coalesce(d.yjs_merged_through, 0), coalesce(\
     (SELECT max(u.id) FROM document_updates u WHERE u.document_id = d.id), 0)) \
     FROM documents d WHERE d.id = ?1";

/// SQLite: stores one update. Parameters: document id, id, update, time.
pub(crate) const SQLITE_INSERT: &str =
    "INSERT INTO document_updates (document_id, id, data, created_at) VALUES (?1, ?2, ?3, ?4)";

use crate::appender::AppendError;
use crate::entity::{document_updates, documents};
use crate::error::store_error;
use crate::journal::JournalError;

#[async_trait::async_trait]
impl YjsStore for SqlStore {
    #[tracing::instrument(skip_all, fields(document = %document))]
    async fn load(&self, document: DocumentId) -> Result<Option<StoredYjs>, StoreError> {
        let state: Option<Option<Vec<u8>>> = documents::Entity::find_by_id(document.0)
            .select_only()
            .column(documents::Column::YjsState)
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(store_error)?;
        let Some(state) = state else {
            return Ok(None);
        };
        self.fold_journal().await?;
        let updates = updates_of(&self.db, document).await?;
        Ok(Some(StoredYjs { state, updates }))
    }

    #[tracing::instrument(skip_all, fields(document = %document, n = updates.len()))]
    async fn append(&self, document: DocumentId, updates: Vec<Vec<u8>>) -> Result<i64, StoreError> {
        if updates.is_empty() {
            return Err(StoreError::Unexpected(anyhow::anyhow!("nothing to append")));
        }
        if let Some(journal) = &self.journal {
            return match journal.append(document.0, updates, Utc::now()) {
                Ok(id) => Ok(id),
                Err(JournalError::NoDocument) => {
                    Err(StoreError::Unexpected(anyhow::anyhow!("no such document")))
                }
                Err(e) => Err(StoreError::Unavailable(e.into())),
            };
        }
        let _turn = self.append_turn().await;
        if let Some(appender) = &self.appender {
            match appender.append(document.0, &updates, Utc::now()) {
                Ok(id) => return Ok(id),
                // Locked by someone who does not queue: wait in the pool, off this thread.
                Err(AppendError::Busy) => {}
                Err(AppendError::Failed(e)) => return Err(StoreError::Unexpected(e.into())),
            }
        }
        if self.backend() == DbBackend::Sqlite {
            let txn = self.begin_write().await.map_err(store_error)?;
            let id = sqlite_append(&txn, document, updates).await?;
            txn.commit().await.map_err(store_error)?;
            return Ok(id);
        }
        insert_updates(&self.db, document, updates).await
    }

    /// Reads and merges without holding any lock (merging is CPU work that would stall every
    /// writer of the document — on SQLite, of the database) on a blocking thread, then writes the result in a short
    /// transaction that first checks that no other compaction took the same updates meanwhile.
    #[tracing::instrument(skip_all, fields(document = %document))]
    async fn compact(&self, document: DocumentId, merge: MergeFn) -> Result<usize, StoreError> {
        // Updates first, then the state: a compaction that commits between the two reads has
        // deleted some of these updates (the check below then refuses this one), and one that
        // commits before the first read left a state that already holds everything deleted.
        self.fold_journal().await?;
        let updates = updates_of(&self.db, document).await?;
        if updates.is_empty() {
            return Ok(0);
        }
        let state: Option<Option<Vec<u8>>> = documents::Entity::find_by_id(document.0)
            .select_only()
            .column(documents::Column::YjsState)
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(store_error)?;
        let Some(state) = state else {
            return Ok(0);
        };
        let n = updates.len();
        let ids: Vec<i64> = updates.iter().map(|(id, _)| *id).collect();
        // CPU work (thousands of updates into a CRDT document): off the async workers.
        let updates = updates.into_iter().map(|(_, u)| u).collect();
        let merged = tokio::task::spawn_blocking(move || merge(state, updates))
            .await
            .map_err(|e| StoreError::Unexpected(anyhow::anyhow!("merge task failed: {e}")))?
            .map_err(StoreError::Unexpected)?;

        let _turn = self.write_turn().await;
        let txn = self.begin_write().await.map_err(store_error)?;
        // The row lock serializes compactions of one document across instances, and waits for
        // appends in flight (their foreign-key check holds a key-share lock on the row). SQLite's
        // `BEGIN IMMEDIATE` already holds the database's write lock.
        let mut select = documents::Entity::find_by_id(document.0)
            .select_only()
            .column(documents::Column::Id);
        if self.backend() == DbBackend::Postgres {
            select = select.lock_exclusive();
        }
        let exists: Option<uuid::Uuid> =
            select.into_tuple().one(&txn).await.map_err(store_error)?;
        if exists.is_none() {
            return Ok(0);
        }
        let mut still_there = 0;
        for chunk in ids.chunks(500) {
            still_there += document_updates::Entity::find()
                .filter(document_updates::Column::DocumentId.eq(document.0))
                .filter(document_updates::Column::Id.is_in(chunk.iter().copied()))
                .count(&txn)
                .await
                .map_err(store_error)?;
        }
        if still_there != n as u64 {
            // Another compaction merged (some of) them first; its state holds them.
            return Ok(0);
        }
        // Remembered so that SQLite never hands these ids out again (see `SQLITE_LAST_ID`).
        let merged_through = ids.iter().copied().max();
        documents::Entity::update_many()
            .col_expr(documents::Column::YjsState, Expr::value(merged))
            .col_expr(
                Alias::new("yjs_merged_through"),
                Expr::value(merged_through),
            )
            .filter(documents::Column::Id.eq(document.0))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        // Exactly the merged updates: one appended meanwhile may carry a lower id (ids are
        // handed out before commit) and must stay.
        for chunk in ids.chunks(500) {
            document_updates::Entity::delete_many()
                .filter(document_updates::Column::DocumentId.eq(document.0))
                .filter(document_updates::Column::Id.is_in(chunk.iter().copied()))
                .exec(&txn)
                .await
                .map_err(store_error)?;
        }
        txn.commit().await.map_err(store_error)?;
        Ok(n)
    }
}

/// The updates with the next ids of the document ([`SQLITE_LAST_ID`], [`SQLITE_INSERT`]), in
/// `txn`; the last one's id.
async fn sqlite_append(
    txn: &impl sea_orm::ConnectionTrait,
    document: DocumentId,
    updates: Vec<Vec<u8>>,
) -> Result<i64, StoreError> {
    let now = Utc::now();
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            SQLITE_LAST_ID,
            [document.0.into()],
        ))
        .await
        .map_err(store_error)?
        .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("no such document")))?;
    let mut id: i64 = row.try_get_by_index(0).map_err(store_error)?;
    for update in updates {
        id += 1;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            SQLITE_INSERT,
            [document.0.into(), id.into(), update.into(), now.into()],
        ))
        .await
        .map_err(store_error)?;
    }
    Ok(id)
}

async fn insert_updates(
    db: &impl sea_orm::ConnectionTrait,
    document: DocumentId,
    updates: Vec<Vec<u8>>,
) -> Result<i64, StoreError> {
    let now = Utc::now();
    let rows = updates
        .into_iter()
        .map(|data| document_updates::ActiveModel {
            id: NotSet,
            document_id: Set(document.0),
            data: Set(data),
            created_at: Set(now),
        });
    let result = document_updates::Entity::insert_many(rows)
        .exec(db)
        .await
        .map_err(store_error)?;
    Ok(result.last_insert_id.unwrap_or_default())
}

async fn updates_of(
    db: &impl sea_orm::ConnectionTrait,
    document: DocumentId,
) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    document_updates::Entity::find()
        .select_only()
        .columns([document_updates::Column::Id, document_updates::Column::Data])
        .filter(document_updates::Column::DocumentId.eq(document.0))
        .order_by_asc(document_updates::Column::Id)
        .into_tuple()
        .all(db)
        .await
        .map_err(store_error)
}
