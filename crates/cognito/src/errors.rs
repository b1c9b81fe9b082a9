//! Cognito's error codes translated into the domain's [`IdentityError`], per operation, so that
//! clients see the same behaviour as with the built-in accounts.

use std::error::Error as StdError;
use std::fmt::Debug;

use aws_sdk_cognitoidentityprovider::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use mdcreator_domain::identity::IdentityError;
use mdcreator_domain::ports::RateLimited;

/// What Cognito's throttling errors tell the client to wait (Cognito gives no figure).
pub const RETRY_AFTER_SECS: u64 = 30;

/// The call that failed: some codes mean different things in different calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    SignUp,
    Confirm,
    Resend,
    Login,
    Refresh,
    Logout,
    Forgot,
    Reset,
    Profile,
}

/// How a failed call ends.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The failure is not reported (no account enumeration, harmless repeats).
    Silent,
    Failed(IdentityError),
}

/// Translates a failed SDK call.
pub(crate) fn outcome<E, R>(operation: Operation, error: SdkError<E, R>) -> Outcome
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    let code = match &error {
        SdkError::ServiceError(_) => error.code().map(str::to_owned),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            tracing::warn!(?operation, error = %DisplayErrorContext(&error), "Cognito unreachable");
            return Outcome::Failed(IdentityError::Unavailable(error.into()));
        }
        _ => None,
    };
    match classify(operation, code.as_deref()) {
        Classified::Silent => {
            tracing::debug!(?operation, code, "Cognito error not reported to the client");
            Outcome::Silent
        }
        Classified::Error(make) => {
            let message = error.message().unwrap_or_default().to_owned();
            let mapped = make(message, error.into());
            if matches!(
                mapped,
                IdentityError::Unexpected(_) | IdentityError::Unavailable(_)
            ) {
                tracing::warn!(?operation, code, "unexpected Cognito error");
            }
            Outcome::Failed(mapped)
        }
    }
}

/// The error a failed call returns (for calls that never fail silently).
pub(crate) fn failure<E, R>(operation: Operation, error: SdkError<E, R>) -> IdentityError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    match outcome(operation, error) {
        Outcome::Failed(e) => e,
        Outcome::Silent => IdentityError::Unexpected(anyhow::anyhow!(
            "Cognito {operation:?} failed with an error that has no mapping"
        )),
    }
}

type MakeError = fn(String, anyhow::Error) -> IdentityError;

enum Classified {
    Silent,
    Error(MakeError),
}

