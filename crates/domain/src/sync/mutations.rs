//! What a device pushes and what it gets back for each mutation.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DocumentId;
use crate::documents::DocumentError;
use crate::folders::FolderError;
use crate::values::Invalid;

/// One queued offline change, as the client sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    /// The previous mutation's id + 1, per device, starting at 1.
    pub mutation_id: i64,
    /// `document.update`, `folder.create`, … ([`MutationKind::parse`]).
    pub kind: String,
    pub entity_id: Uuid,
    /// The version the client's edit started from (`document.update`).
    pub base_version: Option<i64>,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutationKind {
    DocumentCreate,
    DocumentUpdate,
    DocumentDelete,
    DocumentRestore,
    DocumentMove,
    FolderCreate,
    FolderUpdate,
    FolderDelete,
    CommentCreate,
    CommentUpdate,
    CommentDelete,
    CommentResolve,
    ContextFileCreate,
    ContextFileUpdate,
    ContextFileDelete,
}

impl MutationKind {
    pub fn parse(s: &str) -> Option<Self> {
        use MutationKind::*;
        Some(match s {
            "document.create" => DocumentCreate,
            "document.update" => DocumentUpdate,
            "document.delete" => DocumentDelete,
            "document.restore" => DocumentRestore,
            "document.move" => DocumentMove,
            "folder.create" => FolderCreate,
            "folder.update" => FolderUpdate,
            "folder.delete" => FolderDelete,
            "comment.create" => CommentCreate,
            "comment.update" => CommentUpdate,
            "comment.delete" => CommentDelete,
            "comment.resolve" => CommentResolve,
            "context_file.create" => ContextFileCreate,
            "context_file.update" => ContextFileUpdate,
            "context_file.delete" => ContextFileDelete,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MutationStatus {
    /// Written as sent.
    Applied,
    /// The document had moved on; a clean three-way merge was saved.
    Merged,
    /// Both sides changed the same lines: the server kept its version and the client's text went
    /// to a conflict copy.
    Conflict,
    /// Refused for good (403/404/422); the device's id advanced anyway.
    Rejected,
    /// Already done earlier; nothing was applied again.
    Duplicate,
}

/// The outcome of one mutation. Also what a device keeps of its last results, without `content`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MutationResult {
    pub mutation_id: i64,
    pub status: MutationStatus,
    /// For `duplicate`: what the mutation got the first time, when still kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_status: Option<MutationStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// The merged Markdown (`merged` only; not kept for `duplicate` answers — pull instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_document_id: Option<DocumentId>,
    /// Why a mutation was rejected, as the API's problem object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<serde_json::Value>,
}

impl MutationResult {
    pub fn new(mutation_id: i64, status: MutationStatus) -> Self {
        Self {
            mutation_id,
            status,
            original_status: None,
            version: None,
            content_hash: None,
            content: None,
            conflict_document_id: None,
            problem: None,
        }
    }

    /// What the device keeps of it: everything but the (possibly large) merged content.
    pub fn stored(&self) -> MutationResult {
        MutationResult {
            content: None,
            ..self.clone()
        }
    }

    /// The answer for a replay of this mutation.
    pub fn as_duplicate(&self) -> MutationResult {
        MutationResult {
            status: MutationStatus::Duplicate,
            original_status: Some(self.status),
            content: None,
            ..self.clone()
        }
    }
}

/// Why a push stopped before its last mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The mutation id skipped ahead; `next_mutation_id` says which one is expected.
    Gap,
    /// Storage failed; retry from this mutation later, in the same order.
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    pub mutation_id: i64,
    pub reason: StopReason,
}

/// The answer to a push.
#[derive(Debug, Clone, PartialEq)]
pub struct PushOutcome {
    pub results: Vec<MutationResult>,
    /// The id the device must send next.
    pub next_mutation_id: i64,
    pub stopped: Option<Stop>,
}

/// Why a mutation was refused for good.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Document(DocumentError),
    #[error(transparent)]
    Folder(FolderError),
    #[error(transparent)]
    ContextFile(crate::context_files::ContextFileError),
    #[error(transparent)]
    Comment(crate::comments::CommentError),
    #[error(transparent)]
    Invalid(Invalid),
    /// A mutation type this server does not take (yet).
    #[error("mutation type {0:?} is not supported")]
    Unsupported(String),
}

/// Renders a [`Rejection`] as the problem object clients see. The HTTP layer owns that format;
/// the domain stores what it renders with the device's results.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ProblemFormat: Send + Sync {
    fn problem(&self, rejection: Rejection) -> serde_json::Value;
}

// ---- payloads ----

use crate::{FolderId, WorkspaceId};

fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateDocumentPayload {
    pub workspace_id: WorkspaceId,
    pub folder_id: Option<FolderId>,
    pub title: Option<String>,
    #[serde(default)]
    pub content: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateDocumentPayload {
    pub title: Option<String>,
    pub content: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoveDocumentPayload {
    /// `null` moves to the root.
    #[serde(default, deserialize_with = "double_option")]
    pub folder_id: Option<Option<FolderId>>,
    pub position: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoPayload {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateFolderPayload {
    pub workspace_id: WorkspaceId,
    pub parent_id: Option<FolderId>,
    pub name: String,
    pub position: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateFolderPayload {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub parent_id: Option<Option<FolderId>>,
    pub position: Option<f64>,
}

/// `context_file.create`: inline text only. Blob-backed files need the upload flow of the REST
/// API (a presigned URL the device must use at once), which an offline queue cannot replay.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateContextFilePayload {
    pub workspace_id: WorkspaceId,
    pub document_id: Option<crate::DocumentId>,
    pub name: String,
    pub content: Option<String>,
    pub content_type: Option<String>,
    /// Present only to refuse it with a clear message (see above).
    pub size: Option<i64>,
}

/// `context_file.update`: absent fields are kept; new `content` makes the file inline.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateContextFilePayload {
    pub name: Option<String>,
    pub content: Option<String>,
    pub content_type: Option<String>,
}

/// `comment.create`: the comment's id is the mutation's `entity_id`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCommentPayload {
    pub document_id: crate::DocumentId,
    pub body: String,
    pub parent_id: Option<crate::CommentId>,
    pub anchor: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateCommentPayload {
    pub body: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolveCommentPayload {
    pub resolved: bool,
}

/// The payload of `mutation` as `T`; `null` counts as `{}`.
pub(crate) fn payload<T: serde::de::DeserializeOwned>(mutation: &Mutation) -> Result<T, Invalid> {
    let value = match &mutation.payload {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        other => other.clone(),
    };
    serde_json::from_value(value).map_err(|e| Invalid::new("payload", e.to_string()))
}
