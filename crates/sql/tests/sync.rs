//! The sync side of the SQL adapter: device advances (exactly once), feed pages that end on
//! commit boundaries, snapshots, and compaction — on SQLite always, Postgres when configured.

mod support;

use chrono::Duration;
use mdcreator_domain::documents::Document;
use mdcreator_domain::feed::{
    Change, ChangeOp, CommitError, EntityType, UnitOfWork, Write, WriteBatch,
};
use mdcreator_domain::sync::{
    ChangeFeed, DEVICES_TABLE, Device, DeviceRepository, EntityRef, EntityState, MutationResult,
    MutationStatus, RECENT_RESULTS,
};
use mdcreator_domain::{ContentHash, DeviceId, UserId, Version};
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

fn new_device(user: UserId) -> Device {
    Device {
        id: DeviceId::new(),
        user_id: user,
        name: "Laptop".into(),
        platform: "linux".into(),
        last_mutation_id: 0,
        recent_results: Vec::new(),
        created_at: now(),
        last_seen_at: now(),
    }
}

fn advance(device: DeviceId, expected_last: i64) -> Write {
    Write::AdvanceDevice {
        device,
        expected_last,
        new_last: expected_last + 1,
        result: MutationResult::new(expected_last + 1, MutationStatus::Applied),
    }
}

#[tokio::test]
async fn a_device_advances_exactly_once_and_keeps_its_last_results() {
    both(|store| async move {
        let u = seed_user(&store, "ada").await;
        let w = seed_workspace(&store, &u).await;
        let d = new_device(u.id);
        store
            .commit(WriteBatch::by(u.id).write(Write::InsertDevice(d.clone())))
            .await
            .unwrap();
        store
            .commit(WriteBatch::by(u.id).write(advance(d.id, 0)))
            .await
            .unwrap();
        // A second advance from the same starting point fails, and takes its writes with it.
        let doc = document(w.id, u.id, "Twin", "x");
        let batch = WriteBatch::by(u.id)
            .write(advance(d.id, 0))
            .write(Write::InsertDocument(doc.clone()))
            .change(Change::upsert(w.id, EntityType::Document, doc.id.0).with_version(1));
        let stale = store.commit(batch).await;
        assert!(matches!(stale, Err(CommitError::Stale(t)) if t == DEVICES_TABLE));
        use mdcreator_domain::documents::DocumentRepository;
        assert!(store.document(doc.id).await.unwrap().is_none());

        for last in 1..(RECENT_RESULTS as i64 + 10) {
            store
                .commit(WriteBatch::by(u.id).write(advance(d.id, last)))
                .await
                .unwrap();
        }
        let stored = store.device(d.id).await.unwrap().unwrap();
        assert_eq!(stored.last_mutation_id, RECENT_RESULTS as i64 + 10);
        assert_eq!(stored.recent_results.len(), RECENT_RESULTS);
        assert_eq!(
            stored.recent_results.last().unwrap().mutation_id,
            RECENT_RESULTS as i64 + 10
        );
        assert_eq!(store.devices_of(u.id).await.unwrap().len(), 1);

        let other = UserId::new();
        let not_theirs = store
            .commit(WriteBatch::by(other).write(Write::DeleteDevice {
                id: d.id,
                user: other,
            }))
            .await;
        assert!(matches!(not_theirs, Err(CommitError::Stale(_))));
        store
            .commit(WriteBatch::by(u.id).write(Write::DeleteDevice {
                id: d.id,
                user: u.id,
            }))
            .await
            .unwrap();
        assert!(store.device(d.id).await.unwrap().is_none());
    })
    .await;
}

fn edit(d: &Document, n: i64) -> Write {
    let content = format!("v{n}");
    Write::SaveDocument {
        document: Document {
            content_hash: ContentHash::of(&content),
            content,
            version: Version(n),
            ..d.clone()
        },
        expected: Version(n - 1),
    }
}

