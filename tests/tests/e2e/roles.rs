//! The role matrix of SECURITY.md, end to end: each role (joined through an invitation) tries a
//! representative endpoint of every rule; allowed calls succeed, the others get 403 and change
//! nothing.

use mdcreator_tests::{TestApp, User, header, ids, items, on_every_backend, send_full};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ROLES: [&str; 5] = ["viewer", "commenter", "editor", "admin", "owner"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).expect("role")
}

/// Collects every deviation from the matrix, so one run reports all of them.
struct Matrix {
    failures: Vec<String>,
}

impl Matrix {
    fn check(
        &mut self,
        role: &str,
        what: &str,
        minimum: &str,
        ok: StatusCode,
        got: (StatusCode, Value),
    ) {
        let (status, body) = got;
        let allowed = rank(role) >= rank(minimum);
        let fine = if allowed {
            status == ok
        } else {
            status == StatusCode::FORBIDDEN && body["code"] == "forbidden"
        };
        if !fine {
            let wanted = if allowed {
                ok.to_string()
            } else {
                "403 forbidden".to_owned()
            };
            self.failures.push(format!(
                "{role} {what}: wanted {wanted}, got {status} {body}"
            ));
        }
    }
}

async fn etag(app: &TestApp, user: &User, doc: &str) -> String {
    let (status, headers, body) =
        send_full(app.authed(user, Method::GET, &format!("/documents/{doc}"), None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    header(&headers, "etag").expect("ETag")
}

async fn call_with(
    app: &TestApp,
    user: &User,
    method: Method,
    path: &str,
    body: Option<Value>,
    if_match: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = app.authed(user, method, path, body.as_ref());
    if let Some(tag) = if_match {
        request = request.header("if-match", tag.to_owned());
    }
    let (status, _, body) = send_full(request).await;
    (status, body)
}

/// What a refused write must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    workspace: (Value, Value),
    members: Value,
    invitations: usize,
    folders: Value,
    documents: Vec<String>,
    trash: Vec<String>,
    document: Value,
}

async fn snapshot(app: &TestApp, creator: &User, ws: &str, doc: &str) -> Snapshot {
    let w = app.read(creator, &format!("/workspaces/{ws}")).await;
    let mut documents = ids(&app
        .read(creator, &format!("/workspaces/{ws}/documents"))
        .await);
    documents.sort();
    let mut trash = ids(&app
        .read(creator, &format!("/workspaces/{ws}/documents?trashed=true"))
        .await);
    trash.sort();
    Snapshot {
        workspace: (w["name"].clone(), w["settings"].clone()),
        members: app
            .read(creator, &format!("/workspaces/{ws}/members"))
            .await["items"]
            .clone(),
        invitations: items(
            &app.read(creator, &format!("/workspaces/{ws}/invitations"))
                .await,
        )
        .len(),
        folders: app
            .read(creator, &format!("/workspaces/{ws}/folders"))
            .await["items"]
            .clone(),
        documents,
        trash,
        document: app.read(creator, &format!("/documents/{doc}")).await,
    }
}

#[tokio::test]
async fn every_role_gets_exactly_its_rights() {
    on_every_backend(|app| async move {
        let creator = app.user("creator").await;
        let ws = app.workspace(&creator, "Matrix").await;
        let mut members = Vec::new();
        for role in ROLES {
            let user = app.user(role).await;
            let invitation = app
                .invite(&creator, &ws, json!({"role": role, "max_uses": 1}))
                .await;
            let (status, joined) = app
                .accept(&user, invitation["token"].as_str().unwrap())
                .await;
            assert_eq!(status, StatusCode::OK, "{joined}");
            assert_eq!(joined["role"], role);
            members.push((role, user));
        }
        let viewer_id = members[0].1.id.clone();
        let mut matrix = Matrix {
            failures: Vec::new(),
        };

        for (role, user) in &members {
            let role = *role;
            // Fresh material for this role: a document with two versions, a folder, a trashed document.
            let doc = app
                .document(&creator, &ws, &format!("Doc for {role}"), "one\n")
                .await;
            let d = doc["id"].as_str().unwrap().to_owned();
            let tag = etag(&app, &creator, &d).await;
            let (status, _) = call_with(
                &app,
                &creator,
                Method::PUT,
                &format!("/documents/{d}/content"),
                Some(json!({"content": "one\ntwo\n"})),
                Some(&tag),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            let folder = app
                .folder(&creator, &ws, &format!("Folder for {role}"), None)
                .await;
            let f = folder["id"].as_str().unwrap().to_owned();
            let trashed = app
                .document(&creator, &ws, &format!("Trashed for {role}"), "")
                .await;
            let t = trashed["id"].as_str().unwrap().to_owned();
            let (status, _) = app
                .call(&creator, Method::DELETE, &format!("/documents/{t}"), None)
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            let before = snapshot(&app, &creator, &ws, &d).await;

            // Reading: everyone.
            for path in [
                format!("/workspaces/{ws}"),
                format!("/workspaces/{ws}/members"),
                format!("/workspaces/{ws}/folders"),
                format!("/workspaces/{ws}/documents"),
                format!("/workspaces/{ws}/documents?trashed=true"),
                format!("/documents/{d}"),
                format!("/documents/{d}/content"),
                format!("/documents/{t}"),
                format!("/documents/{d}/versions"),
                format!("/documents/{d}/versions/1"),
                format!("/documents/{d}/versions/2/diff"),
            ] {
                let got = app.call(user, Method::GET, &path, None).await;
                matrix.check(role, &format!("GET {path}"), "viewer", StatusCode::OK, got);
            }

            // Editing documents and folders: editor and up.
            let got = app
                .call(
                    user,
                    Method::POST,
                    &format!("/workspaces/{ws}/documents"),
                    Some(&json!({"title": "new"})),
                )
                .await;
            matrix.check(role, "create document", "editor", StatusCode::CREATED, got);
            let tag = etag(&app, &creator, &d).await;
            let got = call_with(
                &app,
                user,
                Method::PUT,
                &format!("/documents/{d}/content"),
                Some(json!({"content": "edited\n"})),
                Some(&tag),
            )
            .await;
            matrix.check(role, "put content", "editor", StatusCode::OK, got);
            let tag = etag(&app, &creator, &d).await;
            let got = call_with(
                &app,
                user,
                Method::PATCH,
                &format!("/documents/{d}"),
                Some(json!({"title": "retitled"})),
                Some(&tag),
            )
            .await;
            matrix.check(role, "rename document", "editor", StatusCode::OK, got);
            let got = app
                .call(
                    user,
                    Method::PATCH,
                    &format!("/documents/{d}"),
                    Some(&json!({"folder_id": f})),
                )
                .await;
            matrix.check(role, "move document", "editor", StatusCode::OK, got);
            let got = app
                .call(
                    user,
                    Method::POST,
                    &format!("/documents/{d}/versions/1/restore"),
                    None,
                )
                .await;
            matrix.check(role, "restore version", "editor", StatusCode::OK, got);
            let got = app
                .call(
                    user,
                    Method::POST,
                    &format!("/documents/{d}/duplicate"),
                    None,
                )
                .await;
            matrix.check(role, "duplicate", "editor", StatusCode::CREATED, got);
            let got = app
                .call(user, Method::DELETE, &format!("/documents/{d}"), None)
                .await;
            matrix.check(
                role,
                "trash document",
                "editor",
                StatusCode::NO_CONTENT,
                got,
            );
            let got = app
                .call(user, Method::POST, &format!("/documents/{t}/restore"), None)
                .await;
            matrix.check(role, "restore from trash", "editor", StatusCode::OK, got);
            let got = app
                .call(
                    user,
                    Method::POST,
                    &format!("/workspaces/{ws}/folders"),
                    Some(&json!({"name": "new folder"})),
                )
                .await;
            matrix.check(role, "create folder", "editor", StatusCode::CREATED, got);
            let got = app
                .call(
                    user,
                    Method::PATCH,
                    &format!("/folders/{f}"),
                    Some(&json!({"name": "renamed folder"})),
                )
                .await;
            matrix.check(role, "rename folder", "editor", StatusCode::OK, got);
            let got = app
                .call(user, Method::DELETE, &format!("/folders/{f}"), None)
                .await;
            matrix.check(role, "delete folder", "editor", StatusCode::NO_CONTENT, got);

            // Administration: admin and up.
            let got = app
                .call(
                    user,
                    Method::GET,
                    &format!("/workspaces/{ws}/invitations"),
                    None,
                )
                .await;
            matrix.check(role, "list invitations", "admin", StatusCode::OK, got);
            let got = app
                .call(
                    user,
                    Method::POST,
                    &format!("/workspaces/{ws}/invitations"),
                    Some(&json!({"role": "viewer"})),
                )
                .await;
            matrix.check(role, "invite", "admin", StatusCode::CREATED, got);
            let got = app
                .call(
                    user,
                    Method::PATCH,
                    &format!("/workspaces/{ws}/members/{viewer_id}"),
                    Some(&json!({"role": "viewer"})),
                )
                .await;
            matrix.check(role, "change a role", "admin", StatusCode::NO_CONTENT, got);
            // The trashed document is back out of the trash for editors; put it back first.
            let (status, _) = app
                .call(&creator, Method::DELETE, &format!("/documents/{t}"), None)
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            let got = app
                .call(
                    user,
                    Method::DELETE,
                    &format!("/documents/{t}?permanent=true"),
                    None,
                )
                .await;
            matrix.check(
                role,
                "permanent delete",
                "admin",
                StatusCode::NO_CONTENT,
                got,
            );
            let got = app
                .call(
                    user,
                    Method::PATCH,
                    &format!("/workspaces/{ws}"),
                    Some(&json!({"settings": {"changed_by": role}})),
                )
                .await;
            matrix.check(role, "workspace settings", "admin", StatusCode::OK, got);

            // Ownership: owner only. The real transfer happens in a workspace of its own.
            if role == "owner" {
                let other = app.workspace(&creator, "Transfer").await;
                app.add_member(&creator, &other, user, "owner").await;
                let got = app
                    .call(
                        user,
                        Method::POST,
                        &format!("/workspaces/{other}/transfer-ownership"),
                        Some(&json!({"user_id": creator.id})),
                    )
                    .await;
                matrix.check(
                    role,
                    "transfer ownership",
                    "owner",
                    StatusCode::NO_CONTENT,
                    got,
                );
                assert_eq!(
                    app.role_of(&creator, &other, &user.id).await.as_deref(),
                    Some("admin")
                );
            } else {
                let got = app
                    .call(
                        user,
                        Method::POST,
                        &format!("/workspaces/{ws}/transfer-ownership"),
                        Some(&json!({"user_id": user.id})),
                    )
                    .await;
                matrix.check(
                    role,
                    "transfer ownership",
                    "owner",
                    StatusCode::NO_CONTENT,
                    got,
                );
                let got = app
                    .call(user, Method::DELETE, &format!("/workspaces/{ws}"), None)
                    .await;
                matrix.check(
                    role,
                    "delete workspace",
                    "owner",
                    StatusCode::NO_CONTENT,
                    got,
                );
            }

            // Whatever was refused left the data as it was.
            let after = snapshot(&app, &creator, &ws, &d).await;
            match role {
                "viewer" | "commenter" => assert_eq!(after, before, "{role} changed something"),
                "editor" => {
                    // Admin-only state is untouched by an editor.
                    assert_eq!(after.workspace, before.workspace);
                    assert_eq!(after.members, before.members);
                    assert_eq!(after.invitations, before.invitations);
                    assert!(
                        after.trash.contains(&t),
                        "the editor could not purge the trash"
                    );
                }
                _ => {}
            }
            assert_eq!(
                app.role_of(&creator, &ws, &viewer_id).await.as_deref(),
                Some("viewer")
            );
            assert_eq!(
                app.role_of(&creator, &ws, &creator.id).await.as_deref(),
                Some("owner")
            );
        }

        // Last: the invited owner deletes the workspace.
        let owner = &members[4].1;
        let got = app
            .call(owner, Method::DELETE, &format!("/workspaces/{ws}"), None)
            .await;
        matrix.check(
            "owner",
            "delete workspace",
            "owner",
            StatusCode::NO_CONTENT,
            got,
        );
        let (status, _) = app
            .call(&creator, Method::GET, &format!("/workspaces/{ws}"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        assert!(
            matrix.failures.is_empty(),
            "role matrix deviations:\n{}",
            matrix.failures.join("\n")
        );
    })
    .await;
}
