//! Answers of the routes that take no token: `/healthz`, `/readyz` and the webhook intake.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /healthz`: the process runs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct HealthOut {
    /// Always `ok`.
    pub status: String,
}

/// `GET /readyz` when the store answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ReadyOut {
    /// Always `ready`.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub store: String,
}

/// `POST /webhooks/{provider}/{connection_id}` once the event is durably stored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct WebhookReceivedOut {
    /// Always `true`.
    pub received: bool,
    /// The event was already stored (a redelivery); with SQS intake a duplicate still queued
    /// may answer `false`.
    pub duplicate: bool,
}
