//! `billsync sim serve` (the provider simulator, crates/billsync-sim, registering its accounts with
//! a node), `billsync sim verify` (every simulated object against the node's read API, with
//! billsync's mapping as the expectation: `billsync::sim_expectation`) and `billsync sim trigger`
//! (one named lifecycle step on a running simulator). Only with the feature `sim`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Subcommand)]
pub enum SimCommand {
    /// Serve fake providers' APIs under http://ADDR/{provider}, delivering webhooks to a target.
    Serve(SimServeArgs),
    /// Compare every simulated object with billsync's read API; exit 0 only when none diverge.
    Verify(SimVerifyArgs),
    /// Make a running simulator perform one named lifecycle step and deliver its webhooks
    /// (like `stripe trigger`), e.g. `invoice.paid`; what it needs is made first.
    Trigger(SimTriggerArgs),
}

#[derive(clap::Args)]
pub struct SimServeArgs {
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
pub struct SimVerifyArgs {
    /// The simulator's address (`127.0.0.1:12111` or a URL).
    #[arg(long)]
    sim: String,
    /// The billsync node's base URL.
    #[arg(long)]
    target: String,
    #[arg(long, env = "BILLSYNC_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
    /// Print at most this many divergent objects (all are counted in the summary).
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Let billsync catch up first, for at most SECS seconds: pause the simulator's live
    /// changes (`--rate`; webhooks already made are still delivered), compare every second
    /// until none diverge or the time is up (progress on standard error), then resume them.
    /// 0 compares once, while changes go on.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    settle: u64,
}

#[derive(clap::Args)]
pub struct SimTriggerArgs {
    /// The lifecycle step, by its Stripe event name (each provider's simulator sends its own
    /// events for it): customer.created, customer.updated, customer.deleted,
    /// customer.subscription.created, customer.subscription.deleted, invoice.created,
    /// invoice.finalized, invoice.paid, invoice.marked_uncollectible, invoice.voided,
    /// charge.succeeded,
    /// charge.refunded, credit_note.created.
    event: String,
    /// The simulator's address (`127.0.0.1:12111` or a URL).
    #[arg(long, default_value = "127.0.0.1:12111")]
    sim: String,
    /// Which of the simulator's accounts (0 is the first).
    #[arg(long, default_value_t = 0)]
    account: usize,
}

pub async fn run(command: SimCommand) -> anyhow::Result<ExitCode> {
    match command {
        SimCommand::Serve(args) => serve(args).await,
        SimCommand::Verify(args) => verify(args).await,
        SimCommand::Trigger(args) => trigger(args).await,
    }
}

async fn trigger(args: SimTriggerArgs) -> anyhow::Result<ExitCode> {
    let base = if args.sim.starts_with("http") {
        args.sim.clone()
    } else {
        format!("http://{}", args.sim)
    };
    let client = billsync::admin_client::AdminClient::new(&base, "")?;
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("event", &args.event)
        .append_pair("account", &args.account.to_string())
        .finish();
    let (status, answer) = client
        .post(&format!("/_sim/trigger?{query}"), None, &[200, 400])
        .await?;
    if status == 400 {
        let why = answer["error"]["message"].as_str().unwrap_or("refused");
        anyhow::bail!("the simulator refused the trigger: {why}");
    }
    println!(
        "{}: {} events made on account {} and their webhooks sent",
        args.event, answer["events"], args.account
    );
    Ok(ExitCode::SUCCESS)
}

async fn verify(args: SimVerifyArgs) -> anyhow::Result<ExitCode> {
    use billsync::sim_expectation::BillsyncMapping;
    use billsync_sim::verify;
    let report = if args.settle == 0 {
        verify::verify(&args.sim, &args.target, &args.token, &BillsyncMapping).await?
    } else {
        let limit = std::time::Duration::from_secs(args.settle);
        eprintln!(
            "settling: live changes paused; comparing until none diverge (up to {} s)",
            args.settle
        );
        // A line when the count changes, and every 10 s while it does not.
        let mut last: Option<(usize, u64)> = None;
        let mut progress = |pass: &verify::SettlePass| {
            let secs = pass.elapsed.as_secs();
            let due = match last {
                None => true,
                Some((divergent, at)) => divergent != pass.divergent || secs >= at + 10,
            };
            if due && pass.divergent > 0 {
                eprintln!(
                    "settling: {} of {} objects divergent after {secs} s",
                    pass.divergent, pass.objects
                );
                last = Some((pass.divergent, secs));
            }
        };
        let settled = verify::verify_settled(
            &verify::client()?,
            &args.sim,
            &args.target,
            &args.token,
            &BillsyncMapping,
            limit,
            &mut progress,
        )
        .await?;
        let secs = settled.elapsed.as_secs_f64();
        let outcome = if settled.report.divergent.is_empty() {
            "settled"
        } else {
            "not settled"
        };
        eprintln!(
            "{outcome} after {secs:.1} s ({} comparisons)",
            settled.passes
        );
        settled.report
    };
    for d in report.divergent.iter().take(args.limit) {
        println!("DIVERGENT {} {}: {}", d.merchant_id, d.id, d.what);
    }
    if report.divergent.len() > args.limit {
        println!(
            "... and {} more divergent objects (--limit {} printed)",
            report.divergent.len() - args.limit,
            args.limit
        );
    }
    println!("{}", report.summary());
    Ok(if report.divergent.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn serve(args: SimServeArgs) -> anyhow::Result<ExitCode> {
    use billsync_sim::{Sim, SimConfig, SimProvider, Target};
    let providers = args
        .providers
        .iter()
        .map(|p| {
            SimProvider::from_name(p.trim())
                .ok_or_else(|| billsync_sim::SimError::Provider(p.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = SimConfig {
        accounts: args.accounts,
        seed: args.seed,
        history: args.history,
        providers: providers.clone(),
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(billsync_sim::TlsIdentity::from_files(cert, key)?),
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
        .with_context(|| format!("cannot listen on {} (choose another --listen)", args.listen))?;
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
        handle
            .sim
            .register(
                Target {
                    url: url.clone(),
                    token,
                },
                None,
            )
            .await
            .with_context(|| format!("cannot register the accounts with {url}"))?;
        println!("registered {} accounts with the target", args.accounts);
    }
    if args.rate > 0.0 {
        // Paused and resumed by `sim verify --settle` (`POST /_sim/pause`, `/_sim/resume`).
        handle.sim.run_live(args.rate);
    }
    tokio::signal::ctrl_c().await?;
    handle.stop();
    Ok(ExitCode::SUCCESS)
}
