//! `[branch]`, `[http]`, `[mqtt]`, `[log]`, `[daemon]` and `[models]`: who the box is and how it
//! talks and runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::FixedOffset;

use super::{Section, is_id_char, secs};

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
    /// Failed logins of one user name from one client before a lockout (four times as many
    /// from one client over all names).
    pub login_max_failures: u32,
    /// How long a lockout lasts.
    pub login_lockout: Duration,
    /// Password checks (argon2, 19 MiB each) running at once; more logins answer 503.
    pub login_concurrency: usize,
    /// Largest accepted JSON body.
    pub max_json_bytes: u64,
    /// A TLS handshake, and each request's head, must arrive within this.
    pub header_timeout: Duration,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// Open connections from one client address at most.
    pub max_connections_per_client: usize,
    /// Where customers reach the box (scheme, host, optional port and path, no trailing
    /// slash): the QR codes on tickets and receipts open `<public_url>/c/<token>`. Default:
    /// the listen address (`branchd.local` when it listens on every address).
    pub public_url: String,
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
    /// Head-office commands older than this (by their envelope's `ts`) are refused.
    pub command_max_age: Duration,
    /// Device commands (`device.command`) older than this are refused: a `shutdown`
    /// queued through an outage must not run on reconnect.
    pub device_command_max_age: Duration,
    /// Telemetry period.
    pub telemetry_interval: Duration,
    /// Outbox depth past which telemetry is thinned and `sync.backlog` raised.
    pub outbox_high_water: u64,
    /// Events published and not yet acknowledged, at most.
    pub max_inflight: u16,
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
    /// Free space in the data dir below which `storage.low` is raised (bytes).
    pub min_free: u64,
    /// Space held in `data_dir/reserve` and given back when the disk fills, so that the
    /// alert saying so, and sign-outs, can still be written (bytes).
    pub reserve: u64,
    /// How often free space is looked at.
    pub storage_check: Duration,
    /// `storage.headroom` is raised when the data's growth of the last day would fill the
    /// disk down to `min_free` in fewer days than this.
    pub min_headroom_days: u32,
}

/// `[models]`
#[derive(Debug, Clone)]
pub struct Models {
    /// Where fetched models (and the ONNX Runtime library) are.
    pub dir: PathBuf,
}

pub(super) fn read_branch(s: &mut Section<'_, '_>) -> Option<Branch> {
    let id = s.req_str("id");
    if let Some(id) = &id
        && (!id.chars().all(is_id_char) || id.len() > 32)
    {
        s.problem(
            "id",
            "must be 1–32 letters, digits, '-' or '_' (it is part of MQTT topics)",
        );
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

pub(super) fn parse_offset(s: &str) -> Result<FixedOffset, String> {
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

pub(super) fn read_http(s: &mut Section<'_, '_>) -> Option<Http> {
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
    let login_concurrency = s.opt_int("login_concurrency", 1..=16).unwrap_or(2) as usize;
    let max_json_bytes = s
        .opt_int("max_json_bytes", 1024..=16 * 1024 * 1024)
        .unwrap_or(64 * 1024) as u64;
    let header_timeout = secs(s, "header_timeout_s", 10, 300);
    let max_connections = s.opt_int("max_connections", 16..=16_384).unwrap_or(512) as usize;
    let max_connections_per_client = s
        .opt_int("max_connections_per_client", 4..=16_384)
        .unwrap_or(64) as usize;
    let public_url = match s.opt_str("public_url") {
        Some(u) => match check_public_url(&u) {
            Ok(u) => Some(u),
            Err(why) => {
                s.problem("public_url", why);
                None
            }
        },
        None => listen.map(|l| default_public_url(l, tls.is_some())),
    };
    Some(Http {
        public_url: public_url?,
        listen: listen?,
        tls,
        session_idle,
        session_max,
        login_max_failures,
        login_lockout,
        login_concurrency,
        max_json_bytes,
        header_timeout,
        max_connections,
        max_connections_per_client,
    })
}

/// A configured `public_url`, without its trailing slash.
fn check_public_url(u: &str) -> Result<String, String> {
    let u = u.trim_end_matches('/');
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("`{u}` must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty()
        || u.contains(['?', '#', '@', ' '])
        || !u.is_ascii()
        || u.chars().any(|c| c.is_ascii_control())
    {
        return Err(format!(
            "`{u}` must be http[s]://host[:port][/path], without a query, fragment or credentials"
        ));
    }
    Ok(u.to_string())
}

/// The public URL when none is configured: the listen address, or `branchd.local` at its
/// port when the box listens on every address.
fn default_public_url(listen: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    if listen.ip().is_unspecified() {
        format!("{scheme}://branchd.local:{}", listen.port())
    } else {
        format!("{scheme}://{listen}")
    }
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

pub(super) fn read_mqtt(s: &mut Section<'_, '_>, branch_id: &str) -> Option<Mqtt> {
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
    let command_max_age = secs(s, "command_max_age_s", 7 * 86_400, 90 * 86_400);
    let device_command_max_age = secs(s, "device_command_max_age_s", 300, 86_400);
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
        command_max_age,
        device_command_max_age,
        telemetry_interval,
        outbox_high_water,
        max_inflight,
    })
}

pub(super) fn read_log(root: &mut Section<'_, '_>) -> Option<Log> {
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

pub(super) fn read_daemon(root: &mut Section<'_, '_>) -> Option<Daemon> {
    const MIB: u64 = 1 << 20;
    let mut d = Daemon {
        shutdown_grace: Duration::from_secs(10),
        min_free: 512 * MIB,
        reserve: 32 * MIB,
        storage_check: Duration::from_secs(30),
        min_headroom_days: 14,
    };
    if let Some(mut s) = root.opt_table("daemon") {
        d.shutdown_grace = secs(&mut s, "shutdown_grace_s", 10, 600);
        if let Some(v) = s.opt_int("min_free_mb", 1..=1 << 20) {
            d.min_free = v as u64 * MIB;
        }
        if let Some(v) = s.opt_int("reserve_mb", 0..=4096) {
            d.reserve = v as u64 * MIB;
        }
        d.storage_check = secs(&mut s, "storage_check_s", 30, 3600);
        if let Some(v) = s.opt_int("min_headroom_days", 1..=3650) {
            d.min_headroom_days = v as u32;
        }
        s.finish();
    }
    Some(d)
}

/// The default directory of fetched models.
pub fn default_models_dir() -> PathBuf {
    match std::env::var_os("BRANCHD_MODELS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from("/var/lib/branchd/models"),
    }
}

pub(super) fn read_models(root: &mut Section<'_, '_>) -> Option<Models> {
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
