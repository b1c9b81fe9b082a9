//! `GET /sync/events`: server-sent events. `event: changes` with `{"workspace_id", "seq"}`
//! whenever a workspace of the caller advances (on any instance), and a `: keep-alive` comment
//! every 15 s so that proxies keep the connection open.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, get, web};
use futures::{StreamExt, stream};

use mdcreator_domain::sync::Poke;

use crate::extract::Authenticated;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

const KEEP_ALIVE: Duration = Duration::from_secs(15);

enum Frame {
    Poke(Poke),
    KeepAlive,
}

/// A stream of pokes: pull when one arrives.
#[utoipa::path(tag = "sync", security(("bearer" = [])), responses(
    (status = 200, content_type = "text/event-stream", description = "`event: changes` / `data: {\"workspace_id\": …, \"seq\": …}`", body = String),
    (status = 503, body = Problem),
))]
#[get("/sync/events")]
pub async fn events(
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let pokes = state.sync.pokes(&auth.caller).await?;
    let ticks = stream::unfold(
        tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE),
        |mut interval| async move {
            interval.tick().await;
            Some((Frame::KeepAlive, interval))
        },
    );
    // Ends with the pokes (fan-out gone): the client reconnects and subscribes again.
    let pokes = pokes
        .map(|p| Some(Frame::Poke(p)))
        .chain(stream::once(async { None }));
    let frames = stream::select(pokes, ticks.map(Some))
        .take_while(|f| std::future::ready(f.is_some()))
        .filter_map(std::future::ready);
    // The first bytes go out once every subscription is in place.
    let body = stream::once(async { Frame::KeepAlive })
        .map(|_| Bytes::from_static(b": connected\n\n"))
        .chain(frames.map(|frame| match frame {
            Frame::KeepAlive => Bytes::from_static(b": keep-alive\n\n"),
            Frame::Poke(poke) => Bytes::from(format!(
                "event: changes\ndata: {}\n\n",
                serde_json::to_string(&poke).unwrap_or_default()
            )),
        }))
        .map(Ok::<_, Infallible>);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}
