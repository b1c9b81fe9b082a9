//! Personal API tokens for scripts: random, shown once, stored as a hash, prefixed `mdp_` so they
//! are recognisable in logs and secret scanners, scoped read or read-write, revocable. Accepted
//! wherever an access token is; they cannot create tokens themselves.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::UserId;
use crate::access::{Caller, Scope};
use crate::ports::{Clock, StoreError};
use crate::secrets::{random_secret, secret_hash};
use crate::values::{Invalid, checked_name};

/// The prefix of every personal API token.
pub const TOKEN_PREFIX: &str = "mdp_";

/// At most this many live tokens per user.
pub const MAX_TOKENS_PER_USER: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiScope {
    Read,
    ReadWrite,
}

impl ApiScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::Read => "read",
            ApiScope::ReadWrite => "read_write",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(ApiScope::Read),
            "read_write" => Some(ApiScope::ReadWrite),
            _ => None,
        }
    }

    pub fn scope(self) -> Scope {
        match self {
            ApiScope::Read => Scope::Read,
            ApiScope::ReadWrite => Scope::ReadWrite,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: uuid::Uuid,
    pub user_id: UserId,
    pub name: String,
    /// The first characters of the token, shown in lists so a user can tell tokens apart.
    pub prefix: String,
    pub token_hash: String,
    pub scope: ApiScope,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ApiToken {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait ApiTokenRepository: Send + Sync {
    /// The user's tokens that are not revoked (expired ones included), newest first.
    async fn api_tokens(&self, user: UserId) -> Result<Vec<ApiToken>, StoreError>;
    /// MUST return revoked and expired tokens too (the caller decides).
    async fn api_token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError>;
    async fn insert_api_token(&self, token: &ApiToken) -> Result<(), StoreError>;
    /// Revokes the user's token; `false` when the user has no such live token.
    async fn revoke_api_token(
        &self,
        user: UserId,
        id: uuid::Uuid,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Records use (best effort; called at most about once a minute per token).
    async fn touch_api_token(&self, id: uuid::Uuid, at: DateTime<Utc>) -> Result<(), StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ApiTokenError {
    #[error("API tokens can only be created from a signed-in session")]
    Forbidden,
    #[error("token not found")]
    NotFound,
    #[error("at most {MAX_TOKENS_PER_USER} tokens per user")]
    TooMany,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new token with its secret, which is shown this once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedApiToken {
    pub token: ApiToken,
    pub secret: String,
}

pub struct ApiTokenService {
    tokens: Arc<dyn ApiTokenRepository>,
    clock: Arc<dyn Clock>,
}

impl ApiTokenService {
    pub fn new(tokens: Arc<dyn ApiTokenRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { tokens, clock }
    }

    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn create(
        &self,
        caller: &Caller,
        name: &str,
        scope: &str,
        expires_in_days: Option<i64>,
    ) -> Result<IssuedApiToken, ApiTokenError> {
        if caller.scope != Scope::Session {
            return Err(ApiTokenError::Forbidden);
        }
        let name = checked_name("name", name, 100)?;
        let scope = ApiScope::parse(scope)
            .ok_or_else(|| Invalid::new("scope", "must be read or read_write"))?;
        let days = match expires_in_days {
            None => None,
            Some(d) if (1..=3650).contains(&d) => Some(d),
            Some(_) => {
                return Err(Invalid::new("expires_in_days", "must be between 1 and 3650").into());
            }
        };
        let now = self.clock.now();
        let live = self.tokens.api_tokens(caller.user_id).await?;
        if live.iter().filter(|t| t.is_live(now)).count() >= MAX_TOKENS_PER_USER {
            return Err(ApiTokenError::TooMany);
        }
        let secret = random_secret(TOKEN_PREFIX);
        let token = ApiToken {
            id: uuid::Uuid::now_v7(),
            user_id: caller.user_id,
            name,
            prefix: secret.chars().take(TOKEN_PREFIX.len() + 6).collect(),
            token_hash: secret_hash(&secret),
            scope,
            expires_at: days.map(|d| now + Duration::days(d)),
            last_used_at: None,
            revoked_at: None,
            created_at: now,
        };
        self.tokens.insert_api_token(&token).await?;
        Ok(IssuedApiToken { token, secret })
    }

    pub async fn list(&self, caller: &Caller) -> Result<Vec<ApiToken>, ApiTokenError> {
        Ok(self.tokens.api_tokens(caller.user_id).await?)
    }

    pub async fn revoke(&self, caller: &Caller, id: uuid::Uuid) -> Result<(), ApiTokenError> {
        if caller.scope == Scope::Read {
            return Err(ApiTokenError::Forbidden);
        }
        if self
            .tokens
            .revoke_api_token(caller.user_id, id, self.clock.now())
            .await?
        {
            Ok(())
        } else {
            Err(ApiTokenError::NotFound)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::MockClock;

    fn clock() -> Arc<MockClock> {
        let mut c = MockClock::new();
        c.expect_now().returning(Utc::now);
        Arc::new(c)
    }

    #[tokio::test]
    async fn tokens_are_shown_once_and_stored_hashed() {
        let mut repo = MockApiTokenRepository::new();
        repo.expect_api_tokens().returning(|_| Ok(vec![]));
        repo.expect_insert_api_token()
            .withf(|t| {
                t.token_hash.len() == 64
                    && t.prefix.starts_with("mdp_")
                    && t.scope == ApiScope::Read
            })
            .times(1)
            .returning(|_| Ok(()));
        let svc = ApiTokenService::new(Arc::new(repo), clock());
        let issued = svc
            .create(&Caller::session(UserId::new()), "ci", "read", Some(30))
            .await
            .unwrap();
        assert!(issued.secret.starts_with(TOKEN_PREFIX));
        assert_eq!(issued.token.token_hash, secret_hash(&issued.secret));
        assert!(issued.token.expires_at.is_some());
    }

    #[tokio::test]
    async fn tokens_cannot_create_tokens_and_input_is_checked() {
        let mut repo = MockApiTokenRepository::new();
        repo.expect_api_tokens().returning(|_| Ok(vec![]));
        repo.expect_insert_api_token().never();
        let svc = ApiTokenService::new(Arc::new(repo), clock());
        for scope in [Scope::Read, Scope::ReadWrite] {
            let caller = Caller {
                user_id: UserId::new(),
                scope,
            };
            let r = svc.create(&caller, "x", "read", None).await;
            assert!(matches!(r, Err(ApiTokenError::Forbidden)));
        }
        let me = Caller::session(UserId::new());
        assert!(matches!(
            svc.create(&me, "x", "admin", None).await,
            Err(ApiTokenError::Invalid(_))
        ));
        assert!(matches!(
            svc.create(&me, "", "read", None).await,
            Err(ApiTokenError::Invalid(_))
        ));
        assert!(matches!(
            svc.create(&me, "x", "read", Some(0)).await,
            Err(ApiTokenError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn revoking_an_unknown_token_is_not_found() {
        let mut repo = MockApiTokenRepository::new();
        repo.expect_revoke_api_token()
            .returning(|_, _, _| Ok(false));
        let svc = ApiTokenService::new(Arc::new(repo), clock());
        let r = svc
            .revoke(&Caller::session(UserId::new()), uuid::Uuid::now_v7())
            .await;
        assert!(matches!(r, Err(ApiTokenError::NotFound)));
    }
}
