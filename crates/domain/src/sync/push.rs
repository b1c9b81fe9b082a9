//! Push: a device's queued mutations, applied in order, each exactly once.
//!
//! Each mutation runs through the ordinary service (documents, folders) with a [`DeviceStep`] as
//! its unit of work: the step adds `Write::AdvanceDevice` (precondition: the device's stored id is
//! still the one this push read) to the batch the service commits, so the effect and the advance
//! of the device's id are one transaction. A mutation that writes nothing (a no-op, a refusal)
//! commits the advance alone. When the advance's precondition fails, another push of the same
//! device got there first: the device is read again and the mutation re-judged (usually as a
//! `duplicate`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::devices::Device;
use super::merge::{Merged, merge_text, merge_title};
use super::mutations::{CreateCommentPayload, ResolveCommentPayload, UpdateCommentPayload};
use super::mutations::{
    CreateContextFilePayload, CreateDocumentPayload, CreateFolderPayload, MoveDocumentPayload,
    NoPayload, UpdateContextFilePayload, UpdateDocumentPayload, UpdateFolderPayload, payload,
};
use super::{
    MAX_MUTATIONS, Mutation, MutationKind, MutationResult, MutationStatus, PushOutcome, Rejection,
    Stop, StopReason, SyncService,
};
use crate::access::{Caller, Scope};
use crate::attachments::FileStatus;
use crate::comments::{CommentError, CommentPorts, CommentService, NewComment};
use crate::context_files::{
    ContextFile, ContextFileError, ContextFilePatch, ContextFilePorts, ContextFileService,
    NewContextContent, NewContextFile,
};
use crate::documents::{
    Document, DocumentError, DocumentPatch, DocumentService, MAX_TITLE, NewDocument, VersionReason,
};
use crate::feed::{CommitError, Committed, UnitOfWork, Write, WriteBatch};
use crate::folders::{Folder, FolderError, FolderPatch, FolderService, NewFolder};
use crate::ports::StoreError;
use crate::rbac::Action;
use crate::values::{Invalid, Version};
use crate::{CommentId, ContextFileId, DeviceId, DocumentId, FolderId};

/// The table name an adapter reports when [`Write::AdvanceDevice`]'s precondition fails.
pub const DEVICES_TABLE: &str = "devices";

