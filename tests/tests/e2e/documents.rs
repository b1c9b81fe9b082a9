//! Documents: conditional writes, trash, versions, lists, idempotent creates.

use mdcreator_tests::{
    TestApp, User, assert_problem, header, ids, items, on_every_backend, send_full,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Timestamps cut to microseconds: Postgres stores no finer, while a create answers with the
/// clock's full precision.
fn at_micros(document: &Value) -> Value {
    let mut d = document.clone();
    for field in ["created_at", "updated_at", "deleted_at"] {
        if let Some(t) = d[field].as_str() {
            let t = chrono::DateTime::parse_from_rfc3339(t).unwrap();
            d[field] = json!(t.timestamp_micros());
        }
    }
    d
}

/// The document as stored, with its ETag.
async fn stored(app: &TestApp, user: &User, id: &str) -> (Value, String) {
    let (status, headers, body) =
        send_full(app.authed(user, Method::GET, &format!("/documents/{id}"), None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (body, header(&headers, "etag").expect("ETag"))
}

async fn put_markdown(
    app: &TestApp,
    user: &User,
    id: &str,
    content: &str,
    if_match: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = app
        .authed(user, Method::PUT, &format!("/documents/{id}/content"), None)
        .header("content-type", "text/markdown; charset=utf-8")
        .body(content.to_owned());
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    send_full(request).await
}

#[tokio::test]
async fn create_read_and_conditional_writes() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let ws = app.workspace(&owner, "Docs").await;
        let content = "# Hello\n\nFirst draft.\n";
        let (status, headers, created) = send_full(app.authed(
            &owner,
            Method::POST,
            &format!("/workspaces/{ws}/documents"),
            Some(&json!({"title": "Hello", "content": content})),
        ))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(created["version"], 1);
        assert_eq!(created["title"], "Hello");
        assert_eq!(created["content"], content);
        assert_eq!(created["content_hash"], sha256_hex(content));
        assert_eq!(created["workspace_id"], ws.as_str());
        assert!(created["folder_id"].is_null());
        assert!(created["deleted_at"].is_null());
        assert_eq!(created["created_by"], owner.id.as_str());
        let etag = header(&headers, "etag").expect("ETag");
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "strong ETag: {etag}"
        );
        assert_eq!(
            header(&headers, "location").as_deref(),
            Some(format!("/api/v1/documents/{id}").as_str())
        );

        let (got, got_etag) = stored(&app, &owner, &id).await;
        assert_eq!(got_etag, etag);
        assert_eq!(at_micros(&got), at_micros(&created));

        // The Markdown alone, and 304 when it has not changed.
        let content_path = format!("/documents/{id}/content");
        let response = app
            .authed(&owner, Method::GET, &content_path, None)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            header(response.headers(), "content-type")
                .unwrap()
                .starts_with("text/markdown")
        );
        assert_eq!(
            header(response.headers(), "etag").as_deref(),
            Some(etag.as_str())
        );
        assert_eq!(response.text().await.unwrap(), content);
        let response = app
            .authed(&owner, Method::GET, &content_path, None)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            header(response.headers(), "etag").as_deref(),
            Some(etag.as_str())
        );
        assert!(response.bytes().await.unwrap().is_empty());

        // PUT without If-Match, then with a stale one: refused, nothing changes.
        let (status, _, body) = put_markdown(&app, &owner, &id, "overwritten", None).await;
        assert_problem(
            status,
            &body,
            StatusCode::PRECONDITION_REQUIRED,
            "precondition_required",
        );
        let (status, _, body) = put_markdown(
            &app,
            &owner,
            &id,
            "overwritten",
            Some("\"0-0000000000000000\""),
        )
        .await;
        assert_problem(
            status,
            &body,
            StatusCode::PRECONDITION_FAILED,
            "version_conflict",
        );
        assert_eq!(body["current_version"], 1);
        assert_eq!(body["current_etag"], etag.as_str());
        assert_eq!(body["content_hash"], sha256_hex(content));
        let (unchanged, unchanged_etag) = stored(&app, &owner, &id).await;
        assert_eq!(at_micros(&unchanged), at_micros(&created));
        assert_eq!(unchanged_etag, etag);

        // A good PUT: version 2, new ETag.
        let v2 = "# Hello\n\nSecond draft.\n";
        let (status, headers, saved) = put_markdown(&app, &owner, &id, v2, Some(&etag)).await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert_eq!(saved["version"], 2);
        assert_eq!(saved["content"], v2);
        assert_eq!(saved["content_hash"], sha256_hex(v2));
        let etag2 = header(&headers, "etag").unwrap();
        assert_ne!(etag2, etag);

        // JSON {content}: the old ETag is stale now.
        let json_put = |tag: &str, text: &str| {
            app.authed(
                &owner,
                Method::PUT,
                &content_path,
                Some(&json!({"content": text})),
            )
            .header("if-match", tag.to_owned())
        };
        let (status, _, body) = send_full(json_put(&etag, "lost update")).await;
        assert_problem(
            status,
            &body,
            StatusCode::PRECONDITION_FAILED,
            "version_conflict",
        );
        assert_eq!(body["current_version"], 2);
        assert_eq!(body["current_etag"], etag2.as_str());
        let v3 = "# Hello\n\nThird draft.\n";
        let (status, headers, saved) = send_full(json_put(&etag2, v3)).await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert_eq!(saved["version"], 3);
        assert_eq!(saved["content"], v3);
        let etag3 = header(&headers, "etag").unwrap();
        let response = app
            .authed(&owner, Method::GET, &content_path, None)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), v3);

        // PATCH title: needs If-Match.
        let doc_path = format!("/documents/{id}");
        let rename = |tag: Option<&str>, body: Value| {
            let r = app.authed(&owner, Method::PATCH, &doc_path, Some(&body));
            match tag {
                Some(t) => r.header("if-match", t.to_owned()),
                None => r,
            }
        };
        let (status, _, body) = send_full(rename(None, json!({"title": "Renamed"}))).await;
        assert_problem(
            status,
            &body,
            StatusCode::PRECONDITION_REQUIRED,
            "precondition_required",
        );
        let (status, _, body) = send_full(rename(Some(&etag2), json!({"title": "Renamed"}))).await;
        assert_problem(
            status,
            &body,
            StatusCode::PRECONDITION_FAILED,
            "version_conflict",
        );
        let (doc, _) = stored(&app, &owner, &id).await;
        assert_eq!(doc["title"], "Hello");
        assert_eq!(doc["version"], 3);
        let (status, headers, renamed) =
            send_full(rename(Some(&etag3), json!({"title": "Renamed"}))).await;
        assert_eq!(status, StatusCode::OK, "{renamed}");
        assert_eq!(renamed["title"], "Renamed");
        assert_eq!(renamed["version"], 4);
        assert_eq!(renamed["content"], v3);
        let etag4 = header(&headers, "etag").unwrap();
        assert_ne!(etag4, etag3, "the ETag changes with the title");

        // Move into a folder and back to the root; no If-Match needed to move.
        let folder = app.folder(&owner, &ws, "Inbox", None).await;
        let folder_id = folder["id"].as_str().unwrap();
        let (status, _, moved) = send_full(rename(None, json!({"folder_id": folder_id}))).await;
        assert_eq!(status, StatusCode::OK, "{moved}");
        assert_eq!(moved["folder_id"], folder_id);
        assert_eq!(moved["version"], 4);
        // A rename that also moves, without If-Match: refused as a whole.
        let (status, _, body) =
            send_full(rename(None, json!({"title": "Sneaky", "folder_id": null}))).await;
        assert_problem(
            status,
            &body,
            StatusCode::PRECONDITION_REQUIRED,
            "precondition_required",
        );
        let (doc, _) = stored(&app, &owner, &id).await;
        assert_eq!(doc["title"], "Renamed");
        assert_eq!(doc["folder_id"], folder_id, "a refused PATCH moves nothing");
        let (status, _, moved) = send_full(rename(None, json!({"folder_id": null}))).await;
        assert_eq!(status, StatusCode::OK, "{moved}");
        assert!(moved["folder_id"].is_null());
        let (status, _, body) =
            send_full(rename(None, json!({"folder_id": uuid::Uuid::new_v4()}))).await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "folder_not_found",
        );
        let (status, _, placed) = send_full(rename(None, json!({"position": 2.5}))).await;
        assert_eq!(status, StatusCode::OK, "{placed}");
        assert_eq!(placed["position"], 2.5);
        let (doc, tag) = stored(&app, &owner, &id).await;
        assert!(doc["folder_id"].is_null());
        assert_eq!(doc["version"], 4);
        assert_eq!(tag, etag4);

        // Unknown document.
        let (status, body) = app
            .call(
                &owner,
                Method::GET,
                &format!("/documents/{}", uuid::Uuid::new_v4()),
                None,
            )
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "document_not_found");
    })
    .await;
}

