//! The lobby queue through the real HTTP server: with 1,000 tickets waiting, eight logged-in
//! clients (one per counter, each its own keep-alive connection and session) each loop
//! issue → call-next → serve-done, so the queue stays at 1,000 waiting. Prints the median and
//! p99 of each operation and the operations per second, against the SQLite commit limit
//! of this disk measured in the same run (one row per fsynced transaction, WAL,
//! `synchronous=FULL`, the daemon's settings). Run with `./dev bench queue_http` or
//! `cargo bench -p branchd --bench queue_http`.
#![allow(clippy::print_stdout)]

mod common;

#[path = "common/lobby.rs"]
mod lobby;

use std::time::{Duration, Instant};

use common::{ms, percentile};

use branchd::app;
use branchd::config::Config;
use branchd::queue::{counters, ops};
use branchd::users::{self, Role};
use serde_json::{Value, json};

const WAITING: usize = 1_000;
const CLIENTS: usize = 8;
const ROUNDS: usize = 250;
const WARMUP_ROUNDS: usize = 20;
const PASSWORD: &str = "bench-password-1";

/// Fsynced one-row transactions per second on this disk, straight through rusqlite.
fn commit_limit(dir: &std::path::Path) -> anyhow::Result<(f64, Duration)> {
    let mut c = rusqlite::Connection::open(dir.join("limit.db"))?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")?;
    let n = 3_000;
    let mut lat = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let tx = c.transaction()?;
        tx.execute("INSERT INTO t(v) VALUES (?1)", [i.to_string()])?;
        tx.commit()?;
        lat.push(t.elapsed());
    }
    let per_s = n as f64 / started.elapsed().as_secs_f64();
    lat.sort();
    Ok((per_s, percentile(&lat, 0.99)))
}

fn config(dir: &std::path::Path) -> String {
    let mut text = format!(
        r#"
[branch]
id = "BENCH"
name = "基准支行"
data_dir = "{}"
[http]
listen = "127.0.0.1:0"
{services}"#,
        dir.display(),
        services = lobby::SERVICES,
    );
    for k in 1..=CLIENTS {
        text.push_str(&format!(
            "[[counters]]\nid = \"{k}\"\nservices = [\"personal\", \"corporate\"]\n"
        ));
    }
    text
}

/// One client at one counter: `rounds` of issue, call-next, serve-done; the latencies.
async fn client(
    c: reqwest::Client,
    base: String,
    counter: usize,
    rounds: usize,
) -> anyhow::Result<[Vec<Duration>; 3]> {
    let mut lat: [Vec<Duration>; 3] = Default::default();
    for r in 0..rounds {
        let service = if (r + counter).is_multiple_of(3) {
            "corporate"
        } else {
            "personal"
        };
        let t = Instant::now();
        let resp = c
            .post(format!("{base}/api/v1/tickets"))
            .json(&json!({"service": service}))
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 201, "issue: {}", resp.status());
        resp.bytes().await?;
        lat[0].push(t.elapsed());

        let t = Instant::now();
        let resp = c
            .post(format!("{base}/api/v1/counters/{counter}/call-next"))
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 200, "call-next: {}", resp.status());
        let called: Value = resp.json().await?;
        lat[1].push(t.elapsed());
        let number = called["number"].as_str().unwrap_or_default().to_string();

        let t = Instant::now();
        let resp = c
            .post(format!("{base}/api/v1/tickets/{number}/serve-done"))
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 200, "serve-done: {}", resp.status());
        resp.bytes().await?;
        lat[2].push(t.elapsed());
    }
    Ok(lat)
}

async fn bench() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (limit, limit_p99) = commit_limit(dir.path())?;

    let cfg = Config::parse(&config(dir.path())).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let db = cfg.db_path();
    // Staff accounts before the daemon starts, one per counter.
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let store = app::open_store(&db)?;
        let hash = users::hash_password(PASSWORD);
        for k in 1..=CLIENTS {
            let (name, hash) = (format!("teller{k}"), hash.clone());
            store.write_blocking(move |tx| {
                users::insert_user(tx, &name, Role::LobbyManager, &hash)
            })?;
        }
        store.close();
        Ok(())
    })
    .await??;
    let running = app::start(cfg).await?;
    let base = format!("http://{}", running.addr);
    let q = running.modules.queue.clone();
    for k in 1..=CLIENTS {
        let (counter, staff) = (k.to_string(), format!("teller{k}"));
        q.operate(move |tx, cfg, now| counters::open(tx, cfg, now, &counter, &staff))
            .await?;
    }
    for i in 0..WAITING {
        let req = lobby::request(i);
        q.operate(move |tx, cfg, now| ops::issue(tx, cfg, now, &req))
            .await?;
    }

    let mut clients = Vec::new();
    for k in 1..=CLIENTS {
        let c = reqwest::Client::builder()
            .cookie_store(true)
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()?;
        let r = c
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": format!("teller{k}"), "password": PASSWORD}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "login: {}", r.status());
        clients.push(c);
    }

    let run = |rounds: usize| {
        let handles: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(k, c)| tokio::spawn(client(c.clone(), base.clone(), k + 1, rounds)))
            .collect();
        async move {
            let mut all: [Vec<Duration>; 3] = Default::default();
            for h in handles {
                for (a, l) in all.iter_mut().zip(h.await??) {
                    a.extend(l);
                }
            }
            anyhow::Ok(all)
        }
    };
    run(WARMUP_ROUNDS).await?;
    let started = Instant::now();
    let mut lat = run(ROUNDS).await?;
    let wall = started.elapsed();
    let ops: usize = lat.iter().map(Vec::len).sum();
    let per_s = ops as f64 / wall.as_secs_f64();
    let held = q.snapshot().await?.waiting.len();

    println!(
        "queue over HTTP: {held} tickets waiting, {CLIENTS} logged-in clients (one per counter, \
         keep-alive), each looping issue → call-next → serve-done"
    );
    println!(
        "{:<28} {:>8} {:>12} {:>12}",
        "operation", "requests", "median ms", "p99 ms"
    );
    let mut all = Vec::new();
    for (name, l) in ["issue", "call-next", "serve-done"]
        .iter()
        .zip(lat.iter_mut())
    {
        l.sort();
        println!(
            "{:<28} {:>8} {:>12} {:>12}",
            name,
            l.len(),
            ms(percentile(l, 0.5)),
            ms(percentile(l, 0.99))
        );
        all.extend_from_slice(l);
    }
    all.sort();
    println!(
        "{:<28} {:>8} {:>12} {:>12}",
        "all three",
        all.len(),
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99))
    );
    println!();
    println!("{:<28} {:>12} {:>12}", "throughput", "per second", "ratio");
    println!(
        "{:<28} {:>12.0} {:>11.3}x",
        "queue operations (HTTP)",
        per_s,
        per_s / limit
    );
    println!(
        "{:<28} {:>12.0} {:>11.3}x",
        "reference: commit limit", limit, 1.0
    );
    println!(
        "reference: one-row fsynced SQLite transactions, one writer, this disk (p99 {} ms)",
        ms(limit_p99)
    );
    running.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    common::run(bench())
}
