//! [`CognitoIdentity`]: the `IdentityProvider` port over a Cognito user pool's public API.

use std::fmt;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::types::{
    AttributeType, AuthFlowType, AuthenticationResultType,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mdcreator_domain::Email;
use mdcreator_domain::identity::{
    IdentityError, IdentityProvider, Profile, SignUp, SignUpOutcome, TokenSet,
};
use secrecy::{ExposeSecret as _, SecretString};

use crate::errors::{Operation, Outcome, failure, outcome};
use crate::settings::{CognitoConfigError, CognitoSettings};

/// Separates the Cognito username from the refresh token in refresh tokens handed out when the
/// app client has a secret (see [`CognitoIdentity`]). Not a base64url character, nor `.`.
const USERNAME_SEPARATOR: char = '~';

/// Accounts in a Cognito user pool: sign-up with the `email` and `name` attributes (the e-mail
/// is the username), `USER_PASSWORD_AUTH` logins, global sign-out, password reset.
///
/// - Calls are not signed with AWS credentials: every operation used here is part of Cognito's
///   public, unauthenticated API (the access token authorizes `GetUser` and `GlobalSignOut`),
///   so the server needs no IAM permissions for it.
/// - Refresh does not rotate: Cognito returns no new refresh token, so [`TokenSet::refresh_token`]
///   is `None` after a refresh and the client keeps the one it has.
/// - With an app-client secret, `REFRESH_TOKEN_AUTH` needs a `SECRET_HASH` over the user's
///   Cognito username, which a refresh request does not carry; login then hands out
///   `<username>~<refresh token>` and refresh splits it again. Without a secret the refresh token
///   is Cognito's own.
/// - `GlobalSignOut` revokes the refresh tokens; access tokens already issued stay valid for
///   this server's local verification until they expire (Cognito's default: one hour).
pub struct CognitoIdentity {
    client: Client,
    client_id: String,
    client_secret: Option<SecretString>,
}

impl fmt::Debug for CognitoIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CognitoIdentity")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

impl CognitoIdentity {
    /// A client for the configured pool, with bounded timeouts and one retry.
    pub async fn connect(settings: &CognitoSettings) -> Result<Self, CognitoConfigError> {
        settings.validate()?;
        let timeout = settings.operation_timeout;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region()?))
            .no_credentials()
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeout.min(Duration::from_secs(3)))
                    .operation_attempt_timeout(timeout / 2)
                    .operation_timeout(timeout)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(2));
        if let Some(url) = settings
            .endpoint_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        {
            loader = loader.endpoint_url(url.trim());
        }
        let config = loader.load().await;
        Ok(Self {
            client: Client::new(&config),
            client_id: settings.client_id.clone(),
            client_secret: settings.client_secret.clone(),
        })
    }

    /// `SECRET_HASH` for `username`, when the app client has a secret.
    fn secret_hash(&self, username: &str) -> Option<String> {
        self.client_secret
            .as_ref()
            .map(|secret| secret_hash(secret.expose_secret(), username, &self.client_id))
    }
}

#[async_trait::async_trait]
impl IdentityProvider for CognitoIdentity {
    #[tracing::instrument(skip_all)]
    async fn sign_up(&self, request: &SignUp) -> Result<SignUpOutcome, IdentityError> {
        let username = request.email.as_str();
        let output = self
            .client
            .sign_up()
            .client_id(&self.client_id)
            .set_secret_hash(self.secret_hash(username))
            .username(username)
            .password(&request.password)
            .user_attributes(attribute("email", username)?)
            .user_attributes(attribute("name", &request.display_name)?)
            .send()
            .await
            .map_err(|e| failure(Operation::SignUp, e))?;
        Ok(SignUpOutcome {
            subject: output.user_sub().to_owned(),
            confirmed: output.user_confirmed(),
        })
    }

