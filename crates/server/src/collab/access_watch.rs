//! Live sockets grouped by workspace, re-checked when their workspace is poked.
//!
//! Removing a member or changing a role is a commit, and every commit pokes its workspace's topic
//! on the fan-out (Redis when instances share one, so a change made through any instance reaches
//! sockets on every instance). While an instance has sockets in a workspace it subscribes to that
//! workspace's topic (once, however many sockets); a poke starts a round that asks
//! [`CollabService::join`] again for every distinct user and document with a socket there, and
//! closes the sockets that lost access (see [`super::lost_access`]). A round also runs each time
//! the subscription starts, for changes committed before it was live.
//!
//! Rounds are throttled per workspace: a poke starts one at once, and the pokes that come during
//! it or within [`MIN_ROUND_INTERVAL`] of its start are folded into one round after that. Pokes
//! also come from every save in the workspace, so a busy workspace costs at most one access
//! check per user and document with a socket per interval. A poke is a hint: when one is lost
//! (fan-out down, or a change that lands between a socket's admission and its registration
//! here), the socket's own periodic re-check still closes it.

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
                runtime: tokio::runtime::Handle::current(),
            }),
        }
    }

    /// Watches a socket of `caller` on `document` (in `workspace`) opened with `writable` rights.
    pub fn register(
        &self,
        workspace: WorkspaceId,
        caller: Caller,
        document: DocumentId,
        writable: bool,
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

    /// One round: every distinct (user, scope, document) of the workspace asked once.
    async fn recheck(&self, workspace: WorkspaceId) {
        let watched: Vec<(u64, Caller, DocumentId, bool)> = match self.workspaces().get(&workspace)
        {
            Some(w) => w
                .sockets
                .iter()
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
    let topic = topics::workspace(workspace);
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
        inner.recheck(workspace).await;
        while pokes.next().await.is_some() {
            // Pokes that queued up during the last round and interval make one round together.
            while let Some(Some(_)) = pokes.next().now_or_never() {}
            let started = tokio::time::Instant::now();
            inner.recheck(workspace).await;
            tokio::time::sleep_until(started + MIN_ROUND_INTERVAL).await;
        }
        tracing::debug!(%workspace, "the workspace's pokes ended; following them again");
    }
}
