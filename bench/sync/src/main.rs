//! Sync benchmark against a running MD Creator server.
//!
//! Setup: a fresh user, a workspace and a device. Then:
//!
//! * **push**: `--changes` documents created offline, pushed in batches of `--batch` mutations
//!   (`document.create`), then one `document.update` of each, again in batches: time per batch
//!   and mutations per second;
//! * **pull**: a new device pulls the whole workspace (`--changes` documents, one change each) from
//!   an empty cursor, page by page (`--page`), `--repeats` times: time for the full pull and per
//!   page;
//! * **poke → pull**: a client listens on `/sync/events`; another device pushes one edit; the
//!   time from sending the push until the listener has received the poke and pulled the change,
//!   `--pokes` times.
//!
//! This is a benchmark, not a test: it exits 0 whenever it could run, whatever it measured.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "mdcreator-bench-sync",
    about = "Sync benchmark of the MD Creator server"
)]
struct Args {
    /// Base URL of a running server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// Documents (hence changes) in the workspace.
    #[arg(long, default_value_t = 10_000)]
    changes: usize,
    /// Mutations per push.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Changes per pull page (the server's maximum is 1000).
    #[arg(long, default_value_t = 1000)]
    page: usize,
    /// Full pulls measured.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Poke-to-pull round trips measured.
    #[arg(long, default_value_t = 50)]
    pokes: usize,
    /// Bytes of Markdown per document.
    #[arg(long, default_value_t = 1024)]
    doc_bytes: usize,
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status} {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(name: &str, h: &Histogram<u64>) {
    println!(
        "{name:<34} n={:<5} p50={:>9.1} ms  p90={:>9.1} ms  p99={:>9.1} ms  max={:>9.1} ms",
        h.len(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.9) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
    );
}

async fn signup(http: &reqwest::Client, base: &str) -> anyhow::Result<Client> {
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let password = "correct horse battery staple";
    let r = http
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&json!({"email": email, "password": password, "display_name": "bench"}))
        .send()
        .await?;
    if r.status() != StatusCode::CREATED {
        bail!("signup: {} {}", r.status(), r.text().await?);
    }
    let tokens: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await?
        .json()
        .await?;
    Ok(Client {
        http: http.clone(),
        base: base.to_owned(),
        token: tokens["access_token"]
            .as_str()
            .context("access token")?
            .to_owned(),
    })
}

async fn device(c: &Client, name: &str) -> anyhow::Result<String> {
    let d = c
        .call(
            reqwest::Method::POST,
            "/devices",
            Some(&json!({"name": name, "platform": "bench"})),
        )
        .await?;
    Ok(d["id"].as_str().context("device id")?.to_owned())
}

