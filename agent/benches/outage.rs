//! What one day without head office costs on disk at a busy branch, measured on the real
//! daemon: with no broker, every event stays in the outbox (the contract drops none), so a
//! day's growth of the database is what an outage day costs. The day is driven through the
//! daemon's own paths — tickets issued, called and served at three counters, and STM
//! transactions sent by simulated STMs over pseudo-terminals (STM-Link, each event ACKed
//! once committed) — and the database's pages in use are measured before and after.
//! Then: how many days of outage a 16 GB box survives.
//!
//! `./dev bench outage`; `OUTAGE_TICKETS` (default 1,500) and `OUTAGE_TXNS` (STM
//! transactions per STM, default 400; four STMs) set the day.
#![allow(clippy::print_stdout)]

mod common;
#[path = "common/lobby.rs"]
mod lobby;

use std::time::{Duration, Instant};

use branchd::app;
use branchd::config::Config;
use branchd::queue::{IssueRequest, Source, ops};
use branchd::store::StoreError;
use branchd_drivers::stm::TxnType;
use branchd_drivers::stm::sim::{StmSim, StmSimConfig};

const STMS: usize = 4;
/// The box's eMMC.
const DISK: u64 = 16_000_000_000;
/// Debian, the package and the models on the same disk (measured: the models are the bulk).
const SYSTEM: u64 = 3_000_000_000;

fn by_kind(c: &rusqlite::Connection) -> Result<Vec<(String, i64, i64)>, StoreError> {
    let mut s = c.prepare(
        "SELECT kind, count(*), sum(length(data) + length(id) + length(ts) + length(kind) + 16) \
         FROM events GROUP BY kind ORDER BY 3 DESC",
    )?;
    let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

async fn bench() -> anyhow::Result<()> {
    let tickets: usize = common::env_or("OUTAGE_TICKETS", 1_500);
    let txns: usize = common::env_or("OUTAGE_TXNS", 400);
    let dir = tempfile::tempdir()?;
    let mut sims = Vec::new();
    let mut devices = String::new();
    for i in 0..STMS {
        let id = format!("STM-0{}", i + 1);
        let link = dir.path().join(&id);
        sims.push(StmSim::spawn(StmSimConfig {
            link_path: Some(link.clone()),
            seed: i as u64 + 1,
            ..StmSimConfig::new(&id)
        })?);
        devices.push_str(&format!(
            "[[devices]]\nid = \"{id}\"\nkind = \"stm\"\npath = \"{}\"\n",
            link.display()
        ));
    }
    let text = format!(
        r#"
[branch]
id = "BENCH"
name = "基准支行"
data_dir = "{}"
[http]
listen = "127.0.0.1:0"
{devices}
[[services]]
code = "personal"
prefix = "A"
name = "个人业务"
[[services]]
code = "corporate"
prefix = "B"
name = "对公业务"
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
        dir.path().join("data").display()
    );
    let cfg = Config::parse(&text).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let running = app::start(cfg).await?;
    let store = running.core.store.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let online: i64 = store
            .read(|c| {
                Ok::<_, StoreError>(c.query_row(
                    "SELECT count(DISTINCT json_extract(data, '$.device_id')) FROM events \
                     WHERE kind = 'device.online'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await?;
        if online as usize == STMS {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the STMs did not come online");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Before the day: the box's start-up (schemas, devices online).
    let before = store.read(branchd::storage::data_bytes).await?;
    let events_before: i64 = store
        .read(|c| {
            Ok::<_, StoreError>(c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?)
        })
        .await?;
    let started = Instant::now();

    // The lobby: tickets issued, called and served.
    let q = running.modules.queue.clone();
    lobby::open_counters(&store, &q).await?;
    for i in 0..tickets {
        let service = if i % 3 == 0 { "corporate" } else { "personal" };
        q.issue(IssueRequest {
            service: service.into(),
            customer_id: None,
            customer_level: (i % 12 == 0).then(|| "vip1".to_string()),
            appointment_id: None,
            source: Source::Pad,
        })
        .await?;
        let counter = ["1", "2", "3"][i % 3];
        if let Ok(t) = q
            .operate(move |tx, cfg, now| ops::call_next(tx, cfg, now, counter))
            .await
        {
            let n = t.number;
            q.operate(move |tx, cfg, now| ops::serve_done(tx, cfg, now, &n))
                .await?;
        }
    }
    // The STMs: transactions, each event ACKed by the daemon once committed.
    let kinds = [
        TxnType::Withdrawal,
        TxnType::Deposit,
        TxnType::Transfer,
        TxnType::Statement,
        TxnType::IssueCard,
    ];
    let mut sent: Vec<Vec<String>> = vec![Vec::new(); STMS];
    for n in 0..txns {
        for (i, sim) in sims.iter().enumerate() {
            sent[i].push(sim.simple_transaction(kinds[n % kinds.len()], 100 * (1 + n as i64 % 50)));
        }
        if n % 20 == 19 {
            // Keep the devices' queues short, as a real day's pace would.
            tokio::task::block_in_place(|| {
                for (i, sim) in sims.iter().enumerate() {
                    let last = sent[i].last().cloned().unwrap_or_default();
                    sim.wait_for(Duration::from_secs(60), |r| r.acked_events.contains(&last));
                }
            });
        }
    }
    let all_acked = tokio::task::block_in_place(|| {
        sims.iter().enumerate().all(|(i, sim)| {
            sim.wait_for(Duration::from_secs(120), |r| {
                sent[i].iter().all(|id| r.acked_events.contains(id))
            })
        })
    });
    anyhow::ensure!(all_acked, "not every STM transaction was acknowledged");
    let took = started.elapsed();
    // Let the durable consumers (statistics, sales ranking) catch up, as they would in a day.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = store.read(branchd::storage::data_bytes).await?;
    let events_after: i64 = store
        .read(|c| {
            Ok::<_, StoreError>(c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?)
        })
        .await?;
    let kinds = store.read(by_kind).await?;
    running.shutdown(Duration::from_secs(10)).await;

    let day = after.saturating_sub(before);
    let usable = DISK - SYSTEM - 512 * 1_048_576 - 32 * 1_048_576;
    println!("\n## One day without head office at a busy branch\n");
    println!(
        "{tickets} tickets (issued, called, served), {} STM transactions on {STMS} STMs; driven in {:.1} s\n",
        txns * STMS,
        took.as_secs_f64()
    );
    println!("| event kind | events | bytes of event rows |");
    println!("|---|---:|---:|");
    for (kind, n, bytes) in kinds.iter().take(12) {
        println!("| {kind} | {n} | {bytes} |");
    }
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| events of the day | {} |", events_after - events_before);
    println!(
        "| database growth (pages in use, indexes and state tables included) | {:.1} MB |",
        day as f64 / 1e6
    );
    println!(
        "| per event | {:.0} bytes |",
        day as f64 / (events_after - events_before).max(1) as f64
    );
    println!(
        "| usable on a 16 GB box (less {:.0} GB system and models, min_free, reserve) | {:.1} GB |",
        SYSTEM as f64 / 1e9,
        usable as f64 / 1e9
    );
    println!(
        "| days of head-office outage it survives | {:.0} |",
        usable as f64 / day.max(1) as f64
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    common::run(bench())
}
