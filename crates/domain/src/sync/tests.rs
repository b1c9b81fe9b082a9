//! Use-case tests of sync against mockall mocks of every port.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use futures::StreamExt;
use uuid::Uuid;

use super::*;
use crate::access::{Access, Caller, Scope as TokenScope};
use crate::attachments::{Attachment, FileSettings, FileStatus, MockAttachmentRepository};
use crate::blobs::{BlobKey, MockBlobStore};
use crate::context_files::{ContextBody, ContextFile, ContextFileError, MockContextFileRepository};
use crate::documents::{
    Document, DocumentVersion, MockDocumentGrants, MockDocumentRepository, MockVersionRepository,
    VersionReason,
};
use crate::fanout::{MockFanout, topics};
use crate::feed::{
    Change, ChangeOp, CommitError, Committed, EntityType, MockUnitOfWork, Write, WriteBatch,
};
use crate::folders::MockFolderRepository;
use crate::members::{Member, MockMembershipRepository};
use crate::ports::{MockClock, StoreError};
use crate::rbac::Role;
use crate::workspaces::{MockWorkspaceRepository, Workspace, WorkspaceView};
use crate::{
    AttachmentId, ContentHash, ContextFileId, DeviceId, DocumentId, UserId, Version, WorkspaceId,
};

const BASE: &str = "# Plan\n\nFirst paragraph.\n\nSecond paragraph.\n\nThird paragraph.\n";

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn doc(content: &str, version: i64) -> Document {
    Document {
        id: DocumentId::new(),
        workspace_id: WorkspaceId::new(),
        folder_id: None,
        title: "Plan".into(),
        content: content.into(),
        content_hash: ContentHash::of(content),
        version: Version(version),
        position: 0.0,
        created_by: None,
        updated_by: None,
        created_at: now(),
        updated_at: now(),
        deleted_at: None,
    }
}

fn version_of(d: &Document, n: i64, content: &str) -> DocumentVersion {
    DocumentVersion {
        document_id: d.id,
        version: Version(n),
        title: d.title.clone(),
        content: content.into(),
        content_hash: ContentHash::of(content),
        author_id: None,
        reason: VersionReason::Save,
        created_at: now(),
    }
}

fn device(owner: UserId, last: i64) -> Device {
    Device {
        id: DeviceId::new(),
        user_id: owner,
        name: "Ada's laptop".into(),
        platform: "linux".into(),
        last_mutation_id: last,
        recent_results: Vec::new(),
        created_at: now(),
        last_seen_at: now(),
    }
}

fn update(id: i64, d: &Document, base: i64, content: &str) -> Mutation {
    Mutation {
        mutation_id: id,
        kind: "document.update".into(),
        entity_id: d.id.0,
        base_version: Some(base),
        payload: serde_json::json!({ "content": content }),
    }
}

/// What a test scripts and what it observes.
struct World {
    role: Option<Role>,
    /// The caller's document grant (shared documents).
    grant: Option<Role>,
    document: Option<Document>,
    context_file: Option<ContextFile>,
    versions: Vec<DocumentVersion>,
    /// Devices returned by successive `device()` reads (the last one repeats).
    devices: Vec<Device>,
    /// Results of successive commits (default: success).
    commits: VecDeque<Result<Committed, CommitError>>,
    batches: Arc<Mutex<Vec<WriteBatch>>>,
}

impl World {
    fn new(role: Option<Role>, document: Option<Document>, device: Device) -> Self {
        Self {
            role,
            grant: None,
            document,
            context_file: None,
            versions: Vec::new(),
            devices: vec![device],
            commits: VecDeque::new(),
            batches: Arc::default(),
        }
    }

    fn service(&self) -> SyncService {
        let role = self.role;
        let mut members = MockMembershipRepository::new();
        members.expect_role_of().returning(move |_, _| Ok(role));
        let mut grants = MockDocumentGrants::new();
        let grant = self.grant;
        grants.expect_grant_of().returning(move |_, _| Ok(grant));
        let mut context_files = MockContextFileRepository::new();
        let file = self.context_file.clone();
        context_files
            .expect_context_file()
            .returning(move |id| Ok(file.clone().filter(|f| f.id == id)));
        let mut documents = MockDocumentRepository::new();
        let d = self.document.clone();
        documents
            .expect_document()
            .returning(move |_| Ok(d.clone()));
        let mut versions = MockVersionRepository::new();
        let vs = self.versions.clone();
        versions
            .expect_version()
            .returning(move |_, n| Ok(vs.iter().find(|v| v.version == n).cloned()));
        let mut folders = MockFolderRepository::new();
        folders.expect_folder().returning(|_| Ok(None));
        let mut devices = MockDeviceRepository::new();
        let reads = Arc::new(Mutex::new(VecDeque::from(self.devices.clone())));
        devices.expect_device().returning(move |_| {
            let mut reads = reads.lock().unwrap();
            let d = if reads.len() > 1 {
                reads.pop_front()
            } else {
                reads.front().cloned()
            };
            Ok(d)
        });
        let mut uow = MockUnitOfWork::new();
        let batches = self.batches.clone();
        let scripted = Arc::new(Mutex::new(
            self.commits
                .iter()
                .map(clone_commit)
                .collect::<VecDeque<_>>(),
        ));
        uow.expect_commit().returning(move |b| {
            batches.lock().unwrap().push(b);
            scripted
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Ok(Committed::default()))
        });
        let mut problems = MockProblemFormat::new();
        problems.expect_problem().returning(|r| {
            serde_json::json!({"detail": r.to_string(), "code": match r {
                Rejection::Unsupported(_) => "unsupported_mutation",
                Rejection::Document(crate::documents::DocumentError::Forbidden) => "forbidden",
                Rejection::Document(crate::documents::DocumentError::NotFound) => "document_not_found",
                Rejection::ContextFile(ContextFileError::VersionConflict { .. }) => "version_conflict",
                Rejection::ContextFile(ContextFileError::NotFound) => "context_file_not_found",
                Rejection::Invalid(_) => "invalid",
                _ => "other",
            }})
        });
        let mut clock = MockClock::new();
        clock.expect_now().returning(now);
        SyncService::new(
            SyncPorts {
                devices: Arc::new(devices),
                feed: Arc::new(MockChangeFeed::new()),
                documents: Arc::new(documents),
                versions: Arc::new(versions),
                folders: Arc::new(folders),
                context_files: Arc::new(context_files),
                storage: Arc::new(MockAttachmentRepository::new()),
                blobs: Arc::new(MockBlobStore::new()),
                files: FileSettings::default(),
                workspaces: Arc::new(MockWorkspaceRepository::new()),
                access: Access::new(Arc::new(members), Arc::new(grants)),
                uow: Arc::new(uow),
                fanout: Arc::new(MockFanout::new()),
                problems: Arc::new(problems),
                live: None,
                clock: Arc::new(clock),
                limits: Default::default(),
            },
            SyncSettings::default(),
        )
    }

    fn batches(&self) -> Vec<WriteBatch> {
        self.batches.lock().unwrap().clone()
    }
}

