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
//!
//! Every document's WebSockets are served by one worker, its *home* (picked from the document's
//! id), so that a room and all of its sockets share a thread: an update then reaches the room
//! and the room's other sockets without waking another thread. A socket accepted by another
//! worker is handed to the home once its head is parsed: the socket itself (no proxying), its
//! head re-encoded (parsed again there by the same codec) and whatever the client sent after it.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::net::TcpListener;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use actix_codec::{Decoder, Encoder, Framed};
use actix_http::body::{BoxBody, MessageBody};
use actix_http::error::PayloadError;
use actix_http::h1::{Codec, Message};
use actix_http::{
    BoxedPayloadStream, HttpService, KeepAlive, Payload, Request, Response, ServiceConfig,
};
use actix_service::{IntoServiceFactory, Service, ServiceFactory, fn_factory, fn_service};
use actix_web::dev::{AppConfig, Server, ServiceResponse};
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::Stream;
use futures::future::LocalBoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::mpsc;
use uuid::Uuid;

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
    /// This worker's index among the homes, once its App is built (see [`Homes`]).
    static HOME: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Serves the Apps `factory` builds (one per worker) on `listener`. Signals are not handled
/// here (see `run_until_stopped`).
pub fn server<F, I, S, B>(
    listener: TcpListener,
    options: Options,
    factory: F,
) -> std::io::Result<(Server, HandedOver)>
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
    let homes = Arc::new(Homes {
        workers: options.workers,
        doors: Mutex::new(Vec::new()),
        handed_over: AtomicUsize::new(0),
    });
    let handed_over = HandedOver(homes.clone());
    let builder = actix_server::Server::build();
    let shutdown = builder.graceful_shutdown_signal();
    let server = builder
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
            let homes = homes.clone();
            let websocket = fn_factory(move || {
                let homes = homes.clone();
                shared.clone().map(move |app| {
                    app.map(|app| {
                        homes.settle_here(arrivals(app.clone(), options, address));
                        fn_service(move |(req, framed): (Request, Framed<TcpStream, Codec>)| {
                            route_websocket(homes.clone(), app.clone(), req, framed)
                                .map(Ok::<_, actix_web::Error>)
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
        .run();
    Ok((server, handed_over))
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

/// The workers' doors, by home index: where a worker hands the WebSockets it accepted for
/// another worker's documents.
struct Homes {
    /// How many workers the server runs: sockets are handed over only once each has a door, so
    /// that a document's home never changes while the server runs (unless a worker dies).
    workers: usize,
    doors: Mutex<Vec<mpsc::UnboundedSender<Arrival>>>,
    /// WebSockets handed from one worker to another and not yet closed.
    handed_over: AtomicUsize,
}

/// The WebSockets one worker handed to another: actix-server's graceful stop waits for the
/// connections each worker serves itself, and a handed-over one ended on its first worker at
/// once, so they are waited for here, before the stop.
#[derive(Clone)]
pub struct HandedOver(Arc<Homes>);

impl HandedOver {
    /// How many are open.
    pub fn open(&self) -> usize {
        self.0.handed_over.load(Ordering::Acquire)
    }

    /// Waits until every handed-over WebSocket has closed, or `limit`.
    pub async fn closed(&self, limit: Duration) {
        let waited = async {
            while self.open() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(limit, waited).await;
    }
}

/// Serves a WebSocket handed over from another worker: its socket, then its head re-encoded
/// followed by what the client sent after it.
type Arrive = Rc<dyn Fn(TcpStream, BytesMut) -> LocalBoxFuture<'static, ()>>;

/// A WebSocket on its way to its home.
struct Arrival {
    io: std::net::TcpStream,
    head: BytesMut,
    _counted: Counted,
}

/// Counts a handed-over WebSocket in [`Homes::handed_over`] until it closes.
struct Counted(Arc<Homes>);

impl Counted {
    fn new(homes: Arc<Homes>) -> Counted {
        homes.handed_over.fetch_add(1, Ordering::AcqRel);
        Counted(homes)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.handed_over.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Homes {
    /// Gives this worker a door (the first slot whose worker is gone, or a new one) and starts
    /// serving what arrives through it. Once per worker thread.
    fn settle_here(&self, serve: Arrive) {
        if HOME.get().is_some() {
            return;
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<Arrival>();
        let index = {
            let mut doors = self.doors.lock().unwrap_or_else(PoisonError::into_inner);
            match doors.iter().position(mpsc::UnboundedSender::is_closed) {
                Some(i) => {
                    doors[i] = tx;
                    i
                }
                None => {
                    doors.push(tx);
                    doors.len() - 1
                }
            }
        };
        HOME.set(Some(index));
        // The task owns `serve` (and so the App): it goes with the worker's runtime.
        actix_rt::spawn(async move {
            while let Some(arrival) = rx.recv().await {
                actix_rt::spawn(arrive(serve.clone(), arrival));
            }
        });
    }

    /// The door of the document's home when it is another worker; `None` to serve here (this
    /// worker is the home, the path names no document, or not every worker has a door yet).
    fn elsewhere(&self, path: &str) -> Option<mpsc::UnboundedSender<Arrival>> {
        let document = document_of(path)?;
        let here = HOME.get()?;
        let doors = self.doors.lock().unwrap_or_else(PoisonError::into_inner);
        if doors.len() < self.workers.max(2) {
            return None;
        }
        let home = (document.as_u128() % doors.len() as u128) as usize;
        // A closed door: that worker is gone (until it restarts), so served here.
        (home != here && !doors[home].is_closed()).then(|| doors[home].clone())
    }
}

/// The document a WebSocket path names: `/ws/documents/{id}` or `/ws/documents/{id}/{id}`.
fn document_of(path: &str) -> Option<Uuid> {
    let rest = path.strip_prefix("/ws/documents/")?;
    Uuid::parse_str(rest.split('/').next()?).ok()
}

/// Serves a WebSocket request here, or hands its socket to its document's home.
async fn route_websocket<S, B>(
    homes: Arc<Homes>,
    app: Rc<S>,
    req: Request,
    framed: Framed<TcpStream, Codec>,
) where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let parts = framed.into_parts();
    // The dispatcher's write buffer (8 KiB) is not needed on either path: freed here, not at
    // the end of the connection.
    drop(parts.write_buf);
    let Some(door) = homes.elsewhere(req.path()) else {
        return serve_websocket(app, req, parts.io, parts.codec, parts.read_buf).await;
    };
    let mut head = encode_head(&req);
    head.extend_from_slice(&parts.read_buf);
    drop((req, parts.read_buf));
    let io = match parts.io.into_std() {
        Ok(io) => io,
        Err(e) => {
            tracing::debug!(error = %e, "a WebSocket could not be taken off its worker");
            return;
        }
    };
    let arrival = Arrival {
        io,
        head,
        _counted: Counted::new(homes.clone()),
    };
    if door.send(arrival).is_err() {
        // That worker stopped since `elsewhere` looked: the connection is closed.
        tracing::debug!("a WebSocket's home stopped while it was handed over");
    }
}

/// Serves a WebSocket handed over to this worker.
async fn arrive(serve: Arrive, arrival: Arrival) {
    let Arrival { io, head, _counted } = arrival;
    match TcpStream::from_std(io) {
        Ok(io) => serve(io, head).await,
        Err(e) => tracing::debug!(error = %e, "a WebSocket could not be served on this worker"),
    }
}

/// The request's head as the client could have sent it, for the home's codec to parse again.
fn encode_head(req: &Request) -> BytesMut {
    use std::fmt::Write as _;
    let mut out = BytesMut::with_capacity(512);
    // Writing to a `BytesMut` cannot fail.
    let _ = write!(
        out,
        "{} {} {:?}\r\n",
        req.method(),
        req.uri(),
        req.version()
    );
    for (name, value) in req.head().headers.iter() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// How this worker serves WebSockets: parses the head again with a codec of the same settings
/// as the worker's HTTP service, then answers as [`serve_websocket`].
fn arrivals<S, B>(app: Rc<S>, options: Options, address: std::net::SocketAddr) -> Arrive
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    let config = ServiceConfig::new(
        KeepAlive::from(options.keep_alive),
        options.client_request_timeout,
        Duration::ZERO,
        false,
        Some(address),
    );
    Rc::new(move |io: TcpStream, mut buf: BytesMut| {
        let (app, mut codec) = (app.clone(), Codec::new(config.clone()));
        async move {
            let mut req = match codec.decode(&mut buf) {
                Ok(Some(Message::Item(req))) => req,
                _ => {
                    tracing::warn!("a WebSocket's head did not parse again");
                    return;
                }
            };
            req.head_mut().peer_addr = io.peer_addr().ok();
            serve_websocket(app, req, io, codec, buf).await;
        }
        .boxed_local()
    })
}

/// Answers one WebSocket request on its own socket, then ends the connection.
async fn serve_websocket<S, B>(
    app: Rc<S>,
    req: Request,
    io: TcpStream,
    mut codec: Codec,
    read_buf: BytesMut,
) where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    // What the client sent after the head already belongs to the body. Copied, so that the
    // buffer it came in is freed here.
    let early = (!read_buf.is_empty()).then(|| Bytes::copy_from_slice(&read_buf));
    drop(read_buf);
    let (read, mut write) = io.into_split();
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
    use std::collections::{HashMap, HashSet};

    use actix_web::{App, HttpRequest, HttpResponse, web};
    use futures::StreamExt;
    use tokio::io::AsyncReadExt;

    use super::*;

    /// Answers with the thread that serves it, the peer it sees and the first bytes of its body.
    async fn whoami(req: HttpRequest, mut body: web::Payload) -> HttpResponse {
        let first = match body.next().await {
            Some(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            _ => String::new(),
        };
        let peer = req.peer_addr().map(|a| a.to_string()).unwrap_or_default();
        HttpResponse::Ok().body(format!(
            "{:?}|{peer}|{first}|{}",
            std::thread::current().id(),
            req.uri()
        ))
    }

    /// One WebSocket request on a new connection, with a few bytes of "frames" in the same
    /// write as its head; the answer's body.
    async fn ask(address: std::net::SocketAddr, path: &str) -> (String, std::net::SocketAddr) {
        let mut socket = TcpStream::connect(address).await.unwrap();
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
             Upgrade: websocket\r\nX-Twice: one\r\nX-Twice: two\r\n\r\nearly bytes"
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap().to_owned();
        (body, socket.local_addr().unwrap())
    }

    const THREE_WORKERS: Options = Options {
        workers: 3,
        keep_alive: Duration::from_secs(5),
        client_request_timeout: Duration::from_secs(5),
        shutdown_timeout_secs: 1,
    };

    #[tokio::test]
    async fn every_websocket_of_a_document_is_served_by_its_home_worker() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (server, _) = server(listener, THREE_WORKERS, || {
            App::new().route("/ws/documents/{id}/{rest}", web::get().to(whoami))
        })
        .unwrap();
        let handle = server.handle();
        let served = tokio::spawn(server);

        // Documents 0 to 6: homes 0, 1, 2, 0, 1, 2, 0. Four connections each, accepted by the
        // workers in turn (seven connections a round, three workers), so most arrive at a
        // worker that is not the document's home.
        let mut homes: HashMap<u128, String> = HashMap::new();
        for round in 0..4 {
            for n in 0..7u128 {
                let path = format!("/ws/documents/{}/x?round={round}", Uuid::from_u128(n));
                let (body, local) = ask(address, &path).await;
                let [thread, peer, early, uri] = body.splitn(4, '|').collect::<Vec<_>>()[..] else {
                    panic!("{body}");
                };
                assert_eq!(
                    early, "early bytes",
                    "what followed the head reaches the body"
                );
                assert_eq!(peer, local.to_string(), "the peer is the client");
                assert_eq!(uri, path);
                let home = homes.entry(n).or_insert_with(|| thread.to_owned());
                assert_eq!(home, thread, "document {n}, round {round}");
            }
        }
        for n in 0..4 {
            assert_eq!(homes[&n], homes[&(n + 3)]);
        }
        let threads: HashSet<&String> = homes.values().collect();
        assert_eq!(threads.len(), 3, "each worker is home to some documents");

        handle.stop(false).await;
        served.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn handed_over_websockets_are_waited_for_until_they_close() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (server, handed_over) = server(listener, THREE_WORKERS, || {
            App::new().route(
                "/ws/documents/{id}",
                web::get().to(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    HttpResponse::Ok().body("late")
                }),
            )
        })
        .unwrap();
        let handle = server.handle();
        let served = tokio::spawn(server);

        // Fourteen connections, dealt to the three workers in turn: documents 0-6 twice, so the
        // second seven are dealt one worker further on than the first. Whatever the order of the
        // workers, some of them reach a worker that is not their home.
        let mut clients = Vec::new();
        for n in (0..7u128).chain(0..7) {
            let mut socket = TcpStream::connect(address).await.unwrap();
            let head = format!(
                "GET /ws/documents/{} HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n\
                 Upgrade: websocket\r\n\r\n",
                Uuid::from_u128(n)
            );
            socket.write_all(head.as_bytes()).await.unwrap();
            clients.push(socket);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(handed_over.open() > 0, "some were handed over");
        let started = tokio::time::Instant::now();
        handed_over.closed(Duration::from_millis(50)).await;
        assert!(handed_over.open() > 0, "the wait gives up after its limit");
        assert!(started.elapsed() < Duration::from_millis(250));

        // The clients read their answers and close: the wait ends with the last of them.
        for mut socket in clients {
            let mut answer = String::new();
            socket.read_to_string(&mut answer).await.unwrap();
            assert!(answer.ends_with("late"), "{answer}");
        }
        handed_over.closed(Duration::from_secs(5)).await;
        assert_eq!(handed_over.open(), 0);

        handle.stop(false).await;
        served.await.unwrap().unwrap();
    }

    #[test]
    fn a_websocket_path_names_its_document() {
        let id = Uuid::from_u128(7);
        assert_eq!(document_of(&format!("/ws/documents/{id}")), Some(id));
        assert_eq!(document_of(&format!("/ws/documents/{id}/{id}")), Some(id));
        assert_eq!(document_of("/ws/documents/"), None);
        assert_eq!(document_of("/ws/documents/not-an-id"), None);
        assert_eq!(document_of(&format!("/api/v1/documents/{id}")), None);
    }

    // On a runtime: the codec's settings keep the `Date` header up to date on a local task.
    #[actix_rt::test]
    async fn a_head_parses_again_as_it_was() {
        let many: String = (0..90).map(|i| format!("X-H{i}: {i}\r\n")).collect();
        let long = "v".repeat(8 * 1024);
        let heads: Vec<Vec<u8>> = vec![
            b"GET /ws/documents/x?token=a%20b HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n\
              Upgrade: websocket\r\nX-Twice: one\r\nX-Twice: two\r\nX-Bytes: caf\xc3\xa9\r\n\r\n"
                .to_vec(),
            // HTTP/1.0, an absolute-form target, 93 of the 96 headers actix takes, an 8 KiB value.
            b"GET /ws/documents/x HTTP/1.0\r\nConnection: keep-alive, Upgrade\r\n\
              Upgrade: websocket\r\n\r\n"
                .to_vec(),
            b"GET http://h:1/ws/documents/x?a=1 HTTP/1.1\r\nHost: h:1\r\nConnection: Upgrade\r\n\
              Upgrade: websocket\r\n\r\n"
                .to_vec(),
            format!("GET /ws/documents/x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n{many}\r\n")
                .into_bytes(),
            format!(
                "GET /ws/documents/x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Long: {long}\r\n\r\n"
            )
            .into_bytes(),
        ];
        for head in heads {
            let mut wire = BytesMut::from(&head[..]);
            wire.extend_from_slice(b"rest");
            let mut codec = Codec::default();
            let first = match codec.decode(&mut wire) {
                Ok(Some(Message::Item(first))) => first,
                other => panic!("{other:?}: {}", String::from_utf8_lossy(&head)),
            };
            let mut again = encode_head(&first);
            let mut codec = Codec::default();
            let Ok(Some(Message::Item(second))) = codec.decode(&mut again) else {
                panic!(
                    "the re-encoded head parses: {}",
                    String::from_utf8_lossy(&head)
                );
            };
            assert!(again.is_empty());
            assert_eq!(second.head().method, first.head().method);
            assert_eq!(second.head().uri, first.head().uri);
            assert_eq!(second.head().version, first.head().version);
            let (first, second) = (&first.head().headers, &second.head().headers);
            assert_eq!(second.len(), first.len());
            for (name, value) in first.iter() {
                assert!(second.get_all(name).any(|v| v == value), "{name}");
            }
            assert!(codec.upgrade(), "still an upgrade");
        }
    }

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
