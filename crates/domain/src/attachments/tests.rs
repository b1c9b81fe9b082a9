use super::*;
use crate::blobs::MockBlobStore;
use crate::documents::{MockDocumentGrants, MockDocumentRepository};
use crate::feed::{ChangeOp, Committed, MockUnitOfWork};
use crate::members::MockMembershipRepository;
use crate::ports::MockClock;
use crate::values::{ContentHash, Version};
use crate::{Role, UserId};

fn document() -> Document {
    let now = Utc::now();
    Document {
        id: DocumentId::new(),
        workspace_id: WorkspaceId::new(),
        folder_id: None,
        title: "Notes".into(),
        content: String::new(),
        content_hash: ContentHash::of(""),
        version: Version(1),
        position: 0.0,
        created_by: None,
        updated_by: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    }
}

fn pending(doc: &Document) -> Attachment {
    let id = AttachmentId::new();
    Attachment {
        id,
        workspace_id: doc.workspace_id,
        document_id: doc.id,
        storage_key: BlobKey::attachment(doc.workspace_id, doc.id, id),
        filename: "a.png".into(),
        content_type: "image/png".into(),
        size: 10,
        sha256: None,
        status: FileStatus::Pending,
        created_by: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        expires_at: Some(Utc::now()),
        deleted_at: None,
    }
}

struct Setup {
    role: Option<Role>,
    doc: Document,
    attachment: Option<Attachment>,
    used: u64,
    blobs: MockBlobStore,
    uow: MockUnitOfWork,
}

fn setup(role: Option<Role>, doc: &Document) -> Setup {
    Setup {
        role,
        doc: doc.clone(),
        attachment: None,
        used: 0,
        blobs: MockBlobStore::new(),
        uow: MockUnitOfWork::new(),
    }
}

fn build(s: Setup) -> AttachmentService {
    let role = s.role;
    let mut members = MockMembershipRepository::new();
    members.expect_role_of().returning(move |_, _| Ok(role));
    let mut grants = MockDocumentGrants::new();
    grants.expect_grant_of().returning(|_, _| Ok(None));
    let mut documents = MockDocumentRepository::new();
    let doc = s.doc;
    documents
        .expect_document()
        .returning(move |id| Ok(Some(doc.clone()).filter(|d| d.id == id)));
    let mut attachments = MockAttachmentRepository::new();
    let a = s.attachment;
    attachments
        .expect_attachment()
        .returning(move |_| Ok(a.clone()));
    let used = s.used;
    attachments
        .expect_storage_used()
        .returning(move |_| Ok(used));
    let mut clock = MockClock::new();
    clock.expect_now().returning(Utc::now);
    AttachmentService::new(
        Arc::new(attachments),
        Arc::new(documents),
        Arc::new(s.blobs),
        Access::new(Arc::new(members), Arc::new(grants)),
        Arc::new(s.uow),
        Arc::new(clock),
        FileSettings::default(),
    )
}

fn caller() -> Caller {
    Caller::session(UserId::new())
}

fn request(filename: &str, size: i64) -> NewAttachment {
    NewAttachment {
        filename: filename.into(),
        content_type: "image/png".into(),
        size,
    }
}

fn presigned() -> PresignedRequest {
    PresignedRequest {
        method: "PUT".into(),
        url: "https://blobs.example/signed".into(),
        headers: vec![],
        expires_at: Utc::now(),
    }
}

#[tokio::test]
async fn outsiders_get_not_found_and_viewers_get_forbidden() {
    let doc = document();
    let svc = build(setup(None, &doc));
    let r = svc.create(&caller(), doc.id, request("a.png", 1)).await;
    assert!(matches!(r, Err(AttachmentError::DocumentNotFound)), "{r:?}");
    let svc = build(setup(Some(Role::Viewer), &doc));
    let r = svc.create(&caller(), doc.id, request("a.png", 1)).await;
    assert!(matches!(r, Err(AttachmentError::Forbidden)), "{r:?}");
}

