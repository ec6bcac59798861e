//! The `billsync` binary: a thin clap shim over the library (`billsync::run` and friends).
//! It parses the command line, loads the configuration, starts logging and the runtime, hands
//! the command to its module under `cli/`, and turns any error into one sentence
//! (`cli::edge`).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use billsync::config::Config;

/// `0.1.0 (abc1234)`: the crate's version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("BILLSYNC_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "billsync",
    version = VERSION,
    about = "Keeps a billing ledger equal to what the billing providers say"
)]
struct Cli {
    /// Optional TOML configuration file (environment variables win over it;
    /// billsync.example.toml lists every key).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: webhook intake, actors, read and admin API, /metrics.
    Serve,
    /// Apply the store's schema migrations and exit.
    Migrate,
    /// Register a merchant connection (same fields as POST /admin/v1/connections).
    Connect(cli::node::ConnectArgs),
    /// List, show, pause, resume, resync or replay connections on a running node.
    #[command(visible_alias = "conn")]
    Connections(cli::ops::ConnectionsArgs),
    /// Start a backfill on a running node and show its progress until it is done.
    Backfill(cli::ops::BackfillArgs),
    /// Check each connection against its provider: API reachable over TLS, credentials
    /// accepted, API version known, webhook secrets, last event. Exits 1 when a check fails.
    Doctor(cli::node::DoctorArgs),
    /// Archive closed time partitions of raw events to S3 and trim them past the hot window
    /// (docs/archive.md); `archive verify` checks the archive.
    #[cfg(feature = "archive")]
    Archive(cli::archive::ArchiveArgs),
    /// Print the effective configuration (file and environment), secrets masked.
    Config(cli::node::ConfigArgs),
    /// The provider simulator (serve, verify, trigger): crates/billsync-sim, feature `sim`.
    #[cfg(feature = "sim")]
    #[command(subcommand)]
    Sim(cli::sim::SimCommand),
    /// Print the OpenAPI 3.1 document of the HTTP API (what `GET /openapi.json` serves), or
    /// write it to a file (`--out docs/openapi.json`).
    Openapi(cli::node::OpenapiArgs),
    /// Print a shell completion script: `billsync completions bash > /etc/bash_completion.d/billsync`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The command line definition, `serve --help` listing every setting.
fn command() -> clap::Command {
    Cli::command().mut_subcommand("serve", |serve| {
        serve.after_long_help(billsync::config::settings::help())
    })
}

fn main() -> ExitCode {
    let matches = command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            cli::edge::report(&error);
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command(), "billsync", &mut script);
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Openapi(args) => return cli::node::openapi(args),
        _ => {}
    }
    let config = Config::load(cli.config.as_deref())?;
    if let Command::Config(args) = &cli.command {
        return Ok(cli::node::print_config(&config, args));
    }
    if config.log_format == billsync::config::LogFormat::Json {
        // Logging reads its format from the environment; set here, before any other thread.
        std::env::set_var("BILLSYNC_LOG_FORMAT", "json");
    }
    billsync::telemetry::init_logging(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(dispatch(cli.command, config))
}

async fn dispatch(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => cli::node::serve(config).await,
        Command::Migrate => cli::node::migrate(&config).await,
        Command::Connect(args) => cli::node::connect(config, args).await,
        Command::Doctor(args) => cli::node::doctor(config, args).await,
        Command::Connections(args) => cli::ops::connections(&config, args).await,
        Command::Backfill(args) => cli::ops::backfill(&config, args).await,
        #[cfg(feature = "sim")]
        Command::Sim(command) => cli::sim::run(command).await,
        #[cfg(feature = "archive")]
        Command::Archive(args) => cli::archive::run(config, args).await,
        Command::Openapi(_) | Command::Completions { .. } | Command::Config(_) => {
            unreachable!("answered before the runtime starts")
        }
    }
}
