//! Accounts and tokens: signup, login, profile, refresh rotation, logout, rate limits,
//! confirmation mode, password reset, JWKS, and a battery of forged access tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mdcreator_tests::{
    TestApp, User, assert_problem, header, on_every_backend, on_every_backend_with, send, send_full,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn refresh(app: &TestApp, refresh_token: &str) -> (StatusCode, Value) {
    send(
        app.api(Method::POST, "/auth/refresh")
            .json(&json!({"refresh_token": refresh_token})),
    )
    .await
}

async fn me(app: &TestApp, token: &str) -> (StatusCode, Value) {
    send(app.api(Method::GET, "/users/me").bearer_auth(token)).await
}

#[tokio::test]
async fn signup_login_profile_refresh_and_logout() {
    on_every_backend(|app| async move {
        let email = format!("ada-{}@Example.com", uuid::Uuid::new_v4().simple());
        let password = "correct horse battery staple";
        let (status, body) = send(app.api(Method::POST, "/auth/signup").json(
            &json!({"email": email, "password": password, "display_name": "Ada"}),
        ))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["confirmed"], true, "{body}");

        // The same address again, in another case: taken.
        let (status, body) = send(app.api(Method::POST, "/auth/signup").json(
            &json!({"email": email.to_uppercase(), "password": password, "display_name": "Eve"}),
        ))
        .await;
        assert_problem(status, &body, StatusCode::CONFLICT, "email_taken");

        let (status, headers, tokens) = send_full(
            app.api(Method::POST, "/auth/login")
                .json(&json!({"email": email, "password": password})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        assert_eq!(tokens["token_type"], "Bearer");
        assert!(tokens["expires_in"].as_u64().unwrap() > 0, "{tokens}");
        assert_eq!(header(&headers, "cache-control").as_deref(), Some("no-store"));
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

        let (status, profile) = me(&app, &access).await;
        assert_eq!(status, StatusCode::OK, "{profile}");
        assert_eq!(profile["email"], email.to_lowercase());
        assert_eq!(profile["display_name"], "Ada");
        assert!(profile["avatar_url"].is_null());
        let user_id = profile["id"].as_str().unwrap().to_owned();

        let (status, patched) = send(
            app.api(Method::PATCH, "/users/me")
                .bearer_auth(&access)
                .json(&json!({"display_name": "Ada Lovelace", "avatar_url": "https://example.com/ada.png"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{patched}");
        assert_eq!(patched["display_name"], "Ada Lovelace");
        assert_eq!(patched["avatar_url"], "https://example.com/ada.png");
        // Refused: an http avatar; the profile stays as it was.
        let (status, body) = send(
            app.api(Method::PATCH, "/users/me")
                .bearer_auth(&access)
                .json(&json!({"display_name": "Mallory", "avatar_url": "http://example.com/x.png"})),
        )
        .await;
        assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let (_, profile) = me(&app, &access).await;
        assert_eq!(profile["display_name"], "Ada Lovelace");
        assert_eq!(profile["avatar_url"], "https://example.com/ada.png");
        assert_eq!(profile["id"], user_id);

        // Refresh rotates: new tokens, and the old refresh token is dead.
        let (status, rotated) = refresh(&app, &first_refresh).await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        let second_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(second_refresh, first_refresh);
        let (status, again) = me(&app, rotated["access_token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["id"], user_id);
        let (status, body) = refresh(&app, &first_refresh).await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid_refresh_token");
        // Reuse of a rotated token revokes its whole family, the newer token included.
        let (status, body) = refresh(&app, &second_refresh).await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid_refresh_token");

        // A fresh session; logout revokes its refresh token.
        let tokens = app.login(&email, password).await;
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
        let (status, _) = send(app.api(Method::POST, "/auth/logout")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "logout needs a token");
        let (status, body) =
            send(app.api(Method::POST, "/auth/logout").bearer_auth(&access)).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (status, body) = refresh(&app, &refresh_token).await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid_refresh_token");
        let (status, body) = refresh(&app, "mdr_not-a-real-token").await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid_refresh_token");

        // Wrong password.
        let (status, body) = send(
            app.api(Method::POST, "/auth/login")
                .json(&json!({"email": email, "password": "not the password"})),
        )
        .await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid_credentials");

        // Password reset requests never tell whether the account exists.
        for address in [email.clone(), "nobody-here@example.com".to_owned()] {
            let (status, body) = send(
                app.api(Method::POST, "/auth/password/forgot")
                    .json(&json!({"email": address})),
            )
            .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{address}: {body}");
        }
        // A reset with a wrong code changes nothing: the old password still works.
        let (status, body) = send(app.api(Method::POST, "/auth/password/reset").json(
            &json!({"email": email, "code": "abc123", "new_password": "a brand new password"}),
        ))
        .await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST, "code_mismatch");
        app.login(&email, password).await;
    })
    .await;
}

#[tokio::test]
async fn signup_refuses_bad_accounts() {
    on_every_backend(|app| async move {
        for (body, field) in [
            (
                json!({"email": "not-an-email", "password": "long enough pw", "display_name": "A"}),
                "email",
            ),
            (
                json!({"email": "short@example.com", "password": "short", "display_name": "A"}),
                "password",
            ),
            (
                json!({"email": "name@example.com", "password": "long enough pw", "display_name": "a\u{0007}b"}),
                "display_name",
            ),
        ] {
            let (status, problem) = send(app.api(Method::POST, "/auth/signup").json(&body)).await;
            assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        }
        // None of them exists now.
        for email in ["short@example.com", "name@example.com"] {
            let (status, body) = send(
                app.api(Method::POST, "/auth/login")
                    .json(&json!({"email": email, "password": "long enough pw"})),
            )
            .await;
            assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid_credentials");
        }
    })
    .await;
}

/// Waits out the end of the current minute when it is close, so that a burst of requests falls
/// in one fixed rate-limit window.
async fn start_of_a_fresh_window() {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let into_minute = secs % 60.0;
    if into_minute > 45.0 {
        tokio::time::sleep(std::time::Duration::from_secs_f64(60.2 - into_minute)).await;
    }
}

#[tokio::test]
async fn login_attempts_are_rate_limited() {
    on_every_backend(|app| async move {
        start_of_a_fresh_window().await;
        let login = || {
            app.api(Method::POST, "/auth/login")
                .json(&json!({"email": "target@example.com", "password": "guess number n"}))
        };
        for _ in 1..=10 {
            let (status, body) = send(login()).await;
            assert_problem(
                status,
                &body,
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
            );
        }
        let (status, headers, body) = send_full(login()).await;
        assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        let retry_after: u64 = header(&headers, "retry-after")
            .expect("Retry-After")
            .parse()
            .expect("Retry-After in seconds");
        assert!((1..=60).contains(&retry_after), "{retry_after}");
    })
    .await;
}

#[tokio::test]
async fn confirmation_mode_refuses_unconfirmed_logins() {
    on_every_backend_with(
        |settings| settings.require_email_confirmation = true,
        |app| async move {
            let email = format!("new-{}@example.com", uuid::Uuid::new_v4().simple());
            let password = "correct horse battery staple";
            let (status, body) = send(
                app.api(Method::POST, "/auth/signup")
                    .json(&json!({"email": email, "password": password, "display_name": "New"})),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            assert_eq!(body["confirmed"], false, "{body}");

            let login = || {
                app.api(Method::POST, "/auth/login")
                    .json(&json!({"email": email, "password": password}))
            };
            let (status, body) = send(login()).await;
            assert_problem(
                status,
                &body,
                StatusCode::FORBIDDEN,
                "account_not_confirmed",
            );

            // The real code is six digits in the log; letters never match it.
            let (status, body) = send(
                app.api(Method::POST, "/auth/confirm")
                    .json(&json!({"email": email, "code": "abc123"})),
            )
            .await;
            assert_problem(status, &body, StatusCode::BAD_REQUEST, "code_mismatch");
            let (status, body) = send(login()).await;
            assert_problem(
                status,
                &body,
                StatusCode::FORBIDDEN,
                "account_not_confirmed",
            );

            // Resending a code is always accepted, even for unknown addresses.
            for address in [email.as_str(), "unknown@example.com"] {
                let (status, _) = send(
                    app.api(Method::POST, "/auth/resend-code")
                        .json(&json!({"email": address})),
                )
                .await;
                assert_eq!(status, StatusCode::ACCEPTED, "{address}");
            }
        },
    )
    .await;
}

#[tokio::test]
async fn jwks_publishes_an_es256_key() {
    on_every_backend(|app| async move {
        let (status, headers, jwks) =
            send_full(app.client.get(app.url("/.well-known/jwks.json"))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            header(&headers, "content-type")
                .unwrap()
                .starts_with("application/json")
        );
        let keys = jwks["keys"].as_array().expect("keys");
        assert!(!keys.is_empty());
        let key = &keys[0];
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
        assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()));
        for coordinate in ["x", "y"] {
            let bytes = URL_SAFE_NO_PAD
                .decode(key[coordinate].as_str().unwrap())
                .unwrap();
            assert_eq!(bytes.len(), 32, "{coordinate}");
        }
        assert!(key.get("d").is_none(), "no private part in {key}");
    })
    .await;
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// The claims of a real token (its payload, not verified).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn foreign_p256_key() -> EncodingKey {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let pkcs8 = pair.to_pkcs8v1().unwrap();
    EncodingKey::from_ec_der(pkcs8.as_ref())
}

#[tokio::test]
async fn forged_tokens_are_refused_with_precise_codes() {
    on_every_backend(|app| async move {
        let user: User = app.user("victim").await;
        let real = user.token.clone();
        let claims = claims_of(&real);
        assert_eq!(claims["token_use"], "access");
        let (_, jwks) = send(app.client.get(app.url("/.well-known/jwks.json"))).await;
        let jwk = jwks["keys"][0].clone();
        let kid = jwk["kid"].as_str().unwrap().to_owned();
        let (header_part, payload_part, signature_part) = {
            let mut p = real.split('.');
            (p.next().unwrap(), p.next().unwrap(), p.next().unwrap())
        };

        let mut forged: Vec<(&str, Option<String>, &str)> = vec![
            ("no header", None, "token_missing"),
            (
                "basic auth",
                Some(format!("Basic {}", URL_SAFE_NO_PAD.encode("a:b"))),
                "token_malformed",
            ),
            (
                "garbage",
                Some("Bearer not-a-jwt".into()),
                "token_malformed",
            ),
            (
                "two parts",
                Some(format!("Bearer {header_part}.{payload_part}")),
                "token_malformed",
            ),
            (
                "bearer without token",
                Some("Bearer ".into()),
                "token_malformed",
            ),
        ];

        // alg: none, with and without a signature.
        let none_header = b64(&json!({"alg": "none", "typ": "JWT", "kid": kid}));
        let none_payload = b64(&claims);
        forged.push((
            "alg none",
            Some(format!("Bearer {none_header}.{none_payload}.")),
            "token_algorithm_not_allowed",
        ));
        forged.push((
            "alg none with the real signature",
            Some(format!(
                "Bearer {none_header}.{none_payload}.{signature_part}"
            )),
            "token_algorithm_not_allowed",
        ));

        // HS256 keyed with the public key: the JWK text and the raw EC point.
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        let point = [vec![0x04], x, y].concat();
        let jwk_text = serde_json::to_vec(&jwk).unwrap();
        for secret in [point.as_slice(), jwk_text.as_slice()] {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some(kid.clone());
            let token =
                jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(secret)).unwrap();
            forged.push((
                "HS256 with the public key",
                Some(format!("Bearer {token}")),
                "token_algorithm_not_allowed",
            ));
        }

        // ES256 by a key the server never made, under an unknown kid and under the real kid.
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("not-our-key".into());
        let token = jsonwebtoken::encode(&h, &claims, &foreign_p256_key()).unwrap();
        forged.push((
            "foreign key, unknown kid",
            Some(format!("Bearer {token}")),
            "token_key_unknown",
        ));
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.clone());
        let token = jsonwebtoken::encode(&h, &claims, &foreign_p256_key()).unwrap();
        forged.push((
            "foreign key, our kid",
            Some(format!("Bearer {token}")),
            "token_signature_invalid",
        ));

        // The real token with another subject in its payload.
        let mut tampered = claims.clone();
        tampered["sub"] = json!(uuid::Uuid::new_v4().to_string());
        forged.push((
            "tampered payload",
            Some(format!(
                "Bearer {header_part}.{}.{signature_part}",
                b64(&tampered)
            )),
            "token_signature_invalid",
        ));
        // The real token with one character more in its signature.
        forged.push((
            "signature one character longer",
            Some(format!("Bearer {real}A")),
            "token_signature_invalid",
        ));
        // The real token with one signature character changed (the first: a change at the end
        // could leave non-zero padding bits, which is a different error).
        let mut flipped: Vec<char> = signature_part.chars().collect();
        flipped[0] = if flipped[0] == 'A' { 'B' } else { 'A' };
        let flipped: String = flipped.into_iter().collect();
        forged.push((
            "signature character changed",
            Some(format!("Bearer {header_part}.{payload_part}.{flipped}")),
            "token_signature_invalid",
        ));

        for (what, authorization, code) in forged {
            let mut request = app.api(Method::GET, "/users/me");
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let (status, headers, body) = send_full(request).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
            assert_eq!(body["code"], code, "{what}: {body}");
            assert_eq!(
                header(&headers, "www-authenticate").as_deref(),
                Some("Bearer"),
                "{what}"
            );
            assert!(
                header(&headers, "content-type")
                    .unwrap()
                    .starts_with("application/problem+json"),
                "{what}"
            );
        }

        // The real token still works.
        let (status, body) = me(&app, &real).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["id"], user.id);
    })
    .await;
}
