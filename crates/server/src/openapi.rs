//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    attachments, auth, blobs, comments, context_files, documents, folders, ops, sync, users,
    workspaces,
};

/// Everything under `/api/v1`.
#[derive(OpenApi)]
#[openapi(paths(
    auth::signup,
    auth::confirm,
    auth::resend_code,
    auth::login,
    auth::refresh,
    auth::logout,
    auth::forgot_password,
    auth::reset_password,
    users::me,
    users::update_me,
    users::tokens,
    users::create_token,
    users::revoke_token,
    workspaces::list,
    workspaces::create,
    workspaces::get_one,
    workspaces::update,
    workspaces::remove,
    workspaces::members,
    workspaces::change_role,
    workspaces::remove_member,
    workspaces::transfer,
    workspaces::invitations,
    workspaces::invite,
    workspaces::revoke_invitation,
    workspaces::accept_invitation,
    folders::tree,
    folders::create,
    folders::update,
    folders::remove,
    documents::list,
    documents::create,
    documents::get_one,
    documents::update,
    documents::remove,
    documents::restore,
    documents::duplicate,
    documents::versions,
    documents::version,
    documents::diff,
    documents::restore_version,
    attachments::create,
    attachments::list,
    attachments::complete,
    attachments::download,
    attachments::remove,
    context_files::list,
    context_files::create,
    context_files::get_one,
    context_files::update,
    context_files::remove,
    context_files::complete,
    comments::list,
    comments::create,
    comments::edit,
    comments::remove,
    comments::resolve,
    comments::reopen,
    comments::notifications,
    comments::read,
    comments::read_all,
    sync::register_device,
    sync::devices,
    sync::delete_device,
    sync::pull,
    sync::push,
    sync::pokes::events,
))]
struct ApiV1;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MD Creator API",
        description = "Accounts, workspaces, documents with history, sync and collaboration for MD Creator. \
                       Errors are RFC 7807 problem+json with a stable `code`."
    ),
    paths(ops::healthz, ops::readyz, ops::jwks, documents::get_content, documents::put_content, blobs::upload, blobs::download),
    nest((path = "/api/v1", api = ApiV1)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth"), (name = "users"), (name = "workspaces"), (name = "members"),
        (name = "invitations"), (name = "folders"), (name = "documents"), (name = "versions"),
        (name = "attachments"), (name = "context files"), (name = "comments"), (name = "notifications"), (name = "sync"), (name = "operations"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
