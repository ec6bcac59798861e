//! The integration test binary: spawns the real app on 127.0.0.1:0 with a fresh store per
//! test, on SQLite and on Postgres, and drives it over HTTP.

mod admin;
#[cfg(feature = "archive")]
mod archive;
mod backfill;
mod backfill_fidelity;
mod canonical_model;
mod chaos;
mod cli;
mod cluster;
mod cluster_harness;
mod cluster_lb;
mod cluster_routing;
mod crash;
#[cfg(feature = "sqs")]
mod db_proxy;
mod deploy;
mod edges;
mod helpers;
mod http_edges;
mod intake;
mod leases;
mod metrics;
mod openapi;
mod operators;
mod ordering;
mod props;
mod providers;
mod quality;
mod quality_api;
mod rawhttp;
mod read_api;
mod readme;
mod reprocess;
mod route_props;
mod sdk;
mod signature_vectors;
mod sim;
mod sim_chargebee;
mod sim_maxio;
mod sim_paddle;
mod sim_recurly;
mod sim_signatures;
mod sim_zuora;
mod slow_clients;
#[cfg(feature = "sqs")]
mod sqs_intake;
mod store;
mod stripe_fidelity;
mod tls;
