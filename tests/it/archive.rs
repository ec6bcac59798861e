//! The raw archive against moto's S3 server on loopback (`scripts/ensure-moto.sh`), with Object
//! Lock in compliance mode as deploy/aws/ configures the bucket: archive and trim with the
//! binary's `billsync archive`, replay a range past the hot window from the archive with no new
//! versions, `archive verify` passing and then reporting a modified file, a deleted file and a
//! broken chain; Object Lock refusing a delete; and a kill -9 between a segment's write to S3
//! and its record in the database that loses nothing and archives nothing twice.

use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
    ObjectLockRule,
};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

both_backends!(
    archive_trim_replay_and_verify,
    a_kill_between_the_archive_write_and_its_record_loses_nothing,
    only_an_archived_raw_event_can_leave_the_database,
    serve_archives_and_trims_on_its_schedule,
);

/// Partitions of one second, so a test's events are in closed partitions a second later.
const PARTITION_SECS: u64 = 1;

/// An S3 client for moto (`AWS_ENDPOINT_URL`, path-style as billsync's own).
async fn s3() -> aws_sdk_s3::Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL is not set: run the tests through scripts/test, which starts \
             moto's S3 and SQS server on loopback (scripts/ensure-moto.sh)"
        )
    });
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "moto on loopback: {endpoint}"
    );
    let sdk = billsync::aws_env::load(Duration::from_secs(30)).await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    )
}

/// A new bucket with Object Lock in compliance mode (a day's default retention), as the
/// CloudFormation's archive bucket has (three years there).
async fn locked_bucket(s3: &aws_sdk_s3::Client) -> String {
    let name = format!("billsync-archive-{}", &uuid_like()[..12]).to_lowercase();
    s3.create_bucket()
        .bucket(&name)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("create the bucket");
    s3.put_object_lock_configuration()
        .bucket(&name)
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Compliance)
                                .days(1)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("configure Object Lock");
    name
}

async fn keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("list");
    let mut keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    keys.sort();
    keys
}

