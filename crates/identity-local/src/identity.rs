//! [`LocalIdentity`]: the built-in accounts behind the [`IdentityProvider`] port.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use mdcreator_domain::identity::local::{
    AccountStoreError, CodePurpose, LocalAccount, LocalAccountStore, PendingCode, RefreshToken,
    RefreshTokenStore,
};
use mdcreator_domain::identity::{
    IdentityError, IdentityProvider, Profile, SignUp, SignUpOutcome, TokenError, TokenSet,
    TokenVerifier as _, checked_password,
};
use mdcreator_domain::secrets::{random_secret, secret_hash};
use mdcreator_domain::users::User;
use mdcreator_domain::{Clock, Email, UserId};

use crate::codes::{CodeSender, LogCodeSender, MAX_CODE_ATTEMPTS, new_code};
use crate::issuer::TokenIssuer;
use crate::keys::SigningKeyError;
use crate::password::{hash_password, verify_password};
use crate::verifier::LocalTokenVerifier;

/// Prefix of refresh tokens, so scanners and log readers recognise them.
pub const REFRESH_TOKEN_PREFIX: &str = "mdr_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalIdentitySettings {
    /// `false`: accounts can log in right after sign-up (no mail sender to deliver a code).
    pub require_email_confirmation: bool,
    pub access_token_ttl: Duration,
    /// Lifetime of a login's refresh-token family (rotation keeps the original expiry).
    pub refresh_token_ttl: Duration,
    /// Lifetime of confirmation and reset codes.
    pub code_ttl: Duration,
}

