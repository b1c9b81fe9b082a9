//! End-to-end harness: the real server in-process on a random port, over real HTTP, on SQLite
//! always and on Postgres too when `DATABASE_URL` is set (a fresh database per test, dropped after).
//!
//! Logs stay silent unless `TEST_LOG` is set.

use std::future::Future;
use std::sync::Once;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use mdcreator_server::{Application, Settings};

/// Which database a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backends this run covers: SQLite, plus Postgres when `DATABASE_URL` is set.
pub fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Sqlite];
    if postgres_url().is_some() {
        b.push(Backend::Postgres);
    }
    b
}

fn postgres_url() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
}

/// Runs `scenario` against a fresh server on every backend of this run.
pub async fn on_every_backend<F, Fut>(scenario: F)
where
    F: Fn(TestApp) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    on_every_backend_with(|_| {}, scenario).await
}

/// Like [`on_every_backend`], with settings adjusted by `configure` (limits, confirmation…).
pub async fn on_every_backend_with<C, F, Fut>(configure: C, scenario: F)
where
    C: Fn(&mut Settings),
    F: Fn(TestApp) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    for backend in backends() {
        let app = TestApp::spawn_with(backend, &configure).await;
        let cleanup = app.cleanup_handle();
        let outcome = tokio::spawn(scenario(app)).await;
        cleanup.run().await;
        if let Err(e) = outcome {
            if e.is_panic() {
                eprintln!("scenario failed on {backend:?}");
                std::panic::resume_unwind(e.into_panic());
            }
            panic!("scenario on {backend:?} did not finish: {e}");
        }
    }
}

static TRACING: Once = Once::new();

/// A running server plus a client for it.
pub struct TestApp {
    pub backend: Backend,
    pub base: String,
    pub client: reqwest::Client,
    /// The server's database, for tests that set up what the API cannot (yet).
    pub database_url: String,
    handle: actix_web::dev::ServerHandle,
    database: Option<(String, String)>,
    _data_dir: tempfile::TempDir,
}

/// What must happen after a scenario, even a failed one.
pub struct Cleanup {
    handle: actix_web::dev::ServerHandle,
    database: Option<(String, String)>,
}

impl Cleanup {
    pub async fn run(self) {
        self.handle.stop(false).await;
        if let Some((admin_url, name)) = self.database {
            drop_database(&admin_url, &name).await;
        }
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Spawns with settings adjusted by `configure` (limits, confirmation…).
    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
        TRACING.call_once(|| {
            if std::env::var_os("TEST_LOG").is_some() {
                mdcreator_server::telemetry::init(Some("text"));
            }
        });
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings {
            listen: "127.0.0.1:0".into(),
            data_dir: data_dir.path().to_path_buf(),
            ..Settings::default()
        };
        let mut database = None;
        if backend == Backend::Postgres {
            let admin_url = postgres_url().expect("DATABASE_URL");
            let name = format!("mdc_e2e_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(&admin_url)
                .await
                .expect("connect to Postgres");
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create test database");
            admin.close().await.ok();
            settings.database_url = Some(replace_database(&admin_url, &name));
            settings.auto_migrate = true;
            database = Some((admin_url, name));
        }
        configure(&mut settings);
        let database_url = settings.database_url();
        let app = Application::build(settings).await.expect("server builds");
        let base = format!("http://{}", app.address());
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let test_app = TestApp {
            backend,
            base,
            client,
            database_url,
            handle,
            database,
            _data_dir: data_dir,
        };
        test_app.wait_until_healthy().await;
        test_app
    }

    pub fn cleanup_handle(&self) -> Cleanup {
        Cleanup {
            handle: self.handle.clone(),
            database: self.database.clone(),
        }
    }

    async fn wait_until_healthy(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.client.get(self.url("/healthz")).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("server never became healthy");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request to `/api/v1{path}`.
    pub fn api(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(&format!("/api/v1{path}")))
    }

    /// Signs up and logs in a new user; returns its session.
    pub async fn user(&self, name: &str) -> User {
        let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
        let password = "correct horse battery staple";
        let r = self
            .api(Method::POST, "/auth/signup")
            .json(&json!({"email": email, "password": password, "display_name": name}))
            .send()
            .await
            .expect("signup");
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "signup: {}",
            r.text().await.unwrap_or_default()
        );
        let tokens = self.login(&email, password).await;
        let token = tokens["access_token"]
            .as_str()
            .expect("access token")
            .to_owned();
        let me: Value = self
            .api(Method::GET, "/users/me")
            .bearer_auth(&token)
            .send()
            .await
            .expect("me")
            .json()
            .await
            .expect("me json");
        User {
            id: me["id"].as_str().expect("id").to_owned(),
            email,
            password: password.to_owned(),
            token,
            refresh_token: tokens["refresh_token"].as_str().map(str::to_owned),
        }
    }

