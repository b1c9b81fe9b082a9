//! The WebSocket protocol of a collaboration socket, run inside its HTTP response body.
//!
//! actix-ws pairs a `Session` (a channel of 32 messages, allocated up front) with a response
//! body that drains it, and expects a second task to drive the socket. With hundreds of mostly
//! idle sockets per instance that pair cost more than a third of each socket's memory, and every
//! frame out crossed the channel and woke two tasks. Here the socket's driver (admission, frames
//! in, frames out, timers) is a future owned by the response body ([`SocketBody`]) and polled by
//! whoever writes the body out: the connection's own task (see `crate::upgrade`). Frames are
//! framed by actix-http's WebSocket codec, the one under actix-ws.
//!
//! The driver writes frames into an [`Outgoing`] buffer shared with the body; after each event
//! it waits until the body has handed that buffer to the writer ([`Outgoing::sent`]), so a slow
//! client stops the driver (and with it the reading of its input) instead of growing the buffer.

use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use actix_codec::{Decoder, Encoder};
use actix_http::ws::{Codec, Frame, Item, Message, ProtocolError};
use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::Payload;
use bytes::{Bytes, BytesMut};
use futures::Stream;

use mdcreator_collab::{Close, CloseCode};

/// A whole message from the client (fragments joined).
#[derive(Debug, PartialEq)]
pub(super) enum Inbound {
    Binary(Bytes),
    Text,
    Ping(Bytes),
    Pong,
    Close,
}

/// The client's frames, read from the request body.
pub(super) struct Incoming {
    payload: Payload,
    /// Bytes read and not yet decoded; released whenever all of it is decoded.
    buf: BytesMut,
    codec: Codec,
    /// A fragmented message so far: its bytes, and whether it is text.
    fragments: Option<(BytesMut, bool)>,
    max_message_bytes: usize,
}

impl Incoming {
    pub(super) fn new(payload: Payload, max_message_bytes: usize) -> Incoming {
        Incoming {
            payload,
            buf: BytesMut::new(),
            codec: Codec::new().max_size(max_message_bytes),
            fragments: None,
            max_message_bytes,
        }
    }

    /// The next message; `None` once the client is gone; `Err`: close the socket with it.
    pub(super) async fn next(&mut self) -> Option<Result<Inbound, Close>> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Cancel-safe: what was read stays buffered until it is decoded.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Inbound, Close>>> {
        loop {
            while let Some(frame) = self.decode().transpose() {
                match frame.and_then(|f| self.join(f)) {
                    Ok(None) => continue,
                    Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                    Err(close) => return Poll::Ready(Some(Err(close))),
                }
            }
            match ready!(Pin::new(&mut self.payload).poll_next(cx)) {
                Some(Ok(chunk)) if self.buf.is_empty() => self.buf = BytesMut::from(chunk),
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                // The connection is gone (a partial frame with it).
                Some(Err(_)) | None => return Poll::Ready(None),
            }
        }
    }

    fn decode(&mut self) -> Result<Option<Frame>, Close> {
        let frame = self.codec.decode(&mut self.buf).map_err(|e| match e {
            ProtocolError::Overflow => Close::new(CloseCode::TooLarge, "message too large"),
            e => Close::new(CloseCode::BadMessage, e.to_string()),
        });
        if self.buf.is_empty() {
            // An idle socket keeps no read buffer (decoded frames keep what they point into).
            self.buf = BytesMut::new();
        }
        frame
    }

    /// A whole message, or `None` while a fragmented one is incomplete. The codec checks that
    /// fragments come in order.
    fn join(&mut self, frame: Frame) -> Result<Option<Inbound>, Close> {
        let (part, last) = match frame {
            Frame::Binary(bytes) => return Ok(Some(Inbound::Binary(bytes))),
            Frame::Text(_) => return Ok(Some(Inbound::Text)),
            Frame::Ping(bytes) => return Ok(Some(Inbound::Ping(bytes))),
            Frame::Pong(_) => return Ok(Some(Inbound::Pong)),
            Frame::Close(_) => return Ok(Some(Inbound::Close)),
            Frame::Continuation(Item::FirstBinary(part)) => {
                self.fragments = Some((BytesMut::new(), false));
                (part, false)
            }
            Frame::Continuation(Item::FirstText(part)) => {
                self.fragments = Some((BytesMut::new(), true));
                (part, false)
            }
            Frame::Continuation(Item::Continue(part)) => (part, false),
            Frame::Continuation(Item::Last(part)) => (part, true),
        };
        let Some((joined, _)) = self.fragments.as_mut() else {
            return Err(Close::new(
                CloseCode::BadMessage,
                "continuation not started",
            ));
        };
        if joined.len() + part.len() > self.max_message_bytes {
            self.fragments = None;
            return Err(Close::new(CloseCode::TooLarge, "message too large"));
        }
        joined.extend_from_slice(&part);
        if !last {
            return Ok(None);
        }
        Ok(self.fragments.take().map(|(joined, text)| {
            if text {
                Inbound::Text
            } else {
                Inbound::Binary(joined.freeze())
            }
        }))
    }
}

