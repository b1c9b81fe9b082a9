//! The Yjs update log (`document_updates`) and compacted state (`documents.yjs_state`).

use chrono::Utc;
use mdcreator_domain::collab::{MergeFn, StoredYjs, YjsStore};
use mdcreator_domain::{DocumentId, StoreError};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::SqlStore;
use crate::entity::{document_updates, documents};
use crate::error::store_error;

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
        let updates = updates_of(&self.db, document).await?;
        Ok(Some(StoredYjs { state, updates }))
    }

    #[tracing::instrument(skip_all, fields(document = %document, n = updates.len()))]
    async fn append(&self, document: DocumentId, updates: Vec<Vec<u8>>) -> Result<i64, StoreError> {
        if updates.is_empty() {
            return Err(StoreError::Unexpected(anyhow::anyhow!("nothing to append")));
        }
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
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(result.last_insert_id.unwrap_or_default())
    }

    #[tracing::instrument(skip_all, fields(document = %document))]
    async fn compact(&self, document: DocumentId, merge: MergeFn) -> Result<usize, StoreError> {
        let txn = self.begin_write().await.map_err(store_error)?;
        // The row lock serializes compactions of one document across instances (SQLite's
        // `BEGIN IMMEDIATE` already holds the database's write lock).
        let mut select = documents::Entity::find_by_id(document.0)
            .select_only()
            .column(documents::Column::YjsState);
        if self.backend() == DbBackend::Postgres {
            select = select.lock_exclusive();
        }
        let state: Option<Option<Vec<u8>>> =
            select.into_tuple().one(&txn).await.map_err(store_error)?;
        let Some(state) = state else {
            return Ok(0);
        };
        let updates = updates_of(&txn, document).await?;
        let Some(&(last, _)) = updates.last() else {
            return Ok(0);
        };
        let n = updates.len();
        let merged = merge(state, updates.into_iter().map(|(_, u)| u).collect())
            .map_err(StoreError::Unexpected)?;
        documents::Entity::update_many()
            .col_expr(documents::Column::YjsState, Expr::value(merged))
            .filter(documents::Column::Id.eq(document.0))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        document_updates::Entity::delete_many()
            .filter(document_updates::Column::DocumentId.eq(document.0))
            .filter(document_updates::Column::Id.lte(last))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        Ok(n)
    }
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
