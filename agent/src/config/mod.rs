//! The daemon's configuration: a TOML file, parsed and validated completely before any
//! port is bound or device opened (invariant 4).
//!
//! The fixed keys are those of the interface contract; every other key has a default, so a
//! file with only the fixed keys is valid. Unknown keys are errors. See
//! `docs/configuration.md` and `systemd/branchd.example.toml`.

mod reader;

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::FixedOffset;

pub use reader::{Diagnostics, Problem, Section};

/// The demo's embedded configuration (device paths are filled in by `branchd demo`).
pub const DEMO_CONFIG: &str = include_str!("demo.toml");

/// A whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[branch]`
    pub branch: Branch,
    /// `[http]`
    pub http: Http,
    /// `[mqtt]`; absent: the box runs standalone and keeps its outbox.
    pub mqtt: Option<Mqtt>,
    /// `[[devices]]`
    pub devices: Vec<Device>,
    /// `[[services]]`
    pub services: Vec<Service>,
    /// `[[counters]]`
    pub counters: Vec<Counter>,
    /// `[[cameras]]`
    pub cameras: Vec<Camera>,
    /// `[log]`
    pub log: Log,
    /// `[daemon]`
    pub daemon: Daemon,
    /// `[models]`
    pub models: Models,
    /// `[queue]`: the lobby queue's rules and the ticket printer's polling.
    pub queue: QueueConfig,
    /// `[stm]`: timeouts and alert thresholds of the smart teller machines.
    pub stm: StmRules,
    /// `[id_reader]`: the lobby ID card reader.
    pub id_reader: IdReaderRules,
    /// `[ocr]`
    pub ocr: Ocr,
    /// `[orders]`: step templates and timer defaults of head-office orders.
    pub orders: crate::orders::config::OrdersConfig,
    /// `[faces]`: VIP recognition from the cameras.
    pub faces: crate::vision::config::FacesConfig,
}

/// `[branch]`: who this box is.
#[derive(Debug, Clone)]
pub struct Branch {
    /// Branch id: MQTT client id suffix and topic part.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Bank name printed on tickets.
    pub bank_name: String,
    /// Where the database and retained files live.
    pub data_dir: PathBuf,
    /// The branch's local time offset (daily numbering, opening hours); default +08:00.
    pub utc_offset: FixedOffset,
}

/// `[http]`: the PAD API.
#[derive(Debug, Clone)]
pub struct Http {
    /// Listen address.
    pub listen: SocketAddr,
    /// TLS certificate and key (PEM); plain HTTP when absent.
    pub tls: Option<Tls>,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
    /// A session ends this long after login, whatever happens.
    pub session_max: Duration,
    /// Failed logins (per user name, and per client address) before a lockout.
    pub login_max_failures: u32,
    /// How long a lockout lasts.
    pub login_lockout: Duration,
    /// Largest accepted JSON body.
    pub max_json_bytes: u64,
}

/// TLS files.
#[derive(Debug, Clone)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[mqtt]`: the head-office link.
#[derive(Debug, Clone)]
pub struct Mqtt {
    /// The URL as written.
    pub url: String,
    /// `mqtts://`: TLS with server verification.
    pub tls: bool,
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Topic prefix, default `bank/<branch.id>`.
    pub prefix: String,
    /// Optional user name.
    pub username: Option<String>,
    /// Optional password file (never the password itself in the config).
    pub password_file: Option<PathBuf>,
    /// Extra CA bundle (PEM) to verify the broker; the system roots otherwise.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// Client key for mutual TLS.
    pub client_key: Option<PathBuf>,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Telemetry period.
    pub telemetry_interval: Duration,
    /// Outbox depth past which telemetry is thinned and `sync.backlog` raised.
    pub outbox_high_water: u64,
    /// Events published and not yet acknowledged, at most.
    pub max_inflight: u16,
}

