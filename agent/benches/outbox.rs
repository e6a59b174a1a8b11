//! Outbox drain rate to a local Mosquitto (QoS 1, events marked acknowledged on PUBACK)
//! against a bare rumqttc publish loop without storage, in the same run; and the RSS of
//! the process while it drains the backlog.
//!
//! `cargo bench -p branchd --bench outbox`; `BRANCHD_BENCH_EVENTS` (default 1000000) sets
//! the backlog, `BRANCHD_BENCH_ROUNDS` (default 3) the rounds per side.

#![allow(clippy::print_stdout)]

mod common;

use std::process::{Child, Command, Stdio};

use common::{env_or, median};
use std::time::{Duration, Instant};

use branchd::config::Config;
use branchd::store::StoreError;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::json;

const INFLIGHT: u16 = 100;

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn payload(seq: u64) -> String {
    json!({"v":1,"seq":seq,"id":ulid::Ulid::new().to_string(),"ts":"2026-01-01T00:00:00.000Z",
           "branch":"B001","kind":"bench.event","data":{"i":seq,"ticket":"A001","counter":"3"}})
    .to_string()
}

async fn bare(port: u16, n: usize) -> f64 {
    let mut o = MqttOptions::new(format!("bare-{}", ulid::Ulid::new()), "127.0.0.1", port);
    o.set_inflight(INFLIGHT)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = AsyncClient::new(o, INFLIGHT as usize);
    let started = Instant::now();
    let publisher = tokio::spawn(async move {
        for i in 0..n as u64 {
            client
                .publish(
                    "bench/bare/events/bench.event",
                    QoS::AtLeastOnce,
                    false,
                    payload(i + 1),
                )
                .await
                .unwrap();
        }
        client
    });
    let mut acked = 0;
    while acked < n {
        if let Event::Incoming(Incoming::PubAck(_)) = el.poll().await.expect("bare link") {
            acked += 1;
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let _ = publisher.await;
    rate
}

fn rss_mb() -> f64 {
    branchd::sync::link::rss_bytes() as f64 / (1 << 20) as f64
}

async fn outbox(port: u16, n: usize) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[branch]\nid = \"B001\"\nname = \"bench\"\ndata_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nmax_inflight = {INFLIGHT}\ntelemetry_interval_s = 3600\n\
         outbox_high_water = {}\n",
        dir.path().display(),
        n * 2
    );
    let cfg = Config::parse(&text).unwrap();
    let db = cfg.db_path();
    let commit = Instant::now();
    tokio::task::spawn_blocking(move || {
        let store = branchd::app::open_store(&db).unwrap();
        for chunk in 0..n.div_ceil(1000) {
            let k = 1000.min(n - chunk * 1000);
            store
                .write_blocking(move |tx| -> Result<(), StoreError> {
                    for i in 0..k {
                        tx.emit(
                            "bench.event",
                            json!({"i": i, "ticket": "A001", "counter": "3"}),
                        )?;
                    }
                    Ok(())
                })
                .unwrap();
        }
        store.close();
    })
    .await
    .unwrap();
    let commit_s = commit.elapsed().as_secs_f64();
    let rss_before = rss_mb();
    let started = Instant::now();
    let running = branchd::app::start(cfg).await.unwrap();
    let store = running.core.store.clone();
    let mut peak = rss_before;
    loop {
        // Whether any event is left, off the partial index (a count of a long backlog
        // every 50 ms would take CPU from the drain it measures).
        let left = store
            .read(|c| branchd::store::unacked_after(c, 0, 1))
            .await
            .unwrap();
        peak = peak.max(rss_mb());
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    running.shutdown(Duration::from_secs(5)).await;
    println!(
        "  outbox round: {n} events committed in {commit_s:.1}s, drained at {rate:.0}/s, RSS {rss_before:.1} → peak {peak:.1} MB"
    );
    (rate, rss_before, peak)
}

fn main() {
    let n = env_or("BRANCHD_BENCH_EVENTS", 1_000_000usize);
    let rounds = env_or("BRANCHD_BENCH_ROUNDS", 3usize).max(1);
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    let _broker = Broker(
        Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto"),
    );
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "outbox drain vs bare rumqttc, QoS 1, in-flight {INFLIGHT}, {n} events, {rounds} rounds"
    );
    let mut bares = Vec::new();
    let mut drains = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..rounds {
        let b = rt.block_on(bare(port, n));
        println!("  bare round: {b:.0}/s");
        bares.push(b);
        let (d, _, peak) = rt.block_on(outbox(port, n));
        drains.push(d);
        peaks.push(peak);
    }
    let (b, d) = (median(bares), median(drains));
    println!(
        "median: bare {b:.0} events/s, outbox {d:.0} events/s, ratio {:.2}; peak RSS while draining {:.1} MB",
        d / b,
        peaks.iter().copied().fold(0.0, f64::max)
    );
}