/// The mapping itself, from an error code (`None`: not a service error, e.g. a request that
/// could not be built).
fn classify(operation: Operation, code: Option<&str>) -> Classified {
    use Classified::{Error, Silent};
    use Operation::*;
    let Some(code) = code else {
        return Error(|_, e| IdentityError::Unexpected(e));
    };
    match (code, operation) {
        // No account enumeration: unknown (or unsuitable) accounts succeed silently.
        ("UserNotFoundException" | "InvalidParameterException", Forgot | Resend) => Silent,
        // A second confirmation (e.g. a double click) is harmless, like with built-in accounts.
        ("NotAuthorizedException", Confirm) => Silent,
        ("UserNotFoundException" | "InvalidParameterException", Confirm | Reset) => {
            Error(|_, _| IdentityError::CodeMismatch)
        }
        ("UserNotFoundException" | "NotAuthorizedException", Refresh) => {
            Error(|_, _| IdentityError::InvalidRefreshToken)
        }
        ("UserNotFoundException" | "NotAuthorizedException", _) => {
            Error(|_, _| IdentityError::InvalidCredentials)
        }
        ("UsernameExistsException" | "AliasExistsException", _) => {
            Error(|_, _| IdentityError::EmailTaken)
        }
        ("UserNotConfirmedException", _) => Error(|_, _| IdentityError::NotConfirmed),
        ("CodeMismatchException", _) => Error(|_, _| IdentityError::CodeMismatch),
        ("ExpiredCodeException", _) => Error(|_, _| IdentityError::CodeExpired),
        ("InvalidPasswordException", _) => Error(|message, _| {
            IdentityError::WeakPassword(if message.is_empty() {
                "rejected by the user pool's password policy".to_owned()
            } else {
                message
            })
        }),
        (
            "TooManyRequestsException"
            | "LimitExceededException"
            | "TooManyFailedAttemptsException",
            _,
        ) => Error(|_, _| {
            IdentityError::TooManyRequests(RateLimited {
                retry_after_secs: RETRY_AFTER_SECS,
            })
        }),
        // Cognito's own 500: an outage on AWS's side, not a bug here.
        ("InternalErrorException", _) => Error(|_, e| IdentityError::Unavailable(e)),
        _ => Error(|_, e| IdentityError::Unexpected(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(operation: Operation, code: &str) -> Option<IdentityError> {
        match classify(operation, Some(code)) {
            Classified::Silent => None,
            Classified::Error(make) => Some(make("msg".into(), anyhow::anyhow!("source"))),
        }
    }

    #[test]
    fn codes_map_like_the_built_in_accounts() {
        use IdentityError as E;
        use Operation::*;
        type Expected = fn(&E) -> bool;
        let cases: &[(Operation, &str, Expected)] = &[
            (SignUp, "UsernameExistsException", |e| {
                matches!(e, E::EmailTaken)
            }),
            (Login, "NotAuthorizedException", |e| {
                matches!(e, E::InvalidCredentials)
            }),
            (Login, "UserNotFoundException", |e| {
                matches!(e, E::InvalidCredentials)
            }),
            (Login, "UserNotConfirmedException", |e| {
                matches!(e, E::NotConfirmed)
            }),
            (Refresh, "NotAuthorizedException", |e| {
                matches!(e, E::InvalidRefreshToken)
            }),
            (Logout, "NotAuthorizedException", |e| {
                matches!(e, E::InvalidCredentials)
            }),
            (Profile, "NotAuthorizedException", |e| {
                matches!(e, E::InvalidCredentials)
            }),
            (Confirm, "CodeMismatchException", |e| {
                matches!(e, E::CodeMismatch)
            }),
            (Reset, "ExpiredCodeException", |e| {
                matches!(e, E::CodeExpired)
            }),
            (Reset, "UserNotFoundException", |e| {
                matches!(e, E::CodeMismatch)
            }),
            (
                SignUp,
                "InvalidPasswordException",
                |e| matches!(e, E::WeakPassword(m) if m == "msg"),
            ),
            (Login, "TooManyRequestsException", |e| {
                matches!(
                    e,
                    E::TooManyRequests(RateLimited {
                        retry_after_secs: 30
                    })
                )
            }),
            (Forgot, "LimitExceededException", |e| {
                matches!(e, E::TooManyRequests(_))
            }),
            (Confirm, "TooManyFailedAttemptsException", |e| {
                matches!(e, E::TooManyRequests(_))
            }),
            (Login, "InternalErrorException", |e| {
                matches!(e, E::Unavailable(_))
            }),
            (Login, "ResourceNotFoundException", |e| {
                matches!(e, E::Unexpected(_))
            }),
        ];
        for (operation, code, expected) in cases {
            let e =
                mapped(*operation, code).unwrap_or_else(|| panic!("{operation:?} {code}: silent"));
            assert!(expected(&e), "{operation:?} {code}: {e:?}");
        }
    }

    #[test]
    fn unknown_accounts_are_silent_where_they_would_enumerate() {
        for operation in [Operation::Forgot, Operation::Resend] {
            assert!(mapped(operation, "UserNotFoundException").is_none());
            assert!(mapped(operation, "InvalidParameterException").is_none());
            assert!(mapped(operation, "LimitExceededException").is_some());
        }
        assert!(mapped(Operation::Confirm, "NotAuthorizedException").is_none());
    }
}
