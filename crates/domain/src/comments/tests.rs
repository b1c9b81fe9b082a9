use std::collections::HashMap;

use super::*;
use crate::documents::{MockDocumentGrants, MockDocumentRepository};
use crate::feed::{ChangeOp, Committed, MockUnitOfWork};
use crate::members::MockMembershipRepository;
use crate::ports::MockClock;
use crate::users::{MockUserRepository, User};
use crate::values::ContentHash;
use crate::{Role, Scope};

/// One document in one workspace, people with roles (or grants), stored comments, and the
/// batches the service commits.
struct World {
    doc: Document,
    roles: HashMap<UserId, Role>,
    grants: HashMap<UserId, Role>,
    emails: HashMap<String, UserId>,
    comments: Vec<Comment>,
}

impl World {
    fn new() -> Self {
        let now = Utc::now();
        World {
            doc: Document {
                id: DocumentId::new(),
                workspace_id: WorkspaceId::new(),
                folder_id: None,
                title: "Plan".into(),
                content: "# Plan\n".into(),
                content_hash: ContentHash::of("# Plan\n"),
                version: Version::FIRST,
                position: 0.0,
                created_by: None,
                updated_by: None,
                created_at: now,
                updated_at: now,
                deleted_at: None,
            },
            roles: HashMap::new(),
            grants: HashMap::new(),
            emails: HashMap::new(),
            comments: Vec::new(),
        }
    }

    fn member(&mut self, role: Role) -> Caller {
        let user = UserId::new();
        self.roles.insert(user, role);
        Caller::session(user)
    }

    fn with_email(&mut self, email: &str, user: UserId) {
        self.emails.insert(email.into(), user);
    }

