//! `/v1/merchants/{merchant_id}/...`: canonical objects, their versions and the change feed.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::Ref;
use utoipa::ToSchema;

use crate::model::{ObjectType, ReconStatus};

/// The five collections of the read API (the plural of each `object_type`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Collection {
    Customers,
    Invoices,
    CreditNotes,
    Subscriptions,
    Transactions,
}

/// A canonical object, current or as of a time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ObjectOut {
    /// `{provider}:{provider_object_id}`, e.g. `stripe:in_123`.
    pub id: String,
    pub merchant_id: String,
    pub connection_id: String,
    pub object_type: ObjectType,
    /// From 1, raised by one each time `data` or `deleted` changes.
    pub version: i64,
    pub reconciliation_status: ReconStatus,
    /// A deleted object keeps its last known `data`.
    pub deleted: bool,
    /// RFC 3339: the provider's own time of the change this version reflects.
    #[schema(required)]
    pub provider_updated_at: Option<String>,
    /// RFC 3339: when billsync last wrote this object (content or status).
    #[schema(required)]
    pub updated_at: Option<String>,
    /// The canonical fields of its `object_type` (money in integer minor units): a `Customer`,
    /// `Invoice`, `CreditNote`, `Subscription` or `Transaction` ([`data_schema`]).
    #[schema(schema_with = data_schema)]
    pub data: Value,
}

/// The schema of `data` in [`ObjectOut`] and [`VersionOut`]: exactly one of the canonical kinds
/// of `crate::model::canonical` (component schemas of the document), the one its `object_type`
/// names, or `{}` for an object whose deletion billsync saw before any of its content
/// (`actors::apply` stores no fields then). The stored JSON is answered as it is; this only
/// says what it is.
pub fn data_schema() -> Schema {
    let mut kinds = OneOfBuilder::new().description(Some(
        "The canonical fields of the object's `object_type` (money in integer minor units): a \
         `customer` is a `Customer`, an `invoice` an `Invoice`, a `credit_note` a `CreditNote`, a \
         `subscription` a `Subscription`, a `transaction` a `Transaction`; `{}` for an object \
         deleted before any of its content was seen.",
    ));
    for kind in [
        "Customer",
        "Invoice",
        "CreditNote",
        "Subscription",
        "Transaction",
    ] {
        kinds = kinds.item(Ref::from_schema_name(kind));
    }
    kinds
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .title(Some("DeletedUnseen"))
                .description(Some(
                    "No fields: the object was deleted before any of its content was seen.",
                ))
                .max_properties(Some(0)),
        )
        .build()
        .into()
}

/// A page of objects, ordered by `updated_at` then `id`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ObjectListOut {
    pub data: Vec<ObjectOut>,
    /// Opaque: pass as `cursor` for the next page; `null` on the last.
    #[schema(required)]
    pub next_cursor: Option<String>,
}

/// One stored version of an object.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct VersionOut {
    pub version: i64,
    /// RFC 3339.
    #[schema(required)]
    pub recorded_at: Option<String>,
    pub deleted: bool,
    pub reconciliation_status: ReconStatus,
    /// RFC 3339.
    #[schema(required)]
    pub provider_updated_at: Option<String>,
    /// The object's canonical fields as of this version ([`data_schema`]).
    #[schema(schema_with = data_schema)]
    pub data: Value,
    /// What produced it: the raw event or the API read.
    #[schema(value_type = Object)]
    pub source: Value,
    /// Why it won over what was stored.
    pub reason: String,
}

/// Every stored version of an object, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct VersionListOut {
    pub data: Vec<VersionOut>,
}

/// One entry of a merchant's change feed: a new version, in commit order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ChangeOut {
    pub seq: i64,
    pub id: String,
    pub connection_id: String,
    pub object_type: ObjectType,
    pub version: i64,
    pub deleted: bool,
    /// RFC 3339.
    #[schema(required)]
    pub recorded_at: Option<String>,
}

/// A page of the change feed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ChangeListOut {
    pub data: Vec<ChangeOut>,
    /// Pass as `after` for the next page; equals `after` on an empty page.
    pub next_after: i64,
}
