//! The lobby queue under load: with 1,000 tickets waiting, the latency (median, p99) of
//! issuing a ticket and printing it on a simulated ESC/POS printer (a PTY), of issuing
//! without paper, and of call-next; and queue operations per second (issue, call-next,
//! serve-done), for one caller and for three (one per counter). Run with `./dev bench` or
//! `cargo bench -p branchd --bench queue`.
#![allow(clippy::print_stdout)]

mod common;

#[path = "common/lobby.rs"]
mod lobby;

use std::time::{Duration, Instant};

use common::{ms, percentile};

use branchd::app;
use branchd::config::Config;
use branchd::queue::{Queue, ops};
use branchd_drivers::printer::TextEncoding;
use branchd_drivers::printer::sim::PrinterSim;
use lobby::request;

const WAITING: usize = 1_000;
const SAMPLES: usize = 200;

/// Issue without the printer (one transaction with its event).
async fn issue_unprinted(q: &Queue, i: usize) {
    let req = request(i);
    q.operate(move |tx, cfg, now| ops::issue(tx, cfg, now, &req))
        .await
        .expect("issue");
}

async fn call_and_serve(q: &Queue, counter: &'static str) {
    let t = q
        .operate(move |tx, cfg, now| ops::call_next(tx, cfg, now, counter))
        .await
        .expect("call-next");
    let n = t.number;
    q.operate(move |tx, cfg, now| ops::serve_done(tx, cfg, now, &n))
        .await
        .expect("serve-done");
}

struct Row {
    case: &'static str,
    n: usize,
    median: Duration,
    p99: Duration,
}

fn row(case: &'static str, mut lat: Vec<Duration>) -> Row {
    lat.sort();
    Row {
        case,
        n: lat.len(),
        median: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
    }
}

async fn waiting(q: &Queue) -> usize {
    q.snapshot().await.expect("queue").waiting.len()
}

async fn bench() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let sim = PrinterSim::spawn(TextEncoding::Gb18030, None)?;
    let text = format!(
        r#"
[branch]
id = "BENCH"
name = "基准支行"
data_dir = "{}"
[http]
listen = "127.0.0.1:0"
[[devices]]
id = "PRN-01"
kind = "printer"
path = "{}"
[queue]
printer_poll_ms = 60000
{services}
[[counters]]
id = "1"
services = ["personal"]
[[counters]]
id = "2"
services = ["personal", "corporate"]
[[counters]]
id = "3"
services = ["corporate"]
"#,
        dir.path().display(),
        sim.path().display(),
        services = lobby::SERVICES,
    );
    let cfg = Config::parse(&text).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let running = app::start(cfg).await?;
    let app = running.modules.queue.clone();
    lobby::open_counters(&running.core.store, &app).await?;
    let mut i = 0;
    while waiting(&app).await < WAITING {
        issue_unprinted(&app, i).await;
        i += 1;
    }

    let mut rows = Vec::new();
    // Issue + print, queue held at 1,000 waiting by serving one for each issued.
    let mut lat = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        let issued = app.issue(request(i)).await?;
        lat.push(t.elapsed());
        anyhow::ensure!(issued.printed, "the simulated printer did not print");
        i += 1;
        call_and_serve(&app, "2").await;
    }
    rows.push(row("issue + print (PTY printer)", lat));

    let mut lat = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        issue_unprinted(&app, i).await;
        lat.push(t.elapsed());
        i += 1;
        call_and_serve(&app, "2").await;
    }
    rows.push(row("issue (no paper)", lat));

    let mut lat = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        app.operate(|tx, cfg, now| ops::call_next(tx, cfg, now, "2"))
            .await?;
        lat.push(t.elapsed());
        issue_unprinted(&app, i).await;
        i += 1;
    }
    rows.push(row("call-next", lat));

    let mut lat = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        waiting(&app).await;
        lat.push(t.elapsed());
    }
    rows.push(row("GET queue snapshot", lat));
    let held = waiting(&app).await;

    // Throughput of operations (issue, call-next, serve-done), one caller and four.
    let mut tput = Vec::new();
    for callers in [1usize, 3] {
        let rounds = 150 / callers;
        let started = Instant::now();
        let mut handles = Vec::new();
        for k in 0..callers {
            let app = app.clone();
            let counter = ["1", "2", "3"][k];
            handles.push(tokio::spawn(async move {
                for r in 0..rounds {
                    issue_unprinted(&app, 7 * r + k).await;
                    call_and_serve(&app, counter).await;
                }
            }));
        }
        for h in handles {
            h.await?;
        }
        let ops = callers * rounds * 3;
        tput.push((callers, ops, ops as f64 / started.elapsed().as_secs_f64()));
    }

    println!(
        "queue benchmark: {held} tickets waiting (synchronous=FULL; operations queued together \
         share one fsync)"
    );
    println!(
        "{:<30} {:>7} {:>12} {:>12} {:>14}",
        "operation", "samples", "median ms", "p99 ms", "median ratio"
    );
    let base = rows[1].median.as_secs_f64();
    for r in &rows {
        println!(
            "{:<30} {:>7} {:>12} {:>12} {:>13.2}x",
            r.case,
            r.n,
            ms(r.median),
            ms(r.p99),
            r.median.as_secs_f64() / base
        );
    }
    println!("ratio: against `issue (no paper)`");
    println!();
    println!("{:<30} {:>7} {:>12}", "throughput", "ops", "ops/s");
    for (callers, ops, per_s) in &tput {
        println!(
            "{:<30} {:>7} {:>12.0}",
            format!("issue+call+serve, {callers} caller(s)"),
            ops,
            per_s
        );
    }
    println!(
        "printer: {} tickets printed, {} lost",
        sim.record().tickets.len(),
        sim.record().lost_tickets
    );
    running.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    common::run(bench())
}
