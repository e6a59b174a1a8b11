//! A simulated smart teller machine speaking STM-Link v1 on a real PTY.
//!
//! The simulator runs on its own thread and owns the PTY master. It sends HELLO then STATUS
//! whenever a client opens the device, a HEARTBEAT every 2 s, STATUS on every change, and
//! answers every command op of the specification. Events are scripted through
//! [`StmSim`]'s methods; each gets a unique, stable `event_id` and is retransmitted (and
//! re-sent after the next HELLO) until the box acknowledges it. Faults (corrupted bytes,
//! dropped packets, silence, vanishing) are switched on and off at run time, and everything
//! the simulator received is recorded for tests to assert on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::engine::{Engine, Happening, Timing};
use super::message::{
    AuthRequest, AuthResultArgs, Cash, Cassette, Command, CommandResult, ConsumableUsed,
    DeviceState, Event, EventBody, Exception, Heartbeat, Hello, Message, ModuleArgs, ModuleStatus,
    ShowProductArgs, Showing, Status, Transaction, TxnType,
};
use crate::pty::{PortChange, PtyError, SimPort};
use crate::rng::Rng;

/// The screenshot thumbnail the simulator returns (a real 64×40 PNG).
pub const SCREENSHOT_PNG: &[u8] = include_bytes!("screenshot.png");

/// The modules of a fully fitted STM.
pub const ALL_MODULES: [&str; 10] = [
    "card_reader",
    "cash_in",
    "cash_out",
    "receipt_printer",
    "card_dispenser",
    "ukey_dispenser",
    "id_reader",
    "camera",
    "pin_pad",
    "doc_scanner",
];

/// How the simulated STM starts.
#[derive(Debug, Clone)]
pub struct StmSimConfig {
    /// Device id sent in HELLO and used in event ids.
    pub device_id: String,
    /// Model sent in HELLO.
    pub model: String,
    /// Firmware sent in HELLO.
    pub firmware: String,
    /// Initial module statuses.
    pub modules: BTreeMap<String, ModuleStatus>,
    /// Initial consumables.
    pub consumables: BTreeMap<String, u32>,
    /// Initial cash position.
    pub cash: Cash,
    /// Initial state.
    pub state: DeviceState,
    /// HEARTBEAT period (2 s).
    pub heartbeat_interval: Duration,
    /// ACK timeout before retransmitting (500 ms).
    pub ack_timeout: Duration,
    /// Retransmits before the simulator re-introduces itself (3).
    pub max_retransmits: u32,
    /// A stable path (symbolic link) kept pointing at the current PTY; see [`crate::pty`].
    pub link_path: Option<PathBuf>,
    /// Seed of the fault-injection PRNG.
    pub seed: u64,
}

impl StmSimConfig {
    /// A signed-out STM with every module `ok` and typical consumables and cash.
    pub fn new(device_id: &str) -> StmSimConfig {
        StmSimConfig {
            device_id: device_id.to_owned(),
            model: "SIM-STM-3000".into(),
            firmware: "1.0.0-sim".into(),
            modules: ALL_MODULES
                .iter()
                .map(|m| ((*m).to_owned(), ModuleStatus::Ok))
                .collect(),
            consumables: [
                ("debit_card", 120),
                ("ukey", 35),
                ("cheque_book", 10),
                ("deposit_cert", 48),
                ("receipt_paper_pct", 62),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
            cash: Cash {
                cycle_id: format!("{}-1", chrono::Local::now().format("%Y-%m-%d")),
                cassettes: vec![
                    Cassette {
                        id: "C1".into(),
                        denom: 100,
                        count: 1800,
                    },
                    Cassette {
                        id: "C2".into(),
                        denom: 50,
                        count: 400,
                    },
                ],
                deposited: 0,
                dispensed: 0,
            },
            state: DeviceState::SignedOut,
            heartbeat_interval: Duration::from_secs(2),
            ack_timeout: Duration::from_millis(500),
            max_retransmits: 3,
            link_path: None,
            seed: 1,
        }
    }
}

/// Faults injected on what the simulator sends.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Percentage (0–100) of sent bytes with a bit flipped.
    pub corrupt_pct: f64,
    /// Percentage (0–100) of sent packets (ACKs included) lost on the wire.
    pub drop_pct: f64,
    /// The device hangs: it neither sends nor processes anything.
    pub silent: bool,
}