#[tokio::test]
async fn keys_come_from_ids_whatever_the_file_name() {
    let doc = document();
    let mut s = setup(Some(Role::Editor), &doc);
    let (ws, d) = (doc.workspace_id, doc.id);
    s.blobs
        .expect_presign_upload()
        .withf(move |key, spec, ttl| {
            let parts: Vec<&str> = key.segments().collect();
            parts.len() == 3
                && parts[0] == ws.to_string()
                && parts[1] == d.to_string()
                && spec.size == 5
                && spec.content_type == "image/png"
                && *ttl == Duration::from_secs(900)
        })
        .times(3)
        .returning(|_, _, _| Ok(presigned()));
    s.uow
        .expect_commit()
        .withf(|b| {
            matches!(&b.writes[..], [Write::InsertAttachment(a)] if a.status == FileStatus::Pending)
                && b.changes[0].op == ChangeOp::Upsert
        })
        .times(3)
        .returning(|_| Ok(Committed::default()));
    let svc = build(s);
    let long = "x".repeat(1000);
    for name in ["../../etc/passwd", "/abs/path.png", long.as_str()] {
        let created = svc
            .create(&caller(), doc.id, request(name, 5))
            .await
            .unwrap();
        assert_eq!(created.file.filename, name);
        assert!(!created.file.storage_key.as_str().contains(".."));
        assert_eq!(
            created.file.storage_key,
            BlobKey::attachment(ws, d, created.file.id)
        );
    }
}

#[tokio::test]
async fn bad_names_sizes_and_types_are_refused_before_anything_is_issued() {
    let doc = document();
    let svc = build(setup(Some(Role::Editor), &doc));
    for (name, size, ty) in [
        ("a\0b", 1, "image/png"),
        ("", 1, "image/png"),
        ("a", -1, "image/png"),
        ("a", 1, "png"),
        ("a", 1, "text/plain\r\nx: y"),
    ] {
        let r = svc
            .create(
                &caller(),
                doc.id,
                NewAttachment {
                    filename: name.into(),
                    content_type: ty.into(),
                    size,
                },
            )
            .await;
        assert!(
            matches!(r, Err(AttachmentError::Invalid(_))),
            "{name:?}: {r:?}"
        );
    }
    let too_big = 100 * 1024 * 1024 + 1;
    let r = svc.create(&caller(), doc.id, request("a", too_big)).await;
    assert!(matches!(
        r,
        Err(AttachmentError::Upload(UploadError::TooLarge { .. }))
    ));
}

