//! The [`Presence`] contract.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use fred::prelude::KeysInterface;
use mdcreator_domain::presence::{Presence, PresenceEntry, PresenceError};
use mdcreator_domain::{DocumentId, UserId};
use mdcreator_inprocess::InProcessPresence;
use mdcreator_redis::{RedisClients, presence_key};

use crate::support::{free_port, impatient, inspector, redis_instances, twice};

type Pair = (Arc<dyn Presence>, Arc<dyn Presence>);

fn in_process() -> Pair {
    twice(Arc::new(InProcessPresence::default()))
}

async fn redis() -> Option<Pair> {
    let (a, b) = redis_instances().await?;
    Some((Arc::new(a.presence()), Arc::new(b.presence())))
}

macro_rules! on_every_backend {
    ($($case:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test]
                async fn $case() {
                    let (a, b) = super::in_process();
                    super::$case(a, b).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some((a, b)) = super::redis().await else { return };
                    super::$case(a, b).await;
                }
            )*
        }
    };
}

on_every_backend!(
    instances_see_each_others_connections_oldest_first,
    leaving_removes_only_that_connection,
    joining_again_renews,
    entries_expire_after_their_ttl,
);

fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, second).unwrap()
}

fn entry(connection_id: &str, name: &str, since: DateTime<Utc>) -> PresenceEntry {
    PresenceEntry {
        connection_id: connection_id.to_owned(),
        user_id: UserId::new(),
        display_name: name.to_owned(),
        since,
    }
}

fn ids(entries: &[PresenceEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.connection_id.as_str()).collect()
}

async fn instances_see_each_others_connections_oldest_first(
    a: Arc<dyn Presence>,
    b: Arc<dyn Presence>,
) {
    let document = DocumentId::new();
    let newer = entry("b-1", "Bea — ✍️", at(30));
    let older = entry("a-1", "Ann", at(10));
    b.join(document, newer.clone(), 60).await.unwrap();
    a.join(document, older.clone(), 60).await.unwrap();
    for instance in [&a, &b] {
        assert_eq!(
            instance.list(document).await.unwrap(),
            vec![older.clone(), newer.clone()]
        );
    }
    assert!(a.list(DocumentId::new()).await.unwrap().is_empty());
}

async fn leaving_removes_only_that_connection(a: Arc<dyn Presence>, b: Arc<dyn Presence>) {
    let document = DocumentId::new();
    let user = UserId::new();
    let tab1 = PresenceEntry {
        user_id: user,
        ..entry("a-1", "Ann", at(1))
    };
    let tab2 = PresenceEntry {
        user_id: user,
        ..entry("b-7", "Ann", at(2))
    };
    a.join(document, tab1.clone(), 60).await.unwrap();
    b.join(document, tab2.clone(), 60).await.unwrap();
    b.leave(document, "a-1").await.unwrap();
    assert_eq!(a.list(document).await.unwrap(), vec![tab2]);
    a.leave(document, "never-joined").await.unwrap();
    a.leave(DocumentId::new(), "b-7").await.unwrap();
    a.leave(document, "b-7").await.unwrap();
    assert!(b.list(document).await.unwrap().is_empty());
}

async fn joining_again_renews(a: Arc<dyn Presence>, b: Arc<dyn Presence>) {
    let document = DocumentId::new();
    let me = entry("a-1", "Ann", at(1));
    a.join(document, me.clone(), 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    // The heartbeat: same connection, a fresh TTL, possibly a new display name.
    let renamed = PresenceEntry {
        display_name: "Ann B.".into(),
        ..me.clone()
    };
    a.join(document, renamed.clone(), 3).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(b.list(document).await.unwrap(), vec![renamed]);
}

async fn entries_expire_after_their_ttl(a: Arc<dyn Presence>, b: Arc<dyn Presence>) {
    let document = DocumentId::new();
    // a's instance "crashes": its connection never leaves and is never renewed.
    a.join(document, entry("a-1", "Ann", at(1)), 1)
        .await
        .unwrap();
    b.join(document, entry("b-1", "Bea", at(2)), 60)
        .await
        .unwrap();
    assert_eq!(ids(&b.list(document).await.unwrap()), ["a-1", "b-1"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(ids(&b.list(document).await.unwrap()), ["b-1"]);
    assert_eq!(ids(&a.list(document).await.unwrap()), ["b-1"]);
}

// Redis only.

#[tokio::test]
async fn redis_keys_expire_with_their_entries_and_stale_fields_are_pruned() {
    let (Some((a, _)), Some(inspector)) = (redis_instances().await, inspector().await) else {
        return;
    };
    let presence = a.presence();
    let document = DocumentId::new();
    let key = presence_key(document);
    presence
        .join(document, entry("a-1", "Ann", at(1)), 1)
        .await
        .unwrap();
    presence
        .join(document, entry("a-2", "Ann", at(2)), 30)
        .await
        .unwrap();
    let ttl: i64 = inspector.pttl(&key).await.unwrap();
    assert!(25_000 < ttl && ttl <= 30_000, "key TTL {ttl} ms");
    // A shorter TTL later never shortens the key's.
    presence
        .join(document, entry("a-3", "Ann", at(3)), 1)
        .await
        .unwrap();
    let ttl: i64 = inspector.pttl(&key).await.unwrap();
    assert!(25_000 < ttl, "key TTL {ttl} ms");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(ids(&presence.list(document).await.unwrap()), ["a-2"]);
    let fields: i64 = fred::prelude::HashesInterface::hlen(&inspector, &key)
        .await
        .unwrap();
    assert_eq!(fields, 1, "expired fields are pruned when listed");

    presence.leave(document, "a-2").await.unwrap();
    let exists: i64 = inspector.exists(&key).await.unwrap();
    assert_eq!(exists, 0);

    // A key nobody renews disappears on its own.
    presence
        .join(document, entry("a-4", "Ann", at(4)), 1)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let exists: i64 = inspector.exists(&key).await.unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn redis_unreachable_presence_fails_fast() {
    if crate::support::redis_url().is_none() {
        return;
    }
    let url = format!("redis://127.0.0.1:{}", free_port());
    let clients = RedisClients::connect(&url, impatient()).await.unwrap();
    let presence = clients.presence();
    let document = DocumentId::new();
    let started = Instant::now();
    assert!(matches!(
        presence
            .join(document, entry("a-1", "Ann", at(1)), 60)
            .await,
        Err(PresenceError::Unavailable(_))
    ));
    assert!(matches!(
        presence.list(document).await,
        Err(PresenceError::Unavailable(_))
    ));
    assert!(matches!(
        presence.leave(document, "a-1").await,
        Err(PresenceError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}
