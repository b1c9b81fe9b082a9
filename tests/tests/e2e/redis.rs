//! The server with Redis configured (`REDIS_URL` set for this run): `/readyz` covers it, and a
//! Redis that cannot be reached neither stops the server from starting nor from serving.

use mdcreator_tests::{Backend, TestApp, send_full};
use reqwest::StatusCode;

fn redis_url() -> Option<String> {
    std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty())
}

#[tokio::test]
async fn readiness_covers_redis_when_configured() {
    let Some(url) = redis_url() else {
        return;
    };
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.redis_url = Some(url)).await;
    let (status, _, body) = send_full(app.client.get(app.url("/readyz"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.cleanup_handle().run().await;
}

#[tokio::test]
async fn an_unreachable_redis_makes_the_instance_unready_but_not_down() {
    if redis_url().is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.redis_url = Some(format!("redis://127.0.0.1:{port}"));
    })
    .await;
    let (status, _, body) = send_full(app.client.get(app.url("/readyz"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["reason"], "redis unreachable", "{body}");

    // Rate limits let requests through, so signing up and logging in still work.
    let user = app.user("offline").await;
    let (status, _, body) = send_full(
        app.api(reqwest::Method::GET, "/users/me")
            .bearer_auth(&user.token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.cleanup_handle().run().await;
}
