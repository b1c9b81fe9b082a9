//! The migration runs up, down and up again on SQLite (always) and on Postgres (when
//! `DATABASE_URL` is set; a fresh database `mdc_mig_<random>` is created and dropped), and the
//! full-text search set up by it finds a document.

use mdcreator_migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, Value};
use uuid::Uuid;

/// Every application table the migration creates.
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

async fn table_names(db: &DatabaseConnection) -> Vec<String> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name"
        }
        DbBackend::Postgres => {
            "SELECT table_name::text AS name FROM information_schema.tables \
             WHERE table_schema = 'public' ORDER BY table_name"
        }
        other => panic!("unexpected backend {other:?}"),
    };
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "name").unwrap())
        .collect()
}

async fn assert_schema_present(db: &DatabaseConnection) {
    let names = table_names(db).await;
    for table in TABLES {
        assert!(
            names.iter().any(|n| n == table),
            "table {table} missing: {names:?}"
        );
    }
    if db.get_database_backend() == DbBackend::Sqlite {
        assert!(names.iter().any(|n| n == "documents_fts"), "{names:?}");
    }
}

async fn assert_schema_gone(db: &DatabaseConnection) {
    let names = table_names(db).await;
    let left: Vec<_> = names
        .iter()
        .filter(|n| n.as_str() != "seaql_migrations")
        .collect();
    assert!(left.is_empty(), "tables left after down: {left:?}");
}

/// up, down, up.
async fn up_down_up(db: &DatabaseConnection) {
    Migrator::up(db, None).await.expect("first up");
    assert_schema_present(db).await;
    Migrator::down(db, None).await.expect("down");
    assert_schema_gone(db).await;
    Migrator::up(db, None).await.expect("second up");
    assert_schema_present(db).await;
    assert!(
        Migrator::get_pending_migrations(db)
            .await
            .unwrap()
            .is_empty()
    );
}

fn stmt(db: &DatabaseConnection, sql: &str, values: Vec<Value>) -> Statement {
    let backend = db.get_database_backend();
    // Write SQL with `?` placeholders; Postgres wants `$n`.
    let sql = if backend == DbBackend::Postgres {
        let mut out = String::new();
        let mut n = 0;
        for ch in sql.chars() {
            if ch == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(ch);
            }
        }
        out
    } else {
        sql.to_owned()
    };
    Statement::from_sql_and_values(backend, sql, values)
}

async fn exec(db: &DatabaseConnection, sql: &str, values: Vec<Value>) {
    db.execute_raw(stmt(db, sql, values))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Ids of the live documents whose title or content matches `word`.
async fn search(db: &DatabaseConnection, word: &str) -> Vec<Uuid> {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => {
            "SELECT d.id AS id FROM documents_fts f JOIN documents d ON d.rowid = f.rowid \
             WHERE documents_fts MATCH ? AND d.deleted_at IS NULL \
             ORDER BY bm25(documents_fts, 10.0, 1.0)"
        }
        _ => {
            "SELECT id FROM documents WHERE search @@ to_tsquery('simple', ?) \
             AND deleted_at IS NULL \
             ORDER BY ts_rank(search, to_tsquery('simple', ?)) DESC"
        }
    };
    let values = if db.get_database_backend() == DbBackend::Sqlite {
        vec![word.into()]
    } else {
        vec![word.into(), word.into()]
    };
    db.query_all_raw(stmt(db, sql, values))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<Uuid>("", "id").unwrap())
        .collect()
}

