//! Users: provisioned on first authenticated call, read and edited by themselves.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::UserId;
use crate::access::Caller;
use crate::feed::{CommitError, UnitOfWork, Write, WriteBatch};
use crate::ports::{Clock, StoreError};
use crate::values::{Email, Invalid, checked_name};

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    /// The identity provider's subject (`sub` claim).
    pub subject: String,
    pub email: Email,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait UserRepository: Send + Sync {
    /// MUST return `None` for an unknown id.
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// MUST return `None` when no user has this identity-provider subject.
    async fn user_by_subject(&self, subject: &str) -> Result<Option<User>, StoreError>;
    /// Case-insensitive (emails are stored lower-case). MUST return `None` when unknown.
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user not found")]
    NotFound,
    #[error("this token may only read")]
    Forbidden,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("the e-mail address belongs to another account")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `PATCH /users/me`: absent fields are kept; `avatar_url: Some(None)` clears the avatar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub avatar_url: Option<Option<String>>,
}

pub struct UserService {
    users: Arc<dyn UserRepository>,
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
}

impl UserService {
    pub fn new(
        users: Arc<dyn UserRepository>,
        uow: Arc<dyn UnitOfWork>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { users, uow, clock }
    }

    /// The user behind an identity-provider subject, created on first sight.
    #[tracing::instrument(skip_all)]
    pub async fn provision(
        &self,
        subject: &str,
        email: &Email,
        display_name: Option<&str>,
    ) -> Result<User, UserError> {
        if let Some(user) = self.users.user_by_subject(subject).await? {
            return Ok(user);
        }
        let now = self.clock.now();
        let fallback = email.as_str().split('@').next().unwrap_or("user");
        let name = display_name
            .and_then(|n| checked_name("display_name", n, 100).ok())
            .unwrap_or_else(|| fallback.to_owned());
        let user = User {
            id: UserId::new(),
            subject: subject.to_owned(),
            email: email.clone(),
            display_name: name,
            avatar_url: None,
            created_at: now,
            updated_at: now,
        };
        let batch = WriteBatch::by(user.id).write(Write::InsertUser(user.clone()));
        match self.uow.commit(batch).await {
            Ok(_) => Ok(user),
            // Two first requests raced: the other one created the user.
            Err(CommitError::Duplicate(_)) => match self.users.user_by_subject(subject).await? {
                Some(user) => Ok(user),
                None => Err(UserError::EmailTaken),
            },
            Err(e) => Err(commit_failure(e)),
        }
    }

    pub async fn me(&self, caller: &Caller) -> Result<User, UserError> {
        self.users
            .user_by_id(caller.user_id)
            .await?
            .ok_or(UserError::NotFound)
    }

    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn update_me(&self, caller: &Caller, patch: UserPatch) -> Result<User, UserError> {
        if caller.scope == crate::Scope::Read {
            return Err(UserError::Forbidden);
        }
        let mut user = self.me(caller).await?;
        if let Some(name) = patch.display_name {
            user.display_name = checked_name("display_name", &name, 100)?;
        }
        if let Some(avatar) = patch.avatar_url {
            user.avatar_url = avatar.map(|url| checked_avatar_url(&url)).transpose()?;
        }
        user.updated_at = self.clock.now();
        let batch = WriteBatch::by(user.id).write(Write::UpdateUser(user.clone()));
        self.uow.commit(batch).await.map_err(commit_failure)?;
        Ok(user)
    }
}

