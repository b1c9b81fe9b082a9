//! The [`TicketStore`] contract: single use across instances, expiry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use fred::prelude::KeysInterface;
use mdcreator_domain::collab::tickets::{
    TICKET_TTL, Ticket, TicketError, TicketStore, issue, new_ticket_id,
};
use mdcreator_domain::{Caller, DocumentId, Scope, UserId};
use mdcreator_inprocess::InProcessTickets;
use mdcreator_redis::{RedisClients, ticket_key};

use crate::support::{free_port, impatient, inspector, redis_instances, twice};

type Pair = (Arc<dyn TicketStore>, Arc<dyn TicketStore>);

fn in_process() -> Pair {
    twice(Arc::new(InProcessTickets::default()))
}

async fn redis() -> Option<Pair> {
    let (a, b) = redis_instances().await?;
    Some((Arc::new(a.tickets()), Arc::new(b.tickets())))
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
    a_ticket_issued_on_one_instance_is_taken_once_on_another,
    concurrent_takes_give_the_ticket_to_exactly_one,
    tickets_expire_after_their_ttl,
    every_field_round_trips,
);

fn ticket(scope: Scope) -> Ticket {
    Ticket {
        document: DocumentId::new(),
        caller: Caller {
            user_id: UserId::new(),
            scope,
        },
        display_name: "Ann — ✍️".into(),
        token: "header.payload.signature".into(),
        token_expires_at: Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()),
    }
}

async fn a_ticket_issued_on_one_instance_is_taken_once_on_another(
    a: Arc<dyn TicketStore>,
    b: Arc<dyn TicketStore>,
) {
    let issued = ticket(Scope::Session);
    let id = issue(a.as_ref(), issued.clone()).await.unwrap();
    assert_eq!(b.take(&id).await.unwrap(), Some(issued));
    assert_eq!(b.take(&id).await.unwrap(), None, "used");
    assert_eq!(a.take(&id).await.unwrap(), None, "used, on the issuer too");
    assert_eq!(a.take(&new_ticket_id()).await.unwrap(), None, "unknown");
    // Ids are fresh every time.
    let other = issue(a.as_ref(), ticket(Scope::Session)).await.unwrap();
    assert_ne!(other, id);
    assert!(other.len() >= 32, "{other}");
}

async fn concurrent_takes_give_the_ticket_to_exactly_one(
    a: Arc<dyn TicketStore>,
    b: Arc<dyn TicketStore>,
) {
    for _ in 0..5 {
        let id = issue(a.as_ref(), ticket(Scope::ReadWrite)).await.unwrap();
        let takes = (0..16).map(|i| {
            let (store, id) = (if i % 2 == 0 { a.clone() } else { b.clone() }, id.clone());
            tokio::spawn(async move { store.take(&id).await.unwrap() })
        });
        let results = futures::future::join_all(takes).await;
        let winners = results
            .into_iter()
            .filter(|r| r.as_ref().expect("take task").is_some())
            .count();
        assert_eq!(winners, 1);
    }
}

async fn tickets_expire_after_their_ttl(a: Arc<dyn TicketStore>, b: Arc<dyn TicketStore>) {
    let short = new_ticket_id();
    a.put(&short, ticket(Scope::Session), Duration::from_millis(300))
        .await
        .unwrap();
    let long = new_ticket_id();
    a.put(&long, ticket(Scope::Session), TICKET_TTL)
        .await
        .unwrap();
    // The contract allows rounding the TTL up by up to a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(b.take(&short).await.unwrap(), None, "expired");
    assert!(b.take(&long).await.unwrap().is_some(), "still valid");
}

async fn every_field_round_trips(a: Arc<dyn TicketStore>, b: Arc<dyn TicketStore>) {
    for scope in [Scope::Session, Scope::Read, Scope::ReadWrite] {
        let mut t = ticket(scope);
        let id = issue(a.as_ref(), t.clone()).await.unwrap();
        assert_eq!(b.take(&id).await.unwrap(), Some(t.clone()));
        // API tokens have no expiry of their own.
        t.token_expires_at = None;
        let id = issue(b.as_ref(), t.clone()).await.unwrap();
        assert_eq!(a.take(&id).await.unwrap(), Some(t));
    }
}

// Redis only.

#[tokio::test]
async fn redis_tickets_are_keys_that_expire_and_disappear_when_taken() {
    let (Some((a, _)), Some(inspector)) = (redis_instances().await, inspector().await) else {
        return;
    };
    let tickets = a.tickets();
    let id = issue(&tickets, ticket(Scope::Session)).await.unwrap();
    let key = ticket_key(&id);
    let ttl: i64 = inspector.pttl(&key).await.unwrap();
    let max = i64::try_from(TICKET_TTL.as_millis()).unwrap();
    assert!(max - 5_000 < ttl && ttl <= max, "key TTL {ttl} ms");
    assert!(tickets.take(&id).await.unwrap().is_some());
    let exists: i64 = inspector.exists(&key).await.unwrap();
    assert_eq!(exists, 0, "taken tickets are deleted");
}

#[tokio::test]
async fn redis_unreachable_tickets_fail_fast() {
    if crate::support::redis_url().is_none() {
        return;
    }
    let url = format!("redis://127.0.0.1:{}", free_port());
    let clients = RedisClients::connect(&url, impatient()).await.unwrap();
    let tickets = clients.tickets();
    let started = Instant::now();
    assert!(matches!(
        issue(&tickets, ticket(Scope::Session)).await,
        Err(TicketError::Unavailable(_))
    ));
    assert!(matches!(
        tickets.take(&new_ticket_id()).await,
        Err(TicketError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}