/// Pulls until `has_more` is false; (changes, pages, per-page durations).
async fn pull_all(
    c: &Client,
    device: &str,
    cursor: &mut Option<String>,
    page: usize,
) -> anyhow::Result<(usize, Vec<Duration>)> {
    let mut changes = 0;
    let mut times = Vec::new();
    loop {
        let mut path = format!("/sync/pull?device_id={device}&limit={page}");
        if let Some(c) = cursor.as_deref() {
            path.push_str(&format!("&cursor={c}"));
        }
        let started = Instant::now();
        let r = c.call(reqwest::Method::GET, &path, None).await?;
        times.push(started.elapsed());
        changes += r["changes"].as_array().map_or(0, Vec::len);
        *cursor = Some(r["cursor"].as_str().context("cursor")?.to_owned());
        if r["has_more"] != true {
            return Ok((changes, times));
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(8)
        .build()?;
    let c = signup(&http, &args.base).await?;
    let ws = c
        .call(
            reqwest::Method::POST,
            "/workspaces",
            Some(&json!({"name": "Sync bench"})),
        )
        .await?;
    let ws = ws["id"].as_str().context("workspace id")?.to_owned();
    let writer = device(&c, "writer").await?;
    let body =
        "lorem ipsum dolor sit amet ".repeat(args.doc_bytes / 27 + 1)[..args.doc_bytes].to_owned();

    // ---- push ----
    let ids: Vec<String> = (0..args.changes)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let mut next = 1i64;
    let mut creates = Histogram::<u64>::new(3)?;
    let mut updates = Histogram::<u64>::new(3)?;
    let mut total = [Duration::ZERO; 2];
    for (phase, hist) in [(0usize, &mut creates), (1, &mut updates)] {
        for chunk in ids.chunks(args.batch) {
            let mutations: Vec<Value> = chunk
                .iter()
                .map(|id| {
                    let m = if phase == 0 {
                        json!({"mutation_id": next, "type": "document.create", "entity_id": id,
                               "payload": {"workspace_id": ws, "title": "Bench", "content": body}})
                    } else {
                        json!({"mutation_id": next, "type": "document.update", "entity_id": id,
                               "base_version": 1, "payload": {"content": format!("{body}\nedited\n")}})
                    };
                    next += 1;
                    m
                })
                .collect();
            let started = Instant::now();
            let r = c
                .call(
                    reqwest::Method::POST,
                    "/sync/push",
                    Some(&json!({"device_id": writer, "mutations": mutations})),
                )
                .await?;
            let took = started.elapsed();
            total[phase] += took;
            hist.record(took.as_micros() as u64)?;
            if r.get("stopped").is_some() {
                bail!("push stopped: {}", r["stopped"]);
            }
        }
    }
    println!(
        "push, {} mutations per batch, {} documents of {} bytes",
        args.batch, args.changes, args.doc_bytes
    );
    summary("  push document.create batch", &creates);
    summary("  push document.update batch", &updates);
    for (name, t) in [("create", total[0]), ("update", total[1])] {
        println!(
            "  {name:<32} {:>9.0} mutations/s",
            args.changes as f64 / t.as_secs_f64()
        );
    }

    // ---- pull ----
    let mut full = Histogram::<u64>::new(3)?;
    let mut pages = Histogram::<u64>::new(3)?;
    let mut seen = 0;
    for i in 0..args.repeats {
        let reader = device(&c, &format!("reader {i}")).await?;
        let mut cursor = None;
        let started = Instant::now();
        let (n, times) = pull_all(&c, &reader, &mut cursor, args.page).await?;
        full.record(started.elapsed().as_micros() as u64)?;
        for t in times {
            pages.record(t.as_micros() as u64)?;
        }
        seen = n;
    }
    println!(
        "pull from an empty cursor: {seen} changes, pages of {}",
        args.page
    );
    summary("  full pull", &full);
    summary("  one page", &pages);

    // ---- poke → pull ----
    let listener = device(&c, "listener").await?;
    let mut cursor = None;
    pull_all(&c, &listener, &mut cursor, args.page).await?;
    let mut events = http
        .get(format!("{}/api/v1/sync/events", args.base))
        .bearer_auth(&c.token)
        .send()
        .await?;
    let mut buffer = String::new();
    while !buffer.contains(": connected") {
        let chunk = events.chunk().await?.context("event stream ended")?;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
    let target = &ids[0];
    let mut round_trips = Histogram::<u64>::new(3)?;
    for (i, version) in (0..args.pokes).zip(2i64..) {
        buffer.clear();
        let started = Instant::now();
        let m = json!({"mutation_id": next, "type": "document.update", "entity_id": target,
                       "base_version": version, "payload": {"content": format!("poke {i}\n")}});
        next += 1;
        c.call(
            reqwest::Method::POST,
            "/sync/push",
            Some(&json!({"device_id": writer, "mutations": [m]})),
        )
        .await?;
        while !buffer.contains("event: changes") {
            let chunk = tokio::time::timeout(Duration::from_secs(10), events.chunk())
                .await
                .context("no poke within 10 s")??
                .context("event stream ended")?;
            buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
        let (n, _) = pull_all(&c, &listener, &mut cursor, args.page).await?;
        if n == 0 {
            bail!("poked, but the pull found nothing");
        }
        round_trips.record(started.elapsed().as_micros() as u64)?;
    }
    println!("poke → pull (push sent → event received → pull done)");
    summary("  round trip", &round_trips);
    println!(
        "(total {:.1} s of pushes measured)",
        ms(total[0] + total[1]) / 1000.0
    );
    Ok(())
}
