//! The blob-store port: object storage for attachments and large context files.
//!
//! Clients never stream file bytes through the API. They get a short-lived, signed request
//! ([`PresignedRequest`]) straight to the store — S3 presigned URLs in production, the server's
//! own HMAC-signed `/api/v1/blobs/…` URLs in the embedded mode — and the server checks the result
//! with [`BlobStore::head`] before it trusts an upload.
//!
//! Storage keys are built by the server from ids only ([`BlobKey`]); a client's file name is
//! metadata and never reaches a key.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ports::StoreError;
use crate::{AttachmentId, ContextFileId, DocumentId, WorkspaceId};

/// An object's key: `<workspace>/<document>/<attachment>` or `<workspace>/context/<file>`.
///
/// Every segment is a lower-case hyphenated UUID (or the literal `context`), so a key can never
/// name a parent directory, an absolute path or anything a client chose.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey(String);

/// The middle segment of context-file keys.
const CONTEXT_SEGMENT: &str = "context";

impl BlobKey {
    pub fn attachment(workspace: WorkspaceId, document: DocumentId, id: AttachmentId) -> Self {
        Self(format!("{workspace}/{document}/{id}"))
    }

    pub fn context_file(workspace: WorkspaceId, id: ContextFileId) -> Self {
        Self(format!("{workspace}/{CONTEXT_SEGMENT}/{id}"))
    }

    /// Checks a key read back from storage or from a signed URL. Only keys of the two shapes
    /// above pass.
    pub fn parse(raw: &str) -> Result<Self, InvalidKey> {
        let segments: Vec<&str> = raw.split('/').collect();
        let uuid = |s: &str| {
            s.len() == 36 && uuid::Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s)
        };
        let ok = matches!(segments[..], [ws, middle, id]
            if uuid(ws) && uuid(id) && (uuid(middle) || middle == CONTEXT_SEGMENT));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidKey)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's segments, for adapters that map keys onto paths.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string that is not a key this server builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a storage key this server builds")]
pub struct InvalidKey;

/// What an upload must be: exactly `size` bytes of `content_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSpec {
    pub size: u64,
    pub content_type: String,
}

/// A request a client sends straight to the blob store: method, URL, and the headers it MUST send
/// as given (they are part of the signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub expires_at: DateTime<Utc>,
}

/// What the store knows about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub size: u64,
    pub content_type: Option<String>,
    /// Lower-case hex SHA-256 of the bytes, when the store computed or was given one.
    pub sha256: Option<String>,
}

/// Object storage. Keys are [`BlobKey`]s; errors are [`StoreError`]s (`Unavailable` when the store
/// cannot be reached or timed out, `Unexpected` otherwise).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` under `key`, replacing any object there. Readers MUST never see a partial
    /// object.
    async fn put(
        &self,
        key: &BlobKey,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError>;

    /// The object's size and type; MUST return `Ok(None)` when there is no object under `key`.
    async fn head(&self, key: &BlobKey) -> Result<Option<BlobMeta>, StoreError>;

    /// Removes the object. Idempotent: a missing object is `Ok(())`.
    async fn delete(&self, key: &BlobKey) -> Result<(), StoreError>;

    /// A `PUT` request valid for `expires_in` that stores exactly `spec.size` bytes with
    /// `spec.content_type` under `key`. The store MUST refuse the request when the body is larger
    /// than `spec.size`, when the content type differs, when it has expired, or when any signed
    /// part of it was altered.
    async fn presign_upload(
        &self,
        key: &BlobKey,
        spec: &UploadSpec,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError>;

    /// A `GET` request valid for `expires_in` that downloads the object as an attachment named
    /// `filename` (`Content-Disposition: attachment; filename*=UTF-8''…`). The same refusals as
    /// for uploads apply.
    async fn presign_download(
        &self,
        key: &BlobKey,
        filename: &str,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError>;
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>` (RFC 6266).
///
/// The name is cut to its last path segment and stripped of control characters and quotes, so no
/// client-chosen name can inject a header or suggest a path.
pub fn content_disposition(filename: &str) -> String {
    let base = filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .collect::<String>();
    let base = if base.trim().is_empty() || base == "." || base == ".." {
        "download".to_owned()
    } else {
        base
    };
    let ascii: String = base
        .chars()
        .map(|c| if c.is_ascii() && c != '\\' { c } else { '_' })
        .collect();
    let mut encoded = String::with_capacity(base.len() * 3);
    for b in base.bytes() {
        // RFC 5987 attr-char
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_built_from_ids_and_round_trip() {
        let (ws, doc, id) = (WorkspaceId::new(), DocumentId::new(), AttachmentId::new());
        let key = BlobKey::attachment(ws, doc, id);
        assert_eq!(key.as_str(), format!("{ws}/{doc}/{id}"));
        assert_eq!(BlobKey::parse(key.as_str()).unwrap(), key);
        let key = BlobKey::context_file(ws, ContextFileId::new());
        assert_eq!(BlobKey::parse(key.as_str()).unwrap(), key);
    }

    #[test]
    fn anything_else_is_not_a_key() {
        let u = uuid::Uuid::now_v7().to_string();
        for bad in [
            String::new(),
            format!("{u}/{u}"),
            format!("{u}/{u}/{u}/{u}"),
            format!("/{u}/{u}"),
            format!("{u}/../{u}"),
            format!("{u}/{u}/.."),
            format!("{u}/{u}/{}", u.to_uppercase()),
            format!("{u}/{u}/{}", u.replace('-', "")),
            format!("{u}/other/{u}"),
            format!("{u}/{u}/{u}\0"),
            format!("{u}\\{u}\\{u}"),
        ] {
            assert!(BlobKey::parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dispositions_never_carry_paths_quotes_or_control_characters() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            content_disposition("../../etc/passwd"),
            "attachment; filename=\"passwd\"; filename*=UTF-8''passwd"
        );
        assert_eq!(
            content_disposition("C:\\x\\a\"b\r\n.txt"),
            "attachment; filename=\"ab.txt\"; filename*=UTF-8''ab.txt"
        );
        assert_eq!(
            content_disposition("résumé 1.pdf"),
            "attachment; filename=\"r_sum_ 1.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%201.pdf"
        );
        assert_eq!(
            content_disposition(".."),
            "attachment; filename=\"download\"; filename*=UTF-8''download"
        );
    }
}
