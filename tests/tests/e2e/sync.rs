//! Multi-device sync end to end (SYNC.md): devices, push (applied, merged, conflict, rejected,
//! duplicate, exactly once), pull (paging, joins and leaves, retention), pokes over SSE across
//! instances, and a seeded random simulation of devices going offline and coming back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use mdcreator_server::{Application, Settings};
use mdcreator_tests::{TestApp, User, assert_problem, backends, on_every_backend_with};

// ---------------------------------------------------------------------------------------------
// a minimal sync client

/// One registered device with its queue position, cursor and pulled state.
struct Device {
    user: User,
    id: String,
    next: i64,
    cursor: Option<String>,
    /// `"<entity_type>:<id>"` → `{workspace_id, data}` as last pulled.
    state: BTreeMap<String, (String, Value)>,
    last_mutation_id: Option<i64>,
}

impl Device {
    async fn register(app: &TestApp, user: &User, name: &str) -> Device {
        let (status, body) = app
            .call(
                user,
                Method::POST,
                "/devices",
                Some(&json!({"name": name, "platform": "linux"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["last_mutation_id"], 0);
        Device {
            user: user.clone(),
            id: body["id"].as_str().expect("device id").to_owned(),
            next: 1,
            cursor: None,
            state: BTreeMap::new(),
            last_mutation_id: None,
        }
    }

    /// A mutation with the device's next id.
    fn mutation(&mut self, kind: &str, entity: &str, base: Option<i64>, payload: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let mut m =
            json!({"mutation_id": id, "type": kind, "entity_id": entity, "payload": payload});
        if let Some(base) = base {
            m["base_version"] = json!(base);
        }
        m
    }

    async fn push(&self, app: &TestApp, mutations: &[Value]) -> Value {
        let (status, body) = self.push_raw(app, mutations).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn push_raw(&self, app: &TestApp, mutations: &[Value]) -> (StatusCode, Value) {
        app.call(
            &self.user,
            Method::POST,
            "/sync/push",
            Some(&json!({"device_id": self.id, "mutations": mutations})),
        )
        .await
    }

    async fn pull_page(&self, app: &TestApp, limit: Option<u32>) -> (StatusCode, Value) {
        let mut path = format!("/sync/pull?device_id={}", self.id);
        if let Some(c) = &self.cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        if let Some(l) = limit {
            path.push_str(&format!("&limit={l}"));
        }
        app.call(&self.user, Method::GET, &path, None).await
    }

    /// Pulls until `has_more` is false; applies and returns every change.
    async fn pull(&mut self, app: &TestApp) -> Vec<Value> {
        self.pull_with(app, None).await.0
    }

    /// Pulls with a page size; the changes and the number of pages.
    async fn pull_with(&mut self, app: &TestApp, limit: Option<u32>) -> (Vec<Value>, usize) {
        let mut all = Vec::new();
        let mut pages = 0;
        loop {
            let (status, page) = self.pull_page(app, limit).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            pages += 1;
            let changes = page["changes"].as_array().expect("changes").clone();
            for c in &changes {
                self.apply(c);
            }
            all.extend(changes);
            self.cursor = Some(page["cursor"].as_str().expect("cursor").to_owned());
            self.last_mutation_id = page["last_mutation_id"].as_i64();
            if !page["has_more"].as_bool().expect("has_more") {
                return (all, pages);
            }
            assert!(pages < 1000, "pull never ends");
        }
    }

    fn apply(&mut self, change: &Value) {
        let ws = change["workspace_id"].as_str().unwrap().to_owned();
        let kind = change["entity_type"].as_str().unwrap();
        let key = format!("{kind}:{}", change["entity_id"].as_str().unwrap());
        match change["op"].as_str().unwrap() {
            "upsert" => {
                self.state.insert(key, (ws, change["data"].clone()));
            }
            "delete" if kind == "workspace" => {
                self.state.retain(|_, (w, _)| *w != ws);
            }
            "delete" => {
                self.state.remove(&key);
            }
            other => panic!("unknown op {other}"),
        }
    }

    fn document(&self, id: &str) -> Option<&Value> {
        self.state.get(&format!("document:{id}")).map(|(_, d)| d)
    }

    fn documents(&self) -> BTreeMap<String, (i64, String)> {
        self.state
            .iter()
            .filter(|(k, _)| k.starts_with("document:"))
            .map(|(_, (_, d))| {
                (
                    d["id"].as_str().unwrap().to_owned(),
                    (
                        d["version"].as_i64().unwrap(),
                        d["content"].as_str().unwrap_or_default().to_owned(),
                    ),
                )
            })
            .collect()
    }
}

fn results(push: &Value) -> &Vec<Value> {
    push["results"].as_array().expect("results")
}

fn statuses(push: &Value) -> Vec<String> {
    results(push)
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect()
}

fn fast(settings: &mut Settings) {
    settings.requests_per_minute = 1_000_000;
}

const DOC: &str = "# Plan\n\nFirst paragraph.\n\nSecond paragraph.\n\nThird paragraph.\n";

/// A workspace with `owner` and `other` as editor, one document; both devices pulled.
async fn two_devices(app: &TestApp) -> (Device, Device, String, String) {
    let owner = app.user("ada").await;
    let other = app.user("bob").await;
    let ws = app.workspace(&owner, "Team").await;
    app.add_member(&owner, &ws, &other, "editor").await;
    let doc = app.document(&owner, &ws, "Plan", DOC).await;
    let doc = doc["id"].as_str().unwrap().to_owned();
    let mut a = Device::register(app, &owner, "Ada's laptop").await;
    let mut b = Device::register(app, &other, "Bob's phone").await;
    a.pull(app).await;
    b.pull(app).await;
    assert_eq!(a.document(&doc).unwrap()["version"], 1);
    assert_eq!(b.document(&doc).unwrap()["content"], DOC);
    (a, b, ws, doc)
}

async fn document(app: &TestApp, user: &User, id: &str) -> Value {
    app.read(user, &format!("/documents/{id}")).await
}

// ---------------------------------------------------------------------------------------------
// push

#[tokio::test]
async fn offline_edits_to_different_paragraphs_merge_without_a_conflict() {
    on_every_backend_with(fast, |app| async move {
        let (mut a, mut b, _, doc) = two_devices(&app).await;
        let by_a = DOC.replace("First paragraph.", "First paragraph, edited on A.");
        let by_b = DOC.replace("Third paragraph.", "Third paragraph, edited on B.");
        let ma = a.mutation("document.update", &doc, Some(1), json!({"content": by_a}));
        let mb = b.mutation("document.update", &doc, Some(1), json!({"content": by_b}));
        let ra = a.push(&app, &[ma]).await;
        assert_eq!(statuses(&ra), ["applied"]);
        assert_eq!(results(&ra)[0]["version"], 2);
        let rb = b.push(&app, &[mb]).await;
        assert_eq!(statuses(&rb), ["merged"], "{rb}");
        let merged = results(&rb)[0]["content"].as_str().unwrap().to_owned();
        assert!(merged.contains("edited on A") && merged.contains("edited on B"));
        assert_eq!(results(&rb)[0]["version"], 3);
        assert_eq!(rb["next_mutation_id"], 2);

        let d = document(&app, &a.user, &doc).await;
        assert_eq!(d["content"], merged);
        let versions = app
            .read(&a.user, &format!("/documents/{doc}/versions"))
            .await;
        assert_eq!(versions["items"][0]["reason"], "merge");
        for device in [&mut a, &mut b] {
            device.pull(&app).await;
            assert_eq!(device.document(&doc).unwrap()["content"], merged);
            assert_eq!(device.documents().len(), 1, "no conflict copy");
        }
    })
    .await;
}

#[tokio::test]
async fn the_same_lines_changed_on_two_devices_make_one_conflict_copy() {
    on_every_backend_with(fast, |app| async move {
        let (mut a, mut b, ws, doc) = two_devices(&app).await;
        let folder = app.folder(&a.user, &ws, "Plans", None).await;
        let folder = folder["id"].as_str().unwrap();
        let (status, _) = app
            .call(
                &a.user,
                Method::PATCH,
                &format!("/documents/{doc}"),
                Some(&json!({"folder_id": folder})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let by_a = DOC.replace("Second paragraph.", "Second paragraph, A's way.");
        let by_b = DOC.replace("Second paragraph.", "Second paragraph, B's way.");
        let ma = a.mutation("document.update", &doc, Some(1), json!({"content": by_a}));
        let mb = b.mutation("document.update", &doc, Some(1), json!({"content": by_b}));
        assert_eq!(statuses(&a.push(&app, &[ma]).await), ["applied"]);
        let rb = b.push(&app, &[mb]).await;
        assert_eq!(statuses(&rb), ["conflict"], "{rb}");
        let r = &results(&rb)[0];
        assert_eq!(r["version"], 2, "the server keeps its version");
        let copy = r["conflict_document_id"]
            .as_str()
            .expect("copy id")
            .to_owned();

        assert_eq!(document(&app, &a.user, &doc).await["content"], by_a);
        let c = document(&app, &b.user, &copy).await;
        assert_eq!(c["content"], by_b, "the copy holds B's text");
        assert_eq!(c["folder_id"], folder, "next to the original");
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        assert_eq!(c["title"], format!("Plan (conflict, Bob's phone, {today})"));

        b.pull(&app).await;
        let docs = b.documents();
        assert_eq!(docs.len(), 2, "exactly one copy");
        assert_eq!(docs[&doc].1, by_a);
        assert_eq!(docs[&copy].1, by_b);
    })
    .await;
}

#[tokio::test]
async fn a_replayed_batch_changes_nothing() {
    on_every_backend_with(fast, |app| async move {
        let (mut a, _, ws, doc) = two_devices(&app).await;
        let new_doc = Uuid::now_v7().to_string();
        let batch = vec![
            a.mutation(
                "document.update",
                &doc,
                Some(1),
                json!({"content": "# One\n"}),
            ),
            a.mutation(
                "document.create",
                &new_doc,
                None,
                json!({"workspace_id": ws, "title": "Offline", "content": "# Offline\n"}),
            ),
            a.mutation(
                "folder.create",
                &Uuid::now_v7().to_string(),
                None,
                json!({"workspace_id": ws, "name": "Inbox"}),
            ),
        ];
        let first = a.push(&app, &batch).await;
        assert_eq!(statuses(&first), ["applied"; 3]);
        a.pull(&app).await;
        let before = a.documents();
        let replay = a.push(&app, &batch).await;
        assert_eq!(statuses(&replay), ["duplicate"; 3]);
        for (r, f) in results(&replay).iter().zip(results(&first)) {
            assert_eq!(r["original_status"], "applied");
            assert_eq!(r["version"], f["version"]);
        }
        assert_eq!(replay["next_mutation_id"], 4);
        let changes = a.pull(&app).await;
        assert!(changes.is_empty(), "nothing new: {changes:?}");
        assert_eq!(a.documents(), before);
        let versions = app
            .read(&a.user, &format!("/documents/{doc}/versions"))
            .await;
        assert_eq!(versions["items"].as_array().unwrap().len(), 2);
        assert_eq!(a.last_mutation_id, Some(3));
    })
    .await;
}

#[tokio::test]
async fn a_push_whose_response_is_dropped_applies_once_when_retried() {
    on_every_backend_with(fast, |app| async move {
        let (mut a, _, ws, doc) = two_devices(&app).await;
        let created = Uuid::now_v7().to_string();
        let mut batch = vec![a.mutation(
            "document.create",
            &created,
            None,
            json!({"workspace_id": ws, "title": "Twin?", "content": "once\n"}),
        )];
        let mut text = DOC.to_owned();
        for i in 0..20 {
            text.push_str(&format!("\nLine {i}.\n"));
            batch.push(a.mutation(
                "document.update",
                &doc,
                Some(1 + i),
                json!({"content": text}),
            ));
        }
        // The client gives up before the answer arrives (the server may or may not have
        // finished); then it retries the same batch until it gets an answer.
        let impatient = reqwest::Client::builder()
            .timeout(Duration::from_millis(5))
            .build()
            .unwrap();
        let body = json!({"device_id": a.id, "mutations": batch});
        let dropped = impatient
            .post(app.url("/api/v1/sync/push"))
            .bearer_auth(&a.user.token)
            .json(&body)
            .send()
            .await;
        if let Ok(r) = dropped {
            let _ = r.bytes().await;
        }
        let retried = a.push(&app, &batch).await;
        let s = statuses(&retried);
        assert!(
            s.iter().all(|s| s == "applied" || s == "duplicate"),
            "{retried}"
        );
        assert_eq!(retried["next_mutation_id"], 22);
        assert_eq!(
            document(&app, &a.user, &doc).await["version"],
            21,
            "each edit once"
        );
        let versions = app
            .read(&a.user, &format!("/documents/{doc}/versions?limit=200"))
            .await;
        assert_eq!(versions["items"].as_array().unwrap().len(), 21);
        a.pull(&app).await;
        let twins = a
            .documents()
            .values()
            .filter(|(_, c)| c == "once\n")
            .count();
        assert_eq!(twins, 1, "a replayed create cannot make a twin");
    })
    .await;
}

#[tokio::test]
async fn gaps_stop_the_push_and_refusals_are_rejected_but_advance() {
    on_every_backend_with(fast, |app| async move {
        let (mut a, mut b, ws, doc) = two_devices(&app).await;
        let viewer = app.user("vic").await;
        app.add_member(&a.user, &ws, &viewer, "viewer").await;
        let mut v = Device::register(&app, &viewer, "Vic's tablet").await;

        // A gap: 1 then 3.
        let m1 = a.mutation(
            "document.update",
            &doc,
            Some(1),
            json!({"content": "# a\n"}),
        );
        a.next += 1;
        let m3 = a.mutation(
            "document.update",
            &doc,
            Some(2),
            json!({"content": "# b\n"}),
        );
        let r = a.push(&app, &[m1, m3]).await;
        assert_eq!(statuses(&r), ["applied"]);
        assert_eq!(r["stopped"], json!({"mutation_id": 3, "reason": "gap"}));
        assert_eq!(r["next_mutation_id"], 2);

        // Refusals: 403 for a viewer, 404 for what the caller cannot see, 422 for bad input
        // (a missing base, a comment without its document) and unsupported types. Each is recorded and the id advances.
        let outside = app.user("eve").await;
        let secret_ws = app.workspace(&outside, "Secret").await;
        let secret = app.document(&outside, &secret_ws, "S", "s").await;
        let batch = vec![
            v.mutation("document.update", &doc, Some(2), json!({"content": "nope"})),
            v.mutation(
                "document.update",
                secret["id"].as_str().unwrap(),
                Some(1),
                json!({"content": "nope"}),
            ),
            v.mutation("document.update", &doc, None, json!({"content": "no base"})),
            v.mutation(
                "comment.create",
                &Uuid::now_v7().to_string(),
                None,
                json!({"body": "hi"}),
            ),
            v.mutation("document.levitate", &doc, None, json!({})),
        ];
        let r = v.push(&app, &batch).await;
        assert_eq!(statuses(&r), ["rejected"; 5]);
        let codes: Vec<_> = results(&r)
            .iter()
            .map(|x| x["problem"]["code"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            codes,
            [
                "forbidden",
                "document_not_found",
                "validation_failed",
                // A comment without its document.
                "validation_failed",
                "unsupported_mutation"
            ]
        );
        assert_eq!(results(&r)[0]["problem"]["status"], 403);
        assert_eq!(r["next_mutation_id"], 6);
        let replay = v.push(&app, &batch[..1]).await;
        assert_eq!(results(&replay)[0]["original_status"], "rejected");
        assert_eq!(results(&replay)[0]["problem"]["code"], "forbidden");

        // Somebody else's device, and too many mutations.
        let (status, body) = b.push_raw(&app, &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        b.user = viewer.clone();
        let (status, body) = b.push_raw(&app, &[]).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "device_not_found");
        let many: Vec<Value> = (0..501)
            .map(|_| {
                a.mutation(
                    "folder.delete",
                    &Uuid::now_v7().to_string(),
                    None,
                    json!({}),
                )
            })
            .collect();
        let (status, body) = a.push_raw(&app, &many).await;
        assert_problem(
            status,
            &body,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_mutations",
        );
    })
    .await;
}

#[tokio::test]
async fn devices_are_registered_listed_and_forgotten_by_their_owner_only() {
    on_every_backend_with(fast, |app| async move {
        let ada = app.user("ada").await;
        let bob = app.user("bob").await;
        let d = Device::register(&app, &ada, "Laptop").await;
        let (status, body) = app
            .call(
                &ada,
                Method::POST,
                "/devices",
                Some(&json!({"name": " ", "platform": "web"})),
            )
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        let (status, body) = app
            .call(
                &ada,
                Method::POST,
                "/devices",
                Some(&json!({"name": "x", "platform": "web", "last_mutation_id": 9})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let list = app.read(&ada, "/devices").await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        assert_eq!(list["items"][0]["name"], "Laptop");
        assert!(
            app.read(&bob, "/devices").await["items"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let (status, body) = app
            .call(&bob, Method::DELETE, &format!("/devices/{}", d.id), None)
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "device_not_found");
        let (status, body) = app
            .call(
                &bob,
                Method::GET,
                &format!("/sync/pull?device_id={}", d.id),
                None,
            )
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "device_not_found");
        let (status, _) = app
            .call(&ada, Method::DELETE, &format!("/devices/{}", d.id), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(
            app.read(&ada, "/devices").await["items"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// pull

#[tokio::test]
async fn a_removed_member_gets_the_workspace_tombstone_and_nothing_after() {
    on_every_backend_with(fast, |app| async move {
        let (mut a, mut b, ws, doc) = two_devices(&app).await;
        let other_ws = app.workspace(&b.user, "Bob's own").await;
        b.pull(&app).await;
        let (status, _) = app
            .call(
                &a.user,
                Method::DELETE,
                &format!("/workspaces/{ws}/members/{}", b.user.id),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let edit = a.mutation(
            "document.update",
            &doc,
            Some(1),
            json!({"content": "# after\n"}),
        );
        a.push(&app, &[edit]).await;

        let changes = b.pull(&app).await;
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0]["workspace_id"], ws);
        assert_eq!(changes[0]["entity_type"], "workspace");
        assert_eq!(changes[0]["op"], "delete");
        assert!(b.document(&doc).is_none());
        assert!(
            b.state
                .keys()
                .any(|k| k == &format!("workspace:{other_ws}"))
        );

        app.document(&a.user, &ws, "Later", "more").await;
        assert!(
            b.pull(&app).await.is_empty(),
            "nothing of it after the tombstone"
        );
        let late = b.mutation("document.update", &doc, Some(2), json!({"content": "mine"}));
        let r = b.push(&app, &[late]).await;
        assert_eq!(statuses(&r), ["rejected"]);
        assert_eq!(results(&r)[0]["problem"]["status"], 404);

        // Joining again brings the workspace back whole.
        app.add_member(&a.user, &ws, &b.user, "viewer").await;
        b.pull(&app).await;
        assert_eq!(b.document(&doc).unwrap()["content"], "# after\n");
        assert_eq!(b.documents().len(), 2);
        assert_eq!(b.state[&format!("workspace:{ws}")].1["role"], "viewer");
    })
    .await;
}

#[tokio::test]
async fn pull_pages_with_has_more_and_never_splits_a_commit() {
    on_every_backend_with(fast, |app| async move {
        let ada = app.user("ada").await;
        let ws = app.workspace(&ada, "Big").await;
        let folder = app.folder(&ada, &ws, "Doomed", None).await;
        let folder = folder["id"].as_str().unwrap().to_owned();
        let mut ids = HashSet::new();
        for i in 0..25 {
            let (status, d) = app
                .call(
                    &ada,
                    Method::POST,
                    &format!("/workspaces/{ws}/documents"),
                    Some(
                        &json!({"title": format!("Doc {i}"), "content": format!("# {i}"),
                                  "folder_id": if i < 6 { json!(folder) } else { Value::Null }}),
                    ),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
            ids.insert(d["id"].as_str().unwrap().to_owned());
        }
        // Ten edits to one document arrive as one change.
        let first = ids.iter().next().unwrap().clone();
        for n in 0..10 {
            let d = document(&app, &ada, &first).await;
            let (status, _) = send_put(&app, &ada, &first, &format!("v{n}"), &d).await;
            assert_eq!(status, StatusCode::OK);
        }
        let mut dev = Device::register(&app, &ada, "Desk").await;
        let (changes, pages) = dev.pull_with(&app, Some(7)).await;
        assert!(pages >= 4, "{pages} pages");
        let docs: Vec<_> = changes
            .iter()
            .filter(|c| c["entity_type"] == "document")
            .collect();
        assert_eq!(docs.len(), 25, "one change per document");
        assert_eq!(dev.document(&first).unwrap()["version"], 11);
        assert_eq!(dev.document(&first).unwrap()["content"], "v9");
        for kind in ["workspace", "member", "folder"] {
            assert!(changes.iter().any(|c| c["entity_type"] == kind), "{kind}");
        }

        // One commit trashes the folder and its six documents: seven changes, one page.
        let (status, _) = app
            .call(&ada, Method::DELETE, &format!("/folders/{folder}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, page) = dev.pull_page(&app, Some(2)).await;
        assert_eq!(status, StatusCode::OK);
        let tombstones = page["changes"].as_array().unwrap();
        assert_eq!(tombstones.len(), 7, "{page}");
        assert!(tombstones.iter().all(|c| c["op"] == "delete"));
        assert_eq!(page["has_more"], false);
    })
    .await;
}

async fn send_put(
    app: &TestApp,
    user: &User,
    id: &str,
    content: &str,
    current: &Value,
) -> (StatusCode, Value) {
    let etag = format!(
        "\"{}-{}\"",
        current["version"],
        &current["content_hash"].as_str().unwrap()[..16]
    );
    mdcreator_tests::send(
        app.api(Method::PUT, &format!("/documents/{id}/content"))
            .bearer_auth(&user.token)
            .header("content-type", "text/markdown")
            .header("if-match", etag)
            .body(content.to_owned()),
    )
    .await
}

#[tokio::test]
async fn large_documents_are_pulled_by_reference() {
    on_every_backend_with(fast, |app| async move {
        let ada = app.user("ada").await;
        let ws = app.workspace(&ada, "Big").await;
        let d = app.document(&ada, &ws, "Huge", "small").await;
        let id = d["id"].as_str().unwrap().to_owned();
        let big = "x".repeat(1024 * 1024 + 10);
        let (status, body) = send_put(&app, &ada, &id, &big, &d).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut dev = Device::register(&app, &ada, "Desk").await;
        dev.pull(&app).await;
        let data = dev.document(&id).unwrap();
        assert!(data.get("content").is_none(), "no inline body");
        assert_eq!(
            data["content_url"],
            format!("/api/v1/documents/{id}/content")
        );
        assert_eq!(data["version"], 2);
    })
    .await;
}

#[tokio::test]
async fn a_cursor_older_than_the_compaction_horizon_gets_410() {
    let short_horizon = |s: &mut Settings| {
        fast(s);
        s.sync_retention_days = 0;
        s.sync_compaction_interval_secs = 1;
    };
    on_every_backend_with(short_horizon, |app| async move {
        let ada = app.user("ada").await;
        let ws = app.workspace(&ada, "Old").await;
        let mut dev = Device::register(&app, &ada, "Desk").await;
        dev.pull(&app).await;
        let stale_cursor = dev.cursor.clone();
        // After that cursor: a document edited (a superseded row) and one trashed (a tombstone).
        let d = app.document(&ada, &ws, "Kept", "a").await;
        send_put(&app, &ada, d["id"].as_str().unwrap(), "b", &d).await;
        let gone = app.document(&ada, &ws, "Gone", "x").await;
        let (status, _) = app
            .call(
                &ada,
                Method::DELETE,
                &format!("/documents/{}", gone["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = dev.pull_page(&app, None).await;
            if status == StatusCode::GONE {
                assert_problem(status, &body, StatusCode::GONE, "cursor_expired");
                break;
            }
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(Instant::now() < deadline, "no compaction within 15 s");
            dev.cursor = stale_cursor.clone();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Starting over works, and brings the current state only.
        dev.cursor = None;
        dev.state.clear();
        dev.pull(&app).await;
        let docs = dev.documents();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[d["id"].as_str().unwrap()].1, "b");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// pokes

/// Reads SSE chunks until `wanted` appears; what was read.
async fn read_until(response: &mut reqwest::Response, wanted: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let mut seen = String::new();
    while !seen.contains(wanted) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Ok(Ok(None)) => panic!("the event stream ended: {seen:?}"),
            Ok(Err(e)) => panic!("the event stream failed: {e}"),
            Err(_) => panic!("{wanted:?} did not arrive within {within:?}; got {seen:?}"),
        }
    }
    seen
}

async fn open_events(base: &str, user: &User) -> reqwest::Response {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/sync/events"))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("events");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    r
}

#[tokio::test]
async fn pokes_follow_the_callers_workspaces() {
    on_every_backend_with(fast, |app| async move {
        let (mut a, b, ws, doc) = two_devices(&app).await;
        let mut events = open_events(&app.base, &b.user).await;
        read_until(&mut events, ": connected", Duration::from_secs(5)).await;
        let m = a.mutation(
            "document.update",
            &doc,
            Some(1),
            json!({"content": "# poke\n"}),
        );
        a.push(&app, &[m]).await;
        let seen = read_until(
            &mut events,
            &format!("\"workspace_id\":\"{ws}\""),
            Duration::from_secs(5),
        )
        .await;
        assert!(seen.contains("event: changes\ndata: {"), "{seen:?}");
        // A workspace joined later is followed too.
        let other = app.workspace(&a.user, "Second").await;
        app.add_member(&a.user, &other, &b.user, "viewer").await;
        read_until(
            &mut events,
            &format!("\"workspace_id\":\"{other}\""),
            Duration::from_secs(5),
        )
        .await;
        app.document(&a.user, &other, "New", "n").await;
        let seen = read_until(&mut events, "\"seq\":", Duration::from_secs(5)).await;
        assert!(seen.contains(&other), "{seen:?}");
    })
    .await;
}

#[tokio::test]
async fn a_push_on_one_instance_pokes_an_sse_client_on_the_other() {
    let Some(redis) = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("REDIS_URL is not set: instances cannot share a fan-out; skipping");
        return;
    };
    for backend in backends() {
        let mut shared: Option<Settings> = None;
        let first = TestApp::spawn_with(backend, |s| {
            fast(s);
            s.redis_url = Some(redis.clone());
            // Instances behind one load balancer share the public URL, hence the token issuer.
            s.public_url = Some("https://mdcreator.test".into());
            shared = Some(s.clone());
        })
        .await;
        let cleanup = first.cleanup_handle();
        let second = Application::build(shared.expect("settings"))
            .await
            .expect("second instance");
        let second_base = format!("http://{}", second.address());
        let second_handle = second.handle();
        tokio::spawn(second.run_until_stopped());

        let outcome = tokio::spawn(async move {
            let (mut a, b, ws, doc) = two_devices(&first).await;
            let mut events = open_events(&second_base, &b.user).await;
            read_until(&mut events, ": connected", Duration::from_secs(5)).await;
            let m = a.mutation(
                "document.update",
                &doc,
                Some(1),
                json!({"content": "# far\n"}),
            );
            let started = Instant::now();
            a.push(&first, &[m]).await;
            read_until(
                &mut events,
                &format!("\"workspace_id\":\"{ws}\""),
                Duration::from_secs(5),
            )
            .await;
            eprintln!(
                "{backend:?}: push on one instance → poke on the other in {:?}",
                started.elapsed()
            );
        })
        .await;
        second_handle.stop(false).await;
        cleanup.run().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the simulation

/// SplitMix64: tiny, seedable, the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const DEVICES: usize = 4;
const STEPS: usize = 40;
/// Paragraph `i` belongs to device `i`; the last one is everybody's (conflicts happen there).
const PARAGRAPHS: usize = DEVICES + 1;

fn paragraphs_doc(title: &str) -> String {
    let mut s = format!("# {title}\n");
    for p in 0..PARAGRAPHS {
        s.push_str(&format!("\nParagraph {p}.\n"));
    }
    s
}

/// Replaces paragraph `p` (the `p`th block after the heading).
fn edit_paragraph(content: &str, p: usize, text: &str) -> String {
    let mut blocks: Vec<String> = content.split("\n\n").map(str::to_owned).collect();
    let i = (p + 1).min(blocks.len() - 1);
    let end = if i == blocks.len() - 1 { "\n" } else { "" };
    blocks[i] = format!("{text}{end}");
    blocks.join("\n\n")
}

fn paragraph(content: &str, p: usize) -> Option<String> {
    content
        .split("\n\n")
        .nth(p + 1)
        .map(|s| s.trim_end().to_owned())
}

/// An edit queued offline, and what became of it.
struct Queued {
    mutation: Value,
    document: String,
    marker: String,
    /// The client's text touched the shared paragraph (relative to its base).
    shared: bool,
}

struct SimDevice {
    device: Device,
    online: bool,
    /// Local working copies: id → (base version, content).
    local: BTreeMap<String, (i64, String)>,
    queue: Vec<Queued>,
}

impl SimDevice {
    fn refresh_local(&mut self) {
        // After a full push, local copies are the server's again.
        self.local = self.device.documents();
    }
}

#[tokio::test]
async fn random_offline_devices_converge_with_every_edit_kept_once() {
    let seeds: Vec<u64> = std::env::var("SYNC_SIM_SEEDS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<u64>| !v.is_empty())
        .unwrap_or_else(|| vec![20261125]);
    for seed in seeds {
        eprintln!("simulation seed {seed} (SYNC_SIM_SEEDS={seed} reproduces it)");
        on_every_backend_with(fast, move |app| async move { simulate(&app, seed).await }).await;
    }
}

async fn simulate(app: &TestApp, seed: u64) {
    let mut rng = Rng(seed);
    let owner = app.user("owner").await;
    let ws = app.workspace(&owner, "Sim").await;
    let mut docs = Vec::new();
    for t in 0..3 {
        let d = app
            .document(
                &owner,
                &ws,
                &format!("Doc {t}"),
                &paragraphs_doc(&format!("Doc {t}")),
            )
            .await;
        docs.push(d["id"].as_str().unwrap().to_owned());
    }
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        // Two users with two devices each.
        let user = if i % 2 == 0 {
            app.user(&format!("user{i}")).await
        } else {
            devices
                .last()
                .map(|d: &SimDevice| d.device.user.clone())
                .unwrap()
        };
        if i % 2 == 0 {
            app.add_member(&owner, &ws, &user, "editor").await;
        }
        let mut device = Device::register(app, &user, &format!("device {i}")).await;
        device.pull(app).await;
        let mut sim = SimDevice {
            device,
            online: true,
            local: BTreeMap::new(),
            queue: Vec::new(),
        };
        sim.refresh_local();
        devices.push(sim);
    }

    let mut outcomes: HashMap<(usize, i64), Value> = HashMap::new();
    let mut queued: HashMap<(usize, i64), (String, String, bool)> = HashMap::new();
    let mut edits = 0;
    for step in 0..STEPS * DEVICES {
        let i = rng.below(DEVICES);
        let roll = rng.below(100);
        if roll < 15 {
            // Go offline, or come back (push the queue, then pull).
            devices[i].online = !devices[i].online;
            if devices[i].online {
                sync_device(app, &mut devices[i], i, &mut outcomes).await;
            }
            continue;
        }
        let dev = &mut devices[i];
        let ids: Vec<String> = dev.local.keys().cloned().collect();
        if roll < 20 && ids.len() < 12 {
            // A document created offline, with a client-chosen id.
            let id = Uuid::now_v7().to_string();
            let marker = format!("[d{i}s{step}]");
            let content = paragraphs_doc(&marker);
            let m = dev.device.mutation(
                "document.create",
                &id,
                None,
                json!({"workspace_id": ws, "title": marker, "content": content}),
            );
            dev.local.insert(id.clone(), (1, content));
            dev.queue.push(Queued {
                mutation: m,
                document: id,
                marker,
                shared: false,
            });
        } else {
            let id = ids[rng.below(ids.len())].clone();
            let (base, content) = dev.local[&id].clone();
            let shared = rng.chance(15);
            let p = if shared { PARAGRAPHS - 1 } else { i };
            let marker = format!("[d{i}s{step}]");
            let text = format!("Paragraph {p} {marker}.");
            let new = edit_paragraph(&content, p, &text);
            let base_content = dev
                .device
                .document(&id)
                .map(|d| d["content"].as_str().unwrap_or_default().to_owned());
            let touches_shared = shared
                || base_content.is_some_and(|b| {
                    paragraph(&b, PARAGRAPHS - 1) != paragraph(&new, PARAGRAPHS - 1)
                });
            let m =
                dev.device
                    .mutation("document.update", &id, Some(base), json!({"content": new}));
            dev.local.insert(id.clone(), (base, new));
            dev.queue.push(Queued {
                mutation: m,
                document: id,
                marker,
                shared: touches_shared,
            });
        }
        edits += 1;
        let last = dev.queue.last().unwrap();
        queued.insert(
            (i, last.mutation["mutation_id"].as_i64().unwrap()),
            (last.document.clone(), last.marker.clone(), last.shared),
        );
        if dev.online && rng.chance(60) {
            sync_device(app, dev, i, &mut outcomes).await;
        }
    }
    // Everyone comes back, in a random order; then a last pull each.
    let mut order: Vec<usize> = (0..DEVICES).collect();
    for k in (1..order.len()).rev() {
        order.swap(k, rng.below(k + 1));
    }
    for &i in &order {
        devices[i].online = true;
        sync_device(app, &mut devices[i], i, &mut outcomes).await;
    }
    for dev in &mut devices {
        dev.device.pull(app).await;
    }

    // 1. Every device equals the server.
    let server = server_documents(app, &owner, &ws).await;
    for (i, dev) in devices.iter().enumerate() {
        assert_eq!(
            dev.device.documents(),
            server,
            "device {i} differs from the server (seed {seed})"
        );
    }
    // 2. Every queued edit was applied, merged or kept as a conflict copy — exactly once.
    assert_eq!(
        outcomes.len(),
        edits,
        "every edit has one outcome (seed {seed})"
    );
    let mut conflicts = 0;
    for (key, (doc, marker, shared)) in &queued {
        let r = &outcomes[key];
        let status = r["status"].as_str().unwrap();
        match status {
            "applied" | "merged" => {
                let v = r["version"].as_i64().unwrap();
                let version = app
                    .read(&owner, &format!("/documents/{doc}/versions/{v}"))
                    .await;
                assert!(
                    version["content"]
                        .as_str()
                        .unwrap()
                        .contains(marker.as_str())
                        || version["title"].as_str().unwrap().contains(marker.as_str()),
                    "{marker} not in version {v} of {doc} (seed {seed})"
                );
            }
            "conflict" => {
                conflicts += 1;
                assert!(
                    *shared,
                    "an edit outside the shared paragraph conflicted: {r} (seed {seed})"
                );
                let copy = r["conflict_document_id"].as_str().unwrap();
                // The copy is a document like any other: others may have edited it since.
                let c = app
                    .read(&owner, &format!("/documents/{copy}/versions/1"))
                    .await;
                assert!(
                    c["content"].as_str().unwrap().contains(marker.as_str()),
                    "{marker} not in the conflict copy {c} of {r} (seed {seed})"
                );
                assert!(server.contains_key(copy));
            }
            other => panic!("{key:?}: {other} {r} (seed {seed})"),
        }
    }
    // No version twice: every version of every document is accounted for.
    let mut versions = 0;
    for id in server.keys() {
        let page = app
            .read(&owner, &format!("/documents/{id}/versions?limit=200"))
            .await;
        versions += page["items"].as_array().unwrap().len();
    }
    let applied = outcomes
        .values()
        .filter(|r| r["status"] == "applied" || r["status"] == "merged")
        .count();
    assert_eq!(versions, docs.len() + applied + conflicts, "(seed {seed})");
    eprintln!(
        "seed {seed}: {edits} edits, {applied} applied or merged, {conflicts} conflict copies, {} documents",
        server.len()
    );
}

/// Pushes the device's queue (as one batch), records each outcome, then pulls.
async fn sync_device(
    app: &TestApp,
    dev: &mut SimDevice,
    i: usize,
    outcomes: &mut HashMap<(usize, i64), Value>,
) {
    if !dev.queue.is_empty() {
        let batch: Vec<Value> = dev.queue.iter().map(|q| q.mutation.clone()).collect();
        let r = dev.device.push(app, &batch).await;
        assert!(r.get("stopped").is_none(), "{r}");
        for result in results(&r) {
            let id = result["mutation_id"].as_i64().unwrap();
            let previous = outcomes.insert((i, id), result.clone());
            assert!(previous.is_none(), "mutation {id} of device {i} done twice");
        }
        dev.queue.clear();
    }
    dev.device.pull(app).await;
    dev.refresh_local();
}

async fn server_documents(app: &TestApp, user: &User, ws: &str) -> BTreeMap<String, (i64, String)> {
    let list = app
        .read(user, &format!("/workspaces/{ws}/documents?limit=200"))
        .await;
    let mut out = BTreeMap::new();
    for item in list["items"].as_array().unwrap() {
        let id = item["id"].as_str().unwrap();
        let d = document(app, user, id).await;
        out.insert(
            id.to_owned(),
            (
                d["version"].as_i64().unwrap(),
                d["content"].as_str().unwrap().to_owned(),
            ),
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// context files, attachments, collaboration saves, shared documents

/// The state a device pulled of one entity.
fn pulled<'a>(device: &'a Device, kind: &str, id: &str) -> Option<&'a Value> {
    device.state.get(&format!("{kind}:{id}")).map(|(_, d)| d)
}

#[tokio::test]
async fn context_files_pushed_offline_arrive_in_pull_and_a_replay_changes_nothing() {
    on_every_backend_with(fast, |app| async move {
        let (mut a, mut b, ws, doc) = two_devices(&app).await;
        let (style, notes) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
        let batch = vec![
            a.mutation(
                "context_file.create",
                &style,
                None,
                json!({"workspace_id": ws, "name": "style.md", "content": "Be brief."}),
            ),
            a.mutation(
                "context_file.create",
                &notes,
                None,
                json!({"workspace_id": ws, "document_id": doc, "name": "notes.md",
                       "content": "About the plan.", "content_type": "text/plain"}),
            ),
            a.mutation(
                "context_file.update",
                &style,
                Some(1),
                json!({"content": "Be brief and kind.", "name": "tone.md"}),
            ),
            a.mutation(
                "context_file.create",
                &Uuid::now_v7().to_string(),
                None,
                json!({"workspace_id": ws, "name": "deck.pdf", "size": 5_000_000,
                       "content_type": "application/pdf"}),
            ),
        ];
        let first = a.push(&app, &batch).await;
        assert_eq!(
            statuses(&first),
            ["applied", "applied", "applied", "rejected"],
            "{first}"
        );
        assert_eq!(results(&first)[2]["version"], 2);
        let problem = &results(&first)[3]["problem"];
        assert_eq!(problem["status"], 422, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("cannot be created by sync"),
            "{problem}"
        );

        let changes = b.pull(&app).await;
        assert_eq!(changes.len(), 2, "{changes:?}");
        let tone = pulled(&b, "context_file", &style).expect("pulled");
        assert_eq!(tone["name"], "tone.md");
        assert_eq!(tone["content"], "Be brief and kind.");
        assert_eq!(tone["version"], 2);
        assert_eq!(tone["storage"], "inline");
        assert_eq!(tone["workspace_id"], ws);
        let n = pulled(&b, "context_file", &notes).expect("pulled");
        assert_eq!(n["document_id"], doc);
        assert_eq!(n["content_type"], "text/plain");
        // The REST API shows the same file.
        let rest = app.read(&b.user, &format!("/context-files/{style}")).await;
        assert_eq!(&rest, tone);

        // A replay applies nothing again.
        a.pull(&app).await;
        let replay = a.push(&app, &batch).await;
        assert_eq!(statuses(&replay), ["duplicate"; 4]);
        assert_eq!(results(&replay)[2]["original_status"], "applied");
        assert_eq!(results(&replay)[3]["original_status"], "rejected");
        assert!(b.pull(&app).await.is_empty(), "nothing new after a replay");
        assert!(a.pull(&app).await.is_empty());

        // An edit of an older version is refused with the REST API's 412 problem.
        let stale = a.mutation(
            "context_file.update",
            &style,
            Some(1),
            json!({"content": "Stale."}),
        );
        let delete = a.mutation("context_file.delete", &notes, None, json!(null));
        let r = a.push(&app, &[stale, delete]).await;
        assert_eq!(statuses(&r), ["rejected", "applied"], "{r}");
        assert_eq!(results(&r)[0]["problem"]["status"], 412);
        assert_eq!(results(&r)[0]["problem"]["code"], "version_conflict");
        assert_eq!(results(&r)[0]["problem"]["current_version"], 2);
        let changes = b.pull(&app).await;
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0]["entity_id"], notes);
        assert_eq!(changes[0]["op"], "delete");
        assert!(pulled(&b, "context_file", &notes).is_none());
        let (status, _) = app
            .call(
                &b.user,
                Method::GET,
                &format!("/context-files/{notes}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn attachments_and_context_files_follow_their_document_to_the_trash_in_pull() {
    on_every_backend_with(fast, |app| async move {
        let (a, mut b, ws, doc) = two_devices(&app).await;
        let (status, attachment) = app
            .call(
                &a.user,
                Method::POST,
                &format!("/documents/{doc}/attachments"),
                Some(
                    &json!({"filename": "report.pdf", "content_type": "application/pdf",
                             "size": 1234}),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{attachment}");
        let attachment = attachment["id"].as_str().unwrap().to_owned();
        let (status, file) = app
            .call(
                &a.user,
                Method::POST,
                &format!("/workspaces/{ws}/context-files"),
                Some(&json!({"name": "notes.md", "content": "x", "document_id": doc})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{file}");
        let file = file["id"].as_str().unwrap().to_owned();

        b.pull(&app).await;
        let pulled_attachment = pulled(&b, "attachment", &attachment).expect("pulled");
        assert_eq!(pulled_attachment["status"], "pending");
        assert_eq!(pulled_attachment["filename"], "report.pdf");
        assert_eq!(pulled_attachment["document_id"], doc);
        assert_eq!(pulled(&b, "context_file", &file).unwrap()["content"], "x");

        let (status, _) = app
            .call(&a.user, Method::DELETE, &format!("/documents/{doc}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let changes = b.pull(&app).await;
        let mut gone: Vec<(String, String)> = changes
            .iter()
            .map(|c| {
                assert_eq!(c["op"], "delete", "{c}");
                (
                    c["entity_type"].as_str().unwrap().to_owned(),
                    c["entity_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        gone.sort();
        let mut expected = vec![
            ("attachment".to_owned(), attachment.clone()),
            ("context_file".to_owned(), file.clone()),
            ("document".to_owned(), doc.clone()),
        ];
        expected.sort();
        assert_eq!(
            gone, expected,
            "the files go to the trash with their document"
        );
        assert!(pulled(&b, "attachment", &attachment).is_none());

        let (status, body) = app
            .call(
                &a.user,
                Method::POST,
                &format!("/documents/{doc}/restore"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        b.pull(&app).await;
        assert!(b.document(&doc).is_some());
        assert!(pulled(&b, "attachment", &attachment).is_some(), "back");
        assert!(pulled(&b, "context_file", &file).is_some(), "back");

        // A fresh device gets only what is live, no tombstones.
        let mut fresh = Device::register(&app, &b.user, "Bob's tablet").await;
        fresh.pull(&app).await;
        assert!(pulled(&fresh, "attachment", &attachment).is_some());
        assert_eq!(fresh.state.len(), b.state.len(), "{:?}", fresh.state.keys());
    })
    .await;
}

#[tokio::test]
async fn a_collaboration_save_pokes_sync_clients() {
    use mdcreator_domain::collab::LiveDocuments;
    for backend in backends() {
        let mut shared: Option<Settings> = None;
        let first = TestApp::spawn_with(backend, |s| {
            fast(s);
            s.public_url = Some("https://mdcreator.test".into());
            shared = Some(s.clone());
        })
        .await;
        let cleanup = first.cleanup_handle();
        // A second instance on the same database, whose rooms the test drives in-process.
        let second = Application::build(shared.expect("settings"))
            .await
            .expect("second instance");
        let second_base = format!("http://{}", second.address());
        let second_handle = second.handle();
        let hub = second.collab();
        tokio::spawn(second.run_until_stopped());

        let outcome = tokio::spawn(async move {
            let owner = first.user("ada").await;
            let ws = first.workspace(&owner, "Team").await;
            let doc = first.document(&owner, &ws, "Plan", DOC).await;
            let doc = doc["id"].as_str().unwrap().to_owned();
            let document = mdcreator_domain::DocumentId(doc.parse().unwrap());
            let mut events = open_events(&second_base, &owner).await;
            read_until(&mut events, ": connected", Duration::from_secs(5)).await;

            let _connection = hub
                .connect(
                    document,
                    mdcreator_collab::Peer {
                        user_id: mdcreator_domain::UserId(owner.id.parse().unwrap()),
                        display_name: "Ada".into(),
                        writable: true,
                    },
                )
                .await
                .expect("joins the room");
            let live = format!("{DOC}\nTyped live.\n");
            hub.apply_text(document, &live).await;
            // Closing the rooms materializes the live text at once (no debounce wait).
            hub.shutdown().await;
            let seen = read_until(
                &mut events,
                &format!("\"workspace_id\":\"{ws}\""),
                Duration::from_secs(10),
            )
            .await;
            assert!(seen.contains("event: changes"), "{seen:?}");
            let saved = document_json(&first, &owner, &doc).await;
            assert_eq!(saved["content"], live);
            assert_eq!(saved["version"], 2);
            let versions = first
                .read(&owner, &format!("/documents/{doc}/versions"))
                .await;
            assert_eq!(versions["items"][0]["reason"], "collab");
        })
        .await;
        second_handle.stop(false).await;
        cleanup.run().await;
        if let Err(e) = outcome {
            eprintln!("scenario failed on {backend:?}");
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

async fn document_json(app: &TestApp, user: &User, id: &str) -> Value {
    app.read(user, &format!("/documents/{id}")).await
}

/// Shares `document` with `user` alone (the sharing API is not there yet: straight to the table).
async fn grant(app: &TestApp, owner: &User, document: &str, user: &User, role: &str) {
    use mdcreator_sql::entity::document_shares;
    use sea_orm::{ActiveValue::Set, EntityTrait};
    let db = sea_orm::Database::connect(&app.database_url)
        .await
        .expect("database");
    document_shares::Entity::insert(document_shares::ActiveModel {
        id: Set(Uuid::now_v7()),
        document_id: Set(document.parse().unwrap()),
        user_id: Set(Some(user.id.parse().unwrap())),
        link_token_hash: Set(None),
        role: Set(role.to_owned()),
        expires_at: Set(None),
        revoked_at: Set(None),
        created_by: Set(Some(owner.id.parse().unwrap())),
        created_at: Set(chrono::Utc::now()),
    })
    .exec_without_returning(&db)
    .await
    .expect("grant");
    db.close().await.ok();
}

#[tokio::test]
async fn a_grant_only_editors_conflict_copy_is_shared_with_them() {
    on_every_backend_with(fast, |app| async move {
        let owner = app.user("ada").await;
        let guest = app.user("gus").await;
        let ws = app.workspace(&owner, "Team").await;
        let doc = app.document(&owner, &ws, "Plan", DOC).await;
        let doc = doc["id"].as_str().unwrap().to_owned();
        grant(&app, &owner, &doc, &guest, "editor").await;
        let mut g = Device::register(&app, &guest, "Gus's laptop").await;
        g.pull(&app).await;
        let shared = g.state.get(&format!("document:{doc}")).expect("shared");
        assert_eq!(shared.0, "shared");

        // The owner and the guest change the same line.
        let mut o = Device::register(&app, &owner, "Ada's laptop").await;
        let m = o.mutation(
            "document.update",
            &doc,
            Some(1),
            json!({"content": DOC.replace("Second paragraph.", "Second, by the owner.")}),
        );
        assert_eq!(statuses(&o.push(&app, &[m]).await), ["applied"]);
        let by_guest = DOC.replace("Second paragraph.", "Second, by the guest.");
        let m = g.mutation(
            "document.update",
            &doc,
            Some(1),
            json!({"content": by_guest}),
        );
        let r = g.push(&app, &[m]).await;
        assert_eq!(statuses(&r), ["conflict"], "{r}");
        let copy = results(&r)[0]["conflict_document_id"]
            .as_str()
            .unwrap()
            .to_owned();

        // The guest sees the copy among its shared documents, and may edit it.
        g.pull(&app).await;
        let (scope, pulled_copy) = g.state.get(&format!("document:{copy}")).expect("copy");
        assert_eq!(scope, "shared");
        assert_eq!(pulled_copy["content"], by_guest);
        let today = chrono::Utc::now().format("%Y-%m-%d");
        assert_eq!(
            pulled_copy["title"],
            format!("Plan (conflict, Gus's laptop, {today})")
        );
        let m = g.mutation(
            "document.update",
            &copy,
            Some(1),
            json!({"content": "# kept\n"}),
        );
        assert_eq!(statuses(&g.push(&app, &[m]).await), ["applied"]);
        // It sits next to the original in the workspace, for its members too.
        let c = document_json(&app, &owner, &copy).await;
        assert_eq!(c["workspace_id"], ws);
        assert_eq!(c["content"], "# kept\n");
        // The guest is still no member.
        let (status, _) = app
            .call(&guest, Method::GET, &format!("/workspaces/{ws}"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    })
    .await;
}
