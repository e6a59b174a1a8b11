//! The chaos gates, shared by the chaos tests and `./dev bench chaos`: the whole daemon
//! (`branchd run --config FILE`) as a child process, with two simulated STMs, the ticket
//! printer and the ID reader on real pseudo-terminals, a Mosquitto of its own on a free
//! port, head office as a QoS 1 subscriber with a persistent session, and staff working
//! the queue over HTTP. [`sigkill_run`] kills the daemon with SIGKILL at random moments and
//! starts it again; [`broker_down_run`] stops the broker for a while under the same load.
//! [`audit`] then checks, from the database and from what head office received, that
//! nothing acknowledged was lost or doubled.
//!
//! The restart back-off: `branchd run` finds `data_dir/run.marker` after an unclean stop
//! and waits 1 s, 2 s, 4 s … up to 5 min, by the number of unclean stops in a row, before
//! it opens anything. Killed dozens of times in a row, it would soon wait minutes, as it
//! should in production. Before each start after a kill the harness therefore sets the
//! marker's count back to "this is the first unclean stop": the daemon still finds the
//! marker, says so in its log and waits its real 1 s, which is part of the restart-to-ready
//! time measured; the log must say so once per kill.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use branchd_drivers::idreader::CardText;
use branchd_drivers::idreader::sim::IdReaderSim;
use branchd_drivers::printer::TextEncoding;
use branchd_drivers::printer::sim::PrinterSim;
use branchd_drivers::stm::{StmSim, StmSimConfig, Transaction, TxnType};
use rand::Rng;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{Value, json};

pub const BRANCHD: &str = env!("CARGO_BIN_EXE_branchd");
const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// The branch of the chaos box.
pub const BRANCH: &str = "CHAOS1";
pub const PASSWORD: &str = "correct horse";
/// The staff accounts working the queue, one per counter.
const STAFF: [(&str, &str); 2] = [("lobby_1", "1"), ("lobby_2", "2")];
/// The log line of a start after an unclean stop (agent/src/app.rs).
const BACKOFF_NOTICE: &str = "the previous run ended without a clean stop";
/// Tickets issued before the staff start calling, so that a counter never finds the queue
/// empty.
const QUEUE_BUFFER: usize = 8;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The last lines of a log file, for assertion messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait().expect("wait")
}

/// A Mosquitto of our own with persistence (head office's queued messages survive its
/// restart), always on the same port.
pub struct Broker {
    pub port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Broker {
    pub fn start(dir: &Path) -> Broker {
        let port = free_port();
        let data = dir.join("mosquitto");
        std::fs::create_dir_all(&data).unwrap();
        let conf = dir.join("mosquitto.conf");
        // Mosquitto started as root drops to its own user, who cannot read our temp files.
        let user = if std::os::unix::fs::MetadataExt::uid(&dir.metadata().unwrap()) == 0 {
            "user root\n"
        } else {
            ""
        };
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\nmax_queued_messages 0\nmax_inflight_messages 100\n\
                 log_dest file {}/log\n{user}",
                data.display(),
                data.display()
            ),
        )
        .unwrap();
        let mut b = Broker {
            port,
            conf,
            child: None,
        };
        b.restart();
        b
    }

    /// Start it again on the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (Debian's package mosquitto)");
        self.child = Some(child);
        for _ in 0..400 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("mosquitto did not listen on {}", self.port);
    }

    /// Stop it as its operator would (SIGTERM: it saves its sessions).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            sigterm(&mut c);
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One event as head office received it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub seq: u64,
    pub id: String,
    pub kind: String,
    pub data: Value,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Default)]
struct HqState {
    deliveries: Vec<Delivery>,
    seen: HashSet<u64>,
    /// Every seq up to this one has arrived.
    contiguous: u64,
    subscribed: bool,
}

/// Head office: a subscriber on the branch's events, QoS 1, persistent session.
#[derive(Clone)]
pub struct Hq {
    state: Arc<Mutex<HqState>>,
    _client: AsyncClient,
}

