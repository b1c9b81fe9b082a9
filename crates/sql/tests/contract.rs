//! The storage contract of the domain's ports, run against SQLite always and against Postgres
//! when `DATABASE_URL` is set (each test on a fresh database).

mod support;

use std::collections::HashSet;

use chrono::{Duration, Utc};
use mdcreator_domain::documents::{
    DocumentGrants, DocumentPosition, DocumentQuery, DocumentRepository, DocumentSort,
    DocumentSummary, FolderFilter, SortKey, VersionReason, VersionRepository,
};
use mdcreator_domain::feed::{
    AuditEvent, Change, Check, CommitError, EntityType, UnitOfWork, Write, WriteBatch,
};
use mdcreator_domain::folders::{Folder, FolderRepository};
use mdcreator_domain::idempotency::{Claim, IdempotencyStore, StoredResponse};
use mdcreator_domain::identity::local::{
    AccountStoreError, CodePurpose, LocalAccount, LocalAccountStore, PendingCode, RefreshToken,
    RefreshTokenStore, SigningKey, SigningKeyStore,
};
use mdcreator_domain::invitations::{Invitation, InvitationKind, InvitationRepository};
use mdcreator_domain::members::MembershipRepository;
use mdcreator_domain::users::UserRepository;
use mdcreator_domain::workspaces::WorkspaceRepository;
use mdcreator_domain::{
    ContentHash, DeviceId, DocumentId, Email, FolderId, InvitationId, Role, UserId, Version,
    WorkspaceId,
};
use mdcreator_sql::entity::{
    audit_events, changes, document_shares, document_versions, workspaces,
};
use mdcreator_sql::{SqlSettings, SqlStore};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    Statement,
};
use support::*;
use uuid::Uuid;

/// Declares every contract test once per backend.
macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    crate::support::on_sqlite(crate::$test).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    crate::support::on_postgres(crate::$test).await;
                }
            )*
        }
    };
}

contract!(
    workspace_and_owner_are_created_in_one_batch,
    soft_deleted_workspaces_are_hidden,
    change_seq_is_gap_free_under_concurrent_commits,
    changes_carry_actor_device_and_heads_follow_first_appearance,
    stale_save_changes_nothing,
    failed_owner_check_rolls_back_everything,
    concurrent_demotions_keep_an_owner,
    duplicate_inserts_are_reported,
    guarded_member_invitation_and_folder_writes,
    document_pages_walk_every_sort_and_filter,
    trash_place_and_delete_documents,
    versions_page_newest_first_with_byte_sizes,
    grants_ignore_revoked_and_expired_shares,
    idempotency_keys_claim_complete_release_and_expire,
    local_accounts_are_unique_by_email,
    refresh_tokens_rotate_once,
    signing_keys_are_inserted_once,
    users_are_found_by_id_subject_and_email,
);

// ---------------------------------------------------------------------------------------------
// workspaces and members

async fn workspace_and_owner_are_created_in_one_batch(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let w = workspace(ada.id);
    let batch = WriteBatch::by(ada.id)
        .write(Write::InsertWorkspace(w.clone()))
        .write(Write::PutMember {
            member: member(w.id, ada.id, Role::Owner),
            expected: None,
        })
        .change(Change::upsert(w.id, EntityType::Workspace, w.id.0))
        .change(Change::upsert(w.id, EntityType::Member, ada.id.0));
    let committed = store.commit(batch).await.unwrap();
    assert_eq!(committed.heads, vec![(w.id, 2)]);

    assert_eq!(store.workspace(w.id).await.unwrap(), Some(w.clone()));
    let mine = store.workspaces_of(ada.id).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].workspace, w);
    assert_eq!(mine[0].role, Role::Owner);
    assert_eq!(
        store.role_of(w.id, ada.id).await.unwrap(),
        Some(Role::Owner)
    );

    // Members: owners first, then by join time.
    let bob = seed_user(&store, "bob").await;
    let cy = seed_user(&store, "cy").await;
    let mut early_editor = member(w.id, bob.id, Role::Editor);
    early_editor.created_at = now() - Duration::days(1);
    let second_owner = member(w.id, cy.id, Role::Owner);
    let batch = WriteBatch::by(ada.id)
        .write(Write::PutMember {
            member: early_editor,
            expected: None,
        })
        .write(Write::PutMember {
            member: second_owner.clone(),
            expected: None,
        });
    store.commit(batch).await.unwrap();
    let members = store.members(w.id).await.unwrap();
    let order: Vec<_> = members.iter().map(|m| m.member.user_id).collect();
    assert_eq!(order, vec![ada.id, cy.id, bob.id]);
    assert_eq!(members[0].email, ada.email);
    assert_eq!(members[0].display_name, "ada");
    assert_eq!(members[2].member.role, Role::Editor);
    assert_eq!(store.member(w.id, cy.id).await.unwrap(), Some(second_owner));
    assert_eq!(store.member(w.id, UserId::new()).await.unwrap(), None);
    assert_eq!(store.role_of(w.id, UserId::new()).await.unwrap(), None);
    assert_eq!(
        store.role_of(WorkspaceId::new(), ada.id).await.unwrap(),
        None
    );

    // Oldest workspace first.
    let later = seed_workspace(&store, &ada).await;
    let ids: Vec<_> = store
        .workspaces_of(ada.id)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.workspace.id)
        .collect();
    assert_eq!(ids, vec![w.id, later.id]);
}

