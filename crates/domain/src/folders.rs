//! Folders: the tree, create, rename/move/reorder (no cycles), delete (to the trash, with the
//! documents inside).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::access::{Access, AccessError, Caller};
use crate::documents::DocumentRepository;
use crate::feed::{AuditEvent, Change, CommitError, EntityType, UnitOfWork, Write, WriteBatch};
use crate::ports::{Clock, StoreError};
use crate::rbac::Action;
use crate::values::{Invalid, Version, checked_name};
use crate::{FolderId, WorkspaceId};

#[derive(Debug, Clone, PartialEq)]
pub struct Folder {
    pub id: FolderId,
    pub workspace_id: WorkspaceId,
    pub parent_id: Option<FolderId>,
    pub name: String,
    pub position: f64,
    /// +1 on every change (rename, move, reorder, delete).
    pub version: Version,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A folder with its sub-folders, for `GET /workspaces/{ws}/folders`.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderNode {
    pub folder: Folder,
    pub children: Vec<FolderNode>,
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait FolderRepository: Send + Sync {
    /// The folder, trashed or not; `None` when unknown.
    async fn folder(&self, id: FolderId) -> Result<Option<Folder>, StoreError>;
    /// Every folder of the workspace that is not in the trash.
    async fn folders(&self, workspace: WorkspaceId) -> Result<Vec<Folder>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("workspace not found")]
    WorkspaceNotFound,
    #[error("folder not found")]
    NotFound,
    #[error("parent folder not found")]
    ParentNotFound,
    #[error("a folder cannot move into itself or one of its sub-folders")]
    Cycle,
    #[error("not allowed")]
    Forbidden,
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("the folder changed meanwhile; retry")]
    Conflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccessError> for FolderError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NotFound => FolderError::NotFound,
            AccessError::Forbidden => FolderError::Forbidden,
            AccessError::Store(e) => FolderError::Store(e),
        }
    }
}

impl From<CommitError> for FolderError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Store(e) => FolderError::Store(e),
            _ => FolderError::Conflict,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewFolder {
    pub name: String,
    pub parent_id: Option<FolderId>,
    pub position: Option<f64>,
}

/// `PATCH /folders/{id}`: absent fields are kept; `parent_id: Some(None)` moves to the root.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FolderPatch {
    pub name: Option<String>,
    pub parent_id: Option<Option<FolderId>>,
    pub position: Option<f64>,
}

const MAX_NAME: usize = 255;
/// Deeper trees are refused; also bounds the cycle walk.
const MAX_DEPTH: usize = 64;

pub struct FolderService {
    folders: Arc<dyn FolderRepository>,
    documents: Arc<dyn DocumentRepository>,
    access: Access,
    uow: Arc<dyn UnitOfWork>,
    clock: Arc<dyn Clock>,
}

