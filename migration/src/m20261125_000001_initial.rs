//! The initial schema: every table of `spec/DATA.md`, for Postgres and SQLite.
//!
//! Conventions: ids are UUIDs (`uuid` on Postgres; 16-byte blobs in a `uuid_text` column on
//! SQLite, as sqlx binds them), timestamps are `timestamptz` (RFC 3339 text on SQLite), JSON is
//! `jsonb` (text on SQLite), bytes are `bytea` (blob on SQLite). Every foreign key names its
//! `ON DELETE` behaviour.
//!
//! Full-text search on documents differs per backend:
//! - Postgres: a generated, stored `documents.search tsvector` column (title weighted `A`, content
//!   `B`, `simple` configuration) with a GIN index. Query with
//!   `search @@ websearch_to_tsquery('simple', $1)` / `to_tsquery('simple', $1)`.
//! - SQLite: an FTS5 external-content table `documents_fts(title, content)` over `documents`, keyed
//!   by the documents' `rowid`, kept in sync by triggers. Query with
//!   `documents_fts MATCH ?` joined on `documents.rowid = documents_fts.rowid`.
//!   `documents` must not be written with `INSERT OR REPLACE` (its implicit delete does not fire
//!   the delete trigger); `INSERT .. ON CONFLICT DO UPDATE` is fine. After a `VACUUM` or any
//!   suspicion of drift, `INSERT INTO documents_fts(documents_fts) VALUES('rebuild')` rebuilds
//!   the index from `documents`.

use sea_orm_migration::sea_orm::DatabaseBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The five roles, weakest first.
const ROLES: [&str; 5] = ["viewer", "commenter", "editor", "admin", "owner"];

/// Tables in creation order (every table only references tables before it, or itself).
const TABLES: [&str; 23] = [
    "users",
    "local_accounts",
    "signing_keys",
    "refresh_tokens",
    "api_tokens",
    "workspaces",
    "workspace_members",
    "invitations",
    "folders",
    "documents",
    "document_versions",
    "document_updates",
    "document_shares",
    "comments",
    "comment_mentions",
    "notifications",
    "attachments",
    "context_files",
    "changes",
    "devices",
    "idempotency_keys",
    "ai_usage",
    "audit_events",
];

const PG_SEARCH: [&str; 2] = [
    // Only the first 100,000 characters of a body are indexed: a tsvector must stay under 1 MB,
    // and a 10 MiB document of distinct words would otherwise fail to save.
    "ALTER TABLE documents ADD COLUMN search tsvector GENERATED ALWAYS AS (\
     setweight(to_tsvector('simple', coalesce(title, '')), 'A') || \
     setweight(to_tsvector('simple', left(coalesce(content, ''), 100000)), 'B')) STORED",
    "CREATE INDEX idx_documents_search ON documents USING GIN (search)",
];

const SQLITE_FTS: [&str; 4] = [
    "CREATE VIRTUAL TABLE documents_fts USING fts5(\
     title, content, content='documents', content_rowid='rowid')",
    "CREATE TRIGGER documents_fts_ai AFTER INSERT ON documents BEGIN \
     INSERT INTO documents_fts(rowid, title, content) VALUES (new.rowid, new.title, new.content); \
     END",
    "CREATE TRIGGER documents_fts_ad AFTER DELETE ON documents BEGIN \
     INSERT INTO documents_fts(documents_fts, rowid, title, content) \
     VALUES ('delete', old.rowid, old.title, old.content); \
     END",
    "CREATE TRIGGER documents_fts_au AFTER UPDATE OF title, content ON documents BEGIN \
     INSERT INTO documents_fts(documents_fts, rowid, title, content) \
     VALUES ('delete', old.rowid, old.title, old.content); \
     INSERT INTO documents_fts(rowid, title, content) VALUES (new.rowid, new.title, new.content); \
     END",
];