async fn soft_deleted_workspaces_are_hidden(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let mut w = seed_workspace(&store, &ada).await;
    let kept = seed_workspace(&store, &ada).await;
    w.name = "Renamed".into();
    w.settings = serde_json::json!({ "a": [1, 2] });
    w.updated_at = now();
    w.deleted_at = Some(now());
    let batch = WriteBatch::by(ada.id)
        .write(Write::UpdateWorkspace(w.clone()))
        .change(Change::delete(w.id, EntityType::Workspace, w.id.0));
    let committed = store.commit(batch).await.unwrap();
    assert_eq!(committed.heads, vec![(w.id, 3)]);

    assert_eq!(store.workspace(w.id).await.unwrap(), None);
    assert_eq!(store.role_of(w.id, ada.id).await.unwrap(), None);
    let visible: Vec<_> = store
        .workspaces_of(ada.id)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.workspace.id)
        .collect();
    assert_eq!(visible, vec![kept.id]);
    // The membership row itself stays (the workspace can be restored).
    assert!(store.member(w.id, ada.id).await.unwrap().is_some());

    // Restoring brings it back with the new fields.
    w.deleted_at = None;
    store
        .commit(WriteBatch::by(ada.id).write(Write::UpdateWorkspace(w.clone())))
        .await
        .unwrap();
    assert_eq!(store.workspace(w.id).await.unwrap(), Some(w));

    // Updating a workspace that does not exist is stale.
    let ghost = workspace(ada.id);
    let r = store
        .commit(WriteBatch::by(ada.id).write(Write::UpdateWorkspace(ghost)))
        .await;
    assert!(matches!(r, Err(CommitError::Stale("workspaces"))), "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// the change feed

async fn change_seq_is_gap_free_under_concurrent_commits(store: SqlStore) {
    const TASKS: i64 = 20;
    const PER_BATCH: i64 = 3;
    let ada = seed_user(&store, "ada").await;
    let w = seed_workspace(&store, &ada).await; // head 2
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let store = store.clone();
        let actor = ada.id;
        tasks.push(tokio::spawn(async move {
            let mut batch = WriteBatch::by(actor);
            let mut ids = Vec::new();
            for _ in 0..PER_BATCH {
                let id = Uuid::now_v7();
                ids.push(id);
                batch = batch.change(Change::upsert(w.id, EntityType::Document, id));
            }
            let committed = store.commit(batch).await.expect("commit");
            (committed.heads, ids)
        }));
    }
    let mut heads = HashSet::new();
    let mut batches = Vec::new();
    for task in tasks {
        let (h, ids) = task.await.unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].0, w.id);
        assert!(heads.insert(h[0].1), "head {} handed out twice", h[0].1);
        batches.push((h[0].1, ids));
    }

    let rows = changes::Entity::find()
        .filter(changes::Column::WorkspaceId.eq(w.id.0))
        .order_by_asc(changes::Column::Seq)
        .all(store.connection())
        .await
        .unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    let total = 2 + TASKS * PER_BATCH;
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
    // Each batch got a contiguous run ending at its head, in batch order.
    for (head, ids) in batches {
        let run: Vec<Uuid> = rows
            .iter()
            .filter(|r| r.seq > head - PER_BATCH && r.seq <= head)
            .map(|r| r.entity_id)
            .collect();
        assert_eq!(run, ids);
    }
    let stored = workspaces::Entity::find_by_id(w.id.0)
        .one(store.connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.change_seq, total);
}

async fn changes_carry_actor_device_and_heads_follow_first_appearance(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let a = seed_workspace(&store, &ada).await;
    let b = seed_workspace(&store, &ada).await;
    let device = DeviceId::new();
    let (x, y, z) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut batch = WriteBatch::by(ada.id)
        .change(Change::upsert(b.id, EntityType::Folder, x).with_version(4))
        .change(Change::delete(a.id, EntityType::Document, y))
        .change(Change::upsert(b.id, EntityType::Comment, z));
    batch.device = Some(device);
    let committed = store.commit(batch).await.unwrap();
    assert_eq!(committed.heads, vec![(b.id, 4), (a.id, 3)]);

    let rows = changes::Entity::find()
        .filter(changes::Column::WorkspaceId.eq(b.id.0))
        .filter(changes::Column::Seq.gt(2))
        .order_by_asc(changes::Column::Seq)
        .all(store.connection())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].seq, rows[0].entity_id, rows[0].entity_type.as_str()),
        (3, x, "folder")
    );
    assert_eq!((rows[0].op.as_str(), rows[0].version), ("upsert", Some(4)));
    assert_eq!((rows[1].seq, rows[1].entity_id), (4, z));
    assert_eq!(rows[1].entity_type, "comment");
    for row in &rows {
        assert_eq!(row.actor_id, Some(ada.id.0));
        assert_eq!(row.device_id, Some(device.0));
        assert!((Utc::now() - row.at).num_seconds().abs() < 60);
    }
    let deleted = changes::Entity::find_by_id((a.id.0, 3))
        .one(store.connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((deleted.op.as_str(), deleted.entity_id), ("delete", y));

    // A large batch (a folder tree moved to the trash) is numbered in one run.
    let mut batch = WriteBatch::by(ada.id);
    for _ in 0..1201 {
        batch = batch.change(Change::delete(a.id, EntityType::Document, Uuid::now_v7()));
    }
    assert_eq!(store.commit(batch).await.unwrap().heads, vec![(a.id, 1204)]);
    assert_eq!(change_count(&store, a.id).await, 1204);

    // A change for a workspace that does not exist is stale.
    let r = store
        .commit(WriteBatch::by(ada.id).change(Change::upsert(
            WorkspaceId::new(),
            EntityType::Document,
            x,
        )))
        .await;
    assert!(matches!(r, Err(CommitError::Stale("workspaces"))), "{r:?}");
}

async fn stale_save_changes_nothing(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let w = seed_workspace(&store, &ada).await;
    let mut d = document(w.id, ada.id, "Notes", "v1");
    seed_document(&store, &d).await; // head 3

    // A save on the current version succeeds.
    let mut v2 = d.clone();
    v2.content = "v2".into();
    v2.content_hash = ContentHash::of("v2");
    v2.version = Version(2);
    v2.updated_at = now();
    let batch = WriteBatch::by(ada.id)
        .write(Write::SaveDocument {
            document: v2.clone(),
            expected: Version(1),
        })
        .write(Write::InsertVersion(version_of(&v2, VersionReason::Save)))
        .change(Change::upsert(w.id, EntityType::Document, d.id.0).with_version(2));
    assert_eq!(store.commit(batch).await.unwrap().heads, vec![(w.id, 4)]);
    assert_eq!(store.document(d.id).await.unwrap(), Some(v2.clone()));
    assert_eq!(
        store.document_summary(d.id).await.unwrap(),
        Some(v2.summary())
    );

    // A second save still based on version 1 is stale and stores nothing.
    d.title = "Other".into();
    d.content = "conflicting".into();
    d.content_hash = ContentHash::of("conflicting");
    d.version = Version(2);
    let batch = WriteBatch::by(ada.id)
        .write(Write::SaveDocument {
            document: d.clone(),
            expected: Version(1),
        })
        .write(Write::InsertVersion(version_of(&d, VersionReason::Save)))
        .change(Change::upsert(w.id, EntityType::Document, d.id.0).with_version(2));
    let r = store.commit(batch).await;
    assert!(matches!(r, Err(CommitError::Stale("documents"))), "{r:?}");

    assert_eq!(store.document(d.id).await.unwrap(), Some(v2.clone()));
    let versions = document_versions::Entity::find()
        .filter(document_versions::Column::DocumentId.eq(d.id.0))
        .count(store.connection())
        .await
        .unwrap();
    assert_eq!(versions, 2);
    assert_eq!(change_count(&store, w.id).await, 4);
    assert_eq!(change_seq(&store, w.id).await, 4);
    let stored = store.version(d.id, Version(2)).await.unwrap().unwrap();
    assert_eq!(stored.content, "v2");

    // A save of a document that does not exist is stale too.
    let ghost = document(w.id, ada.id, "Ghost", "");
    let r = store
        .commit(WriteBatch::by(ada.id).write(Write::SaveDocument {
            document: ghost,
            expected: Version(1),
        }))
        .await;
    assert!(matches!(r, Err(CommitError::Stale("documents"))), "{r:?}");
}

