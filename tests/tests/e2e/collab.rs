//! Collaboration interop: the real npm clients (`yjs`, `y-websocket`, `ws` under Node.js 20)
//! against the real server, driven through `tests/collab/scenarios.mjs`.
//!
//! Needs `npm ci --prefix tests/collab` (`.ci/run` does it); without `node_modules` every test
//! here prints a note and passes without running.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use mdcreator_server::{Application, Settings};
use mdcreator_tests::{Backend, TestApp, User, on_every_backend_with, send};

fn collab_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("collab")
}

/// `false` (with a note) when the npm clients are not installed.
fn clients_installed() -> bool {
    let ok = collab_dir().join("node_modules/y-websocket").is_dir()
        && std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "note: skipped — run `npm ci --prefix tests/collab` (Node.js 20) to run the interop tests"
        );
    }
    ok
}

/// Fast materialization for tests.
fn quick(s: &mut Settings) {
    s.collab_debounce_secs = 1;
}

/// A running scenario: stdout lines as they come, then its result.
struct Scenario {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Scenario {
    fn start(name: &str, params: Value) -> Scenario {
        let mut child = Command::new("node")
            .arg(collab_dir().join("scenarios.mjs"))
            .arg(name)
            .arg(params.to_string())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Scenario { child, lines }
    }

    /// Waits for a `READY` line.
    async fn ready(&mut self) {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
                .await
                .expect("scenario answers")
                .expect("stdout")
                .expect("scenario ended before READY");
            if line == "READY" {
                return;
            }
            assert!(!line.starts_with("RESULT"), "scenario ended early: {line}");
        }
    }

    async fn result(mut self) -> Value {
        let outcome = tokio::time::timeout(Duration::from_secs(150), async {
            while let Some(line) = self.lines.next_line().await.expect("stdout") {
                if let Some(json) = line.strip_prefix("RESULT ") {
                    return serde_json::from_str::<Value>(json).expect("result json");
                }
                eprintln!("node: {line}");
            }
            panic!("scenario ended without a result");
        })
        .await
        .expect("scenario finishes");
        let _ = self.child.wait().await;
        assert_eq!(outcome["ok"], true, "scenario failed: {outcome}");
        outcome
    }
}

async fn run(name: &str, params: Value) -> Value {
    Scenario::start(name, params).result().await
}

fn ws_url(app: &TestApp) -> String {
    format!("{}/ws/documents", app.base.replace("http://", "ws://"))
}

/// An owner, a workspace and one document with `content`.
async fn setup(app: &TestApp, content: &str) -> (User, String, String) {
    let owner = app.user("owner").await;
    let ws = app.workspace(&owner, "Live").await;
    let doc = app.document(&owner, &ws, "Live doc", content).await;
    let id = doc["id"].as_str().expect("id").to_owned();
    (owner, ws, id)
}

