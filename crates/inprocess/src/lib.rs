//! In-process adapters: what one server needs when it is the only instance (no Redis).

mod fanout;
mod limiter;
mod presence;

pub use fanout::InProcessFanout;
pub use limiter::InProcessRateLimiter;
pub use presence::InProcessPresence;
