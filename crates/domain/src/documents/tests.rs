use super::*;
use crate::feed::{Committed, MockUnitOfWork};
use crate::folders::MockFolderRepository;
use crate::members::MockMembershipRepository;
use crate::ports::MockClock;

struct Setup {
    role: Option<Role>,
    document: Option<Document>,
    versions: Vec<DocumentVersion>,
    uow: MockUnitOfWork,
    limits: Limits,
}

fn doc(content: &str) -> Document {
    let now = Utc::now();
    Document {
        id: DocumentId::new(),
        workspace_id: WorkspaceId::new(),
        folder_id: None,
        title: "Notes".into(),
        content: content.into(),
        content_hash: ContentHash::of(content),
        version: Version(3),
        position: 0.0,
        created_by: None,
        updated_by: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    }
}

fn version(d: &Document, n: i64, content: &str) -> DocumentVersion {
    DocumentVersion {
        document_id: d.id,
        version: Version(n),
        title: d.title.clone(),
        content: content.into(),
        content_hash: ContentHash::of(content),
        author_id: None,
        reason: VersionReason::Save,
        created_at: Utc::now(),
    }
}

fn build(s: Setup) -> DocumentService {
    let role = s.role;
    let mut members = MockMembershipRepository::new();
    members.expect_role_of().returning(move |_, _| Ok(role));
    let mut grants = MockDocumentGrants::new();
    grants.expect_grant_of().returning(|_, _| Ok(None));
    let access = Access::new(Arc::new(members), Arc::new(grants));
    let mut documents = MockDocumentRepository::new();
    let d = s.document;
    documents
        .expect_document()
        .returning(move |_| Ok(d.clone()));
    documents.expect_documents().returning(|_| Ok(vec![]));
    let mut versions = MockVersionRepository::new();
    let vs = s.versions;
    versions
        .expect_version()
        .returning(move |_, n| Ok(vs.iter().find(|v| v.version == n).cloned()));
    let mut folders = MockFolderRepository::new();
    folders.expect_folder().returning(|_| Ok(None));
    let mut clock = MockClock::new();
    clock.expect_now().returning(Utc::now);
    DocumentService::new(
        Arc::new(documents),
        Arc::new(versions),
        Arc::new(folders),
        access,
        Arc::new(s.uow),
        Arc::new(clock),
        s.limits,
    )
}

fn setup(role: Option<Role>, document: Option<Document>, uow: MockUnitOfWork) -> Setup {
    Setup {
        role,
        document,
        versions: vec![],
        uow,
        limits: Limits::default(),
    }
}

fn ok_uow() -> MockUnitOfWork {
    let mut uow = MockUnitOfWork::new();
    uow.expect_commit().returning(|_| Ok(Committed::default()));
    uow
}

fn caller() -> Caller {
    Caller::session(UserId::new())
}

#[tokio::test]
async fn saving_needs_if_match_and_bumps_the_version_with_a_history_entry() {
    let d = doc("# A");
    let etag = d.etag();
    let mut uow = MockUnitOfWork::new();
    uow.expect_commit()
        .withf(|b| {
            matches!(&b.writes[..], [
                Write::SaveDocument { document, expected: Version(3) },
                Write::InsertVersion(v),
            ] if document.version == Version(4) && v.version == Version(4) && v.reason == VersionReason::Save
                && document.content_hash == ContentHash::of("# B"))
                && b.changes[0].version == Some(4)
        })
        .times(1)
        .returning(|_| Ok(Committed::default()));
    let svc = build(setup(Some(Role::Editor), Some(d.clone()), uow));
    let missing = svc.put_content(&caller(), d.id, "# B".into(), None).await;
    assert!(matches!(missing, Err(DocumentError::PreconditionRequired)));
    let saved = svc
        .put_content(&caller(), d.id, "# B".into(), Some(&etag))
        .await
        .unwrap();
    assert_eq!(saved.version, Version(4));
    assert_ne!(saved.etag(), etag);
}

