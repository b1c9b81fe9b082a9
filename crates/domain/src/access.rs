//! Who is calling, and the one place where membership turns into a yes, a 403 or a 404.

use std::sync::Arc;

use crate::documents::DocumentGrants;
use crate::members::MembershipRepository;
use crate::ports::StoreError;
use crate::rbac::{Action, Role};
use crate::{DocumentId, UserId, WorkspaceId};

/// How the caller authenticated, which bounds what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// An interactive session (access token from login).
    Session,
    /// A personal API token limited to reading.
    Read,
    /// A personal API token that may read and write.
    ReadWrite,
}

/// The authenticated user behind a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    pub scope: Scope,
}

impl Caller {
    pub fn session(user_id: UserId) -> Self {
        Self {
            user_id,
            scope: Scope::Session,
        }
    }
}

/// Why access was refused. `NotFound` hides existence from non-members.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a caller's role against the policy. Every use case goes through here.
#[derive(Clone)]
pub struct Access {
    members: Arc<dyn MembershipRepository>,
    grants: Arc<dyn DocumentGrants>,
}

impl Access {
    pub fn new(members: Arc<dyn MembershipRepository>, grants: Arc<dyn DocumentGrants>) -> Self {
        Self { members, grants }
    }

    /// The caller's role in `workspace` if it allows `action`.
    pub async fn workspace(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        action: Action,
    ) -> Result<Role, AccessError> {
        let role = self
            .members
            .role_of(workspace, caller.user_id)
            .await?
            .ok_or(AccessError::NotFound)?;
        check(caller, role, action)
    }

    /// The caller's effective role on one document (workspace role or document grant, whichever
    /// is higher) if it allows `action`.
    pub async fn document(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        document: DocumentId,
        action: Action,
    ) -> Result<Role, AccessError> {
        let member = self.members.role_of(workspace, caller.user_id).await?;
        let grant = self.grants.grant_of(document, caller.user_id).await?;
        let role = member.max(grant).ok_or(AccessError::NotFound)?;
        check(caller, role, action)
    }
}

fn check(caller: &Caller, role: Role, action: Action) -> Result<Role, AccessError> {
    if !role.allows(action) || (action.writes() && caller.scope == Scope::Read) {
        return Err(AccessError::Forbidden);
    }
    Ok(role)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::MockDocumentGrants;
    use crate::members::MockMembershipRepository;

    fn access(member: Option<Role>, grant: Option<Role>) -> Access {
        let mut members = MockMembershipRepository::new();
        members.expect_role_of().returning(move |_, _| Ok(member));
        let mut grants = MockDocumentGrants::new();
        grants.expect_grant_of().returning(move |_, _| Ok(grant));
        Access::new(Arc::new(members), Arc::new(grants))
    }

    #[tokio::test]
    async fn non_members_get_not_found_and_members_below_the_rule_get_forbidden() {
        let caller = Caller::session(UserId::new());
        let ws = WorkspaceId::new();
        let r = access(None, None)
            .workspace(&caller, ws, Action::ReadContent)
            .await;
        assert!(matches!(r, Err(AccessError::NotFound)));
        let r = access(Some(Role::Viewer), None)
            .workspace(&caller, ws, Action::EditDocuments)
            .await;
        assert!(matches!(r, Err(AccessError::Forbidden)));
        let r = access(Some(Role::Editor), None)
            .workspace(&caller, ws, Action::EditDocuments)
            .await;
        assert_eq!(r.unwrap(), Role::Editor);
    }

    #[tokio::test]
    async fn a_document_grant_raises_the_effective_role() {
        let caller = Caller::session(UserId::new());
        let (ws, doc) = (WorkspaceId::new(), DocumentId::new());
        let r = access(Some(Role::Viewer), Some(Role::Editor))
            .document(&caller, ws, doc, Action::EditDocuments)
            .await;
        assert_eq!(r.unwrap(), Role::Editor);
        let r = access(None, Some(Role::Commenter))
            .document(&caller, ws, doc, Action::Comment)
            .await;
        assert_eq!(r.unwrap(), Role::Commenter);
        let r = access(None, None)
            .document(&caller, ws, doc, Action::ReadContent)
            .await;
        assert!(matches!(r, Err(AccessError::NotFound)));
    }

    #[tokio::test]
    async fn read_only_tokens_cannot_write() {
        let caller = Caller {
            user_id: UserId::new(),
            scope: Scope::Read,
        };
        let ws = WorkspaceId::new();
        let a = access(Some(Role::Owner), None);
        assert!(a.workspace(&caller, ws, Action::ReadContent).await.is_ok());
        for action in Action::ALL.into_iter().filter(|a| a.writes()) {
            let r = a.workspace(&caller, ws, action).await;
            assert!(matches!(r, Err(AccessError::Forbidden)), "{action:?}");
        }
    }
}
