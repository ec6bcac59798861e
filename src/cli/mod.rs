//! The binary's commands, by responsibility: `node` runs and inspects this node's store
//! (serve, migrate, connect, doctor, config, openapi), `ops` talks to a running node's admin
//! API (connections, backfill), `archive` moves raw events to S3 and checks them there,
//! `sim` runs the provider simulator (crates/billsync-sim, feature `sim`), and `edge` turns an error
//! into the one sentence the user reads.

#[cfg(feature = "archive")]
pub mod archive;
pub mod edge;
pub mod node;
pub mod ops;
#[cfg(feature = "sim")]
pub mod sim;
