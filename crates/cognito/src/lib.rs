//! AWS Cognito: the production identity provider and its access-token verifier.
//!
//! - [`CognitoIdentity`] implements the domain's `IdentityProvider` port with
//!   `aws-sdk-cognitoidentityprovider`: sign-up, confirmation, `USER_PASSWORD_AUTH` login,
//!   `REFRESH_TOKEN_AUTH` refresh (not rotating), global sign-out, password reset, profile.
//!   Cognito's errors become the same `IdentityError`s as the built-in accounts'.
//! - [`CognitoTokenVerifier`] implements the `TokenVerifier` port: RS256 access tokens checked
//!   locally against the pool's JWKS (cached, refetched for an unknown `kid` at most once a
//!   minute, kept when Cognito is unreachable), with the same precise `TokenError`s as the
//!   built-in verifier.
//! - [`CognitoSettings`] names the pool and app client; region, issuer and JWKS URL are derived
//!   from the pool id unless set (emulators need them set).

mod errors;
mod identity;
mod jwks;
mod settings;
mod verifier;

pub use errors::RETRY_AFTER_SECS;
pub use identity::{CognitoIdentity, secret_hash};
pub use jwks::{EMPTY_RETRY_INTERVAL, REFETCH_INTERVAL};
pub use settings::{CognitoConfigError, CognitoSettings, DEFAULT_OPERATION_TIMEOUT};
pub use verifier::{ALGORITHM, CognitoTokenVerifier, LEEWAY_SECS};