#[tokio::test]
async fn a_stale_etag_is_a_conflict_that_reports_the_current_state() {
    let d = doc("# A");
    let svc = build(setup(
        Some(Role::Editor),
        Some(d.clone()),
        MockUnitOfWork::new(),
    ));
    let r = svc
        .put_content(&caller(), d.id, "# B".into(), Some("\"2-abc\""))
        .await;
    match r {
        Err(DocumentError::VersionConflict {
            current,
            content_hash,
            etag,
        }) => {
            assert_eq!(current, Version(3));
            assert_eq!(content_hash, d.content_hash);
            assert_eq!(etag, d.etag());
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn losing_a_race_in_the_database_is_also_a_conflict() {
    let d = doc("# A");
    let mut uow = MockUnitOfWork::new();
    uow.expect_commit()
        .returning(|_| Err(CommitError::Stale("documents")));
    let svc = build(setup(Some(Role::Editor), Some(d.clone()), uow));
    let r = svc
        .put_content(&caller(), d.id, "# B".into(), Some(&d.etag()))
        .await;
    assert!(matches!(r, Err(DocumentError::VersionConflict { .. })));
}

#[tokio::test]
async fn saving_identical_content_writes_nothing() {
    let d = doc("# A");
    let mut uow = MockUnitOfWork::new();
    uow.expect_commit().never();
    let svc = build(setup(Some(Role::Editor), Some(d.clone()), uow));
    let same = svc
        .put_content(&caller(), d.id, "# A".into(), Some(&d.etag()))
        .await
        .unwrap();
    assert_eq!(same.version, Version(3));
}

#[tokio::test]
async fn oversize_documents_are_refused_before_any_read() {
    let mut s = setup(Some(Role::Editor), None, MockUnitOfWork::new());
    s.limits = Limits {
        max_document_bytes: 4,
    };
    let svc = build(s);
    let r = svc
        .put_content(&caller(), DocumentId::new(), "12345".into(), Some("x"))
        .await;
    assert!(matches!(r, Err(DocumentError::TooLarge { limit: 4 })));
}

#[tokio::test]
async fn every_role_gets_exactly_its_document_rights() {
    for role in Role::ALL {
        let d = doc("x");
        let svc = build(setup(Some(role), Some(d.clone()), ok_uow()));
        let c = caller();
        assert!(svc.get(&c, d.id).await.is_ok(), "{role} reads");
        let edit = svc.put_content(&c, d.id, "y".into(), Some(&d.etag())).await;
        assert_eq!(edit.is_ok(), role >= Role::Editor, "{role} edits");
        let trashed = svc.trash(&c, d.id).await;
        assert_eq!(trashed.is_ok(), role >= Role::Editor, "{role} trashes");
        let dup = svc.duplicate(&c, d.id).await;
        assert_eq!(dup.is_ok(), role >= Role::Editor, "{role} duplicates");
        let mut trashed_doc = d.clone();
        trashed_doc.deleted_at = Some(Utc::now());
        let svc = build(setup(Some(role), Some(trashed_doc), ok_uow()));
        let purge = svc.delete_permanently(&c, d.id).await;
        assert_eq!(purge.is_ok(), role >= Role::Admin, "{role} purges");
        if role < Role::Admin {
            assert!(matches!(purge, Err(DocumentError::Forbidden)));
        }
    }
}

#[tokio::test]
async fn outsiders_get_not_found_for_everything() {
    let d = doc("x");
    let svc = build(setup(None, Some(d.clone()), MockUnitOfWork::new()));
    let c = caller();
    assert!(matches!(
        svc.get(&c, d.id).await,
        Err(DocumentError::NotFound)
    ));
    assert!(matches!(
        svc.trash(&c, d.id).await,
        Err(DocumentError::NotFound)
    ));
    assert!(matches!(
        svc.delete_permanently(&c, d.id).await,
        Err(DocumentError::NotFound)
    ));
    assert!(matches!(
        svc.version(&c, d.id, 1).await,
        Err(DocumentError::NotFound)
    ));
    let r = svc.list(&c, d.workspace_id, ListDocuments::default()).await;
    assert!(matches!(r, Err(DocumentError::WorkspaceNotFound)));
    let req = NewDocument {
        id: None,
        title: None,
        content: String::new(),
        folder_id: None,
    };
    assert!(matches!(
        svc.create(&c, d.workspace_id, req).await,
        Err(DocumentError::WorkspaceNotFound)
    ));
}

#[tokio::test]
async fn permanent_delete_only_from_the_trash() {
    let d = doc("x");
    let svc = build(setup(
        Some(Role::Owner),
        Some(d.clone()),
        MockUnitOfWork::new(),
    ));
    assert!(matches!(
        svc.delete_permanently(&caller(), d.id).await,
        Err(DocumentError::NotInTrash)
    ));
}

#[tokio::test]
async fn trashed_documents_cannot_be_edited_but_can_be_restored() {
    let mut d = doc("x");
    d.deleted_at = Some(Utc::now());
    let mut uow = MockUnitOfWork::new();
    uow.expect_commit()
        .withf(|b| {
            b.writes.iter().any(|w| {
                matches!(
                    w,
                    Write::TrashDocument {
                        deleted_at: None,
                        ..
                    }
                )
            }) && b.changes[0].op == crate::feed::ChangeOp::Upsert
        })
        .times(1)
        .returning(|_| Ok(Committed::default()));
    let svc = build(setup(Some(Role::Editor), Some(d.clone()), uow));
    let r = svc
        .put_content(&caller(), d.id, "y".into(), Some(&d.etag()))
        .await;
    assert!(matches!(r, Err(DocumentError::InTrash)));
    let restored = svc.restore(&caller(), d.id).await.unwrap();
    assert!(restored.deleted_at.is_none());
}

#[tokio::test]
async fn trash_writes_a_tombstone() {
    let d = doc("x");
    let mut uow = MockUnitOfWork::new();
    uow.expect_commit()
        .withf(|b| b.changes.len() == 1 && b.changes[0].op == crate::feed::ChangeOp::Delete)
        .times(1)
        .returning(|_| Ok(Committed::default()));
    let svc = build(setup(Some(Role::Editor), Some(d.clone()), uow));
    let t = svc.trash(&caller(), d.id).await.unwrap();
    assert!(t.deleted_at.is_some());
}

#[tokio::test]
async fn renaming_needs_if_match_but_moving_does_not() {
    let d = doc("x");
    let svc = build(setup(Some(Role::Editor), Some(d.clone()), ok_uow()));
    let patch = DocumentPatch {
        title: Some("New".into()),
        ..Default::default()
    };
    let r = svc.update(&caller(), d.id, patch.clone(), None).await;
    assert!(matches!(r, Err(DocumentError::PreconditionRequired)));
    let renamed = svc
        .update(&caller(), d.id, patch, Some(&d.etag()))
        .await
        .unwrap();
    assert_eq!(
        (renamed.title.as_str(), renamed.version),
        ("New", Version(4))
    );
    let patch = DocumentPatch {
        position: Some(5.0),
        ..Default::default()
    };
    let moved = svc.update(&caller(), d.id, patch, None).await.unwrap();
    assert_eq!((moved.position, moved.version), (5.0, Version(3)));
    let patch = DocumentPatch {
        folder_id: Some(Some(FolderId::new())),
        ..Default::default()
    };
    let r = svc.update(&caller(), d.id, patch, None).await;
    assert!(matches!(r, Err(DocumentError::FolderNotFound)));
}

#[tokio::test]
async fn a_refused_rename_moves_nothing() {
    let d = doc("x");
    // No commit is expected: the precondition fails before the move is written.
    let svc = build(setup(
        Some(Role::Editor),
        Some(d.clone()),
        MockUnitOfWork::new(),
    ));
    for if_match in [None, Some("\"1-0000000000000000\"")] {
        let patch = DocumentPatch {
            title: Some("New".into()),
            folder_id: Some(None),
            position: Some(9.0),
        };
        let r = svc.update(&caller(), d.id, patch, if_match).await;
        assert!(
            matches!(
                r,
                Err(DocumentError::PreconditionRequired | DocumentError::VersionConflict { .. })
            ),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn restoring_a_version_creates_a_new_one() {
    let d = doc("current");
    let mut s = setup(Some(Role::Editor), Some(d.clone()), MockUnitOfWork::new());
    s.versions = vec![version(&d, 1, "first"), version(&d, 3, "current")];
    let mut uow = MockUnitOfWork::new();
    uow.expect_commit()
        .withf(|b| matches!(&b.writes[1], Write::InsertVersion(v) if v.reason == VersionReason::Restore && v.version == Version(4) && v.content == "first"))
        .times(1)
        .returning(|_| Ok(Committed::default()));
    s.uow = uow;
    let svc = build(s);
    let restored = svc.restore_version(&caller(), d.id, 1).await.unwrap();
    assert_eq!(
        (restored.content.as_str(), restored.version),
        ("first", Version(4))
    );
    assert!(matches!(
        svc.restore_version(&caller(), d.id, 2).await,
        Err(DocumentError::VersionNotFound)
    ));
}

#[tokio::test]
async fn diffs_are_unified() {
    let d = doc("c");
    let mut s = setup(Some(Role::Viewer), Some(d.clone()), MockUnitOfWork::new());
    s.versions = vec![version(&d, 1, "a\nb\n"), version(&d, 2, "a\nc\n")];
    let diff = build(s).diff(&caller(), d.id, 2, None).await.unwrap();
    assert_eq!((diff.from, diff.to), (Version(1), Version(2)));
    assert!(diff.unified.contains("--- v1") && diff.unified.contains("+++ v2"));
    assert!(diff.unified.contains("-b\n") && diff.unified.contains("+c\n"));
}

#[tokio::test]
async fn create_defaults_and_validates() {
    let ws = WorkspaceId::new();
    let mut uow = MockUnitOfWork::new();
    uow.expect_commit()
        .withf(|b| {
            matches!(&b.writes[..], [Write::InsertDocument(d), Write::InsertVersion(v)]
            if d.title == "Untitled" && d.version == Version::FIRST && v.version == Version::FIRST)
        })
        .times(1)
        .returning(|_| Ok(Committed::default()));
    let svc = build(setup(Some(Role::Editor), None, uow));
    let req = NewDocument {
        id: None,
        title: None,
        content: "hi".into(),
        folder_id: None,
    };
    let d = svc.create(&caller(), ws, req).await.unwrap();
    assert_eq!(d.content_hash, ContentHash::of("hi"));
    let svc = build(setup(Some(Role::Editor), None, MockUnitOfWork::new()));
    let req = NewDocument {
        id: None,
        title: Some("\u{7}".into()),
        content: "".into(),
        folder_id: None,
    };
    assert!(matches!(
        svc.create(&caller(), ws, req).await,
        Err(DocumentError::Invalid(_))
    ));
}

#[tokio::test]
async fn list_cursors_must_match_the_sort() {
    let svc = build(setup(Some(Role::Viewer), None, MockUnitOfWork::new()));
    let cursor = encode_cursor(&DocumentPosition {
        key: SortKey::Text("a".into()),
        id: DocumentId::new(),
    });
    let params = ListDocuments {
        cursor: Some(cursor),
        ..Default::default()
    };
    let r = svc.list(&caller(), WorkspaceId::new(), params).await;
    assert!(matches!(r, Err(DocumentError::Invalid(_))));
    let params = ListDocuments {
        cursor: Some("garbage".into()),
        ..Default::default()
    };
    let r = svc.list(&caller(), WorkspaceId::new(), params).await;
    assert!(matches!(r, Err(DocumentError::Invalid(_))));
}
