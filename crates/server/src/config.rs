//! Settings: defaults, then `MDCREATOR_*` environment variables (plus the standard `DATABASE_URL`
//! and `REDIS_URL`). Unset production settings mean the embedded defaults.

use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Serialized};
use mdcreator_cognito::CognitoSettings;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// Where the embedded defaults keep their files (SQLite database, blobs).
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; default: SQLite under `data_dir`.
    pub database_url: Option<String>,
    /// `redis://…`, or `rediss://…` for TLS: fan-out, presence and rate limits shared by every
    /// instance. Default: in process (one instance).
    pub redis_url: Option<String>,
    /// The externally visible base URL; the built-in token issuer (`iss`). Default `http://<listen>`.
    pub public_url: Option<String>,
    /// Run migrations at start (always on for SQLite).
    pub auto_migrate: bool,
    pub require_email_confirmation: bool,
    /// A PKCS#8 PEM private key (P-256) for the built-in issuer; default: a key kept in the database.
    #[serde(skip_serializing)]
    pub signing_key: Option<SecretString>,
    /// The `client_id` claim of built-in access tokens.
    pub client_id: String,
    pub access_token_ttl_secs: u64,
    /// Comma-separated origins allowed by CORS and for WebSocket upgrades.
    pub allowed_origins: String,
    /// `json`, `text`, or unset for "text in a terminal, JSON otherwise".
    pub log_format: Option<String>,
    pub max_json_bytes: usize,
    pub max_document_bytes: usize,
    pub requests_per_minute: u32,
    pub db_max_connections: u32,
    /// SQLite files: the longest a collaborative edit waits in the update journal beside the
    /// database before it is folded into it (`MDCREATOR_SQLITE_JOURNAL_FOLD_MS`).
    pub sqlite_journal_fold_ms: u64,
    /// Seconds a graceful shutdown may take.
    pub shutdown_timeout_secs: u64,
    /// HTTP worker threads (`MDCREATOR_WORKERS`); 0 means one per CPU.
    pub workers: usize,
    /// AWS Cognito user pool (`MDCREATOR_COGNITO_USER_POOL_ID`). When set, Cognito replaces the
    /// built-in accounts (and the server publishes no JWKS of its own).
    pub cognito_user_pool_id: Option<String>,
    /// The pool's app client (`MDCREATOR_COGNITO_CLIENT_ID`), required with a pool.
    pub cognito_client_id: Option<String>,
    /// The app client's secret, when it has one (`MDCREATOR_COGNITO_CLIENT_SECRET`).
    #[serde(skip_serializing)]
    pub cognito_client_secret: Option<SecretString>,
    /// Another Cognito endpoint, e.g. an emulator (`MDCREATOR_COGNITO_ENDPOINT_URL`); default
    /// `AWS_ENDPOINT_URL`, else AWS's.
    pub cognito_endpoint_url: Option<String>,
    /// The access tokens' `iss`; default `https://cognito-idp.<region>.amazonaws.com/<pool>`
    /// (region: `AWS_REGION`, else the pool id's prefix).
    pub cognito_issuer: Option<String>,
    /// Where the pool's keys are; default `<issuer>/.well-known/jwks.json`.
    pub cognito_jwks_url: Option<String>,
    /// Live text is saved as a version at most once per this many seconds of activity.
    pub collab_debounce_secs: u64,
    /// Largest WebSocket message accepted (bytes); larger closes with 4413.
    pub collab_max_message_bytes: usize,
    /// Messages per second one WebSocket may send on average, and in a burst (else 4429).
    pub collab_messages_per_sec: u32,
    pub collab_message_burst: u32,
    /// Seconds between re-checks of a live socket's token, membership and role.
    pub collab_recheck_secs: u64,
    /// Blob store: S3 when a bucket is set (`MDCREATOR_S3_BUCKET`), else files under
    /// `<data_dir>/blobs` with URLs signed by this server.
    pub s3_bucket: Option<String>,
    /// Path-style S3 URLs (emulators, MinIO).
    pub s3_force_path_style: bool,
    /// `AES256` or `aws:kms` on every upload.
    pub s3_server_side_encryption: Option<String>,
    pub s3_sse_kms_key_id: Option<String>,
    /// Static S3 credentials (emulators); default: the AWS provider chain.
    pub s3_access_key_id: Option<String>,
    #[serde(skip_serializing)]
    pub s3_secret_access_key: Option<SecretString>,
    /// HMAC key (≥ 32 bytes) of the embedded store's URLs; default: a key file in the blob dir.
    #[serde(skip_serializing)]
    pub blob_signing_key: Option<SecretString>,
    /// Bytes one workspace may keep in the blob store (attachments and uploaded context files).
    pub workspace_quota_bytes: u64,
    /// Largest attachment or uploaded context file.
    pub max_upload_bytes: u64,
    /// How often pending uploads that were never completed are swept.
    pub upload_sweep_interval_secs: u64,
    /// Lifetime of presigned upload URLs.
    pub upload_url_ttl_secs: u64,
    /// How long after its URL ran out a pending upload is swept.
    pub upload_sweep_grace_secs: u64,
    /// Sync: change-feed rows older than this many days may be compacted (superseded rows and
    /// tombstones); clients with older cursors start over (`MDCREATOR_SYNC_RETENTION_DAYS`).
    pub sync_retention_days: u32,
    /// How often the change feed is compacted.
    pub sync_compaction_interval_secs: u64,
    /// `AWS_REGION` (S3 and other AWS clients).
    pub aws_region: Option<String>,
    /// `AWS_ENDPOINT_URL`: an S3-compatible endpoint (emulators).
    pub aws_endpoint_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            redis_url: None,
            public_url: None,
            auto_migrate: false,
            require_email_confirmation: false,
            signing_key: None,
            client_id: "mdcreator".into(),
            access_token_ttl_secs: 900,
            allowed_origins: String::new(),
            log_format: None,
            max_json_bytes: 1024 * 1024,
            max_document_bytes: 10 * 1024 * 1024,
            requests_per_minute: 600,
            db_max_connections: 16,
            sqlite_journal_fold_ms: 1_000,
            shutdown_timeout_secs: 25,
            workers: 0,
            cognito_user_pool_id: None,
            cognito_client_id: None,
            cognito_client_secret: None,
            cognito_endpoint_url: None,
            cognito_issuer: None,
            cognito_jwks_url: None,
            collab_debounce_secs: 10,
            collab_max_message_bytes: 4 * 1024 * 1024,
            collab_messages_per_sec: 200,
            collab_message_burst: 1000,
            collab_recheck_secs: 30,
            s3_bucket: None,
            s3_force_path_style: false,
            s3_server_side_encryption: None,
            s3_sse_kms_key_id: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            blob_signing_key: None,
            workspace_quota_bytes: 1024 * 1024 * 1024,
            max_upload_bytes: 100 * 1024 * 1024,
            upload_sweep_interval_secs: 300,
            upload_url_ttl_secs: 900,
            upload_sweep_grace_secs: 3600,
            sync_retention_days: 90,
            sync_compaction_interval_secs: 3600,
            aws_region: None,
            aws_endpoint_url: None,
        }
    }
}

