//! A closed-loop HTTP load generator for the MD Creator server.
//!
//! Setup: one fresh user (signed up and logged in), one workspace (or `--workspaces`), `--documents` documents of
//! `--doc-bytes` bytes of Markdown. Then `--concurrency` tasks share one keep-alive connection
//! pool and loop, for `--warmup-secs` (not recorded) and then `--duration-secs` (recorded):
//!
//! * `get`: `GET /api/v1/documents/{id}` over the documents, round-robin;
//! * `put`: each task owns one document and replaces its content with
//!   `PUT /api/v1/documents/{id}/content` + `If-Match: <ETag of its previous response>`.
//!
//! Every request is timed from send to the last body byte; any transport error or non-2xx status
//! is an error. Closed loop: a slow response delays the task's next request, so the percentiles
//! are those of the requests that were sent (no coordinated-omission correction).
//!
//! This is a benchmark, not a test: it exits 0 whenever it could run, whatever it measured.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use hdrhistogram::Histogram;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, HeaderValue, IF_MATCH};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Get,
    Put,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Get => "get",
            Mode::Put => "put",
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "mdcreator-bench-http",
    about = "Closed-loop HTTP benchmark of the MD Creator server (GET or PUT of documents)"
)]
struct Args {
    /// Base URL of a running server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// Concurrent request loops (and idle keep-alive connections kept).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Recorded seconds.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Seconds of load before recording starts (not recorded).
    #[arg(long, default_value_t = 3)]
    warmup_secs: u64,
    #[arg(long, value_enum, default_value_t = Mode::Get)]
    mode: Mode,
    /// Documents created at setup (default: max(concurrency, 100)); `put` needs ≥ concurrency.
    #[arg(long)]
    documents: Option<usize>,
    /// Workspaces the documents are spread over (document i in workspace i mod K). Every write
    /// bumps its workspace's change-feed head, so writes to one workspace serialize there.
    #[arg(long, default_value_t = 1)]
    workspaces: usize,
    /// Size of each document's Markdown, in bytes.
    #[arg(long, default_value_t = 4096)]
    doc_bytes: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Tokio worker threads of the load generator (it shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Per-request timeout, seconds (a timeout counts as an error).
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.duration_secs == 0 {
        bail!("--duration-secs must be at least 1");
    }
    let documents = args.documents.unwrap_or(args.concurrency.max(100));
    if documents == 0 {
        bail!("--documents must be at least 1");
    }
    if args.mode == Mode::Put && documents < args.concurrency {
        bail!(
            "put mode gives every task its own document: --documents ({documents}) must be ≥ --concurrency ({})",
            args.concurrency
        );
    }
    if args.workspaces == 0 || args.workspaces > documents {
        bail!("--workspaces must be between 1 and --documents ({documents})");
    }
    if args.doc_bytes < 64 {
        bail!("--doc-bytes must be at least 64");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run(args, documents))
}

/// One document as the bench knows it.
#[derive(Debug, Clone)]
struct Doc {
    id: String,
    etag: String,
}

struct Api {
    client: reqwest::Client,
    base: String,
    auth: HeaderValue,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }
}