impl Hq {
    /// Connect and subscribe (in the current tokio runtime).
    pub fn subscribe(port: u16) -> Hq {
        let mut o = MqttOptions::new(format!("hq-chaos-{port}"), "127.0.0.1", port);
        o.set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut el) = AsyncClient::new(o, 1000);
        let state = Arc::new(Mutex::new(HqState::default()));
        let (s, c) = (state.clone(), client.clone());
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        let _ =
                            c.try_subscribe(format!("bank/{BRANCH}/events/#"), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => lock(&s).subscribed = true,
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        let Some(seq) = v["seq"].as_u64() else {
                            continue;
                        };
                        let d = Delivery {
                            seq,
                            id: v["id"].as_str().unwrap_or_default().to_string(),
                            kind: v["kind"].as_str().unwrap_or_default().to_string(),
                            data: v["data"].clone(),
                            at: Instant::now(),
                        };
                        let mut st = lock(&s);
                        st.seen.insert(seq);
                        while st.seen.contains(&(st.contiguous + 1)) {
                            st.contiguous += 1;
                        }
                        st.deliveries.push(d);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Hq {
            state,
            _client: client,
        }
    }

    pub async fn wait_subscribed(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !lock(&self.state).subscribed {
            assert!(Instant::now() < deadline, "head office did not subscribe");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every seq from 1 to this one has arrived.
    pub fn contiguous(&self) -> u64 {
        lock(&self.state).contiguous
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.state).deliveries.clone()
    }
}

/// One HTTP request of the staff load.
#[derive(Debug, Clone)]
pub struct Request {
    pub what: &'static str,
    pub at: Instant,
    pub took: Duration,
    /// None: no answer (connection refused or reset, timeout).
    pub status: Option<u16>,
}

/// What the daemon acknowledged over HTTP, and every request made.
#[derive(Debug, Default)]
pub struct Ledger {
    /// (business day, number) of every ticket whose issue answered 201.
    pub issued: Vec<(String, String)>,
    /// Every ticket a call-next answered 200 with.
    pub called: Vec<String>,
    /// Every ticket whose serve-done answered 200.
    pub served: Vec<String>,
    pub requests: Vec<Request>,
}

impl Ledger {
    pub fn acknowledged(&self) -> usize {
        self.issued.len() + self.called.len() + self.served.len()
    }
}

/// The config id of the `i`th STM (from 0).
pub fn stm_id(i: usize) -> String {
    format!("STM-{:02}", i + 1)
}

/// The branch box: its simulators, its config and data dir, and the daemon process.
pub struct Branch {
    pub data: PathBuf,
    conf: PathBuf,
    pub log: PathBuf,
    pub port: u16,
    pub stms: Arc<Vec<StmSim>>,
    pub printer: PrinterSim,
    pub reader: Arc<IdReaderSim>,
    child: Option<Child>,
    spawned_at: Instant,
    /// Spawn to `/healthz` 200, per start.
    pub ready_after: Vec<Duration>,
    /// Starts that found the run marker of an unclean stop.
    pub unclean_starts: usize,
    pub kills: usize,
}

impl Branch {
    /// Simulators, config and users under `root`; the daemon is not started yet.
    pub fn new(root: &Path, mqtt_port: u16, stms: usize) -> Branch {
        let stms: Vec<StmSim> = (0..stms)
            .map(|i| {
                let id = stm_id(i);
                StmSim::spawn(StmSimConfig {
                    link_path: Some(root.join(&id)),
                    seed: i as u64 + 1,
                    ..StmSimConfig::new(&id)
                })
                .expect("stm simulator")
            })
            .collect();
        let printer = PrinterSim::spawn(TextEncoding::Gb18030, Some(root.join("PRN-01")))
            .expect("printer simulator");
        let reader = IdReaderSim::spawn(Some(root.join("IDR-01"))).expect("reader simulator");
        let data = root.join("data");
        let port = free_port();
        let mut devices = String::new();
        for i in 1..=stms.len() {
            let id = stm_id(i - 1);
            devices += &format!(
                "\n[[devices]]\nid = \"{id}\"\nkind = \"stm\"\npath = \"{}\"\n",
                root.join(&id).display()
            );
        }
        devices += &format!(
            "\n[[devices]]\nid = \"PRN-01\"\nkind = \"printer\"\npath = \"{}\"\n\
             \n[[devices]]\nid = \"IDR-01\"\nkind = \"id_reader\"\npath = \"{}\"\n",
            root.join("PRN-01").display(),
            root.join("IDR-01").display()
        );
        let text = format!(
            r#"
[branch]
id = "{BRANCH}"
name = "混沌支行"
data_dir = "{}"

[http]
listen = "127.0.0.1:{port}"

[mqtt]
url = "mqtt://127.0.0.1:{mqtt_port}"
keep_alive_s = 5
telemetry_interval_s = 5
max_inflight = 50

[[services]]
code = "personal"
prefix = "A"
name = "个人业务"
name_en = "Personal banking"
target_wait_min = 60

[[counters]]
id = "1"
services = ["personal"]

[[counters]]
id = "2"
services = ["personal"]

[queue]
printer_poll_ms = 200

[id_reader]
poll_ms = 200

[stm]
command_timeout_s = 2
{devices}"#,
            data.display()
        );
        let conf = root.join("branchd.toml");
        std::fs::write(&conf, &text).unwrap();
        let db = branchd::config::Config::parse(&text)
            .expect("chaos config")
            .db_path();
        // The store's blocking calls must not run on the runtime's own threads.
        tokio::task::block_in_place(|| {
            let store = branchd::app::open_store(&db).expect("open");
            for (name, _) in STAFF {
                let hash = branchd::users::hash_password(PASSWORD);
                store
                    .write_blocking(move |tx| {
                        branchd::users::insert_user(
                            tx,
                            name,
                            branchd::users::Role::LobbyManager,
                            &hash,
                        )
                    })
                    .expect("user");
            }
            store.close();
        });
        Branch {
            data,
            conf,
            log: root.join("daemon.log"),
            port,
            stms: Arc::new(stms),
            printer,
            reader: Arc::new(reader),
            child: None,
            spawned_at: Instant::now(),
            ready_after: Vec::new(),
            unclean_starts: 0,
            kills: 0,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn db(&self) -> PathBuf {
        self.data.join("branchd.db")
    }

    /// Start the daemon and wait until `/healthz` answers 200; returns the time it took.
    /// A daemon that exits, or is not ready within a minute, fails the run.
    pub async fn start(&mut self) -> Duration {
        self.spawn();
        self.wait_ready().await
    }

    /// Start the daemon process, not waiting for it.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none());
        let marker = self.data.join("run.marker");
        if marker.exists() {
            // See the module's doc: one unclean stop in a row, a 1 s back-off.
            std::fs::write(&marker, "0").unwrap();
            self.unclean_starts += 1;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.spawned_at = Instant::now();
        self.child = Some(
            Command::new(BRANCHD)
                .arg("run")
                .arg("--config")
                .arg(&self.conf)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("branchd run"),
        );
    }

    /// Wait until the daemon spawned last answers `/healthz` with 200; returns the time
    /// since its spawn.
    pub async fn wait_ready(&mut self) -> Duration {
        let health = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let url = format!("{}/healthz", self.base());
        loop {
            let child = self.child.as_mut().expect("spawned");
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the daemon exited ({status}) while starting:\n{}",
                    log_tail(&self.log, 30)
                );
            }
            if let Ok(r) = health.get(&url).send().await
                && r.status() == 200
            {
                break;
            }
            if self.spawned_at.elapsed() > Duration::from_secs(60) {
                panic!(
                    "the daemon was not ready a minute after its start:\n{}",
                    log_tail(&self.log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took = self.spawned_at.elapsed();
        self.ready_after.push(took);
        took
    }

    /// SIGKILL: no goodbye, no flush.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
            self.kills += 1;
        }
    }

    /// SIGTERM; the daemon must exit cleanly.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let status = sigterm(&mut c);
            assert!(
                status.success(),
                "unclean exit on SIGTERM ({status}):\n{}",
                log_tail(&self.log, 30)
            );
        }
    }

