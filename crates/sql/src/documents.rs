//! Folders, documents, their history and per-document grants (reads).

use chrono::Utc;
use mdcreator_domain::documents::{
    Document, DocumentGrants, DocumentQuery, DocumentRepository, DocumentSort, DocumentSummary,
    DocumentVersion, FolderFilter, SortKey, VersionRepository, VersionSummary,
};
use mdcreator_domain::folders::{Folder, FolderRepository};
use mdcreator_domain::{DocumentId, FolderId, Role, StoreError, UserId, Version, WorkspaceId};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DbBackend, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect,
    Value,
};

use crate::SqlStore;
use crate::entity::{document_shares, document_versions, documents, folders};
use crate::error::store_error;
use crate::rows::{self, DocumentRow, DocumentSummaryRow, VersionSummaryRow};

#[async_trait::async_trait]
impl FolderRepository for SqlStore {
    async fn folder(&self, id: FolderId) -> Result<Option<Folder>, StoreError> {
        let row = folders::Entity::find_by_id(id.0)
            .one(&self.db)
            .await
            .map_err(store_error)?;
        Ok(row.map(rows::folder))
    }

    async fn folders(&self, workspace: WorkspaceId) -> Result<Vec<Folder>, StoreError> {
        let found = folders::Entity::find()
            .filter(folders::Column::WorkspaceId.eq(workspace.0))
            .filter(folders::Column::DeletedAt.is_null())
            .order_by_asc(folders::Column::Position)
            .order_by_asc(folders::Column::Name)
            .order_by_asc(folders::Column::Id)
            .all(&self.db)
            .await
            .map_err(store_error)?;
        Ok(found.into_iter().map(rows::folder).collect())
    }
}

#[async_trait::async_trait]
impl DocumentRepository for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn document(&self, id: DocumentId) -> Result<Option<Document>, StoreError> {
        let row = documents::Entity::find_by_id(id.0)
            .into_partial_model::<DocumentRow>()
            .one(&self.db)
            .await
            .map_err(store_error)?;
        Ok(row.map(rows::document))
    }

    async fn document_summary(
        &self,
        id: DocumentId,
    ) -> Result<Option<DocumentSummary>, StoreError> {
        let row = documents::Entity::find_by_id(id.0)
            .into_partial_model::<DocumentSummaryRow>()
            .one(&self.db)
            .await
            .map_err(store_error)?;
        Ok(row.map(rows::document_summary))
    }

    async fn documents(&self, query: DocumentQuery) -> Result<Vec<DocumentSummary>, StoreError> {
        use documents::Column as C;
        let sort = match query.sort {
            DocumentSort::UpdatedAt => C::UpdatedAt,
            DocumentSort::CreatedAt => C::CreatedAt,
            DocumentSort::Title => C::Title,
        };
        let order = if query.descending {
            Order::Desc
        } else {
            Order::Asc
        };
        let mut select = documents::Entity::find()
            .filter(C::WorkspaceId.eq(query.workspace_id.0))
            .filter(if query.trashed {
                C::DeletedAt.is_not_null()
            } else {
                C::DeletedAt.is_null()
            });
        select = match query.folder {
            FolderFilter::Any => select,
            FolderFilter::Root => select.filter(C::FolderId.is_null()),
            FolderFilter::In(folder) => select.filter(C::FolderId.eq(folder.0)),
        };
        if let Some(since) = query.updated_since {
            select = select.filter(C::UpdatedAt.gte(since));
        }
        if let Some(after) = &query.after {
            let key: Value = match (&after.key, query.sort) {
                (SortKey::Time(t), DocumentSort::UpdatedAt | DocumentSort::CreatedAt) => {
                    (*t).into()
                }
                (SortKey::Text(s), DocumentSort::Title) => s.clone().into(),
                (key, sort) => {
                    return Err(StoreError::Unexpected(anyhow::anyhow!(
                        "document list position {key:?} does not fit sort {sort:?}"
                    )));
                }
            };
            let id = after.id.0;
            // Strictly after (key, id) in the list's order: ties on the key fall back to the id,
            // which is ordered in the same direction.
            let later = if query.descending {
                Condition::any()
                    .add(sort.lt(key.clone()))
                    .add(Condition::all().add(sort.eq(key)).add(C::Id.lt(id)))
            } else {
                Condition::any()
                    .add(sort.gt(key.clone()))
                    .add(Condition::all().add(sort.eq(key)).add(C::Id.gt(id)))
            };
            select = select.filter(later);
        }
        let found = select
            .order_by(sort, order.clone())
            .order_by(C::Id, order)
            .limit(u64::from(query.limit))
            .into_partial_model::<DocumentSummaryRow>()
            .all(&self.db)
            .await
            .map_err(store_error)?;
        Ok(found.into_iter().map(rows::document_summary).collect())
    }

    async fn documents_in_folders(
        &self,
        workspace: WorkspaceId,
        folders: Vec<FolderId>,
    ) -> Result<Vec<DocumentSummary>, StoreError> {
        use documents::Column as C;
        if folders.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        // Bounded `IN` lists: a deep tree must not exceed the backends' parameter limits.
        for chunk in folders.chunks(500) {
            let rows = documents::Entity::find()
                .filter(C::WorkspaceId.eq(workspace.0))
                .filter(C::DeletedAt.is_null())
                .filter(C::FolderId.is_in(chunk.iter().map(|f| f.0)))
                .order_by_asc(C::Id)
                .into_partial_model::<DocumentSummaryRow>()
                .all(&self.db)
                .await
                .map_err(store_error)?;
            found.extend(rows.into_iter().map(rows::document_summary));
        }
        Ok(found)
    }
}

