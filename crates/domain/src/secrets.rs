//! Random bearer secrets (invitation tokens, refresh tokens, API tokens) and how they are stored:
//! only a SHA-256 of a secret ever reaches the database.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// 256 random bits, URL-safe, behind a recognisable prefix (`mdi_` invitations, `mdr_` refresh
/// tokens, `mdp_` personal API tokens) so secret scanners and log readers can spot them.
pub fn random_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a secret: lower-case hex SHA-256.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_unique_and_hashed() {
        let a = random_secret("mdi_");
        let b = random_secret("mdi_");
        assert!(a.starts_with("mdi_") && a.len() == 4 + 43);
        assert_ne!(a, b);
        assert_eq!(secret_hash(&a), secret_hash(&a));
        assert_ne!(secret_hash(&a), secret_hash(&b));
        assert_eq!(secret_hash(&a).len(), 64);
    }
}
