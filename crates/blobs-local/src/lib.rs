//! The embedded blob store: objects as files under a local directory (`<data_dir>/blobs`), with
//! upload and download URLs signed by the server itself.
//!
//! A signed URL is `<base>/<claims>.<signature>`: `claims` is base64url JSON naming the method,
//! the key, the expiry and — for uploads — the exact size and content type, or — for downloads —
//! the file name; `signature` is HMAC-SHA256 over the encoded claims with a key only the server
//! knows. Any change to any of them fails the (constant-time) check. The HTTP routes live in the
//! server crate and call [`FsBlobStore::verify`], [`FsBlobStore::receive`] and
//! [`FsBlobStore::open_download`].
//!
//! Files are written to a temporary file, synced, and renamed into place: a reader sees the old
//! object or the whole new one. A sidecar `<id>.meta` keeps the content type and SHA-256.
//! Paths come only from [`BlobKey`]s, whose segments are UUIDs (checked again here), so no key
//! can leave the directory.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use mdcreator_domain::StoreError;
use mdcreator_domain::blobs::{BlobKey, BlobMeta, BlobStore, PresignedRequest, UploadSpec};

/// Name of the signing-key file kept in the store's root when no secret is configured.
const KEY_FILE: &str = ".signing-key";
/// Directory (inside the root) for uploads in flight.
const TMP_DIR: &str = ".tmp";

/// The embedded blob store. Cheap to share behind an `Arc`.
pub struct FsBlobStore {
    root: PathBuf,
    base_url: String,
    key: hmac::Key,
}

impl std::fmt::Debug for FsBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsBlobStore")
            .field("root", &self.root)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// A signed URL that does not check out. Every variant is a refusal (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a URL this store made, or altered: wrong shape, wrong signature, wrong method.
    #[error("the signature does not match this request")]
    Invalid,
    /// Made here, but its time is up.
    #[error("the link has expired")]
    Expired,
}

/// What a valid upload URL allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadGrant {
    pub key: BlobKey,
    pub size: u64,
    pub content_type: String,
}

/// What a valid download URL allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadGrant {
    pub key: BlobKey,
    pub filename: String,
}

/// Why an upload was not stored. Nothing is left behind in any case.
#[derive(Debug)]
pub enum ReceiveError {
    /// The body is (or announced to be) larger than the signed size.
    TooLarge {
        limit: u64,
    },
    /// The body ended before the signed size.
    Incomplete {
        expected: u64,
        received: u64,
    },
    /// The `Content-Type` is not the signed one.
    ContentTypeMismatch {
        expected: String,
    },
    /// The client's body stream failed.
    Body(String),
    Io(io::Error),
}

/// An object opened for download.
pub struct Download {
    pub size: u64,
    pub content_type: Option<String>,
    pub body: tokio_util::io::ReaderStream<tokio::fs::File>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// `PUT` or `GET`.
    m: String,
    k: String,
    /// Expiry, Unix seconds.
    e: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    content_type: String,
    size: u64,
    sha256: String,
}

impl FsBlobStore {
    /// Opens (creating) the store under `root`. URLs start with `base_url` (for example
    /// `https://md.example.com/api/v1/blobs`). With no `secret`, a random key is created once in
    /// `<root>/.signing-key` (mode 0600) so that URLs outlive a restart.
    pub fn open(
        root: impl Into<PathBuf>,
        base_url: &str,
        secret: Option<&[u8]>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let root = root.into();
        std::fs::create_dir_all(root.join(TMP_DIR))
            .with_context(|| format!("creating {}", root.display()))?;
        // Uploads interrupted by a crash leave temporary files; none can be in flight now.
        if let Ok(entries) = std::fs::read_dir(root.join(TMP_DIR)) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let secret = match secret {
            Some(s) if s.len() >= 32 => s.to_vec(),
            Some(_) => anyhow::bail!("the blob signing secret must be at least 32 bytes"),
            None => load_or_create_secret(&root.join(KEY_FILE))?,
        };
        Ok(Self {
            root,
            base_url: base_url.trim_end_matches('/').to_owned(),
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
        })
    }

    /// Checks a token (the last path segment of a signed URL) for an upload at `now`.
    pub fn verify_upload(&self, token: &str, now: DateTime<Utc>) -> Result<UploadGrant, LinkError> {
        let claims = self.verify(token, "PUT", now)?;
        match (claims.s, claims.t) {
            (Some(size), Some(content_type)) => Ok(UploadGrant {
                key: BlobKey::parse(&claims.k).map_err(|_| LinkError::Invalid)?,
                size,
                content_type,
            }),
            _ => Err(LinkError::Invalid),
        }
    }