async fn failed_owner_check_rolls_back_everything(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let w = seed_workspace(&store, &ada).await; // head 2
    let folder = folder(w.id, "Drafts");
    let batch = WriteBatch::by(ada.id)
        .write(Write::RemoveMember {
            workspace_id: w.id,
            user_id: ada.id,
            expected: Role::Owner,
        })
        .write(Write::InsertFolder(folder.clone()))
        .write(Write::Audit(AuditEvent {
            workspace_id: w.id,
            action: "member.leave",
            target_type: EntityType::Member,
            target_id: Some(ada.id.0),
            details: serde_json::json!({}),
        }))
        .check(Check::WorkspaceHasOwner(w.id))
        .change(Change::delete(w.id, EntityType::Member, ada.id.0))
        .change(Change::upsert(w.id, EntityType::Folder, folder.id.0));
    let r = store.commit(batch).await;
    assert!(matches!(r, Err(CommitError::NoOwnerLeft)), "{r:?}");

    assert_eq!(
        store.role_of(w.id, ada.id).await.unwrap(),
        Some(Role::Owner)
    );
    assert_eq!(store.folder(folder.id).await.unwrap(), None);
    assert_eq!(audit_count(&store, w.id).await, 0);
    assert_eq!(change_count(&store, w.id).await, 2);
    assert_eq!(change_seq(&store, w.id).await, 2);

    // With a second owner the same demotion passes the check, and the audit row records the
    // batch's actor. A check on a workspace without changes leaves its head alone.
    let bob = seed_user(&store, "bob").await;
    let batch = WriteBatch::by(ada.id)
        .write(Write::PutMember {
            member: member(w.id, bob.id, Role::Owner),
            expected: None,
        })
        .write(Write::PutMember {
            member: member(w.id, ada.id, Role::Admin),
            expected: Some(Role::Owner),
        })
        .write(Write::Audit(AuditEvent {
            workspace_id: w.id,
            action: "member.role",
            target_type: EntityType::Member,
            target_id: Some(ada.id.0),
            details: serde_json::json!({ "role": "admin" }),
        }))
        .check(Check::WorkspaceHasOwner(w.id));
    let committed = store.commit(batch).await.unwrap();
    assert!(committed.heads.is_empty());
    assert_eq!(change_seq(&store, w.id).await, 2);
    assert_eq!(
        store.role_of(w.id, ada.id).await.unwrap(),
        Some(Role::Admin)
    );
    let audit = audit_events::Entity::find()
        .filter(audit_events::Column::WorkspaceId.eq(w.id.0))
        .one(store.connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(audit.actor_id, Some(ada.id.0));
    assert_eq!(audit.action, "member.role");
    assert_eq!(audit.target_type, "member");
    assert_eq!(audit.details, serde_json::json!({ "role": "admin" }));
}

async fn concurrent_demotions_keep_an_owner(store: SqlStore) {
    for _ in 0..5 {
        let ada = seed_user(&store, "ada").await;
        let bob = seed_user(&store, "bob").await;
        let w = seed_workspace(&store, &ada).await;
        store
            .commit(WriteBatch::by(ada.id).write(Write::PutMember {
                member: member(w.id, bob.id, Role::Owner),
                expected: None,
            }))
            .await
            .unwrap();
        // Each owner demotes themself at the same time: at most one may succeed.
        let demote = |who: UserId| {
            let store = store.clone();
            tokio::spawn(async move {
                let batch = WriteBatch::by(who)
                    .write(Write::PutMember {
                        member: member(w.id, who, Role::Editor),
                        expected: Some(Role::Owner),
                    })
                    .check(Check::WorkspaceHasOwner(w.id))
                    .change(Change::upsert(w.id, EntityType::Member, who.0));
                store.commit(batch).await
            })
        };
        let (a, b) = (demote(ada.id), demote(bob.id));
        let results = [a.await.unwrap(), b.await.unwrap()];
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "{results:?}");
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(CommitError::NoOwnerLeft))),
            "{results:?}"
        );
        let owners = store
            .members(w.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.member.role == Role::Owner)
            .count();
        assert_eq!(owners, 1);
    }
}

