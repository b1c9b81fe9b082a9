//! Pull: the changes since a cursor, across the caller's workspaces, in one database snapshot.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::cursor::Cursor;
use super::ports::{DocumentState, EntityRef, EntityState, FeedSnapshot};
use super::{DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT, SyncService};
use crate::access::Caller;
use crate::feed::{ChangeOp, EntityType};
use crate::ports::StoreError;
use crate::values::Invalid;
use crate::workspaces::WorkspaceView;
use crate::{DeviceId, DocumentId, WorkspaceId};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullRequest {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
    /// The calling device, for `last_mutation_id`.
    pub device: Option<DeviceId>,
}

/// Where a change belongs: one of the caller's workspaces, or the `shared` pseudo-workspace of
/// documents shared to the caller alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Workspace(WorkspaceId),
    Shared,
}

/// The current state of a changed entity, as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeData {
    /// With the caller's role.
    Workspace(WorkspaceView),
    Member(crate::members::MemberProfile),
    Folder(crate::folders::Folder),
    Document(DocumentState),
    ContextFile(crate::context_files::ContextFile),
    Attachment(crate::attachments::Attachment),
    Comment(crate::comments::Comment),
}

/// One entity's latest state (or tombstone) since the cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncChange {
    pub scope: Scope,
    pub entity_type: EntityType,
    pub entity_id: Uuid,
    pub op: ChangeOp,
    pub version: Option<i64>,
    /// `None` for tombstones.
    pub data: Option<ChangeData>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PullPage {
    pub changes: Vec<SyncChange>,
    pub cursor: String,
    pub has_more: bool,
    /// The device's last applied mutation id, from the same snapshot as the changes.
    pub last_mutation_id: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The cursor is older than the compaction horizon: start over from an empty cursor.
    #[error("the cursor is older than the change feed's retention; pull again from the start")]
    CursorExpired,
    #[error("device not found")]
    DeviceNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncService {
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn pull(&self, caller: &Caller, request: PullRequest) -> Result<PullPage, SyncError> {
        let limit = match request.limit {
            None => DEFAULT_PULL_LIMIT,
            Some(n) if (1..=MAX_PULL_LIMIT).contains(&n) => n,
            Some(_) => {
                return Err(Invalid::new(
                    "limit",
                    format!("must be between 1 and {MAX_PULL_LIMIT}"),
                )
                .into());
            }
        };
        let cursor = Cursor::decode(request.cursor.as_deref())?;
        let mut snapshot = self.ports.feed.snapshot().await?;
        let page = self
            .pull_in(&mut *snapshot, caller, cursor, limit, request.device)
            .await;
        // A read-only snapshot: closing it cannot lose anything, so its error is only logged.
        if let Err(e) = snapshot.close().await {
            tracing::warn!(error = ?e, "closing a pull snapshot failed");
        }
        page
    }

    async fn pull_in(
        &self,
        snapshot: &mut dyn FeedSnapshot,
        caller: &Caller,
        mut cursor: Cursor,
        limit: u32,
        device: Option<DeviceId>,
    ) -> Result<PullPage, SyncError> {
        let last_mutation_id = match device {
            None => None,
            Some(id) => match snapshot.device(id).await? {
                Some((owner, last)) if owner == caller.user_id => Some(last),
                _ => return Err(SyncError::DeviceNotFound),
            },
        };
        let memberships = snapshot.memberships(caller.user_id).await?;
        let limit = limit as usize;
        let mut changes = Vec::new();
        let mut has_more = false;

        // Workspaces left or removed from: one tombstone, then nothing more of them.
        let member_of: HashMap<WorkspaceId, _> =
            memberships.iter().map(|m| (m.id, m.clone())).collect();
        let gone: Vec<WorkspaceId> = cursor
            .ws
            .keys()
            .filter(|ws| !member_of.contains_key(ws))
            .copied()
            .collect();
        for ws in gone {
            changes.push(SyncChange {
                scope: Scope::Workspace(ws),
                entity_type: EntityType::Workspace,
                entity_id: ws.0,
                op: ChangeOp::Delete,
                version: None,
                data: None,
            });
            cursor.ws.remove(&ws);
        }

        for membership in &memberships {
            let ws = membership.id;
            let known = cursor.ws.get(&ws).copied();
            let after = known.unwrap_or(0);
            if after > membership.head || (after > 0 && after < membership.horizon) {
                return Err(SyncError::CursorExpired);
            }
            if after == membership.head {
                cursor.ws.insert(ws, after);
                continue;
            }
            let budget = limit.saturating_sub(changes.len());
            if budget == 0 {
                has_more = true;
                break;
            }
            let page = snapshot.changes(ws, after, budget as u32).await?;
            let refs: Vec<EntityRef> = page
                .rows
                .iter()
                .filter(|r| r.op == ChangeOp::Upsert)
                .map(|r| EntityRef {
                    entity_type: r.entity_type,
                    id: r.entity_id,
                })
                .collect();
            let states: HashMap<EntityRef, EntityState> = if refs.is_empty() {
                HashMap::new()
            } else {
                snapshot
                    .entities(ws, refs, self.settings.inline_content_bytes)
                    .await?
                    .into_iter()
                    .map(|s| (s.entity_ref(), s))
                    .collect()
            };
            // A workspace that arrives whole needs no tombstones of what the client never had.
            let whole = after == 0;
            for row in page.rows {
                if !renders(row.entity_type) {
                    continue;
                }
                let key = EntityRef {
                    entity_type: row.entity_type,
                    id: row.entity_id,
                };
                let state = match row.op {
                    ChangeOp::Upsert => states.get(&key).filter(|s| !s.is_gone()),
                    ChangeOp::Delete => None,
                };
                let data = state.map(|s| match s.clone() {
                    EntityState::Workspace(w) => ChangeData::Workspace(WorkspaceView {
                        workspace: w,
                        role: membership.role,
                    }),
                    EntityState::Member(m) => ChangeData::Member(m),
                    EntityState::Folder(f) => ChangeData::Folder(f),
                    EntityState::Document(d) => ChangeData::Document(d),
                    EntityState::ContextFile(f) => ChangeData::ContextFile(f),
                    EntityState::Attachment(a) => ChangeData::Attachment(a),
                    EntityState::Comment(c) => ChangeData::Comment(c),
                });
                if data.is_none() && whole {
                    continue;
                }
                changes.push(SyncChange {
                    scope: Scope::Workspace(ws),
                    entity_type: row.entity_type,
                    entity_id: row.entity_id,
                    op: if data.is_some() {
                        ChangeOp::Upsert
                    } else {
                        ChangeOp::Delete
                    },
                    version: row.version,
                    data,
                });
            }
            cursor.ws.insert(ws, page.end);
            if page.end < membership.head {
                has_more = true;
                break;
            }
        }

        if !has_more {
            has_more = self
                .pull_shared(snapshot, caller, &mut cursor, limit, &mut changes)
                .await?;
        }

        Ok(PullPage {
            changes,
            cursor: cursor.encode(),
            has_more,
            last_mutation_id,
        })
    }

    /// The `shared` pseudo-workspace: documents shared to the caller alone. Its cursor part keeps
    /// the version delivered of each, so only what changed since is sent. Whether more is left.
    async fn pull_shared(
        &self,
        snapshot: &mut dyn FeedSnapshot,
        caller: &Caller,
        cursor: &mut Cursor,
        limit: usize,
        changes: &mut Vec<SyncChange>,
    ) -> Result<bool, SyncError> {
        let shared = snapshot
            .shared_documents(caller.user_id, self.settings.inline_content_bytes)
            .await?;
        let now: BTreeMap<DocumentId, DocumentState> =
            shared.into_iter().map(|d| (d.summary.id, d)).collect();
        let unshared: Vec<DocumentId> = cursor
            .sh
            .keys()
            .filter(|id| !now.contains_key(id))
            .copied()
            .collect();
        for id in unshared {
            if changes.len() >= limit {
                return Ok(true);
            }
            let version = cursor.sh.remove(&id);
            changes.push(SyncChange {
                scope: Scope::Shared,
                entity_type: EntityType::Document,
                entity_id: id.0,
                op: ChangeOp::Delete,
                version,
                data: None,
            });
        }
        for (id, document) in now {
            let version = document.summary.version.0;
            if cursor.sh.get(&id) == Some(&version) {
                continue;
            }
            if changes.len() >= limit {
                return Ok(true);
            }
            cursor.sh.insert(id, version);
            changes.push(SyncChange {
                scope: Scope::Shared,
                entity_type: EntityType::Document,
                entity_id: id.0,
                op: ChangeOp::Upsert,
                version: Some(version),
                data: Some(ChangeData::Document(document)),
            });
        }
        Ok(false)
    }
}

/// Entity types whose state pull can send: every type the feed carries now.
fn renders(entity_type: EntityType) -> bool {
    matches!(
        entity_type,
        EntityType::Workspace
            | EntityType::Member
            | EntityType::Folder
            | EntityType::Document
            | EntityType::ContextFile
            | EntityType::Attachment
            | EntityType::Comment
    )
}
