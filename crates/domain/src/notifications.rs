//! Notifications: what a user is told about comments — a mention, or a reply in a thread they
//! started. Each user reads and marks only their own; nobody else learns they exist.
//!
//! A notification carries ids only (workspace, document, comment, thread, actor), never comment
//! text: a user who later loses access to the document learns nothing new from it, and opening
//! the comment goes through the document's access as usual. Notifications are personal, not
//! workspace data, so they are not in the change feed. They go with their comment when the
//! document is deleted for good.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::access::{Caller, Scope};
use crate::feed::{CommitError, UnitOfWork, Write, WriteBatch};
use crate::pagination::{Limit, Page, decode_cursor, encode_cursor, page_from};
use crate::ports::{Clock, StoreError};
use crate::values::Invalid;
use crate::{CommentId, DocumentId, NotificationId, UserId, WorkspaceId};

/// Why a user was notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The user was `@`-mentioned in a comment.
    Mention,
    /// Someone replied in a thread the user started.
    Reply,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Mention => "mention",
            NotificationKind::Reply => "reply",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "mention" => NotificationKind::Mention,
            "reply" => NotificationKind::Reply,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: NotificationId,
    /// Who is notified.
    pub user_id: UserId,
    pub kind: NotificationKind,
    pub workspace_id: WorkspaceId,
    pub document_id: DocumentId,
    /// The comment that mentions the user, or the reply.
    pub comment_id: CommentId,
    /// The thread's root comment (equal to `comment_id` for a root).
    pub thread_id: CommentId,
    /// Who wrote the comment.
    pub actor_id: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait NotificationRepository: Send + Sync {
    /// The notification, whoever it is for; `None` when unknown.
    async fn notification(&self, id: NotificationId) -> Result<Option<Notification>, StoreError>;
    /// `user`'s notifications, newest first (ids strictly below `before` when given), only unread
    /// ones when `unread_only`, at most `limit`.
    async fn notifications(
        &self,
        user: UserId,
        unread_only: bool,
        before: Option<NotificationId>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum NotificationError {
    #[error("notification not found")]
    NotFound,
    #[error("this token may only read")]
    Forbidden,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CommitError> for NotificationError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Store(e) => NotificationError::Store(e),
            other => NotificationError::Store(StoreError::Unexpected(other.into())),
        }
    }
}

pub struct NotificationService {
    notifications: Arc<dyn NotificationRepository>,
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
}

impl NotificationService {
    pub fn new(
        notifications: Arc<dyn NotificationRepository>,
        uow: Arc<dyn UnitOfWork>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            notifications,
            uow,
            clock,
        }
    }

    /// The caller's notifications, newest first; only unread ones when `unread_only`.
    pub async fn list(
        &self,
        caller: &Caller,
        unread_only: bool,
        limit: Limit,
        cursor: Option<&str>,
    ) -> Result<Page<Notification>, NotificationError> {
        let before = cursor.map(decode_cursor::<NotificationId>).transpose()?;
        let rows = self
            .notifications
            .notifications(caller.user_id, unread_only, before, limit.get() + 1)
            .await?;
        Ok(page_from(rows, limit, |n| encode_cursor(&n.id)))
    }

    /// Marks one of the caller's notifications read (idempotent). Others' are 404.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, notification = %id))]
    pub async fn read(
        &self,
        caller: &Caller,
        id: NotificationId,
    ) -> Result<Notification, NotificationError> {
        let mut notification = self
            .notifications
            .notification(id)
            .await?
            .filter(|n| n.user_id == caller.user_id)
            .ok_or(NotificationError::NotFound)?;
        writable(caller)?;
        if notification.read_at.is_some() {
            return Ok(notification);
        }
        let now = self.clock.now();
        self.uow
            .commit(
                WriteBatch::by(caller.user_id).write(Write::ReadNotifications {
                    user: caller.user_id,
                    id: Some(id),
                    at: now,
                }),
            )
            .await?;
        // A concurrent read may have stamped it first; what is stored wins.
        Ok(match self.notifications.notification(id).await? {
            Some(stored) if stored.read_at.is_some() => stored,
            _ => {
                notification.read_at = Some(now);
                notification
            }
        })
    }

    /// Marks every unread notification of the caller read.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn read_all(&self, caller: &Caller) -> Result<(), NotificationError> {
        writable(caller)?;
        self.uow
            .commit(
                WriteBatch::by(caller.user_id).write(Write::ReadNotifications {
                    user: caller.user_id,
                    id: None,
                    at: self.clock.now(),
                }),
            )
            .await?;
        Ok(())
    }
}

