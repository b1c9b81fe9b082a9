//! Authentication: the identity-provider and token-verifier ports, the ports of the built-in
//! accounts, and [`AuthService`], which turns a bearer token into a [`Caller`].

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::UserId;
use crate::access::{Caller, Scope};
use crate::api_tokens::{ApiTokenRepository, TOKEN_PREFIX};
use crate::ports::{Clock, RateLimited, RateLimiter, StoreError};
use crate::secrets::secret_hash;
use crate::users::{User, UserError, UserRepository, UserService};
use crate::values::{Email, Invalid};

/// Passwords: at least 8 and at most 256 characters (argon2 and Cognito's default policy both fit).
pub fn checked_password(field: &'static str, password: &str) -> Result<(), Invalid> {
    let n = password.chars().count();
    if n < 8 {
        return Err(Invalid::new(field, "must be at least 8 characters"));
    }
    if n > 256 {
        return Err(Invalid::new(field, "must be at most 256 characters"));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignUp {
    pub email: Email,
    pub password: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignUpOutcome {
    /// The provider's subject for the new account.
    pub subject: String,
    /// `true` when the account can log in at once; `false` when a confirmation code was sent.
    pub confirmed: bool,
}

/// What login and refresh return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub expires_in: u64,
}

/// The identity behind an access token, as far as the provider tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub subject: String,
    pub email: Email,
    pub display_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("an account with this e-mail already exists")]
    EmailTaken,
    #[error("wrong e-mail or password")]
    InvalidCredentials,
    #[error("the account is not confirmed yet")]
    NotConfirmed,
    #[error("the code is wrong")]
    CodeMismatch,
    #[error("the code has expired")]
    CodeExpired,
    #[error("the password does not meet the policy: {0}")]
    WeakPassword(String),
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidRefreshToken,
    #[error(transparent)]
    TooManyRequests(#[from] RateLimited),
    #[error("identity provider unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("unexpected identity provider error")]
    Unexpected(#[source] anyhow::Error),
}

impl From<StoreError> for IdentityError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(e) => IdentityError::Unavailable(e),
            StoreError::Unexpected(e) => IdentityError::Unexpected(e),
        }
    }
}

/// Accounts: AWS Cognito in production, built-in accounts by default.
///
/// Adapters MUST map their failures to the same [`IdentityError`] variants, so clients see one
/// behaviour whichever adapter runs. Unknown e-mails on `forgot_password` and `resend_code`
/// MUST succeed silently (no account enumeration).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait IdentityProvider: Send + Sync {
    async fn sign_up(&self, request: &SignUp) -> Result<SignUpOutcome, IdentityError>;
    async fn confirm(&self, email: &Email, code: &str) -> Result<(), IdentityError>;
    async fn resend_code(&self, email: &Email) -> Result<(), IdentityError>;
    async fn login(&self, email: &Email, password: &str) -> Result<TokenSet, IdentityError>;
    async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, IdentityError>;
    /// Revokes every refresh token of the account behind `access_token` (global sign-out).
    async fn logout(&self, access_token: &str) -> Result<(), IdentityError>;
    async fn forgot_password(&self, email: &Email) -> Result<(), IdentityError>;
    async fn reset_password(
        &self,
        email: &Email,
        code: &str,
        new_password: &str,
    ) -> Result<(), IdentityError>;
    /// The e-mail and name behind a valid access token (used to provision a user on first call).
    async fn profile(&self, access_token: &str) -> Result<Profile, IdentityError>;
}

/// A verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub subject: String,
    /// Present when the token carries it; otherwise [`IdentityProvider::profile`] is asked.
    pub email: Option<Email>,
    pub scope: Scope,
    pub expires_at: DateTime<Utc>,
}

