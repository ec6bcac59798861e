//! The archive's formats (docs/archive.md "Layout"): where each object lives in the bucket,
//! the manifest that lists one segment's files with their SHA-256 and chains to the previous
//! manifest by its hash, and the JSON line each archived raw event becomes. Pure: no I/O.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::time::micros_to_rfc3339;
use crate::store::{RawBody, StoredRawEvent};

/// The manifest format's name and version, first field of every manifest.
pub const FORMAT: &str = "billsync-raw-archive/1";

/// The bucket's keys under a prefix.
#[derive(Debug, Clone)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    pub fn new(prefix: &str) -> Layout {
        Layout {
            prefix: prefix.trim_matches('/').to_owned(),
        }
    }

    fn join(&self, rest: &str) -> String {
        if self.prefix.is_empty() {
            rest.to_owned()
        } else {
            format!("{}/{rest}", self.prefix)
        }
    }

    /// Where manifests live; listing it walks the chain.
    pub fn manifests(&self) -> String {
        self.join("manifests/")
    }

    /// The manifest of segment `seq` (zero-padded, so keys sort in chain order).
    pub fn manifest(&self, seq: i64) -> String {
        self.join(&format!("manifests/{seq:012}.json"))
    }

    /// The segment number a manifest key names, if it is one.
    pub fn manifest_seq(&self, key: &str) -> Option<i64> {
        key.strip_prefix(&self.manifests())?
            .strip_suffix(".json")?
            .parse()
            .ok()
    }

    /// A data file of segment `seq`: under its partition's UTC date, with the attempt's `run`
    /// tag, so that no two attempts ever write the same key (an attempt that died before its
    /// manifest leaves files no manifest names, never a changed file).
    pub fn data_file(
        &self,
        partition_start: i64,
        seq: i64,
        run: &str,
        connection_id: &str,
        part: u32,
    ) -> String {
        let day = micros_to_rfc3339(partition_start)
            .map(|t| t[..10].to_owned())
            .unwrap_or_else(|| "undated".to_owned());
        self.join(&format!(
            "data/{day}/{seq:012}-{run}/{connection_id}-{part:03}.jsonl.zst"
        ))
    }
}

/// One segment's manifest: what its files hold and the hash of the manifest before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The segment's place in the chain, from 1.
    pub seq: i64,
    /// The time partition `[start, end)` (microseconds since the epoch, and as RFC 3339).
    pub partition_start_us: i64,
    pub partition_end_us: i64,
    pub partition: String,
    pub created_at_us: i64,
    /// Hex SHA-256 of the previous manifest's bytes; `None` for the first.
    pub prev_manifest_sha256: Option<String>,
    /// Raw events in all files.
    pub events: i64,
    pub files: Vec<FileEntry>,
}

/// One data file: zstd-compressed JSON lines, one [`ArchivedEvent`] each, in id order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub key: String,
    pub connection_id: String,
    pub events: i64,
    pub first_id: i64,
    pub last_id: i64,
    /// Size of the compressed file.
    pub bytes: u64,
    /// Hex SHA-256 of the compressed file's bytes.
    pub sha256: String,
    /// The S3 version written (Object Lock keeps it even if a newer version is put on top).
    pub version_id: Option<String>,
}