/// `billsync ARGS` on the test's store and bucket; (exit code, stdout, stderr).
async fn billsync(db: &TestDb, bucket: &str, args: &[&str]) -> (i32, String, String) {
    let out = command(db, bucket, args)
        .output()
        .await
        .expect("run billsync");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn command(db: &TestDb, bucket: &str, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_billsync"));
    c.args(args)
        .env("BILLSYNC_DATABASE_URL", &db.url)
        .env("BILLSYNC_DATA_DIR", db.dir.path().join("cli"))
        .env("BILLSYNC_ARCHIVE_BUCKET", bucket)
        .env(
            "BILLSYNC_ARCHIVE_PARTITION_SECS",
            PARTITION_SECS.to_string(),
        )
        .env("BILLSYNC_ARCHIVE_HOT_WINDOW_SECS", "0")
        .env("BILLSYNC_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// `billsync archive verify`'s report, which must fail (exit status 1).
async fn verify_fails(db: &TestDb, bucket: &str) -> String {
    let (code, out, err) = billsync(db, bucket, &["archive", "verify"]).await;
    assert_eq!(code, 1, "verify must report a problem: {out} {err}");
    out
}

/// A number in a pass's summary line: `N <what>`.
fn count_in(summary: &str, what: &str) -> u64 {
    let at = summary
        .find(what)
        .unwrap_or_else(|| panic!("`{what}` not in `{summary}`"));
    summary[..at]
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count before `{what}` in `{summary}`"))
}

/// Sends `n` customers, each created then updated (two versions each), and waits for them.
/// Waits until a partition has just begun (partitions are aligned to multiples of their width
/// since the epoch, on this machine's clock, which the node shares), so that the few events
/// sent next fall in one partition rather than straddling a boundary.
async fn partition_start() {
    let width = u128::from(PARTITION_SECS) * 1_000_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_micros();
    let left = (width - now % width) as u64;
    tokio::time::sleep(Duration::from_micros(left + 20_000)).await;
}

async fn customers(app: &TestApp, conn: &Conn, tag: &str, n: usize) {
    for i in 0..n {
        let id = format!("cus_{tag}{i}");
        for (k, kind) in ["customer.created", "customer.updated"].iter().enumerate() {
            let mut c = customer(&id, &format!("{id}@example.com"));
            c["name"] = json!(format!("v{k}"));
            let body = stripe_event(&format!("evt_{tag}{i}_{k}"), kind, now_secs() + k as i64, c);
            app.send(conn, &body, 200).await;
        }
    }
    app.settle().await;
}

async fn version_counts(app: &TestApp, conn: &Conn, ids: &[String]) -> Vec<(String, usize, Value)> {
    let mut out = Vec::new();
    for id in ids {
        let versions = app
            .versions(&conn.merchant_id, "customers", &format!("stripe:{id}"))
            .await;
        let object = app
            .object(&conn.merchant_id, "customers", &format!("stripe:{id}"))
            .await
            .expect("the customer is stored");
        out.push((id.clone(), versions.len(), object["data"].clone()));
    }
    out
}

/// A node with the archive configured (1 s partitions, no hot window) on a new locked bucket,
/// passing every `interval_secs` (0: only the command archives).
async fn archived_app(
    backend: Backend,
    interval_secs: u64,
) -> (aws_sdk_s3::Client, String, TestApp) {
    let s3 = s3().await;
    let bucket = locked_bucket(&s3).await;
    let db = TestDb::new(backend).await;
    let bucket_for_app = bucket.clone();
    let app = spawn_app_with(db, move |c| {
        c.archive_bucket = Some(bucket_for_app);
        c.archive_partition_secs = PARTITION_SECS;
        c.archive_hot_window_secs = 0;
        c.archive_interval_secs = interval_secs;
    })
    .await;
    (s3, bucket, app)
}

async fn archive_trim_replay_and_verify(backend: Backend) {
    let (s3, bucket, app) = archived_app(backend, 0).await;
    let conn = app.stripe_connection().await;
    let started = now_secs() - 5;
    // Two batches in two partitions: a chain of at least two manifests.
    customers(&app, &conn, "a", 5).await;
    tokio::time::sleep(Duration::from_millis(1_100 * PARTITION_SECS)).await;
    customers(&app, &conn, "b", 5).await;
    tokio::time::sleep(Duration::from_millis(1_100 * PARTITION_SECS)).await;
    let ids: Vec<String> = (0..5)
        .flat_map(|i| [format!("cus_a{i}"), format!("cus_b{i}")])
        .collect();
    let before = version_counts(&app, &conn, &ids).await;
    assert!(before.iter().all(|(_, n, _)| *n == 2), "{before:?}");

    let (code, out, err) = billsync(&app.db, &bucket, &["archive"]).await;
    assert_eq!(code, 0, "archive failed: {out} {err}");
    assert_eq!(count_in(&out, "events archived"), 20, "{out}");
    assert!(count_in(&out, "segments") >= 2, "{out}");
    assert_eq!(count_in(&out, "trimmed"), 20, "{out}");
    assert_eq!(
        app.store.raw_event_counts().await.unwrap(),
        (0, 0),
        "all trimmed"
    );
    let trims = app.get_json("/admin/v1/audit?limit=1000", 200).await;
    let trims = trims["data"].as_array().cloned().unwrap_or_default();
    assert!(
        trims.iter().any(|e| e["action"] == "raw_events.trim"
            && e["token_id"]
                .as_str()
                .is_some_and(|a| a.starts_with("cli:"))
            && e["details"]["deleted"] == json!(20)),
        "the trim is audited: {trims:?}"
    );
    let manifests = keys(&s3, &bucket, "billsync/manifests/").await;
    assert!(manifests.len() >= 2, "{manifests:?}");
    let data = keys(&s3, &bucket, "billsync/data/").await;
    assert!(data.iter().all(|k| k.ends_with(".jsonl.zst")), "{data:?}");

    // A replay of the whole range reads the archive back, and changes nothing.
    let r = app
        .admin_post(
            &format!("/admin/v1/connections/{}/replay", conn.id),
            &json!({
                "from": billsync::model::time::secs_to_rfc3339(started).unwrap(),
                "to": billsync::model::time::secs_to_rfc3339(now_secs() + 5).unwrap(),
            }),
        )
        .await;
    assert_eq!(r.status().as_u16(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["replay"]["raw_events_restored"], 20, "{body}");
    assert_eq!(body["replay"]["raw_events_queued"], 20, "{body}");
    app.settle().await;
    let after = version_counts(&app, &conn, &ids).await;
    assert_eq!(
        before, after,
        "a replay from the archive makes no new version"
    );
    assert_eq!(app.store.raw_event_counts().await.unwrap(), (20, 20));

    // The next pass archives nothing again (restored events are marked) and trims them.
    let (code, out, err) = billsync(&app.db, &bucket, &["archive"]).await;
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(count_in(&out, "events archived"), 0, "{out}");
    assert_eq!(count_in(&out, "trimmed"), 20, "{out}");

    let (code, out, err) = billsync(&app.db, &bucket, &["archive", "verify"]).await;
    assert_eq!(code, 0, "verify: {out} {err}");
    assert!(
        out.contains("20 events") && out.contains("; 0 problems"),
        "{out}"
    );

    // Object Lock: an archived version cannot be deleted, not even by its writer.
    let first = &data[0];
    let head = s3
        .head_object()
        .bucket(&bucket)
        .key(first)
        .send()
        .await
        .unwrap();
    let refused = s3
        .delete_object()
        .bucket(&bucket)
        .key(first)
        .version_id(head.version_id().expect("a versioned bucket"))
        .send()
        .await;
    let err = refused.expect_err("Object Lock refuses the delete");
    assert!(
        format!("{:?}", err).contains("AccessDenied"),
        "refused as AccessDenied: {err:?}"
    );

    // What verify reports: a modified file, a deleted file, a broken chain and a gap.
    s3.put_object()
        .bucket(&bucket)
        .key(first)
        .body(ByteStream::from_static(b"not the archived bytes"))
        .send()
        .await
        .expect("a new version on top is allowed");
    let out = verify_fails(&app.db, &bucket).await;
    assert!(out.contains(&format!("{first}: modified")), "{out}");
    let second = data.last().expect("two partitions, two files");
    s3.delete_object()
        .bucket(&bucket)
        .key(second)
        .send()
        .await
        .unwrap();
    let out = verify_fails(&app.db, &bucket).await;
    assert!(out.contains(&format!("{second}: missing")), "{out}");
    assert!(out.contains(&format!("{first}: modified")), "{out}");
    let m1 = &manifests[0];
    let text = s3
        .get_object()
        .bucket(&bucket)
        .key(m1)
        .send()
        .await
        .unwrap();
    let text = String::from_utf8(text.body.collect().await.unwrap().to_vec()).unwrap();
    // Same JSON, other bytes: only the hash can tell.
    let forged = text.replacen("\"events\": ", "\"events\":  ", 1);
    assert_ne!(forged, text);
    s3.put_object()
        .bucket(&bucket)
        .key(m1)
        .body(ByteStream::from(forged.into_bytes()))
        .send()
        .await
        .unwrap();
    let out = verify_fails(&app.db, &bucket).await;
    assert!(
        out.contains(&format!("chain broken at {}", manifests[1])),
        "the next manifest no longer chains: {out}"
    );
    assert!(
        out.contains(&format!("chain broken at {m1}: it hashes to")),
        "the database's record of the manifest differs: {out}"
    );
    s3.delete_object()
        .bucket(&bucket)
        .key(m1)
        .send()
        .await
        .unwrap();
    let out = verify_fails(&app.db, &bucket).await;
    assert!(
        out.contains("gap: the manifest of segment 1 is missing"),
        "{out}"
    );
    app.stop().await;
}

async fn a_kill_between_the_archive_write_and_its_record_loses_nothing(backend: Backend) {
    let s3 = s3().await;
    let bucket = locked_bucket(&s3).await;
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    // One partition, so that the pass killed below has written all 12 in its one segment (in
    // CI the sends once straddled a boundary: the killed pass had written the first 2).
    partition_start().await;
    customers(&app, &conn, "k", 6).await;
    tokio::time::sleep(Duration::from_millis(1_100 * PARTITION_SECS)).await;
    assert_eq!(app.store.raw_event_counts().await.unwrap(), (12, 0));

    // The pass holds after its segment's writes, before the record: kill -9 it there.
    let mut child = command(&app.db, &bucket, &["archive", "--hold-after-upload", "120"])
        .spawn()
        .expect("spawn billsync archive");
    let deadline = Instant::now() + Duration::from_secs(60);
    while keys(&s3, &bucket, "billsync/manifests/").await.is_empty() {
        assert!(Instant::now() < deadline, "no manifest written");
        assert!(child.try_wait().unwrap().is_none(), "the pass ended early");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().await.expect("kill -9");
    assert_eq!(
        app.store.raw_event_counts().await.unwrap(),
        (12, 0),
        "written to S3 but not recorded: nothing marked, nothing trimmed"
    );
    assert!(app.store.last_segment().await.unwrap().is_none());

    // The next pass adopts the manifest instead of archiving the events again.
    let (code, out, err) = billsync(&app.db, &bucket, &["archive"]).await;
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(count_in(&out, "manifests adopted"), 1, "{out}");
    assert_eq!(count_in(&out, "events archived"), 0, "{out}");
    assert_eq!(count_in(&out, "trimmed"), 12, "{out}");
    assert_eq!(app.store.raw_event_counts().await.unwrap(), (0, 0));
    assert_eq!(keys(&s3, &bucket, "billsync/manifests/").await.len(), 1);
    let (code, out, err) = billsync(&app.db, &bucket, &["archive", "verify"]).await;
    assert_eq!(code, 0, "{out} {err}");
    assert!(
        out.contains("12 events") && out.contains("; 0 problems"),
        "{out}"
    );
    app.stop().await;
}

/// The store's guard: a raw event is changed only by being marked archived in a recorded
/// segment, and deleted only once marked.
async fn only_an_archived_raw_event_can_leave_the_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let conn = app.stripe_connection().await;
    customers(&app, &conn, "g", 1).await;
    let db = &app.db;
    let err = db.exec_raw("DELETE FROM raw_events").await.unwrap_err();
    assert!(err.contains("append-only"), "{err}");
    let err = db
        .exec_raw("UPDATE raw_events SET archive_segment = 7")
        .await
        .unwrap_err();
    assert!(
        err.contains("append-only"),
        "no segment 7 is recorded: {err}"
    );
    db.exec_raw(
        "INSERT INTO archive_segments (seq, partition_start, partition_end, manifest_key, \
         manifest_sha256, events, recorded_at) VALUES (7, 0, 1, 'k', 's', 2, 0)",
    )
    .await
    .unwrap();
    let err = db
        .exec_raw("UPDATE raw_events SET archive_segment = 7, event_type = 'forged'")
        .await
        .unwrap_err();
    assert!(
        err.contains("append-only"),
        "only the mark may change: {err}"
    );
    assert_eq!(
        db.exec_raw("UPDATE raw_events SET archive_segment = 7")
            .await,
        Ok(2)
    );
    let err = db
        .exec_raw("UPDATE raw_events SET archive_segment = NULL")
        .await
        .unwrap_err();
    assert!(err.contains("append-only"), "a mark is for good: {err}");
    let err = db
        .exec_raw("DELETE FROM archive_segments")
        .await
        .unwrap_err();
    assert!(err.contains("append-only"), "{err}");
    assert_eq!(db.exec_raw("DELETE FROM raw_events").await, Ok(2));
    app.stop().await;
}

/// `serve` with a bucket runs a pass every `archive_interval_secs` on its own.
async fn serve_archives_and_trims_on_its_schedule(backend: Backend) {
    let (s3, bucket, app) = archived_app(backend, 1).await;
    let conn = app.stripe_connection().await;
    customers(&app, &conn, "s", 3).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts = app.store.raw_event_counts().await.unwrap();
        let head = app.store.last_segment().await.unwrap();
        if counts == (0, 0) && head.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not archive and trim: {counts:?}, head {head:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ok = app
        .metric("billsync_archive_passes_total{outcome=\"ok\"}")
        .await
        .expect("the pass counter is exposed");
    assert!(ok >= 1.0, "{ok}");
    assert!(app.metric("billsync_archive_events_total").await.unwrap() >= 6.0);
    assert!(!keys(&s3, &bucket, "billsync/manifests/").await.is_empty());
    app.stop().await;
}
