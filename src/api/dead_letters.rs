//! Dead letters (`/admin/v1/dead_letters`): inbox items that kept failing, set aside with their
//! last error until an operator retries or discards them (docs/api.md "Dead letters").

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One dead-lettered inbox item.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct DeadLetterOut {
    pub id: i64,
    pub connection_id: String,
    /// The provider's event id (or billsync's id for an observation it read itself).
    pub event_id: String,
    pub event_type: String,
    pub attempts: i64,
    #[schema(required)]
    pub last_error: Option<String>,
    /// RFC 3339.
    #[schema(required)]
    pub dead_at: Option<String>,
}

/// `GET /admin/v1/dead_letters`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct DeadLetterListOut {
    pub data: Vec<DeadLetterOut>,
    /// Pass as `after` for the next page; `null` on the last page.
    #[schema(required)]
    pub next_after: Option<i64>,
}

/// The answer to `retry` (`202`) and `discard` (`200`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct DeadLetterActionOut {
    pub id: i64,
    /// `retrying`: back in the inbox, due now; `discarded`: out of the inbox, its raw event kept.
    pub state: String,
}
