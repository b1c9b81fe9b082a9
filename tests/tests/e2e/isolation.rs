//! SECURITY.md "Isolation": a user of workspace B tries every endpoint that names a resource of
//! workspace A and gets 404 every time; A's data is exactly as it was afterwards.

use mdcreator_tests::{TestApp, User, header, ids, items, on_every_backend, send_full};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Everything of workspace A that a request could have changed, read by A's owner.
async fn state_of_a(app: &TestApp, owner: &User, ws: &str, doc: &str) -> Vec<Value> {
    let mut state = Vec::new();
    for path in [
        format!("/workspaces/{ws}"),
        format!("/workspaces/{ws}/members"),
        format!("/workspaces/{ws}/invitations"),
        format!("/workspaces/{ws}/folders"),
        format!("/workspaces/{ws}/documents"),
        format!("/workspaces/{ws}/documents?trashed=true"),
        format!("/documents/{doc}"),
        format!("/documents/{doc}/versions"),
    ] {
        state.push(app.read(owner, &path).await);
    }
    state
}

#[tokio::test]
async fn another_workspace_sees_nothing_of_this_one() {
    on_every_backend(|app| async move {
        let alice = app.user("alice").await;
        let alice_editor = app.user("alice-editor").await;
        let bob = app.user("bob").await;
        let a = app.workspace(&alice, "Alice's").await;
        let b = app.workspace(&bob, "Bob's").await;
        app.add_member(&alice, &a, &alice_editor, "editor").await;

        // Workspace A's material.
        let folder = app.folder(&alice, &a, "Private", None).await;
        let f = folder["id"].as_str().unwrap().to_owned();
        let doc = app.document(&alice, &a, "Secret", "top secret\n").await;
        let d = doc["id"].as_str().unwrap().to_owned();
        let (status, headers, _) =
            send_full(app.authed(&alice, Method::GET, &format!("/documents/{d}"), None)).await;
        assert_eq!(status, StatusCode::OK);
        let etag = header(&headers, "etag").unwrap();
        let (status, headers, _) = send_full(
            app.authed(
                &alice,
                Method::PUT,
                &format!("/documents/{d}/content"),
                None,
            )
            .header("content-type", "text/markdown")
            .header("if-match", &etag)
            .body("top secret\nv2\n"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let etag = header(&headers, "etag").unwrap();
        let trashed = app.document(&alice, &a, "Binned", "").await;
        let t = trashed["id"].as_str().unwrap().to_owned();
        let (status, _) = app
            .call(&alice, Method::DELETE, &format!("/documents/{t}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let invitation = app
            .invite(&alice, &a, json!({"role": "viewer", "max_uses": 5}))
            .await;
        let i = invitation["id"].as_str().unwrap().to_owned();
        // Workspace B's own material, to mix ids across workspaces.
        let b_folder = app.folder(&bob, &b, "Bob's folder", None).await;
        let bf = b_folder["id"].as_str().unwrap().to_owned();
        let b_doc = app.document(&bob, &b, "Bob's doc", "mine").await;
        let bd = b_doc["id"].as_str().unwrap().to_owned();

        let before = state_of_a(&app, &alice, &a, &d).await;

        let ed = &alice_editor.id;
        let al = &alice.id;
        let requests: Vec<(Method, String, Option<Value>, Option<&str>)> = vec![
            // Workspace and members.
            (Method::GET, format!("/workspaces/{a}"), None, None),
            (
                Method::PATCH,
                format!("/workspaces/{a}"),
                Some(json!({"name": "Owned"})),
                None,
            ),
            (Method::DELETE, format!("/workspaces/{a}"), None, None),
            (Method::GET, format!("/workspaces/{a}/members"), None, None),
            (
                Method::PATCH,
                format!("/workspaces/{a}/members/{ed}"),
                Some(json!({"role": "viewer"})),
                None,
            ),
            (
                Method::PATCH,
                format!("/workspaces/{a}/members/{al}"),
                Some(json!({"role": "viewer"})),
                None,
            ),
            (
                Method::DELETE,
                format!("/workspaces/{a}/members/{ed}"),
                None,
                None,
            ),
            (
                Method::DELETE,
                format!("/workspaces/{a}/members/{}", bob.id),
                None,
                None,
            ),
            (
                Method::POST,
                format!("/workspaces/{a}/transfer-ownership"),
                Some(json!({"user_id": bob.id})),
                None,
            ),
            // Invitations.
            (
                Method::GET,
                format!("/workspaces/{a}/invitations"),
                None,
                None,
            ),
            (
                Method::POST,
                format!("/workspaces/{a}/invitations"),
                Some(json!({"role": "owner"})),
                None,
            ),
            (
                Method::POST,
                format!("/workspaces/{a}/invitations"),
                Some(json!({"role": "viewer"})),
                None,
            ),
            (
                Method::DELETE,
                format!("/workspaces/{a}/invitations/{i}"),
                None,
                None,
            ),
            (
                Method::DELETE,
                format!("/workspaces/{b}/invitations/{i}"),
                None,
                None,
            ),
            // Folders.
            (Method::GET, format!("/workspaces/{a}/folders"), None, None),
            (
                Method::POST,
                format!("/workspaces/{a}/folders"),
                Some(json!({"name": "Intruder"})),
                None,
            ),
            (
                Method::PATCH,
                format!("/folders/{f}"),
                Some(json!({"name": "Renamed"})),
                None,
            ),
            (
                Method::PATCH,
                format!("/folders/{f}"),
                Some(json!({"parent_id": bf})),
                None,
            ),
            (Method::DELETE, format!("/folders/{f}"), None, None),
            // Documents.
            (
                Method::GET,
                format!("/workspaces/{a}/documents"),
                None,
                None,
            ),
            (
                Method::GET,
                format!("/workspaces/{a}/documents?trashed=true"),
                None,
                None,
            ),
            (
                Method::POST,
                format!("/workspaces/{a}/documents"),
                Some(json!({"title": "Planted"})),
                None,
            ),
            (Method::GET, format!("/documents/{d}"), None, None),
            (Method::GET, format!("/documents/{t}"), None, None),
            (Method::GET, format!("/documents/{d}/content"), None, None),
            (
                Method::PUT,
                format!("/documents/{d}/content"),
                Some(json!({"content": "defaced"})),
                Some(&etag),
            ),
            (
                Method::PATCH,
                format!("/documents/{d}"),
                Some(json!({"title": "Defaced"})),
                Some(&etag),
            ),
            (
                Method::PATCH,
                format!("/documents/{d}"),
                Some(json!({"folder_id": null})),
                None,
            ),
            (Method::DELETE, format!("/documents/{d}"), None, None),
            (
                Method::DELETE,
                format!("/documents/{t}?permanent=true"),
                None,
                None,
            ),
            (Method::POST, format!("/documents/{t}/restore"), None, None),
            (
                Method::POST,
                format!("/documents/{d}/duplicate"),
                None,
                None,
            ),
            (Method::GET, format!("/documents/{d}/versions"), None, None),
            (
                Method::GET,
                format!("/documents/{d}/versions/1"),
                None,
                None,
            ),
            (
                Method::GET,
                format!("/documents/{d}/versions/2/diff"),
                None,
                None,
            ),
            (
                Method::GET,
                format!("/documents/{d}/versions/2/diff?against=1"),
                None,
                None,
            ),
            (
                Method::POST,
                format!("/documents/{d}/versions/1/restore"),
                None,
                None,
            ),
        ];

        let mut leaks = Vec::new();
        for (method, path, body, if_match) in &requests {
            let mut request = app.authed(&bob, method.clone(), path, body.as_ref());
            if let Some(tag) = if_match {
                request = request.header("if-match", *tag);
            }
            let (status, headers, problem) = send_full(request).await;
            let precise = status == StatusCode::NOT_FOUND
                && problem["status"] == 404
                && problem["code"]
                    .as_str()
                    .is_some_and(|c| c.ends_with("not_found"))
                && header(&headers, "content-type")
                    .is_some_and(|c| c.starts_with("application/problem+json"));
            if !precise {
                leaks.push(format!("{method} {path}: {status} {problem}"));
            }
        }
        assert!(
            leaks.is_empty(),
            "answers other than 404:\n{}",
            leaks.join("\n")
        );

        // Mixing A's ids into B's own requests finds nothing either: the answers are the same as for
        // ids that do not exist at all.
        let random = uuid::Uuid::new_v4().to_string();
        let create_in = |folder: &str| json!({"title": "x", "folder_id": folder});
        let (s1, p1) = app
            .call(
                &bob,
                Method::POST,
                &format!("/workspaces/{b}/documents"),
                Some(&create_in(&f)),
            )
            .await;
        let (s2, p2) = app
            .call(
                &bob,
                Method::POST,
                &format!("/workspaces/{b}/documents"),
                Some(&create_in(&random)),
            )
            .await;
        assert_eq!(
            (s1, &p1["code"]),
            (s2, &p2["code"]),
            "create in A's folder: {p1} vs {p2}"
        );
        assert!(s1.is_client_error(), "{p1}");
        let (s1, p1) = app
            .call(
                &bob,
                Method::PATCH,
                &format!("/documents/{bd}"),
                Some(&json!({"folder_id": f})),
            )
            .await;
        let (s2, p2) = app
            .call(
                &bob,
                Method::PATCH,
                &format!("/documents/{bd}"),
                Some(&json!({"folder_id": random})),
            )
            .await;
        assert_eq!(
            (s1, &p1["code"]),
            (s2, &p2["code"]),
            "move into A's folder: {p1} vs {p2}"
        );
        let (s1, p1) = app
            .call(
                &bob,
                Method::POST,
                &format!("/workspaces/{b}/folders"),
                Some(&json!({"name": "x", "parent_id": f})),
            )
            .await;
        let (s2, p2) = app
            .call(
                &bob,
                Method::POST,
                &format!("/workspaces/{b}/folders"),
                Some(&json!({"name": "x", "parent_id": random})),
            )
            .await;
        assert_eq!(
            (s1, &p1["code"]),
            (s2, &p2["code"]),
            "folder under A's folder: {p1} vs {p2}"
        );
        let (s1, p1) = app
            .call(
                &bob,
                Method::PATCH,
                &format!("/folders/{bf}"),
                Some(&json!({"parent_id": f})),
            )
            .await;
        let (s2, p2) = app
            .call(
                &bob,
                Method::PATCH,
                &format!("/folders/{bf}"),
                Some(&json!({"parent_id": random})),
            )
            .await;
        assert_eq!(
            (s1, &p1["code"]),
            (s2, &p2["code"]),
            "move under A's folder: {p1} vs {p2}"
        );

        // B's lists hold nothing of A's.
        let listed = ids(&app.read(&bob, &format!("/workspaces/{b}/documents")).await);
        assert_eq!(listed, vec![bd.clone()]);
        assert!(
            items(
                &app.read(&bob, &format!("/workspaces/{b}/documents?trashed=true"))
                    .await
            )
            .is_empty()
        );
        let workspaces = app.read(&bob, "/workspaces").await;
        assert_eq!(ids(&workspaces), vec![b.clone()]);
        let bob_folders = app.read(&bob, &format!("/workspaces/{b}/folders")).await;
        assert_eq!(ids(&bob_folders), vec![bf.clone()]);

        // And A is exactly as it was.
        let after = state_of_a(&app, &alice, &a, &d).await;
        assert_eq!(after, before);
        let content = app
            .authed(
                &alice,
                Method::GET,
                &format!("/documents/{d}/content"),
                None,
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(content, "top secret\nv2\n");
        assert_eq!(app.role_of(&alice, &a, &bob.id).await, None);
    })
    .await;
}
