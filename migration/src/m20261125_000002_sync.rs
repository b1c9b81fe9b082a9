//! Sync (SYNC.md): what paging and retention of the change feed need.
//!
//! * `changes.commit_end_seq`: the last seq of the commit that wrote the row, in its workspace,
//!   so that a pull page can end on a commit boundary (rows written before this migration have
//!   none and count as commits of their own);
//! * `workspaces.feed_horizon_seq`: the highest seq compaction has removed; a cursor below it is
//!   expired (`410 cursor_expired`);
//! * an index to find the latest row of an entity (`ORDER BY seq` within one entity).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

const ENTITY_SEQ_INDEX: &str = "idx_changes_workspace_entity_seq";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table("changes")
                    .add_column(big_integer_null("commit_end_seq"))
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("workspaces")
                    .add_column(big_integer("feed_horizon_seq").default(0))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(ENTITY_SEQ_INDEX)
                    .table("changes")
                    .col("workspace_id")
                    .col("entity_type")
                    .col("entity_id")
                    .col("seq")
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(ENTITY_SEQ_INDEX)
                    .table("changes")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("workspaces")
                    .drop_column("feed_horizon_seq")
                    .take(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("changes")
                    .drop_column("commit_end_seq")
                    .take(),
            )
            .await
    }
}
