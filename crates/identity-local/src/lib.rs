//! Built-in accounts, the embedded default identity provider (no Cognito needed).
//!
//! - [`LocalIdentity`] implements the domain's `IdentityProvider` port: argon2id password hashes,
//!   one-time codes delivered by a [`CodeSender`] (the log by default), rotating refresh tokens
//!   stored hashed with reuse detection.
//! - [`TokenIssuer`] signs ES256 access tokens with keys shared by every instance on one database
//!   (or one configured key) and publishes them as a JWKS.
//! - [`LocalTokenVerifier`] implements the `TokenVerifier` port for those tokens, with the same
//!   checks as the Cognito verifier (algorithm, `kid`, signature, `exp`/`nbf`, `iss`,
//!   `client_id`, `token_use`).

mod codes;
mod identity;
mod issuer;
mod keys;
mod password;
mod verifier;

pub use codes::{CodeSender, LogCodeSender, MAX_CODE_ATTEMPTS};
pub use identity::{LocalIdentity, LocalIdentitySettings, REFRESH_TOKEN_PREFIX};
pub use issuer::{DEFAULT_CLIENT_ID, TokenIssuer, TokenSettings};
pub use keys::{ALGORITHM, SigningKeyError};
pub use verifier::{LEEWAY_SECS, LocalTokenVerifier};

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;
