//! The user pool's public keys: fetched from its JWKS URL, cached by `kid`, refetched when a
//! token names an unknown `kid` (at most once a minute), kept when a fetch fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::DecodingKey;
use mdcreator_domain::identity::TokenError;
use serde::Deserialize;

use crate::verifier::ALGORITHM;

/// How often an unknown `kid` may trigger a fetch once keys were loaded.
pub const REFETCH_INTERVAL: TimeDelta = TimeDelta::seconds(60);

/// How often a fetch may be retried while no key was ever loaded (startup during an outage):
/// short, because until then every token is refused.
pub const EMPTY_RETRY_INTERVAL: TimeDelta = TimeDelta::seconds(5);

/// A JWKS larger than this is refused (Cognito's is about 1 KiB).
const MAX_JWKS_BYTES: usize = 256 * 1024;

type Keys = HashMap<String, Arc<DecodingKey>>;

pub(crate) struct JwksCache {
    url: String,
    http: reqwest::Client,
    keys: RwLock<Arc<Keys>>,
    fetch: tokio::sync::Mutex<FetchState>,
    fetches: AtomicUsize,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<DateTime<Utc>>,
    loaded: bool,
}

impl JwksCache {
    pub fn new(url: String, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .timeout(timeout)
            // The URL is configuration; nothing else gets to choose where keys come from.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            url,
            http,
            keys: RwLock::new(Arc::new(Keys::new())),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
            fetches: AtomicUsize::new(0),
        })
    }

    /// How many fetches were attempted (successful or not).
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// The key for `kid`, fetching the JWKS when it is unknown and a fetch is due.
    pub async fn key(&self, kid: &str, now: DateTime<Utc>) -> Result<Arc<DecodingKey>, TokenError> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let mut state = self.fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let interval = if state.loaded {
            REFETCH_INTERVAL
        } else {
            EMPTY_RETRY_INTERVAL
        };
        if matches!(state.last_attempt, Some(at) if now - at < interval) {
            return Err(if state.loaded {
                TokenError::UnknownKey
            } else {
                TokenError::Unavailable(anyhow::anyhow!("the user pool's keys are not loaded yet"))
            });
        }
        // Counted before the fetch, so that a failing endpoint is not hammered either.
        state.last_attempt = Some(now);
        match self.download().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "fetched the user pool's signing keys");
                self.replace(keys);
                state.loaded = true;
                self.cached(kid).ok_or(TokenError::UnknownKey)
            }
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "fetching the user pool's JWKS failed; keeping the known keys"
                );
                Err(TokenError::Unavailable(e))
            }
        }
    }

    fn cached(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        // A poisoned lock still holds a complete map (it is only ever replaced whole).
        let keys = match self.keys.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        keys.get(kid).cloned()
    }

    fn replace(&self, keys: Keys) {
        let keys = Arc::new(keys);
        match self.keys.write() {
            Ok(mut guard) => *guard = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
    }

    async fn download(&self) -> anyhow::Result<Keys> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let mut response = self
            .http
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .context("requesting the JWKS")?
            .error_for_status()
            .context("the JWKS endpoint refused")?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            anyhow::bail!("the JWKS is larger than {MAX_JWKS_BYTES} bytes");
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.context("reading the JWKS")? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                anyhow::bail!("the JWKS is larger than {MAX_JWKS_BYTES} bytes");
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// The RS256 signing keys of a JWKS document. An unusable document (or one without a single
/// usable key) is an error, so that the keys known before stay in place.
pub(crate) fn parse_jwks(body: &[u8]) -> anyhow::Result<Keys> {
    let jwks: Jwks = serde_json::from_slice(body).context("the JWKS is not a JSON key set")?;
    let mut keys = Keys::new();
    for jwk in jwks.keys {
        let usable = jwk.kty.as_deref() == Some("RSA")
            && jwk.alg.as_deref().is_none_or(|a| a == ALGORITHM)
            && jwk.usage.as_deref().is_none_or(|u| u == "sig");
        let (Some(kid), Some(n), Some(e), true) = (jwk.kid, jwk.n, jwk.e, usable) else {
            continue;
        };
        match DecodingKey::from_rsa_components(&n, &e) {
            Ok(key) => {
                keys.insert(kid, Arc::new(key));
            }
            Err(e) => tracing::warn!(kid, error = %e, "skipping an unreadable key in the JWKS"),
        }
    }
    if keys.is_empty() {
        anyhow::bail!("the JWKS holds no RS256 signing key");
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rsa_signing_keys_are_taken() {
        let body = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "a", "alg": "RS256", "use": "sig", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "b", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "c", "alg": "RS512", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "d", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "e", "crv": "P-256", "x": "AQAB", "y": "AQAB"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "g", "n": "not base64!", "e": "AQAB"},
        ]});
        let keys = parse_jwks(&serde_json::to_vec(&body).unwrap()).unwrap();
        let mut kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        kids.sort();
        assert_eq!(kids, ["a", "b"]);
    }

    #[test]
    fn documents_without_usable_keys_are_errors() {
        for body in [
            &b"not json"[..],
            br#"{"keys": []}"#,
            br#"{"keys": [{"kty": "EC", "kid": "x"}]}"#,
            br#"{"nokeys": 1}"#,
        ] {
            assert!(
                parse_jwks(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
