//! Commands on this node's own store and configuration: `serve`, `migrate`, `connect`,
//! `doctor`, `config` and `openapi`. Each store is checked before it is opened
//! ([`super::edge::check_store`]), so that an unreachable database is named at once.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use billsync::config::{redact_url, Config};

#[derive(clap::Args)]
pub struct OpenapiArgs {
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The route-by-route reference in Markdown (docs/api-reference.md) instead of the JSON.
    #[arg(long)]
    markdown: bool,
}

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// Check only this connection (`conn_...`).
    #[arg(long)]
    connection: Option<String>,
}

#[derive(clap::Args)]
pub struct ConfigArgs {
    /// Print the commented example file (every setting at its default) instead.
    #[arg(long)]
    example: bool,
}

#[derive(clap::Args)]
pub struct ConnectArgs {
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

pub fn openapi(args: &OpenapiArgs) -> anyhow::Result<ExitCode> {
    let doc = if args.markdown {
        billsync::http::openapi::reference_markdown()
    } else {
        billsync::http::openapi::document_json().to_owned()
    };
    match &args.out {
        Some(path) => std::fs::write(path, doc)
            .with_context(|| format!("cannot write the OpenAPI document to {}", path.display()))?,
        None => print!("{doc}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn print_config(config: &Config, args: &ConfigArgs) -> ExitCode {
    if args.example {
        print!("{}", billsync::config::settings::example_toml());
    } else {
        print!("{}", billsync::config::settings::effective_toml(config));
    }
    ExitCode::SUCCESS
}

/// Opens (and migrates) the configured store, naming it in any error.
pub(super) async fn open_store(
    config: &Config,
) -> anyhow::Result<std::sync::Arc<dyn billsync::store::Store>> {
    super::edge::check_store(&config.database_url).await?;
    billsync::open_store(config)
        .await
        .with_context(|| format!("cannot open the store {}", redact_url(&config.database_url)))
}

pub async fn migrate(config: &Config) -> anyhow::Result<ExitCode> {
    open_store(config).await?;
    println!("migrations applied to {}", redact_url(&config.database_url));
    Ok(ExitCode::SUCCESS)
}

pub async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    super::edge::check_store(&config.database_url)
        .await
        .context("cannot start the node")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (set BILLSYNC_LISTEN to a free address)",
                config.listen
            )
        })?;
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
    let store = redact_url(&config.database_url);
    billsync::run(config, listener, shutdown)
        .await
        .with_context(|| format!("the node on the store {store} stopped"))?;
    Ok(ExitCode::SUCCESS)
}

pub async fn connect(config: Config, args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&config).await?;
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
    let record = connections
        .create(&body, &cli_actor())
        .await
        .context("cannot register the connection")?;
    let view = billsync::connections::view(&record);
    println!("{}", serde_json::to_string_pretty(&view)?);
    Ok(ExitCode::SUCCESS)
}

pub async fn doctor(config: Config, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(&config).await?;
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
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The audit log's actor for a CLI command that acts on the store directly (docs/api.md "Audit
/// log"): `cli:` and the OS user running it (`$USER`, else `$LOGNAME`, else `unknown`).
pub(super) fn cli_actor() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    format!("cli:{user}")
}
