//! Sub-reads: the parts of an object that one read of it leaves out, read before the object
//! is mapped. Providers cut long sub-lists at a page (Stripe invoice `lines` and expanded
//! `tax_ids`, Recurly `line_items`, Zuora expanded `invoiceItems`) and keep some parts as
//! separate resources (Paddle addresses and businesses). A provider names what an answer
//! lacks ([`super::Provider::sub_reads`]); the fetcher reads every page of each
//! (`actors::fetch`) and hands the items back ([`super::Provider::merge_sub`]), so an
//! object is mapped whole or not at all. Written once here; each provider only says where.
//! See `docs/providers/README.md` for which provider needs which.

use serde_json::Value;

use super::ApiRequest;

/// One part of one object of an answer that must be read separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubRead {
    /// Where the object sits in the answer, as a JSON pointer (`/data/3`; empty for an
    /// answer that is the object itself).
    pub pointer: String,
    /// Which part of the object this reads (provider-defined: `lines`, `tax_ids`, ...).
    pub part: &'static str,
    /// The first page's request.
    pub request: ApiRequest,
}

/// One page of a sub-read.
#[derive(Debug, Clone, PartialEq)]
pub struct SubPage {
    pub items: Vec<Value>,
    /// The next page's request; `None` on the last page.
    pub next: Option<ApiRequest>,
}

/// Sub-lists a single object may not exceed once read whole: a guard against an answer
/// that never ends (a provider bug or a hostile simulator), not a limit a real object meets.
pub const MAX_SUB_PAGES: usize = 1_000;

/// The JSON pointer of `data[index]` of a list answer.
pub fn item_pointer(list_field: &str, index: usize) -> String {
    format!("/{list_field}/{index}")
}

/// Test support: `reads` is one read, of `part` of the object at `pointer`, whose first page
/// asks for `path` with every pair of `query` (a query string: `field_checks::assert_query`)
/// among its parameters.
#[cfg(test)]
#[track_caller]
pub(crate) fn assert_one_read(
    reads: &[SubRead],
    pointer: &str,
    part: &str,
    path: &str,
    query: &str,
) {
    let [read] = reads else {
        panic!("not one read: {reads:?}");
    };
    assert_eq!(
        (read.pointer.as_str(), read.part, read.request.path.as_str()),
        (pointer, part, path)
    );
    super::field_checks::assert_query(&read.request, query);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_read_is_checked_whole() {
        let read = SubRead {
            pointer: item_pointer("data", 2),
            part: "lines",
            request: ApiRequest {
                path: "/v1/invoices/in_1/lines".into(),
                query: vec![("limit".into(), "100".into())],
            },
        };
        let reads = vec![read.clone()];
        assert_one_read(
            &reads,
            "/data/2",
            "lines",
            "/v1/invoices/in_1/lines",
            "limit=100",
        );
        for wrong in [
            vec![],
            vec![read.clone(), read.clone()],
            vec![SubRead {
                part: "tax_ids",
                ..read.clone()
            }],
        ] {
            let caught = std::panic::catch_unwind(|| {
                assert_one_read(&wrong, "/data/2", "lines", "/v1/invoices/in_1/lines", "")
            });
            assert!(caught.is_err(), "{wrong:?}");
        }
    }
}
