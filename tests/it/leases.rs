//! Cluster coordination on Postgres (src/store/postgres_coordination.rs, src/cluster/):
//! membership, leases that lapse and rise in epoch, announcements at commit, and lease
//! keepers of several nodes spreading the shards and handing them over. The process-level
//! cluster runs (kill -9, SIGSTOP, rolling restarts) are in `cluster.rs`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use billsync::cluster::keeper::LeaseKeeper;
use billsync::cluster::{Owned, SHARDS};
use billsync::store::*;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;
use crate::store::{event, setup};

fn coordination(store: &Arc<dyn Store>) -> Arc<dyn Coordination> {
    store
        .coordination()
        .expect("Postgres coordinates a cluster")
}

/// The ids of the nodes seen within the last minute.
async fn live_ids(c: &Arc<dyn Coordination>) -> Vec<String> {
    c.live_nodes(60)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.node_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_serves_one_node_and_has_no_leases() {
    let db = TestDb::new(Backend::Sqlite).await;
    assert!(db.store().await.coordination().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_is_not_renewed_and_goes_to_the_next_taker_with_a_higher_epoch() {
    let db = TestDb::new(Backend::PostgresTls).await;
    let store = db.store().await;
    let c = coordination(&store);
    c.heartbeat("node-a", 1).await.unwrap();
    c.heartbeat("node-b", 2).await.unwrap();
    assert_eq!(live_ids(&c).await, ["node-a", "node-b"]);

    let a = c
        .acquire("node-a", 7, 1)
        .await
        .unwrap()
        .expect("free shard");
    assert_eq!(c.acquire("node-b", 7, 1).await.unwrap(), None);
    assert_eq!(c.renew("node-a", &[a], 1).await.unwrap(), vec![a]);
    let wrong = Fence {
        epoch: a.epoch + 5,
        ..a
    };
    assert_eq!(c.renew("node-a", &[wrong], 1).await.unwrap(), vec![]);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let lease = c.leases().await.unwrap().remove(7);
    assert!(lease.expired && lease.owner.as_deref() == Some("node-a"));
    assert_eq!(
        c.renew("node-a", &[a], 1).await.unwrap(),
        vec![],
        "a lapsed lease is lost"
    );
    let b = c.acquire("node-b", 7, 30).await.unwrap().expect("lapsed");
    assert!(b.epoch > a.epoch);
    assert_eq!(c.leases().await.unwrap().len(), SHARDS as usize);

    c.leave("node-a").await.unwrap();
    assert_eq!(live_ids(&c).await, ["node-b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_hear_of_inbox_rows_admin_changes_and_members_at_commit() {
    let (_db, store, conn) = setup(Backend::PostgresTls).await;
    let c = coordination(&store);
    let mut heard = c.subscribe().await.unwrap();
    // Intake's commit announces nothing itself (it would hold Postgres's notify lock across
    // its flush); the node that stored the rows announces them after (cluster::forward).
    store.ingest(&[event(&conn, "evt_n1")]).await.unwrap();
    c.announce_inbox(&[conn.id.clone(), "conn_other".into()])
        .await
        .unwrap();
    assert_eq!(next(&mut heard).await, Announcement::Inbox(conn.id.clone()));
    assert_eq!(
        next(&mut heard).await,
        Announcement::Inbox("conn_other".into())
    );
    store.ingest(&[event(&conn, "evt_n2")]).await.unwrap();
    let audit = AuditEntry {
        at: 1,
        actor: "test".into(),
        action: "connection.pause".into(),
        target: conn.id.clone(),
        detail: serde_json::json!({}),
    };
    store
        .set_connection_state(&conn.id, ConnectionState::Paused, &audit)
        .await
        .unwrap();
    assert_eq!(next(&mut heard).await, Announcement::Admin(conn.id.clone()));
    c.heartbeat("node-new", 1).await.unwrap();
    assert_eq!(next(&mut heard).await, Announcement::Membership);
}

async fn next(heard: &mut tokio::sync::mpsc::Receiver<Announcement>) -> Announcement {
    tokio::time::timeout(Duration::from_secs(5), heard.recv())
        .await
        .expect("an announcement within 5 s")
        .expect("subscription open")
}

struct Node {
    owned: watch::Receiver<Arc<Owned>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start_node(c: &Arc<dyn Coordination>, id: &str, lease_secs: u64) -> Node {
    let (keeper, owned) = LeaseKeeper::new(c.clone(), id.into(), 1, lease_secs);
    let stop = CancellationToken::new();
    let task = tokio::spawn(keeper.run(stop.clone()));
    Node { owned, stop, task }
}

fn held(node: &Node) -> i32 {
    node.owned.borrow().shard_count()
}

async fn until(what: &str, secs: u64, cond: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepers_spread_the_shards_hand_them_over_on_stop_and_take_them_after_a_crash() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let c = coordination(&store);
    let lease = 2;
    let a = start_node(&c, "node-a", lease);
    until("node-a to hold every shard", 10, || held(&a) == SHARDS).await;
    let b = start_node(&c, "node-b", lease);
    let d = start_node(&c, "node-c", lease);
    until("three nodes to share the shards", 15, || {
        let counts = [held(&a), held(&b), held(&d)];
        counts.iter().sum::<i32>() == SHARDS && counts.iter().all(|&n| (60..=110).contains(&n))
    })
    .await;
    // No shard is held twice: the fences of all three are disjoint.
    let shards = |n: &Node| -> HashSet<i32> {
        (0..SHARDS)
            .filter(|&s| {
                let owned = n.owned.borrow();
                (0..10_000)
                    .map(|i| format!("conn_{s}_{i}"))
                    .find(|id| billsync::cluster::shard_of(id) == s)
                    .is_some_and(|id| owned.fence_for(&id).is_some())
            })
            .collect()
    };
    let (sa, sb, sd) = (shards(&a), shards(&b), shards(&d));
    assert!(sa.is_disjoint(&sb) && sb.is_disjoint(&sd) && sa.is_disjoint(&sd));

    // A clean stop releases at once: the others hold everything well before a lease lapses.
    let stopped = Instant::now();
    b.stop.cancel();
    b.task.await.unwrap();
    until("node-b's shards to be taken over", 10, || {
        held(&a) + held(&d) == SHARDS
    })
    .await;
    assert!(
        stopped.elapsed() < Duration::from_secs(lease),
        "handover took {:?}, not less than the lease",
        stopped.elapsed()
    );

    // A crash (the task dies, nothing released): taken over once the lease lapses.
    d.task.abort();
    let _ = d.task.await;
    let took = until("node-c's shards to be taken after expiry", 15, || {
        held(&a) == SHARDS
    })
    .await;
    assert!(took >= Duration::from_millis(lease * 1000 / 2), "{took:?}");
    a.stop.cancel();
    a.task.await.unwrap();
    let leases = c.leases().await.unwrap();
    assert!(
        leases.iter().all(|l| l.owner.is_none()),
        "a clean stop releases everything"
    );
}
