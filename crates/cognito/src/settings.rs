//! What the Cognito adapters need to know: the pool, the app client, where to reach them.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

/// Default bound on one Cognito call, retries included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// The user pool and app client the server signs users in with.
#[derive(Clone)]
pub struct CognitoSettings {
    /// e.g. `eu-west-1_AbCdEf123` (emulators use longer ids; the length is not checked).
    pub user_pool_id: String,
    /// The app client; access tokens MUST carry it as `client_id`.
    pub client_id: String,
    /// Set when the app client has a secret: every call then carries a `SECRET_HASH`.
    pub client_secret: Option<SecretString>,
    /// `AWS_REGION`; default: the region prefix of the pool id (`eu-west-1` above).
    pub region: Option<String>,
    /// Another Cognito endpoint (an emulator); default: AWS's.
    pub endpoint_url: Option<String>,
    /// The `iss` of access tokens; default `https://cognito-idp.<region>.amazonaws.com/<pool>`.
    pub issuer: Option<String>,
    /// Where the pool's public keys are; default `<issuer>/.well-known/jwks.json`.
    pub jwks_url: Option<String>,
    /// Bound on one call to Cognito (and on one JWKS fetch), retries included.
    pub operation_timeout: Duration,
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum CognitoConfigError {
    #[error("the Cognito user pool id is empty")]
    MissingUserPool,
    #[error("the Cognito app client id is empty")]
    MissingClient,
    #[error("no AWS region: set AWS_REGION (the pool id {0:?} does not start with one)")]
    MissingRegion(String),
    #[error("the JWKS client cannot be built")]
    HttpClient(#[source] reqwest::Error),
}

impl CognitoSettings {
    pub fn new(user_pool_id: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            user_pool_id: user_pool_id.into(),
            client_id: client_id.into(),
            client_secret: None,
            region: None,
            endpoint_url: None,
            issuer: None,
            jwks_url: None,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }

    /// The configured region, else the pool id's prefix (`<region>_<id>`).
    pub fn region(&self) -> Result<String, CognitoConfigError> {
        if let Some(region) = non_empty(&self.region) {
            return Ok(region.to_owned());
        }
        match self.user_pool_id.split_once('_') {
            Some((region, _)) if looks_like_region(region) => Ok(region.to_owned()),
            _ => Err(CognitoConfigError::MissingRegion(self.user_pool_id.clone())),
        }
    }

    /// The `iss` claim access tokens must carry.
    pub fn issuer(&self) -> Result<String, CognitoConfigError> {
        if let Some(issuer) = non_empty(&self.issuer) {
            return Ok(issuer.trim_end_matches('/').to_owned());
        }
        Ok(format!(
            "https://cognito-idp.{}.amazonaws.com/{}",
            self.region()?,
            self.user_pool_id
        ))
    }

    /// Where the pool publishes its signing keys.
    pub fn jwks_url(&self) -> Result<String, CognitoConfigError> {
        if let Some(url) = non_empty(&self.jwks_url) {
            return Ok(url.to_owned());
        }
        Ok(format!("{}/.well-known/jwks.json", self.issuer()?))
    }

    pub(crate) fn validate(&self) -> Result<(), CognitoConfigError> {
        if self.user_pool_id.trim().is_empty() {
            return Err(CognitoConfigError::MissingUserPool);
        }
        if self.client_id.trim().is_empty() {
            return Err(CognitoConfigError::MissingClient);
        }
        Ok(())
    }
}

impl fmt::Debug for CognitoSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CognitoSettings")
            .field("user_pool_id", &self.user_pool_id)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("issuer", &self.issuer)
            .field("jwks_url", &self.jwks_url)
            .field("operation_timeout", &self.operation_timeout)
            .finish()
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`: lowercase words and a number, joined by `-`.
fn looks_like_region(s: &str) -> bool {
    s.contains('-')
        && s.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_issuer_and_jwks_are_derived_from_the_pool() {
        let s = CognitoSettings::new("eu-west-1_AbC123", "client");
        assert_eq!(s.region().unwrap(), "eu-west-1");
        assert_eq!(
            s.issuer().unwrap(),
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
        );
        assert_eq!(
            s.jwks_url().unwrap(),
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/.well-known/jwks.json"
        );
    }

    #[test]
    fn explicit_settings_win() {
        let s = CognitoSettings {
            region: Some("us-east-1".into()),
            issuer: Some("http://localhost:5000/pool/".into()),
            jwks_url: Some("http://localhost:5000/pool/.well-known/jwks.json".into()),
            ..CognitoSettings::new("eu-west-1_AbC123", "client")
        };
        assert_eq!(s.region().unwrap(), "us-east-1");
        assert_eq!(s.issuer().unwrap(), "http://localhost:5000/pool");
        assert_eq!(
            s.jwks_url().unwrap(),
            "http://localhost:5000/pool/.well-known/jwks.json"
        );
    }

    #[test]
    fn a_pool_without_a_region_needs_one() {
        let s = CognitoSettings::new("AbC123", "client");
        assert!(matches!(
            s.region(),
            Err(CognitoConfigError::MissingRegion(_))
        ));
        let s = CognitoSettings {
            region: Some("  ".into()),
            ..CognitoSettings::new("Ab_C123", "client")
        };
        assert!(matches!(
            s.issuer(),
            Err(CognitoConfigError::MissingRegion(_))
        ));
    }

    #[test]
    fn debug_hides_the_client_secret() {
        let s = CognitoSettings {
            client_secret: Some("hunter2-secret".into()),
            ..CognitoSettings::new("eu-west-1_AbC123", "client")
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }
}