/// How often a mutation is re-run when its entity changed between read and write.
const MAX_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("device not found")]
    DeviceNotFound,
    #[error("read-only tokens cannot push")]
    Forbidden,
    #[error("a push carries at most {limit} mutations")]
    TooManyMutations { limit: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncService {
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, device = %device, mutations = mutations.len()))]
    pub async fn push(
        &self,
        caller: &Caller,
        device: DeviceId,
        mutations: Vec<Mutation>,
    ) -> Result<PushOutcome, PushError> {
        if caller.scope == Scope::Read {
            return Err(PushError::Forbidden);
        }
        if mutations.len() > MAX_MUTATIONS {
            return Err(PushError::TooManyMutations {
                limit: MAX_MUTATIONS,
            });
        }
        let mut device = self.pushing_device(caller, device).await?;
        let mut lineage = Lineage::default();
        let mut results = Vec::with_capacity(mutations.len());
        let mut stopped = None;
        'mutations: for mutation in &mutations {
            loop {
                let next = device.last_mutation_id + 1;
                if mutation.mutation_id < next {
                    results.push(match device.result_of(mutation.mutation_id) {
                        Some(kept) => kept.as_duplicate(),
                        None => {
                            MutationResult::new(mutation.mutation_id, MutationStatus::Duplicate)
                        }
                    });
                    break;
                }
                if mutation.mutation_id > next {
                    stopped = Some(Stop {
                        mutation_id: mutation.mutation_id,
                        reason: StopReason::Gap,
                    });
                    break 'mutations;
                }
                match self.apply(caller, &device, mutation, &lineage).await {
                    Step::Done(result) => {
                        lineage.record(mutation, &result);
                        device.advance(result.clone());
                        results.push(result);
                        break;
                    }
                    Step::DeviceMoved => match self.pushing_device(caller, device.id).await {
                        Ok(again) if again.last_mutation_id > device.last_mutation_id => {
                            device = again;
                        }
                        Ok(_) | Err(PushError::Store(_)) => {
                            stopped = Some(unavailable(mutation));
                            break 'mutations;
                        }
                        Err(e) => return Err(e),
                    },
                    Step::Unavailable(e) => {
                        tracing::warn!(error = ?e, mutation = mutation.mutation_id, "push stopped");
                        stopped = Some(unavailable(mutation));
                        break 'mutations;
                    }
                }
            }
        }
        Ok(PushOutcome {
            results,
            next_mutation_id: device.last_mutation_id + 1,
            stopped,
        })
    }

    async fn pushing_device(&self, caller: &Caller, id: DeviceId) -> Result<Device, PushError> {
        self.own_device(caller, id).await.map_err(|e| match e {
            super::DeviceError::Store(e) => PushError::Store(e),
            _ => PushError::DeviceNotFound,
        })
    }

    /// Applies one mutation and advances the device, in one transaction.
    async fn apply(
        &self,
        caller: &Caller,
        device: &Device,
        mutation: &Mutation,
        lineage: &Lineage,
    ) -> Step {
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            let step = Arc::new(DeviceStep::new(
                self.ports.uow.clone(),
                device.id,
                device.last_mutation_id,
                mutation.mutation_id,
            ));
            let outcome = self.attempt(caller, device, mutation, &step, lineage).await;
            if step.device_moved() {
                return Step::DeviceMoved;
            }
            if let Some(mut committed) = step.committed() {
                // The service's batch carried the advance (and `committed` is what it recorded);
                // the live answer adds what the batch did not show, like the merged content.
                if let Ok(live) = outcome {
                    committed.version = committed.version.or(live.version);
                    committed.content_hash = committed.content_hash.or(live.content_hash);
                    committed.content = live.content;
                }
                return Step::Done(committed);
            }
            match outcome {
                Err(Failure::Raced) if attempt < MAX_ATTEMPTS => continue,
                Err(Failure::Raced) => {
                    break Err(StoreError::Unavailable(anyhow::anyhow!(
                        "the entity kept changing during {MAX_ATTEMPTS} attempts"
                    )));
                }
                Err(Failure::Transient(e)) => break Err(e),
                Err(Failure::Rejected(rejection)) => {
                    let mut result =
                        MutationResult::new(mutation.mutation_id, MutationStatus::Rejected);
                    result.problem = Some(self.ports.problems.problem(rejection));
                    break Ok(result);
                }
                Ok(result) => break Ok(result),
            }
        };
        let result = match outcome {
            Ok(result) => result,
            Err(e) => return Step::Unavailable(e),
        };
        // Nothing was written for it (a no-op or a refusal): advance the device alone.
        let mut batch = WriteBatch::by(caller.user_id).write(Write::AdvanceDevice {
            device: device.id,
            expected_last: device.last_mutation_id,
            new_last: mutation.mutation_id,
            result: result.stored(),
        });
        batch.device = Some(device.id);
        match self.ports.uow.commit(batch).await {
            Ok(_) => Step::Done(result),
            Err(CommitError::Stale(_)) => Step::DeviceMoved,
            Err(CommitError::Store(e)) => Step::Unavailable(e),
            Err(other) => Step::Unavailable(StoreError::Unexpected(anyhow::anyhow!(other))),
        }
    }

    async fn attempt(
        &self,
        caller: &Caller,
        device: &Device,
        m: &Mutation,
        step: &Arc<DeviceStep>,
        lineage: &Lineage,
    ) -> Result<MutationResult, Failure> {
        let kind = MutationKind::parse(&m.kind)
            .ok_or_else(|| Failure::Rejected(Rejection::Unsupported(m.kind.clone())))?;
        let p = &self.ports;
        let uow: Arc<dyn UnitOfWork> = step.clone();
        let mut documents = DocumentService::new(
            p.documents.clone(),
            p.versions.clone(),
            p.folders.clone(),
            p.access.clone(),
            uow.clone(),
            p.clock.clone(),
            p.limits,
        );
        if let Some(live) = &p.live {
            documents = documents.with_live_documents(live.clone());
        }
        let folders = FolderService::new(
            p.folders.clone(),
            p.documents.clone(),
            p.access.clone(),
            uow.clone(),
            p.clock.clone(),
        );
        let context_files = ContextFileService::new(
            ContextFilePorts {
                files: p.context_files.clone(),
                storage: p.storage.clone(),
                documents: p.documents.clone(),
                blobs: p.blobs.clone(),
                uow,
                clock: p.clock.clone(),
            },
            p.access.clone(),
            p.files,
        );
        let applied = MutationResult::new(m.mutation_id, MutationStatus::Applied);
        let id = m.entity_id;
        use MutationKind::*;
        match kind {
            DocumentCreate => {
                let body: CreateDocumentPayload = payload(m)?;
                step.expect(applied, Some(id));
                let request = NewDocument {
                    id: Some(DocumentId(id)),
                    title: body.title,
                    content: body.content,
                    folder_id: body.folder_id,
                };
                let d = documents
                    .create(caller, body.workspace_id, request)
                    .await
                    .map_err(document_failure)?;
                Ok(document_result(m, MutationStatus::Applied, &d))
            }
            DocumentUpdate => {
                let prior = lineage.prior(m);
                self.update_document(caller, device, m, &documents, step, prior)
                    .await
            }
            DocumentDelete | DocumentRestore => {
                payload::<NoPayload>(m)?;
                step.expect(applied, Some(id));
                let d = if kind == DocumentDelete {
                    documents.trash(caller, DocumentId(id)).await
                } else {
                    documents.restore(caller, DocumentId(id)).await
                }
                .map_err(document_failure)?;
                Ok(document_result(m, MutationStatus::Applied, &d))
            }
            DocumentMove => {
                let body: MoveDocumentPayload = payload(m)?;
                if body.folder_id.is_none() && body.position.is_none() {
                    return Err(Invalid::new("payload", "needs folder_id or position").into());
                }
                step.expect(applied, Some(id));
                let patch = DocumentPatch {
                    title: None,
                    folder_id: body.folder_id,
                    position: body.position,
                };
                let d = documents
                    .update(caller, DocumentId(id), patch, None)
                    .await
                    .map_err(document_failure)?;
                Ok(document_result(m, MutationStatus::Applied, &d))
            }
            FolderCreate => {
                let body: CreateFolderPayload = payload(m)?;
                // The folder service reports an id clash as a retryable conflict; here it is a
                // client bug that retrying cannot fix.
                if p.folders
                    .folder(FolderId(id))
                    .await
                    .map_err(Failure::Transient)?
                    .is_some()
                {
                    return Err(
                        Invalid::new("entity_id", "a folder with this id exists already").into(),
                    );
                }
                step.expect(applied, Some(id));
                let request = NewFolder {
                    name: body.name,
                    parent_id: body.parent_id,
                    position: body.position,
                };
                let f = folders
                    .create_with_id(caller, body.workspace_id, FolderId(id), request)
                    .await
                    .map_err(folder_failure)?;
                Ok(folder_result(m, &f))
            }
            FolderUpdate => {
                let body: UpdateFolderPayload = payload(m)?;
                step.expect(applied, Some(id));
                let patch = FolderPatch {
                    name: body.name,
                    parent_id: body.parent_id,
                    position: body.position,
                };
                let f = folders
                    .update(caller, FolderId(id), patch)
                    .await
                    .map_err(folder_failure)?;
                Ok(folder_result(m, &f))
            }
            FolderDelete => {
                payload::<NoPayload>(m)?;
                step.expect(applied.clone(), Some(id));
                folders
                    .delete(caller, FolderId(id))
                    .await
                    .map_err(folder_failure)?;
                Ok(applied)
            }
            CommentCreate | CommentUpdate | CommentDelete | CommentResolve => {
                self.comment(caller, kind, m, step).await
            }
            ContextFileCreate | ContextFileUpdate | ContextFileDelete => {
                self.context_file(caller, kind, m, &context_files, step)
                    .await
            }
        }
    }

    /// `context_file.create|update|delete`, through the context files' service:
    ///
    /// - `create` takes `{workspace_id, document_id?, name, content, content_type?}` under the
    ///   client's `entity_id`; an id already taken is rejected (422). Only inline text: a payload
    ///   with `size` (a blob-backed file) is rejected with 422, since the upload flow needs a
    ///   presigned URL used at once, which a queued mutation cannot do — devices upload large
    ///   files online through the REST API.
    /// - `update` takes `{name?, content?, content_type?}` and needs `base_version`: the version
    ///   the device edited. Context files have no version history to merge against, so a file
    ///   that moved on since is not merged: the mutation is `rejected` with the REST API's 412
    ///   `version_conflict` problem (naming the current version), and the device pulls the file
    ///   and decides what to keep.
    /// - `delete` takes no payload; deleting a file already deleted is `applied` without a write.
    async fn context_file(
        &self,
        caller: &Caller,
        kind: MutationKind,
        m: &Mutation,
        context_files: &ContextFileService,
        step: &Arc<DeviceStep>,
    ) -> Result<MutationResult, Failure> {
        let id = ContextFileId(m.entity_id);
        let applied = MutationResult::new(m.mutation_id, MutationStatus::Applied);
        match kind {
            MutationKind::ContextFileCreate => {
                let body: CreateContextFilePayload = payload(m)?;
                if body.size.is_some() {
                    return Err(Invalid::new(
                        "payload",
                        "blob-backed context files cannot be created by sync; send inline \
                         `content`, or upload the file through POST /workspaces/{ws}/context-files",
                    )
                    .into());
                }
                let text = body.content.ok_or_else(|| {
                    Invalid::new(
                        "payload",
                        "needs content (inline text) for context_file.create",
                    )
                })?;
                if self
                    .ports
                    .context_files
                    .context_file(id)
                    .await
                    .map_err(Failure::Transient)?
                    .is_some()
                {
                    return Err(Invalid::new(
                        "entity_id",
                        "a context file with this id exists already",
                    )
                    .into());
                }
                step.expect(applied, Some(m.entity_id));
                let request = NewContextFile {
                    name: body.name,
                    document_id: body.document_id,
                    content: NewContextContent::Inline {
                        text,
                        content_type: body.content_type,
                    },
                };
                let (file, _) = context_files
                    .create_with_id(caller, body.workspace_id, id, request)
                    .await
                    .map_err(context_file_failure)?;
                Ok(context_file_result(m, &file))
            }
            MutationKind::ContextFileUpdate => {
                let body: UpdateContextFilePayload = payload(m)?;
                if body.name.is_none() && body.content.is_none() {
                    return Err(Invalid::new("payload", "needs name or content").into());
                }
                let base = m.base_version.ok_or_else(|| {
                    Invalid::new("base_version", "is required for context_file.update")
                })?;
                step.expect(applied, Some(m.entity_id));
                let patch = ContextFilePatch {
                    name: body.name,
                    text: body.content,
                    content_type: body.content_type,
                };
                let file = context_files
                    .update_from_version(caller, id, patch, Version(base))
                    .await
                    .map_err(context_file_failure)?;
                Ok(context_file_result(m, &file))
            }
            _ => {
                payload::<NoPayload>(m)?;
                let stored = self
                    .ports
                    .context_files
                    .context_file(id)
                    .await
                    .map_err(Failure::Transient)?;
                if let Some(file) = stored.filter(|f| f.status == FileStatus::Deleted) {
                    // Deleted already (by this device's earlier push or anyone): nothing to do,
                    // once the caller shows it may delete files there.
                    self.ports
                        .access
                        .workspace(caller, file.workspace_id, Action::EditContextFiles)
                        .await
                        .map_err(|e| context_file_failure(e.into()))?;
                    return Ok(applied);
                }
                step.expect(applied.clone(), Some(m.entity_id));
                context_files
                    .delete(caller, id)
                    .await
                    .map_err(context_file_failure)?;
                Ok(applied)
            }
        }
    }

    /// `document.update`: saved as sent when the client edited the current version; otherwise a
    /// three-way merge with the version it started from, saved as a `merge` version when clean,
    /// and a conflict copy of the client's text when not.
    async fn update_document(
        &self,
        caller: &Caller,
        device: &Device,
        m: &Mutation,
        documents: &DocumentService,
        step: &Arc<DeviceStep>,
        prior: Option<&Edit>,
    ) -> Result<MutationResult, Failure> {
        let body: UpdateDocumentPayload = payload(m)?;
        if body.title.is_none() && body.content.is_none() {
            return Err(Invalid::new("payload", "needs title or content").into());
        }
        let base = m
            .base_version
            .ok_or_else(|| Invalid::new("base_version", "is required for document.update"))?;
        let id = DocumentId(m.entity_id);
        let current = documents.get(caller, id).await.map_err(document_failure)?;
        if current.deleted_at.is_some() {
            return Err(Failure::Rejected(Rejection::Document(
                DocumentError::InTrash,
            )));
        }
        if base > current.version.0 || base < 1 {
            return Err(Invalid::new("base_version", "is not a version of this document").into());
        }
        if base == current.version.0 {
            step.expect(
                MutationResult::new(m.mutation_id, MutationStatus::Applied),
                Some(m.entity_id),
            );
            let saved = documents
                .save_version(
                    caller,
                    id,
                    current.version,
                    body.title,
                    body.content,
                    VersionReason::Save,
                )
                .await
                .map_err(document_failure)?;
            return Ok(document_result(m, MutationStatus::Applied, &saved));
        }

        let base_version = self
            .ports
            .versions
            .version(id, Version(base))
            .await
            .map_err(Failure::Transient)?;
        let merged = base_version.and_then(|b| {
            // A later edit of this device on the same base continues its earlier edit: merge
            // against the text the device had then, not the older base.
            let base_title = prior.and_then(|p| p.title.as_deref()).unwrap_or(&b.title);
            let base_content = prior
                .and_then(|p| p.content.as_deref())
                .unwrap_or(&b.content);
            let title = match body.title.as_deref() {
                None => current.title.clone(),
                Some(t) => match merge_title(base_title, &current.title, t) {
                    Merged::Clean(t) => t,
                    Merged::Conflict => return None,
                },
            };
            let content = match body.content.as_deref() {
                None => current.content.clone(),
                Some(c) => match merge_text(base_content, &current.content, c) {
                    Merged::Clean(c) => c,
                    Merged::Conflict => return None,
                },
            };
            Some((title, content))
        });

        match merged {
            Some((title, content)) => {
                let mut result = MutationResult::new(m.mutation_id, MutationStatus::Merged);
                if title == current.title && content == current.content {
                    // The server already has everything the client did.
                    result.version = Some(current.version.0);
                    result.content_hash = Some(current.content_hash.as_str().to_owned());
                    result.content = Some(current.content);
                    return Ok(result);
                }
                step.expect(result, Some(m.entity_id));
                let saved = documents
                    .save_version(
                        caller,
                        id,
                        current.version,
                        Some(title),
                        Some(content),
                        VersionReason::Merge,
                    )
                    .await
                    .map_err(document_failure)?;
                let mut result = document_result(m, MutationStatus::Merged, &saved);
                result.content = Some(saved.content);
                Ok(result)
            }
            None => {
                let copy = DocumentId::new();
                let mut result = MutationResult::new(m.mutation_id, MutationStatus::Conflict);
                result.version = Some(current.version.0);
                result.content_hash = Some(current.content_hash.as_str().to_owned());
                result.conflict_document_id = Some(copy);
                step.expect(result.clone(), None);
                let title = conflict_title(
                    body.title.as_deref().unwrap_or(&current.title),
                    &device.name,
                    self.ports.clock.now(),
                );
                // Next to the original; a caller who edits it through a document grant alone
                // gets the same grant on the copy (see `create_conflict_copy`).
                let content = body.content.unwrap_or_else(|| current.content.clone());
                documents
                    .create_conflict_copy(caller, &current, copy, title, content)
                    .await
                    .map_err(document_failure)?;
                Ok(result)
            }
        }
    }
}