fn writable(caller: &Caller) -> Result<(), NotificationError> {
    if caller.scope == Scope::Read {
        return Err(NotificationError::Forbidden);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::{Committed, MockUnitOfWork};
    use crate::ports::MockClock;

    fn notification(user: UserId, read: bool) -> Notification {
        let id = CommentId::new();
        Notification {
            id: NotificationId::new(),
            user_id: user,
            kind: NotificationKind::Mention,
            workspace_id: WorkspaceId::new(),
            document_id: DocumentId::new(),
            comment_id: id,
            thread_id: id,
            actor_id: Some(UserId::new()),
            created_at: Utc::now(),
            read_at: read.then(Utc::now),
        }
    }

    fn service(stored: Option<Notification>, uow: MockUnitOfWork) -> NotificationService {
        let mut repo = MockNotificationRepository::new();
        repo.expect_notification()
            .returning(move |_| Ok(stored.clone()));
        let mut clock = MockClock::new();
        clock.expect_now().returning(Utc::now);
        NotificationService::new(Arc::new(repo), Arc::new(uow), Arc::new(clock))
    }

    #[tokio::test]
    async fn another_users_notification_is_not_found_and_nothing_is_written() {
        let owner = UserId::new();
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit().never();
        let s = service(Some(notification(owner, false)), uow);
        let stranger = Caller::session(UserId::new());
        let r = s.read(&stranger, NotificationId::new()).await;
        assert!(matches!(r, Err(NotificationError::NotFound)));
    }

    #[tokio::test]
    async fn reading_marks_only_that_notification_and_is_idempotent() {
        let owner = UserId::new();
        let unread = notification(owner, false);
        let id = unread.id;
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit()
            .withf(move |b| {
                matches!(&b.writes[..], [Write::ReadNotifications { user, id: Some(n), .. }]
                    if *user == owner && *n == id)
                    && b.changes.is_empty()
            })
            .times(1)
            .returning(|_| Ok(Committed::default()));
        let s = service(Some(unread), uow);
        let read = s.read(&Caller::session(owner), id).await.unwrap();
        assert!(read.read_at.is_some());

        let mut uow = MockUnitOfWork::new();
        uow.expect_commit().never();
        let s = service(Some(notification(owner, true)), uow);
        let again = s.read(&Caller::session(owner), id).await.unwrap();
        assert!(again.read_at.is_some());
    }

    #[tokio::test]
    async fn read_all_covers_the_caller_only_and_read_tokens_cannot_mark() {
        let owner = UserId::new();
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit()
            .withf(move |b| {
                matches!(&b.writes[..], [Write::ReadNotifications { user, id: None, .. }] if *user == owner)
            })
            .times(1)
            .returning(|_| Ok(Committed::default()));
        service(None, uow)
            .read_all(&Caller::session(owner))
            .await
            .unwrap();

        let mut uow = MockUnitOfWork::new();
        uow.expect_commit().never();
        let reader = Caller {
            user_id: owner,
            scope: Scope::Read,
        };
        let s = service(Some(notification(owner, false)), uow);
        assert!(matches!(
            s.read_all(&reader).await,
            Err(NotificationError::Forbidden)
        ));
        assert!(matches!(
            s.read(&reader, NotificationId::new()).await,
            Err(NotificationError::Forbidden)
        ));
    }
}
