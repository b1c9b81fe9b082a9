//! Workspaces: create, list, read, rename/settings, soft delete.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::access::{Access, AccessError, Caller};
use crate::feed::{
    AuditEvent, Change, Check, CommitError, EntityType, UnitOfWork, Write, WriteBatch,
};
use crate::members::Member;
use crate::ports::{Clock, StoreError};
use crate::rbac::{Action, Role};
use crate::values::{Invalid, checked_name, slugify};
use crate::{UserId, WorkspaceId};

#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub slug: String,
    pub settings: serde_json::Value,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A workspace as one member sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceView {
    pub workspace: Workspace,
    pub role: Role,
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait WorkspaceRepository: Send + Sync {
    /// MUST return `None` for unknown and for soft-deleted workspaces.
    async fn workspace(&self, id: WorkspaceId) -> Result<Option<Workspace>, StoreError>;
    /// The non-deleted workspaces `user` belongs to, with the user's role, oldest first.
    async fn workspaces_of(&self, user: UserId) -> Result<Vec<WorkspaceView>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("workspace not found")]
    NotFound,
    #[error("not allowed")]
    Forbidden,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccessError> for WorkspaceError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NotFound => WorkspaceError::NotFound,
            AccessError::Forbidden => WorkspaceError::Forbidden,
            AccessError::Store(e) => WorkspaceError::Store(e),
        }
    }
}

/// `PATCH /workspaces/{id}`: absent fields are kept. `settings` must be a JSON object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkspacePatch {
    pub name: Option<String>,
    pub settings: Option<serde_json::Value>,
}

const MAX_NAME: usize = 100;
const MAX_SETTINGS_BYTES: usize = 64 * 1024;

pub struct WorkspaceService {
    workspaces: Arc<dyn WorkspaceRepository>,
    access: Access,
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
}

