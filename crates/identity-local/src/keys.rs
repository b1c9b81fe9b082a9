//! ES256 signing keys: generation, parsing (stored PKCS#8 DER or a configured PEM), the JWK form,
//! and the key ring that the issuer and the verifiers share.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey};
use mdcreator_domain::StoreError;
use mdcreator_domain::identity::local::{SigningKey, SigningKeyStore};
use rand::RngCore as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The only algorithm this crate signs with and accepts.
pub const ALGORITHM: &str = "ES256";

/// How often an unknown `kid` may trigger a reload of the keys from the store.
pub(crate) const KEY_RELOAD_INTERVAL: TimeDelta = TimeDelta::seconds(60);

/// Why the signing keys could not be loaded, created or used.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("the configured signing key is not a P-256 PKCS#8 PEM private key: {0}")]
    InvalidConfiguredKey(&'static str),
    #[error("no usable ES256 signing key in the store, even after creating one")]
    NoUsableKey,
    #[error("key generation failed")]
    Generation,
    #[error("signing failed")]
    Signing(#[source] jsonwebtoken::errors::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One P-256 key pair, parsed once, ready to sign and verify.
pub(crate) struct KeyMaterial {
    pub kid: String,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// The public JWK (with `kid`, `alg`, `use`).
    pub jwk: Value,
    pub created_at: DateTime<Utc>,
    pub retired: bool,
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// A fresh key pair with a random `kid`, plus its stored form.
    pub fn generate(now: DateTime<Utc>) -> Result<(Self, SigningKey), SigningKeyError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| SigningKeyError::Generation)?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| SigningKeyError::Generation)?
            .as_ref()
            .to_vec();
        let mut kid = [0u8; 16];
        rand::rng().fill_bytes(&mut kid);
        let material = Self::from_pair(URL_SAFE_NO_PAD.encode(kid), &pair, &pkcs8, now, false)
            .ok_or(SigningKeyError::Generation)?;
        let stored = SigningKey {
            kid: material.kid.clone(),
            algorithm: ALGORITHM.to_owned(),
            private_key: pkcs8,
            public_jwk: material.jwk.clone(),
            created_at: now,
            retired_at: None,
        };
        Ok((material, stored))
    }

    /// A stored key; `None` when it is not a usable ES256 key (it is then skipped).
    pub fn from_stored(key: &SigningKey) -> Option<Self> {
        if key.algorithm != ALGORITHM {
            return None;
        }
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.private_key).ok()?;
        Self::from_pair(
            key.kid.clone(),
            &pair,
            &key.private_key,
            key.created_at,
            key.retired_at.is_some(),
        )
    }

    /// A key given by configuration (`-----BEGIN PRIVATE KEY-----`, PKCS#8; SEC1
    /// `EC PRIVATE KEY` is accepted too). Its `kid` is the RFC 7638 thumbprint, so every
    /// instance configured with the same key publishes the same `kid`.
    pub fn from_pem(pem: &str, now: DateTime<Utc>) -> Result<Self, SigningKeyError> {
        let der = pem_body(pem).ok_or(SigningKeyError::InvalidConfiguredKey("not a PEM block"))?;
        let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .map_err(|_| SigningKeyError::InvalidConfiguredKey("not a P-256 private key"))?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| SigningKeyError::InvalidConfiguredKey("cannot re-encode as PKCS#8"))?;
        let (x, y) = coordinates(&pair).ok_or(SigningKeyError::InvalidConfiguredKey(
            "unexpected public key form",
        ))?;
        let kid = thumbprint(&x, &y);
        Self::from_pair(kid, &pair, pkcs8.as_ref(), now, false).ok_or(
            SigningKeyError::InvalidConfiguredKey("unexpected public key form"),
        )
    }

    fn from_pair(
        kid: String,
        pair: &EcdsaKeyPair,
        pkcs8: &[u8],
        created_at: DateTime<Utc>,
        retired: bool,
    ) -> Option<Self> {
        let (x, y) = coordinates(pair)?;
        let decoding = DecodingKey::from_ec_components(&x, &y).ok()?;
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": x,
            "y": y,
            "kid": kid,
            "alg": ALGORITHM,
            "use": "sig",
        });
        Some(Self {
            kid,
            encoding: EncodingKey::from_ec_der(pkcs8),
            decoding,
            jwk,
            created_at,
            retired,
        })
    }
}

/// The base64url (unpadded) affine coordinates of the public key.
fn coordinates(pair: &EcdsaKeyPair) -> Option<(String, String)> {
    // Uncompressed SEC1 point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
    let point = pair.public_key().as_ref();
    if point.len() != 65 || point[0] != 0x04 {
        return None;
    }
    Some((
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..65]),
    ))
}

