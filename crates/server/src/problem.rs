//! RFC 7807 problem responses. The only place that turns domain errors into HTTP.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use mdcreator_domain::StoreError;
use mdcreator_domain::access::AccessError;
use mdcreator_domain::api_tokens::ApiTokenError;
use mdcreator_domain::attachments::{AttachmentError, UploadError};
use mdcreator_domain::comments::CommentError;
use mdcreator_domain::context_files::ContextFileError;
use mdcreator_domain::documents::DocumentError;
use mdcreator_domain::folders::FolderError;
use mdcreator_domain::identity::{AuthError, IdentityError, TokenError};
use mdcreator_domain::invitations::InvitationError;
use mdcreator_domain::members::MemberError;
use mdcreator_domain::notifications::NotificationError;
use mdcreator_domain::users::UserError;
use mdcreator_domain::values::Invalid;
use mdcreator_domain::workspaces::WorkspaceError;

/// The problem body every error carries (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// A stable machine-readable code (`document_not_found`, `version_conflict`, …).
    pub code: String,
    /// Field errors of a `validation_failed` problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    extra: Map<String, Value>,
    retry_after: Option<u64>,
    /// The cause, logged (never sent) for 5xx.
    source: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extra: Map::new(),
            retry_after: None,
            source: None,
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "your role does not allow this",
        )
    }

    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; retry after {retry_after} s"),
        );
        e.retry_after = Some(retry_after);
        e
    }

    pub fn internal(source: anyhow::Error) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an unexpected error occurred; it has been logged",
        );
        e.source = Some(source);
        e
    }

    pub fn unavailable(source: anyhow::Error) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "a backing service is unavailable; retry shortly",
        );
        e.retry_after = Some(5);
        e.source = Some(source);
        e
    }

    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.extra.insert(
            key.to_owned(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            detail,
        )
        .with("errors", errors)
    }
}

