//! SECURITY.md "Bad input": every malformed request gets a precise 4xx problem, never a 5xx, and
//! leaves the stored data as it was (checked by reading it back).

use mdcreator_tests::{
    TestApp, User, assert_problem, header, ids, items, on_every_backend, on_every_backend_with,
    send, send_full,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// What the refused writes below could have touched.
async fn everything(app: &TestApp, user: &User, ws: &str, doc: &str) -> Vec<Value> {
    let mut state = Vec::new();
    for path in [
        "/users/me".to_owned(),
        "/workspaces".to_owned(),
        format!("/workspaces/{ws}"),
        format!("/workspaces/{ws}/members"),
        format!("/workspaces/{ws}/invitations"),
        format!("/workspaces/{ws}/folders"),
        format!("/workspaces/{ws}/documents"),
        format!("/workspaces/{ws}/documents?trashed=true"),
        format!("/documents/{doc}"),
        format!("/documents/{doc}/versions"),
    ] {
        state.push(app.read(user, &path).await);
    }
    state
}

async fn etag_of(app: &TestApp, user: &User, doc: &str) -> String {
    let (status, headers, _) =
        send_full(app.authed(user, Method::GET, &format!("/documents/{doc}"), None)).await;
    assert_eq!(status, StatusCode::OK);
    header(&headers, "etag").unwrap()
}

/// A raw JSON body (possibly not JSON at all) with `Content-Type: application/json`.
fn raw_json(
    app: &TestApp,
    user: &User,
    method: Method,
    path: &str,
    body: &str,
) -> reqwest::RequestBuilder {
    app.authed(user, method, path, None)
        .header("content-type", "application/json")
        .body(body.to_owned())
}

#[tokio::test]
async fn malformed_bodies_are_refused_precisely() {
    on_every_backend(|app| async move {
        let user = app.user("user").await;
        let ws = app.workspace(&user, "Solid").await;
        let doc = app.document(&user, &ws, "Doc", "# stable\n").await;
        let d = doc["id"].as_str().unwrap().to_owned();
        let folder = app.folder(&user, &ws, "Folder", None).await;
        let f = folder["id"].as_str().unwrap().to_owned();
        let before = everything(&app, &user, &ws, &d).await;
        let etag = etag_of(&app, &user, &d).await;

        let docs = format!("/workspaces/{ws}/documents");
        let folders = format!("/workspaces/{ws}/folders");
        let invitations = format!("/workspaces/{ws}/invitations");
        let cases: Vec<(Method, String, &str, StatusCode, &str)> = vec![
            // Not JSON.
            (
                Method::POST,
                "/workspaces".into(),
                r#"{"name": "#,
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                Method::POST,
                docs.clone(),
                "",
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                Method::POST,
                docs.clone(),
                "title=x",
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                Method::PATCH,
                format!("/documents/{d}"),
                "{'title': 'single quotes'}",
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                Method::PATCH,
                "/users/me".into(),
                r#"{"display_name": "x"} trailing"#,
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            // Wrong types.
            (
                Method::POST,
                "/workspaces".into(),
                r#"{"name": 42}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::POST,
                "/workspaces".into(),
                r#"["name"]"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::POST,
                docs.clone(),
                r#"[null, "positional", "fields"]"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::POST,
                "/workspaces".into(),
                "null",
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::POST,
                "/workspaces".into(),
                r#""name""#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::POST,
                docs.clone(),
                r#"{"title": ["a"]}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::POST,
                docs.clone(),
                r#"{"title": "x", "folder_id": "not-a-uuid"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::PATCH,
                format!("/folders/{f}"),
                r#"{"position": "first"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::POST,
                invitations.clone(),
                r#"{"role": "root"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::POST,
                invitations.clone(),
                r#"{"role": "viewer", "max_uses": "many"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::POST,
                invitations.clone(),
                r#"{"role": "viewer", "max_uses": 1.5}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            // Unknown and read-only fields (no mass assignment).
            (
                Method::POST,
                "/workspaces".into(),
                r#"{"name": "x", "owner_id": "00000000-0000-0000-0000-000000000000"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::POST,
                docs.clone(),
                r#"{"title": "x", "version": 7}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::POST,
                docs.clone(),
                r#"{"title": "x", "workspace_id": "00000000-0000-0000-0000-000000000000"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::PATCH,
                format!("/documents/{d}"),
                r#"{"content_hash": "00"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::PATCH,
                format!("/workspaces/{ws}"),
                r#"{"role": "owner"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::PATCH,
                format!("/workspaces/{ws}"),
                r#"{"slug": "mine"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::PATCH,
                "/users/me".into(),
                r#"{"email": "evil@example.com"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::PATCH,
                "/users/me".into(),
                r#"{"id": "00000000-0000-0000-0000-000000000000"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::PATCH,
                format!("/folders/{f}"),
                r#"{"workspace_id": "00000000-0000-0000-0000-000000000000"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            // Enormous numbers.
            (
                Method::POST,
                folders.clone(),
                r#"{"name": "x", "position": 1e400}"#,
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                Method::PATCH,
                format!("/folders/{f}"),
                r#"{"position": -1e400}"#,
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                Method::PATCH,
                format!("/documents/{d}"),
                r#"{"position": 1e400}"#,
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                Method::POST,
                invitations.clone(),
                r#"{"role": "viewer", "max_uses": 99999999999999999999}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                Method::POST,
                invitations.clone(),
                r#"{"role": "viewer", "expires_in_days": 99999999999999999999}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            // Finite but absurd numbers are validation errors.
            (
                Method::PATCH,
                format!("/documents/{d}"),
                r#"{"position": 1e300}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                Method::POST,
                folders.clone(),
                r#"{"name": "x", "position": 1e300}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                Method::POST,
                invitations.clone(),
                r#"{"role": "viewer", "max_uses": 0}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                Method::POST,
                invitations.clone(),
                r#"{"role": "viewer", "max_uses": -1}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                Method::POST,
                invitations.clone(),
                r#"{"role": "viewer", "max_uses": 9223372036854775807}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                Method::POST,
                invitations.clone(),
                r#"{"role": "viewer", "expires_in_days": 0}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                Method::POST,
                invitations.clone(),
                r#"{"role": "viewer", "expires_in_days": -9223372036854775808}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
        ];
        for (method, path, body, status, code) in cases {
            let (got, problem) = send(raw_json(&app, &user, method.clone(), &path, body)).await;
            assert_eq!(got, status, "{method} {path} {body}: {problem}");
            assert_problem(got, &problem, status, code);
            if code == "validation_failed" {
                assert!(problem["errors"][0]["field"].is_string(), "{problem}");
            }
        }

        // JSON without a JSON content type.
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let mut request = app
                .authed(&user, Method::POST, "/workspaces", None)
                .body(r#"{"name": "typed"}"#);
            if let Some(t) = content_type {
                request = request.header("content-type", t);
            }
            let (status, problem) = send(request).await;
            assert_problem(
                status,
                &problem,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            );
        }
        let (status, problem) = send(
            app.authed(&user, Method::PUT, &format!("/documents/{d}/content"), None)
                .header("if-match", &etag)
                .body("no type"),
        )
        .await;
        assert_problem(
            status,
            &problem,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
        let (status, problem) = send(
            app.authed(&user, Method::PUT, &format!("/documents/{d}/content"), None)
                .header("if-match", &etag)
                .header("content-type", "image/png")
                .body(vec![0x89, b'P', b'N', b'G']),
        )
        .await;
        assert_problem(
            status,
            &problem,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );

        // Markdown that is not UTF-8.
        for bytes in [
            vec![0xff, 0xfe, 0x00],
            b"caf\xe9".to_vec(),
            vec![b'a', 0xc3],
        ] {
            let (status, problem) = send(
                app.authed(&user, Method::PUT, &format!("/documents/{d}/content"), None)
                    .header("if-match", &etag)
                    .header("content-type", "text/markdown")
                    .body(bytes),
            )
            .await;
            assert_problem(status, &problem, StatusCode::BAD_REQUEST, "invalid_utf8");
        }
        // JSON that is not UTF-8.
        let (status, problem) = send(
            app.authed(&user, Method::POST, "/workspaces", None)
                .header("content-type", "application/json")
                .body(b"{\"name\": \"caf\xe9\"}".to_vec()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");

        assert_eq!(everything(&app, &user, &ws, &d).await, before);
    })
    .await;
}

#[tokio::test]
async fn bad_ids_queries_and_names() {
    on_every_backend(|app| async move {
        let user = app.user("user").await;
        let ws = app.workspace(&user, "Solid").await;
        let doc = app.document(&user, &ws, "Doc", "# stable\n").await;
        let d = doc["id"].as_str().unwrap().to_owned();
        let folder = app.folder(&user, &ws, "Folder", None).await;
        let f = folder["id"].as_str().unwrap().to_owned();
        let before = everything(&app, &user, &ws, &d).await;

        // Bad UUIDs in paths.
        for (method, path) in [
            (Method::GET, "/workspaces/not-a-uuid".to_owned()),
            (Method::GET, "/workspaces/123".to_owned()),
            (Method::PATCH, "/workspaces/..%2F..%2Fetc".to_owned()),
            (Method::GET, "/workspaces/%00/documents".to_owned()),
            (Method::DELETE, format!("/workspaces/{ws}/members/nobody")),
            (Method::DELETE, format!("/workspaces/{ws}/invitations/xyz")),
            (
                Method::GET,
                "/documents/00000000-0000-0000-0000-00000000000g".to_owned(),
            ),
            (Method::GET, format!("/documents/{d}x/content")),
            (Method::DELETE, "/documents/'%20OR%201=1".to_owned()),
            (Method::PATCH, "/folders/abc".to_owned()),
            (
                Method::GET,
                format!("/workspaces/{ws}/documents?folder_id=not-a-uuid"),
            ),
        ] {
            let (status, problem) = app
                .call(&user, method.clone(), &path, Some(&json!({})))
                .await;
            assert_problem(status, &problem, StatusCode::BAD_REQUEST, "invalid_id");
        }
        let (status, problem) = app
            .call(
                &user,
                Method::GET,
                &format!("/documents/{d}/versions/minus-one"),
                None,
            )
            .await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "invalid_version");
        let (status, problem) = app
            .call(
                &user,
                Method::GET,
                &format!("/documents/{d}/versions/99999999999999999999"),
                None,
            )
            .await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "invalid_version");

        // Page sizes and cursors.
        for list in [
            format!("/workspaces/{ws}/documents"),
            format!("/documents/{d}/versions"),
        ] {
            for limit in ["0", "-1", "201", "1000000", "-9223372036854775808"] {
                let (status, problem) = app
                    .call(&user, Method::GET, &format!("{list}?limit={limit}"), None)
                    .await;
                assert_problem(
                    status,
                    &problem,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                );
                assert_eq!(problem["errors"][0]["field"], "limit", "{problem}");
            }
            for limit in ["99999999999999999999", "ten", "1.5"] {
                let (status, problem) = app
                    .call(&user, Method::GET, &format!("{list}?limit={limit}"), None)
                    .await;
                assert_problem(status, &problem, StatusCode::BAD_REQUEST, "invalid_query");
            }
            let long = "A".repeat(5000);
            for cursor in [
                "garbage!!",
                "eyJub3QiOiJhIGN1cnNvciJ9",
                "AAAA",
                long.as_str(),
            ] {
                let (status, problem) = app
                    .call(&user, Method::GET, &format!("{list}?cursor={cursor}"), None)
                    .await;
                assert_problem(
                    status,
                    &problem,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                );
                assert_eq!(problem["errors"][0]["field"], "cursor", "{problem}");
            }
            let (status, problem) = app
                .call(&user, Method::GET, &format!("{list}?colour=blue"), None)
                .await;
            assert_problem(status, &problem, StatusCode::BAD_REQUEST, "invalid_query");
        }
        let (status, problem) = app
            .call(
                &user,
                Method::GET,
                &format!("/workspaces/{ws}/documents?updated_since=yesterday"),
                None,
            )
            .await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "invalid_query");
        let (status, problem) = app
            .call(
                &user,
                Method::DELETE,
                &format!("/documents/{d}?permanent=maybe"),
                None,
            )
            .await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "invalid_query");

        // Names with control characters, empty or too long.
        let long_title = "t".repeat(501);
        let long_name = "n".repeat(256);
        let long_ws = "w".repeat(101);
        let refused: Vec<(Method, String, Value)> = vec![
            (
                Method::POST,
                "/workspaces".into(),
                json!({"name": "a\u{0}b"}),
            ),
            (
                Method::POST,
                "/workspaces".into(),
                json!({"name": "line\nbreak"}),
            ),
            (Method::POST, "/workspaces".into(), json!({"name": "   "})),
            (Method::POST, "/workspaces".into(), json!({"name": long_ws})),
            (
                Method::PATCH,
                format!("/workspaces/{ws}"),
                json!({"name": "bell\u{7}"}),
            ),
            (
                Method::POST,
                format!("/workspaces/{ws}/folders"),
                json!({"name": "x\u{0}y"}),
            ),
            (
                Method::POST,
                format!("/workspaces/{ws}/folders"),
                json!({"name": "esc\u{1b}[31m"}),
            ),
            (
                Method::POST,
                format!("/workspaces/{ws}/folders"),
                json!({"name": long_name}),
            ),
            (
                Method::PATCH,
                format!("/folders/{f}"),
                json!({"name": "tab\there"}),
            ),
            (Method::PATCH, format!("/folders/{f}"), json!({"name": ""})),
            (
                Method::POST,
                format!("/workspaces/{ws}/documents"),
                json!({"title": "a\u{0}b"}),
            ),
            (
                Method::POST,
                format!("/workspaces/{ws}/documents"),
                json!({"title": long_title}),
            ),
            (
                Method::POST,
                format!("/workspaces/{ws}/documents"),
                json!({"title": "\u{7f}"}),
            ),
            (
                Method::PATCH,
                "/users/me".into(),
                json!({"display_name": "nul\u{0}"}),
            ),
            (
                Method::PATCH,
                "/users/me".into(),
                json!({"avatar_url": "javascript:alert(1)"}),
            ),
        ];
        for (method, path, body) in refused {
            let (status, problem) = app.call(&user, method.clone(), &path, Some(&body)).await;
            assert_problem(
                status,
                &problem,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            );
            assert!(
                problem["errors"][0]["field"].is_string(),
                "{method} {path}: {problem}"
            );
        }
        let etag = etag_of(&app, &user, &d).await;
        for title in ["a\u{0}b", long_title.as_str(), "\r\n"] {
            let (status, _, problem) = send_full(
                app.authed(
                    &user,
                    Method::PATCH,
                    &format!("/documents/{d}"),
                    Some(&json!({"title": title})),
                )
                .header("if-match", &etag),
            )
            .await;
            assert_problem(
                status,
                &problem,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            );
        }
        assert_eq!(everything(&app, &user, &ws, &d).await, before);

        // Path tricks are plain metadata: stored as given, nothing more.
        for title in [
            "../../etc/passwd",
            "/abs/path.md",
            "C:\\Windows\\win.ini",
            "..",
            "%2e%2e%2f",
            "<script>alert(1)</script>",
        ] {
            let created = app.document(&user, &ws, title, "x").await;
            assert_eq!(created["title"], title);
            let id = created["id"].as_str().unwrap();
            let read = app.read(&user, &format!("/documents/{id}")).await;
            assert_eq!(read["title"], title);
            assert!(read["folder_id"].is_null());
        }
        for name in ["../..", "/", "a/b\\c"] {
            let created = app.folder(&user, &ws, name, None).await;
            assert_eq!(created["name"], name);
            assert!(created["parent_id"].is_null());
        }
        let (status, created) = app
            .call(
                &user,
                Method::POST,
                "/workspaces",
                Some(&json!({"name": "../../etc"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["name"], "../../etc");
        assert_eq!(created["slug"], "etc");
        let tree = app.read(&user, &format!("/workspaces/{ws}/folders")).await;
        assert_eq!(items(&tree).len(), 4);
        assert_eq!(
            items(
                &app.read(&user, &format!("/workspaces/{ws}/documents"))
                    .await
            )
            .len(),
            7
        );
    })
    .await;
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    on_every_backend_with(
        |settings| settings.max_document_bytes = 1000,
        |app| async move {
            let user = app.user("user").await;
            let ws = app.workspace(&user, "Small").await;
            let doc = app.document(&user, &ws, "Doc", "small\n").await;
            let d = doc["id"].as_str().unwrap().to_owned();
            let before = everything(&app, &user, &ws, &d).await;
            let etag = etag_of(&app, &user, &d).await;
            let content = format!("/documents/{d}/content");

            // Over the document limit, as Markdown and as JSON.
            let (status, problem) = send(
                app.authed(&user, Method::PUT, &content, None)
                    .header("if-match", &etag)
                    .header("content-type", "text/markdown")
                    .body("x".repeat(1001)),
            )
            .await;
            assert_problem(
                status,
                &problem,
                StatusCode::PAYLOAD_TOO_LARGE,
                "document_too_large",
            );
            assert_eq!(problem["limit"], 1000);
            let (status, problem) = send(
                app.authed(
                    &user,
                    Method::PUT,
                    &content,
                    Some(&json!({"content": "y".repeat(1001)})),
                )
                .header("if-match", &etag),
            )
            .await;
            assert_problem(
                status,
                &problem,
                StatusCode::PAYLOAD_TOO_LARGE,
                "document_too_large",
            );
            let (status, problem) = app
                .call(
                    &user,
                    Method::POST,
                    &format!("/workspaces/{ws}/documents"),
                    Some(&json!({"title": "big", "content": "z".repeat(1001)})),
                )
                .await;
            assert_problem(
                status,
                &problem,
                StatusCode::PAYLOAD_TOO_LARGE,
                "document_too_large",
            );
            // Far over: refused while reading the body.
            let (status, problem) = send(
                app.authed(&user, Method::PUT, &content, None)
                    .header("if-match", &etag)
                    .header("content-type", "text/markdown")
                    .body("x".repeat(200 * 1024)),
            )
            .await;
            assert_problem(
                status,
                &problem,
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
            );
            // Exactly at the limit is fine... after the checks above changed nothing.
            assert_eq!(everything(&app, &user, &ws, &d).await, before);
            let (status, saved) = send(
                app.authed(&user, Method::PUT, &content, None)
                    .header("if-match", &etag)
                    .header("content-type", "text/markdown")
                    .body("x".repeat(1000)),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{saved}");
            assert_eq!(saved["version"], 2);
        },
    )
    .await;
}

#[tokio::test]
async fn json_bodies_over_one_mebibyte_are_refused() {
    on_every_backend(|app| async move {
        let user = app.user("user").await;
        let ws = app.workspace(&user, "Limits").await;
        let doc = app.document(&user, &ws, "Doc", "small\n").await;
        let d = doc["id"].as_str().unwrap().to_owned();
        let before = everything(&app, &user, &ws, &d).await;
        let big = "b".repeat(1024 * 1024 + 1);
        for (method, path, body) in [
            (
                Method::POST,
                format!("/workspaces/{ws}/documents"),
                json!({"title": "big", "content": big}),
            ),
            (Method::POST, "/workspaces".to_owned(), json!({"name": big})),
            (
                Method::PATCH,
                "/users/me".to_owned(),
                json!({"display_name": big}),
            ),
            (
                Method::PATCH,
                format!("/workspaces/{ws}"),
                json!({"settings": {"blob": big}}),
            ),
        ] {
            let (status, problem) = app.call(&user, method, &path, Some(&body)).await;
            assert_problem(
                status,
                &problem,
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
            );
        }
        // Without a Content-Length (chunked), too.
        let (status, problem) =
            chunked_post(&app, &user, "/api/v1/workspaces", 1024 * 1024 + 64).await;
        assert_problem(
            status,
            &problem,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        );
        assert_eq!(everything(&app, &user, &ws, &d).await, before);
        let (status, _) = app
            .call(&user, Method::GET, &format!("/documents/{d}"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ids(&app.read(&user, "/workspaces").await), vec![ws.clone()]);
    })
    .await;
}

/// POSTs a JSON body of about `size` bytes with `Transfer-Encoding: chunked` (no Content-Length)
/// over a raw connection; the status and problem body of the answer.
async fn chunked_post(app: &TestApp, user: &User, path: &str, size: usize) -> (StatusCode, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        user.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut body = b"{\"name\": \"".to_vec();
    body.resize(size, b'c');
    body.extend_from_slice(b"\"}");
    // The server may answer and stop reading early; write errors are expected then.
    for chunk in body.chunks(64 * 1024) {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if stream.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut reply),
    )
    .await;
    let text = String::from_utf8_lossy(&reply);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let json_start = text.find('{').unwrap_or(text.len());
    let json_end = text.rfind('}').map_or(text.len(), |i| i + 1);
    let problem =
        serde_json::from_str(&text[json_start..json_end.max(json_start)]).unwrap_or(Value::Null);
    (StatusCode::from_u16(status).unwrap(), problem)
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods() {
    on_every_backend(|app| async move {
        let user = app.user("user").await;
        for path in [
            "/api/v1/nope",
            "/api/v2/workspaces",
            "/nope",
            "/api/v1/documents",
        ] {
            let (status, headers, problem) =
                send_full(app.client.get(app.url(path)).bearer_auth(&user.token)).await;
            assert_problem(status, &problem, StatusCode::NOT_FOUND, "route_not_found");
            assert!(
                header(&headers, "content-type")
                    .unwrap()
                    .starts_with("application/problem+json")
            );
        }
        let d = uuid::Uuid::new_v4();
        for (method, path) in [
            (Method::DELETE, format!("/api/v1/documents/{d}/content")),
            (Method::POST, format!("/api/v1/documents/{d}/content")),
            (Method::DELETE, "/api/v1/workspaces".to_owned()),
            (Method::PUT, "/api/v1/workspaces".to_owned()),
            (Method::GET, "/api/v1/auth/login".to_owned()),
            (Method::POST, "/healthz".to_owned()),
        ] {
            let (status, problem) = send(
                app.client
                    .request(method.clone(), app.url(&path))
                    .bearer_auth(&user.token),
            )
            .await;
            assert_problem(
                status,
                &problem,
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
            );
        }
    })
    .await;
}