impl WorkspaceService {
    pub fn new(
        workspaces: Arc<dyn WorkspaceRepository>,
        access: Access,
        uow: Arc<dyn UnitOfWork>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            workspaces,
            access,
            uow,
            clock,
        }
    }

    /// Any user may create a workspace and becomes its owner.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn create(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<WorkspaceView, WorkspaceError> {
        if caller.scope == crate::Scope::Read {
            return Err(WorkspaceError::Forbidden);
        }
        let name = checked_name("name", name, MAX_NAME)?;
        let base = slugify(&name);
        // Slugs are unique; on a clash retry with a short random suffix.
        for attempt in 0..4 {
            let now = self.clock.now();
            let slug = if attempt == 0 {
                base.clone()
            } else {
                format!(
                    "{base}-{}",
                    &crate::secrets::random_secret("")[..6].to_lowercase()
                )
            };
            let workspace = Workspace {
                id: WorkspaceId::new(),
                name: name.clone(),
                slug,
                settings: serde_json::json!({}),
                created_by: Some(caller.user_id),
                created_at: now,
                updated_at: now,
                deleted_at: None,
            };
            let owner = Member {
                workspace_id: workspace.id,
                user_id: caller.user_id,
                role: Role::Owner,
                created_at: now,
                updated_at: now,
            };
            let batch = WriteBatch::by(caller.user_id)
                .write(Write::InsertWorkspace(workspace.clone()))
                .write(Write::PutMember {
                    member: owner,
                    expected: None,
                })
                .change(Change::upsert(
                    workspace.id,
                    EntityType::Workspace,
                    workspace.id.0,
                ))
                .change(Change::upsert(
                    workspace.id,
                    EntityType::Member,
                    caller.user_id.0,
                ));
            match self.uow.commit(batch).await {
                Ok(_) => {
                    return Ok(WorkspaceView {
                        workspace,
                        role: Role::Owner,
                    });
                }
                Err(CommitError::Duplicate(_)) => continue,
                Err(e) => return Err(unexpected(e)),
            }
        }
        Err(unexpected(CommitError::Duplicate("workspaces.slug")))
    }

    pub async fn list(&self, caller: &Caller) -> Result<Vec<WorkspaceView>, WorkspaceError> {
        Ok(self.workspaces.workspaces_of(caller.user_id).await?)
    }

    pub async fn get(
        &self,
        caller: &Caller,
        id: WorkspaceId,
    ) -> Result<WorkspaceView, WorkspaceError> {
        let role = self
            .access
            .workspace(caller, id, Action::ReadContent)
            .await?;
        let workspace = self
            .workspaces
            .workspace(id)
            .await?
            .ok_or(WorkspaceError::NotFound)?;
        Ok(WorkspaceView { workspace, role })
    }

    #[tracing::instrument(skip_all, fields(user = %caller.user_id, workspace = %id))]
    pub async fn update(
        &self,
        caller: &Caller,
        id: WorkspaceId,
        patch: WorkspacePatch,
    ) -> Result<WorkspaceView, WorkspaceError> {
        let role = self
            .access
            .workspace(caller, id, Action::EditWorkspaceSettings)
            .await?;
        let mut workspace = self
            .workspaces
            .workspace(id)
            .await?
            .ok_or(WorkspaceError::NotFound)?;
        if let Some(name) = patch.name {
            workspace.name = checked_name("name", &name, MAX_NAME)?;
        }
        if let Some(settings) = patch.settings {
            if !settings.is_object() {
                return Err(Invalid::new("settings", "must be a JSON object").into());
            }
            if settings.to_string().len() > MAX_SETTINGS_BYTES {
                return Err(Invalid::new("settings", "must be at most 64 KiB").into());
            }
            workspace.settings = settings;
        }
        workspace.updated_at = self.clock.now();
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::UpdateWorkspace(workspace.clone()))
            .change(Change::upsert(id, EntityType::Workspace, id.0));
        self.uow.commit(batch).await.map_err(unexpected)?;
        Ok(WorkspaceView { workspace, role })
    }

    /// Soft delete by an owner; the workspace disappears for every member.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, workspace = %id))]
    pub async fn delete(&self, caller: &Caller, id: WorkspaceId) -> Result<(), WorkspaceError> {
        self.access
            .workspace(caller, id, Action::DeleteWorkspace)
            .await?;
        let mut workspace = self
            .workspaces
            .workspace(id)
            .await?
            .ok_or(WorkspaceError::NotFound)?;
        let now = self.clock.now();
        workspace.deleted_at = Some(now);
        workspace.updated_at = now;
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::UpdateWorkspace(workspace))
            .write(Write::Audit(AuditEvent {
                workspace_id: id,
                action: "workspace.delete",
                target_type: EntityType::Workspace,
                target_id: Some(id.0),
                details: serde_json::json!({}),
            }))
            .check(Check::WorkspaceHasOwner(id))
            .change(Change::delete(id, EntityType::Workspace, id.0));
        self.uow.commit(batch).await.map_err(unexpected)?;
        Ok(())
    }
}