async fn duplicate_inserts_are_reported(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let w = seed_workspace(&store, &ada).await;
    let d = document(w.id, ada.id, "Notes", "x");
    seed_document(&store, &d).await;
    let head = change_seq(&store, w.id).await;

    let batch = WriteBatch::by(ada.id)
        .write(Write::InsertDocument(d.clone()))
        .change(Change::upsert(w.id, EntityType::Document, d.id.0));
    let r = store.commit(batch).await;
    assert!(
        matches!(r, Err(CommitError::Duplicate("documents"))),
        "{r:?}"
    );
    assert_eq!(change_seq(&store, w.id).await, head);

    let r = store
        .commit(WriteBatch::by(ada.id).write(Write::PutMember {
            member: member(w.id, ada.id, Role::Viewer),
            expected: None,
        }))
        .await;
    assert!(
        matches!(r, Err(CommitError::Duplicate("workspace_members"))),
        "{r:?}"
    );

    let mut twin = workspace(ada.id);
    twin.slug = w.slug.clone();
    let r = store
        .commit(WriteBatch::by(ada.id).write(Write::InsertWorkspace(twin)))
        .await;
    assert!(
        matches!(r, Err(CommitError::Duplicate("workspaces"))),
        "{r:?}"
    );

    let mut same_subject = user("ada2");
    same_subject.subject = ada.subject.clone();
    let r = store
        .commit(WriteBatch::by(ada.id).write(Write::InsertUser(same_subject)))
        .await;
    assert!(matches!(r, Err(CommitError::Duplicate("users"))), "{r:?}");

    let r = store
        .commit(
            WriteBatch::by(ada.id)
                .write(Write::InsertVersion(version_of(&d, VersionReason::Import))),
        )
        .await;
    assert!(
        matches!(r, Err(CommitError::Duplicate("document_versions"))),
        "{r:?}"
    );

    // A document in a workspace that does not exist: its parent row is missing.
    let orphan = document(WorkspaceId::new(), ada.id, "Orphan", "");
    let r = store
        .commit(WriteBatch::by(ada.id).write(Write::InsertDocument(orphan)))
        .await;
    assert!(matches!(r, Err(CommitError::Stale("documents"))), "{r:?}");
}

