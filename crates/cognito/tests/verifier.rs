//! `CognitoTokenVerifier` against a local JWKS endpoint and RSA keys made here: the fetch
//! policy (cache, one refetch a minute for unknown `kid`s, old keys kept in an outage) and a
//! battery of forged tokens, each refused with its precise error.

mod common;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::TimeDelta;
use common::{JwksServer, RsaKey, TestClock, b64};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mdcreator_cognito::{CognitoSettings, CognitoTokenVerifier};
use mdcreator_domain::identity::{TokenError, TokenVerifier};
use mdcreator_domain::{Clock, Scope};
use serde_json::{Value, json};

const POOL: &str = "us-east-1_TestPool";
const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool";
const CLIENT: &str = "client-1";

struct Env {
    clock: Arc<TestClock>,
    key: RsaKey,
    server: JwksServer,
    verifier: CognitoTokenVerifier,
}

impl Env {
    async fn new() -> Env {
        let key = RsaKey::generate("key-1");
        let server = JwksServer::start(vec![key.jwk()]).await;
        Self::with(key, server).await
    }

    async fn with(key: RsaKey, server: JwksServer) -> Env {
        let clock = TestClock::new();
        let settings = CognitoSettings {
            jwks_url: Some(server.url.clone()),
            operation_timeout: std::time::Duration::from_secs(2),
            ..CognitoSettings::new(POOL, CLIENT)
        };
        let verifier = CognitoTokenVerifier::new(&settings, clock.clone()).unwrap();
        assert_eq!(verifier.issuer(), ISSUER, "derived from the pool id");
        Env {
            clock,
            key,
            server,
            verifier,
        }
    }

    /// The claims of a Cognito access token, valid for an hour from the test clock's now.
    fn claims(&self) -> Value {
        let now = self.clock.now().timestamp();
        json!({
            "sub": "3f1c-sub",
            "iss": ISSUER,
            "client_id": CLIENT,
            "token_use": "access",
            "scope": "aws.cognito.signin.user.admin",
            "auth_time": now,
            "iat": now,
            "exp": now + 3600,
            "jti": "a7b0",
            "username": "3f1c-sub",
        })
    }

    fn with_claim(&self, name: &str, value: Value) -> Value {
        let mut claims = self.claims();
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value;
        }
        claims
    }

    async fn verify_claims(&self, claims: &Value) -> Result<(), TokenError> {
        self.verifier
            .verify(&self.key.token(claims))
            .await
            .map(|_| ())
    }
}

#[tokio::test]
async fn a_valid_access_token_verifies_and_the_keys_are_fetched_once() {
    let env = Env::new().await;
    assert_eq!(
        env.verifier.jwks_fetches(),
        0,
        "nothing fetched before the first token"
    );
    let token = env.key.token(&env.claims());
    let verified = env.verifier.verify(&token).await.unwrap();
    assert_eq!(verified.subject, "3f1c-sub");
    assert_eq!(
        verified.email, None,
        "Cognito access tokens carry no e-mail"
    );
    assert_eq!(verified.scope, Scope::Session);
    assert_eq!(
        verified.expires_at.timestamp(),
        env.clock.now().timestamp() + 3600
    );
    for _ in 0..50 {
        env.verifier.verify(&token).await.unwrap();
    }
    assert_eq!(env.verifier.jwks_fetches(), 1);
    assert_eq!(env.server.requests(), 1);
}

#[tokio::test]
async fn concurrent_first_tokens_share_one_fetch() {
    let env = Env::new().await;
    let token = env.key.token(&env.claims());
    let verifier = Arc::new(env.verifier);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (verifier, token) = (verifier.clone(), token.clone());
            tokio::spawn(async move { verifier.verify(&token).await.map(|_| ()) })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(verifier.jwks_fetches(), 1);
    assert_eq!(env.server.requests(), 1);
}