const SQLITE_FTS_DROP: [&str; 4] = [
    "DROP TRIGGER IF EXISTS documents_fts_au",
    "DROP TRIGGER IF EXISTS documents_fts_ad",
    "DROP TRIGGER IF EXISTS documents_fts_ai",
    "DROP TABLE IF EXISTS documents_fts",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, indexes) in schema() {
            manager.create_table(table).await?;
            for index in indexes {
                manager.create_index(index).await?;
            }
        }

        let db = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                for sql in PG_SEARCH {
                    db.execute_unprepared(sql).await?;
                }
            }
            DatabaseBackend::Sqlite => {
                for sql in SQLITE_FTS {
                    db.execute_unprepared(sql).await?;
                }
            }
            other => {
                return Err(DbErr::Migration(format!(
                    "unsupported database backend {other:?}: only Postgres and SQLite"
                )));
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Sqlite {
            let db = manager.get_connection();
            for sql in SQLITE_FTS_DROP {
                db.execute_unprepared(sql).await?;
            }
        }
        // Postgres: the `search` column and its index go with `documents`.
        for table in TABLES.iter().rev() {
            manager
                .drop_table(Table::drop().table(*table).to_owned())
                .await?;
        }
        Ok(())
    }

    /// Run the whole schema in one transaction on both backends (SQLite supports transactional
    /// DDL, including virtual tables and triggers), so a failed migration leaves nothing behind.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

// ---------------------------------------------------------------------------------------------
// helpers

fn ts(col: &'static str) -> ColumnDef {
    timestamp_with_time_zone(col)
}

fn ts_null(col: &'static str) -> ColumnDef {
    timestamp_with_time_zone_null(col)
}

/// A `text not null` role column restricted to the five roles.
fn role(table: &'static str, col: &'static str) -> ColumnDef {
    text(col)
        .check((format!("ck_{table}_{col}"), Expr::col(col).is_in(ROLES)))
        .take()
}

/// A foreign key `table.col -> to.id`.
fn fk(
    table: &'static str,
    col: &'static str,
    to: &'static str,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_{col}"))
        .from(table, col)
        .to(to, "id")
        .on_delete(on_delete)
        .take()
}

/// A plain index named `idx_<table>_<cols>`.
fn idx(table: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index
        .name(format!("idx_{table}_{}", cols.join("_")))
        .table(table);
    for col in cols {
        index.col(*col);
    }
    index.take()
}

/// A composite primary key.
fn pk(cols: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    for col in cols {
        index.col(*col);
    }
    index.take()
}

use ForeignKeyAction::{Cascade, SetNull};