impl Settings {
    /// Defaults overlaid with the environment.
    pub fn from_env() -> Result<Self, Box<figment::Error>> {
        Figment::from(Serialized::defaults(Settings::default()))
            .merge(Env::raw().only(&[
                "database_url",
                "redis_url",
                "aws_region",
                "aws_endpoint_url",
            ]))
            .merge(Env::prefixed("MDCREATOR_"))
            .extract()
            .map_err(Box::new)
    }

    /// The database to use: the configured URL, or a SQLite file under the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.trim().is_empty() => url.clone(),
            _ => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("mdcreator.db").display()
            ),
        }
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url().starts_with("sqlite:")
    }

    /// The Cognito pool to sign users in with, when one is configured (`None`: built-in
    /// accounts). A pool without an app client is an error.
    pub fn cognito(&self) -> anyhow::Result<Option<CognitoSettings>> {
        let set = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let Some(pool) = set(&self.cognito_user_pool_id) else {
            return Ok(None);
        };
        let client = set(&self.cognito_client_id).ok_or_else(|| {
            anyhow::anyhow!(
                "MDCREATOR_COGNITO_USER_POOL_ID is set but MDCREATOR_COGNITO_CLIENT_ID is not"
            )
        })?;
        Ok(Some(CognitoSettings {
            client_secret: self
                .cognito_client_secret
                .clone()
                .filter(|s| !s.expose_secret().trim().is_empty()),
            region: set(&self.aws_region),
            endpoint_url: set(&self.cognito_endpoint_url).or_else(|| set(&self.aws_endpoint_url)),
            issuer: set(&self.cognito_issuer),
            jwks_url: set(&self.cognito_jwks_url),
            ..CognitoSettings::new(pool, client)
        }))
    }

    pub fn allowed_origins(&self) -> Vec<String> {
        self.allowed_origins
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_configuration() {
        let s = Settings::default();
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert!(s.is_sqlite());
        assert!(s.database_url().ends_with("data/mdcreator.db?mode=rwc"));
        assert!(s.allowed_origins().is_empty());
    }

    #[test]
    fn cognito_is_off_unless_a_pool_is_set() {
        assert!(Settings::default().cognito().unwrap().is_none());
        let blank = Settings {
            cognito_user_pool_id: Some(" ".into()),
            cognito_client_id: Some("client".into()),
            ..Settings::default()
        };
        assert!(blank.cognito().unwrap().is_none());
        let no_client = Settings {
            cognito_user_pool_id: Some("eu-west-1_Pool".into()),
            ..Settings::default()
        };
        assert!(no_client.cognito().is_err());
    }

    #[test]
    fn cognito_settings_prefer_their_own_endpoint() {
        let s = Settings {
            cognito_user_pool_id: Some("eu-west-1_Pool".into()),
            cognito_client_id: Some("client".into()),
            cognito_client_secret: Some("".into()),
            aws_endpoint_url: Some("http://aws.local".into()),
            ..Settings::default()
        };
        let c = s.cognito().unwrap().unwrap();
        assert_eq!(c.endpoint_url.as_deref(), Some("http://aws.local"));
        assert!(c.client_secret.is_none(), "a blank secret is no secret");
        assert_eq!(
            c.issuer().unwrap(),
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Pool"
        );
        let s = Settings {
            cognito_endpoint_url: Some("http://127.0.0.1:5000".into()),
            aws_region: Some("us-east-1".into()),
            ..s
        };
        let c = s.cognito().unwrap().unwrap();
        assert_eq!(c.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(c.region().unwrap(), "us-east-1");
    }

    #[test]
    fn origins_are_split_and_trimmed() {
        let s = Settings {
            allowed_origins: " https://a.example/, https://b.example ,".into(),
            ..Settings::default()
        };
        assert_eq!(
            s.allowed_origins(),
            ["https://a.example", "https://b.example"]
        );
    }
}
