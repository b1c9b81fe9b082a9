//! One-time e-mail codes (confirmation, password reset): generation and delivery.

use mdcreator_domain::Email;
use mdcreator_domain::identity::local::CodePurpose;
use rand::Rng as _;

/// Wrong guesses after which a code is void.
pub const MAX_CODE_ATTEMPTS: i32 = 5;

/// Delivers a one-time code to the account's owner.
///
/// The built-in accounts have no mail server: [`LogCodeSender`] writes the code to the log. A
/// mail-sending implementation (or a test capturing the codes) plugs in here.
#[async_trait::async_trait]
pub trait CodeSender: Send + Sync {
    async fn send_code(
        &self,
        email: &Email,
        purpose: CodePurpose,
        code: &str,
    ) -> anyhow::Result<()>;
}

/// Writes codes to the log at `info` (the embedded default, no mail server needed).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogCodeSender;

#[async_trait::async_trait]
impl CodeSender for LogCodeSender {
    async fn send_code(
        &self,
        email: &Email,
        purpose: CodePurpose,
        code: &str,
    ) -> anyhow::Result<()> {
        match purpose {
            CodePurpose::Confirm => tracing::info!(
                email = %email,
                code = %code,
                "confirmation code (no mail sender configured)"
            ),
            CodePurpose::Reset => tracing::info!(
                email = %email,
                code = %code,
                "password reset code (no mail sender configured)"
            ),
        }
        Ok(())
    }
}

/// Six random decimal digits.
pub(crate) fn new_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let code = new_code();
            assert_eq!(code.len(), 6);
            assert!(code.chars().all(|c| c.is_ascii_digit()));
        }
    }
}