impl FolderService {
    pub fn new(
        folders: Arc<dyn FolderRepository>,
        documents: Arc<dyn DocumentRepository>,
        access: Access,
        uow: Arc<dyn UnitOfWork>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            folders,
            documents,
            access,
            uow,
            clock,
        }
    }

    /// The workspace's folder tree, siblings ordered by position then name.
    pub async fn tree(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
    ) -> Result<Vec<FolderNode>, FolderError> {
        self.access
            .workspace(caller, workspace, Action::ReadContent)
            .await
            .map_err(workspace_error)?;
        Ok(build_tree(self.folders.folders(workspace).await?))
    }

    pub async fn create(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        request: NewFolder,
    ) -> Result<Folder, FolderError> {
        self.create_with_id(caller, workspace, FolderId::new(), request)
            .await
    }

    /// Creates a folder with a client-chosen id (sync: a replayed create cannot make a twin).
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, workspace = %workspace))]
    pub async fn create_with_id(
        &self,
        caller: &Caller,
        workspace: WorkspaceId,
        id: FolderId,
        request: NewFolder,
    ) -> Result<Folder, FolderError> {
        self.access
            .workspace(caller, workspace, Action::EditFolders)
            .await
            .map_err(workspace_error)?;
        let name = checked_name("name", &request.name, MAX_NAME)?;
        let position = checked_position(request.position)?;
        if let Some(parent) = request.parent_id {
            let all = self.folders.folders(workspace).await?;
            let by_id: HashMap<_, _> = all.iter().map(|f| (f.id, f)).collect();
            if !by_id.contains_key(&parent) {
                return Err(FolderError::ParentNotFound);
            }
            if depth(parent, &by_id) >= MAX_DEPTH {
                return Err(Invalid::new("parent_id", "folders nest at most 64 deep").into());
            }
        }
        let now = self.clock.now();
        let folder = Folder {
            id,
            workspace_id: workspace,
            parent_id: request.parent_id,
            name,
            position: position.unwrap_or(0.0),
            version: Version::FIRST,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::InsertFolder(folder.clone()))
            .change(folder_change(&folder));
        self.uow.commit(batch).await?;
        Ok(folder)
    }

    #[tracing::instrument(skip_all, fields(user = %caller.user_id, folder = %id))]
    pub async fn update(
        &self,
        caller: &Caller,
        id: FolderId,
        patch: FolderPatch,
    ) -> Result<Folder, FolderError> {
        let mut folder = self.live_folder(id).await?;
        self.access
            .workspace(caller, folder.workspace_id, Action::EditFolders)
            .await?;
        let expected = folder.version;
        if let Some(name) = patch.name {
            folder.name = checked_name("name", &name, MAX_NAME)?;
        }
        if let Some(position) = checked_position(patch.position)? {
            folder.position = position;
        }
        if let Some(parent) = patch.parent_id {
            if let Some(parent) = parent {
                let all = self.folders.folders(folder.workspace_id).await?;
                let by_id: HashMap<_, _> = all.iter().map(|f| (f.id, f)).collect();
                if !by_id.contains_key(&parent) {
                    return Err(FolderError::ParentNotFound);
                }
                if is_self_or_descendant(parent, id, &by_id) {
                    return Err(FolderError::Cycle);
                }
            }
            folder.parent_id = parent;
        }
        folder.version = expected.next();
        folder.updated_at = self.clock.now();
        let batch = WriteBatch::by(caller.user_id)
            .write(Write::UpdateFolder {
                folder: folder.clone(),
                expected,
            })
            .change(folder_change(&folder));
        self.uow.commit(batch).await?;
        Ok(folder)
    }

    /// Moves the folder, its sub-folders and their documents to the trash, in one transaction.
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, folder = %id))]
    pub async fn delete(&self, caller: &Caller, id: FolderId) -> Result<(), FolderError> {
        let folder = self.live_folder(id).await?;
        let workspace = folder.workspace_id;
        self.access
            .workspace(caller, workspace, Action::EditFolders)
            .await?;
        let all = self.folders.folders(workspace).await?;
        let doomed = subtree(id, &all);
        let documents = self
            .documents
            .documents_in_folders(workspace, doomed.iter().map(|f| f.id).collect())
            .await?;
        let now = self.clock.now();
        let mut batch = WriteBatch::by(caller.user_id);
        for f in doomed {
            let mut f = f.clone();
            let expected = f.version;
            f.version = expected.next();
            f.deleted_at = Some(now);
            f.updated_at = now;
            batch = batch
                .change(
                    Change::delete(workspace, EntityType::Folder, f.id.0).with_version(f.version.0),
                )
                .write(Write::UpdateFolder {
                    folder: f,
                    expected,
                });
        }
        for d in documents {
            batch = batch
                .write(Write::TrashDocument {
                    id: d.id,
                    deleted_at: Some(now),
                    updated_by: caller.user_id,
                    updated_at: now,
                })
                .change(
                    Change::delete(workspace, EntityType::Document, d.id.0)
                        .with_version(d.version.0),
                );
        }
        batch = batch.write(Write::Audit(AuditEvent {
            workspace_id: workspace,
            action: "folder.delete",
            target_type: EntityType::Folder,
            target_id: Some(id.0),
            details: serde_json::json!({ "name": folder.name }),
        }));
        self.uow.commit(batch).await?;
        Ok(())
    }

    async fn live_folder(&self, id: FolderId) -> Result<Folder, FolderError> {
        self.folders
            .folder(id)
            .await?
            .filter(|f| f.deleted_at.is_none())
            .ok_or(FolderError::NotFound)
    }
}

fn workspace_error(e: AccessError) -> FolderError {
    match e {
        AccessError::NotFound => FolderError::WorkspaceNotFound,
        other => other.into(),
    }
}

fn folder_change(folder: &Folder) -> Change {
    Change::upsert(folder.workspace_id, EntityType::Folder, folder.id.0)
        .with_version(folder.version.0)
}

fn checked_position(position: Option<f64>) -> Result<Option<f64>, Invalid> {
    match position {
        Some(p) if !p.is_finite() || p.abs() > 1e15 => {
            Err(Invalid::new("position", "must be a finite number"))
        }
        other => Ok(other),
    }
}

