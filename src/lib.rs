//! billsync keeps a billing ledger equal to what the billing providers say.
//!
//! The flow (docs/architecture.md): [`http`] intake stores verified webhooks durably and answers
//! 200; the [`actors`] supervisor routes inbox work to one pair actor per connection, which maps
//! events with its [`providers`] module into [`model`] objects and commits versions to the
//! [`store`]. [`run`] wires it all on one node.

/// Every binary that links billsync (the service, its benches and tests) allocates with
/// mimalloc, declared once here so a benchmark never measures another allocator than the
/// service's. At full intake glibc's malloc and free were 10-15% of the node's CPU in `perf`.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The commit this build was made from (`git rev-parse --short HEAD` at build time, set by
/// build.rs), or `unknown` for a build outside a git checkout.
pub const COMMIT: &str = env!("BILLSYNC_COMMIT");

pub mod actors;
pub mod admin_client;
pub mod api;
#[cfg(feature = "archive")]
pub mod archive;
#[cfg(any(feature = "sqs", feature = "archive"))]
pub mod aws_env;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod doctor;
pub mod group_commit;
pub mod http;
pub mod intake_sink;
pub mod model;
pub mod outbound;
pub mod providers;
pub mod secrets;
#[cfg(feature = "sim")]
pub mod sim_expectation;
pub mod store;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::distributions::Alphanumeric;
use rand::Rng;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::actors::pair::PairSettings;
use crate::actors::{Supervisor, SupervisorHandle};
use crate::cluster::keeper::LeaseKeeper;
use crate::cluster::view::Membership;
use crate::cluster::Owned;
use crate::config::Config;
use crate::connections::Connections;
use crate::group_commit::{Committer, GroupCommit, IntakeQueue};
use crate::http::{token_digest, AppState};
use crate::secrets::{Sealer, SecretsError};
use crate::store::{Store, StoreError};

/// Why a node could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum RunError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("secrets: {0}")]
    Secrets(#[from] SecretsError),
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Outbound(#[from] outbound::OutboundError),
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
}

/// Opens and migrates the configured store.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    let store = store::open(&config.database_url).await?;
    store.migrate().await?;
    Ok(store)
}

/// The sealer for connection secrets: the configured key, else the data dir's key file.
pub fn sealer(config: &Config) -> Result<Sealer, SecretsError> {
    match &config.secret_key {
        Some(key) => Sealer::from_base64(key),
        None => Sealer::from_key_file(&config.data_dir.join("secret.key")),
    }
}

const ADMIN_TOKEN_SETTING: &str = "admin_token_sha256";

