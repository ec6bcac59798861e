//! The `billsync` binary: a thin clap shim over the library (`billsync::run` and friends).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use billsync::config::Config;

#[derive(Parser)]
#[command(
    name = "billsync",
    version,
    about = "Keeps a billing ledger equal to what the billing providers say"
)]
struct Cli {
    /// Optional TOML configuration file (environment variables win over it).
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
    Connect(ConnectArgs),
    /// Start a backfill on a running node and show its progress until it is done.
    Backfill(BackfillArgs),
    /// Check each connection against its provider: API reachable over TLS, credentials
    /// accepted, API version known, webhook secrets, last event. Exits 1 when a check fails.
    Doctor(DoctorArgs),
    /// The provider simulator (serve, verify).
    #[command(subcommand)]
    Sim(SimCommand),
    /// Print the OpenAPI 3.1 document of the HTTP API (what `GET /openapi.json` serves), or
    /// write it to a file (`--out docs/openapi.json`).
    Openapi(OpenapiArgs),
}

#[derive(clap::Args)]
struct OpenapiArgs {
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The route-by-route reference in Markdown (docs/api-reference.md) instead of the JSON.
    #[arg(long)]
    markdown: bool,
}

#[derive(Subcommand)]
enum SimCommand {
    /// Serve fake providers' APIs under http://ADDR/{provider}, delivering webhooks to a target.
    Serve(SimServeArgs),
    /// Compare every simulated object with billsync's read API; exit 0 only when none diverge.
    Verify(SimVerifyArgs),
}

#[derive(clap::Args)]
struct SimServeArgs {
    #[arg(long, default_value = "127.0.0.1:12111")]
    listen: std::net::SocketAddr,
    #[arg(long, default_value_t = 1)]
    accounts: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Providers to simulate; accounts are spread over them, and each merchant has one
    /// account at each (`--accounts 12 --providers stripe,paddle` gives 6 merchants).
    #[arg(long, default_value = "stripe", value_delimiter = ',')]
    providers: Vec<String>,
    /// Objects of history per account (for backfills).
    #[arg(long, default_value_t = 0)]
    history: usize,
    /// Lifecycle steps per second per account, delivered live.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// A billsync to register the accounts with and deliver webhooks to.
    #[arg(long)]
    target: Option<String>,
    /// The target's admin token.
    #[arg(long, env = "BILLSYNC_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Knobs as JSON, e.g. '{"webhook_drop":0.05,"rate_limit_per_sec":100}'.
    #[arg(long)]
    knobs: Option<String>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key), as the real APIs do.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(clap::Args)]
struct DoctorArgs {
    /// Check only this connection (`conn_...`).
    #[arg(long)]
    connection: Option<String>,
}

