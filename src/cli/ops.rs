//! Commands over a running node's admin API (`billsync::admin_client`): `connections list |
//! status | pause | resume | resync | replay` and `backfill`. Human-readable lines by
//! default; `--json` prints the node's answer as it came.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{json, Value};

use billsync::admin_client::{connection_path, AdminClient};
use billsync::api::{ConnectionOut, JobProgressOut};
use billsync::config::Config;

/// Which node, and how to talk to it.
#[derive(clap::Args)]
pub struct NodeArgs {
    /// The node's base URL (default: http:// + the configured listen address).
    #[arg(long, global = true)]
    target: Option<String>,
    /// The node's admin token (default: BILLSYNC_ADMIN_TOKEN or `admin_token`).
    #[arg(long, global = true, hide_env_values = true)]
    token: Option<String>,
}

impl NodeArgs {
    fn client(&self, config: &Config) -> anyhow::Result<AdminClient> {
        let target = self
            .target
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen));
        let token = self
            .token
            .clone()
            .or_else(|| config.admin_token.clone())
            .context(
                "no admin token: set BILLSYNC_ADMIN_TOKEN (or --token) to the node's admin token",
            )?;
        Ok(AdminClient::new(&target, &token)?)
    }
}

#[derive(clap::Args)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// Print the node's JSON answer instead of lines for people.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: ConnectionsCommand,
}

#[derive(clap::Subcommand)]
pub enum ConnectionsCommand {
    /// One line per connection: id, merchant, provider, state, last applied, last error.
    List {
        /// Only this merchant's connections.
        #[arg(long)]
        merchant_id: Option<String>,
    },
    /// A connection's state, settings, last provider error and running jobs.
    Status { connection: String },
    /// Stop processing a connection (its webhooks are still stored).
    Pause { connection: String },
    /// Restart processing of a paused connection.
    Resume { connection: String },
    /// Re-pull objects of some kinds changed since a time from the provider's API.
    Resync {
        connection: String,
        /// Since this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        since: String,
        /// Object kinds, comma-separated (default: all).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "customer,invoice,credit_note,subscription,transaction"
        )]
        types: Vec<String>,
    },
    /// Re-derive objects from the raw events stored between two times (no provider calls).
    Replay {
        connection: String,
        /// From this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        from: String,
        /// To this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        to: String,
    },
}

#[derive(clap::Args)]
pub struct BackfillArgs {
    /// The connection id (`conn_...`).
    #[arg(long)]
    connection: String,
    /// Pull history since this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    since: String,
    #[command(flatten)]
    node: NodeArgs,
}

pub async fn backfill(config: &Config, args: BackfillArgs) -> anyhow::Result<ExitCode> {
    let client = args.node.client(config)?;
    let done = client
        .backfill(&args.connection, &args.since)
        .await
        .with_context(|| format!("backfill of {}", args.connection))?;
    println!(
        "backfill of {} done: {} objects, {} pages, {} requests, {} objects/s",
        args.connection,
        done.objects,
        done.pages.unwrap_or(0),
        done.requests.unwrap_or(0),
        done.rate_per_sec
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn connections(config: &Config, args: ConnectionsArgs) -> anyhow::Result<ExitCode> {
    let client = args.node.client(config)?;
    let since = |t: &str| billsync::admin_client::normalize_since(t);
    let (answer, action) = match &args.command {
        ConnectionsCommand::List { merchant_id } => {
            let list = client.list_connections(merchant_id.as_deref()).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&Value::Array(list))?);
            } else {
                print_list(&list);
            }
            return Ok(ExitCode::SUCCESS);
        }
        ConnectionsCommand::Status { connection } => {
            (client.connection(connection).await?.0, "status of")
        }
        ConnectionsCommand::Pause { connection } => {
            let path = connection_path(connection, "/pause");
            (client.post(&path, None, &[200]).await?.1, "paused")
        }
        ConnectionsCommand::Resume { connection } => {
            let path = connection_path(connection, "/resume");
            (client.post(&path, None, &[200]).await?.1, "resumed")
        }
        ConnectionsCommand::Resync {
            connection,
            since: from,
            types,
        } => {
            let body = json!({ "object_types": types, "since": since(from)? });
            let path = connection_path(connection, "/resync");
            (
                client.post(&path, Some(&body), &[202]).await?.1,
                "resync started for",
            )
        }
        ConnectionsCommand::Replay {
            connection,
            from,
            to,
        } => {
            let body = json!({ "from": since(from)?, "to": since(to)? });
            let path = connection_path(connection, "/replay");
            (
                client.post(&path, Some(&body), &[202]).await?.1,
                "replay queued for",
            )
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        let view = client.parse_connection(200, &answer)?;
        println!("{action} {}", view.connection_id);
        print!("{}", status_lines(&view));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(list: &[Value]) {
    let rows: Vec<[String; 6]> = list
        .iter()
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or("-").to_owned();
            let error = c["last_provider_error"]["kind"]
                .as_str()
                .map_or("-".to_owned(), str::to_owned);
            [
                text("connection_id"),
                text("merchant_id"),
                text("provider"),
                text("state"),
                text("last_applied_at"),
                error,
            ]
        })
        .collect();
    let header = [
        "CONNECTION",
        "MERCHANT",
        "PROVIDER",
        "STATE",
        "LAST APPLIED",
        "LAST ERROR",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out
    };
    println!("{}", line(header));
    for row in &rows {
        println!("{}", line(row.each_ref().map(String::as_str)));
    }
    println!("{} connections", rows.len());
}

/// A connection's view as `key: value` lines.
pub fn status_lines(c: &ConnectionOut) -> String {
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    let mut out = format!(
        "  merchant: {}\n  provider: {} (account {})\n  state: {}\n  webhook path: {}\n  \
         created: {}\n  last applied: {}\n",
        c.merchant_id,
        c.provider.as_str(),
        c.account_id,
        c.state.as_str(),
        c.webhook_path,
        or_none(&c.created_at),
        or_none(&c.last_applied_at),
    );
    match &c.last_provider_error {
        Some(e) => out.push_str(&format!(
            "  last provider error: {} at {}: {}\n",
            e.kind,
            e.at.as_deref().unwrap_or("?"),
            e.message
        )),
        None => out.push_str("  last provider error: none\n"),
    }
    for (name, job) in [("backfill", &c.backfill), ("resync", &c.resync)] {
        if let Some(job) = job {
            out.push_str(&format!("  {name}: {}\n", job_line(job)));
        }
    }
    if let Some(replay) = &c.replay {
        out.push_str(&format!(
            "  replay: {} raw events queued\n",
            replay.raw_events_queued
        ));
    }
    out
}

fn job_line(p: &JobProgressOut) -> String {
    let percent = p
        .fraction_done
        .map_or(String::new(), |f| format!(" {:.0}%", f * 100.0));
    let error = p
        .error
        .as_deref()
        .map_or(String::new(), |e| format!(": {e}"));
    format!(
        "{}{percent}, {} objects, {:.0} objects/s{error}",
        p.state, p.objects, p.rate_per_sec
    )
}
