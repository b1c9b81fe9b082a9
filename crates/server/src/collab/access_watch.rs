//! Live sockets grouped by workspace, re-checked when their workspace is poked.
//!
//! Removing a member, changing a role, trashing or deleting a document is a commit, and every
//! commit with a write that can change access pokes its workspace's access topic
//! ([`topics::access`]) on the fan-out (Redis when instances share one, so a change made through
//! any instance reaches sockets on every instance). Content saves, the bulk of the commits while
//! people edit, do not. While an instance has sockets in a workspace it subscribes to that topic
//! (once, however many sockets); a poke starts a round that asks [`CollabService::join`] again
//! for every distinct user and document with a socket there, and closes the sockets that lost
//! access (see [`super::lost_access`]). A round also runs each time the subscription starts, for
//! changes committed before it was live.
//!
//! Rounds are throttled per workspace: a poke starts one at once, and the pokes that come during
//! it or within [`MIN_ROUND_INTERVAL`] of its start are folded into one round after that, so a
//! burst of membership changes costs at most one access check per user and document with a
//! socket per interval.
//!
//! A change can land between a socket's access check and its registration here, so that the
//! round it poked does not include the socket yet. Every poke seen bumps an epoch: a socket reads
//! it before its access check ([`AccessWatch::epoch`]) and is checked once more at registration if
//! it moved meanwhile. A poke is still a hint: when one is lost (fan-out down), the socket's own
//! periodic re-check closes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::oneshot;

use mdcreator_collab::Close;
use mdcreator_domain::collab::CollabService;
use mdcreator_domain::fanout::{Fanout, topics};
use mdcreator_domain::{Caller, DocumentId, Scope, WorkspaceId};

/// Least time between the starts of two rounds of one workspace.
pub const MIN_ROUND_INTERVAL: Duration = Duration::from_secs(1);
/// Wait before subscribing again when the fan-out is unavailable.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(2);

/// The sockets of this instance by workspace. Cheap to clone.
#[derive(Clone)]
pub struct AccessWatch {
    inner: Arc<Inner>,
}

struct Inner {
    fanout: Arc<dyn Fanout>,
    service: Arc<CollabService>,
    workspaces: Mutex<HashMap<WorkspaceId, Watched>>,
    next_id: AtomicU64,
    /// Pokes (and subscription starts) seen in any workspace.
    epoch: AtomicU64,
    runtime: tokio::runtime::Handle,
}

/// One workspace's sockets and the task following its pokes (aborted with the last socket).
struct Watched {
    sockets: HashMap<u64, Socket>,
    task: tokio::task::AbortHandle,
}

struct Socket {
    caller: Caller,
    document: DocumentId,
    writable: bool,
    revoke: Option<oneshot::Sender<Close>>,
}

/// A socket's place in the watch; dropping it leaves.
pub struct Registration {
    inner: Arc<Inner>,
    workspace: WorkspaceId,
    id: u64,
    revoked: oneshot::Receiver<Close>,
}

impl Registration {
    /// Resolves with the close code once the socket lost access; pending otherwise.
    pub async fn revoked(&mut self) -> Close {
        match (&mut self.revoked).await {
            Ok(close) => close,
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut workspaces = self.inner.workspaces();
        if let Some(watched) = workspaces.get_mut(&self.workspace) {
            watched.sockets.remove(&self.id);
            if watched.sockets.is_empty() {
                watched.task.abort();
                workspaces.remove(&self.workspace);
            }
        }
    }
}

impl AccessWatch {
    /// Follows pokes on `fanout`; tasks run on the Tokio runtime current at this call.
    pub fn new(fanout: Arc<dyn Fanout>, service: Arc<CollabService>) -> Self {
        Self {
            inner: Arc::new(Inner {
                fanout,
                service,
                workspaces: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                epoch: AtomicU64::new(0),
                runtime: tokio::runtime::Handle::current(),
            }),
        }
    }

