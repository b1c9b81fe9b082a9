//! HTTP routes. Handlers parse, call one use case, and map the result.

pub mod attachments;
pub mod auth;
pub mod blobs;
pub mod comments;
pub mod context_files;
pub mod documents;
pub mod dto;
pub mod folders;
pub mod ops;
pub mod sync;
pub mod users;
pub mod workspaces;

use actix_web::web;

/// Everything under `/api/v1`, plus the public well-known and operations endpoints.
pub fn configure(cfg: &mut web::ServiceConfig, max_document_bytes: usize) {
    cfg.configure(ops::configure)
        .configure(crate::collab::configure_ws)
        .service(
            web::scope("/api/v1")
                .configure(crate::collab::configure_api)
                .configure(auth::configure)
                .configure(users::configure)
                .configure(workspaces::configure)
                .configure(folders::configure)
                .configure(|c| documents::configure(c, max_document_bytes))
                .configure(attachments::configure)
                .configure(context_files::configure)
                .configure(comments::configure)
                .configure(sync::configure)
                .configure(blobs::configure),
        );
}

/// A path segment that must be a UUID; anything else is a precise 400, not a 404.
pub fn parse_id<T: std::str::FromStr>(
    raw: &str,
    what: &'static str,
) -> Result<T, crate::problem::ApiError> {
    raw.parse().map_err(|_| {
        crate::problem::ApiError::bad_request("invalid_id", format!("{what} must be a UUID"))
    })
}