/// Whether `candidate` is `folder` or lies below it (walking up from `candidate`).
fn is_self_or_descendant(
    candidate: FolderId,
    folder: FolderId,
    by_id: &HashMap<FolderId, &Folder>,
) -> bool {
    let mut current = Some(candidate);
    let mut seen = HashSet::new();
    while let Some(id) = current {
        if id == folder {
            return true;
        }
        if !seen.insert(id) {
            // A cycle already stored would be a bug; refuse rather than loop.
            return true;
        }
        current = by_id.get(&id).and_then(|f| f.parent_id);
    }
    false
}

fn depth(folder: FolderId, by_id: &HashMap<FolderId, &Folder>) -> usize {
    let mut depth = 0;
    let mut current = by_id.get(&folder).and_then(|f| f.parent_id);
    while let Some(id) = current {
        depth += 1;
        if depth > MAX_DEPTH {
            break;
        }
        current = by_id.get(&id).and_then(|f| f.parent_id);
    }
    depth + 1
}

/// `root` and every folder below it.
fn subtree(root: FolderId, all: &[Folder]) -> Vec<&Folder> {
    let mut children: HashMap<FolderId, Vec<&Folder>> = HashMap::new();
    for f in all {
        if let Some(parent) = f.parent_id {
            children.entry(parent).or_default().push(f);
        }
    }
    let mut out: Vec<&Folder> = all.iter().filter(|f| f.id == root).collect();
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i].id) {
            out.extend(kids.iter().copied());
        }
        i += 1;
    }
    out
}

