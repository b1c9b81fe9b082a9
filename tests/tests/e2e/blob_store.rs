//! The blob-store contract: one suite, generic over the `BlobStore` port, with real HTTP to the
//! presigned URLs.
//!
//! - `FsBlobStore`, always, behind the server's own `/api/v1/blobs/…` route;
//! - an S3 server that checks signatures when `MDCREATOR_TEST_S3_URL` is set (s3s-fs, access key
//!   and secret `test`);
//! - moto when `MDCREATOR_TEST_MOTO_URL` is set: moto checks no signatures, so only the flow runs
//!   there.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use reqwest::StatusCode;

use mdcreator_blobs_local::FsBlobStore;
use mdcreator_domain::blobs::{BlobKey, BlobStore, PresignedRequest, UploadSpec};
use mdcreator_domain::{AttachmentId, DocumentId, WorkspaceId};
use mdcreator_s3::{S3BlobStore, S3Settings};
use mdcreator_server::routes::blobs::{self, LocalBlobs};

struct Target {
    name: &'static str,
    store: Arc<dyn BlobStore>,
    /// Whether the server checks signatures, sizes and expiry (moto does not).
    enforces: bool,
    server: Option<actix_web::dev::ServerHandle>,
    _dir: Option<tempfile::TempDir>,
}

