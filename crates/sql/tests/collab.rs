//! The Yjs side of the SQL adapter (`YjsStore`): the update log, group commits, and compactions
//! that never lose an update — on SQLite always, Postgres when configured.
//!
//! The store treats updates as opaque bytes, so these tests "merge" by concatenating.

mod support;

use std::sync::mpsc;

use mdcreator_domain::DocumentId;
use mdcreator_domain::collab::{StoredYjs, YjsStore};
use mdcreator_sql::SqlStore;
use mdcreator_sql::entity::document_updates;
use sea_orm::sqlx::{Connection as _, SqliteConnection};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use support::*;

async fn both<F, Fut>(test: F)
where
    F: Fn(SqlStore) -> Fut + Copy,
    Fut: std::future::Future<Output = ()>,
{
    on_sqlite(test).await;
    on_postgres(test).await;
}

async fn seeded(store: &SqlStore) -> DocumentId {
    let owner = seed_user(store, "ada").await;
    let ws = seed_workspace(store, &owner).await;
    let d = document(ws.id, owner.id, "Notes", "hello");
    seed_document(store, &d).await;
    d.id
}

/// `state ++ updates…`, so a test can see exactly what a compaction folded in.
fn concat(state: Option<Vec<u8>>, updates: Vec<Vec<u8>>) -> anyhow::Result<Vec<u8>> {
    let mut out = state.unwrap_or_default();
    for u in updates {
        out.extend(u);
    }
    Ok(out)
}

fn bytes(stored: &StoredYjs) -> (Vec<u8>, Vec<u8>) {
    let state = stored.state.clone().unwrap_or_default();
    let log = stored.updates.iter().flat_map(|(_, u)| u.clone()).collect();
    (state, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn updates_are_appended_in_order_and_only_to_existing_documents() {
    both(|store: SqlStore| async move {
        let (a, b) = (seeded(&store).await, seeded(&store).await);
        assert_eq!(store.load(DocumentId::new()).await.unwrap(), None);
        assert!(store.load(a).await.unwrap().unwrap().is_empty());

        let first = store.append(a, vec![vec![1], vec![2]]).await.unwrap();
        store.append(b, vec![vec![9]]).await.unwrap();
        store.append(a, vec![vec![3]]).await.unwrap();
        let stored = store.load(a).await.unwrap().unwrap();
        assert_eq!(bytes(&stored), (vec![], vec![1, 2, 3]));
        assert!(stored.updates.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(stored.updates[1].0 == first);
        assert_eq!(bytes(&store.load(b).await.unwrap().unwrap()).1, vec![9]);

        // A missing document stores nothing, and the failed append leaves no transaction open
        // behind it: the next one commits.
        let missing = DocumentId::new();
        assert!(store.append(missing, vec![vec![5]]).await.is_err());
        assert_eq!(
            bytes(&store.load(a).await.unwrap().unwrap()).1,
            vec![1, 2, 3]
        );
        store.append(a, vec![vec![4]]).await.unwrap();
        assert_eq!(
            bytes(&store.load(a).await.unwrap().unwrap()).1,
            vec![1, 2, 3, 4]
        );
    })
    .await;
}

/// On SQLite files appends take their own connection (`appender.rs`), not the pool: the rows
/// they write must read back through the entities exactly as the pool's would.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appended_rows_read_back_through_the_entities() {
    both(|store: SqlStore| async move {
        let document = seeded(&store).await;
        let before = now();
        let id = store
            .append(document, vec![vec![7, 8], vec![9]])
            .await
            .unwrap();
        // In the database once the journal is folded (as every reader of the log does first).
        store.fold_journal().await.unwrap();
        let rows = document_updates::Entity::find()
            .filter(document_updates::Column::DocumentId.eq(document.0))
            .order_by_asc(document_updates::Column::Id)
            .all(store.connection())
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].id, id);
        assert_eq!(
            (rows[0].data.clone(), rows[1].data.clone()),
            (vec![7, 8], vec![9])
        );
        for row in &rows {
            assert_eq!(row.document_id, document.0);
            let age = now() - row.created_at;
            assert!(
                row.created_at >= before && age < chrono::Duration::seconds(60),
                "{row:?}"
            );
        }
    })
    .await;
}

