//! In-process adapters: what one server needs when it is the only instance (no Redis).

mod fanout;

pub use fanout::InProcessFanout;
