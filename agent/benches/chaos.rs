//! The chaos gates, longer than in the tests: the loaded daemon (`branchd run` with
//! simulated STMs, printer and ID reader, staff over HTTP, head office on a Mosquitto)
//! SIGKILLed 100 times at random moments, then cut off from its broker for 10 minutes.
//! Prints one table; fails on any loss, gap, duplicate or integrity error, and on a PAD
//! request during the outage not answered 2xx within 1 s.
//!
//! `./dev bench chaos`; `CHAOS_KILLS` (default 100) and `CHAOS_OUTAGE_S` (default 600).

#![allow(clippy::print_stdout)]

#[path = "../tests/it/chaos_harness.rs"]
mod chaos_harness;

use std::time::Duration;

use chaos_harness::{broker_down_run, sigkill_run};

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const PAD_BOUND: Duration = Duration::from_secs(1);

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let kills: usize = env_or("CHAOS_KILLS", 100);
    let outage = Duration::from_secs(env_or("CHAOS_OUTAGE_S", 600));
    println!(
        "chaos: {kills} SIGKILLs, then the broker down for {} s",
        outage.as_secs()
    );
    let k = sigkill_run(kills).await;
    println!(
        "random SIGKILL: done in {:.0} s ({} of the kills 0.9-1.6 s after a spawn, not \
         waiting for ready; {} back-off notices for {} unclean starts)",
        k.wall.as_secs_f64(),
        k.during_start,
        k.backoff_notices,
        k.unclean_starts
    );
    let o = broker_down_run(outage).await;
    println!(
        "broker down: done in {:.0} s; events left unsent by the final clean stops (sent on \
         a start after): {} and {}",
        o.wall.as_secs_f64(),
        k.unsent_at_stop,
        o.unsent_at_stop
    );
    println!();
    println!(
        "| gate | kills | acknowledged changes checked | STM events checked | events seen by head office | redelivered | gaps | duplicates | integrity | restart-to-ready median s (max) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, a, restart) in [
        (
            "random SIGKILL",
            &k.audit,
            format!(
                "{:.2} ({:.2})",
                k.restart_median.as_secs_f64(),
                k.restart_max.as_secs_f64()
            ),
        ),
        ("broker down", &o.audit, "-".to_string()),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {restart} |",
            if name == "broker down" { 0 } else { k.kills },
            a.changes_checked,
            a.stm_checked,
            a.hq_events,
            a.redelivered,
            a.gaps,
            a.duplicates,
            a.integrity
        );
    }
    println!();
    println!(
        "| outage s | events during the outage | PAD requests during it | not 2xx | max HTTP latency ms (p99) | outside the outage: max ms (p99) | first event at head office after the broker returned s | drain s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {:.0} | {} | {} | {} | {:.0} ({:.0}) | {:.0} ({:.0}) | {:.1} | {:.1} |",
        o.outage.as_secs_f64(),
        o.events_during,
        o.requests_during,
        o.failed_during.len(),
        ms(o.max_latency_during),
        ms(o.p99_during),
        ms(o.max_latency_outside),
        ms(o.p99_outside),
        o.reconnect.as_secs_f64(),
        o.drain.as_secs_f64()
    );
    k.audit.assert_clean();
    o.audit.assert_clean();
    assert_eq!(
        k.backoff_notices, k.kills,
        "back-off notices after the kills"
    );
    assert!(
        o.failed_during.is_empty(),
        "PAD requests failed during the outage"
    );
    assert!(
        o.max_latency_during < PAD_BOUND,
        "a PAD request took {:?} during the outage: {:?}",
        o.max_latency_during,
        o.slowest_during
    );
    println!("\nno acknowledged change lost or doubled; head office gap-free; integrity ok");
}