async fn content(app: &TestApp, user: &User, doc: &str) -> String {
    app.authed(
        user,
        Method::GET,
        &format!("/documents/{doc}/content"),
        None,
    )
    .send()
    .await
    .expect("content")
    .text()
    .await
    .expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_and_ten_clients_converge_and_ghost_cursors_disappear() {
    if !clients_installed() {
        return;
    }
    on_every_backend_with(quick, |app| async move {
        let (owner, ws, doc) = setup(&app, "# Shared notes\n").await;
        let r = run(
            "converge",
            json!({"url": ws_url(&app), "doc": doc, "tokens": [owner.token, owner.token], "edits": 30, "awareness": true}),
        )
        .await;
        assert_eq!(r["initial"], "# Shared notes\n", "seeded from the Markdown");
        assert_eq!(r["markers"], 60);
        assert!(r["awarenessRemoved"].as_u64().expect("removed") < 5000);

        let mut tokens = vec![owner.token.clone()];
        for i in 0..9 {
            let u = app.user(&format!("ten{i}")).await;
            app.add_member(&owner, &ws, &u, "editor").await;
            tokens.push(u.token);
        }
        let r = run(
            "converge",
            json!({"url": ws_url(&app), "doc": doc, "tokens": tokens, "edits": 15, "awareness": true}),
        )
        .await;
        assert_eq!(r["markers"], 150);
        let text = r["text"].as_str().expect("text").to_owned();
        // Materialized into the document (debounce 1 s here; at room close at the latest).
        let mut saved = String::new();
        for _ in 0..100 {
            saved = content(&app, &owner, &doc).await;
            if saved == text {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(saved, text, "the live text becomes the document's content");
        let versions = app.read(&owner, &format!("/documents/{doc}/versions")).await;
        assert!(
            versions["items"]
                .as_array()
                .expect("items")
                .iter()
                .any(|v| v["reason"] == "collab"),
            "{versions}"
        );
    })
    .await;
}

/// y-websocket reconnects after 30 s without a message; the server relays the client's own
/// awareness renewals, so a lone client keeps its socket (and pings/pongs go on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_client_keeps_its_socket_past_a_minute() {
    if !clients_installed() {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (owner, _, doc) = setup(&app, "").await;
    let r = run(
        "lonely",
        json!({"url": ws_url(&app), "doc": doc, "token": owner.token, "seconds": 65, "timeoutSecs": 90}),
    )
    .await;
    assert_eq!(r["connects"], 1, "{r}");
    assert_eq!(r["sameSocket"], true, "{r}");
    app.cleanup_handle().run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewers_edits_reach_nobody_and_nothing_is_stored() {
    if !clients_installed() {
        return;
    }
    on_every_backend_with(quick, |app| async move {
        let (owner, ws, doc) = setup(&app, "start\n").await;
        let viewer = app.user("viewer").await;
        app.add_member(&owner, &ws, &viewer, "viewer").await;
        let r = run(
            "viewer",
            json!({"url": ws_url(&app), "doc": doc, "editor": owner.token, "viewer": viewer.token}),
        )
        .await;
        assert!(r["viewerText"].as_str().unwrap().contains("VIEWER"));
        assert!(!r["editorText"].as_str().unwrap().contains("VIEWER"), "{r}");
        assert!(!r["freshText"].as_str().unwrap().contains("VIEWER"), "{r}");
        assert!(r["freshText"].as_str().unwrap().contains("EDITOR"), "{r}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!content(&app, &owner, &doc).await.contains("VIEWER"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_change_reaches_live_clients_and_presence_lists_them() {
    if !clients_installed() {
        return;
    }
    on_every_backend_with(quick, |app| async move {
        let (owner, _, doc) = setup(&app, "line one\n").await;
        let mut s = Scenario::start(
            "rest",
            json!({"url": ws_url(&app), "doc": doc, "token": owner.token, "typed": "typed live\n",
                   "expect": "line one\nchanged over REST\ntyped live 👋\n"}),
        );
        s.ready().await;
        let presence = app
            .read(&owner, &format!("/documents/{doc}/presence"))
            .await;
        let items = presence["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "{presence}");
        assert_eq!(items[0]["display_name"], "owner");
        assert!(items[0]["since"].is_string());

        // Wait until the live typing is materialized, so the REST save starts from it.
        let mut etag = String::new();
        for _ in 0..100 {
            let r = app
                .authed(
                    &owner,
                    Method::GET,
                    &format!("/documents/{doc}/content"),
                    None,
                )
                .send()
                .await
                .unwrap();
            etag = r.headers()["etag"].to_str().unwrap().to_owned();
            if r.text().await.unwrap().contains("typed live") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let r = app
            .authed(
                &owner,
                Method::PUT,
                &format!("/documents/{doc}/content"),
                None,
            )
            .header("content-type", "text/markdown")
            .header("if-match", etag)
            .body("line one\nchanged over REST\ntyped live 👋\n")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = s.result().await;
        assert_eq!(r["text"], "line one\nchanged over REST\ntyped live 👋\n");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_close_only_their_own_socket() {
    if !clients_installed() {
        return;
    }
    let app = TestApp::spawn_with(Backend::Sqlite, quick).await;
    let (owner, _, doc) = setup(&app, "").await;
    let r = run(
        "hostile",
        json!({"url": ws_url(&app), "doc": doc, "token": owner.token}),
    )
    .await;
    let codes = &r["codes"];
    for bad in [
        "truncatedVarint",
        "stateVectorBomb",
        "deeplyNested",
        "unknownType",
        "garbageUpdate",
    ] {
        assert_eq!(codes[bad], 1007, "{bad}: {r}");
    }
    assert_eq!(codes["oversize"], 4413, "{r}");
    assert_eq!(r["stillConnected"], true, "{r}");
    // Nothing hostile reached storage: a fresh client sees exactly the editors' text.
    let fresh = run(
        "read",
        json!({"url": ws_url(&app), "doc": doc, "token": owner.token}),
    )
    .await;
    assert_eq!(fresh["text"], r["text"]);
    app.cleanup_handle().run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sockets_get_the_documented_close_codes() {
    if !clients_installed() {
        return;
    }
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.allowed_origins = "https://app.example".into()
    })
    .await;
    let (owner, _, doc) = setup(&app, "x").await;
    let outsider = app.user("outsider").await;
    let base = ws_url(&app);
    let code = |r: Value| r["code"].as_u64().unwrap_or_default();
    let target = |q: &str| format!("{base}/{doc}/{doc}?{q}");
    assert_eq!(
        code(run("refused", json!({"target": target("token=nonsense")})).await),
        4401
    );
    assert_eq!(
        code(run("refused", json!({"target": target("")})).await),
        4401
    );
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(
        code(
            run(
                "refused",
                json!({"target": format!("{base}/{unknown}?token={}", owner.token)})
            )
            .await
        ),
        4404
    );
    assert_eq!(
        code(
            run(
                "refused",
                json!({"target": target(&format!("token={}", outsider.token))})
            )
            .await
        ),
        4404,
        "not visible to outsiders"
    );
    // A foreign Origin never gets a live socket (refused by CORS or closed with 4403).
    let r = run(
        "refused",
        json!({"target": target(&format!("token={}", owner.token)), "origin": "https://evil.example"}),
    )
    .await;
    assert!(r["code"] == 4403 || r["status"] == 400, "{r}");

    // Tickets: single use.
    let (status, body) = app
        .call(
            &owner,
            Method::POST,
            &format!("/documents/{doc}/ws-ticket"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 60);
    let ticket = body["ticket"].as_str().unwrap();
    let (status, _) = app
        .call(
            &outsider,
            Method::POST,
            &format!("/documents/{doc}/ws-ticket"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let with_ticket = json!({"target": target(&format!("ticket={ticket}")), "openForMs": 1500});
    let first = run("refused", with_ticket.clone()).await;
    assert_eq!(
        first["open"], true,
        "the ticket opens a live socket: {first}"
    );
    assert_eq!(code(run("refused", with_ticket).await), 4401, "used twice");
    app.cleanup_handle().run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_close_when_access_is_lost() {
    if !clients_installed() {
        return;
    }
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.collab_recheck_secs = 1).await;
    let (owner, ws, doc) = setup(&app, "x").await;
    let base = ws_url(&app);
    for (role, change) in [("editor", "demote"), ("viewer", "remove")] {
        let member = app.user(role).await;
        app.add_member(&owner, &ws, &member, role).await;
        let socket = Scenario::start(
            "refused",
            json!({"target": format!("{base}/{doc}?token={}", member.token), "timeoutSecs": 20}),
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
        let path = format!("/workspaces/{ws}/members/{}", member.id);
        let (status, body) = match change {
            "demote" => {
                app.call(
                    &owner,
                    Method::PATCH,
                    &path,
                    Some(&json!({"role": "viewer"})),
                )
                .await
            }
            _ => app.call(&owner, Method::DELETE, &path, None).await,
        };
        assert!(status.is_success(), "{change}: {status} {body}");
        let r = socket.result().await;
        assert_eq!(r["code"], 4403, "{change}: {r}");
    }
    app.cleanup_handle().run().await;
}

// ---- several servers on one database --------------------------------------------------------

/// Settings for servers sharing one database: a SQLite file, or a fresh Postgres database when
/// `DATABASE_URL` is set (dropped by the returned guard's `drop_database`).
async fn shared_database(dir: &std::path::Path) -> (Settings, Option<(String, String)>) {
    let mut settings = Settings {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        public_url: Some("https://mdcreator.test".into()),
        collab_debounce_secs: 1,
        ..Settings::default()
    };
    let mut created = None;
    if let Ok(url) = std::env::var("DATABASE_URL")
        && url.starts_with("postgres")
    {
        use sea_orm::{ConnectionTrait, Database};
        let name = format!("mdc_collab_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&url).await.expect("postgres");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create database");
        admin.close().await.ok();
        let base = url.split('?').next().unwrap();
        let base = &base[..base.rfind('/').unwrap()];
        settings.database_url = Some(format!("{base}/{name}"));
        settings.auto_migrate = true;
        created = Some((url, name));
    }
    (settings, created)
}

async fn drop_database(created: Option<(String, String)>) {
    if let Some((url, name)) = created {
        use sea_orm::{ConnectionTrait, Database};
        if let Ok(admin) = Database::connect(&url).await {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

struct Instance {
    base: String,
    handle: actix_web::dev::ServerHandle,
    app_hub: mdcreator_collab::Hub,
}

async fn start(settings: Settings) -> Instance {
    let app = Application::build(settings).await.expect("server builds");
    let base = format!("http://{}", app.address());
    let handle = app.handle();
    let app_hub = app.collab();
    tokio::spawn(app.run_until_stopped());
    Instance {
        base,
        handle,
        app_hub,
    }
}

/// Two instances on one database and one Redis; `None` (with a note) without `REDIS_URL`.
struct Twins {
    a: Instance,
    b: Instance,
    created: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

async fn two_instances(what: &str, configure: impl FnOnce(&mut Settings)) -> Option<Twins> {
    let Ok(redis) = std::env::var("REDIS_URL") else {
        eprintln!("note: skipped — set REDIS_URL to run {what}");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut settings, created) = shared_database(dir.path()).await;
    settings.redis_url = Some(redis);
    configure(&mut settings);
    let a = start(settings.clone()).await;
    let b = start(settings).await;
    Some(Twins {
        a,
        b,
        created,
        _dir: dir,
    })
}

impl Twins {
    async fn stop(self) {
        self.a.handle.stop(false).await;
        self.b.handle.stop(false).await;
        drop_database(self.created).await;
    }
}

async fn signup(base: &str, name: &str) -> String {
    let client = reqwest::Client::new();
    let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
    let (s, _) =
        send(client.post(format!("{base}/api/v1/auth/signup")).json(
            &json!({"email": email, "password": "correct horse battery", "display_name": name}),
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, tokens) = send(
        client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": email, "password": "correct horse battery"})),
    )
    .await;
    tokens["access_token"].as_str().unwrap().to_owned()
}

async fn new_document(base: &str, token: &str, content: &str) -> String {
    let client = reqwest::Client::new();
    let (_, ws) = send(
        client
            .post(format!("{base}/api/v1/workspaces"))
            .bearer_auth(token)
            .json(&json!({"name": "Shared"})),
    )
    .await;
    let (s, doc) = send(
        client
            .post(format!(
                "{base}/api/v1/workspaces/{}/documents",
                ws["id"].as_str().unwrap()
            ))
            .bearer_auth(token)
            .json(&json!({"title": "Doc", "content": content})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{doc}");
    doc["id"].as_str().unwrap().to_owned()
}

/// Set in the child process of [`relayed_edits_survive_a_kill_of_the_process`]: the data
/// directory of the server it runs.
const CHILD_SERVER: &str = "MDC_TEST_CHILD_SERVER_DIR";

/// A server in a child process (this test binary again, in [`CHILD_SERVER`] mode) on the embedded
/// defaults (SQLite in `dir`), so that it can be killed for real.
struct ChildServer {
    base: String,
    child: tokio::process::Child,
}

impl ChildServer {
    async fn start(dir: &std::path::Path) -> ChildServer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "collab::relayed_edits_survive_a_kill_of_the_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_SERVER, dir)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the test binary runs again");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                // After libtest's "test … ... " on the same line.
                if let Some((_, base)) = line.split_once("child server at ") {
                    return base.to_owned();
                }
            }
            panic!("the child server ended before it listened");
        })
        .await
        .expect("the child server starts");
        // Its later output is not read: keep the pipe drained.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ChildServer { base, child }
    }

    /// SIGKILL: no shutdown, no flush, no destructor.
    async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// The update journal files the server in `dir` holds (`mdcreator.db-updates.<n>`), with their
/// sizes.
fn journal_files(dir: &std::path::Path) -> Vec<(String, u64)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .filter(|(name, _)| {
            name.strip_prefix("mdcreator.db-updates.")
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect()
}

/// The embedded store across a real crash: a server process on SQLite holds relayed edits only
/// in its update journal (folded into the database only after an hour here) when it is killed
/// with SIGKILL; a new process on the same directory folds what the journal holds and serves
/// every relayed edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_edits_survive_a_kill_of_the_process() {
    if let Ok(dir) = std::env::var(CHILD_SERVER) {
        let settings = Settings {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.into(),
            // One issuer for both processes (by default it names the random port).
            public_url: Some("https://mdcreator.test".into()),
            sqlite_journal_fold_ms: 3_600_000,
            ..Settings::default()
        };
        let app = Application::build(settings).await.expect("server builds");
        println!("child server at http://{}", app.address());
        app.run_until_stopped().await.unwrap();
        return;
    }
    if !clients_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let first = ChildServer::start(dir.path()).await;
    let token = signup(&first.base, "killed").await;
    let doc = new_document(&first.base, &token, "base ").await;
    let url = format!("{}/ws/documents", first.base.replace("http://", "ws://"));
    let words: Vec<String> = (0..20).map(|i| format!("k{i} ")).collect();
    let r = run(
        "relay",
        json!({"url": url, "doc": doc, "token": token, "words": words}),
    )
    .await;
    let relayed = r["text"].as_str().unwrap().to_owned();
    assert!(relayed.contains("k19 "), "{relayed}");
    let held = journal_files(dir.path());
    assert!(
        held.iter().any(|(_, len)| *len > 0),
        "the edits are in the journal: {held:?}"
    );
    first.kill().await;

    let second = ChildServer::start(dir.path()).await;
    let url = format!("{}/ws/documents", second.base.replace("http://", "ws://"));
    let r = run("read", json!({"url": url, "doc": doc, "token": token})).await;
    assert_eq!(r["text"], relayed.as_str());
    assert!(
        journal_files(dir.path()).iter().all(|(_, len)| *len == 0),
        "what the killed process left is folded: {:?}",
        journal_files(dir.path())
    );
    second.kill().await;
}

/// Every edit a client saw relayed is stored before the relay: after the server is killed
/// (no flush, no materialization) a new server serves all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_edits_survive_a_server_restart() {
    if !clients_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (settings, created) = shared_database(dir.path()).await;
    let first = start(settings.clone()).await;
    let token = signup(&first.base, "durable").await;
    let doc = new_document(&first.base, &token, "base ").await;
    let url = format!("{}/ws/documents", first.base.replace("http://", "ws://"));
    let words: Vec<String> = (0..20).map(|i| format!("w{i} ")).collect();
    let r = run(
        "relay",
        json!({"url": url, "doc": doc, "token": token, "words": words}),
    )
    .await;
    let relayed = r["text"].as_str().unwrap().to_owned();
    // Killed: no graceful flush of the room.
    first.handle.stop(false).await;
    drop(first.app_hub);

    let second = start(settings).await;
    let url = format!("{}/ws/documents", second.base.replace("http://", "ws://"));
    let r = run("read", json!({"url": url, "doc": doc, "token": token})).await;
    assert_eq!(r["text"], relayed.as_str());
    // A graceful stop (the SIGTERM path) closes live sockets with 1001 and materializes the text.
    let open = Scenario::start(
        "refused",
        json!({"target": format!("{url}/{doc}?token={token}"), "timeoutSecs": 20}),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    second.app_hub.shutdown().await;
    assert_eq!(open.result().await["code"], 1001);
    let client = reqwest::Client::new();
    let saved = client
        .get(format!("{}/api/v1/documents/{doc}/content", second.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(saved, relayed);
    second.handle.stop(false).await;
    drop_database(created).await;
}

/// Two instances on one database and one Redis: clients on either converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_two_instances_converge() {
    if !clients_installed() {
        return;
    }
    let Some(twins) = two_instances("clients on two instances", |_| {}).await else {
        return;
    };
    let (a, b) = (&twins.a, &twins.b);
    let token = signup(&a.base, "twins").await;
    let doc = new_document(&a.base, &token, "two instances\n").await;
    let urls: Vec<String> = [&a.base, &b.base]
        .iter()
        .map(|base| format!("{}/ws/documents", base.replace("http://", "ws://")))
        .collect();
    let r = run(
        "converge",
        json!({"urls": urls, "doc": doc, "tokens": [token, token, token, token], "edits": 15, "awareness": true}),
    )
    .await;
    assert_eq!(r["markers"], 60);
    twins.stop().await;
}

/// Access lost through the workspace's access pokes, not the periodic re-check (an hour here): a
/// removed member's socket, a demoted editor's and a socket on a document moved to the trash
/// close with 4403 within seconds; another editor's socket and a commenter's demoted to viewer
/// (still reading) stay open. In process:
/// with Redis, five logins here would share the per-address login limit with every other test
/// process on that Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_close_on_the_workspace_poke_when_access_is_lost() {
    if !clients_installed() {
        return;
    }
    let configure = |s: &mut Settings| s.collab_recheck_secs = 3600;
    on_every_backend_with(configure, |app| async move {
        let (owner, ws, doc) = setup(&app, "x").await;
        let mut members = Vec::new();
        for (name, role) in [
            ("removed", "viewer"),
            ("demoted", "editor"),
            ("stays", "editor"),
            ("commenter", "commenter"),
        ] {
            let member = app.user(name).await;
            app.add_member(&owner, &ws, &member, role).await;
            members.push((name, member));
        }
        let trashed = app.document(&owner, &ws, "To the trash", "y").await;
        let trashed = trashed["id"].as_str().expect("id").to_owned();
        let base = ws_url(&app);
        let mut targets: serde_json::Map<String, Value> = members
            .iter()
            .map(|(name, m)| {
                (
                    (*name).to_owned(),
                    json!(format!("{base}/{doc}?token={}", m.token)),
                )
            })
            .collect();
        let member = |name: &str| &members.iter().find(|(n, _)| *n == name).unwrap().1;
        targets.insert(
            "trashed".to_owned(),
            json!(format!("{base}/{trashed}?token={}", member("stays").token)),
        );
        let mut sockets = Scenario::start(
            "watch",
            json!({"targets": targets, "closing": ["removed", "demoted", "trashed"],
                   "waitSecs": 15, "settleMs": 1500, "timeoutSecs": 60}),
        );
        sockets.ready().await;
        let path = |name: &str| format!("/workspaces/{ws}/members/{}", member(name).id);
        let (status, body) = app
            .call(&owner, Method::DELETE, &path("removed"), None)
            .await;
        assert!(status.is_success(), "remove: {status} {body}");
        for name in ["demoted", "commenter"] {
            let (status, body) = app
                .call(
                    &owner,
                    Method::PATCH,
                    &path(name),
                    Some(&json!({"role": "viewer"})),
                )
                .await;
            assert!(status.is_success(), "demote {name}: {status} {body}");
        }
        let (status, body) = app
            .call(
                &owner,
                Method::DELETE,
                &format!("/documents/{trashed}"),
                None,
            )
            .await;
        assert!(status.is_success(), "trash: {status} {body}");
        let r = sockets.result().await;
        assert_eq!(r["codes"]["removed"], 4403, "{r}");
        assert_eq!(r["reasons"]["removed"], "access revoked", "{r}");
        assert_eq!(r["codes"]["demoted"], 4403, "{r}");
        assert_eq!(r["reasons"]["demoted"], "no longer allowed to edit", "{r}");
        assert_eq!(r["codes"]["trashed"], 4403, "{r}");
        assert_eq!(r["reasons"]["trashed"], "access revoked", "{r}");
        assert_eq!(r["codes"]["stays"], Value::Null, "{r}");
        assert_eq!(r["codes"]["commenter"], Value::Null, "{r}");
    })
    .await;
}

/// A client sending faster than its message rate is closed with 4429; the others on the document
/// keep their sockets and go on editing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_socket_is_closed_with_4429_and_the_others_stay() {
    if !clients_installed() {
        return;
    }
    let configure = |s: &mut Settings| {
        s.collab_messages_per_sec = 5;
        s.collab_message_burst = 50;
    };
    on_every_backend_with(configure, |app| async move {
        let (owner, _, doc) = setup(&app, "calm\n").await;
        let r = run(
            "flood",
            json!({"url": ws_url(&app), "doc": doc, "token": owner.token, "messages": 5000}),
        )
        .await;
        assert_eq!(r["code"], 4429, "{r}");
        assert_eq!(r["stillConnected"], true, "{r}");
        assert_eq!(r["text"], "after the flood calm\n", "{r}");
    })
    .await;
}

/// Behind a round-robin balancer a ticket is spent on another instance than the one that issued
/// it: with Redis, instance B opens a socket for a ticket from A, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_issued_by_one_instance_opens_a_socket_on_another_once() {
    if !clients_installed() {
        return;
    }
    let Some(twins) = two_instances("tickets across instances", |_| {}).await else {
        return;
    };
    let (a, b) = (&twins.a, &twins.b);
    let token = signup(&a.base, "ticketed").await;
    let doc = new_document(&a.base, &token, "tickets\n").await;
    let client = reqwest::Client::new();
    let ticket_from = |base: String| {
        let (client, token, doc) = (client.clone(), token.clone(), doc.clone());
        async move {
            let (status, body) = send(
                client
                    .post(format!("{base}/api/v1/documents/{doc}/ws-ticket"))
                    .bearer_auth(&token),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["expires_in"], 60);
            body["ticket"].as_str().unwrap().to_owned()
        }
    };
    let socket_url = |base: &str, ticket: &str| {
        format!(
            "{}/ws/documents/{doc}/{doc}?ticket={ticket}",
            base.replace("http://", "ws://")
        )
    };
    for (issuer, spender) in [(a, b), (b, a)] {
        let ticket = ticket_from(issuer.base.clone()).await;
        let first = run(
            "refused",
            json!({"target": socket_url(&spender.base, &ticket), "openForMs": 1500}),
        )
        .await;
        assert_eq!(first["open"], true, "the ticket opens a socket: {first}");
        for instance in [spender, issuer] {
            let again = run(
                "refused",
                json!({"target": socket_url(&instance.base, &ticket)}),
            )
            .await;
            assert_eq!(again["code"], 4401, "used twice: {again}");
        }
    }
    twins.stop().await;
}

/// A member removed through one instance loses the socket they hold on another: the workspace
/// poke crosses Redis (the periodic re-check is an hour here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_on_one_instance_closes_the_socket_on_another() {
    if !clients_installed() {
        return;
    }
    let Some(twins) = two_instances("access loss across instances", |s| {
        s.collab_recheck_secs = 3600
    })
    .await
    else {
        return;
    };
    let (a, b) = (&twins.a, &twins.b);
    let owner = signup(&a.base, "owner").await;
    let member = signup(&a.base, "member").await;
    let doc = new_document(&a.base, &owner, "shared\n").await;
    let client = reqwest::Client::new();
    let api = |base: &str, path: &str| format!("{base}/api/v1{path}");
    let (_, document) = send(
        client
            .get(api(&a.base, &format!("/documents/{doc}")))
            .bearer_auth(&owner),
    )
    .await;
    let ws = document["workspace_id"].as_str().unwrap().to_owned();
    let (status, invitation) = send(
        client
            .post(api(&a.base, &format!("/workspaces/{ws}/invitations")))
            .bearer_auth(&owner)
            .json(&json!({"role": "editor", "max_uses": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{invitation}");
    let (status, body) = send(
        client
            .post(api(
                &a.base,
                &format!(
                    "/invitations/{}/accept",
                    invitation["token"].as_str().unwrap()
                ),
            ))
            .bearer_auth(&member),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, me) = send(client.get(api(&a.base, "/users/me")).bearer_auth(&member)).await;
    let member_id = me["id"].as_str().unwrap().to_owned();

    let on_b = format!("{}/ws/documents", b.base.replace("http://", "ws://"));
    let mut sockets = Scenario::start(
        "watch",
        json!({"targets": {"member": format!("{on_b}/{doc}?token={member}"),
                           "owner": format!("{on_b}/{doc}?token={owner}")},
               "closing": ["member"], "waitSecs": 15, "settleMs": 1500, "timeoutSecs": 60}),
    );
    sockets.ready().await;
    let (status, body) = send(
        client
            .delete(api(
                &a.base,
                &format!("/workspaces/{ws}/members/{member_id}"),
            ))
            .bearer_auth(&owner),
    )
    .await;
    assert!(status.is_success(), "remove: {status} {body}");
    let r = sockets.result().await;
    assert_eq!(r["codes"]["member"], 4403, "{r}");
    assert_eq!(r["reasons"]["member"], "access revoked", "{r}");
    assert_eq!(r["codes"]["owner"], Value::Null, "the owner stays: {r}");
    twins.stop().await;
}