    fn stored(&mut self, author: &Caller, parent: Option<CommentId>) -> Comment {
        let now = Utc::now();
        let c = Comment {
            id: CommentId::new(),
            workspace_id: self.doc.workspace_id,
            document_id: self.doc.id,
            parent_id: parent,
            author_id: Some(author.user_id),
            body: "hello".into(),
            anchor: None,
            mentions: Vec::new(),
            version: Version(3),
            resolved_at: None,
            resolved_by: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        self.comments.push(c.clone());
        c
    }

    /// The service over this world; every commit is checked by `commits`.
    fn service(&self, uow: MockUnitOfWork) -> CommentService {
        let roles = self.roles.clone();
        let mut members = MockMembershipRepository::new();
        members
            .expect_role_of()
            .returning(move |_, u| Ok(roles.get(&u).copied()));
        let grants_map = self.grants.clone();
        let mut grants = MockDocumentGrants::new();
        grants
            .expect_grant_of()
            .returning(move |_, u| Ok(grants_map.get(&u).copied()));
        let doc = self.doc.clone();
        let mut documents = MockDocumentRepository::new();
        documents
            .expect_document()
            .returning(move |id| Ok((id == doc.id).then(|| doc.clone())));
        let stored = self.comments.clone();
        let mut comments = MockCommentRepository::new();
        comments
            .expect_comment()
            .returning(move |id| Ok(stored.iter().find(|c| c.id == id).cloned()));
        let emails = self.emails.clone();
        let mut users = MockUserRepository::new();
        users.expect_user_by_email().returning(move |e| {
            Ok(emails.get(e.as_str()).map(|id| User {
                id: *id,
                subject: id.to_string(),
                email: e.clone(),
                display_name: "someone".into(),
                avatar_url: None,
                created_at: Utc::now(),
                updated_at: Utc::now(),
            }))
        });
        let mut clock = MockClock::new();
        clock.expect_now().returning(Utc::now);
        CommentService::new(
            CommentPorts {
                comments: Arc::new(comments),
                documents: Arc::new(documents),
                users: Arc::new(users),
                uow: Arc::new(uow),
                clock: Arc::new(clock),
            },
            Access::new(Arc::new(members), Arc::new(grants)),
        )
    }
}

fn never() -> MockUnitOfWork {
    let mut uow = MockUnitOfWork::new();
    uow.expect_commit().never();
    uow
}

/// A unit of work that accepts one batch and hands it to `check`.
fn once(check: impl Fn(&WriteBatch) + Send + Sync + 'static) -> MockUnitOfWork {
    let mut uow = MockUnitOfWork::new();
    uow.expect_commit().times(1).returning(move |b| {
        check(&b);
        Ok(Committed::default())
    });
    uow
}

fn notified(batch: &WriteBatch) -> Vec<(UserId, NotificationKind)> {
    batch
        .writes
        .iter()
        .filter_map(|w| match w {
            Write::InsertNotification(n) => Some((n.user_id, n.kind)),
            _ => None,
        })
        .collect()
}

fn text(body: &str) -> NewComment {
    NewComment {
        body: body.into(),
        parent_id: None,
        anchor: None,
    }
}

#[tokio::test]
async fn commenting_needs_commenter_and_outsiders_see_no_document() {
    let mut w = World::new();
    let viewer = w.member(Role::Viewer);
    let commenter = w.member(Role::Commenter);
    let outsider = Caller::session(UserId::new());
    let doc = w.doc.id;

    let r = w.service(never()).create(&viewer, doc, text("hi")).await;
    assert!(matches!(r, Err(CommentError::Forbidden)), "{r:?}");
    let r = w.service(never()).create(&outsider, doc, text("hi")).await;
    assert!(matches!(r, Err(CommentError::DocumentNotFound)), "{r:?}");
    let read_only = Caller {
        user_id: commenter.user_id,
        scope: Scope::Read,
    };
    let r = w.service(never()).create(&read_only, doc, text("hi")).await;
    assert!(matches!(r, Err(CommentError::Forbidden)), "{r:?}");

    let ws = w.doc.workspace_id;
    let author = commenter.user_id;
    let uow = once(move |b| {
        assert!(matches!(&b.writes[..], [Write::InsertComment(c)]
            if c.author_id == Some(author) && c.body == "hi" && c.version == Version::FIRST));
        assert_eq!(b.changes.len(), 1);
        assert_eq!(b.changes[0].workspace_id, ws);
        assert_eq!(b.changes[0].entity_type, EntityType::Comment);
        assert_eq!(b.changes[0].op, ChangeOp::Upsert);
        assert_eq!(b.changes[0].version, Some(1));
    });
    let c = w
        .service(uow)
        .create(&commenter, doc, text("hi"))
        .await
        .unwrap();
    assert!(c.is_root());
}

#[tokio::test]
async fn a_document_grant_lets_a_non_member_comment() {
    let mut w = World::new();
    let guest = UserId::new();
    w.grants.insert(guest, Role::Commenter);
    let uow = once(|b| assert!(matches!(&b.writes[..], [Write::InsertComment(_)])));
    w.service(uow)
        .create(&Caller::session(guest), w.doc.id, text("from a guest"))
        .await
        .unwrap();
}

#[tokio::test]
async fn replies_hang_off_a_live_root_of_the_same_document() {
    let mut w = World::new();
    let alice = w.member(Role::Commenter);
    let root = w.stored(&alice, None);
    let reply = w.stored(&alice, Some(root.id));
    let mut gone = w.stored(&alice, None);
    gone.deleted_at = Some(Utc::now());
    w.comments.retain(|c| c.id != gone.id);
    w.comments.push(gone.clone());
    let mut elsewhere = w.stored(&alice, None);
    elsewhere.document_id = DocumentId::new();
    w.comments.retain(|c| c.id != elsewhere.id);
    w.comments.push(elsewhere.clone());

    for parent in [reply.id, gone.id, elsewhere.id, CommentId::new()] {
        let request = NewComment {
            parent_id: Some(parent),
            ..text("re")
        };
        let r = w.service(never()).create(&alice, w.doc.id, request).await;
        assert!(
            matches!(&r, Err(CommentError::Invalid(i)) if i.field == "parent_id"),
            "{r:?}"
        );
    }

    let request = NewComment {
        parent_id: Some(root.id),
        ..text("re")
    };
    let uow = once(move |b| {
        assert!(matches!(&b.writes[..], [Write::InsertComment(c)] if c.parent_id == Some(root.id)));
    });
    let c = w
        .service(uow)
        .create(&alice, w.doc.id, request)
        .await
        .unwrap();
    assert_eq!(c.thread_id(), root.id);
}

#[test]
fn mentions_are_parsed_from_both_forms_distinct_and_in_order() {
    let id = Uuid::now_v7();
    let body = format!(
        "@[{id}] see this, @Ada@Example.com. Also mail bob@example.com (not a mention), \
         again @ada@example.com and @[{id}], @[not-a-uuid] @ nobody, (@carol@example.org)"
    );
    let found = parse_mentions(&body);
    assert_eq!(
        found,
        vec![
            Mention::User(UserId(id)),
            Mention::Email(Email::parse("ada@example.com").unwrap()),
            Mention::Email(Email::parse("carol@example.org").unwrap()),
        ]
    );
    assert!(parse_mentions("no mentions, just a@b.c and @").is_empty());
    let many: String = (0..80).map(|_| format!("@[{}] ", Uuid::now_v7())).collect();
    assert_eq!(parse_mentions(&many).len(), MAX_MENTIONS);
}

#[tokio::test]
async fn mentions_notify_members_who_can_see_the_document_but_never_the_author() {
    let mut w = World::new();
    let author = w.member(Role::Commenter);
    let viewer = w.member(Role::Viewer);
    let guest = UserId::new();
    w.grants.insert(guest, Role::Viewer);
    let stranger = UserId::new(); // exists, but has no access to the document
    w.with_email("viewer@example.com", viewer.user_id);
    w.with_email("author@example.com", author.user_id);
    w.with_email("stranger@example.com", stranger);
    let body = format!(
        "@viewer@example.com @[{guest}] @[{}] @author@example.com @stranger@example.com \
         @[{stranger}] @nobody@example.com @[{}]",
        author.user_id,
        UserId::new()
    );
    let mut expected = vec![viewer.user_id, guest];
    expected.sort();
    let want = expected.clone();
    let uow = once(move |b| {
        let kinds: Vec<_> = want
            .iter()
            .map(|u| (*u, NotificationKind::Mention))
            .collect();
        assert_eq!(notified(b), kinds);
    });
    let c = w
        .service(uow)
        .create(&author, w.doc.id, text(&body))
        .await
        .unwrap();
    assert_eq!(c.mentions, expected);
}

#[tokio::test]
async fn an_unknown_email_and_a_non_members_email_give_the_same_answer() {
    let mut w = World::new();
    let author = w.member(Role::Editor);
    w.with_email("outsider@example.com", UserId::new());
    let mut outcomes = Vec::new();
    for email in ["outsider@example.com", "nobody@example.com"] {
        let uow = once(|b| assert!(notified(b).is_empty()));
        let c = w
            .service(uow)
            .create(&author, w.doc.id, text(&format!("ping @{email}")))
            .await
            .unwrap();
        outcomes.push((c.mentions, c.body.replace(email, "EMAIL")));
    }
    assert_eq!(outcomes[0], outcomes[1]);
}

#[tokio::test]
async fn a_reply_notifies_the_threads_author_once() {
    let mut w = World::new();
    let alice = w.member(Role::Commenter);
    let bob = w.member(Role::Commenter);
    w.with_email("alice@example.com", alice.user_id);
    let root = w.stored(&alice, None);
    let doc = w.doc.id;

    // Plain reply by someone else: the root's author hears of it.
    let a = alice.user_id;
    let uow = once(move |b| assert_eq!(notified(b), vec![(a, NotificationKind::Reply)]));
    let reply = NewComment {
        parent_id: Some(root.id),
        ..text("agreed")
    };
    w.service(uow).create(&bob, doc, reply).await.unwrap();

    // Mentioned as well: one notification, the mention.
    let uow = once(move |b| assert_eq!(notified(b), vec![(a, NotificationKind::Mention)]));
    let reply = NewComment {
        parent_id: Some(root.id),
        ..text("@alice@example.com agreed")
    };
    w.service(uow).create(&bob, doc, reply).await.unwrap();

    // The author replying in their own thread: nobody.
    let uow = once(|b| assert!(notified(b).is_empty()));
    let reply = NewComment {
        parent_id: Some(root.id),
        ..text("bump")
    };
    w.service(uow).create(&alice, doc, reply).await.unwrap();

    // A root author who lost access is not told.
    w.roles.remove(&alice.user_id);
    let uow = once(|b| assert!(notified(b).is_empty()));
    let reply = NewComment {
        parent_id: Some(root.id),
        ..text("anyone?")
    };
    w.service(uow).create(&bob, doc, reply).await.unwrap();
}

#[tokio::test]
async fn only_the_author_edits_and_new_mentions_alone_are_notified() {
    let mut w = World::new();
    let alice = w.member(Role::Commenter);
    let admin = w.member(Role::Admin);
    let carol = w.member(Role::Viewer);
    let mut mine = w.stored(&alice, None);
    mine.mentions = vec![admin.user_id];
    w.comments = vec![mine.clone()];

    let r = w
        .service(never())
        .edit(&admin, mine.id, "rewritten".into())
        .await;
    assert!(matches!(r, Err(CommentError::Forbidden)), "{r:?}");

    let body = format!("@[{}] and now @[{}]", admin.user_id, carol.user_id);
    let (id, c) = (mine.id, carol.user_id);
    let uow = once(move |b| {
        assert!(
            matches!(&b.writes[0], Write::UpdateComment { comment, expected }
            if comment.id == id && *expected == Version(3) && comment.version == Version(4))
        );
        assert_eq!(notified(b), vec![(c, NotificationKind::Mention)]);
        assert_eq!(b.changes[0].op, ChangeOp::Upsert);
    });
    let edited = w.service(uow).edit(&alice, mine.id, body).await.unwrap();
    let mut both = vec![admin.user_id, carol.user_id];
    both.sort();
    assert_eq!(edited.mentions, both);

    // An author demoted to viewer can no longer edit.
    w.roles.insert(alice.user_id, Role::Viewer);
    let r = w
        .service(never())
        .edit(&alice, mine.id, "again".into())
        .await;
    assert!(matches!(r, Err(CommentError::Forbidden)), "{r:?}");
}

#[tokio::test]
async fn the_author_or_an_admin_deletes_and_nobody_else() {
    let mut w = World::new();
    let alice = w.member(Role::Commenter);
    let editor = w.member(Role::Editor);
    let admin = w.member(Role::Admin);
    let outsider = Caller::session(UserId::new());
    let c = w.stored(&alice, None);

    let r = w.service(never()).delete(&editor, c.id).await;
    assert!(matches!(r, Err(CommentError::Forbidden)), "{r:?}");
    let r = w.service(never()).delete(&outsider, c.id).await;
    assert!(matches!(r, Err(CommentError::NotFound)), "{r:?}");

    for who in [&alice, &admin] {
        let id = c.id;
        let uow = once(move |b| {
            assert!(
                matches!(&b.writes[..], [Write::UpdateComment { comment, .. }]
                if comment.id == id && comment.deleted_at.is_some())
            );
            assert_eq!(b.changes[0].op, ChangeOp::Delete);
        });
        w.service(uow).delete(who, c.id).await.unwrap();
    }

    // A tombstone is gone for everyone.
    let mut gone = c.clone();
    gone.deleted_at = Some(Utc::now());
    w.comments = vec![gone];
    let r = w.service(never()).delete(&admin, c.id).await;
    assert!(matches!(r, Err(CommentError::NotFound)), "{r:?}");
}

#[tokio::test]
async fn threads_resolve_and_reopen_by_commenters_roots_only() {
    let mut w = World::new();
    let alice = w.member(Role::Commenter);
    let viewer = w.member(Role::Viewer);
    let root = w.stored(&alice, None);
    let reply = w.stored(&alice, Some(root.id));

    let r = w
        .service(never())
        .set_resolved(&viewer, root.id, true)
        .await;
    assert!(matches!(r, Err(CommentError::Forbidden)), "{r:?}");
    let r = w
        .service(never())
        .set_resolved(&alice, reply.id, true)
        .await;
    assert!(matches!(r, Err(CommentError::NotThreadRoot)), "{r:?}");
    // Already open: reopening writes nothing.
    let same = w
        .service(never())
        .set_resolved(&alice, root.id, false)
        .await
        .unwrap();
    assert_eq!(same, root);

    let by = alice.user_id;
    let uow = once(move |b| {
        assert!(
            matches!(&b.writes[..], [Write::UpdateComment { comment, .. }]
            if comment.resolved_at.is_some() && comment.resolved_by == Some(by))
        );
    });
    let resolved = w
        .service(uow)
        .set_resolved(&alice, root.id, true)
        .await
        .unwrap();
    assert!(resolved.resolved_at.is_some());

    w.comments = vec![resolved];
    let uow = once(|b| {
        assert!(
            matches!(&b.writes[..], [Write::UpdateComment { comment, .. }]
            if comment.resolved_at.is_none() && comment.resolved_by.is_none())
        );
    });
    let reopened = w
        .service(uow)
        .set_resolved(&alice, root.id, false)
        .await
        .unwrap();
    assert!(reopened.resolved_at.is_none());
}

#[tokio::test]
async fn bodies_and_anchors_are_checked_before_anything_is_written() {
    let mut w = World::new();
    let alice = w.member(Role::Commenter);
    let doc = w.doc.id;
    let s = w.service(never());
    let r = s.create(&alice, doc, text("   \n")).await;
    assert!(
        matches!(&r, Err(CommentError::Invalid(i)) if i.field == "body"),
        "{r:?}"
    );
    let r = s.create(&alice, doc, text("a\0b")).await;
    assert!(
        matches!(&r, Err(CommentError::Invalid(i)) if i.field == "body"),
        "{r:?}"
    );
    let r = s
        .create(&alice, doc, text(&"x".repeat(MAX_BODY_BYTES + 1)))
        .await;
    assert!(matches!(r, Err(CommentError::TooLarge { .. })), "{r:?}");
    for anchor in [
        serde_json::json!(42),
        serde_json::json!([1, 2]),
        serde_json::json!("x".repeat(MAX_ANCHOR_BYTES)),
        serde_json::json!({"quote": "a\u{0}b"}),
    ] {
        let request = NewComment {
            anchor: Some(anchor),
            ..text("hi")
        };
        let r = s.create(&alice, doc, request).await;
        assert!(
            matches!(&r, Err(CommentError::Invalid(i)) if i.field == "anchor"),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn a_trashed_documents_comments_can_be_read_but_not_written() {
    let mut w = World::new();
    let alice = w.member(Role::Commenter);
    let c = w.stored(&alice, None);
    w.doc.deleted_at = Some(Utc::now());
    let r = w
        .service(never())
        .create(&alice, w.doc.id, text("hi"))
        .await;
    assert!(matches!(r, Err(CommentError::DocumentInTrash)), "{r:?}");
    let r = w.service(never()).edit(&alice, c.id, "x".into()).await;
    assert!(matches!(r, Err(CommentError::DocumentInTrash)), "{r:?}");
    let r = w.service(never()).delete(&alice, c.id).await;
    assert!(matches!(r, Err(CommentError::DocumentInTrash)), "{r:?}");
    let r = w.service(never()).set_resolved(&alice, c.id, true).await;
    assert!(matches!(r, Err(CommentError::DocumentInTrash)), "{r:?}");
}

#[tokio::test]
async fn listing_groups_replies_under_their_roots() {
    let mut w = World::new();
    let alice = w.member(Role::Viewer);
    let r1 = w.stored(&alice, None);
    let r2 = w.stored(&alice, None);
    let a = w.stored(&alice, Some(r1.id));
    let b = w.stored(&alice, Some(r2.id));
    let c = w.stored(&alice, Some(r1.id));
    let s = {
        let roots = vec![r1.clone(), r2.clone()];
        let replies = vec![a.clone(), b.clone(), c.clone()];
        let mut repo = MockCommentRepository::new();
        repo.expect_threads()
            .withf(|q| q.resolved == Some(false) && q.limit == 2)
            .returning(move |_| Ok(roots.clone()));
        repo.expect_replies()
            .returning(move |_| Ok(replies.clone()));
        let mut svc = w.service(never());
        svc.comments = Arc::new(repo);
        svc
    };
    let page = s
        .list(
            &alice,
            w.doc.id,
            Some(false),
            Limit::parse(Some(1)).unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].root.id, r1.id);
    assert_eq!(page.items[0].replies, vec![a, c]);
    assert!(page.next_cursor.is_some());

    let outsider = Caller::session(UserId::new());
    let r = w
        .service(never())
        .list(&outsider, w.doc.id, None, Limit::default(), None)
        .await;
    assert!(matches!(r, Err(CommentError::DocumentNotFound)), "{r:?}");
}