/// Insert a user, a workspace and two documents; check search follows inserts, updates and
/// deletes (including the cascade from the workspace).
async fn full_text_search(db: &DatabaseConnection) {
    let user = Uuid::now_v7();
    let ws = Uuid::now_v7();
    let doc = Uuid::now_v7();
    let other = Uuid::now_v7();

    exec(
        db,
        "INSERT INTO users (id, subject, email, display_name, created_at, updated_at) \
         VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        vec![
            user.into(),
            "sub-1".into(),
            "ada@example.com".into(),
            "Ada".into(),
        ],
    )
    .await;
    // change_seq and settings take their defaults.
    exec(
        db,
        "INSERT INTO workspaces (id, name, slug, created_by, created_at, updated_at) \
         VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        vec![ws.into(), "Notes".into(), "notes".into(), user.into()],
    )
    .await;
    exec(
        db,
        "INSERT INTO workspace_members (workspace_id, user_id, role, created_at, updated_at) \
         VALUES (?, ?, 'owner', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        vec![ws.into(), user.into()],
    )
    .await;
    let insert_doc = "INSERT INTO documents (id, workspace_id, title, content, content_hash, \
                      version, created_by, updated_by, created_at, updated_at) \
                      VALUES (?, ?, ?, ?, ?, 1, ?, ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)";
    exec(
        db,
        insert_doc,
        vec![
            doc.into(),
            ws.into(),
            "Zebra handbook".into(),
            "How to feed a quokka.".into(),
            "h1".into(),
            user.into(),
            user.into(),
        ],
    )
    .await;
    exec(
        db,
        insert_doc,
        vec![
            other.into(),
            ws.into(),
            "Shopping".into(),
            "apples, zebra crossing".into(),
            "h2".into(),
            user.into(),
            user.into(),
        ],
    )
    .await;

    assert_eq!(search(db, "quokka").await, vec![doc]);
    // Both documents match; the one with the word in its title ranks first (Postgres: weight A
    // vs B; SQLite: bm25 with the title column weighted 10).
    assert_eq!(search(db, "zebra").await, vec![doc, other]);
    assert!(search(db, "giraffe").await.is_empty());

    // An update re-indexes.
    exec(
        db,
        "UPDATE documents SET content = ?, version = version + 1 WHERE id = ?",
        vec!["How to feed a giraffe.".into(), doc.into()],
    )
    .await;
    assert!(search(db, "quokka").await.is_empty());
    assert_eq!(search(db, "giraffe").await, vec![doc]);

    // An update of other columns keeps the index.
    exec(
        db,
        "UPDATE documents SET position = 2.5 WHERE id = ?",
        vec![doc.into()],
    )
    .await;
    assert_eq!(search(db, "giraffe").await, vec![doc]);

    // A delete removes it.
    exec(db, "DELETE FROM documents WHERE id = ?", vec![other.into()]).await;
    assert_eq!(search(db, "zebra").await, vec![doc]);

    // Roles outside the five are refused.
    let user2 = Uuid::now_v7();
    exec(
        db,
        "INSERT INTO users (id, subject, email, display_name, created_at, updated_at) \
         VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        vec![
            user2.into(),
            "sub-2".into(),
            "bob@example.com".into(),
            "Bob".into(),
        ],
    )
    .await;
    let member = "INSERT INTO workspace_members (workspace_id, user_id, role, created_at, \
                  updated_at) VALUES (?, ?, ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)";
    let bad = db
        .execute_raw(stmt(
            db,
            member,
            vec![ws.into(), user2.into(), "superuser".into()],
        ))
        .await;
    assert!(bad.is_err(), "a bad role was accepted");
    exec(db, member, vec![ws.into(), user2.into(), "viewer".into()]).await;

    // Deleting the workspace cascades to its documents and members (and the FTS index).
    exec(db, "DELETE FROM workspaces WHERE id = ?", vec![ws.into()]).await;
    assert!(search(db, "giraffe").await.is_empty());
    let left = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM workspace_members",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(left, 0);

    if db.get_database_backend() == DbBackend::Sqlite {
        // The external-content index agrees with its content table.
        db.execute_unprepared("INSERT INTO documents_fts(documents_fts) VALUES('integrity-check')")
            .await
            .expect("fts integrity-check");
    }
}

#[tokio::test]
async fn sqlite_up_down_up_and_search() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    up_down_up(&db).await;
    full_text_search(&db).await;
    // And down/up once more with data having been there.
    Migrator::down(&db, None).await.unwrap();
    assert_schema_gone(&db).await;
    Migrator::up(&db, None).await.unwrap();
    db.close().await.unwrap();
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[authority_start..]
        .find('/')
        .map(|i| authority_start + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[test]
fn with_database_replaces_the_path() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "x"),
        "postgres://h:5432/x"
    );
}

