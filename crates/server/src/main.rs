//! `mdcreator`: `serve` (default), `migrate`, `healthcheck`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mdcreator_server::{Application, Settings, startup, telemetry};

#[derive(Parser)]
#[command(name = "mdcreator", version, about = "The MD Creator backend")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// GET /healthz on the configured listen address; exit 0 when it answers 200 (container checks).
    Healthcheck,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tune_malloc();
    startup::install_crypto_provider();
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format.as_deref());
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => startup::migrate(&settings).await,
        Command::Healthcheck => startup::healthcheck(&settings).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "fatal");
            ExitCode::FAILURE
        }
    }
}

/// glibc's allocator, set for a long-running server with many threads (see
/// `bench/collab-rust/README.md`, session of 2026-11-26 (morning)), unless the environment sets
/// these itself (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`):
/// - Two arenas, not eight per core: each SQLite pool connection has a thread of its own, and an
///   arena per thread held about 1 MiB each, mostly empty.
/// - Blocks from 128 KiB up always come from `mmap`, so they go back to the system when freed.
///   glibc otherwise raises that threshold after the first such free, and every later password
///   hash (Argon2, 19 MiB) stayed in the heap for good.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |var: &str, param: libc::c_int, value: libc::c_int| {
            if std::env::var_os(var).is_none() {
                // SAFETY: mallopt takes no pointers and only changes the allocator's parameters
                // (under its own lock); it is called at start-up, before the server's threads.
                unsafe { libc::mallopt(param, value) };
            }
        };
        set("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 2);
        set("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    tracing::info!(address = %app.address(), "MD Creator listening");
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}
