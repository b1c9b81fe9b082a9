//! Real-time collaboration, as far as the domain is concerned: who may join a live document and
//! with which rights, where the Yjs update log is kept, how the live text becomes a saved version,
//! and the port through which REST saves reach live rooms.
//!
//! The CRDT itself (yrs) lives in the collaboration adapter; the domain only moves opaque bytes.

pub mod tickets;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::access::{Access, AccessError, Caller, Scope};
use crate::documents::{Document, DocumentRepository, VersionReason};
use crate::feed::{Change, CommitError, EntityType, UnitOfWork, Write, WriteBatch};
use crate::ports::{Clock, StoreError};
use crate::presence::{Presence, PresenceEntry};
use crate::rbac::{Action, Role};
use crate::values::{ContentHash, Limits};
use crate::{DocumentId, UserId, Version, WorkspaceId};

/// A document's stored Yjs data: the compacted state and the updates appended since, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredYjs {
    pub state: Option<Vec<u8>>,
    /// `(id, update)`, ascending ids.
    pub updates: Vec<(i64, Vec<u8>)>,
}

impl StoredYjs {
    /// Nothing stored yet: the live document starts from the Markdown content.
    pub fn is_empty(&self) -> bool {
        self.state.as_ref().is_none_or(|s| s.is_empty()) && self.updates.is_empty()
    }
}

/// Folds a stored state and the updates after it into one state. Supplied by the collaboration
/// adapter (it knows the CRDT); the store runs it while it holds the document's row lock.
pub type MergeFn =
    Box<dyn FnOnce(Option<Vec<u8>>, Vec<Vec<u8>>) -> anyhow::Result<Vec<u8>> + Send + 'static>;

/// The Yjs update log and compacted state of documents (`document_updates`, `documents.yjs_state`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait YjsStore: Send + Sync {
    /// The stored state and updates. MUST return `None` when the document does not exist.
    async fn load(&self, document: DocumentId) -> Result<Option<StoredYjs>, StoreError>;

    /// Appends updates in order, durably (committed) before returning; the id of the last one.
    /// MUST fail (and store nothing) when the document does not exist.
    async fn append(&self, document: DocumentId, updates: Vec<Vec<u8>>) -> Result<i64, StoreError>;

    /// Replaces the stored state with `merge(state, updates)` and deletes exactly the merged
    /// updates. Two compactions of one document at once (two instances) MUST NOT lose each
    /// other's updates: the write is refused (0) when some of the updates it merged were merged
    /// by another one meanwhile. Updates appended meanwhile stay. Returns how many updates were
    /// merged (0: nothing done).
    async fn compact(&self, document: DocumentId, merge: MergeFn) -> Result<usize, StoreError>;
}

/// REST → live rooms: a saved text that live editors must see at once.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait LiveDocuments: Send + Sync {
    /// Makes the live text of `document` equal `text` by a minimal edit, stores that edit in the
    /// update log and relays it to every live editor on every instance. A no-op when the document
    /// has no Yjs data yet. Never fails the save that called it: problems are logged.
    async fn apply_text(&self, document: DocumentId, text: &str);
}

#[derive(Debug, thiserror::Error)]
pub enum CollabError {
    #[error("document not found")]
    NotFound,
    #[error("not allowed")]
    Forbidden,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccessError> for CollabError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::NotFound => CollabError::NotFound,
            AccessError::Forbidden => CollabError::Forbidden,
            AccessError::Store(e) => CollabError::Store(e),
        }
    }
}

/// What a caller may do in a live document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveAccess {
    pub workspace_id: WorkspaceId,
    pub role: Role,
    /// Editors and above with a writing token; everybody else only reads (and sends awareness).
    pub writable: bool,
}

/// One user present in a document (connections of the same user merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentUser {
    pub user_id: UserId,
    pub display_name: String,
    pub since: DateTime<Utc>,
    pub connections: usize,
}

pub struct CollabService {
    documents: Arc<dyn DocumentRepository>,
    access: Access,
    uow: Arc<dyn UnitOfWork>,
    presence: Arc<dyn Presence>,
    clock: Arc<dyn Clock>,
    limits: Limits,
}

/// Attempts of a materialization that keeps losing the optimistic lock to REST saves.
const MATERIALIZE_ATTEMPTS: usize = 3;

