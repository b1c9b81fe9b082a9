//! Several instances on one database accept each other's tokens: the signing key lives in the
//! database, so a second instance loads the first one's key instead of making its own.

use reqwest::StatusCode;
use serde_json::json;

use mdcreator_server::{Application, Settings};

async fn start(settings: Settings) -> (String, actix_web::dev::ServerHandle) {
    let app = Application::build(settings).await.expect("server builds");
    let base = format!("http://{}", app.address());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    (base, handle)
}

#[tokio::test]
async fn a_token_from_one_instance_works_on_another_sharing_the_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.path().to_path_buf(),
        // Instances behind one load balancer share the public URL, hence the issuer.
        public_url: Some("https://mdcreator.test".into()),
        ..Settings::default()
    };
    let (a, stop_a) = start(settings.clone()).await;
    let (b, stop_b) = start(settings).await;
    let client = reqwest::Client::new();

    let jwks_a: serde_json::Value = client
        .get(format!("{a}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks_b: serde_json::Value = client
        .get(format!("{b}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks_a, jwks_b, "both instances publish the same keys");

    let r = client
        .post(format!("{a}/api/v1/auth/signup"))
        .json(&json!({"email": "twin@example.com", "password": "correct horse battery", "display_name": "Twin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let tokens: serde_json::Value = client
        .post(format!("{a}/api/v1/auth/login"))
        .json(&json!({"email": "twin@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().expect("access token");

    let r = client
        .get(format!("{b}/api/v1/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let me: serde_json::Value = r.json().await.unwrap();
    assert_eq!(me["email"], "twin@example.com");

    // And a refresh token issued by A rotates on B.
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");
    let r = client
        .post(format!("{b}/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    stop_a.stop(false).await;
    stop_b.stop(false).await;
}