/// The client texts of this push's earlier `document.update`s, per document: the next edit of the
/// same document on the same base version was made on top of that text.
#[derive(Default)]
struct Lineage(HashMap<Uuid, Edit>);

struct Edit {
    base_version: i64,
    title: Option<String>,
    content: Option<String>,
}

impl Lineage {
    fn prior(&self, m: &Mutation) -> Option<&Edit> {
        self.0
            .get(&m.entity_id)
            .filter(|e| Some(e.base_version) == m.base_version)
    }

    fn record(&mut self, m: &Mutation, result: &MutationResult) {
        let done = matches!(
            result.status,
            MutationStatus::Applied | MutationStatus::Merged | MutationStatus::Conflict
        );
        if m.kind != "document.update" || !done {
            return;
        }
        let (Some(base_version), Ok(body)) = (m.base_version, payload::<UpdateDocumentPayload>(m))
        else {
            return;
        };
        let before = self.prior(m);
        let edit = Edit {
            base_version,
            title: body.title.or_else(|| before.and_then(|p| p.title.clone())),
            content: body
                .content
                .or_else(|| before.and_then(|p| p.content.clone())),
        };
        self.0.insert(m.entity_id, edit);
    }
}

/// "‹title› (conflict, ‹device name›, ‹YYYY-MM-DD›)", the title shortened to fit.
pub(crate) fn conflict_title(
    title: &str,
    device: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let suffix = format!(" (conflict, {device}, {})", now.format("%Y-%m-%d"));
    let room = MAX_TITLE.saturating_sub(suffix.chars().count());
    let mut out: String = title.trim().chars().take(room).collect();
    out.push_str(&suffix);
    out
}

