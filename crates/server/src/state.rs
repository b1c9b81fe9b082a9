//! What handlers get: the use-case services and the few ports the HTTP layer itself needs.

use std::sync::Arc;

use mdcreator_domain::Clock;
use mdcreator_domain::api_tokens::ApiTokenService;
use mdcreator_domain::attachments::AttachmentService;
use mdcreator_domain::comments::CommentService;
use mdcreator_domain::context_files::ContextFileService;
use mdcreator_domain::documents::DocumentService;
use mdcreator_domain::fanout::Fanout;
use mdcreator_domain::folders::FolderService;
use mdcreator_domain::idempotency::IdempotencyStore;
use mdcreator_domain::identity::AuthService;
use mdcreator_domain::invitations::InvitationService;
use mdcreator_domain::members::MemberService;
use mdcreator_domain::notifications::NotificationService;
use mdcreator_domain::ports::RateLimiter;
use mdcreator_domain::presence::Presence;
use mdcreator_domain::users::UserService;
use mdcreator_domain::workspaces::WorkspaceService;

/// Readiness of the backing services, for `/readyz`.
#[async_trait::async_trait]
pub trait Readiness: Send + Sync {
    /// `Err` with a short reason when not ready.
    async fn check(&self) -> Result<(), String>;
}

/// The public keys of the built-in token issuer (absent when another issuer is in charge).
pub trait KeySet: Send + Sync {
    fn jwks(&self) -> serde_json::Value;
}

pub struct AppState {
    pub auth: AuthService,
    pub users: Arc<UserService>,
    pub api_tokens: ApiTokenService,
    pub workspaces: WorkspaceService,
    pub members: MemberService,
    pub invitations: InvitationService,
    pub folders: FolderService,
    pub documents: DocumentService,
    pub attachments: AttachmentService,
    pub context_files: ContextFileService,
    pub comments: CommentService,
    pub notifications: NotificationService,
    /// Devices, push, pull, pokes, feed retention.
    pub sync: Arc<mdcreator_domain::sync::SyncService>,
    /// The embedded blob store behind `/api/v1/blobs/…` (absent with S3).
    pub local_blobs: Option<crate::routes::blobs::LocalBlobs>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub limiter: Arc<dyn RateLimiter>,
    /// Broadcast between instances (Redis pub/sub, or in process).
    pub fanout: Arc<dyn Fanout>,
    /// Who is connected to which document, on every instance (Redis, or in process).
    pub presence: Arc<dyn Presence>,
    /// Live collaboration: the rooms, the WebSocket tickets.
    pub collab: crate::collab::CollabState,
    pub clock: Arc<dyn Clock>,
    pub readiness: Arc<dyn Readiness>,
    pub keys: Option<Arc<dyn KeySet>>,
    pub requests_per_minute: u32,
    pub max_json_bytes: usize,
}