#[tokio::test]
async fn the_quota_is_checked_before_an_upload_url_is_issued() {
    let doc = document();
    let mut s = setup(Some(Role::Editor), &doc);
    s.used = 1024 * 1024 * 1024 - 10;
    let svc = build(s);
    let r = svc.create(&caller(), doc.id, request("a", 11)).await;
    match r {
        Err(AttachmentError::Upload(UploadError::QuotaExceeded {
            quota,
            used,
            requested,
        })) => assert_eq!((quota, used, requested), (1 << 30, (1 << 30) - 10, 11)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn complete_checks_the_object() {
    let doc = document();
    let a = pending(&doc);

    // nothing uploaded
    let mut s = setup(Some(Role::Editor), &doc);
    s.attachment = Some(a.clone());
    s.blobs.expect_head().returning(|_| Ok(None));
    let r = build(s).complete(&caller(), a.id).await;
    assert!(matches!(
        r,
        Err(AttachmentError::Upload(UploadError::UploadMissing))
    ));

    // wrong size: the object is deleted
    let mut s = setup(Some(Role::Editor), &doc);
    s.attachment = Some(a.clone());
    s.blobs.expect_head().returning(|_| {
        Ok(Some(BlobMeta {
            size: 11,
            content_type: Some("image/png".into()),
            sha256: None,
        }))
    });
    let key = a.storage_key.clone();
    s.blobs
        .expect_delete()
        .withf(move |k| *k == key)
        .times(1)
        .returning(|_| Ok(()));
    let r = build(s).complete(&caller(), a.id).await;
    assert!(matches!(
        r,
        Err(AttachmentError::Upload(UploadError::UploadMismatch { .. }))
    ));

    // wrong type
    let mut s = setup(Some(Role::Editor), &doc);
    s.attachment = Some(a.clone());
    s.blobs.expect_head().returning(|_| {
        Ok(Some(BlobMeta {
            size: 10,
            content_type: Some("text/html".into()),
            sha256: None,
        }))
    });
    s.blobs.expect_delete().times(1).returning(|_| Ok(()));
    let r = build(s).complete(&caller(), a.id).await;
    assert!(matches!(
        r,
        Err(AttachmentError::Upload(UploadError::UploadMismatch { .. }))
    ));

    // right
    let mut s = setup(Some(Role::Editor), &doc);
    s.attachment = Some(a.clone());
    s.blobs.expect_head().returning(|_| {
        Ok(Some(BlobMeta {
            size: 10,
            content_type: Some("image/png".into()),
            sha256: Some("ab".into()),
        }))
    });
    s.uow
        .expect_commit()
        .withf(|b| {
            matches!(&b.writes[..], [Write::UpdateAttachment { attachment, expected: FileStatus::Pending }]
                if attachment.status == FileStatus::Ready && attachment.sha256.as_deref() == Some("ab"))
        })
        .times(1)
        .returning(|_| Ok(Committed::default()));
    let ready = build(s).complete(&caller(), a.id).await.unwrap();
    assert_eq!(ready.status, FileStatus::Ready);
    assert_eq!(ready.expires_at, None);
}

#[tokio::test]
async fn pending_attachments_cannot_be_downloaded_and_gone_ones_are_not_found() {
    let doc = document();
    let a = pending(&doc);
    let mut s = setup(Some(Role::Viewer), &doc);
    s.attachment = Some(a.clone());
    let r = build(s).download(&caller(), a.id).await;
    assert!(matches!(r, Err(AttachmentError::NotReady)));

    let mut gone = a.clone();
    gone.status = FileStatus::Deleted;
    gone.deleted_at = Some(Utc::now());
    let mut s = setup(Some(Role::Viewer), &doc);
    s.attachment = Some(gone);
    let r = build(s).download(&caller(), a.id).await;
    assert!(matches!(r, Err(AttachmentError::NotFound)));

    // outsiders learn nothing either way
    let mut s = setup(None, &doc);
    s.attachment = Some(a.clone());
    let r = build(s).download(&caller(), a.id).await;
    assert!(matches!(r, Err(AttachmentError::NotFound)));
}

#[tokio::test]
async fn delete_tombstones_then_removes_the_object() {
    let doc = document();
    let mut a = pending(&doc);
    a.status = FileStatus::Ready;
    let mut s = setup(Some(Role::Editor), &doc);
    s.attachment = Some(a.clone());
    let mut seq = mockall::Sequence::new();
    s.uow
        .expect_commit()
        .withf(|b| {
            matches!(&b.writes[..], [Write::UpdateAttachment { attachment, expected: FileStatus::Ready }]
                if attachment.status == FileStatus::Deleted && attachment.deleted_at.is_some())
                && b.changes[0].op == ChangeOp::Delete
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(Committed::default()));
    s.blobs
        .expect_delete()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    build(s).delete(&caller(), a.id).await.unwrap();

    // viewers may not
    let mut s = setup(Some(Role::Viewer), &doc);
    s.attachment = Some(a.clone());
    let r = build(s).delete(&caller(), a.id).await;
    assert!(matches!(r, Err(AttachmentError::Forbidden)));
}

#[tokio::test]
async fn trashed_documents_take_no_uploads() {
    let mut doc = document();
    doc.deleted_at = Some(Utc::now());
    let svc = build(setup(Some(Role::Editor), &doc));
    let r = svc.create(&caller(), doc.id, request("a", 1)).await;
    assert!(matches!(r, Err(AttachmentError::DocumentInTrash)));
}

#[tokio::test]
async fn the_sweeper_removes_expired_uploads() {
    let doc = document();
    let a = pending(&doc);
    let mut attachments = MockAttachmentRepository::new();
    let expired = a.clone();
    attachments
        .expect_expired_uploads()
        .withf(|before, _| *before < Utc::now() - chrono::Duration::minutes(59))
        .returning(move |_, _| Ok(vec![expired.clone()]));
    let mut blobs = MockBlobStore::new();
    blobs.expect_delete().times(1).returning(|_| Ok(()));
    let mut uow = MockUnitOfWork::new();
    uow.expect_commit()
        .withf(|b| {
            b.actor.is_none()
                && matches!(&b.writes[..], [Write::UpdateAttachment { attachment, expected: FileStatus::Pending }]
                    if attachment.status == FileStatus::Deleted)
        })
        .times(1)
        .returning(|_| Ok(Committed::default()));
    let mut clock = MockClock::new();
    clock.expect_now().returning(Utc::now);
    let svc = AttachmentService::new(
        Arc::new(attachments),
        Arc::new(MockDocumentRepository::new()),
        Arc::new(blobs),
        Access::new(
            Arc::new(MockMembershipRepository::new()),
            Arc::new(MockDocumentGrants::new()),
        ),
        Arc::new(uow),
        Arc::new(clock),
        FileSettings::default(),
    );
    assert_eq!(svc.sweep(100).await.unwrap(), 1);
}
