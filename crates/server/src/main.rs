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

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    tracing::info!(address = %app.address(), "MD Creator listening");
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}