#[tokio::test]
async fn trash_restore_duplicate_and_permanent_delete() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let editor = app.user("editor").await;
        let ws = app.workspace(&owner, "Trash").await;
        app.add_member(&owner, &ws, &editor, "editor").await;
        let doc = app.document(&editor, &ws, "Draft", "draft text").await;
        let id = doc["id"].as_str().unwrap().to_owned();
        let path = format!("/documents/{id}");
        let list = format!("/workspaces/{ws}/documents");
        let trash = format!("/workspaces/{ws}/documents?trashed=true");

        let (status, body) = app.call(&editor, Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert!(!ids(&app.read(&owner, &list).await).contains(&id));
        let trashed = app.read(&owner, &trash).await;
        assert_eq!(ids(&trashed), vec![id.clone()]);
        assert!(items(&trashed)[0]["deleted_at"].is_string());
        let (got, etag) = stored(&app, &owner, &id).await;
        assert!(got["deleted_at"].is_string(), "{got}");
        assert_eq!(got["content"], "draft text");
        // Trashing again is a no-op.
        let (status, _) = app.call(&editor, Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);

        // A trashed document cannot be written.
        let (status, _, body) =
            put_markdown(&app, &editor, &id, "edited in the trash", Some(&etag)).await;
        assert_problem(status, &body, StatusCode::CONFLICT, "document_in_trash");
        let (status, body) = app
            .call(&editor, Method::POST, &format!("{path}/duplicate"), None)
            .await;
        assert_problem(status, &body, StatusCode::CONFLICT, "document_in_trash");
        let (unchanged, _) = stored(&app, &owner, &id).await;
        assert_eq!(unchanged["content"], "draft text");
        assert_eq!(unchanged["version"], 1);

        // Restore.
        let (status, restored) = app
            .call(&editor, Method::POST, &format!("{path}/restore"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{restored}");
        assert!(restored["deleted_at"].is_null());
        assert!(ids(&app.read(&owner, &list).await).contains(&id));
        assert!(items(&app.read(&owner, &trash).await).is_empty());

        // Permanent delete: only from the trash, only ≥ admin.
        let permanent = format!("{path}?permanent=true");
        let (status, body) = app.call(&owner, Method::DELETE, &permanent, None).await;
        assert_problem(status, &body, StatusCode::CONFLICT, "not_in_trash");
        let (still, _) = stored(&app, &owner, &id).await;
        assert!(still["deleted_at"].is_null());
        let (status, _) = app.call(&editor, Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, body) = app.call(&editor, Method::DELETE, &permanent, None).await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        assert_eq!(ids(&app.read(&owner, &trash).await), vec![id.clone()]);
        let (status, body) = app.call(&owner, Method::DELETE, &permanent, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (status, body) = app.call(&owner, Method::GET, &path, None).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "document_not_found");
        assert!(items(&app.read(&owner, &trash).await).is_empty());
        let (status, body) = app
            .call(&owner, Method::GET, &format!("{path}/versions"), None)
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "document_not_found");

        // Duplicate: a new document with the same content, version 1.
        let source = app.document(&editor, &ws, "Original", "to be copied").await;
        let sid = source["id"].as_str().unwrap();
        let (status, headers, copy) = send_full(app.authed(
            &editor,
            Method::POST,
            &format!("/documents/{sid}/duplicate"),
            None,
        ))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{copy}");
        assert_ne!(copy["id"], source["id"]);
        assert_eq!(copy["title"], "Original (copy)");
        assert_eq!(copy["content"], "to be copied");
        assert_eq!(copy["content_hash"], source["content_hash"]);
        assert_eq!(copy["version"], 1);
        assert!(header(&headers, "etag").is_some());
        let (copied, _) = stored(&app, &owner, copy["id"].as_str().unwrap()).await;
        assert_eq!(copied["content"], "to be copied");
        assert_eq!(items(&app.read(&owner, &list).await).len(), 2);
    })
    .await;
}

