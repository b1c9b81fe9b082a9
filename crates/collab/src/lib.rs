//! Real-time collaboration over the y-protocols (the npm `y-websocket` wire format): one room per
//! open document, frames checked before yrs decodes them, writers' updates stored before they are
//! relayed, Markdown materialized through the domain, other instances reached through the
//! [`Fanout`](mdcreator_domain::fanout::Fanout) port. No HTTP: the server crate adapts sockets to
//! [`Connection`]s.

pub mod frame;
mod hub;
mod room;
pub mod ydoc;

pub use hub::{Close, CloseCode, Connection, Hub, HubSettings, JoinError, Outbound, Peer};