fn unavailable(mutation: &Mutation) -> Stop {
    Stop {
        mutation_id: mutation.mutation_id,
        reason: StopReason::Unavailable,
    }
}

fn document_result(m: &Mutation, status: MutationStatus, d: &Document) -> MutationResult {
    let mut result = MutationResult::new(m.mutation_id, status);
    result.version = Some(d.version.0);
    result.content_hash = Some(d.content_hash.as_str().to_owned());
    result
}

fn folder_result(m: &Mutation, f: &Folder) -> MutationResult {
    let mut result = MutationResult::new(m.mutation_id, MutationStatus::Applied);
    result.version = Some(f.version.0);
    result
}

/// How one attempt at a mutation failed.
enum Failure {
    /// For good: recorded as `rejected`.
    Rejected(Rejection),
    /// The entity changed between read and write: try again.
    Raced,
    /// Storage failed: the push stops here.
    Transient(StoreError),
}

impl From<Invalid> for Failure {
    fn from(e: Invalid) -> Self {
        Failure::Rejected(Rejection::Invalid(e))
    }
}

fn document_failure(e: DocumentError) -> Failure {
    match e {
        DocumentError::Store(e) => Failure::Transient(e),
        DocumentError::VersionConflict { .. } => Failure::Raced,
        other => Failure::Rejected(Rejection::Document(other)),
    }
}