impl ApiError {
    /// The problem object this error is sent as (also embedded in sync push results).
    pub fn body(&self) -> Value {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let mut body = json!({
            "type": format!("https://mdcreator.app/problems/{}", self.code.replace('_', "-")),
            "title": title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let Value::Object(map) = &mut body {
            map.extend(self.extra.clone());
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            match &self.source {
                Some(source) => {
                    tracing::error!(code = self.code, error = ?source, "request failed")
                }
                None => tracing::error!(code = self.code, "request failed"),
            }
        } else {
            tracing::info!(
                code = self.code,
                status = self.status.as_u16(),
                "request refused"
            );
        }
        let body = self.body();
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let Some(secs) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.body(body.to_string())
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        Self::validation(vec![FieldError {
            field: e.field.to_owned(),
            message: e.message,
        }])
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(e) => Self::unavailable(e),
            StoreError::Unexpected(e) => Self::internal(e),
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NotFound => Self::not_found("not_found", "no such resource"),
            AccessError::Forbidden => Self::forbidden(),
            AccessError::Store(e) => e.into(),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Unavailable(source) => Self::unavailable(source),
            other => Self::unauthorized(other.code(), other.to_string()),
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        use IdentityError::*;
        match e {
            EmailTaken => Self::conflict("email_taken", e.to_string()),
            InvalidCredentials => Self::unauthorized("invalid_credentials", e.to_string()),
            NotConfirmed => Self::new(
                StatusCode::FORBIDDEN,
                "account_not_confirmed",
                e.to_string(),
            ),
            CodeMismatch => Self::bad_request("code_mismatch", e.to_string()),
            CodeExpired => Self::bad_request("code_expired", e.to_string()),
            WeakPassword(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "weak_password",
                e.to_string(),
            ),
            InvalidRefreshToken => Self::unauthorized("invalid_refresh_token", e.to_string()),
            TooManyRequests(limit) => Self::too_many_requests(limit.retry_after_secs),
            Unavailable(source) => Self::unavailable(source),
            Unexpected(source) => Self::internal(source),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid(e) => e.into(),
            AuthError::Identity(e) => e.into(),
            AuthError::Token(e) => e.into(),
            AuthError::User(e) => e.into(),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::NotFound => Self::not_found("user_not_found", e.to_string()),
            UserError::Forbidden => Self::forbidden(),
            UserError::Invalid(e) => e.into(),
            UserError::EmailTaken => Self::conflict("email_taken", e.to_string()),
            UserError::Store(e) => e.into(),
        }
    }
}

impl From<ApiTokenError> for ApiError {
    fn from(e: ApiTokenError) -> Self {
        match e {
            ApiTokenError::Forbidden => {
                Self::new(StatusCode::FORBIDDEN, "session_required", e.to_string())
            }
            ApiTokenError::NotFound => Self::not_found("token_not_found", e.to_string()),
            ApiTokenError::TooMany => Self::conflict("too_many_tokens", e.to_string()),
            ApiTokenError::Invalid(e) => e.into(),
            ApiTokenError::Store(e) => e.into(),
        }
    }
}

impl From<WorkspaceError> for ApiError {
    fn from(e: WorkspaceError) -> Self {
        match e {
            WorkspaceError::NotFound => Self::not_found("workspace_not_found", e.to_string()),
            WorkspaceError::Forbidden => Self::forbidden(),
            WorkspaceError::Invalid(e) => e.into(),
            WorkspaceError::Store(e) => e.into(),
        }
    }
}

impl From<MemberError> for ApiError {
    fn from(e: MemberError) -> Self {
        match e {
            MemberError::WorkspaceNotFound => Self::not_found("workspace_not_found", e.to_string()),
            MemberError::MemberNotFound => Self::not_found("member_not_found", e.to_string()),
            MemberError::Forbidden => Self::forbidden(),
            MemberError::LastOwner => Self::conflict("last_owner", e.to_string()),
            MemberError::Conflict => Self::conflict("concurrent_change", e.to_string()),
            MemberError::Store(e) => e.into(),
        }
    }
}

impl From<InvitationError> for ApiError {
    fn from(e: InvitationError) -> Self {
        use InvitationError::*;
        match e {
            WorkspaceNotFound => Self::not_found("workspace_not_found", e.to_string()),
            NotFound => Self::not_found("invitation_not_found", e.to_string()),
            Expired => Self::new(StatusCode::GONE, "invitation_expired", e.to_string()),
            EmailMismatch => Self::new(
                StatusCode::FORBIDDEN,
                "invitation_email_mismatch",
                e.to_string(),
            ),
            Forbidden => Self::forbidden(),
            Invalid(e) => e.into(),
            Conflict => Self::conflict("concurrent_change", e.to_string()),
            Store(e) => e.into(),
        }
    }
}

impl From<FolderError> for ApiError {
    fn from(e: FolderError) -> Self {
        use FolderError::*;
        match e {
            WorkspaceNotFound => Self::not_found("workspace_not_found", e.to_string()),
            NotFound => Self::not_found("folder_not_found", e.to_string()),
            ParentNotFound => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "parent_not_found",
                e.to_string(),
            ),
            Cycle => Self::conflict("folder_cycle", e.to_string()),
            Forbidden => Self::forbidden(),
            Invalid(e) => e.into(),
            Conflict => Self::conflict("concurrent_change", e.to_string()),
            Store(e) => e.into(),
        }
    }
}

impl From<DocumentError> for ApiError {
    fn from(e: DocumentError) -> Self {
        use DocumentError::*;
        match e {
            WorkspaceNotFound => Self::not_found("workspace_not_found", e.to_string()),
            NotFound => Self::not_found("document_not_found", e.to_string()),
            FolderNotFound => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "folder_not_found",
                e.to_string(),
            ),
            VersionNotFound => Self::not_found("version_not_found", e.to_string()),
            Forbidden => Self::forbidden(),
            Invalid(e) => e.into(),
            PreconditionRequired => Self::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "send If-Match with the document's current ETag",
            ),
            VersionConflict {
                ref current,
                ref content_hash,
                ref etag,
            } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "version_conflict",
                e.to_string(),
            )
            .with("current_version", current.0)
            .with("current_etag", etag)
            .with("content_hash", content_hash.as_str()),
            TooLarge { limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "document_too_large",
                e.to_string(),
            )
            .with("limit", limit),
            NotInTrash => Self::conflict("not_in_trash", e.to_string()),
            InTrash => Self::conflict("document_in_trash", e.to_string()),
            Duplicate => Self::conflict("document_exists", e.to_string()),
            Store(e) => e.into(),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        use UploadError::*;
        match e {
            TooLarge { limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "file_too_large",
                e.to_string(),
            )
            .with("limit", limit),
            QuotaExceeded {
                quota,
                used,
                requested,
            } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "quota_exceeded",
                e.to_string(),
            )
            .with("quota", quota)
            .with("used", used)
            .with("requested", requested),
            UploadMissing => Self::conflict("upload_missing", e.to_string()),
            UploadMismatch {
                expected_size,
                actual_size,
                ref expected_type,
                ref actual_type,
            } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "upload_mismatch",
                e.to_string(),
            )
            .with("expected_size", expected_size)
            .with("actual_size", actual_size)
            .with("expected_content_type", expected_type)
            .with("actual_content_type", actual_type),
        }
    }
}

impl From<AttachmentError> for ApiError {
    fn from(e: AttachmentError) -> Self {
        use AttachmentError::*;
        match e {
            DocumentNotFound => Self::not_found("document_not_found", e.to_string()),
            NotFound => Self::not_found("attachment_not_found", e.to_string()),
            Forbidden => Self::forbidden(),
            Invalid(e) => e.into(),
            DocumentInTrash => Self::conflict("document_in_trash", e.to_string()),
            Upload(e) => e.into(),
            NotReady => Self::conflict("upload_pending", e.to_string()),
            Conflict => Self::conflict("concurrent_change", e.to_string()),
            Store(e) => e.into(),
        }
    }
}