/// RFC 7638 JWK thumbprint (members in lexicographic order, no whitespace).
fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The DER inside the first PEM block (any label).
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let mut lines = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "));
    lines.next()?;
    let body: String = lines
        .take_while(|l| !l.starts_with("-----END "))
        .collect::<Vec<_>>()
        .concat();
    STANDARD.decode(body).ok()
}

/// The keys known at one moment: the one that signs, and every one that verifies.
#[derive(Debug)]
pub(crate) struct KeySnapshot {
    pub signing: Arc<KeyMaterial>,
    pub by_kid: HashMap<String, Arc<KeyMaterial>>,
    /// Newest first, for the JWKS.
    ordered: Vec<Arc<KeyMaterial>>,
}

impl KeySnapshot {
    pub fn single(key: KeyMaterial) -> Self {
        let key = Arc::new(key);
        Self {
            signing: key.clone(),
            by_kid: HashMap::from([(key.kid.clone(), key.clone())]),
            ordered: vec![key],
        }
    }

    /// Every usable stored key; signs with the newest non-retired one. `None` when there is no
    /// key to sign with.
    pub fn from_stored(keys: &[SigningKey]) -> Option<Self> {
        let mut ordered: Vec<Arc<KeyMaterial>> = Vec::with_capacity(keys.len());
        for key in keys {
            match KeyMaterial::from_stored(key) {
                Some(material) => ordered.push(Arc::new(material)),
                None => tracing::warn!(kid = %key.kid, algorithm = %key.algorithm,
                    "skipping a stored signing key that is not a usable ES256 key"),
            }
        }
        // Newest first; ties broken by kid so that every instance picks the same key.
        ordered.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| b.kid.cmp(&a.kid))
        });
        let signing = ordered.iter().find(|k| !k.retired)?.clone();
        let by_kid = ordered.iter().map(|k| (k.kid.clone(), k.clone())).collect();
        Some(Self {
            signing,
            by_kid,
            ordered,
        })
    }

    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self.ordered.iter().map(|k| k.jwk.clone()).collect();
        json!({ "keys": keys })
    }
}

/// The keys shared by a [`crate::TokenIssuer`] and its verifiers: read without touching the
/// database; reloaded from the store (if any) when a token names an unknown `kid`.
pub(crate) struct KeyRing {
    store: Option<Arc<dyn SigningKeyStore>>,
    current: RwLock<Arc<KeySnapshot>>,
    /// When the keys were last reloaded because of an unknown `kid` (`None`: never).
    last_reload: tokio::sync::Mutex<Option<DateTime<Utc>>>,
}

impl KeyRing {
    pub fn new(store: Option<Arc<dyn SigningKeyStore>>, snapshot: KeySnapshot) -> Self {
        Self {
            store,
            current: RwLock::new(Arc::new(snapshot)),
            last_reload: tokio::sync::Mutex::new(None),
        }
    }

    pub fn snapshot(&self) -> Arc<KeySnapshot> {
        // A poisoned lock still holds a complete `Arc` (it is only ever replaced whole).
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reloads the keys from the store unless that happened less than a minute ago (or there is
    /// no store). Returns whether a reload happened.
    pub async fn reload_if_due(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let Some(store) = &self.store else {
            return Ok(false);
        };
        let mut last = self.last_reload.lock().await;
        if matches!(*last, Some(at) if now - at < KEY_RELOAD_INTERVAL) {
            return Ok(false);
        }
        // Counted before the read, so a failing store is not hammered either.
        *last = Some(now);
        let keys = store.signing_keys().await?;
        match KeySnapshot::from_stored(&keys) {
            Some(snapshot) => self.replace(snapshot),
            None => {
                // Every stored key is retired or unusable: keep signing with the current one
                // rather than failing every login, but learn the verification keys.
                let current = self.snapshot();
                let mut ordered: Vec<Arc<KeyMaterial>> = keys
                    .iter()
                    .filter_map(KeyMaterial::from_stored)
                    .map(Arc::new)
                    .collect();
                if !ordered.iter().any(|k| k.kid == current.signing.kid) {
                    ordered.push(current.signing.clone());
                }
                let by_kid = ordered.iter().map(|k| (k.kid.clone(), k.clone())).collect();
                self.replace(KeySnapshot {
                    signing: current.signing.clone(),
                    by_kid,
                    ordered,
                });
            }
        }
        Ok(true)
    }

    fn replace(&self, snapshot: KeySnapshot) {
        let snapshot = Arc::new(snapshot);
        match self.current.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }
}