/// Every context-file refusal is for good; a version conflict too (see `context_file`).
fn context_file_failure(e: ContextFileError) -> Failure {
    match e {
        ContextFileError::Store(e) => Failure::Transient(e),
        other => Failure::Rejected(Rejection::ContextFile(other)),
    }
}

fn context_file_result(m: &Mutation, f: &ContextFile) -> MutationResult {
    let mut result = MutationResult::new(m.mutation_id, MutationStatus::Applied);
    result.version = Some(f.version.0);
    result.content_hash = f.content_hash.as_ref().map(|h| h.as_str().to_owned());
    result
}

fn folder_failure(e: FolderError) -> Failure {
    match e {
        FolderError::Store(e) => Failure::Transient(e),
        FolderError::Conflict => Failure::Raced,
        other => Failure::Rejected(Rejection::Folder(other)),
    }
}

enum Step {
    Done(MutationResult),
    /// Another push of this device advanced it first.
    DeviceMoved,
    Unavailable(StoreError),
}

/// The unit of work of one mutation: adds the device's advance to the first batch committed.
pub(crate) struct DeviceStep {
    inner: Arc<dyn UnitOfWork>,
    device: DeviceId,
    expected_last: i64,
    mutation_id: i64,
    state: Mutex<StepState>,
}

