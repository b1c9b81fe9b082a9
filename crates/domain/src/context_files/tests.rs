use super::*;
use crate::attachments::MockAttachmentRepository;
use crate::blobs::MockBlobStore;
use crate::documents::{MockDocumentGrants, MockDocumentRepository};
use crate::feed::{ChangeOp, Committed, EntityType, MockUnitOfWork};
use crate::members::MockMembershipRepository;
use crate::ports::MockClock;
use crate::{Role, UserId};

fn inline(workspace: WorkspaceId, text: &str) -> ContextFile {
    ContextFile {
        id: ContextFileId::new(),
        workspace_id: workspace,
        document_id: None,
        name: "style.md".into(),
        content_type: DEFAULT_TEXT_TYPE.into(),
        body: ContextBody::Inline(text.into()),
        content_hash: Some(ContentHash::of(text)),
        size: text.len() as i64,
        version: Version(2),
        status: FileStatus::Ready,
        created_by: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        expires_at: None,
        deleted_at: None,
    }
}

fn build(
    role: Option<Role>,
    file: Option<ContextFile>,
    blobs: MockBlobStore,
    uow: MockUnitOfWork,
) -> ContextFileService {
    let mut members = MockMembershipRepository::new();
    members.expect_role_of().returning(move |_, _| Ok(role));
    let mut files = MockContextFileRepository::new();
    files
        .expect_context_file()
        .returning(move |_| Ok(file.clone()));
    let mut storage = MockAttachmentRepository::new();
    storage.expect_storage_used().returning(|_| Ok(0));
    let mut clock = MockClock::new();
    clock.expect_now().returning(Utc::now);
    ContextFileService::new(
        ContextFilePorts {
            files: Arc::new(files),
            storage: Arc::new(storage),
            documents: Arc::new(MockDocumentRepository::new()),
            blobs: Arc::new(blobs),
            uow: Arc::new(uow),
            clock: Arc::new(clock),
        },
        Access::new(Arc::new(members), Arc::new(MockDocumentGrants::new())),
        FileSettings::default(),
    )
}

fn caller() -> Caller {
    Caller::session(UserId::new())
}

fn new_inline(text: &str) -> NewContextFile {
    NewContextFile {
        name: "style.md".into(),
        document_id: None,
        content: NewContextContent::Inline {
            text: text.into(),
            content_type: None,
        },
    }
}

#[tokio::test]
async fn small_text_is_stored_inline_and_appears_in_the_feed() {
    let mut uow = MockUnitOfWork::new();
    uow.expect_commit()
        .withf(|b| {
            matches!(&b.writes[..], [Write::InsertContextFile(f)] if matches!(&f.body, ContextBody::Inline(t) if t == "be brief"))
                && b.changes[0].entity_type == EntityType::ContextFile
                && b.changes[0].op == ChangeOp::Upsert
        })
        .times(1)
        .returning(|_| Ok(Committed::default()));
    let svc = build(Some(Role::Editor), None, MockBlobStore::new(), uow);
    let (file, upload) = svc
        .create(&caller(), WorkspaceId::new(), new_inline("be brief"))
        .await
        .unwrap();
    assert!(upload.is_none());
    assert_eq!(file.size, 8);
    assert_eq!(file.content_hash, Some(ContentHash::of("be brief")));
}

#[tokio::test]
async fn large_text_must_be_uploaded_and_viewers_cannot_write() {
    let svc = build(
        Some(Role::Editor),
        None,
        MockBlobStore::new(),
        MockUnitOfWork::new(),
    );
    let big = "x".repeat(256 * 1024 + 1);
    let r = svc
        .create(&caller(), WorkspaceId::new(), new_inline(&big))
        .await;
    assert!(matches!(r, Err(ContextFileError::InlineTooLarge { .. })));

    let svc = build(
        Some(Role::Viewer),
        None,
        MockBlobStore::new(),
        MockUnitOfWork::new(),
    );
    let r = svc
        .create(&caller(), WorkspaceId::new(), new_inline("x"))
        .await;
    assert!(matches!(r, Err(ContextFileError::Forbidden)));
    let svc = build(None, None, MockBlobStore::new(), MockUnitOfWork::new());
    let r = svc
        .create(&caller(), WorkspaceId::new(), new_inline("x"))
        .await;
    assert!(matches!(r, Err(ContextFileError::WorkspaceNotFound)));
}

#[tokio::test]
async fn uploads_start_pending_with_a_presigned_put() {
    let ws = WorkspaceId::new();
    let mut blobs = MockBlobStore::new();
    blobs
        .expect_presign_upload()
        .withf(move |key, spec, _| {
            key.as_str().starts_with(&format!("{ws}/context/")) && spec.size == 1_000_000
        })
        .times(1)
        .returning(|_, _, _| {
            Ok(PresignedRequest {
                method: "PUT".into(),
                url: "u".into(),
                headers: vec![],
                expires_at: Utc::now(),
            })
        });
    let mut uow = MockUnitOfWork::new();
    uow.expect_commit()
        .times(1)
        .returning(|_| Ok(Committed::default()));
    let svc = build(Some(Role::Editor), None, blobs, uow);
    let (file, upload) = svc
        .create(
            &caller(),
            ws,
            NewContextFile {
                name: "corpus.txt".into(),
                document_id: None,
                content: NewContextContent::Upload {
                    size: 1_000_000,
                    content_type: "text/plain".into(),
                },
            },
        )
        .await
        .unwrap();
    assert_eq!(file.status, FileStatus::Pending);
    assert!(upload.is_some());
}

#[tokio::test]
async fn updates_need_the_current_etag() {
    let ws = WorkspaceId::new();
    let file = inline(ws, "old");
    let etag = file.etag();
    let mut uow = MockUnitOfWork::new();
    uow.expect_commit()
        .withf(|b| {
            matches!(&b.writes[..], [Write::UpdateContextFile { file, expected }]
                if *expected == Version(2) && file.version == Version(3))
        })
        .times(1)
        .returning(|_| Ok(Committed::default()));
    let svc = build(
        Some(Role::Editor),
        Some(file.clone()),
        MockBlobStore::new(),
        uow,
    );
    let patch = ContextFilePatch {
        text: Some("new".into()),
        ..Default::default()
    };
    let r = svc.update(&caller(), file.id, patch.clone(), None).await;
    assert!(matches!(r, Err(ContextFileError::PreconditionRequired)));
    let r = svc
        .update(&caller(), file.id, patch.clone(), Some("\"1-abc\""))
        .await;
    assert!(matches!(r, Err(ContextFileError::VersionConflict { .. })));
    let updated = svc
        .update(&caller(), file.id, patch, Some(&etag))
        .await
        .unwrap();
    assert_eq!(updated.body, ContextBody::Inline("new".into()));
    assert_ne!(updated.etag(), etag);
}