#[tokio::test]
async fn feed_pages_carry_the_latest_row_per_entity_and_end_on_commit_boundaries() {
    both(|store| async move {
        let u = seed_user(&store, "ada").await;
        let w = seed_workspace(&store, &u).await; // seqs 1-2
        let docs: Vec<Document> = (0..5)
            .map(|i| document(w.id, u.id, &format!("d{i}"), "v1"))
            .collect();
        for d in &docs {
            seed_document(&store, d).await; // seqs 3-7
        }
        // One commit of three changes (seqs 8-10), then ten edits of one document (11-20).
        let mut batch = WriteBatch::by(u.id);
        for d in &docs[..3] {
            batch = batch
                .write(edit(d, 2))
                .change(Change::upsert(w.id, EntityType::Document, d.id.0).with_version(2));
        }
        store.commit(batch).await.unwrap();
        for n in 3..=12 {
            store
                .commit(WriteBatch::by(u.id).write(edit(&docs[4], n - 1)).change(
                    Change::upsert(w.id, EntityType::Document, docs[4].id.0).with_version(n - 1),
                ))
                .await
                .unwrap();
        }

        let mut snap = store.snapshot().await.unwrap();
        let ms = snap.memberships(u.id).await.unwrap();
        assert_eq!(ms.len(), 1);
        assert_eq!((ms[0].head, ms[0].horizon), (20, 0));

        // From 7 with a limit of 1: the commit 8-10 comes whole.
        let page = snap.changes(w.id, 7, 1).await.unwrap();
        assert_eq!(page.end, 10);
        assert_eq!(
            page.rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [8, 9, 10]
        );
        // Everything: one row per entity, the document edited ten times only at its last seq.
        let page = snap.changes(w.id, 0, 100).await.unwrap();
        assert_eq!(page.end, 20);
        assert_eq!(page.rows.len(), 2 + 5);
        let last = page.rows.last().unwrap();
        assert_eq!(
            (last.seq, last.entity_id, last.version),
            (20, docs[4].id.0, Some(11))
        );

        let refs = vec![
            EntityRef {
                entity_type: EntityType::Workspace,
                id: w.id.0,
            },
            EntityRef {
                entity_type: EntityType::Member,
                id: u.id.0,
            },
            EntityRef {
                entity_type: EntityType::Document,
                id: docs[4].id.0,
            },
        ];
        let states = snap.entities(w.id, refs.clone(), 1024).await.unwrap();
        assert_eq!(states.len(), 3);
        let doc_state = states
            .iter()
            .find_map(|s| match s {
                EntityState::Document(d) => Some(d.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(doc_state.content.as_deref(), Some("v11"));
        assert_eq!(doc_state.summary.version, Version(11));
        // Above the inline limit the content stays behind.
        let states = snap.entities(w.id, refs[2..].to_vec(), 2).await.unwrap();
        assert!(matches!(&states[0], EntityState::Document(d) if d.content.is_none()));
        assert!(snap.shared_documents(u.id, 1024).await.unwrap().is_empty());
        snap.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn compaction_keeps_the_latest_rows_and_raises_the_horizon() {
    both(|store| async move {
        let u = seed_user(&store, "ada").await;
        let w = seed_workspace(&store, &u).await; // 1-2
        let kept = document(w.id, u.id, "kept", "v1");
        let gone = document(w.id, u.id, "gone", "v1");
        seed_document(&store, &kept).await; // 3
        seed_document(&store, &gone).await; // 4
        store
            .commit(
                WriteBatch::by(u.id)
                    .write(edit(&kept, 2))
                    .change(Change::upsert(w.id, EntityType::Document, kept.id.0).with_version(2)),
            )
            .await
            .unwrap(); // 5 supersedes 3
        store
            .commit(
                WriteBatch::by(u.id)
                    .write(Write::DeleteDocument { id: gone.id })
                    .change(Change::delete(w.id, EntityType::Document, gone.id.0)),
            )
            .await
            .unwrap(); // 6, a tombstone (4 superseded)

        // Nothing is older than an hour ago yet.
        let none = store.compact(now() - Duration::hours(1)).await.unwrap();
        assert_eq!(none.rows, 0);
        let report = store.compact(now() + Duration::seconds(1)).await.unwrap();
        assert_eq!(report.rows, 3, "3, 4 and the tombstone 6");
        assert_eq!(report.workspaces, 1);

        let mut snap = store.snapshot().await.unwrap();
        let ms = snap.memberships(u.id).await.unwrap();
        assert_eq!((ms[0].head, ms[0].horizon), (6, 6));
        let page = snap.changes(w.id, 0, 100).await.unwrap();
        let seqs: Vec<_> = page.rows.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2, 5]);
        assert!(page.rows.iter().all(|r| r.op == ChangeOp::Upsert));
        snap.close().await.unwrap();
        // Idempotent.
        assert_eq!(
            store
                .compact(now() + Duration::seconds(1))
                .await
                .unwrap()
                .rows,
            0
        );
    })
    .await;
}