impl From<ContextFileError> for ApiError {
    fn from(e: ContextFileError) -> Self {
        use ContextFileError::*;
        match e {
            WorkspaceNotFound => Self::not_found("workspace_not_found", e.to_string()),
            DocumentNotFound => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "document_not_found",
                e.to_string(),
            ),
            NotFound => Self::not_found("context_file_not_found", e.to_string()),
            Forbidden => Self::forbidden(),
            Invalid(e) => e.into(),
            InlineTooLarge { limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "context_file_too_large",
                e.to_string(),
            )
            .with("limit", limit),
            Upload(e) => e.into(),
            PreconditionRequired => Self::new(
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "send If-Match with the context file's current ETag",
            ),
            VersionConflict {
                ref current,
                ref etag,
            } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "version_conflict",
                e.to_string(),
            )
            .with("current_version", current.0)
            .with("current_etag", etag),
            Store(e) => e.into(),
        }
    }
}

impl From<CommentError> for ApiError {
    fn from(e: CommentError) -> Self {
        use CommentError::*;
        match e {
            DocumentNotFound => Self::not_found("document_not_found", e.to_string()),
            NotFound => Self::not_found("comment_not_found", e.to_string()),
            Forbidden => Self::forbidden(),
            Invalid(e) => e.into(),
            TooLarge { limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "comment_too_large",
                e.to_string(),
            )
            .with("limit", limit),
            NotThreadRoot => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_a_thread",
                e.to_string(),
            ),
            DocumentInTrash => Self::conflict("document_in_trash", e.to_string()),
            Duplicate => Self::conflict("comment_exists", e.to_string()),
            Conflict => Self::conflict("concurrent_change", e.to_string()),
            Store(e) => e.into(),
        }
    }
}

impl From<NotificationError> for ApiError {
    fn from(e: NotificationError) -> Self {
        match e {
            NotificationError::NotFound => Self::not_found("notification_not_found", e.to_string()),
            NotificationError::Forbidden => Self::forbidden(),
            NotificationError::Invalid(e) => e.into(),
            NotificationError::Store(e) => e.into(),
        }
    }
}

/// Problem bodies for errors actix raises before a handler runs (JSON, path, query, payload).
pub fn json_error(err: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as J;
    match err {
        J::OverflowKnownLength { length, limit } => too_large_body(length, limit),
        J::Overflow { limit } => too_large_body(limit + 1, limit),
        J::ContentType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ),
        J::Deserialize(e) => body_error(&e),
        other => ApiError::bad_request("malformed_body", other.to_string()),
    }
}

fn too_large_body(length: usize, limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the body has {length} bytes; the limit is {limit}"),
    )
    .with("limit", limit)
}

/// A body that is not the JSON the endpoint takes.
pub fn body_error(e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
        }
        Category::Data => {
            ApiError::bad_request("invalid_body", format!("the body does not fit: {e}"))
        }
    }
}

pub fn payload_error(err: actix_web::error::PayloadError) -> ApiError {
    use actix_web::error::PayloadError as P;
    match err {
        P::Overflow => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the body is too large",
        ),
        other => ApiError::bad_request("malformed_body", other.to_string()),
    }
}

pub fn too_large(limit: usize) -> ApiError {
    too_large_body(limit + 1, limit)
}

// ---- sync ----

use mdcreator_domain::sync::{DeviceError, ProblemFormat, PushError, Rejection, SyncError};

impl From<DeviceError> for ApiError {
    fn from(e: DeviceError) -> Self {
        match e {
            DeviceError::NotFound => Self::not_found("device_not_found", e.to_string()),
            DeviceError::Forbidden => Self::forbidden(),
            DeviceError::TooMany { limit } => {
                Self::conflict("too_many_devices", e.to_string()).with("limit", limit)
            }
            DeviceError::Invalid(e) => e.into(),
            DeviceError::Store(e) => e.into(),
        }
    }
}

impl From<PushError> for ApiError {
    fn from(e: PushError) -> Self {
        match e {
            PushError::DeviceNotFound => Self::not_found("device_not_found", e.to_string()),
            PushError::Forbidden => Self::forbidden(),
            PushError::TooManyMutations { limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_mutations",
                e.to_string(),
            )
            .with("limit", limit),
            PushError::Store(e) => e.into(),
        }
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Invalid(e) => e.into(),
            SyncError::CursorExpired => {
                Self::new(StatusCode::GONE, "cursor_expired", e.to_string())
            }
            SyncError::DeviceNotFound => Self::not_found("device_not_found", e.to_string()),
            SyncError::Store(e) => e.into(),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(e: Rejection) -> Self {
        match e {
            Rejection::Document(e) => e.into(),
            Rejection::Folder(e) => e.into(),
            Rejection::ContextFile(e) => e.into(),
            Rejection::Comment(e) => e.into(),
            Rejection::Invalid(e) => e.into(),
            Rejection::Unsupported(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unsupported_mutation",
                e.to_string(),
            ),
        }
    }
}

/// Rejected sync mutations carry the same problem objects as the REST endpoints.
pub struct SyncProblems;

impl ProblemFormat for SyncProblems {
    fn problem(&self, rejection: Rejection) -> Value {
        ApiError::from(rejection).body()
    }
}
