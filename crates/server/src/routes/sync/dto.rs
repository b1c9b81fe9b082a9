//! The JSON shapes of devices and sync.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use mdcreator_domain::documents::Document;
use mdcreator_domain::sync::{
    ChangeData, Device, DocumentState, Mutation, MutationResult, PushOutcome, Scope, StopReason,
    SyncChange,
};

use crate::routes::attachments::AttachmentDto;
use crate::routes::context_files::ContextFileDto;
use crate::routes::dto::{DocumentDto, DocumentSummaryDto, FolderDto, MemberDto, WorkspaceDto};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDevice {
    /// A name the user recognises ("Ada's laptop"); used in conflict copies' titles.
    pub name: String,
    /// `macos`, `windows`, `linux`, `web`, …
    pub platform: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceDto {
    pub id: Uuid,
    pub name: String,
    pub platform: String,
    /// The last mutation applied for this device (0 before the first push).
    pub last_mutation_id: i64,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

impl From<Device> for DeviceDto {
    fn from(d: Device) -> Self {
        Self {
            id: d.id.0,
            name: d.name,
            platform: d.platform,
            last_mutation_id: d.last_mutation_id,
            created_at: d.created_at,
            last_seen_at: d.last_seen_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PullQuery {
    /// The `cursor` of the previous pull; absent or empty for everything.
    pub cursor: Option<String>,
    /// Changes per page, 1 to 1000 (default 500). A page may exceed it to end on a commit.
    pub limit: Option<i64>,
    /// The calling device: its `last_mutation_id` comes from the same snapshot as the changes.
    pub device_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PullResponse {
    pub changes: Vec<ChangeDto>,
    /// Pass as `?cursor=` next time.
    pub cursor: String,
    /// More changes are waiting: pull again at once with the new cursor.
    pub has_more: bool,
    pub last_mutation_id: Option<i64>,
}

/// The latest state of one entity (or its tombstone).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeDto {
    /// A workspace id, or `shared` for documents shared to the caller alone.
    pub workspace_id: String,
    /// `workspace`, `member`, `folder`, `document`, `comment`, `context_file` or `attachment`.
    pub entity_type: String,
    pub entity_id: Uuid,
    /// `upsert` or `delete`.
    pub op: String,
    pub version: Option<i64>,
    /// The entity as the REST API shows it (`null` for deletes, and for context files and
    /// attachments deleted or in the trash with their document). Documents above 1 MiB come
    /// without `content` and with `content_url` instead; context files carry their inline text,
    /// while blob-backed ones and attachments are downloaded through their REST endpoints.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

impl From<SyncChange> for ChangeDto {
    fn from(c: SyncChange) -> Self {
        let workspace_id = match c.scope {
            Scope::Workspace(ws) => ws.to_string(),
            Scope::Shared => "shared".to_owned(),
        };
        Self {
            workspace_id,
            entity_type: c.entity_type.as_str().to_owned(),
            entity_id: c.entity_id,
            op: c.op.as_str().to_owned(),
            version: c.version,
            data: c.data.map(data),
        }
    }
}

fn data(d: ChangeData) -> Value {
    let json = match d {
        ChangeData::Workspace(w) => serde_json::to_value(WorkspaceDto::from(w)),
        ChangeData::Member(m) => serde_json::to_value(MemberDto::from(m)),
        ChangeData::Folder(f) => serde_json::to_value(FolderDto::from(f)),
        ChangeData::Document(d) => return document(d),
        // Inline text in `content`; the bytes of a blob-backed file (`storage: "blob"`) and of
        // attachments are fetched through their REST endpoints, which presign a download.
        ChangeData::ContextFile(f) => serde_json::to_value(ContextFileDto::new(f, true)),
        ChangeData::Attachment(a) => serde_json::to_value(AttachmentDto::from(a)),
        ChangeData::Comment(c) => {
            serde_json::to_value(crate::routes::comments::CommentDto::from(c))
        }
    };
    json.unwrap_or(Value::Null)
}

fn document(d: DocumentState) -> Value {
    let s = d.summary;
    match d.content {
        Some(content) => serde_json::to_value(DocumentDto::from(Document {
            id: s.id,
            workspace_id: s.workspace_id,
            folder_id: s.folder_id,
            title: s.title,
            content,
            content_hash: s.content_hash,
            version: s.version,
            position: s.position,
            created_by: s.created_by,
            updated_by: s.updated_by,
            created_at: s.created_at,
            updated_at: s.updated_at,
            deleted_at: s.deleted_at,
        }))
        .unwrap_or(Value::Null),
        None => {
            let url = format!("/api/v1/documents/{}/content", s.id);
            let mut json = serde_json::to_value(DocumentSummaryDto::from(s)).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut json {
                map.insert("content_url".into(), Value::String(url));
            }
            json
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    pub device_id: Uuid,
    /// In order; at most 500.
    pub mutations: Vec<MutationDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MutationDto {
    /// The device's previous mutation id + 1 (the first is 1).
    pub mutation_id: i64,
    /// `document.create|update|delete|restore|move`, `folder.create|update|delete`,
    /// `comment.*`, `context_file.*`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The entity changed; client-generated for creates.
    pub entity_id: Uuid,
    /// `document.update`: the version the edit started from.
    pub base_version: Option<i64>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub payload: Value,
}

impl From<MutationDto> for Mutation {
    fn from(m: MutationDto) -> Self {
        Mutation {
            mutation_id: m.mutation_id,
            kind: m.kind,
            entity_id: m.entity_id,
            base_version: m.base_version,
            payload: m.payload,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PushResponse {
    pub results: Vec<MutationResultDto>,
    /// The id the device must send next.
    pub next_mutation_id: i64,
    /// Present when the push stopped before its last mutation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<StopDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MutationResultDto {
    pub mutation_id: i64,
    /// `applied`, `merged`, `conflict`, `rejected` or `duplicate`.
    pub status: String,
    /// `duplicate` only: what the mutation got the first time, while the server keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// `merged`: the merged Markdown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// `conflict`: the new document holding the client's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict_document_id: Option<Uuid>,
    /// `rejected`: why, as a problem object.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub problem: Option<Value>,
}

fn status(s: mdcreator_domain::sync::MutationStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl From<MutationResult> for MutationResultDto {
    fn from(r: MutationResult) -> Self {
        Self {
            mutation_id: r.mutation_id,
            status: status(r.status),
            original_status: r.original_status.map(status),
            version: r.version,
            content_hash: r.content_hash,
            content: r.content,
            conflict_document_id: r.conflict_document_id.map(|d| d.0),
            problem: r.problem,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StopDto {
    /// The first mutation not done.
    pub mutation_id: i64,
    /// `gap` (the id skipped ahead; send `next_mutation_id`) or `unavailable` (retry later).
    pub reason: String,
}

impl From<PushOutcome> for PushResponse {
    fn from(o: PushOutcome) -> Self {
        Self {
            results: o.results.into_iter().map(MutationResultDto::from).collect(),
            next_mutation_id: o.next_mutation_id,
            stopped: o.stopped.map(|s| StopDto {
                mutation_id: s.mutation_id,
                reason: match s.reason {
                    StopReason::Gap => "gap",
                    StopReason::Unavailable => "unavailable",
                }
                .to_owned(),
            }),
        }
    }
}