/// Why a bearer token was refused; each maps to 401 with its own `code`.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is missing")]
    Missing,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    UnsupportedAlgorithm,
    #[error("the token's signing key is unknown")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token was issued to another client")]
    WrongClient,
    #[error("the token is not an access token")]
    WrongTokenUse,
    #[error("the token has been revoked")]
    Revoked,
    #[error("token keys unavailable")]
    Unavailable(#[source] anyhow::Error),
}

impl TokenError {
    /// The stable `code` of the 401 problem body.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Missing => "token_missing",
            TokenError::Malformed => "token_malformed",
            TokenError::UnsupportedAlgorithm => "token_algorithm_not_allowed",
            TokenError::UnknownKey => "token_key_unknown",
            TokenError::BadSignature => "token_signature_invalid",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::WrongIssuer => "token_issuer_invalid",
            TokenError::WrongClient => "token_client_invalid",
            TokenError::WrongTokenUse => "token_use_invalid",
            TokenError::Revoked => "token_revoked",
            TokenError::Unavailable(_) => "token_keys_unavailable",
        }
    }
}

/// Verifies bearer access tokens locally (no network call on the hot path).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait TokenVerifier: Send + Sync {
    /// MUST refuse anything but a valid access token of the configured issuer and client.
    async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError>;
}

/// Errors of the auth endpoints.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    User(#[from] UserError),
}

/// Login attempts per e-mail and per client address within a minute (SECURITY.md limits).
pub const LOGIN_ATTEMPTS_PER_MINUTE: u32 = 10;

/// The ports [`AuthService`] needs.
pub struct AuthPorts {
    pub identity: Arc<dyn IdentityProvider>,
    pub verifier: Arc<dyn TokenVerifier>,
    pub users: Arc<dyn UserRepository>,
    pub api_tokens: Arc<dyn ApiTokenRepository>,
    pub limiter: Arc<dyn RateLimiter>,
    pub clock: Arc<dyn Clock>,
}

pub struct AuthService {
    identity: Arc<dyn IdentityProvider>,
    verifier: Arc<dyn TokenVerifier>,
    users: Arc<dyn UserRepository>,
    api_tokens: Arc<dyn ApiTokenRepository>,
    user_service: Arc<UserService>,
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
}

impl AuthService {
    pub fn new(ports: AuthPorts, user_service: Arc<UserService>) -> Self {
        Self {
            identity: ports.identity,
            verifier: ports.verifier,
            users: ports.users,
            api_tokens: ports.api_tokens,
            user_service,
            limiter: ports.limiter,
            clock: ports.clock,
        }
    }