/// What the simulator received and did, for assertions.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Every command delivered (duplicates suppressed), in order.
    pub commands: Vec<Command>,
    /// Every `auth_result` received, in order.
    pub auth_results: Vec<AuthResultArgs>,
    /// Every product card put on the screen (`show_product`), in order; the last one is
    /// on the screen now.
    pub shown: Vec<ShowProductArgs>,
    /// Event ids the box acknowledged.
    pub acked_events: Vec<String>,
    /// How many times a client opened the device and got HELLO.
    pub hellos_sent: usize,
    /// Frames the simulator rejected (NAKed).
    pub rejected: usize,
    /// NAKs received from the box.
    pub naks_received: usize,
}

impl Record {
    /// The last `auth_result` received.
    pub fn last_auth_result(&self) -> Option<&AuthResultArgs> {
        self.auth_results.last()
    }

    /// The code of the product on the screen now, if any.
    pub fn showing(&self) -> Option<&str> {
        self.shown.last().map(|s| s.product.code.as_str())
    }

    /// Ops of the commands received, in order.
    pub fn ops(&self) -> Vec<&str> {
        self.commands.iter().map(|c| c.op.as_str()).collect()
    }
}

#[derive(Debug)]
enum Control {
    Event(Event),
    Module(String, ModuleStatus),
    Consumable(String, u32),
    Cash(Cash),
    State(DeviceState),
    Vanish,
    ComeBack,
    PowerOn,
    Stop,
}

#[derive(Debug)]
struct Shared {
    path: Mutex<PathBuf>,
    record: Mutex<Record>,
    faults: Mutex<Faults>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running STM simulator; dropping it stops the thread and removes the device.
#[derive(Debug)]
pub struct StmSim {
    control: mpsc::Sender<Control>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    device_id: String,
    boot: u64,
    events: AtomicU64,
}

impl StmSim {
    /// Creates the PTY and starts the simulator thread.
    pub fn spawn(config: StmSimConfig) -> Result<StmSim, PtyError> {
        let port = SimPort::open(config.link_path.clone())?;
        let shared = Arc::new(Shared {
            path: Mutex::new(port.path()),
            record: Mutex::default(),
            faults: Mutex::default(),
        });
        let (control, rx) = mpsc::channel();
        let device_id = config.device_id.clone();
        let device = Device::new(config, port, rx, shared.clone());
        let thread = std::thread::Builder::new()
            .name(format!("stm-sim-{device_id}"))
            .spawn(move || device.run())
            .map_err(|e| PtyError::Link {
                path: PathBuf::new(),
                source: e,
            })?;
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Ok(StmSim {
            control,
            shared,
            thread: Some(thread),
            device_id,
            boot,
            events: AtomicU64::new(0),
        })
    }

    /// The device path to open (the stable link if configured).
    pub fn path(&self) -> PathBuf {
        lock(&self.shared.path).clone()
    }

    fn send(&self, c: Control) {
        let _ = self.control.send(c);
    }

    /// Emits an event of any kind; returns its `event_id`.
    pub fn emit(&self, body: EventBody) -> String {
        let n = self.events.fetch_add(1, Ordering::Relaxed) + 1;
        let event_id = format!("{}-{:x}-{n}", self.device_id, self.boot);
        let ts = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        self.send(Control::Event(Event {
            event_id: event_id.clone(),
            ts,
            body,
        }));
        event_id
    }

    /// Emits a `transaction` event; withdrawals and deposits move the cash counters.
    pub fn transaction(&self, txn: Transaction) -> String {
        self.emit(EventBody::Transaction(txn))
    }

