//! Pokes: "workspace W advanced to seq S", published after every commit on every instance
//! (through the [`Fanout`] port), and the per-caller stream the `/sync/events` endpoint serves.
//! Commits that can change access also poke the workspace's access topic, which live sockets
//! follow.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use super::SyncService;
use crate::access::Caller;
use crate::fanout::{Fanout, FanoutError, Subscription, topics};
use crate::feed::{CommitError, Committed, UnitOfWork, Write, WriteBatch};
use crate::ports::StoreError;
use crate::workspaces::WorkspaceRepository;
use crate::{UserId, WorkspaceId};

/// The body of a poke, as published and as sent to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Poke {
    pub workspace_id: WorkspaceId,
    pub seq: i64,
}

/// The pokes for one caller, until the fan-out ends.
pub type PokeStream = Pin<Box<dyn Stream<Item = Poke> + Send>>;

/// Publishes a poke for every workspace a commit advanced, and one on each affected user's topic
/// for membership writes and document grants. When a write of the commit can change access
/// ([`Write::may_change_access`]), each of those workspaces is also poked on its access topic
/// ([`topics::access`]). Wraps the unit of work once, so every write path
/// pokes. Publishing is best effort: the commit has happened, and clients that miss a poke catch
/// up on their next pull.
///
/// Built with [`PokingUnitOfWork::queued`] (the server), a commit only queues its pokes: a
/// [`PokePublisher`] running beside it sends them, coalescing what queued up meanwhile to one
/// poke per topic and workspace (the highest seq), so a 500-mutation push neither waits for the
/// fan-out 500 times nor floods it. [`PokingUnitOfWork::new`] publishes before `commit` returns.
pub struct PokingUnitOfWork {
    inner: Arc<dyn UnitOfWork>,
    sink: PokeSink,
}

enum PokeSink {
    Inline(Arc<dyn Fanout>),
    Queued(mpsc::UnboundedSender<(String, Poke)>),
}

impl PokingUnitOfWork {
    /// Publishes each commit's pokes before the commit returns.
    pub fn new(inner: Arc<dyn UnitOfWork>, fanout: Arc<dyn Fanout>) -> Self {
        Self {
            inner,
            sink: PokeSink::Inline(fanout),
        }
    }

    /// Queues each commit's pokes for the returned publisher, which the caller must spawn (it
    /// ends once every clone of the unit of work is dropped).
    pub fn queued(inner: Arc<dyn UnitOfWork>, fanout: Arc<dyn Fanout>) -> (Self, PokePublisher) {
        let (tx, rx) = mpsc::unbounded();
        let publisher = PokePublisher { rx, fanout };
        (
            Self {
                inner,
                sink: PokeSink::Queued(tx),
            },
            publisher,
        )
    }

    async fn publish(&self, topic: String, poke: Poke) {
        match &self.sink {
            PokeSink::Inline(fanout) => publish(fanout.as_ref(), &topic, poke).await,
            PokeSink::Queued(tx) => {
                // Fails only once the publisher is gone (shutdown): nobody is listening then.
                let _ = tx.unbounded_send((topic, poke));
            }
        }
    }
}

/// Sends queued pokes to the fan-out: whatever queued up while it was publishing goes out as
/// one poke per topic and workspace, with the highest seq.
pub struct PokePublisher {
    rx: mpsc::UnboundedReceiver<(String, Poke)>,
    fanout: Arc<dyn Fanout>,
}

impl PokePublisher {
    pub async fn run(mut self) {
        while let Some(first) = self.rx.next().await {
            let mut due: Vec<(String, Poke)> = vec![first];
            while let Ok(next) = self.rx.try_recv() {
                due.push(next);
            }
            for (topic, poke) in coalesce(due) {
                publish(self.fanout.as_ref(), &topic, poke).await;
            }
        }
    }
}

/// One poke per topic and workspace, the highest seq, in order of first appearance.
fn coalesce(pokes: Vec<(String, Poke)>) -> Vec<(String, Poke)> {
    let mut out: Vec<(String, Poke)> = Vec::with_capacity(pokes.len());
    for (topic, poke) in pokes {
        match out
            .iter_mut()
            .find(|(t, p)| *t == topic && p.workspace_id == poke.workspace_id)
        {
            Some((_, kept)) => kept.seq = kept.seq.max(poke.seq),
            None => out.push((topic, poke)),
        }
    }
    out
}

async fn publish(fanout: &dyn Fanout, topic: &str, poke: Poke) {
    let payload = serde_json::to_vec(&poke).unwrap_or_default();
    if let Err(FanoutError::Unavailable(e)) = fanout.publish(topic, payload).await {
        tracing::warn!(error = ?e, %topic, "could not publish a sync poke");
    }
}