async fn run(args: Args, documents: usize) -> anyhow::Result<()> {
    let base = args.base.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(args.timeout_secs))
        .build()?;

    // ---- setup -------------------------------------------------------------------------------
    let setup_started = Instant::now();
    let token = sign_up_and_log_in(&client, &base).await?;
    let api = Arc::new(Api {
        client: client.clone(),
        base: base.clone(),
        auth: HeaderValue::from_str(&format!("Bearer {token}"))?,
    });
    let mut workspaces = Vec::with_capacity(args.workspaces);
    for _ in 0..args.workspaces {
        workspaces.push(create_workspace(&api).await?);
    }
    let workspaces = Arc::new(workspaces);
    let body = Arc::new(markdown(args.doc_bytes));
    let docs: Vec<Doc> = futures::stream::iter(0..documents)
        .map(|i| {
            let api = api.clone();
            let body = body.clone();
            let workspaces = workspaces.clone();
            let doc_bytes = args.doc_bytes;
            async move {
                let workspace = &workspaces[i % workspaces.len()];
                create_document(&api, workspace, i, &body, doc_bytes).await
            }
        })
        .buffered(args.concurrency.min(16))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let setup_secs = setup_started.elapsed().as_secs_f64();
    eprintln!(
        "setup: user, {} workspace(s), {documents} documents of {} bytes in {setup_secs:.1} s",
        args.workspaces, args.doc_bytes
    );
    if args.warmup_secs + args.duration_secs > 800 {
        eprintln!("warning: the access token may expire during the run (default TTL 900 s)");
    }

    // ---- load --------------------------------------------------------------------------------
    let cpu_before = process_cpu_secs();
    let t0 = Instant::now();
    let measure_start = t0 + Duration::from_secs(args.warmup_secs);
    let end = measure_start + Duration::from_secs(args.duration_secs);
    let docs = Arc::new(docs);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(args.concurrency);
    for task in 0..args.concurrency {
        let ctx = TaskCtx {
            api: api.clone(),
            docs: docs.clone(),
            next: next.clone(),
            body: body.clone(),
            doc_bytes: args.doc_bytes,
            measure_start,
            end,
        };
        tasks.push(tokio::spawn(match args.mode {
            Mode::Get => futures::future::Either::Left(get_loop(ctx)),
            Mode::Put => futures::future::Either::Right(put_loop(ctx, task)),
        }));
    }
    let mut total = TaskStats::new();
    for t in tasks {
        total.merge(t.await?);
    }
    let cpu_after = process_cpu_secs();
    let elapsed = total
        .last_done
        .map(|d| d.saturating_duration_since(measure_start))
        .unwrap_or_default()
        .as_secs_f64()
        .max(1e-9);

    // ---- report ------------------------------------------------------------------------------
    let h = &total.histogram;
    let requests = total.ok + total.errors;
    let rps = requests as f64 / elapsed;
    let q = |p: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(p)
        }
    };
    let client_cpu = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let load_secs = t0.elapsed().as_secs_f64();
    let report = json!({
        "mode": args.mode.as_str(),
        "base": base,
        "concurrency": args.concurrency,
        "documents": documents,
        "workspaces": args.workspaces,
        "doc_bytes": args.doc_bytes,
        "warmup_secs": args.warmup_secs,
        "duration_secs": elapsed,
        "client_threads": args.client_threads,
        "requests": requests,
        "ok": total.ok,
        "errors": total.errors,
        "error_kinds": total.error_kinds,
        "first_error": total.first_error,
        "warmup_requests": total.warmup_requests,
        "requests_per_sec": rps,
        "response_bytes": total.response_bytes,
        "latency_us": {
            "min": if h.is_empty() { 0 } else { h.min() },
            "mean": if h.is_empty() { 0.0 } else { h.mean() },
            "p50": q(0.50),
            "p90": q(0.90),
            "p99": q(0.99),
            "p999": q(0.999),
            "max": if h.is_empty() { 0 } else { h.max() },
        },
        "client_cpu_secs": client_cpu,
        "client_cpu_share_of_one_core": client_cpu.map(|c| c / load_secs),
        "setup_secs": setup_secs,
    });

    println!(
        "mode={} concurrency={} documents={} workspaces={} doc_bytes={} warmup={}s measured={:.2}s client_threads={}",
        args.mode.as_str(),
        args.concurrency,
        documents,
        args.workspaces,
        args.doc_bytes,
        args.warmup_secs,
        elapsed,
        args.client_threads
    );
    println!(
        "  requests    {requests} (ok {}, warmup {} not counted)",
        total.ok, total.warmup_requests
    );
    println!("  errors      {}", total.errors);
    for (kind, n) in &total.error_kinds {
        println!("              {kind}: {n}");
    }
    if let Some(e) = &total.first_error {
        println!("              first: {e}");
    }
    println!("  throughput  {rps:.1} req/s");
    println!(
        "  latency µs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (min {}, mean {:.0})",
        q(0.50),
        q(0.90),
        q(0.99),
        q(0.999),
        if h.is_empty() { 0 } else { h.max() },
        if h.is_empty() { 0 } else { h.min() },
        if h.is_empty() { 0.0 } else { h.mean() },
    );
    if let Some(c) = client_cpu {
        println!(
            "  client CPU  {c:.2} s over {load_secs:.1} s ({:.0}% of one core)",
            100.0 * c / load_secs
        );
    }
    if let Some(path) = &args.json {
        let mut out = serde_json::to_vec_pretty(&report)?;
        out.push(b'\n');
        std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

// ---- setup calls ---------------------------------------------------------------------------------

async fn sign_up_and_log_in(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let password = "bench-password-correct-horse";
    let res = client
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&json!({"email": email, "password": password, "display_name": "Bench"}))
        .send()
        .await
        .with_context(|| format!("connecting to {base}"))?;
    expect_2xx(res, "sign-up").await?;
    let res = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await?;
    let login: Value = expect_2xx(res, "login").await?.json().await?;
    login["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("login answered without access_token")
}

async fn create_workspace(api: &Api) -> anyhow::Result<String> {
    let res = api
        .client
        .post(api.url("/workspaces"))
        .header(AUTHORIZATION, api.auth.clone())
        .json(&json!({"name": "Bench"}))
        .send()
        .await?;
    let ws: Value = expect_2xx(res, "create workspace").await?.json().await?;
    ws["id"]
        .as_str()
        .map(str::to_owned)
        .context("workspace without id")
}

async fn create_document(
    api: &Api,
    workspace: &str,
    i: usize,
    body: &str,
    doc_bytes: usize,
) -> anyhow::Result<Doc> {
    let res = api
        .client
        .post(api.url(&format!("/workspaces/{workspace}/documents")))
        .header(AUTHORIZATION, api.auth.clone())
        .json(&json!({"title": format!("Bench {i}"), "content": content(i, 0, body, doc_bytes)}))
        .send()
        .await?;
    let res = expect_2xx(res, "create document").await?;
    let etag = etag_of(&res).context("create document answered without ETag")?;
    let doc: Value = res.json().await?;
    let id = doc["id"]
        .as_str()
        .map(str::to_owned)
        .context("document without id")?;
    Ok(Doc { id, etag })
}

async fn expect_2xx(res: reqwest::Response, what: &str) -> anyhow::Result<reqwest::Response> {
    if res.status().is_success() {
        return Ok(res);
    }
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    bail!("{what}: {status}: {}", &text[..text.len().min(500)])
}

fn etag_of(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

// ---- load loops ----------------------------------------------------------------------------------

struct TaskCtx {
    api: Arc<Api>,
    docs: Arc<Vec<Doc>>,
    next: Arc<AtomicUsize>,
    body: Arc<String>,
    doc_bytes: usize,
    measure_start: Instant,
    end: Instant,
}

struct TaskStats {
    histogram: Histogram<u64>,
    ok: u64,
    errors: u64,
    warmup_requests: u64,
    response_bytes: u64,
    error_kinds: BTreeMap<String, u64>,
    first_error: Option<String>,
    last_done: Option<Instant>,
}

impl TaskStats {
    fn new() -> Self {
        Self {
            // 1 µs .. 5 min, 3 significant digits.
            histogram: Histogram::new_with_bounds(1, 300_000_000, 3).expect("histogram bounds"),
            ok: 0,
            errors: 0,
            warmup_requests: 0,
            response_bytes: 0,
            error_kinds: BTreeMap::new(),
            first_error: None,
            last_done: None,
        }
    }

    /// Records one finished request that started at `start`.
    fn record(&mut self, ctx: &TaskCtx, start: Instant, done: Instant, outcome: Outcome) {
        if start < ctx.measure_start {
            self.warmup_requests += 1;
            return;
        }
        self.last_done = Some(self.last_done.map_or(done, |d| d.max(done)));
        let micros = u64::try_from(done.duration_since(start).as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(micros.max(1));
        match outcome {
            Outcome::Ok { bytes } => {
                self.ok += 1;
                self.response_bytes += bytes;
            }
            Outcome::Error { kind, detail } => {
                self.errors += 1;
                *self.error_kinds.entry(kind).or_default() += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(detail);
                }
            }
        }
    }

    fn merge(&mut self, other: TaskStats) {
        self.histogram
            .add(&other.histogram)
            .expect("same histogram bounds");
        self.ok += other.ok;
        self.errors += other.errors;
        self.warmup_requests += other.warmup_requests;
        self.response_bytes += other.response_bytes;
        for (k, n) in other.error_kinds {
            *self.error_kinds.entry(k).or_default() += n;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.last_done = match (self.last_done, other.last_done) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

enum Outcome {
    Ok { bytes: u64 },
    Error { kind: String, detail: String },
}

fn transport_error(e: &reqwest::Error) -> Outcome {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    Outcome::Error {
        kind: kind.into(),
        detail: format!("{e:#}"),
    }
}

async fn status_error(res: reqwest::Response) -> Outcome {
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    Outcome::Error {
        kind: format!("http {}", status.as_u16()),
        detail: format!("{status}: {}", &text[..text.len().min(300)]),
    }
}

async fn get_loop(ctx: TaskCtx) -> TaskStats {
    let mut stats = TaskStats::new();
    let urls: Vec<String> = ctx
        .docs
        .iter()
        .map(|d| ctx.api.url(&format!("/documents/{}", d.id)))
        .collect();
    loop {
        let start = Instant::now();
        if start >= ctx.end {
            break;
        }
        let i = ctx.next.fetch_add(1, Ordering::Relaxed) % urls.len();
        let result = ctx
            .api
            .client
            .get(&urls[i])
            .header(AUTHORIZATION, ctx.api.auth.clone())
            .send()
            .await;
        let outcome = match result {
            Ok(res) if res.status().is_success() => match res.bytes().await {
                Ok(b) => Outcome::Ok {
                    bytes: b.len() as u64,
                },
                Err(e) => transport_error(&e),
            },
            Ok(res) => status_error(res).await,
            Err(e) => transport_error(&e),
        };
        stats.record(&ctx, start, Instant::now(), outcome);
    }
    stats
}

async fn put_loop(ctx: TaskCtx, task: usize) -> TaskStats {
    let mut stats = TaskStats::new();
    let doc = &ctx.docs[task];
    let url = ctx.api.url(&format!("/documents/{}/content", doc.id));
    let mut etag = doc.etag.clone();
    let mut rev: u64 = 0;
    loop {
        let start = Instant::now();
        if start >= ctx.end {
            break;
        }
        rev += 1;
        let body = content(task, rev, &ctx.body, ctx.doc_bytes);
        let result = ctx
            .api
            .client
            .put(&url)
            .header(AUTHORIZATION, ctx.api.auth.clone())
            .header(CONTENT_TYPE, "text/markdown; charset=utf-8")
            .header(IF_MATCH, etag.as_str())
            .body(body)
            .send()
            .await;
        let mut resync = false;
        let outcome = match result {
            Ok(res) if res.status().is_success() => {
                let new_etag = etag_of(&res);
                match res.bytes().await {
                    Ok(b) => match new_etag {
                        Some(e) => {
                            etag = e;
                            Outcome::Ok {
                                bytes: b.len() as u64,
                            }
                        }
                        None => {
                            resync = true;
                            Outcome::Error {
                                kind: "no etag".into(),
                                detail: "a 2xx PUT answered without ETag".into(),
                            }
                        }
                    },
                    Err(e) => {
                        resync = true;
                        transport_error(&e)
                    }
                }
            }
            Ok(res) => {
                resync = res.status() == StatusCode::PRECONDITION_FAILED;
                status_error(res).await
            }
            Err(e) => {
                resync = true;
                transport_error(&e)
            }
        };
        stats.record(&ctx, start, Instant::now(), outcome);
        if resync {
            // Not timed: fetch the current ETag so the next PUT can succeed again.
            if let Ok(res) = ctx
                .api
                .client
                .get(ctx.api.url(&format!("/documents/{}", doc.id)))
                .header(AUTHORIZATION, ctx.api.auth.clone())
                .send()
                .await
                && let Some(e) = etag_of(&res)
            {
                etag = e;
                let _ = res.bytes().await;
            }
        }
    }
    stats
}

// ---- Markdown ------------------------------------------------------------------------------------

/// Some plausible Markdown, at least `bytes` long (ASCII only, so any cut is a char boundary).
fn markdown(bytes: usize) -> String {
    const BLOCKS: [&str; 6] = [
        "## Section {n}\n\n",
        "Lorem ipsum dolor sit amet, *consectetur* adipiscing elit, sed do **eiusmod** tempor \
         incididunt ut labore et dolore magna aliqua. See [the docs](https://example.com/{n}).\n\n",
        "- first item of list {n}\n- second item with `inline code`\n- third item\n\n",
        "```rust\nfn section_{n}() -> u32 {\n    {n}\n}\n```\n\n",
        "> A quotation in section {n}, kept short.\n\n",
        "| a | b |\n|---|---|\n| {n} | x |\n\n",
    ];
    let mut out = String::with_capacity(bytes + 256);
    let mut n = 0usize;
    while out.len() < bytes {
        out.push_str(&BLOCKS[n % BLOCKS.len()].replace("{n}", &(n / BLOCKS.len()).to_string()));
        n += 1;
    }
    out
}

/// Exactly `doc_bytes` bytes: a heading naming the document and revision, then the shared body.
fn content(doc: usize, rev: u64, body: &str, doc_bytes: usize) -> String {
    let mut s = format!("# Bench document {doc}, revision {rev}\n\n");
    let rest = doc_bytes.saturating_sub(s.len());
    s.push_str(&body[..rest.min(body.len())]);
    s.truncate(doc_bytes);
    s
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, 100 ticks/s).
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