    /// Emits a simple successful transaction of `txn_type` and `amount`.
    pub fn simple_transaction(&self, txn_type: TxnType, amount: i64) -> String {
        let n = self.events.load(Ordering::Relaxed) + 1;
        self.transaction(Transaction {
            txn_id: format!("T{:x}{n:04}", self.boot),
            txn_type,
            amount,
            ok: true,
            duration_s: 90,
            product: None,
        })
    }

    /// Emits a successful `wealth_purchase` of `product` for `amount` yuan (a sale the
    /// branch counts for the product's ranking).
    pub fn sale(&self, product: &str, amount: i64) -> String {
        let n = self.events.load(Ordering::Relaxed) + 1;
        self.transaction(Transaction {
            txn_id: format!("T{:x}{n:04}", self.boot),
            txn_type: TxnType::WealthPurchase,
            amount,
            ok: true,
            duration_s: 240,
            product: Some(product.to_owned()),
        })
    }

    /// Emits an `exception` event.
    pub fn exception(&self, code: &str, message: &str) -> String {
        self.emit(EventBody::Exception(Exception {
            code: code.to_owned(),
            message: message.to_owned(),
        }))
    }

    /// Emits an `auth_request` event; the request then awaits an `auth_result` command.
    pub fn auth_request(&self, request: AuthRequest) -> String {
        self.emit(EventBody::AuthRequest(request))
    }

    /// Emits a `consumable_used` event and lowers that consumable's count.
    pub fn consumable_used(&self, item: &str, count: u32) -> String {
        self.emit(EventBody::ConsumableUsed(ConsumableUsed {
            item: item.to_owned(),
            count,
        }))
    }

    /// Sets a module's status (STATUS follows).
    pub fn set_module(&self, module: &str, status: ModuleStatus) {
        self.send(Control::Module(module.to_owned(), status));
    }

    /// Sets a consumable's count (STATUS follows).
    pub fn set_consumable(&self, item: &str, count: u32) {
        self.send(Control::Consumable(item.to_owned(), count));
    }

    /// Replaces the cash position (STATUS follows).
    pub fn set_cash(&self, cash: Cash) {
        self.send(Control::Cash(cash));
    }