async fn guarded_member_invitation_and_folder_writes(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let bob = seed_user(&store, "bob").await;
    let w = seed_workspace(&store, &ada).await;
    store
        .commit(WriteBatch::by(ada.id).write(Write::PutMember {
            member: member(w.id, bob.id, Role::Viewer),
            expected: None,
        }))
        .await
        .unwrap();

    // Role changes and removals compare the stored role.
    let r = store
        .commit(WriteBatch::by(ada.id).write(Write::PutMember {
            member: member(w.id, bob.id, Role::Admin),
            expected: Some(Role::Editor),
        }))
        .await;
    assert!(
        matches!(r, Err(CommitError::Stale("workspace_members"))),
        "{r:?}"
    );
    let r = store
        .commit(WriteBatch::by(ada.id).write(Write::RemoveMember {
            workspace_id: w.id,
            user_id: bob.id,
            expected: Role::Editor,
        }))
        .await;
    assert!(
        matches!(r, Err(CommitError::Stale("workspace_members"))),
        "{r:?}"
    );
    store
        .commit(WriteBatch::by(ada.id).write(Write::RemoveMember {
            workspace_id: w.id,
            user_id: bob.id,
            expected: Role::Viewer,
        }))
        .await
        .unwrap();
    assert_eq!(store.member(w.id, bob.id).await.unwrap(), None);

    // Invitations: open ones newest first; uses guarded.
    let at = now();
    let mut open_old = invitation(w.id, InvitationKind::Link, at - Duration::hours(2));
    open_old.max_uses = Some(3);
    let open_new = invitation(w.id, InvitationKind::Email, at - Duration::hours(1));
    let mut expired = invitation(w.id, InvitationKind::Link, at - Duration::hours(3));
    expired.expires_at = at - Duration::minutes(1);
    let mut revoked = invitation(w.id, InvitationKind::Link, at - Duration::hours(4));
    revoked.revoked_at = Some(at);
    let mut batch = WriteBatch::by(ada.id);
    for i in [&open_old, &open_new, &expired, &revoked] {
        batch = batch.write(Write::InsertInvitation(i.clone()));
    }
    store.commit(batch).await.unwrap();
    let open = store.open_invitations(w.id, at).await.unwrap();
    assert_eq!(open, vec![open_new.clone(), open_old.clone()]);
    assert_eq!(
        store
            .invitation_by_token_hash(&open_new.token_hash)
            .await
            .unwrap(),
        Some(open_new.clone())
    );
    assert_eq!(store.invitation(InvitationId::new()).await.unwrap(), None);

    let mut used = open_old.clone();
    used.uses = 1;
    store
        .commit(WriteBatch::by(ada.id).write(Write::UpdateInvitation {
            invitation: used.clone(),
            expected_uses: 0,
        }))
        .await
        .unwrap();
    let r = store
        .commit(WriteBatch::by(ada.id).write(Write::UpdateInvitation {
            invitation: used.clone(),
            expected_uses: 0,
        }))
        .await;
    assert!(matches!(r, Err(CommitError::Stale("invitations"))), "{r:?}");
    assert_eq!(store.invitation(used.id).await.unwrap(), Some(used));

    // Folders: version-guarded updates; trashed folders leave the list.
    let parent = folder(w.id, "Parent");
    let mut child = folder(w.id, "Child");
    child.parent_id = Some(parent.id);
    child.position = 2.5;
    store
        .commit(
            WriteBatch::by(ada.id)
                .write(Write::InsertFolder(parent.clone()))
                .write(Write::InsertFolder(child.clone())),
        )
        .await
        .unwrap();
    assert_eq!(
        store.folders(w.id).await.unwrap(),
        vec![parent.clone(), child.clone()]
    );
    let mut renamed = child.clone();
    renamed.name = "Renamed".into();
    renamed.parent_id = None;
    renamed.version = Version(2);
    store
        .commit(WriteBatch::by(ada.id).write(Write::UpdateFolder {
            folder: renamed.clone(),
            expected: Version(1),
        }))
        .await
        .unwrap();
    let r = store
        .commit(WriteBatch::by(ada.id).write(Write::UpdateFolder {
            folder: renamed.clone(),
            expected: Version(1),
        }))
        .await;
    assert!(matches!(r, Err(CommitError::Stale("folders"))), "{r:?}");
    assert_eq!(store.folder(child.id).await.unwrap(), Some(renamed.clone()));
    let mut trashed = parent.clone();
    trashed.version = Version(2);
    trashed.deleted_at = Some(now());
    store
        .commit(WriteBatch::by(ada.id).write(Write::UpdateFolder {
            folder: trashed.clone(),
            expected: Version(1),
        }))
        .await
        .unwrap();
    assert_eq!(store.folders(w.id).await.unwrap(), vec![renamed]);
    assert_eq!(store.folder(parent.id).await.unwrap(), Some(trashed));
    assert_eq!(store.folder(FolderId::new()).await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// documents

async fn document_pages_walk_every_sort_and_filter(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let w = seed_workspace(&store, &ada).await;
    let other = seed_workspace(&store, &ada).await;
    let drafts = folder(w.id, "Drafts");
    store
        .commit(WriteBatch::by(ada.id).write(Write::InsertFolder(drafts.clone())))
        .await
        .unwrap();

    let base = now() - Duration::days(1);
    let mut all = Vec::new();
    for i in 0..25i64 {
        // Ties on every sort key, so the id tie-break is exercised.
        let mut d = document(w.id, ada.id, &format!("doc-{:02}", i % 7), "body");
        d.created_at = base + Duration::seconds(i / 3);
        d.updated_at = base + Duration::seconds(100 + (i * 7) % 10);
        d.folder_id = (i % 3 == 0).then_some(drafts.id);
        d.deleted_at = (i % 5 == 4).then(|| base + Duration::seconds(500));
        let batch = WriteBatch::by(ada.id).write(Write::InsertDocument(d.clone()));
        store.commit(batch).await.unwrap();
        all.push(d.summary());
    }
    // Noise in another workspace.
    seed_document(&store, &document(other.id, ada.id, "doc-00", "x")).await;

    let since = base + Duration::seconds(105);
    let filters: [(FolderFilter, bool, Option<_>); 6] = [
        (FolderFilter::Any, false, None),
        (FolderFilter::Root, false, None),
        (FolderFilter::In(drafts.id), false, None),
        (FolderFilter::Any, true, None),
        (FolderFilter::Any, false, Some(since)),
        (FolderFilter::In(drafts.id), true, Some(since)),
    ];
    for (folder, trashed, updated_since) in filters {
        for sort in [
            DocumentSort::UpdatedAt,
            DocumentSort::CreatedAt,
            DocumentSort::Title,
        ] {
            for descending in [false, true] {
                let mut expected: Vec<DocumentSummary> = all
                    .iter()
                    .filter(|d| d.deleted_at.is_some() == trashed)
                    .filter(|d| match folder {
                        FolderFilter::Any => true,
                        FolderFilter::Root => d.folder_id.is_none(),
                        FolderFilter::In(f) => d.folder_id == Some(f),
                    })
                    .filter(|d| updated_since.is_none_or(|t| d.updated_at >= t))
                    .cloned()
                    .collect();
                expected.sort_by(|a, b| {
                    let order = sort_key(a, sort)
                        .cmp(&sort_key(b, sort))
                        .then(a.id.0.cmp(&b.id.0));
                    if descending { order.reverse() } else { order }
                });

                let mut walked = Vec::new();
                let mut after = None;
                for _ in 0..10 {
                    let query = DocumentQuery {
                        workspace_id: w.id,
                        folder,
                        updated_since,
                        trashed,
                        sort,
                        descending,
                        after: after.clone(),
                        limit: 7,
                    };
                    let page = store.documents(query).await.unwrap();
                    assert!(page.len() <= 7);
                    let Some(last) = page.last() else { break };
                    after = Some(DocumentPosition {
                        key: position_key(last, sort),
                        id: last.id,
                    });
                    let full = page.len() == 7;
                    walked.extend(page);
                    if !full {
                        break;
                    }
                }
                let ids = |v: &[DocumentSummary]| v.iter().map(|d| d.id).collect::<Vec<_>>();
                assert_eq!(
                    ids(&walked),
                    ids(&expected),
                    "{folder:?} trashed={trashed} since={updated_since:?} {sort:?} desc={descending}"
                );
                assert_eq!(walked, expected);
            }
        }
    }

    let in_drafts = store
        .documents_in_folders(w.id, vec![drafts.id, FolderId::new()])
        .await
        .unwrap();
    let mut expected: Vec<DocumentId> = all
        .iter()
        .filter(|d| d.folder_id == Some(drafts.id) && d.deleted_at.is_none())
        .map(|d| d.id)
        .collect();
    expected.sort_by_key(|id| id.0);
    assert_eq!(in_drafts.iter().map(|d| d.id).collect::<Vec<_>>(), expected);
    assert!(
        store
            .documents_in_folders(w.id, Vec::new())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn trash_place_and_delete_documents(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let bob = seed_user(&store, "bob").await;
    let w = seed_workspace(&store, &ada).await;
    let drafts = folder(w.id, "Drafts");
    store
        .commit(WriteBatch::by(ada.id).write(Write::InsertFolder(drafts.clone())))
        .await
        .unwrap();
    let d = document(w.id, ada.id, "Notes", "text");
    seed_document(&store, &d).await;

    let at = now();
    store
        .commit(WriteBatch::by(bob.id).write(Write::PlaceDocument {
            id: d.id,
            folder_id: Some(drafts.id),
            position: 3.25,
            updated_by: bob.id,
            updated_at: at,
        }))
        .await
        .unwrap();
    let placed = store.document(d.id).await.unwrap().unwrap();
    assert_eq!(placed.folder_id, Some(drafts.id));
    assert_eq!(placed.position, 3.25);
    assert_eq!(placed.version, Version(1));
    assert_eq!((placed.updated_by, placed.updated_at), (Some(bob.id), at));

    store
        .commit(WriteBatch::by(bob.id).write(Write::TrashDocument {
            id: d.id,
            deleted_at: Some(at),
            updated_by: bob.id,
            updated_at: at,
        }))
        .await
        .unwrap();
    let trashed = store.document(d.id).await.unwrap().unwrap();
    assert_eq!(trashed.deleted_at, Some(at));
    assert_eq!(
        store.document_summary(d.id).await.unwrap(),
        Some(trashed.summary())
    );

    store
        .commit(
            WriteBatch::by(ada.id)
                .write(Write::DeleteDocument { id: d.id })
                .change(Change::delete(w.id, EntityType::Document, d.id.0)),
        )
        .await
        .unwrap();
    assert_eq!(store.document(d.id).await.unwrap(), None);
    assert_eq!(store.document_summary(d.id).await.unwrap(), None);
    // Versions go with the document.
    assert_eq!(store.version(d.id, Version(1)).await.unwrap(), None);
    for write in [
        Write::DeleteDocument { id: d.id },
        Write::TrashDocument {
            id: d.id,
            deleted_at: None,
            updated_by: ada.id,
            updated_at: at,
        },
        Write::PlaceDocument {
            id: d.id,
            folder_id: None,
            position: 0.0,
            updated_by: ada.id,
            updated_at: at,
        },
    ] {
        let r = store.commit(WriteBatch::by(ada.id).write(write)).await;
        assert!(matches!(r, Err(CommitError::Stale("documents"))), "{r:?}");
    }
}

async fn versions_page_newest_first_with_byte_sizes(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let w = seed_workspace(&store, &ada).await;
    let mut d = document(w.id, ada.id, "Notes", "a");
    seed_document(&store, &d).await;
    let mut contents = vec!["a".to_owned()];
    for n in 2..=5i64 {
        let content = "é".repeat(n as usize) + "\u{1F600}";
        let expected = d.version;
        d.version = Version(n);
        d.content = content.clone();
        d.content_hash = ContentHash::of(&content);
        d.updated_at = now();
        let reason = if n == 4 {
            VersionReason::Restore
        } else {
            VersionReason::Merge
        };
        store
            .commit(
                WriteBatch::by(ada.id)
                    .write(Write::SaveDocument {
                        document: d.clone(),
                        expected,
                    })
                    .write(Write::InsertVersion(version_of(&d, reason))),
            )
            .await
            .unwrap();
        contents.push(content);
    }

    let page = store.versions(d.id, None, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|v| v.version.0).collect::<Vec<_>>(),
        vec![5, 4]
    );
    assert_eq!(page[1].reason, VersionReason::Restore);
    let page = store.versions(d.id, Some(Version(4)), 2).await.unwrap();
    assert_eq!(
        page.iter().map(|v| v.version.0).collect::<Vec<_>>(),
        vec![3, 2]
    );
    let page = store.versions(d.id, Some(Version(2)), 2).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].version, Version(1));
    assert_eq!(page[0].reason, VersionReason::Save);
    assert_eq!(page[0].author_id, Some(ada.id));
    assert_eq!(page[0].title, "Notes");

    for v in store.versions(d.id, None, 10).await.unwrap() {
        let content = &contents[(v.version.0 - 1) as usize];
        assert_eq!(v.size, content.len() as i64, "version {}", v.version);
        assert_eq!(v.content_hash, ContentHash::of(content));
    }
    let v3 = store.version(d.id, Version(3)).await.unwrap().unwrap();
    assert_eq!(v3.content, contents[2]);
    assert_eq!(v3.reason, VersionReason::Merge);
    assert_eq!(store.version(d.id, Version(9)).await.unwrap(), None);
    assert!(
        store
            .versions(DocumentId::new(), None, 5)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn grants_ignore_revoked_and_expired_shares(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let bob = seed_user(&store, "bob").await;
    let cy = seed_user(&store, "cy").await;
    let w = seed_workspace(&store, &ada).await;
    let d = document(w.id, ada.id, "Shared", "x");
    seed_document(&store, &d).await;

    let at = now();
    let shares = [
        (bob.id, "viewer", None, None),
        (bob.id, "commenter", Some(at + Duration::days(1)), None),
        (bob.id, "admin", None, Some(at)),
        (bob.id, "owner", Some(at - Duration::seconds(1)), None),
        (cy.id, "editor", Some(at - Duration::days(1)), None),
    ];
    for (user, role, expires_at, revoked_at) in shares {
        document_shares::Entity::insert(document_shares::ActiveModel {
            id: Set(Uuid::now_v7()),
            document_id: Set(d.id.0),
            user_id: Set(Some(user.0)),
            link_token_hash: Set(None),
            role: Set(role.to_owned()),
            expires_at: Set(expires_at),
            revoked_at: Set(revoked_at),
            created_by: Set(Some(ada.id.0)),
            created_at: Set(at),
        })
        .exec_without_returning(store.connection())
        .await
        .unwrap();
    }
    assert_eq!(
        store.grant_of(d.id, bob.id).await.unwrap(),
        Some(Role::Commenter)
    );
    assert_eq!(store.grant_of(d.id, cy.id).await.unwrap(), None);
    assert_eq!(store.grant_of(d.id, ada.id).await.unwrap(), None);
    assert_eq!(
        store.grant_of(DocumentId::new(), bob.id).await.unwrap(),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// idempotency, accounts, tokens, keys

async fn idempotency_keys_claim_complete_release_and_expire(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let bob = seed_user(&store, "bob").await;
    let t0 = now();
    let expires = t0 + Duration::hours(24);

    assert_eq!(
        store.claim(ada.id, "k1", "h1", t0, expires).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        store.claim(ada.id, "k1", "h2", t0, expires).await.unwrap(),
        Claim::Existing {
            request_hash: "h1".into(),
            response: None
        }
    );
    // Keys are per user.
    assert_eq!(
        store.claim(bob.id, "k1", "h9", t0, expires).await.unwrap(),
        Claim::Claimed
    );

    let response = StoredResponse {
        status: 201,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("location".into(), "/documents/1".into()),
        ],
        body: br#"{"id":1}"#.to_vec(),
    };
    store.complete(ada.id, "k1", &response).await.unwrap();
    assert_eq!(
        store.claim(ada.id, "k1", "h1", t0, expires).await.unwrap(),
        Claim::Existing {
            request_hash: "h1".into(),
            response: Some(response.clone())
        }
    );

    // Released keys run again.
    store.release(bob.id, "k1").await.unwrap();
    assert_eq!(
        store.claim(bob.id, "k1", "h3", t0, expires).await.unwrap(),
        Claim::Claimed
    );
    store.release(bob.id, "never-claimed").await.unwrap();

    // After expiry the key is new again, and its old response is gone.
    let later = expires + Duration::seconds(1);
    assert_eq!(
        store
            .claim(ada.id, "k1", "h4", later, later + Duration::hours(24))
            .await
            .unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        store
            .claim(ada.id, "k1", "h1", later, later + Duration::hours(24))
            .await
            .unwrap(),
        Claim::Existing {
            request_hash: "h4".into(),
            response: None
        }
    );

    // Concurrent claims of one key: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let user = ada.id;
        tasks.push(tokio::spawn(async move {
            store
                .claim(user, "race", &format!("h{i}"), t0, expires)
                .await
                .unwrap()
        }));
    }
    let mut claimed = 0;
    for task in tasks {
        if task.await.unwrap() == Claim::Claimed {
            claimed += 1;
        }
    }
    assert_eq!(claimed, 1);
}

async fn local_accounts_are_unique_by_email(store: SqlStore) {
    let ada = user("ada");
    let account = LocalAccount {
        user_id: ada.id,
        email: ada.email.clone(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        verified: false,
        code: Some(PendingCode {
            hash: "code-hash".into(),
            purpose: CodePurpose::Confirm,
            expires_at: now() + Duration::minutes(15),
            attempts: 0,
        }),
    };
    store.create_account(&ada, &account).await.unwrap();
    assert_eq!(store.user_by_id(ada.id).await.unwrap(), Some(ada.clone()));
    let upper = Email::parse(&ada.email.as_str().to_uppercase()).unwrap();
    assert_eq!(
        store.account_by_email(&upper).await.unwrap(),
        Some(account.clone())
    );
    assert_eq!(
        store.account_by_user(ada.id).await.unwrap(),
        Some(account.clone())
    );

    // Same e-mail, another user: refused, and nothing of it is stored.
    let mut twin = user("twin");
    twin.email = ada.email.clone();
    let twin_account = LocalAccount {
        user_id: twin.id,
        ..account.clone()
    };
    let r = store.create_account(&twin, &twin_account).await;
    assert!(matches!(r, Err(AccountStoreError::Duplicate)), "{r:?}");
    assert_eq!(store.user_by_id(twin.id).await.unwrap(), None);
    assert_eq!(store.account_by_user(twin.id).await.unwrap(), None);

    let mut updated = account.clone();
    updated.verified = true;
    updated.password_hash = "new-hash".into();
    updated.code = Some(PendingCode {
        hash: "reset-hash".into(),
        purpose: CodePurpose::Reset,
        expires_at: now() + Duration::minutes(30),
        attempts: 2,
    });
    store.update_account(&updated).await.unwrap();
    assert_eq!(
        store.account_by_user(ada.id).await.unwrap(),
        Some(updated.clone())
    );
    updated.code = None;
    store.update_account(&updated).await.unwrap();
    assert_eq!(store.account_by_user(ada.id).await.unwrap(), Some(updated));
    assert_eq!(
        store
            .account_by_email(&Email::parse("nobody@example.com").unwrap())
            .await
            .unwrap(),
        None
    );
}

async fn refresh_tokens_rotate_once(store: SqlStore) {
    let ada = seed_user(&store, "ada").await;
    let family = Uuid::now_v7();
    let token = |hash: &str| RefreshToken {
        id: Uuid::now_v7(),
        user_id: ada.id,
        family_id: family,
        token_hash: hash.into(),
        expires_at: now() + Duration::days(30),
        revoked_at: None,
        created_at: now(),
    };
    let t1 = token("t1");
    store.insert_refresh_token(&t1).await.unwrap();
    assert_eq!(
        store.refresh_token_by_hash("t1").await.unwrap(),
        Some(t1.clone())
    );

    let at = now();
    let t2 = token("t2");
    assert!(store.rotate_refresh_token(t1.id, &t2, at).await.unwrap());
    let old = store.refresh_token_by_hash("t1").await.unwrap().unwrap();
    assert_eq!(old.revoked_at, Some(at));
    assert_eq!(
        store.refresh_token_by_hash("t2").await.unwrap(),
        Some(t2.clone())
    );

    // The same old token a second time: refused, nothing stored.
    let t3 = token("t3");
    assert!(!store.rotate_refresh_token(t1.id, &t3, now()).await.unwrap());
    assert_eq!(store.refresh_token_by_hash("t3").await.unwrap(), None);

    // Concurrent rotations of one token: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = store.clone();
        let next = token(&format!("race-{i}"));
        let old = t2.id;
        tasks.push(tokio::spawn(async move {
            store.rotate_refresh_token(old, &next, now()).await.unwrap()
        }));
    }
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 1);

    let revoke_at = now();
    store
        .revoke_refresh_family(family, revoke_at)
        .await
        .unwrap();
    for hash in ["t1", "t2"] {
        let t = store.refresh_token_by_hash(hash).await.unwrap().unwrap();
        assert!(t.revoked_at.is_some(), "{hash}");
    }
    // Already revoked tokens keep their first revocation time.
    assert_eq!(
        store
            .refresh_token_by_hash("t1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(at)
    );

    let other_family = RefreshToken {
        family_id: Uuid::now_v7(),
        ..token("t4")
    };
    store.insert_refresh_token(&other_family).await.unwrap();
    store
        .revoke_user_refresh_tokens(ada.id, now())
        .await
        .unwrap();
    assert!(
        store
            .refresh_token_by_hash("t4")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
}

async fn signing_keys_are_inserted_once(store: SqlStore) {
    let older = SigningKey {
        kid: "k-old".into(),
        algorithm: "EdDSA".into(),
        private_key: vec![0, 1, 2, 255],
        public_jwk: serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": "abc" }),
        created_at: now() - Duration::days(10),
        retired_at: Some(now()),
    };
    let newer = SigningKey {
        kid: "k-new".into(),
        created_at: now(),
        retired_at: None,
        ..older.clone()
    };
    assert!(store.insert_signing_key(&older).await.unwrap());
    assert!(store.insert_signing_key(&newer).await.unwrap());
    let clash = SigningKey {
        private_key: vec![9],
        ..newer.clone()
    };
    assert!(!store.insert_signing_key(&clash).await.unwrap());
    assert_eq!(store.signing_keys().await.unwrap(), vec![newer, older]);
}

async fn users_are_found_by_id_subject_and_email(store: SqlStore) {
    let mut ada = seed_user(&store, "ada").await;
    assert_eq!(store.user_by_id(ada.id).await.unwrap(), Some(ada.clone()));
    assert_eq!(
        store.user_by_subject(&ada.subject).await.unwrap(),
        Some(ada.clone())
    );
    let upper = Email::parse(&ada.email.as_str().to_uppercase()).unwrap();
    assert_eq!(
        store.user_by_email(&upper).await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(store.user_by_id(UserId::new()).await.unwrap(), None);
    assert_eq!(store.user_by_subject("nobody").await.unwrap(), None);

    ada.display_name = "Ada L.".into();
    ada.avatar_url = Some("https://example.com/a.png".into());
    ada.updated_at = now();
    store
        .commit(WriteBatch::by(ada.id).write(Write::UpdateUser(ada.clone())))
        .await
        .unwrap();
    assert_eq!(store.user_by_id(ada.id).await.unwrap(), Some(ada.clone()));

    // Taking another user's e-mail is a duplicate.
    let bob = seed_user(&store, "bob").await;
    let mut stolen = bob.clone();
    stolen.email = ada.email.clone();
    let r = store
        .commit(WriteBatch::by(bob.id).write(Write::UpdateUser(stolen)))
        .await;
    assert!(matches!(r, Err(CommitError::Duplicate("users"))), "{r:?}");
    let r = store
        .commit(WriteBatch::by(bob.id).write(Write::UpdateUser(user("ghost"))))
        .await;
    assert!(matches!(r, Err(CommitError::Stale("users"))), "{r:?}");
}

// ---------------------------------------------------------------------------------------------
// connection

#[tokio::test]
async fn in_memory_sqlite_keeps_one_shared_connection() {
    let store = SqlStore::connect("sqlite::memory:", &SqlSettings::default())
        .await
        .unwrap();
    assert_eq!(store.backend_name(), "sqlite");
    assert!(store.pending_migrations().await.unwrap() >= 1);
    store.migrate().await.unwrap();
    assert_eq!(store.pending_migrations().await.unwrap(), 0);
    store.ping().await.unwrap();
    let ada = seed_user(&store, "ada").await;
    let w = seed_workspace(&store, &ada).await;
    // Concurrent commits share the single connection.
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .commit(WriteBatch::by(ada.id).change(Change::upsert(
                    w.id,
                    EntityType::Folder,
                    Uuid::now_v7(),
                )))
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(change_seq(&store, w.id).await, 7);
    assert_eq!(
        store.role_of(w.id, ada.id).await.unwrap(),
        Some(Role::Owner)
    );
}

#[tokio::test]
async fn sqlite_files_run_in_wal_mode_with_foreign_keys() {
    on_sqlite(|store: SqlStore| async move {
        assert_eq!(store.backend_name(), "sqlite");
        assert_eq!(store.pending_migrations().await.unwrap(), 0);
        let pragma = |name: &'static str| {
            let store = store.clone();
            async move {
                let sql = format!("PRAGMA {name}");
                store
                    .connection()
                    .query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
                    .await
                    .unwrap()
                    .unwrap()
            }
        };
        let mode: String = pragma("journal_mode")
            .await
            .try_get("", "journal_mode")
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i32 = pragma("foreign_keys")
            .await
            .try_get("", "foreign_keys")
            .unwrap();
        assert_eq!(fk, 1);
        let busy: i32 = pragma("busy_timeout").await.try_get("", "timeout").unwrap();
        assert_eq!(busy, 5_000);
        // NORMAL (1): durable across a crash of the process, no fsync per commit.
        let synchronous: i32 = pragma("synchronous")
            .await
            .try_get("", "synchronous")
            .unwrap();
        assert_eq!(synchronous, 1);
    })
    .await;
}

#[tokio::test]
async fn postgres_store_reports_its_backend() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        return;
    };
    let store = SqlStore::connect(&url, &SqlSettings::default())
        .await
        .unwrap();
    assert_eq!(store.backend_name(), "postgres");
    store.ping().await.unwrap();
    let row = store
        .connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SHOW statement_timeout",
        ))
        .await
        .unwrap()
        .unwrap();
    let timeout: String = row.try_get("", "statement_timeout").unwrap();
    assert_eq!(timeout, "15s");
}

