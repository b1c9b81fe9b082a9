//! [`TicketStore`] in Redis, so a ticket issued by one instance opens a socket on any other.
//!
//! One string per ticket, `mdc:ticket:<id>`, written with `SET … PX <ttl>` (Redis expires it, on
//! Redis' clock) and spent with `GETDEL`, which reads and deletes in one atomic command: of two
//! instances taking the same ticket at once, exactly one gets it. `GETDEL` needs Redis 6.2+.
//!
//! The value holds the bearer token the ticket was issued for (the socket re-verifies it), for
//! at most the ticket's 60 s: Redis is as trusted as the database here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fred::prelude::{Client, ClientLike, KeysInterface};
use fred::types::Expiration;
use serde::{Deserialize, Serialize};

use mdcreator_domain::collab::tickets::{Ticket, TicketError, TicketStore};
use mdcreator_domain::{Caller, DocumentId, Scope, UserId};

use crate::clients::fail_fast;

/// Tickets as Redis strings with an expiry; see the module docs.
#[derive(Clone)]
pub struct RedisTickets {
    client: Client,
    timeout: Duration,
}

/// The key of one ticket.
pub fn ticket_key(id: &str) -> String {
    format!("mdc:ticket:{id}")
}

impl RedisTickets {
    pub(crate) fn new(client: Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }
}

#[async_trait::async_trait]
impl TicketStore for RedisTickets {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn put(&self, id: &str, ticket: Ticket, ttl: Duration) -> Result<(), TicketError> {
        let json = serde_json::to_string(&StoredTicket::from(ticket))
            .map_err(|e| TicketError::Unavailable(e.into()))?;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let _: Option<String> = self
            .client
            .with_options(&fail_fast(self.timeout))
            .set(
                ticket_key(id),
                json,
                Some(Expiration::PX(ttl_ms)),
                None,
                false,
            )
            .await
            .map_err(|e| TicketError::Unavailable(e.into()))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn take(&self, id: &str) -> Result<Option<Ticket>, TicketError> {
        let value: Option<String> = self
            .client
            .with_options(&fail_fast(self.timeout))
            .getdel(ticket_key(id))
            .await
            .map_err(|e| TicketError::Unavailable(e.into()))?;
        Ok(
            value.and_then(|v| match serde_json::from_str::<StoredTicket>(&v) {
                Ok(stored) => Some(stored.into()),
                Err(e) => {
                    // Written by some other version: refused like an unknown ticket.
                    tracing::warn!(error = %e, "unreadable ticket refused");
                    None
                }
            }),
        )
    }
}

/// The stored form: this crate's own format, independent of the domain type's layout.
#[derive(Debug, Serialize, Deserialize)]
struct StoredTicket {
    document: DocumentId,
    user_id: UserId,
    /// `session`, `read` or `read_write`.
    scope: String,
    display_name: String,
    token: String,
    token_expires_at: Option<DateTime<Utc>>,
}

impl From<Ticket> for StoredTicket {
    fn from(t: Ticket) -> Self {
        let scope = match t.caller.scope {
            Scope::Session => "session",
            Scope::Read => "read",
            Scope::ReadWrite => "read_write",
        };
        Self {
            document: t.document,
            user_id: t.caller.user_id,
            scope: scope.to_owned(),
            display_name: t.display_name,
            token: t.token,
            token_expires_at: t.token_expires_at,
        }
    }
}

impl From<StoredTicket> for Ticket {
    fn from(s: StoredTicket) -> Self {
        let scope = match s.scope.as_str() {
            "session" => Scope::Session,
            "read_write" => Scope::ReadWrite,
            // Anything unknown grants the least.
            _ => Scope::Read,
        };
        Ticket {
            document: s.document,
            caller: Caller {
                user_id: s.user_id,
                scope,
            },
            display_name: s.display_name,
            token: s.token,
            token_expires_at: s.token_expires_at,
        }
    }
}