    #[tracing::instrument(skip_all)]
    async fn confirm(&self, email: &Email, code: &str) -> Result<(), IdentityError> {
        let result = self
            .client
            .confirm_sign_up()
            .client_id(&self.client_id)
            .set_secret_hash(self.secret_hash(email.as_str()))
            .username(email.as_str())
            .confirmation_code(code)
            .send()
            .await;
        silent_or_failed(Operation::Confirm, result)
    }

    #[tracing::instrument(skip_all)]
    async fn resend_code(&self, email: &Email) -> Result<(), IdentityError> {
        let result = self
            .client
            .resend_confirmation_code()
            .client_id(&self.client_id)
            .set_secret_hash(self.secret_hash(email.as_str()))
            .username(email.as_str())
            .send()
            .await;
        silent_or_failed(Operation::Resend, result)
    }

    #[tracing::instrument(skip_all)]
    async fn login(&self, email: &Email, password: &str) -> Result<TokenSet, IdentityError> {
        let mut request = self
            .client
            .initiate_auth()
            .client_id(&self.client_id)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", email.as_str())
            .auth_parameters("PASSWORD", password);
        if let Some(hash) = self.secret_hash(email.as_str()) {
            request = request.auth_parameters("SECRET_HASH", hash);
        }
        let output = request
            .send()
            .await
            .map_err(|e| failure(Operation::Login, e))?;
        let Some(result) = output.authentication_result() else {
            let challenge = output
                .challenge_name()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default();
            tracing::warn!(
                challenge,
                "Cognito asked for a login challenge this server does not support"
            );
            return Err(IdentityError::Unexpected(anyhow::anyhow!(
                "unsupported Cognito challenge {challenge:?}"
            )));
        };
        let mut tokens = token_set(result)?;
        if self.client_secret.is_some() {
            tokens.refresh_token = tokens.refresh_token.map(|refresh| {
                let username = cognito_username(&tokens.access_token)
                    .unwrap_or_else(|| email.as_str().to_owned());
                format!("{username}{USERNAME_SEPARATOR}{refresh}")
            });
        }
        Ok(tokens)
    }

    #[tracing::instrument(skip_all)]
    async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, IdentityError> {
        let (secret_hash, refresh_token) = if self.client_secret.is_some() {
            let (username, token) = refresh_token
                .split_once(USERNAME_SEPARATOR)
                .ok_or(IdentityError::InvalidRefreshToken)?;
            (self.secret_hash(username), token)
        } else {
            (None, refresh_token)
        };
        let mut request = self
            .client
            .initiate_auth()
            .client_id(&self.client_id)
            .auth_flow(AuthFlowType::RefreshTokenAuth)
            .auth_parameters("REFRESH_TOKEN", refresh_token);
        if let Some(hash) = secret_hash {
            request = request.auth_parameters("SECRET_HASH", hash);
        }
        let output = request
            .send()
            .await
            .map_err(|e| failure(Operation::Refresh, e))?;
        let result = output
            .authentication_result()
            .ok_or(IdentityError::InvalidRefreshToken)?;
        let mut tokens = token_set(result)?;
        // Cognito does not rotate refresh tokens; the client keeps the one it has.
        tokens.refresh_token = None;
        Ok(tokens)
    }

