//! Room logic against an in-memory store, the in-process fan-out and mocked domain ports.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ClientID, GetString, ReadTxn, StateVector, Text, Transact};

use mdcreator_collab::{CloseCode, Connection, Hub, HubSettings, Outbound, Peer, ydoc};
use mdcreator_domain::access::Access;
use mdcreator_domain::collab::{CollabService, LiveDocuments, MergeFn, StoredYjs, YjsStore};
use mdcreator_domain::documents::{Document, MockDocumentGrants, MockDocumentRepository};
use mdcreator_domain::fanout::{Fanout, topics};
use mdcreator_domain::feed::MockUnitOfWork;
use mdcreator_domain::members::MockMembershipRepository;
use mdcreator_domain::ports::SystemClock;
use mdcreator_domain::values::{ContentHash, Limits, Version};
use mdcreator_domain::{DocumentId, StoreError, UserId, WorkspaceId};
use mdcreator_inprocess::{InProcessFanout, InProcessPresence};

/// The compacted state and the `(id, update)` log.
type Stored = (Option<Vec<u8>>, Vec<(i64, Vec<u8>)>);

#[derive(Default)]
struct MemoryStore {
    state: Mutex<Stored>,
}

impl MemoryStore {
    fn updates(&self) -> usize {
        self.state.lock().unwrap().1.len()
    }
}

#[async_trait::async_trait]
impl YjsStore for MemoryStore {
    async fn load(&self, _: DocumentId) -> Result<Option<StoredYjs>, StoreError> {
        let s = self.state.lock().unwrap();
        Ok(Some(StoredYjs {
            state: s.0.clone(),
            updates: s.1.clone(),
        }))
    }

    async fn append(&self, _: DocumentId, updates: Vec<Vec<u8>>) -> Result<i64, StoreError> {
        let mut s = self.state.lock().unwrap();
        for u in updates {
            let id = s.1.last().map_or(1, |(id, _)| id + 1);
            s.1.push((id, u));
        }
        Ok(s.1.last().map_or(0, |(id, _)| *id))
    }

    async fn compact(&self, _: DocumentId, merge: MergeFn) -> Result<usize, StoreError> {
        let mut s = self.state.lock().unwrap();
        let n = s.1.len();
        let updates = s.1.drain(..).map(|(_, u)| u).collect();
        s.0 = Some(merge(s.0.take(), updates).map_err(StoreError::Unexpected)?);
        Ok(n)
    }
}

fn document(id: DocumentId) -> Document {
    let now = Utc::now();
    Document {
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
    }
}

fn hub(id: DocumentId, store: Arc<MemoryStore>, fanout: Arc<dyn Fanout>) -> Hub {
    let mut docs = MockDocumentRepository::new();
    docs.expect_document()
        .returning(move |_| Ok(Some(document(id))));
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
        fanout,
        HubSettings {
            debounce: Duration::from_millis(200),
            ..HubSettings::default()
        },
    )
}

fn peer(writable: bool) -> Peer {
    Peer {
        user_id: UserId::new(),
        display_name: "Ann".into(),
        writable,
    }
}

async fn next(c: &mut Connection) -> Option<Outbound> {
    tokio::time::timeout(Duration::from_millis(500), c.next())
        .await
        .ok()
        .flatten()
}