fn unexpected(e: CommitError) -> WorkspaceError {
    match e {
        CommitError::Store(e) => WorkspaceError::Store(e),
        other => WorkspaceError::Store(StoreError::Unexpected(anyhow::anyhow!(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::MockDocumentGrants;
    use crate::feed::{Committed, MockUnitOfWork};
    use crate::members::MockMembershipRepository;
    use crate::ports::MockClock;

    fn access(role: Option<Role>) -> Access {
        let mut members = MockMembershipRepository::new();
        members.expect_role_of().returning(move |_, _| Ok(role));
        Access::new(Arc::new(members), Arc::new(MockDocumentGrants::new()))
    }

    fn clock() -> Arc<MockClock> {
        let mut c = MockClock::new();
        c.expect_now().returning(Utc::now);
        Arc::new(c)
    }

    fn workspace(id: WorkspaceId) -> Workspace {
        let now = Utc::now();
        Workspace {
            id,
            name: "Team".into(),
            slug: "team".into(),
            settings: serde_json::json!({}),
            created_by: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        }
    }

    fn service(role: Option<Role>, uow: MockUnitOfWork) -> WorkspaceService {
        let mut repo = MockWorkspaceRepository::new();
        repo.expect_workspace()
            .returning(|id| Ok(Some(workspace(id))));
        WorkspaceService::new(Arc::new(repo), access(role), Arc::new(uow), clock())
    }

    #[tokio::test]
    async fn creating_makes_the_caller_owner_and_feeds_both_rows() {
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit()
            .withf(|b| {
                matches!(&b.writes[..], [Write::InsertWorkspace(w), Write::PutMember { member, expected: None }]
                    if w.slug == "my-team" && member.role == Role::Owner)
                    && b.changes.len() == 2
            })
            .times(1)
            .returning(|_| Ok(Committed::default()));
        let view = service(None, uow)
            .create(&Caller::session(UserId::new()), " My Team ")
            .await
            .unwrap();
        assert_eq!(view.role, Role::Owner);
        assert_eq!(view.workspace.name, "My Team");
    }

    #[tokio::test]
    async fn a_slug_clash_retries_with_a_suffix() {
        let mut uow = MockUnitOfWork::new();
        let mut n = 0;
        uow.expect_commit().times(2).returning(move |_| {
            n += 1;
            if n == 1 {
                Err(CommitError::Duplicate("workspaces"))
            } else {
                Ok(Committed::default())
            }
        });
        let view = service(None, uow)
            .create(&Caller::session(UserId::new()), "Team")
            .await
            .unwrap();
        assert!(view.workspace.slug.starts_with("team-") && view.workspace.slug.len() == 11);
    }

    #[tokio::test]
    async fn each_role_can_do_exactly_what_the_matrix_says() {
        for role in Role::ALL {
            let caller = Caller::session(UserId::new());
            let id = WorkspaceId::new();
            let mut uow = MockUnitOfWork::new();
            uow.expect_commit().returning(|_| Ok(Committed::default()));
            let svc = service(Some(role), uow);
            assert!(svc.get(&caller, id).await.is_ok());
            let patch = WorkspacePatch {
                name: Some("New".into()),
                settings: None,
            };
            let updated = svc.update(&caller, id, patch).await;
            assert_eq!(updated.is_ok(), role >= Role::Admin, "{role} update");
            if role < Role::Admin {
                assert!(matches!(updated, Err(WorkspaceError::Forbidden)));
            }
            let deleted = svc.delete(&caller, id).await;
            assert_eq!(deleted.is_ok(), role == Role::Owner, "{role} delete");
        }
    }

    #[tokio::test]
    async fn non_members_see_nothing() {
        let svc = service(None, MockUnitOfWork::new());
        let caller = Caller::session(UserId::new());
        assert!(matches!(
            svc.get(&caller, WorkspaceId::new()).await,
            Err(WorkspaceError::NotFound)
        ));
        assert!(matches!(
            svc.delete(&caller, WorkspaceId::new()).await,
            Err(WorkspaceError::NotFound)
        ));
    }

    #[tokio::test]
    async fn settings_must_be_an_object_and_names_valid() {
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit().never();
        let svc = service(Some(Role::Owner), uow);
        let caller = Caller::session(UserId::new());
        for patch in [
            WorkspacePatch {
                name: None,
                settings: Some(serde_json::json!([1])),
            },
            WorkspacePatch {
                name: Some("".into()),
                settings: None,
            },
            WorkspacePatch {
                name: Some("x".repeat(101)),
                settings: None,
            },
        ] {
            let r = svc.update(&caller, WorkspaceId::new(), patch).await;
            assert!(matches!(r, Err(WorkspaceError::Invalid(_))));
        }
    }
}