    /// Checks a token for a download at `now`.
    pub fn verify_download(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<DownloadGrant, LinkError> {
        let claims = self.verify(token, "GET", now)?;
        Ok(DownloadGrant {
            key: BlobKey::parse(&claims.k).map_err(|_| LinkError::Invalid)?,
            filename: claims.f.unwrap_or_default(),
        })
    }

    /// Stores an upload's body, refusing it as soon as it passes the signed size. The announced
    /// `content_type` must be the signed one; an announced `content_length` must equal the size.
    pub async fn receive<S, E>(
        &self,
        grant: &UploadGrant,
        content_type: Option<&str>,
        content_length: Option<u64>,
        mut body: S,
    ) -> Result<(), ReceiveError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let type_ok =
            content_type.is_some_and(|t| t.trim().eq_ignore_ascii_case(grant.content_type.trim()));
        if !type_ok {
            return Err(ReceiveError::ContentTypeMismatch {
                expected: grant.content_type.clone(),
            });
        }
        match content_length {
            Some(n) if n > grant.size => return Err(ReceiveError::TooLarge { limit: grant.size }),
            Some(n) if n < grant.size => {
                return Err(ReceiveError::Incomplete {
                    expected: grant.size,
                    received: n,
                });
            }
            _ => {}
        }
        let mut temp = TempFile::create(&self.root)
            .await
            .map_err(ReceiveError::Io)?;
        let mut hash = digest::Context::new(&digest::SHA256);
        let mut received: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ReceiveError::Body(e.to_string()))?;
            received += chunk.len() as u64;
            if received > grant.size {
                // Stop reading: the rest of the body is never buffered or stored.
                return Err(ReceiveError::TooLarge { limit: grant.size });
            }
            hash.update(&chunk);
            temp.file
                .write_all(&chunk)
                .await
                .map_err(ReceiveError::Io)?;
        }
        if received != grant.size {
            return Err(ReceiveError::Incomplete {
                expected: grant.size,
                received,
            });
        }
        let sha256 = hex::encode(hash.finish().as_ref());
        self.commit(temp, &grant.key, &grant.content_type, received, sha256)
            .await
            .map_err(ReceiveError::Io)
    }

    /// Opens an object for a verified download; `None` when it does not exist.
    pub async fn open_download(&self, key: &BlobKey) -> io::Result<Option<Download>> {
        let path = self.path_of(key)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = file.metadata().await?.len();
        let content_type = read_sidecar(&sidecar_of(&path))
            .await?
            .map(|s| s.content_type);
        Ok(Some(Download {
            size,
            content_type,
            body: tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024),
        }))
    }

    fn verify(&self, token: &str, method: &str, now: DateTime<Utc>) -> Result<Claims, LinkError> {
        let (payload, signature) = token.split_once('.').ok_or(LinkError::Invalid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| LinkError::Invalid)?;
        // Constant-time comparison of the MAC.
        hmac::verify(&self.key, payload.as_bytes(), &signature).map_err(|_| LinkError::Invalid)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| LinkError::Invalid)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| LinkError::Invalid)?;
        if claims.m != method {
            return Err(LinkError::Invalid);
        }
        if now.timestamp() >= claims.e {
            return Err(LinkError::Expired);
        }
        Ok(claims)
    }

    fn sign(&self, claims: &Claims) -> String {
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = hmac::sign(&self.key, payload.as_bytes());
        format!(
            "{}/{payload}.{}",
            self.base_url,
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// `<root>/<segment>/<segment>/<segment>`, from a checked key only.
    fn path_of(&self, key: &BlobKey) -> io::Result<PathBuf> {
        // Belt and braces: a `BlobKey` is already checked, check again before touching the disk.
        let key = BlobKey::parse(key.as_str())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid blob key"))?;
        let mut path = self.root.clone();
        for segment in key.segments() {
            path.push(segment);
        }
        Ok(path)
    }

    /// Moves a fully written temporary file into place under `key`, its sidecar first.
    async fn commit(
        &self,
        mut temp: TempFile,
        key: &BlobKey,
        content_type: &str,
        size: u64,
        sha256: String,
    ) -> io::Result<()> {
        temp.file.flush().await?;
        temp.file.sync_all().await?;
        let path = self.path_of(key)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let sidecar = Sidecar {
            content_type: content_type.to_owned(),
            size,
            sha256,
        };
        let mut meta = TempFile::create(&self.root).await?;
        meta.file
            .write_all(&serde_json::to_vec(&sidecar).map_err(io::Error::other)?)
            .await?;
        meta.file.sync_all().await?;
        meta.persist(&sidecar_of(&path)).await?;
        temp.persist(&path).await
    }
}

#[async_trait::async_trait]
impl BlobStore for FsBlobStore {
    #[tracing::instrument(skip_all, fields(key = %key))]
    async fn put(
        &self,
        key: &BlobKey,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        let sha256 = hex::encode(digest::digest(&digest::SHA256, &bytes).as_ref());
        let mut temp = TempFile::create(&self.root).await.map_err(unexpected)?;
        temp.file.write_all(&bytes).await.map_err(unexpected)?;
        self.commit(temp, key, content_type, bytes.len() as u64, sha256)
            .await
            .map_err(unexpected)
    }

    #[tracing::instrument(skip_all, fields(key = %key))]
    async fn head(&self, key: &BlobKey) -> Result<Option<BlobMeta>, StoreError> {
        let path = self.path_of(key).map_err(unexpected)?;
        let metadata = match tokio::fs::metadata(&path).await {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unexpected(e)),
        };
        let sidecar = read_sidecar(&sidecar_of(&path)).await.map_err(unexpected)?;
        Ok(Some(BlobMeta {
            size: metadata.len(),
            content_type: sidecar.as_ref().map(|s| s.content_type.clone()),
            sha256: sidecar.map(|s| s.sha256),
        }))
    }

    #[tracing::instrument(skip_all, fields(key = %key))]
    async fn delete(&self, key: &BlobKey) -> Result<(), StoreError> {
        let path = self.path_of(key).map_err(unexpected)?;
        for p in [path.clone(), sidecar_of(&path)] {
            match tokio::fs::remove_file(&p).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(unexpected(e)),
            }
        }
        Ok(())
    }

    async fn presign_upload(
        &self,
        key: &BlobKey,
        spec: &UploadSpec,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        let expires_at = expiry(expires_in);
        let url = self.sign(&Claims {
            m: "PUT".into(),
            k: key.as_str().to_owned(),
            e: expires_at.timestamp(),
            s: Some(spec.size),
            t: Some(spec.content_type.clone()),
            f: None,
        });
        Ok(PresignedRequest {
            method: "PUT".into(),
            url,
            headers: vec![
                ("Content-Type".into(), spec.content_type.clone()),
                ("Content-Length".into(), spec.size.to_string()),
            ],
            expires_at,
        })
    }

    async fn presign_download(
        &self,
        key: &BlobKey,
        filename: &str,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        let expires_at = expiry(expires_in);
        let url = self.sign(&Claims {
            m: "GET".into(),
            k: key.as_str().to_owned(),
            e: expires_at.timestamp(),
            s: None,
            t: None,
            f: Some(filename.to_owned()),
        });
        Ok(PresignedRequest {
            method: "GET".into(),
            url,
            headers: Vec::new(),
            expires_at,
        })
    }
}

