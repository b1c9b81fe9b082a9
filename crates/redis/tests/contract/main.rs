//! The contract of the shared-state ports ([`Fanout`], [`Presence`], [`RateLimiter`],
//! [`TicketStore`]), written once and run against the in-process adapters always and against
//! Redis when `REDIS_URL` is set.
//!
//! "Two instances" are two adapters sharing one backend: for Redis, two separate sets of
//! connections (two server processes); in process, the same adapter twice. Every test uses names
//! of its own (topics, keys, documents), so tests run in parallel on one Redis.
//!
//! [`Fanout`]: mdcreator_domain::fanout::Fanout
//! [`Presence`]: mdcreator_domain::presence::Presence
//! [`RateLimiter`]: mdcreator_domain::ports::RateLimiter
//! [`TicketStore`]: mdcreator_domain::collab::tickets::TicketStore

mod fanout;
mod limiter;
mod presence;
mod support;
mod tickets;
