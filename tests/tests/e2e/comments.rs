//! Comments and notifications end to end: threads and replies, resolve/reopen and the
//! `?resolved=` filter, who may comment, edit and delete, mentions that notify the mentioned
//! member only, reading notifications, outsiders, bad bodies, purge with the document, and
//! comments through sync push and pull.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use mdcreator_tests::{TestApp, User, assert_problem, ids, items, on_every_backend, send};

async fn comment(app: &TestApp, user: &User, doc: &str, body: Value) -> Value {
    let (status, created) = app
        .call(
            user,
            Method::POST,
            &format!("/documents/{doc}/comments"),
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

async fn threads(app: &TestApp, user: &User, doc: &str, query: &str) -> Value {
    app.read(user, &format!("/documents/{doc}/comments{query}"))
        .await
}

async fn notifications(app: &TestApp, user: &User, query: &str) -> Vec<Value> {
    items(&app.read(user, &format!("/notifications{query}")).await).clone()
}

/// A workspace owned by `owner` with a document; its id and the document's id.
async fn workspace_with_doc(app: &TestApp, owner: &User) -> (String, String) {
    let ws = app.workspace(owner, "Review").await;
    let doc = app.document(owner, &ws, "Plan", "# Plan\n").await;
    (ws, id(&doc))
}

#[tokio::test]
async fn threads_replies_and_the_resolved_filter() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let bob = app.user("bob").await;
        let (ws, doc) = workspace_with_doc(&app, &owner).await;
        app.add_member(&owner, &ws, &bob, "commenter").await;

        let a = comment(
            &app,
            &bob,
            &doc,
            json!({"body": "Is **this** right?", "anchor": {"type": "quote", "text": "Plan"}}),
        )
        .await;
        assert_eq!(a["author_id"], bob.id.as_str());
        assert_eq!(a["document_id"], doc.as_str());
        assert_eq!(a["workspace_id"], ws.as_str());
        assert!(a["parent_id"].is_null());
        assert_eq!(a["anchor"]["text"], "Plan");
        assert_eq!(a["version"], 1);
        assert_eq!(a["resolved"], false);
        assert_eq!(a["deleted"], false);
        let b = comment(
            &app,
            &owner,
            &doc,
            json!({"body": "Second thread", "anchor": "quoted"}),
        )
        .await;
        let reply = comment(
            &app,
            &owner,
            &doc,
            json!({"body": "Yes.", "parent_id": id(&a)}),
        )
        .await;
        assert_eq!(reply["parent_id"], id(&a).as_str());

        // Replies hang off a top-level comment of the same document only.
        let other = app.document(&owner, &ws, "Other", "x").await;
        let elsewhere = comment(&app, &owner, &id(&other), json!({"body": "there"})).await;
        for parent in [id(&reply), id(&elsewhere), Uuid::new_v4().to_string()] {
            let (status, body) = app
                .call(
                    &owner,
                    Method::POST,
                    &format!("/documents/{doc}/comments"),
                    Some(&json!({"body": "nested", "parent_id": parent})),
                )
                .await;
            assert_problem(
                status,
                &body,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            );
            assert_eq!(body["errors"][0]["field"], "parent_id");
        }

        // The list: threads in order, each with its replies.
        let all = threads(&app, &bob, &doc, "").await;
        assert_eq!(ids(&all), [id(&a), id(&b)]);
        assert_eq!(items(&all)[0]["replies"][0]["id"], id(&reply).as_str());
        assert_eq!(items(&all)[0]["replies"][0]["body"], "Yes.");
        assert_eq!(items(&all)[1]["replies"], json!([]));
        assert!(all["next_cursor"].is_null());
        let first = threads(&app, &bob, &doc, "?limit=1").await;
        assert_eq!(ids(&first), [id(&a)]);
        let cursor = first["next_cursor"].as_str().expect("a next page");
        let second = threads(&app, &bob, &doc, &format!("?limit=1&cursor={cursor}")).await;
        assert_eq!(ids(&second), [id(&b)]);

        // Resolve (threads only), filter, reopen.
        let (status, body) = app
            .call(
                &bob,
                Method::POST,
                &format!("/comments/{}/resolve", id(&reply)),
                None,
            )
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_thread",
        );
        let (status, resolved) = app
            .call(
                &bob,
                Method::POST,
                &format!("/comments/{}/resolve", id(&a)),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{resolved}");
        assert_eq!(resolved["resolved"], true);
        assert_eq!(resolved["resolved_by"], bob.id.as_str());
        assert_eq!(resolved["version"], 2);
        // Resolving again changes nothing.
        let (_, again) = app
            .call(
                &bob,
                Method::POST,
                &format!("/comments/{}/resolve", id(&a)),
                None,
            )
            .await;
        assert_eq!(again["version"], 2);
        assert_eq!(
            ids(&threads(&app, &bob, &doc, "?resolved=true").await),
            [id(&a)]
        );
        assert_eq!(
            ids(&threads(&app, &bob, &doc, "?resolved=false").await),
            [id(&b)]
        );
        let (status, reopened) = app
            .call(
                &owner,
                Method::POST,
                &format!("/comments/{}/reopen", id(&a)),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{reopened}");
        assert_eq!(reopened["resolved"], false);
        assert!(reopened["resolved_at"].is_null());
        assert!(items(&threads(&app, &bob, &doc, "?resolved=true").await).is_empty());

        // Idempotency-Key: a retried create returns the first comment and makes no twin.
        let path = format!("/documents/{doc}/comments");
        let retry = || {
            app.authed(&bob, Method::POST, &path, Some(&json!({"body": "once"})))
                .header("idempotency-key", "comment-once-1")
        };
        let (s1, c1) = send(retry()).await;
        let (s2, c2) = send(retry()).await;
        assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
        assert_eq!(c1["id"], c2["id"]);
        assert_eq!(items(&threads(&app, &bob, &doc, "").await).len(), 3);
    })
    .await;
}

