//! Shared by the Cognito adapter tests: a settable clock, RSA keys and a tiny JWKS server for
//! the verifier, and per-test user pools in moto (`MDCREATOR_TEST_MOTO_URL`).

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::Credentials;
use aws_sdk_cognitoidentityprovider::types::{
    ExplicitAuthFlowsType, PasswordPolicyType, UserPoolPolicyType, UsernameAttributeType,
    VerifiedAttributeType,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};
use mdcreator_cognito::CognitoSettings;
use mdcreator_domain::Clock;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub const REGION: &str = "us-east-1";

pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

// ---------------------------------------------------------------- clock

pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    pub fn new() -> Arc<Self> {
        let start = Utc
            .timestamp_opt(Utc::now().timestamp(), 0)
            .single()
            .unwrap();
        Arc::new(Self(Mutex::new(start)))
    }

    pub fn advance(&self, by: TimeDelta) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

// ---------------------------------------------------------------- RSA keys and tokens

pub struct RsaKey {
    pub kid: String,
    pair: RsaKeyPair,
}

impl RsaKey {
    pub fn generate(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            pair: RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"),
        }
    }

    /// The public JWK, as Cognito publishes it.
    pub fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "alg": "RS256",
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            "kid": self.kid,
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "use": "sig",
        })
    }

    /// The public key as SubjectPublicKeyInfo DER and as PEM (what an attacker would use as an
    /// HMAC secret).
    pub fn public_der_and_pem(&self) -> (Vec<u8>, String) {
        let der = self.pair.public_key().as_der().unwrap().as_ref().to_vec();
        let body = STANDARD.encode(&der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        );
        (der, pem)
    }

    /// A compact RS256 JWS of `claims` under `header`.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let message = format!("{}.{}", b64(header), b64(claims));
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .expect("signing");
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// An RS256 token with this key's `kid`.
    pub fn token(&self, claims: &Value) -> String {
        self.sign(&json!({"alg": "RS256", "kid": self.kid}), claims)
    }
}

pub fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

// ---------------------------------------------------------------- JWKS server

/// A JWKS endpoint on a random local port, counting the requests it serves.
pub struct JwksServer {
    pub url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    failing: Arc<AtomicBool>,
    pub requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/pool/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let keys = Arc::new(Mutex::new(keys));
        let failing = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let task = {
            let (keys, failing, requests) = (keys.clone(), failing.clone(), requests.clone());
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    requests.fetch_add(1, Ordering::SeqCst);
                    let body = json!({"keys": *keys.lock().unwrap()}).to_string();
                    let failing = failing.load(Ordering::SeqCst);
                    tokio::spawn(async move {
                        let mut request = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buf[..n]),
                            }
                        }
                        let response = if failing {
                            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                        } else {
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            )
                        };
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    });
                }
            })
        };
        Self {
            url,
            keys,
            failing,
            requests,
            task,
        }
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.keys.lock().unwrap() = keys;
    }

    /// Answers 503 from now on (`false`: serves the keys again).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Stops listening: connections are refused from now on.
    pub fn stop(&self) {
        self.task.abort();
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------- moto

/// The moto server of this run, or `None` (with a note) when `MDCREATOR_TEST_MOTO_URL` is unset.
pub fn moto_url(test: &str) -> Option<String> {
    match std::env::var("MDCREATOR_TEST_MOTO_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_owned()),
        _ => {
            eprintln!(
                "note: {test} skipped: set MDCREATOR_TEST_MOTO_URL (e.g. http://127.0.0.1:5000, \
                 `moto_server -H 127.0.0.1 -p 5000`) to run it against a Cognito emulator"
            );
            None
        }
    }
}

/// An SDK client for setting up pools, with fake credentials (moto checks no signatures).
pub async fn admin_client(moto: &str) -> Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(moto)
        .load()
        .await;
    Client::new(&config)
}

/// A user pool with one app client, made for one test.
#[derive(Debug, Clone)]
pub struct Pool {
    pub id: String,
    pub client_id: String,
    pub client_secret: Option<String>,
}

impl Pool {
    /// A pool where users sign in with their e-mail (`UsernameAttributes: email`; the internal
    /// username is the `sub`), with the domain's password policy (8 characters, no character
    /// classes), and a client allowed password and refresh logins.
    pub async fn create(admin: &Client, with_secret: bool) -> Pool {
        Self::create_with(admin, with_secret, true).await
    }

    /// Like [`Pool::create`], but the e-mail is the username itself (no username attributes).
    pub async fn create_with_plain_usernames(admin: &Client, with_secret: bool) -> Pool {
        Self::create_with(admin, with_secret, false).await
    }

    async fn create_with(admin: &Client, with_secret: bool, email_attribute: bool) -> Pool {
        let request = admin
            .create_user_pool()
            .pool_name(format!("mdc-{}", uuid::Uuid::new_v4().simple()));
        let request = if email_attribute {
            request.username_attributes(UsernameAttributeType::Email)
        } else {
            request
        };
        let pool = request
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
        let id = pool
            .user_pool()
            .and_then(|p| p.id())
            .expect("pool id")
            .to_owned();
        let pool = Pool {
            id,
            client_id: String::new(),
            client_secret: None,
        };
        pool.add_client(admin, with_secret).await
    }

    /// The same pool with another app client.
    pub async fn add_client(&self, admin: &Client, with_secret: bool) -> Pool {
        let client = admin
            .create_user_pool_client()
            .user_pool_id(&self.id)
            .client_name(format!("mdc-{}", uuid::Uuid::new_v4().simple()))
            .generate_secret(with_secret)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
            .send()
            .await
            .expect("CreateUserPoolClient");
        let client = client.user_pool_client().expect("pool client");
        Pool {
            id: self.id.clone(),
            client_id: client.client_id().expect("client id").to_owned(),
            client_secret: client.client_secret().map(str::to_owned),
        }
    }

    /// Settings pointing the adapters at this pool in moto (which issues tokens with AWS's
    /// issuer but serves the keys itself).
    pub fn settings(&self, moto: &str) -> CognitoSettings {
        CognitoSettings {
            client_secret: self.client_secret.clone().map(Into::into),
            region: Some(REGION.to_owned()),
            endpoint_url: Some(moto.to_owned()),
            jwks_url: Some(format!("{moto}/{}/.well-known/jwks.json", self.id)),
            ..CognitoSettings::new(&self.id, &self.client_id)
        }
    }
}
