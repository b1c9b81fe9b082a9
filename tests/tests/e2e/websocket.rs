//! WebSocket requests on a raw TCP connection: the server hands them over with their socket
//! (`mdcreator_server::upgrade`), so what the client sent with the head, and answers that are
//! not `101`, must come through whole.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use mdcreator_tests::{Backend, TestApp};

const WAIT: Duration = Duration::from_secs(10);

fn handshake(app: &TestApp, path: &str, extra: &str) -> String {
    let host = app.base.trim_start_matches("http://");
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// A masked binary frame, as clients send them.
fn client_frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x11, 0x22, 0x33, 0x44];
    let mut frame = vec![0x82, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Appends what the server sends next to `buf`; `what` is awaited (for the failure message).
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, what: &str) {
    let mut chunk = [0u8; 4096];
    let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
        .await
        .unwrap_or_else(|_| panic!("{what} in time"))
        .expect("read");
    assert!(n > 0, "closed before {what}: {buf:?}");
    buf.extend_from_slice(&chunk[..n]);
}

/// Reads until `buf` holds the head of the response; the head and what came after it.
async fn response_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (String::from_utf8_lossy(&buf).into_owned(), rest);
        }
        read_more(stream, &mut buf, "a response head").await;
    }
}

/// The next unmasked server frame: opcode and payload.
async fn server_frame(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u8, Vec<u8>) {
    loop {
        if buf.len() >= 2 {
            let (opcode, short) = (buf[0] & 0x0f, usize::from(buf[1] & 0x7f));
            assert_eq!(buf[1] & 0x80, 0, "server frames are not masked");
            let (start, len) = match short {
                126 if buf.len() >= 4 => (4, usize::from(u16::from_be_bytes([buf[2], buf[3]]))),
                127 if buf.len() >= 10 => (
                    10,
                    usize::try_from(u64::from_be_bytes(buf[2..10].try_into().unwrap())).unwrap(),
                ),
                126 | 127 => (usize::MAX, 0),
                n => (2, n),
            };
            if start != usize::MAX && buf.len() >= start + len {
                let payload = buf[start..start + len].to_vec();
                buf.drain(..start + len);
                return (opcode, payload);
            }
        }
        read_more(stream, buf, "a frame").await;
    }
}

/// A client that sends its first frame in the same write as the handshake (before the `101`)
/// gets it answered: y-protocols sync step 1 with an empty state vector is answered with
/// step 2, the document's whole state.
#[tokio::test]
async fn a_frame_sent_with_the_handshake_is_served() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.user("owner").await;
    let ws = app.workspace(&owner, "Raw").await;
    let doc = app
        .document(&owner, &ws, "Raw", "text sent before the upgrade")
        .await;
    let doc = doc["id"].as_str().expect("id");

    let mut stream = connect(&app).await;
    let mut bytes = handshake(
        &app,
        &format!("/ws/documents/{doc}?token={}", owner.token),
        "",
    )
    .into_bytes();
    // messageSync, syncStep1, a state vector of one byte: 0 (no clients).
    bytes.extend(client_frame(&[0, 0, 1, 0]));
    stream.write_all(&bytes).await.unwrap();

    let (head, mut rest) = response_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let step2 = loop {
        let (opcode, payload) = server_frame(&mut stream, &mut rest).await;
        assert_eq!(opcode, 2, "only binary frames before step 2: {payload:?}");
        if payload.starts_with(&[0, 1]) {
            break payload;
        }
    };
    let text = b"text sent before the upgrade";
    assert!(
        step2.windows(text.len()).any(|w| w == text),
        "step 2 holds the document: {step2:?}"
    );
    app.cleanup_handle().run().await;
}

/// WebSocket requests the App refuses with an HTTP status get the whole answer (head and
/// problem body, with its length), then the connection ends; a REST route asked with an
/// `Upgrade: websocket` header is still answered as usual.
#[tokio::test]
async fn answers_other_than_101_arrive_whole_and_end_the_connection() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let owner = app.user("owner").await;

    for (path, status) in [
        ("/ws/nowhere".to_owned(), 404),
        ("/api/v1/workspaces".to_owned(), 200),
    ] {
        let mut stream = connect(&app).await;
        let auth = format!("Authorization: Bearer {}\r\n", owner.token);
        stream
            .write_all(handshake(&app, &path, &auth).as_bytes())
            .await
            .unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut reply))
            .await
            .expect("the server ends the connection")
            .expect("read");
        let text = String::from_utf8_lossy(&reply);
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {head}"
        );
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_owned)
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{path}: a content length in {head}"));
        assert_eq!(body.len(), length, "{path}: the whole body");
        let json: Value = serde_json::from_str(body).expect("a JSON body");
        if status == 404 {
            assert_eq!(json["status"], 404, "{json}");
        } else {
            assert!(json.is_object() || json.is_array(), "{json}");
        }
    }
    app.cleanup_handle().run().await;
}