/// Nests a flat list. Folders whose parent is missing (trashed) are left out with it.
pub fn build_tree(folders: Vec<Folder>) -> Vec<FolderNode> {
    let mut children: HashMap<Option<FolderId>, Vec<Folder>> = HashMap::new();
    for f in folders {
        children.entry(f.parent_id).or_default().push(f);
    }
    fn nest(
        parent: Option<FolderId>,
        children: &mut HashMap<Option<FolderId>, Vec<Folder>>,
        depth: usize,
    ) -> Vec<FolderNode> {
        let mut level = children.remove(&parent).unwrap_or_default();
        level.sort_by(|a, b| {
            a.position
                .total_cmp(&b.position)
                .then_with(|| a.name.cmp(&b.name))
        });
        level
            .into_iter()
            .map(|folder| {
                let kids = if depth < MAX_DEPTH {
                    nest(Some(folder.id), children, depth + 1)
                } else {
                    Vec::new()
                };
                FolderNode {
                    folder,
                    children: kids,
                }
            })
            .collect()
    }
    nest(None, &mut children, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::{DocumentSummary, MockDocumentGrants, MockDocumentRepository};
    use crate::feed::{Committed, MockUnitOfWork};
    use crate::members::MockMembershipRepository;
    use crate::ports::MockClock;
    use crate::rbac::Role;
    use crate::{DocumentId, UserId};

    fn folder(ws: WorkspaceId, parent: Option<FolderId>, name: &str) -> Folder {
        Folder {
            id: FolderId::new(),
            workspace_id: ws,
            parent_id: parent,
            name: name.into(),
            position: 0.0,
            version: Version::FIRST,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            deleted_at: None,
        }
    }

    fn service(
        role: Option<Role>,
        all: Vec<Folder>,
        docs: Vec<DocumentSummary>,
        uow: MockUnitOfWork,
    ) -> FolderService {
        let mut members = MockMembershipRepository::new();
        members.expect_role_of().returning(move |_, _| Ok(role));
        let access = Access::new(Arc::new(members), Arc::new(MockDocumentGrants::new()));
        let mut folders = MockFolderRepository::new();
        let list = all.clone();
        folders
            .expect_folders()
            .returning(move |_| Ok(list.clone()));
        folders
            .expect_folder()
            .returning(move |id| Ok(all.iter().find(|f| f.id == id).cloned()));
        let mut documents = MockDocumentRepository::new();
        documents
            .expect_documents_in_folders()
            .returning(move |_, ids| {
                Ok(docs
                    .iter()
                    .filter(|d| d.folder_id.is_some_and(|f| ids.contains(&f)))
                    .cloned()
                    .collect())
            });
        let mut clock = MockClock::new();
        clock.expect_now().returning(Utc::now);
        FolderService::new(
            Arc::new(folders),
            Arc::new(documents),
            access,
            Arc::new(uow),
            Arc::new(clock),
        )
    }

    fn ok_uow() -> MockUnitOfWork {
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit().returning(|_| Ok(Committed::default()));
        uow
    }

    #[tokio::test]
    async fn moving_a_folder_below_itself_is_a_cycle() {
        let ws = WorkspaceId::new();
        let a = folder(ws, None, "a");
        let b = folder(ws, Some(a.id), "b");
        let c = folder(ws, Some(b.id), "c");
        let (a_id, c_id, b_id) = (a.id, c.id, b.id);
        let svc = service(Some(Role::Editor), vec![a, b, c], vec![], ok_uow());
        let caller = Caller::session(UserId::new());
        for target in [a_id, c_id] {
            let patch = FolderPatch {
                parent_id: Some(Some(target)),
                ..Default::default()
            };
            let r = svc.update(&caller, a_id, patch).await;
            assert!(matches!(r, Err(FolderError::Cycle)), "{target}");
        }
        let patch = FolderPatch {
            parent_id: Some(None),
            ..Default::default()
        };
        let moved = svc.update(&caller, c_id, patch).await.unwrap();
        assert_eq!(moved.parent_id, None);
        assert_eq!(moved.version, Version(2));
        let patch = FolderPatch {
            parent_id: Some(Some(FolderId::new())),
            ..Default::default()
        };
        assert!(matches!(
            svc.update(&caller, b_id, patch).await,
            Err(FolderError::ParentNotFound)
        ));
    }

    #[tokio::test]
    async fn deleting_trashes_the_subtree_and_its_documents_in_one_batch() {
        let ws = WorkspaceId::new();
        let a = folder(ws, None, "a");
        let b = folder(ws, Some(a.id), "b");
        let other = folder(ws, None, "other");
        let doc = |f: FolderId| DocumentSummary {
            id: DocumentId::new(),
            workspace_id: ws,
            folder_id: Some(f),
            title: "t".into(),
            content_hash: crate::ContentHash::of(""),
            version: Version::FIRST,
            position: 0.0,
            created_by: None,
            updated_by: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            deleted_at: None,
        };
        let docs = vec![doc(a.id), doc(b.id), doc(other.id)];
        let a_id = a.id;
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit()
            .withf(|b| {
                let folders = b.writes.iter().filter(|w| matches!(w, Write::UpdateFolder { folder, .. } if folder.deleted_at.is_some())).count();
                let docs = b.writes.iter().filter(|w| matches!(w, Write::TrashDocument { deleted_at: Some(_), .. })).count();
                folders == 2 && docs == 2 && b.changes.len() == 4
            })
            .times(1)
            .returning(|_| Ok(Committed::default()));
        let svc = service(Some(Role::Editor), vec![a, b, other], docs, uow);
        svc.delete(&Caller::session(UserId::new()), a_id)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn below_editor_cannot_change_folders_and_outsiders_see_nothing() {
        let ws = WorkspaceId::new();
        let a = folder(ws, None, "a");
        let id = a.id;
        for role in [Role::Viewer, Role::Commenter] {
            let svc = service(Some(role), vec![a.clone()], vec![], MockUnitOfWork::new());
            let caller = Caller::session(UserId::new());
            assert!(svc.tree(&caller, ws).await.is_ok());
            let req = NewFolder {
                name: "x".into(),
                parent_id: None,
                position: None,
            };
            assert!(matches!(
                svc.create(&caller, ws, req).await,
                Err(FolderError::Forbidden)
            ));
            assert!(matches!(
                svc.delete(&caller, id).await,
                Err(FolderError::Forbidden)
            ));
        }
        let svc = service(None, vec![a], vec![], MockUnitOfWork::new());
        let caller = Caller::session(UserId::new());
        assert!(matches!(
            svc.tree(&caller, ws).await,
            Err(FolderError::WorkspaceNotFound)
        ));
        assert!(matches!(
            svc.delete(&caller, id).await,
            Err(FolderError::NotFound)
        ));
    }

    #[tokio::test]
    async fn positions_must_be_finite() {
        let svc = service(Some(Role::Owner), vec![], vec![], MockUnitOfWork::new());
        let req = NewFolder {
            name: "x".into(),
            parent_id: None,
            position: Some(f64::NAN),
        };
        let r = svc
            .create(&Caller::session(UserId::new()), WorkspaceId::new(), req)
            .await;
        assert!(matches!(r, Err(FolderError::Invalid(_))));
    }

    #[test]
    fn trees_nest_and_sort() {
        let ws = WorkspaceId::new();
        let mut a = folder(ws, None, "a");
        a.position = 2.0;
        let b = folder(ws, None, "b");
        let c = folder(ws, Some(a.id), "c");
        let orphan = folder(ws, Some(FolderId::new()), "orphan");
        let tree = build_tree(vec![a, b, c, orphan]);
        let names: Vec<_> = tree.iter().map(|n| n.folder.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(tree[1].children[0].folder.name, "c");
    }
}