impl Default for LocalIdentitySettings {
    fn default() -> Self {
        Self {
            require_email_confirmation: false,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            code_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// Built-in accounts: argon2id passwords, ES256 access tokens from a [`TokenIssuer`], rotating
/// refresh tokens stored hashed, one-time codes delivered by a [`CodeSender`] (the log by default).
pub struct LocalIdentity {
    accounts: Arc<dyn LocalAccountStore>,
    refresh_tokens: Arc<dyn RefreshTokenStore>,
    issuer: Arc<TokenIssuer>,
    verifier: LocalTokenVerifier,
    clock: Arc<dyn Clock>,
    codes: Arc<dyn CodeSender>,
    settings: LocalIdentitySettings,
}

impl LocalIdentity {
    pub fn new(
        accounts: Arc<dyn LocalAccountStore>,
        refresh_tokens: Arc<dyn RefreshTokenStore>,
        issuer: Arc<TokenIssuer>,
        clock: Arc<dyn Clock>,
        settings: LocalIdentitySettings,
    ) -> Self {
        let verifier = issuer.verifier(clock.clone());
        Self {
            accounts,
            refresh_tokens,
            issuer,
            verifier,
            clock,
            codes: Arc::new(LogCodeSender),
            settings,
        }
    }

    /// Delivers codes through `sender` instead of the log.
    pub fn with_code_sender(mut self, sender: Arc<dyn CodeSender>) -> Self {
        self.codes = sender;
        self
    }

    pub fn settings(&self) -> &LocalIdentitySettings {
        &self.settings
    }

    /// A new code for `purpose` stored (hashed) on `account` and delivered.
    async fn issue_code(
        &self,
        account: &mut LocalAccount,
        purpose: CodePurpose,
    ) -> Result<(), IdentityError> {
        let code = new_code();
        account.code = Some(PendingCode {
            hash: secret_hash(&code),
            purpose,
            expires_at: later(self.clock.now(), self.settings.code_ttl)?,
            attempts: 0,
        });
        self.accounts.update_account(account).await?;
        self.send_code(&account.email, purpose, &code).await
    }

    async fn send_code(
        &self,
        email: &Email,
        purpose: CodePurpose,
        code: &str,
    ) -> Result<(), IdentityError> {
        self.codes
            .send_code(email, purpose, code)
            .await
            .map_err(IdentityError::Unexpected)
    }

    /// Checks `code` against the account's pending code for `purpose` and clears it on success.
    /// A wrong guess is counted (and stored); after [`MAX_CODE_ATTEMPTS`] the code is void.
    async fn consume_code(
        &self,
        account: &mut LocalAccount,
        purpose: CodePurpose,
        code: &str,
    ) -> Result<(), IdentityError> {
        let now = self.clock.now();
        let Some(pending) = account.code.as_mut().filter(|c| c.purpose == purpose) else {
            return Err(IdentityError::CodeMismatch);
        };
        if pending.attempts >= MAX_CODE_ATTEMPTS || pending.expires_at <= now {
            return Err(IdentityError::CodeExpired);
        }
        if secret_hash(code.trim()) != pending.hash {
            pending.attempts += 1;
            self.accounts.update_account(account).await?;
            return Err(IdentityError::CodeMismatch);
        }
        account.code = None;
        Ok(())
    }

    /// A fresh access token for `account`, handed out with `refresh_token`.
    fn token_set(
        &self,
        account: &LocalAccount,
        now: DateTime<Utc>,
        refresh_token: String,
    ) -> Result<TokenSet, IdentityError> {
        let access_token = self
            .issuer
            .issue_access_token(
                &account.user_id.to_string(),
                &account.email,
                now,
                self.settings.access_token_ttl,
            )
            .map_err(signing_failure)?;
        Ok(TokenSet {
            access_token,
            refresh_token: Some(refresh_token),
            id_token: None,
            expires_in: self.settings.access_token_ttl.as_secs(),
        })
    }

    /// The account behind a valid access token of this issuer.
    async fn account_for_access_token(
        &self,
        access_token: &str,
    ) -> Result<(String, LocalAccount), IdentityError> {
        let token = self
            .verifier
            .verify(access_token)
            .await
            .map_err(|e| match e {
                TokenError::Unavailable(e) => IdentityError::Unavailable(e),
                _ => IdentityError::InvalidCredentials,
            })?;
        let user: UserId = token
            .subject
            .parse()
            .map_err(|_| IdentityError::InvalidCredentials)?;
        let account = self
            .accounts
            .account_by_user(user)
            .await?
            .ok_or(IdentityError::InvalidCredentials)?;
        Ok((token.subject, account))
    }
}

#[async_trait::async_trait]
impl IdentityProvider for LocalIdentity {
    #[tracing::instrument(skip_all)]
    async fn sign_up(&self, request: &SignUp) -> Result<SignUpOutcome, IdentityError> {
        checked_password("password", &request.password)
            .map_err(|e| IdentityError::WeakPassword(e.message))?;
        let password_hash = hash_password(&request.password).await?;
        let now = self.clock.now();
        let user_id = UserId::new();
        let user = User {
            id: user_id,
            subject: user_id.to_string(),
            email: request.email.clone(),
            display_name: request.display_name.clone(),
            avatar_url: None,
            created_at: now,
            updated_at: now,
        };
        let confirmed = !self.settings.require_email_confirmation;
        let code = (!confirmed).then(new_code);
        let pending = match &code {
            Some(code) => Some(PendingCode {
                hash: secret_hash(code),
                purpose: CodePurpose::Confirm,
                expires_at: later(now, self.settings.code_ttl)?,
                attempts: 0,
            }),
            None => None,
        };
        let account = LocalAccount {
            user_id,
            email: request.email.clone(),
            password_hash,
            verified: confirmed,
            code: pending,
        };
        self.accounts
            .create_account(&user, &account)
            .await
            .map_err(|e| match e {
                AccountStoreError::Duplicate => IdentityError::EmailTaken,
                AccountStoreError::Store(e) => e.into(),
            })?;
        match code {
            Some(code) => {
                self.send_code(&request.email, CodePurpose::Confirm, &code)
                    .await?
            }
            None => tracing::info!(
                email = %request.email,
                "account confirmed at sign-up: no mail sender is configured"
            ),
        }
        Ok(SignUpOutcome {
            subject: user.subject,
            confirmed,
        })
    }

    #[tracing::instrument(skip_all)]
    async fn confirm(&self, email: &Email, code: &str) -> Result<(), IdentityError> {
        let Some(mut account) = self.accounts.account_by_email(email).await? else {
            return Err(IdentityError::CodeMismatch);
        };
        if account.verified {
            // Confirming twice is harmless (a double click); sign-up reveals existence anyway.
            return Ok(());
        }
        self.consume_code(&mut account, CodePurpose::Confirm, code)
            .await?;
        account.verified = true;
        self.accounts.update_account(&account).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn resend_code(&self, email: &Email) -> Result<(), IdentityError> {
        match self.accounts.account_by_email(email).await? {
            Some(mut account) if !account.verified => {
                self.issue_code(&mut account, CodePurpose::Confirm).await
            }
            _ => Ok(()),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn login(&self, email: &Email, password: &str) -> Result<TokenSet, IdentityError> {
        let account = self.accounts.account_by_email(email).await?;
        let phc = account.as_ref().map(|a| a.password_hash.clone());
        let matches = verify_password(password, phc).await?;
        let Some(account) = account.filter(|_| matches) else {
            return Err(IdentityError::InvalidCredentials);
        };
        if !account.verified {
            return Err(IdentityError::NotConfirmed);
        }
        let now = self.clock.now();
        let (secret, token) = new_refresh_token(
            account.user_id,
            uuid::Uuid::new_v4(),
            later(now, self.settings.refresh_token_ttl)?,
            now,
        );
        self.refresh_tokens.insert_refresh_token(&token).await?;
        self.token_set(&account, now, secret)
    }

    #[tracing::instrument(skip_all)]
    async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, IdentityError> {
        let now = self.clock.now();
        let Some(old) = self
            .refresh_tokens
            .refresh_token_by_hash(&secret_hash(refresh_token))
            .await?
        else {
            return Err(IdentityError::InvalidRefreshToken);
        };
        if old.revoked_at.is_some() {
            return Err(self.reuse_detected(&old, now).await);
        }
        if old.expires_at <= now {
            return Err(IdentityError::InvalidRefreshToken);
        }
        let account = self
            .accounts
            .account_by_user(old.user_id)
            .await?
            .ok_or(IdentityError::InvalidRefreshToken)?;
        // Rotation keeps the family's expiry: a login lasts `refresh_token_ttl` at most.
        let (secret, new) = new_refresh_token(old.user_id, old.family_id, old.expires_at, now);
        if !self
            .refresh_tokens
            .rotate_refresh_token(old.id, &new, now)
            .await?
        {
            // Revoked between the read and the rotation: a concurrent use of the same token.
            return Err(self.reuse_detected(&old, now).await);
        }
        self.token_set(&account, now, secret)
    }

    #[tracing::instrument(skip_all)]
    async fn logout(&self, access_token: &str) -> Result<(), IdentityError> {
        let (_, account) = self.account_for_access_token(access_token).await?;
        self.refresh_tokens
            .revoke_user_refresh_tokens(account.user_id, self.clock.now())
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn forgot_password(&self, email: &Email) -> Result<(), IdentityError> {
        match self.accounts.account_by_email(email).await? {
            Some(mut account) => self.issue_code(&mut account, CodePurpose::Reset).await,
            None => Ok(()),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn reset_password(
        &self,
        email: &Email,
        code: &str,
        new_password: &str,
    ) -> Result<(), IdentityError> {
        checked_password("new_password", new_password)
            .map_err(|e| IdentityError::WeakPassword(e.message))?;
        let Some(mut account) = self.accounts.account_by_email(email).await? else {
            return Err(IdentityError::CodeMismatch);
        };
        self.consume_code(&mut account, CodePurpose::Reset, code)
            .await?;
        account.password_hash = hash_password(new_password).await?;
        // The code reached the owner's mailbox, which is what confirmation proves too.
        account.verified = true;
        self.accounts.update_account(&account).await?;
        self.refresh_tokens
            .revoke_user_refresh_tokens(account.user_id, self.clock.now())
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn profile(&self, access_token: &str) -> Result<Profile, IdentityError> {
        let (subject, account) = self.account_for_access_token(access_token).await?;
        Ok(Profile {
            subject,
            email: account.email,
            display_name: None,
        })
    }
}

impl LocalIdentity {
    /// A revoked token was presented again: someone holds a copy, so the whole login goes.
    async fn reuse_detected(&self, token: &RefreshToken, now: DateTime<Utc>) -> IdentityError {
        tracing::warn!(
            user = %token.user_id,
            family = %token.family_id,
            "refresh token reused; revoking its family"
        );
        match self
            .refresh_tokens
            .revoke_refresh_family(token.family_id, now)
            .await
        {
            Ok(()) => IdentityError::InvalidRefreshToken,
            Err(e) => e.into(),
        }
    }
}

/// A new refresh token: the secret for the client and the hashed row to store.
fn new_refresh_token(
    user_id: UserId,
    family_id: uuid::Uuid,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (String, RefreshToken) {
    let secret = random_secret(REFRESH_TOKEN_PREFIX);
    let token = RefreshToken {
        id: uuid::Uuid::now_v7(),
        user_id,
        family_id,
        token_hash: secret_hash(&secret),
        expires_at,
        revoked_at: None,
        created_at: now,
    };
    (secret, token)
}

fn later(now: DateTime<Utc>, ttl: Duration) -> Result<DateTime<Utc>, IdentityError> {
    TimeDelta::from_std(ttl)
        .ok()
        .and_then(|ttl| now.checked_add_signed(ttl))
        .ok_or_else(|| IdentityError::Unexpected(anyhow::anyhow!("lifetime out of range: {ttl:?}")))
}

fn signing_failure(e: SigningKeyError) -> IdentityError {
    IdentityError::Unexpected(e.into())
}