#[tokio::test]
async fn versions_diff_and_restore() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let ws = app.workspace(&owner, "History").await;
        let doc = app.document(&owner, &ws, "Log", "line one\n").await;
        let id = doc["id"].as_str().unwrap().to_owned();
        let (_, mut etag) = stored(&app, &owner, &id).await;
        let mut text = "line one\n".to_owned();
        for n in 2..=5 {
            text.push_str(&format!("line {n}\n"));
            let (status, headers, body) = put_markdown(&app, &owner, &id, &text, Some(&etag)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["version"], n);
            etag = header(&headers, "etag").unwrap();
        }

        // Cursor pagination, newest first.
        let versions = format!("/documents/{id}/versions");
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("{versions}?limit=2&cursor={c}"),
                None => format!("{versions}?limit=2"),
            };
            let page = app.read(&owner, &path).await;
            pages += 1;
            assert!(items(&page).len() <= 2);
            for v in items(&page) {
                assert_eq!(v["reason"], "save");
                assert_eq!(v["author_id"], owner.id.as_str());
                assert_eq!(v["title"], "Log");
                seen.push(v["version"].as_i64().unwrap());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, vec![5, 4, 3, 2, 1]);
        assert_eq!(pages, 3);
        let all = app.read(&owner, &versions).await;
        assert_eq!(items(&all)[4]["size"], "line one\n".len());
        assert_eq!(items(&all)[4]["content_hash"], sha256_hex("line one\n"));

        let v1 = app.read(&owner, &format!("{versions}/1")).await;
        assert_eq!(v1["version"], 1);
        assert_eq!(v1["content"], "line one\n");
        assert_eq!(v1["document_id"], id.as_str());
        assert_eq!(v1["reason"], "save");
        let (status, body) = app
            .call(&owner, Method::GET, &format!("{versions}/99"), None)
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "version_not_found");
        let (status, body) = app
            .call(&owner, Method::GET, &format!("{versions}/0"), None)
            .await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST, "invalid_version");

        // Diffs.
        let diff = app.read(&owner, &format!("{versions}/2/diff")).await;
        assert_eq!(diff["from_version"], 1);
        assert_eq!(diff["to_version"], 2);
        let unified = diff["diff"].as_str().unwrap();
        assert!(unified.contains("--- v1"), "{unified}");
        assert!(unified.contains("+++ v2"), "{unified}");
        assert!(unified.contains("+line 2"), "{unified}");
        let diff = app
            .read(&owner, &format!("{versions}/5/diff?against=1"))
            .await;
        assert_eq!(diff["from_version"], 1);
        assert_eq!(diff["to_version"], 5);
        let unified = diff["diff"].as_str().unwrap();
        assert!(
            unified.contains("--- v1") && unified.contains("+++ v5"),
            "{unified}"
        );
        for n in 2..=5 {
            assert!(unified.contains(&format!("+line {n}")), "{unified}");
        }
        let (status, body) = app
            .call(&owner, Method::GET, &format!("{versions}/1/diff"), None)
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "version_not_found");

        // Restoring version 1 makes version 6, with reason "restore"; history is kept.
        let (status, restored) = app
            .call(&owner, Method::POST, &format!("{versions}/1/restore"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{restored}");
        assert_eq!(restored["version"], 6);
        assert_eq!(restored["content"], "line one\n");
        let (doc, new_etag) = stored(&app, &owner, &id).await;
        assert_eq!(doc["version"], 6);
        assert_ne!(new_etag, etag);
        let latest = app.read(&owner, &format!("{versions}?limit=1")).await;
        assert_eq!(items(&latest)[0]["version"], 6);
        assert_eq!(items(&latest)[0]["reason"], "restore");
        let v5 = app.read(&owner, &format!("{versions}/5")).await;
        assert_eq!(v5["content"], text.as_str());
        let (status, body) = app
            .call(
                &owner,
                Method::POST,
                &format!("{versions}/42/restore"),
                None,
            )
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "version_not_found");
        assert_eq!(stored(&app, &owner, &id).await.0["version"], 6);
    })
    .await;
}

