//! How stored columns become the typed fields of the store's rows. The row types derive
//! `sqlx::FromRow` (`types.rs`, `operator.rs`, `quality.rs`, `archive.rs`, `coordination.rs`)
//! and the SQL files read them with `query_as`; a field whose column keeps another form names
//! the form it is decoded from in `#[sqlx(try_from = "…")]`:
//!
//! - [`ByName`] for an enum kept by its name (`ByName<ObjectType>`);
//! - [`JsonText`] for a JSON document kept as text;
//! - [`ZstdFrame`] for a raw body kept compressed (`raw_body.rs`).
//!
//! Both stores keep these columns alike (TEXT, BLOB/BYTEA), so each form serves both;
//! `#[sqlx(json)]` would not, as Postgres decodes it from JSON/JSONB columns only. The parse
//! happens in the form's `Decode`, not in a fallible `TryFrom`: sqlx 0.8 reports a `try_from`
//! error as "unprintable error", while a decode error keeps its text. A value that does not
//! parse is corrupt stored data, a [`StoreError::Corrupt`] that sqlx carries as the column's
//! decode error (so a `StoreError::Database` naming the column and the value).

use serde_json::Value;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Type};

use super::raw_body::decompress;
use super::{ConnectionState, StoreError, TokenScope};
use crate::model::{ObjectType, ProviderKind, ReconStatus};

/// A column decoded from how it is stored (`$stored`) by `$parse`, a fallible conversion of
/// the stored value into the field (its error becomes the column's decode error).
macro_rules! stored_as {
    ($name:ident $(<$t:ident: $bound:path>)?, $stored:ty, $parse:expr) => {
        impl<DB: Database $(, $t)?> Type<DB> for $name $(<$t>)?
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

        impl<'r, DB: Database $(, $t: $bound)?> Decode<'r, DB> for $name $(<$t>)?
        where
            $stored: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let stored = <$stored as Decode<'r, DB>>::decode(value)?;
                let parse: fn($stored) -> Result<Self, StoreError> = $parse;
                Ok(parse(stored)?)
            }
        }
    };
}

/// A JSON document kept as text (`data`, `source`, `detail`), parsed.
pub struct JsonText(Value);

stored_as!(JsonText, String, |text| serde_json::from_str(&text)
    .map(JsonText)
    .map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}"))));

impl From<JsonText> for Value {
    fn from(doc: JsonText) -> Self {
        doc.0
    }
}

/// A raw body kept as one zstd frame (`body_zstd`), decompressed: the body as received.
pub struct ZstdFrame(Vec<u8>);

stored_as!(ZstdFrame, Vec<u8>, |frame| decompress(&frame)
    .map(ZstdFrame));

impl From<ZstdFrame> for Vec<u8> {
    fn from(body: ZstdFrame) -> Self {
        body.0
    }
}

/// An enum kept by its name, read with its `parse`.
pub struct ByName<T>(T);

/// An enum the store keeps by name.
pub trait Named: Sized {
    /// What a name that is no variant is reported as (`status` in ``status `lost` ``).
    const WHAT: &'static str;

    fn parse(name: &str) -> Option<Self>;
}

stored_as!(ByName<T: Named>, String, |name| match T::parse(&name) {
    Some(value) => Ok(ByName(value)),
    None => Err(StoreError::Corrupt(format!("{} `{name}`", T::WHAT))),
});

/// `Named` and the field's conversion for each enum kept by name.
macro_rules! named {
    ($($enum:ty => $what:literal),* $(,)?) => {
        $(
            impl Named for $enum {
                const WHAT: &'static str = $what;

                fn parse(name: &str) -> Option<Self> {
                    <$enum>::parse(name)
                }
            }

            impl From<ByName<$enum>> for $enum {
                fn from(name: ByName<$enum>) -> Self {
                    name.0
                }
            }
        )*
    };
}

named!(
    ObjectType => "object_type",
    ReconStatus => "status",
    ProviderKind => "provider",
    ConnectionState => "connection state",
    TokenScope => "token scope",
);

#[cfg(test)]
mod tests {
    use sqlx::{Connection, SqliteConnection};

    use super::*;

    /// The one value `sql` selects, decoded as `T`, or the error's text.
    async fn read<T>(sql: &str, bound: Option<Vec<u8>>) -> Result<T, String>
    where
        T: for<'r> Decode<'r, sqlx::Sqlite> + Type<sqlx::Sqlite> + Send + Unpin,
    {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let mut query = sqlx::query_scalar(sql);
        if let Some(bytes) = bound {
            query = query.bind(bytes);
        }
        query.fetch_one(&mut conn).await.map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn an_enum_is_read_by_name_and_a_name_no_variant_has_is_corrupt_data() {
        let status: ByName<ReconStatus> = read("SELECT 'drifted'", None).await.unwrap();
        assert_eq!(ReconStatus::from(status), ReconStatus::Drifted);
        let err = read::<ByName<ReconStatus>>("SELECT 'lost'", None)
            .await
            .err()
            .unwrap();
        assert!(
            err.ends_with("stored data is corrupt: status `lost`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn json_text_is_parsed_and_a_bad_document_is_corrupt_data() {
        let doc: JsonText = read(r#"SELECT '{"a":[1,2]}'"#, None).await.unwrap();
        assert_eq!(Value::from(doc), serde_json::json!({"a": [1, 2]}));
        let err = read::<JsonText>("SELECT '{'", None).await.err().unwrap();
        assert!(err.contains("stored data is corrupt: stored JSON"), "{err}");
    }

    #[tokio::test]
    async fn a_zstd_frame_is_read_as_the_body_it_holds() {
        let frame = super::super::raw_body::compress(b"a body").unwrap();
        let body: ZstdFrame = read("SELECT $1", Some(frame)).await.unwrap();
        assert_eq!(Vec::<u8>::from(body), b"a body");
        let err = read::<ZstdFrame>("SELECT $1", Some(b"not zstd".to_vec()))
            .await
            .err()
            .unwrap();
        assert!(err.contains("stored data is corrupt: zstd"), "{err}");
    }
}
