//! The rooms of one instance and the connections into them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::channel::mpsc as client_queue;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use mdcreator_domain::collab::{CollabService, LiveDocuments, YjsStore};
use mdcreator_domain::fanout::{Fanout, topics};
use mdcreator_domain::{DocumentId, UserId};

use crate::frame;
use crate::room::{self, RoomMsg};
use crate::ydoc;

/// Tunables of the collaboration service.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Markdown is materialized at most once per window of activity (and at room close).
    pub debounce: Duration,
    /// The update log is compacted once this many updates were appended by this room.
    pub compact_after_updates: usize,
    /// …or when no update came for this long.
    pub compact_when_idle: Duration,
    /// A room without connections is flushed and evicted after this long.
    pub evict_after: Duration,
    /// Awareness states not renewed within this time are removed (y-websocket renews every 15 s).
    pub awareness_ttl: Duration,
    /// Largest message accepted from a client (bytes); larger closes with 4413.
    pub max_message_bytes: usize,
    /// Messages per second a connection may send on average…
    pub messages_per_sec: u32,
    /// …and in a burst.
    pub message_burst: u32,
    /// Messages queued for a client before it counts as too slow and is dropped. The queue holds
    /// only what is queued (an idle client's is empty), not this many slots.
    pub outbound_queue: usize,
    /// Presence entries live this long unless renewed.
    pub presence_ttl: Duration,
    /// Other instances may hold rooms of the same documents: subscribe to and publish on the
    /// fan-out. With a single instance (no Redis) rooms skip the fan-out entirely.
    pub shared: bool,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            debounce: Duration::from_secs(10),
            compact_after_updates: 500,
            compact_when_idle: Duration::from_secs(30),
            evict_after: Duration::from_secs(5),
            awareness_ttl: Duration::from_secs(30),
            max_message_bytes: 4 * 1024 * 1024,
            messages_per_sec: 200,
            message_burst: 1000,
            outbound_queue: 4096,
            presence_ttl: Duration::from_secs(60),
            shared: true,
        }
    }
}

/// WebSocket close codes of COLLAB.md (plus the standard ones used here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 1001: the server is going away (shutdown).
    GoingAway,
    /// 1007: a message that is not valid y-protocols.
    BadMessage,
    /// 1011: an internal error (storage down, CRDT panic).
    Internal,
    /// 1013: the client reads too slowly to keep up.
    TooSlow,
    /// 4401: bad or expired token.
    Unauthorized,
    /// 4403: no access (any more).
    Forbidden,
    /// 4404: no such document, or not visible.
    NotFound,
    /// 4413: message too large.
    TooLarge,
    /// 4429: too many messages.
    Flooding,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        match self {
            CloseCode::GoingAway => 1001,
            CloseCode::BadMessage => 1007,
            CloseCode::Internal => 1011,
            CloseCode::TooSlow => 1013,
            CloseCode::Unauthorized => 4401,
            CloseCode::Forbidden => 4403,
            CloseCode::NotFound => 4404,
            CloseCode::TooLarge => 4413,
            CloseCode::Flooding => 4429,
        }
    }
}

/// What the room sends to a connection.
#[derive(Debug, Clone)]
pub enum Outbound {
    Binary(Bytes),
    Close(CloseCode, String),
}

/// Who is connecting.
#[derive(Debug, Clone)]
pub struct Peer {
    pub user_id: UserId,
    pub display_name: String,
    /// Read-only peers' document updates are dropped (their awareness is relayed).
    pub writable: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the room could not be opened")]
    Unavailable,
}

/// The collaboration rooms of this instance. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<HubInner>,
}

pub(crate) struct HubInner {
    pub instance: Uuid,
    pub rooms: Mutex<HashMap<DocumentId, RoomHandle>>,
    pub store: Arc<dyn YjsStore>,
    pub service: Arc<CollabService>,
    pub fanout: Arc<dyn Fanout>,
    pub settings: HubSettings,
    /// Where background work runs (materialization, compaction, presence, publishing); rooms
    /// themselves run on the runtime of the connection that opened them.
    pub runtime: tokio::runtime::Handle,
    next_id: AtomicU64,
    shutting_down: AtomicBool,
}

