//! Replay (re-deriving objects from stored raw events) and the sync-status report.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    replay_after_a_mapping_change_versions_only_changed_objects,
    sync_status_counts_statuses_and_holds_the_watermark_at_the_oldest_pending,
);

async fn replay_after_a_mapping_change_versions_only_changed_objects(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let t = now_secs() - 10;
    for id in ["cus_a", "cus_b", "cus_c"] {
        app.send(
            &conn,
            &stripe_event(
                &format!("evt_{id}"),
                "customer.created",
                t,
                customer(id, &format!("{id}@example.com")),
            ),
            200,
        )
        .await;
    }
    app.settle().await;
    // What an older mapping would have stored for cus_a.
    app.db
        .exec_raw("UPDATE objects SET data = '{\"email\":\"old-mapping\"}', content_hash = 'old' WHERE id = 'stripe:cus_a'")
        .await
        .unwrap();
    let replay_path = format!("/admin/v1/connections/{}/replay", conn.id);
    let range = json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"});
    // A dry run first: it names the object the replay will change and how, and changes nothing.
    let versions_before = app.db.count("SELECT COUNT(*) FROM object_versions").await;
    let inbox_before = app.db.count("SELECT COUNT(*) FROM inbox").await;
    let audit_before = app.db.count("SELECT COUNT(*) FROM audit_log").await;
    let mut dry = range.clone();
    dry["dry_run"] = json!(true);
    let r = app.admin_post(&replay_path, &dry).await;
    assert_eq!(r.status().as_u16(), 200);
    let preview: Value = r.json().await.unwrap();
    assert_eq!(preview["dry_run"], true);
    assert_eq!(preview["raw_events"], 3);
    assert_eq!(preview["unmappable"], 0);
    let previewed: Vec<String> = preview["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(previewed, ["stripe:cus_a"], "{preview}");
    let change = &preview["changes"][0];
    assert_eq!(change["version_now"], 1);
    assert_eq!(change["version_after"], 2);
    let fields = change["fields"].as_array().unwrap();
    assert!(
        fields.contains(&json!("email")) && fields.contains(&json!("name")),
        "{change}"
    );
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM object_versions").await,
        versions_before
    );
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM inbox").await,
        inbox_before
    );
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM audit_log").await,
        audit_before
    );
    let still = app
        .object(&conn.merchant_id, "customers", "stripe:cus_a")
        .await
        .unwrap();
    assert_eq!(
        still["data"]["email"], "old-mapping",
        "the dry run wrote nothing"
    );
    let mut bad_flag = range.clone();
    bad_flag["dry_run"] = json!("yes");
    let r = app.admin_post(&replay_path, &bad_flag).await;
    assert_eq!(r.status().as_u16(), 400);
    let r = app
        .admin_post(
            &format!("/admin/v1/connections/{}/replay", conn.id),
            &json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(
        r.json::<Value>().await.unwrap()["replay"]["raw_events_queued"],
        3
    );
    app.settle().await;
    // Exactly the previewed objects got new versions.
    let changed = app
        .db
        .count("SELECT COUNT(*) FROM object_versions WHERE version > 1")
        .await;
    assert_eq!(changed, previewed.len() as i64);
    let a = app
        .object(&conn.merchant_id, "customers", "stripe:cus_a")
        .await
        .unwrap();
    assert_eq!(a["version"], 2);
    assert_eq!(a["data"]["email"], "cus_a@example.com");
    for id in ["stripe:cus_b", "stripe:cus_c"] {
        assert_eq!(
            app.versions(&conn.merchant_id, "customers", id).await.len(),
            1,
            "{id} got a version"
        );
    }
    assert_eq!(
        app.raw_event_count(&conn.id).await,
        3,
        "replay stores no raw events"
    );
    let bad = app
        .admin_post(
            &format!("/admin/v1/connections/{}/replay", conn.id),
            &json!({"from": "soon", "to": "later"}),
        )
        .await;
    assert_eq!(bad.status().as_u16(), 400);
    app.stop().await;
}

async fn sync_status_counts_statuses_and_holds_the_watermark_at_the_oldest_pending(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    let t = now_secs() - 3600;
    app.send(
        &conn,
        &stripe_event(
            "evt_s1",
            "invoice.finalized",
            t,
            invoice("in_s1", "open", 0),
        ),
        200,
    )
    .await;
    app.settle().await;
    let status = app
        .get_json(
            &format!("/v1/merchants/{}/sync-status", conn.merchant_id),
            200,
        )
        .await;
    let c = &status["connections"][0];
    assert_eq!(c["connection_id"], conn.id.as_str());
    assert_eq!(c["kinds"]["invoice"]["pending"], 1);
    assert_eq!(c["kinds"]["invoice"]["converged"], 0);
    assert_eq!(c["inbox_backlog"], 0);
    let watermark =
        billsync::model::time::parse_rfc3339(status["complete_up_to"].as_str().unwrap()).unwrap();
    assert_eq!(
        watermark,
        t * 1_000_000,
        "complete up to the oldest unconfirmed change"
    );
    app.stop().await;
}