    #[tracing::instrument(skip_all)]
    async fn logout(&self, access_token: &str) -> Result<(), IdentityError> {
        self.client
            .global_sign_out()
            .access_token(access_token)
            .send()
            .await
            .map_err(|e| failure(Operation::Logout, e))?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn forgot_password(&self, email: &Email) -> Result<(), IdentityError> {
        let result = self
            .client
            .forgot_password()
            .client_id(&self.client_id)
            .set_secret_hash(self.secret_hash(email.as_str()))
            .username(email.as_str())
            .send()
            .await;
        silent_or_failed(Operation::Forgot, result)
    }

    #[tracing::instrument(skip_all)]
    async fn reset_password(
        &self,
        email: &Email,
        code: &str,
        new_password: &str,
    ) -> Result<(), IdentityError> {
        self.client
            .confirm_forgot_password()
            .client_id(&self.client_id)
            .set_secret_hash(self.secret_hash(email.as_str()))
            .username(email.as_str())
            .confirmation_code(code)
            .password(new_password)
            .send()
            .await
            .map_err(|e| failure(Operation::Reset, e))?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn profile(&self, access_token: &str) -> Result<Profile, IdentityError> {
        let output = self
            .client
            .get_user()
            .access_token(access_token)
            .send()
            .await
            .map_err(|e| failure(Operation::Profile, e))?;
        let value = |name: &str| {
            output
                .user_attributes()
                .iter()
                .find(|a| a.name() == name)
                .and_then(AttributeType::value)
                .map(str::to_owned)
        };
        let subject = value("sub").unwrap_or_else(|| output.username().to_owned());
        let email = value("email")
            .and_then(|e| Email::parse(&e).ok())
            .ok_or_else(|| {
                IdentityError::Unexpected(anyhow::anyhow!(
                    "the Cognito user has no usable email attribute"
                ))
            })?;
        Ok(Profile {
            subject,
            email,
            display_name: value("name").filter(|n| !n.trim().is_empty()),
        })
    }
}

/// `base64(HMAC-SHA256(client secret, username ‖ client id))`, as Cognito wants it.
pub fn secret_hash(client_secret: &str, username: &str, client_id: &str) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, client_secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(username.as_bytes());
    context.update(client_id.as_bytes());
    STANDARD.encode(context.sign().as_ref())
}

fn attribute(name: &str, value: &str) -> Result<AttributeType, IdentityError> {
    AttributeType::builder()
        .name(name)
        .value(value)
        .build()
        .map_err(|e| IdentityError::Unexpected(e.into()))
}

fn token_set(result: &AuthenticationResultType) -> Result<TokenSet, IdentityError> {
    let access_token = result
        .access_token()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            IdentityError::Unexpected(anyhow::anyhow!("Cognito returned no access token"))
        })?;
    Ok(TokenSet {
        access_token: access_token.to_owned(),
        refresh_token: result.refresh_token().map(str::to_owned),
        id_token: result.id_token().map(str::to_owned),
        expires_in: u64::try_from(result.expires_in()).unwrap_or(0),
    })
}

/// The `username` claim of an access token Cognito just returned (read, not verified: it only
/// feeds the `SECRET_HASH` of later refreshes).
fn cognito_username(access_token: &str) -> Option<String> {
    let payload = access_token.split('.').nth(1)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims
        .get("username")
        .and_then(serde_json::Value::as_str)
        .filter(|u| !u.is_empty() && !u.contains(USERNAME_SEPARATOR))
        .map(str::to_owned)
}

fn silent_or_failed<T, E, R>(
    operation: Operation,
    result: Result<T, aws_sdk_cognitoidentityprovider::error::SdkError<E, R>>,
) -> Result<(), IdentityError>
where
    E: aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) => match outcome(operation, e) {
            Outcome::Silent => Ok(()),
            Outcome::Failed(e) => Err(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hash_matches_cognitos_definition() {
        // python: base64(hmac.new(b"client-secret", b"ada@example.com" + b"client-id", sha256))
        assert_eq!(
            secret_hash("client-secret", "ada@example.com", "client-id"),
            "j91lPRnmFiw7H8DcHgy8tnvbdZiQHe1DEUkCVZkHRQM="
        );
    }

    #[test]
    fn the_username_is_read_from_the_access_token() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"s-1","username":"u-1"}"#);
        assert_eq!(
            cognito_username(&format!("h.{payload}.sig")).as_deref(),
            Some("u-1")
        );
        assert_eq!(cognito_username("garbage"), None);
        let odd = URL_SAFE_NO_PAD.encode(br#"{"username":"a~b"}"#);
        assert_eq!(cognito_username(&format!("h.{odd}.sig")), None);
    }
}
