//! Workspace members: list, change role, remove or leave, transfer ownership.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::access::{Access, AccessError, Caller};
use crate::feed::{
    AuditEvent, Change, Check, CommitError, EntityType, UnitOfWork, Write, WriteBatch,
};
use crate::ports::{Clock, StoreError};
use crate::rbac::{Action, Role};
use crate::values::Email;
use crate::{UserId, WorkspaceId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A member with the profile fields a member list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberProfile {
    pub member: Member,
    pub email: Email,
    pub display_name: String,
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait MembershipRepository: Send + Sync {
    /// The user's role. MUST return `None` when the user is not a member or the workspace is
    /// unknown or soft-deleted.
    async fn role_of(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Option<Role>, StoreError>;
    /// Members with their profiles, owners first, then by join time.
    async fn members(&self, workspace: WorkspaceId) -> Result<Vec<MemberProfile>, StoreError>;
    /// One membership row, `None` when absent.
    async fn member(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Option<Member>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("workspace not found")]
    WorkspaceNotFound,
    #[error("member not found")]
    MemberNotFound,
    #[error("not allowed")]
    Forbidden,
    #[error("the workspace must keep at least one owner")]
    LastOwner,
    #[error("the member changed meanwhile; retry")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccessError> for MemberError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NotFound => MemberError::WorkspaceNotFound,
            AccessError::Forbidden => MemberError::Forbidden,
            AccessError::Store(e) => MemberError::Store(e),
        }
    }
}

impl From<CommitError> for MemberError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::NoOwnerLeft => MemberError::LastOwner,
            CommitError::Stale(_) | CommitError::Duplicate(_) => MemberError::Conflict,
            CommitError::Store(e) => MemberError::Store(e),
        }
    }
}

pub struct MemberService {
    members: Arc<dyn MembershipRepository>,
    access: Access,
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
}

impl MemberService {
    pub fn new(
        members: Arc<dyn MembershipRepository>,
        access: Access,
        uow: Arc<dyn UnitOfWork>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            members,
            access,
            uow,
            clock,
        }
    }

    pub async fn list(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
    ) -> Result<Vec<MemberProfile>, MemberError> {
        self.access
            .workspace(caller, workspace, Action::ReadContent)
            .await?;
        Ok(self.members.members(workspace).await?)
    }

    /// Changes a member's role. Nobody grants above their own role; only owners make or unmake
    /// owners; the last owner cannot be demoted.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, workspace = %workspace))]
    pub async fn change_role(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        target: UserId,
        role: Role,
    ) -> Result<Member, MemberError> {
        let mine = self
            .access
            .workspace(caller, workspace, Action::ChangeRoles)
            .await?;
        let mut member = self.target(workspace, target).await?;
        if !mine.may_change_role(member.role, role) {
            return Err(MemberError::Forbidden);
        }
        if member.role == role {
            return Ok(member);
        }
        let previous = member.role;
        member.role = role;
        member.updated_at = self.clock.now();
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::PutMember {
                member: member.clone(),
                expected: Some(previous),
            })
            .write(audit(
                workspace,
                "member.role",
                target,
                serde_json::json!({
                    "from": previous.as_str(), "to": role.as_str()
                }),
            ))
            .check(Check::WorkspaceHasOwner(workspace))
            .change(Change::upsert(workspace, EntityType::Member, target.0));
        self.uow.commit(batch).await?;
        Ok(member)
    }

    /// Removes a member (≥ admin, by rank) or leaves (self). The last owner cannot leave.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, workspace = %workspace))]
    pub async fn remove(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        target: UserId,
    ) -> Result<(), MemberError> {
        let leaving = target == caller.user_id;
        let mine = if leaving {
            // Leaving is a write, so a read-only token may not do it either.
            self.access
                .workspace(caller, workspace, Action::ReadContent)
                .await?;
            if caller.scope == crate::Scope::Read {
                return Err(MemberError::Forbidden);
            }
            None
        } else {
            Some(
                self.access
                    .workspace(caller, workspace, Action::RemoveMembers)
                    .await?,
            )
        };
        let member = self.target(workspace, target).await?;
        if mine.is_some_and(|mine| !mine.may_remove(member.role)) {
            return Err(MemberError::Forbidden);
        }
        let action = if leaving {
            "member.leave"
        } else {
            "member.remove"
        };
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::RemoveMember {
                workspace_id: workspace,
                user_id: target,
                expected: member.role,
            })
            .write(audit(
                workspace,
                action,
                target,
                serde_json::json!({
                    "role": member.role.as_str()
                }),
            ))
            .check(Check::WorkspaceHasOwner(workspace))
            .change(Change::delete(workspace, EntityType::Member, target.0));
        self.uow.commit(batch).await?;
        Ok(())
    }

    /// Makes `to` an owner and the calling owner an admin, in one transaction.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, workspace = %workspace))]
    pub async fn transfer_ownership(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        to: UserId,
    ) -> Result<Vec<Member>, MemberError> {
        self.access
            .workspace(caller, workspace, Action::TransferOwnership)
            .await?;
        if to == caller.user_id {
            return Err(MemberError::Conflict);
        }
        let now = self.clock.now();
        let mut new_owner = self.target(workspace, to).await?;
        let mut old_owner = self.target(workspace, caller.user_id).await?;
        let (new_prev, old_prev) = (new_owner.role, old_owner.role);
        new_owner.role = Role::Owner;
        new_owner.updated_at = now;
        old_owner.role = Role::Admin;
        old_owner.updated_at = now;
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::PutMember {
                member: new_owner.clone(),
                expected: Some(new_prev),
            })
            .write(Write::PutMember {
                member: old_owner.clone(),
                expected: Some(old_prev),
            })
            .write(audit(
                workspace,
                "workspace.transfer_ownership",
                to,
                serde_json::json!({
                    "from": caller.user_id
                }),
            ))
            .check(Check::WorkspaceHasOwner(workspace))
            .change(Change::upsert(workspace, EntityType::Member, to.0))
            .change(Change::upsert(
                workspace,
                EntityType::Member,
                caller.user_id.0,
            ));
        self.uow.commit(batch).await?;
        Ok(vec![new_owner, old_owner])
    }

    async fn target(&self, workspace: WorkspaceId, user: UserId) -> Result<Member, MemberError> {
        self.members
            .member(workspace, user)
            .await?
            .ok_or(MemberError::MemberNotFound)
    }
}

