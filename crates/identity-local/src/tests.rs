//! Flows of the built-in accounts over in-memory stores, and the token verifier battery.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{TimeDelta, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mdcreator_domain::identity::local::{
    CodePurpose, LocalAccount, MockLocalAccountStore, MockRefreshTokenStore, MockSigningKeyStore,
    RefreshToken, SigningKeyStore,
};
use mdcreator_domain::identity::{
    IdentityError, IdentityProvider, SignUp, TokenError, TokenVerifier,
};
use mdcreator_domain::secrets::secret_hash;
use mdcreator_domain::{Clock, Email, Scope, UserId};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::fakes::{CapturedCodes, MemoryAccounts, MemoryKeys, MemoryRefreshTokens, TestClock};
use crate::issuer::AccessClaims;
use crate::keys::KeyMaterial;
use crate::{
    LocalIdentity, LocalIdentitySettings, LocalTokenVerifier, SigningKeyError, TokenIssuer,
    TokenSettings,
};

const ISSUER: &str = "https://md.example.com";
const PASSWORD: &str = "correct horse battery";

struct Env {
    clock: Arc<TestClock>,
    accounts: Arc<MemoryAccounts>,
    tokens: Arc<MemoryRefreshTokens>,
    keys: Arc<MemoryKeys>,
    codes: Arc<CapturedCodes>,
    issuer: Arc<TokenIssuer>,
    identity: LocalIdentity,
    verifier: LocalTokenVerifier,
}

async fn env(require_email_confirmation: bool) -> Env {
    let clock = Arc::new(TestClock::new());
    let accounts = Arc::new(MemoryAccounts::default());
    let tokens = Arc::new(MemoryRefreshTokens::default());
    let keys = Arc::new(MemoryKeys::default());
    let codes = Arc::new(CapturedCodes::default());
    let issuer = Arc::new(
        TokenIssuer::load_or_create(keys.clone(), TokenSettings::new(ISSUER))
            .await
            .unwrap(),
    );
    let settings = LocalIdentitySettings {
        require_email_confirmation,
        ..Default::default()
    };
    let identity = LocalIdentity::new(
        accounts.clone(),
        tokens.clone(),
        issuer.clone(),
        clock.clone(),
        settings,
    )
    .with_code_sender(codes.clone());
    let verifier = issuer.verifier(clock.clone());
    Env {
        clock,
        accounts,
        tokens,
        keys,
        codes,
        issuer,
        identity,
        verifier,
    }
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn sign_up_request(address: &str) -> SignUp {
    SignUp {
        email: email(address),
        password: PASSWORD.into(),
        display_name: "Ada Lovelace".into(),
    }
}

impl Env {
    async fn account(&self, address: &str) -> LocalAccount {
        let accounts = self.accounts.accounts.lock().unwrap();
        accounts
            .iter()
            .find(|a| a.email.as_str() == address)
            .cloned()
            .unwrap()
    }

    /// Claims as the issuer would write them now, for the verifier battery to bend.
    fn claims(&self) -> AccessClaims {
        let now = self.clock.now().timestamp();
        AccessClaims {
            sub: UserId::new().to_string(),
            iss: ISSUER.into(),
            exp: now + 900,
            nbf: Some(now),
            iat: Some(now),
            jti: Some("jti-1".into()),
            token_use: Some("access".into()),
            client_id: Some("mdcreator".into()),
            email: Some("ada@example.com".into()),
            scope: None,
        }
    }

    async fn verify_claims(&self, claims: AccessClaims) -> Result<(), TokenError> {
        let token = self.issuer.sign(&claims).unwrap();
        self.verifier.verify(&token).await.map(|_| ())
    }
}

fn segments(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let decode = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (decode(parts[0]), decode(parts[1]))
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

// ---------------------------------------------------------------- accounts and sessions

#[tokio::test]
async fn sign_up_login_and_verify_round_trip() {
    let env = env(false).await;
    let outcome = env
        .identity
        .sign_up(&sign_up_request("ada@example.com"))
        .await
        .unwrap();
    assert!(outcome.confirmed);
    assert_eq!(env.codes.count(), 0);

    let account = env.account("ada@example.com").await;
    assert_eq!(outcome.subject, account.user_id.to_string());
    assert!(account.verified);
    assert!(account.password_hash.starts_with("$argon2id$v=19$"));
    let users = env.accounts.users.lock().unwrap().clone();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].id, account.user_id);
    assert_eq!(users[0].subject, outcome.subject);
    assert_eq!(users[0].display_name, "Ada Lovelace");

    let tokens = env
        .identity
        .login(&email("ada@example.com"), PASSWORD)
        .await
        .unwrap();
    assert_eq!(tokens.expires_in, 900);
    assert_eq!(tokens.id_token, None);
    let refresh = tokens.refresh_token.clone().unwrap();
    assert!(refresh.starts_with("mdr_"));
    let stored = env.tokens.all();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].token_hash, secret_hash(&refresh));
    assert_eq!(stored[0].expires_at, env.clock.now() + TimeDelta::days(30));

    let verified = env.verifier.verify(&tokens.access_token).await.unwrap();
    assert_eq!(verified.subject, outcome.subject);
    assert_eq!(verified.email, Some(email("ada@example.com")));
    assert_eq!(verified.scope, Scope::Session);
    assert_eq!(
        verified.expires_at,
        env.clock.now() + TimeDelta::minutes(15)
    );

    let (header, claims) = segments(&tokens.access_token);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], env.issuer.signing_kid());
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["token_use"], "access");
    assert_eq!(claims["client_id"], "mdcreator");
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["iat"], claims["nbf"]);
    assert!(claims["jti"].is_string());
    assert!(claims.get("scope").is_none());
    assert!(claims.get("aud").is_none());

    let profile = env.identity.profile(&tokens.access_token).await.unwrap();
    assert_eq!(profile.subject, outcome.subject);
    assert_eq!(profile.email, email("ada@example.com"));
}

