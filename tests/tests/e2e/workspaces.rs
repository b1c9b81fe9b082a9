//! Workspaces, members, role changes, ownership transfer and invitations.

use mdcreator_tests::{TestApp, User, assert_problem, header, items, on_every_backend, send_full};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn workspace_ids(app: &TestApp, user: &User) -> Vec<String> {
    let list = app.read(user, "/workspaces").await;
    items(&list)
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn workspace_lifecycle_and_delete_hides_it_from_every_member() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let admin = app.user("admin").await;
        let editor = app.user("editor").await;

        let (status, headers, created) = send_full(app.authed(
            &owner,
            Method::POST,
            "/workspaces",
            Some(&json!({"name": "  Team Notes! "})),
        ))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let ws = created["id"].as_str().unwrap().to_owned();
        assert_eq!(created["name"], "Team Notes!");
        assert_eq!(created["slug"], "team-notes");
        assert_eq!(created["role"], "owner");
        assert_eq!(created["settings"], json!({}));
        assert_eq!(
            header(&headers, "location").as_deref(),
            Some(format!("/api/v1/workspaces/{ws}").as_str())
        );
        let other = app.workspace(&owner, "Team Notes!").await;
        assert_ne!(other, ws);
        let second = app.read(&owner, &format!("/workspaces/{other}")).await;
        assert_ne!(second["slug"], "team-notes", "slugs are unique");

        let mut mine = workspace_ids(&app, &owner).await;
        mine.sort();
        let mut expected = vec![ws.clone(), other.clone()];
        expected.sort();
        assert_eq!(mine, expected);
        assert!(workspace_ids(&app, &editor).await.is_empty());

        app.add_member(&owner, &ws, &admin, "admin").await;
        app.add_member(&owner, &ws, &editor, "editor").await;
        let list = app.read(&editor, "/workspaces").await;
        assert_eq!(items(&list).len(), 1);
        assert_eq!(items(&list)[0]["id"], ws.as_str());
        assert_eq!(items(&list)[0]["role"], "editor");
        let got = app.read(&editor, &format!("/workspaces/{ws}")).await;
        assert_eq!(got["role"], "editor");
        assert_eq!(got["name"], "Team Notes!");

        // PATCH: admin may, editor may not.
        let path = format!("/workspaces/{ws}");
        let (status, patched) = app
            .call(
                &admin,
                Method::PATCH,
                &path,
                Some(&json!({"name": "Renamed", "settings": {"theme": "dark"}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{patched}");
        assert_eq!(patched["name"], "Renamed");
        assert_eq!(patched["settings"], json!({"theme": "dark"}));
        assert_eq!(patched["role"], "admin");
        let (status, body) = app
            .call(
                &editor,
                Method::PATCH,
                &path,
                Some(&json!({"name": "Hijacked"})),
            )
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = app
            .call(
                &owner,
                Method::PATCH,
                &path,
                Some(&json!({"settings": [1, 2]})),
            )
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        let got = app.read(&owner, &path).await;
        assert_eq!(got["name"], "Renamed");
        assert_eq!(got["settings"], json!({"theme": "dark"}));

        // DELETE: owner only.
        for user in [&editor, &admin] {
            let (status, body) = app.call(user, Method::DELETE, &path, None).await;
            assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        }
        app.read(&editor, &path).await;
        let doc = app.document(&editor, &ws, "Inside", "kept").await;
        let doc_path = format!("/documents/{}", doc["id"].as_str().unwrap());
        let pending = app.invite(&owner, &ws, json!({"role": "viewer"})).await;
        let (status, body) = app.call(&owner, Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        // Its documents and open invitations are gone with it.
        for user in [&owner, &editor] {
            let (status, body) = app.call(user, Method::GET, &doc_path, None).await;
            assert_problem(status, &body, StatusCode::NOT_FOUND, "document_not_found");
        }
        let latecomer = app.user("latecomer").await;
        let (status, body) = app
            .accept(&latecomer, pending["token"].as_str().unwrap())
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "invitation_not_found");
        assert!(workspace_ids(&app, &latecomer).await.is_empty());
        for user in [&owner, &admin, &editor] {
            let (status, body) = app.call(user, Method::GET, &path, None).await;
            assert_problem(status, &body, StatusCode::NOT_FOUND, "workspace_not_found");
            let (status, body) = app
                .call(user, Method::GET, &format!("{path}/members"), None)
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
            let (status, body) = app
                .call(user, Method::GET, &format!("{path}/documents"), None)
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
            assert!(!workspace_ids(&app, user).await.contains(&ws));
        }
        let (status, body) = app.call(&owner, Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(workspace_ids(&app, &owner).await, vec![other]);
    })
    .await;
}

#[tokio::test]
async fn members_and_role_changes_follow_the_rules() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let admin = app.user("admin").await;
        let editor = app.user("editor").await;
        let viewer = app.user("viewer").await;
        let ws = app.workspace(&owner, "Roles").await;
        app.add_member(&owner, &ws, &admin, "admin").await;
        app.add_member(&owner, &ws, &editor, "editor").await;
        app.add_member(&owner, &ws, &viewer, "viewer").await;

        let members = app
            .read(&viewer, &format!("/workspaces/{ws}/members"))
            .await;
        let roles: Vec<(String, String)> = items(&members)
            .iter()
            .map(|m| {
                (
                    m["user_id"].as_str().unwrap().to_owned(),
                    m["role"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(roles.len(), 4);
        assert_eq!(
            roles[0],
            (owner.id.clone(), "owner".to_owned()),
            "owners first"
        );
        for (user, role) in [(&admin, "admin"), (&editor, "editor"), (&viewer, "viewer")] {
            assert!(
                roles.contains(&(user.id.clone(), role.to_owned())),
                "{roles:?}"
            );
        }
        let me = items(&members)
            .iter()
            .find(|m| m["user_id"] == owner.id)
            .unwrap();
        assert_eq!(me["email"], owner.email.as_str());
        assert_eq!(me["display_name"], "owner");
        assert!(me["joined_at"].is_string());

        let member = |user: &User| format!("/workspaces/{ws}/members/{}", user.id);
        let role = |r: &str| json!({"role": r});

        // An admin cannot make an owner, nor touch one.
        let (status, body) = app
            .call(
                &admin,
                Method::PATCH,
                &member(&editor),
                Some(&role("owner")),
            )
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = app
            .call(&admin, Method::PATCH, &member(&owner), Some(&role("admin")))
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        assert_eq!(
            app.role_of(&owner, &ws, &editor.id).await.as_deref(),
            Some("editor")
        );
        assert_eq!(
            app.role_of(&owner, &ws, &owner.id).await.as_deref(),
            Some("owner")
        );
        // An admin can move others up to admin.
        let (status, body) = app
            .call(
                &admin,
                Method::PATCH,
                &member(&viewer),
                Some(&role("commenter")),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(
            app.role_of(&owner, &ws, &viewer.id).await.as_deref(),
            Some("commenter")
        );
        // An editor cannot change roles at all.
        let (status, body) = app
            .call(
                &editor,
                Method::PATCH,
                &member(&viewer),
                Some(&role("viewer")),
            )
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = app
            .call(
                &editor,
                Method::PATCH,
                &member(&editor),
                Some(&role("admin")),
            )
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        assert_eq!(
            app.role_of(&owner, &ws, &viewer.id).await.as_deref(),
            Some("commenter")
        );
        assert_eq!(
            app.role_of(&owner, &ws, &editor.id).await.as_deref(),
            Some("editor")
        );
        // Unknown roles and unknown members.
        let (status, body) = app
            .call(&owner, Method::PATCH, &member(&viewer), Some(&role("root")))
            .await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST, "invalid_body");
        let stranger = format!("/workspaces/{ws}/members/{}", uuid::Uuid::new_v4());
        let (status, body) = app
            .call(&owner, Method::PATCH, &stranger, Some(&role("viewer")))
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "member_not_found");

        // The owner demotes the admin, and promotes them back.
        let (status, body) = app
            .call(
                &owner,
                Method::PATCH,
                &member(&admin),
                Some(&role("editor")),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(
            app.role_of(&owner, &ws, &admin.id).await.as_deref(),
            Some("editor")
        );
        let (status, body) = app
            .call(&owner, Method::PATCH, &member(&admin), Some(&role("admin")))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

        // The last owner can neither step down nor leave.
        let (status, body) = app
            .call(&owner, Method::PATCH, &member(&owner), Some(&role("admin")))
            .await;
        assert_problem(status, &body, StatusCode::CONFLICT, "last_owner");
        let (status, body) = app
            .call(&owner, Method::DELETE, &member(&owner), None)
            .await;
        assert_problem(status, &body, StatusCode::CONFLICT, "last_owner");
        assert_eq!(
            app.role_of(&admin, &ws, &owner.id).await.as_deref(),
            Some("owner")
        );

        // Removing members: an admin removes an editor, but not the owner; an editor removes nobody.
        let (status, body) = app
            .call(&editor, Method::DELETE, &member(&viewer), None)
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = app
            .call(&admin, Method::DELETE, &member(&owner), None)
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        assert_eq!(
            app.role_of(&admin, &ws, &owner.id).await.as_deref(),
            Some("owner")
        );
        assert_eq!(
            app.role_of(&admin, &ws, &viewer.id).await.as_deref(),
            Some("commenter")
        );
        let (status, body) = app
            .call(&admin, Method::DELETE, &member(&editor), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(app.role_of(&admin, &ws, &editor.id).await, None);
        let (status, body) = app
            .call(&editor, Method::GET, &format!("/workspaces/{ws}"), None)
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "workspace_not_found");

        // Leaving.
        let (status, body) = app
            .call(&viewer, Method::DELETE, &member(&viewer), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(app.role_of(&owner, &ws, &viewer.id).await, None);
        let (status, _) = app
            .call(&viewer, Method::GET, &format!("/workspaces/{ws}"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Transfer: only the owner; the old owner becomes admin.
        let transfer = format!("/workspaces/{ws}/transfer-ownership");
        let (status, body) = app
            .call(
                &admin,
                Method::POST,
                &transfer,
                Some(&json!({"user_id": admin.id})),
            )
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = app
            .call(
                &owner,
                Method::POST,
                &transfer,
                Some(&json!({"user_id": viewer.id})),
            )
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "member_not_found");
        assert_eq!(
            app.role_of(&owner, &ws, &owner.id).await.as_deref(),
            Some("owner")
        );
        let (status, body) = app
            .call(
                &owner,
                Method::POST,
                &transfer,
                Some(&json!({"user_id": admin.id})),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(
            app.role_of(&owner, &ws, &admin.id).await.as_deref(),
            Some("owner")
        );
        assert_eq!(
            app.role_of(&owner, &ws, &owner.id).await.as_deref(),
            Some("admin")
        );
        let got = app.read(&owner, &format!("/workspaces/{ws}")).await;
        assert_eq!(got["role"], "admin");
        let (status, body) = app
            .call(
                &owner,
                Method::POST,
                &transfer,
                Some(&json!({"user_id": owner.id})),
            )
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        // Now the old owner (an admin) may leave; the new owner may not.
        let (status, body) = app
            .call(&admin, Method::DELETE, &member(&admin), None)
            .await;
        assert_problem(status, &body, StatusCode::CONFLICT, "last_owner");
        let (status, body) = app
            .call(&owner, Method::DELETE, &member(&owner), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let members = app.read(&admin, &format!("/workspaces/{ws}/members")).await;
        assert_eq!(items(&members).len(), 1);
        assert_eq!(items(&members)[0]["user_id"], admin.id.as_str());
    })
    .await;
}

fn has_token_field(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.contains("token") || has_token_field(v)),
        Value::Array(list) => list.iter().any(has_token_field),
        _ => false,
    }
}

#[tokio::test]
async fn invitations_links_emails_and_revocation() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let admin = app.user("admin").await;
        let first = app.user("first").await;
        let second = app.user("second").await;
        let third = app.user("third").await;
        let ws = app.workspace(&owner, "Invites").await;
        app.add_member(&owner, &ws, &admin, "admin").await;
        let invitations = format!("/workspaces/{ws}/invitations");

        // A single-use link.
        let link = app
            .invite(
                &owner,
                &ws,
                json!({"role": "editor", "max_uses": 1, "expires_in_days": 2}),
            )
            .await;
        assert_eq!(link["kind"], "link");
        assert_eq!(link["role"], "editor");
        assert_eq!(link["max_uses"], 1);
        assert!(link["email"].is_null());
        let token = link["token"].as_str().unwrap();
        assert!(token.starts_with("mdi_"), "{token}");
        let (status, joined) = app.accept(&first, token).await;
        assert_eq!(status, StatusCode::OK, "{joined}");
        assert_eq!(joined["id"], ws.as_str());
        assert_eq!(joined["role"], "editor");
        let (status, body) = app.accept(&second, token).await;
        assert_problem(status, &body, StatusCode::GONE, "invitation_expired");
        assert_eq!(app.role_of(&owner, &ws, &second.id).await, None);
        assert_eq!(
            app.role_of(&owner, &ws, &first.id).await.as_deref(),
            Some("editor")
        );

        // An e-mail invitation is for that address only.
        let for_third = app
            .invite(
                &admin,
                &ws,
                json!({"role": "viewer", "email": third.email.to_uppercase()}),
            )
            .await;
        assert_eq!(for_third["kind"], "email");
        assert_eq!(for_third["email"], third.email.as_str());
        assert_eq!(for_third["max_uses"], 1);
        let (status, body) = app
            .accept(&second, for_third["token"].as_str().unwrap())
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::FORBIDDEN,
            "invitation_email_mismatch",
        );
        assert_eq!(app.role_of(&owner, &ws, &second.id).await, None);
        let (status, body) = app
            .call(
                &owner,
                Method::POST,
                &invitations,
                Some(&json!({"role": "viewer", "email": "x@example.com", "max_uses": 5})),
            )
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );

        // Revoked links are gone; unknown tokens were never there.
        let revoked = app.invite(&owner, &ws, json!({"role": "commenter"})).await;
        let (status, body) = app
            .call(
                &admin,
                Method::DELETE,
                &format!("{invitations}/{}", revoked["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (status, body) = app
            .accept(&second, revoked["token"].as_str().unwrap())
            .await;
        assert_problem(status, &body, StatusCode::GONE, "invitation_expired");
        let (status, body) = app.accept(&second, "mdi_this-token-does-not-exist").await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "invitation_not_found");
        let (status, body) = app
            .call(
                &owner,
                Method::DELETE,
                &format!("{invitations}/{}", uuid::Uuid::new_v4()),
                None,
            )
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "invitation_not_found");
        assert_eq!(app.role_of(&owner, &ws, &second.id).await, None);

        // The list: open invitations only, never a token.
        let open = app
            .invite(&owner, &ws, json!({"role": "viewer", "max_uses": 3}))
            .await;
        let list = app.read(&admin, &invitations).await;
        let listed: Vec<&str> = items(&list)
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        let mut expected = vec![
            for_third["id"].as_str().unwrap(),
            open["id"].as_str().unwrap(),
        ];
        let mut listed_sorted = listed.clone();
        listed_sorted.sort();
        expected.sort();
        assert_eq!(listed_sorted, expected, "{list}");
        assert!(!has_token_field(&list), "{list}");
        let shown = items(&list).iter().find(|i| i["id"] == open["id"]).unwrap();
        assert_eq!(shown["uses"], 0);
        assert_eq!(shown["max_uses"], 3);
        assert_eq!(shown["workspace_id"], ws.as_str());
        assert_eq!(shown["created_by"], owner.id.as_str());
        let (status, body) = app
            .accept(&third, for_third["token"].as_str().unwrap())
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["role"], "viewer");
        let list = app.read(&owner, &invitations).await;
        assert_eq!(
            items(&list).len(),
            1,
            "a used e-mail invitation is closed: {list}"
        );

        // An admin cannot invite an owner; an editor cannot invite at all, nor list.
        let (status, body) = app
            .call(
                &admin,
                Method::POST,
                &invitations,
                Some(&json!({"role": "owner"})),
            )
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = app
            .call(
                &first,
                Method::POST,
                &invitations,
                Some(&json!({"role": "viewer"})),
            )
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = app.call(&first, Method::GET, &invitations, None).await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = app
            .call(
                &first,
                Method::DELETE,
                &format!("{invitations}/{}", open["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let list = app.read(&owner, &invitations).await;
        assert_eq!(items(&list).len(), 1, "{list}");
        assert_eq!(items(&list)[0]["id"], open["id"]);
        let admin_invite = app.invite(&admin, &ws, json!({"role": "admin"})).await;
        assert_eq!(admin_invite["role"], "admin");

        // Accepting a lower-role invitation never demotes.
        let (status, body) = app.accept(&first, open["token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["role"], "editor");
        assert_eq!(
            app.role_of(&owner, &ws, &first.id).await.as_deref(),
            Some("editor")
        );
    })
    .await;
}
