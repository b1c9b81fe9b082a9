//! The HTTP server, with WebSocket connections served without actix-http's HTTP/1 dispatcher.
//!
//! actix-http's dispatcher allocates an 8 KiB read and an 8 KiB write buffer per connection and
//! keeps both for as long as the connection lives. A collaboration socket can idle for hours, so
//! those two buffers were over half of an idle socket's memory. Here a WebSocket request
//! (`Upgrade: websocket`, and `CONNECT`, which actix-http treats alike) is handed over with its
//! socket once its head is parsed: the same App answers it, its request body is read straight
//! from the socket (through one scratch buffer per worker thread) and its response is written
//! straight to it, so nothing is held between reads and writes. Every other request takes
//! actix-http's usual path.
//!
//! Each worker builds the App once; the usual path and the WebSocket path share that instance.

use std::cell::RefCell;
use std::future::poll_fn;
use std::net::TcpListener;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use actix_codec::{Encoder, Framed};
use actix_http::body::{BoxBody, MessageBody};
use actix_http::error::PayloadError;
use actix_http::h1::{Codec, Message};
use actix_http::{BoxedPayloadStream, HttpService, Payload, Request, Response};
use actix_service::{IntoServiceFactory, Service, ServiceFactory, fn_factory, fn_service};
use actix_web::dev::{AppConfig, Server, ServiceResponse};
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;

/// How the HTTP server runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub workers: usize,
    pub keep_alive: Duration,
    pub client_request_timeout: Duration,
    pub shutdown_timeout_secs: u64,
}

/// Bytes of response gathered into one write when several frames are ready at once.
const WRITE_BATCH: usize = 64 * 1024;
/// How long a finished connection is still read before it is closed (see `serve_websocket`).
const LINGER: Duration = Duration::from_secs(5);
/// Bytes read from a WebSocket per read.
const READ_CHUNK: usize = 16 * 1024;
/// A write that takes longer ends the connection. A client that stops reading while its send
/// buffer is full would otherwise hold its connection (and whatever its socket has queued) for as
/// long as its TCP stack answers, since the response body is only polled between writes.
const WRITE_STALL: Duration = Duration::from_secs(60);

thread_local! {
    /// One read buffer per worker thread, lent to a socket for one read at a time.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// Serves the Apps `factory` builds (one per worker) on `listener`. Signals are not handled
/// here (see `run_until_stopped`).
pub fn server<F, I, S, B>(
    listener: TcpListener,
    options: Options,
    factory: F,
) -> std::io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<
            Request,
            Config = AppConfig,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    S::Future: 'static,
    <S::Service as Service<Request>>::Future: 'static,
    B: MessageBody + 'static,
{
    let address = listener.local_addr()?;
    let builder = actix_server::Server::build();
    let shutdown = builder.graceful_shutdown_signal();
    Ok(builder
        .workers(options.workers)
        .disable_signals()
        .shutdown_timeout(options.shutdown_timeout_secs)
        .listen("mdcreator-http", listener, move || {
            let app = factory().into_factory();
            // Built once per worker, by whichever of the two paths asks first.
            let shared = async move {
                match app.new_service(AppConfig::default()).await {
                    Ok(service) => Ok(Rc::new(service)),
                    Err(()) => {
                        tracing::error!("the App could not be built");
                        Err(())
                    }
                }
            }
            .boxed_local()
            .shared();
            let usual = {
                let shared = shared.clone();
                fn_factory(move || shared.clone().map(|app| app.map(Shared)))
            };
            let websocket = fn_factory(move || {
                shared.clone().map(|app| {
                    app.map(|app| {
                        fn_service(move |(req, framed): (Request, Framed<TcpStream, Codec>)| {
                            serve_websocket(app.clone(), req, framed).map(Ok::<_, actix_web::Error>)
                        })
                    })
                })
            });
            let signal = shutdown.clone();
            HttpService::build()
                .keep_alive(options.keep_alive)
                .client_request_timeout(options.client_request_timeout)
                // Small frames (collaboration updates, SSE events) go out at once: with Nagle's
                // algorithm a second small write waits for the client's delayed ACK (~40 ms).
                .tcp_nodelay(true)
                .local_addr(address)
                .graceful_shutdown_signal(move || {
                    let signal = signal.clone();
                    async move { signal.notified().await }
                })
                .upgrade(websocket)
                .finish(usual)
                .tcp()
        })?
        .run())
}

/// The worker's App, called from both paths.
struct Shared<S>(Rc<S>);

impl<S: Service<Request>> Service<Request> for Shared<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, req: Request) -> Self::Future {
        self.0.call(req)
    }
}