    pub async fn login(&self, email: &str, password: &str) -> Value {
        let r = self
            .api(Method::POST, "/auth/login")
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), StatusCode::OK, "login");
        r.json().await.expect("login json")
    }

    /// Creates a workspace owned by `owner`; returns its id.
    pub async fn workspace(&self, owner: &User, name: &str) -> String {
        let (status, body) = send(
            self.api(Method::POST, "/workspaces")
                .bearer_auth(&owner.token)
                .json(&json!({"name": name})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("workspace id").to_owned()
    }

    /// Adds `member` to the workspace with `role` through a single-use link invitation from `admin`.
    pub async fn add_member(&self, admin: &User, workspace: &str, member: &User, role: &str) {
        let (status, body) = send(
            self.api(
                Method::POST,
                &format!("/workspaces/{workspace}/invitations"),
            )
            .bearer_auth(&admin.token)
            .json(&json!({"role": role, "max_uses": 1})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let token = body["token"].as_str().expect("invitation token");
        let (status, body) = send(
            self.api(Method::POST, &format!("/invitations/{token}/accept"))
                .bearer_auth(&member.token),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Creates a document; returns its JSON.
    pub async fn document(
        &self,
        user: &User,
        workspace: &str,
        title: &str,
        content: &str,
    ) -> Value {
        let (status, body) = send(
            self.api(Method::POST, &format!("/workspaces/{workspace}/documents"))
                .bearer_auth(&user.token)
                .json(&json!({"title": title, "content": content})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }
}

impl TestApp {
    /// An authenticated request to `/api/v1{path}` with an optional JSON body.
    pub fn authed(
        &self,
        user: &User,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> RequestBuilder {
        let request = self.api(method, path).bearer_auth(&user.token);
        match body {
            Some(body) => request.json(body),
            None => request,
        }
    }

    /// Sends an authenticated request; status and JSON body.
    pub async fn call(
        &self,
        user: &User,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        send(self.authed(user, method, path, body)).await
    }

    /// `GET /api/v1{path}` as `user`, asserting 200; the JSON body.
    pub async fn read(&self, user: &User, path: &str) -> Value {
        let (status, body) = self.call(user, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Creates an invitation (asserting 201); its JSON, with the one-time `token`.
    pub async fn invite(&self, admin: &User, workspace: &str, body: Value) -> Value {
        let (status, created) = self
            .call(
                admin,
                Method::POST,
                &format!("/workspaces/{workspace}/invitations"),
                Some(&body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }

    /// Accepts an invitation token as `user`.
    pub async fn accept(&self, user: &User, token: &str) -> (StatusCode, Value) {
        self.call(
            user,
            Method::POST,
            &format!("/invitations/{token}/accept"),
            None,
        )
        .await
    }

    /// Creates a folder (asserting 201); its JSON.
    pub async fn folder(
        &self,
        user: &User,
        workspace: &str,
        name: &str,
        parent: Option<&str>,
    ) -> Value {
        let (status, body) = self
            .call(
                user,
                Method::POST,
                &format!("/workspaces/{workspace}/folders"),
                Some(&json!({"name": name, "parent_id": parent})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// The role of `user_id` in the workspace's member list (`None`: not a member).
    pub async fn role_of(&self, viewer: &User, workspace: &str, user_id: &str) -> Option<String> {
        let members = self
            .read(viewer, &format!("/workspaces/{workspace}/members"))
            .await;
        members["items"]
            .as_array()
            .expect("member items")
            .iter()
            .find(|m| m["user_id"] == user_id)
            .map(|m| m["role"].as_str().expect("role").to_owned())
    }
}

/// The `items` of a list response.
#[track_caller]
pub fn items(body: &Value) -> &Vec<Value> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {body}"))
}

/// The `id`s of a list response's items.
#[track_caller]
pub fn ids(body: &Value) -> Vec<String> {
    items(body)
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Sends and returns status, headers and JSON body.
pub async fn send_full(request: RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = request.send().await.expect("request sent");
    let headers = response.headers().clone();
    let (status, body) = split(response).await;
    (status, headers, body)
}

/// A header as a string.
pub fn header(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A signed-in test user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password: String,
    pub token: String,
    pub refresh_token: Option<String>,
}

/// Sends and returns status and JSON body (`Value::Null` for an empty or non-JSON body).
pub async fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("request sent");
    split(response).await
}

pub async fn split(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

/// Asserts an RFC 7807 problem with this status and code.
#[track_caller]
pub fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "status for {body}");
    assert_eq!(body["code"], code, "code in {body}");
    assert_eq!(body["status"], expected.as_u16(), "status field in {body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string() && body["type"].is_string(),
        "{body}"
    );
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(admin) = Database::connect(admin_url).await {
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await;
        admin.close().await.ok();
    }
}
