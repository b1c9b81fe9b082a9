//! In-memory fakes of the three store ports, a settable clock and a code sender that keeps the
//! codes, for the stateful flows in `tests.rs`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};
use mdcreator_domain::identity::local::{
    AccountStoreError, CodePurpose, LocalAccount, LocalAccountStore, RefreshToken,
    RefreshTokenStore, SigningKey, SigningKeyStore,
};
use mdcreator_domain::users::User;
use mdcreator_domain::{Clock, Email, StoreError, UserId};

use crate::codes::CodeSender;

pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    pub fn new() -> Self {
        // Near the real time: jsonwebtoken is not involved in time checks, but keep it sane.
        let start = Utc
            .timestamp_opt(Utc::now().timestamp(), 0)
            .single()
            .unwrap();
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: TimeDelta) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

#[derive(Default)]
pub struct MemoryAccounts {
    pub users: Mutex<Vec<User>>,
    pub accounts: Mutex<Vec<LocalAccount>>,
}

#[async_trait::async_trait]
impl LocalAccountStore for MemoryAccounts {
    async fn create_account(
        &self,
        user: &User,
        account: &LocalAccount,
    ) -> Result<(), AccountStoreError> {
        let mut accounts = self.accounts.lock().unwrap();
        let mut users = self.users.lock().unwrap();
        if accounts.iter().any(|a| a.email == account.email)
            || users.iter().any(|u| u.subject == user.subject)
        {
            return Err(AccountStoreError::Duplicate);
        }
        users.push(user.clone());
        accounts.push(account.clone());
        Ok(())
    }

    async fn account_by_email(&self, email: &Email) -> Result<Option<LocalAccount>, StoreError> {
        let accounts = self.accounts.lock().unwrap();
        Ok(accounts.iter().find(|a| &a.email == email).cloned())
    }

    async fn account_by_user(&self, user: UserId) -> Result<Option<LocalAccount>, StoreError> {
        let accounts = self.accounts.lock().unwrap();
        Ok(accounts.iter().find(|a| a.user_id == user).cloned())
    }

    async fn update_account(&self, account: &LocalAccount) -> Result<(), StoreError> {
        let mut accounts = self.accounts.lock().unwrap();
        if let Some(a) = accounts.iter_mut().find(|a| a.user_id == account.user_id) {
            *a = account.clone();
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryRefreshTokens {
    pub tokens: Mutex<Vec<RefreshToken>>,
}

impl MemoryRefreshTokens {
    pub fn all(&self) -> Vec<RefreshToken> {
        self.tokens.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl RefreshTokenStore for MemoryRefreshTokens {
    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<(), StoreError> {
        self.tokens.lock().unwrap().push(token.clone());
        Ok(())
    }

    async fn refresh_token_by_hash(&self, hash: &str) -> Result<Option<RefreshToken>, StoreError> {
        let tokens = self.tokens.lock().unwrap();
        Ok(tokens.iter().find(|t| t.token_hash == hash).cloned())
    }

    async fn rotate_refresh_token(
        &self,
        old: uuid::Uuid,
        new: &RefreshToken,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tokens = self.tokens.lock().unwrap();
        let Some(old) = tokens
            .iter_mut()
            .find(|t| t.id == old && t.revoked_at.is_none())
        else {
            return Ok(false);
        };
        old.revoked_at = Some(at);
        tokens.push(new.clone());
        Ok(true)
    }

    async fn revoke_refresh_family(
        &self,
        family: uuid::Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tokens = self.tokens.lock().unwrap();
        for t in tokens
            .iter_mut()
            .filter(|t| t.family_id == family && t.revoked_at.is_none())
        {
            t.revoked_at = Some(at);
        }
        Ok(())
    }

    async fn revoke_user_refresh_tokens(
        &self,
        user: UserId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tokens = self.tokens.lock().unwrap();
        for t in tokens
            .iter_mut()
            .filter(|t| t.user_id == user && t.revoked_at.is_none())
        {
            t.revoked_at = Some(at);
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryKeys {
    pub keys: Mutex<Vec<SigningKey>>,
    pub reads: AtomicUsize,
}

impl MemoryKeys {
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl SigningKeyStore for MemoryKeys {
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let mut keys = self.keys.lock().unwrap().clone();
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        Ok(keys)
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> Result<bool, StoreError> {
        let mut keys = self.keys.lock().unwrap();
        if keys.iter().any(|k| k.kid == key.kid) {
            return Ok(false);
        }
        keys.push(key.clone());
        Ok(true)
    }
}

/// Keeps every code it is asked to deliver.
#[derive(Default)]
pub struct CapturedCodes(pub Mutex<Vec<(Email, CodePurpose, String)>>);

impl CapturedCodes {
    pub fn last(&self, purpose: CodePurpose) -> String {
        let codes = self.0.lock().unwrap();
        codes
            .iter()
            .rev()
            .find(|(_, p, _)| *p == purpose)
            .map(|(_, _, c)| c.clone())
            .expect("no code of this purpose was sent")
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

#[async_trait::async_trait]
impl CodeSender for CapturedCodes {
    async fn send_code(
        &self,
        email: &Email,
        purpose: CodePurpose,
        code: &str,
    ) -> anyhow::Result<()> {
        self.0
            .lock()
            .unwrap()
            .push((email.clone(), purpose, code.to_owned()));
        Ok(())
    }
}
