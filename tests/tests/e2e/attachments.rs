//! Attachments and context files end to end: the curl-able upload flow over real HTTP, roles,
//! isolation, hostile file names, quotas, the trash, the sweeper.
//!
//! Every scenario runs on the embedded blob store, and again on S3 (s3s-fs, which checks
//! signatures) when `MDCREATOR_TEST_S3_URL` is set — chosen by configuration, as in production.

use std::future::Future;
use std::time::Duration;

use mdcreator_server::Settings;
use mdcreator_tests::{
    TestApp, User, assert_problem, header, ids, items, on_every_backend_with, send, send_full,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Runs `scenario` on every database backend, with the embedded blob store and — when
/// `MDCREATOR_TEST_S3_URL` is set — with S3, each with settings adjusted by `configure`.
async fn on_every_store<C, F, Fut>(configure: C, scenario: F)
where
    C: Fn(&mut Settings) + Clone,
    F: Fn(TestApp) -> Fut + Clone,
    Fut: Future<Output = ()> + Send + 'static,
{
    on_every_backend_with(configure.clone(), scenario.clone()).await;
    if let Some(url) = std::env::var("MDCREATOR_TEST_S3_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        let bucket = format!("mdc-e2e-{}", uuid::Uuid::new_v4().simple());
        let s3 = s3_settings(&url, &bucket);
        mdcreator_server::startup::install_crypto_provider();
        mdcreator_s3::S3BlobStore::connect(&s3)
            .await
            .unwrap()
            .ensure_bucket()
            .await
            .expect("create the test bucket");
        on_every_backend_with(
            move |s| {
                s.s3_bucket = Some(bucket.clone());
                s.aws_region = Some("us-east-1".into());
                s.aws_endpoint_url = Some(url.clone());
                s.s3_force_path_style = true;
                s.s3_access_key_id = Some("test".into());
                s.s3_secret_access_key = Some("test".into());
                configure(s);
            },
            scenario,
        )
        .await;
    }
}

fn s3_settings(url: &str, bucket: &str) -> mdcreator_s3::S3Settings {
    mdcreator_s3::S3Settings {
        bucket: bucket.to_owned(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(url.to_owned()),
        force_path_style: true,
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..mdcreator_s3::S3Settings::default()
    }
}

fn defaults(_: &mut Settings) {}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A workspace with an owner and one document in it.
async fn setup(app: &TestApp) -> (User, String, String) {
    let owner = app.user("owner").await;
    let ws = app.workspace(&owner, "Files").await;
    let doc = app.document(&owner, &ws, "With files", "# Files\n").await;
    (owner, ws, doc["id"].as_str().unwrap().to_owned())
}

async fn create_attachment(
    app: &TestApp,
    user: &User,
    doc: &str,
    filename: &str,
    content_type: &str,
    size: usize,
) -> (StatusCode, Value) {
    app.call(
        user,
        Method::POST,
        &format!("/documents/{doc}/attachments"),
        Some(&json!({"filename": filename, "content_type": content_type, "size": size})),
    )
    .await
}

/// PUTs `body` to the upload instructions as curl would: the given headers, the bytes.
async fn upload(
    app: &TestApp,
    created: &Value,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> StatusCode {
    let u = &created["upload"];
    assert_eq!(u["method"], "PUT", "{created}");
    let mut request = app.client.put(u["url"].as_str().unwrap());
    for (name, value) in u["headers"].as_object().unwrap() {
        match name.to_ascii_lowercase().as_str() {
            "content-length" => {}
            "content-type" => {
                if let Some(t) = content_type {
                    request = request.header(name, t);
                }
            }
            _ => request = request.header(name, value.as_str().unwrap()),
        }
    }
    request.body(body).send().await.unwrap().status()
}

/// Creates, uploads and completes an attachment; its JSON.
async fn attach(app: &TestApp, user: &User, doc: &str, name: &str, body: &[u8]) -> Value {
    let (status, created) = create_attachment(app, user, doc, name, "text/plain", body.len()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let status = upload(app, &created, Some("text/plain"), body.to_vec()).await;
    assert!(status.is_success(), "upload: {status}");
    let id = created["id"].as_str().unwrap();
    let (status, done) = app
        .call(
            user,
            Method::POST,
            &format!("/attachments/{id}/complete"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    done
}

/// Follows `GET /attachments/{id}`'s redirect; the status of the store's answer and its bytes.
async fn download(app: &TestApp, user: &User, id: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let (status, headers, body) =
        send_full(app.authed(user, Method::GET, &format!("/attachments/{id}"), None)).await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    let location = header(&headers, "location").expect("Location");
    fetch(app, &location).await
}

async fn fetch(app: &TestApp, url: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let response = app.client.get(url).send().await.unwrap();
    let status = response.status();
    let disposition = response
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        status,
        disposition,
        response.bytes().await.unwrap().to_vec(),
    )
}

#[tokio::test]
async fn upload_complete_download_delete() {
    on_every_store(defaults, |app| async move {
        let (owner, ws, doc) = setup(&app).await;
        let body = b"first line\nsecond line\n".to_vec();

        let (status, headers, created) = send_full(app.authed(
            &owner,
            Method::POST,
            &format!("/documents/{doc}/attachments"),
            Some(
                &json!({"filename": "notes.txt", "content_type": "text/plain", "size": body.len()}),
            ),
        ))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(
            header(&headers, "location").as_deref(),
            Some(format!("/api/v1/attachments/{id}").as_str())
        );
        assert_eq!(created["status"], "pending");
        assert_eq!(created["filename"], "notes.txt");
        assert_eq!(created["content_type"], "text/plain");
        assert_eq!(created["size"], body.len());
        assert_eq!(created["document_id"], doc.as_str());
        assert_eq!(created["workspace_id"], ws.as_str());
        assert_eq!(created["upload"]["method"], "PUT");
        assert!(created["upload"]["headers"].is_object(), "{created}");
        let expires: chrono::DateTime<chrono::Utc> =
            created["expires_at"].as_str().unwrap().parse().unwrap();
        let left = expires - chrono::Utc::now();
        assert!(
            left > chrono::Duration::minutes(14) && left <= chrono::Duration::minutes(15),
            "{left}"
        );

        // completing before uploading
        let (status, problem) = app
            .call(
                &owner,
                Method::POST,
                &format!("/attachments/{id}/complete"),
                None,
            )
            .await;
        assert_problem(status, &problem, StatusCode::CONFLICT, "upload_missing");

        let status = upload(&app, &created, Some("text/plain"), body.clone()).await;
        assert!(status.is_success(), "upload: {status}");
        let (status, ready) = app
            .call(
                &owner,
                Method::POST,
                &format!("/attachments/{id}/complete"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{ready}");
        assert_eq!(ready["status"], "ready");
        assert!(ready.get("expires_at").is_none(), "{ready}");
        if let Some(sha) = ready["sha256"].as_str() {
            assert_eq!(sha, sha256_hex(&body));
        }
        // idempotent
        let (status, again) = app
            .call(
                &owner,
                Method::POST,
                &format!("/attachments/{id}/complete"),
                None,
            )
            .await;
        assert_eq!(
            (status, &again["status"]),
            (StatusCode::OK, &json!("ready"))
        );

        let list = app
            .read(&owner, &format!("/documents/{doc}/attachments"))
            .await;
        assert_eq!(ids(&list), std::slice::from_ref(&id));
        assert_eq!(items(&list)[0]["status"], "ready");

        let (status, disposition, bytes) = download(&app, &owner, &id).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(bytes, body);
        let disposition = disposition.expect("Content-Disposition");
        assert!(
            disposition.starts_with("attachment") && disposition.contains("notes.txt"),
            "{disposition}"
        );

        let link = app
            .read(&owner, &format!("/attachments/{id}?redirect=false"))
            .await;
        let url = link["url"].as_str().unwrap().to_owned();
        assert!(link["expires_at"].is_string(), "{link}");
        assert_eq!(fetch(&app, &url).await.2, body);

        let (status, _) = app
            .call(&owner, Method::DELETE, &format!("/attachments/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, problem) = app
            .call(&owner, Method::GET, &format!("/attachments/{id}"), None)
            .await;
        assert_problem(
            status,
            &problem,
            StatusCode::NOT_FOUND,
            "attachment_not_found",
        );
        let list = app
            .read(&owner, &format!("/documents/{doc}/attachments"))
            .await;
        assert!(items(&list).is_empty(), "{list}");
        // the object is gone from the store too
        assert_eq!(fetch(&app, &url).await.0, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn uploads_that_differ_from_the_declaration_are_refused() {
    on_every_store(defaults, |app| async move {
        let (owner, _, doc) = setup(&app).await;
        let (status, created) =
            create_attachment(&app, &owner, &doc, "a.txt", "text/plain", 10).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap();

        let status = upload(&app, &created, Some("text/plain"), b"0123456789+".to_vec()).await;
        assert!(status.is_client_error(), "larger body: {status}");
        let status = upload(&app, &created, Some("text/html"), b"0123456789".to_vec()).await;
        assert!(status.is_client_error(), "other type: {status}");
        let mut tampered = created.clone();
        let url = created["upload"]["url"].as_str().unwrap();
        let at = url
            .find("X-Amz-Signature=")
            .map_or(url.len() - 5, |i| i + 20);
        let mut chars: Vec<char> = url.chars().collect();
        chars[at] = if chars[at] == 'a' { 'b' } else { 'a' };
        tampered["upload"]["url"] = json!(chars.into_iter().collect::<String>());
        let status = upload(&app, &tampered, Some("text/plain"), b"0123456789".to_vec()).await;
        assert!(status.is_client_error(), "tampered URL: {status}");

        // nothing was stored
        let (status, problem) = app
            .call(
                &owner,
                Method::POST,
                &format!("/attachments/{id}/complete"),
                None,
            )
            .await;
        assert_problem(status, &problem, StatusCode::CONFLICT, "upload_missing");
        let (status, problem) = app
            .call(&owner, Method::GET, &format!("/attachments/{id}"), None)
            .await;
        assert_problem(status, &problem, StatusCode::CONFLICT, "upload_pending");
    })
    .await;
}

#[tokio::test]
async fn roles_decide_and_outsiders_see_nothing() {
    on_every_store(defaults, |app| async move {
        let (owner, ws, doc) = setup(&app).await;
        let viewer = app.user("viewer").await;
        app.add_member(&owner, &ws, &viewer, "viewer").await;
        let outsider = app.user("outsider").await;
        app.workspace(&outsider, "Elsewhere").await;
        let ready = attach(&app, &owner, &doc, "r.txt", b"ready").await;
        let id = ready["id"].as_str().unwrap().to_owned();

        // viewers read and download, but do not write
        let (status, problem) =
            create_attachment(&app, &viewer, &doc, "v.txt", "text/plain", 1).await;
        assert_problem(status, &problem, StatusCode::FORBIDDEN, "forbidden");
        assert_eq!(
            ids(&app
                .read(&viewer, &format!("/documents/{doc}/attachments"))
                .await),
            std::slice::from_ref(&id)
        );
        assert_eq!(download(&app, &viewer, &id).await.2, b"ready");
        for (method, path) in [
            (Method::POST, format!("/attachments/{id}/complete")),
            (Method::DELETE, format!("/attachments/{id}")),
        ] {
            let (status, problem) = app.call(&viewer, method, &path, None).await;
            assert_problem(status, &problem, StatusCode::FORBIDDEN, "forbidden");
        }

        // a user of another workspace gets 404 for every attachment URL
        let (status, problem) =
            create_attachment(&app, &outsider, &doc, "o.txt", "text/plain", 1).await;
        assert_problem(
            status,
            &problem,
            StatusCode::NOT_FOUND,
            "document_not_found",
        );
        for (method, path, code) in [
            (
                Method::GET,
                format!("/documents/{doc}/attachments"),
                "document_not_found",
            ),
            (
                Method::GET,
                format!("/attachments/{id}"),
                "attachment_not_found",
            ),
            (
                Method::GET,
                format!("/attachments/{id}?redirect=false"),
                "attachment_not_found",
            ),
            (
                Method::POST,
                format!("/attachments/{id}/complete"),
                "attachment_not_found",
            ),
            (
                Method::DELETE,
                format!("/attachments/{id}"),
                "attachment_not_found",
            ),
        ] {
            let (status, problem) = app.call(&outsider, method.clone(), &path, None).await;
            assert_problem(status, &problem, StatusCode::NOT_FOUND, code);
        }
        // and so does anyone for an id that does not exist
        let unknown = uuid::Uuid::now_v7();
        let (status, problem) = app
            .call(
                &owner,
                Method::GET,
                &format!("/attachments/{unknown}"),
                None,
            )
            .await;
        assert_problem(
            status,
            &problem,
            StatusCode::NOT_FOUND,
            "attachment_not_found",
        );
        // nothing changed
        assert_eq!(download(&app, &owner, &id).await.2, b"ready");
    })
    .await;
}

#[tokio::test]
async fn file_names_are_metadata_and_never_reach_the_key() {
    on_every_store(defaults, |app| async move {
        let (owner, ws, doc) = setup(&app).await;
        let long = format!("{}.txt", "n".repeat(996));
        for name in [
            "../../../etc/passwd",
            "/etc/shadow",
            "C:\\Windows\\win.ini",
            "..",
            long.as_str(),
        ] {
            let (status, created) =
                create_attachment(&app, &owner, &doc, name, "text/plain", 2).await;
            assert_eq!(status, StatusCode::CREATED, "{name}: {created}");
            assert_eq!(created["filename"], name);
            let id = created["id"].as_str().unwrap();
            let url = created["upload"]["url"].as_str().unwrap();
            for part in ["passwd", "shadow", "win.ini", "nnnnnnnn", "%2E%2E", "../"] {
                assert!(!url.contains(part), "{url} carries {part}");
            }
            if url.contains("X-Amz-") {
                // S3: the path is /<bucket>/<workspace>/<document>/<attachment id>
                assert!(url.contains(&format!("/{ws}/{doc}/{id}?")), "{url}");
            }
            assert!(upload(&app, &created, Some("text/plain"), b"ok".to_vec()).await.is_success());
            let (status, done) = app
                .call(&owner, Method::POST, &format!("/attachments/{id}/complete"), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{done}");
            let (status, disposition, bytes) = download(&app, &owner, id).await;
            assert_eq!((status, bytes.as_slice()), (StatusCode::OK, b"ok".as_slice()));
            let disposition = disposition.unwrap();
            assert!(
                !disposition.contains('/') && !disposition.contains('\\'),
                "{disposition}"
            );
        }
        // NUL and other control characters are refused
        for name in ["a\0b.txt", "line\nbreak.txt", ""] {
            let (status, problem) =
                create_attachment(&app, &owner, &doc, name, "text/plain", 1).await;
            assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(problem["errors"][0]["field"], "filename", "{problem}");
        }
        let too_long = "x".repeat(1025);
        let (status, problem) =
            create_attachment(&app, &owner, &doc, &too_long, "text/plain", 1).await;
        assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        // bad types and sizes
        for (ty, size) in [("not a type", 1), ("text/plain\r\nx-evil: 1", 1)] {
            let (status, problem) = create_attachment(&app, &owner, &doc, "a", ty, size).await;
            assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        }
        let (status, problem) = app
            .call(
                &owner,
                Method::POST,
                &format!("/documents/{doc}/attachments"),
                Some(&json!({"filename": "a", "content_type": "text/plain", "size": -1})),
            )
            .await;
        assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let (status, problem) = app
            .call(
                &owner,
                Method::POST,
                &format!("/documents/{doc}/attachments"),
                Some(&json!({"filename": "a", "content_type": "text/plain", "size": 1, "storage_key": "x"})),
            )
            .await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "invalid_body");
    })
    .await;
}

#[tokio::test]
async fn quotas_and_size_limits_answer_413() {
    on_every_store(
        |s: &mut Settings| {
            s.workspace_quota_bytes = 1000;
            s.max_upload_bytes = 800;
        },
        |app| async move {
            let (owner, _, doc) = setup(&app).await;
            let (status, problem) = create_attachment(
                &app,
                &owner,
                &doc,
                "big.bin",
                "application/octet-stream",
                801,
            )
            .await;
            assert_problem(
                status,
                &problem,
                StatusCode::PAYLOAD_TOO_LARGE,
                "file_too_large",
            );
            assert_eq!(problem["limit"], 800);

            let (status, first) =
                create_attachment(&app, &owner, &doc, "a.bin", "application/octet-stream", 600)
                    .await;
            assert_eq!(status, StatusCode::CREATED, "{first}");
            // pending uploads count
            let (status, problem) =
                create_attachment(&app, &owner, &doc, "b.bin", "application/octet-stream", 500)
                    .await;
            assert_problem(
                status,
                &problem,
                StatusCode::PAYLOAD_TOO_LARGE,
                "quota_exceeded",
            );
            assert_eq!(
                (&problem["quota"], &problem["used"], &problem["requested"]),
                (&json!(1000), &json!(600), &json!(500)),
                "{problem}"
            );
            assert!(
                problem["detail"].as_str().unwrap().contains("quota"),
                "{problem}"
            );
            // deleting frees the space
            let id = first["id"].as_str().unwrap();
            let (status, _) = app
                .call(&owner, Method::DELETE, &format!("/attachments/{id}"), None)
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            let (status, second) =
                create_attachment(&app, &owner, &doc, "b.bin", "application/octet-stream", 500)
                    .await;
            assert_eq!(status, StatusCode::CREATED, "{second}");
        },
    )
    .await;
}

#[tokio::test]
async fn files_follow_their_document_to_the_trash_and_out_of_existence() {
    on_every_store(defaults, |app| async move {
        let (owner, ws, doc) = setup(&app).await;
        let kept = attach(&app, &owner, &doc, "kept.txt", b"kept").await;
        let kept_id = kept["id"].as_str().unwrap().to_owned();
        let gone = attach(&app, &owner, &doc, "gone.txt", b"gone").await;
        let gone_id = gone["id"].as_str().unwrap().to_owned();
        app.call(
            &owner,
            Method::DELETE,
            &format!("/attachments/{gone_id}"),
            None,
        )
        .await;
        let (status, context) = app
            .call(
                &owner,
                Method::POST,
                &format!("/workspaces/{ws}/context-files"),
                Some(&json!({"name": "doc context", "document_id": doc, "content": "terse"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{context}");
        let context_id = context["id"].as_str().unwrap().to_owned();
        let link = app
            .read(&owner, &format!("/attachments/{kept_id}?redirect=false"))
            .await;
        let url = link["url"].as_str().unwrap().to_owned();

        // to the trash: the files go with the document
        let (status, _) = app
            .call(&owner, Method::DELETE, &format!("/documents/{doc}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = app
            .call(
                &owner,
                Method::GET,
                &format!("/attachments/{kept_id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            items(
                &app.read(&owner, &format!("/documents/{doc}/attachments"))
                    .await
            )
            .is_empty()
        );
        let (status, _) = app
            .call(
                &owner,
                Method::GET,
                &format!("/context-files/{context_id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, problem) =
            create_attachment(&app, &owner, &doc, "late.txt", "text/plain", 1).await;
        assert_problem(status, &problem, StatusCode::CONFLICT, "document_in_trash");

        // and back, but a deleted attachment stays deleted
        let (status, _) = app
            .call(
                &owner,
                Method::POST,
                &format!("/documents/{doc}/restore"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            ids(&app
                .read(&owner, &format!("/documents/{doc}/attachments"))
                .await),
            std::slice::from_ref(&kept_id)
        );
        assert_eq!(download(&app, &owner, &kept_id).await.2, b"kept");
        assert_eq!(
            app.read(&owner, &format!("/context-files/{context_id}"))
                .await["content"],
            "terse"
        );

        // a permanent delete removes rows and objects
        app.call(&owner, Method::DELETE, &format!("/documents/{doc}"), None)
            .await;
        let (status, body) = app
            .call(
                &owner,
                Method::DELETE,
                &format!("/documents/{doc}?permanent=true"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (status, _) = app
            .call(
                &owner,
                Method::GET,
                &format!("/attachments/{kept_id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(fetch(&app, &url).await.0, StatusCode::NOT_FOUND);
        let (status, _) = app
            .call(
                &owner,
                Method::GET,
                &format!("/context-files/{context_id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    })
    .await;
}

#[tokio::test]
async fn context_files_inline_and_uploaded() {
    on_every_store(defaults, |app| async move {
        let (owner, ws, doc) = setup(&app).await;
        let viewer = app.user("viewer").await;
        app.add_member(&owner, &ws, &viewer, "viewer").await;
        let outsider = app.user("outsider").await;
        let base = format!("/workspaces/{ws}/context-files");

        let (status, headers, created) = send_full(app.authed(
            &owner,
            Method::POST,
            &base,
            Some(&json!({"name": "Style guide", "content": "Write short sentences."})),
        ))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        let etag = header(&headers, "etag").unwrap();
        assert_eq!(created["storage"], "inline");
        assert_eq!(created["version"], 1);
        assert_eq!(created["content_hash"], sha256_hex(b"Write short sentences."));

        // reads: viewers yes, outsiders 404
        let got = app.read(&viewer, &format!("/context-files/{id}")).await;
        assert_eq!(got["content"], "Write short sentences.");
        let list = app.read(&viewer, &base).await;
        assert_eq!(ids(&list), std::slice::from_ref(&id));
        assert!(items(&list)[0].get("content").is_none(), "lists carry no text");
        for (method, path) in [
            (Method::GET, base.clone()),
            (Method::POST, base.clone()),
            (Method::GET, format!("/context-files/{id}")),
            (Method::PUT, format!("/context-files/{id}")),
            (Method::DELETE, format!("/context-files/{id}")),
        ] {
            let body = json!({"name": "x", "content": "y"});
            let (status, _) = app.call(&outsider, method.clone(), &path, Some(&body)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        }
        let (status, problem) = app
            .call(&viewer, Method::POST, &base, Some(&json!({"name": "x", "content": "y"})))
            .await;
        assert_problem(status, &problem, StatusCode::FORBIDDEN, "forbidden");

        // updates need If-Match
        let path = format!("/context-files/{id}");
        let change = json!({"content": "Write shorter sentences."});
        let (status, problem) = app.call(&owner, Method::PUT, &path, Some(&change)).await;
        assert_problem(status, &problem, StatusCode::PRECONDITION_REQUIRED, "precondition_required");
        let (status, problem) = send(
            app.authed(&owner, Method::PUT, &path, Some(&change))
                .header("if-match", "\"0-stale\""),
        )
        .await;
        assert_problem(status, &problem, StatusCode::PRECONDITION_FAILED, "version_conflict");
        let (status, problem) = send(
            app.authed(&viewer, Method::PUT, &path, Some(&change))
                .header("if-match", &etag),
        )
        .await;
        assert_problem(status, &problem, StatusCode::FORBIDDEN, "forbidden");
        let (status, headers, updated) = send_full(
            app.authed(&owner, Method::PUT, &path, Some(&change))
                .header("if-match", &etag),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        assert_eq!(updated["version"], 2);
        assert_ne!(header(&headers, "etag").unwrap(), etag);

        // limits: inline text ≤ 256 KiB
        let big = "x".repeat(256 * 1024 + 1);
        let (status, problem) = app
            .call(&owner, Method::POST, &base, Some(&json!({"name": "big", "content": big})))
            .await;
        assert_problem(status, &problem, StatusCode::PAYLOAD_TOO_LARGE, "context_file_too_large");

        // larger files: the attachments' upload flow, scoped to a document
        let bytes = vec![b'z'; 300 * 1024];
        let (status, pending) = app
            .call(
                &owner,
                Method::POST,
                &base,
                Some(&json!({"name": "corpus.txt", "document_id": doc, "content_type": "text/plain", "size": bytes.len()})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{pending}");
        assert_eq!((&pending["status"], &pending["storage"]), (&json!("pending"), &json!("blob")));
        let big_id = pending["id"].as_str().unwrap().to_owned();
        let status = upload(&app, &pending, Some("text/plain"), bytes.clone()).await;
        assert!(status.is_success(), "{status}");
        let (status, ready) = app
            .call(&owner, Method::POST, &format!("/context-files/{big_id}/complete"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{ready}");
        assert_eq!(ready["status"], "ready");
        let got = app.read(&viewer, &format!("/context-files/{big_id}")).await;
        let (status, _, fetched) = fetch(&app, got["download"]["url"].as_str().unwrap()).await;
        assert_eq!((status, fetched.len()), (StatusCode::OK, bytes.len()));
        let of_doc = app.read(&owner, &format!("{base}?document_id={doc}")).await;
        assert_eq!(ids(&of_doc), std::slice::from_ref(&big_id));

        let (status, _) = app.call(&owner, Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, problem) = app.call(&owner, Method::GET, &path, None).await;
        assert_problem(status, &problem, StatusCode::NOT_FOUND, "context_file_not_found");
        assert_eq!(ids(&app.read(&owner, &base).await), [big_id]);
    })
    .await;
}

#[tokio::test]
async fn uploads_never_completed_are_swept() {
    on_every_store(
        |s: &mut Settings| {
            s.upload_url_ttl_secs = 1;
            s.upload_sweep_grace_secs = 0;
            s.upload_sweep_interval_secs = 1;
        },
        |app| async move {
            let (owner, _, doc) = setup(&app).await;
            let (status, created) =
                create_attachment(&app, &owner, &doc, "never.txt", "text/plain", 3).await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            let id = created["id"].as_str().unwrap().to_owned();
            let mut swept = false;
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let list = app
                    .read(&owner, &format!("/documents/{doc}/attachments"))
                    .await;
                if items(&list).is_empty() {
                    swept = true;
                    break;
                }
            }
            assert!(swept, "the pending upload was never swept");
            let (status, problem) = app
                .call(
                    &owner,
                    Method::POST,
                    &format!("/attachments/{id}/complete"),
                    None,
                )
                .await;
            assert_problem(
                status,
                &problem,
                StatusCode::NOT_FOUND,
                "attachment_not_found",
            );
        },
    )
    .await;
}
