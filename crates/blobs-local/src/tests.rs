use super::*;
use mdcreator_domain::{AttachmentId, DocumentId, WorkspaceId};

fn store(dir: &Path) -> FsBlobStore {
    FsBlobStore::open(dir.join("blobs"), "http://127.0.0.1:1/api/v1/blobs", None).unwrap()
}

fn key() -> BlobKey {
    BlobKey::attachment(WorkspaceId::new(), DocumentId::new(), AttachmentId::new())
}

fn token(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

fn body(
    parts: &[&'static [u8]],
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Unpin {
    futures::stream::iter(
        parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p)))
            .collect::<Vec<_>>(),
    )
}

async fn upload_url(s: &FsBlobStore, key: &BlobKey, size: u64) -> String {
    s.presign_upload(
        key,
        &UploadSpec {
            size,
            content_type: "text/plain".into(),
        },
        Duration::from_secs(60),
    )
    .await
    .unwrap()
    .url
}

#[tokio::test]
async fn signed_urls_refuse_any_change_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let k = key();
    let url = upload_url(&s, &k, 5).await;
    assert!(url.starts_with("http://127.0.0.1:1/api/v1/blobs/"));
    let t = token(&url);
    let grant = s.verify_upload(t, Utc::now()).unwrap();
    assert_eq!((grant.key, grant.size), (k.clone(), 5));

    // the same token is not a download, and vice versa
    assert_eq!(s.verify_download(t, Utc::now()), Err(LinkError::Invalid));
    // expired
    assert_eq!(
        s.verify_upload(t, Utc::now() + chrono::Duration::seconds(61)),
        Err(LinkError::Expired)
    );
    // a flipped character anywhere
    for i in [0, t.len() / 2, t.len() - 1] {
        let mut bytes = t.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            s.verify_upload(&tampered, Utc::now()),
            Err(LinkError::Invalid)
        );
    }
    // claims re-signed by someone else: another store's key
    let other = tempfile::tempdir().unwrap();
    let forged = upload_url(&store(other.path()), &k, 500).await;
    assert_eq!(
        s.verify_upload(token(&forged), Utc::now()),
        Err(LinkError::Invalid)
    );
    assert_eq!(
        s.verify_upload("garbage", Utc::now()),
        Err(LinkError::Invalid)
    );
}

#[tokio::test]
async fn uploads_store_exactly_the_signed_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let k = key();
    let grant = s
        .verify_upload(token(&upload_url(&s, &k, 5).await), Utc::now())
        .unwrap();

    let r = s
        .receive(&grant, Some("text/plain"), None, body(&[b"hel", b"lo!"]))
        .await;
    assert!(
        matches!(r, Err(ReceiveError::TooLarge { limit: 5 })),
        "{r:?}"
    );
    let r = s
        .receive(&grant, Some("text/plain"), Some(6), body(&[b"hello!"]))
        .await;
    assert!(matches!(r, Err(ReceiveError::TooLarge { .. })));
    let r = s
        .receive(&grant, Some("text/plain"), None, body(&[b"hell"]))
        .await;
    assert!(matches!(r, Err(ReceiveError::Incomplete { .. })));
    let r = s
        .receive(&grant, Some("text/html"), None, body(&[b"hello"]))
        .await;
    assert!(matches!(r, Err(ReceiveError::ContentTypeMismatch { .. })));
    let r = s.receive(&grant, None, None, body(&[b"hello"])).await;
    assert!(matches!(r, Err(ReceiveError::ContentTypeMismatch { .. })));
    assert_eq!(
        s.head(&k).await.unwrap(),
        None,
        "refused uploads leave nothing"
    );

    s.receive(&grant, Some("text/plain"), Some(5), body(&[b"he", b"llo"]))
        .await
        .unwrap();
    let meta = s.head(&k).await.unwrap().unwrap();
    assert_eq!(meta.size, 5);
    assert_eq!(meta.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        meta.sha256.as_deref(),
        Some("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
    );
    // no temporary files are left behind
    let tmp: Vec<_> = std::fs::read_dir(dir.path().join("blobs/.tmp"))
        .unwrap()
        .collect();
    assert!(tmp.is_empty());

    s.delete(&k).await.unwrap();
    s.delete(&k).await.unwrap();
    assert_eq!(s.head(&k).await.unwrap(), None);
}

#[tokio::test]
async fn objects_live_under_the_root_at_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let k = key();
    s.put(&k, b"abc".to_vec(), "text/plain").await.unwrap();
    let path = dir.path().join("blobs").join(k.as_str());
    assert_eq!(std::fs::read(&path).unwrap(), b"abc");
    assert!(s.open_download(&k).await.unwrap().is_some());
}

#[test]
fn the_signing_key_survives_a_restart_and_short_secrets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let a = FsBlobStore::open(&root, "http://x", None).unwrap();
    let b = FsBlobStore::open(&root, "http://x", None).unwrap();
    let claims = Claims {
        m: "GET".into(),
        k: key().to_string(),
        e: i64::MAX,
        s: None,
        t: None,
        f: None,
    };
    assert_eq!(a.sign(&claims), b.sign(&claims));
    assert!(FsBlobStore::open(&root, "http://x", Some(b"short")).is_err());
}
