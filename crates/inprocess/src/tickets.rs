//! [`TicketStore`] inside one process (embedded default): a map with an expiry per ticket. A ticket
//! only opens sockets on the instance that issued it, which is all there is without Redis.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mdcreator_domain::collab::tickets::{Ticket, TicketError, TicketStore};

/// Tickets in a map. Never fails. Memory is bounded by the tickets issued within one TTL:
/// expired ones are swept whenever a ticket is issued.
#[derive(Default)]
pub struct InProcessTickets {
    tickets: Mutex<HashMap<String, (Ticket, Instant)>>,
}

impl InProcessTickets {
    fn tickets(&self) -> MutexGuard<'_, HashMap<String, (Ticket, Instant)>> {
        // Nothing panics while holding this lock; if something did, the map is still consistent.
        self.tickets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl TicketStore for InProcessTickets {
    async fn put(&self, id: &str, ticket: Ticket, ttl: Duration) -> Result<(), TicketError> {
        let now = Instant::now();
        let mut tickets = self.tickets();
        tickets.retain(|_, (_, expires)| *expires > now);
        tickets.insert(id.to_owned(), (ticket, now + ttl));
        Ok(())
    }

    async fn take(&self, id: &str) -> Result<Option<Ticket>, TicketError> {
        let taken = self.tickets().remove(id);
        Ok(taken
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(ticket, _)| ticket))
    }
}