    /// Read before a socket's access check, and passed to [`AccessWatch::register`].
    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::SeqCst)
    }

    /// Watches a socket of `caller` on `document` (in `workspace`) opened with `writable` rights,
    /// after an access check made at `epoch`; checks it again at once if pokes came since.
    pub fn register(
        &self,
        workspace: WorkspaceId,
        caller: Caller,
        document: DocumentId,
        writable: bool,
        epoch: u64,
    ) -> Registration {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let socket = Socket {
            caller,
            document,
            writable,
            revoke: Some(tx),
        };
        let mut workspaces = self.inner.workspaces();
        let watched = workspaces.entry(workspace).or_insert_with(|| Watched {
            sockets: HashMap::new(),
            task: self
                .inner
                .runtime
                .spawn(follow(self.inner.clone(), workspace))
                .abort_handle(),
        });
        watched.sockets.insert(id, socket);
        drop(workspaces);
        if self.epoch() != epoch {
            let inner = self.inner.clone();
            self.inner
                .runtime
                .spawn(async move { inner.recheck(workspace, Some(id)).await });
        }
        Registration {
            inner: self.inner.clone(),
            workspace,
            id,
            revoked: rx,
        }
    }
}

impl Inner {
    fn workspaces(&self) -> MutexGuard<'_, HashMap<WorkspaceId, Watched>> {
        // Nothing panics while holding this lock; if something did, the map is still consistent.
        self.workspaces.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One round: every distinct (user, scope, document) of the workspace asked once (or only
    /// the socket `only`).
    async fn recheck(&self, workspace: WorkspaceId, only: Option<u64>) {
        let watched: Vec<(u64, Caller, DocumentId, bool)> = match self.workspaces().get(&workspace)
        {
            Some(w) => w
                .sockets
                .iter()
                .filter(|(id, _)| only.is_none_or(|o| o == **id))
                .map(|(id, s)| (*id, s.caller, s.document, s.writable))
                .collect(),
            None => return,
        };
        let mut verdicts = HashMap::new();
        let mut lost = Vec::new();
        for (id, caller, document, writable) in watched {
            let key = (caller.user_id, scope_key(caller.scope), document);
            let now = match verdicts.get(&key) {
                Some(now) => now,
                None => {
                    let now = self.service.join(&caller, document).await;
                    verdicts.entry(key).or_insert(now)
                }
            };
            if let Some(close) = super::lost_access(writable, now) {
                lost.push((id, caller.user_id, close));
            }
        }
        if lost.is_empty() {
            return;
        }
        let mut workspaces = self.workspaces();
        let Some(watched) = workspaces.get_mut(&workspace) else {
            return;
        };
        for (id, user, close) in lost {
            if let Some(revoke) = watched.sockets.get_mut(&id).and_then(|s| s.revoke.take()) {
                tracing::info!(%workspace, %user, reason = %close.reason, "closing a socket that lost access");
                let _ = revoke.send(close);
            }
        }
    }
}

/// `Scope` has no `Hash`; tokens of one user with different scopes are asked separately.
fn scope_key(scope: Scope) -> u8 {
    match scope {
        Scope::Session => 0,
        Scope::Read => 1,
        Scope::ReadWrite => 2,
    }
}

/// Follows the workspace's pokes until aborted (when its last socket leaves).
async fn follow(inner: Arc<Inner>, workspace: WorkspaceId) {
    let topic = topics::access(workspace);
    loop {
        let mut pokes = match inner.fanout.subscribe(&topic).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = ?e, %workspace, "cannot follow the workspace's pokes yet");
                tokio::time::sleep(RESUBSCRIBE_AFTER).await;
                continue;
            }
        };
        // Changes committed before the subscription was live were poked to nobody here.
        inner.epoch.fetch_add(1, Ordering::SeqCst);
        inner.recheck(workspace, None).await;
        while pokes.next().await.is_some() {
            // Pokes that queued up during the last round and interval make one round together.
            while let Some(Some(_)) = pokes.next().now_or_never() {}
            // Before the round takes its list: a socket registered after that sees the bump.
            inner.epoch.fetch_add(1, Ordering::SeqCst);
            let started = tokio::time::Instant::now();
            inner.recheck(workspace, None).await;
            tokio::time::sleep_until(started + MIN_ROUND_INTERVAL).await;
        }
        tracing::debug!(%workspace, "the workspace's pokes ended; following them again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use mdcreator_domain::access::Access;
    use mdcreator_domain::documents::{
        DocumentSummary, MockDocumentGrants, MockDocumentRepository,
    };
    use mdcreator_domain::feed::MockUnitOfWork;
    use mdcreator_domain::members::MockMembershipRepository;
    use mdcreator_domain::ports::MockClock;
    use mdcreator_domain::presence::MockPresence;
    use mdcreator_domain::{ContentHash, Limits, Role, UserId, Version};
    use mdcreator_inprocess::InProcessFanout;

    /// A service in which `member` is an editor of `workspace` and nobody else is a member.
    fn service(workspace: WorkspaceId, member: UserId) -> CollabService {
        let mut documents = MockDocumentRepository::new();
        documents.expect_document_summary().returning(move |id| {
            Ok(Some(DocumentSummary {
                id,
                workspace_id: workspace,
                folder_id: None,
                title: "t".into(),
                content_hash: ContentHash::of(""),
                version: Version(1),
                position: 0.0,
                created_by: None,
                updated_by: None,
                created_at: Utc::now(),
                updated_at: Utc::now(),
                deleted_at: None,
            }))
        });
        let mut members = MockMembershipRepository::new();
        members
            .expect_role_of()
            .returning(move |_, user| Ok((user == member).then_some(Role::Editor)));
        let mut grants = MockDocumentGrants::new();
        grants.expect_grant_of().returning(|_, _| Ok(None));
        CollabService::new(
            Arc::new(documents),
            Access::new(Arc::new(members), Arc::new(grants)),
            Arc::new(MockUnitOfWork::new()),
            Arc::new(MockPresence::new()),
            Arc::new(MockClock::new()),
            Limits::default(),
        )
    }

    async fn epoch_moves_from(watch: &AccessWatch, epoch: u64, what: &str) {
        let moved = tokio::time::timeout(Duration::from_secs(5), async {
            while watch.epoch() == epoch {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(moved.is_ok(), "{what}");
    }

    async fn revoked_within(registration: &mut Registration, wait: Duration) -> Option<Close> {
        tokio::time::timeout(wait, registration.revoked())
            .await
            .ok()
    }

    /// A socket admitted before a poke whose round did not include it yet is checked again when
    /// it registers; one admitted after the last poke is not (its own check was current).
    #[tokio::test]
    async fn a_socket_registered_after_a_poke_it_missed_is_checked_again() {
        let (workspace, document) = (WorkspaceId::new(), DocumentId::new());
        let member = UserId::new();
        let fanout = Arc::new(InProcessFanout::default());
        let watch = AccessWatch::new(fanout.clone(), Arc::new(service(workspace, member)));

        // A member's socket makes this instance follow the workspace's pokes.
        let before = watch.epoch();
        let mut kept = watch.register(workspace, Caller::session(member), document, true, before);
        epoch_moves_from(&watch, before, "the watch follows the workspace").await;

        // Another user's socket passed its access check (say, just before its removal)...
        let removed = UserId::new();
        let admitted_at = watch.epoch();
        // ...then the removal pokes the workspace, and the round runs before it registers.
        fanout
            .publish(&topics::access(workspace), b"poke".to_vec())
            .await
            .unwrap();
        epoch_moves_from(&watch, admitted_at, "the poke is seen").await;
        let mut late = watch.register(
            workspace,
            Caller::session(removed),
            document,
            true,
            admitted_at,
        );
        let close = revoked_within(&mut late, Duration::from_secs(5))
            .await
            .expect("checked again at registration");
        assert_eq!(close.code, mdcreator_collab::CloseCode::Forbidden);

        // Registered with the current epoch, a socket is not checked again (nothing moved) and
        // the member's own socket stays.
        let mut current = watch.register(
            workspace,
            Caller::session(removed),
            document,
            true,
            watch.epoch(),
        );
        assert!(
            revoked_within(&mut current, Duration::from_millis(300))
                .await
                .is_none()
        );
        assert!(
            revoked_within(&mut kept, Duration::from_millis(100))
                .await
                .is_none()
        );
    }
}
