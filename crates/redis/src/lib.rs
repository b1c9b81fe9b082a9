//! Redis adapters of the shared-state ports, over `fred`: what lets several server instances act
//! as one.
//!
//! - [`RedisFanout`]: [`Fanout`](mdcreator_domain::fanout::Fanout) over pub/sub.
//! - [`RedisPresence`]: [`Presence`](mdcreator_domain::presence::Presence) in one hash per
//!   document.
//! - [`RedisRateLimiter`]: [`RateLimiter`](mdcreator_domain::ports::RateLimiter) with one counter
//!   per key and window.
//! - [`RedisTickets`]: [`TicketStore`](mdcreator_domain::collab::tickets::TicketStore), single-use
//!   WebSocket tickets taken with `GETDEL`.
//!
//! All of them are best effort with bounded waits: when Redis is down, publishing and presence
//! fail fast with `Unavailable`, rate limits let requests through, and subscriptions resume by
//! themselves when it is back. [`connect`] builds them all over two connections.

mod clients;
mod fanout;
mod limiter;
mod presence;
mod script;
mod tickets;

pub use clients::{RedisClients, RedisSettings, connect};
pub use fanout::RedisFanout;
pub use limiter::RedisRateLimiter;
pub use presence::{RedisPresence, presence_key};
pub use tickets::{RedisTickets, ticket_key};
