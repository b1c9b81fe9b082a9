//! `changes`: The per-workspace change feed: (workspace, seq) gap-free (`op`: upsert|delete).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "changes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub workspace_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    #[sea_orm(column_type = "Text")]
    pub entity_type: String,
    pub entity_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub op: String,
    pub version: Option<i64>,
    pub actor_id: Option<Uuid>,
    pub device_id: Option<Uuid>,
    pub at: DateTimeUtc,
    /// The last seq of the commit that wrote this row (in its workspace): pull pages end there.
    pub commit_end_seq: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::workspaces::Entity",
        from = "Column::WorkspaceId",
        to = "super::workspaces::Column::Id",
        on_delete = "Cascade"
    )]
    Workspace,
}

impl Related<super::workspaces::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Workspace.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