#[tokio::test]
async fn a_taken_email_is_refused() {
    let env = env(false).await;
    env.identity
        .sign_up(&sign_up_request("ada@example.com"))
        .await
        .unwrap();
    let r = env
        .identity
        .sign_up(&sign_up_request("ADA@example.com"))
        .await;
    assert!(matches!(r, Err(IdentityError::EmailTaken)), "{r:?}");
}

#[tokio::test]
async fn sign_up_refuses_weak_passwords() {
    let env = env(false).await;
    let mut request = sign_up_request("ada@example.com");
    request.password = "short".into();
    let r = env.identity.sign_up(&request).await;
    assert!(matches!(r, Err(IdentityError::WeakPassword(_))), "{r:?}");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_are_the_same_error() {
    let env = env(false).await;
    env.identity
        .sign_up(&sign_up_request("ada@example.com"))
        .await
        .unwrap();
    let r = env
        .identity
        .login(&email("ada@example.com"), "wrong password")
        .await;
    assert!(matches!(r, Err(IdentityError::InvalidCredentials)), "{r:?}");
    let r = env
        .identity
        .login(&email("nobody@example.com"), PASSWORD)
        .await;
    assert!(matches!(r, Err(IdentityError::InvalidCredentials)), "{r:?}");
    assert!(env.tokens.all().is_empty());
}

#[tokio::test]
async fn an_unknown_email_still_costs_a_password_check() {
    // The dummy verification runs through the same store call as a real login.
    let mut accounts = MockLocalAccountStore::new();
    accounts
        .expect_account_by_email()
        .times(1)
        .returning(|_| Ok(None));
    let mut tokens = MockRefreshTokenStore::new();
    tokens.expect_insert_refresh_token().never();
    let keys = Arc::new(MemoryKeys::default());
    let issuer = Arc::new(
        TokenIssuer::load_or_create(keys, TokenSettings::new(ISSUER))
            .await
            .unwrap(),
    );
    let identity = LocalIdentity::new(
        Arc::new(accounts),
        Arc::new(tokens),
        issuer,
        Arc::new(TestClock::new()),
        LocalIdentitySettings::default(),
    );
    let started = std::time::Instant::now();
    let r = identity.login(&email("ghost@example.com"), PASSWORD).await;
    assert!(matches!(r, Err(IdentityError::InvalidCredentials)));
    // An argon2id verification (m = 19 MiB) takes milliseconds, a bare lookup microseconds.
    assert!(started.elapsed() > std::time::Duration::from_millis(2));
}

#[tokio::test]
async fn confirmation_required_flow() {
    let env = env(true).await;
    let outcome = env
        .identity
        .sign_up(&sign_up_request("ada@example.com"))
        .await
        .unwrap();
    assert!(!outcome.confirmed);
    let code = env.codes.last(CodePurpose::Confirm);
    assert_eq!(code.len(), 6);
    let account = env.account("ada@example.com").await;
    assert!(!account.verified);
    let pending = account.code.unwrap();
    assert_eq!(pending.hash, secret_hash(&code));
    assert_eq!(pending.purpose, CodePurpose::Confirm);
    assert_eq!(pending.expires_at, env.clock.now() + TimeDelta::hours(24));

    let ada = email("ada@example.com");
    let r = env.identity.login(&ada, PASSWORD).await;
    assert!(matches!(r, Err(IdentityError::NotConfirmed)), "{r:?}");
    // The password is checked first: a wrong one does not reveal the pending state.
    let r = env.identity.login(&ada, "wrong password").await;
    assert!(matches!(r, Err(IdentityError::InvalidCredentials)), "{r:?}");

    let wrong = if code == "000000" { "000001" } else { "000000" };
    let r = env.identity.confirm(&ada, wrong).await;
    assert!(matches!(r, Err(IdentityError::CodeMismatch)), "{r:?}");
    let r = env
        .identity
        .confirm(&email("nobody@example.com"), &code)
        .await;
    assert!(matches!(r, Err(IdentityError::CodeMismatch)), "{r:?}");

    env.identity.confirm(&ada, &code).await.unwrap();
    let account = env.account("ada@example.com").await;
    assert!(account.verified);
    assert!(account.code.is_none());
    env.identity.login(&ada, PASSWORD).await.unwrap();
    // Confirming again is harmless.
    env.identity.confirm(&ada, &code).await.unwrap();
}

#[tokio::test]
async fn an_expired_code_is_refused_and_a_new_one_works() {
    let env = env(true).await;
    let ada = email("ada@example.com");
    env.identity
        .sign_up(&sign_up_request("ada@example.com"))
        .await
        .unwrap();
    let code = env.codes.last(CodePurpose::Confirm);
    env.clock
        .advance(TimeDelta::hours(24) + TimeDelta::seconds(1));
    let r = env.identity.confirm(&ada, &code).await;
    assert!(matches!(r, Err(IdentityError::CodeExpired)), "{r:?}");

    env.identity.resend_code(&ada).await.unwrap();
    let fresh = env.codes.last(CodePurpose::Confirm);
    assert_eq!(env.codes.count(), 2);
    env.identity.confirm(&ada, &fresh).await.unwrap();
}

#[tokio::test]
async fn five_wrong_attempts_void_the_code() {
    let env = env(true).await;
    let ada = email("ada@example.com");
    env.identity
        .sign_up(&sign_up_request("ada@example.com"))
        .await
        .unwrap();
    let code = env.codes.last(CodePurpose::Confirm);
    let wrong = if code == "123456" { "654321" } else { "123456" };
    for attempt in 1..=5 {
        let r = env.identity.confirm(&ada, wrong).await;
        assert!(
            matches!(r, Err(IdentityError::CodeMismatch)),
            "{attempt}: {r:?}"
        );
        assert_eq!(
            env.account("ada@example.com").await.code.unwrap().attempts,
            attempt
        );
    }
    let r = env.identity.confirm(&ada, &code).await;
    assert!(matches!(r, Err(IdentityError::CodeExpired)), "{r:?}");
    assert!(!env.account("ada@example.com").await.verified);

    env.identity.resend_code(&ada).await.unwrap();
    env.identity
        .confirm(&ada, &env.codes.last(CodePurpose::Confirm))
        .await
        .unwrap();
}

#[tokio::test]
async fn resend_code_is_silent_for_unknown_and_confirmed_accounts() {
    let env = env(false).await;
    env.identity
        .sign_up(&sign_up_request("ada@example.com"))
        .await
        .unwrap();
    env.identity
        .resend_code(&email("ada@example.com"))
        .await
        .unwrap();
    env.identity
        .resend_code(&email("nobody@example.com"))
        .await
        .unwrap();
    assert_eq!(env.codes.count(), 0);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let env = env(false).await;
    let ada = email("ada@example.com");
    env.identity
        .sign_up(&sign_up_request("ada@example.com"))
        .await
        .unwrap();
    let first = env.identity.login(&ada, PASSWORD).await.unwrap();
    let other_login = env.identity.login(&ada, PASSWORD).await.unwrap();
    let r1 = first.refresh_token.unwrap();

    env.clock.advance(TimeDelta::minutes(20));
    let second = env.identity.refresh(&r1).await.unwrap();
    let r2 = second.refresh_token.clone().unwrap();
    assert_ne!(r1, r2);
    assert!(r2.starts_with("mdr_"));
    assert_eq!(second.expires_in, 900);
    let verified = env.verifier.verify(&second.access_token).await.unwrap();
    assert_eq!(
        verified.expires_at,
        env.clock.now() + TimeDelta::minutes(15)
    );

    let stored = env.tokens.all();
    let old = stored
        .iter()
        .find(|t| t.token_hash == secret_hash(&r1))
        .unwrap();
    let new = stored
        .iter()
        .find(|t| t.token_hash == secret_hash(&r2))
        .unwrap();
    assert!(old.revoked_at.is_some());
    assert_eq!(old.family_id, new.family_id);
    // A login lasts 30 days however often it is refreshed.
    assert_eq!(old.expires_at, new.expires_at);

    let third = env.identity.refresh(&r2).await.unwrap();
    let r3 = third.refresh_token.unwrap();

    // r1 was rotated away: presenting it again means a copy exists somewhere.
    let r = env.identity.refresh(&r1).await;
    assert!(
        matches!(r, Err(IdentityError::InvalidRefreshToken)),
        "{r:?}"
    );
    let r = env.identity.refresh(&r3).await;
    assert!(
        matches!(r, Err(IdentityError::InvalidRefreshToken)),
        "{r:?}"
    );
    // Another login of the same user is not affected.
    env.identity
        .refresh(&other_login.refresh_token.unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_and_expired_refresh_tokens_are_refused() {
    let env = env(false).await;
    let ada = email("ada@example.com");
    env.identity
        .sign_up(&sign_up_request("ada@example.com"))
        .await
        .unwrap();
    let r = env.identity.refresh("mdr_not-a-token").await;
    assert!(
        matches!(r, Err(IdentityError::InvalidRefreshToken)),
        "{r:?}"
    );

    let tokens = env.identity.login(&ada, PASSWORD).await.unwrap();
    env.clock.advance(TimeDelta::days(30));
    let r = env.identity.refresh(&tokens.refresh_token.unwrap()).await;
    assert!(
        matches!(r, Err(IdentityError::InvalidRefreshToken)),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_lost_rotation_race_revokes_the_family() {
    let user = UserId::new();
    let family = uuid::Uuid::new_v4();
    let now = Utc::now();
    let token = RefreshToken {
        id: uuid::Uuid::now_v7(),
        user_id: user,
        family_id: family,
        token_hash: secret_hash("mdr_x"),
        expires_at: now + TimeDelta::days(1),
        revoked_at: None,
        created_at: now,
    };
    let mut tokens = MockRefreshTokenStore::new();
    tokens
        .expect_refresh_token_by_hash()
        .returning(move |_| Ok(Some(token.clone())));
    tokens
        .expect_rotate_refresh_token()
        .times(1)
        .returning(|_, _, _| Ok(false));
    tokens
        .expect_revoke_refresh_family()
        .withf(move |f, _| *f == family)
        .times(1)
        .returning(|_, _| Ok(()));
    let mut accounts = MockLocalAccountStore::new();
    accounts.expect_account_by_user().returning(move |_| {
        Ok(Some(LocalAccount {
            user_id: user,
            email: email("ada@example.com"),
            password_hash: String::new(),
            verified: true,
            code: None,
        }))
    });
    let issuer = Arc::new(
        TokenIssuer::load_or_create(Arc::new(MemoryKeys::default()), TokenSettings::new(ISSUER))
            .await
            .unwrap(),
    );
    let identity = LocalIdentity::new(
        Arc::new(accounts),
        Arc::new(tokens),
        issuer,
        Arc::new(TestClock::new()),
        LocalIdentitySettings::default(),
    );
    let r = identity.refresh("mdr_x").await;
    assert!(
        matches!(r, Err(IdentityError::InvalidRefreshToken)),
        "{r:?}"
    );
}

#[tokio::test]
async fn logout_revokes_every_refresh_token_of_the_user() {
    let env = env(false).await;
    let ada = email("ada@example.com");
    env.identity
        .sign_up(&sign_up_request("ada@example.com"))
        .await
        .unwrap();
    let a = env.identity.login(&ada, PASSWORD).await.unwrap();
    let b = env.identity.login(&ada, PASSWORD).await.unwrap();
    env.identity.logout(&a.access_token).await.unwrap();
    assert!(env.tokens.all().iter().all(|t| t.revoked_at.is_some()));
    for refresh in [a.refresh_token.unwrap(), b.refresh_token.unwrap()] {
        let r = env.identity.refresh(&refresh).await;
        assert!(
            matches!(r, Err(IdentityError::InvalidRefreshToken)),
            "{r:?}"
        );
    }
    let r = env.identity.logout("garbage").await;
    assert!(matches!(r, Err(IdentityError::InvalidCredentials)), "{r:?}");
    let r = env.identity.profile("garbage").await;
    assert!(matches!(r, Err(IdentityError::InvalidCredentials)), "{r:?}");
}

#[tokio::test]
async fn reset_password_flow() {
    let env = env(false).await;
    let ada = email("ada@example.com");
    env.identity
        .sign_up(&sign_up_request("ada@example.com"))
        .await
        .unwrap();
    let session = env.identity.login(&ada, PASSWORD).await.unwrap();

    env.identity
        .forgot_password(&email("nobody@example.com"))
        .await
        .unwrap();
    assert_eq!(env.codes.count(), 0);
    env.identity.forgot_password(&ada).await.unwrap();
    let code = env.codes.last(CodePurpose::Reset);
    assert_eq!(
        env.account("ada@example.com").await.code.unwrap().purpose,
        CodePurpose::Reset
    );

    let new_password = "a brand new passphrase";
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let r = env.identity.reset_password(&ada, wrong, new_password).await;
    assert!(matches!(r, Err(IdentityError::CodeMismatch)), "{r:?}");
    let r = env.identity.reset_password(&ada, &code, "short").await;
    assert!(matches!(r, Err(IdentityError::WeakPassword(_))), "{r:?}");
    let r = env
        .identity
        .reset_password(&email("nobody@example.com"), &code, new_password)
        .await;
    assert!(matches!(r, Err(IdentityError::CodeMismatch)), "{r:?}");
    // A reset code does not confirm anything else.
    let r = env.identity.confirm(&ada, &code).await;
    assert!(r.is_ok(), "already confirmed: {r:?}");

    env.identity
        .reset_password(&ada, &code, new_password)
        .await
        .unwrap();
    let r = env.identity.login(&ada, PASSWORD).await;
    assert!(matches!(r, Err(IdentityError::InvalidCredentials)), "{r:?}");
    env.identity.login(&ada, new_password).await.unwrap();
    let r = env.identity.refresh(&session.refresh_token.unwrap()).await;
    assert!(
        matches!(r, Err(IdentityError::InvalidRefreshToken)),
        "{r:?}"
    );
    // The code is used up.
    let r = env
        .identity
        .reset_password(&ada, &code, "yet another passphrase")
        .await;
    assert!(matches!(r, Err(IdentityError::CodeMismatch)), "{r:?}");
}

#[tokio::test]
async fn a_reset_confirms_an_unconfirmed_account_but_a_confirm_code_cannot_reset() {
    let env = env(true).await;
    let ada = email("ada@example.com");
    env.identity
        .sign_up(&sign_up_request("ada@example.com"))
        .await
        .unwrap();
    let confirm_code = env.codes.last(CodePurpose::Confirm);
    let r = env
        .identity
        .reset_password(&ada, &confirm_code, "a brand new passphrase")
        .await;
    assert!(matches!(r, Err(IdentityError::CodeMismatch)), "{r:?}");

    env.identity.forgot_password(&ada).await.unwrap();
    let reset_code = env.codes.last(CodePurpose::Reset);
    env.identity
        .reset_password(&ada, &reset_code, "a brand new passphrase")
        .await
        .unwrap();
    env.identity
        .login(&ada, "a brand new passphrase")
        .await
        .unwrap();
}

// ---------------------------------------------------------------- keys and JWKS

#[tokio::test]
async fn jwks_publishes_the_public_key_only() {
    let env = env(false).await;
    let jwks = env.issuer.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().unwrap();
    let mut names: Vec<&str> = key.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"], env.issuer.signing_kid());
    for coordinate in ["x", "y"] {
        let value = key[coordinate].as_str().unwrap();
        assert_eq!(value.len(), 43, "32 bytes, base64url without padding");
        assert_eq!(URL_SAFE_NO_PAD.decode(value).unwrap().len(), 32);
    }
    // The stored key carries the same JWK and a PKCS#8 private key.
    let stored = env.keys.keys.lock().unwrap().clone();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].algorithm, "ES256");
    assert_eq!(stored[0].public_jwk, keys[0]);
    assert!(stored[0].retired_at.is_none());
}

#[tokio::test]
async fn instances_sharing_a_store_share_the_key() {
    let store = Arc::new(MemoryKeys::default());
    let a = TokenIssuer::load_or_create(store.clone(), TokenSettings::new(ISSUER))
        .await
        .unwrap();
    let b = TokenIssuer::load_or_create(store.clone(), TokenSettings::new(ISSUER))
        .await
        .unwrap();
    assert_eq!(a.signing_kid(), b.signing_kid());
    assert_eq!(store.keys.lock().unwrap().len(), 1);
    assert_eq!(a.jwks(), b.jwks());

    let clock: Arc<TestClock> = Arc::new(TestClock::new());
    let token = a
        .issue_access_token(
            "sub-1",
            &email("ada@example.com"),
            clock.now(),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    let verified = b.verifier(clock).verify(&token).await.unwrap();
    assert_eq!(verified.subject, "sub-1");
}

#[tokio::test]
async fn losing_the_creation_race_uses_the_winners_key() {
    let (winner, winner_stored) = KeyMaterial::generate(Utc::now()).unwrap();
    let mut store = MockSigningKeyStore::new();
    let mut reads = 0;
    store.expect_signing_keys().times(2).returning(move || {
        reads += 1;
        Ok(if reads == 1 {
            vec![]
        } else {
            vec![winner_stored.clone()]
        })
    });
    store
        .expect_insert_signing_key()
        .times(1)
        .returning(|_| Ok(false));
    let issuer = TokenIssuer::load_or_create(Arc::new(store), TokenSettings::new(ISSUER))
        .await
        .unwrap();
    assert_eq!(issuer.signing_kid(), winner.kid);
}

#[tokio::test]
async fn the_newest_active_key_signs_and_retired_keys_still_verify() {
    let t0 = Utc::now() - TimeDelta::days(3);
    let (_, oldest) = KeyMaterial::generate(t0).unwrap();
    let (middle, middle_stored) = KeyMaterial::generate(t0 + TimeDelta::days(1)).unwrap();
    let (_, mut newest_retired) = KeyMaterial::generate(t0 + TimeDelta::days(2)).unwrap();
    newest_retired.retired_at = Some(Utc::now());
    let store = Arc::new(MemoryKeys::default());
    for key in [&oldest, &middle_stored, &newest_retired] {
        assert!(store.insert_signing_key(key).await.unwrap());
    }
    let issuer = TokenIssuer::load_or_create(store.clone(), TokenSettings::new(ISSUER))
        .await
        .unwrap();
    assert_eq!(issuer.signing_kid(), middle.kid);
    assert_eq!(store.keys.lock().unwrap().len(), 3, "no new key created");
    let kids: Vec<Value> = issuer.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(
        kids,
        [
            json!(newest_retired.kid),
            json!(middle_stored.kid),
            json!(oldest.kid)
        ]
    );

    // A token signed by the retired key (before it was retired) still verifies.
    let retired_only = Arc::new(MemoryKeys::default());
    let mut active = newest_retired.clone();
    active.retired_at = None;
    retired_only.insert_signing_key(&active).await.unwrap();
    let old_signer = TokenIssuer::load_or_create(retired_only, TokenSettings::new(ISSUER))
        .await
        .unwrap();
    let clock = Arc::new(TestClock::new());
    let token = old_signer
        .issue_access_token(
            "sub-1",
            &email("ada@example.com"),
            clock.now(),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    issuer.verifier(clock).verify(&token).await.unwrap();
}

fn test_pem() -> String {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let der = pair.to_pkcs8v1().unwrap();
    let body = STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

#[tokio::test]
async fn a_configured_key_is_used_as_is_and_never_stored() {
    let pem = test_pem();
    let settings = TokenSettings {
        signing_key_pem: Some(SecretString::from(pem.clone())),
        ..TokenSettings::new(ISSUER)
    };
    let mut store = MockSigningKeyStore::new();
    store.expect_signing_keys().never();
    store.expect_insert_signing_key().never();
    let a = TokenIssuer::load_or_create(Arc::new(store), settings.clone())
        .await
        .unwrap();
    let b = TokenIssuer::from_pem(&pem, settings.clone()).unwrap();
    // The kid is the key's RFC 7638 thumbprint: the same on every instance.
    assert_eq!(a.signing_kid(), b.signing_kid());
    assert_eq!(a.signing_kid().len(), 43);
    assert!(!format!("{settings:?}").contains("PRIVATE KEY"));

    let clock = Arc::new(TestClock::new());
    let token = a
        .issue_access_token(
            "sub-1",
            &email("ada@example.com"),
            clock.now(),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    b.verifier(clock).verify(&token).await.unwrap();

    // SEC1 (`openssl ecparam -genkey`) works too.
    {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let sec1 = pair.private_key().as_der().unwrap();
        let pem = format!(
            "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
            STANDARD.encode(sec1.as_ref())
        );
        TokenIssuer::from_pem(&pem, TokenSettings::new(ISSUER)).unwrap();
    }

    let r = TokenIssuer::from_pem("not a pem", TokenSettings::new(ISSUER));
    assert!(matches!(r, Err(SigningKeyError::InvalidConfiguredKey(_))));
    let r = TokenIssuer::from_pem(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        TokenSettings::new(ISSUER),
    );
    assert!(matches!(r, Err(SigningKeyError::InvalidConfiguredKey(_))));
}

// ---------------------------------------------------------------- verifier battery

#[tokio::test]
async fn time_claims_are_checked_with_five_seconds_leeway() {
    let env = env(false).await;
    let now = env.clock.now().timestamp();
    let mut c = env.claims();
    c.exp = now - 6;
    assert!(matches!(
        env.verify_claims(c).await,
        Err(TokenError::Expired)
    ));
    let mut c = env.claims();
    c.exp = now - 4;
    env.verify_claims(c).await.unwrap();

    let mut c = env.claims();
    c.nbf = Some(now + 6);
    assert!(matches!(
        env.verify_claims(c).await,
        Err(TokenError::NotYetValid)
    ));
    let mut c = env.claims();
    c.nbf = Some(now + 4);
    env.verify_claims(c).await.unwrap();

    // A real token expires with the clock.
    let token = env
        .issuer
        .issue_access_token(
            "sub-1",
            &email("ada@example.com"),
            env.clock.now(),
            std::time::Duration::from_secs(900),
        )
        .unwrap();
    env.clock.advance(TimeDelta::seconds(900 + 6));
    assert!(matches!(
        env.verifier.verify(&token).await,
        Err(TokenError::Expired)
    ));
}

#[tokio::test]
async fn issuer_client_and_token_use_are_checked() {
    let env = env(false).await;
    let mut c = env.claims();
    c.iss = "https://evil.example.com".into();
    assert!(matches!(
        env.verify_claims(c).await,
        Err(TokenError::WrongIssuer)
    ));
    let mut c = env.claims();
    c.client_id = Some("another-app".into());
    assert!(matches!(
        env.verify_claims(c).await,
        Err(TokenError::WrongClient)
    ));
    let mut c = env.claims();
    c.client_id = None;
    assert!(matches!(
        env.verify_claims(c).await,
        Err(TokenError::WrongClient)
    ));
    let mut c = env.claims();
    c.token_use = Some("id".into());
    assert!(matches!(
        env.verify_claims(c).await,
        Err(TokenError::WrongTokenUse)
    ));
    let mut c = env.claims();
    c.token_use = None;
    assert!(matches!(
        env.verify_claims(c).await,
        Err(TokenError::WrongTokenUse)
    ));
    env.verify_claims(env.claims()).await.unwrap();
}

#[tokio::test]
async fn alg_none_is_refused() {
    let env = env(false).await;
    let claims = serde_json::to_value(env.claims()).unwrap();
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "none", "typ": "JWT", "kid": env.issuer.signing_kid()}),
        json!({"alg": "None", "kid": env.issuer.signing_kid()}),
    ] {
        let token = format!("{}.{}.", b64(&header), b64(&claims));
        let r = env.verifier.verify(&token).await;
        assert!(
            matches!(r, Err(TokenError::UnsupportedAlgorithm)),
            "{header}: {r:?}"
        );
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let env = env(false).await;
    let jwk = &env.issuer.jwks()["keys"][0];
    let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
    let point: Vec<u8> = [vec![0x04], x, y].concat();
    let jwk_text = serde_json::to_vec(jwk).unwrap();
    for secret in [point.as_slice(), jwk_text.as_slice()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(env.issuer.signing_kid());
        let token = jsonwebtoken::encode(&header, &env.claims(), &EncodingKey::from_secret(secret))
            .unwrap();
        let r = env.verifier.verify(&token).await;
        assert!(matches!(r, Err(TokenError::UnsupportedAlgorithm)), "{r:?}");
    }
}

#[tokio::test]
async fn rs256_headers_are_refused() {
    let env = env(false).await;
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": env.issuer.signing_kid()});
    let claims = serde_json::to_value(env.claims()).unwrap();
    let token = format!(
        "{}.{}.{}",
        b64(&header),
        b64(&claims),
        URL_SAFE_NO_PAD.encode([7u8; 256])
    );
    let r = env.verifier.verify(&token).await;
    assert!(matches!(r, Err(TokenError::UnsupportedAlgorithm)), "{r:?}");
}

#[tokio::test]
async fn unknown_or_missing_kids_are_refused() {
    let env = env(false).await;
    let stranger =
        TokenIssuer::load_or_create(Arc::new(MemoryKeys::default()), TokenSettings::new(ISSUER))
            .await
            .unwrap();
    let token = stranger.sign(&env.claims()).unwrap();
    let r = env.verifier.verify(&token).await;
    assert!(matches!(r, Err(TokenError::UnknownKey)), "{r:?}");

    let (_, claims) = segments(&token);
    let header = json!({"alg": "ES256", "typ": "JWT"});
    let signature = token.rsplit('.').next().unwrap();
    let token = format!("{}.{}.{signature}", b64(&header), b64(&claims));
    let r = env.verifier.verify(&token).await;
    assert!(matches!(r, Err(TokenError::UnknownKey)), "{r:?}");
}

#[tokio::test]
async fn tampering_breaks_the_signature() {
    let env = env(false).await;
    let token = env.issuer.sign(&env.claims()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();

    let (_, mut claims) = segments(&token);
    claims["sub"] = json!(UserId::new().to_string());
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    let r = env.verifier.verify(&tampered).await;
    assert!(matches!(r, Err(TokenError::BadSignature)), "{r:?}");

    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[10] ^= 0x01;
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(signature)
    );
    let r = env.verifier.verify(&tampered).await;
    assert!(matches!(r, Err(TokenError::BadSignature)), "{r:?}");

    // Our kid in the header, signed by another key.
    let stranger =
        TokenIssuer::load_or_create(Arc::new(MemoryKeys::default()), TokenSettings::new(ISSUER))
            .await
            .unwrap();
    let forged = stranger.sign(&env.claims()).unwrap();
    let forged_parts: Vec<&str> = forged.split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], forged_parts[1], forged_parts[2]);
    let r = env.verifier.verify(&forged).await;
    assert!(matches!(r, Err(TokenError::BadSignature)), "{r:?}");
}

#[tokio::test]
async fn garbage_is_malformed() {
    let env = env(false).await;
    let kid = env.issuer.signing_kid();
    let es256 = b64(&json!({"alg": "ES256", "kid": kid}));
    let long = "a".repeat(10_000);
    for token in [
        "garbage",
        "a.b.c",
        "a.b",
        "a.b.c.d",
        "....",
        "%%%.%%%.%%%",
        long.as_str(),
        &format!("{es256}.not-base64!.abc"),
        &format!("{es256}.e30.abc="),
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
    // A syntactically fine token whose signature does not match is a bad signature, whatever
    // its payload holds (nothing unsigned is parsed).
    let not_json = format!("{es256}.{}.abcd", URL_SAFE_NO_PAD.encode("not json"));
    let r = env.verifier.verify(&not_json).await;
    assert!(matches!(r, Err(TokenError::BadSignature)), "{r:?}");

    // Well signed but missing required claims.
    #[derive(serde::Serialize)]
    struct NoExp {
        sub: &'static str,
        iss: &'static str,
    }
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid);
    let key = env.keys.keys.lock().unwrap()[0].private_key.clone();
    let token = jsonwebtoken::encode(
        &header,
        &NoExp {
            sub: "s",
            iss: ISSUER,
        },
        &EncodingKey::from_ec_der(&key),
    )
    .unwrap();
    let r = env.verifier.verify(&token).await;
    assert!(matches!(r, Err(TokenError::Malformed)), "{r:?}");
}

#[tokio::test]
async fn a_new_kid_triggers_one_reload_a_minute() {
    let env = env(false).await;
    // Another instance on the same database rotates to a newer key.
    let (newer, stored) = KeyMaterial::generate(env.clock.now() + TimeDelta::seconds(1)).unwrap();
    env.keys.insert_signing_key(&stored).await.unwrap();
    let other = TokenIssuer::load_or_create(env.keys.clone(), TokenSettings::new(ISSUER))
        .await
        .unwrap();
    assert_eq!(other.signing_kid(), newer.kid);
    let token = other.sign(&env.claims()).unwrap();

    let reads = env.keys.reads();
    env.verifier.verify(&token).await.unwrap();
    assert_eq!(env.keys.reads(), reads + 1, "one reload for the new kid");
    env.verifier.verify(&token).await.unwrap();
    assert_eq!(env.keys.reads(), reads + 1, "known now: no database access");
    // The issuer shares the reloaded keys and signs with the newest one, like the other instance.
    assert_eq!(env.issuer.signing_kid(), newer.kid);
    assert_eq!(env.issuer.jwks()["keys"].as_array().unwrap().len(), 2);

    // A kid that exists nowhere: no second reload within the minute.
    let stranger =
        TokenIssuer::load_or_create(Arc::new(MemoryKeys::default()), TokenSettings::new(ISSUER))
            .await
            .unwrap();
    let unknown = stranger.sign(&env.claims()).unwrap();
    for _ in 0..3 {
        let r = env.verifier.verify(&unknown).await;
        assert!(matches!(r, Err(TokenError::UnknownKey)), "{r:?}");
    }
    assert_eq!(env.keys.reads(), reads + 1);

    env.clock.advance(TimeDelta::seconds(61));
    let unknown = stranger.sign(&env.claims()).unwrap();
    let r = env.verifier.verify(&unknown).await;
    assert!(matches!(r, Err(TokenError::UnknownKey)), "{r:?}");
    assert_eq!(
        env.keys.reads(),
        reads + 2,
        "a minute later: one more reload"
    );
}

#[tokio::test]
async fn a_failing_store_on_reload_is_reported_as_unavailable() {
    let (_, stored) = KeyMaterial::generate(Utc::now()).unwrap();
    let mut store = MockSigningKeyStore::new();
    let mut reads = 0;
    store.expect_signing_keys().times(2).returning(move || {
        reads += 1;
        if reads == 1 {
            Ok(vec![stored.clone()])
        } else {
            Err(mdcreator_domain::StoreError::Unavailable(anyhow::anyhow!(
                "down"
            )))
        }
    });
    let issuer = TokenIssuer::load_or_create(Arc::new(store), TokenSettings::new(ISSUER))
        .await
        .unwrap();
    let clock = Arc::new(TestClock::new());
    let verifier = issuer.verifier(clock.clone());
    let stranger =
        TokenIssuer::load_or_create(Arc::new(MemoryKeys::default()), TokenSettings::new(ISSUER))
            .await
            .unwrap();
    let token = stranger
        .issue_access_token(
            "s",
            &email("ada@example.com"),
            clock.now(),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    let r = verifier.verify(&token).await;
    assert!(matches!(r, Err(TokenError::Unavailable(_))), "{r:?}");
    // Known keys keep working while the store is down.
    let own = issuer
        .issue_access_token(
            "s",
            &email("ada@example.com"),
            clock.now(),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    verifier.verify(&own).await.unwrap();
    // And the dead store is not asked again within the minute.
    let r = verifier.verify(&token).await;
    assert!(matches!(r, Err(TokenError::UnknownKey)), "{r:?}");
}
