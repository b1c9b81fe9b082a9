//! MD Creator's domain: the model, the RBAC policy, the use cases and the ports they talk through.
//!
//! Nothing here performs I/O. Adapters (SQL, identity, blob stores, Redis…) implement the port
//! traits; the server crate wires them into the services at startup. With the `mocks` feature (and
//! in this crate's own tests) every port has a `mockall` mock named `Mock<Trait>`.

pub mod access;
pub mod api_tokens;
pub mod attachments;
pub mod blobs;
pub mod collab;
pub mod comments;
pub mod context_files;
pub mod documents;
pub mod fanout;
pub mod feed;
pub mod folders;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod invitations;
pub mod members;
pub mod notifications;
pub mod pagination;
pub mod ports;
pub mod presence;
pub mod rbac;
pub mod secrets;
pub mod sync;
pub mod users;
pub mod values;
pub mod workspaces;

pub use access::{Caller, Scope};
pub use ids::*;
pub use ports::{Clock, StoreError};
pub use rbac::{Action, Role};
pub use values::*;
