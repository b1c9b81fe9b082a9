//! argon2id password hashes (the crate's defaults: argon2id v19, m = 19 MiB, t = 2, p = 1), computed
//! off the async runtime.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use mdcreator_domain::identity::IdentityError;
use rand::RngCore as _;

/// A PHC string for a new password.
pub(crate) async fn hash_password(password: &str) -> Result<String, IdentityError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|e| IdentityError::Unexpected(e.into()))?
}

/// Whether `password` matches `phc`. With `phc = None` (unknown account) a dummy hash is checked,
/// so that the answer takes as long as for a real account, and `false` is returned.
pub(crate) async fn verify_password(
    password: &str,
    phc: Option<String>,
) -> Result<bool, IdentityError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify_blocking(&password, &phc),
        None => {
            let dummy = dummy_hash()?;
            verify_blocking(&password, dummy)?;
            Ok(false)
        }
    })
    .await
    .map_err(|e| IdentityError::Unexpected(e.into()))?
}

fn hash_blocking(password: &str) -> Result<String, IdentityError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(unexpected)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(unexpected)
}

fn verify_blocking(password: &str, phc: &str) -> Result<bool, IdentityError> {
    let hash = PasswordHash::new(phc).map_err(unexpected)?;
    match Argon2::default().verify_password(password.as_bytes(), &hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(unexpected(e)),
    }
}

/// Hashed once per process with the same parameters as real hashes.
fn dummy_hash() -> Result<&'static str, IdentityError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash);
    }
    let hash = hash_blocking("not the password of any account")?;
    Ok(DUMMY.get_or_init(|| hash))
}

fn unexpected(e: argon2::password_hash::Error) -> IdentityError {
    IdentityError::Unexpected(anyhow::anyhow!("argon2: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let phc = hash_password("correct horse").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(
            verify_password("correct horse", Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong horse", Some(phc)).await.unwrap());
        assert!(!verify_password("anything", None).await.unwrap());
    }
}
