//! The Yjs side of the SQL adapter (`YjsStore`): the update log, group commits, and compactions
//! that never lose an update — on SQLite always, Postgres when configured.
//!
//! The store treats updates as opaque bytes, so these tests "merge" by concatenating.

mod support;

use std::sync::mpsc;

use mdcreator_domain::DocumentId;
use mdcreator_domain::collab::{StoredYjs, YjsStore};
use mdcreator_sql::SqlStore;
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

        // A missing document stores nothing.
        let missing = DocumentId::new();
        assert!(store.append(missing, vec![vec![5]]).await.is_err());
        assert_eq!(
            bytes(&store.load(a).await.unwrap().unwrap()).1,
            vec![1, 2, 3]
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
