//! Operations endpoints and response conventions: health, readiness, metrics, OpenAPI, docs,
//! request ids and problem content types.

use mdcreator_tests::{header, on_every_backend, send_full};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn health_readiness_metrics_openapi_and_docs() {
    on_every_backend(|app| async move {
        let (status, _, body) = send_full(app.client.get(app.url("/healthz"))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        let (status, _, body) = send_full(app.client.get(app.url("/readyz"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "ready");

        // Some traffic first, so that the request counter has samples.
        let (status, _, _) = send_full(app.api(Method::GET, "/users/me")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let response = app.client.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            header(response.headers(), "content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        let metrics = response.text().await.unwrap();
        assert!(
            metrics.contains("mdcreator_http_requests_total"),
            "{metrics}"
        );
        assert!(
            metrics.contains("mdcreator_http_requests_duration_seconds"),
            "{metrics}"
        );

        let (status, _, spec) = send_full(app.client.get(app.url("/openapi.json"))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            spec["openapi"].as_str().unwrap().starts_with("3."),
            "{}",
            spec["openapi"]
        );
        let paths = spec["paths"].as_object().expect("paths");
        for path in [
            "/api/v1/workspaces",
            "/api/v1/documents/{id}/content",
            "/api/v1/documents/{id}",
            "/api/v1/workspaces/{ws}/documents",
            "/api/v1/auth/login",
        ] {
            assert!(
                paths.contains_key(path),
                "{path} missing from {:?}",
                paths.keys().collect::<Vec<_>>()
            );
        }
        let content = &paths["/api/v1/documents/{id}/content"];
        assert!(
            content.get("get").is_some() && content.get("put").is_some(),
            "{content}"
        );
        assert!(spec["components"]["schemas"]["Problem"].is_object());

        let response = app.client.get(app.url("/docs/")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            header(response.headers(), "content-type")
                .unwrap()
                .starts_with("text/html")
        );
        let html = response.text().await.unwrap();
        assert!(html.to_lowercase().contains("<html"), "{html}");
    })
    .await;
}

#[tokio::test]
async fn every_response_has_a_request_id_and_problems_their_content_type() {
    on_every_backend(|app| async move {
        let user = app.user("ops").await;
        let mut seen = Vec::new();
        let requests = vec![
            (
                "health",
                app.client.get(app.url("/healthz")),
                StatusCode::OK,
            ),
            (
                "metrics",
                app.client.get(app.url("/metrics")),
                StatusCode::OK,
            ),
            (
                "openapi",
                app.client.get(app.url("/openapi.json")),
                StatusCode::OK,
            ),
            (
                "jwks",
                app.client.get(app.url("/.well-known/jwks.json")),
                StatusCode::OK,
            ),
            (
                "me",
                app.api(Method::GET, "/users/me").bearer_auth(&user.token),
                StatusCode::OK,
            ),
            (
                "create",
                app.api(Method::POST, "/workspaces")
                    .bearer_auth(&user.token)
                    .json(&json!({"name": "Ops"})),
                StatusCode::CREATED,
            ),
            (
                "no token",
                app.api(Method::GET, "/workspaces"),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "unknown route",
                app.client.get(app.url("/api/v1/nothing-here")),
                StatusCode::NOT_FOUND,
            ),
            (
                "wrong method",
                app.client.delete(app.url("/api/v1/workspaces")),
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (
                "not found",
                app.api(Method::GET, &format!("/documents/{}", uuid::Uuid::new_v4()))
                    .bearer_auth(&user.token),
                StatusCode::NOT_FOUND,
            ),
            (
                "validation",
                app.api(Method::POST, "/workspaces")
                    .bearer_auth(&user.token)
                    .json(&json!({"name": ""})),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "malformed",
                app.api(Method::POST, "/workspaces")
                    .bearer_auth(&user.token)
                    .header("content-type", "application/json")
                    .body("{"),
                StatusCode::BAD_REQUEST,
            ),
            (
                "bad id",
                app.api(Method::GET, "/workspaces/nope")
                    .bearer_auth(&user.token),
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (what, request, expected) in requests {
            let (status, headers, body) = send_full(request).await;
            assert_eq!(status, expected, "{what}: {body}");
            let id = header(&headers, "x-request-id")
                .unwrap_or_else(|| panic!("{what}: no x-request-id"));
            assert!(!id.is_empty());
            assert!(!seen.contains(&id), "{what}: request ids are unique");
            seen.push(id);
            let content_type = header(&headers, "content-type").unwrap_or_default();
            if status.is_client_error() {
                assert!(
                    content_type.starts_with("application/problem+json"),
                    "{what}: {content_type}"
                );
                assert_eq!(body["status"], status.as_u16(), "{what}: {body}");
                for field in ["type", "title", "detail", "code"] {
                    assert!(body[field].is_string(), "{what}: {field} in {body}");
                }
                let text = body.to_string();
                assert!(
                    !text.contains("panicked") && !text.contains("src/"),
                    "{what}: {text}"
                );
            } else {
                assert!(
                    !content_type.starts_with("application/problem+json"),
                    "{what}: {content_type}"
                );
            }
        }
    })
    .await;
}