async fn binary(c: &mut Connection) -> Bytes {
    match next(c).await {
        Some(Outbound::Binary(b)) => b,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Applies every document message to `doc` until nothing arrives for a while.
async fn drain_into(c: &mut Connection, doc: &yrs::Doc) -> Vec<Bytes> {
    let mut seen = Vec::new();
    while let Some(Outbound::Binary(b)) = next(c).await {
        if let Ok(Message::Sync(SyncMessage::SyncStep2(u) | SyncMessage::Update(u))) =
            Message::decode_v1(&b)
        {
            ydoc::apply_update(doc, &u).unwrap();
        }
        seen.push(b);
    }
    seen
}

fn step1(doc: &yrs::Doc) -> Bytes {
    Message::Sync(SyncMessage::SyncStep1(doc.transact().state_vector()))
        .encode_v1()
        .into()
}

fn edit(doc: &yrs::Doc, at: u32, s: &str) -> Bytes {
    let text = doc.get_or_insert_text(ydoc::CONTENT);
    let before = doc.transact().state_vector();
    text.insert(&mut doc.transact_mut(), at, s);
    let update = doc.transact().encode_state_as_update_v1(&before);
    Message::Sync(SyncMessage::Update(update))
        .encode_v1()
        .into()
}

fn text(doc: &yrs::Doc) -> String {
    let t = doc.get_or_insert_text(ydoc::CONTENT);
    t.get_string(&doc.transact())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_relay_read_only_awareness_and_rest_edits() {
    let id = DocumentId::new();
    let store = Arc::new(MemoryStore::default());
    let hub = hub(id, store.clone(), Arc::new(InProcessFanout::default()));

    // A writer joins: sync step 1 first; its own step 1 is answered with the seeded Markdown.
    let mut a = hub.connect(id, peer(true)).await.unwrap();
    let first = binary(&mut a).await;
    assert_eq!(&first[..2], &[0, 0], "sync step 1 first");
    let doc_a = ydoc::new_doc();
    a.receive(step1(&doc_a)).unwrap();
    drain_into(&mut a, &doc_a).await;
    assert_eq!(text(&doc_a), "hello");
    assert_eq!(store.updates(), 1, "the seed is stored");

    let mut b = hub.connect(id, peer(false)).await.unwrap();
    let doc_b = ydoc::new_doc();
    b.receive(step1(&doc_b)).unwrap();
    drain_into(&mut b, &doc_b).await;
    assert_eq!(text(&doc_b), "hello");

    // The writer's update is stored before the viewer receives it.
    a.receive(edit(&doc_a, 5, " world")).unwrap();
    let relayed = binary(&mut b).await;
    assert_eq!(store.updates(), 2);
    let Message::Sync(SyncMessage::Update(u)) = Message::decode_v1(&relayed).unwrap() else {
        panic!("an update")
    };
    ydoc::apply_update(&doc_b, &u).unwrap();
    assert_eq!(text(&doc_b), "hello world");
    assert!(next(&mut a).await.is_none(), "not echoed to its sender");

    // The viewer's update is neither stored nor relayed.
    b.receive(edit(&doc_b, 0, "VIEWER ")).unwrap();
    assert!(next(&mut a).await.is_none());
    assert_eq!(store.updates(), 2);

    // Awareness goes to everyone, the sender included; leaving removes it.
    let awareness = AwarenessUpdate {
        clients: [(
            ClientID::new(7),
            AwarenessUpdateEntry {
                clock: 1,
                json: r#"{"user":{"name":"Ann"}}"#.into(),
            },
        )]
        .into(),
    };
    let frame: Bytes = Message::Awareness(awareness).encode_v1().into();
    a.receive(frame.clone()).unwrap();
    assert_eq!(binary(&mut a).await, frame);
    assert_eq!(binary(&mut b).await, frame);

    // y-websocket clients send every state they apply back to the server. An echo of a state
    // the room already has is not relayed again (else each renewal would bounce clients × clients
    // messages); of a message with old and new states, only the new ones go out.
    b.receive(frame.clone()).unwrap();
    assert!(next(&mut a).await.is_none(), "a stale echo is not relayed");
    assert!(next(&mut b).await.is_none());
    let mixed = AwarenessUpdate {
        clients: [
            (
                ClientID::new(7),
                AwarenessUpdateEntry {
                    clock: 1,
                    json: r#"{"user":{"name":"Ann"}}"#.into(),
                },
            ),
            (
                ClientID::new(8),
                AwarenessUpdateEntry {
                    clock: 3,
                    json: r#"{"user":{"name":"Bob"}}"#.into(),
                },
            ),
        ]
        .into(),
    };
    b.receive(Message::Awareness(mixed).encode_v1().into())
        .unwrap();
    let Message::Awareness(relayed) = Message::decode_v1(&binary(&mut a).await).unwrap() else {
        panic!("an awareness update")
    };
    assert_eq!(relayed.clients.len(), 1, "only the new state");
    assert_eq!(relayed.clients[&ClientID::new(8)].clock, 3);
    assert!(matches!(
        Message::decode_v1(&binary(&mut b).await).unwrap(),
        Message::Awareness(_)
    ));
    drop(a);
    let removal = binary(&mut b).await;
    let Message::Awareness(update) = Message::decode_v1(&removal).unwrap() else {
        panic!("an awareness update")
    };
    assert_eq!(&*update.clients[&ClientID::new(7)].json, "null");

    // A hostile frame closes only its own connection, before anything reaches the room.
    let bomb = Bytes::from_static(&[0, 0, 5, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert_eq!(b.receive(bomb).unwrap_err().code, CloseCode::BadMessage);

    // REST → live: a minimal edit, stored and relayed.
    hub.apply_text(id, "hello brave world").await;
    drain_into(&mut b, &doc_b).await;
    assert_eq!(text(&doc_b).replace("VIEWER ", ""), "hello brave world");
    assert_eq!(store.updates(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_instances_updates_are_applied_and_relayed() {
    let id = DocumentId::new();
    let store = Arc::new(MemoryStore::default());
    let fanout = Arc::new(InProcessFanout::default());
    let hub = hub(id, store.clone(), fanout.clone());
    let mut a = hub.connect(id, peer(true)).await.unwrap();
    let doc_a = ydoc::new_doc();
    a.receive(step1(&doc_a)).unwrap();
    drain_into(&mut a, &doc_a).await;

    // Another instance publishes an update it stored (tagged with its own id).
    let other = ydoc::new_doc();
    ydoc::apply_update(&other, &ydoc::full_state(&doc_a)).unwrap();
    let before = other.transact().state_vector();
    other
        .get_or_insert_text(ydoc::CONTENT)
        .insert(&mut other.transact_mut(), 0, ">> ");
    let update = other.transact().encode_state_as_update_v1(&before);
    let mut payload = uuid::Uuid::new_v4().as_bytes().to_vec();
    payload.push(0);
    payload.extend_from_slice(&update);
    fanout
        .publish(&topics::document(id), payload)
        .await
        .unwrap();
    drain_into(&mut a, &doc_a).await;
    assert_eq!(text(&doc_a), ">> hello");
    assert_eq!(store.updates(), 1, "the publisher stored it, not this room");

    // Our own messages come back from the bus and are skipped.
    let sv = StateVector::decode_v1(&doc_a.transact().state_vector().encode_v1()).unwrap();
    assert!(!sv.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_rooms_are_flushed_and_evicted() {
    let id = DocumentId::new();
    let store = Arc::new(MemoryStore::default());
    let hub = hub(id, store.clone(), Arc::new(InProcessFanout::default()));
    let mut a = hub.connect(id, peer(true)).await.unwrap();
    let doc_a = ydoc::new_doc();
    a.receive(step1(&doc_a)).unwrap();
    drain_into(&mut a, &doc_a).await;
    a.receive(edit(&doc_a, 0, "x")).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(a);
    assert_eq!(hub.open_rooms(), 1);
    // Evicted after 5 s without connections, compacting the log into the state.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(hub.open_rooms(), 0);
    assert_eq!(store.updates(), 0, "compacted at close");
    let state = store.state.lock().unwrap().0.clone().expect("state");
    let doc = ydoc::load(Some(&state), &[]).unwrap();
    assert_eq!(text(&doc), "xhello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_flooding_connections_are_closed() {
    let id = DocumentId::new();
    let store = Arc::new(MemoryStore::default());
    let hub = hub(id, store, Arc::new(InProcessFanout::default()));
    let mut a = hub.connect(id, peer(true)).await.unwrap();
    let big = Bytes::from(vec![0u8; hub.settings().max_message_bytes + 1]);
    assert_eq!(a.receive(big).unwrap_err().code, CloseCode::TooLarge);
    let query = Bytes::from_static(&[3]);
    let burst = hub.settings().message_burst as usize;
    for _ in 0..burst {
        a.receive(query.clone()).unwrap();
    }
    assert_eq!(a.receive(query).unwrap_err().code, CloseCode::Flooding);
}

/// A fan-out that can be switched off, as Redis goes down and comes back: while off, publishing
/// and subscribing fail (`Unavailable`) and nothing is delivered; subscriptions made before stay
/// (the Redis adapter resumes them by itself).
struct Switchable {
    bus: Arc<InProcessFanout>,
    on: std::sync::atomic::AtomicBool,
}

impl Switchable {
    fn new(bus: Arc<InProcessFanout>) -> Self {
        Self {
            bus,
            on: std::sync::atomic::AtomicBool::new(true),
        }
    }

    fn set(&self, on: bool) {
        self.on.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), mdcreator_domain::fanout::FanoutError> {
        if self.on.load(std::sync::atomic::Ordering::SeqCst) {
            Ok(())
        } else {
            Err(mdcreator_domain::fanout::FanoutError::Unavailable(
                anyhow::anyhow!("switched off"),
            ))
        }
    }
}

#[async_trait::async_trait]
impl Fanout for Switchable {
    async fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
    ) -> Result<(), mdcreator_domain::fanout::FanoutError> {
        self.check()?;
        self.bus.publish(topic, payload).await
    }

    async fn subscribe(
        &self,
        topic: &str,
    ) -> Result<mdcreator_domain::fanout::Subscription, mdcreator_domain::fanout::FanoutError> {
        self.check()?;
        self.bus.subscribe(topic).await
    }
}

/// Reads messages into `doc` until `done(text)` holds; fails after a generous deadline.
async fn until(c: &mut Connection, doc: &yrs::Doc, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(&text(doc)) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, c.next()).await {
            Ok(Some(Outbound::Binary(b))) => {
                if let Ok(Message::Sync(SyncMessage::SyncStep2(u) | SyncMessage::Update(u))) =
                    Message::decode_v1(&b)
                {
                    ydoc::apply_update(doc, &u).unwrap();
                }
            }
            Ok(other) => panic!("{what}: the connection ended: {other:?}"),
            Err(_) => panic!("{what}: not reached; the text is {:?}", text(doc)),
        }
    }
}

fn awareness_renewal(client: u64, clock: u32) -> Bytes {
    let update = AwarenessUpdate {
        clients: [(
            ClientID::new(client),
            AwarenessUpdateEntry {
                clock,
                json: r#"{"user":{"name":"renewing"}}"#.into(),
            },
        )]
        .into(),
    };
    Message::Awareness(update).encode_v1().into()
}

/// Two instances (hubs) sharing one store lose their fan-out; each side edits while it is down,
/// so nothing goes over the bus. Once it is back, both rooms converge from storage: the side
/// whose publishing failed catches up at once, and so does the side that first publishes again
/// after the outage (here an awareness renewal, which y-websocket sends every 15 s), even when
/// the other side's edit came after its own catch-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_on_two_instances_converge_from_storage_after_a_fanout_outage() {
    let id = DocumentId::new();
    let store = Arc::new(MemoryStore::default());
    let bus = Arc::new(InProcessFanout::default());
    let (fan_a, fan_b) = (
        Arc::new(Switchable::new(bus.clone())),
        Arc::new(Switchable::new(bus.clone())),
    );
    let hub_a = hub(id, store.clone(), fan_a.clone());
    let hub_b = hub(id, store.clone(), fan_b.clone());
    let mut a = hub_a.connect(id, peer(true)).await.unwrap();
    let doc_a = ydoc::new_doc();
    a.receive(step1(&doc_a)).unwrap();
    until(&mut a, &doc_a, "a synced", |t| t == "hello").await;
    let mut b = hub_b.connect(id, peer(true)).await.unwrap();
    let doc_b = ydoc::new_doc();
    b.receive(step1(&doc_b)).unwrap();
    until(&mut b, &doc_b, "b synced", |t| t == "hello").await;

    // While the fan-out is up, edits travel over it.
    a.receive(edit(&doc_a, 5, " up")).unwrap();
    until(&mut b, &doc_b, "relayed over the fan-out", |t| {
        t == "hello up"
    })
    .await;

    fan_a.set(false);
    fan_b.set(false);
    a.receive(edit(&doc_a, 0, "[A] ")).unwrap();
    // A's publish fails and A catches up from storage (nothing new there yet) before B edits.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.receive(edit(&doc_b, 0, "[B] ")).unwrap();
    // B's publish fails too: B catches up and gets A's edit from storage.
    until(&mut b, &doc_b, "A's edit at B during the outage", |t| {
        t.contains("[A] ")
    })
    .await;

    fan_a.set(true);
    fan_b.set(true);
    a.receive(awareness_renewal(1, 1)).unwrap();
    b.receive(awareness_renewal(2, 1)).unwrap();
    let both = |t: &str| t.contains("[A] ") && t.contains("[B] ") && t.contains("hello up");
    until(&mut a, &doc_a, "B's edit at A after the outage", both).await;
    until(&mut b, &doc_b, "both edits at B", both).await;
    assert_eq!(text(&doc_a), text(&doc_b));
    // Both edits were stored once each (after the seed and the first edit).
    assert_eq!(store.updates(), 4);

    // And the fan-out relays again.
    a.receive(edit(&doc_a, 0, "again ")).unwrap();
    until(&mut b, &doc_b, "relayed after the outage", |t| {
        t.starts_with("again ")
    })
    .await;
}
