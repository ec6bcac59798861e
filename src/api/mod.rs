//! The public HTTP API as types: every request body (`*In`) and every answer (`*Out`) of the
//! routes in `crate::http`, deriving serde for the wire and `utoipa::ToSchema` for the OpenAPI
//! document (`crate::http::openapi`, `GET /openapi.json`, `docs/openapi.json`). Handlers build
//! these structs rather than JSON literals, so a misspelt field does not compile and the
//! published description is the code's own. The CLI's admin client reads the same types.
//!
//! Field meanings are documented on the types; `docs/api.md` is the narrative reference.

pub mod audit;
pub mod cluster;
pub mod connections;
pub mod dead_letters;
pub mod errors;
pub mod health;
pub mod jobs;
pub mod objects;
pub mod quality;
pub mod status;
pub mod tokens;

pub use audit::{AuditEntryOut, AuditListOut};
pub use cluster::{ClusterOut, NodeOut};
pub use connections::{
    BackfillIn, ConnectionIn, ConnectionListOut, ConnectionOut, ConnectionPatchIn,
    ProviderErrorOut, RefetchIn, RefetchOut, ReplayChangeOut, ReplayIn, ReplayOut,
    ReplayPreviewOut, ResyncIn,
};
pub use dead_letters::{DeadLetterActionOut, DeadLetterListOut, DeadLetterOut};
pub use errors::{ErrorBodyOut, ErrorOut};
pub use health::{HealthOut, ReadyOut, WebhookReceivedOut};
pub use jobs::{JobProgressOut, StreamProgressOut};
pub use objects::{ChangeListOut, ChangeOut, ObjectListOut, ObjectOut, VersionListOut, VersionOut};
pub use quality::{QualityFindingListOut, QualityFindingOut};
pub use status::{ConnectionSyncOut, KindSyncOut, SyncStatusOut};
pub use tokens::{Scope, TokenCreatedOut, TokenIn, TokenListOut, TokenOut};