/// Every table with its secondary indexes, in creation order (matches [`TABLES`]).
fn schema() -> Vec<(TableCreateStatement, Vec<IndexCreateStatement>)> {
    let out = vec![
        (
            Table::create()
                .table("users")
                .col(pk_uuid("id"))
                .col(text_uniq("subject"))
                .col(text_uniq("email"))
                .col(text("display_name"))
                .col(text_null("avatar_url"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .col(ts_null("deleted_at"))
                .take(),
            vec![],
        ),
        (
            Table::create()
                .table("local_accounts")
                .col(pk_uuid("user_id"))
                .col(text_uniq("email"))
                .col(text("password_hash"))
                .col(boolean("verified").default(false))
                .col(text_null("code_hash"))
                .col(text_null("code_purpose"))
                .col(ts_null("code_expires_at"))
                .col(integer("code_attempts").default(0))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .foreign_key(&mut fk("local_accounts", "user_id", "users", Cascade))
                .take(),
            vec![],
        ),
        (
            Table::create()
                .table("signing_keys")
                .col(text("kid").primary_key())
                .col(text("algorithm"))
                .col(blob("private_key"))
                .col(json_binary("public_jwk"))
                .col(ts("created_at"))
                .col(ts_null("retired_at"))
                .take(),
            vec![],
        ),
        (
            Table::create()
                .table("refresh_tokens")
                .col(pk_uuid("id"))
                .col(uuid("user_id"))
                .col(uuid("family_id"))
                .col(text_uniq("token_hash"))
                .col(uuid_null("device_id"))
                .col(ts("expires_at"))
                .col(ts_null("revoked_at"))
                .col(uuid_null("replaced_by"))
                .col(ts("created_at"))
                .foreign_key(&mut fk("refresh_tokens", "user_id", "users", Cascade))
                .take(),
            vec![
                idx("refresh_tokens", &["user_id"]),
                idx("refresh_tokens", &["family_id"]),
            ],
        ),
        (
            Table::create()
                .table("api_tokens")
                .col(pk_uuid("id"))
                .col(uuid("user_id"))
                .col(text("name"))
                .col(text("prefix"))
                .col(text_uniq("token_hash"))
                .col(text("scope"))
                .col(ts_null("expires_at"))
                .col(ts_null("last_used_at"))
                .col(ts_null("revoked_at"))
                .col(ts("created_at"))
                .foreign_key(&mut fk("api_tokens", "user_id", "users", Cascade))
                .take(),
            vec![idx("api_tokens", &["user_id"])],
        ),
        (
            Table::create()
                .table("workspaces")
                .col(pk_uuid("id"))
                .col(text("name"))
                .col(text_uniq("slug"))
                .col(big_integer("change_seq").default(0))
                .col(json_binary("settings").default(Expr::cust("'{}'")))
                .col(uuid_null("created_by"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .col(ts_null("deleted_at"))
                .foreign_key(&mut fk("workspaces", "created_by", "users", SetNull))
                .take(),
            vec![],
        ),
        (
            Table::create()
                .table("workspace_members")
                .col(uuid("workspace_id"))
                .col(uuid("user_id"))
                .col(role("workspace_members", "role"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .primary_key(&mut pk(&["workspace_id", "user_id"]))
                .foreign_key(&mut fk(
                    "workspace_members",
                    "workspace_id",
                    "workspaces",
                    Cascade,
                ))
                .foreign_key(&mut fk("workspace_members", "user_id", "users", Cascade))
                .take(),
            vec![idx("workspace_members", &["user_id"])],
        ),
        (
            Table::create()
                .table("invitations")
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(text("kind"))
                .col(text_null("email"))
                .col(role("invitations", "role"))
                .col(text_uniq("token_hash"))
                .col(integer_null("max_uses"))
                .col(integer("uses").default(0))
                .col(ts("expires_at"))
                .col(ts_null("revoked_at"))
                .col(uuid_null("created_by"))
                .col(ts("created_at"))
                .foreign_key(&mut fk(
                    "invitations",
                    "workspace_id",
                    "workspaces",
                    Cascade,
                ))
                .foreign_key(&mut fk("invitations", "created_by", "users", SetNull))
                .take(),
            vec![idx("invitations", &["workspace_id"])],
        ),
        (
            Table::create()
                .table("folders")
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid_null("parent_id"))
                .col(text("name"))
                .col(double("position").default(0.0))
                .col(big_integer("version").default(1))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .col(ts_null("deleted_at"))
                .foreign_key(&mut fk("folders", "workspace_id", "workspaces", Cascade))
                .foreign_key(&mut fk("folders", "parent_id", "folders", Cascade))
                .take(),
            vec![idx("folders", &["workspace_id", "parent_id"])],
        ),
        (
            Table::create()
                .table("documents")
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid_null("folder_id"))
                .col(text("title"))
                .col(text("content"))
                .col(text("content_hash"))
                .col(big_integer("version"))
                .col(double("position").default(0.0))
                .col(blob_null("yjs_state"))
                .col(uuid_null("created_by"))
                .col(uuid_null("updated_by"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .col(ts_null("deleted_at"))
                .foreign_key(&mut fk("documents", "workspace_id", "workspaces", Cascade))
                .foreign_key(&mut fk("documents", "folder_id", "folders", SetNull))
                .foreign_key(&mut fk("documents", "created_by", "users", SetNull))
                .foreign_key(&mut fk("documents", "updated_by", "users", SetNull))
                .take(),
            vec![
                idx("documents", &["workspace_id", "folder_id"]),
                idx("documents", &["workspace_id", "updated_at", "id"]),
                idx("documents", &["workspace_id", "deleted_at"]),
            ],
        ),
        (
            Table::create()
                .table("document_versions")
                .col(uuid("document_id"))
                .col(big_integer("version"))
                .col(text("title"))
                .col(text("content"))
                .col(text("content_hash"))
                .col(uuid_null("author_id"))
                .col(text("reason"))
                .col(ts("created_at"))
                .primary_key(&mut pk(&["document_id", "version"]))
                .foreign_key(&mut fk(
                    "document_versions",
                    "document_id",
                    "documents",
                    Cascade,
                ))
                .foreign_key(&mut fk("document_versions", "author_id", "users", SetNull))
                .take(),
            vec![],
        ),
        (
            Table::create()
                .table("document_updates")
                .col(big_pk_auto("id"))
                .col(uuid("document_id"))
                .col(blob("data"))
                .col(ts("created_at"))
                .foreign_key(&mut fk(
                    "document_updates",
                    "document_id",
                    "documents",
                    Cascade,
                ))
                .take(),
            vec![idx("document_updates", &["document_id", "id"])],
        ),
        (
            Table::create()
                .table("document_shares")
                .col(pk_uuid("id"))
                .col(uuid("document_id"))
                .col(uuid_null("user_id"))
                .col(text_null("link_token_hash").unique_key())
                .col(role("document_shares", "role"))
                .col(ts_null("expires_at"))
                .col(ts_null("revoked_at"))
                .col(uuid_null("created_by"))
                .col(ts("created_at"))
                .foreign_key(&mut fk(
                    "document_shares",
                    "document_id",
                    "documents",
                    Cascade,
                ))
                .foreign_key(&mut fk("document_shares", "user_id", "users", Cascade))
                .foreign_key(&mut fk("document_shares", "created_by", "users", SetNull))
                .take(),
            vec![
                idx("document_shares", &["document_id"]),
                idx("document_shares", &["user_id"]),
            ],
        ),
        (
            Table::create()
                .table("comments")
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid("document_id"))
                .col(uuid_null("parent_id"))
                .col(uuid_null("author_id"))
                .col(text("body"))
                .col(json_binary_null("anchor"))
                .col(big_integer("version").default(1))
                .col(ts_null("resolved_at"))
                .col(uuid_null("resolved_by"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .col(ts_null("deleted_at"))
                .foreign_key(&mut fk("comments", "workspace_id", "workspaces", Cascade))
                .foreign_key(&mut fk("comments", "document_id", "documents", Cascade))
                .foreign_key(&mut fk("comments", "parent_id", "comments", Cascade))
                .foreign_key(&mut fk("comments", "author_id", "users", SetNull))
                .foreign_key(&mut fk("comments", "resolved_by", "users", SetNull))
                .take(),
            vec![idx("comments", &["document_id", "created_at"])],
        ),
        (
            Table::create()
                .table("comment_mentions")
                .col(uuid("comment_id"))
                .col(uuid("user_id"))
                .primary_key(&mut pk(&["comment_id", "user_id"]))
                .foreign_key(&mut fk(
                    "comment_mentions",
                    "comment_id",
                    "comments",
                    Cascade,
                ))
                .foreign_key(&mut fk("comment_mentions", "user_id", "users", Cascade))
                .take(),
            vec![],
        ),
        (
            Table::create()
                .table("notifications")
                .col(pk_uuid("id"))
                .col(uuid("user_id"))
                .col(text("kind"))
                .col(json_binary("payload"))
                .col(ts_null("read_at"))
                .col(ts("created_at"))
                .foreign_key(&mut fk("notifications", "user_id", "users", Cascade))
                .take(),
            vec![idx("notifications", &["user_id", "read_at", "created_at"])],
        ),
        (
            Table::create()
                .table("attachments")
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid("document_id"))
                .col(text_uniq("storage_key"))
                .col(text("filename"))
                .col(text("content_type"))
                .col(big_integer("size"))
                .col(text_null("sha256"))
                .col(text("status"))
                .col(uuid_null("created_by"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .col(ts_null("expires_at"))
                .col(ts_null("deleted_at"))
                .foreign_key(&mut fk(
                    "attachments",
                    "workspace_id",
                    "workspaces",
                    Cascade,
                ))
                .foreign_key(&mut fk("attachments", "document_id", "documents", Cascade))
                .foreign_key(&mut fk("attachments", "created_by", "users", SetNull))
                .take(),
            vec![
                idx("attachments", &["document_id"]),
                idx("attachments", &["workspace_id", "status"]),
            ],
        ),
        (
            Table::create()
                .table("context_files")
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid_null("document_id"))
                .col(text("name"))
                .col(text("content_type"))
                .col(text_null("storage_key"))
                .col(text_null("inline_text"))
                .col(text("content_hash"))
                .col(big_integer("size"))
                .col(big_integer("version").default(1))
                .col(uuid_null("created_by"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .col(ts_null("deleted_at"))
                .foreign_key(&mut fk(
                    "context_files",
                    "workspace_id",
                    "workspaces",
                    Cascade,
                ))
                .foreign_key(&mut fk(
                    "context_files",
                    "document_id",
                    "documents",
                    Cascade,
                ))
                .foreign_key(&mut fk("context_files", "created_by", "users", SetNull))
                .take(),
            vec![idx("context_files", &["workspace_id", "document_id"])],
        ),
        (
            Table::create()
                .table("changes")
                .col(uuid("workspace_id"))
                .col(big_integer("seq"))
                .col(text("entity_type"))
                .col(uuid("entity_id"))
                .col(text("op"))
                .col(big_integer_null("version"))
                .col(uuid_null("actor_id"))
                .col(uuid_null("device_id"))
                .col(ts("at"))
                .primary_key(&mut pk(&["workspace_id", "seq"]))
                .foreign_key(&mut fk("changes", "workspace_id", "workspaces", Cascade))
                .take(),
            vec![idx(
                "changes",
                &["workspace_id", "entity_type", "entity_id"],
            )],
        ),
        (
            Table::create()
                .table("devices")
                .col(pk_uuid("id"))
                .col(uuid("user_id"))
                .col(text("name"))
                .col(text("platform"))
                .col(big_integer("last_mutation_id").default(0))
                .col(json_binary("last_results"))
                .col(ts("created_at"))
                .col(ts("last_seen_at"))
                .foreign_key(&mut fk("devices", "user_id", "users", Cascade))
                .take(),
            vec![idx("devices", &["user_id"])],
        ),
        (
            Table::create()
                .table("idempotency_keys")
                .col(uuid("user_id"))
                .col(text("key"))
                .col(text("request_hash"))
                .col(integer_null("status"))
                .col(json_binary_null("response_headers"))
                .col(blob_null("response_body"))
                .col(ts("created_at"))
                .col(ts("expires_at"))
                .primary_key(&mut pk(&["user_id", "key"]))
                .foreign_key(&mut fk("idempotency_keys", "user_id", "users", Cascade))
                .take(),
            vec![idx("idempotency_keys", &["expires_at"])],
        ),
        (
            Table::create()
                .table("ai_usage")
                .col(big_pk_auto("id"))
                .col(uuid("user_id"))
                .col(uuid_null("workspace_id"))
                .col(text("provider"))
                .col(text("model"))
                .col(big_integer("tokens_in"))
                .col(big_integer("tokens_out"))
                .col(ts("at"))
                .foreign_key(&mut fk("ai_usage", "user_id", "users", Cascade))
                .foreign_key(&mut fk("ai_usage", "workspace_id", "workspaces", SetNull))
                .take(),
            vec![idx("ai_usage", &["user_id", "at"])],
        ),
        (
            Table::create()
                .table("audit_events")
                .col(pk_uuid("id"))
                .col(uuid("workspace_id"))
                .col(uuid_null("actor_id"))
                .col(text("action"))
                .col(text("target_type"))
                .col(uuid_null("target_id"))
                .col(json_binary("details"))
                .col(ts("at"))
                .foreign_key(&mut fk(
                    "audit_events",
                    "workspace_id",
                    "workspaces",
                    Cascade,
                ))
                .take(),
            vec![idx("audit_events", &["workspace_id", "at"])],
        ),
    ];

    debug_assert_eq!(out.len(), TABLES.len());
    out
}
