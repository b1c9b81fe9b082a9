//! The JSON shapes of the API (`snake_case`, RFC 3339 UTC times). Request bodies refuse unknown
//! fields; read-only fields cannot be sent at all.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use mdcreator_domain::Role;
use mdcreator_domain::api_tokens::ApiToken;
use mdcreator_domain::documents::{Document, DocumentSummary, DocumentVersion, VersionSummary};
use mdcreator_domain::folders::{Folder, FolderNode};
use mdcreator_domain::invitations::Invitation;
use mdcreator_domain::members::MemberProfile;
use mdcreator_domain::pagination::Page;
use mdcreator_domain::users::User;
use mdcreator_domain::workspaces::WorkspaceView;

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
pub fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListOf<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> ListOf<T> {
    pub fn from_page<D>(page: Page<D>, f: impl Fn(D) -> T) -> Self {
        Self {
            items: page.items.into_iter().map(f).collect(),
            next_cursor: page.next_cursor,
        }
    }

    pub fn all(items: Vec<T>) -> Self {
        Self {
            items,
            next_cursor: None,
        }
    }
}

// ---- users ----

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        Self {
            id: u.id.0,
            email: u.email.as_str().to_owned(),
            display_name: u.display_name,
            avatar_url: u.avatar_url,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchMe {
    pub display_name: Option<String>,
    /// `null` removes the avatar.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiToken {
    pub name: String,
    /// `read` or `read_write`.
    pub scope: String,
    /// 1 to 3650; no expiry when absent.
    pub expires_in_days: Option<i64>,
}

/// A new personal API token; `token` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiToken {
    pub id: Uuid,
    pub name: String,
    pub scope: String,
    pub token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiTokenDto {
    pub id: Uuid,
    pub name: String,
    /// The token's first characters, to tell tokens apart.
    pub prefix: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiToken> for ApiTokenDto {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            prefix: t.prefix,
            scope: t.scope.as_str().to_owned(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
        }
    }
}

// ---- workspaces and members ----

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceDto {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    /// The caller's role.
    #[schema(value_type = String, example = "owner")]
    pub role: Role,
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<WorkspaceView> for WorkspaceDto {
    fn from(v: WorkspaceView) -> Self {
        let w = v.workspace;
        Self {
            id: w.id.0,
            name: w.name,
            slug: w.slug,
            role: v.role,
            settings: w.settings,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWorkspace {
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDto {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    #[schema(value_type = String, example = "editor")]
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

impl From<MemberProfile> for MemberDto {
    fn from(m: MemberProfile) -> Self {
        Self {
            user_id: m.member.user_id.0,
            email: m.email.as_str().to_owned(),
            display_name: m.display_name,
            role: m.member.role,
            joined_at: m.member.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchMember {
    #[schema(value_type = String, example = "admin")]
    pub role: Role,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferOwnership {
    pub user_id: Uuid,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    /// Invite this address (single use); omit for a link.
    pub email: Option<String>,
    #[schema(value_type = String, example = "editor")]
    pub role: Role,
    /// Links only.
    pub max_uses: Option<i64>,
    /// 1 to 30, default 7.
    pub expires_in_days: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationDto {
    pub id: Uuid,
    pub workspace_id: Uuid,
    /// `email` or `link`.
    pub kind: String,
    pub email: Option<String>,
    #[schema(value_type = String)]
    pub role: Role,
    pub max_uses: Option<i32>,
    pub uses: i32,
    pub expires_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<Invitation> for InvitationDto {
    fn from(i: Invitation) -> Self {
        Self {
            id: i.id.0,
            workspace_id: i.workspace_id.0,
            kind: i.kind.as_str().to_owned(),
            email: i.email.map(|e| e.as_str().to_owned()),
            role: i.role,
            max_uses: i.max_uses,
            uses: i.uses,
            expires_at: i.expires_at,
            created_by: i.created_by.map(|u| u.0),
            created_at: i.created_at,
        }
    }
}

/// A new invitation; `token` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvitation {
    pub id: Uuid,
    pub token: String,
    #[schema(value_type = String)]
    pub role: Role,
    pub email: Option<String>,
    pub kind: String,
    pub max_uses: Option<i32>,
    pub expires_at: DateTime<Utc>,
}

// ---- folders ----

#[derive(Debug, Serialize, ToSchema)]
pub struct FolderDto {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub position: f64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub children: Option<Vec<FolderDto>>,
}

impl From<Folder> for FolderDto {
    fn from(f: Folder) -> Self {
        Self {
            id: f.id.0,
            workspace_id: f.workspace_id.0,
            parent_id: f.parent_id.map(|p| p.0),
            name: f.name,
            position: f.position,
            version: f.version.0,
            created_at: f.created_at,
            updated_at: f.updated_at,
            children: None,
        }
    }
}

impl From<FolderNode> for FolderDto {
    fn from(n: FolderNode) -> Self {
        let mut dto = FolderDto::from(n.folder);
        dto.children = Some(n.children.into_iter().map(FolderDto::from).collect());
        dto
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFolder {
    pub name: String,
    pub parent_id: Option<Uuid>,
    pub position: Option<f64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchFolder {
    pub name: Option<String>,
    /// `null` moves the folder to the root.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub parent_id: Option<Option<Uuid>>,
    pub position: Option<f64>,
}

// ---- documents ----

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentDto {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub folder_id: Option<Uuid>,
    pub title: String,
    pub content: String,
    pub version: i64,
    pub content_hash: String,
    pub position: f64,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<Document> for DocumentDto {
    fn from(d: Document) -> Self {
        Self {
            id: d.id.0,
            workspace_id: d.workspace_id.0,
            folder_id: d.folder_id.map(|f| f.0),
            title: d.title,
            content: d.content,
            version: d.version.0,
            content_hash: d.content_hash.as_str().to_owned(),
            position: d.position,
            created_by: d.created_by.map(|u| u.0),
            updated_by: d.updated_by.map(|u| u.0),
            created_at: d.created_at,
            updated_at: d.updated_at,
            deleted_at: d.deleted_at,
        }
    }
}

/// A document in a list: everything but the content.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentSummaryDto {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub folder_id: Option<Uuid>,
    pub title: String,
    pub version: i64,
    pub content_hash: String,
    pub position: f64,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<DocumentSummary> for DocumentSummaryDto {
    fn from(d: DocumentSummary) -> Self {
        Self {
            id: d.id.0,
            workspace_id: d.workspace_id.0,
            folder_id: d.folder_id.map(|f| f.0),
            title: d.title,
            version: d.version.0,
            content_hash: d.content_hash.as_str().to_owned(),
            position: d.position,
            created_by: d.created_by.map(|u| u.0),
            updated_by: d.updated_by.map(|u| u.0),
            created_at: d.created_at,
            updated_at: d.updated_at,
            deleted_at: d.deleted_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDocument {
    /// A client-generated UUID (offline creates); the server makes one when absent.
    pub id: Option<Uuid>,
    pub title: Option<String>,
    /// Markdown.
    #[serde(default)]
    pub content: String,
    pub folder_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchDocument {
    /// Needs `If-Match`.
    pub title: Option<String>,
    /// `null` moves the document to the root.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub folder_id: Option<Option<Uuid>>,
    pub position: Option<f64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentBody {
    pub content: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionSummaryDto {
    pub version: i64,
    pub title: String,
    pub content_hash: String,
    /// Bytes of Markdown.
    pub size: i64,
    pub author_id: Option<Uuid>,
    /// `save`, `merge`, `restore`, `collab` or `import`.
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

impl From<VersionSummary> for VersionSummaryDto {
    fn from(v: VersionSummary) -> Self {
        Self {
            version: v.version.0,
            title: v.title,
            content_hash: v.content_hash.as_str().to_owned(),
            size: v.size,
            author_id: v.author_id.map(|u| u.0),
            reason: v.reason.as_str().to_owned(),
            created_at: v.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionDto {
    pub document_id: Uuid,
    pub version: i64,
    pub title: String,
    pub content: String,
    pub content_hash: String,
    pub author_id: Option<Uuid>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

impl From<DocumentVersion> for VersionDto {
    fn from(v: DocumentVersion) -> Self {
        Self {
            document_id: v.document_id.0,
            version: v.version.0,
            title: v.title,
            content: v.content,
            content_hash: v.content_hash.as_str().to_owned(),
            author_id: v.author_id.map(|u| u.0),
            reason: v.reason.as_str().to_owned(),
            created_at: v.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiffDto {
    pub from_version: i64,
    pub to_version: i64,
    /// A unified diff (`--- v<from>` / `+++ v<to>`).
    pub diff: String,
}