    /// How often the daemon said it found the marker of an unclean stop.
    pub fn backoff_notices(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches(BACKOFF_NOTICE)
            .count()
    }

    /// A read-only look at the database (also while the daemon runs).
    pub fn read<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> T) -> T {
        let c = rusqlite::Connection::open_with_flags(
            self.db(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        f(&c)
    }

    /// (highest seq committed, events head office has not acknowledged yet).
    pub fn outbox(&self) -> (u64, u64) {
        self.read(|c| {
            c.query_row(
                "SELECT coalesce(max(seq), 0), \
                        (SELECT count(*) FROM events WHERE acked_at IS NULL) FROM events",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .unwrap()
        })
    }
}

impl Drop for Branch {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One STM transaction the simulator was asked to send.
#[derive(Debug, Clone)]
pub struct SentTxn {
    pub stm: usize,
    pub event_id: String,
    pub txn_id: String,
}

/// Staff on the queue over HTTP, the STMs' customers, and ID cards on the reader.
pub struct Load {
    pub ledger: Arc<Mutex<Ledger>>,
    pub sent: Arc<Mutex<Vec<SentTxn>>>,
    stop: Arc<AtomicBool>,
    staff: Vec<tokio::task::JoinHandle<()>>,
    devices: Option<std::thread::JoinHandle<()>>,
}

async fn login(c: &reqwest::Client, base: &str, user: &str, stop: &AtomicBool) -> bool {
    while !stop.load(Ordering::Relaxed) {
        match c
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": user, "password": PASSWORD}))
            .send()
            .await
        {
            Ok(r) if r.status() == 200 => return true,
            Ok(r) => panic!("login as {user}: {}", r.status()),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    false
}

/// Send one request, record it; Some((status, body)) when answered.
async fn call(
    ledger: &Mutex<Ledger>,
    what: &'static str,
    req: reqwest::RequestBuilder,
) -> Option<(u16, Value)> {
    let at = Instant::now();
    let r = req.send().await;
    let answer = match r {
        Ok(r) => {
            let status = r.status().as_u16();
            // A body cut off by a kill is no answer.
            match r.bytes().await {
                Ok(b) => Some((status, serde_json::from_slice(&b).unwrap_or(Value::Null))),
                Err(_) => None,
            }
        }
        Err(_) => None,
    };
    lock(ledger).requests.push(Request {
        what,
        at,
        took: at.elapsed(),
        status: answer.as_ref().map(|a| a.0),
    });
    answer
}

/// One member of staff at `counter`: open it, issue a ticket, look at the queue, call the
/// next customer, serve them; over and over, logging in again when the session is gone and
/// waiting while the daemon is down.
async fn staff(
    base: String,
    user: &'static str,
    counter: &'static str,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    pause: Duration,
) {
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    if !login(&c, &base, user, &stop).await {
        return;
    }
    // Only an open counter calls: the member of staff opens it (again once it answers
    // that it is closed).
    let mut at_counter = false;
    while !stop.load(Ordering::Relaxed) {
        let mut gone = false;
        if !at_counter {
            match call(
                &ledger,
                "open",
                c.post(format!("{base}/api/v1/counters/{counter}/open"))
                    .json(&json!({})),
            )
            .await
            {
                Some((200, _)) => at_counter = true,
                Some((401, _)) => gone = true,
                _ => {}
            }
        }
        let issued = call(
            &ledger,
            "issue",
            c.post(format!("{base}/api/v1/tickets"))
                .json(&json!({"service": "personal"})),
        )
        .await;
        match &issued {
            Some((201, t)) => {
                let day = t["day"].as_str().expect("day").to_string();
                let number = t["number"].as_str().expect("number").to_string();
                lock(&ledger).issued.push((day, number));
            }
            Some((401, _)) => gone = true,
            _ => {}
        }
        let q = call(&ledger, "queue", c.get(format!("{base}/api/v1/queue"))).await;
        gone |= matches!(q, Some((401, _)));
        let waiting = q
            .as_ref()
            .and_then(|(_, v)| v["waiting"].as_array().map(Vec::len))
            .unwrap_or(0);
        // Keep a buffer in the queue: a counter never finds it empty.
        if waiting > QUEUE_BUFFER {
            let next = call(
                &ledger,
                "call-next",
                c.post(format!("{base}/api/v1/counters/{counter}/call-next")),
            )
            .await;
            match &next {
                Some((200, t)) => {
                    let number = t["number"].as_str().expect("number").to_string();
                    lock(&ledger).called.push(number.clone());
                    let done = call(
                        &ledger,
                        "serve-done",
                        c.post(format!("{base}/api/v1/tickets/{number}/serve-done")),
                    )
                    .await;
                    match done {
                        Some((200, _)) => lock(&ledger).served.push(number),
                        Some((401, _)) => gone = true,
                        _ => {}
                    }
                }
                Some((401, _)) => gone = true,
                Some((409, _)) => at_counter = false,
                _ => {}
            }
        }
        if gone && !login(&c, &base, user, &stop).await {
            return;
        }
        if issued.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await; // the daemon is down
        } else {
            tokio::time::sleep(pause).await;
        }
    }
}

impl Load {
    /// Start the load: two staff, one STM transaction every `stm_every` (round robin over
    /// the STMs), a card put on and taken off the reader every 2 s.
    pub fn start(b: &Branch, staff_pause: Duration, stm_every: Duration) -> Load {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let staff_tasks = STAFF
            .iter()
            .map(|(user, counter)| {
                tokio::spawn(staff(
                    b.base(),
                    user,
                    counter,
                    ledger.clone(),
                    stop.clone(),
                    staff_pause,
                ))
            })
            .collect();
        let (stms, reader, s, st) = (b.stms.clone(), b.reader.clone(), sent.clone(), stop.clone());
        let devices = std::thread::spawn(move || {
            let mut n = 0usize;
            let mut card_at = Instant::now();
            let mut card_on = false;
            while !st.load(Ordering::Relaxed) {
                n += 1;
                let i = n % stms.len();
                let txn_id = format!("CHAOS-{i}-{n:07}");
                let event_id = stms[i].transaction(Transaction {
                    txn_id: txn_id.clone(),
                    txn_type: TxnType::Transfer,
                    amount: 100 + n as i64,
                    ok: true,
                    duration_s: 60,
                    product: None,
                });
                lock(&s).push(SentTxn {
                    stm: i,
                    event_id,
                    txn_id,
                });
                if card_at.elapsed() > Duration::from_secs(2) {
                    if card_on {
                        reader.take_card();
                    } else {
                        reader.put_card(CardText::sample(), Vec::new());
                    }
                    card_on = !card_on;
                    card_at = Instant::now();
                }
                std::thread::sleep(stm_every);
            }
        });
        Load {
            ledger,
            sent,
            stop,
            staff: staff_tasks,
            devices: Some(devices),
        }
    }

    /// Stop the load and wait for its tasks.
    pub async fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.staff.drain(..) {
            t.await.unwrap();
        }
        if let Some(t) = self.devices.take() {
            t.join().unwrap();
        }
    }
}

/// Wait until every STM transaction sent has been acknowledged by the box, and head office
/// has everything the box committed; then stop the daemon cleanly. Events committed while
/// it stops (after its link is down) go out on its next start, as on a box: the daemon is
/// started and drained again, up to three times, until nothing is left unsent. Returns the
/// events found unsent after a clean stop.
pub async fn drain(b: &mut Branch, hq: &Hq, load: &Load) -> u64 {
    let sent: Vec<SentTxn> = lock(&load.sent).clone();
    let mut left_at_stop = 0;
    for round in 0..3 {
        if round > 0 {
            b.start().await;
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let acked: Vec<HashSet<String>> = b
                .stms
                .iter()
                .map(|s| s.record().acked_events.into_iter().collect())
                .collect();
            let unacked: Vec<&SentTxn> = sent
                .iter()
                .filter(|t| !acked[t.stm].contains(&t.event_id))
                .collect();
            let (max, pending) = b.outbox();
            if unacked.is_empty() && pending == 0 && hq.contiguous() >= max {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not drained within 2 min: {} STM events not acknowledged (first {:?}), \
                 {pending} events not acknowledged by the broker, head office gap-free up to \
                 {} of {max}\n{}",
                unacked.len(),
                unacked.first(),
                hq.contiguous(),
                log_tail(&b.log, 20)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        b.stop();
        let pending = b.outbox().1;
        if pending == 0 {
            break;
        }
        left_at_stop += pending;
    }
    left_at_stop
}

/// What the audit found; `problems` must be empty.
#[derive(Debug, Default)]
pub struct Audit {
    pub integrity: String,
    /// Highest seq in the database (= events, when there is no gap).
    pub events: u64,
    pub changes_checked: usize,
    pub stm_checked: usize,
    /// Distinct seqs head office received.
    pub hq_events: usize,
    /// Deliveries of a seq head office already had, with the same id (at-least-once
    /// delivery; head office drops them by id).
    pub redelivered: usize,
    /// Seqs (1..=highest in the database) head office never received.
    pub gaps: usize,
    /// One change recorded twice: a seq with two ids, an STM event or a ticket with two
    /// events.
    pub duplicates: usize,
    pub problems: Vec<String>,
}

impl Audit {
    fn problem(&mut self, p: String) {
        if self.problems.len() < 50 {
            self.problems.push(p);
        }
    }

    /// Panic with the first problems, if any.
    pub fn assert_clean(&self) {
        assert!(
            self.problems.is_empty(),
            "{} problem(s):\n{}",
            self.problems.len(),
            self.problems.join("\n")
        );
    }
}

fn scalar(c: &rusqlite::Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Check the stopped box's database and head office's deliveries against what the daemon
/// acknowledged: over HTTP (`ledger`) and to the STMs (their records).
pub fn audit(b: &Branch, hq: &Hq, load: &Load) -> Audit {
    let mut a = Audit::default();
    let ledger = lock(&load.ledger);
    let sent = lock(&load.sent).clone();
    let c = rusqlite::Connection::open(b.db()).unwrap();
    a.integrity = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    if a.integrity != "ok" {
        let i = a.integrity.clone();
        a.problem(format!("integrity_check: {i}"));
    }

    // The outbox: seq from 1, no gap, no repeat, meta follows.
    let (count, min, max) = c
        .query_row("SELECT count(*), min(seq), max(seq) FROM events", [], |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, Option<i64>>(1)?.unwrap_or(1) as u64,
                r.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
            ))
        })
        .unwrap();
    a.events = max;
    if min != 1 || count != max {
        a.problem(format!(
            "the outbox has a gap: {count} events, seq {min}..={max}"
        ));
    }
    let meta: String = c
        .query_row("SELECT value FROM meta WHERE key = 'event_seq'", [], |r| {
            r.get(0)
        })
        .unwrap();
    if meta.parse::<u64>().ok() != Some(max) {
        a.problem(format!("meta.event_seq {meta}, outbox up to {max}"));
    }
    let unacked = scalar(&c, "SELECT count(*) FROM events WHERE acked_at IS NULL");
    if unacked != 0 {
        a.problem(format!("{unacked} events never acknowledged by the broker"));
    }
    let ids: HashMap<u64, String> = {
        let mut st = c.prepare("SELECT seq, id FROM events").unwrap();
        st.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };

    // Head office: every seq, in order of first arrival, each with the box's id.
    let deliveries = hq.deliveries();
    let mut first: BTreeMap<u64, String> = BTreeMap::new();
    let mut order = Vec::new();
    for d in &deliveries {
        match first.get(&d.seq) {
            Some(id) if *id == d.id => a.redelivered += 1,
            Some(id) => {
                a.duplicates += 1;
                let msg = format!("seq {} arrived as {id} and as {} ({})", d.seq, d.id, d.kind);
                a.problem(msg);
            }
            None => {
                first.insert(d.seq, d.id.clone());
                order.push(d.seq);
            }
        }
    }
    a.hq_events = first.len();
    if let Some(w) = order.windows(2).find(|w| w[1] < w[0]) {
        a.problem(format!(
            "head office received seq {} before seq {}",
            w[0], w[1]
        ));
    }
    for seq in 1..=max {
        match first.get(&seq) {
            None => {
                a.gaps += 1;
                if a.gaps <= 10 {
                    a.problem(format!("head office never received seq {seq}"));
                }
            }
            Some(id) if ids.get(&seq) != Some(id) => {
                a.problem(format!(
                    "seq {seq}: head office got {id}, the box has {:?}",
                    ids.get(&seq)
                ));
            }
            Some(_) => {}
        }
    }
    if let Some((seq, _)) = first.range(max + 1..).next() {
        a.problem(format!(
            "head office received seq {seq}, past the box's {max}"
        ));
    }

    // Tickets: every acknowledged issue, call and serve is in the database, each with
    // exactly one event; no ticket without its event.
    let issued_events: HashMap<String, i64> = {
        let mut st = c
            .prepare(
                "SELECT json_extract(data, '$.number'), count(*) FROM events \
                 WHERE kind = 'ticket.issued' GROUP BY 1",
            )
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let tickets = scalar(&c, "SELECT count(*) FROM queue_tickets");
    let issued_total: i64 = issued_events.values().sum();
    if tickets != issued_total {
        a.problem(format!(
            "{tickets} tickets but {issued_total} ticket.issued events"
        ));
    }
    let mut find = c
        .prepare("SELECT state, called_at FROM queue_tickets WHERE day = ?1 AND number = ?2")
        .unwrap();
    for (day, number) in &ledger.issued {
        a.changes_checked += 1;
        let found: Option<String> = find.query_row([day, number], |r| r.get(0)).ok();
        if found.is_none() {
            a.problem(format!(
                "ticket {number} ({day}) answered 201 but is missing"
            ));
        }
        let n = issued_events.get(number).copied().unwrap_or(0);
        let rows: i64 = c
            .query_row(
                "SELECT count(*) FROM queue_tickets WHERE number = ?1",
                [number],
                |r| r.get(0),
            )
            .unwrap();
        if n != rows {
            a.duplicates += usize::from(n > rows);
            a.problem(format!(
                "ticket {number}: {rows} ticket(s), {n} ticket.issued event(s)"
            ));
        }
    }
    // A call or a serve answers with the number but not the business day: numbers start
    // again at the day's reset hour, so a ticket of that number in that state must exist.
    let exists = |sql: &str, number: &str| -> bool {
        c.prepare_cached(sql)
            .unwrap()
            .query_row([number], |r| r.get::<_, i64>(0))
            .unwrap()
            > 0
    };
    for number in &ledger.called {
        a.changes_checked += 1;
        let sql = "SELECT count(*) FROM queue_tickets WHERE number = ?1 AND called_at IS NOT NULL";
        if !exists(sql, number) {
            a.problem(format!(
                "ticket {number} was called (200) but no such ticket was ever called"
            ));
        }
    }
    for number in &ledger.served {
        a.changes_checked += 1;
        let sql = "SELECT count(*) FROM queue_tickets WHERE number = ?1 AND state = 'served'";
        if !exists(sql, number) {
            a.problem(format!(
                "ticket {number} was served (200) but no such ticket is served"
            ));
        }
    }

    // STM events: every one the simulator saw acknowledged is stored, with exactly one
    // event, which head office received.
    let txn_events: HashMap<String, i64> = {
        let mut st = c
            .prepare(
                "SELECT json_extract(data, '$.txn_id'), count(*) FROM events \
                 WHERE kind = 'device.transaction' GROUP BY 1",
            )
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let hq_txns: HashSet<String> = deliveries
        .iter()
        .filter(|d| d.kind == "device.transaction")
        .filter_map(|d| d.data["txn_id"].as_str().map(String::from))
        .collect();
    let acked: Vec<HashSet<String>> = b
        .stms
        .iter()
        .map(|s| s.record().acked_events.into_iter().collect())
        .collect();
    let mut stored = c
        .prepare("SELECT count(*) FROM device_events WHERE device_id = ?1 AND event_id = ?2")
        .unwrap();
    for t in &sent {
        if !acked[t.stm].contains(&t.event_id) {
            a.problem(format!("STM event {} never acknowledged", t.event_id));
            continue;
        }
        a.stm_checked += 1;
        let device = stm_id(t.stm);
        let rows: i64 = stored
            .query_row([&device, &t.event_id], |r| r.get(0))
            .unwrap();
        let events = txn_events.get(&t.txn_id).copied().unwrap_or(0);
        if rows != 1 || events != 1 {
            a.duplicates += usize::from(events > 1);
            a.problem(format!(
                "STM event {} ({}): acknowledged, stored {rows} time(s), {events} event(s)",
                t.event_id, t.txn_id
            ));
        }
        if !hq_txns.contains(&t.txn_id) {
            a.problem(format!("head office never received {}", t.txn_id));
        }
    }
    a
}

fn median(mut v: Vec<Duration>) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[v.len() / 2]
}

/// The random-SIGKILL gate's figures.
#[derive(Debug)]
pub struct SigkillReport {
    pub kills: usize,
    /// Kills 0.9 to 1.6 s after the spawn, without waiting for the daemon to be ready
    /// (most land while it is starting).
    pub during_start: usize,
    /// Events committed while the daemon stopped cleanly at the end, sent on a start after.
    pub unsent_at_stop: u64,
    pub audit: Audit,
    /// Spawn to ready after a kill (the 1 s back-off included).
    pub restart_median: Duration,
    pub restart_max: Duration,
    pub backoff_notices: usize,
    pub unclean_starts: usize,
    pub wall: Duration,
}

/// Kill the loaded daemon `kills` times at random moments, restarting it each time: most
/// kills come 20 ms to 2.5 s after it is ready; one in five comes 0.9 to 1.6 s after its
/// spawn without waiting for it to be ready: past the 1 s back-off, most land while it
/// opens the database, binds, connects its devices and its broker. Then drain and audit.
pub async fn sigkill_run(kills: usize) -> SigkillReport {
    let wall = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let hq = Hq::subscribe(broker.port);
    hq.wait_subscribed().await;
    let mut b = Branch::new(dir.path(), broker.port, 2);
    b.start().await;
    let mut load = Load::start(&b, Duration::from_millis(20), Duration::from_millis(60));
    let mut rng = rand::thread_rng();
    let mut starting = false;
    let mut during_start = 0;
    for k in 0..kills {
        let wait = if starting {
            during_start += 1;
            rng.gen_range(900..1600)
        } else {
            rng.gen_range(20..2500)
        };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        b.kill();
        starting = k + 1 < kills && rng.gen_bool(0.2);
        if starting {
            b.spawn();
        } else {
            b.start().await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    load.stop().await;
    let restarts: Vec<Duration> = b.ready_after[1..].to_vec();
    let unsent_at_stop = drain(&mut b, &hq, &load).await;
    let audit = audit(&b, &hq, &load);
    SigkillReport {
        kills: b.kills,
        during_start,
        unsent_at_stop,
        audit,
        restart_median: median(restarts.clone()),
        restart_max: restarts.iter().max().copied().unwrap_or_default(),
        backoff_notices: b.backoff_notices(),
        unclean_starts: b.unclean_starts,
        wall: wall.elapsed(),
    }
}

/// The broker-down gate's figures.
#[derive(Debug)]
pub struct OutageReport {
    pub outage: Duration,
    pub audit: Audit,
    /// Events the box committed while the broker was down.
    pub events_during: u64,
    /// HTTP requests made while the broker was down, and those not answered 2xx.
    pub requests_during: usize,
    pub failed_during: Vec<Request>,
    pub max_latency_during: Duration,
    /// The slowest request while the broker was down.
    pub slowest_during: Option<Request>,
    /// The 99th percentile of the requests' latency while the broker was down.
    pub p99_during: Duration,
    /// The same before and after the outage, for comparison (the machine's own noise).
    pub max_latency_outside: Duration,
    pub p99_outside: Duration,
    /// From the broker's return until the first event committed during the outage reached
    /// head office (mostly the link's reconnect back-off, 1 s doubling to 60 s, with jitter).
    pub reconnect: Duration,
    /// From the broker's return until head office had every event committed by then.
    pub drain: Duration,
    /// Events committed while the daemon stopped cleanly at the end, sent on a start after.
    pub unsent_at_stop: u64,
    pub wall: Duration,
}

/// Stop the broker for `outage` under load, start it again on the same port; then drain
/// and audit.
pub async fn broker_down_run(outage: Duration) -> OutageReport {
    let wall = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path());
    let hq = Hq::subscribe(broker.port);
    hq.wait_subscribed().await;
    let mut b = Branch::new(dir.path(), broker.port, 2);
    b.start().await;
    let mut load = Load::start(&b, Duration::from_millis(50), Duration::from_millis(100));
    // Head office receives before the outage.
    let deadline = Instant::now() + Duration::from_secs(30);
    while hq.contiguous() < 50 {
        assert!(Instant::now() < deadline, "no events before the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    broker.stop();
    let down_at = Instant::now();
    let before = b.outbox().0;
    tokio::time::sleep(outage).await;
    let committed = b.outbox().0;
    broker.restart();
    let up_at = Instant::now();
    let deadline = up_at + Duration::from_secs(180);
    while hq.contiguous() < committed {
        assert!(
            Instant::now() < deadline,
            "head office gap-free only up to {} of {committed} 3 min after the broker returned\n{}",
            hq.contiguous(),
            log_tail(&b.log, 20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain_took = up_at.elapsed();
    let reconnect = hq
        .deliveries()
        .iter()
        // Committed after the broker went down: published only once the link was back.
        .find(|d| d.at >= up_at && d.seq > before)
        .map(|d| d.at - up_at)
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(2)).await;
    load.stop().await;
    let unsent_at_stop = drain(&mut b, &hq, &load).await;
    let audit = audit(&b, &hq, &load);
    let (during, outside): (Vec<Request>, Vec<Request>) = lock(&load.ledger)
        .requests
        .iter()
        .cloned()
        .partition(|r| r.at >= down_at && r.at < up_at);
    let p99 = |rs: &[Request]| {
        let mut t: Vec<Duration> = rs.iter().map(|r| r.took).collect();
        t.sort();
        t.get(t.len() * 99 / 100).copied().unwrap_or_default()
    };
    OutageReport {
        outage: up_at - down_at,
        audit,
        events_during: committed - before,
        requests_during: during.len(),
        failed_during: during
            .iter()
            .filter(|r| !r.status.is_some_and(|s| (200..300).contains(&s)))
            .cloned()
            .collect(),
        max_latency_during: during.iter().map(|r| r.took).max().unwrap_or_default(),
        slowest_during: during.iter().max_by_key(|r| r.took).cloned(),
        p99_during: p99(&during),
        max_latency_outside: outside.iter().map(|r| r.took).max().unwrap_or_default(),
        p99_outside: p99(&outside),
        reconnect,
        drain: drain_took,
        unsent_at_stop,
        wall: wall.elapsed(),
    }
}
