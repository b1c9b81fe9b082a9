//! Context files get the upload lifecycle attachments have: `status` (`pending` while a large file
//! is being uploaded to the blob store, `ready`, or `deleted` once its object is gone) and
//! `expires_at` (when a pending upload's URL runs out). Existing rows are `ready`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table("context_files")
                    .add_column(text("status").default("ready"))
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("context_files")
                    .add_column(timestamp_with_time_zone_null("expires_at"))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_context_files_status_expires_at")
                    .table("context_files")
                    .col("status")
                    .col("expires_at")
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_attachments_status_expires_at")
                    .table("attachments")
                    .col("status")
                    .col("expires_at")
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_attachments_status_expires_at")
                    .table("attachments")
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_context_files_status_expires_at")
                    .table("context_files")
                    .to_owned(),
            )
            .await?;
        for column in ["expires_at", "status"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("context_files")
                        .drop_column(column)
                        .take(),
                )
                .await?;
        }
        Ok(())
    }
}