fn audit(
    workspace: WorkspaceId,
    action: &'static str,
    target: UserId,
    details: serde_json::Value,
) -> Write {
    Write::Audit(AuditEvent {
        workspace_id: workspace,
        action,
        target_type: EntityType::Member,
        target_id: Some(target.0),
        details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::MockDocumentGrants;
    use crate::feed::{Committed, MockUnitOfWork};
    use crate::ports::MockClock;

    struct World {
        caller: Caller,
        ws: WorkspaceId,
        target: UserId,
    }

    fn member(ws: WorkspaceId, user: UserId, role: Role) -> Member {
        let now = Utc::now();
        Member {
            workspace_id: ws,
            user_id: user,
            role,
            created_at: now,
            updated_at: now,
        }
    }

    fn service(w: &World, mine: Role, theirs: Role, uow: MockUnitOfWork) -> MemberService {
        let (me, ws, target) = (w.caller.user_id, w.ws, w.target);
        let mut members = MockMembershipRepository::new();
        members
            .expect_role_of()
            .returning(move |_, u| Ok(Some(if u == me { mine } else { theirs })));
        members.expect_member().returning(move |_, u| {
            Ok(Some(member(ws, u, if u == target { theirs } else { mine })))
        });
        let mut access_members = MockMembershipRepository::new();
        access_members
            .expect_role_of()
            .returning(move |_, u| Ok(Some(if u == me { mine } else { theirs })));
        let access = Access::new(
            Arc::new(access_members),
            Arc::new(MockDocumentGrants::new()),
        );
        let mut clock = MockClock::new();
        clock.expect_now().returning(Utc::now);
        MemberService::new(Arc::new(members), access, Arc::new(uow), Arc::new(clock))
    }

    fn world() -> World {
        World {
            caller: Caller::session(UserId::new()),
            ws: WorkspaceId::new(),
            target: UserId::new(),
        }
    }

    fn ok_uow() -> MockUnitOfWork {
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit().returning(|_| Ok(Committed::default()));
        uow
    }

    #[tokio::test]
    async fn role_changes_follow_the_policy_for_every_combination() {
        for mine in Role::ALL {
            for theirs in Role::ALL {
                for new in Role::ALL {
                    let w = world();
                    let svc = service(&w, mine, theirs, ok_uow());
                    let r = svc.change_role(&w.caller, w.ws, w.target, new).await;
                    let allowed =
                        mine.allows(Action::ChangeRoles) && mine.may_change_role(theirs, new);
                    assert_eq!(r.is_ok(), allowed, "{mine} changes {theirs} → {new}: {r:?}");
                    if !allowed {
                        assert!(matches!(r, Err(MemberError::Forbidden)));
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn demoting_the_last_owner_is_refused_by_the_owner_check() {
        let w = world();
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit()
            .withf(|b| {
                b.checks
                    .iter()
                    .any(|c| matches!(c, Check::WorkspaceHasOwner(_)))
            })
            .returning(|_| Err(CommitError::NoOwnerLeft));
        let svc = service(&w, Role::Owner, Role::Owner, uow);
        let me = w.caller.user_id;
        let r = svc.change_role(&w.caller, w.ws, me, Role::Admin).await;
        assert!(matches!(r, Err(MemberError::LastOwner)));
        let r = svc.remove(&w.caller, w.ws, me).await;
        assert!(matches!(r, Err(MemberError::LastOwner)));
    }

    #[tokio::test]
    async fn removal_follows_rank_and_anyone_may_leave() {
        for mine in Role::ALL {
            for theirs in Role::ALL {
                let w = world();
                let svc = service(&w, mine, theirs, ok_uow());
                let r = svc.remove(&w.caller, w.ws, w.target).await;
                assert_eq!(
                    r.is_ok(),
                    mine >= Role::Admin && mine.may_remove(theirs),
                    "{mine} removes {theirs}"
                );
            }
            let w = world();
            let svc = service(&w, mine, mine, ok_uow());
            let me = w.caller.user_id;
            assert!(
                svc.remove(&w.caller, w.ws, me).await.is_ok(),
                "{mine} leaves"
            );
        }
    }

    #[tokio::test]
    async fn ownership_transfer_swaps_roles_atomically() {
        let w = world();
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit()
            .withf(|b| {
                matches!(&b.writes[..3], [
                    Write::PutMember { member: a, expected: Some(Role::Editor) },
                    Write::PutMember { member: b, expected: Some(Role::Owner) },
                    Write::Audit(_),
                ] if a.role == Role::Owner && b.role == Role::Admin)
            })
            .times(1)
            .returning(|_| Ok(Committed::default()));
        let svc = service(&w, Role::Owner, Role::Editor, uow);
        let r = svc
            .transfer_ownership(&w.caller, w.ws, w.target)
            .await
            .unwrap();
        assert_eq!(r[0].role, Role::Owner);
        for mine in [Role::Viewer, Role::Commenter, Role::Editor, Role::Admin] {
            let w = world();
            let svc = service(&w, mine, Role::Editor, MockUnitOfWork::new());
            let r = svc.transfer_ownership(&w.caller, w.ws, w.target).await;
            assert!(matches!(r, Err(MemberError::Forbidden)), "{mine}");
        }
    }

    #[tokio::test]
    async fn outsiders_get_workspace_not_found() {
        let w = world();
        let mut members = MockMembershipRepository::new();
        members.expect_role_of().returning(|_, _| Ok(None));
        let access = Access::new(Arc::new(members), Arc::new(MockDocumentGrants::new()));
        let mut clock = MockClock::new();
        clock.expect_now().returning(Utc::now);
        let svc = MemberService::new(
            Arc::new(MockMembershipRepository::new()),
            access,
            Arc::new(MockUnitOfWork::new()),
            Arc::new(clock),
        );
        assert!(matches!(
            svc.list(&w.caller, w.ws).await,
            Err(MemberError::WorkspaceNotFound)
        ));
        assert!(matches!(
            svc.change_role(&w.caller, w.ws, w.target, Role::Viewer)
                .await,
            Err(MemberError::WorkspaceNotFound)
        ));
        assert!(matches!(
            svc.remove(&w.caller, w.ws, w.target).await,
            Err(MemberError::WorkspaceNotFound)
        ));
    }
}
