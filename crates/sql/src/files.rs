//! Attachments and context files (reads; writes go through the unit of work).

use chrono::{DateTime, Utc};
use mdcreator_domain::attachments::{Attachment, AttachmentRepository, FileStatus};
use mdcreator_domain::blobs::BlobKey;
use mdcreator_domain::context_files::{ContextFile, ContextFileRepository};
use mdcreator_domain::{AttachmentId, ContextFileId, DocumentId, StoreError, WorkspaceId};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::SqlStore;
use crate::entity::{attachments, context_files};
use crate::error::{corrupt, store_error};
use crate::rows;

#[async_trait::async_trait]
impl AttachmentRepository for SqlStore {
    async fn attachment(&self, id: AttachmentId) -> Result<Option<Attachment>, StoreError> {
        let row = attachments::Entity::find_by_id(id.0)
            .one(&self.db)
            .await
            .map_err(store_error)?;
        row.map(rows::attachment).transpose()
    }

    async fn attachments(
        &self,
        document: DocumentId,
        after: Option<AttachmentId>,
        limit: u32,
    ) -> Result<Vec<Attachment>, StoreError> {
        use attachments::Column as C;
        let mut select = attachments::Entity::find()
            .filter(C::DocumentId.eq(document.0))
            .filter(C::DeletedAt.is_null())
            .filter(C::Status.ne(FileStatus::Deleted.as_str()));
        if let Some(after) = after {
            select = select.filter(C::Id.gt(after.0));
        }
        // Ids are UUID v7: id order is creation order.
        let found = select
            .order_by_asc(C::Id)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(store_error)?;
        found.into_iter().map(rows::attachment).collect()
    }

    async fn storage_used(&self, workspace: WorkspaceId) -> Result<u64, StoreError> {
        let deleted = FileStatus::Deleted.as_str();
        let attachments: Option<i64> = attachments::Entity::find()
            .select_only()
            .expr(Expr::cust("CAST(COALESCE(SUM(\"size\"), 0) AS BIGINT)"))
            .filter(attachments::Column::WorkspaceId.eq(workspace.0))
            .filter(attachments::Column::Status.ne(deleted))
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(store_error)?;
        let context: Option<i64> = context_files::Entity::find()
            .select_only()
            .expr(Expr::cust("CAST(COALESCE(SUM(\"size\"), 0) AS BIGINT)"))
            .filter(context_files::Column::WorkspaceId.eq(workspace.0))
            .filter(context_files::Column::StorageKey.is_not_null())
            .filter(context_files::Column::Status.ne(deleted))
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(store_error)?;
        let total = attachments.unwrap_or(0) + context.unwrap_or(0);
        u64::try_from(total).map_err(|_| corrupt("storage total", total))
    }

    async fn expired_uploads(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Attachment>, StoreError> {
        use attachments::Column as C;
        let found = attachments::Entity::find()
            .filter(C::Status.eq(FileStatus::Pending.as_str()))
            .filter(C::ExpiresAt.lt(before))
            .order_by_asc(C::ExpiresAt)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(store_error)?;
        found.into_iter().map(rows::attachment).collect()
    }

    async fn blob_keys_of_document(
        &self,
        document: DocumentId,
    ) -> Result<Vec<BlobKey>, StoreError> {
        let deleted = FileStatus::Deleted.as_str();
        let mut keys: Vec<String> = attachments::Entity::find()
            .select_only()
            .column(attachments::Column::StorageKey)
            .filter(attachments::Column::DocumentId.eq(document.0))
            .filter(attachments::Column::Status.ne(deleted))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(store_error)?;
        let context: Vec<Option<String>> = context_files::Entity::find()
            .select_only()
            .column(context_files::Column::StorageKey)
            .filter(context_files::Column::DocumentId.eq(document.0))
            .filter(context_files::Column::StorageKey.is_not_null())
            .filter(context_files::Column::Status.ne(deleted))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(store_error)?;
        keys.extend(context.into_iter().flatten());
        keys.iter()
            .map(|k| BlobKey::parse(k).map_err(|_| corrupt("storage key", k)))
            .collect()
    }
}

#[async_trait::async_trait]
impl ContextFileRepository for SqlStore {
    async fn context_file(&self, id: ContextFileId) -> Result<Option<ContextFile>, StoreError> {
        let row = context_files::Entity::find_by_id(id.0)
            .one(&self.db)
            .await
            .map_err(store_error)?;
        row.map(rows::context_file).transpose()
    }

    async fn context_files(
        &self,
        workspace: WorkspaceId,
        document: Option<DocumentId>,
        after: Option<ContextFileId>,
        limit: u32,
    ) -> Result<Vec<ContextFile>, StoreError> {
        use context_files::Column as C;
        let mut select = context_files::Entity::find()
            .filter(C::WorkspaceId.eq(workspace.0))
            .filter(C::DeletedAt.is_null())
            .filter(C::Status.ne(FileStatus::Deleted.as_str()));
        if let Some(document) = document {
            select = select.filter(C::DocumentId.eq(document.0));
        }
        if let Some(after) = after {
            select = select.filter(C::Id.gt(after.0));
        }
        let found = select
            .order_by_asc(C::Id)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(store_error)?;
        found.into_iter().map(rows::context_file).collect()
    }

    async fn expired_context_uploads(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ContextFile>, StoreError> {
        use context_files::Column as C;
        let found = context_files::Entity::find()
            .filter(C::Status.eq(FileStatus::Pending.as_str()))
            .filter(C::ExpiresAt.lt(before))
            .order_by_asc(C::ExpiresAt)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(store_error)?;
        found.into_iter().map(rows::context_file).collect()
    }
}
