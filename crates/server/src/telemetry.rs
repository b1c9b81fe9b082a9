//! Logging: JSON lines in production, readable text in a terminal; `RUST_LOG` filters.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Installs the global subscriber once; later calls are no-ops (tests start many servers).
pub fn init(format: Option<&str>) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,actix_server=warn"));
    let json = match format {
        Some("json") => true,
        Some("text") => false,
        _ => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE);
    let _ = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// The root span of every request: method, route, request id, and the user once known. Errors
/// are logged once, where they are turned into problem responses, not again here.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        if request.path().starts_with("/api/v1/blobs/") {
            // A signed blob URL is a credential: log its route, never its path or query.
            use actix_web::HttpMessage as _;
            let request_id = request
                .extensions()
                .get::<tracing_actix_web::RequestId>()
                .copied();
            return tracing::info_span!(
                "HTTP request",
                http.method = %request.method(),
                http.route = "/api/v1/blobs/{signed}",
                http.status_code = tracing::field::Empty,
                request_id = tracing::field::display(
                    request_id.map(|id| id.to_string()).unwrap_or_default()
                ),
                user_id = tracing::field::Empty,
            );
        }
        tracing_actix_web::root_span!(request, user_id = tracing::field::Empty)
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        let status = match outcome {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        span.record("http.status_code", status.as_u16());
    }
}