impl Manifest {
    /// The bytes stored (pretty JSON with a final newline); their hash chains the next one.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        out.push(b'\n');
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if m.format != FORMAT {
            return Err(format!("format `{}` is not {FORMAT}", m.format));
        }
        Ok(m)
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One raw event as an archive line: the body as received (text when it is UTF-8, which
/// every provider's JSON is, else base64) with its SHA-256, so a restore checks each body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivedEvent {
    pub id: i64,
    pub connection_id: String,
    pub provider_event_id: String,
    pub event_type: String,
    pub source: String,
    pub received_at_us: i64,
    pub body_sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
}

impl ArchivedEvent {
    /// The line of a stored raw event (its body decompressed).
    pub fn from_stored(e: &StoredRawEvent) -> Result<ArchivedEvent, crate::store::StoreError> {
        use base64::Engine;
        let body = e.body()?;
        let (text, b64) = match String::from_utf8(body) {
            Ok(text) => (Some(text), None),
            Err(e) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(e.into_bytes())),
            ),
        };
        Ok(ArchivedEvent {
            id: e.id,
            connection_id: e.connection_id.clone(),
            provider_event_id: e.provider_event_id.clone(),
            event_type: e.event_type.clone(),
            source: e.source.clone(),
            received_at_us: e.received_at,
            body_sha256: e.body_sha256.clone(),
            body: text,
            body_base64: b64,
        })
    }

    /// The raw event to put back, sealed again; an error when its body does not hash to the
    /// SHA-256 recorded with it.
    pub fn to_stored(&self) -> Result<StoredRawEvent, String> {
        use base64::Engine;
        let body = match (&self.body, &self.body_base64) {
            (Some(text), None) => text.clone().into_bytes(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("event {}: body_base64: {e}", self.id))?,
            _ => return Err(format!("event {}: needs one of body, body_base64", self.id)),
        };
        let sealed = RawBody::seal(&body).map_err(|e| e.to_string())?;
        if sealed.sha256() != self.body_sha256 {
            return Err(format!(
                "event {}: its body hashes to {}, not the {} recorded",
                self.id,
                sealed.sha256(),
                self.body_sha256
            ));
        }
        Ok(StoredRawEvent {
            id: self.id,
            connection_id: self.connection_id.clone(),
            provider_event_id: self.provider_event_id.clone(),
            event_type: self.event_type.clone(),
            source: self.source.clone(),
            received_at: self.received_at_us,
            body_zstd: sealed.zstd().to_vec(),
            body_sha256: self.body_sha256.clone(),
        })
    }
}

/// The lines of a data file, decompressed and parsed.
pub fn read_lines(compressed: &[u8]) -> Result<Vec<ArchivedEvent>, String> {
    let text = zstd::decode_all(compressed).map_err(|e| format!("zstd: {e}"))?;
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(n, line)| serde_json::from_slice(line).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: i64, body: &[u8]) -> StoredRawEvent {
        let sealed = RawBody::seal(body).unwrap();
        StoredRawEvent {
            id,
            connection_id: "conn_1".into(),
            provider_event_id: format!("evt_{id}"),
            event_type: "invoice.paid".into(),
            source: "webhook".into(),
            received_at: 1_700_000_000_000_000,
            body_zstd: sealed.zstd().to_vec(),
            body_sha256: sealed.sha256().to_owned(),
        }
    }

    #[test]
    fn an_event_survives_the_line_both_as_text_and_as_bytes() {
        for body in [&b"{\"id\":\"evt_1\"}"[..], &[0xff, 0xfe, 0x00][..]] {
            let e = stored(7, body);
            let line = ArchivedEvent::from_stored(&e).unwrap();
            assert_eq!(line.body.is_some(), body.is_ascii());
            let text = serde_json::to_string(&line).unwrap();
            let back: ArchivedEvent = serde_json::from_str(&text).unwrap();
            assert_eq!(back.to_stored().unwrap(), e);
        }
    }

    #[test]
    fn a_changed_body_is_refused_on_restore() {
        let mut line = ArchivedEvent::from_stored(&stored(1, b"{\"a\":1}")).unwrap();
        line.body = Some("{\"a\":2}".into());
        let err = line.to_stored().unwrap_err();
        assert!(err.contains("not the"), "{err}");
    }

    #[test]
    fn keys_sort_in_chain_order_and_name_their_segment() {
        let l = Layout::new("/billsync/");
        assert_eq!(l.manifest(42), "billsync/manifests/000000000042.json");
        assert_eq!(l.manifest_seq(&l.manifest(42)), Some(42));
        assert_eq!(l.manifest_seq("billsync/manifests/x.json"), None);
        assert!(l.manifest(9) < l.manifest(10));
        let key = l.data_file(0, 3, "ab12", "conn_1", 2);
        assert_eq!(
            key,
            "billsync/data/1970-01-01/000000000003-ab12/conn_1-002.jsonl.zst"
        );
        assert_eq!(Layout::new("").manifest(1), "manifests/000000000001.json");
    }

    #[test]
    fn a_manifest_round_trips_and_refuses_another_format() {
        let m = Manifest {
            format: FORMAT.into(),
            seq: 1,
            partition_start_us: 0,
            partition_end_us: 86_400_000_000,
            partition: "1970-01-01T00:00:00Z".into(),
            created_at_us: 5,
            prev_manifest_sha256: None,
            events: 0,
            files: vec![],
        };
        let bytes = m.to_bytes();
        assert_eq!(Manifest::parse(&bytes).unwrap(), m);
        let other = String::from_utf8(bytes).unwrap().replace(FORMAT, "other/9");
        assert!(Manifest::parse(other.as_bytes())
            .unwrap_err()
            .contains("other/9"));
    }
}