#[derive(Clone)]
pub(crate) struct RoomHandle {
    pub tx: mpsc::UnboundedSender<RoomMsg>,
    pub generation: u64,
}

impl Hub {
    /// Rooms run on the Tokio runtime current at this call.
    pub fn new(
        store: Arc<dyn YjsStore>,
        service: Arc<CollabService>,
        fanout: Arc<dyn Fanout>,
        settings: HubSettings,
    ) -> Hub {
        let runtime = tokio::runtime::Handle::current();
        Hub {
            inner: Arc::new(HubInner {
                instance: Uuid::new_v4(),
                rooms: Mutex::new(HashMap::new()),
                store,
                service,
                fanout,
                settings,
                runtime,
                next_id: AtomicU64::new(1),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    pub fn settings(&self) -> &HubSettings {
        &self.inner.settings
    }

    pub fn instance_id(&self) -> Uuid {
        self.inner.instance
    }

    /// Whether [`Hub::shutdown`] has started.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Rooms open on this instance.
    pub fn open_rooms(&self) -> usize {
        self.inner
            .rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Joins `peer` to the document's room (opening it: subscribe, then load). The returned
    /// connection receives sync step 1 and the awareness states first.
    pub async fn connect(&self, document: DocumentId, peer: Peer) -> Result<Connection, JoinError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        for _ in 0..5 {
            if self.inner.shutting_down.load(Ordering::Acquire) {
                return Err(JoinError::ShuttingDown);
            }
            let handle = self.room(document);
            let (out_tx, out_rx) = client_queue::channel(self.inner.settings.outbound_queue);
            let (ack_tx, ack_rx) = oneshot::channel();
            let join = RoomMsg::Join {
                conn: id,
                peer: peer.clone(),
                tx: out_tx,
                ack: ack_tx,
            };
            if handle.tx.send(join).is_err() {
                self.forget(document, handle.generation);
                continue;
            }
            match ack_rx.await {
                Ok(true) => {
                    let settings = &self.inner.settings;
                    return Ok(Connection {
                        id,
                        document,
                        room: handle.tx,
                        outbound: out_rx,
                        bucket: TokenBucket::new(settings.messages_per_sec, settings.message_burst),
                        max_message_bytes: settings.max_message_bytes,
                    });
                }
                Ok(false) => return Err(JoinError::Unavailable),
                // The room closed between lookup and join (eviction): open a new one.
                Err(_) => {
                    self.forget(document, handle.generation);
                    continue;
                }
            }
        }
        Err(JoinError::Unavailable)
    }

    /// SIGTERM: closes every socket with 1001 and flushes every room (materialize, compact).
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        let rooms: Vec<RoomHandle> = {
            let mut rooms = self.inner.rooms.lock().unwrap_or_else(|p| p.into_inner());
            rooms.drain().map(|(_, h)| h).collect()
        };
        let mut waits = Vec::new();
        for room in rooms {
            let (tx, rx) = oneshot::channel();
            if room.tx.send(RoomMsg::Shutdown { done: tx }).is_ok() {
                waits.push(rx);
            }
        }
        let all = futures::future::join_all(waits);
        if tokio::time::timeout(Duration::from_secs(20), all)
            .await
            .is_err()
        {
            tracing::warn!("some rooms did not flush within 20 s");
        }
    }

    fn room(&self, document: DocumentId) -> RoomHandle {
        let mut rooms = self.inner.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = rooms.get(&document) {
            return h.clone();
        }
        let generation = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = RoomHandle { tx, generation };
        rooms.insert(document, handle.clone());
        room::spawn(self.inner.clone(), document, generation, rx);
        handle
    }

    fn forget(&self, document: DocumentId, generation: u64) {
        let mut rooms = self.inner.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if rooms
            .get(&document)
            .is_some_and(|h| h.generation == generation)
        {
            rooms.remove(&document);
        }
    }

    /// The REST → live path when no room is open here: edit the stored Yjs state, append the
    /// edit to the log and publish it, so rooms on other instances apply it.
    async fn apply_text_offline(&self, document: DocumentId, text: &str) -> anyhow::Result<()> {
        let Some(stored) = self.inner.store.load(document).await? else {
            return Ok(());
        };
        if stored.is_empty() {
            // The room will seed from the saved Markdown when it opens.
            return Ok(());
        }
        let updates: Vec<Vec<u8>> = stored.updates.into_iter().map(|(_, u)| u).collect();
        let doc = ydoc::load(stored.state.as_deref(), &updates)?;
        let Some(update) = ydoc::replace_text(&doc, text)? else {
            return Ok(());
        };
        self.inner
            .store
            .append(document, vec![update.clone()])
            .await?;
        if !self.inner.settings.shared {
            return Ok(());
        }
        let payload = room::fanout_payload(self.inner.instance, room::KIND_UPDATE, &update);
        if let Err(e) = self
            .inner
            .fanout
            .publish(&topics::document(document), payload)
            .await
        {
            tracing::warn!(error = ?e, "could not publish a REST edit; rooms catch up on reload");
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl LiveDocuments for Hub {
    async fn apply_text(&self, document: DocumentId, text: &str) {
        let room = {
            let rooms = self.inner.rooms.lock().unwrap_or_else(|p| p.into_inner());
            rooms.get(&document).cloned()
        };
        if let Some(room) = room {
            let (tx, rx) = oneshot::channel();
            let msg = RoomMsg::ApplyText {
                text: text.to_owned(),
                done: tx,
            };
            if room.tx.send(msg).is_ok()
                && let Ok(Ok(applied)) = tokio::time::timeout(Duration::from_secs(10), rx).await
            {
                if !applied {
                    tracing::warn!(document = %document, "a REST edit did not reach the live room");
                }
                return;
            }
        }
        if let Err(e) = self.apply_text_offline(document, text).await {
            tracing::warn!(document = %document, error = ?e, "a REST edit did not reach the live document");
        }
    }
}

/// Why a connection must close after a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub code: CloseCode,
    pub reason: String,
}

impl Close {
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

/// One client's connection to a room. Dropping it leaves the room (its awareness is removed).
pub struct Connection {
    id: u64,
    document: DocumentId,
    room: mpsc::UnboundedSender<RoomMsg>,
    outbound: client_queue::Receiver<Outbound>,
    bucket: TokenBucket,
    max_message_bytes: usize,
}

impl Connection {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn document(&self) -> DocumentId {
        self.document
    }

    /// Checks one binary message from the client and hands it to the room. `Err` means: close
    /// the socket with that code; nothing of the message reached the room.
    pub fn receive(&mut self, message: Bytes) -> Result<(), Close> {
        if message.len() > self.max_message_bytes {
            return Err(Close::new(CloseCode::TooLarge, "message too large"));
        }
        if !self.bucket.take(Instant::now()) {
            return Err(Close::new(CloseCode::Flooding, "too many messages"));
        }
        let checked = match frame::check(&message) {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(document = %self.document, connection = self.id, error = %e, "refused a malformed frame");
                return Err(Close::new(CloseCode::BadMessage, e.to_string()));
            }
        };
        let msg = RoomMsg::Frame {
            conn: self.id,
            frame: message,
            checked,
        };
        self.room
            .send(msg)
            .map_err(|_| Close::new(CloseCode::GoingAway, "room closed"))
    }

    /// The next message for the client; `None` when the room dropped this connection (too slow
    /// or closed).
    pub async fn next(&mut self) -> Option<Outbound> {
        self.outbound.next().await
    }

    /// A message already queued for the client, without waiting.
    pub fn try_next(&mut self) -> Option<Outbound> {
        self.outbound.try_recv().ok()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.room.send(RoomMsg::Leave { conn: self.id });
    }
}

/// Average rate plus burst, per connection.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let mut b = TokenBucket::new(10, 20);
        let t = Instant::now();
        assert_eq!((0..25).filter(|_| b.take(t)).count(), 20);
        assert!(b.take(t + Duration::from_millis(150)));
        assert!(!b.take(t + Duration::from_millis(150)));
    }

    /// A panic in yrs while applying a writer's update (forced by [`ydoc::test_panics`], after the
    /// update was applied, as a yrs bug would leave it) closes that connection with 1007 and
    /// reloads the room from storage: the half-applied edit reaches neither the other clients
    /// nor storage nor anyone joining later, and the room goes on serving everybody else.
    ///
    /// On one thread, so that what the test queues behind the poison is in the room's queue
    /// before the room runs: B's sync step 1 lands in the same batch as the poison, and must be
    /// answered from the reloaded document.
    #[tokio::test(flavor = "current_thread")]
    async fn a_panic_in_yrs_reloads_the_room_from_storage_and_spares_the_others() {
        use yrs::sync::{Message, SyncMessage};
        use yrs::updates::decoder::Decode;
        use yrs::updates::encoder::Encode;
        use yrs::{ReadTxn, Text, Transact};

        let document = DocumentId::new();
        let store = Arc::new(panic_support::MemoryStore::default());
        let hub = panic_support::hub(document, store.clone());

        let sync = |doc: &yrs::Doc| -> Bytes {
            Message::Sync(SyncMessage::SyncStep1(doc.transact().state_vector()))
                .encode_v1()
                .into()
        };
        let edit = |doc: &yrs::Doc, at: u32, s: &str| -> (Vec<u8>, Bytes) {
            let text = doc.get_or_insert_text(ydoc::CONTENT);
            let before = doc.transact().state_vector();
            text.insert(&mut doc.transact_mut(), at, s);
            let update = doc.transact().encode_state_as_update_v1(&before);
            let frame = Message::Sync(SyncMessage::Update(update.clone())).encode_v1();
            (update, frame.into())
        };
        // Applies document messages until `done(text)`; the close, if one comes first.
        async fn until(
            c: &mut Connection,
            doc: &yrs::Doc,
            done: impl Fn(&str) -> bool,
        ) -> Option<Outbound> {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while !done(&ydoc::text_of(doc)) {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match tokio::time::timeout(left, c.next()).await {
                    Ok(Some(Outbound::Binary(b))) => {
                        if let Ok(Message::Sync(
                            SyncMessage::SyncStep2(u) | SyncMessage::Update(u),
                        )) = Message::decode_v1(&b)
                        {
                            ydoc::apply_update(doc, &u).unwrap();
                        }
                    }
                    Ok(other) => return other,
                    Err(_) => panic!("not reached; the text is {:?}", ydoc::text_of(doc)),
                }
            }
            None
        }
        let writer = || Peer {
            user_id: UserId::new(),
            display_name: "Ann".into(),
            writable: true,
        };

        let mut a = hub.connect(document, writer()).await.unwrap();
        let doc_a = ydoc::new_doc();
        a.receive(sync(&doc_a)).unwrap();
        assert!(until(&mut a, &doc_a, |t| t == "hello").await.is_none());
        let mut b = hub.connect(document, writer()).await.unwrap();
        let doc_b = ydoc::new_doc();
        b.receive(sync(&doc_b)).unwrap();
        assert!(until(&mut b, &doc_b, |t| t == "hello").await.is_none());
        a.receive(edit(&doc_a, 5, " world").1).unwrap();
        assert!(
            until(&mut b, &doc_b, |t| t == "hello world")
                .await
                .is_none()
        );

        let (poison, frame) = edit(&doc_a, 0, "POISON ");
        ydoc::test_panics::poison(&poison);
        a.receive(frame).unwrap();
        b.receive(sync(&doc_b)).unwrap();
        match until(&mut a, &doc_a, |_| false).await {
            Some(Outbound::Close(code, _)) => assert_eq!(code, CloseCode::BadMessage),
            other => panic!("the panicking connection must be closed, got {other:?}"),
        }

        // The others go on: B edits, and a newcomer sees the stored text, without the poison.
        b.receive(edit(&doc_b, 11, "!").1).unwrap();
        let mut c = hub.connect(document, writer()).await.unwrap();
        let doc_c = ydoc::new_doc();
        c.receive(sync(&doc_c)).unwrap();
        assert!(
            until(&mut c, &doc_c, |t| t == "hello world!")
                .await
                .is_none()
        );
        // Whatever else is queued for B and C carries no trace of the poison either.
        c.receive(edit(&doc_c, 0, "> ").1).unwrap();
        assert!(
            until(&mut b, &doc_b, |t| t == "> hello world!")
                .await
                .is_none()
        );
        assert_eq!(ydoc::text_of(&doc_c), "> hello world!");
        assert!(!store.text().contains("POISON"), "{}", store.text());
        assert_eq!(store.text(), "> hello world!");
    }

    mod panic_support {
        use std::sync::Mutex;

        use mdcreator_domain::access::Access;
        use mdcreator_domain::collab::{MergeFn, StoredYjs};
        use mdcreator_domain::documents::{Document, MockDocumentGrants, MockDocumentRepository};
        use mdcreator_domain::feed::MockUnitOfWork;
        use mdcreator_domain::members::MockMembershipRepository;
        use mdcreator_domain::ports::SystemClock;
        use mdcreator_domain::values::{ContentHash, Limits, Version};
        use mdcreator_domain::{StoreError, WorkspaceId};
        use mdcreator_inprocess::{InProcessFanout, InProcessPresence};

        use super::*;

        /// One document's update log in memory.
        #[derive(Default)]
        pub struct MemoryStore {
            updates: Mutex<Vec<Vec<u8>>>,
        }

        impl MemoryStore {
            pub fn text(&self) -> String {
                let updates = self.updates.lock().unwrap().clone();
                ydoc::text_of(&ydoc::load(None, &updates).unwrap())
            }
        }

        #[async_trait::async_trait]
        impl YjsStore for MemoryStore {
            async fn load(&self, _: DocumentId) -> Result<Option<StoredYjs>, StoreError> {
                let updates = self.updates.lock().unwrap();
                Ok(Some(StoredYjs {
                    state: None,
                    updates: (1..).zip(updates.iter().cloned()).collect(),
                }))
            }

            async fn append(&self, _: DocumentId, new: Vec<Vec<u8>>) -> Result<i64, StoreError> {
                let mut updates = self.updates.lock().unwrap();
                updates.extend(new);
                Ok(updates.len() as i64)
            }

            async fn compact(&self, _: DocumentId, _: MergeFn) -> Result<usize, StoreError> {
                Ok(0)
            }
        }

        /// A hub on `store` whose document says "hello"; a lone instance (no fan-out).
        pub fn hub(id: DocumentId, store: Arc<MemoryStore>) -> Hub {
            let mut docs = MockDocumentRepository::new();
            docs.expect_document().returning(move |_| {
                let now = chrono::Utc::now();
                Ok(Some(Document {
                    id,
                    workspace_id: WorkspaceId::new(),
                    folder_id: None,
                    title: "t".into(),
                    content: "hello".into(),
                    content_hash: ContentHash::of("hello"),
                    version: Version::FIRST,
                    position: 0.0,
                    created_by: None,
                    updated_by: None,
                    created_at: now,
                    updated_at: now,
                    deleted_at: None,
                }))
            });
            let mut uow = MockUnitOfWork::new();
            uow.expect_commit().returning(|_| Ok(Default::default()));
            let service = CollabService::new(
                Arc::new(docs),
                Access::new(
                    Arc::new(MockMembershipRepository::new()),
                    Arc::new(MockDocumentGrants::new()),
                ),
                Arc::new(uow),
                Arc::new(InProcessPresence::default()),
                Arc::new(SystemClock),
                Limits {
                    max_document_bytes: 1 << 20,
                },
            );
            Hub::new(
                store,
                Arc::new(service),
                Arc::new(InProcessFanout::default()),
                HubSettings {
                    shared: false,
                    ..HubSettings::default()
                },
            )
        }
    }
}
