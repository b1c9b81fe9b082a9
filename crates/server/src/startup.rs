//! Composition root: configuration in, adapters built, services wired, HTTP served.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Server, ServerHandle, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{App, HttpMessage, web};
use actix_web_prom::PrometheusMetricsBuilder;
use anyhow::Context;
use secrecy::ExposeSecret;
use tracing_actix_web::{RequestId, TracingLogger};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use mdcreator_blobs_local::FsBlobStore;
use mdcreator_cognito::{CognitoIdentity, CognitoSettings, CognitoTokenVerifier};
use mdcreator_domain::access::Access;
use mdcreator_domain::api_tokens::ApiTokenService;
use mdcreator_domain::attachments::{AttachmentService, BlobPurge, FileSettings};
use mdcreator_domain::blobs::BlobStore;
use mdcreator_domain::collab::tickets::TicketStore;
use mdcreator_domain::comments::{CommentPorts, CommentService};
use mdcreator_domain::context_files::{ContextFilePorts, ContextFileService};
use mdcreator_domain::documents::DocumentService;
use mdcreator_domain::fanout::Fanout;
use mdcreator_domain::feed::UnitOfWork;
use mdcreator_domain::folders::FolderService;
use mdcreator_domain::identity::{AuthPorts, AuthService, IdentityProvider, TokenVerifier};
use mdcreator_domain::invitations::InvitationService;
use mdcreator_domain::members::MemberService;
use mdcreator_domain::notifications::NotificationService;
use mdcreator_domain::ports::{Clock, RateLimiter, SystemClock};
use mdcreator_domain::presence::Presence;
use mdcreator_domain::sync::{
    CommentSources, PokingUnitOfWork, SyncPorts, SyncService, SyncSettings,
};
use mdcreator_domain::users::UserService;
use mdcreator_domain::values::Limits;
use mdcreator_domain::workspaces::WorkspaceService;
use mdcreator_identity_local::{LocalIdentity, LocalIdentitySettings, TokenIssuer, TokenSettings};
use mdcreator_inprocess::{
    InProcessFanout, InProcessPresence, InProcessRateLimiter, InProcessTickets,
};
use mdcreator_redis::RedisClients;
use mdcreator_s3::{S3BlobStore, S3Settings};
use mdcreator_sql::{SqlSettings, SqlStore};

use crate::config::Settings;
use crate::openapi::ApiDoc;
use crate::problem::ApiError;
use crate::routes;
use crate::routes::blobs::LocalBlobs;
use crate::state::{AppState, KeySet, Readiness};
use crate::telemetry;
use crate::upgrade;

/// Installs rustls' process-wide crypto provider (sea-orm brings `ring`, the AWS SDK and fred
/// `aws-lc-rs`; with both present rustls refuses to guess). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A built server, bound to its port, not yet running.
pub struct Application {
    server: Server,
    address: std::net::SocketAddr,
    collab: mdcreator_collab::Hub,
    /// Removes pending uploads never completed; stops with the server.
    sweeper: tokio::task::JoinHandle<()>,
    /// Compacts the sync change feed; stops with the server.
    compactor: tokio::task::JoinHandle<()>,
    /// WebSockets handed from one worker to another, waited for before the HTTP stop.
    handed_over: upgrade::HandedOver,
    shutdown_timeout_secs: u64,
    /// Its update journal is folded into the database once the server has stopped.
    store: SqlStore,
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
        let state = web::Data::new(wire(&settings, store.clone(), &public_url).await?);
        let collab = state.collab.hub.clone();
        let local_blobs = state.local_blobs.clone().map(web::Data::new);
        let sweeper = spawn_upload_sweeper(
            state.clone(),
            Duration::from_secs(settings.upload_sweep_interval_secs),
        );
        let compactor = spawn_feed_compaction(
            state.sync.clone(),
            Duration::from_secs(settings.sync_compaction_interval_secs),
        );

