//! Workspaces, memberships and invitations (reads; writes go through the unit of work).

use chrono::{DateTime, Utc};
use mdcreator_domain::invitations::{Invitation, InvitationRepository};
use mdcreator_domain::members::{Member, MemberProfile, MembershipRepository};
use mdcreator_domain::workspaces::{Workspace, WorkspaceRepository, WorkspaceView};
use mdcreator_domain::{InvitationId, Role, StoreError, UserId, WorkspaceId};
use sea_orm::sea_query::{Expr, ExprTrait, SimpleExpr};
use sea_orm::{
    ColumnTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, RelationTrait,
};

use crate::SqlStore;
use crate::entity::{invitations, users, workspace_members, workspaces};
use crate::error::{corrupt, store_error};
use crate::rows;

#[async_trait::async_trait]
impl WorkspaceRepository for SqlStore {
    async fn workspace(&self, id: WorkspaceId) -> Result<Option<Workspace>, StoreError> {
        let row = workspaces::Entity::find_by_id(id.0)
            .filter(workspaces::Column::DeletedAt.is_null())
            .one(&self.db)
            .await
            .map_err(store_error)?;
        Ok(row.map(rows::workspace))
    }

    async fn workspaces_of(&self, user: UserId) -> Result<Vec<WorkspaceView>, StoreError> {
        let found = workspace_members::Entity::find()
            .find_also_related(workspaces::Entity)
            .filter(workspace_members::Column::UserId.eq(user.0))
            .filter(workspaces::Column::DeletedAt.is_null())
            .order_by_asc(workspaces::Column::CreatedAt)
            .order_by_asc(workspaces::Column::Id)
            .all(&self.db)
            .await
            .map_err(store_error)?;
        found
            .into_iter()
            .filter_map(|(member, workspace)| workspace.map(|w| (member, w)))
            .map(|(member, workspace)| {
                Ok(WorkspaceView {
                    role: rows::role(&member.role)?,
                    workspace: rows::workspace(workspace),
                })
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl MembershipRepository for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn role_of(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Option<Role>, StoreError> {
        let role: Option<String> = workspace_members::Entity::find()
            .select_only()
            .column(workspace_members::Column::Role)
            .join(
                sea_orm::JoinType::InnerJoin,
                workspace_members::Relation::Workspace.def(),
            )
            .filter(workspace_members::Column::WorkspaceId.eq(workspace.0))
            .filter(workspace_members::Column::UserId.eq(user.0))
            .filter(workspaces::Column::DeletedAt.is_null())
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(store_error)?;
        role.as_deref().map(rows::role).transpose()
    }

    async fn members(&self, workspace: WorkspaceId) -> Result<Vec<MemberProfile>, StoreError> {
        let owners_first: SimpleExpr = Expr::case(
            Expr::col((workspace_members::Entity, workspace_members::Column::Role))
                .eq(Role::Owner.as_str()),
            0,
        )
        .finally(1)
        .into();
        let found = workspace_members::Entity::find()
            .find_also_related(users::Entity)
            .filter(workspace_members::Column::WorkspaceId.eq(workspace.0))
            .order_by(owners_first, Order::Asc)
            .order_by_asc(workspace_members::Column::CreatedAt)
            .order_by_asc(workspace_members::Column::UserId)
            .all(&self.db)
            .await
            .map_err(store_error)?;
        found
            .into_iter()
            .map(|(member, user)| {
                let user = user.ok_or_else(|| corrupt("member without user", member.user_id))?;
                let user = rows::user(user)?;
                Ok(MemberProfile {
                    member: rows::member(member)?,
                    email: user.email,
                    display_name: user.display_name,
                })
            })
            .collect()
    }

    async fn member(
        &self,
        workspace: WorkspaceId,
        user: UserId,
    ) -> Result<Option<Member>, StoreError> {
        let row = workspace_members::Entity::find_by_id((workspace.0, user.0))
            .one(&self.db)
            .await
            .map_err(store_error)?;
        row.map(rows::member).transpose()
    }
}

#[async_trait::async_trait]
impl InvitationRepository for SqlStore {
    async fn invitation(&self, id: InvitationId) -> Result<Option<Invitation>, StoreError> {
        let row = invitations::Entity::find_by_id(id.0)
            .one(&self.db)
            .await
            .map_err(store_error)?;
        row.map(rows::invitation).transpose()
    }

    async fn invitation_by_token_hash(&self, hash: &str) -> Result<Option<Invitation>, StoreError> {
        let row = invitations::Entity::find()
            .filter(invitations::Column::TokenHash.eq(hash))
            .one(&self.db)
            .await
            .map_err(store_error)?;
        row.map(rows::invitation).transpose()
    }

    async fn open_invitations(
        &self,
        workspace: WorkspaceId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invitation>, StoreError> {
        let found = invitations::Entity::find()
            .filter(invitations::Column::WorkspaceId.eq(workspace.0))
            .filter(invitations::Column::RevokedAt.is_null())
            .filter(invitations::Column::ExpiresAt.gt(now))
            .order_by_desc(invitations::Column::CreatedAt)
            .order_by_desc(invitations::Column::Id)
            .all(&self.db)
            .await
            .map_err(store_error)?;
        found.into_iter().map(rows::invitation).collect()
    }
}
