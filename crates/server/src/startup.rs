//! Composition root: configuration in, adapters built, services wired, HTTP served.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Server, ServerHandle, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{App, HttpMessage, HttpServer, web};
use actix_web_prom::PrometheusMetricsBuilder;
use anyhow::Context;
use secrecy::ExposeSecret;
use tracing_actix_web::{RequestId, TracingLogger};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use mdcreator_domain::access::Access;
use mdcreator_domain::api_tokens::ApiTokenService;
use mdcreator_domain::documents::DocumentService;
use mdcreator_domain::folders::FolderService;
use mdcreator_domain::identity::{AuthPorts, AuthService};
use mdcreator_domain::invitations::InvitationService;
use mdcreator_domain::members::MemberService;
use mdcreator_domain::ports::{Clock, SystemClock};
use mdcreator_domain::users::UserService;
use mdcreator_domain::values::Limits;
use mdcreator_domain::workspaces::WorkspaceService;
use mdcreator_identity_local::{LocalIdentity, LocalIdentitySettings, TokenIssuer, TokenSettings};
use mdcreator_sql::{SqlSettings, SqlStore};

use crate::config::Settings;
use crate::limiter::InProcessRateLimiter;
use crate::openapi::ApiDoc;
use crate::problem::ApiError;
use crate::routes;
use crate::state::{AppState, KeySet, Readiness};
use crate::telemetry;

/// Installs rustls' process-wide crypto provider (sea-orm brings `ring`, the AWS SDK and fred
/// `aws-lc-rs`; with both present rustls refuses to guess). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A built server, bound to its port, not yet running.
pub struct Application {
    server: Server,
    address: std::net::SocketAddr,
}

impl Application {
    /// Connects the adapters chosen by `settings`, migrates when due, and binds the listener
    /// (`127.0.0.1:0` picks a free port, for tests).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        install_crypto_provider();
        let store = connect(&settings).await?;
        if settings.is_sqlite() || settings.auto_migrate {
            store.migrate().await.context("running migrations")?;
        }
        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("binding {}", settings.listen))?;
        let address = listener.local_addr()?;
        let public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"));
        let state = web::Data::new(wire(&settings, store, &public_url).await?);

        let metrics = PrometheusMetricsBuilder::new("mdcreator")
            .endpoint("/metrics")
            .build()
            .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
        let openapi = ApiDoc::openapi();
        let origins = settings.allowed_origins();
        let max_json = settings.max_json_bytes;
        let max_document = settings.max_document_bytes;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(max_json))
                .wrap(ErrorHandlers::new().default_handler(problem_for_framework_errors))
                .wrap(cors(&origins))
                .wrap(metrics.clone())
                .wrap_fn(|req, srv| {
                    use actix_web::dev::Service;
                    let id = req.extensions().get::<RequestId>().copied();
                    let call = srv.call(req);
                    async move {
                        let mut res = call.await?;
                        if let Some(v) =
                            id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok())
                        {
                            res.headers_mut()
                                .insert(header::HeaderName::from_static("x-request-id"), v);
                        }
                        Ok(res)
                    }
                })
                .wrap(TracingLogger::<telemetry::RequestSpan>::new())
                .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi.clone()))
                .configure(|cfg| routes::configure(cfg, max_document))
        })
        .keep_alive(Duration::from_secs(75))
        .client_request_timeout(Duration::from_secs(10))
        .shutdown_timeout(settings.shutdown_timeout_secs)
        .listen(listener)?
        .run();
        Ok(Self { server, address })
    }

    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Stops the server when called (tests; signals are handled by actix itself).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT, then drains in-flight requests (graceful shutdown).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// `mdcreator migrate`.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let store = connect(settings).await?;
    let pending = store.pending_migrations().await?;
    store.migrate().await?;
    tracing::info!(
        applied = pending,
        backend = store.backend_name(),
        "migrations up to date"
    );
    Ok(())
}

/// `mdcreator healthcheck`: a plain HTTP/1.1 GET of `/healthz` on the listen address.
pub async fn healthcheck(settings: &Settings) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = settings.listen.replace("0.0.0.0", "127.0.0.1");
    let mut stream = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(&address),
    )
    .await
    .context("timed out connecting")??;
    stream
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut reply))
        .await
        .context("timed out reading")??;
    if reply.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        anyhow::bail!(
            "unhealthy: {}",
            String::from_utf8_lossy(&reply[..reply.len().min(64)])
        )
    }
}

async fn connect(settings: &Settings) -> anyhow::Result<SqlStore> {
    if settings.is_sqlite() {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    }
    let sql = SqlSettings {
        max_connections: settings.db_max_connections,
        ..SqlSettings::default()
    };
    SqlStore::connect(&settings.database_url(), &sql)
        .await
        .context("connecting to the database")
}

