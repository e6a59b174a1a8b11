//! A small fleet against head office: three branch boxes (`branchd demo`, compressed day),
//! a real broker, `branchd hq ingest` writing into a fresh PostgreSQL database. A box is
//! SIGKILLed mid-day (and an ingest, or a broker node); every branch's events still arrive
//! in PostgreSQL gap-free. `./dev bench fleet` runs the same with 50 boxes.

use std::time::Duration;

use crate::fleet_harness::{
    Daemon, Ingest, NatsCluster, Pg, ingest_logs, sharded_ingests, wait_complete,
};
use crate::mqtt::Broker;

/// Tickets each box issues in the test's compressed day.
const CUSTOMERS: u64 = 60;
/// Seconds between two tickets.
const EVERY: f64 = 0.05;

async fn wait_for(what: &str, secs: u64, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn tickets_at_least(d: &Daemon, n: i64) {
    wait_for(
        &format!("{} to issue {n} tickets", d.branch),
        60,
        async || d.outbox().2 >= n,
    )
    .await;
}

/// Head office's view of one branch: (online, session).
async fn state(pg: &Pg, branch: &str) -> (Option<bool>, Option<i64>) {
    let r = pg
        .client()
        .await
        .query_one(
            "SELECT online, session FROM hq_branches WHERE branch = $1",
            &[&branch],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

async fn no_rejects_no_open_gaps(pg: &Pg) {
    assert_eq!(
        pg.open_gaps_and_rejected().await,
        (0, 0),
        "gaps still open, messages rejected"
    );
}

/// Head office follows each customer's visit: one visit per ticket issued, and each
/// visit's first event is its ticket's issue.
async fn every_visit_begins_with_its_ticket(pg: &Pg) {
    let c = pg.client().await;
    let count = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    // Both counts in one statement, one snapshot: the boxes go on issuing tickets.
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM hq_events WHERE kind = 'ticket.issued'), \
                    (SELECT count(*) FROM (SELECT DISTINCT branch, visit_id FROM hq_journeys) v)",
            &[],
        )
        .await
        .unwrap();
    let (issued, visits) = (row.get::<_, i64>(0), row.get::<_, i64>(1));
    assert!(issued > 0);
    assert_eq!(visits, issued, "one visit per ticket");
    let first_not_issue = count(
        "SELECT count(*) FROM (SELECT branch, visit_id, min(seq) AS seq FROM hq_journeys \
         GROUP BY branch, visit_id) v JOIN hq_events e USING (branch, seq) \
         WHERE e.kind <> 'ticket.issued'",
    )
    .await;
    assert_eq!(first_not_issue, 0, "a visit began before its ticket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_mosquitto_two_ingests_share_the_load_and_a_killed_box_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), "");
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let pg = Pg::fresh("fleet_mosquitto").await;
    let share = |id: &'static str| ["--share", "hq", "--client-id", id];
    let mut a = Ingest::start(dir.path(), "a", &url, &pg.conninfo(), &share("ingest-a"));
    let mut b = Ingest::start(dir.path(), "b", &url, &pg.conninfo(), &share("ingest-b"));
    wait_for("both ingests subscribed", 30, async || {
        a.subscribed() && b.subscribed()
    })
    .await;
    let mut boxes: Vec<Daemon> = (1..=3)
        .map(|i| Daemon::start(dir.path(), &format!("T10{i}"), &url, EVERY, CUSTOMERS))
        .collect();

    // Mid-day: one box and one ingest are SIGKILLed and come back.
    tickets_at_least(&boxes[1], 15).await;
    boxes[1].kill();
    a.kill();
    boxes[1].restart();
    a.restart();

    let logs = || format!("ingest a:\n{}\ningest b:\n{}", a.log(), b.log());
    let upto = wait_complete(&boxes, &pg, CUSTOMERS as i64, 120, &logs).await;
    assert!(upto.iter().all(|u| *u > CUSTOMERS as i64), "{upto:?}");
    no_rejects_no_open_gaps(&pg).await;
    every_visit_begins_with_its_ticket(&pg).await;
    wait_for("every box online at head office", 20, async || {
        for d in &boxes {
            if state(&pg, &d.branch).await.0 != Some(true) {
                return false;
            }
        }
        true
    })
    .await;
    let (_, session) = state(&pg, "T102").await;
    assert!(
        session >= Some(2),
        "the killed box came back in a new session: {session:?}"
    );
    for d in &mut boxes {
        d.stop();
    }
    let (sa, sb) = (a.stop(), b.stop());
    let events = |s: &str| -> u64 {
        s.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(events(&sb) > 0, "the second ingest took part: {sb}");
    assert!(
        !sa.is_empty(),
        "the first ingest stopped cleanly: {}",
        a.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_nats_cluster_sharded_ingests_and_a_killed_node_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsCluster::start(dir.path());
    let pg = Pg::fresh("fleet_nats").await;
    let mut ingests = sharded_ingests(dir.path(), &nats, &pg.conninfo());
    wait_for("both ingests subscribed", 30, async || {
        ingests.iter().all(Ingest::subscribed)
    })
    .await;
    let boxes: Vec<Daemon> = (0..3)
        .map(|i| {
            Daemon::start(
                dir.path(),
                &format!("T20{i}"),
                &nats.url(i),
                EVERY,
                CUSTOMERS,
            )
        })
        .collect();

    // Mid-day: the node box T201 talks to is SIGKILLed and comes back.
    tickets_at_least(&boxes[1], 15).await;
    nats.kill(1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    nats.restart(1);

    let logs = || ingest_logs(&ingests);
    let upto = wait_complete(&boxes, &pg, CUSTOMERS as i64, 180, &logs).await;
    assert!(upto.iter().all(|u| *u > CUSTOMERS as i64), "{upto:?}");
    no_rejects_no_open_gaps(&pg).await;
    for i in &mut ingests {
        assert!(i.alive(), "{}", i.log());
    }
}