    #[tracing::instrument(skip_all)]
    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        display_name: &str,
    ) -> Result<SignUpOutcome, AuthError> {
        let email = Email::parse(email)?;
        checked_password("password", password)?;
        let display_name = crate::values::checked_name("display_name", display_name, 100)?;
        let request = SignUp {
            email: email.clone(),
            password: password.to_owned(),
            display_name: display_name.clone(),
        };
        let outcome = self.identity.sign_up(&request).await?;
        self.user_service
            .provision(&outcome.subject, &email, Some(&display_name))
            .await?;
        Ok(outcome)
    }

    pub async fn confirm(&self, email: &str, code: &str) -> Result<(), AuthError> {
        let email = Email::parse(email)?;
        let code = checked_code(code)?;
        Ok(self.identity.confirm(&email, code).await?)
    }

    pub async fn resend_code(&self, email: &str) -> Result<(), AuthError> {
        let email = Email::parse(email)?;
        Ok(self.identity.resend_code(&email).await?)
    }

    /// Logs in, limited per e-mail and per client address.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client_address: Option<&str>,
    ) -> Result<TokenSet, AuthError> {
        let email = Email::parse(email)?;
        if password.is_empty() || password.chars().count() > 256 {
            return Err(IdentityError::InvalidCredentials.into());
        }
        self.limiter
            .hit(
                &format!("login:email:{email}"),
                LOGIN_ATTEMPTS_PER_MINUTE,
                60,
            )
            .await
            .map_err(IdentityError::from)?;
        if let Some(addr) = client_address {
            self.limiter
                .hit(&format!("login:ip:{addr}"), LOGIN_ATTEMPTS_PER_MINUTE, 60)
                .await
                .map_err(IdentityError::from)?;
        }
        Ok(self.identity.login(&email, password).await?)
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, AuthError> {
        if refresh_token.is_empty() || refresh_token.len() > 8192 {
            return Err(IdentityError::InvalidRefreshToken.into());
        }
        Ok(self.identity.refresh(refresh_token).await?)
    }

    pub async fn logout(&self, access_token: &str) -> Result<(), AuthError> {
        Ok(self.identity.logout(access_token).await?)
    }

    pub async fn forgot_password(&self, email: &str) -> Result<(), AuthError> {
        let email = Email::parse(email)?;
        self.limiter
            .hit(&format!("forgot:{email}"), 5, 3600)
            .await
            .map_err(IdentityError::from)?;
        Ok(self.identity.forgot_password(&email).await?)
    }

    pub async fn reset_password(
        &self,
        email: &str,
        code: &str,
        new_password: &str,
    ) -> Result<(), AuthError> {
        let email = Email::parse(email)?;
        let code = checked_code(code)?;
        checked_password("new_password", new_password)?;
        Ok(self
            .identity
            .reset_password(&email, code, new_password)
            .await?)
    }

    /// Turns a bearer access token (or personal API token) into the calling user, provisioning
    /// the user on first sight.
    #[tracing::instrument(skip_all)]
    pub async fn authenticate(&self, bearer: &str) -> Result<(Caller, User), AuthError> {
        if bearer.starts_with(TOKEN_PREFIX) {
            return self.authenticate_api_token(bearer).await;
        }
        let token = self.verifier.verify(bearer).await?;
        let user = match self
            .users
            .user_by_subject(&token.subject)
            .await
            .map_err(UserError::from)?
        {
            Some(user) => user,
            None => {
                let (email, name) = match token.email {
                    Some(email) => (email, None),
                    None => {
                        let profile = self.identity.profile(bearer).await?;
                        (profile.email, profile.display_name)
                    }
                };
                self.user_service
                    .provision(&token.subject, &email, name.as_deref())
                    .await?
            }
        };
        let caller = Caller {
            user_id: user.id,
            scope: token.scope,
        };
        Ok((caller, user))
    }
}

impl AuthService {
    async fn authenticate_api_token(&self, bearer: &str) -> Result<(Caller, User), AuthError> {
        if bearer.len() > 200 {
            return Err(TokenError::Malformed.into());
        }
        let now = self.clock.now();
        let token = self
            .api_tokens
            .api_token_by_hash(&secret_hash(bearer))
            .await
            .map_err(UserError::from)?
            .ok_or(TokenError::BadSignature)?;
        if token.revoked_at.is_some() {
            return Err(TokenError::Revoked.into());
        }
        if token.expires_at.is_some_and(|e| e <= now) {
            return Err(TokenError::Expired.into());
        }
        let user = self
            .users
            .user_by_id(token.user_id)
            .await
            .map_err(UserError::from)?
            .ok_or(TokenError::Revoked)?;
        // Last-used time is informational: write it at most once a minute, never fail on it.
        let due = token
            .last_used_at
            .is_none_or(|t| now - t > chrono::Duration::minutes(1));
        if due && let Err(e) = self.api_tokens.touch_api_token(token.id, now).await {
            tracing::warn!(error = ?e, "could not record API token use");
        }
        let caller = Caller {
            user_id: user.id,
            scope: token.scope.scope(),
        };
        Ok((caller, user))
    }
}

fn checked_code(code: &str) -> Result<&str, Invalid> {
    let code = code.trim();
    if code.is_empty() || code.len() > 64 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Invalid::new("code", "must be the code from the e-mail"));
    }
    Ok(code)
}