fn clone_commit(c: &Result<Committed, CommitError>) -> Result<Committed, CommitError> {
    match c {
        Ok(c) => Ok(c.clone()),
        Err(CommitError::Stale(t)) => Err(CommitError::Stale(t)),
        Err(CommitError::Store(StoreError::Unavailable(_))) => Err(CommitError::Store(
            StoreError::Unavailable(anyhow::anyhow!("database down")),
        )),
        Err(_) => Err(CommitError::NoOwnerLeft),
    }
}

fn advance(batch: &WriteBatch) -> (i64, i64, &MutationResult) {
    match &batch.writes[0] {
        Write::AdvanceDevice {
            expected_last,
            new_last,
            result,
            ..
        } => (*expected_last, *new_last, result),
        other => panic!("the first write is not the device advance: {other:?}"),
    }
}

#[tokio::test]
async fn an_edit_of_the_current_version_is_applied_with_the_advance_in_the_same_batch() {
    let user = UserId::new();
    let d = doc(BASE, 3);
    let dev = device(user, 0);
    let world = World::new(Some(Role::Editor), Some(d.clone()), dev.clone());
    let out = world
        .service()
        .push(
            &Caller::session(user),
            dev.id,
            vec![update(1, &d, 3, "# New\n")],
        )
        .await
        .unwrap();
    assert_eq!(out.next_mutation_id, 2);
    assert_eq!(out.stopped, None);
    let r = &out.results[0];
    assert_eq!(r.status, MutationStatus::Applied);
    assert_eq!(r.version, Some(4));
    assert_eq!(
        r.content_hash.as_deref(),
        Some(ContentHash::of("# New\n").as_str())
    );
    let batches = world.batches();
    assert_eq!(batches.len(), 1, "one transaction");
    let (expected, new, recorded) = advance(&batches[0]);
    assert_eq!((expected, new), (0, 1));
    assert_eq!(recorded.status, MutationStatus::Applied);
    assert_eq!(recorded.version, Some(4));
    assert_eq!(batches[0].device, Some(dev.id));
    assert!(matches!(
        &batches[0].writes[1],
        Write::SaveDocument {
            expected: Version(3),
            ..
        }
    ));
}

#[tokio::test]
async fn edits_to_other_paragraphs_of_an_older_version_are_merged() {
    let user = UserId::new();
    let server = BASE.replace("First paragraph.", "First paragraph, from the web.");
    let d = doc(&server, 3);
    let dev = device(user, 4);
    let mut world = World::new(Some(Role::Editor), Some(d.clone()), dev.clone());
    world.versions = vec![version_of(&d, 2, BASE)];
    let client = BASE.replace("Third paragraph.", "Third paragraph, offline.");
    let out = world
        .service()
        .push(
            &Caller::session(user),
            dev.id,
            vec![update(5, &d, 2, &client)],
        )
        .await
        .unwrap();
    let r = &out.results[0];
    assert_eq!(r.status, MutationStatus::Merged, "{r:?}");
    let merged = r.content.as_deref().unwrap();
    assert!(merged.contains("from the web") && merged.contains("offline"));
    assert_eq!(r.version, Some(4));
    let batches = world.batches();
    assert_eq!(batches.len(), 1);
    let (_, _, recorded) = advance(&batches[0]);
    assert_eq!(recorded.status, MutationStatus::Merged);
    assert_eq!(
        recorded.content, None,
        "merged text is not kept with the device"
    );
    assert!(batches[0].writes.iter().any(
        |w| matches!(w, Write::InsertVersion(v) if v.reason == VersionReason::Merge && v.version == Version(4))
    ));
}

#[tokio::test]
async fn the_same_lines_changed_on_both_sides_make_a_conflict_copy() {
    let user = UserId::new();
    let server = BASE.replace("Second paragraph.", "Second, from the web.");
    let d = doc(&server, 3);
    let dev = device(user, 0);
    let mut world = World::new(Some(Role::Editor), Some(d.clone()), dev.clone());
    world.versions = vec![version_of(&d, 2, BASE)];
    let client = BASE.replace("Second paragraph.", "Second, offline.");
    let out = world
        .service()
        .push(
            &Caller::session(user),
            dev.id,
            vec![update(1, &d, 2, &client)],
        )
        .await
        .unwrap();
    let r = &out.results[0];
    assert_eq!(r.status, MutationStatus::Conflict);
    assert_eq!(r.version, Some(3), "the server keeps its version");
    let copy = r.conflict_document_id.expect("a copy");
    let batches = world.batches();
    assert_eq!(batches.len(), 1);
    let (_, _, recorded) = advance(&batches[0]);
    assert_eq!(recorded.conflict_document_id, Some(copy));
    match &batches[0].writes[1] {
        Write::InsertDocument(c) => {
            assert_eq!(c.id, copy);
            assert_eq!(c.content, client);
            assert_eq!(c.title, "Plan (conflict, Ada's laptop, 2026-11-25)");
            assert_eq!(c.folder_id, d.folder_id);
            assert_eq!(c.workspace_id, d.workspace_id);
        }
        other => panic!("expected the copy, got {other:?}"),
    }
    assert!(
        !batches[0]
            .writes
            .iter()
            .any(|w| matches!(w, Write::SaveDocument { .. })),
        "nothing is overwritten"
    );
}

#[tokio::test]
async fn a_conflict_of_a_grant_only_editor_shares_the_copy_with_them() {
    let user = UserId::new();
    let server = BASE.replace("Second paragraph.", "Second, from the web.");
    let d = doc(&server, 3);
    let dev = device(user, 0);
    // Not a member of the workspace: editor of this one document through a grant.
    let mut world = World::new(None, Some(d.clone()), dev.clone());
    world.grant = Some(Role::Editor);
    world.versions = vec![version_of(&d, 2, BASE)];
    let client = BASE.replace("Second paragraph.", "Second, offline.");
    let out = world
        .service()
        .push(
            &Caller::session(user),
            dev.id,
            vec![update(1, &d, 2, &client)],
        )
        .await
        .unwrap();
    let r = &out.results[0];
    assert_eq!(r.status, MutationStatus::Conflict, "{r:?}");
    let copy = r.conflict_document_id.expect("a copy");
    let batches = world.batches();
    assert_eq!(
        batches.len(),
        1,
        "copy, grant and advance in one transaction"
    );
    let writes = &batches[0].writes;
    assert_eq!(advance(&batches[0]).2.conflict_document_id, Some(copy));
    assert!(
        writes.iter().any(|w| matches!(w, Write::InsertDocument(c)
            if c.id == copy && c.content == client && c.workspace_id == d.workspace_id)),
        "{writes:?}"
    );
    let grant = writes
        .iter()
        .find_map(|w| match w {
            Write::InsertDocumentGrant(g) => Some(g),
            _ => None,
        })
        .expect("the copy is shared with its author");
    assert_eq!(
        (grant.document_id, grant.user_id, grant.role),
        (copy, user, Role::Editor)
    );
    assert_eq!(grant.workspace_id, d.workspace_id);
    assert!(
        batches[0]
            .changes
            .iter()
            .any(|c| c.entity_id == copy.0 && c.op == ChangeOp::Upsert)
    );
}

