//! The OpenAPI 3.1 description of every route, generated from the handlers' annotations and
//! the API types (`crate::api`): served at `GET /openapi.json` (no token) and written to
//! `docs/openapi.json` by `billsync openapi`, which a test compares with the committed file.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::quality;

use super::{
    admin, audit, cluster, dead_letters, health, intake, read, refetch, replay, status, tokens,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "billsync",
        description = "Keeps a billing ledger equal to what Stripe, Chargebee, Recurly, Paddle, \
            Zuora and Maxio say. `/admin/*` and `/v1/*` take `Authorization: Bearer <token>`; \
            every error answer is `{\"error\": {\"code\", \"message\"}}`. See docs/api.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        admin::create, admin::list, admin::get, admin::update, admin::pause, admin::resume,
        admin::backfill, admin::resync, replay::replay, refetch::refetch, admin::archive,
        cluster::cluster,
        tokens::create, tokens::list, tokens::revoke, audit::list,
        dead_letters::list, dead_letters::retry, dead_letters::discard,
        read::list_objects, read::get_object, read::versions, read::changes,
        status::sync_status,
        quality::list,
        intake::receive,
        health::healthz, health::readyz, health::metrics, openapi_json,
    ),
    components(schemas(
        crate::api::ErrorOut, crate::api::objects::Collection,
        // The kinds of `data` (docs/api.md, "What `data` holds").
        crate::model::canonical::Customer, crate::model::canonical::Invoice,
        crate::model::canonical::CreditNote, crate::model::canonical::Subscription,
        crate::model::canonical::Transaction,
    )),
    security(("bearer" = [])),
    modifiers(&CommonAnswers),
    tags(
        (name = "connections", description = "Register and operate connections (admin token)"),
        (name = "cluster", description = "The nodes of a Postgres cluster"),
        (name = "tokens", description = "Scoped bearer tokens (admin token)"),
        (name = "audit", description = "Who did what, in order (admin token)"),
        (name = "dead_letters", description = "Inbox items that kept failing (admin token)"),
        (name = "objects", description = "Canonical objects, versions, change feed, sync status"),
        (name = "webhooks", description = "Providers post their events here"),
        (name = "health", description = "Liveness, readiness, metrics and this document"),
    ),
)]
struct ApiDoc;

/// The document, built once.
pub fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The document as pretty JSON with a final newline: what `GET /openapi.json` serves and
/// `billsync openapi` writes.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        // A document of plain structs and strings always serializes.
        let mut text = serde_json::to_string_pretty(document())
            .expect("the OpenAPI document is plain data and serializes");
        text.push('\n');
        text
    })
}

/// The route-by-route Markdown reference (docs/api-reference.md) of the document.
pub fn reference_markdown() -> String {
    let doc: serde_json::Value = serde_json::from_str(document_json())
        .expect("the document was just serialized from plain data");
    super::openapi_reference::markdown(&doc)
}

/// This description of the API.
#[utoipa::path(get, path = "/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

/// Adds the answers every route may give without saying so in its own annotation: the bearer
/// scheme, `401` and `403` where a token is needed, `400` for a malformed request, `413` for a body over
/// the limit, and `503` when the store cannot answer.
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.put,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add_common_answers(op);
            }
        }
    }
}

fn add_common_answers(op: &mut Operation) {
    // `security(())` on an operation: no token. Otherwise the document's bearer applies.
    let open = op
        .security
        .as_ref()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|r| r == &Default::default()));
    let has_body = op.request_body.is_some();
    let mut add = |status: &str, description: &str| {
        if !op.responses.responses.contains_key(status) {
            let response = ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(RefOr::Ref(Ref::from_schema_name("ErrorOut")))),
                )
                .build();
            op.responses
                .responses
                .insert(status.to_owned(), RefOr::T(response));
        }
    };
    if !open {
        add("400", "A query parameter, path segment or body is invalid (`invalid_request`, `bad_request`); the message names it");
        add("401", "No valid bearer token (`unauthorized`)");
        add("403", "The token may not do this: a read token on `/admin/*`, or on another merchant's paths (`forbidden`)");
        add("503", "The store cannot answer now (`unavailable`)");
    }
    if has_body {
        add(
            "413",
            "The body is larger than this route accepts (`payload_too_large`)",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_documents_its_errors_in_the_one_shape() {
        let doc = document();
        let mut operations = 0;
        for (path, item) in &doc.paths.paths {
            for op in [&item.get, &item.post, &item.patch, &item.put, &item.delete]
                .into_iter()
                .flatten()
            {
                operations += 1;
                let codes: Vec<&String> = op.responses.responses.keys().collect();
                assert!(
                    codes.iter().any(|c| c.starts_with('2')),
                    "{path}: no success answer"
                );
                if !path.starts_with("/webhooks")
                    && (path.starts_with("/admin") || path.starts_with("/v1"))
                {
                    assert!(codes.iter().any(|c| *c == "401"), "{path}: no 401");
                    assert!(codes.iter().any(|c| *c == "403"), "{path}: no 403");
                }
            }
        }
        // The routes of `super::super::router` (tests/it/openapi.rs checks them one by one).
        assert_eq!(operations, 30);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(document_json()).unwrap()["openapi"],
            "3.1.0"
        );
    }
}
