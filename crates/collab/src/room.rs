//! One document's room: a task that owns the yrs document and the awareness states, answers the
//! y-protocols sync, stores writers' updates before relaying them, and talks to other instances
//! through the fan-out.
//!
//! Everything for one room happens in order on this one task, so no lock is held across an
//! `.await` and no yrs transaction outlives a synchronous block. Updates that arrive together are
//! stored in one insert (group commit) and then relayed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::channel::mpsc as client_queue;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ClientID, Doc, StateVector};

use mdcreator_domain::fanout::{Subscription, topics};
use mdcreator_domain::presence::PresenceEntry;
use mdcreator_domain::{DocumentId, UserId};

use crate::frame::{self, Checked, FrameKind};
use crate::hub::{CloseCode, HubInner, Outbound, Peer};
use crate::ydoc::{self, ApplyError};

pub(crate) type ConnId = u64;

pub(crate) enum RoomMsg {
    Join {
        conn: ConnId,
        peer: Peer,
        tx: client_queue::Sender<Outbound>,
        /// `true` once registered and greeted; `false` when the room cannot load.
        ack: oneshot::Sender<bool>,
    },
    Leave {
        conn: ConnId,
    },
    Frame {
        conn: ConnId,
        frame: Bytes,
        checked: Checked,
    },
    ApplyText {
        text: String,
        done: oneshot::Sender<bool>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// Fan-out payload kinds: `[instance id: 16][kind: 1][data]`.
pub(crate) const KIND_UPDATE: u8 = 0;
pub(crate) const KIND_AWARENESS: u8 = 1;

pub(crate) fn fanout_payload(instance: Uuid, kind: u8, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(17 + data.len());
    p.extend_from_slice(instance.as_bytes());
    p.push(kind);
    p.extend_from_slice(data);
    p
}

/// Starts the room on the runtime of the caller: the HTTP worker thread of the connection that
/// opens it, which the server makes the document's home for all of its connections (see the
/// server's `upgrade` module). They then exchange messages with the room without waking another
/// thread (on a small machine, thread wake-ups cost more than the room's own work).
pub(crate) fn spawn(
    hub: Arc<HubInner>,
    document: DocumentId,
    generation: u64,
    rx: mpsc::UnboundedReceiver<RoomMsg>,
) {
    tokio::runtime::Handle::current().spawn(async move {
        let Some(mut room) = Room::open(hub, document, generation, rx).await else {
            return;
        };
        room.run().await;
    });
}

struct Conn {
    tx: client_queue::Sender<Outbound>,
    peer: Peer,
    since: chrono::DateTime<chrono::Utc>,
}

struct AwarenessState {
    clock: u32,
    /// `None`: removed (kept so older clocks are not accepted again).
    json: Option<Arc<str>>,
    renewed: Instant,
    /// The local connection that sent it; `None` for other instances' clients.
    owner: Option<ConnId>,
}

/// What an awareness message changed.
enum Accepted {
    All,
    Some(AwarenessUpdate),
    None,
}

struct Pending {
    conn: ConnId,
    /// The client's message, and the range of the update in it.
    frame: Bytes,
    checked: Checked,
}

impl Pending {
    fn update(&self) -> &[u8] {
        self.checked.payload(&self.frame)
    }

    /// The message relayed to the room: a copy of the client's own when it is a plain sync
    /// update (checked, and with nothing after the update), with no decoding or re-encoding.
    /// A copy, not a clone: the frame is a slice of the socket's read buffer, which relayed
    /// messages queued for a slow client would otherwise keep alive, kilobytes per message.
    fn relayed(&self) -> Bytes {
        if self.checked.kind == FrameKind::Update && self.frame.starts_with(&[0, 2]) {
            Bytes::copy_from_slice(&self.frame)
        } else {
            Bytes::from(Message::Sync(SyncMessage::Update(self.update().to_vec())).encode_v1())
        }
    }
}

struct Room {
    hub: Arc<HubInner>,
    document: DocumentId,
    generation: u64,
    rx: mpsc::UnboundedReceiver<RoomMsg>,
    doc: Doc,
    conns: HashMap<ConnId, Conn>,
    awareness: HashMap<u64, AwarenessState>,
    pending: Vec<Pending>,
    subscription: Option<Subscription>,
    /// `None` on the only instance (no fan-out).
    publisher: Option<mpsc::Sender<Vec<u8>>>,
    /// Set by the publisher when the fan-out refused a message: other instances missed it, and
    /// this one may have missed theirs, so the room catches up from storage.
    fanout_trouble: Arc<AtomicBool>,
    last_catch_up: Instant,
    /// First unmaterialized change, for the debounce window.
    dirty_since: Option<Instant>,
    last_writer: Option<UserId>,
    appended_since_compaction: usize,
    /// This room's compaction threshold and debounce window: the settings' values spread by
    /// ±25 % (see [`spread`]).
    compact_after: usize,
    debounce: Duration,
    last_update: Instant,
    empty_since: Option<Instant>,
    last_presence: Instant,
    last_resubscribe: Instant,
    /// A background materialization or compaction; one at a time.
    background: Option<tokio::task::JoinHandle<()>>,
    reload_due: bool,
}

const TICK: Duration = Duration::from_millis(500);

/// `value` times a random factor in [0.75, 1.25). Rooms opened together (every editor
/// reconnecting after a deploy, a benchmark's rooms) would otherwise compact and materialize in
/// lockstep: ten rooms' writes queued on SQLite's one writer at once, and their merges on the
/// CPU at once, held every room's next update back by 20 ms and more.
fn spread(value: f64) -> f64 {
    value * rand::random_range(0.75..1.25)
}
const PRESENCE_EVERY: Duration = Duration::from_secs(20);
const RESUBSCRIBE_EVERY: Duration = Duration::from_secs(2);
/// Messages lost on the fan-out (a broker restart, a lagging subscriber) are recovered from
/// storage at least this often while the room is open.
const CATCH_UP_EVERY: Duration = Duration::from_secs(60);
/// Awareness states one room keeps (present and recently removed); more are ignored, so a client
/// inventing client ids cannot grow the room without bound.
const MAX_AWARENESS_STATES: usize = 4096;
/// Messages handled before the pending updates are stored and relayed.
const BATCH: usize = 256;

impl Room {
    /// Subscribes to the document's topic, then loads the stored state (so nothing published
    /// meanwhile falls between), seeding new documents from their Markdown.
    async fn open(
        hub: Arc<HubInner>,
        document: DocumentId,
        generation: u64,
        mut rx: mpsc::UnboundedReceiver<RoomMsg>,
    ) -> Option<Room> {
        let subscription = if !hub.settings.shared {
            None
        } else {
            match hub.fanout.subscribe(&topics::document(document)).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(document = %document, error = ?e, "fan-out unavailable; the room works locally");
                    None
                }
            }
        };
        let doc = match load(&hub, document).await {
            Ok(doc) => doc,
            Err(e) => {
                tracing::error!(document = %document, error = ?e, "cannot open the room");
                forget(&hub, document, generation);
                rx.close();
                while let Ok(msg) = rx.try_recv() {
                    if let RoomMsg::Join { ack, .. } = msg {
                        let _ = ack.send(false);
                    }
                }
                return None;
            }
        };
        let fanout_trouble = Arc::new(AtomicBool::new(false));
        let publisher = hub.settings.shared.then(|| {
            let (publisher, queue) = mpsc::channel(4096);
            hub.runtime.spawn(publish_loop(
                hub.clone(),
                topics::document(document),
                queue,
                fanout_trouble.clone(),
            ));
            publisher
        });
        let now = Instant::now();
        let compact_after =
            (spread(hub.settings.compact_after_updates as f64).round() as usize).max(1);
        let debounce = Duration::from_secs_f64(spread(hub.settings.debounce.as_secs_f64()));
        Some(Room {
            hub,
            document,
            generation,
            rx,
            doc,
            conns: HashMap::new(),
            awareness: HashMap::new(),
            pending: Vec::new(),
            subscription,
            publisher,
            fanout_trouble,
            last_catch_up: now,
            dirty_since: None,
            last_writer: None,
            appended_since_compaction: 0,
            compact_after,
            debounce,
            last_update: now,
            empty_since: Some(now),
            last_presence: now,
            last_resubscribe: now,
            background: None,
            reload_due: false,
        })
    }

