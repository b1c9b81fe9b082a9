//! The storage contract of the comment and notification ports, run against SQLite always and
//! against Postgres when `DATABASE_URL` is set (each test on a fresh database).

mod support;

use mdcreator_domain::comments::{Comment, CommentRepository, ThreadQuery};
use mdcreator_domain::feed::{Change, CommitError, EntityType, UnitOfWork, Write, WriteBatch};
use mdcreator_domain::notifications::{Notification, NotificationKind, NotificationRepository};
use mdcreator_domain::{CommentId, DocumentId, NotificationId, UserId, Version};
use mdcreator_sql::SqlStore;
use mdcreator_sql::entity::comment_mentions;
use sea_orm::{EntityTrait, PaginatorTrait};
use support::*;

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::support::on_sqlite(crate::$test).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::support::on_postgres(crate::$test).await;
                }
            )*
        }
    };
}

contract!(
    comments_round_trip_with_mentions_and_guarded_updates,
    threads_filter_by_resolution_and_hide_empty_deleted_roots,
    notifications_page_newest_first_and_are_read_by_their_user_only,
    a_deleted_document_takes_comments_mentions_and_notifications,
);

fn comment(d: &mdcreator_domain::documents::Document, author: UserId) -> Comment {
    let at = now();
    Comment {
        id: CommentId::new(),
        workspace_id: d.workspace_id,
        document_id: d.id,
        parent_id: None,
        author_id: Some(author),
        body: "Looks *good*".into(),
        anchor: None,
        mentions: Vec::new(),
        version: Version::FIRST,
        resolved_at: None,
        resolved_by: None,
        created_at: at,
        updated_at: at,
        deleted_at: None,
    }
}

fn reply(root: &Comment, author: UserId) -> Comment {
    Comment {
        id: CommentId::new(),
        parent_id: Some(root.id),
        author_id: Some(author),
        mentions: Vec::new(),
        resolved_at: None,
        resolved_by: None,
        deleted_at: None,
        ..root.clone()
    }
}

fn notification(user: UserId, c: &Comment) -> Notification {
    Notification {
        id: NotificationId::new(),
        user_id: user,
        kind: NotificationKind::Mention,
        workspace_id: c.workspace_id,
        document_id: c.document_id,
        comment_id: c.id,
        thread_id: c.thread_id(),
        actor_id: c.author_id,
        created_at: now(),
        read_at: None,
    }
}

async fn insert(store: &SqlStore, c: &Comment) {
    let batch = WriteBatch::by(c.author_id.unwrap())
        .write(Write::InsertComment(c.clone()))
        .change(Change::upsert(c.workspace_id, EntityType::Comment, c.id.0).with_version(1));
    store.commit(batch).await.expect("insert comment");
}

async fn update(store: &SqlStore, c: &Comment, expected: Version) -> Result<(), CommitError> {
    let batch = WriteBatch::by(c.author_id.unwrap()).write(Write::UpdateComment {
        comment: c.clone(),
        expected,
    });
    store.commit(batch).await.map(drop)
}

fn query(document: DocumentId, resolved: Option<bool>) -> ThreadQuery {
    ThreadQuery {
        document,
        resolved,
        after: None,
        limit: 50,
    }
}

fn ids(comments: &[Comment]) -> Vec<CommentId> {
    comments.iter().map(|c| c.id).collect()
}

