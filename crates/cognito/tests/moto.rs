//! `CognitoIdentity` and `CognitoTokenVerifier` against moto's Cognito (a pool and client per
//! test), when `MDCREATOR_TEST_MOTO_URL` is set; plus the outage mapping, which needs no moto.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Pool, admin_client, install_crypto_provider, moto_url};
use mdcreator_cognito::{CognitoIdentity, CognitoSettings, CognitoTokenVerifier};
use mdcreator_domain::identity::{
    IdentityError, IdentityProvider, SignUp, TokenError, TokenVerifier,
};
use mdcreator_domain::ports::SystemClock;
use mdcreator_domain::{Email, Scope};

const PASSWORD: &str = "correct horse battery staple";

fn email(prefix: &str) -> Email {
    Email::parse(&format!(
        "{prefix}-{}@example.com",
        uuid::Uuid::new_v4().simple()
    ))
    .unwrap()
}

fn sign_up_request(email: &Email, name: &str) -> SignUp {
    SignUp {
        email: email.clone(),
        password: PASSWORD.to_owned(),
        display_name: name.to_owned(),
    }
}

struct Env {
    pool: Pool,
    settings: CognitoSettings,
    identity: CognitoIdentity,
    verifier: CognitoTokenVerifier,
}

async fn env(moto: &str, with_secret: bool) -> Env {
    install_crypto_provider();
    let admin = admin_client(moto).await;
    let pool = Pool::create(&admin, with_secret).await;
    let settings = pool.settings(moto);
    let identity = CognitoIdentity::connect(&settings).await.unwrap();
    let verifier = CognitoTokenVerifier::new(&settings, Arc::new(SystemClock)).unwrap();
    Env {
        pool,
        settings,
        identity,
        verifier,
    }
}

#[tokio::test]
async fn sign_up_confirm_login_refresh_and_logout() {
    let Some(moto) = moto_url("sign_up_confirm_login_refresh_and_logout") else {
        return;
    };
    let env = env(&moto, false).await;
    let ada = email("ada");
    let outcome = env
        .identity
        .sign_up(&sign_up_request(&ada, "Ada"))
        .await
        .unwrap();
    assert!(!outcome.subject.is_empty());
    assert!(!outcome.confirmed, "Cognito sends a code first");

    // The same e-mail again: taken.
    let r = env.identity.sign_up(&sign_up_request(&ada, "Eve")).await;
    assert!(matches!(r, Err(IdentityError::EmailTaken)), "{r:?}");

    let r = env.identity.login(&ada, PASSWORD).await;
    assert!(matches!(r, Err(IdentityError::NotConfirmed)), "{r:?}");

    // moto accepts any code; a second confirmation is harmless.
    env.identity.confirm(&ada, "123456").await.unwrap();
    env.identity.confirm(&ada, "123456").await.unwrap();

    let r = env.identity.login(&ada, "not the password").await;
    assert!(matches!(r, Err(IdentityError::InvalidCredentials)), "{r:?}");
    let r = env.identity.login(&email("nobody"), PASSWORD).await;
    assert!(
        matches!(r, Err(IdentityError::InvalidCredentials)),
        "unknown user: {r:?}"
    );

    let tokens = env.identity.login(&ada, PASSWORD).await.unwrap();
    assert!(tokens.expires_in > 0);
    assert!(tokens.id_token.is_some());
    let refresh = tokens.refresh_token.clone().expect("a refresh token");

    let verified = env.verifier.verify(&tokens.access_token).await.unwrap();
    assert_eq!(
        verified.subject, outcome.subject,
        "sub is the sign-up's UserSub"
    );
    assert_eq!(verified.email, None);
    assert_eq!(verified.scope, Scope::Session);
    assert_eq!(env.verifier.jwks_fetches(), 1);

    let profile = env.identity.profile(&tokens.access_token).await.unwrap();
    assert_eq!(profile.subject, outcome.subject);
    assert_eq!(profile.email, ada);
    assert_eq!(profile.display_name.as_deref(), Some("Ada"));

    // Refresh: new access token, no new refresh token (Cognito does not rotate).
    let refreshed = env.identity.refresh(&refresh).await.unwrap();
    assert_eq!(refreshed.refresh_token, None);
    assert_ne!(refreshed.access_token, tokens.access_token);
    let again = env.verifier.verify(&refreshed.access_token).await.unwrap();
    assert_eq!(again.subject, outcome.subject);
    // Not rotated: the same refresh token works again.
    env.identity.refresh(&refresh).await.unwrap();
    let r = env.identity.refresh("not-a-refresh-token").await;
    assert!(
        matches!(r, Err(IdentityError::InvalidRefreshToken)),
        "{r:?}"
    );

    // Global sign-out revokes the refresh tokens and the access token at Cognito.
    env.identity.logout(&refreshed.access_token).await.unwrap();
    let r = env.identity.refresh(&refresh).await;
    assert!(
        matches!(r, Err(IdentityError::InvalidRefreshToken)),
        "{r:?}"
    );
    let r = env.identity.profile(&refreshed.access_token).await;
    assert!(matches!(r, Err(IdentityError::InvalidCredentials)), "{r:?}");
    let r = env.identity.logout(&refreshed.access_token).await;
    assert!(matches!(r, Err(IdentityError::InvalidCredentials)), "{r:?}");

    // Logging in again works.
    let tokens = env.identity.login(&ada, PASSWORD).await.unwrap();
    env.verifier.verify(&tokens.access_token).await.unwrap();
    env.identity.profile(&tokens.access_token).await.unwrap();
    assert_eq!(env.verifier.jwks_fetches(), 1, "keys cached across logins");
}

