//! The daemon's configuration: a TOML file, parsed and validated completely before any
//! port is bound or device opened (invariant 4).
//!
//! The fixed keys are those of the interface contract; every other key has a default, so a
//! file with only the fixed keys is valid. Unknown keys are errors. See
//! `docs/configuration.md` and `systemd/branchd.example.toml`. Each section is read by its
//! own file: [`branch`] (branch, http, mqtt, log, daemon, models), [`devices`] (devices,
//! stm, id_reader, cameras), [`queue`] (services, counters, queue), [`orders`], [`faces`],
//! [`ocr`], [`marketing`] (customers, rights), [`stats`], [`updates`].

pub mod branch;
pub mod devices;
pub mod faces;
pub mod marketing;
pub mod ocr;
pub mod orders;
pub mod queue;
mod reader;
pub mod retention;
pub mod stats;
pub mod updates;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use branch::{
    Branch, Daemon, Http, Log, LogFormat, Models, Mqtt, Tls, default_models_dir, parse_mqtt_url,
};
pub use devices::{
    Camera, Device, DeviceKind, IdReaderRules, STM_CONSUMABLES, SourceKind, StmRules,
};
pub use ocr::Ocr;
pub use queue::{Counter, QueueConfig, Service};
pub use reader::{Diagnostics, Problem, Section};
pub use retention::Retention;
pub use stats::{DayKind, StatsConfig};

/// Exit code for bad usage and bad config (sysexits EX_USAGE).
pub const EX_USAGE: u8 = 64;

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
    pub orders: orders::OrdersConfig,
    /// `[faces]`: VIP recognition from the cameras.
    pub faces: faces::FacesConfig,
    /// `[customers]`: recognising customers by ID card, and their marks.
    pub customers: marketing::CustomersConfig,
    /// `[rights]`: the key head office signs coupons with.
    pub rights: marketing::RightsConfig,
    /// `[stats]`: how long roll-ups are kept; the branch's calendar.
    pub stats: StatsConfig,
    /// `[retention]`: how long finished records are kept.
    pub retention: Retention,
    /// `[updates]`: where model files from head office may come from.
    pub updates: updates::UpdatesConfig,
    /// The file this config was read from (`None`: parsed from text, e.g. the demo's);
    /// `config.update` edits it.
    pub source: Option<PathBuf>,
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
        let mut cfg = Config::parse(&src).map_err(ConfigError::Invalid)?;
        cfg.source = Some(path.to_path_buf());
        let problems = cfg.check_files();
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        Ok(cfg)
    }

    /// Problems with the files the config names (TLS certificate and key, the broker's CA,
    /// the client certificate and key, the broker password): each must be a file this
    /// process can read. [`Config::load`] checks them, so a daemon never binds a port only
    /// to fail on a file later.
    pub fn check_files(&self) -> Vec<Problem> {
        let mut files: Vec<(&str, &Path)> = Vec::new();
        if let Some(tls) = &self.http.tls {
            files.push(("http.tls_cert", &tls.cert));
            files.push(("http.tls_key", &tls.key));
        }
        if let Some(m) = &self.mqtt {
            let named = [
                ("mqtt.password_file", &m.password_file),
                ("mqtt.ca_file", &m.ca_file),
                ("mqtt.client_cert", &m.client_cert),
                ("mqtt.client_key", &m.client_key),
            ];
            files.extend(
                named
                    .into_iter()
                    .filter_map(|(k, p)| Some((k, p.as_deref()?))),
            );
        }
        files
            .into_iter()
            .filter_map(|(key, path)| {
                let message = match std::fs::File::open(path).and_then(|f| f.metadata()) {
                    Ok(m) if m.is_file() => return None,
                    Ok(_) => format!("{} is not a file", path.display()),
                    Err(e) => format!("cannot read {}: {e}", path.display()),
                };
                Some(Problem {
                    key: key.to_string(),
                    line: None,
                    message,
                })
            })
            .collect()
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
        let b = branch::read_branch(&mut s);
        s.finish();
        b
    });
    let http = root.req_table("http").and_then(|mut s| {
        let h = branch::read_http(&mut s);
        s.finish();
        h
    });
    let branch_id = branch.as_ref().map(|b| b.id.clone()).unwrap_or_default();
    let mqtt = match root.opt_table("mqtt") {
        Some(mut s) => {
            let m = branch::read_mqtt(&mut s, &branch_id);
            s.finish();
            Some(m)
        }
        None => Some(None),
    };
    let devices = devices::read_devices(root);
    let services = queue::read_services(root);
    let counters = queue::read_counters(root, services.as_deref());
    let cameras = devices::read_cameras(root);
    let log = branch::read_log(root);
    let daemon = branch::read_daemon(root);
    let models = branch::read_models(root);
    let queue = queue::read_queue(root, services.as_deref());
    let stm = devices::read_stm(root);
    let id_reader = devices::read_id_reader(root);
    let ocr = ocr::read_ocr(root);
    let orders = orders::read(root);
    let faces = faces::read(root);
    let customers = marketing::read_customers(root);
    let rights = marketing::read_rights(root);
    let stats = stats::read(root);
    let retention = retention::read(root);
    let updates = updates::read(root);
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
        customers: customers?,
        rights: rights?,
        stats: stats?,
        retention: retention?,
        updates: updates?,
        source: None,
    })
}

pub(super) fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

pub(super) fn secs(s: &mut Section<'_, '_>, key: &str, default: u64, max: u64) -> Duration {
    Duration::from_secs(
        s.opt_int(key, 1..=max as i64)
            .map(|v| v as u64)
            .unwrap_or(default),
    )
}

/// Reports a second use of an id within a list.
pub(super) struct Unique<'k> {
    what: &'k str,
    seen: HashSet<String>,
}

impl<'k> Unique<'k> {
    pub(super) fn new(what: &'k str) -> Self {
        Self {
            what,
            seen: HashSet::new(),
        }
    }

    pub(super) fn check(&mut self, s: &Section<'_, '_>, key: &str, value: &str) -> bool {
        if self.seen.insert(value.to_string()) {
            true
        } else {
            s.problem(key, format!("duplicate {} `{value}`", self.what));
            false
        }
    }
}

#[cfg(test)]
mod tests;