#[tokio::test]
async fn roles_decide_who_comments_edits_and_deletes() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let admin = app.user("admin").await;
        let editor = app.user("editor").await;
        let bob = app.user("commenter").await;
        let viewer = app.user("viewer").await;
        let outsider = app.user("outsider").await;
        let (ws, doc) = workspace_with_doc(&app, &owner).await;
        for (user, role) in [
            (&admin, "admin"),
            (&editor, "editor"),
            (&bob, "commenter"),
            (&viewer, "viewer"),
        ] {
            app.add_member(&owner, &ws, user, role).await;
        }

        // A viewer reads but does not comment; a commenter does.
        let (status, body) = app
            .call(
                &viewer,
                Method::POST,
                &format!("/documents/{doc}/comments"),
                Some(&json!({"body": "me too"})),
            )
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let root = comment(&app, &bob, &doc, json!({"body": "first draft"})).await;
        let reply = comment(
            &app,
            &editor,
            &doc,
            json!({"body": "noted", "parent_id": id(&root)}),
        )
        .await;
        assert_eq!(items(&threads(&app, &viewer, &doc, "").await).len(), 1);
        let path = format!("/comments/{}", id(&root));
        let (status, body) = app
            .call(&viewer, Method::POST, &format!("{path}/resolve"), None)
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");

        // Only the author edits — not even an admin or the owner.
        for other in [&admin, &owner, &editor] {
            let (status, body) = app
                .call(
                    other,
                    Method::PATCH,
                    &path,
                    Some(&json!({"body": "hijacked"})),
                )
                .await;
            assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        }
        let (status, edited) = app
            .call(
                &bob,
                Method::PATCH,
                &path,
                Some(&json!({"body": "second draft"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{edited}");
        assert_eq!(edited["body"], "second draft");
        assert_eq!(edited["version"], 2);

        // An editor does not delete others' comments; an admin does.
        let (status, body) = app.call(&editor, Method::DELETE, &path, None).await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, _) = app.call(&admin, Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        // The thread root is shown as deleted while it has replies.
        let list = threads(&app, &viewer, &doc, "").await;
        let thread = &items(&list)[0];
        assert_eq!(thread["id"], id(&root).as_str());
        assert_eq!(thread["deleted"], true);
        assert!(thread["body"].is_null());
        assert_eq!(thread["replies"][0]["id"], id(&reply).as_str());
        // A deleted comment is gone for every action.
        let (status, body) = app
            .call(&bob, Method::PATCH, &path, Some(&json!({"body": "back"})))
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "comment_not_found");
        // The reply's author deletes it; the empty thread disappears.
        let (status, _) = app
            .call(
                &editor,
                Method::DELETE,
                &format!("/comments/{}", id(&reply)),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(items(&threads(&app, &viewer, &doc, "").await).is_empty());

        // Outsiders learn nothing: 404 everywhere.
        let live = comment(&app, &bob, &doc, json!({"body": "still here"})).await;
        let live_path = format!("/comments/{}", id(&live));
        let attempts = [
            (Method::GET, format!("/documents/{doc}/comments"), None),
            (
                Method::POST,
                format!("/documents/{doc}/comments"),
                Some(json!({"body": "hi"})),
            ),
            (Method::PATCH, live_path.clone(), Some(json!({"body": "x"}))),
            (Method::DELETE, live_path.clone(), None),
            (Method::POST, format!("{live_path}/resolve"), None),
            (Method::POST, format!("{live_path}/reopen"), None),
        ];
        for (method, path, body) in attempts {
            let (status, problem) = app
                .call(&outsider, method.clone(), &path, body.as_ref())
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {problem}");
            assert_eq!(
                problem["status"], 404,
                "{method} {path}: problem+json expected, got {problem}"
            );
        }
        assert_eq!(items(&threads(&app, &viewer, &doc, "").await).len(), 1);
    })
    .await;
}

#[tokio::test]
async fn mentions_notify_the_mentioned_members_only_and_notifications_are_read() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let bob = app.user("bob").await;
        let carol = app.user("carol").await;
        let dave = app.user("dave").await; // not a member
        let (ws, doc) = workspace_with_doc(&app, &owner).await;
        app.add_member(&owner, &ws, &bob, "commenter").await;
        app.add_member(&owner, &ws, &carol, "viewer").await;

        let body = format!(
            "@[{}] and @{} please look; also @{}, @nobody-{}@example.com and me @{}",
            bob.id,
            carol.email.to_uppercase(),
            dave.email,
            Uuid::new_v4().simple(),
            owner.email
        );
        let root = comment(&app, &owner, &doc, json!({"body": body})).await;
        let mentioned: BTreeSet<&str> = root["mentions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        assert_eq!(
            mentioned,
            BTreeSet::from([bob.id.as_str(), carol.id.as_str()])
        );

        for user in [&bob, &carol] {
            let got = notifications(&app, user, "").await;
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!(got[0]["kind"], "mention");
            assert_eq!(got[0]["comment_id"], id(&root).as_str());
            assert_eq!(got[0]["thread_id"], id(&root).as_str());
            assert_eq!(got[0]["document_id"], doc.as_str());
            assert_eq!(got[0]["workspace_id"], ws.as_str());
            assert_eq!(got[0]["actor_id"], owner.id.as_str());
            assert!(got[0]["read_at"].is_null());
        }
        assert!(notifications(&app, &dave, "").await.is_empty());
        assert!(notifications(&app, &owner, "").await.is_empty());

        // A non-member's e-mail and an unknown one are answered alike.
        let a = comment(
            &app,
            &owner,
            &doc,
            json!({"body": format!("hey @{}", dave.email)}),
        )
        .await;
        let b = comment(
            &app,
            &owner,
            &doc,
            json!({"body": format!("hey @ghost-{}@example.com", Uuid::new_v4().simple())}),
        )
        .await;
        assert_eq!(a["mentions"], json!([]));
        assert_eq!(a["mentions"], b["mentions"]);
        assert!(notifications(&app, &dave, "").await.is_empty());

        // A reply notifies the thread's author; mentioning bob again in an edit does not.
        let reply = comment(
            &app,
            &bob,
            &doc,
            json!({"body": "done", "parent_id": id(&root)}),
        )
        .await;
        let owners = notifications(&app, &owner, "").await;
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0]["kind"], "reply");
        assert_eq!(owners[0]["comment_id"], id(&reply).as_str());
        assert_eq!(owners[0]["thread_id"], id(&root).as_str());
        let (status, _) = app
            .call(
                &owner,
                Method::PATCH,
                &format!("/comments/{}", id(&root)),
                Some(&json!({"body": format!("@[{}] thanks", bob.id)})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(notifications(&app, &bob, "").await.len(), 1);

        // Reading: one, then all; only one's own.
        let second = comment(
            &app,
            &owner,
            &doc,
            json!({"body": format!("@[{}] one more", bob.id)}),
        )
        .await;
        let bobs = notifications(&app, &bob, "?unread=true").await;
        assert_eq!(bobs.len(), 2);
        assert_eq!(bobs[0]["comment_id"], id(&second).as_str(), "newest first");
        let paged = app.read(&bob, "/notifications?limit=1").await;
        assert_eq!(items(&paged).len(), 1);
        assert!(paged["next_cursor"].is_string());
        let first_id = bobs[1]["id"].as_str().unwrap();
        let (status, body) = app
            .call(
                &carol,
                Method::POST,
                &format!("/notifications/{first_id}/read"),
                None,
            )
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::NOT_FOUND,
            "notification_not_found",
        );
        let (status, read) = app
            .call(
                &bob,
                Method::POST,
                &format!("/notifications/{first_id}/read"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{read}");
        assert!(read["read_at"].is_string());
        let unread = notifications(&app, &bob, "?unread=true").await;
        assert_eq!(unread.len(), 1);
        assert_eq!(unread[0]["comment_id"], id(&second).as_str());
        assert_eq!(notifications(&app, &bob, "").await.len(), 2);
        let (status, _) = app
            .call(&bob, Method::POST, "/notifications/read-all", None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(notifications(&app, &bob, "?unread=true").await.is_empty());
        // Carol's stay unread.
        assert_eq!(notifications(&app, &carol, "?unread=true").await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn malformed_comment_requests_are_problems() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let (_, doc) = workspace_with_doc(&app, &owner).await;
        let path = format!("/documents/{doc}/comments");
        let raw = |body: &'static str| {
            app.api(Method::POST, &path)
                .bearer_auth(&owner.token)
                .header("content-type", "application/json")
                .body(body)
        };
        let cases: [(&str, StatusCode, &str); 5] = [
            ("{\"body\": ", StatusCode::BAD_REQUEST, "malformed_json"),
            ("{\"body\": 42}", StatusCode::BAD_REQUEST, "invalid_body"),
            ("{}", StatusCode::BAD_REQUEST, "invalid_body"),
            (
                "{\"body\": \"hi\", \"author_id\": \"x\"}",
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                "{\"body\": \"  \"}",
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
        ];
        for (body, status, code) in cases {
            let (got, problem) = send(raw(body)).await;
            assert_problem(got, &problem, status, code);
        }
        let (status, problem) = app
            .call(
                &owner,
                Method::POST,
                &path,
                Some(&json!({"body": "x", "anchor": 7})),
            )
            .await;
        assert_problem(
            status,
            &problem,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert_eq!(problem["errors"][0]["field"], "anchor");
        let (status, problem) = app
            .call(
                &owner,
                Method::POST,
                &path,
                Some(&json!({"body": "x".repeat(64 * 1024 + 1)})),
            )
            .await;
        assert_problem(
            status,
            &problem,
            StatusCode::PAYLOAD_TOO_LARGE,
            "comment_too_large",
        );
        let (status, problem) = app
            .call(
                &owner,
                Method::PATCH,
                "/comments/not-a-uuid",
                Some(&json!({"body": "x"})),
            )
            .await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "invalid_id");
        let (status, problem) = app
            .call(&owner, Method::GET, &format!("{path}?resolved=maybe"), None)
            .await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "invalid_query");
        // Nothing was stored by any of them.
        assert!(items(&threads(&app, &owner, &doc, "").await).is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_permanently_deleted_document_takes_its_comments_and_notifications() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let bob = app.user("bob").await;
        let (ws, doc) = workspace_with_doc(&app, &owner).await;
        app.add_member(&owner, &ws, &bob, "commenter").await;
        let root = comment(
            &app,
            &owner,
            &doc,
            json!({"body": format!("@[{}] look", bob.id)}),
        )
        .await;
        comment(
            &app,
            &bob,
            &doc,
            json!({"body": "ok", "parent_id": id(&root)}),
        )
        .await;
        assert_eq!(notifications(&app, &bob, "").await.len(), 1);
        assert_eq!(notifications(&app, &owner, "").await.len(), 1);

        let (status, _) = app
            .call(&owner, Method::DELETE, &format!("/documents/{doc}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        // In the trash: readable, not writable.
        assert_eq!(items(&threads(&app, &bob, &doc, "").await).len(), 1);
        let (status, body) = app
            .call(
                &bob,
                Method::POST,
                &format!("/documents/{doc}/comments"),
                Some(&json!({"body": "late"})),
            )
            .await;
        assert_problem(status, &body, StatusCode::CONFLICT, "document_in_trash");

        let (status, body) = app
            .call(
                &owner,
                Method::DELETE,
                &format!("/documents/{doc}?permanent=true"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (status, body) = app
            .call(
                &bob,
                Method::PATCH,
                &format!("/comments/{}", id(&root)),
                Some(&json!({"body": "x"})),
            )
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "comment_not_found");
        let (status, body) = app
            .call(
                &bob,
                Method::GET,
                &format!("/documents/{doc}/comments"),
                None,
            )
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "document_not_found");
        assert!(notifications(&app, &bob, "").await.is_empty());
        assert!(notifications(&app, &owner, "").await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn comments_sync_through_push_and_pull() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let bob = app.user("bob").await;
        let (ws, doc) = workspace_with_doc(&app, &owner).await;
        app.add_member(&owner, &ws, &bob, "commenter").await;
        let (status, device) = app
            .call(
                &bob,
                Method::POST,
                "/devices",
                Some(&json!({"name": "Bob's laptop", "platform": "linux"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{device}");
        let device = id(&device);

        let root = Uuid::now_v7().to_string();
        let reply = Uuid::now_v7().to_string();
        let mutations = json!([
            {"mutation_id": 1, "type": "comment.create", "entity_id": root,
             "payload": {"document_id": doc, "body": format!("offline @[{}]", owner.id),
                         "anchor": "Plan"}},
            {"mutation_id": 2, "type": "comment.resolve", "entity_id": root,
             "payload": {"resolved": true}},
            {"mutation_id": 3, "type": "comment.create", "entity_id": reply,
             "payload": {"document_id": doc, "body": "a reply", "parent_id": root}},
            {"mutation_id": 4, "type": "comment.update", "entity_id": reply,
             "payload": {"body": "an edited reply"}},
            {"mutation_id": 5, "type": "comment.create", "entity_id": root,
             "payload": {"document_id": doc, "body": "same id again"}},
            {"mutation_id": 6, "type": "comment.resolve", "entity_id": reply,
             "payload": {"resolved": true}},
            {"mutation_id": 7, "type": "comment.delete", "entity_id": reply, "payload": {}},
        ]);
        let (status, pushed) = app
            .call(
                &bob,
                Method::POST,
                "/sync/push",
                Some(&json!({"device_id": device, "mutations": mutations})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{pushed}");
        let results = pushed["results"].as_array().unwrap();
        let statuses: Vec<&str> = results
            .iter()
            .map(|r| r["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            [
                "applied", "applied", "applied", "applied", "rejected", "rejected", "applied"
            ],
            "{pushed}"
        );
        assert_eq!(results[0]["version"], 1);
        assert_eq!(results[1]["version"], 2);
        assert_eq!(results[4]["problem"]["code"], "comment_exists");
        assert_eq!(results[5]["problem"]["code"], "not_a_thread");
        assert_eq!(pushed["next_mutation_id"], 8);

        // REST shows what the device wrote, with the client's id; the mention notified.
        let list = threads(&app, &owner, &doc, "?resolved=true").await;
        assert_eq!(ids(&list), std::slice::from_ref(&root));
        assert_eq!(items(&list)[0]["body"], format!("offline @[{}]", owner.id));
        assert_eq!(items(&list)[0]["replies"], json!([]));
        assert_eq!(notifications(&app, &owner, "").await.len(), 1);

        // Pull: the comment as the REST API shows it.
        let (status, pulled) = app.call(&owner, Method::GET, "/sync/pull", None).await;
        assert_eq!(status, StatusCode::OK, "{pulled}");
        let changes = pulled["changes"].as_array().unwrap();
        let of = |entity: &str| {
            changes
                .iter()
                .find(|c| c["entity_type"] == "comment" && c["entity_id"] == entity)
                .cloned()
        };
        let pulled_root = of(&root).expect("the comment is pulled");
        assert_eq!(pulled_root["op"], "upsert");
        assert_eq!(pulled_root["workspace_id"], ws.as_str());
        assert_eq!(pulled_root["version"], 2);
        let data = &pulled_root["data"];
        assert_eq!(data["id"], root.as_str());
        assert_eq!(data["document_id"], doc.as_str());
        assert_eq!(data["author_id"], bob.id.as_str());
        assert_eq!(data["resolved"], true);
        assert_eq!(data["resolved_by"], bob.id.as_str());
        assert_eq!(data["anchor"], "Plan");
        assert_eq!(data["mentions"], json!([owner.id]));
        // A fresh pull leaves out what was deleted before the client first saw it.
        assert!(of(&reply).is_none(), "{pulled}");

        // An incremental pull gets a later delete as a tombstone.
        let cursor = pulled["cursor"].as_str().unwrap().to_owned();
        let (status, _) = app
            .call(
                &owner,
                Method::POST,
                &format!("/comments/{root}/reopen"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app
            .call(&bob, Method::DELETE, &format!("/comments/{root}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, later) = app
            .call(
                &owner,
                Method::GET,
                &format!("/sync/pull?cursor={cursor}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{later}");
        let gone = later["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["entity_id"] == root.as_str())
            .cloned()
            .expect("a tombstone");
        assert_eq!(gone["op"], "delete");
        assert!(gone["data"].is_null());
    })
    .await;
}