#[async_trait::async_trait]
impl VersionRepository for SqlStore {
    async fn versions(
        &self,
        document: DocumentId,
        before: Option<Version>,
        limit: u32,
    ) -> Result<Vec<VersionSummary>, StoreError> {
        use document_versions::Column as C;
        // Bytes, not characters: SQLite's length() counts characters of text.
        let size = match self.backend() {
            DbBackend::Postgres => Expr::cust("CAST(octet_length(\"content\") AS bigint)"),
            _ => Expr::cust("length(CAST(\"content\" AS blob))"),
        };
        let mut select = document_versions::Entity::find()
            .select_only()
            .columns([
                C::Version,
                C::Title,
                C::ContentHash,
                C::AuthorId,
                C::Reason,
                C::CreatedAt,
            ])
            .expr_as(size, "size")
            .filter(C::DocumentId.eq(document.0));
        if let Some(before) = before {
            select = select.filter(C::Version.lt(before.0));
        }
        let found = select
            .order_by_desc(C::Version)
            .limit(u64::from(limit))
            .into_model::<VersionSummaryRow>()
            .all(&self.db)
            .await
            .map_err(store_error)?;
        found.into_iter().map(rows::version_summary).collect()
    }

    async fn version(
        &self,
        document: DocumentId,
        version: Version,
    ) -> Result<Option<DocumentVersion>, StoreError> {
        let row = document_versions::Entity::find_by_id((document.0, version.0))
            .one(&self.db)
            .await
            .map_err(store_error)?;
        row.map(rows::version).transpose()
    }
}

#[async_trait::async_trait]
impl DocumentGrants for SqlStore {
    async fn grant_of(
        &self,
        document: DocumentId,
        user: UserId,
    ) -> Result<Option<Role>, StoreError> {
        use document_shares::Column as C;
        let now = Utc::now();
        let roles: Vec<String> = document_shares::Entity::find()
            .select_only()
            .column(C::Role)
            .filter(C::DocumentId.eq(document.0))
            .filter(C::UserId.eq(user.0))
            .filter(C::RevokedAt.is_null())
            .filter(
                Condition::any()
                    .add(C::ExpiresAt.is_null())
                    .add(C::ExpiresAt.gt(now)),
            )
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(store_error)?;
        let mut best = None;
        for role in roles {
            best = best.max(Some(rows::role(&role)?));
        }
        Ok(best)
    }
}