async fn comments_round_trip_with_mentions_and_guarded_updates(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let bob = seed_user(&store, "bob").await;
    let carol = seed_user(&store, "carol").await;
    let w = seed_workspace(&store, &ada).await;
    let d = document(w.id, ada.id, "Plan", "text");
    seed_document(&store, &d).await;

    let mut root = comment(&d, ada.id);
    root.anchor = Some(serde_json::json!({"type": "quote", "text": "Plan"}));
    root.mentions = {
        let mut m = vec![bob.id, carol.id];
        m.sort();
        m
    };
    insert(&store, &root).await;
    assert_eq!(store.comment(root.id).await.unwrap(), Some(root.clone()));
    assert_eq!(store.comment(CommentId::new()).await.unwrap(), None);
    let r = store
        .commit(WriteBatch::by(ada.id).write(Write::InsertComment(root.clone())))
        .await;
    assert!(
        matches!(r, Err(CommitError::Duplicate("comments"))),
        "{r:?}"
    );

    let answer = reply(&root, bob.id);
    insert(&store, &answer).await;
    assert_eq!(
        store.replies(vec![root.id]).await.unwrap(),
        vec![answer.clone()]
    );

    // A stale version changes nothing, mentions included.
    let mut edited = root.clone();
    edited.body = "Rewritten".into();
    edited.mentions = vec![carol.id];
    edited.version = Version(2);
    edited.resolved_at = Some(now());
    edited.resolved_by = Some(bob.id);
    edited.updated_at = now();
    let r = update(&store, &edited, Version(7)).await;
    assert!(matches!(r, Err(CommitError::Stale("comments"))), "{r:?}");
    assert_eq!(store.comment(root.id).await.unwrap(), Some(root.clone()));
    update(&store, &edited, Version(1)).await.unwrap();
    assert_eq!(store.comment(root.id).await.unwrap(), Some(edited.clone()));
    let mentions = comment_mentions::Entity::find()
        .count(store.connection())
        .await
        .unwrap();
    assert_eq!(mentions, 1);
}

async fn threads_filter_by_resolution_and_hide_empty_deleted_roots(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let w = seed_workspace(&store, &ada).await;
    let d = document(w.id, ada.id, "Plan", "text");
    seed_document(&store, &d).await;
    let other = document(w.id, ada.id, "Other", "text");
    seed_document(&store, &other).await;

    let mut resolved = comment(&d, ada.id);
    resolved.resolved_at = Some(now());
    resolved.resolved_by = Some(ada.id);
    let open = comment(&d, ada.id);
    let mut gone = comment(&d, ada.id);
    gone.deleted_at = Some(now());
    let mut gone_with_reply = comment(&d, ada.id);
    gone_with_reply.deleted_at = Some(now());
    let live_reply = reply(&gone_with_reply, ada.id);
    let mut gone_with_gone_reply = comment(&d, ada.id);
    gone_with_gone_reply.deleted_at = Some(now());
    let mut dead_reply = reply(&gone_with_gone_reply, ada.id);
    dead_reply.deleted_at = Some(now());
    let elsewhere = comment(&other, ada.id);
    for c in [
        &resolved,
        &open,
        &gone,
        &gone_with_reply,
        &live_reply,
        &gone_with_gone_reply,
        &dead_reply,
        &elsewhere,
    ] {
        insert(&store, c).await;
    }

    let all = store.threads(query(d.id, None)).await.unwrap();
    assert_eq!(ids(&all), [resolved.id, open.id, gone_with_reply.id]);
    let only = store.threads(query(d.id, Some(true))).await.unwrap();
    assert_eq!(ids(&only), [resolved.id]);
    let only = store.threads(query(d.id, Some(false))).await.unwrap();
    assert_eq!(ids(&only), [open.id, gone_with_reply.id]);
    let page = store
        .threads(ThreadQuery {
            after: Some(resolved.id),
            limit: 1,
            ..query(d.id, None)
        })
        .await
        .unwrap();
    assert_eq!(ids(&page), [open.id]);
    // Deleted replies are not listed.
    let replies = store
        .replies(vec![gone_with_reply.id, gone_with_gone_reply.id])
        .await
        .unwrap();
    assert_eq!(ids(&replies), [live_reply.id]);
}