    async fn run(&mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = self.rx.recv() => {
                    let Some(msg) = msg else { break };
                    if self.handle(msg).await.is_break() {
                        return;
                    }
                    let mut n = 1;
                    // A panic in yrs ends the batch: what is queued behind it (a join, a sync
                    // step 1) must be answered from the reloaded document, not the half-applied
                    // one.
                    while n < BATCH && !self.reload_due {
                        let Ok(msg) = self.rx.try_recv() else { break };
                        if self.handle(msg).await.is_break() {
                            return;
                        }
                        n += 1;
                    }
                    self.flush().await;
                    if self.reload_due {
                        self.reload_due = false;
                        self.reload().await;
                    }
                }
                remote = next_remote(&mut self.subscription) => {
                    match remote {
                        Some(payload) => self.on_remote(&payload),
                        None => {
                            tracing::warn!(document = %self.document, "fan-out subscription ended; resubscribing");
                            self.subscription = None;
                        }
                    }
                }
                _ = tick.tick() => {
                    self.flush().await;
                    if self.reload_due {
                        self.reload_due = false;
                        self.reload().await;
                    }
                    if self.on_tick().await.is_break() {
                        return;
                    }
                }
            }
        }
        self.close_room(CloseCode::GoingAway).await;
    }

    async fn handle(&mut self, msg: RoomMsg) -> std::ops::ControlFlow<()> {
        match msg {
            RoomMsg::Join {
                conn,
                peer,
                tx,
                ack,
            } => {
                self.flush().await;
                self.join(conn, peer, tx, ack);
            }
            RoomMsg::Leave { conn } => self.leave(conn),
            RoomMsg::Frame {
                conn,
                frame,
                checked,
            } => {
                if matches!(
                    checked.kind,
                    FrameKind::SyncStep1 | FrameKind::QueryAwareness
                ) {
                    // Answers carry the document state: only what is stored goes out.
                    self.flush().await;
                }
                self.on_frame(conn, frame, checked);
            }
            RoomMsg::ApplyText { text, done } => {
                self.flush().await;
                let ok = self.apply_text(&text).await;
                let _ = done.send(ok);
            }
            RoomMsg::Shutdown { done } => {
                self.flush().await;
                self.close_room(CloseCode::GoingAway).await;
                let _ = done.send(());
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    fn join(
        &mut self,
        conn: ConnId,
        peer: Peer,
        mut tx: client_queue::Sender<Outbound>,
        ack: oneshot::Sender<bool>,
    ) {
        let step1 =
            Message::Sync(SyncMessage::SyncStep1(ydoc::state_vector(&self.doc))).encode_v1();
        let _ = tx.try_send(Outbound::Binary(step1.into()));
        if let Some(states) = self.awareness_message(None) {
            let _ = tx.try_send(Outbound::Binary(states));
        }
        let since = chrono::Utc::now();
        self.present(conn, &peer, since);
        self.conns.insert(conn, Conn { tx, peer, since });
        self.empty_since = None;
        let _ = ack.send(true);
    }

    fn leave(&mut self, conn: ConnId) {
        if self.conns.remove(&conn).is_none() {
            return;
        }
        let service = self.hub.service.clone();
        let (document, id) = (self.document, self.connection_id(conn));
        self.hub
            .runtime
            .spawn(async move { service.absent(document, &id).await });
        // Ghost cursors: the connection's awareness states are removed for everyone.
        let owned: Vec<u64> = self
            .awareness
            .iter()
            .filter(|(_, s)| s.owner == Some(conn) && s.json.is_some())
            .map(|(c, _)| *c)
            .collect();
        self.remove_awareness(&owned, true);
        if self.conns.is_empty() {
            self.empty_since = Some(Instant::now());
        }
    }

    fn on_frame(&mut self, conn: ConnId, frame: Bytes, checked: Checked) {
        let Some(writable) = self.conns.get(&conn).map(|c| c.peer.writable) else {
            return;
        };
        let payload = checked.payload(&frame);
        match checked.kind {
            FrameKind::SyncStep1 => {
                // Checked above; yrs decodes a bounded state vector.
                let answer = ydoc::guarded(|| {
                    let sv = StateVector::decode_v1(payload)
                        .map_err(|e| ApplyError::Decode(e.to_string()))?;
                    Ok(ydoc::diff_since(&self.doc, &sv))
                });
                match answer {
                    Ok(update) => {
                        let msg = Message::Sync(SyncMessage::SyncStep2(update)).encode_v1();
                        self.send(conn, Bytes::from(msg));
                    }
                    Err(e) => self.refuse(conn, e),
                }
            }
            FrameKind::SyncStep2 | FrameKind::Update => {
                if !writable {
                    // Read-only: neither applied nor stored nor relayed.
                    return;
                }
                match ydoc::apply_update(&self.doc, payload) {
                    Ok(true) => {
                        self.pending.push(Pending {
                            conn,
                            frame: frame.clone(),
                            checked,
                        });
                        self.last_writer = self.conns.get(&conn).map(|c| c.peer.user_id);
                    }
                    Ok(false) => {}
                    Err(e) => self.refuse(conn, e),
                }
            }
            FrameKind::Awareness => match decode_awareness(payload) {
                Ok(update) => {
                    let relay = match self.apply_awareness(update, Some(conn)) {
                        // Copied out of the socket's read buffer (see `Pending::relayed`).
                        Accepted::All => Some((Bytes::copy_from_slice(&frame), payload.to_vec())),
                        Accepted::Some(accepted) => {
                            let data = accepted.encode_v1();
                            Some((awareness_frame(&data), data))
                        }
                        Accepted::None => None,
                    };
                    // Only what changed is relayed: to everyone, the sender included (y-websocket
                    // clients expect it). Every client that applies a newer state sends it back,
                    // so relaying stale states again would answer each renewal with a storm of
                    // clients × clients messages.
                    if let Some((frame, data)) = relay {
                        self.broadcast(frame, None);
                        self.publish(KIND_AWARENESS, &data);
                    }
                }
                Err(e) => self.refuse(conn, e),
            },
            FrameKind::QueryAwareness => {
                if let Some(states) = self.awareness_message(None) {
                    self.send(conn, states);
                }
            }
        }
    }

    /// Stores the pending updates (one insert), then relays them locally and to other instances.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let updates: Vec<Vec<u8>> = pending.iter().map(|p| p.update().to_vec()).collect();
        match self.hub.store.append(self.document, updates).await {
            Ok(_) => {
                let now = Instant::now();
                self.appended_since_compaction += pending.len();
                self.last_update = now;
                self.dirty_since.get_or_insert(now);
                for p in pending {
                    self.broadcast(p.relayed(), Some(p.conn));
                    self.publish(KIND_UPDATE, p.update());
                }
            }
            Err(e) => {
                // Not stored means not relayed: drop the writers (they resend on reconnect)
                // and forget the unstored updates by reloading what is stored.
                tracing::error!(document = %self.document, error = ?e, "cannot store updates; reloading the room");
                let writers: Vec<ConnId> = pending.iter().map(|p| p.conn).collect();
                for conn in writers {
                    self.close(conn, CloseCode::Internal, "storage unavailable");
                }
                self.reload().await;
            }
        }
    }

    async fn apply_text(&mut self, text: &str) -> bool {
        let update = match ydoc::replace_text(&self.doc, text) {
            Ok(Some(u)) => u,
            Ok(None) => return true,
            Err(e) => {
                tracing::error!(document = %self.document, error = %e, "REST edit failed; reloading the room");
                self.reload().await;
                return false;
            }
        };
        match self
            .hub
            .store
            .append(self.document, vec![update.clone()])
            .await
        {
            Ok(_) => {
                self.appended_since_compaction += 1;
                let msg = Message::Sync(SyncMessage::Update(update.clone())).encode_v1();
                self.broadcast(Bytes::from(msg), None);
                self.publish(KIND_UPDATE, &update);
                true
            }
            Err(e) => {
                tracing::error!(document = %self.document, error = ?e, "cannot store a REST edit; reloading");
                self.reload().await;
                false
            }
        }
    }

    fn on_remote(&mut self, payload: &[u8]) {
        if payload.len() < 17 || payload[..16] == *self.hub.instance.as_bytes() {
            return;
        }
        let data = &payload[17..];
        match payload[16] {
            KIND_UPDATE => {
                // Other instances check what they publish; a shared bus is checked again anyway.
                if frame::check_update(data).is_err() {
                    tracing::warn!(document = %self.document, "dropped a malformed update from the fan-out");
                    return;
                }
                match ydoc::apply_update(&self.doc, data) {
                    Ok(true) => {
                        let msg = Message::Sync(SyncMessage::Update(data.to_vec())).encode_v1();
                        self.broadcast(Bytes::from(msg), None);
                        self.last_update = Instant::now();
                    }
                    Ok(false) => {}
                    Err(ApplyError::Panicked) => {
                        tracing::error!(document = %self.document, "a fan-out update panicked yrs");
                        self.needs_reload();
                    }
                    Err(e) => {
                        tracing::warn!(document = %self.document, error = %e, "dropped a fan-out update")
                    }
                }
            }
            KIND_AWARENESS => {
                if frame::check_awareness(data).is_err() {
                    return;
                }
                if let Ok(update) = decode_awareness(data) {
                    match self.apply_awareness(update, None) {
                        Accepted::All => self.broadcast(awareness_frame(data), None),
                        Accepted::Some(accepted) => {
                            self.broadcast(awareness_frame(&accepted.encode_v1()), None)
                        }
                        Accepted::None => {}
                    }
                }
            }
            _ => {}
        }
    }

    async fn on_tick(&mut self) -> std::ops::ControlFlow<()> {
        let now = Instant::now();
        let settings = self.hub.settings.clone();
        // Awareness not renewed in time is removed (yrs keeps states forever).
        let expired: Vec<u64> = self
            .awareness
            .iter()
            .filter(|(_, s)| {
                s.json.is_some() && now.duration_since(s.renewed) > settings.awareness_ttl
            })
            .map(|(c, _)| *c)
            .collect();
        self.remove_awareness(&expired, false);

        if now.duration_since(self.last_presence) >= PRESENCE_EVERY {
            self.last_presence = now;
            let conns: Vec<(ConnId, Peer, chrono::DateTime<chrono::Utc>)> = self
                .conns
                .iter()
                .map(|(id, c)| (*id, c.peer.clone(), c.since))
                .collect();
            for (id, peer, since) in conns {
                self.present(id, &peer, since);
            }
        }

        if settings.shared
            && self.subscription.is_none()
            && now.duration_since(self.last_resubscribe) >= RESUBSCRIBE_EVERY
        {
            self.last_resubscribe = now;
            if let Ok(s) = self
                .hub
                .fanout
                .subscribe(&topics::document(self.document))
                .await
            {
                tracing::info!(document = %self.document, "fan-out back; catching up from storage");
                self.subscription = Some(s);
                self.catch_up().await;
            }
        }

        let trouble = self.fanout_trouble.swap(false, Ordering::Relaxed);
        if self.subscription.is_some()
            && (trouble || now.duration_since(self.last_catch_up) >= CATCH_UP_EVERY)
        {
            self.catch_up().await;
        }

        let idle = self.background.as_ref().is_none_or(|h| h.is_finished());
        if idle {
            if self
                .dirty_since
                .is_some_and(|t| now.duration_since(t) >= self.debounce)
            {
                self.dirty_since = None;
                self.background = Some(self.spawn_materialize());
            } else if self.appended_since_compaction >= self.compact_after
                || (self.appended_since_compaction > 0
                    && now.duration_since(self.last_update) >= settings.compact_when_idle)
            {
                self.appended_since_compaction = 0;
                self.background = Some(self.spawn_compact());
            }
        }

        if self
            .empty_since
            .is_some_and(|t| now.duration_since(t) >= settings.evict_after)
            && self.try_evict()
        {
            self.finish().await;
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    }

    /// Leaves the hub's map if nothing is queued; joins racing with this retry on a new room.
    fn try_evict(&mut self) -> bool {
        let mut rooms = self.hub.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if !self.rx.is_empty() {
            return false;
        }
        if rooms
            .get(&self.document)
            .is_some_and(|h| h.generation == self.generation)
        {
            rooms.remove(&self.document);
        }
        self.rx.close();
        true
    }

    /// Closes every socket, materializes and compacts (room close and shutdown).
    async fn close_room(&mut self, code: CloseCode) {
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            self.close(conn, code, "server going away");
        }
        self.finish().await;
    }

    async fn finish(&mut self) {
        self.flush().await;
        // Joins that raced with the eviction retry elsewhere (their ack is dropped).
        while let Ok(msg) = self.rx.try_recv() {
            drop(msg);
        }
        if let Some(h) = self.background.take() {
            let _ = h.await;
        }
        self.spawn_materialize().await.ok();
        if self.appended_since_compaction > 0 {
            self.spawn_compact().await.ok();
        }
        tracing::debug!(document = %self.document, "room closed");
    }

    fn spawn_materialize(&self) -> tokio::task::JoinHandle<()> {
        let text = ydoc::text_of(&self.doc);
        let (service, document, author) =
            (self.hub.service.clone(), self.document, self.last_writer);
        self.hub.runtime.spawn(async move {
            if let Err(e) = service.materialize(document, text, author).await {
                tracing::warn!(document = %document, error = ?e, "materialization failed; retried at the next window");
            }
        })
    }

    fn spawn_compact(&self) -> tokio::task::JoinHandle<()> {
        let (store, document) = (self.hub.store.clone(), self.document);
        self.hub.runtime.spawn(async move {
            match store.compact(document, Box::new(ydoc::merge)).await {
                Ok(n) => tracing::debug!(document = %document, merged = n, "compacted"),
                Err(e) => tracing::warn!(document = %document, error = ?e, "compaction failed"),
            }
        })
    }

    /// Replaces the document by what storage holds (after a panic or a failed store).
    async fn reload(&mut self) {
        match load(&self.hub, self.document).await {
            Ok(doc) => self.doc = doc,
            Err(e) => {
                tracing::error!(document = %self.document, error = ?e, "reload failed; closing the room");
                let conns: Vec<ConnId> = self.conns.keys().copied().collect();
                for conn in conns {
                    self.close(conn, CloseCode::Internal, "document unavailable");
                }
            }
        }
    }

    /// Applies everything stored (idempotent) and relays only what this room did not have: after
    /// the fan-out was away, and periodically for messages it dropped.
    async fn catch_up(&mut self) {
        self.last_catch_up = Instant::now();
        let Ok(Some(stored)) = self.hub.store.load(self.document).await else {
            return;
        };
        let mut all = Vec::with_capacity(stored.updates.len() + 1);
        all.extend(stored.state.filter(|s| !s.is_empty()));
        all.extend(stored.updates.into_iter().map(|(_, u)| u));
        let fresh = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = fresh.clone();
        let observed = self.doc.observe_update_v1(
            "catch-up",
            move |_: &yrs::TransactionMut, e: &yrs::UpdateEvent| {
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(e.update.clone());
            },
        );
        for update in &all {
            if frame::check_update(update).is_ok() && ydoc::apply_update(&self.doc, update).is_err()
            {
                tracing::warn!(document = %self.document, "skipped a stored update during catch-up");
            }
        }
        if observed.is_ok() {
            let _ = self.doc.unobserve_update_v1("catch-up");
        }
        let fresh = std::mem::take(&mut *fresh.lock().unwrap_or_else(|p| p.into_inner()));
        if !fresh.is_empty() {
            tracing::info!(document = %self.document, updates = fresh.len(), "caught up from storage");
        }
        for update in fresh {
            let msg = Message::Sync(SyncMessage::Update(update)).encode_v1();
            self.broadcast(Bytes::from(msg), None);
        }
    }

    fn needs_reload(&mut self) {
        // A panic may have left the document half-applied: reload before the next batch.
        self.reload_due = true;
    }

    /// Closes a connection whose message broke yrs; a panic reloads the room.
    fn refuse(&mut self, conn: ConnId, e: ApplyError) {
        tracing::warn!(document = %self.document, connection = conn, error = %e, "refused a message");
        self.close(conn, CloseCode::BadMessage, &e.to_string());
        if matches!(e, ApplyError::Panicked) {
            self.needs_reload();
        }
    }

    /// Applies the states with newer clocks (and removals at the same clock), as y-protocols
    /// does, and says which of them were taken.
    fn apply_awareness(&mut self, update: AwarenessUpdate, owner: Option<ConnId>) -> Accepted {
        let now = Instant::now();
        let offered = update.clients.len();
        let mut accepted = HashMap::new();
        for (id, entry) in update.clients {
            let client = id.get();
            let json = if &*entry.json == "null" {
                None
            } else {
                Some(entry.json.clone())
            };
            let full = self.awareness.len() >= MAX_AWARENESS_STATES;
            match self.awareness.get_mut(&client) {
                Some(s) => {
                    let removal = s.clock == entry.clock && json.is_none() && s.json.is_some();
                    if s.clock < entry.clock || removal {
                        s.clock = entry.clock;
                        s.json = json;
                        s.renewed = now;
                        if owner.is_some() {
                            s.owner = owner;
                        }
                        accepted.insert(id, entry);
                    }
                }
                None if full => {
                    tracing::warn!(document = %self.document, "too many awareness states; ignoring a new one");
                }
                None => {
                    self.awareness.insert(
                        client,
                        AwarenessState {
                            clock: entry.clock,
                            json,
                            renewed: now,
                            owner,
                        },
                    );
                    accepted.insert(id, entry);
                }
            }
        }
        match accepted.len() {
            0 => Accepted::None,
            n if n == offered => Accepted::All,
            _ => Accepted::Some(AwarenessUpdate { clients: accepted }),
        }
    }

    /// Marks states removed and tells every local connection (and other instances if asked).
    fn remove_awareness(&mut self, clients: &[u64], publish: bool) {
        if clients.is_empty() {
            return;
        }
        let mut update = AwarenessUpdate {
            clients: HashMap::new(),
        };
        for client in clients {
            if let Some(s) = self.awareness.get_mut(client) {
                s.clock += 1;
                s.json = None;
                update.clients.insert(
                    ClientID::new(*client),
                    AwarenessUpdateEntry {
                        clock: s.clock,
                        json: Arc::from("null"),
                    },
                );
            }
        }
        // Removed states are remembered only as long as they matter (clock ordering).
        self.awareness
            .retain(|_, s| s.json.is_some() || s.renewed.elapsed() < Duration::from_secs(300));
        let data = update.encode_v1();
        self.broadcast(awareness_frame(&data), None);
        if publish {
            self.publish(KIND_AWARENESS, &data);
        }
    }

    /// Every present state, as one awareness message (`None` when nobody has one).
    fn awareness_message(&self, _for: Option<ConnId>) -> Option<Bytes> {
        let clients: HashMap<ClientID, AwarenessUpdateEntry> = self
            .awareness
            .iter()
            .filter_map(|(c, s)| {
                s.json.as_ref().map(|json| {
                    (
                        ClientID::new(*c),
                        AwarenessUpdateEntry {
                            clock: s.clock,
                            json: json.clone(),
                        },
                    )
                })
            })
            .collect();
        if clients.is_empty() {
            return None;
        }
        Some(awareness_frame(&AwarenessUpdate { clients }.encode_v1()))
    }

    fn present(&self, conn: ConnId, peer: &Peer, since: chrono::DateTime<chrono::Utc>) {
        let service = self.hub.service.clone();
        let entry = PresenceEntry {
            connection_id: self.connection_id(conn),
            user_id: peer.user_id,
            display_name: peer.display_name.clone(),
            since,
        };
        let (document, ttl) = (self.document, self.hub.settings.presence_ttl.as_secs());
        self.hub
            .runtime
            .spawn(async move { service.present(document, entry, ttl).await });
    }

    fn connection_id(&self, conn: ConnId) -> String {
        format!("{}:{conn}", self.hub.instance)
    }

    /// Hands `data` to the fan-out for other instances (a full queue drops it: see
    /// [`publish_loop`]).
    fn publish(&self, kind: u8, data: &[u8]) {
        if let Some(publisher) = &self.publisher {
            let _ = publisher.try_send(fanout_payload(self.hub.instance, kind, data));
        }
    }

    fn send(&mut self, conn: ConnId, msg: Bytes) {
        let full = match self.conns.get_mut(&conn) {
            Some(c) => c.tx.try_send(Outbound::Binary(msg)).is_err(),
            None => false,
        };
        if full {
            self.drop_slow(conn);
        }
    }

    fn broadcast(&mut self, msg: Bytes, except: Option<ConnId>) {
        let mut slow = Vec::new();
        for (id, c) in &mut self.conns {
            if Some(*id) != except && c.tx.try_send(Outbound::Binary(msg.clone())).is_err() {
                slow.push(*id);
            }
        }
        for id in slow {
            self.drop_slow(id);
        }
    }

    fn drop_slow(&mut self, conn: ConnId) {
        tracing::info!(document = %self.document, connection = conn, "dropping a client that does not keep up");
        // Dropping the sender ends the connection's stream; it then closes with 1013.
        self.leave(conn);
    }

    fn close(&mut self, conn: ConnId, code: CloseCode, reason: &str) {
        if let Some(c) = self.conns.get_mut(&conn) {
            let _ = c.tx.try_send(Outbound::Close(code, reason.to_owned()));
        }
        self.leave(conn);
    }
}

async fn load(hub: &HubInner, document: DocumentId) -> anyhow::Result<Doc> {
    let stored = hub
        .store
        .load(document)
        .await?
        .ok_or_else(|| anyhow::anyhow!("document {document} not found"))?;
    if stored.is_empty() {
        // New to collaboration: the Markdown is the initial text, stored as the first update.
        let content = hub
            .service
            .document(document)
            .await?
            .map(|d| d.content)
            .unwrap_or_default();
        let doc = ydoc::new_doc();
        if !content.is_empty() {
            let seed = ydoc::seed_update(&content);
            hub.store.append(document, vec![seed.clone()]).await?;
            ydoc::apply_update(&doc, &seed)?;
        }
        return Ok(doc);
    }
    let updates: Vec<Vec<u8>> = stored.updates.into_iter().map(|(_, u)| u).collect();
    Ok(ydoc::load(stored.state.as_deref(), &updates)?)
}

fn forget(hub: &HubInner, document: DocumentId, generation: u64) {
    let mut rooms = hub.rooms.lock().unwrap_or_else(|p| p.into_inner());
    if rooms
        .get(&document)
        .is_some_and(|h| h.generation == generation)
    {
        rooms.remove(&document);
    }
}

fn decode_awareness(payload: &[u8]) -> Result<AwarenessUpdate, ApplyError> {
    ydoc::guarded(|| {
        AwarenessUpdate::decode_v1(payload).map_err(|e| ApplyError::Decode(e.to_string()))
    })
}

/// `[1][varint len][awareness update]`.
fn awareness_frame(data: &[u8]) -> Bytes {
    let mut encoder = yrs::updates::encoder::EncoderV1::new();
    use yrs::encoding::write::Write;
    use yrs::updates::encoder::Encoder;
    encoder.write_var(1u8);
    encoder.write_buf(data);
    Bytes::from(encoder.to_vec())
}

async fn next_remote(subscription: &mut Option<Subscription>) -> Option<Vec<u8>> {
    match subscription {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Publishes in order without holding up the room; a full queue drops (other instances catch
/// up from storage when they reload). Raises `trouble` (the room catches up from storage) when
/// a publish fails, and once more at the first one that succeeds after: what other instances
/// stored while the fan-out was down reached nobody, and may have come after the room's last
/// catch-up.
async fn publish_loop(
    hub: Arc<HubInner>,
    topic: String,
    mut queue: mpsc::Receiver<Vec<u8>>,
    trouble: Arc<AtomicBool>,
) {
    let mut failing = false;
    while let Some(payload) = queue.recv().await {
        match hub.fanout.publish(&topic, payload).await {
            Err(e) => {
                tracing::debug!(error = ?e, "fan-out publish failed");
                failing = true;
                trouble.store(true, Ordering::Relaxed);
            }
            Ok(()) if failing => {
                failing = false;
                trouble.store(true, Ordering::Relaxed);
            }
            Ok(()) => {}
        }
    }
}
