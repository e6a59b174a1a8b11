//! A fleet of branch boxes against head office on a 3-node NATS cluster (JetStream, MQTT),
//! with `branchd hq ingest` writing into the local PostgreSQL. The reference is one box
//! alone on the same cluster, measured in the same run. Mid-run one broker node is SIGKILLed
//! (back after 10 s) and one box is SIGKILLed (back after 5 s); every branch's events must
//! arrive in PostgreSQL gap-free.
//!
//! `./dev bench fleet`; `FLEET_DAEMONS` (default 50) boxes, `FLEET_EVERY_S` (default 1.0)
//! seconds between two customers at each box, `FLEET_CUSTOMERS` (default 120) per box.

#![allow(clippy::print_stdout)]

mod common;

#[path = "../tests/it/fleet_harness.rs"]
mod fleet_harness;

use std::time::{Duration, Instant};

use common::{env_or, median};
use fleet_harness::{Daemon, Ingest, NatsCluster, Pg, ingest_logs, sharded_ingests, wait_complete};

struct Row {
    run: String,
    daemons: usize,
    events: i64,
    events_per_s: f64,
    rss_mb: f64,
    cpu_pct: f64,
    p50_ms: f64,
    p99_ms: f64,
    duplicates: i64,
    wall_s: f64,
}

async fn run(name: &str, n: usize, every: f64, customers: u64, chaos: bool) -> Row {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsCluster::start(dir.path());
    let pg = Pg::fresh("fleet_bench").await;
    let mut ingests = sharded_ingests(dir.path(), &nats, &pg.conninfo());
    while !ingests.iter().all(Ingest::subscribed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let mut boxes: Vec<Daemon> = (0..n)
        .map(|i| {
            Daemon::start(
                dir.path(),
                &format!("F{i:03}"),
                &nats.url(i % 3),
                every,
                customers,
            )
        })
        .collect();
    let day = Duration::from_secs_f64(every * customers as f64);
    let mut usage = Vec::new();
    if chaos {
        tokio::time::sleep(day / 3).await;
        println!("fleet: SIGKILL broker node 1 (back in 10 s) and box F000 (back in 5 s)");
        nats.kill(1);
        boxes[0].kill();
        tokio::time::sleep(Duration::from_secs(5)).await;
        boxes[0].restart();
        tokio::time::sleep(Duration::from_secs(5)).await;
        nats.restart(1);
    }
    // Usage near the end of the day: CPU over the run so far, RSS now.
    let until_sample = (started + day.mul_f64(0.9)).saturating_duration_since(Instant::now());
    tokio::time::sleep(until_sample).await;
    let elapsed = started.elapsed().as_secs_f64();
    for d in &boxes[1..] {
        if let Some(u) = d.usage() {
            usage.push(u);
        }
    }
    if n == 1 {
        usage.extend(boxes[0].usage());
    }
    let logs = || ingest_logs(&ingests);
    let upto = wait_complete(&boxes, &pg, customers as i64, 600, &logs).await;
    let wall = started.elapsed().as_secs_f64();
    let branches: Vec<String> = boxes.iter().map(|d| d.branch.clone()).collect();
    let (open_gaps, rejected) = pg.open_gaps_and_rejected().await;
    assert_eq!(
        (open_gaps, rejected),
        (0, 0),
        "open gaps, rejected messages"
    );
    let c = pg.client().await;
    let r = c
        .query_one(
            "SELECT count(*), \
               (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - ts)) * 1000)::float8, \
               (percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - ts)) * 1000)::float8, \
               (extract(epoch FROM max(received_at) - min(received_at)))::float8 \
             FROM hq_events WHERE branch = ANY($1)",
            &[&branches],
        )
        .await
        .unwrap();
    let (events, p50, p99, span): (i64, f64, f64, f64) = (r.get(0), r.get(1), r.get(2), r.get(3));
    let duplicates = pg
        .scalar("SELECT coalesce(sum(duplicates), 0)::int8 FROM hq_branches")
        .await;
    let expected: i64 = upto.iter().sum();
    assert!(
        events >= expected,
        "{events} stored, {expected} expected at least"
    );
    for d in &mut boxes {
        d.stop();
    }
    for i in &mut ingests {
        i.stop();
    }
    Row {
        run: name.to_string(),
        daemons: n,
        events,
        events_per_s: events as f64 / span.max(1e-3),
        rss_mb: median(usage.iter().map(|u| u.1 as f64 / 1e6).collect()),
        cpu_pct: median(usage.iter().map(|u| u.0 / elapsed * 100.0).collect()),
        p50_ms: p50,
        p99_ms: p99,
        duplicates,
        wall_s: wall,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = env_or("FLEET_DAEMONS", 50);
    let every: f64 = env_or("FLEET_EVERY_S", 1.0);
    let customers: u64 = env_or("FLEET_CUSTOMERS", 120);
    println!("fleet: {n} boxes, a customer every {every} s, {customers} customers each");
    let reference = run("reference: 1 box", 1, every, customers, false).await;
    let fleet = run(
        &format!("fleet: {n} boxes, node + box killed"),
        n,
        every,
        customers,
        true,
    )
    .await;
    println!();
    println!(
        "| run | boxes | events | events/s | RSS per box MB (median) | CPU per box % (median) | commit→PostgreSQL p50 ms | p99 ms | duplicates | wall s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in [&reference, &fleet] {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {} | {:.0} |",
            r.run,
            r.daemons,
            r.events,
            r.events_per_s,
            r.rss_mb,
            r.cpu_pct,
            r.p50_ms,
            r.p99_ms,
            r.duplicates,
            r.wall_s
        );
    }
    println!(
        "\nratios fleet/reference: events/s {:.1}×, RSS per box {:.2}×, CPU per box {:.2}×, p50 {:.2}×, p99 {:.2}×",
        fleet.events_per_s / reference.events_per_s,
        fleet.rss_mb / reference.rss_mb,
        fleet.cpu_pct / reference.cpu_pct,
        fleet.p50_ms / reference.p50_ms,
        fleet.p99_ms / reference.p99_ms
    );
    println!(
        "every branch's events arrived in PostgreSQL gap-free (no open gap, no rejected message)"
    );
}
