//! Verification of Cognito access tokens: RS256 only, key by `kid` from the pool's JWKS, every
//! claim checked and each failure mapped to its precise [`TokenError`] (as the built-in
//! verifier does).

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use mdcreator_domain::identity::{TokenError, TokenVerifier, VerifiedToken};
use mdcreator_domain::{Clock, Scope};
use serde::Deserialize;

use crate::jwks::JwksCache;
use crate::settings::{CognitoConfigError, CognitoSettings};

/// The only algorithm Cognito signs with, and the only one accepted.
pub const ALGORITHM: &str = "RS256";

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 5;

/// The `token_use` of access tokens (ID tokens say `id`).
const ACCESS_TOKEN_USE: &str = "access";

/// Longer bearer strings are refused before any parsing.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Verifies the user pool's access tokens locally. The network is touched only to fetch the
/// JWKS: on the first token, and when a token names an unknown `kid` (at most once a minute).
pub struct CognitoTokenVerifier {
    jwks: JwksCache,
    issuer: String,
    client_id: String,
    clock: Arc<dyn Clock>,
    validation: Validation,
}

impl fmt::Debug for CognitoTokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CognitoTokenVerifier")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The claims of an access token that are checked (Cognito's carry more).
#[derive(Debug, Deserialize)]
struct AccessClaims {
    sub: String,
    iss: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    token_use: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
}

impl CognitoTokenVerifier {
    /// A verifier for the pool and app client of `settings` (issuer and JWKS URL derived unless
    /// set). Fetches nothing yet.
    pub fn new(
        settings: &CognitoSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CognitoConfigError> {
        settings.validate()?;
        let jwks = JwksCache::new(settings.jwks_url()?, settings.operation_timeout)
            .map_err(CognitoConfigError::HttpClient)?;
        // jsonwebtoken checks the signature only; the claims are checked below against our
        // clock, so that each failure gets its own error.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        Ok(Self {
            jwks,
            issuer: settings.issuer()?,
            client_id: settings.client_id.clone(),
            clock,
            validation,
        })
    }

    /// How many times the JWKS was fetched (attempts, failed ones included).
    pub fn jwks_fetches(&self) -> usize {
        self.jwks.fetches()
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

#[async_trait::async_trait]
impl TokenVerifier for CognitoTokenVerifier {
    async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let kid = checked_header(token)?;
        let key = self.jwks.key(&kid, self.clock.now()).await?;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key, &self.validation)
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
        // Before `client_id`: an ID token carries `aud` instead, and is refused for what it is.
        if claims.token_use.as_deref() != Some(ACCESS_TOKEN_USE) {
            return Err(TokenError::WrongTokenUse);
        }
        if claims.client_id.as_deref() != Some(self.client_id.as_str()) {
            return Err(TokenError::WrongClient);
        }
        if claims.sub.is_empty() {
            return Err(TokenError::Malformed);
        }
        let expires_at =
            DateTime::<Utc>::from_timestamp(claims.exp, 0).ok_or(TokenError::Malformed)?;
        Ok(VerifiedToken {
            subject: claims.sub,
            // Cognito access tokens carry no e-mail; the profile is asked when provisioning.
            email: None,
            scope: Scope::Session,
            expires_at,
        })
    }
}

/// The `kid` of a well-formed compact JWS whose header names RS256. Parsed by hand (not with
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
        ErrorKind::InvalidSignature | ErrorKind::InvalidRsaKey(_) => TokenError::BadSignature,
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