fn checked_avatar_url(url: &str) -> Result<String, Invalid> {
    let url = url.trim();
    let bad = |m: &str| Invalid::new("avatar_url", m);
    if url.len() > 2048 {
        return Err(bad("must be at most 2048 characters"));
    }
    if !url.starts_with("https://") || url.len() <= "https://".len() {
        return Err(bad("must be an https:// URL"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain spaces or control characters"));
    }
    Ok(url.to_owned())
}

fn commit_failure(e: CommitError) -> UserError {
    match e {
        CommitError::Store(e) => UserError::Store(e),
        CommitError::Duplicate(_) => UserError::EmailTaken,
        other => UserError::Store(StoreError::Unexpected(anyhow::anyhow!(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{Committed, MockUnitOfWork};
    use crate::ports::MockClock;

    fn clock() -> Arc<MockClock> {
        let mut c = MockClock::new();
        c.expect_now().returning(Utc::now);
        Arc::new(c)
    }

    fn user(subject: &str) -> User {
        let now = Utc::now();
        User {
            id: UserId::new(),
            subject: subject.into(),
            email: Email::parse("ada@example.com").unwrap(),
            display_name: "Ada".into(),
            avatar_url: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[tokio::test]
    async fn provisioning_creates_the_user_once() {
        let mut users = MockUserRepository::new();
        users
            .expect_user_by_subject()
            .times(1)
            .returning(|_| Ok(None));
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit()
            .withf(|b| matches!(&b.writes[..], [Write::InsertUser(u)] if u.subject == "sub-1" && u.display_name == "ada"))
            .times(1)
            .returning(|_| Ok(Committed::default()));
        let svc = UserService::new(Arc::new(users), Arc::new(uow), clock());
        let email = Email::parse("Ada@example.com").unwrap();
        let u = svc.provision("sub-1", &email, None).await.unwrap();
        assert_eq!(u.email.as_str(), "ada@example.com");
    }

    #[tokio::test]
    async fn provisioning_race_returns_the_winner() {
        let winner = user("sub-1");
        let w = winner.clone();
        let mut users = MockUserRepository::new();
        let mut calls = 0;
        users.expect_user_by_subject().times(2).returning(move |_| {
            calls += 1;
            Ok((calls == 2).then(|| w.clone()))
        });
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit()
            .returning(|_| Err(CommitError::Duplicate("users")));
        let svc = UserService::new(Arc::new(users), Arc::new(uow), clock());
        let u = svc
            .provision("sub-1", &winner.email, Some("Ada"))
            .await
            .unwrap();
        assert_eq!(u.id, winner.id);
    }

    #[tokio::test]
    async fn profile_updates_are_validated_before_anything_is_written() {
        let me = user("s");
        let id = me.id;
        let mut users = MockUserRepository::new();
        users
            .expect_user_by_id()
            .returning(move |_| Ok(Some(me.clone())));
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit().never();
        let svc = UserService::new(Arc::new(users), Arc::new(uow), clock());
        let caller = Caller::session(id);
        for patch in [
            UserPatch {
                display_name: Some("  ".into()),
                ..Default::default()
            },
            UserPatch {
                avatar_url: Some(Some("javascript:alert(1)".into())),
                ..Default::default()
            },
            UserPatch {
                avatar_url: Some(Some("http://plain.example/a.png".into())),
                ..Default::default()
            },
        ] {
            assert!(matches!(
                svc.update_me(&caller, patch).await,
                Err(UserError::Invalid(_))
            ));
        }
    }

    #[tokio::test]
    async fn profile_update_writes_the_new_profile() {
        let me = user("s");
        let id = me.id;
        let mut users = MockUserRepository::new();
        users
            .expect_user_by_id()
            .returning(move |_| Ok(Some(me.clone())));
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit()
            .withf(|b| matches!(&b.writes[..], [Write::UpdateUser(u)] if u.display_name == "Grace" && u.avatar_url.is_none()))
            .times(1)
            .returning(|_| Ok(Committed::default()));
        let svc = UserService::new(Arc::new(users), Arc::new(uow), clock());
        let patch = UserPatch {
            display_name: Some(" Grace ".into()),
            avatar_url: Some(None),
        };
        let u = svc.update_me(&Caller::session(id), patch).await.unwrap();
        assert_eq!(u.display_name, "Grace");
    }
}
