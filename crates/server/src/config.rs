//! Settings: defaults, then `MDCREATOR_*` environment variables (plus the standard `DATABASE_URL`
//! and `REDIS_URL`). Unset production settings mean the embedded defaults.

use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Serialized};
use secrecy::SecretString;
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
    /// Comma-separated origins allowed by CORS (and, later, for WebSocket upgrades).
    pub allowed_origins: String,
    /// `json`, `text`, or unset for "text in a terminal, JSON otherwise".
    pub log_format: Option<String>,
    pub max_json_bytes: usize,
    pub max_document_bytes: usize,
    pub requests_per_minute: u32,
    pub db_max_connections: u32,
    /// Seconds a graceful shutdown may take.
    pub shutdown_timeout_secs: u64,
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
            shutdown_timeout_secs: 25,
        }
    }
}

impl Settings {
    /// Defaults overlaid with the environment.
    pub fn from_env() -> Result<Self, Box<figment::Error>> {
        Figment::from(Serialized::defaults(Settings::default()))
            .merge(Env::raw().only(&["database_url", "redis_url"]))
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