/// Answers one WebSocket request on its own socket, then ends the connection.
async fn serve_websocket<S, B>(app: Rc<S>, req: Request, framed: Framed<TcpStream, Codec>)
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let parts = framed.into_parts();
    let mut codec = parts.codec;
    // What the client sent after the head already belongs to the body. Copied, so that the
    // dispatcher's buffers are freed here.
    let early = (!parts.read_buf.is_empty()).then(|| Bytes::copy_from_slice(&parts.read_buf));
    drop((parts.read_buf, parts.write_buf));
    let (read, mut write) = parts.io.into_split();
    let read = Rc::new(RefCell::new(read));
    let body: BoxedPayloadStream = Box::pin(SocketBody {
        early,
        read: read.clone(),
    });
    let (req, _) = req.replace_payload(Payload::from(body));

    let answer = async {
        poll_fn(|cx| app.poll_ready(cx)).await?;
        app.call(req).await
    };
    let response: Response<BoxBody> = match answer.await {
        Ok(res) => Response::from(res).map_into_boxed_body(),
        Err(e) => Response::from(e),
    };
    let (head, body) = response.into_parts();
    let mut out = BytesMut::new();
    let written = async {
        codec.encode(Message::Item((head, body.size())), &mut out)?;
        let mut body = pin!(body);
        loop {
            let Some(first) = poll_fn(|cx| body.as_mut().poll_next(cx)).await else {
                break;
            };
            codec.encode(Message::Chunk(Some(first.map_err(body_error)?)), &mut out)?;
            // Frames that are ready too go out in the same write.
            while out.len() < WRITE_BATCH {
                match poll_fn(|cx| body.as_mut().poll_next(cx)).now_or_never() {
                    Some(Some(chunk)) => {
                        codec.encode(Message::Chunk(Some(chunk.map_err(body_error)?)), &mut out)?
                    }
                    _ => break,
                }
            }
            write_all_within(&mut write, &out, WRITE_STALL).await?;
            // Not kept between writes: an idle socket holds no buffer.
            out = BytesMut::new();
        }
        codec.encode(Message::Chunk(None), &mut out)?;
        write_all_within(&mut write, &out, WRITE_STALL).await?;
        write.shutdown().await
    };
    if let Err(e) = written.await {
        tracing::debug!(error = %e, "a WebSocket connection ended while writing");
        return;
    }
    // Closing a socket with unread input resets the connection, and the reset can overtake the
    // last frames (the close frame) on their way to the client: read, and drop, what the client
    // still sends until it closes too, for a while.
    let drained = poll_fn(|cx| {
        loop {
            match ready!(read_once(&read, cx)) {
                Ok(bytes) if !bytes.is_empty() => continue,
                _ => return Poll::Ready(()),
            }
        }
    });
    let _ = tokio::time::timeout(LINGER, drained).await;
}

/// Writes all of `bytes`, or fails with `TimedOut` when that takes longer than `limit`.
async fn write_all_within<W: AsyncWrite + Unpin>(
    write: &mut W,
    bytes: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    match tokio::time::timeout(limit, write.write_all(bytes)).await {
        Ok(written) => written,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client took nothing for too long",
        )),
    }
}

/// One read from the socket into this thread's scratch buffer; the bytes read, empty at the end.
fn read_once(read: &RefCell<OwnedReadHalf>, cx: &mut Context<'_>) -> Poll<std::io::Result<Bytes>> {
    SCRATCH.with_borrow_mut(|scratch| {
        let mut buf = ReadBuf::new(scratch);
        ready!(Pin::new(&mut *read.borrow_mut()).poll_read(cx, &mut buf))?;
        Poll::Ready(Ok(Bytes::copy_from_slice(buf.filled())))
    })
}

/// A response body that failed mid-way ends the connection.
fn body_error(e: Box<dyn std::error::Error>) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A request body read from the socket (shared with [`serve_websocket`], which drains it once
/// the response is written).
struct SocketBody {
    early: Option<Bytes>,
    read: Rc<RefCell<OwnedReadHalf>>,
}

impl Stream for SocketBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(early) = this.early.take() {
            return Poll::Ready(Some(Ok(early)));
        }
        match ready!(read_once(&this.read, cx)) {
            Ok(bytes) if bytes.is_empty() => Poll::Ready(None),
            Ok(bytes) => Poll::Ready(Some(Ok(bytes))),
            Err(e) => Poll::Ready(Some(Err(PayloadError::Io(e)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_does_not_take_fails_after_the_limit() {
        let limit = Duration::from_secs(60);
        // A client that reads: everything is written.
        let (mut ours, mut theirs) = tokio::io::duplex(16);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).await.map(|_| got.len())
        });
        write_all_within(&mut ours, &[7; 64], limit).await.unwrap();
        drop(ours);
        assert_eq!(reader.await.unwrap().unwrap(), 64);
        // A client that reads nothing: the write gives up once the limit has passed, not before.
        let (mut ours, _theirs) = tokio::io::duplex(16);
        let started = tokio::time::Instant::now();
        let err = write_all_within(&mut ours, &[7; 64], limit)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), limit);
    }
}