#[tokio::test]
async fn weak_passwords_codes_and_password_reset() {
    let Some(moto) = moto_url("weak_passwords_codes_and_password_reset") else {
        return;
    };
    let env = env(&moto, false).await;
    let ada = email("ada");
    let mut weak = sign_up_request(&ada, "Ada");
    weak.password = "short".into();
    let r = env.identity.sign_up(&weak).await;
    assert!(matches!(r, Err(IdentityError::WeakPassword(_))), "{r:?}");

    env.identity
        .sign_up(&sign_up_request(&ada, "Ada"))
        .await
        .unwrap();
    // Confirming an unknown account looks like a wrong code (no enumeration).
    let r = env.identity.confirm(&email("nobody"), "123456").await;
    assert!(matches!(r, Err(IdentityError::CodeMismatch)), "{r:?}");
    env.identity.confirm(&ada, "123456").await.unwrap();

    // Forgot-password never tells whether the account exists.
    env.identity
        .forgot_password(&email("nobody"))
        .await
        .unwrap();
    env.identity.forgot_password(&ada).await.unwrap();
    env.identity
        .reset_password(&ada, "123456", "a brand new password")
        .await
        .unwrap();
    let r = env.identity.login(&ada, PASSWORD).await;
    assert!(matches!(r, Err(IdentityError::InvalidCredentials)), "{r:?}");
    env.identity
        .login(&ada, "a brand new password")
        .await
        .unwrap();
}

#[tokio::test]
async fn an_app_client_with_a_secret_sends_secret_hashes() {
    let Some(moto) = moto_url("an_app_client_with_a_secret_sends_secret_hashes") else {
        return;
    };
    // moto checks a refresh's SECRET_HASH against the login's USERNAME, AWS against the user's
    // internal username (the access token's `username`, which the adapter uses). The two agree
    // when the e-mail is the username itself, so this pool has no username attributes.
    install_crypto_provider();
    let admin = admin_client(&moto).await;
    let pool = Pool::create_with_plain_usernames(&admin, true).await;
    assert!(pool.client_secret.is_some());
    let settings = pool.settings(&moto);
    let env = Env {
        identity: CognitoIdentity::connect(&settings).await.unwrap(),
        verifier: CognitoTokenVerifier::new(&settings, Arc::new(SystemClock)).unwrap(),
        pool,
        settings,
    };
    let ada = email("ada");
    env.identity
        .sign_up(&sign_up_request(&ada, "Ada"))
        .await
        .unwrap();
    env.identity.confirm(&ada, "123456").await.unwrap();
    let tokens = env.identity.login(&ada, PASSWORD).await.unwrap();
    let refresh = tokens.refresh_token.expect("a refresh token");

    // The refresh token carries the Cognito username that its SECRET_HASH needs.
    let refreshed = env.identity.refresh(&refresh).await.unwrap();
    env.verifier.verify(&refreshed.access_token).await.unwrap();
    let (username, raw) = refresh.split_once('~').expect("username~token");
    let r = env.identity.refresh(raw).await;
    assert!(
        matches!(r, Err(IdentityError::InvalidRefreshToken)),
        "{r:?}"
    );
    let r = env.identity.refresh(&format!("someone-else~{raw}")).await;
    assert!(
        matches!(r, Err(IdentityError::InvalidRefreshToken)),
        "wrong hash: {r:?}"
    );
    assert!(!username.is_empty());

    // Without the secret configured, moto's secret check refuses the refresh.
    let unsigned = CognitoIdentity::connect(&CognitoSettings {
        client_secret: None,
        ..env.settings.clone()
    })
    .await
    .unwrap();
    let r = unsigned.refresh(raw).await;
    assert!(
        matches!(r, Err(IdentityError::InvalidRefreshToken)),
        "{r:?}"
    );
}

