//! The store conformance suite: the same behaviour, tested through the `Store` trait, on
//! SQLite, on Postgres, and on Postgres over TLS (`sslmode=verify-full`, as Aurora requires).

use std::sync::Arc;

use billsync::model::{content_hash, ObjectType, ReconStatus};
use billsync::providers::ProviderKind;
use billsync::store::*;
use serde_json::json;

use crate::conformance;
use crate::helpers::*;

conformance!(
    raw_events_refuse_update_and_delete,
    ingest_dedupes_by_connection_and_event_id,
    apply_is_atomic_and_fenced_by_the_shard_lease,
    stale_expected_version_is_a_conflict_and_writes_nothing,
    change_seqs_are_contiguous_per_merchant,
    failed_inbox_rows_back_off_then_dead_letter,
    settings_keep_the_first_value,
    versions_are_append_only,
    a_refetch_scheduled_twice_is_read_at_the_later_time_and_an_earlier_read_settles_nothing,
    a_sweep_keeps_its_resume_cursor_until_a_later_sweep_moves_it,
    real_time_refetches_are_due_before_an_earlier_reconciliation_backlog,
);

pub(crate) async fn setup(backend: Backend) -> (TestDb, Arc<dyn Store>, ConnectionRecord) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let conn = ConnectionRecord {
        id: format!("conn_{}", &uuid_like()[..10]),
        merchant_id: "m_store".into(),
        provider: ProviderKind::Stripe,
        account_id: "acct".into(),
        sealed_webhook_secrets: vec![1, 2, 3],
        sealed_api_key: None,
        api_base_url: None,
        rate_limit_per_sec: Some(25),
        reconcile_interval_secs: None,
        api_version: None,
        state: ConnectionState::Active,
        lease_epoch: 1,
        created_at: 1,
        updated_at: 1,
        last_applied_at: None,
        last_provider_error: None,
    };
    let audit = AuditEntry {
        at: 1,
        actor: "test".into(),
        action: "connection.create".into(),
        target: conn.id.clone(),
        detail: json!({}),
    };
    store.insert_connection(&conn, &audit).await.unwrap();
    assert_eq!(
        store.get_connection(&conn.id).await.unwrap().as_ref(),
        Some(&conn)
    );
    (db, store, conn)
}

pub(crate) fn event(conn: &ConnectionRecord, id: &str) -> IncomingEvent {
    IncomingEvent {
        connection_id: conn.id.clone(),
        provider_event_id: id.into(),
        event_type: "customer.updated".into(),
        source: "webhook",
        received_at: 10,
        body: RawBody::seal(format!("{{\"id\":\"{id}\"}}").as_bytes()).unwrap(),
    }
}

fn write(id: &str, expected: Option<i64>, version: i64, email: &str) -> ObjectWrite {
    let data = json!({ "email": email });
    ObjectWrite {
        object_type: ObjectType::Customer,
        provider_id: id.into(),
        id: format!("stripe:{id}"),
        expected_version: expected,
        version,
        status: ReconStatus::Pending,
        deleted: false,
        content_hash: content_hash(&data, false),
        data_text: data.to_string(),
        order_key: version,
        tie_rank: 0,
        provider_updated_at: version,
        source: json!({ "kind": "test" }),
        reason: "test".into(),
        findings: vec![],
    }
}

fn batch(conn: &ConnectionRecord, writes: Vec<ObjectWrite>, inbox: Vec<i64>) -> ApplyBatch {
    ApplyBatch {
        connection_id: conn.id.clone(),
        merchant_id: conn.merchant_id.clone(),
        fence: None,
        now: billsync::model::time::now_micros(),
        writes,
        applied_inbox_ids: inbox,
        dead_letters: vec![],
        observations: vec![],
        checkpoints: vec![],
        schedule_refetches: vec![],
        settled_refetches: vec![],
    }
}

