//! Send → queryable latency, read from billsync's change feed (`GET /v1/merchants/{id}/changes`,
//! docs/api-reference.md): the feed's answer as the documented API describes it, and the
//! measure of each sent change against the commit of the version that carries it.

use std::collections::HashMap;

use serde::Deserialize;

use super::VerifyError;
use crate::http_client::cause;
use crate::time::parse_rfc3339;

/// A page of the change feed (docs/api-reference.md, `ChangeListOut`): only what `verify`
/// reads; other fields are ignored.
#[derive(Debug, Deserialize)]
struct ChangeList {
    data: Vec<FeedEntry>,
    /// Pass as `after` for the next page; equals `after` on an empty page.
    next_after: i64,
}

/// One entry of the feed (`ChangeOut`): a new version of an object, in commit order.
#[derive(Debug, Deserialize)]
struct FeedEntry {
    /// The canonical id (`stripe:in_123`).
    id: String,
    version: i64,
    deleted: bool,
    /// RFC 3339; when the version was committed.
    recorded_at: Option<String>,
}

/// An object billsync holds as the simulator does, whose latest change's webhook was sent:
/// its send → queryable latency is measured once the comparison is done.
#[derive(Debug, Clone)]
pub(super) struct SentChange {
    pub(super) merchant_id: String,
    /// The canonical id.
    pub(super) id: String,
    /// The version billsync holds, the first whose content is that change's.
    pub(super) version: i64,
    /// Deleted at the provider: the first version carrying the change is the first of the
    /// run of deleted versions that ends at `version`.
    pub(super) deleted: bool,
    /// When the simulator first sent the change's webhook (unix micros).
    pub(super) sent_micros: i64,
}

/// Send → queryable of each sent change, milliseconds: from its first send to the commit of
/// the version billsync holds for it, read from the merchant's change feed (every version in
/// commit order, with its `recorded_at`). Not the object's `updated_at`, which later writes
/// that change no content (a confirmation read's status) move too.
pub(super) async fn latencies(
    client: &reqwest::Client,
    target: &str,
    token: &str,
    sent: &[SentChange],
) -> Result<Vec<f64>, VerifyError> {
    /// One object's measure while the feed is read.
    struct Wanted<'a> {
        change: &'a SentChange,
        /// For a deleted object: the commit of the first version of the current run of
        /// deleted versions.
        deleted_since: Option<i64>,
    }
    let mut by_merchant: HashMap<&str, HashMap<&str, Wanted>> = HashMap::new();
    for change in sent {
        by_merchant
            .entry(change.merchant_id.as_str())
            .or_default()
            .insert(
                change.id.as_str(),
                Wanted {
                    change,
                    deleted_since: None,
                },
            );
    }
    let mut out = Vec::with_capacity(sent.len());
    for (merchant, mut wanted) in by_merchant {
        let mut after = 0;
        while !wanted.is_empty() {
            let url = format!("{target}/v1/merchants/{merchant}/changes?after={after}&limit=1000");
            let failed = |why: String| VerifyError::Target(target.to_owned(), why);
            let response = client
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .map_err(|e| failed(cause(&e)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(failed(format!("the change feed answered {status}")));
            }
            let page: ChangeList = response
                .json()
                .await
                .map_err(|e| failed(format!("the change feed's answer: {e}")))?;
            if page.data.is_empty() {
                break;
            }
            for version in &page.data {
                let Some(w) = wanted.get_mut(version.id.as_str()) else {
                    continue;
                };
                let recorded = version.recorded_at.as_deref().and_then(parse_rfc3339);
                w.deleted_since = match (version.deleted, w.deleted_since) {
                    (true, Some(since)) => Some(since),
                    (true, None) => recorded,
                    (false, _) => None,
                };
                if version.version != w.change.version {
                    continue;
                }
                let first = if w.change.deleted {
                    w.deleted_since
                } else {
                    recorded
                };
                if let Some(first) = first {
                    // A version made before the send (a backfill's read of the change) was
                    // queryable at once.
                    out.push((first - w.change.sent_micros).max(0) as f64 / 1000.0);
                }
                wanted.remove(version.id.as_str());
            }
            after = page.next_after;
        }
    }
    Ok(out)
}