/// Frames for the client, encoded and not yet handed to the writer.
#[derive(Default)]
pub(super) struct Outgoing {
    buf: RefCell<BytesMut>,
}

/// The longest close reason a close frame carries (control frames hold at most 125 bytes).
const MAX_CLOSE_REASON: usize = 123;

impl Outgoing {
    pub(super) fn send(&self, message: Message) {
        // Encoding only fails for out-of-order fragments, which are never sent.
        if let Err(e) = Codec::new().encode(message, &mut self.buf.borrow_mut()) {
            tracing::error!(error = %e, "a WebSocket frame could not be encoded");
        }
    }

    pub(super) fn close(&self, close: &Close) {
        let mut end = close.reason.len().min(MAX_CLOSE_REASON);
        while !close.reason.is_char_boundary(end) {
            end -= 1;
        }
        self.send(Message::Close(Some(actix_http::ws::CloseReason {
            code: actix_http::ws::CloseCode::Other(close.code.code()),
            description: Some(close.reason[..end].to_owned()),
        })));
    }

    /// Resolves once everything sent so far was handed to the writer. It registers no waker:
    /// [`SocketBody`] polls the driver again each time it is polled after handing bytes out.
    pub(super) async fn sent(&self) {
        poll_fn(|_| {
            if self.buf.borrow().is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    fn take(&self) -> Option<Bytes> {
        let mut buf = self.buf.borrow_mut();
        // Not kept: an idle socket holds no write buffer.
        (!buf.is_empty()).then(|| std::mem::take(&mut *buf).freeze())
    }
}

type Driver = Pin<Box<dyn Future<Output = ()>>>;

/// A response body that runs its socket's driver and yields what the driver sends; it ends
/// when the driver has finished and everything it sent was yielded.
pub(super) struct SocketBody {
    /// `None` once finished (its state is freed then).
    driver: Option<Driver>,
    out: Rc<Outgoing>,
}

impl SocketBody {
    pub(super) fn new(driver: impl Future<Output = ()> + 'static, out: Rc<Outgoing>) -> Self {
        SocketBody {
            driver: Some(Box::pin(driver)),
            out,
        }
    }
}

impl MessageBody for SocketBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if let Some(driver) = this.driver.as_mut()
            && driver.as_mut().poll(cx).is_ready()
        {
            this.driver = None;
        }
        match this.out.take() {
            Some(bytes) => Poll::Ready(Some(Ok(bytes))),
            None if this.driver.is_none() => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_http::ws::CloseReason;
    use futures::FutureExt;

    use super::*;

    /// Frames as a client sends them (masked).
    fn client_frames(messages: Vec<Message>) -> Bytes {
        let mut codec = Codec::new().client_mode();
        let mut buf = BytesMut::new();
        for m in messages {
            codec.encode(m, &mut buf).unwrap();
        }
        buf.freeze()
    }

    fn incoming(chunks: Vec<Bytes>, max: usize) -> Incoming {
        let stream = futures::stream::iter(chunks.into_iter().map(Ok));
        let payload: actix_http::BoxedPayloadStream = Box::pin(stream);
        Incoming::new(Payload::from(payload), max)
    }

    async fn all(mut incoming: Incoming) -> Vec<Result<Inbound, CloseCode>> {
        let mut got = Vec::new();
        while let Some(m) = incoming.next().await {
            let stop = m.is_err();
            got.push(m.map_err(|c| c.code));
            if stop {
                break;
            }
        }
        got
    }

    #[actix_web::test]
    async fn messages_split_across_reads_and_fragments_are_joined() {
        let bytes = client_frames(vec![
            Message::Binary(Bytes::from_static(b"one")),
            Message::Continuation(Item::FirstBinary(Bytes::from_static(b"tw"))),
            Message::Ping(Bytes::from_static(b"p")),
            Message::Continuation(Item::Continue(Bytes::from_static(b"o "))),
            Message::Continuation(Item::Last(Bytes::from_static(b"three"))),
            Message::Text("hi".into()),
            Message::Close(Some(CloseReason::from(actix_http::ws::CloseCode::Normal))),
        ]);
        // One byte per read: every frame arrives in pieces.
        let chunks = (0..bytes.len()).map(|i| bytes.slice(i..i + 1)).collect();
        assert_eq!(
            all(incoming(chunks, 1024)).await,
            vec![
                Ok(Inbound::Binary(Bytes::from_static(b"one"))),
                Ok(Inbound::Ping(Bytes::from_static(b"p"))),
                Ok(Inbound::Binary(Bytes::from_static(b"two three"))),
                Ok(Inbound::Text),
                Ok(Inbound::Close),
            ]
        );
    }

    #[actix_web::test]
    async fn oversize_messages_and_bad_frames_close_with_their_code() {
        let big = client_frames(vec![Message::Binary(Bytes::from(vec![0; 65]))]);
        assert_eq!(
            all(incoming(vec![big], 64)).await,
            vec![Err(CloseCode::TooLarge)]
        );
        // Fragments that add up past the limit.
        let fragments = client_frames(vec![
            Message::Continuation(Item::FirstBinary(Bytes::from(vec![0; 40]))),
            Message::Continuation(Item::Last(Bytes::from(vec![0; 40]))),
        ]);
        assert_eq!(
            all(incoming(vec![fragments], 64)).await,
            vec![Err(CloseCode::TooLarge)]
        );
        // An unmasked frame (servers must refuse them), then a reserved opcode.
        let mut unmasked = BytesMut::new();
        Codec::new()
            .encode(Message::Binary(Bytes::from_static(b"x")), &mut unmasked)
            .unwrap();
        assert_eq!(
            all(incoming(vec![unmasked.freeze()], 64)).await,
            vec![Err(CloseCode::BadMessage)]
        );
        let reserved = Bytes::from_static(&[0x83, 0x80, 1, 2, 3, 4]);
        assert_eq!(
            all(incoming(vec![reserved], 64)).await,
            vec![Err(CloseCode::BadMessage)]
        );
    }

    #[actix_web::test]
    async fn a_truncated_frame_ends_the_stream_without_a_message() {
        let frame = client_frames(vec![Message::Binary(Bytes::from_static(b"hello"))]);
        let cut = frame.slice(..frame.len() - 2);
        assert_eq!(all(incoming(vec![cut], 64)).await, vec![]);
    }

    #[test]
    fn the_body_yields_what_the_driver_sends_then_ends() {
        let out = Rc::new(Outgoing::default());
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let driver = {
            let out = out.clone();
            async move {
                out.send(Message::Binary(Bytes::from_static(b"a")));
                out.sent().await;
                let _ = rx.await;
                out.close(&Close::new(CloseCode::Forbidden, "é".repeat(100)));
            }
        };
        let mut body = std::pin::pin!(SocketBody::new(driver, out));
        let mut next = || {
            poll_fn(|cx| Poll::Ready(body.as_mut().poll_next(cx)))
                .now_or_never()
                .unwrap()
        };
        let first = next();
        assert!(matches!(first, Poll::Ready(Some(Ok(ref b))) if b[..] == [0x82, 1, b'a']));
        assert!(next().is_pending(), "the driver waits for the channel");
        tx.send(()).unwrap();
        let Poll::Ready(Some(Ok(close))) = next() else {
            panic!("expected the close frame")
        };
        // 0x88, length, code 4403, then the reason cut at a character boundary within 123 bytes.
        assert_eq!(close[0], 0x88);
        assert_eq!(close[1] as usize, close.len() - 2);
        assert!(close.len() - 2 <= 125);
        assert_eq!(u16::from_be_bytes([close[2], close[3]]), 4403);
        assert!(std::str::from_utf8(&close[4..]).is_ok());
        assert!(matches!(next(), Poll::Ready(None)));
    }
}