impl CollabService {
    pub fn new(
        documents: Arc<dyn DocumentRepository>,
        access: Access,
        uow: Arc<dyn UnitOfWork>,
        presence: Arc<dyn Presence>,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> Self {
        Self {
            documents,
            access,
            uow,
            presence,
            clock,
            limits,
        }
    }

    /// Whether `caller` may open `document` live, and with which rights. Trashed documents are
    /// not found (they are not editable and not shown live).
    #[tracing::instrument(skip_all, fields(user = %caller.user_id, document = %document))]
    pub async fn join(
        &self,
        caller: &Caller,
        document: DocumentId,
    ) -> Result<LiveAccess, CollabError> {
        let doc = self
            .documents
            .document_summary(document)
            .await?
            .filter(|d| d.deleted_at.is_none())
            .ok_or(CollabError::NotFound)?;
        let role = self
            .access
            .document(caller, doc.workspace_id, document, Action::ReadContent)
            .await?;
        Ok(LiveAccess {
            workspace_id: doc.workspace_id,
            role,
            writable: role.allows(Action::WriteLive) && caller.scope != Scope::Read,
        })
    }

    /// The stored document (no access check: rooms seed from it after [`Self::join`]).
    pub async fn document(&self, document: DocumentId) -> Result<Option<Document>, CollabError> {
        Ok(self.documents.document(document).await?)
    }

    /// Saves the live text as the document's content and a new version (reason `collab`), through
    /// the change feed like every save. `Ok(None)` when nothing changed, the document is gone or
    /// trashed, or the text is over the size limit (logged).
    #[tracing::instrument(skip_all, fields(document = %document))]
    pub async fn materialize(
        &self,
        document: DocumentId,
        text: String,
        author: Option<UserId>,
    ) -> Result<Option<Version>, CollabError> {
        if text.len() > self.limits.max_document_bytes {
            tracing::warn!(
                bytes = text.len(),
                "live text over the document size limit; not materialized"
            );
            return Ok(None);
        }
        for _ in 0..MATERIALIZE_ATTEMPTS {
            let Some(current) = self.documents.document(document).await? else {
                return Ok(None);
            };
            if current.deleted_at.is_some() || current.content == text {
                return Ok(None);
            }
            let now = self.clock.now();
            let expected = current.version;
            let saved = Document {
                content_hash: ContentHash::of(&text),
                content: text.clone(),
                version: expected.next(),
                updated_by: author.or(current.updated_by),
                updated_at: now,
                ..current
            };
            let version = crate::documents::DocumentVersion {
                document_id: saved.id,
                version: saved.version,
                title: saved.title.clone(),
                content: saved.content.clone(),
                content_hash: saved.content_hash.clone(),
                author_id: author,
                reason: VersionReason::Collab,
                created_at: now,
            };
            let mut batch = match author {
                Some(a) => WriteBatch::by(a),
                None => WriteBatch::default(),
            };
            batch = batch
                .write(Write::SaveDocument {
                    document: saved.clone(),
                    expected,
                })
                .write(Write::InsertVersion(version))
                .change(
                    Change::upsert(saved.workspace_id, EntityType::Document, saved.id.0)
                        .with_version(saved.version.0),
                );
            match self.uow.commit(batch).await {
                Ok(_) => return Ok(Some(saved.version)),
                // A REST save won the race; its text reaches the room too. Try again on top.
                Err(CommitError::Stale(_)) => continue,
                Err(CommitError::Store(e)) => return Err(e.into()),
                Err(e) => return Err(StoreError::Unexpected(anyhow::anyhow!(e)).into()),
            }
        }
        tracing::warn!("materialization kept conflicting with other saves; retried later");
        Ok(None)
    }

    /// Users connected to `document` on any instance (≥ viewer).
    pub async fn presence(
        &self,
        caller: &Caller,
        document: DocumentId,
    ) -> Result<Vec<PresentUser>, CollabError> {
        let doc = self
            .documents
            .document(document)
            .await?
            .ok_or(CollabError::NotFound)?;
        self.access
            .document(caller, doc.workspace_id, document, Action::ReadContent)
            .await?;
        let entries = match self.presence.list(document).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = ?e, "presence unavailable; answering with nobody");
                Vec::new()
            }
        };
        Ok(merge_presence(entries))
    }

    /// Records a live connection (and renews it: call again as the heartbeat). Best effort.
    pub async fn present(&self, document: DocumentId, entry: PresenceEntry, ttl_secs: u64) {
        if let Err(e) = self.presence.join(document, entry, ttl_secs).await {
            tracing::debug!(error = ?e, "presence join failed");
        }
    }

    /// Forgets a live connection. Best effort.
    pub async fn absent(&self, document: DocumentId, connection_id: &str) {
        if let Err(e) = self.presence.leave(document, connection_id).await {
            tracing::debug!(error = ?e, "presence leave failed");
        }
    }
}