async fn notifications_page_newest_first_and_are_read_by_their_user_only(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let bob = seed_user(&store, "bob").await;
    let w = seed_workspace(&store, &ada).await;
    let d = document(w.id, ada.id, "Plan", "text");
    seed_document(&store, &d).await;
    let c = comment(&d, ada.id);
    insert(&store, &c).await;

    let mut bobs = Vec::new();
    for _ in 0..3 {
        let n = notification(bob.id, &c);
        store
            .commit(WriteBatch::by(ada.id).write(Write::InsertNotification(n.clone())))
            .await
            .unwrap();
        bobs.push(n);
    }
    let adas = notification(ada.id, &c);
    store
        .commit(WriteBatch::by(ada.id).write(Write::InsertNotification(adas.clone())))
        .await
        .unwrap();
    assert_eq!(
        store.notification(bobs[0].id).await.unwrap(),
        Some(bobs[0].clone())
    );
    let newest_first: Vec<_> = bobs.iter().rev().map(|n| n.id).collect();
    let listed = store.notifications(bob.id, false, None, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|n| n.id).collect::<Vec<_>>(),
        newest_first
    );
    let before = store
        .notifications(bob.id, false, Some(bobs[2].id), 1)
        .await
        .unwrap();
    assert_eq!(
        before.iter().map(|n| n.id).collect::<Vec<_>>(),
        [bobs[1].id]
    );

    let at = now();
    store
        .commit(WriteBatch::by(bob.id).write(Write::ReadNotifications {
            user: bob.id,
            id: Some(bobs[1].id),
            at,
        }))
        .await
        .unwrap();
    assert_eq!(
        store
            .notification(bobs[1].id)
            .await
            .unwrap()
            .unwrap()
            .read_at,
        Some(at)
    );
    let unread = store.notifications(bob.id, true, None, 10).await.unwrap();
    assert_eq!(
        unread.iter().map(|n| n.id).collect::<Vec<_>>(),
        [bobs[2].id, bobs[0].id]
    );
    // Someone else's id marks nothing.
    store
        .commit(WriteBatch::by(bob.id).write(Write::ReadNotifications {
            user: bob.id,
            id: Some(adas.id),
            at,
        }))
        .await
        .unwrap();
    assert_eq!(
        store.notification(adas.id).await.unwrap().unwrap().read_at,
        None
    );
    // All of bob's, and only bob's; earlier read times are kept.
    let later = now() + chrono::Duration::seconds(5);
    store
        .commit(WriteBatch::by(bob.id).write(Write::ReadNotifications {
            user: bob.id,
            id: None,
            at: later,
        }))
        .await
        .unwrap();
    assert!(
        store
            .notifications(bob.id, true, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .notification(bobs[1].id)
            .await
            .unwrap()
            .unwrap()
            .read_at,
        Some(at)
    );
    assert_eq!(
        store
            .notifications(ada.id, true, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn a_deleted_document_takes_comments_mentions_and_notifications(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let bob = seed_user(&store, "bob").await;
    let w = seed_workspace(&store, &ada).await;
    let d = document(w.id, ada.id, "Plan", "text");
    seed_document(&store, &d).await;
    let keep = document(w.id, ada.id, "Keep", "text");
    seed_document(&store, &keep).await;
    let mut root = comment(&d, ada.id);
    root.mentions = vec![bob.id];
    insert(&store, &root).await;
    let answer = reply(&root, bob.id);
    insert(&store, &answer).await;
    let kept = comment(&keep, ada.id);
    insert(&store, &kept).await;
    for n in [notification(bob.id, &root), notification(ada.id, &answer)] {
        store
            .commit(WriteBatch::by(ada.id).write(Write::InsertNotification(n)))
            .await
            .unwrap();
    }
    let kept_note = notification(bob.id, &kept);
    store
        .commit(WriteBatch::by(ada.id).write(Write::InsertNotification(kept_note.clone())))
        .await
        .unwrap();

    store
        .commit(WriteBatch::by(ada.id).write(Write::DeleteDocument { id: d.id }))
        .await
        .unwrap();
    assert_eq!(store.comment(root.id).await.unwrap(), None);
    assert_eq!(store.comment(answer.id).await.unwrap(), None);
    assert_eq!(store.comment(kept.id).await.unwrap(), Some(kept));
    let left = comment_mentions::Entity::find()
        .count(store.connection())
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(
        store.notifications(bob.id, false, None, 10).await.unwrap(),
        vec![kept_note]
    );
    assert!(
        store
            .notifications(ada.id, false, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
