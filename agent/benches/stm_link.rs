//! STM-Link throughput and latency between the box's link and a simulated STM on a
//! pseudo-terminal: events per second delivered (stop-and-wait, each acknowledged) against
//! what the 115200-baud line rate allows for the same frames, and the round-trip time of a
//! command (COMMAND → ACK → RESULT), median and p99.
//!
//! A PTY does not pace bytes at the configured baud rate, so the measured figures are the
//! protocol and software ceiling; the line-rate columns give the ceiling a real 115200 8N1
//! cable imposes (10 bits per byte on the wire).
//!
//! The daemon acknowledges an event only after committing it to SQLite (synchronous=FULL);
//! the second rate measures that path: each event is written with its outbox event before
//! its ACK goes out.
//!
//! `cargo bench -p branchd --bench stm_link`; `BRANCHD_BENCH_EVENTS` (default 2000) and
//! `BRANCHD_BENCH_COMMANDS` (default 300) set the sample sizes, `BRANCHD_BENCH_ROUNDS`
//! (default 3) the rounds.

#![allow(clippy::print_stdout)]

mod common;

use std::time::{Duration, Instant};

use common::{env_or, median};

use branchd::store::Store;
use branchd_drivers::stm::message::Message;
use branchd_drivers::stm::{
    Event, EventBody, LinkEvent, LinkOptions, StmLink, StmSim, StmSimConfig, Transaction, TxnType,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const BAUD: f64 = 115_200.0;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Bytes on the wire of one transaction EVENT frame and of an ACK (COBS-framed).
fn frame_sizes() -> (usize, usize) {
    let event = Message::Event(Event {
        event_id: "STM-01-19a3c0de000-1000".into(),
        ts: "2026-11-23T10:00:00+08:00".into(),
        body: EventBody::Transaction(Transaction {
            txn_id: "T19a3c0de0001000".into(),
            txn_type: TxnType::Deposit,
            amount: 5000,
            ok: true,
            duration_s: 90,
            product: None,
        }),
    });
    let wire = |m: &Message| {
        m.to_packet(1)
            .and_then(|p| p.encode())
            .map(|w| w.len())
            .unwrap_or(0)
    };
    (wire(&event), wire(&Message::Ack))
}

/// Bytes on the wire of a command without data and its RESULT, both acknowledged.
fn command_exchange_bytes() -> usize {
    let cmd = Message::Command(branchd_drivers::stm::Command {
        cmd_id: "c19a3c0de000-100".into(),
        op: "resume".into(),
        args: json!({}),
    });
    let result = Message::Result(branchd_drivers::stm::CommandResult {
        cmd_id: "c19a3c0de000-100".into(),
        ok: true,
        error: None,
        data: None,
    });
    let wire = |m: &Message| {
        m.to_packet(1)
            .and_then(|p| p.encode())
            .map(|w| w.len())
            .unwrap_or(0)
    };
    wire(&cmd) + wire(&result) + 2 * wire(&Message::Ack)
}

async fn wait_online(events: &mut tokio::sync::mpsc::Receiver<LinkEvent>) {
    loop {
        match events.recv().await {
            Some(LinkEvent::Status(s)) => {
                s.keep();
                return;
            }
            Some(_) => {}
            None => panic!("link stopped"),
        }
    }
}

/// Events per second delivered from the simulator to the box; with `store`, each is
/// committed before it is acknowledged (the daemon's way).
async fn events_per_second(n: usize, seed: u64, store: Option<&Store>) -> f64 {
    let sim = StmSim::spawn(StmSimConfig {
        seed,
        ..StmSimConfig::new("STM-01")
    })
    .expect("simulator");
    let cancel = CancellationToken::new();
    let options = LinkOptions {
        ack_after_handling: store.is_some(),
        ..LinkOptions::default()
    };
    let (_handle, mut events, task) = StmLink::spawn(sim.path(), options, cancel.clone());
    wait_online(&mut events).await;
    let t0 = Instant::now();
    for _ in 0..n {
        sim.simple_transaction(TxnType::Transfer, 0);
    }
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(Duration::from_secs(30), events.recv()).await {
            Ok(Some(LinkEvent::Event(e))) => {
                let (event, receipt) = e.into_parts();
                if let Some(store) = store {
                    store
                        .write(move |tx| tx.emit("device.transaction", &event).map(|_| ()))
                        .await
                        .expect("commit");
                }
                receipt.kept();
                got += 1;
            }
            Ok(Some(LinkEvent::Status(s))) => {
                s.keep();
            }
            Ok(Some(_)) => {}
            _ => panic!("only {got} of {n} events arrived"),
        }
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    cancel.cancel();
    let _ = task.await;
    rate
}

/// Command round trips in milliseconds, sorted.
async fn round_trips(n: usize, op: &str, seed: u64) -> Vec<f64> {
    let sim = StmSim::spawn(StmSimConfig {
        seed,
        ..StmSimConfig::new("STM-01")
    })
    .expect("simulator");
    let cancel = CancellationToken::new();
    let (handle, mut events, task) =
        StmLink::spawn(sim.path(), LinkOptions::default(), cancel.clone());
    wait_online(&mut events).await;
    // Keep the event channel drained (STATUS follows state-changing ops).
    let drain = tokio::spawn(async move { while events.recv().await.is_some() {} });
    let mut rtts = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let r = handle
            .send_command(op, json!({}), Duration::from_secs(5))
            .await
            .expect("a result");
        assert!(!r.cmd_id.is_empty());
        rtts.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    cancel.cancel();
    let _ = task.await;
    drain.abort();
    rtts.sort_by(|a, b| a.total_cmp(b));
    rtts
}

fn main() {
    let n_events = env_or("BRANCHD_BENCH_EVENTS", 2000usize);
    let n_cmds = env_or("BRANCHD_BENCH_COMMANDS", 300usize);
    let rounds = env_or("BRANCHD_BENCH_ROUNDS", 3usize).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let (event_bytes, ack_bytes) = frame_sizes();
    let bytes_per_s = BAUD / 10.0;
    // Streaming ceiling: frames back to back. Stop-and-wait ceiling: each event waits for
    // its ACK on the return wire before the next is sent (full duplex, zero processing).
    let line_stream = bytes_per_s / event_bytes as f64;
    let line_saw = bytes_per_s / (event_bytes + ack_bytes) as f64;

    let mut rates = Vec::new();
    for r in 0..rounds {
        rates.push(rt.block_on(events_per_second(n_events, 100 + r as u64, None)));
    }
    let rate = median(rates.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = branchd::app::open_store(&dir.path().join("bench.db")).expect("store");
    let mut committed = Vec::new();
    for r in 0..rounds {
        committed.push(rt.block_on(events_per_second(n_events, 300 + r as u64, Some(&store))));
    }
    let committed_rate = median(committed.clone());

    println!("STM-Link over a PTY, {rounds} round(s)");
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| event frame on the wire (bytes) | {event_bytes} |");
    println!("| ACK frame on the wire (bytes) | {ack_bytes} |");
    println!("| line rate 115200 8N1 (bytes/s) | {bytes_per_s:.0} |");
    println!("| line-rate ceiling, frames back to back (events/s) | {line_stream:.1} |");
    println!("| line-rate ceiling, stop-and-wait incl. ACK (events/s) | {line_saw:.1} |");
    println!("| measured over the PTY, median of {rounds} × {n_events} (events/s) | {rate:.1} |");
    println!(
        "| measured / stop-and-wait line ceiling | {:.2}× |",
        rate / line_saw
    );
    let list = |v: &[f64]| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("| rounds (events/s) | {} |", list(&rates));
    println!("| ACK after SQLite commit, median (events/s) | {committed_rate:.1} |");
    println!(
        "| ACK after commit / ACK on arrival | {:.2}× |",
        committed_rate / rate
    );
    println!(
        "| ACK after commit / stop-and-wait line ceiling | {:.2}× |",
        committed_rate / line_saw
    );
    println!(
        "| rounds, ACK after commit (events/s) | {} |",
        list(&committed)
    );
    println!();
    let exchange = command_exchange_bytes();
    println!(
        "line-rate floor of a command without data at 115200 baud: {exchange} bytes, {:.1} ms",
        exchange as f64 / bytes_per_s * 1000.0
    );
    println!();
    println!("| command | n | median ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (i, op) in ["get_status", "resume", "no_such_op"]
        .into_iter()
        .enumerate()
    {
        let rtts = rt.block_on(round_trips(n_cmds, op, 200 + i as u64));
        println!(
            "| {op} | {} | {:.2} | {:.2} | {:.2} |",
            rtts.len(),
            percentile(&rtts, 0.5),
            percentile(&rtts, 0.99),
            rtts.last().copied().unwrap_or(0.0)
        );
    }
}