#[tokio::test]
async fn the_verifier_accepts_only_this_pools_access_tokens_for_this_client() {
    let Some(moto) = moto_url("the_verifier_accepts_only_this_pools_access_tokens_for_this_client")
    else {
        return;
    };
    let env = env(&moto, false).await;
    let admin = admin_client(&moto).await;
    let ada = email("ada");
    env.identity
        .sign_up(&sign_up_request(&ada, "Ada"))
        .await
        .unwrap();
    env.identity.confirm(&ada, "1").await.unwrap();
    let tokens = env.identity.login(&ada, PASSWORD).await.unwrap();
    env.verifier.verify(&tokens.access_token).await.unwrap();

    // The ID token of the same login is not an access token.
    let r = env
        .verifier
        .verify(tokens.id_token.as_deref().unwrap())
        .await;
    assert!(matches!(r, Err(TokenError::WrongTokenUse)), "{r:?}");

    // Another client of the same pool.
    let other_client = env.pool.add_client(&admin, false).await;
    let identity = CognitoIdentity::connect(&other_client.settings(&moto))
        .await
        .unwrap();
    let other = identity.login(&ada, PASSWORD).await.unwrap();
    let r = env.verifier.verify(&other.access_token).await;
    assert!(matches!(r, Err(TokenError::WrongClient)), "{r:?}");

    // Another pool (moto signs every pool with the same key: the issuer tells them apart).
    let other_pool = Pool::create(&admin, false).await;
    let identity = CognitoIdentity::connect(&other_pool.settings(&moto))
        .await
        .unwrap();
    identity
        .sign_up(&sign_up_request(&ada, "Ada"))
        .await
        .unwrap();
    identity.confirm(&ada, "1").await.unwrap();
    let foreign = identity.login(&ada, PASSWORD).await.unwrap();
    let r = env.verifier.verify(&foreign.access_token).await;
    assert!(
        matches!(r, Err(TokenError::WrongIssuer | TokenError::UnknownKey)),
        "{r:?}"
    );
    assert_eq!(env.verifier.jwks_fetches(), 1);
}

#[tokio::test]
async fn an_unreachable_cognito_is_unavailable() {
    install_crypto_provider();
    // Nothing listens on port 9 of the loopback: connections are refused at once.
    let settings = CognitoSettings {
        region: Some("us-east-1".into()),
        endpoint_url: Some("http://127.0.0.1:9".into()),
        jwks_url: Some("http://127.0.0.1:9/pool/.well-known/jwks.json".into()),
        operation_timeout: Duration::from_secs(2),
        ..CognitoSettings::new("us-east-1_Unreachable", "client")
    };
    let identity = CognitoIdentity::connect(&settings).await.unwrap();
    let started = std::time::Instant::now();
    let ada = email("ada");
    let r = identity.login(&ada, PASSWORD).await;
    assert!(matches!(r, Err(IdentityError::Unavailable(_))), "{r:?}");
    let r = identity.forgot_password(&ada).await;
    assert!(matches!(r, Err(IdentityError::Unavailable(_))), "{r:?}");
    let r = identity.sign_up(&sign_up_request(&ada, "Ada")).await;
    assert!(matches!(r, Err(IdentityError::Unavailable(_))), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the timeouts"
    );

    let verifier = CognitoTokenVerifier::new(&settings, Arc::new(SystemClock)).unwrap();
    let header = common::b64(&serde_json::json!({"alg": "RS256", "kid": "k"}));
    let r = verifier.verify(&format!("{header}.e30.c2ln")).await;
    assert!(matches!(r, Err(TokenError::Unavailable(_))), "{r:?}");
    assert_eq!(verifier.jwks_fetches(), 1);
}

#[tokio::test]
async fn settings_must_name_a_pool_and_client() {
    let r = CognitoIdentity::connect(&CognitoSettings::new("", "client")).await;
    assert!(r.is_err());
    let r = CognitoTokenVerifier::new(
        &CognitoSettings::new("us-east-1_Pool", " "),
        Arc::new(SystemClock),
    );
    assert!(r.is_err());
    let r = CognitoTokenVerifier::new(
        &CognitoSettings::new("NoRegionPool", "client"),
        Arc::new(SystemClock),
    );
    assert!(r.is_err(), "no region to derive the issuer from");
}
