//! sea-orm entities, one module per table of the `mdcreator-migration` schema.
//!
//! Written by hand to match `migration/src/m20261125_000001_initial.rs`; keep them in step.
//! Ids are `Uuid` (v7), timestamps `DateTimeUtc`, JSON `serde_json::Value` (jsonb / text),
//! bytes `Vec<u8>` (bytea / blob). Relations are the foreign keys (`belongs_to`) only.

pub mod ai_usage;
pub mod api_tokens;
pub mod attachments;
pub mod audit_events;
pub mod changes;
pub mod comment_mentions;
pub mod comments;
pub mod context_files;
pub mod device_results;
pub mod devices;
pub mod document_shares;
pub mod document_updates;
pub mod document_versions;
pub mod documents;
pub mod folders;
pub mod idempotency_keys;
pub mod invitations;
pub mod local_accounts;
pub mod notifications;
pub mod refresh_tokens;
pub mod signing_keys;
pub mod users;
pub mod workspace_members;
pub mod workspaces;