/// Every page of a list, following `next_cursor`.
async fn all_pages(app: &TestApp, user: &User, path: &str) -> (Vec<Value>, usize) {
    let mut out = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{separator}cursor={c}"),
            None => path.to_owned(),
        };
        let page = app.read(user, &url).await;
        pages += 1;
        out.extend(items(&page).iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (out, pages),
        }
        assert!(pages < 50, "runaway pagination");
    }
}

#[tokio::test]
async fn list_filters_sorting_and_pagination() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let ws = app.workspace(&owner, "Many").await;
        let folder = app.folder(&owner, &ws, "Sub", None).await;
        let folder_id = folder["id"].as_str().unwrap().to_owned();
        let mut titles = Vec::new();
        let mut in_folder = Vec::new();
        for n in [7, 3, 11, 1, 9, 12, 5, 2, 10, 4, 8, 6] {
            let title = format!("Doc {n:02}");
            let body = if n % 4 == 0 {
                json!({"title": title, "content": "x", "folder_id": folder_id})
            } else {
                json!({"title": title, "content": "x"})
            };
            let (status, created) = app
                .call(
                    &owner,
                    Method::POST,
                    &format!("/workspaces/{ws}/documents"),
                    Some(&body),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            if n % 4 == 0 {
                in_folder.push(created["id"].as_str().unwrap().to_owned());
            }
            titles.push(title);
        }
        let base = format!("/workspaces/{ws}/documents");

        // Default order (updated_at, newest first), 5 a page.
        let (docs, pages) = all_pages(&app, &owner, &format!("{base}?limit=5")).await;
        assert_eq!(pages, 3);
        assert_eq!(docs.len(), 12);
        let mut unique: Vec<&str> = docs.iter().map(|d| d["id"].as_str().unwrap()).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 12);
        assert!(
            docs.iter().all(|d| d.get("content").is_none()),
            "lists carry no content"
        );
        let stamps: Vec<&str> = docs
            .iter()
            .map(|d| d["updated_at"].as_str().unwrap())
            .collect();
        let mut sorted = stamps.clone();
        sorted.sort_by(|a, b| {
            chrono::DateTime::parse_from_rfc3339(b)
                .unwrap()
                .cmp(&chrono::DateTime::parse_from_rfc3339(a).unwrap())
        });
        assert_eq!(stamps, sorted, "newest first");

        // By title, ascending.
        let (docs, pages) = all_pages(
            &app,
            &owner,
            &format!("{base}?limit=5&sort=title&order=asc"),
        )
        .await;
        assert_eq!(pages, 3);
        let listed: Vec<&str> = docs.iter().map(|d| d["title"].as_str().unwrap()).collect();
        let mut expected = titles.iter().map(String::as_str).collect::<Vec<_>>();
        expected.sort();
        assert_eq!(listed, expected);
        let (docs, _) = all_pages(
            &app,
            &owner,
            &format!("{base}?limit=4&sort=title&order=desc"),
        )
        .await;
        let listed: Vec<&str> = docs.iter().map(|d| d["title"].as_str().unwrap()).collect();
        expected.reverse();
        assert_eq!(listed, expected);

        // Folder filters.
        let root = app.read(&owner, &format!("{base}?folder_id=root")).await;
        assert_eq!(items(&root).len(), 9);
        assert!(items(&root).iter().all(|d| d["folder_id"].is_null()));
        let sub = app
            .read(&owner, &format!("{base}?folder_id={folder_id}"))
            .await;
        let mut got = ids(&sub);
        got.sort();
        in_folder.sort();
        assert_eq!(got, in_folder);
        let none = app
            .read(
                &owner,
                &format!("{base}?folder_id={}", uuid::Uuid::new_v4()),
            )
            .await;
        assert!(items(&none).is_empty());

        // updated_since in the future: nothing.
        let future = (chrono::Utc::now() + chrono::Duration::hours(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let later = app
            .read(&owner, &format!("{base}?updated_since={future}"))
            .await;
        assert!(items(&later).is_empty());

        // A cursor of one sort order is refused by another.
        let page = app
            .read(&owner, &format!("{base}?limit=5&sort=title"))
            .await;
        let cursor = page["next_cursor"].as_str().unwrap();
        let (status, body) = app
            .call(
                &owner,
                Method::GET,
                &format!("{base}?limit=5&cursor={cursor}"),
                None,
            )
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        let (status, body) = app
            .call(&owner, Method::GET, &format!("{base}?sort=size"), None)
            .await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    })
    .await;
}