/// The kinds of device a box drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A smart teller machine (STM-Link).
    Stm,
    /// The ESC/POS ticket printer.
    Printer,
    /// The SAM ID card reader.
    IdReader,
}

impl DeviceKind {
    /// The name used in config and API.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Stm => "stm",
            DeviceKind::Printer => "printer",
            DeviceKind::IdReader => "id_reader",
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[devices]]`
#[derive(Debug, Clone)]
pub struct Device {
    /// Unique id, e.g. `STM-01`.
    pub id: String,
    /// What it is.
    pub kind: DeviceKind,
    /// Serial path (`/dev/serial/by-id/...`), a PTY, or `/dev/usb/lp0` for a printer.
    pub path: String,
    /// Baud rate, default 115200.
    pub baud: u32,
    /// Text encoding of a printer: `gb18030` (default), `gbk`, `utf-8`.
    pub encoding: String,
}

/// `[[services]]`
#[derive(Debug, Clone)]
pub struct Service {
    /// Code used in the API.
    pub code: String,
    /// Ticket prefix letter(s).
    pub prefix: String,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Digits in a ticket number (A001: 3).
    pub number_width: u8,
    /// Weight of this service's tickets in the call order.
    pub priority_weight: f64,
    /// Target wait: a ticket waiting longer raises a queue alert.
    pub target_wait: Duration,
    /// Opening hours in branch-local time (`hours = "08:30-17:00"`); `None`: always open.
    pub hours: Option<(chrono::NaiveTime, chrono::NaiveTime)>,
}

/// `[queue]`: rules of the lobby queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Branch-local hour (0–23) at which daily ticket numbering restarts; default 4.
    pub reset_hour: u32,
    /// After this many priority calls in a row, the next call takes a normal ticket; default 3.
    pub fairness_after: u32,
    /// A called ticket recalled this many times becomes a no-show on the next recall; default 2.
    pub no_show_after_recalls: u32,
    /// Service of tickets issued by an ID card swipe; default the first service.
    pub swipe_service: Option<String>,
    /// Assumed service time until real ones have been recorded; default 300 s.
    pub default_service_time: Duration,
    /// How often the ticket printer's status is polled; default 5 s.
    pub printer_poll: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            reset_hour: 4,
            fairness_after: 3,
            no_show_after_recalls: 2,
            swipe_service: None,
            default_service_time: Duration::from_secs(300),
            printer_poll: Duration::from_secs(5),
        }
    }
}

/// `[[counters]]`
#[derive(Debug, Clone)]
pub struct Counter {
    /// Counter id, e.g. `3`.
    pub id: String,
    /// Services it serves.
    pub services: Vec<String>,
    /// Display name.
    pub name: String,
}

/// `[[cameras]]`
#[derive(Debug, Clone)]
pub struct Camera {
    /// Camera id.
    pub id: String,
    /// RTSP URL, V4L2 device, video file or image folder.
    pub source: String,
    /// Play a video file or image folder again from the start when it ends (`loop`;
    /// for demos and soak runs; live sources always reconnect).
    pub looped: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (journald adds timestamps when it is the sink).
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone)]
pub struct Log {
    /// A `tracing` filter, e.g. `info,branchd=debug`; `RUST_LOG` overrides.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

/// `[daemon]`
#[derive(Debug, Clone)]
pub struct Daemon {
    /// Time given to tasks to finish after SIGTERM before the daemon exits anyway.
    pub shutdown_grace: Duration,
}

/// `[models]`
#[derive(Debug, Clone)]
pub struct Models {
    /// Where fetched models (and the ONNX Runtime library) are.
    pub dir: PathBuf,
}

/// `[stm]`: how the box drives its STMs and when it raises their alerts.
#[derive(Debug, Clone)]
pub struct StmRules {
    /// How long a remote command waits for the device's RESULT (then 504).
    pub command_timeout: Duration,
    /// How long an authorisation task may wait before the timeout alert.
    pub auth_timeout: Duration,
    /// A cassette holding fewer notes than this raises a `device.cassette_low` alert.
    pub cassette_low_notes: u32,
    /// `[stm.consumables_low]`: item → the count under which an alert is raised.
    pub consumables_low: Vec<(String, u32)>,
}

/// The consumables an STM reports, with their default alert thresholds.
pub const STM_CONSUMABLES: &[(&str, u32)] = &[
    ("debit_card", 20),
    ("ukey", 5),
    ("cheque_book", 2),
    ("deposit_cert", 10),
    ("receipt_paper_pct", 10),
];

/// `[id_reader]`: the lobby ID card reader.
#[derive(Debug, Clone)]
pub struct IdReaderRules {
    /// How often the reader is asked for a card.
    pub poll_interval: Duration,
    /// Keep the chip photo (an opaque WLT blob) in the database; dropped by default.
    pub keep_photo: bool,
    /// How long the last card's chip text stays in memory for checking a photo of it
    /// (`chip_check_s`; 0 keeps nothing).
    pub chip_check_window: Duration,
}

/// `[ocr]`: the recognition worker pool.
#[derive(Debug, Clone)]
pub struct Ocr {
    /// Worker threads, each with its own copy of the models.
    pub workers: usize,
    /// Requests that may wait for a worker; more are answered 503 at once.
    pub queue: usize,
    /// ONNX Runtime threads per model run.
    pub threads: usize,
    /// How long uploaded images are kept (`keep_images_min`); zero, the default, keeps none.
    pub keep_images: Duration,
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or its values are wrong.
    #[error("{}", render_problems(.0))]
    Invalid(Vec<Problem>),
}

fn render_problems(problems: &[Problem]) -> String {
    let mut s = format!("{} problem(s) in the config:", problems.len());
    for p in problems {
        s.push_str("\n  ");
        s.push_str(&p.to_string());
    }
    s
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&src).map_err(ConfigError::Invalid)
    }

    /// Parse and validate config text, reporting every problem found.
    pub fn parse(src: &str) -> Result<Config, Vec<Problem>> {
        let doc = match toml_edit::Document::parse(src) {
            Ok(doc) => doc,
            Err(e) => {
                return Err(vec![Problem {
                    key: String::new(),
                    line: e.span().map(|s| reader::line_of(src, s.start)),
                    message: format!("not valid TOML: {}", e.message().trim_end()),
                }]);
            }
        };
        let diags = Diagnostics::new(src);
        let root_table = doc
            .as_item()
            .as_table_like()
            .expect("a document is a table");
        let mut root = Section::root(root_table, &diags);
        let cfg = read_config(&mut root);
        root.finish();
        match cfg {
            Some(cfg) if diags.is_clean() => Ok(cfg),
            _ => {
                let problems = diags.into_problems();
                if problems.is_empty() {
                    // read_config only gives up after reporting; keep that promise visible.
                    Err(vec![Problem {
                        key: String::new(),
                        line: None,
                        message: "invalid config".into(),
                    }])
                } else {
                    Err(problems)
                }
            }
        }
    }

    /// The SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.branch.data_dir.join("branchd.db")
    }

    /// A service by code.
    pub fn service(&self, code: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.code == code)
    }
}

fn read_config(root: &mut Section<'_, '_>) -> Option<Config> {
    let branch = root.req_table("branch").and_then(|mut s| {
        let b = read_branch(&mut s);
        s.finish();
        b
    });
    let http = root.req_table("http").and_then(|mut s| {
        let h = read_http(&mut s);
        s.finish();
        h
    });
    let branch_id = branch.as_ref().map(|b| b.id.clone()).unwrap_or_default();
    let mqtt = match root.opt_table("mqtt") {
        Some(mut s) => {
            let m = read_mqtt(&mut s, &branch_id);
            s.finish();
            Some(m)
        }
        None => Some(None),
    };
    let devices = read_devices(root);
    let services = read_services(root);
    let counters = read_counters(root, services.as_deref());
    let cameras = read_cameras(root);
    let log = read_log(root);
    let daemon = read_daemon(root);
    let models = read_models(root);
    let queue = read_queue(root, services.as_deref());
    let stm = read_stm(root);
    let id_reader = read_id_reader(root);
    let ocr = read_ocr(root);
    let orders = crate::orders::config::read(root);
    let faces = crate::vision::config::read(root);
    Some(Config {
        branch: branch?,
        http: http?,
        mqtt: mqtt?,
        devices: devices?,
        services: services?,
        counters: counters?,
        cameras: cameras?,
        log: log?,
        daemon: daemon?,
        models: models?,
        queue: queue?,
        stm: stm?,
        id_reader: id_reader?,
        ocr: ocr?,
        orders: orders?,
        faces: faces?,
    })
}

fn read_stm(root: &mut Section<'_, '_>) -> Option<StmRules> {
    let mut r = StmRules {
        command_timeout: Duration::from_secs(15),
        auth_timeout: Duration::from_secs(180),
        cassette_low_notes: 200,
        consumables_low: STM_CONSUMABLES
            .iter()
            .map(|(k, v)| ((*k).to_string(), *v))
            .collect(),
    };
    if let Some(mut s) = root.opt_table("stm") {
        r.command_timeout = secs(&mut s, "command_timeout_s", 15, 300);
        r.auth_timeout = secs(&mut s, "auth_timeout_s", 180, 3600);
        if let Some(n) = s.opt_int("cassette_low_notes", 0..=100_000) {
            r.cassette_low_notes = n as u32;
        }
        if let Some(mut t) = s.opt_table("consumables_low") {
            for (item, threshold) in &mut r.consumables_low {
                if let Some(n) = t.opt_int(item, 0..=1_000_000) {
                    *threshold = n as u32;
                }
            }
            t.finish();
        }
        s.finish();
    }
    Some(r)
}

fn read_id_reader(root: &mut Section<'_, '_>) -> Option<IdReaderRules> {
    let mut r = IdReaderRules {
        poll_interval: Duration::from_millis(500),
        keep_photo: false,
        chip_check_window: Duration::from_secs(300),
    };
    if let Some(mut s) = root.opt_table("id_reader") {
        if let Some(ms) = s.opt_int("poll_ms", 50..=10_000) {
            r.poll_interval = Duration::from_millis(ms as u64);
        }
        if let Some(k) = s.opt_bool("keep_photo") {
            r.keep_photo = k;
        }
        if let Some(secs) = s.opt_int("chip_check_s", 0..=3600) {
            r.chip_check_window = Duration::from_secs(secs as u64);
        }
        s.finish();
    }
    Some(r)
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn read_branch(s: &mut Section<'_, '_>) -> Option<Branch> {
    let id = s.req_str("id");
    if let Some(id) = &id {
        if !id.chars().all(is_id_char) || id.len() > 32 {
            s.problem(
                "id",
                "must be 1–32 letters, digits, '-' or '_' (it is part of MQTT topics)",
            );
        }
    }
    let name = s.req_str("name");
    let bank_name = s.opt_str("bank_name").unwrap_or_else(|| "银行".into());
    let data_dir = s.req_str("data_dir").map(PathBuf::from);
    let utc_offset = s
        .opt_parsed("utc_offset", parse_offset)
        .unwrap_or_else(|| FixedOffset::east_opt(8 * 3600).expect("valid offset"));
    Some(Branch {
        id: id?,
        name: name?,
        bank_name,
        data_dir: data_dir?,
        utc_offset,
    })
}

fn parse_offset(s: &str) -> Result<FixedOffset, String> {
    let bad = || format!("`{s}` is not a UTC offset like \"+08:00\"");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let h: i32 = h.parse().map_err(|_| bad())?;
    let m: i32 = m.parse().map_err(|_| bad())?;
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)
}

fn secs(s: &mut Section<'_, '_>, key: &str, default: u64, max: u64) -> Duration {
    Duration::from_secs(
        s.opt_int(key, 1..=max as i64)
            .map(|v| v as u64)
            .unwrap_or(default),
    )
}

fn read_http(s: &mut Section<'_, '_>) -> Option<Http> {
    let listen = match s.req_str("listen") {
        Some(l) => match l.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                s.problem(
                    "listen",
                    format!("`{l}` is not an address like \"0.0.0.0:8443\" or \"[::]:8443\""),
                );
                None
            }
        },
        None => None,
    };
    let cert = s.opt_str("tls_cert").map(PathBuf::from);
    let key = s.opt_str("tls_key").map(PathBuf::from);
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(Tls { cert, key }),
        (None, None) => None,
        (Some(_), None) => {
            s.problem("tls_key", "tls_cert is set but tls_key is missing");
            None
        }
        (None, Some(_)) => {
            s.problem("tls_cert", "tls_key is set but tls_cert is missing");
            None
        }
    };
    let session_idle = Duration::from_secs(
        60 * s
            .opt_int("session_idle_min", 1..=24 * 60)
            .map(|v| v as u64)
            .unwrap_or(8 * 60),
    );
    let session_max = Duration::from_secs(
        3600 * s
            .opt_int("session_max_hours", 1..=24 * 7)
            .map(|v| v as u64)
            .unwrap_or(12),
    );
    let login_max_failures = s.opt_int("login_max_failures", 1..=100).unwrap_or(5) as u32;
    let login_lockout = secs(s, "login_lockout_s", 300, 86_400);
    let max_json_bytes = s
        .opt_int("max_json_bytes", 1024..=16 * 1024 * 1024)
        .unwrap_or(64 * 1024) as u64;
    Some(Http {
        listen: listen?,
        tls,
        session_idle,
        session_max,
        login_max_failures,
        login_lockout,
        max_json_bytes,
    })
}

/// Split `mqtt://host:port` / `mqtts://host` into (tls, host, port).
pub fn parse_mqtt_url(url: &str) -> Result<(bool, String, u16), String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(format!("`{url}` must start with mqtt:// or mqtts://"));
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') || rest.contains('?') {
        return Err(format!(
            "`{url}` must be mqtt[s]://host[:port] (credentials go in username / password_file)"
        ));
    }
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{url}`: unclosed '['"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| format!("`{url}`: bad port"))?,
            None if after.is_empty() => default_port,
            None => return Err(format!("`{url}`: bad host")),
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| format!("`{url}`: bad port `{p}`"))?,
            ),
            None => (rest.to_string(), default_port),
        }
    };
    if host.is_empty() || port == 0 {
        return Err(format!("`{url}`: missing host or port"));
    }
    Ok((tls, host, port))
}

fn read_mqtt(s: &mut Section<'_, '_>, branch_id: &str) -> Option<Mqtt> {
    let url = s.req_str("url");
    let parsed = url.as_deref().and_then(|u| match parse_mqtt_url(u) {
        Ok(p) => Some(p),
        Err(e) => {
            s.problem("url", e);
            None
        }
    });
    let prefix = s
        .opt_str("prefix")
        .unwrap_or_else(|| format!("bank/{branch_id}"));
    if prefix.is_empty()
        || prefix.starts_with('/')
        || prefix.ends_with('/')
        || prefix.contains(['+', '#'])
    {
        s.problem(
            "prefix",
            "must be a topic prefix without wildcards or leading/trailing '/'",
        );
    }
    let username = s.opt_str("username");
    let password_file = s.opt_str("password_file").map(PathBuf::from);
    let ca_file = s.opt_str("ca_file").map(PathBuf::from);
    let client_cert = s.opt_str("client_cert").map(PathBuf::from);
    let client_key = s.opt_str("client_key").map(PathBuf::from);
    if client_cert.is_some() != client_key.is_some() {
        s.problem(
            "client_key",
            "client_cert and client_key must be set together",
        );
    }
    let keep_alive = secs(s, "keep_alive_s", 30, 3600);
    let telemetry_interval = secs(s, "telemetry_interval_s", 30, 86_400);
    let outbox_high_water = s
        .opt_int("outbox_high_water", 1..=i64::MAX)
        .unwrap_or(100_000) as u64;
    let max_inflight = s.opt_int("max_inflight", 1..=1000).unwrap_or(100) as u16;
    let (tls, host, port) = parsed?;
    if !tls && (ca_file.is_some() || client_cert.is_some()) {
        s.problem(
            "url",
            "TLS files are set but the URL is mqtt:// (plain TCP); use mqtts://",
        );
    }
    Some(Mqtt {
        url: url?,
        tls,
        host,
        port,
        prefix,
        username,
        password_file,
        ca_file,
        client_cert,
        client_key,
        keep_alive,
        telemetry_interval,
        outbox_high_water,
        max_inflight,
    })
}

/// Reports a second use of an id within a list.
struct Unique<'k> {
    what: &'k str,
    seen: HashSet<String>,
}

impl<'k> Unique<'k> {
    fn new(what: &'k str) -> Self {
        Self {
            what,
            seen: HashSet::new(),
        }
    }

    fn check(&mut self, s: &Section<'_, '_>, key: &str, value: &str) -> bool {
        if self.seen.insert(value.to_string()) {
            true
        } else {
            s.problem(key, format!("duplicate {} `{value}`", self.what));
            false
        }
    }
}

const BAUDS: &[i64] = &[
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 921_600,
];

fn read_devices(root: &mut Section<'_, '_>) -> Option<Vec<Device>> {
    let mut ids = Unique::new("device id");
    let mut out = Vec::new();
    let mut ok = true;
    for mut s in root.tables("devices") {
        let id = s.req_str("id");
        if let Some(id) = &id {
            if !id.chars().all(is_id_char) {
                s.problem("id", "must be letters, digits, '-' or '_'");
                ok = false;
            }
            ok &= ids.check(&s, "id", id);
        }
        let kind = s.req_str("kind").and_then(|k| match k.as_str() {
            "stm" => Some(DeviceKind::Stm),
            "printer" => Some(DeviceKind::Printer),
            "id_reader" => Some(DeviceKind::IdReader),
            other => {
                s.problem(
                    "kind",
                    format!("unknown kind `{other}` (expected stm, printer or id_reader)"),
                );
                None
            }
        });
        let path = s.req_str("path");
        let baud = match s.opt_int("baud", 1..=4_000_000) {
            Some(b) if !BAUDS.contains(&b) => {
                s.problem("baud", format!("{b} is not a standard baud rate"));
                None
            }
            Some(b) => Some(b as u32),
            None => Some(115_200),
        };
        let encoding = s.opt_str("encoding");
        if let Some(e) = &encoding {
            if kind != Some(DeviceKind::Printer) {
                s.problem("encoding", "only a printer has an encoding");
            } else if !["gb18030", "gbk", "utf-8"].contains(&e.as_str()) {
                s.problem(
                    "encoding",
                    format!("unknown encoding `{e}` (gb18030, gbk or utf-8)"),
                );
            }
        }
        s.finish();
        match (id, kind, path, baud) {
            (Some(id), Some(kind), Some(path), Some(baud)) => out.push(Device {
                id,
                kind,
                path,
                baud,
                encoding: encoding.unwrap_or_else(|| "gb18030".into()),
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_services(root: &mut Section<'_, '_>) -> Option<Vec<Service>> {
    let mut codes = Unique::new("service code");
    let mut prefixes = Unique::new("ticket prefix");
    let mut out = Vec::new();
    let mut ok = true;
    for mut s in root.tables("services") {
        let code = s.req_str("code");
        if let Some(c) = &code {
            if !c
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
            {
                s.problem("code", "must be lower-case letters, digits or '_'");
                ok = false;
            }
            ok &= codes.check(&s, "code", c);
        }
        let prefix = s.req_str("prefix");
        if let Some(p) = &prefix {
            if p.len() > 2 || !p.chars().all(|c| c.is_ascii_uppercase()) {
                s.problem("prefix", "must be one or two capital letters");
                ok = false;
            }
            ok &= prefixes.check(&s, "prefix", p);
        }
        let name = s.req_str("name");
        let name_en = s.opt_str("name_en");
        let number_width = s.opt_int("number_width", 2..=5).unwrap_or(3) as u8;
        let priority_weight = s.opt_float("priority_weight", 0.1..=10.0).unwrap_or(1.0);
        let target_wait = Duration::from_secs(
            60 * s
                .opt_int("target_wait_min", 1..=600)
                .map(|v| v as u64)
                .unwrap_or(15),
        );
        let hours = s.opt_parsed("hours", parse_hours);
        s.finish();
        match (code, prefix, name) {
            (Some(code), Some(prefix), Some(name)) => out.push(Service {
                name_en: name_en.unwrap_or_else(|| code.clone()),
                code,
                prefix,
                name,
                number_width,
                priority_weight,
                target_wait,
                hours,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_counters(root: &mut Section<'_, '_>, services: Option<&[Service]>) -> Option<Vec<Counter>> {
    let mut ids = Unique::new("counter id");
    let mut out = Vec::new();
    let mut ok = true;
    for mut s in root.tables("counters") {
        let id = s.req_str("id");
        if let Some(id) = &id {
            ok &= ids.check(&s, "id", id);
        }
        let list = s.opt_str_list("services");
        match &list {
            None => {
                if !s.has("services") {
                    s.problem(
                        "services",
                        "missing required key (expected a list of service codes)",
                    );
                }
                ok = false;
            }
            Some(l) if l.is_empty() => {
                s.problem("services", "a counter must serve at least one service");
                ok = false;
            }
            Some(l) => {
                if let Some(services) = services {
                    for code in l {
                        if !services.iter().any(|sv| &sv.code == code) {
                            s.problem("services", format!("unknown service `{code}`"));
                            ok = false;
                        }
                    }
                }
            }
        }
        let name = s.opt_str("name");
        s.finish();
        match (id, list) {
            (Some(id), Some(services)) => out.push(Counter {
                name: name.unwrap_or_else(|| format!("{id}号窗口")),
                id,
                services,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_cameras(root: &mut Section<'_, '_>) -> Option<Vec<Camera>> {
    let mut ids = Unique::new("camera id");
    let mut out = Vec::new();
    let mut ok = true;
    for mut s in root.tables("cameras") {
        let id = s.req_str("id");
        if let Some(id) = &id {
            ok &= ids.check(&s, "id", id);
        }
        let source = s.req_str("source");
        let looped = s.opt_bool("loop").unwrap_or(false);
        if looped {
            if let Some(src) = &source {
                if crate::vision::camera::SourceKind::of(src).is_live() {
                    s.problem("loop", "only a video file or an image folder can loop");
                }
            }
        }
        s.finish();
        match (id, source) {
            (Some(id), Some(source)) => out.push(Camera { id, source, looped }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

fn read_log(root: &mut Section<'_, '_>) -> Option<Log> {
    let mut log = Log {
        level: "info".into(),
        format: LogFormat::Text,
    };
    if let Some(mut s) = root.opt_table("log") {
        if let Some(level) = s.opt_str("level") {
            if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
                s.problem("level", format!("`{level}` is not a log filter"));
            }
            log.level = level;
        }
        if let Some(f) = s.opt_str("format") {
            match f.as_str() {
                "text" => log.format = LogFormat::Text,
                "json" => log.format = LogFormat::Json,
                other => s.problem("format", format!("`{other}`: expected text or json")),
            }
        }
        s.finish();
    }
    Some(log)
}

fn read_daemon(root: &mut Section<'_, '_>) -> Option<Daemon> {
    let mut d = Daemon {
        shutdown_grace: Duration::from_secs(10),
    };
    if let Some(mut s) = root.opt_table("daemon") {
        d.shutdown_grace = secs(&mut s, "shutdown_grace_s", 10, 600);
        s.finish();
    }
    Some(d)
}

fn parse_hours(s: &str) -> Result<(chrono::NaiveTime, chrono::NaiveTime), String> {
    let bad = || format!("`{s}`: expected opening hours as \"HH:MM-HH:MM\", e.g. \"08:30-17:00\"");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let t = |x: &str| chrono::NaiveTime::parse_from_str(x.trim(), "%H:%M").map_err(|_| bad());
    let (open, close) = (t(a)?, t(b)?);
    if open >= close {
        return Err(format!(
            "`{s}`: the opening time must come before the closing time"
        ));
    }
    Ok((open, close))
}

fn read_queue(root: &mut Section<'_, '_>, services: Option<&[Service]>) -> Option<QueueConfig> {
    let mut q = QueueConfig::default();
    let Some(mut s) = root.opt_table("queue") else {
        return Some(q);
    };
    if let Some(h) = s.opt_int("reset_hour", 0..=23) {
        q.reset_hour = h as u32;
    }
    if let Some(n) = s.opt_int("fairness_after", 1..=50) {
        q.fairness_after = n as u32;
    }
    if let Some(k) = s.opt_int("no_show_after_recalls", 0..=10) {
        q.no_show_after_recalls = k as u32;
    }
    if let Some(code) = s.opt_str("swipe_service") {
        if services.is_some_and(|sv| !sv.iter().any(|x| x.code == code)) {
            s.problem("swipe_service", format!("unknown service `{code}`"));
        }
        q.swipe_service = Some(code);
    }
    if let Some(t) = s.opt_int("default_service_time_s", 10..=7200) {
        q.default_service_time = Duration::from_secs(t as u64);
    }
    if let Some(ms) = s.opt_int("printer_poll_ms", 100..=600_000) {
        q.printer_poll = Duration::from_millis(ms as u64);
    }
    s.finish();
    Some(q)
}

/// The default directory of fetched models.
pub fn default_models_dir() -> PathBuf {
    match std::env::var_os("BRANCHD_MODELS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from("/var/lib/branchd/models"),
    }
}

fn read_models(root: &mut Section<'_, '_>) -> Option<Models> {
    let mut m = Models {
        dir: default_models_dir(),
    };
    if let Some(mut s) = root.opt_table("models") {
        if let Some(d) = s.opt_str("dir") {
            m.dir = PathBuf::from(d);
        }
        s.finish();
    }
    Some(m)
}

fn read_ocr(root: &mut Section<'_, '_>) -> Option<Ocr> {
    let mut o = Ocr {
        workers: 1,
        queue: 4,
        threads: 2,
        keep_images: Duration::ZERO,
    };
    if let Some(mut s) = root.opt_table("ocr") {
        let n = |s: &mut Section<'_, '_>, k: &str, max: i64, d: usize| {
            s.opt_int(k, 1..=max).map_or(d, |v| v as usize)
        };
        o.workers = n(&mut s, "workers", 16, o.workers);
        o.queue = n(&mut s, "queue", 256, o.queue);
        o.threads = n(&mut s, "threads", 16, o.threads);
        if let Some(min) = s.opt_int("keep_images_min", 0..=527_040) {
            o.keep_images = Duration::from_secs(min as u64 * 60);
        }
        s.finish();
    }
    Some(o)
}

#[cfg(test)]
mod tests;
