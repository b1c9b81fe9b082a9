//! The folder tree: nesting, rename, moves (no cycles), delete into the trash.

use mdcreator_tests::{TestApp, User, assert_problem, ids, items, on_every_backend};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The tree as `(name, children)` pairs, sorted by name at every level.
fn shape(nodes: &[Value]) -> Vec<(String, Vec<Value>)> {
    let mut out: Vec<(String, Vec<Value>)> = nodes
        .iter()
        .map(|n| {
            let children = n["children"].as_array().expect("children").clone();
            (n["name"].as_str().unwrap().to_owned(), children)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The tree rendered as nested names, e.g. `A(B(C)) D`.
fn render(nodes: &[Value]) -> String {
    shape(nodes)
        .into_iter()
        .map(|(name, children)| {
            if children.is_empty() {
                name
            } else {
                format!("{name}({})", render(&children))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn tree(app: &TestApp, user: &User, ws: &str) -> String {
    let body = app.read(user, &format!("/workspaces/{ws}/folders")).await;
    render(items(&body))
}

#[tokio::test]
async fn nesting_renaming_moving_and_deleting_folders() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let ws = app.workspace(&owner, "Folders").await;
        let a = app.folder(&owner, &ws, "A", None).await;
        let a_id = a["id"].as_str().unwrap().to_owned();
        assert!(a["parent_id"].is_null());
        assert_eq!(a["workspace_id"], ws.as_str());
        assert_eq!(a["version"], 1);
        let b = app.folder(&owner, &ws, "B", Some(&a_id)).await;
        let b_id = b["id"].as_str().unwrap().to_owned();
        assert_eq!(b["parent_id"], a_id.as_str());
        let c = app.folder(&owner, &ws, "C", Some(&b_id)).await;
        let c_id = c["id"].as_str().unwrap().to_owned();
        app.folder(&owner, &ws, "D", None).await;
        assert_eq!(tree(&app, &owner, &ws).await, "A(B(C)) D");

        // The tree in detail: each node carries its children.
        let body = app.read(&owner, &format!("/workspaces/{ws}/folders")).await;
        let node_a = items(&body)
            .iter()
            .find(|n| n["id"] == a_id.as_str())
            .unwrap();
        let node_b = &node_a["children"][0];
        assert_eq!(node_b["id"], b_id.as_str());
        assert_eq!(node_b["parent_id"], a_id.as_str());
        assert_eq!(node_b["children"][0]["id"], c_id.as_str());
        assert_eq!(node_b["children"][0]["children"], json!([]));

        // Unknown parents.
        let (status, body) = app
            .call(
                &owner,
                Method::POST,
                &format!("/workspaces/{ws}/folders"),
                Some(&json!({"name": "X", "parent_id": uuid::Uuid::new_v4()})),
            )
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "parent_not_found",
        );

        // Rename.
        let (status, renamed) = app
            .call(
                &owner,
                Method::PATCH,
                &format!("/folders/{b_id}"),
                Some(&json!({"name": "Bee"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{renamed}");
        assert_eq!(renamed["name"], "Bee");
        assert_eq!(renamed["parent_id"], a_id.as_str());
        assert_eq!(tree(&app, &owner, &ws).await, "A(Bee(C)) D");

        // Cycles are refused and change nothing.
        for target in [&c_id, &b_id, &a_id] {
            let (status, body) = app
                .call(
                    &owner,
                    Method::PATCH,
                    &format!("/folders/{a_id}"),
                    Some(&json!({"parent_id": target})),
                )
                .await;
            assert_problem(status, &body, StatusCode::CONFLICT, "folder_cycle");
        }
        let (status, body) = app
            .call(
                &owner,
                Method::PATCH,
                &format!("/folders/{b_id}"),
                Some(&json!({"parent_id": c_id})),
            )
            .await;
        assert_problem(status, &body, StatusCode::CONFLICT, "folder_cycle");
        assert_eq!(tree(&app, &owner, &ws).await, "A(Bee(C)) D");

        // Move to the root and back under D.
        let (status, moved) = app
            .call(
                &owner,
                Method::PATCH,
                &format!("/folders/{b_id}"),
                Some(&json!({"parent_id": null})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{moved}");
        assert!(moved["parent_id"].is_null());
        assert_eq!(tree(&app, &owner, &ws).await, "A Bee(C) D");
        let (status, _) = app
            .call(
                &owner,
                Method::PATCH,
                &format!("/folders/{c_id}"),
                Some(&json!({"parent_id": a_id})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(tree(&app, &owner, &ws).await, "A(C) Bee D");
        let (status, _) = app
            .call(
                &owner,
                Method::PATCH,
                &format!("/folders/{c_id}"),
                Some(&json!({"parent_id": b_id})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(tree(&app, &owner, &ws).await, "A Bee(C) D");

        // Delete Bee: it and C leave the tree; their documents (in C too) go to the trash.
        let in_b = app
            .call(
                &owner,
                Method::POST,
                &format!("/workspaces/{ws}/documents"),
                Some(&json!({"title": "in B", "folder_id": b_id})),
            )
            .await
            .1;
        let in_c = app
            .call(
                &owner,
                Method::POST,
                &format!("/workspaces/{ws}/documents"),
                Some(&json!({"title": "in C", "folder_id": c_id})),
            )
            .await
            .1;
        let in_a = app
            .call(
                &owner,
                Method::POST,
                &format!("/workspaces/{ws}/documents"),
                Some(&json!({"title": "in A", "folder_id": a_id})),
            )
            .await
            .1;
        let at_root = app.document(&owner, &ws, "at root", "").await;
        let (status, body) = app
            .call(&owner, Method::DELETE, &format!("/folders/{b_id}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(tree(&app, &owner, &ws).await, "A D");
        let mut trashed = ids(&app
            .read(&owner, &format!("/workspaces/{ws}/documents?trashed=true"))
            .await);
        trashed.sort();
        let mut expected = vec![
            in_b["id"].as_str().unwrap().to_owned(),
            in_c["id"].as_str().unwrap().to_owned(),
        ];
        expected.sort();
        assert_eq!(trashed, expected);
        let mut live = ids(&app
            .read(&owner, &format!("/workspaces/{ws}/documents"))
            .await);
        live.sort();
        let mut expected = vec![
            in_a["id"].as_str().unwrap().to_owned(),
            at_root["id"].as_str().unwrap().to_owned(),
        ];
        expected.sort();
        assert_eq!(live, expected);

        // Deleted folders are gone for writes too.
        for id in [&b_id, &c_id] {
            let (status, body) = app
                .call(
                    &owner,
                    Method::PATCH,
                    &format!("/folders/{id}"),
                    Some(&json!({"name": "Back"})),
                )
                .await;
            assert_problem(status, &body, StatusCode::NOT_FOUND, "folder_not_found");
            let (status, body) = app
                .call(&owner, Method::DELETE, &format!("/folders/{id}"), None)
                .await;
            assert_problem(status, &body, StatusCode::NOT_FOUND, "folder_not_found");
        }
        let (status, body) = app
            .call(
                &owner,
                Method::POST,
                &format!("/workspaces/{ws}/documents"),
                Some(&json!({"title": "late", "folder_id": c_id})),
            )
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "folder_not_found",
        );

        // A document restored from a deleted folder lands at the root.
        let (status, restored) = app
            .call(
                &owner,
                Method::POST,
                &format!("/documents/{}/restore", in_c["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{restored}");
        assert!(restored["folder_id"].is_null());
        assert!(restored["deleted_at"].is_null());
        assert_eq!(tree(&app, &owner, &ws).await, "A D");
    })
    .await;
}

#[tokio::test]
async fn folder_writes_need_an_editor() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let viewer = app.user("viewer").await;
        let ws = app.workspace(&owner, "Read only").await;
        app.add_member(&owner, &ws, &viewer, "viewer").await;
        let a = app.folder(&owner, &ws, "A", None).await;
        let a_id = a["id"].as_str().unwrap();
        assert_eq!(tree(&app, &viewer, &ws).await, "A");
        let (status, body) = app
            .call(
                &viewer,
                Method::POST,
                &format!("/workspaces/{ws}/folders"),
                Some(&json!({"name": "Mine"})),
            )
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = app
            .call(
                &viewer,
                Method::PATCH,
                &format!("/folders/{a_id}"),
                Some(&json!({"name": "Renamed"})),
            )
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = app
            .call(&viewer, Method::DELETE, &format!("/folders/{a_id}"), None)
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        assert_eq!(tree(&app, &owner, &ws).await, "A");
    })
    .await;
}