async fn raw_events_refuse_update_and_delete(backend: Backend) {
    let (db, store, conn) = setup(backend).await;
    store.ingest(&[event(&conn, "evt_1")]).await.unwrap();
    assert!(db
        .exec_raw("UPDATE raw_events SET event_type = 'x'")
        .await
        .is_err());
    assert!(db.exec_raw("DELETE FROM raw_events").await.is_err());
    assert_eq!(store.raw_event_ids(&conn.id).await.unwrap(), vec!["evt_1"]);
    let items = store.due_inbox(&conn.id, i64::MAX, 10).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].body, b"{\"id\":\"evt_1\"}",
        "the raw body comes back byte for byte"
    );
}

async fn ingest_dedupes_by_connection_and_event_id(backend: Backend) {
    let (_db, store, conn) = setup(backend).await;
    let out = store
        .ingest(&[
            event(&conn, "evt_b"),
            event(&conn, "evt_a"),
            event(&conn, "evt_b"),
        ])
        .await
        .unwrap();
    assert!(matches!(out[0], IngestOutcome::Stored { .. }));
    assert!(matches!(out[1], IngestOutcome::Stored { .. }));
    assert_eq!(out[2], IngestOutcome::Duplicate);
    assert_eq!(
        store.ingest(&[event(&conn, "evt_a")]).await.unwrap(),
        vec![IngestOutcome::Duplicate]
    );
    assert_eq!(
        store.inbox_depth().await.unwrap(),
        InboxDepth {
            pending: 2,
            dead: 0
        }
    );
    assert_eq!(
        store.connections_with_due_work(i64::MAX, 10).await.unwrap(),
        vec![conn.id.clone()]
    );
}

/// A store that serves one node has no leases: its node writes unfenced. On Postgres a
/// batch that carries an old epoch of its shard, or one released, is refused whole; the
/// current lease writes.
async fn apply_is_atomic_and_fenced_by_the_shard_lease(backend: Backend) {
    let (_db, store, conn) = setup(backend).await;
    store.ingest(&[event(&conn, "evt_1")]).await.unwrap();
    let inbox: Vec<i64> = store
        .due_inbox(&conn.id, i64::MAX, 10)
        .await
        .unwrap()
        .iter()
        .map(|i| i.inbox_id)
        .collect();
    let mut fence = None;
    if let Some(c) = store.coordination() {
        let shard = billsync::cluster::shard_of(&conn.id);
        let old = c.acquire("node-a", shard, 60).await.unwrap().unwrap();
        let current = c.acquire("node-b", shard, 60).await.unwrap();
        assert_eq!(current, None, "a live lease of another node is not taken");
        c.release("node-a", &[old]).await.unwrap();
        let current = c.acquire("node-b", shard, 60).await.unwrap().unwrap();
        assert!(current.epoch > old.epoch, "the epoch rises with the owner");
        for refused in [
            old,
            Fence {
                shard: (shard + 1) % 256,
                ..current
            },
        ] {
            let mut stale = batch(&conn, vec![write("cus_1", None, 1, "a@x")], inbox.clone());
            stale.fence = Some(refused);
            assert!(matches!(
                store.apply(&stale).await,
                Err(StoreError::Fenced(_))
            ));
            assert_eq!(
                store.inbox_depth().await.unwrap().pending,
                1,
                "a fenced apply changes nothing"
            );
            assert!(store
                .read_object("m_store", ObjectType::Customer, "stripe:cus_1", None)
                .await
                .unwrap()
                .is_none());
        }
        fence = Some(current);
    }

    let mut current = batch(&conn, vec![write("cus_1", None, 1, "a@x")], inbox);
    current.fence = fence;
    store.apply(&current).await.unwrap();
    assert_eq!(store.inbox_depth().await.unwrap().pending, 0);
    let obj = store
        .read_object("m_store", ObjectType::Customer, "stripe:cus_1", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(obj.version, 1);
    assert_eq!(obj.data["email"], "a@x");
    let current = store
        .current_objects(
            &conn.id,
            &[
                (ObjectType::Customer, "cus_1".into()),
                (ObjectType::Customer, "cus_9".into()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(current.len(), 1);
    assert_eq!(
        current[0].content_hash,
        content_hash(&json!({"email": "a@x"}), false)
    );
}

async fn stale_expected_version_is_a_conflict_and_writes_nothing(backend: Backend) {
    let (_db, store, conn) = setup(backend).await;
    store
        .apply(&batch(&conn, vec![write("cus_1", None, 1, "a@x")], vec![]))
        .await
        .unwrap();
    // Creating again, or updating from a version that is no longer current, conflicts.
    let r = store
        .apply(&batch(
            &conn,
            vec![
                write("cus_2", None, 1, "b@x"),
                write("cus_1", None, 1, "c@x"),
            ],
            vec![],
        ))
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))));
    assert!(
        store
            .read_object("m_store", ObjectType::Customer, "stripe:cus_2", None)
            .await
            .unwrap()
            .is_none(),
        "rolled back"
    );
    let r = store
        .apply(&batch(
            &conn,
            vec![write("cus_1", Some(7), 8, "c@x")],
            vec![],
        ))
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))));
    store
        .apply(&batch(
            &conn,
            vec![
                write("cus_1", Some(1), 2, "c@x"),
                write("cus_1", Some(2), 3, "d@x"),
            ],
            vec![],
        ))
        .await
        .unwrap();
    let versions = store
        .object_versions("m_store", ObjectType::Customer, "stripe:cus_1")
        .await
        .unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(versions[2].data["email"], "d@x");
}

