//! Single-use WebSocket tickets: `POST /documents/{id}/ws-ticket` hands one out, `?ticket=` spends
//! it when the socket opens, so a token never has to travel in a query string (and end up in a
//! load balancer's logs). Behind a round-robin balancer the socket may land on another instance
//! than the one that issued the ticket: the store is a port, in Redis when instances share one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngCore;

use crate::DocumentId;
use crate::access::Caller;

/// How long a ticket waits for its socket.
pub const TICKET_TTL: Duration = Duration::from_secs(60);

/// Who a ticket stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The only document the ticket opens.
    pub document: DocumentId,
    pub caller: Caller,
    pub display_name: String,
    /// The bearer token the ticket was issued for: the socket re-verifies it periodically (API
    /// tokens can be revoked) and closes when it expires.
    pub token: String,
    pub token_expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// The backend cannot be reached now (bounded wait); the request fails, nothing is issued.
    #[error("ticket store unavailable")]
    Unavailable(#[source] anyhow::Error),
}

/// Where issued tickets wait for their socket.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait TicketStore: Send + Sync {
    /// Keeps `ticket` under `id` (from [`new_ticket_id`]) for `ttl`. After `put` returns `Ok`,
    /// a `take` of `id` on any instance sharing the store MUST find it until `ttl` has passed.
    /// MUST return promptly (bounded wait) with `Unavailable` when the backend is down.
    async fn put(&self, id: &str, ticket: Ticket, ttl: Duration) -> Result<(), TicketError>;

    /// Removes and returns the ticket, atomically: of any number of takes of one id, on any
    /// number of instances, concurrent or not, at most one MUST get `Some`. MUST return `None`
    /// for an unknown id, a used one, and once the ticket's `ttl` has passed (an adapter may
    /// round the TTL up to its clock's granularity, never by more than a second). MUST return
    /// promptly with `Unavailable` when the backend is down.
    async fn take(&self, id: &str) -> Result<Option<Ticket>, TicketError>;
}

/// A fresh ticket id: 192 random bits, hex. Unguessable, so a ticket is a bearer secret.
pub fn new_ticket_id() -> String {
    let mut raw = [0u8; 24];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

/// Stores `ticket` under a fresh id for [`TICKET_TTL`] and returns the id.
pub async fn issue(store: &dyn TicketStore, ticket: Ticket) -> Result<String, TicketError> {
    let id = new_ticket_id();
    store.put(&id, ticket, TICKET_TTL).await?;
    Ok(id)
}