#[tokio::test]
async fn postgres_up_down_up_and_search() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("DATABASE_URL not set: skipping the Postgres migration test");
        return;
    };
    if !url.starts_with("postgres") {
        eprintln!("DATABASE_URL is not Postgres: skipping the Postgres migration test");
        return;
    }
    let admin = Database::connect(&url).await.expect("connect DATABASE_URL");
    let name = format!("mdc_mig_{}", Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();

    // Run the checks in their own task so the database is dropped even when they fail.
    let test_url = with_database(&url, &name);
    let outcome = tokio::spawn(async move {
        let db = Database::connect(&test_url).await.expect("connect test db");
        up_down_up(&db).await;
        full_text_search(&db).await;
        db.close().await.unwrap();
    })
    .await;

    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    admin.close().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The update log's rows, in order: `(document_id, id, data)`.
async fn update_log(db: &DatabaseConnection) -> Vec<(Uuid, i64, Vec<u8>)> {
    db.query_all_raw(stmt(
        db,
        "SELECT document_id, id, data FROM document_updates ORDER BY document_id, id",
        vec![],
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| {
        (
            row.try_get("", "document_id").unwrap(),
            row.try_get("", "id").unwrap(),
            row.try_get("", "data").unwrap(),
        )
    })
    .collect()
}

/// `m20261128_000001_update_log_by_document` rebuilds SQLite's update log: up keeps every row
/// and its id, down keeps every row in order.
#[tokio::test]
async fn sqlite_update_log_keeps_its_rows_across_the_rebuild() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    let before = Migrator::migrations().len() as u32 - 1;
    Migrator::up(&db, Some(before)).await.unwrap();
    let (user, ws) = (Uuid::now_v7(), Uuid::now_v7());
    let mut docs = [Uuid::now_v7(), Uuid::now_v7()];
    docs.sort();
    exec(
        &db,
        "INSERT INTO users (id, subject, email, display_name, created_at, updated_at) \
         VALUES (?, 's', 'a@example.com', 'A', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        vec![user.into()],
    )
    .await;
    exec(
        &db,
        "INSERT INTO workspaces (id, name, slug, created_by, created_at, updated_at) \
         VALUES (?, 'W', 'w', ?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        vec![ws.into(), user.into()],
    )
    .await;
    for doc in docs {
        exec(
            &db,
            "INSERT INTO documents (id, workspace_id, title, content, content_hash, version, \
             created_at, updated_at) \
             VALUES (?, ?, 't', '', 'h', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            vec![doc.into(), ws.into()],
        )
        .await;
    }
    // Interleaved, as live rooms write them: ids 1..=4.
    for (doc, data) in [(docs[1], 1u8), (docs[0], 2), (docs[1], 3), (docs[0], 4)] {
        exec(
            &db,
            "INSERT INTO document_updates (document_id, data, created_at) \
             VALUES (?, ?, CURRENT_TIMESTAMP)",
            vec![doc.into(), vec![data].into()],
        )
        .await;
    }
    let old = update_log(&db).await;
    assert_eq!(
        old,
        [
            (docs[0], 2, vec![2]),
            (docs[0], 4, vec![4]),
            (docs[1], 1, vec![1]),
            (docs[1], 3, vec![3]),
        ]
    );

    Migrator::up(&db, None).await.unwrap();
    assert_eq!(update_log(&db).await, old, "every row and id kept");
    let sql: String = db
        .query_one_raw(stmt(
            &db,
            "SELECT sql FROM sqlite_master WHERE name = 'document_updates'",
            vec![],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "sql")
        .unwrap();
    assert!(sql.contains("WITHOUT ROWID"), "{sql}");

    Migrator::down(&db, Some(1)).await.unwrap();
    let data: Vec<_> = update_log(&db)
        .await
        .into_iter()
        .map(|(doc, _, data)| (doc, data))
        .collect();
    assert_eq!(
        data,
        [
            (docs[0], vec![2]),
            (docs[0], vec![4]),
            (docs[1], vec![1]),
            (docs[1], vec![3]),
        ],
        "down keeps the rows in order"
    );
    db.close().await.unwrap();
}
