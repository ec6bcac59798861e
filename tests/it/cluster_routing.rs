//! Two nodes of one cluster in this process, on one Postgres: a webhook or an admin action
//! sent to the node that does not own the connection takes effect on the owner within a
//! second (LISTEN/NOTIFY), and `GET /admin/v1/cluster` answers the same on both.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use billsync::store::Announcement;

use crate::helpers::*;

/// The same key on every node (docs/cluster.md: all share `BILLSYNC_SECRET_KEY`).
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

async fn node(db: TestDb, id: &str) -> TestApp {
    spawn_app_with(db, |c| {
        c.node_id = id.into();
        c.lease_secs = 2;
        c.secret_key = Some(KEY.into());
    })
    .await
}

async fn cluster(app: &TestApp) -> Value {
    app.get_json("/admin/v1/cluster", 200).await
}

/// Waits until both nodes hold shards and none is unowned; returns the view.
async fn until_spread(app: &TestApp) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view = cluster(app).await;
        let nodes = view["nodes"].as_array().cloned().unwrap_or_default();
        if nodes.len() == 2
            && view["unowned_shards"] == 0
            && nodes.iter().all(|n| n["shards"].as_i64() > Some(60))
        {
            return view;
        }
        assert!(Instant::now() < deadline, "shards not spread: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn owner(db: &TestDb, connection_id: &str) -> String {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&db.url)
        .await
        .expect("postgres");
    sqlx::query_scalar("SELECT owner FROM shard_leases WHERE shard = $1")
        .bind(billsync::cluster::shard_of(connection_id))
        .fetch_one(&mut c)
        .await
        .expect("a lease row")
}

/// Polls `cond` every 20 ms for up to `within`; returns how long it took.
async fn within<F, Fut>(within: Duration, what: &str, cond: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !cond().await {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_and_admin_actions_sent_to_any_node_take_effect_on_the_owner_within_a_second() {
    let a = node(TestDb::new(Backend::Postgres).await, "node-a").await;
    let b = node(a.db.sharing(), "node-b").await;
    let view = until_spread(&a).await;
    let ids: Vec<&str> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["node-a", "node-b"]);
    assert_eq!(view["shards"], 256);
    let same = cluster(&b).await;
    assert_eq!(same["nodes"].as_array().unwrap().len(), 2, "{same}");

    // Connections until one is owned by node-a, so node-b is the one that does not own it.
    let conn = loop {
        let c = b.stripe_connection().await;
        if owner(&a.db, &c.id).await == "node-a" {
            break c;
        }
    };
    let event = |n: i64, email: &str| {
        stripe_event(
            &format!("evt_route_{n}"),
            "customer.updated",
            now_secs() - 100 + n,
            customer("cus_route", email),
        )
    };
    // Listening as a third node would: node-b, which stored the row, announces it to the
    // owner after its commit (the owner's 1 s inbox scan is only the backstop).
    let mut heard =
        a.db.store()
            .await
            .coordination()
            .expect("Postgres coordinates a cluster")
            .subscribe()
            .await
            .expect("LISTEN");
    b.send(&conn, &event(1, "one@x"), 200).await;
    let announced = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match heard.recv().await {
                Some(Announcement::Inbox(id)) if id == conn.id => return,
                Some(_) => {}
                None => panic!("announcements ended"),
            }
        }
    })
    .await;
    assert!(
        announced.is_ok(),
        "node-b did not announce the row to its owner within 2 s"
    );
    let email = |app: &TestApp| {
        let (client, url) = (
            app.client.clone(),
            app.url(&format!(
                "/v1/merchants/{}/customers/stripe:cus_route",
                conn.merchant_id
            )),
        );
        async move {
            let r = client.get(url).bearer_auth(TOKEN).send().await.unwrap();
            if r.status() != 200 {
                return None;
            }
            let v: Value = r.json().await.unwrap();
            v["data"]["email"].as_str().map(str::to_owned)
        }
    };
    let took = within(
        Duration::from_secs(1),
        "webhook at node-b applied by node-a",
        || async { email(&b).await.as_deref() == Some("one@x") },
    )
    .await;
    println!("webhook at the other node -> queryable: {took:?}");

    // Pause at node-b: node-a stops applying; resume at node-b: it applies again.
    let r = b
        .admin_post(
            &format!("/admin/v1/connections/{}/pause", conn.id),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.send(&conn, &event(2, "two@x"), 200).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        email(&a).await.as_deref(),
        Some("one@x"),
        "applied while paused"
    );
    let r = b
        .admin_post(
            &format!("/admin/v1/connections/{}/resume", conn.id),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    within(
        Duration::from_secs(1),
        "resume at node-b effective on node-a",
        || async { email(&a).await.as_deref() == Some("two@x") },
    )
    .await;

    // A new webhook secret set at node-b verifies at node-a at once (its cache forgot).
    let r = b
        .client
        .patch(b.url(&format!("/admin/v1/connections/{}", conn.id)))
        .bearer_auth(TOKEN)
        .json(&json!({"webhook_secrets": ["whsec_rotated"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotated = Conn {
        secret: "whsec_rotated".into(),
        ..conn.clone()
    };
    within(
        Duration::from_secs(1),
        "rotated secret accepted at node-a",
        || async {
            let body = event(3, "three@x");
            let sig =
                billsync::providers::stripe::sign(&rotated.secret, now_secs(), body.as_bytes());
            a.post_webhook(&rotated.id, &body, Some(&sig))
                .await
                .status()
                == 200
        },
    )
    .await;
    a.send(&conn, &event(4, "four@x"), 400).await;

    // Exactly once: each event one raw row, one version per distinct content.
    within(Duration::from_secs(2), "event 3 applied", || async {
        email(&b).await.as_deref() == Some("three@x")
    })
    .await;
    let versions = a
        .versions(&conn.merchant_id, "customers", "stripe:cus_route")
        .await;
    assert_eq!(versions.len(), 3, "{versions:?}");
    assert_eq!(a.raw_event_count(&conn.id).await, 3);

    b.stop().await;
    let db = a.stop().await;
    let leases: i64 = db
        .count("SELECT count(*) FROM shard_leases WHERE owner IS NOT NULL")
        .await;
    assert_eq!(leases, 0, "both nodes released their leases on stop");
}