#[tokio::test]
async fn a_members_conflict_copy_needs_no_grant_and_a_grant_only_viewer_is_refused() {
    let user = UserId::new();
    let server = BASE.replace("Second paragraph.", "Second, from the web.");
    let d = doc(&server, 3);
    let client = BASE.replace("Second paragraph.", "Second, offline.");

    let dev = device(user, 0);
    let mut member = World::new(Some(Role::Editor), Some(d.clone()), dev.clone());
    member.versions = vec![version_of(&d, 2, BASE)];
    let out = member
        .service()
        .push(
            &Caller::session(user),
            dev.id,
            vec![update(1, &d, 2, &client)],
        )
        .await
        .unwrap();
    assert_eq!(out.results[0].status, MutationStatus::Conflict);
    assert!(
        !member.batches()[0]
            .writes
            .iter()
            .any(|w| matches!(w, Write::InsertDocumentGrant(_))),
        "members see the copy already"
    );

    let dev = device(user, 0);
    let mut viewer = World::new(None, Some(d.clone()), dev.clone());
    viewer.grant = Some(Role::Viewer);
    viewer.versions = vec![version_of(&d, 2, BASE)];
    let out = viewer
        .service()
        .push(
            &Caller::session(user),
            dev.id,
            vec![update(1, &d, 2, &client)],
        )
        .await
        .unwrap();
    assert_eq!(out.results[0].status, MutationStatus::Rejected);
    assert_eq!(
        out.results[0].problem.as_ref().unwrap()["code"],
        "forbidden"
    );
    assert_eq!(viewer.batches()[0].writes.len(), 1, "only the advance");
}

fn context_file(workspace: WorkspaceId, version: i64, text: &str) -> ContextFile {
    ContextFile {
        id: ContextFileId::new(),
        workspace_id: workspace,
        document_id: None,
        name: "style.md".into(),
        content_type: "text/markdown; charset=utf-8".into(),
        body: ContextBody::Inline(text.into()),
        content_hash: Some(ContentHash::of(text)),
        size: text.len() as i64,
        version: Version(version),
        status: FileStatus::Ready,
        created_by: None,
        created_at: now(),
        updated_at: now(),
        expires_at: None,
        deleted_at: None,
    }
}

fn file_mutation(
    id: i64,
    kind: &str,
    entity: Uuid,
    base: Option<i64>,
    payload: serde_json::Value,
) -> Mutation {
    Mutation {
        mutation_id: id,
        kind: kind.into(),
        entity_id: entity,
        base_version: base,
        payload,
    }
}

#[tokio::test]
async fn context_file_creates_take_the_client_id_and_inline_text_only() {
    let user = UserId::new();
    let ws = WorkspaceId::new();
    let dev = device(user, 0);
    let world = World::new(Some(Role::Editor), None, dev.clone());
    let id = Uuid::now_v7();
    let create = file_mutation(
        1,
        "context_file.create",
        id,
        None,
        serde_json::json!({"workspace_id": ws, "name": "style.md", "content": "Be brief."}),
    );
    let blob = file_mutation(
        2,
        "context_file.create",
        Uuid::now_v7(),
        None,
        serde_json::json!({"workspace_id": ws, "name": "big.pdf", "size": 5_000_000,
            "content_type": "application/pdf"}),
    );
    let out = world
        .service()
        .push(&Caller::session(user), dev.id, vec![create, blob])
        .await
        .unwrap();
    let r = &out.results[0];
    assert_eq!(r.status, MutationStatus::Applied, "{r:?}");
    assert_eq!(r.version, Some(1));
    assert_eq!(
        r.content_hash.as_deref(),
        Some(ContentHash::of("Be brief.").as_str())
    );
    let batches = world.batches();
    assert_eq!(batches.len(), 2, "one transaction per mutation");
    assert_eq!(
        advance(&batches[0]).2.version,
        Some(1),
        "recorded with the advance"
    );
    assert!(matches!(&batches[0].writes[1], Write::InsertContextFile(f)
        if f.id.0 == id && f.workspace_id == ws && f.body == ContextBody::Inline("Be brief.".into())));
    assert_eq!(batches[0].changes[0].entity_type, EntityType::ContextFile);
    assert_eq!(batches[0].changes[0].version, Some(1));

    let r = &out.results[1];
    assert_eq!(r.status, MutationStatus::Rejected);
    assert_eq!(r.problem.as_ref().unwrap()["code"], "invalid");
    assert!(
        r.problem.as_ref().unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("blob-backed context files cannot be created by sync"),
        "{r:?}"
    );
    assert_eq!(batches[1].writes.len(), 1, "the advance alone");
    assert_eq!(out.next_mutation_id, 3);
}

#[tokio::test]
async fn a_context_file_create_with_a_taken_id_is_rejected() {
    let user = UserId::new();
    let ws = WorkspaceId::new();
    let dev = device(user, 0);
    let mut world = World::new(Some(Role::Editor), None, dev.clone());
    let existing = context_file(ws, 1, "x");
    world.context_file = Some(existing.clone());
    let create = file_mutation(
        1,
        "context_file.create",
        existing.id.0,
        None,
        serde_json::json!({"workspace_id": ws, "name": "again.md", "content": "y"}),
    );
    let out = world
        .service()
        .push(&Caller::session(user), dev.id, vec![create])
        .await
        .unwrap();
    assert_eq!(out.results[0].status, MutationStatus::Rejected);
    assert_eq!(world.batches()[0].writes.len(), 1, "nothing inserted");
}