/// Ports of the built-in accounts (the embedded identity adapter). Never used in Cognito mode.
pub mod local {
    use super::*;

    /// What a pending one-time code is for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum CodePurpose {
        Confirm,
        Reset,
    }

    impl CodePurpose {
        pub fn as_str(self) -> &'static str {
            match self {
                CodePurpose::Confirm => "confirm",
                CodePurpose::Reset => "reset",
            }
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PendingCode {
        pub hash: String,
        pub purpose: CodePurpose,
        pub expires_at: DateTime<Utc>,
        pub attempts: i32,
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LocalAccount {
        pub user_id: UserId,
        pub email: Email,
        /// A PHC string (argon2id).
        pub password_hash: String,
        pub verified: bool,
        pub code: Option<PendingCode>,
    }

    #[derive(Debug, thiserror::Error)]
    pub enum AccountStoreError {
        #[error("an account with this e-mail already exists")]
        Duplicate,
        #[error(transparent)]
        Store(#[from] StoreError),
    }

    #[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
    #[async_trait::async_trait]
    pub trait LocalAccountStore: Send + Sync {
        /// Inserts the user and its account in one transaction. MUST return `Duplicate` when the
        /// e-mail (or the user's subject) is taken, storing nothing.
        async fn create_account(
            &self,
            user: &User,
            account: &LocalAccount,
        ) -> Result<(), AccountStoreError>;
        async fn account_by_email(&self, email: &Email)
        -> Result<Option<LocalAccount>, StoreError>;
        async fn account_by_user(&self, user: UserId) -> Result<Option<LocalAccount>, StoreError>;
        /// Overwrites hash, verified flag and pending code.
        async fn update_account(&self, account: &LocalAccount) -> Result<(), StoreError>;
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct RefreshToken {
        pub id: uuid::Uuid,
        pub user_id: UserId,
        /// All tokens rotated from one login share a family; reuse of a rotated token revokes it.
        pub family_id: uuid::Uuid,
        pub token_hash: String,
        pub expires_at: DateTime<Utc>,
        pub revoked_at: Option<DateTime<Utc>>,
        pub created_at: DateTime<Utc>,
    }

    #[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
    #[async_trait::async_trait]
    pub trait RefreshTokenStore: Send + Sync {
        async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), StoreError>;
        async fn refresh_token_by_hash(
            &self,
            hash: &str,
        ) -> Result<Option<RefreshToken>, StoreError>;
        /// Revokes `old` (pointing it at `new`) and inserts `new`, atomically, only if `old` is not
        /// revoked yet. MUST return `false` (storing nothing) when `old` was already revoked, so
        /// that a refresh token is usable once even under concurrent use.
        async fn rotate_refresh_token(
            &self,
            old: uuid::Uuid,
            new: &RefreshToken,
            at: DateTime<Utc>,
        ) -> Result<bool, StoreError>;
        async fn revoke_refresh_family(
            &self,
            family: uuid::Uuid,
            at: DateTime<Utc>,
        ) -> Result<(), StoreError>;
        async fn revoke_user_refresh_tokens(
            &self,
            user: UserId,
            at: DateTime<Utc>,
        ) -> Result<(), StoreError>;
    }

    /// A token-signing key shared by every instance on one database.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SigningKey {
        pub kid: String,
        pub algorithm: String,
        /// PKCS#8 DER.
        pub private_key: Vec<u8>,
        /// The public half as a JWK (what `/.well-known/jwks.json` publishes).
        pub public_jwk: serde_json::Value,
        pub created_at: DateTime<Utc>,
        pub retired_at: Option<DateTime<Utc>>,
    }

    #[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
    #[async_trait::async_trait]
    pub trait SigningKeyStore: Send + Sync {
        /// Every key, newest first, retired ones included (they still verify until tokens expire).
        async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError>;
        /// MUST return `Ok(false)` (and store nothing) when the `kid` exists already.
        async fn insert_signing_key(&self, key: &SigningKey) -> Result<bool, StoreError>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{Committed, MockUnitOfWork};
    use crate::ports::{MockClock, MockRateLimiter};
    use crate::users::MockUserRepository;

    struct Fixture {
        identity: MockIdentityProvider,
        verifier: MockTokenVerifier,
        users: MockUserRepository,
        api_tokens: crate::api_tokens::MockApiTokenRepository,
        provision_users: MockUserRepository,
        uow: MockUnitOfWork,
        limiter: MockRateLimiter,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                identity: MockIdentityProvider::new(),
                verifier: MockTokenVerifier::new(),
                users: MockUserRepository::new(),
                api_tokens: crate::api_tokens::MockApiTokenRepository::new(),
                provision_users: MockUserRepository::new(),
                uow: MockUnitOfWork::new(),
                limiter: MockRateLimiter::new(),
            }
        }

        fn build(self) -> AuthService {
            let mut clock = MockClock::new();
            clock.expect_now().returning(Utc::now);
            let clock = Arc::new(clock);
            let user_service = Arc::new(UserService::new(
                Arc::new(self.provision_users),
                Arc::new(self.uow),
                clock.clone(),
            ));
            let ports = AuthPorts {
                identity: Arc::new(self.identity),
                verifier: Arc::new(self.verifier),
                users: Arc::new(self.users),
                api_tokens: Arc::new(self.api_tokens),
                limiter: Arc::new(self.limiter),
                clock,
            };
            AuthService::new(ports, user_service)
        }
    }

    #[tokio::test]
    async fn sign_up_validates_before_calling_the_provider() {
        let mut f = Fixture::new();
        f.identity.expect_sign_up().never();
        let auth = f.build();
        for (email, password, name) in [
            ("not-an-email", "long enough", "Ada"),
            ("ada@example.com", "short", "Ada"),
            ("ada@example.com", "long enough", " "),
        ] {
            let r = auth.sign_up(email, password, name).await;
            assert!(
                matches!(r, Err(AuthError::Invalid(_))),
                "{email} {password} {name}"
            );
        }
    }

    #[tokio::test]
    async fn sign_up_provisions_the_user_with_the_display_name() {
        let mut f = Fixture::new();
        f.identity.expect_sign_up().times(1).returning(|_| {
            Ok(SignUpOutcome {
                subject: "sub-9".into(),
                confirmed: true,
            })
        });
        f.provision_users
            .expect_user_by_subject()
            .returning(|_| Ok(None));
        f.uow
            .expect_commit()
            .withf(|b| matches!(&b.writes[..], [crate::feed::Write::InsertUser(u)] if u.display_name == "Ada L" && u.subject == "sub-9"))
            .times(1)
            .returning(|_| Ok(Committed::default()));
        let out = f
            .build()
            .sign_up("ADA@example.com", "correct horse", "Ada L")
            .await
            .unwrap();
        assert!(out.confirmed);
    }

    #[tokio::test]
    async fn login_is_rate_limited_per_email_and_address() {
        let mut f = Fixture::new();
        f.limiter
            .expect_hit()
            .withf(|k, l, w| k == "login:email:ada@example.com" && *l == 10 && *w == 60)
            .returning(|_, _, _| Ok(()));
        f.limiter
            .expect_hit()
            .withf(|k, _, _| k == "login:ip:10.0.0.1")
            .returning(|_, _, _| {
                Err(RateLimited {
                    retry_after_secs: 42,
                })
            });
        f.identity.expect_login().never();
        let r = f
            .build()
            .login("ada@example.com", "pw-pw-pw-pw", Some("10.0.0.1"))
            .await;
        assert!(matches!(
            r,
            Err(AuthError::Identity(IdentityError::TooManyRequests(
                RateLimited {
                    retry_after_secs: 42
                }
            )))
        ));
    }

    #[tokio::test]
    async fn authenticate_provisions_unknown_subjects_from_the_profile() {
        let mut f = Fixture::new();
        f.verifier.expect_verify().returning(|_| {
            Ok(VerifiedToken {
                subject: "cognito-sub".into(),
                email: None,
                scope: Scope::Session,
                expires_at: Utc::now(),
            })
        });
        f.users.expect_user_by_subject().returning(|_| Ok(None));
        f.identity.expect_profile().times(1).returning(|_| {
            Ok(Profile {
                subject: "cognito-sub".into(),
                email: Email::parse("grace@example.com").unwrap(),
                display_name: Some("Grace".into()),
            })
        });
        f.provision_users
            .expect_user_by_subject()
            .returning(|_| Ok(None));
        f.uow
            .expect_commit()
            .times(1)
            .returning(|_| Ok(Committed::default()));
        let (caller, user) = f.build().authenticate("tok").await.unwrap();
        assert_eq!(caller.user_id, user.id);
        assert_eq!(user.email.as_str(), "grace@example.com");
        assert_eq!(user.display_name, "Grace");
    }

    #[tokio::test]
    async fn authenticate_refuses_bad_tokens_without_touching_storage() {
        let mut f = Fixture::new();
        f.verifier
            .expect_verify()
            .returning(|_| Err(TokenError::Expired));
        f.users.expect_user_by_subject().never();
        let r = f.build().authenticate("tok").await;
        assert!(matches!(r, Err(AuthError::Token(TokenError::Expired))));
    }

    fn api_token(scope: crate::api_tokens::ApiScope) -> crate::api_tokens::ApiToken {
        crate::api_tokens::ApiToken {
            id: uuid::Uuid::now_v7(),
            user_id: UserId::new(),
            name: "ci".into(),
            prefix: "mdp_abcdef".into(),
            token_hash: secret_hash("mdp_secret"),
            scope,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            created_at: Utc::now(),
        }
    }

    fn some_user(id: UserId) -> User {
        User {
            id,
            subject: "s".into(),
            email: Email::parse("ada@example.com").unwrap(),
            display_name: "Ada".into(),
            avatar_url: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn api_tokens_authenticate_with_their_scope_and_record_use() {
        let token = api_token(crate::api_tokens::ApiScope::Read);
        let user_id = token.user_id;
        let mut f = Fixture::new();
        f.verifier.expect_verify().never();
        f.api_tokens
            .expect_api_token_by_hash()
            .withf(|h| h == secret_hash("mdp_secret"))
            .returning(move |_| Ok(Some(token.clone())));
        f.api_tokens
            .expect_touch_api_token()
            .times(1)
            .returning(|_, _| Ok(()));
        f.users
            .expect_user_by_id()
            .returning(|id| Ok(Some(some_user(id))));
        let (caller, _) = f.build().authenticate("mdp_secret").await.unwrap();
        assert_eq!(caller.scope, Scope::Read);
        assert_eq!(caller.user_id, user_id);
    }

    #[tokio::test]
    async fn revoked_expired_and_unknown_api_tokens_are_refused() {
        let mut revoked = api_token(crate::api_tokens::ApiScope::ReadWrite);
        revoked.revoked_at = Some(Utc::now());
        let mut expired = api_token(crate::api_tokens::ApiScope::ReadWrite);
        expired.expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
        for (token, expected) in [
            (Some(revoked), "token_revoked"),
            (Some(expired), "token_expired"),
            (None, "token_signature_invalid"),
        ] {
            let mut f = Fixture::new();
            f.api_tokens
                .expect_api_token_by_hash()
                .returning(move |_| Ok(token.clone()));
            match f.build().authenticate("mdp_secret").await {
                Err(AuthError::Token(e)) => assert_eq!(e.code(), expected),
                other => panic!("expected {expected}, got {other:?}"),
            }
        }
    }
}