fn merge_presence(entries: Vec<PresenceEntry>) -> Vec<PresentUser> {
    let mut users: Vec<PresentUser> = Vec::new();
    for e in entries {
        match users.iter_mut().find(|u| u.user_id == e.user_id) {
            Some(u) => {
                u.connections += 1;
                u.since = u.since.min(e.since);
            }
            None => users.push(PresentUser {
                user_id: e.user_id,
                display_name: e.display_name,
                since: e.since,
                connections: 1,
            }),
        }
    }
    users.sort_by_key(|u| u.since);
    users
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::{MockDocumentGrants, MockDocumentRepository};
    use crate::feed::MockUnitOfWork;
    use crate::members::MockMembershipRepository;
    use crate::ports::MockClock;
    use crate::presence::MockPresence;

    fn doc(content: &str) -> Document {
        let now = Utc::now();
        Document {
            id: DocumentId::new(),
            workspace_id: WorkspaceId::new(),
            folder_id: None,
            title: "t".into(),
            content: content.into(),
            content_hash: ContentHash::of(content),
            version: Version::FIRST,
            position: 0.0,
            created_by: None,
            updated_by: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
        }
    }

    fn service(
        d: Document,
        role: Option<Role>,
        uow: MockUnitOfWork,
        presence: MockPresence,
    ) -> CollabService {
        let mut docs = MockDocumentRepository::new();
        let summary = d.summary();
        docs.expect_document_summary()
            .returning(move |_| Ok(Some(summary.clone())));
        docs.expect_document()
            .returning(move |_| Ok(Some(d.clone())));
        let mut members = MockMembershipRepository::new();
        members.expect_role_of().returning(move |_, _| Ok(role));
        let mut grants = MockDocumentGrants::new();
        grants.expect_grant_of().returning(|_, _| Ok(None));
        let mut clock = MockClock::new();
        clock.expect_now().returning(Utc::now);
        CollabService::new(
            Arc::new(docs),
            Access::new(Arc::new(members), Arc::new(grants)),
            Arc::new(uow),
            Arc::new(presence),
            Arc::new(clock),
            Limits {
                max_document_bytes: 100,
            },
        )
    }

    #[tokio::test]
    async fn viewers_join_read_only_and_editors_writable() {
        let d = doc("x");
        let caller = Caller::session(UserId::new());
        let s = service(
            d.clone(),
            Some(Role::Viewer),
            MockUnitOfWork::new(),
            MockPresence::new(),
        );
        assert!(!s.join(&caller, d.id).await.unwrap().writable);
        let s = service(
            d.clone(),
            Some(Role::Editor),
            MockUnitOfWork::new(),
            MockPresence::new(),
        );
        assert!(s.join(&caller, d.id).await.unwrap().writable);
        let read_token = Caller {
            scope: Scope::Read,
            ..caller
        };
        assert!(!s.join(&read_token, d.id).await.unwrap().writable);
        let s = service(d.clone(), None, MockUnitOfWork::new(), MockPresence::new());
        assert!(matches!(
            s.join(&caller, d.id).await,
            Err(CollabError::NotFound)
        ));
    }

    #[tokio::test]
    async fn materialize_writes_a_collab_version_only_when_the_text_changed() {
        let d = doc("old");
        let mut uow = MockUnitOfWork::new();
        uow.expect_commit()
            .withf(|b| {
                b.writes.iter().any(|w| {
                    matches!(w, Write::InsertVersion(v) if v.reason == VersionReason::Collab && v.content == "new")
                }) && b.changes.len() == 1
            })
            .times(1)
            .returning(|_| Ok(Default::default()));
        let s = service(d.clone(), Some(Role::Editor), uow, MockPresence::new());
        let v = s.materialize(d.id, "new".into(), None).await.unwrap();
        assert_eq!(v, Some(Version(2)));
        assert_eq!(s.materialize(d.id, "old".into(), None).await.unwrap(), None);
        let too_big = "x".repeat(101);
        assert_eq!(s.materialize(d.id, too_big, None).await.unwrap(), None);
    }

    #[tokio::test]
    async fn presence_merges_connections_of_one_user() {
        let d = doc("x");
        let user = UserId::new();
        let t0 = Utc::now();
        let mut presence = MockPresence::new();
        presence.expect_list().returning(move |_| {
            Ok(vec![
                PresenceEntry {
                    connection_id: "a".into(),
                    user_id: user,
                    display_name: "Ann".into(),
                    since: t0,
                },
                PresenceEntry {
                    connection_id: "b".into(),
                    user_id: user,
                    display_name: "Ann".into(),
                    since: t0 - chrono::Duration::seconds(5),
                },
            ])
        });
        let s = service(
            d.clone(),
            Some(Role::Viewer),
            MockUnitOfWork::new(),
            presence,
        );
        let users = s
            .presence(&Caller::session(UserId::new()), d.id)
            .await
            .unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].connections, 2);
        assert_eq!(users[0].since, t0 - chrono::Duration::seconds(5));
    }
}