#[tokio::test]
async fn idempotency_keys_and_client_chosen_ids() {
    on_every_backend(|app| async move {
        let owner = app.user("owner").await;
        let ws = app.workspace(&owner, "Retries").await;
        let create = format!("/workspaces/{ws}/documents");
        let post = |key: &str, body: Value| {
            app.authed(&owner, Method::POST, &create, Some(&body))
                .header("idempotency-key", key.to_owned())
        };
        let key = format!("key-{}", uuid::Uuid::new_v4());
        let body = json!({"title": "Once", "content": "only one"});
        let (status, headers, first) = send_full(post(&key, body.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{first}");
        assert!(header(&headers, "idempotent-replayed").is_none());
        let (status, headers, replay) = send_full(post(&key, body.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{replay}");
        assert_eq!(
            header(&headers, "idempotent-replayed").as_deref(),
            Some("true")
        );
        assert_eq!(replay["id"], first["id"]);
        assert!(header(&headers, "etag").is_some());
        let list = app.read(&owner, &create).await;
        assert_eq!(ids(&list), vec![first["id"].as_str().unwrap().to_owned()]);

        let (status, _, problem) = send_full(post(
            &key,
            json!({"title": "Once", "content": "but different"}),
        ))
        .await;
        assert_problem(
            status,
            &problem,
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
        );
        assert_eq!(items(&app.read(&owner, &create).await).len(), 1);
        let (doc, _) = stored(&app, &owner, first["id"].as_str().unwrap()).await;
        assert_eq!(doc["content"], "only one");

        // A failed create does not burn the key.
        let retry_key = format!("key-{}", uuid::Uuid::new_v4());
        let (status, _, problem) = send_full(post(&retry_key, json!({"title": ""}))).await;
        assert_problem(
            status,
            &problem,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        let (status, _, problem) = send_full(post(&retry_key, json!({"title": ""}))).await;
        assert_problem(
            status,
            &problem,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        let (status, _, problem) = send_full(post("bad key with spaces", body.clone())).await;
        assert_problem(
            status,
            &problem,
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
        );
        assert_eq!(items(&app.read(&owner, &create).await).len(), 1);

        // Keys belong to their user: another member's identical key and body create anew.
        let editor = app.user("editor").await;
        app.add_member(&owner, &ws, &editor, "editor").await;
        let (status, headers, theirs) = send_full(
            app.authed(&editor, Method::POST, &create, Some(&body))
                .header("idempotency-key", key.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{theirs}");
        assert!(header(&headers, "idempotent-replayed").is_none());
        assert_ne!(theirs["id"], first["id"]);
        assert_eq!(theirs["created_by"], editor.id.as_str());
        assert_eq!(items(&app.read(&owner, &create).await).len(), 2);

        // Client-chosen ids.
        let id = uuid::Uuid::new_v4().to_string();
        let (status, created) = app
            .call(
                &owner,
                Method::POST,
                &create,
                Some(&json!({"id": id, "title": "Offline", "content": "v1"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["id"], id.as_str());
        let (status, problem) = app
            .call(
                &owner,
                Method::POST,
                &create,
                Some(&json!({"id": id, "title": "Offline", "content": "other"})),
            )
            .await;
        assert_problem(status, &problem, StatusCode::CONFLICT, "document_exists");
        let (doc, _) = stored(&app, &owner, &id).await;
        assert_eq!(doc["content"], "v1");
        assert_eq!(doc["version"], 1);
        assert_eq!(items(&app.read(&owner, &create).await).len(), 3);
    })
    .await;
}
