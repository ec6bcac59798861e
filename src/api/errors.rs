//! The one error shape of every non-2xx answer: `{"error": {"code", "message"}}`. Built only
//! by `crate::http::error::ApiError`; a message never carries a secret, a signature or a raw
//! payload.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Any error answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ErrorOut {
    pub error: ErrorBodyOut,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ErrorBodyOut {
    /// A stable `snake_case` code, e.g. `invalid_request`, `not_found`, `unauthorized`,
    /// `conflict`, `invalid_signature`, `unavailable`.
    #[schema(pattern = "^[a-z][a-z0-9_]*$")]
    pub code: String,
    /// One human sentence saying what was wrong (naming the field for bad input).
    pub message: String,
}