#[async_trait::async_trait]
impl UnitOfWork for PokingUnitOfWork {
    async fn commit(&self, batch: WriteBatch) -> Result<Committed, CommitError> {
        let members: Vec<(UserId, WorkspaceId)> = batch
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::PutMember { member, .. } => Some((member.user_id, member.workspace_id)),
                Write::RemoveMember {
                    workspace_id,
                    user_id,
                    ..
                } => Some((*user_id, *workspace_id)),
                // A grantee does not follow the workspace: its own topic tells it to pull.
                Write::InsertDocumentGrant(grant) => Some((grant.user_id, grant.workspace_id)),
                _ => None,
            })
            .collect();
        let access = batch.writes.iter().any(Write::may_change_access);
        let committed = self.inner.commit(batch).await?;
        let seq_of = |workspace_id: WorkspaceId| {
            committed
                .heads
                .iter()
                .find(|(ws, _)| *ws == workspace_id)
                .map_or(0, |(_, seq)| *seq)
        };
        for (workspace_id, seq) in &committed.heads {
            let poke = Poke {
                workspace_id: *workspace_id,
                seq: *seq,
            };
            self.publish(topics::workspace(*workspace_id), poke).await;
        }
        if access {
            // Every workspace the commit advanced, and those its membership and grant writes
            // name even if it advanced none of them.
            let mut workspaces: Vec<WorkspaceId> =
                committed.heads.iter().map(|(ws, _)| *ws).collect();
            for (_, ws) in &members {
                if !workspaces.contains(ws) {
                    workspaces.push(*ws);
                }
            }
            for workspace_id in workspaces {
                let poke = Poke {
                    workspace_id,
                    seq: seq_of(workspace_id),
                };
                self.publish(topics::access(workspace_id), poke).await;
            }
        }
        for (user, workspace_id) in members {
            let poke = Poke {
                workspace_id,
                seq: seq_of(workspace_id),
            };
            self.publish(topics::user(user), poke).await;
        }
        Ok(committed)
    }
}

impl SyncService {
    /// The caller's pokes: one per advance of any workspace the caller belongs to, following
    /// memberships (a workspace joined is subscribed to, one left is dropped, and either change
    /// is itself poked so the client pulls). Ends when the fan-out does; clients reconnect.
    pub async fn pokes(&self, caller: &Caller) -> Result<PokeStream, StoreError> {
        let fanout = self.ports.fanout.clone();
        let unavailable = |e: FanoutError| match e {
            FanoutError::Unavailable(e) => StoreError::Unavailable(e),
        };
        // The user's topic first: a membership change from now on is not missed.
        let own = fanout
            .subscribe(&topics::user(caller.user_id))
            .await
            .map_err(unavailable)?;
        let mut watch = Watch {
            user: caller.user_id,
            own,
            workspaces: HashMap::new(),
            fanout,
            repository: self.ports.workspaces.clone(),
        };
        watch.follow_memberships().await?;
        Ok(Box::pin(futures::stream::unfold(
            watch,
            |mut watch| async move {
                loop {
                    match futures::future::poll_fn(|cx| watch.poll_event(cx)).await {
                        Event::Own(None) | Event::Workspace(None) => return None,
                        Event::Own(Some(bytes)) => {
                            if let Err(e) = watch.follow_memberships().await {
                                tracing::warn!(error = ?e, "could not re-read memberships");
                            }
                            if let Ok(poke) = serde_json::from_slice::<Poke>(&bytes) {
                                return Some((poke, watch));
                            }
                        }
                        Event::Workspace(Some(bytes)) => {
                            if let Ok(poke) = serde_json::from_slice::<Poke>(&bytes) {
                                return Some((poke, watch));
                            }
                        }
                    }
                }
            },
        )))
    }
}

enum Event {
    Own(Option<Vec<u8>>),
    Workspace(Option<Vec<u8>>),
}

struct Watch {
    user: UserId,
    own: Subscription,
    workspaces: HashMap<WorkspaceId, Subscription>,
    fanout: Arc<dyn Fanout>,
    repository: Arc<dyn WorkspaceRepository>,
}

impl Watch {
    /// Subscribes to workspaces joined, drops those left.
    async fn follow_memberships(&mut self) -> Result<(), StoreError> {
        let now: Vec<WorkspaceId> = self
            .repository
            .workspaces_of(self.user)
            .await?
            .into_iter()
            .map(|v| v.workspace.id)
            .collect();
        self.workspaces.retain(|ws, _| now.contains(ws));
        for ws in now {
            if self.workspaces.contains_key(&ws) {
                continue;
            }
            match self.fanout.subscribe(&topics::workspace(ws)).await {
                Ok(sub) => {
                    self.workspaces.insert(ws, sub);
                }
                Err(FanoutError::Unavailable(e)) => return Err(StoreError::Unavailable(e)),
            }
        }
        Ok(())
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if let Poll::Ready(m) = self.own.poll_next_unpin(cx) {
            return Poll::Ready(Event::Own(m));
        }
        for sub in self.workspaces.values_mut() {
            if let Poll::Ready(m) = sub.poll_next_unpin(cx) {
                return Poll::Ready(Event::Workspace(m));
            }
        }
        Poll::Pending
    }
}