#[tokio::test]
async fn context_file_updates_need_the_current_version_and_stale_ones_are_rejected() {
    let user = UserId::new();
    let ws = WorkspaceId::new();
    let file = context_file(ws, 3, "old");
    let dev = device(user, 0);
    let mut world = World::new(Some(Role::Editor), None, dev.clone());
    world.context_file = Some(file.clone());
    let current = file_mutation(
        1,
        "context_file.update",
        file.id.0,
        Some(3),
        serde_json::json!({"content": "new", "name": "renamed.md"}),
    );
    let stale = file_mutation(
        2,
        "context_file.update",
        file.id.0,
        Some(2),
        serde_json::json!({"content": "older edit"}),
    );
    let no_base = file_mutation(
        3,
        "context_file.update",
        file.id.0,
        None,
        serde_json::json!({"name": "n"}),
    );
    let out = world
        .service()
        .push(
            &Caller::session(user),
            dev.id,
            vec![current, stale, no_base],
        )
        .await
        .unwrap();
    let statuses: Vec<_> = out.results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            MutationStatus::Applied,
            MutationStatus::Rejected,
            MutationStatus::Rejected
        ]
    );
    assert_eq!(out.results[0].version, Some(4));
    assert_eq!(
        out.results[0].content_hash.as_deref(),
        Some(ContentHash::of("new").as_str())
    );
    assert_eq!(
        out.results[1].problem.as_ref().unwrap()["code"],
        "version_conflict"
    );
    assert_eq!(out.results[2].problem.as_ref().unwrap()["code"], "invalid");
    let batches = world.batches();
    match &batches[0].writes[1] {
        Write::UpdateContextFile { file: f, expected } => {
            assert_eq!(*expected, Version(3));
            assert_eq!(f.name, "renamed.md");
            assert_eq!(f.body, ContextBody::Inline("new".into()));
        }
        other => panic!("expected the update, got {other:?}"),
    }
    assert_eq!(batches[1].writes.len(), 1, "a stale edit writes nothing");
}

#[tokio::test]
async fn context_file_deletes_tombstone_once_and_replays_of_the_delete_are_no_ops() {
    let user = UserId::new();
    let ws = WorkspaceId::new();
    let file = context_file(ws, 2, "bye");
    let dev = device(user, 0);
    let mut world = World::new(Some(Role::Editor), None, dev.clone());
    world.context_file = Some(file.clone());
    let delete = file_mutation(
        1,
        "context_file.delete",
        file.id.0,
        None,
        serde_json::Value::Null,
    );
    let out = world
        .service()
        .push(&Caller::session(user), dev.id, vec![delete])
        .await
        .unwrap();
    assert_eq!(out.results[0].status, MutationStatus::Applied);
    assert_eq!(out.results[0].version, Some(3));
    let batches = world.batches();
    assert!(
        matches!(&batches[0].writes[1], Write::UpdateContextFile { file: f, .. }
        if f.status == FileStatus::Deleted && f.deleted_at.is_some())
    );
    assert_eq!(batches[0].changes[0].op, ChangeOp::Delete);

    // Deleted already (say, from another device): applied, the advance alone.
    let mut gone = file.clone();
    gone.status = FileStatus::Deleted;
    gone.deleted_at = Some(now());
    let dev = device(user, 0);
    let mut world = World::new(Some(Role::Editor), None, dev.clone());
    world.context_file = Some(gone);
    let delete = file_mutation(
        1,
        "context_file.delete",
        file.id.0,
        None,
        serde_json::Value::Null,
    );
    let out = world
        .service()
        .push(&Caller::session(user), dev.id, vec![delete.clone()])
        .await
        .unwrap();
    assert_eq!(out.results[0].status, MutationStatus::Applied);
    assert_eq!(world.batches()[0].writes.len(), 1);

    // …but not for someone who may not edit there.
    let dev = device(user, 0);
    let mut world = World::new(Some(Role::Viewer), None, dev.clone());
    world.context_file = Some(file);
    let out = world
        .service()
        .push(&Caller::session(user), dev.id, vec![delete])
        .await
        .unwrap();
    assert_eq!(out.results[0].status, MutationStatus::Rejected);
    assert_eq!(world.batches()[0].writes.len(), 1);
}

#[tokio::test]
async fn refused_mutations_are_rejected_and_advance_the_device_alone() {
    let user = UserId::new();
    let d = doc(BASE, 3);
    for (role, code) in [
        (Some(Role::Viewer), "forbidden"),
        (None, "document_not_found"),
    ] {
        let dev = device(user, 0);
        let world = World::new(role, Some(d.clone()), dev.clone());
        let out = world
            .service()
            .push(&Caller::session(user), dev.id, vec![update(1, &d, 3, "x")])
            .await
            .unwrap();
        let r = &out.results[0];
        assert_eq!(r.status, MutationStatus::Rejected, "{role:?}");
        assert_eq!(r.problem.as_ref().unwrap()["code"], code);
        assert_eq!(out.next_mutation_id, 2, "the id advances anyway");
        let batches = world.batches();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].writes.len(), 1, "only the advance");
        assert!(batches[0].changes.is_empty());
        assert_eq!(advance(&batches[0]).2.status, MutationStatus::Rejected);
    }
}

#[tokio::test]
async fn unsupported_and_malformed_mutations_are_rejected() {
    let user = UserId::new();
    let dev = device(user, 0);
    let world = World::new(Some(Role::Editor), None, dev.clone());
    let comment = Mutation {
        mutation_id: 1,
        kind: "comment.create".into(),
        entity_id: Uuid::now_v7(),
        base_version: None,
        payload: serde_json::json!({"body": "hi"}),
    };
    let unknown_field = Mutation {
        mutation_id: 2,
        kind: "document.create".into(),
        entity_id: Uuid::now_v7(),
        base_version: None,
        payload: serde_json::json!({"workspace_id": WorkspaceId::new(), "owner": "me"}),
    };
    let no_base = Mutation {
        mutation_id: 3,
        base_version: None,
        ..update(3, &doc(BASE, 1), 1, "x")
    };
    let out = world
        .service()
        .push(
            &Caller::session(user),
            dev.id,
            vec![comment, unknown_field, no_base],
        )
        .await
        .unwrap();
    let statuses: Vec<_> = out.results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [MutationStatus::Rejected; 3]);
    assert_eq!(
        out.results[0].problem.as_ref().unwrap()["code"],
        "unsupported_mutation"
    );
    assert_eq!(out.next_mutation_id, 4);
}