#[derive(Default)]
struct StepState {
    /// The result to record, and the entity whose version (and hash) the batch fills in.
    expected: Option<(MutationResult, Option<Uuid>)>,
    committed: Option<MutationResult>,
    device_moved: bool,
}

impl DeviceStep {
    pub(crate) fn new(
        inner: Arc<dyn UnitOfWork>,
        device: DeviceId,
        expected_last: i64,
        mutation_id: i64,
    ) -> Self {
        Self {
            inner,
            device,
            expected_last,
            mutation_id,
            state: Mutex::new(StepState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StepState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What to record when the service commits: `result`, with the version and content hash of
    /// `fill_from` as the batch writes them.
    fn expect(&self, result: MutationResult, fill_from: Option<Uuid>) {
        self.lock().expected = Some((result, fill_from));
    }

    fn committed(&self) -> Option<MutationResult> {
        self.lock().committed.clone()
    }

    fn device_moved(&self) -> bool {
        self.lock().device_moved
    }
}

#[async_trait::async_trait]
impl UnitOfWork for DeviceStep {
    async fn commit(&self, mut batch: WriteBatch) -> Result<Committed, CommitError> {
        let pending = {
            let state = self.lock();
            state.committed.is_none().then(|| {
                state.expected.clone().unwrap_or_else(|| {
                    (
                        MutationResult::new(self.mutation_id, MutationStatus::Applied),
                        None,
                    )
                })
            })
        };
        let Some((mut result, fill_from)) = pending else {
            // The operations push uses commit once; a second batch carries no advance.
            return self.inner.commit(batch).await;
        };
        if let Some(target) = fill_from {
            fill_from_batch(&mut result, &batch, target);
        }
        batch.device = Some(self.device);
        batch.writes.insert(
            0,
            Write::AdvanceDevice {
                device: self.device,
                expected_last: self.expected_last,
                new_last: self.mutation_id,
                result: result.stored(),
            },
        );
        match self.inner.commit(batch).await {
            Ok(committed) => {
                self.lock().committed = Some(result);
                Ok(committed)
            }
            Err(CommitError::Stale(table)) if table == DEVICES_TABLE => {
                self.lock().device_moved = true;
                Err(CommitError::Stale(table))
            }
            Err(e) => Err(e),
        }
    }
}

/// The version (from the change row) and content hash (from the document write) of `target`.
fn fill_from_batch(result: &mut MutationResult, batch: &WriteBatch, target: Uuid) {
    if let Some(version) = batch
        .changes
        .iter()
        .rev()
        .find(|c| c.entity_id == target)
        .and_then(|c| c.version)
    {
        result.version = Some(version);
    }
    let hash = batch.writes.iter().rev().find_map(|w| match w {
        Write::SaveDocument { document, .. } if document.id.0 == target => {
            Some(document.content_hash.as_str().to_owned())
        }
        Write::InsertDocument(document) if document.id.0 == target => {
            Some(document.content_hash.as_str().to_owned())
        }
        Write::InsertContextFile(file) | Write::UpdateContextFile { file, .. }
            if file.id.0 == target =>
        {
            file.content_hash.as_ref().map(|h| h.as_str().to_owned())
        }
        _ => None,
    });
    if hash.is_some() {
        result.content_hash = hash;
    }
}

// ---- comments ----

impl SyncService {
    /// `comment.create|update|delete|resolve`, through the comments' service (same rules,
    /// mentions and notifications as the REST API):
    ///
    /// - `create` takes `{document_id, body, parent_id?, anchor?}` under the client's
    ///   `entity_id`; an id already taken is rejected (409 `comment_exists`).
    /// - `update` takes `{body}` (the author only). Comments have no merge: the last edit wins.
    /// - `delete` takes `{}`; deleting a comment deleted already is `applied` without a write.
    /// - `resolve` takes `{resolved: bool}` (thread roots only); asking for the state the
    ///   thread is in already is `applied` without a write.
    async fn comment(
        &self,
        caller: &Caller,
        kind: MutationKind,
        m: &Mutation,
        step: &Arc<DeviceStep>,
    ) -> Result<MutationResult, Failure> {
        let Some(sources) = &self.comments else {
            return Err(Failure::Rejected(Rejection::Unsupported(m.kind.clone())));
        };
        let p = &self.ports;
        let uow: Arc<dyn UnitOfWork> = step.clone();
        let comments = CommentService::new(
            CommentPorts {
                comments: sources.comments.clone(),
                documents: p.documents.clone(),
                users: sources.users.clone(),
                uow,
                clock: p.clock.clone(),
            },
            p.access.clone(),
        );
        let id = CommentId(m.entity_id);
        let applied = MutationResult::new(m.mutation_id, MutationStatus::Applied);
        step.expect(applied.clone(), Some(m.entity_id));
        let comment = match kind {
            MutationKind::CommentCreate => {
                let body: CreateCommentPayload = payload(m)?;
                let request = NewComment {
                    body: body.body,
                    parent_id: body.parent_id,
                    anchor: body.anchor,
                };
                comments
                    .create_with_id(caller, body.document_id, id, request)
                    .await
            }
            MutationKind::CommentUpdate => {
                let body: UpdateCommentPayload = payload(m)?;
                comments.edit(caller, id, body.body).await
            }
            MutationKind::CommentResolve => {
                let body: ResolveCommentPayload = payload(m)?;
                comments.set_resolved(caller, id, body.resolved).await
            }
            _ => {
                payload::<NoPayload>(m)?;
                let stored = sources
                    .comments
                    .comment(id)
                    .await
                    .map_err(Failure::Transient)?;
                if let Some(gone) = stored.filter(|c| c.is_deleted()) {
                    // Deleted already: nothing to do, once the caller shows it can see it.
                    p.access
                        .document(
                            caller,
                            gone.workspace_id,
                            gone.document_id,
                            Action::ReadContent,
                        )
                        .await
                        .map_err(|e| comment_failure(e.into()))?;
                    return Ok(applied);
                }
                comments.delete(caller, id).await.map_err(comment_failure)?;
                return Ok(applied);
            }
        }
        .map_err(comment_failure)?;
        let mut result = applied;
        result.version = Some(comment.version.0);
        Ok(result)
    }
}

fn comment_failure(e: CommentError) -> Failure {
    match e {
        CommentError::Store(e) => Failure::Transient(e),
        CommentError::Conflict => Failure::Raced,
        other => Failure::Rejected(Rejection::Comment(other)),
    }
}
