//! Cognito mode end to end, against moto (`MDCREATOR_TEST_MOTO_URL`; skipped with a note when
//! unset): the account flow through the server's own endpoints, users provisioned on their
//! first call, personal API tokens, no JWKS of the server's own, and the forged-token battery.

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::Credentials;
use aws_sdk_cognitoidentityprovider::types::{
    AttributeType, AuthFlowType, ExplicitAuthFlowsType, PasswordPolicyType, UserPoolPolicyType,
    UsernameAttributeType, VerifiedAttributeType,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mdcreator_tests::{TestApp, assert_problem, header, on_every_backend_with, send, send_full};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const REGION: &str = "us-east-1";
const PASSWORD: &str = "correct horse battery staple";

fn moto_url(test: &str) -> Option<String> {
    match std::env::var("MDCREATOR_TEST_MOTO_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_owned()),
        _ => {
            eprintln!(
                "note: {test} skipped: set MDCREATOR_TEST_MOTO_URL (e.g. http://127.0.0.1:5000, \
                 `moto_server -H 127.0.0.1 -p 5000`) to run Cognito mode end to end"
            );
            None
        }
    }
}

/// A user pool and app client in moto, made for one test.
#[derive(Debug, Clone)]
struct Pool {
    moto: String,
    id: String,
    client_id: String,
}

impl Pool {
    async fn admin(moto: &str) -> Client {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .endpoint_url(moto)
            .load()
            .await;
        Client::new(&config)
    }

    async fn create(moto: &str) -> Pool {
        let admin = Self::admin(moto).await;
        let pool = admin
            .create_user_pool()
            .pool_name(format!("e2e-{}", uuid::Uuid::new_v4().simple()))
            .username_attributes(UsernameAttributeType::Email)
            .auto_verified_attributes(VerifiedAttributeType::Email)
            .policies(
                UserPoolPolicyType::builder()
                    .password_policy(
                        PasswordPolicyType::builder()
                            .minimum_length(8)
                            .require_uppercase(false)
                            .require_lowercase(false)
                            .require_numbers(false)
                            .require_symbols(false)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("CreateUserPool");
        let id = pool.user_pool().and_then(|p| p.id()).unwrap().to_owned();
        let client_id = Self::client(&admin, &id).await;
        Pool {
            moto: moto.to_owned(),
            id,
            client_id,
        }
    }

    async fn client(admin: &Client, pool: &str) -> String {
        admin
            .create_user_pool_client()
            .user_pool_id(pool)
            .client_name("e2e")
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
            .send()
            .await
            .expect("CreateUserPoolClient")
            .user_pool_client()
            .and_then(|c| c.client_id())
            .unwrap()
            .to_owned()
    }

    fn configure(&self, settings: &mut mdcreator_server::Settings) {
        settings.cognito_user_pool_id = Some(self.id.clone());
        settings.cognito_client_id = Some(self.client_id.clone());
        settings.aws_region = Some(REGION.to_owned());
        settings.cognito_endpoint_url = Some(self.moto.clone());
        // moto's tokens name AWS's issuer (derived), but moto serves the keys.
        settings.cognito_jwks_url =
            Some(format!("{}/{}/.well-known/jwks.json", self.moto, self.id));
    }

    /// Signs a confirmed user up directly in the pool (not through the server) and logs in
    /// with `client_id`; the token set.
    async fn user_outside_the_server(&self, client_id: &str, email: &str, name: &str) -> Value {
        let admin = Self::admin(&self.moto).await;
        admin
            .sign_up()
            .client_id(client_id)
            .username(email)
            .password(PASSWORD)
            .user_attributes(
                AttributeType::builder()
                    .name("email")
                    .value(email)
                    .build()
                    .unwrap(),
            )
            .user_attributes(
                AttributeType::builder()
                    .name("name")
                    .value(name)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("SignUp");
        admin
            .admin_confirm_sign_up()
            .user_pool_id(&self.id)
            .username(email)
            .send()
            .await
            .expect("AdminConfirmSignUp");
        self.login_outside_the_server(client_id, email).await
    }

    async fn login_outside_the_server(&self, client_id: &str, email: &str) -> Value {
        let admin = Self::admin(&self.moto).await;
        let out = admin
            .initiate_auth()
            .client_id(client_id)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", email)
            .auth_parameters("PASSWORD", PASSWORD)
            .send()
            .await
            .expect("InitiateAuth");
        let result = out.authentication_result().unwrap();
        json!({
            "access_token": result.access_token(),
            "id_token": result.id_token(),
        })
    }
}

fn new_email(name: &str) -> String {
    format!("{name}-{}@Example.com", uuid::Uuid::new_v4().simple())
}

async fn me(app: &TestApp, token: &str) -> (StatusCode, Value) {
    send(app.api(Method::GET, "/users/me").bearer_auth(token)).await
}

async fn login(app: &TestApp, email: &str, password: &str) -> (StatusCode, Value) {
    send(
        app.api(Method::POST, "/auth/login")
            .json(&json!({"email": email, "password": password})),
    )
    .await
}

/// Signs up, confirms and logs in through the server; the token response.
async fn confirmed_user(app: &TestApp, email: &str, name: &str) -> Value {
    let (status, body) = send(
        app.api(Method::POST, "/auth/signup")
            .json(&json!({"email": email, "password": PASSWORD, "display_name": name})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = send(
        app.api(Method::POST, "/auth/confirm")
            .json(&json!({"email": email, "code": "123456"})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, tokens) = login(app, email, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

#[tokio::test]
async fn signup_confirm_login_me_refresh_logout_and_login_again() {
    let Some(moto) = moto_url("signup_confirm_login_me_refresh_logout_and_login_again") else {
        return;
    };
    let pool = Pool::create(&moto).await;
    let configured = pool.clone();
    on_every_backend_with(
        move |s| configured.configure(s),
        |app| async move {
            let email = new_email("ada");
            let (status, body) = send(app.api(Method::POST, "/auth/signup").json(
                &json!({"email": email, "password": PASSWORD, "display_name": "Ada"}),
            ))
            .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            assert_eq!(body["confirmed"], false, "Cognito sends a code: {body}");

            let (status, body) = send(app.api(Method::POST, "/auth/signup").json(
                &json!({"email": email.to_uppercase(), "password": PASSWORD, "display_name": "Eve"}),
            ))
            .await;
            assert_problem(status, &body, StatusCode::CONFLICT, "email_taken");

            let (status, body) = login(&app, &email, PASSWORD).await;
            assert_problem(status, &body, StatusCode::FORBIDDEN, "account_not_confirmed");
            let (status, body) = send(
                app.api(Method::POST, "/auth/confirm")
                    .json(&json!({"email": email, "code": "123456"})),
            )
            .await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

            let (status, body) = login(&app, &email, "not the password").await;
            assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid_credentials");

            let (status, headers, tokens) = send_full(
                app.api(Method::POST, "/auth/login")
                    .json(&json!({"email": email, "password": PASSWORD})),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{tokens}");
            assert_eq!(header(&headers, "cache-control").as_deref(), Some("no-store"));
            assert_eq!(tokens["token_type"], "Bearer");
            assert!(tokens["expires_in"].as_u64().unwrap() > 0);
            assert!(tokens["id_token"].is_string(), "{tokens}");
            let access = tokens["access_token"].as_str().unwrap().to_owned();
            let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
            let sub = claims_of(&access)["sub"].as_str().unwrap().to_owned();

            // The user was provisioned from the pool's `sub` and the e-mail.
            let (status, profile) = me(&app, &access).await;
            assert_eq!(status, StatusCode::OK, "{profile}");
            assert_eq!(profile["email"], email.to_lowercase());
            assert_eq!(profile["display_name"], "Ada");
            let user_id = profile["id"].as_str().unwrap().to_owned();
            assert_ne!(user_id, sub, "the server's own id, mapped from the subject");

            // Refresh: a new access token for the same user; no new refresh token.
            let (status, refreshed) = send(
                app.api(Method::POST, "/auth/refresh")
                    .json(&json!({"refresh_token": refresh})),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{refreshed}");
            assert!(refreshed.get("refresh_token").is_none(), "{refreshed}");
            let access2 = refreshed["access_token"].as_str().unwrap().to_owned();
            assert_eq!(claims_of(&access2)["sub"], sub.as_str());
            let (status, again) = me(&app, &access2).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(again["id"], user_id.as_str());

            // Logout signs out globally: the refresh token is dead.
            let (status, body) =
                send(app.api(Method::POST, "/auth/logout").bearer_auth(&access2)).await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
            let (status, body) = send(
                app.api(Method::POST, "/auth/refresh")
                    .json(&json!({"refresh_token": refresh})),
            )
            .await;
            assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid_refresh_token");

            // Logging in again works, as the same user.
            let (status, tokens) = login(&app, &email, PASSWORD).await;
            assert_eq!(status, StatusCode::OK, "{tokens}");
            let (status, again) = me(&app, tokens["access_token"].as_str().unwrap()).await;
            assert_eq!(status, StatusCode::OK, "{again}");
            assert_eq!(again["id"], user_id.as_str());

            // Password reset requests never tell whether the account exists.
            for address in [email.clone(), new_email("nobody")] {
                let (status, body) = send(
                    app.api(Method::POST, "/auth/password/forgot")
                        .json(&json!({"email": address})),
                )
                .await;
                assert_eq!(status, StatusCode::ACCEPTED, "{address}: {body}");
            }
        },
    )
    .await;
}

#[tokio::test]
async fn users_made_in_the_pool_are_provisioned_on_their_first_call() {
    let Some(moto) = moto_url("users_made_in_the_pool_are_provisioned_on_their_first_call") else {
        return;
    };
    let pool = Pool::create(&moto).await;
    let configured = pool.clone();
    on_every_backend_with(
        move |s| configured.configure(s),
        move |app| {
            let pool = pool.clone();
            async move {
                let email = new_email("grace").to_lowercase();
                let tokens = pool
                    .user_outside_the_server(&pool.client_id, &email, "Grace Hopper")
                    .await;
                let access = tokens["access_token"].as_str().unwrap();
                let (status, profile) = me(&app, access).await;
                assert_eq!(status, StatusCode::OK, "{profile}");
                assert_eq!(profile["email"], email.as_str());
                assert_eq!(profile["display_name"], "Grace Hopper", "from GetUser");
                // The next call finds the same user.
                let tokens = pool.login_outside_the_server(&pool.client_id, &email).await;
                let (status, again) = me(&app, tokens["access_token"].as_str().unwrap()).await;
                assert_eq!(status, StatusCode::OK);
                assert_eq!(again["id"], profile["id"]);
            }
        },
    )
    .await;
}

#[tokio::test]
async fn personal_api_tokens_work_and_there_is_no_jwks_of_our_own() {
    let Some(moto) = moto_url("personal_api_tokens_work_and_there_is_no_jwks_of_our_own") else {
        return;
    };
    let pool = Pool::create(&moto).await;
    let configured = pool.clone();
    on_every_backend_with(
        move |s| configured.configure(s),
        |app| async move {
            let (status, body) = send(app.client.get(app.url("/.well-known/jwks.json"))).await;
            assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");

            let tokens = confirmed_user(&app, &new_email("ada"), "Ada").await;
            let session = tokens["access_token"].as_str().unwrap().to_owned();
            let (_, me_by_session) = me(&app, &session).await;

            let create = |scope: &'static str| {
                app.api(Method::POST, "/users/me/tokens")
                    .bearer_auth(&session)
                    .json(&json!({"name": format!("script {scope}"), "scope": scope}))
            };
            let (status, read) = send(create("read")).await;
            assert_eq!(status, StatusCode::CREATED, "{read}");
            let read_token = read["token"].as_str().unwrap().to_owned();
            assert!(read_token.starts_with("mdp_"));
            let (status, body) = me(&app, &read_token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["id"], me_by_session["id"]);
            let (status, body) = send(
                app.api(Method::POST, "/workspaces")
                    .bearer_auth(&read_token)
                    .json(&json!({"name": "Nope"})),
            )
            .await;
            assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");

            let (status, rw) = send(create("read_write")).await;
            assert_eq!(status, StatusCode::CREATED, "{rw}");
            let (status, ws) = send(
                app.api(Method::POST, "/workspaces")
                    .bearer_auth(rw["token"].as_str().unwrap())
                    .json(&json!({"name": "Scripted"})),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{ws}");

            // Revoked: refused, while the Cognito session goes on.
            let id = read["id"].as_str().unwrap();
            let (status, _) = send(
                app.api(Method::DELETE, &format!("/users/me/tokens/{id}"))
                    .bearer_auth(&session),
            )
            .await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            let (status, body) = me(&app, &read_token).await;
            assert_problem(status, &body, StatusCode::UNAUTHORIZED, "token_revoked");
            let (status, _) = me(&app, &session).await;
            assert_eq!(status, StatusCode::OK);
        },
    )
    .await;
}

#[tokio::test]
async fn forged_tokens_are_refused_with_precise_codes_in_cognito_mode() {
    let Some(moto) = moto_url("forged_tokens_are_refused_with_precise_codes_in_cognito_mode")
    else {
        return;
    };
    let pool = Pool::create(&moto).await;
    let configured = pool.clone();
    on_every_backend_with(
        move |s| configured.configure(s),
        move |app| {
            let pool = pool.clone();
            async move {
                let email = new_email("victim");
                let tokens = confirmed_user(&app, &email, "Victim").await;
                let real = tokens["access_token"].as_str().unwrap().to_owned();
                let id_token = tokens["id_token"].as_str().unwrap().to_owned();
                let claims = claims_of(&real);
                assert_eq!(claims["token_use"], "access");
                let (status, jwks) = send(
                    app.client
                        .get(format!("{}/{}/.well-known/jwks.json", pool.moto, pool.id)),
                )
                .await;
                assert_eq!(status, StatusCode::OK);
                let jwk = jwks["keys"][0].clone();
                let kid = jwk["kid"].as_str().unwrap().to_owned();
                let (header_part, payload_part, signature_part) = {
                    let mut p = real.split('.');
                    (p.next().unwrap(), p.next().unwrap(), p.next().unwrap())
                };

                let mut forged: Vec<(&str, Option<String>, &str)> = vec![
                    ("no header", None, "token_missing"),
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
                ];

                let none_header = b64(&json!({"alg": "none", "typ": "JWT", "kid": kid}));
                forged.push((
                    "alg none",
                    Some(format!("Bearer {none_header}.{}.", b64(&claims))),
                    "token_algorithm_not_allowed",
                ));
                forged.push((
                    "alg none with the real signature",
                    Some(format!(
                        "Bearer {none_header}.{}.{signature_part}",
                        b64(&claims)
                    )),
                    "token_algorithm_not_allowed",
                ));

                // HS256 keyed with the public key: PEM, DER and the JWK text.
                let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
                let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
                let der = PublicKeyComponents { n, e }
                    .as_der()
                    .unwrap()
                    .as_ref()
                    .to_vec();
                let pem = format!(
                    "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                    STANDARD
                        .encode(&der)
                        .as_bytes()
                        .chunks(64)
                        .map(|c| std::str::from_utf8(c).unwrap())
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                let jwk_text = serde_json::to_vec(&jwk).unwrap();
                for secret in [pem.as_bytes(), der.as_slice(), jwk_text.as_slice()] {
                    let mut h = Header::new(Algorithm::HS256);
                    h.kid = Some(kid.clone());
                    let token =
                        jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(secret))
                            .unwrap();
                    forged.push((
                        "HS256 with the public key",
                        Some(format!("Bearer {token}")),
                        "token_algorithm_not_allowed",
                    ));
                }

                // ES256 under the pool's kid.
                let ec = aws_lc_rs::signature::EcdsaKeyPair::generate(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                )
                .unwrap();
                let mut h = Header::new(Algorithm::ES256);
                h.kid = Some(kid.clone());
                let token = jsonwebtoken::encode(
                    &h,
                    &claims,
                    &EncodingKey::from_ec_der(ec.to_pkcs8v1().unwrap().as_ref()),
                )
                .unwrap();
                forged.push((
                    "ES256",
                    Some(format!("Bearer {token}")),
                    "token_algorithm_not_allowed",
                ));

                // RS256 by a key the pool never published: unknown kid, and the pool's kid.
                let foreign = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
                forged.push((
                    "foreign key, unknown kid",
                    Some(format!(
                        "Bearer {}",
                        rs256(
                            &foreign,
                            &json!({"alg": "RS256", "kid": "not-the-pools"}),
                            &claims
                        )
                    )),
                    "token_key_unknown",
                ));
                forged.push((
                    "foreign key, the pool's kid",
                    Some(format!(
                        "Bearer {}",
                        rs256(&foreign, &json!({"alg": "RS256", "kid": kid}), &claims)
                    )),
                    "token_signature_invalid",
                ));

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

                // Real tokens of the wrong kind, client or pool.
                forged.push((
                    "the ID token",
                    Some(format!("Bearer {id_token}")),
                    "token_use_invalid",
                ));
                let admin = Pool::admin(&pool.moto).await;
                let other_client = Pool::client(&admin, &pool.id).await;
                let other = pool
                    .login_outside_the_server(&other_client, &email.to_lowercase())
                    .await;
                forged.push((
                    "another client's token",
                    Some(format!(
                        "Bearer {}",
                        other["access_token"].as_str().unwrap()
                    )),
                    "token_client_invalid",
                ));
                let other_pool = Pool::create(&pool.moto).await;
                let stranger = other_pool
                    .user_outside_the_server(
                        &other_pool.client_id,
                        &new_email("s").to_lowercase(),
                        "S",
                    )
                    .await;
                forged.push((
                    "another pool's token",
                    Some(format!(
                        "Bearer {}",
                        stranger["access_token"].as_str().unwrap()
                    )),
                    "token_issuer_invalid",
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
                }

                // The real token still works.
                let (status, body) = me(&app, &real).await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
        },
    )
    .await;
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// The claims of a token (its payload, not verified).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn rs256(key: &RsaKeyPair, header: &Value, claims: &Value) -> String {
    let message = format!("{}.{}", b64(header), b64(claims));
    let mut signature = vec![0u8; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        message.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
}