#[tokio::test]
async fn a_gap_stops_the_push_and_names_the_expected_id() {
    let user = UserId::new();
    let d = doc(BASE, 3);
    let dev = device(user, 2);
    let world = World::new(Some(Role::Editor), Some(d.clone()), dev.clone());
    let out = world
        .service()
        .push(
            &Caller::session(user),
            dev.id,
            vec![
                update(3, &d, 3, "a"),
                update(5, &d, 4, "b"),
                update(6, &d, 4, "c"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.results.len(), 1);
    assert_eq!(
        out.stopped,
        Some(Stop {
            mutation_id: 5,
            reason: StopReason::Gap
        })
    );
    assert_eq!(out.next_mutation_id, 4);
    assert_eq!(world.batches().len(), 1);
}

#[tokio::test]
async fn replayed_mutations_are_duplicates_with_their_kept_result() {
    let user = UserId::new();
    let d = doc(BASE, 3);
    let mut dev = device(user, 0);
    let mut kept = MutationResult::new(4, MutationStatus::Applied);
    kept.version = Some(7);
    dev.advance(MutationResult::new(3, MutationStatus::Rejected));
    dev.advance(kept);
    dev.last_mutation_id = 5;
    let world = World::new(Some(Role::Editor), Some(d.clone()), dev.clone());
    let out = world
        .service()
        .push(
            &Caller::session(user),
            dev.id,
            vec![
                update(1, &d, 3, "a"),
                update(4, &d, 3, "a"),
                update(5, &d, 3, "a"),
            ],
        )
        .await
        .unwrap();
    let statuses: Vec<_> = out.results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [MutationStatus::Duplicate; 3]);
    assert_eq!(
        out.results[1].original_status,
        Some(MutationStatus::Applied)
    );
    assert_eq!(out.results[1].version, Some(7));
    assert_eq!(out.results[0].original_status, None, "not kept any more");
    assert!(world.batches().is_empty(), "nothing applied again");
    assert_eq!(out.next_mutation_id, 6);
}

#[tokio::test]
async fn a_device_keeps_only_its_last_results() {
    let mut dev = device(UserId::new(), 0);
    for id in 1..=(RECENT_RESULTS as i64 + 20) {
        dev.advance(MutationResult::new(id, MutationStatus::Applied));
    }
    assert_eq!(dev.recent_results.len(), RECENT_RESULTS);
    assert!(dev.result_of(20).is_none());
    assert!(dev.result_of(21).is_some());
}

#[tokio::test]
async fn unavailable_storage_stops_the_push_where_it_failed() {
    let user = UserId::new();
    let d = doc(BASE, 3);
    let dev = device(user, 0);
    let mut world = World::new(Some(Role::Editor), Some(d.clone()), dev.clone());
    world.commits = VecDeque::from([
        Ok(Committed::default()),
        Err(CommitError::Store(StoreError::Unavailable(
            anyhow::anyhow!("down"),
        ))),
    ]);
    let out = world
        .service()
        .push(
            &Caller::session(user),
            dev.id,
            vec![
                update(1, &d, 3, "a"),
                update(2, &d, 3, "b"),
                update(3, &d, 3, "c"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(out.results.len(), 1);
    assert_eq!(
        out.stopped,
        Some(Stop {
            mutation_id: 2,
            reason: StopReason::Unavailable
        })
    );
    assert_eq!(out.next_mutation_id, 2);
}

#[tokio::test]
async fn a_concurrent_push_of_the_same_device_turns_the_mutation_into_a_duplicate() {
    let user = UserId::new();
    let d = doc(BASE, 3);
    let dev = device(user, 0);
    let mut moved = dev.clone();
    moved.advance(MutationResult {
        version: Some(4),
        ..MutationResult::new(1, MutationStatus::Applied)
    });
    let mut world = World::new(Some(Role::Editor), Some(d.clone()), dev.clone());
    world.devices = vec![dev.clone(), moved];
    world.commits = VecDeque::from([Err(CommitError::Stale(DEVICES_TABLE))]);
    let out = world
        .service()
        .push(&Caller::session(user), dev.id, vec![update(1, &d, 3, "a")])
        .await
        .unwrap();
    assert_eq!(out.results[0].status, MutationStatus::Duplicate);
    assert_eq!(
        out.results[0].original_status,
        Some(MutationStatus::Applied)
    );
    assert_eq!(world.batches().len(), 1, "applied once, by the other push");
    assert_eq!(out.next_mutation_id, 2);
}

#[tokio::test]
async fn creates_use_the_client_id_and_no_ops_still_advance() {
    let user = UserId::new();
    let ws = WorkspaceId::new();
    let dev = device(user, 0);
    let mut trashed = doc(BASE, 2);
    trashed.deleted_at = Some(now());
    let world = World::new(Some(Role::Editor), Some(trashed.clone()), dev.clone());
    let id = Uuid::now_v7();
    let create = Mutation {
        mutation_id: 1,
        kind: "document.create".into(),
        entity_id: id,
        base_version: None,
        payload: serde_json::json!({"workspace_id": ws, "title": "Offline", "content": "# Hi"}),
    };
    let delete_again = Mutation {
        mutation_id: 2,
        kind: "document.delete".into(),
        entity_id: trashed.id.0,
        base_version: None,
        payload: serde_json::Value::Null,
    };
    let out = world
        .service()
        .push(&Caller::session(user), dev.id, vec![create, delete_again])
        .await
        .unwrap();
    assert_eq!(out.results[0].status, MutationStatus::Applied);
    assert_eq!(out.results[0].version, Some(1));
    assert_eq!(out.results[1].status, MutationStatus::Applied);
    let batches = world.batches();
    assert!(
        matches!(&batches[0].writes[1], Write::InsertDocument(d) if d.id.0 == id && d.workspace_id == ws)
    );
    assert_eq!(
        batches[1].writes.len(),
        1,
        "an already trashed document: the advance alone"
    );
    assert_eq!(advance(&batches[1]).1, 2);
}

#[tokio::test]
async fn only_the_owner_may_push_and_read_only_tokens_may_not() {
    let owner = UserId::new();
    let dev = device(owner, 0);
    let world = World::new(Some(Role::Editor), None, dev.clone());
    let svc = world.service();
    let other = svc
        .push(&Caller::session(UserId::new()), dev.id, vec![])
        .await;
    assert!(matches!(other, Err(PushError::DeviceNotFound)));
    let read_only = Caller {
        user_id: owner,
        scope: TokenScope::Read,
    };
    assert!(matches!(
        svc.push(&read_only, dev.id, vec![]).await,
        Err(PushError::Forbidden)
    ));
    let too_many: Vec<_> = (1..=MAX_MUTATIONS as i64 + 1)
        .map(|i| update(i, &doc(BASE, 1), 1, "x"))
        .collect();
    assert!(matches!(
        svc.push(&Caller::session(owner), dev.id, too_many).await,
        Err(PushError::TooManyMutations { .. })
    ));
}

// ---- pull ----

fn pull_service(snapshot: MockFeedSnapshot) -> SyncService {
    let mut feed = MockChangeFeed::new();
    let cell = Mutex::new(Some(snapshot));
    feed.expect_snapshot().returning(move || {
        Ok(
            Box::new(cell.lock().unwrap().take().expect("one snapshot per pull"))
                as Box<dyn FeedSnapshot>,
        )
    });
    let mut clock = MockClock::new();
    clock.expect_now().returning(now);
    let mut members = MockMembershipRepository::new();
    members.expect_role_of().returning(|_, _| Ok(None));
    SyncService::new(
        SyncPorts {
            devices: Arc::new(MockDeviceRepository::new()),
            feed: Arc::new(feed),
            documents: Arc::new(MockDocumentRepository::new()),
            versions: Arc::new(MockVersionRepository::new()),
            folders: Arc::new(MockFolderRepository::new()),
            context_files: Arc::new(MockContextFileRepository::new()),
            storage: Arc::new(MockAttachmentRepository::new()),
            blobs: Arc::new(MockBlobStore::new()),
            files: FileSettings::default(),
            workspaces: Arc::new(MockWorkspaceRepository::new()),
            access: Access::new(Arc::new(members), Arc::new(MockDocumentGrants::new())),
            uow: Arc::new(MockUnitOfWork::new()),
            fanout: Arc::new(MockFanout::new()),
            problems: Arc::new(MockProblemFormat::new()),
            live: None,
            clock: Arc::new(clock),
            limits: Default::default(),
        },
        SyncSettings::default(),
    )
}

fn membership(id: WorkspaceId, head: i64, horizon: i64) -> FeedWorkspace {
    FeedWorkspace {
        id,
        role: Role::Editor,
        head,
        horizon,
    }
}

fn snapshot(memberships: Vec<FeedWorkspace>) -> MockFeedSnapshot {
    let mut s = MockFeedSnapshot::new();
    s.expect_memberships()
        .returning(move |_| Ok(memberships.clone()));
    s.expect_shared_documents().returning(|_, _| Ok(vec![]));
    s.expect_close().returning(|| Ok(()));
    s
}

fn workspace(id: WorkspaceId) -> Workspace {
    Workspace {
        id,
        name: "Team".into(),
        slug: "team".into(),
        settings: serde_json::json!({}),
        created_by: None,
        created_at: now(),
        updated_at: now(),
        deleted_at: None,
    }
}

fn cursor_with(ws: WorkspaceId, seq: i64) -> String {
    let mut c = Cursor::start();
    c.ws.insert(ws, seq);
    c.encode()
}

#[tokio::test]
async fn a_cursor_older_than_the_horizon_is_expired() {
    let ws = WorkspaceId::new();
    let svc = pull_service(snapshot(vec![membership(ws, 50, 20)]));
    let r = svc
        .pull(
            &Caller::session(UserId::new()),
            PullRequest {
                cursor: Some(cursor_with(ws, 10)),
                ..PullRequest::default()
            },
        )
        .await;
    assert!(matches!(r, Err(SyncError::CursorExpired)));
}

#[tokio::test]
async fn a_workspace_left_arrives_as_one_tombstone_and_leaves_the_cursor() {
    let ws = WorkspaceId::new();
    let svc = pull_service(snapshot(vec![]));
    let page = svc
        .pull(
            &Caller::session(UserId::new()),
            PullRequest {
                cursor: Some(cursor_with(ws, 10)),
                ..PullRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.changes.len(), 1);
    let c = &page.changes[0];
    assert_eq!(
        (c.scope, c.entity_type, c.op),
        (
            Scope::Workspace(ws),
            EntityType::Workspace,
            ChangeOp::Delete
        )
    );
    assert!(Cursor::decode(Some(&page.cursor)).unwrap().ws.is_empty());
    assert!(!page.has_more);
}

#[tokio::test]
async fn a_workspace_joined_arrives_whole_without_tombstones() {
    let ws = WorkspaceId::new();
    let doc_id = Uuid::now_v7();
    let mut s = snapshot(vec![membership(ws, 9, 0)]);
    s.expect_changes().returning(move |_, after, _| {
        assert_eq!(after, 0);
        Ok(FeedPage {
            rows: vec![
                FeedRow {
                    seq: 1,
                    entity_type: EntityType::Workspace,
                    entity_id: ws.0,
                    op: ChangeOp::Upsert,
                    version: None,
                },
                FeedRow {
                    seq: 5,
                    entity_type: EntityType::Document,
                    entity_id: doc_id,
                    op: ChangeOp::Delete,
                    version: Some(2),
                },
            ],
            end: 9,
        })
    });
    s.expect_entities()
        .returning(move |_, _, _| Ok(vec![EntityState::Workspace(workspace(ws))]));
    let page = pull_service(s)
        .pull(&Caller::session(UserId::new()), PullRequest::default())
        .await
        .unwrap();
    assert_eq!(page.changes.len(), 1, "{:?}", page.changes);
    assert!(matches!(
        &page.changes[0].data,
        Some(ChangeData::Workspace(WorkspaceView {
            role: Role::Editor,
            ..
        }))
    ));
    assert_eq!(Cursor::decode(Some(&page.cursor)).unwrap().ws[&ws], 9);
}

fn attachment(workspace: WorkspaceId, status: FileStatus) -> Attachment {
    let (id, document) = (AttachmentId::new(), DocumentId::new());
    Attachment {
        id,
        workspace_id: workspace,
        document_id: document,
        storage_key: BlobKey::attachment(workspace, document, id),
        filename: "report.pdf".into(),
        content_type: "application/pdf".into(),
        size: 10,
        sha256: None,
        status,
        created_by: None,
        created_at: now(),
        updated_at: now(),
        expires_at: None,
        deleted_at: None,
    }
}

#[tokio::test]
async fn context_files_and_attachments_are_pulled_with_their_state_or_as_tombstones() {
    let ws = WorkspaceId::new();
    let live = context_file(ws, 2, "Be brief.");
    let mut trashed = context_file(ws, 1, "with its document");
    trashed.deleted_at = Some(now());
    let ready = attachment(ws, FileStatus::Ready);
    let deleted = Uuid::now_v7();
    let rows = [
        (live.id.0, EntityType::ContextFile, ChangeOp::Upsert),
        (trashed.id.0, EntityType::ContextFile, ChangeOp::Upsert),
        (ready.id.0, EntityType::Attachment, ChangeOp::Upsert),
        (deleted, EntityType::Attachment, ChangeOp::Delete),
    ];
    let mut s = snapshot(vec![membership(ws, 20, 0)]);
    s.expect_changes().returning(move |_, _, _| {
        Ok(FeedPage {
            rows: rows
                .iter()
                .enumerate()
                .map(|(i, (id, entity_type, op))| FeedRow {
                    seq: 11 + i as i64,
                    entity_type: *entity_type,
                    entity_id: *id,
                    op: *op,
                    version: None,
                })
                .collect(),
            end: 20,
        })
    });
    let states = vec![
        EntityState::ContextFile(live.clone()),
        EntityState::ContextFile(trashed.clone()),
        EntityState::Attachment(ready.clone()),
    ];
    s.expect_entities().returning(move |_, refs, _| {
        assert_eq!(refs.len(), 3, "upserts only: {refs:?}");
        Ok(states.clone())
    });
    let page = pull_service(s)
        .pull(
            &Caller::session(UserId::new()),
            PullRequest {
                cursor: Some(cursor_with(ws, 10)),
                ..PullRequest::default()
            },
        )
        .await
        .unwrap();
    let got: Vec<_> = page
        .changes
        .iter()
        .map(|c| (c.entity_id, c.entity_type, c.op))
        .collect();
    assert_eq!(
        got,
        [
            (live.id.0, EntityType::ContextFile, ChangeOp::Upsert),
            (trashed.id.0, EntityType::ContextFile, ChangeOp::Delete),
            (ready.id.0, EntityType::Attachment, ChangeOp::Upsert),
            (deleted, EntityType::Attachment, ChangeOp::Delete),
        ]
    );
    assert_eq!(page.changes[0].data, Some(ChangeData::ContextFile(live)));
    assert_eq!(page.changes[1].data, None, "in the trash: a tombstone");
    assert_eq!(page.changes[2].data, Some(ChangeData::Attachment(ready)));
}

#[tokio::test]
async fn pages_end_where_the_feed_says_and_report_more() {
    let (a, b) = (WorkspaceId::new(), WorkspaceId::new());
    let mut s = snapshot(vec![membership(a, 100, 0), membership(b, 3, 0)]);
    let device = DeviceId::new();
    let user = UserId::new();
    s.expect_device().returning(move |_| Ok(Some((user, 41))));
    s.expect_changes()
        .times(1)
        .returning(move |ws, after, limit| {
            assert_eq!((ws, after, limit), (a, 10, 2));
            Ok(FeedPage {
                rows: vec![],
                end: 40,
            })
        });
    let page = pull_service(s)
        .pull(
            &Caller::session(user),
            PullRequest {
                cursor: Some(cursor_with(a, 10)),
                limit: Some(2),
                device: Some(device),
            },
        )
        .await
        .unwrap();
    assert!(page.has_more);
    assert_eq!(page.last_mutation_id, Some(41));
    let cursor = Cursor::decode(Some(&page.cursor)).unwrap();
    assert_eq!(cursor.ws[&a], 40);
    assert!(!cursor.ws.contains_key(&b), "b comes whole in a later page");
}

#[tokio::test]
async fn someone_elses_device_is_not_found_and_bad_cursors_are_refused() {
    let mut s = snapshot(vec![]);
    s.expect_device()
        .returning(|_| Ok(Some((UserId::new(), 3))));
    let r = pull_service(s)
        .pull(
            &Caller::session(UserId::new()),
            PullRequest {
                device: Some(DeviceId::new()),
                ..PullRequest::default()
            },
        )
        .await;
    assert!(matches!(r, Err(SyncError::DeviceNotFound)));
    let r = pull_service(snapshot(vec![]))
        .pull(
            &Caller::session(UserId::new()),
            PullRequest {
                cursor: Some("garbage".into()),
                ..PullRequest::default()
            },
        )
        .await;
    assert!(matches!(r, Err(SyncError::Invalid(_))));
}

// ---- pokes ----

#[tokio::test]
async fn commits_poke_every_advanced_workspace_and_the_members_they_touch() {
    let ws = WorkspaceId::new();
    let user = UserId::new();
    let mut inner = MockUnitOfWork::new();
    inner.expect_commit().returning(move |_| {
        Ok(Committed {
            heads: vec![(ws, 12)],
        })
    });
    let published = Arc::new(Mutex::new(Vec::new()));
    let mut fanout = MockFanout::new();
    let log = published.clone();
    fanout.expect_publish().returning(move |topic, payload| {
        log.lock().unwrap().push((
            topic.to_owned(),
            serde_json::from_slice::<Poke>(&payload).unwrap(),
        ));
        Ok(())
    });
    let poking = PokingUnitOfWork::new(Arc::new(inner), Arc::new(fanout));
    let member = Member {
        workspace_id: ws,
        user_id: user,
        role: Role::Viewer,
        created_at: now(),
        updated_at: now(),
    };
    let batch = WriteBatch::by(user)
        .write(Write::PutMember {
            member,
            expected: None,
        })
        .change(Change::upsert(ws, EntityType::Member, user.0));
    crate::feed::UnitOfWork::commit(&poking, batch)
        .await
        .unwrap();
    let poke = Poke {
        workspace_id: ws,
        seq: 12,
    };
    assert_eq!(
        *published.lock().unwrap(),
        [
            (topics::workspace(ws), poke),
            (topics::access(ws), poke),
            (topics::user(user), poke)
        ]
    );
}

/// The topics `batch` pokes when committed at `heads`.
async fn topics_poked(heads: Vec<(WorkspaceId, i64)>, batch: WriteBatch) -> Vec<String> {
    let mut inner = MockUnitOfWork::new();
    inner.expect_commit().returning(move |_| {
        Ok(Committed {
            heads: heads.clone(),
        })
    });
    let published = Arc::new(Mutex::new(Vec::new()));
    let mut fanout = MockFanout::new();
    let log = published.clone();
    fanout.expect_publish().returning(move |topic, _| {
        log.lock().unwrap().push(topic.to_owned());
        Ok(())
    });
    let poking = PokingUnitOfWork::new(Arc::new(inner), Arc::new(fanout));
    crate::feed::UnitOfWork::commit(&poking, batch)
        .await
        .unwrap();
    published.lock().unwrap().clone()
}

/// Live sockets follow the access topic: content saves (the bulk of the commits while people
/// edit) do not poke it; trashing, deleting, membership and grant writes do, for every
/// workspace the commit advanced and every workspace such a write names.
#[tokio::test]
async fn only_commits_that_can_change_access_poke_the_access_topic() {
    let (ws, other) = (WorkspaceId::new(), WorkspaceId::new());
    let user = UserId::new();
    let saved = Document {
        workspace_id: ws,
        ..doc("x", 2)
    };
    let doc = saved.id;
    let save = WriteBatch::by(user)
        .write(Write::SaveDocument {
            document: saved,
            expected: Version(1),
        })
        .change(Change::upsert(ws, EntityType::Document, doc.0));
    assert_eq!(
        topics_poked(vec![(ws, 5)], save).await,
        [topics::workspace(ws)]
    );

    let trash = WriteBatch::by(user)
        .write(Write::TrashDocument {
            id: doc,
            deleted_at: Some(now()),
            updated_by: user,
            updated_at: now(),
        })
        .change(Change::upsert(ws, EntityType::Document, doc.0));
    assert_eq!(
        topics_poked(vec![(ws, 6)], trash).await,
        [topics::workspace(ws), topics::access(ws)]
    );

    let delete = WriteBatch::by(user).write(Write::DeleteDocument { id: doc });
    assert_eq!(
        topics_poked(vec![(ws, 7)], delete).await,
        [topics::workspace(ws), topics::access(ws)]
    );

    // A removal whose commit advanced another workspace's feed only still pokes its own.
    let removal = WriteBatch::by(user).write(Write::RemoveMember {
        workspace_id: other,
        user_id: user,
        expected: Role::Viewer,
    });
    assert_eq!(
        topics_poked(vec![(ws, 8)], removal).await,
        [
            topics::workspace(ws),
            topics::access(ws),
            topics::access(other),
            topics::user(user)
        ]
    );
}

#[tokio::test]
async fn queued_pokes_are_published_beside_the_commit_and_coalesced_per_workspace() {
    let (a, b) = (WorkspaceId::new(), WorkspaceId::new());
    let seqs = Arc::new(Mutex::new(VecDeque::from([
        vec![(a, 1)],
        vec![(a, 2)],
        vec![(b, 7)],
        vec![(a, 3)],
    ])));
    let mut inner = MockUnitOfWork::new();
    inner.expect_commit().returning(move |_| {
        Ok(Committed {
            heads: seqs.lock().unwrap().pop_front().unwrap(),
        })
    });
    let published = Arc::new(Mutex::new(Vec::new()));
    let mut fanout = MockFanout::new();
    let log = published.clone();
    fanout.expect_publish().returning(move |topic, payload| {
        log.lock().unwrap().push((
            topic.to_owned(),
            serde_json::from_slice::<Poke>(&payload).unwrap(),
        ));
        Ok(())
    });
    let (poking, publisher) = PokingUnitOfWork::queued(Arc::new(inner), Arc::new(fanout));
    for _ in 0..4 {
        crate::feed::UnitOfWork::commit(&poking, WriteBatch::default())
            .await
            .unwrap();
    }
    assert!(
        published.lock().unwrap().is_empty(),
        "commits do not wait for the fan-out"
    );
    drop(poking);
    publisher.run().await;
    assert_eq!(
        *published.lock().unwrap(),
        [
            (
                topics::workspace(a),
                Poke {
                    workspace_id: a,
                    seq: 3
                }
            ),
            (
                topics::workspace(b),
                Poke {
                    workspace_id: b,
                    seq: 7
                }
            ),
        ]
    );
}

#[tokio::test]
async fn collaboration_saves_through_the_poking_unit_of_work_poke() {
    use crate::collab::CollabService;
    use crate::presence::MockPresence;
    let d = doc(BASE, 4);
    let ws = d.workspace_id;
    let mut documents = MockDocumentRepository::new();
    let stored = d.clone();
    documents
        .expect_document()
        .returning(move |_| Ok(Some(stored.clone())));
    let mut inner = MockUnitOfWork::new();
    inner.expect_commit().times(1).returning(move |batch| {
        assert!(
            matches!(&batch.writes[0], Write::SaveDocument { document, .. }
            if document.content == "# live\n")
        );
        Ok(Committed {
            heads: vec![(ws, 42)],
        })
    });
    let published = Arc::new(Mutex::new(Vec::new()));
    let mut fanout = MockFanout::new();
    let log = published.clone();
    fanout.expect_publish().returning(move |topic, payload| {
        log.lock().unwrap().push((
            topic.to_owned(),
            serde_json::from_slice::<Poke>(&payload).unwrap(),
        ));
        Ok(())
    });
    let (poking, publisher) = PokingUnitOfWork::queued(Arc::new(inner), Arc::new(fanout));
    let mut members = MockMembershipRepository::new();
    members.expect_role_of().returning(|_, _| Ok(None));
    let mut clock = MockClock::new();
    clock.expect_now().returning(now);
    let collab = CollabService::new(
        Arc::new(documents),
        Access::new(Arc::new(members), Arc::new(MockDocumentGrants::new())),
        Arc::new(poking),
        Arc::new(MockPresence::new()),
        Arc::new(clock),
        Default::default(),
    );
    let saved = collab
        .materialize(d.id, "# live\n".into(), Some(UserId::new()))
        .await
        .unwrap();
    assert_eq!(saved, Some(Version(5)));
    drop(collab);
    publisher.run().await;
    assert_eq!(
        *published.lock().unwrap(),
        [(
            topics::workspace(ws),
            Poke {
                workspace_id: ws,
                seq: 42
            }
        )]
    );
}

#[tokio::test]
async fn the_poke_stream_follows_the_callers_workspaces() {
    use crate::fanout::Subscription;
    let user = UserId::new();
    let (a, b) = (WorkspaceId::new(), WorkspaceId::new());
    let channels: Arc<
        Mutex<std::collections::HashMap<String, futures::channel::mpsc::UnboundedSender<Vec<u8>>>>,
    > = Arc::default();
    let mut fanout = MockFanout::new();
    let subs = channels.clone();
    fanout.expect_subscribe().returning(move |topic| {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        subs.lock().unwrap().insert(topic.to_owned(), tx);
        Ok(Box::pin(rx) as Subscription)
    });
    let mut repo = MockWorkspaceRepository::new();
    let calls = Arc::new(Mutex::new(0));
    repo.expect_workspaces_of().returning(move |_| {
        let mut n = calls.lock().unwrap();
        *n += 1;
        let view = |id| WorkspaceView {
            workspace: workspace(id),
            role: Role::Viewer,
        };
        Ok(if *n == 1 {
            vec![view(a)]
        } else {
            vec![view(b)]
        })
    });
    let mut ports = pull_service(MockFeedSnapshot::new()).ports.clone();
    ports.fanout = Arc::new(fanout);
    ports.workspaces = Arc::new(repo);
    let svc = SyncService::new(ports, SyncSettings::default());
    let mut pokes = svc.pokes(&Caller::session(user)).await.unwrap();
    let send = |topic: String, ws: WorkspaceId, seq: i64| {
        let poke = serde_json::to_vec(&Poke {
            workspace_id: ws,
            seq,
        })
        .unwrap();
        channels.lock().unwrap()[&topic]
            .unbounded_send(poke)
            .unwrap();
    };
    send(topics::workspace(a), a, 3);
    assert_eq!(
        pokes.next().await.unwrap(),
        Poke {
            workspace_id: a,
            seq: 3
        }
    );
    // Removed from a, added to b: the user topic says so, and the stream follows.
    send(topics::user(user), b, 7);
    assert_eq!(
        pokes.next().await.unwrap(),
        Poke {
            workspace_id: b,
            seq: 7
        }
    );
    assert!(channels.lock().unwrap().contains_key(&topics::workspace(b)));
    send(topics::workspace(b), b, 8);
    assert_eq!(
        pokes.next().await.unwrap(),
        Poke {
            workspace_id: b,
            seq: 8
        }
    );
}
