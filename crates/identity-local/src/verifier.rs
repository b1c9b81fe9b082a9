//! Verification of the server's own access tokens: ES256 only, key by `kid`, every claim checked
//! and each failure mapped to its precise [`TokenError`].

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use mdcreator_domain::identity::{TokenError, TokenVerifier, VerifiedToken};
use mdcreator_domain::{Clock, Email, Scope};

use crate::issuer::{ACCESS_TOKEN_USE, AccessClaims};
use crate::keys::{ALGORITHM, KeyMaterial, KeyRing};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 5;

/// Longer bearer strings are refused before any parsing.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Verifies access tokens signed by a [`crate::TokenIssuer`]; build it with
/// [`crate::TokenIssuer::verifier`]. No database access unless a token names an unknown `kid`
/// (then the keys are reloaded, at most once a minute).
pub struct LocalTokenVerifier {
    keys: Arc<KeyRing>,
    issuer: String,
    client_id: String,
    clock: Arc<dyn Clock>,
    validation: Validation,
}

impl fmt::Debug for LocalTokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTokenVerifier")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl LocalTokenVerifier {
    pub(crate) fn new(
        keys: Arc<KeyRing>,
        issuer: String,
        client_id: String,
        clock: Arc<dyn Clock>,
    ) -> Self {
        // jsonwebtoken checks the signature only; the claims are checked below against our
        // clock, so that each failure gets its own error.
        let mut validation = Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        Self {
            keys,
            issuer,
            client_id,
            clock,
            validation,
        }
    }

    async fn key_for(&self, kid: &str) -> Result<Arc<KeyMaterial>, TokenError> {
        if let Some(key) = self.keys.snapshot().by_kid.get(kid) {
            return Ok(key.clone());
        }
        let reloaded = self
            .keys
            .reload_if_due(self.clock.now())
            .await
            .map_err(|e| TokenError::Unavailable(e.into()))?;
        if reloaded {
            tracing::debug!(kid, "reloaded the signing keys for an unknown kid");
            if let Some(key) = self.keys.snapshot().by_kid.get(kid) {
                return Ok(key.clone());
            }
        }
        Err(TokenError::UnknownKey)
    }
}

#[async_trait::async_trait]
impl TokenVerifier for LocalTokenVerifier {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let kid = checked_header(token)?;
        let key = self.key_for(&kid).await?;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &self.validation)
            .map_err(|e| decode_error(e.kind()))?
            .claims;

        let now = self.clock.now().timestamp();
        if claims.exp.saturating_add(LEEWAY_SECS) < now {
            return Err(TokenError::Expired);
        }
        if matches!(claims.nbf, Some(nbf) if nbf.saturating_sub(LEEWAY_SECS) > now) {
            return Err(TokenError::NotYetValid);
        }
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if claims.client_id.as_deref() != Some(self.client_id.as_str()) {
            return Err(TokenError::WrongClient);
        }
        if claims.token_use.as_deref() != Some(ACCESS_TOKEN_USE) {
            return Err(TokenError::WrongTokenUse);
        }
        if claims.sub.is_empty() {
            return Err(TokenError::Malformed);
        }
        let expires_at =
            DateTime::<Utc>::from_timestamp(claims.exp, 0).ok_or(TokenError::Malformed)?;
        Ok(VerifiedToken {
            subject: claims.sub,
            email: claims.email.and_then(|e| Email::parse(&e).ok()),
            scope: Scope::Session,
            expires_at,
        })
    }
}

/// The `kid` of a well-formed compact JWS whose header names ES256. Parsed by hand (not with
/// `jsonwebtoken::decode_header`) so that `alg: none` and other algorithms are told apart from
/// garbage. The payload is not parsed before its signature is checked.
fn checked_header(token: &str) -> Result<String, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let is_base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !is_base64url(payload) || !is_base64url(signature) {
        return Err(TokenError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    let header = header.as_object().ok_or(TokenError::Malformed)?;
    match header.get("alg") {
        Some(serde_json::Value::String(alg)) if alg == ALGORITHM => {}
        Some(_) => return Err(TokenError::UnsupportedAlgorithm),
        None => return Err(TokenError::Malformed),
    }
    match header.get("kid") {
        Some(serde_json::Value::String(kid)) => Ok(kid.clone()),
        _ => Err(TokenError::UnknownKey),
    }
}

fn decode_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => TokenError::UnsupportedAlgorithm,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        _ => TokenError::Malformed,
    }
}