        let metrics = PrometheusMetricsBuilder::new("mdcreator")
            .endpoint("/metrics")
            .build()
            .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
        let openapi = ApiDoc::openapi();
        let origins = settings.allowed_origins();
        let max_json = settings.max_json_bytes;
        let max_document = settings.max_document_bytes;
        let workers = match settings.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let options = upgrade::Options {
            workers,
            keep_alive: Duration::from_secs(75),
            client_request_timeout: Duration::from_secs(10),
            // Signals are handled in `run_until_stopped`, which stops the rooms before HTTP.
            shutdown_timeout_secs: settings.shutdown_timeout_secs,
        };
        let (server, handed_over) = upgrade::server(listener, options, move || {
            App::new()
                .app_data(state.clone())
                .configure(|cfg| {
                    if let Some(blobs) = &local_blobs {
                        cfg.app_data(blobs.clone());
                    }
                })
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
        })?;
        Ok(Self {
            server,
            address,
            collab,
            sweeper,
            compactor,
            handed_over,
            shutdown_timeout_secs: settings.shutdown_timeout_secs,
            store,
        })
    }

    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The collaboration rooms of this instance (tests flush them as SIGTERM would).
    pub fn collab(&self) -> mdcreator_collab::Hub {
        self.collab.clone()
    }

    /// Stops the server when called (tests; signals are handled by actix itself).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT, then shuts down gracefully: first the collaboration rooms
    /// (stored, sockets closed with 1001, Markdown materialized), while the HTTP workers they run
    /// on are still up; then HTTP (stop accepting, drain in-flight requests, and the
    /// WebSockets handed from one worker to another, which actix-server does not count).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let collab = self.collab.clone();
        let http = self.server.handle();
        let (handed_over, drain) = (
            self.handed_over.clone(),
            Duration::from_secs(self.shutdown_timeout_secs),
        );
        let stop = tokio::spawn(async move {
            crate::collab::shutdown_signal().await;
            collab.shutdown().await;
            handed_over.closed(drain).await;
            http.stop(true).await;
        });
        let served = self.server.await;
        stop.abort();
        self.sweeper.abort();
        self.compactor.abort();
        // Nothing appends any more: the journal's files can go (what is left there is folded at
        // the next start anyway).
        if let Err(e) = self.store.fold_journal().await {
            tracing::warn!(error = %e, "cannot fold the update journal at shutdown");
        }
        served
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
        journal_fold_ms: settings.sqlite_journal_fold_ms,
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
    let shared = SharedState::connect(settings).await?;
    // Every write path pokes sync clients, on every instance.
    // Pokes are queued by the commit and published beside it (coalesced per workspace).
    let (poking, publisher) = PokingUnitOfWork::queued(db.clone(), shared.fanout.clone());
    tokio::spawn(publisher.run());
    let uow: Arc<dyn UnitOfWork> = Arc::new(poking);
    let limiter = shared.limiter.clone();

    let (identity, verifier, keys) = match settings.cognito()? {
        Some(cognito) => cognito_auth(&cognito, clock.clone()).await?,
        None => local_auth(settings, db.clone(), public_url, clock.clone()).await?,
    };

    let access = Access::new(db.clone(), db.clone());
    let users = Arc::new(UserService::new(db.clone(), db.clone(), clock.clone()));
    let limits = Limits {
        max_document_bytes: settings.max_document_bytes,
    };
    let collab = crate::collab::CollabState::build(
        settings,
        db.clone(),
        access.clone(),
        shared.presence.clone(),
        shared.fanout.clone(),
        clock.clone(),
        limits,
        shared.tickets.clone(),
        uow.clone(),
    );
    let (blobs, local_blobs) = blob_store(settings, public_url).await?;
    let files = FileSettings {
        max_upload_bytes: settings.max_upload_bytes,
        workspace_quota_bytes: settings.workspace_quota_bytes,
        upload_ttl: Duration::from_secs(settings.upload_url_ttl_secs),
        sweep_grace: Duration::from_secs(settings.upload_sweep_grace_secs),
        ..FileSettings::default()
    };
    let attachments = AttachmentService::new(
        db.clone(),
        db.clone(),
        blobs.clone(),
        access.clone(),
        uow.clone(),
        clock.clone(),
        files,
    );
    let context_files = ContextFileService::new(
        ContextFilePorts {
            files: db.clone(),
            storage: db.clone(),
            documents: db.clone(),
            blobs: blobs.clone(),
            uow: uow.clone(),
            clock: clock.clone(),
        },
        access.clone(),
        files,
    );
    let comments = CommentService::new(
        CommentPorts {
            comments: db.clone(),
            documents: db.clone(),
            users: db.clone(),
            uow: uow.clone(),
            clock: clock.clone(),
        },
        access.clone(),
    );
    let notifications = NotificationService::new(db.clone(), uow.clone(), clock.clone());
    let sync = Arc::new(
        SyncService::new(
            SyncPorts {
                devices: db.clone(),
                feed: db.clone(),
                documents: db.clone(),
                versions: db.clone(),
                folders: db.clone(),
                context_files: db.clone(),
                storage: db.clone(),
                blobs: blobs.clone(),
                files,
                workspaces: db.clone(),
                access: access.clone(),
                uow: uow.clone(),
                fanout: shared.fanout.clone(),
                problems: Arc::new(crate::problem::SyncProblems),
                live: Some(Arc::new(collab.hub.clone())),
                clock: clock.clone(),
                limits,
            },
            SyncSettings {
                retention: chrono::Duration::days(i64::from(settings.sync_retention_days)),
                ..SyncSettings::default()
            },
        )
        .with_comments(CommentSources {
            comments: db.clone(),
            users: db.clone(),
        }),
    );
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
        workspaces: WorkspaceService::new(db.clone(), access.clone(), uow.clone(), clock.clone()),
        members: MemberService::new(db.clone(), access.clone(), uow.clone(), clock.clone()),
        invitations: InvitationService::new(
            db.clone(),
            db.clone(),
            db.clone(),
            db.clone(),
            access.clone(),
            uow.clone(),
            clock.clone(),
        ),
        folders: FolderService::new(
            db.clone(),
            db.clone(),
            access.clone(),
            uow.clone(),
            clock.clone(),
        ),
        documents: DocumentService::new(
            db.clone(),
            db.clone(),
            db.clone(),
            access,
            uow.clone(),
            clock.clone(),
            limits,
        )
        .with_live_documents(Arc::new(collab.hub.clone()))
        .with_blob_purge(BlobPurge::new(db.clone(), blobs)),
        attachments,
        context_files,
        comments,
        notifications,
        sync,
        local_blobs,
        idempotency: db.clone(),
        limiter,
        fanout: shared.fanout,
        presence: shared.presence,
        collab,
        clock,
        readiness: Arc::new(SqlReadiness {
            store,
            redis: shared.redis,
        }),
        keys,
        requests_per_minute: settings.requests_per_minute,
        max_json_bytes: settings.max_json_bytes,
    })
}

