//! Blob store adapter for Amazon S3 and S3-compatible servers, through `aws-sdk-s3`.
//!
//! [`S3BlobStore`] implements the domain's [`BlobStore`] port. Uploads are presigned `PutObject`
//! requests with `Content-Length` and `Content-Type` among the signed headers (and the
//! server-side-encryption headers when configured), so S3 refuses a larger body, another type, an
//! altered URL or a late one. Downloads are presigned `GetObject` requests that override the
//! response's `Content-Disposition` to `attachment; filename*=UTF-8''…`. Every operation has a
//! timeout; a timeout or a connection failure is [`StoreError::Unavailable`].

use std::time::Duration;

use anyhow::Context as _;
use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use mdcreator_domain::StoreError;
use mdcreator_domain::blobs::{
    BlobKey, BlobMeta, BlobStore, PresignedRequest, UploadSpec, content_disposition,
};

/// Where the objects live and how to reach them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct S3Settings {
    pub bucket: String,
    /// `AWS_REGION`; default: the SDK's provider chain, else `us-east-1`.
    pub region: Option<String>,
    /// `AWS_ENDPOINT_URL`: an S3-compatible server (emulators, MinIO); default: AWS.
    pub endpoint_url: Option<String>,
    /// Path-style URLs (`http://host/bucket/key`), which emulators need.
    pub force_path_style: bool,
    /// Static credentials (emulators, tests); default: the SDK's provider chain (environment,
    /// ECS task role, instance profile…).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    /// `AES256` or `aws:kms`: sent (and signed) with every upload.
    pub server_side_encryption: Option<String>,
    /// The KMS key for `aws:kms`; default: the bucket's key.
    pub sse_kms_key_id: Option<String>,
    /// Whole operation, retries included.
    pub operation_timeout_ms: u64,
    /// One attempt.
    pub attempt_timeout_ms: u64,
    pub connect_timeout_ms: u64,
}

impl Default for S3Settings {
    fn default() -> Self {
        Self {
            bucket: String::new(),
            region: None,
            endpoint_url: None,
            force_path_style: false,
            access_key_id: None,
            secret_access_key: None,
            server_side_encryption: None,
            sse_kms_key_id: None,
            operation_timeout_ms: 10_000,
            attempt_timeout_ms: 4_000,
            connect_timeout_ms: 2_000,
        }
    }
}

/// The S3 blob store. Cheap to clone (the SDK client is shared).
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
    sse: Option<ServerSideEncryption>,
    sse_kms_key_id: Option<String>,
}

