//! A fleet on one machine: `branchd demo` processes as branch boxes, head office's broker
//! (a Mosquitto, or a 3-node NATS cluster with JetStream and MQTT), `branchd hq ingest`
//! processes, and a fresh PostgreSQL database per run. Shared by the fleet tests and
//! `./dev bench fleet`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio_postgres::NoTls;

pub const BRANCHD: &str = env!("CARGO_BIN_EXE_branchd");
const NATS: &str = "nats-server";

/// A free TCP port on 127.0.0.1 (the OS's choice; a race with another process is handled by
/// the callers that bind it in a child, which retry).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_port(port: u16, what: &str, child: &mut Child) -> bool {
    for _ in 0..2400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false; // exited: the caller reports its log
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not listen on {port}");
}

fn sigterm(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

/// The last lines of a log file, for assertion messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One branch box: `branchd demo` with simulated devices and a compressed day.
pub struct Daemon {
    pub branch: String,
    pub dir: PathBuf,
    pub port: u16,
    mqtt: String,
    every: String,
    customers: u64,
    child: Option<Child>,
}

impl Daemon {
    /// Start branch `branch` under `root`, one customer every `every` seconds, `customers`
    /// in all.
    pub fn start(root: &Path, branch: &str, mqtt: &str, every: f64, customers: u64) -> Daemon {
        let dir = root.join(branch);
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Daemon {
            branch: branch.to_string(),
            dir,
            port: 0,
            mqtt: mqtt.to_string(),
            every: every.to_string(),
            customers,
            child: None,
        };
        d.restart();
        d
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("daemon.log")
    }

    pub fn db(&self) -> PathBuf {
        self.dir.join("data").join("branchd.db")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Start again (same data dir, branch and port), e.g. after a SIGKILL.
    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        for _ in 0..5 {
            if self.port == 0 {
                self.port = free_port();
            }
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log())
                .unwrap();
            let mut child = Command::new(BRANCHD)
                .args(["demo", "--data-dir"])
                .arg(self.dir.join("data"))
                .args(["--listen", &format!("127.0.0.1:{}", self.port)])
                .args([
                    "--mqtt",
                    &self.mqtt,
                    "--branch",
                    &self.branch,
                    "--no-camera",
                ])
                .args(["--customer-every", &self.every])
                .args(["--customers", &self.customers.to_string()])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("branchd demo");
            if wait_port(self.port, &self.branch, &mut child) && self.healthy() {
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            self.port = 0; // taken by someone else meanwhile: another port
        }
        panic!(
            "{} did not start:\n{}",
            self.branch,
            log_tail(&self.log(), 30)
        );
    }

    /// `/healthz` answers 200 and names this branch (the port is ours, not another box's).
    fn healthy(&self) -> bool {
        use std::io::{Read, Write};
        for _ in 0..200 {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                let mut out = String::new();
                if s.write_all(req.as_bytes()).is_ok()
                    && s.read_to_string(&mut out).is_ok()
                    && out.starts_with("HTTP/1.1 200")
                {
                    return out.contains(&format!("\"branch\":\"{}\"", self.branch));
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// SIGKILL: no goodbye, no flush.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sigterm(&mut c);
        }
    }

    /// The box's own view: (highest seq committed, events not yet acknowledged by the broker,
    /// tickets issued).
    pub fn outbox(&self) -> (i64, i64, i64) {
        let c = rusqlite::Connection::open_with_flags(
            self.db(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c.query_row(
            "SELECT (SELECT coalesce(max(seq), 0) FROM events), \
                    (SELECT count(*) FROM events WHERE acked_at IS NULL), \
                    (SELECT count(*) FROM events WHERE kind = 'ticket.issued')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    }

    /// CPU seconds (user + system) and resident memory of the process, from /proc.
    pub fn usage(&self) -> Option<(f64, u64)> {
        let pid = self.pid()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = after.split(' ').collect();
        // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the name.
        let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        let hz = 100.0; // USER_HZ on Linux
        Some((ticks / hz, rss_kb * 1024))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh database on the local PostgreSQL, dropped at the end.
pub struct Pg {
    pub name: String,
}

const PG_ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

async fn admin(sql: String) {
    let (c, conn) = tokio_postgres::connect(PG_ADMIN, NoTls)
        .await
        .expect("the local PostgreSQL (127.0.0.1:5432, trust auth)");
    let h = tokio::spawn(conn);
    c.batch_execute(&sql).await.expect(&sql);
    drop(c);
    let _ = h.await;
}

impl Pg {
    pub async fn fresh(what: &str) -> Pg {
        let name = format!(
            "branchd_{what}_{}_{}",
            std::process::id(),
            ulid::Ulid::new().to_string().to_lowercase()
        );
        admin(format!("CREATE DATABASE {name}")).await;
        Pg { name }
    }

    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port=5432 user=postgres dbname={}",
            self.name
        )
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (c, conn) = tokio_postgres::connect(&self.conninfo(), NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c
    }

    /// (events stored, highest seq, highest gap-free seq recorded) of one branch.
    pub async fn stored(&self, branch: &str) -> (i64, i64, i64) {
        let c = self.client().await;
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM hq_events WHERE branch = $1), \
                        (SELECT coalesce(max(seq), 0) FROM hq_events WHERE branch = $1), \
                        (SELECT coalesce(max(last_seq), 0) FROM hq_branches WHERE branch = $1)",
                &[&branch],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    }

    /// Whether head office holds every event 1..=upto of the branch, gap-free.
    pub async fn complete(&self, branch: &str, upto: i64) -> bool {
        let (n, _, last) = self.stored(branch).await;
        let c = self.client().await;
        let below: i64 = c
            .query_one(
                "SELECT count(*) FROM hq_events WHERE branch = $1 AND seq <= $2",
                &[&branch, &upto],
            )
            .await
            .unwrap()
            .get(0);
        below == upto && n >= upto && last >= upto
    }

    /// (gaps still open, messages rejected) at head office.
    pub async fn open_gaps_and_rejected(&self) -> (i64, i64) {
        (
            self.scalar("SELECT count(*) FROM hq_gaps WHERE filled_at IS NULL")
                .await,
            self.scalar("SELECT count(*) FROM hq_rejected").await,
        )
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside or outside a runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(admin(sql));
            }
        })
        .join();
    }
}

/// One `branchd hq ingest` process.
pub struct Ingest {
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Ingest {
    pub fn start(dir: &Path, name: &str, url: &str, db: &str, extra: &[&str]) -> Ingest {
        let mut args: Vec<String> = ["hq", "ingest", "--url", url, "--db", db, "--gap-grace", "5"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut i = Ingest {
            args,
            log: dir.join(format!("ingest-{name}.log")),
            child: None,
        };
        i.restart();
        i
    }

    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Some(
            Command::new(BRANCHD)
                .args(&self.args)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("branchd hq ingest"),
        );
    }

    pub fn log(&self) -> String {
        log_tail(&self.log, 40)
    }

    /// Whether the broker has confirmed its subscriptions (its tables exist by then): only
    /// from then on does the broker keep the events this instance is to store.
    pub fn subscribed(&self) -> bool {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .any(|l| l == "ingest: subscribed")
    }

    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; returns its summary line.
    pub fn stop(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            sigterm(&mut c);
        }
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .rfind(|l| l.starts_with("ingest: ") && l.contains(" events, "))
            .unwrap_or_default()
            .to_string()
    }
}

/// Two ingests sharing the branches by `--shard K/2`, on broker nodes 0 and 2 (NATS has no
/// shared subscriptions).
pub fn sharded_ingests(dir: &Path, nats: &NatsCluster, db: &str) -> Vec<Ingest> {
    [0usize, 2]
        .iter()
        .enumerate()
        .map(|(k, node)| {
            let (shard, id) = (format!("{k}/2"), format!("ingest-{k}"));
            Ingest::start(
                dir,
                &k.to_string(),
                &nats.url(*node),
                db,
                &["--shard", &shard, "--client-id", &id],
            )
        })
        .collect()
}

/// The ends of every ingest's log, for assertion messages.
pub fn ingest_logs(ingests: &[Ingest]) -> String {
    ingests
        .iter()
        .map(Ingest::log)
        .collect::<Vec<_>>()
        .join("\n--\n")
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three `nats-server` nodes in one cluster, each with JetStream and MQTT.
pub struct NatsCluster {
    dir: PathBuf,
    pub mqtt: Vec<u16>,
    client: Vec<u16>,
    route: Vec<u16>,
    nodes: Vec<Option<Child>>,
}

impl NatsCluster {
    pub fn start(dir: &Path) -> NatsCluster {
        let n = 3;
        // The ports are free when chosen, but a test running beside this one may bind one
        // before nats-server does: that node exits at once ("address already in use"),
        // and the cluster starts again, in a directory of its own, on other ports.
        for attempt in 1.. {
            let dir = dir.join(format!("cluster-{attempt}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut c = NatsCluster {
                dir,
                mqtt: (0..n).map(|_| free_port()).collect(),
                client: (0..n).map(|_| free_port()).collect(),
                route: (0..n).map(|_| free_port()).collect(),
                nodes: (0..n).map(|_| None).collect(),
            };
            for i in 0..n {
                c.write_conf(i);
            }
            match (0..n).try_for_each(|i| c.try_start(i)) {
                Ok(()) => {
                    c.wait_meta_leader();
                    return c;
                }
                Err(log) if attempt < 3 && log.contains("address already in use") => continue,
                Err(log) => panic!("{log}"),
            }
        }
        unreachable!("the attempts above return or panic")
    }

    fn conf(&self, i: usize) -> PathBuf {
        self.dir.join(format!("nats-{i}.conf"))
    }

    fn write_conf(&self, i: usize) {
        let routes: Vec<String> = (0..self.route.len())
            .filter(|j| *j != i)
            .map(|j| format!("\"nats-route://127.0.0.1:{}\"", self.route[j]))
            .collect();
        let store = self.dir.join(format!("js-{i}"));
        std::fs::write(
            self.conf(i),
            format!(
                "server_name: n{i}\nlisten: \"127.0.0.1:{}\"\n\
                 jetstream {{ store_dir: \"{}\" }}\n\
                 cluster {{ name: hq, listen: \"127.0.0.1:{}\", routes: [{}] }}\n\
                 mqtt {{ listen: \"127.0.0.1:{}\" }}\n",
                self.client[i],
                store.display(),
                self.route[i],
                routes.join(", "),
                self.mqtt[i]
            ),
        )
        .unwrap();
    }

    pub fn url(&self, i: usize) -> String {
        format!("mqtt://127.0.0.1:{}", self.mqtt[i])
    }

    pub fn log(&self, i: usize) -> PathBuf {
        self.dir.join(format!("nats-{i}.log"))
    }

    pub fn restart(&mut self, i: usize) {
        if let Err(log) = self.try_start(i) {
            panic!("{log}");
        }
    }

    /// Start node `i`; its log's end if it exits instead of listening.
    fn try_start(&mut self, i: usize) -> Result<(), String> {
        assert!(self.nodes[i].is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(i))
            .unwrap();
        let mut child = Command::new(NATS)
            .arg("-c")
            .arg(self.conf(i))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("nats-server (Debian's package nats-server)");
        if !wait_port(self.mqtt[i], &format!("nats node {i}"), &mut child) {
            return Err(format!("nats node {i}:\n{}", log_tail(&self.log(i), 20)));
        }
        self.nodes[i] = Some(child);
        Ok(())
    }

    /// SIGKILL one node.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Wait until the cluster has elected its JetStream meta leader (MQTT needs it).
    fn wait_meta_leader(&self) {
        for _ in 0..600 {
            let logs: String = (0..self.nodes.len())
                .map(|i| std::fs::read_to_string(self.log(i)).unwrap_or_default())
                .collect();
            if logs.contains("JetStream cluster new metadata leader")
                || logs.contains("Self is new JetStream cluster metadata leader")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the NATS cluster elected no JetStream leader");
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// Wait until every daemon has issued its customers and head office holds each branch's
/// events up to what the box had committed then, gap-free. Returns the seq checked per branch.
pub async fn wait_complete(
    daemons: &[Daemon],
    pg: &Pg,
    customers: i64,
    secs: u64,
    extra_logs: &dyn Fn() -> String,
) -> Vec<i64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut upto = vec![0i64; daemons.len()];
    for (i, d) in daemons.iter().enumerate() {
        loop {
            let (max, _unacked, tickets) = d.outbox();
            if tickets >= customers && upto[i] == 0 {
                upto[i] = max;
            }
            if upto[i] > 0 && pg.complete(&d.branch, upto[i]).await {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                let stored = pg.stored(&d.branch).await;
                panic!(
                    "{}: box at seq {max} ({tickets} tickets), head office holds {stored:?} \
                     (count, max, gap-free)\n{}\n{}",
                    d.branch,
                    log_tail(&d.log(), 20),
                    extra_logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    upto
}