#[derive(clap::Args)]
struct SimVerifyArgs {
    #[arg(long)]
    sim: String,
    #[arg(long)]
    target: String,
    #[arg(long, env = "BILLSYNC_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(clap::Args)]
struct BackfillArgs {
    /// The connection id (`conn_...`).
    #[arg(long)]
    connection: String,
    /// Pull history since this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    since: String,
    /// The node's base URL (default: http:// + the configured listen address).
    #[arg(long)]
    target: Option<String>,
}

#[derive(clap::Args)]
struct ConnectArgs {
    #[arg(long)]
    merchant_id: String,
    #[arg(long)]
    provider: String,
    #[arg(long)]
    account_id: String,
    /// A webhook secret; repeat for several active secrets (rotation).
    #[arg(long = "webhook-secret", required = true)]
    webhook_secrets: Vec<String>,
    #[arg(long, env = "BILLSYNC_CONNECT_API_KEY", hide_env_values = true)]
    api_key: String,
    #[arg(long)]
    api_base_url: Option<String>,
    #[arg(long)]
    rate_limit_per_sec: Option<i64>,
    #[arg(long)]
    reconcile_interval_secs: Option<i64>,
    #[arg(long)]
    api_version: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Openapi(args) = &cli.command {
        let doc = if args.markdown {
            billsync::http::openapi::reference_markdown()
        } else {
            billsync::http::openapi::document_json().to_owned()
        };
        return match &args.out {
            Some(path) => std::fs::write(path, doc).with_context(|| {
                format!("cannot write the OpenAPI document to {}", path.display())
            }),
            None => {
                print!("{doc}");
                Ok(())
            }
        };
    }
    let config = Config::load(cli.config.as_deref())?;
    billsync::telemetry::init_logging(&config.log);
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            billsync::open_store(&config).await?;
            println!(
                "migrations applied to {}",
                billsync::config::redact_url(&config.database_url)
            );
            Ok(())
        }
        Command::Connect(args) => connect(config, args).await,
        Command::Doctor(args) => doctor(config, args).await,
        Command::Sim(SimCommand::Serve(args)) => sim_serve(args).await,
        Command::Sim(SimCommand::Verify(args)) => {
            let report =
                billsync::simulator::verify::verify(&args.sim, &args.target, &args.token).await?;
            for d in &report.divergent {
                println!("DIVERGENT {} {}: {}", d.merchant_id, d.id, d.what);
            }
            println!("{}", report.summary());
            if !report.divergent.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Openapi(_) => unreachable!("answered before the configuration is loaded"),
        Command::Backfill(args) => {
            let target = args
                .target
                .unwrap_or_else(|| format!("http://{}", config.listen));
            let token = config
                .admin_token
                .context("set BILLSYNC_ADMIN_TOKEN to the node's admin token")?;
            let done =
                billsync::admin_client::backfill(&target, &token, &args.connection, &args.since)
                    .await?;
            println!(
                "backfill of {} done: {} objects, {} pages, {} requests, {} objects/s",
                args.connection,
                done.objects,
                done.pages.unwrap_or(0),
                done.requests.unwrap_or(0),
                done.rate_per_sec
            );
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("installing a SIGTERM handler succeeds on unix");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    };
    billsync::run(config, listener, shutdown).await?;
    Ok(())
}

async fn connect(config: Config, args: ConnectArgs) -> anyhow::Result<()> {
    let store = billsync::open_store(&config).await?;
    let connections = billsync::connections::Connections::new(
        store,
        billsync::sealer(&config)?,
        config.reconcile_interval_secs,
    );
    let body = serde_json::json!({
        "merchant_id": args.merchant_id,
        "provider": args.provider,
        "account_id": args.account_id,
        "webhook_secrets": args.webhook_secrets,
        "api_key": args.api_key,
        "api_base_url": args.api_base_url,
        "rate_limit_per_sec": args.rate_limit_per_sec,
        "reconcile_interval_secs": args.reconcile_interval_secs,
        "api_version": args.api_version,
    });
    let record = connections.create(&body, "cli").await?;
    let view = billsync::connections::view(&record);
    println!("{}", serde_json::to_string_pretty(&view)?);
    Ok(())
}

async fn doctor(config: Config, args: DoctorArgs) -> anyhow::Result<()> {
    let store = billsync::open_store(&config).await?;
    let connections = std::sync::Arc::new(
        billsync::connections::Connections::new(
            store.clone(),
            billsync::sealer(&config)?,
            config.reconcile_interval_secs,
        )
        .allowing_plain_http(config.allow_plain_http),
    );
    let client = billsync::outbound::client(&config.outbound())?;
    let mut failed = 0;
    let checked = billsync::doctor::run(
        store,
        connections,
        client,
        args.connection.as_deref(),
        std::time::Duration::from_secs(config.provider_timeout_secs.max(1)),
        |d| {
            if !d.ok() {
                failed += 1;
            }
            println!("{}", d.line());
        },
    )
    .await?;
    if checked == 0 {
        match &args.connection {
            Some(id) => anyhow::bail!("no connection {id} in this store"),
            None => println!("no connections registered"),
        }
    }
    println!("{checked} connections checked, {failed} with a failed check");
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

async fn sim_serve(args: SimServeArgs) -> anyhow::Result<()> {
    use billsync::simulator::{Sim, SimConfig, Target};
    let providers = args
        .providers
        .iter()
        .map(|p| {
            billsync::providers::ProviderKind::parse(p.trim())
                .filter(|k| billsync::simulator::personality::for_kind(*k).is_some())
                .ok_or_else(|| billsync::simulator::SimError::Provider(p.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = SimConfig {
        accounts: args.accounts,
        seed: args.seed,
        history: args.history,
        providers: providers.clone(),
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                Some(billsync::simulator::TlsIdentity::from_files(cert, key)?)
            }
            _ => None,
        },
        ..SimConfig::default()
    };
    if let Some(k) = &args.knobs {
        config
            .knobs
            .merge(&serde_json::from_str(k).context("--knobs is not JSON")?)?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let handle = Sim::start(config, listener).await?;
    for p in &providers {
        println!(
            "billsync sim serving {} at {}/{}",
            p.as_str(),
            handle.sim.base_url(),
            p.as_str()
        );
    }
    if let Some(url) = args.target {
        let token = args
            .token
            .context("--target needs --token (or BILLSYNC_ADMIN_TOKEN)")?;
        handle.sim.register(Target { url, token }, None).await?;
        println!("registered {} accounts with the target", args.accounts);
    }
    if args.rate > 0.0 {
        let sim = handle.sim.clone();
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(std::time::Duration::from_secs_f64(1.0 / args.rate));
            loop {
                tick.tick().await;
                sim.step(1);
            }
        });
    }
    tokio::signal::ctrl_c().await?;
    handle.stop();
    Ok(())
}