/// Builds every service over the adapters.
async fn wire(settings: &Settings, store: SqlStore, public_url: &str) -> anyhow::Result<AppState> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let db = Arc::new(store.clone());
    let limiter = Arc::new(InProcessRateLimiter::default());

    let token_settings = TokenSettings {
        issuer: public_url.trim_end_matches('/').to_owned(),
        client_id: settings.client_id.clone(),
        signing_key_pem: settings
            .signing_key
            .as_ref()
            .map(|k| k.expose_secret().to_owned().into()),
    };
    let issuer = Arc::new(
        TokenIssuer::load_or_create(db.clone(), token_settings)
            .await
            .context("loading the token signing key")?,
    );
    let verifier = Arc::new(issuer.verifier(clock.clone()));
    let identity = Arc::new(LocalIdentity::new(
        db.clone(),
        db.clone(),
        issuer.clone(),
        clock.clone(),
        LocalIdentitySettings {
            require_email_confirmation: settings.require_email_confirmation,
            access_token_ttl: Duration::from_secs(settings.access_token_ttl_secs),
            ..LocalIdentitySettings::default()
        },
    ));

    let access = Access::new(db.clone(), db.clone());
    let users = Arc::new(UserService::new(db.clone(), db.clone(), clock.clone()));
    let limits = Limits {
        max_document_bytes: settings.max_document_bytes,
    };
    Ok(AppState {
        auth: AuthService::new(
            AuthPorts {
                identity,
                verifier,
                users: db.clone(),
                api_tokens: db.clone(),
                limiter: limiter.clone(),
                clock: clock.clone(),
            },
            users.clone(),
        ),
        users,
        api_tokens: ApiTokenService::new(db.clone(), clock.clone()),
        workspaces: WorkspaceService::new(db.clone(), access.clone(), db.clone(), clock.clone()),
        members: MemberService::new(db.clone(), access.clone(), db.clone(), clock.clone()),
        invitations: InvitationService::new(
            db.clone(),
            db.clone(),
            db.clone(),
            db.clone(),
            access.clone(),
            db.clone(),
            clock.clone(),
        ),
        folders: FolderService::new(
            db.clone(),
            db.clone(),
            access.clone(),
            db.clone(),
            clock.clone(),
        ),
        documents: DocumentService::new(
            db.clone(),
            db.clone(),
            db.clone(),
            access,
            db.clone(),
            clock.clone(),
            limits,
        ),
        idempotency: db.clone(),
        limiter,
        clock,
        readiness: Arc::new(SqlReadiness(store)),
        keys: Some(Arc::new(IssuerKeys(issuer))),
        requests_per_minute: settings.requests_per_minute,
        max_json_bytes: settings.max_json_bytes,
    })
}

struct SqlReadiness(SqlStore);

#[async_trait::async_trait]
impl Readiness for SqlReadiness {
    async fn check(&self) -> Result<(), String> {
        self.0
            .ping()
            .await
            .map_err(|_| "database unreachable".to_owned())?;
        match self.0.pending_migrations().await {
            Ok(0) => Ok(()),
            Ok(n) => Err(format!("{n} migrations pending; run `mdcreator migrate`")),
            Err(_) => Err("cannot read the migration table".to_owned()),
        }
    }
}

struct IssuerKeys(Arc<TokenIssuer>);

impl KeySet for IssuerKeys {
    fn jwks(&self) -> serde_json::Value {
        self.0.jwks()
    }
}

fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([header::ETAG, header::LOCATION, header::RETRY_AFTER])
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// Errors raised by actix itself (unknown route, wrong method, oversize or broken payload) get a
/// problem body like every other error.
fn problem_for_framework_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let error = match status.as_u16() {
        404 => ApiError::not_found("route_not_found", "no such endpoint"),
        405 => ApiError::new(
            status,
            "method_not_allowed",
            "this endpoint does not take that method",
        ),
        413 => ApiError::new(
            status,
            "body_too_large",
            "the body is larger than this endpoint accepts",
        ),
        408 => ApiError::new(
            status,
            "request_timeout",
            "the request took too long to arrive",
        ),
        s if s < 500 => ApiError::new(status, "bad_request", "the request could not be read"),
        _ => ApiError::new(status, "internal_error", "an unexpected error occurred"),
    };
    let (req, _) = res.into_parts();
    let response: actix_web::HttpResponse<BoxBody> =
        actix_web::ResponseError::error_response(&error);
    let res = ServiceResponse::new(req, response).map_into_right_body::<B>();
    let res: ServiceResponse<EitherBody<B, BoxBody>> = res;
    Ok(ErrorHandlerResponse::Response(res))
}
