//! Personal API tokens: shown once, scoped, revocable, unable to mint more tokens.

use mdcreator_tests::{assert_problem, on_every_backend, send};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn personal_api_tokens_are_scoped_listed_without_secrets_and_revocable() {
    on_every_backend(|app| async move {
        let ada = app.user("ada").await;
        let create = |scope: &'static str| {
            app.api(Method::POST, "/users/me/tokens")
                .bearer_auth(&ada.token)
                .json(&json!({"name": format!("script {scope}"), "scope": scope, "expires_in_days": 30}))
        };
        let (status, read) = send(create("read")).await;
        assert_eq!(status, StatusCode::CREATED, "{read}");
        let read_token = read["token"].as_str().unwrap().to_owned();
        assert!(read_token.starts_with("mdp_"));
        let (_, rw) = send(create("read_write")).await;
        let rw_token = rw["token"].as_str().unwrap().to_owned();

        // A read token reads, and gets 403 on any write.
        let (status, me) = send(app.api(Method::GET, "/users/me").bearer_auth(&read_token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["id"], ada.id.as_str());
        let (status, body) = send(
            app.api(Method::POST, "/workspaces").bearer_auth(&read_token).json(&json!({"name": "Nope"})),
        )
        .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = send(
            app.api(Method::PATCH, "/users/me").bearer_auth(&read_token).json(&json!({"display_name": "X"})),
        )
        .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");

        // A read-write token writes.
        let (status, ws) = send(
            app.api(Method::POST, "/workspaces").bearer_auth(&rw_token).json(&json!({"name": "Scripted"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{ws}");

        // Tokens cannot create tokens.
        let (status, body) = send(
            app.api(Method::POST, "/users/me/tokens")
                .bearer_auth(&rw_token)
                .json(&json!({"name": "child", "scope": "read"})),
        )
        .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN, "session_required");

        // Lists never show the secret, and record use.
        let (status, list) = send(app.api(Method::GET, "/users/me/tokens").bearer_auth(&ada.token)).await;
        assert_eq!(status, StatusCode::OK);
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert!(!list.to_string().contains(&read_token[4..]), "secret leaked: {list}");
        let used = items.iter().find(|t| t["id"] == read["id"]).unwrap();
        assert!(used["last_used_at"].is_string(), "{used}");
        assert_eq!(used["prefix"].as_str().unwrap(), &read_token[..10]);

        // Revoked → 401 token_revoked, and gone from the list.
        let id = read["id"].as_str().unwrap();
        let (status, _) = send(app.api(Method::DELETE, &format!("/users/me/tokens/{id}")).bearer_auth(&ada.token)).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, body) = send(app.api(Method::GET, "/users/me").bearer_auth(&read_token)).await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED, "token_revoked");
        let (status, body) = send(app.api(Method::DELETE, &format!("/users/me/tokens/{id}")).bearer_auth(&ada.token)).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "token_not_found");

        // A made-up token with the right prefix is refused.
        let (status, body) = send(app.api(Method::GET, "/users/me").bearer_auth("mdp_made_up")).await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED, "token_signature_invalid");

        // Bad requests.
        let (status, body) = send(
            app.api(Method::POST, "/users/me/tokens").bearer_auth(&ada.token).json(&json!({"name": "x", "scope": "admin"})),
        )
        .await;
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    })
    .await;
}