/// On SQLite files appends go to the update journal (`journal.rs`), not the database: a write
/// lock held by a connection that does not queue on the store's write turn (another process,
/// say) does not hold them up; a load waits for it (it folds the journal first) and then sees
/// them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_appends_do_not_wait_for_a_foreign_write_lock() {
    on_sqlite_at(|store: SqlStore, url: String| async move {
        let document = seeded(&store).await;
        let mut foreign = foreign_write_lock(&url).await;
        tokio::time::timeout(
            std::time::Duration::from_secs(2),
            store.append(document, vec![vec![42]]),
        )
        .await
        .expect("the append does not wait for the lock")
        .unwrap();
        let load = tokio::spawn({
            let store = store.clone();
            async move { store.load(document).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!load.is_finished(), "the load did not wait for the lock");
        sea_orm::sqlx::query("COMMIT")
            .execute(&mut foreign)
            .await
            .unwrap();
        let stored = load.await.unwrap().unwrap().unwrap();
        assert_eq!(bytes(&stored).1, vec![42]);
    })
    .await;
}

/// Without the journal (another process holds it), a write lock held by a connection that does
/// not queue on the store's write turn (another process, say) makes the append wait for it in the pool, and then succeed: it neither fails
/// at once nor blocks the caller's thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_appends_without_the_journal_wait_for_a_foreign_write_lock() {
    without_journal(|store: SqlStore, url: String| async move {
        let document = seeded(&store).await;
        let mut foreign = foreign_write_lock(&url).await;
        let append = tokio::spawn({
            let store = store.clone();
            async move { store.append(document, vec![vec![42]]).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !append.is_finished(),
            "the append did not wait for the lock"
        );
        sea_orm::sqlx::query("COMMIT")
            .execute(&mut foreign)
            .await
            .unwrap();
        append
            .await
            .unwrap()
            .expect("the append succeeds once the lock is free");
        assert_eq!(
            bytes(&store.load(document).await.unwrap().unwrap()).1,
            vec![42]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compaction_folds_the_log_into_the_state() {
    both(|store: SqlStore| async move {
        let doc = seeded(&store).await;
        assert_eq!(store.compact(doc, Box::new(concat)).await.unwrap(), 0);
        store.append(doc, vec![vec![1], vec![2]]).await.unwrap();
        assert_eq!(store.compact(doc, Box::new(concat)).await.unwrap(), 2);
        store.append(doc, vec![vec![3]]).await.unwrap();
        assert_eq!(
            bytes(&store.load(doc).await.unwrap().unwrap()),
            (vec![1, 2], vec![3])
        );
        assert_eq!(store.compact(doc, Box::new(concat)).await.unwrap(), 1);
        assert_eq!(
            bytes(&store.load(doc).await.unwrap().unwrap()),
            (vec![1, 2, 3], vec![])
        );
        assert_eq!(
            store
                .compact(DocumentId::new(), Box::new(concat))
                .await
                .unwrap(),
            0
        );
    })
    .await;
}

/// Two instances compact one document at once, while writers keep appending: the slower
/// compaction (whose merge runs while the other commits) must not overwrite the other's state,
/// and updates appended during either merge stay in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_compactions_and_appends_lose_nothing() {
    both(|store: SqlStore| async move {
        let doc = seeded(&store).await;
        store.append(doc, vec![vec![1], vec![2]]).await.unwrap();

        // The slow compaction merges [1, 2] and then waits inside its merge.
        let (entered_tx, entered) = mpsc::channel::<()>();
        let (release, released) = mpsc::channel::<()>();
        let slow = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .compact(
                        doc,
                        Box::new(move |state, updates| {
                            entered_tx.send(()).unwrap();
                            released.recv().unwrap();
                            concat(state, updates)
                        }),
                    )
                    .await
            }
        });
        tokio::task::spawn_blocking(move || entered.recv().unwrap())
            .await
            .unwrap();
        // Meanwhile: an append, a full compaction by the other instance, another append.
        store.append(doc, vec![vec![3]]).await.unwrap();
        assert_eq!(store.compact(doc, Box::new(concat)).await.unwrap(), 3);
        store.append(doc, vec![vec![4]]).await.unwrap();
        release.send(()).unwrap();
        assert_eq!(
            slow.await.unwrap().unwrap(),
            0,
            "the stale merge is refused"
        );

        let stored = store.load(doc).await.unwrap().unwrap();
        assert_eq!(bytes(&stored), (vec![1, 2, 3], vec![4]));
    })
    .await;
}

/// A compaction checks that the rows it read are still there by id, so an id must never come
/// back within a document, not even after a compaction deleted every row (SQLite counts ids per
/// document, see `SQLITE_LAST_ID`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ids_never_come_back_after_a_compaction() {
    both(|store: SqlStore| async move {
        let owner = seed_user(&store, "ada").await;
        let ws = seed_workspace(&store, &owner).await;
        let (doc, other) = (
            document(ws.id, owner.id, "One", ""),
            document(ws.id, owner.id, "Two", ""),
        );
        seed_document(&store, &doc).await;
        seed_document(&store, &other).await;
        let (doc, other) = (doc.id, other.id);
        let first = store.append(doc, vec![vec![1], vec![2]]).await.unwrap();
        store.append(other, vec![vec![9]]).await.unwrap();
        assert_eq!(store.compact(doc, Box::new(concat)).await.unwrap(), 2);
        let next = store.append(doc, vec![vec![3]]).await.unwrap();
        assert!(next > first, "{next} after {first}");
        let stored = store.load(doc).await.unwrap().unwrap();
        assert_eq!(bytes(&stored), (vec![1, 2], vec![3]));
        assert_eq!(stored.updates[0].0, next);
    })
    .await;
}

/// The same through the pool (the path appends take when another process holds SQLite's lock):
/// a store without the appender's connection writes to the same file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_pool_appends_count_ids_like_the_appender() {
    on_sqlite_at(|store: SqlStore, url: String| async move {
        let doc = seeded(&store).await;
        let first = store.append(doc, vec![vec![1], vec![2]]).await.unwrap();
        assert_eq!(store.compact(doc, Box::new(concat)).await.unwrap(), 2);
        let pool = SqlStore::from_connection(sea_orm::Database::connect(&url).await.unwrap());
        let next = pool.append(doc, vec![vec![3], vec![4]]).await.unwrap();
        assert_eq!(next, first + 2);
        assert!(pool.append(DocumentId::new(), vec![vec![5]]).await.is_err());
        let stored = store.load(doc).await.unwrap().unwrap();
        assert_eq!(bytes(&stored), (vec![1, 2], vec![3, 4]));
        assert_eq!(
            stored.updates.iter().map(|u| u.0).collect::<Vec<_>>(),
            [first + 1, first + 2]
        );
    })
    .await;
}