/// Whole seconds, as the signed expiry is.
fn expiry(expires_in: Duration) -> DateTime<Utc> {
    let at = Utc::now() + chrono::Duration::from_std(expires_in).unwrap_or(chrono::Duration::MAX);
    DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at)
}

fn sidecar_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".meta");
    path.with_file_name(name)
}

async fn read_sidecar(path: &Path) -> io::Result<Option<Sidecar>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn load_or_create_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context as _;
    match std::fs::read(path) {
        Ok(secret) if secret.len() >= 32 => return Ok(secret),
        Ok(_) => anyhow::bail!(
            "{} is too short; remove it to make a new one",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let secret: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, &secret)?;
    file.sync_all()?;
    Ok(secret.to_vec())
}

fn unexpected(e: io::Error) -> StoreError {
    StoreError::Unexpected(e.into())
}

/// A file under `<root>/.tmp`, removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    file: tokio::fs::File,
    persisted: bool,
}

impl TempFile {
    async fn create(root: &Path) -> io::Result<Self> {
        let path = root.join(TMP_DIR).join(uuid::Uuid::new_v4().to_string());
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok(Self {
            path,
            file,
            persisted: false,
        })
    }

    /// Renames into place (atomic on one filesystem; `.tmp` is inside the root).
    async fn persist(mut self, to: &Path) -> io::Result<()> {
        tokio::fs::rename(&self.path, to).await?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl std::fmt::Display for ReceiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReceiveError::TooLarge { limit } => {
                write!(f, "the body is larger than the {limit} bytes signed")
            }
            ReceiveError::Incomplete { expected, received } => {
                write!(f, "the body has {received} bytes; {expected} were signed")
            }
            ReceiveError::ContentTypeMismatch { expected } => {
                write!(f, "the Content-Type must be the signed one: {expected}")
            }
            ReceiveError::Body(e) => write!(f, "the body could not be read: {e}"),
            ReceiveError::Io(e) => write!(f, "the upload could not be stored: {e}"),
        }
    }
}

impl std::error::Error for ReceiveError {}

#[cfg(test)]
mod tests;
