//! Invitations: by e-mail (one use, for that address) or as a link (max uses, expiry).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::access::{Access, AccessError, Caller};
use crate::feed::{AuditEvent, Change, CommitError, EntityType, UnitOfWork, Write, WriteBatch};
use crate::members::{Member, MembershipRepository};
use crate::ports::{Clock, StoreError};
use crate::rbac::{Action, Role};
use crate::secrets::{random_secret, secret_hash};
use crate::users::UserRepository;
use crate::values::{Email, Invalid};
use crate::workspaces::{WorkspaceRepository, WorkspaceView};
use crate::{InvitationId, UserId, WorkspaceId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationKind {
    Email,
    Link,
}

impl InvitationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationKind::Email => "email",
            InvitationKind::Link => "link",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: InvitationId,
    pub workspace_id: WorkspaceId,
    pub kind: InvitationKind,
    pub email: Option<Email>,
    pub role: Role,
    pub token_hash: String,
    pub max_uses: Option<i32>,
    pub uses: i32,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
}

/// A new invitation with its token, which is shown this once and never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedInvitation {
    pub invitation: Invitation,
    pub token: String,
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait InvitationRepository: Send + Sync {
    async fn invitation(&self, id: InvitationId) -> Result<Option<Invitation>, StoreError>;
    async fn invitation_by_token_hash(&self, hash: &str) -> Result<Option<Invitation>, StoreError>;
    /// The workspace's invitations that are neither revoked nor expired at `now`, newest first.
    async fn open_invitations(
        &self,
        workspace: WorkspaceId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invitation>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum InvitationError {
    #[error("workspace not found")]
    WorkspaceNotFound,
    #[error("invitation not found")]
    NotFound,
    #[error("the invitation has expired, was revoked or is used up")]
    Expired,
    #[error("this invitation is for another e-mail address")]
    EmailMismatch,
    #[error("not allowed")]
    Forbidden,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("the invitation changed meanwhile; retry")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccessError> for InvitationError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NotFound => InvitationError::WorkspaceNotFound,
            AccessError::Forbidden => InvitationError::Forbidden,
            AccessError::Store(e) => InvitationError::Store(e),
        }
    }
}

impl From<CommitError> for InvitationError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Store(e) => InvitationError::Store(e),
            _ => InvitationError::Conflict,
        }
    }
}

/// `POST /workspaces/{ws}/invitations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvitation {
    /// By e-mail when set; otherwise a link.
    pub email: Option<String>,
    pub role: Role,
    /// Links only; default unlimited.
    pub max_uses: Option<i64>,
    /// Default 7 days, at most 30.
    pub expires_in_days: Option<i64>,
}

pub struct InvitationService {
    invitations: Arc<dyn InvitationRepository>,
    members: Arc<dyn MembershipRepository>,
    workspaces: Arc<dyn WorkspaceRepository>,
    users: Arc<dyn UserRepository>,
    access: Access,
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
}