/// The appender (the path without the journal) remembers each document's last id between its
/// own appends; an append by any other connection in between (here, through a pool-only store
/// on the same file) must be seen, or the next id would collide with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_appender_sees_appends_by_other_connections() {
    without_journal(|store: SqlStore, url: String| async move {
        let doc = seeded(&store).await;
        let first = store.append(doc, vec![vec![1]]).await.unwrap();
        let pool = SqlStore::from_connection(sea_orm::Database::connect(&url).await.unwrap());
        assert_eq!(pool.append(doc, vec![vec![2]]).await.unwrap(), first + 1);
        assert_eq!(store.append(doc, vec![vec![3]]).await.unwrap(), first + 2);
        assert_eq!(store.append(doc, vec![vec![4]]).await.unwrap(), first + 3);
        assert_eq!(pool.append(doc, vec![vec![5]]).await.unwrap(), first + 4);
        assert_eq!(
            store.append(doc, vec![vec![6], vec![7]]).await.unwrap(),
            first + 6
        );
        let stored = store.load(doc).await.unwrap().unwrap();
        assert_eq!(bytes(&stored), (vec![], vec![1, 2, 3, 4, 5, 6, 7]));
        assert_eq!(
            stored.updates.iter().map(|u| u.0).collect::<Vec<_>>(),
            (first..=first + 6).collect::<Vec<_>>()
        );
    })
    .await;
}

/// The journal hands out ids without asking the database each time: a process appending
/// straight to the file (here, a pool-only store) takes ids the journal gave too. Its records
/// then move to the next free ids when folded: every update is stored once, none is lost, and
/// the journal goes on past them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_journal_records_move_past_ids_taken_by_other_connections() {
    on_sqlite_at(|store: SqlStore, url: String| async move {
        let doc = seeded(&store).await;
        let pool = SqlStore::from_connection(sea_orm::Database::connect(&url).await.unwrap());
        store.append(doc, vec![vec![1]]).await.unwrap();
        pool.append(doc, vec![vec![2]]).await.unwrap();
        store.append(doc, vec![vec![3], vec![4]]).await.unwrap();
        pool.append(doc, vec![vec![5]]).await.unwrap();
        store.append(doc, vec![vec![6], vec![7]]).await.unwrap();
        let stored = store.load(doc).await.unwrap().unwrap();
        let mut log = bytes(&stored).1;
        log.sort_unstable();
        assert_eq!(log, vec![1, 2, 3, 4, 5, 6, 7]);
        let last = stored.updates.last().unwrap().0;
        assert_eq!(store.append(doc, vec![vec![8]]).await.unwrap(), last + 1);
    })
    .await;
}

/// A connection of its own to the SQLite file at `url`, holding the write lock (`BEGIN
/// IMMEDIATE`) until it commits.
async fn foreign_write_lock(url: &str) -> SqliteConnection {
    let mut foreign = SqliteConnection::connect(url).await.unwrap();
    sea_orm::sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut foreign)
        .await
        .unwrap();
    foreign
}

/// [`on_sqlite_at`] with the update journal held by "another process" (a lock on the journal's
/// lock file through another open file), so that appends take the database path.
async fn without_journal<F, Fut>(test: F)
where
    F: FnOnce(SqlStore, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let path = std::env::temp_dir().join(format!("mdc-test-{}.db", uuid::Uuid::new_v4().simple()));
    std::fs::File::create(&path).unwrap();
    let mut lock_path = path.canonicalize().unwrap().into_os_string();
    lock_path.push("-updates.lock");
    let lock = std::fs::File::create(&lock_path).unwrap();
    lock.try_lock().unwrap();
    let url = format!("sqlite://{}", path.display());
    let store = SqlStore::connect(&url, &mdcreator_sql::SqlSettings::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    test(store.clone(), url).await;
    store.close().await.ok();
    drop(lock);
    for suffix in ["", "-wal", "-shm", "-updates.lock"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        std::fs::remove_file(file).ok();
    }
}