/// The blob store: S3 when a bucket is configured, else files under `<data_dir>/blobs` served
/// through the server's own signed `/api/v1/blobs/…` URLs.
async fn blob_store(
    settings: &Settings,
    public_url: &str,
) -> anyhow::Result<(Arc<dyn BlobStore>, Option<LocalBlobs>)> {
    let bucket = settings.s3_bucket.as_deref().map(str::trim);
    if let Some(bucket) = bucket.filter(|b| !b.is_empty()) {
        let s3 = S3BlobStore::connect(&S3Settings {
            bucket: bucket.to_owned(),
            region: settings.aws_region.clone(),
            endpoint_url: settings.aws_endpoint_url.clone(),
            force_path_style: settings.s3_force_path_style,
            access_key_id: settings.s3_access_key_id.clone(),
            secret_access_key: settings.s3_secret_access_key.clone(),
            server_side_encryption: settings.s3_server_side_encryption.clone(),
            sse_kms_key_id: settings.s3_sse_kms_key_id.clone(),
            ..S3Settings::default()
        })
        .await
        .context("configuring S3")?;
        return Ok((Arc::new(s3), None));
    }
    let base_url = format!("{}/api/v1/blobs", public_url.trim_end_matches('/'));
    let secret = settings
        .blob_signing_key
        .as_ref()
        .map(|k| k.expose_secret().as_bytes().to_vec());
    let local = Arc::new(
        FsBlobStore::open(
            settings.data_dir.join("blobs"),
            &base_url,
            secret.as_deref(),
        )
        .context("opening the blob directory")?,
    );
    Ok((local.clone(), Some(LocalBlobs(local))))
}

/// Compacts the sync change feed every `interval` (at start too), until aborted.
fn spawn_feed_compaction(
    sync: Arc<SyncService>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval.max(Duration::from_secs(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(e) = sync.compact().await {
                tracing::warn!(error = ?e, "compacting the change feed failed");
            }
        }
    })
}