impl InvitationService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        invitations: Arc<dyn InvitationRepository>,
        members: Arc<dyn MembershipRepository>,
        workspaces: Arc<dyn WorkspaceRepository>,
        users: Arc<dyn UserRepository>,
        access: Access,
        uow: Arc<dyn UnitOfWork>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            invitations,
            members,
            workspaces,
            users,
            access,
            uow,
            clock,
        }
    }

    #[tracing::instrument(skip_all, fields(user = %caller.user_id, workspace = %workspace))]
    pub async fn create(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        request: NewInvitation,
    ) -> Result<IssuedInvitation, InvitationError> {
        let mine = self
            .access
            .workspace(caller, workspace, Action::Invite)
            .await?;
        if request.role > mine {
            return Err(InvitationError::Forbidden);
        }
        let days = request.expires_in_days.unwrap_or(7);
        if !(1..=30).contains(&days) {
            return Err(Invalid::new("expires_in_days", "must be between 1 and 30").into());
        }
        let email = request.email.as_deref().map(Email::parse).transpose()?;
        let (kind, max_uses) = match (&email, request.max_uses) {
            (Some(_), None | Some(1)) => (InvitationKind::Email, Some(1)),
            (Some(_), Some(_)) => {
                return Err(Invalid::new("max_uses", "e-mail invitations are single-use").into());
            }
            (None, None) => (InvitationKind::Link, None),
            (None, Some(n)) if (1..=10_000).contains(&n) => (InvitationKind::Link, Some(n as i32)),
            (None, Some(_)) => {
                return Err(Invalid::new("max_uses", "must be between 1 and 10000").into());
            }
        };
        let now = self.clock.now();
        let token = random_secret("mdi_");
        let invitation = Invitation {
            id: InvitationId::new(),
            workspace_id: workspace,
            kind,
            email,
            role: request.role,
            token_hash: secret_hash(&token),
            max_uses,
            uses: 0,
            expires_at: now + Duration::days(days),
            revoked_at: None,
            created_by: Some(caller.user_id),
            created_at: now,
        };
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::InsertInvitation(invitation.clone()))
            .write(Write::Audit(AuditEvent {
                workspace_id: workspace,
                action: "invitation.create",
                target_type: EntityType::Member,
                target_id: Some(invitation.id.0),
                details: serde_json::json!({
                    "kind": kind.as_str(), "role": request.role.as_str()
                }),
            }));
        self.uow.commit(batch).await?;
        Ok(IssuedInvitation { invitation, token })
    }

    pub async fn list(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
    ) -> Result<Vec<Invitation>, InvitationError> {
        self.access
            .workspace(caller, workspace, Action::Invite)
            .await?;
        let mut open = self
            .invitations
            .open_invitations(workspace, self.clock.now())
            .await?;
        // A used-up invitation is refused on accept (410), so it is not open either.
        open.retain(|i| i.max_uses.is_none_or(|max| i.uses < max));
        Ok(open)
    }

    #[tracing::instrument(skip_all, fields(user = %caller.user_id, workspace = %workspace))]
    pub async fn revoke(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: InvitationId,
    ) -> Result<(), InvitationError> {
        self.access
            .workspace(caller, workspace, Action::Invite)
            .await?;
        let mut invitation = self
            .invitations
            .invitation(id)
            .await?
            .filter(|i| i.workspace_id == workspace)
            .ok_or(InvitationError::NotFound)?;
        if invitation.revoked_at.is_some() {
            return Ok(());
        }
        invitation.revoked_at = Some(self.clock.now());
        let uses = invitation.uses;
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::UpdateInvitation {
                invitation,
                expected_uses: uses,
            })
            .write(Write::Audit(AuditEvent {
                workspace_id: workspace,
                action: "invitation.revoke",
                target_type: EntityType::Member,
                target_id: Some(id.0),
                details: serde_json::json!({}),
            }));
        self.uow.commit(batch).await?;
        Ok(())
    }

    /// Joins the workspace with the invitation's role. A member who already has a role at least
    /// as high keeps it (an invitation never demotes).
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn accept(
        &self,
        caller: &Caller,
        token: &str,
    ) -> Result<WorkspaceView, InvitationError> {
        if caller.scope == crate::Scope::Read {
            return Err(InvitationError::Forbidden);
        }
        if token.is_empty() || token.len() > 200 {
            return Err(InvitationError::NotFound);
        }
        let mut invitation = self
            .invitations
            .invitation_by_token_hash(&secret_hash(token))
            .await?
            .ok_or(InvitationError::NotFound)?;
        let now = self.clock.now();
        let used_up = invitation
            .max_uses
            .is_some_and(|max| invitation.uses >= max);
        if invitation.revoked_at.is_some() || invitation.expires_at <= now || used_up {
            return Err(InvitationError::Expired);
        }
        let workspace = self
            .workspaces
            .workspace(invitation.workspace_id)
            .await?
            .ok_or(InvitationError::NotFound)?;
        if let Some(email) = &invitation.email {
            let me = self
                .users
                .user_by_id(caller.user_id)
                .await?
                .ok_or(InvitationError::NotFound)?;
            if &me.email != email {
                return Err(InvitationError::EmailMismatch);
            }
        }
        let current = self.members.member(workspace.id, caller.user_id).await?;
        if let Some(member) = current.as_ref().filter(|m| m.role >= invitation.role) {
            return Ok(WorkspaceView {
                workspace,
                role: member.role,
            });
        }
        let member = Member {
            workspace_id: workspace.id,
            user_id: caller.user_id,
            role: invitation.role,
            created_at: current.as_ref().map_or(now, |m| m.created_at),
            updated_at: now,
        };
        let uses = invitation.uses;
        invitation.uses += 1;
        let role = invitation.role;
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::UpdateInvitation {
                invitation,
                expected_uses: uses,
            })
            .write(Write::PutMember {
                member,
                expected: current.map(|m| m.role),
            })
            .write(Write::Audit(AuditEvent {
                workspace_id: workspace.id,
                action: "invitation.accept",
                target_type: EntityType::Member,
                target_id: Some(caller.user_id.0),
                details: serde_json::json!({ "role": role.as_str() }),
            }))
            .change(Change::upsert(
                workspace.id,
                EntityType::Member,
                caller.user_id.0,
            ));
        self.uow.commit(batch).await?;
        Ok(WorkspaceView { workspace, role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::MockDocumentGrants;
    use crate::feed::{Committed, MockUnitOfWork};
    use crate::members::MockMembershipRepository;
    use crate::ports::MockClock;
    use crate::users::{MockUserRepository, User};
    use crate::workspaces::{MockWorkspaceRepository, Workspace};

    struct Setup {
        role: Option<Role>,
        invitation: Option<Invitation>,
        existing: Option<Role>,
        my_email: &'static str,
        uow: MockUnitOfWork,
    }

    fn build(s: Setup) -> InvitationService {
        let role = s.role;
        let mut access_members = MockMembershipRepository::new();
        access_members
            .expect_role_of()
            .returning(move |_, _| Ok(role));
        let access = Access::new(
            Arc::new(access_members),
            Arc::new(MockDocumentGrants::new()),
        );
        let inv = s.invitation.clone();
        let mut invitations = MockInvitationRepository::new();
        invitations
            .expect_invitation_by_token_hash()
            .returning(move |_| Ok(inv.clone()));
        let inv = s.invitation.clone();
        invitations
            .expect_invitation()
            .returning(move |_| Ok(inv.clone()));
        let inv = s.invitation;
        invitations
            .expect_open_invitations()
            .returning(move |_, _| Ok(inv.clone().into_iter().collect()));
        let existing = s.existing;
        let mut members = MockMembershipRepository::new();
        members.expect_member().returning(move |ws, user| {
            Ok(existing.map(|role| Member {
                workspace_id: ws,
                user_id: user,
                role,
                created_at: Utc::now(),
                updated_at: Utc::now(),
            }))
        });
        let mut workspaces = MockWorkspaceRepository::new();
        workspaces.expect_workspace().returning(|id| {
            Ok(Some(Workspace {
                id,
                name: "T".into(),
                slug: "t".into(),
                settings: serde_json::json!({}),
                created_by: None,
                created_at: Utc::now(),
                updated_at: Utc::now(),
                deleted_at: None,
            }))
        });
        let email = s.my_email;
        let mut users = MockUserRepository::new();
        users.expect_user_by_id().returning(move |id| {
            Ok(Some(User {
                id,
                subject: "s".into(),
                email: Email::parse(email).unwrap(),
                display_name: "Me".into(),
                avatar_url: None,
                created_at: Utc::now(),
                updated_at: Utc::now(),
            }))
        });
        let mut clock = MockClock::new();
        clock.expect_now().returning(Utc::now);
        InvitationService::new(
            Arc::new(invitations),
            Arc::new(members),
            Arc::new(workspaces),
            Arc::new(users),
            access,
            Arc::new(s.uow),
            Arc::new(clock),
        )
    }

    fn invitation(kind: InvitationKind, role: Role) -> Invitation {
        Invitation {
            id: InvitationId::new(),
            workspace_id: WorkspaceId::new(),
            kind,
            email: (kind == InvitationKind::Email)
                .then(|| Email::parse("bob@example.com").unwrap()),
            role,
            token_hash: secret_hash("mdi_x"),
            max_uses: Some(1),
            uses: 0,
            expires_at: Utc::now() + Duration::days(1),
            revoked_at: None,
            created_by: None,
            created_at: Utc::now(),
        }
    }

    fn committing(times: usize) -> MockUnitOfWork {
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit()
            .times(times)
            .returning(|_| Ok(Committed::default()));
        uow
    }

    fn setup(role: Option<Role>, invitation: Option<Invitation>, uow: MockUnitOfWork) -> Setup {
        Setup {
            role,
            invitation,
            existing: None,
            my_email: "bob@example.com",
            uow,
        }
    }

    #[tokio::test]
    async fn only_admins_invite_and_never_above_their_role() {
        for mine in Role::ALL {
            for role in Role::ALL {
                let allowed = mine >= Role::Admin && role <= mine;
                let svc = build(setup(Some(mine), None, committing(usize::from(allowed))));
                let req = NewInvitation {
                    email: None,
                    role,
                    max_uses: None,
                    expires_in_days: None,
                };
                let r = svc
                    .create(&Caller::session(UserId::new()), WorkspaceId::new(), req)
                    .await;
                assert_eq!(r.is_ok(), allowed, "{mine} invites {role}");
            }
        }
    }

    #[tokio::test]
    async fn created_invitations_store_only_the_token_hash() {
        let svc = build(setup(Some(Role::Admin), None, committing(1)));
        let req = NewInvitation {
            email: Some("Bob@Example.com".into()),
            role: Role::Editor,
            max_uses: None,
            expires_in_days: Some(3),
        };
        let out = svc
            .create(&Caller::session(UserId::new()), WorkspaceId::new(), req)
            .await
            .unwrap();
        assert!(out.token.starts_with("mdi_"));
        assert_eq!(out.invitation.token_hash, secret_hash(&out.token));
        assert_eq!(out.invitation.kind, InvitationKind::Email);
        assert_eq!(out.invitation.max_uses, Some(1));
        assert_eq!(out.invitation.email.unwrap().as_str(), "bob@example.com");
    }

    #[tokio::test]
    async fn bad_invitation_requests_are_refused() {
        for (email, max_uses, days) in [
            (Some("bob@example.com"), Some(5), None),
            (None, Some(0), None),
            (None, Some(-3), None),
            (None, None, Some(0)),
            (None, None, Some(31)),
            (Some("nope"), None, None),
        ] {
            let svc = build(setup(Some(Role::Owner), None, MockUnitOfWork::new()));
            let req = NewInvitation {
                email: email.map(Into::into),
                role: Role::Viewer,
                max_uses,
                expires_in_days: days,
            };
            let r = svc
                .create(&Caller::session(UserId::new()), WorkspaceId::new(), req)
                .await;
            assert!(
                matches!(r, Err(InvitationError::Invalid(_))),
                "{email:?} {max_uses:?} {days:?}"
            );
        }
    }

    #[tokio::test]
    async fn accepting_joins_with_the_role_and_counts_the_use() {
        let inv = invitation(InvitationKind::Email, Role::Editor);
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit()
            .withf(|b| {
                matches!(&b.writes[..2], [
                    Write::UpdateInvitation { invitation, expected_uses: 0 },
                    Write::PutMember { member, expected: None },
                ] if invitation.uses == 1 && member.role == Role::Editor)
            })
            .times(1)
            .returning(|_| Ok(Committed::default()));
        let svc = build(setup(None, Some(inv), uow));
        let view = svc
            .accept(&Caller::session(UserId::new()), "mdi_x")
            .await
            .unwrap();
        assert_eq!(view.role, Role::Editor);
    }

    #[tokio::test]
    async fn email_invitations_are_for_that_address_only() {
        let inv = invitation(InvitationKind::Email, Role::Editor);
        let mut s = setup(None, Some(inv), MockUnitOfWork::new());
        s.my_email = "mallory@example.com";
        let r = build(s)
            .accept(&Caller::session(UserId::new()), "mdi_x")
            .await;
        assert!(matches!(r, Err(InvitationError::EmailMismatch)));
    }

    #[tokio::test]
    async fn expired_revoked_and_used_up_invitations_are_refused() {
        let mut expired = invitation(InvitationKind::Link, Role::Viewer);
        expired.expires_at = Utc::now() - Duration::seconds(1);
        let mut revoked = invitation(InvitationKind::Link, Role::Viewer);
        revoked.revoked_at = Some(Utc::now());
        let mut used = invitation(InvitationKind::Link, Role::Viewer);
        used.uses = 1;
        for inv in [expired, revoked, used] {
            let svc = build(setup(None, Some(inv), MockUnitOfWork::new()));
            let r = svc.accept(&Caller::session(UserId::new()), "mdi_x").await;
            assert!(matches!(r, Err(InvitationError::Expired)));
        }
        let svc = build(setup(None, None, MockUnitOfWork::new()));
        let r = svc
            .accept(&Caller::session(UserId::new()), "mdi_unknown")
            .await;
        assert!(matches!(r, Err(InvitationError::NotFound)));
    }

    #[tokio::test]
    async fn used_up_invitations_are_not_listed_as_open() {
        let mut used = invitation(InvitationKind::Link, Role::Viewer);
        used.max_uses = Some(2);
        used.uses = 2;
        let mut unlimited = invitation(InvitationKind::Link, Role::Viewer);
        unlimited.max_uses = None;
        unlimited.uses = 7;
        let mut half = invitation(InvitationKind::Link, Role::Viewer);
        half.max_uses = Some(2);
        half.uses = 1;
        for (inv, listed) in [(used, false), (unlimited, true), (half, true)] {
            let svc = build(setup(Some(Role::Admin), Some(inv), MockUnitOfWork::new()));
            let open = svc
                .list(&Caller::session(UserId::new()), WorkspaceId::new())
                .await
                .unwrap();
            assert_eq!(open.len(), usize::from(listed));
        }
    }

    #[tokio::test]
    async fn an_invitation_never_demotes_a_member() {
        let inv = invitation(InvitationKind::Link, Role::Viewer);
        let mut s = setup(None, Some(inv), MockUnitOfWork::new());
        s.existing = Some(Role::Admin);
        let view = build(s)
            .accept(&Caller::session(UserId::new()), "mdi_x")
            .await
            .unwrap();
        assert_eq!(view.role, Role::Admin);
    }
}