impl S3BlobStore {
    /// Builds the client. Makes no request (the bucket is checked by [`S3BlobStore::ping`]).
    pub async fn connect(settings: &S3Settings) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !settings.bucket.trim().is_empty(),
            "no S3 bucket configured"
        );
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(Duration::from_millis(settings.operation_timeout_ms))
            .operation_attempt_timeout(Duration::from_millis(settings.attempt_timeout_ms))
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeouts);
        if let Some(region) = settings.region.as_ref().filter(|r| !r.is_empty()) {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = settings.endpoint_url.as_ref().filter(|u| !u.is_empty()) {
            loader = loader.endpoint_url(url.clone());
        }
        if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
            loader = loader.credentials_provider(Credentials::new(
                id.clone(),
                secret.expose_secret().to_owned(),
                None,
                None,
                "mdcreator-settings",
            ));
        }
        let shared = loader.load().await;
        let mut config =
            aws_sdk_s3::config::Builder::from(&shared).force_path_style(settings.force_path_style);
        if shared.region().is_none() {
            config = config.region(Region::new("us-east-1"));
        }
        let sse = match settings.server_side_encryption.as_deref() {
            None | Some("") => None,
            Some("AES256") => Some(ServerSideEncryption::Aes256),
            Some("aws:kms") => Some(ServerSideEncryption::AwsKms),
            Some(other) => anyhow::bail!(
                "unsupported server-side encryption {other:?}: expected AES256 or aws:kms"
            ),
        };
        Ok(Self {
            client: Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
            sse,
            sse_kms_key_id: settings.sse_kms_key_id.clone().filter(|k| !k.is_empty()),
        })
    }

    /// Checks that the bucket answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(drop)
            .map_err(store_error)
    }

    /// Creates the bucket unless it exists (development and tests; production buckets come from
    /// infrastructure code).
    pub async fn ensure_bucket(&self) -> anyhow::Result<()> {
        if self.ping().await.is_ok() {
            return Ok(());
        }
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(anyhow::Error::new(e)).context("creating the bucket"),
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    #[tracing::instrument(skip_all, fields(key = %key))]
    async fn put(
        &self,
        key: &BlobKey,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .content_length(bytes.len() as i64)
            .body(ByteStream::from(bytes));
        if let Some(sse) = &self.sse {
            request = request
                .server_side_encryption(sse.clone())
                .set_ssekms_key_id(self.sse_kms_key_id.clone());
        }
        request.send().await.map(drop).map_err(store_error)
    }

    #[tracing::instrument(skip_all, fields(key = %key))]
    async fn head(&self, key: &BlobKey) -> Result<Option<BlobMeta>, StoreError> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await;
        match result {
            Ok(head) => Ok(Some(BlobMeta {
                size: head
                    .content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
                content_type: head.content_type().map(str::to_owned),
                sha256: head.checksum_sha256().and_then(base64_to_hex),
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    #[tracing::instrument(skip_all, fields(key = %key))]
    async fn delete(&self, key: &BlobKey) -> Result<(), StoreError> {
        // S3 answers 204 for a missing key too.
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn presign_upload(
        &self,
        key: &BlobKey,
        spec: &UploadSpec,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        let size = i64::try_from(spec.size)
            .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("size out of range")))?;
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(&spec.content_type)
            .content_length(size);
        if let Some(sse) = &self.sse {
            request = request
                .server_side_encryption(sse.clone())
                .set_ssekms_key_id(self.sse_kms_key_id.clone());
        }
        let (config, expires_at) = presigning(expires_in)?;
        let presigned = request.presigned(config).await.map_err(store_error)?;
        Ok(PresignedRequest {
            method: presigned.method().to_owned(),
            url: presigned.uri().to_owned(),
            headers: presigned
                .headers()
                .map(|(name, value)| (canonical_header(name), value.to_owned()))
                .collect(),
            expires_at,
        })
    }

    async fn presign_download(
        &self,
        key: &BlobKey,
        filename: &str,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        let (config, expires_at) = presigning(expires_in)?;
        let presigned = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .response_content_disposition(content_disposition(filename))
            .presigned(config)
            .await
            .map_err(store_error)?;
        Ok(PresignedRequest {
            method: presigned.method().to_owned(),
            url: presigned.uri().to_owned(),
            headers: presigned
                .headers()
                .map(|(name, value)| (canonical_header(name), value.to_owned()))
                .collect(),
            expires_at,
        })
    }
}

/// Presigning starts now and lasts `expires_in` (whole seconds, as SigV4 counts).
fn presigning(expires_in: Duration) -> Result<(PresigningConfig, DateTime<Utc>), StoreError> {
    let expires_in = Duration::from_secs(expires_in.as_secs().max(1));
    let start = std::time::SystemTime::now();
    let config = PresigningConfig::builder()
        .start_time(start)
        .expires_in(expires_in)
        .build()
        .map_err(|e| StoreError::Unexpected(e.into()))?;
    let start: DateTime<Utc> = start.into();
    let start = DateTime::from_timestamp(start.timestamp(), 0).unwrap_or(start);
    let expires_at =
        start + chrono::Duration::from_std(expires_in).unwrap_or(chrono::Duration::MAX);
    Ok((config, expires_at))
}

/// `content-type` → `Content-Type`, for readable upload instructions.
fn canonical_header(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn base64_to_hex(b64: &str) -> Option<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()
        .map(hex::encode)
}

fn status_of<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn is_not_found<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    status_of(e) == Some(404) || matches!(e.code(), Some("NotFound" | "NoSuchKey"))
}

/// Timeouts, connection failures and S3's 5xx (`SlowDown`…) are `Unavailable` (503, retry later);
/// the rest `Unexpected`.
fn store_error<E>(e: SdkError<E, HttpResponse>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let transient = matches!(e, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_))
        || status_of(&e).is_some_and(|s| s >= 500);
    if transient {
        StoreError::Unavailable(anyhow::Error::new(e))
    } else {
        StoreError::Unexpected(anyhow::Error::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_canonicalised() {
        assert_eq!(canonical_header("content-type"), "Content-Type");
        assert_eq!(
            canonical_header("x-amz-server-side-encryption"),
            "X-Amz-Server-Side-Encryption"
        );
    }

    #[test]
    fn checksums_become_hex() {
        // sha256("") in base64 and hex
        assert_eq!(
            base64_to_hex("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=").as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }
}