/// Sweeps pending uploads never completed, every `interval`, until aborted.
fn spawn_upload_sweeper(
    state: web::Data<AppState>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval.max(Duration::from_secs(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match state.attachments.sweep(500).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(swept = n, "expired attachment uploads removed"),
                Err(e) => tracing::warn!(error = ?e, "sweeping attachment uploads failed"),
            }
            match state.context_files.sweep(500).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(swept = n, "expired context-file uploads removed"),
                Err(e) => tracing::warn!(error = ?e, "sweeping context-file uploads failed"),
            }
        }
    })
}

/// The state instances share: in Redis when `redis_url` is set, in process otherwise.
struct SharedState {
    fanout: Arc<dyn Fanout>,
    presence: Arc<dyn Presence>,
    limiter: Arc<dyn RateLimiter>,
    /// WebSocket tickets: any instance takes any instance's tickets through Redis.
    tickets: Arc<dyn TicketStore>,
    redis: Option<RedisClients>,
}

impl SharedState {
    async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let url = settings.redis_url.as_deref().map(str::trim);
        let Some(url) = url.filter(|u| !u.is_empty()) else {
            return Ok(Self {
                fanout: Arc::new(InProcessFanout::default()),
                presence: Arc::new(InProcessPresence::default()),
                limiter: Arc::new(InProcessRateLimiter::default()),
                tickets: Arc::new(InProcessTickets::default()),
                redis: None,
            });
        };
        // Fails only on a malformed URL; an unreachable Redis is retried in the background.
        let redis = mdcreator_redis::connect(url)
            .await
            .context("configuring Redis")?;
        Ok(Self {
            fanout: Arc::new(redis.fanout()),
            presence: Arc::new(redis.presence()),
            limiter: Arc::new(redis.rate_limiter()),
            tickets: Arc::new(redis.tickets()),
            redis: Some(redis),
        })
    }
}

struct SqlReadiness {
    store: SqlStore,
    /// Checked too when configured.
    redis: Option<RedisClients>,
}

#[async_trait::async_trait]
impl Readiness for SqlReadiness {
    async fn check(&self) -> Result<(), String> {
        self.store
            .ping()
            .await
            .map_err(|_| "database unreachable".to_owned())?;
        match self.store.pending_migrations().await {
            Ok(0) => {}
            Ok(n) => return Err(format!("{n} migrations pending; run `mdcreator migrate`")),
            Err(_) => return Err("cannot read the migration table".to_owned()),
        }
        if let Some(redis) = &self.redis {
            redis
                .ping()
                .await
                .map_err(|_| "redis unreachable".to_owned())?;
        }
        Ok(())
    }
}

/// What authenticates users: the identity provider, its token verifier and, for the built-in
/// issuer only, the keys that `/.well-known/jwks.json` publishes.
type Authentication = (
    Arc<dyn IdentityProvider>,
    Arc<dyn TokenVerifier>,
    Option<Arc<dyn KeySet>>,
);

/// Built-in accounts: the server's own issuer, keys shared through the database.
async fn local_auth(
    settings: &Settings,
    db: Arc<SqlStore>,
    public_url: &str,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Authentication> {
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
    Ok((identity, verifier, Some(Arc::new(IssuerKeys(issuer)))))
}

/// AWS Cognito: accounts in the user pool, access tokens checked against its JWKS. Users are
/// provisioned on their first authenticated call (from the token's `sub` and `GetUser`).
async fn cognito_auth(
    settings: &CognitoSettings,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Authentication> {
    let identity = CognitoIdentity::connect(settings)
        .await
        .context("configuring Cognito")?;
    let verifier =
        CognitoTokenVerifier::new(settings, clock).context("configuring the Cognito verifier")?;
    tracing::info!(
        user_pool = %settings.user_pool_id,
        issuer = %verifier.issuer(),
        "accounts: AWS Cognito"
    );
    Ok((Arc::new(identity), Arc::new(verifier), None))
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
    // Routes declared per method (`#[get]`, `#[post]`) fall through to "not found" when only the
    // method is wrong; a path that some route matches is a 405.
    let known_path = status == StatusCode::NOT_FOUND
        && res
            .request()
            .resource_map()
            .has_resource(res.request().path());
    let error = match status.as_u16() {
        404 if known_path => ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not take that method",
        ),
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
