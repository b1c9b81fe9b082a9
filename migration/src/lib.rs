//! The schema of MD Creator for Postgres and SQLite.
//!
//! The server runs [`Migrator`] from its `migrate` subcommand (and at start-up for the embedded
//! SQLite default). Every migration works on both backends; where they differ (full-text search),
//! the migration branches on [`sea_orm_migration::SchemaManager::get_database_backend`].

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_initial;
mod m20261125_000002_sync;
mod m20261126_000001_context_file_uploads;
mod m20261127_000001_comments;
mod m20261127_000001_device_results;
mod m20261128_000001_update_log_by_document;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_initial::Migration),
            Box::new(m20261126_000001_context_file_uploads::Migration),
            Box::new(m20261125_000002_sync::Migration),
            Box::new(m20261127_000001_comments::Migration),
            Box::new(m20261127_000001_device_results::Migration),
            Box::new(m20261128_000001_update_log_by_document::Migration),
        ]
    }
}
