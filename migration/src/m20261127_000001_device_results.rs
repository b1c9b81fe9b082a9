//! Sync devices keep their recent push results one row per mutation (`device_results`) instead
//! of rewriting a JSON array column (`devices.last_results`, up to 100 results) with every
//! mutation. The column stays for devices that pushed before this migration: their results are
//! read from it until newer ones replace them.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("device_results")
                    .col(uuid("device_id"))
                    .col(big_integer("mutation_id"))
                    .col(json_binary("result"))
                    .primary_key(Index::create().col("device_id").col("mutation_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_device_results_device_id")
                            .from("device_results", "device_id")
                            .to("devices", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("device_results").to_owned())
            .await
    }
}
