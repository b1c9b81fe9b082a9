//! In-process adapters: what one server needs when it is the only instance (no Redis): fan-out,
//! presence, rate limits, WebSocket tickets.

mod fanout;
mod limiter;
mod presence;
mod tickets;

pub use fanout::InProcessFanout;
pub use limiter::InProcessRateLimiter;
pub use presence::InProcessPresence;
pub use tickets::InProcessTickets;