#[tokio::test]
async fn an_unknown_kid_triggers_at_most_one_fetch_a_minute() {
    let env = Env::new().await;
    env.verify_claims(&env.claims()).await.unwrap();
    assert_eq!(env.verifier.jwks_fetches(), 1);

    // The pool publishes a second key; a minute later a token signed with it arrives.
    let rotated = RsaKey::generate("key-2");
    env.server.set_keys(vec![env.key.jwk(), rotated.jwk()]);
    env.clock.advance(TimeDelta::seconds(61));
    let token = rotated.token(&env.claims());
    env.verifier.verify(&token).await.unwrap();
    assert_eq!(
        env.verifier.jwks_fetches(),
        2,
        "exactly one refetch for the new kid"
    );
    env.verifier.verify(&token).await.unwrap();
    env.verify_claims(&env.claims()).await.unwrap();
    assert_eq!(env.verifier.jwks_fetches(), 2, "both keys cached now");

    // A kid the pool never published: refused, and no refetch within the minute.
    let stranger = RsaKey::generate("key-3");
    for _ in 0..5 {
        let r = env.verifier.verify(&stranger.token(&env.claims())).await;
        assert!(matches!(r, Err(TokenError::UnknownKey)), "{r:?}");
    }
    let other = RsaKey::generate("key-4");
    let r = env.verifier.verify(&other.token(&env.claims())).await;
    assert!(matches!(r, Err(TokenError::UnknownKey)), "{r:?}");
    assert_eq!(env.verifier.jwks_fetches(), 2, "no refetch within a minute");

    // A minute later one more fetch is allowed (and the kid is still unknown).
    env.clock.advance(TimeDelta::seconds(61));
    let r = env.verifier.verify(&stranger.token(&env.claims())).await;
    assert!(matches!(r, Err(TokenError::UnknownKey)), "{r:?}");
    assert_eq!(env.verifier.jwks_fetches(), 3);
    assert_eq!(env.server.requests(), 3);
}

#[tokio::test]
async fn known_keys_keep_verifying_while_the_jwks_is_unreachable() {
    let env = Env::new().await;
    env.verify_claims(&env.claims()).await.unwrap();

    // The endpoint answers 503: known keys still verify; an unknown kid cannot be checked.
    env.server.set_failing(true);
    env.clock.advance(TimeDelta::seconds(61));
    let rotated = RsaKey::generate("key-2");
    let r = env.verifier.verify(&rotated.token(&env.claims())).await;
    assert!(matches!(r, Err(TokenError::Unavailable(_))), "{r:?}");
    assert_eq!(env.verifier.jwks_fetches(), 2);
    env.verify_claims(&env.claims()).await.unwrap();
    // The failing endpoint is not asked again within the minute.
    let r = env.verifier.verify(&rotated.token(&env.claims())).await;
    assert!(matches!(r, Err(TokenError::UnknownKey)), "{r:?}");
    assert_eq!(env.verifier.jwks_fetches(), 2);

    // Connection refused: the same.
    env.server.stop();
    env.clock.advance(TimeDelta::seconds(61));
    let r = env.verifier.verify(&rotated.token(&env.claims())).await;
    assert!(matches!(r, Err(TokenError::Unavailable(_))), "{r:?}");
    assert_eq!(env.verifier.jwks_fetches(), 3);
    for _ in 0..5 {
        env.verify_claims(&env.claims()).await.unwrap();
    }
    assert_eq!(env.verifier.jwks_fetches(), 3);
}

