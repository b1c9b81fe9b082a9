//! Comments, mentions and notifications (DATA.md), completing the tables of the initial schema
//! for what the comment features query and delete:
//!
//! * `notifications.comment_id`: the comment a notification is about, `ON DELETE CASCADE`, so a
//!   document deleted for good takes its comments, their mentions and their notifications with
//!   it (comments already cascade from `documents`, mentions from `comments`);
//! * indexes for the queries: replies by thread (`comments.parent_id`, also the cascade of the
//!   self-reference), mentions by user, notifications by comment (the cascade), and a user's
//!   notifications newest first by id (`(user_id, id)`; `(user_id, read_at, created_at)` exists).
//!
//! SQLite cannot add a foreign key with `ALTER TABLE … ADD CONSTRAINT`, but takes a column with a
//! `REFERENCES` clause whose default is `NULL`; Postgres adds the column and its constraint.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `(name, table, columns)` of the indexes this migration adds.
const INDEXES: [(&str, &str, &[&str]); 4] = [
    ("idx_comments_parent_id", "comments", &["parent_id"]),
    (
        "idx_comment_mentions_user_id",
        "comment_mentions",
        &["user_id"],
    ),
    (
        "idx_notifications_comment_id",
        "notifications",
        &["comment_id"],
    ),
    (
        "idx_notifications_user_id_id",
        "notifications",
        &["user_id", "id"],
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                db.execute_unprepared(
                    "ALTER TABLE notifications ADD COLUMN comment_id uuid NULL, \
                     ADD CONSTRAINT fk_notifications_comment_id FOREIGN KEY (comment_id) \
                     REFERENCES comments (id) ON DELETE CASCADE",
                )
                .await?;
            }
            DatabaseBackend::Sqlite => {
                // `uuid_text`: the column type the initial schema gives every UUID on SQLite.
                db.execute_unprepared(
                    "ALTER TABLE notifications ADD COLUMN comment_id uuid_text NULL \
                     REFERENCES comments (id) ON DELETE CASCADE",
                )
                .await?;
            }
            other => {
                return Err(DbErr::Migration(format!(
                    "unsupported database backend {other:?}: only Postgres and SQLite"
                )));
            }
        }
        for (name, table, cols) in INDEXES {
            let mut index = Index::create();
            index.name(name).table(table);
            for col in cols {
                index.col(*col);
            }
            manager.create_index(index.take()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in INDEXES.iter().rev() {
            manager
                .drop_index(Index::drop().name(*name).table(*table).to_owned())
                .await?;
        }
        // SQLite cannot drop a column that has a foreign key: there the column stays (nullable,
        // unused by the older code).
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE notifications DROP COLUMN comment_id")
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