async fn change_seqs_are_contiguous_per_merchant(backend: Backend) {
    let (_db, store, conn) = setup(backend).await;
    for i in 0..5 {
        store
            .apply(&batch(
                &conn,
                vec![
                    write(&format!("cus_{i}"), None, 1, "a@x"),
                    write(&format!("cus_{i}"), Some(1), 2, "b@x"),
                ],
                vec![],
            ))
            .await
            .unwrap();
    }
    // A status-only write is no version and no change.
    let mut status_only = write("cus_0", Some(2), 2, "b@x");
    status_only.status = ReconStatus::Converged;
    store
        .apply(&batch(&conn, vec![status_only], vec![]))
        .await
        .unwrap();
    let feed = store.changes("m_store", 0, 100).await.unwrap();
    assert_eq!(
        feed.iter().map(|c| c.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(store.changes("m_store", 7, 100).await.unwrap().len(), 3);
    assert!(store.changes("m_other", 0, 100).await.unwrap().is_empty());
    let obj = store
        .read_object("m_store", ObjectType::Customer, "stripe:cus_0", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((obj.version, obj.status), (2, ReconStatus::Converged));
    let page = store
        .list_objects(
            "m_store",
            ObjectType::Customer,
            &ListQuery {
                limit: 100,
                status: Some(ReconStatus::Converged),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
}

async fn failed_inbox_rows_back_off_then_dead_letter(backend: Backend) {
    let (_db, store, conn) = setup(backend).await;
    store.ingest(&[event(&conn, "evt_1")]).await.unwrap();
    let id = store.due_inbox(&conn.id, i64::MAX, 10).await.unwrap()[0].inbox_id;
    store.retry_inbox(&[id], 1_000, "boom", 2).await.unwrap();
    assert!(
        store.due_inbox(&conn.id, 999, 10).await.unwrap().is_empty(),
        "not due before its time"
    );
    let again = store.due_inbox(&conn.id, 1_000, 10).await.unwrap();
    assert_eq!(again[0].attempts, 1);
    store.retry_inbox(&[id], 2_000, "boom", 2).await.unwrap();
    assert!(
        store
            .due_inbox(&conn.id, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty(),
        "dead letters are not retried"
    );
    assert_eq!(
        store.inbox_depth().await.unwrap(),
        InboxDepth {
            pending: 0,
            dead: 1
        }
    );
}

async fn settings_keep_the_first_value(backend: Backend) {
    let (_db, store, _conn) = setup(backend).await;
    assert_eq!(store.get_setting("k").await.unwrap(), None);
    assert_eq!(
        store.put_setting_if_absent("k", "first").await.unwrap(),
        "first"
    );
    assert_eq!(
        store.put_setting_if_absent("k", "second").await.unwrap(),
        "first"
    );
    // Migrating twice is harmless.
    store.migrate().await.unwrap();
}

async fn versions_are_append_only(backend: Backend) {
    let (db, store, conn) = setup(backend).await;
    store
        .apply(&batch(&conn, vec![write("cus_1", None, 1, "a@x")], vec![]))
        .await
        .unwrap();
    assert!(db
        .exec_raw("UPDATE object_versions SET reason = 'x'")
        .await
        .is_err());
    assert!(db.exec_raw("DELETE FROM object_versions").await.is_err());
    assert!(db.exec_raw("DELETE FROM audit_log").await.is_err());
}

fn refetch(id: &str, due_at: i64) -> Refetch {
    Refetch {
        object_type: ObjectType::Customer,
        provider_id: id.into(),
        due_at,
        attempts: 0,
        first_seen_at: due_at,
        priority: Refetch::REAL_TIME,
    }
}

/// A confirmation due soon and a sweep's find due after the API lag name the same object:
/// one read, at the later time; the sooner read (started before the find) settles nothing.
async fn a_refetch_scheduled_twice_is_read_at_the_later_time_and_an_earlier_read_settles_nothing(
    backend: Backend,
) {
    let (_db, store, conn) = setup(backend).await;
    let schedule = |r: Vec<Refetch>| {
        let mut b = batch(&conn, vec![], vec![]);
        b.schedule_refetches = r;
        b
    };
    store
        .apply(&schedule(vec![refetch("cus_1", 100)]))
        .await
        .unwrap();
    let due = store.due_refetches(&conn.id, 100, 10).await.unwrap();
    assert_eq!(due, vec![refetch("cus_1", 100)]);
    // While that read is in flight, a later one is scheduled; an earlier one changes nothing.
    store
        .apply(&schedule(vec![refetch("cus_1", 5_000)]))
        .await
        .unwrap();
    store
        .apply(&schedule(vec![refetch("cus_1", 50)]))
        .await
        .unwrap();
    let mut settle = batch(&conn, vec![], vec![]);
    settle.settled_refetches = due;
    store.apply(&settle).await.unwrap();
    assert!(store
        .due_refetches(&conn.id, 4_999, 10)
        .await
        .unwrap()
        .is_empty());
    let later = store.due_refetches(&conn.id, 5_000, 10).await.unwrap();
    assert_eq!(later.len(), 1, "the later read is still to be made");
    assert_eq!((later[0].due_at, later[0].first_seen_at), (5_000, 100));
    // A backoff sooner than the row's time does not bring it forward.
    let mut sooner = later[0].clone();
    sooner.due_at = 200;
    sooner.attempts = 1;
    store.reschedule_refetch(&conn.id, &sooner).await.unwrap();
    assert!(store
        .due_refetches(&conn.id, 4_999, 10)
        .await
        .unwrap()
        .is_empty());
    // The read made at its time settles it.
    let mut settle = batch(&conn, vec![], vec![]);
    settle.settled_refetches = store.due_refetches(&conn.id, 5_000, 10).await.unwrap();
    store.apply(&settle).await.unwrap();
    assert_eq!(store.refetch_backlog().await.unwrap(), 0);
}

/// A sweep walked by cursor (Paddle's `/events?after=`) resumes where the last one ended:
/// the cursor is stored with the sweep, kept by a sweep that moves it nowhere, and cleared
/// only when told.
async fn a_sweep_keeps_its_resume_cursor_until_a_later_sweep_moves_it(backend: Backend) {
    let (_db, store, conn) = setup(backend).await;
    store.init_sweep(&conn.id, 10, 20).await.unwrap();
    let fresh = store.sweep(&conn.id).await.unwrap().expect("a sweep row");
    assert_eq!(fresh.cursor, None);
    store
        .finish_sweep(&conn.id, 30, 40, 2, Some("evt_01h9"), 35)
        .await
        .unwrap();
    let swept = store.sweep(&conn.id).await.unwrap().unwrap();
    assert_eq!(swept.cursor.as_deref(), Some("evt_01h9"));
    assert_eq!((swept.position, swept.total_found), (30, 2));
    store
        .finish_sweep(&conn.id, 50, 60, 0, Some("evt_01ha"), 55)
        .await
        .unwrap();
    let moved = store.sweep(&conn.id).await.unwrap().unwrap();
    assert_eq!(moved.cursor.as_deref(), Some("evt_01ha"));
    store
        .finish_sweep(&conn.id, 70, 80, 0, None, 75)
        .await
        .unwrap();
    assert_eq!(store.sweep(&conn.id).await.unwrap().unwrap().cursor, None);
}

/// Reads of objects a sweep found, due long ago, do not hold back a webhook's confirmation
/// due now: real-time reads come first, and an object scheduled both ways keeps real time.
async fn real_time_refetches_are_due_before_an_earlier_reconciliation_backlog(backend: Backend) {
    let (_db, store, conn) = setup(backend).await;
    let mut b = batch(&conn, vec![], vec![]);
    b.schedule_refetches = (0..20)
        .map(|i| Refetch {
            priority: Refetch::RECONCILE,
            ..refetch(&format!("cus_swept_{i:02}"), 100 + i)
        })
        .collect();
    b.schedule_refetches.push(refetch("cus_webhook", 900));
    // Found by a sweep too: the real-time priority it already has stays.
    let mut again = batch(&conn, vec![], vec![]);
    again.schedule_refetches = vec![Refetch {
        priority: Refetch::RECONCILE,
        ..refetch("cus_webhook", 900)
    }];
    store.apply(&b).await.unwrap();
    store.apply(&again).await.unwrap();
    let due = store.due_refetches(&conn.id, 1_000, 5).await.unwrap();
    assert_eq!(due[0].provider_id, "cus_webhook", "{due:?}");
    assert_eq!(due[0].priority, Refetch::REAL_TIME);
    let rest: Vec<&str> = due[1..].iter().map(|r| r.provider_id.as_str()).collect();
    assert_eq!(
        rest,
        [
            "cus_swept_00",
            "cus_swept_01",
            "cus_swept_02",
            "cus_swept_03"
        ]
    );
    // Not due yet is not due, whatever its priority.
    assert!(store
        .due_refetches(&conn.id, 899, 30)
        .await
        .unwrap()
        .iter()
        .all(|r| r.priority == Refetch::RECONCILE));
}

/// Postgres only (SQLite plans through its keys without statistics): after 20,000 object
/// writes the store analyzes the tables that grow with them, whether autovacuum runs or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_analyzes_the_growing_tables_after_20k_object_writes() {
    let (db, store, conn) = setup(Backend::Postgres).await;
    // Only the store's own ANALYZE can count here (where the server runs autovacuum too).
    db.exec_raw("ALTER TABLE objects SET (autovacuum_enabled = false)")
        .await
        .unwrap();
    let analyzed = "SELECT COUNT(*) FROM pg_stat_user_tables \
                    WHERE relname = 'objects' AND last_analyze IS NOT NULL";
    for chunk in 0..20 {
        let writes = (0..1_000)
            .map(|i| write(&format!("cus_{chunk}_{i}"), None, 1, "a@x"))
            .collect();
        store.apply(&batch(&conn, writes, vec![])).await.unwrap();
        if chunk < 19 {
            assert_eq!(
                db.count(analyzed).await,
                0,
                "not analyzed before 20,000 writes"
            );
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while db.count(analyzed).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "objects not analyzed 30 s after 20,000 writes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
