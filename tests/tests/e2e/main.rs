//! End-to-end tests: the real server on a random port, over HTTP and WebSocket, on SQLite and
//! (with `DATABASE_URL`) Postgres. One test binary for all areas, so they link once.

mod api_tokens;
mod attachments;
mod auth;
mod bad_input;
mod blob_store;
mod cognito;
mod collab;
mod comments;
mod documents;
mod folders;
mod instances;
mod isolation;
mod ops;
mod redis;
mod roles;
mod sync;
mod websocket;
mod workspaces;
