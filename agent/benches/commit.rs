//! Committing events through the store, with `synchronous=FULL` (one fsync per commit):
//! latency per commit (median, p99) and commits per second, for a single writer and for
//! concurrent callers, printed as a table. Run with `./dev bench` or
//! `cargo bench -p branchd --bench commit`.
#![allow(clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use common::{ms, percentile};

use branchd::store::{Store, StoreError};

struct Row {
    case: String,
    commits: usize,
    events_per_commit: usize,
    median: Duration,
    p99: Duration,
    per_s: f64,
}

async fn run(store: &Store, callers: usize, commits_each: usize, events: usize) -> Row {
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..callers {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(commits_each);
            for i in 0..commits_each {
                let t = Instant::now();
                store
                    .write(move |tx| -> Result<(), StoreError> {
                        tx.conn().execute(
                            "INSERT INTO audit(ts, action, target) VALUES ('t', 'bench', ?1)",
                            [i.to_string()],
                        )?;
                        for _ in 0..events {
                            tx.emit(
                                "bench.commit",
                                serde_json::json!({"i": i, "service": "personal"}),
                            )?;
                        }
                        Ok(())
                    })
                    .await
                    .unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let wall = started.elapsed();
    all.sort();
    Row {
        case: format!("{callers} caller(s)"),
        commits: all.len(),
        events_per_commit: events,
        median: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        per_s: all.len() as f64 / wall.as_secs_f64(),
    }
}

fn main() {
    let commits: usize = std::env::var("BENCH_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().unwrap();
    let store = branchd::app::open_store(&dir.path().join("bench.db")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows = rt.block_on(async {
        vec![
            run(&store, 1, commits, 1).await,
            run(&store, 1, commits / 4, 10).await,
            run(&store, 4, commits / 4, 1).await,
            run(&store, 16, commits / 16, 1).await,
        ]
    });
    store.close();
    println!("store commit benchmark (synchronous=FULL, WAL, one writer thread)");
    println!();
    println!("| case | commits | events/commit | median ms | p99 ms | commits/s | events/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} |",
            r.case,
            r.commits,
            r.events_per_commit,
            ms(r.median),
            ms(r.p99),
            r.per_s,
            r.per_s * r.events_per_commit as f64
        );
    }
}
