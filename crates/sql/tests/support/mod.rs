//! Fixtures of the contract suite: a fresh, migrated database per test — a temporary SQLite
//! file always, and a fresh Postgres database on the `DATABASE_URL` server when that is set.

#![allow(dead_code)]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

use chrono::{DateTime, SubsecRound, Utc};
use futures::FutureExt as _;
use mdcreator_domain::documents::{Document, DocumentVersion, VersionReason};
use mdcreator_domain::feed::{Change, EntityType, UnitOfWork, Write, WriteBatch};
use mdcreator_domain::members::Member;
use mdcreator_domain::users::User;
use mdcreator_domain::workspaces::Workspace;
use mdcreator_domain::{
    ContentHash, DocumentId, Email, FolderId, Role, UserId, Version, WorkspaceId,
};
use mdcreator_sql::{SqlSettings, SqlStore};
use sea_orm::{ConnectionTrait, Database};
use uuid::Uuid;

/// Runs `test` against a fresh SQLite file database, removed afterwards.
pub async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(SqlStore) -> Fut,
    Fut: Future<Output = ()>,
{
    on_sqlite_at(|store, _url| test(store)).await;
}

/// [`on_sqlite`], for tests that also open the file themselves: `test` gets its URL.
pub async fn on_sqlite_at<F, Fut>(test: F)
where
    F: FnOnce(SqlStore, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let path: PathBuf =
        std::env::temp_dir().join(format!("mdc-test-{}.db", Uuid::new_v4().simple()));
    let url = format!("sqlite://{}", path.display());
    let settings = SqlSettings {
        max_connections: 8,
        ..SqlSettings::default()
    };
    let store = SqlStore::connect(&url, &settings)
        .await
        .expect("connect to SQLite");
    store.migrate().await.expect("migrate SQLite");
    let outcome = AssertUnwindSafe(test(store.clone(), url))
        .catch_unwind()
        .await;
    store.close().await.ok();
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        std::fs::remove_file(file).ok();
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Runs `test` against a fresh database `mdc_test_<uuid>` on the `DATABASE_URL` server, dropped
/// afterwards. Skipped (passes) when `DATABASE_URL` is not set.
pub async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(SqlStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let Ok(server) = std::env::var("DATABASE_URL") else {
        eprintln!("DATABASE_URL is not set: skipping the Postgres run");
        return;
    };
    let name = format!("mdc_test_{}", Uuid::new_v4().simple());
    let admin = Database::connect(server.as_str())
        .await
        .expect("connect to the Postgres server");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the test database");
    let store = SqlStore::connect(&database_url(&server, &name), &SqlSettings::default())
        .await
        .expect("connect to the test database");
    store.migrate().await.expect("migrate Postgres");
    let outcome = AssertUnwindSafe(test(store.clone())).catch_unwind().await;
    store.close().await.ok();
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .expect("drop the test database");
    admin.close().await.ok();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// `url` with its database name replaced by `name` (query parameters kept).
fn database_url(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// domain values

/// Now, at the microsecond precision both backends keep.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub fn user(name: &str) -> User {
    let at = now();
    User {
        id: UserId::new(),
        subject: format!("sub-{name}-{}", Uuid::new_v4().simple()),
        email: Email::parse(&format!("{name}-{}@example.com", Uuid::new_v4().simple()))
            .expect("email"),
        display_name: name.to_owned(),
        avatar_url: None,
        created_at: at,
        updated_at: at,
    }
}

pub fn workspace(owner: UserId) -> Workspace {
    let at = now();
    let id = WorkspaceId::new();
    Workspace {
        id,
        name: "Team".into(),
        slug: format!("team-{}", id.0.simple()),
        settings: serde_json::json!({ "theme": "dark" }),
        created_by: Some(owner),
        created_at: at,
        updated_at: at,
        deleted_at: None,
    }
}

pub fn member(workspace: WorkspaceId, user: UserId, role: Role) -> Member {
    let at = now();
    Member {
        workspace_id: workspace,
        user_id: user,
        role,
        created_at: at,
        updated_at: at,
    }
}

pub fn document(workspace: WorkspaceId, by: UserId, title: &str, content: &str) -> Document {
    let at = now();
    Document {
        id: DocumentId::new(),
        workspace_id: workspace,
        folder_id: None,
        title: title.into(),
        content: content.into(),
        content_hash: ContentHash::of(content),
        version: Version::FIRST,
        position: 0.0,
        created_by: Some(by),
        updated_by: Some(by),
        created_at: at,
        updated_at: at,
        deleted_at: None,
    }
}

pub fn version_of(d: &Document, reason: VersionReason) -> DocumentVersion {
    DocumentVersion {
        document_id: d.id,
        version: d.version,
        title: d.title.clone(),
        content: d.content.clone(),
        content_hash: d.content_hash.clone(),
        author_id: d.updated_by,
        reason,
        created_at: d.updated_at,
    }
}

pub fn folder_id() -> FolderId {
    FolderId::new()
}

// ---------------------------------------------------------------------------------------------
// seeds

pub async fn seed_user(store: &SqlStore, name: &str) -> User {
    let u = user(name);
    store
        .commit(WriteBatch::by(u.id).write(Write::InsertUser(u.clone())))
        .await
        .expect("insert user");
    u
}

/// A workspace owned by `owner`, created as the workspace use case does (feed head 2).
pub async fn seed_workspace(store: &SqlStore, owner: &User) -> Workspace {
    let w = workspace(owner.id);
    let batch = WriteBatch::by(owner.id)
        .write(Write::InsertWorkspace(w.clone()))
        .write(Write::PutMember {
            member: member(w.id, owner.id, Role::Owner),
            expected: None,
        })
        .change(Change::upsert(w.id, EntityType::Workspace, w.id.0))
        .change(Change::upsert(w.id, EntityType::Member, owner.id.0));
    store.commit(batch).await.expect("create workspace");
    w
}

/// Inserts a document with its first version, as the document use case does.
pub async fn seed_document(store: &SqlStore, d: &Document) {
    let by = d.created_by.expect("author");
    let batch = WriteBatch::by(by)
        .write(Write::InsertDocument(d.clone()))
        .write(Write::InsertVersion(version_of(d, VersionReason::Save)))
        .change(Change::upsert(d.workspace_id, EntityType::Document, d.id.0).with_version(1));
    store.commit(batch).await.expect("insert document");
}
