//! The server's own token issuer: ES256 access tokens, keys shared through the database, JWKS.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, Header};
use mdcreator_domain::identity::local::SigningKeyStore;
use mdcreator_domain::{Clock, Email};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::keys::{KeyMaterial, KeyRing, KeySnapshot, SigningKeyError};
use crate::verifier::LocalTokenVerifier;

/// The `client_id` claim of session tokens unless configured otherwise.
pub const DEFAULT_CLIENT_ID: &str = "mdcreator";

/// The `token_use` claim of access tokens.
pub(crate) const ACCESS_TOKEN_USE: &str = "access";

/// What the issuer puts into (and the verifier demands of) every token.
#[derive(Clone)]
pub struct TokenSettings {
    /// The `iss` claim, e.g. the server's public URL.
    pub issuer: String,
    /// The `client_id` claim (default [`DEFAULT_CLIENT_ID`]).
    pub client_id: String,
    /// A P-256 private key as PKCS#8 PEM (`MDCREATOR_SIGNING_KEY`). When set it is used as-is
    /// and never stored; otherwise keys live in the [`SigningKeyStore`].
    pub signing_key_pem: Option<SecretString>,
}

impl TokenSettings {
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            signing_key_pem: None,
        }
    }
}

impl fmt::Debug for TokenSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "signing_key_pem",
                &self.signing_key_pem.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Signs access tokens and publishes the public keys.
pub struct TokenIssuer {
    keys: Arc<KeyRing>,
    issuer: String,
    client_id: String,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("kid", &self.signing_kid())
            .finish()
    }
}

/// Claims of an access token (issued here, checked by [`LocalTokenVerifier`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    pub sub: String,
    pub iss: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_use: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Absent on session tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl TokenIssuer {
    /// The configured key if `settings` has one; otherwise every key in `store`, signing with the
    /// newest non-retired one, or a new key stored for every instance on this database.
    #[tracing::instrument(skip_all, fields(issuer = %settings.issuer))]
    pub async fn load_or_create(
        store: Arc<dyn SigningKeyStore>,
        settings: TokenSettings,
    ) -> Result<Self, SigningKeyError> {
        if let Some(pem) = &settings.signing_key_pem {
            return Self::from_pem(pem.expose_secret(), settings.clone());
        }
        let snapshot = match KeySnapshot::from_stored(&store.signing_keys().await?) {
            Some(snapshot) => snapshot,
            None => {
                let (material, stored) = KeyMaterial::generate(Utc::now())?;
                if store.insert_signing_key(&stored).await? {
                    tracing::info!(kid = %material.kid, "created a token signing key");
                } else {
                    tracing::info!("another instance created the signing key first");
                }
                // Re-read in both cases, so instances that raced pick the same (newest) key.
                KeySnapshot::from_stored(&store.signing_keys().await?)
                    .ok_or(SigningKeyError::NoUsableKey)?
            }
        };
        tracing::info!(kid = %snapshot.signing.kid, "token signing key loaded");
        Ok(Self::with_ring(
            KeyRing::new(Some(store), snapshot),
            settings,
        ))
    }

    /// Uses the given PKCS#8 PEM key only (no store, nothing persisted).
    pub fn from_pem(pem: &str, settings: TokenSettings) -> Result<Self, SigningKeyError> {
        let material = KeyMaterial::from_pem(pem, Utc::now())?;
        tracing::info!(kid = %material.kid, "using the configured token signing key");
        Ok(Self::with_ring(
            KeyRing::new(None, KeySnapshot::single(material)),
            settings,
        ))
    }

    fn with_ring(ring: KeyRing, settings: TokenSettings) -> Self {
        Self {
            keys: Arc::new(ring),
            issuer: settings.issuer,
            client_id: settings.client_id,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The `kid` new tokens are signed with.
    pub fn signing_kid(&self) -> String {
        self.keys.snapshot().signing.kid.clone()
    }

    /// `{"keys":[{"kty":"EC","crv":"P-256","x":…,"y":…,"kid":…,"alg":"ES256","use":"sig"}]}`:
    /// every key that may have signed a live token, newest first.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.snapshot().jwks()
    }

    /// A verifier that accepts exactly what this issuer signs (sharing its keys).
    pub fn verifier(&self, clock: Arc<dyn Clock>) -> LocalTokenVerifier {
        LocalTokenVerifier::new(
            self.keys.clone(),
            self.issuer.clone(),
            self.client_id.clone(),
            clock,
        )
    }

    /// A signed access token for `subject`, valid from `now` for `ttl`.
    pub fn issue_access_token(
        &self,
        subject: &str,
        email: &Email,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<String, SigningKeyError> {
        let ttl = TimeDelta::from_std(ttl).unwrap_or(TimeDelta::MAX);
        let iat = now.timestamp();
        let claims = AccessClaims {
            sub: subject.to_owned(),
            iss: self.issuer.clone(),
            exp: iat.saturating_add(ttl.num_seconds()),
            nbf: Some(iat),
            iat: Some(iat),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            token_use: Some(ACCESS_TOKEN_USE.to_owned()),
            client_id: Some(self.client_id.clone()),
            email: Some(email.as_str().to_owned()),
            scope: None,
        };
        self.sign(&claims)
    }

    pub(crate) fn sign(&self, claims: &AccessClaims) -> Result<String, SigningKeyError> {
        let key = self.keys.snapshot().signing.clone();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(SigningKeyError::Signing)
    }
}