    /// Sets the service state (STATUS follows).
    pub fn set_state(&self, state: DeviceState) {
        self.send(Control::State(state));
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// Makes the device hang (or recover): nothing sent, nothing processed.
    pub fn go_silent(&self, silent: bool) {
        lock(&self.shared.faults).silent = silent;
    }

    /// Unplugs the device: the PTY master closes (clients see a hangup) and the stable
    /// link, if any, disappears.
    pub fn vanish(&self) {
        self.send(Control::Vanish);
    }

    /// Plugs the device back in on a new PTY (the stable link points at it again).
    pub fn come_back(&self) {
        self.send(Control::ComeBack);
    }

    /// Powers the device on after a `shutdown` command.
    pub fn power_on(&self) {
        self.send(Control::PowerOn);
    }

    /// A snapshot of what the simulator received.
    pub fn record(&self) -> Record {
        lock(&self.shared.record).clone()
    }

    /// Polls the record every 10 ms until `pred` holds or `timeout` passes.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Record) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&lock(&self.shared.record)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for StmSim {
    fn drop(&mut self) {
        self.send(Control::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Device {
    cfg: StmSimConfig,
    port: SimPort,
    control: mpsc::Receiver<Control>,
    shared: Arc<Shared>,
    engine: Engine,
    rng: Rng,
    state: DeviceState,
    modules: BTreeMap<String, ModuleStatus>,
    consumables: BTreeMap<String, u32>,
    cash: Cash,
    started: Instant,
    pending_auth: BTreeSet<String>,
    /// Events not yet acknowledged, in emission order.
    unacked: Vec<Event>,
    /// Engine token → event id, for the events in the engine.
    event_tokens: HashMap<u64, String>,
    next_token: u64,
    powered: bool,
    next_heartbeat: Instant,
    restart_at: Option<Instant>,
    shutdown_at: Option<Instant>,
    rehello_at: Option<Instant>,
    backoff: Duration,
    out: Vec<Vec<u8>>,
}

impl Device {
    fn new(
        cfg: StmSimConfig,
        port: SimPort,
        control: mpsc::Receiver<Control>,
        shared: Arc<Shared>,
    ) -> Device {
        let now = Instant::now();
        Device {
            engine: Engine::new(Timing {
                ack_timeout: cfg.ack_timeout,
                max_retransmits: cfg.max_retransmits,
            }),
            rng: Rng::new(cfg.seed),
            state: cfg.state,
            modules: cfg.modules.clone(),
            consumables: cfg.consumables.clone(),
            cash: cfg.cash.clone(),
            cfg,
            port,
            control,
            shared,
            started: now,
            pending_auth: BTreeSet::new(),
            unacked: Vec::new(),
            event_tokens: HashMap::new(),
            next_token: 0,
            powered: true,
            next_heartbeat: now,
            restart_at: None,
            shutdown_at: None,
            rehello_at: None,
            backoff: Duration::from_secs(1),
            out: Vec::new(),
        }
    }

    fn run(mut self) {
        let mut buf = [0u8; 2048];
        let mut happened = Vec::new();
        loop {
            let (change, n) = match self.port.poll(&mut buf, Duration::from_millis(5)) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "stm sim pty poll failed");
                    std::thread::sleep(Duration::from_millis(10));
                    (PortChange::None, 0)
                }
            };
            let now = Instant::now();
            while let Ok(c) = self.control.try_recv() {
                if !self.on_control(c, now) {
                    return;
                }
            }
            let silent = lock(&self.shared.faults).silent;
            match change {
                PortChange::Connected if self.powered => self.introduce(now),
                PortChange::Disconnected => self.drop_link(),
                _ => {}
            }
            if self.powered && !silent && self.port.is_connected() {
                if n > 0 {
                    self.engine
                        .on_bytes(&buf[..n], now, &mut self.out, &mut happened);
                }
                self.engine.on_timer(now, &mut self.out, &mut happened);
                self.on_timers(now);
                for h in happened.drain(..) {
                    self.on_happening(h, now);
                }
            }
            self.flush();
        }
    }

    fn next_token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn send(&mut self, msg: Message, now: Instant) {
        let token = self.next_token();
        if let Message::Event(e) = &msg {
            self.event_tokens.insert(token, e.event_id.clone());
        }
        if self.port.is_connected() && self.powered {
            let _ = self.engine.send_reliable(token, msg, now, &mut self.out);
        }
    }

    fn status(&self) -> Status {
        Status {
            state: self.state,
            modules: self.modules.clone(),
            consumables: self.consumables.clone(),
            cash: self.cash.clone(),
        }
    }

    fn status_changed(&mut self, now: Instant) {
        let status = Message::Status(self.status());
        self.send(status, now);
    }

    /// HELLO, STATUS, then every unacknowledged event (same `event_id`).
    fn introduce(&mut self, now: Instant) {
        self.engine.clear();
        self.event_tokens.clear();
        lock(&self.shared.record).hellos_sent += 1;
        let hello = Hello {
            device_id: self.cfg.device_id.clone(),
            model: self.cfg.model.clone(),
            firmware: self.cfg.firmware.clone(),
            modules: self.modules.keys().cloned().collect(),
        };
        self.send(Message::Hello(hello), now);
        self.status_changed(now);
        for event in self.unacked.clone() {
            self.send(Message::Event(event), now);
        }
        self.next_heartbeat = now + self.cfg.heartbeat_interval;
        self.rehello_at = None;
    }

    fn drop_link(&mut self) {
        self.engine.clear();
        self.event_tokens.clear();
    }

    fn on_control(&mut self, c: Control, now: Instant) -> bool {
        match c {
            Control::Event(event) => {
                let changed = self.apply_event(&event.body);
                self.unacked.push(event.clone());
                self.send(Message::Event(event), now);
                if changed {
                    self.status_changed(now);
                }
            }
            Control::Module(m, s) => {
                self.modules.insert(m, s);
                self.status_changed(now);
            }
            Control::Consumable(item, n) => {
                self.consumables.insert(item, n);
                self.status_changed(now);
            }
            Control::Cash(cash) => {
                self.cash = cash;
                self.status_changed(now);
            }
            Control::State(s) => {
                self.state = s;
                self.status_changed(now);
            }
            Control::Vanish => {
                self.port.vanish();
                self.drop_link();
            }
            Control::ComeBack => {
                if let Err(e) = self.port.come_back() {
                    tracing::warn!(error = %e, "stm sim cannot come back");
                }
                *lock(&self.shared.path) = self.port.path();
            }
            Control::PowerOn => {
                if !self.powered {
                    self.powered = true;
                    self.reboot(now);
                }
            }
            Control::Stop => return false,
        }
        true
    }

    /// Moves counters the way the real machine would; true when STATUS changed.
    fn apply_event(&mut self, body: &EventBody) -> bool {
        match body {
            EventBody::Transaction(t) if t.ok => match t.txn_type {
                TxnType::Withdrawal => {
                    self.cash.dispensed += t.amount.unsigned_abs();
                    let mut left = t.amount.unsigned_abs();
                    for c in &mut self.cash.cassettes {
                        let take = (left / u64::from(c.denom.max(1))).min(u64::from(c.count));
                        c.count -= take as u32;
                        left -= take * u64::from(c.denom);
                    }
                    true
                }
                TxnType::Deposit => {
                    self.cash.deposited += t.amount.unsigned_abs();
                    true
                }
                _ => false,
            },
            EventBody::AuthRequest(r) => {
                self.pending_auth.insert(r.request_id.clone());
                false
            }
            EventBody::ConsumableUsed(u) => match self.consumables.get_mut(&u.item) {
                Some(n) => {
                    *n = n.saturating_sub(u.count);
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    fn reboot(&mut self, now: Instant) {
        self.engine.clear();
        self.engine.set_next_seq(0);
        self.state = DeviceState::SignedOut;
        self.started = now;
        if self.port.is_connected() {
            self.introduce(now);
        }
    }

    fn on_timers(&mut self, now: Instant) {
        if self.restart_at.is_some_and(|t| now >= t) {
            self.restart_at = None;
            self.reboot(now);
        }
        if self.shutdown_at.is_some_and(|t| now >= t) {
            self.shutdown_at = None;
            self.powered = false;
            self.engine.clear();
            return;
        }
        if self.rehello_at.is_some_and(|t| now >= t) {
            self.introduce(now);
        }
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.cfg.heartbeat_interval;
            let hb = Message::Heartbeat(Heartbeat {
                state: self.state,
                uptime_s: now.duration_since(self.started).as_secs(),
            });
            self.engine.send_unreliable(&hb, &mut self.out);
        }
    }

    fn on_happening(&mut self, h: Happening, now: Instant) {
        match h {
            Happening::Alive => self.backoff = Duration::from_secs(1),
            Happening::Delivered(Message::Command(cmd), _) => self.on_command(cmd, now),
            Happening::Delivered(other, _) => {
                tracing::debug!(?other, "stm sim ignores message");
            }
            Happening::Acked(token) => {
                if let Some(id) = self.event_tokens.remove(&token) {
                    self.unacked.retain(|e| e.event_id != id);
                    lock(&self.shared.record).acked_events.push(id);
                }
            }
            Happening::GaveUp(_) => {
                // The link is down: re-introduce ourselves after a back-off.
                self.engine.clear();
                self.event_tokens.clear();
                self.rehello_at = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(Duration::from_secs(30));
            }
            Happening::Rejected(_) => lock(&self.shared.record).rejected += 1,
            Happening::NakReceived(_) => lock(&self.shared.record).naks_received += 1,
        }
    }

    fn on_command(&mut self, cmd: Command, now: Instant) {
        lock(&self.shared.record).commands.push(cmd.clone());
        let mut changed = false;
        let outcome: Result<Option<Value>, String> = match cmd.op.as_str() {
            "get_status" => {
                changed = true;
                Ok(serde_json::to_value(self.status()).ok())
            }
            "sign_in" | "resume" => {
                self.state = DeviceState::InService;
                changed = true;
                Ok(None)
            }
            "sign_out" => {
                self.state = DeviceState::SignedOut;
                changed = true;
                Ok(None)
            }
            "pause" => {
                self.state = DeviceState::Paused;
                changed = true;
                Ok(None)
            }
            "restart" => {
                self.restart_at = Some(now + Duration::from_millis(200));
                Ok(None)
            }
            "shutdown" => {
                self.shutdown_at = Some(now + Duration::from_millis(200));
                Ok(None)
            }
            "screenshot" => {
                let png = base64::engine::general_purpose::STANDARD.encode(SCREENSHOT_PNG);
                Ok(Some(json!({ "png_base64": png })))
            }
            op @ ("module_enable" | "module_disable") => {
                match serde_json::from_value::<ModuleArgs>(cmd.args.clone()) {
                    Err(_) => Err("missing module".to_owned()),
                    Ok(args) => match self.modules.get_mut(&args.module) {
                        None => Err(format!("unknown module {}", args.module)),
                        Some(status) => {
                            *status = if op == "module_enable" {
                                ModuleStatus::Ok
                            } else {
                                ModuleStatus::Disabled
                            };
                            changed = true;
                            Ok(None)
                        }
                    },
                }
            }
            "auth_result" => match serde_json::from_value::<AuthResultArgs>(cmd.args.clone()) {
                Err(e) => Err(format!("invalid args: {e}")),
                Ok(args) => {
                    let known = self.pending_auth.remove(&args.request_id);
                    let id = args.request_id.clone();
                    lock(&self.shared.record).auth_results.push(args);
                    if known {
                        Ok(None)
                    } else {
                        Err(format!("unknown request_id {id}"))
                    }
                }
            },
            "show_product" => match serde_json::from_value::<ShowProductArgs>(cmd.args.clone()) {
                Err(e) => Err(format!("invalid args: {e}")),
                Ok(args) if args.product.code.is_empty() || args.product.name_zh.is_empty() => {
                    Err("invalid args: the product needs a code and a name".to_owned())
                }
                Ok(args) => {
                    let code = args.product.code.clone();
                    tracing::info!(
                        device = %self.cfg.device_id,
                        product = %code,
                        ticket = args.ticket.as_deref().unwrap_or("-"),
                        "stm sim shows a product on its screen"
                    );
                    lock(&self.shared.record).shown.push(args);
                    serde_json::to_value(Showing { showing: code })
                        .map(Some)
                        .map_err(|e| e.to_string())
                }
            },
            _ => Err("unknown op".to_owned()),
        };
        let result = match outcome {
            Ok(data) => CommandResult {
                cmd_id: cmd.cmd_id,
                ok: true,
                error: None,
                data,
            },
            Err(error) => CommandResult {
                cmd_id: cmd.cmd_id,
                ok: false,
                error: Some(error),
                data: None,
            },
        };
        self.send(Message::Result(result), now);
        if changed {
            self.status_changed(now);
        }
    }

    /// Writes pending frames through the fault injector.
    fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let faults = *lock(&self.shared.faults);
        for mut frame in std::mem::take(&mut self.out) {
            if faults.silent || !self.powered || self.rng.chance(faults.drop_pct) {
                continue;
            }
            for b in &mut frame {
                if self.rng.chance(faults.corrupt_pct) {
                    *b ^= 1 << (self.rng.next_u64() % 8);
                }
            }
            if let Err(e) = self.port.write(&frame) {
                tracing::debug!(error = %e, "stm sim write failed");
            }
        }
    }
}

/// A sample `auth_request` for demos and tests.
pub fn sample_auth_request(request_id: &str, amount: i64) -> AuthRequest {
    let mut elements = Map::new();
    elements.insert("amount".into(), json!(amount));
    elements.insert("payee".into(), json!("6222 **** **** 0001"));
    AuthRequest {
        request_id: request_id.to_owned(),
        txn_type: TxnType::Withdrawal,
        customer: super::message::AuthCustomer {
            name: "张三".into(),
            id_number_masked: "3201**********1234".into(),
        },
        elements,
        reason: "amount_over_limit".into(),
    }
}