#[tokio::test]
async fn unknown_urls_are_refused() {
    let r = SqlStore::connect("mysql://localhost/x", &SqlSettings::default()).await;
    assert!(r.is_err());
    let r = SqlStore::connect("not a url", &SqlSettings::default()).await;
    assert!(r.is_err());
}

// ---------------------------------------------------------------------------------------------
// helpers

fn folder(workspace: WorkspaceId, name: &str) -> Folder {
    let at = now();
    Folder {
        id: FolderId::new(),
        workspace_id: workspace,
        parent_id: None,
        name: name.into(),
        position: 0.0,
        version: Version::FIRST,
        created_at: at,
        updated_at: at,
        deleted_at: None,
    }
}

fn invitation(
    workspace: WorkspaceId,
    kind: InvitationKind,
    created_at: chrono::DateTime<Utc>,
) -> Invitation {
    Invitation {
        id: InvitationId::new(),
        workspace_id: workspace,
        kind,
        email: (kind == InvitationKind::Email).then(|| Email::parse("guest@example.com").unwrap()),
        role: Role::Editor,
        token_hash: Uuid::new_v4().simple().to_string(),
        max_uses: (kind == InvitationKind::Email).then_some(1),
        uses: 0,
        expires_at: created_at + Duration::days(7),
        revoked_at: None,
        created_by: None,
        created_at,
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Time(chrono::DateTime<Utc>),
    Text(String),
}

fn sort_key(d: &DocumentSummary, sort: DocumentSort) -> Key {
    match sort {
        DocumentSort::UpdatedAt => Key::Time(d.updated_at),
        DocumentSort::CreatedAt => Key::Time(d.created_at),
        DocumentSort::Title => Key::Text(d.title.clone()),
    }
}

fn position_key(d: &DocumentSummary, sort: DocumentSort) -> SortKey {
    match sort_key(d, sort) {
        Key::Time(t) => SortKey::Time(t),
        Key::Text(s) => SortKey::Text(s),
    }
}

async fn change_count(store: &SqlStore, workspace: WorkspaceId) -> u64 {
    changes::Entity::find()
        .filter(changes::Column::WorkspaceId.eq(workspace.0))
        .count(store.connection())
        .await
        .unwrap()
}

async fn change_seq(store: &SqlStore, workspace: WorkspaceId) -> i64 {
    workspaces::Entity::find_by_id(workspace.0)
        .one(store.connection())
        .await
        .unwrap()
        .unwrap()
        .change_seq
}

async fn audit_count(store: &SqlStore, workspace: WorkspaceId) -> u64 {
    audit_events::Entity::find()
        .filter(audit_events::Column::WorkspaceId.eq(workspace.0))
        .count(store.connection())
        .await
        .unwrap()
}