#[tokio::test]
async fn a_failed_first_fetch_is_retried_after_a_few_seconds() {
    let key = RsaKey::generate("key-1");
    let server = JwksServer::start(vec![key.jwk()]).await;
    server.set_failing(true);
    let env = Env::with(key, server).await;
    for _ in 0..3 {
        let r = env.verify_claims(&env.claims()).await;
        assert!(matches!(r, Err(TokenError::Unavailable(_))), "{r:?}");
    }
    assert_eq!(
        env.verifier.jwks_fetches(),
        1,
        "no hammering of a failing endpoint"
    );

    env.server.set_failing(false);
    env.clock.advance(TimeDelta::seconds(6));
    env.verify_claims(&env.claims()).await.unwrap();
    assert_eq!(env.verifier.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_jwks_without_usable_keys_keeps_the_old_ones() {
    let env = Env::new().await;
    env.verify_claims(&env.claims()).await.unwrap();
    env.server.set_keys(vec![
        json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"}),
    ]);
    env.clock.advance(TimeDelta::seconds(61));
    let r = env
        .verifier
        .verify(&RsaKey::generate("key-2").token(&env.claims()))
        .await;
    assert!(matches!(r, Err(TokenError::Unavailable(_))), "{r:?}");
    env.verify_claims(&env.claims()).await.unwrap();
}

// ---------------------------------------------------------------- forged tokens

#[tokio::test]
async fn time_claims_are_checked_with_five_seconds_leeway() {
    let env = Env::new().await;
    let now = env.clock.now().timestamp();
    let r = env
        .verify_claims(&env.with_claim("exp", json!(now - 6)))
        .await;
    assert!(matches!(r, Err(TokenError::Expired)), "{r:?}");
    env.verify_claims(&env.with_claim("exp", json!(now - 4)))
        .await
        .unwrap();
    let r = env
        .verify_claims(&env.with_claim("nbf", json!(now + 6)))
        .await;
    assert!(matches!(r, Err(TokenError::NotYetValid)), "{r:?}");
    env.verify_claims(&env.with_claim("nbf", json!(now + 4)))
        .await
        .unwrap();

    // A real token expires with the clock.
    let token = env.key.token(&env.claims());
    env.verifier.verify(&token).await.unwrap();
    env.clock.advance(TimeDelta::seconds(3600 + 6));
    let r = env.verifier.verify(&token).await;
    assert!(matches!(r, Err(TokenError::Expired)), "{r:?}");
}

#[tokio::test]
async fn issuer_token_use_and_client_are_checked() {
    let env = Env::new().await;
    for (claims, expected) in [
        (
            env.with_claim(
                "iss",
                json!("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other"),
            ),
            "token_issuer_invalid",
        ),
        (
            env.with_claim("iss", json!(format!("{ISSUER}/"))),
            "token_issuer_invalid",
        ),
        (
            env.with_claim("client_id", json!("another-client")),
            "token_client_invalid",
        ),
        (
            env.with_claim("client_id", Value::Null),
            "token_client_invalid",
        ),
        (
            env.with_claim("token_use", json!("id")),
            "token_use_invalid",
        ),
        (
            env.with_claim("token_use", Value::Null),
            "token_use_invalid",
        ),
        (env.with_claim("sub", json!("")), "token_malformed"),
        (env.with_claim("exp", Value::Null), "token_malformed"),
        (env.with_claim("exp", json!("tomorrow")), "token_malformed"),
        (env.with_claim("iss", Value::Null), "token_malformed"),
    ] {
        match env.verify_claims(&claims).await {
            Err(e) => assert_eq!(e.code(), expected, "{claims}"),
            Ok(()) => panic!("accepted {claims}"),
        }
    }
    // An ID token of the same pool and client: `aud` instead of `client_id`, `token_use: id`.
    let mut id_token = env.with_claim("client_id", Value::Null);
    id_token["aud"] = json!(CLIENT);
    id_token["token_use"] = json!("id");
    id_token["email"] = json!("ada@example.com");
    let r = env.verify_claims(&id_token).await;
    assert!(matches!(r, Err(TokenError::WrongTokenUse)), "{r:?}");
    env.verify_claims(&env.claims()).await.unwrap();
}

#[tokio::test]
async fn alg_none_is_refused() {
    let env = Env::new().await;
    let claims = env.claims();
    let real = env.key.token(&claims);
    let real_signature = real.rsplit('.').next().unwrap();
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "none", "kid": env.key.kid}),
        json!({"alg": "None", "kid": env.key.kid}),
        json!({"alg": "NONE", "kid": env.key.kid}),
        json!({"alg": "", "kid": env.key.kid}),
        json!({"alg": null, "kid": env.key.kid}),
    ] {
        for signature in ["", real_signature] {
            let token = format!("{}.{}.{signature}", b64(&header), b64(&claims));
            let r = env.verifier.verify(&token).await;
            assert!(
                matches!(r, Err(TokenError::UnsupportedAlgorithm)),
                "{header}: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let env = Env::new().await;
    let (spki_der, pem) = env.key.public_der_and_pem();
    let jwk = env.key.jwk();
    let jwk_text = serde_json::to_vec(&jwk).unwrap();
    let modulus = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    for secret in [
        pem.as_bytes(),
        pem.trim_end().as_bytes(),
        spki_der.as_slice(),
        jwk_text.as_slice(),
        modulus.as_slice(),
    ] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some(env.key.kid.clone());
            let token =
                jsonwebtoken::encode(&header, &env.claims(), &EncodingKey::from_secret(secret))
                    .unwrap();
            let r = env.verifier.verify(&token).await;
            assert!(
                matches!(r, Err(TokenError::UnsupportedAlgorithm)),
                "{alg:?}: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn other_asymmetric_algorithms_are_refused() {
    let env = Env::new().await;
    let claims = env.claims();
    let real = env.key.token(&claims);
    let signature = real.rsplit('.').next().unwrap();
    for alg in ["ES256", "RS384", "RS512", "PS256", "EdDSA", "rs256"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": env.key.kid});
        let token = format!("{}.{}.{signature}", b64(&header), b64(&claims));
        let r = env.verifier.verify(&token).await;
        assert!(
            matches!(r, Err(TokenError::UnsupportedAlgorithm)),
            "{alg}: {r:?}"
        );
    }
    // A genuine ES256 token under our kid.
    let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    )
    .unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(env.key.kid.clone());
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ec_der(pair.to_pkcs8v1().unwrap().as_ref()),
    )
    .unwrap();
    let r = env.verifier.verify(&token).await;
    assert!(matches!(r, Err(TokenError::UnsupportedAlgorithm)), "{r:?}");
}

#[tokio::test]
async fn unknown_missing_and_foreign_keys_are_told_apart() {
    let env = Env::new().await;
    let claims = env.claims();
    let stranger = RsaKey::generate("not-published");
    let r = env.verifier.verify(&stranger.token(&claims)).await;
    assert!(matches!(r, Err(TokenError::UnknownKey)), "{r:?}");
    let r = env
        .verifier
        .verify(&stranger.sign(&json!({"alg": "RS256"}), &claims))
        .await;
    assert!(matches!(r, Err(TokenError::UnknownKey)), "no kid: {r:?}");
    let r = env
        .verifier
        .verify(&stranger.sign(&json!({"alg": "RS256", "kid": 7}), &claims))
        .await;
    assert!(
        matches!(r, Err(TokenError::UnknownKey)),
        "numeric kid: {r:?}"
    );

    // Our kid, another key's signature.
    let impostor = RsaKey::generate(&env.key.kid);
    let r = env.verifier.verify(&impostor.token(&claims)).await;
    assert!(matches!(r, Err(TokenError::BadSignature)), "{r:?}");
}

#[tokio::test]
async fn tampering_breaks_the_signature() {
    let env = Env::new().await;
    let token = env.key.token(&env.claims());
    let parts: Vec<&str> = token.split('.').collect();

    let mut claims = env.claims();
    claims["sub"] = json!("someone-else");
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    let r = env.verifier.verify(&tampered).await;
    assert!(matches!(r, Err(TokenError::BadSignature)), "{r:?}");

    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[10] ^= 0x01;
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(&signature)
    );
    let r = env.verifier.verify(&flipped).await;
    assert!(matches!(r, Err(TokenError::BadSignature)), "{r:?}");

    let truncated = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(&signature[..128])
    );
    let r = env.verifier.verify(&truncated).await;
    assert!(matches!(r, Err(TokenError::BadSignature)), "{r:?}");
}

