//! How stored columns become the typed fields of the store's rows. The row types derive
//! `sqlx::FromRow` (`types.rs`, `operator.rs`, `quality.rs`, `archive.rs`, `coordination.rs`)
//! and the SQL files read them with `query_as`; a field whose column keeps another form names
//! its decoder in `#[sqlx(try_from = "…")]`:
//!
//! - `String` for an enum kept by its name (the `TryFrom<String>` impls here);
//! - [`JsonText`] for a JSON document kept as text;
//! - [`ZstdFrame`] for a raw body kept compressed (`raw_body.rs`).
//!
//! Both stores keep these columns alike (TEXT, BLOB/BYTEA), so each decoder serves both;
//! `#[sqlx(json)]` would not, as Postgres decodes it from JSON/JSONB columns only. A value that
//! does not parse is corrupt stored data: a [`StoreError::Corrupt`], which sqlx carries as the
//! column's decode error (a `StoreError::Database` naming the column).

use serde_json::Value;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Type};

use super::{ConnectionState, StoreError, TokenScope};
use crate::model::{ObjectType, ProviderKind, ReconStatus};

/// A column read as it is stored (`$stored`), converted into its field by `TryFrom`.
macro_rules! stored_as {
    ($name:ident, $stored:ty) => {
        impl<DB: Database> Type<DB> for $name
        where
            $stored: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <$stored as Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <$stored as Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $name
        where
            $stored: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                <$stored as Decode<'r, DB>>::decode(value).map($name)
            }
        }
    };
}

/// A JSON document kept as text (`data`, `source`, `detail`): a [`Value`] once parsed.
pub struct JsonText(String);

stored_as!(JsonText, String);

impl TryFrom<JsonText> for Value {
    type Error = StoreError;

    fn try_from(text: JsonText) -> Result<Self, StoreError> {
        serde_json::from_str(&text.0).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
    }
}

/// A raw body kept as one zstd frame (`body_zstd`): the body as received once decompressed.
pub struct ZstdFrame(Vec<u8>);

stored_as!(ZstdFrame, Vec<u8>);

impl TryFrom<ZstdFrame> for Vec<u8> {
    type Error = StoreError;

    fn try_from(frame: ZstdFrame) -> Result<Self, StoreError> {
        super::raw_body::decompress(&frame.0)
    }
}

/// An enum kept by its name: `parse`, or corrupt data naming the column's kind and the value.
fn by_name<T>(parse: fn(&str) -> Option<T>, what: &str, name: String) -> Result<T, StoreError> {
    parse(&name).ok_or_else(|| StoreError::Corrupt(format!("{what} `{name}`")))
}

impl TryFrom<String> for ObjectType {
    type Error = StoreError;

    fn try_from(name: String) -> Result<Self, StoreError> {
        by_name(ObjectType::parse, "object_type", name)
    }
}

impl TryFrom<String> for ReconStatus {
    type Error = StoreError;

    fn try_from(name: String) -> Result<Self, StoreError> {
        by_name(ReconStatus::parse, "status", name)
    }
}

impl TryFrom<String> for ProviderKind {
    type Error = StoreError;

    fn try_from(name: String) -> Result<Self, StoreError> {
        by_name(ProviderKind::parse, "provider", name)
    }
}

impl TryFrom<String> for ConnectionState {
    type Error = StoreError;

    fn try_from(name: String) -> Result<Self, StoreError> {
        by_name(ConnectionState::parse, "connection state", name)
    }
}

impl TryFrom<String> for TokenScope {
    type Error = StoreError;

    fn try_from(name: String) -> Result<Self, StoreError> {
        by_name(TokenScope::parse, "token scope", name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_no_variant_has_is_corrupt_data_naming_it() {
        assert_eq!(
            ObjectType::try_from("invoice".to_owned()).unwrap(),
            ObjectType::Invoice
        );
        let err = ReconStatus::try_from("lost".to_owned()).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m == "status `lost`"),
            "{err}"
        );
    }

    #[test]
    fn json_text_parses_or_is_corrupt_data() {
        let doc = Value::try_from(JsonText(r#"{"a":[1,2]}"#.into())).unwrap();
        assert_eq!(doc, serde_json::json!({"a": [1, 2]}));
        assert!(matches!(
            Value::try_from(JsonText("{".into())),
            Err(StoreError::Corrupt(_))
        ));
    }
}