async fn fs_target() -> Target {
    mdcreator_server::startup::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let store = Arc::new(
        FsBlobStore::open(
            dir.path().join("blobs"),
            &format!("http://{address}/api/v1/blobs"),
            None,
        )
        .unwrap(),
    );
    let data = web::Data::new(LocalBlobs(store.clone()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .service(web::scope("/api/v1").configure(blobs::configure))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Target {
        name: "fs",
        store,
        enforces: true,
        server: Some(handle),
        _dir: Some(dir),
    }
}

async fn s3_target(name: &'static str, url: &str, enforces: bool) -> Target {
    mdcreator_server::startup::install_crypto_provider();
    let store = S3BlobStore::connect(&S3Settings {
        bucket: format!("mdc-contract-{}", uuid::Uuid::new_v4().simple()),
        region: Some("us-east-1".into()),
        endpoint_url: Some(url.to_owned()),
        force_path_style: true,
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        ..S3Settings::default()
    })
    .await
    .unwrap();
    store.ensure_bucket().await.expect("create the test bucket");
    Target {
        name,
        store: Arc::new(store),
        enforces,
        server: None,
        _dir: None,
    }
}

/// Every store this run covers.
async fn targets() -> Vec<Target> {
    let mut targets = vec![fs_target().await];
    if let Some(url) = env("MDCREATOR_TEST_S3_URL") {
        targets.push(s3_target("s3s-fs", &url, true).await);
    }
    if let Some(url) = env("MDCREATOR_TEST_MOTO_URL") {
        targets.push(s3_target("moto", &url, false).await);
    }
    targets
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn new_key() -> BlobKey {
    BlobKey::attachment(WorkspaceId::new(), DocumentId::new(), AttachmentId::new())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Sends a presigned upload the way a client would: its method, its headers (the length comes
/// from the body), the bytes.
async fn send_upload(
    request: &PresignedRequest,
    url: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> StatusCode {
    let mut builder = client().request(request.method.parse().unwrap(), url);
    for (name, value) in &request.headers {
        match name.to_ascii_lowercase().as_str() {
            "content-length" => {}
            "content-type" => {
                if let Some(t) = content_type {
                    builder = builder.header(name, t);
                }
            }
            _ => builder = builder.header(name, value),
        }
    }
    builder.body(body).send().await.unwrap().status()
}

/// The same URL with one character of its signature changed.
fn tampered(url: &str) -> String {
    let flip = |c: char| if c == 'a' { 'b' } else { 'a' };
    if let Some(i) = url.find("X-Amz-Signature=") {
        let at = i + "X-Amz-Signature=".len() + 3;
        let mut s: Vec<char> = url.chars().collect();
        s[at] = flip(s[at]);
        s.into_iter().collect()
    } else {
        let mut s: Vec<char> = url.chars().collect();
        let at = s.len() - 5;
        s[at] = flip(s[at]);
        s.into_iter().collect()
    }
}

fn spec(size: usize) -> UploadSpec {
    UploadSpec {
        size: size as u64,
        content_type: "text/plain".into(),
    }
}

const TTL: Duration = Duration::from_secs(120);

async fn upload_complete_download(t: &Target) {
    let store = &t.store;
    let key = new_key();
    let bytes = b"hello, attachments\n".to_vec();
    assert_eq!(store.head(&key).await.unwrap(), None, "{}", t.name);

    let put = store
        .presign_upload(&key, &spec(bytes.len()), TTL)
        .await
        .unwrap();
    assert_eq!(put.method, "PUT");
    assert!(put.expires_at > chrono::Utc::now(), "{}", t.name);
    let status = send_upload(&put, &put.url, Some("text/plain"), bytes.clone()).await;
    assert!(status.is_success(), "{}: upload {status}", t.name);

    let meta = store.head(&key).await.unwrap().expect("stored");
    assert_eq!(meta.size, bytes.len() as u64, "{}", t.name);
    assert_eq!(
        meta.content_type.as_deref(),
        Some("text/plain"),
        "{}",
        t.name
    );

    let get = store
        .presign_download(&key, "résumé 1.txt", TTL)
        .await
        .unwrap();
    let response = client().get(&get.url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", t.name);
    let disposition = response
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        disposition.starts_with("attachment")
            && disposition.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%201.txt"),
        "{}: {disposition}",
        t.name
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());

    store.delete(&key).await.unwrap();
    store.delete(&key).await.unwrap();
    assert_eq!(store.head(&key).await.unwrap(), None, "{}", t.name);
}

async fn put_head_delete(t: &Target) {
    let key = new_key();
    t.store
        .put(&key, b"{}".to_vec(), "application/json")
        .await
        .unwrap();
    let meta = t.store.head(&key).await.unwrap().unwrap();
    assert_eq!(meta.size, 2);
    assert_eq!(meta.content_type.as_deref(), Some("application/json"));
    // a put replaces
    t.store
        .put(&key, b"[1]".to_vec(), "application/json")
        .await
        .unwrap();
    assert_eq!(t.store.head(&key).await.unwrap().unwrap().size, 3);
    t.store.delete(&key).await.unwrap();
    assert_eq!(t.store.head(&key).await.unwrap(), None);
}

async fn refusals(t: &Target) {
    let body = b"0123456789".to_vec();

    // larger than declared
    let key = new_key();
    let put = t.store.presign_upload(&key, &spec(10), TTL).await.unwrap();
    let mut bigger = body.clone();
    bigger.push(b'!');
    let status = send_upload(&put, &put.url, Some("text/plain"), bigger).await;
    assert!(
        status.is_client_error(),
        "{}: bigger upload got {status}",
        t.name
    );
    assert_eq!(t.store.head(&key).await.unwrap(), None, "{}", t.name);

    // another content type
    let status = send_upload(&put, &put.url, Some("text/html"), body.clone()).await;
    assert!(
        status.is_client_error(),
        "{}: wrong type got {status}",
        t.name
    );
    assert_eq!(t.store.head(&key).await.unwrap(), None, "{}", t.name);

    // a tampered URL
    let status = send_upload(&put, &tampered(&put.url), Some("text/plain"), body.clone()).await;
    assert!(
        status.is_client_error(),
        "{}: tampered upload got {status}",
        t.name
    );
    assert_eq!(t.store.head(&key).await.unwrap(), None, "{}", t.name);

    // the untouched URL still works, once
    let status = send_upload(&put, &put.url, Some("text/plain"), body.clone()).await;
    assert!(status.is_success(), "{}: {status}", t.name);
    let get = t.store.presign_download(&key, "x.txt", TTL).await.unwrap();
    let status = client()
        .get(tampered(&get.url))
        .send()
        .await
        .unwrap()
        .status();
    assert!(
        status.is_client_error(),
        "{}: tampered download got {status}",
        t.name
    );

    // expired URLs
    let short = Duration::from_secs(1);
    let put = t
        .store
        .presign_upload(&new_key(), &spec(10), short)
        .await
        .unwrap();
    let get = t
        .store
        .presign_download(&key, "x.txt", short)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let status = send_upload(&put, &put.url, Some("text/plain"), body.clone()).await;
    assert!(
        status.is_client_error(),
        "{}: expired upload got {status}",
        t.name
    );
    let status = client().get(&get.url).send().await.unwrap().status();
    assert!(
        status.is_client_error(),
        "{}: expired download got {status}",
        t.name
    );
    t.store.delete(&key).await.unwrap();
}

#[tokio::test]
async fn every_blob_store_keeps_the_contract() {
    for t in targets().await {
        eprintln!("blob store contract: {}", t.name);
        upload_complete_download(&t).await;
        put_head_delete(&t).await;
        if t.enforces {
            refusals(&t).await;
        }
        if let Some(server) = &t.server {
            server.stop(false).await;
        }
    }
}
