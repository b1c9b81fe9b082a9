//! SQLite: the Yjs update log is stored by document, and ids are counted per document.
//!
//! A live room appends an update to `document_updates` hundreds of times a second. In a rowid
//! table with `AUTOINCREMENT` and an index on `(document_id, id)`, every append wrote three
//! pages to the WAL (the table's last leaf, a leaf of the index, `sqlite_sequence`), and the rows
//! of one document were interleaved with every other live document's, so a compaction deleting
//! 500 of them rewrote hundreds of pages. As a `WITHOUT ROWID` table keyed by
//! `(document_id, id)`, an append writes the one leaf its document's rows end in, and a
//! compaction deletes a contiguous run.
//!
//! Ids are then handed out per document by the insert itself: one more than the document's
//! highest, and never one a compaction merged, which `documents.yjs_merged_through` (new, on
//! both backends) remembers after the rows are gone. An id is never reused within a document,
//! which a compaction relies on to know that the rows it read are still the same rows.
//! Postgres keeps its `bigserial` ids and heap table: concurrent writers there need no help.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const SQLITE_UP: [&str; 4] = [
    "CREATE TABLE document_updates_by_document ( \
     document_id uuid_text NOT NULL, id integer NOT NULL, data blob NOT NULL, \
     created_at timestamp_with_timezone_text NOT NULL, PRIMARY KEY (document_id, id), \
     FOREIGN KEY (document_id) REFERENCES documents (id) ON DELETE CASCADE ) WITHOUT ROWID",
    "INSERT INTO document_updates_by_document (document_id, id, data, created_at) \
     SELECT document_id, id, data, created_at FROM document_updates",
    "DROP TABLE document_updates",
    "ALTER TABLE document_updates_by_document RENAME TO document_updates",
];

/// The table as `m20261125_000001_initial` created it.
const SQLITE_DOWN: [&str; 5] = [
    "CREATE TABLE document_updates_by_rowid ( \
     id integer NOT NULL PRIMARY KEY AUTOINCREMENT, document_id uuid_text NOT NULL, \
     data blob NOT NULL, created_at timestamp_with_timezone_text NOT NULL, \
     FOREIGN KEY (document_id) REFERENCES documents (id) ON DELETE CASCADE )",
    // Per-document ids are not unique across documents: number the rows again, in order.
    "INSERT INTO document_updates_by_rowid (document_id, data, created_at) \
     SELECT document_id, data, created_at FROM document_updates ORDER BY document_id, id",
    "DROP TABLE document_updates",
    "ALTER TABLE document_updates_by_rowid RENAME TO document_updates",
    "CREATE INDEX idx_document_updates_document_id_id ON document_updates (document_id, id)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// One transaction on every backend: a rebuild stopped between its `DROP` and its `RENAME`
    /// would leave no update log, and each statement would otherwise take any of the pool's
    /// connections.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("documents")
                    .add_column(ColumnDef::new("yjs_merged_through").big_integer().null())
                    .take(),
            )
            .await?;
        if manager.get_database_backend() == DatabaseBackend::Sqlite {
            let db = manager.get_connection();
            for sql in SQLITE_UP {
                db.execute_unprepared(sql).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DatabaseBackend::Sqlite {
            for sql in SQLITE_DOWN {
                db.execute_unprepared(sql).await?;
            }
            db.execute_unprepared("ALTER TABLE documents DROP COLUMN yjs_merged_through")
                .await?;
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table("documents")
                    .drop_column("yjs_merged_through")
                    .take(),
            )
            .await
    }
}
