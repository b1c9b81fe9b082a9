# Cognito user pool for accounts. The server drives every flow through the Cognito API
# (SignUp, ConfirmSignUp, InitiateAuth USER_PASSWORD_AUTH and REFRESH_TOKEN_AUTH, GlobalSignOut,
# ForgotPassword) and verifies access tokens locally against the pool's JWKS, so there is no
# hosted UI, OAuth domain or callback URL here.

resource "aws_cognito_user_pool" "main" {
  name = var.name

  # People sign in with their email address; it is the username.
  username_attributes      = ["email"]
  auto_verified_attributes = ["email"]

  username_configuration {
    case_sensitive = false
  }

  # The same rule the API applies before calling Cognito (8 to 256 characters, see
  # checked_password in the domain crate), so both identity modes accept the same passwords.
  # Length without composition rules, as NIST SP 800-63B recommends.
  password_policy {
    minimum_length                   = 8
    require_lowercase                = false
    require_uppercase                = false
    require_numbers                  = false
    require_symbols                  = false
    temporary_password_validity_days = 7
  }

  account_recovery_setting {
    recovery_mechanism {
      name     = "verified_email"
      priority = 1
    }
  }

  verification_message_template {
    default_email_option = "CONFIRM_WITH_CODE"
  }

  # Cognito's own sender allows about 50 emails a day: fine to start, but switch to SES
  # (email_sending_account = "DEVELOPER" with a verified identity) before real traffic.
  email_configuration {
    email_sending_account = "COGNITO_DEFAULT"
  }

  # The API's auth flows have no MFA challenge step.
  mfa_configuration = "OFF"

  deletion_protection = var.deletion_protection ? "ACTIVE" : "INACTIVE"
}

resource "aws_cognito_user_pool_client" "app" {
  name         = "${var.name}-app"
  user_pool_id = aws_cognito_user_pool.main.id

  # A public client: the server calls InitiateAuth on behalf of web, desktop and script clients
  # alike, and a secret would only add a SECRET_HASH to every call.
  generate_secret = false

  explicit_auth_flows = [
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
  ]

  # "Incorrect username or password" for unknown users too, so login and password reset
  # don't reveal which emails have accounts.
  prevent_user_existence_errors = "ENABLED"

  # Lets GlobalSignOut / RevokeToken invalidate refresh tokens.
  enable_token_revocation = true

  access_token_validity  = 60
  id_token_validity      = 60
  refresh_token_validity = 30

  token_validity_units {
    access_token  = "minutes"
    id_token      = "minutes"
    refresh_token = "days"
  }
}