/// The admin token's digest: from the configuration, else generated once, stored as a
/// digest, and printed on this first start only.
async fn admin_token_digest(config: &Config, store: &dyn Store) -> Result<[u8; 32], StoreError> {
    if let Some(token) = &config.admin_token {
        return Ok(token_digest(token));
    }
    let token: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let digest = token_digest(&token);
    let stored = store
        .put_setting_if_absent(ADMIN_TOKEN_SETTING, &hex::encode(digest))
        .await?;
    if stored == hex::encode(digest) {
        println!("billsync: generated admin token (shown once; set BILLSYNC_ADMIN_TOKEN to choose your own): {token}");
    } else {
        tracing::info!(
            "using the admin token generated at first start (set BILLSYNC_ADMIN_TOKEN to override)"
        );
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(&stored, &mut out)
        .map_err(|_| StoreError::Corrupt("stored admin token digest".into()))?;
    Ok(out)
}

/// Runs a node on `listener` until `shutdown` completes: migrates the store, starts the
/// intake writers, the supervisor and the HTTP server, then drains them in order.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let _node_lock = store::sqlite_lock::lock_node(&config.database_url)?;
    let store = open_store(&config).await?;
    let sealer = sealer(&config)?;
    secrets::check_stored(store.as_ref(), &sealer, &secrets::key_name(&config)).await?;
    let admin_token_digest = admin_token_digest(&config, store.as_ref()).await?;
    let http_client = outbound::client(&config.outbound())?;
    let connections = Arc::new(
        Connections::new(store.clone(), sealer, config.reconcile_interval_secs)
            .allowing_plain_http(config.allow_plain_http),
    );
    let supervisor_handle = SupervisorHandle::default();
    let intake_queue = IntakeQueue::default();
    let cancel = CancellationToken::new();

    let settings = PairSettings {
        idle: Duration::from_secs(config.actor_idle_secs.max(1)),
        max_attempts: config.inbox_max_attempts.max(1),
        confirm: config.provider_sync,
        confirm_after: Duration::from_secs(config.confirm_after_secs),
        confirm_window: Duration::from_secs(config.confirm_window_secs.max(1)),
        request_timeout: Duration::from_secs(config.provider_timeout_secs.max(1)),
        reconcile_interval: Duration::from_secs(config.reconcile_interval_secs.max(1)),
        http: http_client,
        ..PairSettings::new(Committer::spawn(
            store.clone(),
            config.intake_writer_count(),
            intake_queue.clone(),
        ))
    };
    // Which connections this node writes: all of them on a store that serves one node, the
    // shards it leases in a cluster (src/cluster/).
    let started_at = model::time::now_micros();
    let membership = Membership {
        coordination: store.coordination(),
        node_id: config.node_id.clone(),
        started_at,
        lease_secs: config.lease_secs,
    };
    let keeper_stop = CancellationToken::new();
    let (_single_node, owned, keeper_task) = match &membership.coordination {
        None => {
            let (tx, rx) = tokio::sync::watch::channel(Arc::new(Owned::everything()));
            (Some(tx), rx, None)
        }
        Some(coordination) => {
            let (keeper, owned) = LeaseKeeper::new(
                coordination.clone(),
                config.node_id.clone(),
                started_at,
                config.lease_secs,
            );
            tokio::spawn(cluster::announcements::follow(
                coordination.clone(),
                supervisor_handle.clone(),
                connections.clone(),
                keeper.kicker(),
                cancel.clone(),
            ));
            (
                None,
                owned,
                Some(tokio::spawn(keeper.run(keeper_stop.clone()))),
            )
        }
    };
    let mut supervisor = Supervisor::new(
        store.clone(),
        connections.clone(),
        settings,
        supervisor_handle.clone(),
        owned,
    );
    if let Some(coordination) = &membership.coordination {
        supervisor = supervisor.forwarding(cluster::forward::Forwarder::spawn(
            coordination.clone(),
            cancel.clone(),
        ));
    }
    let supervisor_task = tokio::spawn(supervisor.run(cancel.clone()));
    let gauge_task = tokio::spawn(telemetry::gauges::run(
        store.clone(),
        config.database_url.clone(),
        cancel.clone(),
    ));

    let intake = GroupCommit::spawn(
        store.clone(),
        supervisor_handle.clone(),
        config.intake_writer_count(),
        config.intake_batch_max,
        Duration::from_millis(config.intake_linger_ms),
        intake_queue,
    );
    // SQS intake (issue 21): the sink the webhook handler uses, and this node's queue workers.
    let (intake, intake_tasks) = intake_sink::IntakeSink::start(
        &config,
        intake,
        store.clone(),
        connections.clone(),
        supervisor_handle.clone(),
        cancel.clone(),
    )
    .await?;
    // The raw archive (docs/archive.md): replays past the hot window read it, and this node
    // archives and trims every `archive_interval_secs`.
    #[cfg(feature = "archive")]
    let archive = match archive::ArchiveSettings::from_config(&config) {
        Some(settings) => Some(archive::Archive::connect(store.clone(), settings).await),
        None => None,
    };
    #[cfg(feature = "archive")]
    let archive_task = archive
        .clone()
        .filter(|_| config.archive_interval_secs > 0)
        .map(|a| {
            tokio::spawn(archive::schedule::run(
                a,
                Duration::from_secs(config.archive_interval_secs),
                cancel.clone(),
            ))
        });
    let state = AppState {
        store: store.clone(),
        connections,
        intake,
        supervisor: supervisor_handle,
        admin_token_digest,
        metrics: telemetry::metrics_handle(),
        tolerance_secs: config.webhook_tolerance_secs,
        membership,
        #[cfg(feature = "archive")]
        archive,
    };
    let app = http::router(state);
    let open_files = http::fdlimit::raise_open_file_limit().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the open-file limit; assuming 1024");
        1024
    });
    let limits = http::Limits {
        timeouts: config.http_timeouts(),
        max_connections: http::fdlimit::connection_cap(open_files, config.http_max_connections),
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        store = store.backend(),
        node_id = %config.node_id,
        open_files,
        max_connections = limits.max_connections,
        header_timeout_secs = limits.timeouts.header.as_secs(),
        body_timeout_secs = limits.timeouts.body.as_secs(),
        idle_timeout_secs = limits.timeouts.idle.as_secs(),
        "billsync is serving"
    );
    let served = http::serve(listener, app, limits, shutdown).await;
    // Handover: actors finish their batch first, then the leases go (peers take them at once).
    cancel.cancel();
    for task in intake_tasks {
        let _ = task.await;
    }
    let _ = supervisor_task.await;
    keeper_stop.cancel();
    if let Some(keeper) = keeper_task {
        let _ = keeper.await;
    }
    let _ = gauge_task.await;
    #[cfg(feature = "archive")]
    if let Some(task) = archive_task {
        let _ = task.await;
    }
    tracing::info!("billsync stopped");
    Ok(served?)
}