#[tokio::test]
async fn garbage_is_malformed() {
    let env = Env::new().await;
    let rs256 = b64(&json!({"alg": "RS256", "kid": env.key.kid}));
    let long = "a".repeat(10_000);
    for token in [
        "garbage",
        "a.b.c",
        "a.b",
        "a.b.c.d",
        "....",
        "%%%.%%%.%%%",
        long.as_str(),
        &format!("{rs256}.not-base64!.abc"),
        &format!("{rs256}.e30.abc="),
        &format!("{}.e30.abc", URL_SAFE_NO_PAD.encode("[1,2]")),
        &format!("{}.e30.abc", b64(&json!({"kid": "x"}))),
    ] {
        let r = env.verifier.verify(token).await;
        assert!(matches!(r, Err(TokenError::Malformed)), "{token}: {r:?}");
    }
    assert!(matches!(
        env.verifier.verify("").await,
        Err(TokenError::Missing)
    ));
    // Nothing unsigned is parsed: a bad signature over a non-JSON payload is a bad signature.
    let not_json = format!("{rs256}.{}.abcd", URL_SAFE_NO_PAD.encode("not json"));
    let r = env.verifier.verify(&not_json).await;
    assert!(matches!(r, Err(TokenError::BadSignature)), "{r:?}");
}
