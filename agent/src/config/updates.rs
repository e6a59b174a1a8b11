//! `[updates]`: how the box takes updates from head office (`model.update`,
//! `config.update`).
//!
//! ```toml
//! [updates]
//! ca_file = "/etc/branchd/artifacts-ca.pem"  # the bank's artifact server CA; system roots when absent
//! allowed_hosts = ["artifacts.bank.example"] # hosts model files may come from; any when absent
//! max_model_mb = 1024                        # larger files are refused before any download
//! download_attempts = 5                      # connections tried (each resuming) before giving up
//! retry_s = 10                               # wait between two attempts
//! config_grace_s = 120                       # a config change is confirmed (or rolled back) after this
//! package = "branchd"                        # the Debian package of this daemon
//! apt_cache = "apt-cache"                    # how installed and candidate versions are read
//! software_dir = "/var/lib/branchd/software" # requests to branchd-update.service; <data_dir>/software
//! software_check_min = 360                   # how often the versions are read
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Section, secs};

/// `[updates]`
#[derive(Debug, Clone, PartialEq)]
pub struct UpdatesConfig {
    /// PEM CA bundle of the artifact server; the system roots when absent.
    pub ca_file: Option<PathBuf>,
    /// Hosts model files may be downloaded from (lower-case); any host when empty.
    pub allowed_hosts: Vec<String>,
    /// Largest model file accepted, in bytes.
    pub max_model_bytes: u64,
    /// Connections tried, each resuming where the last one stopped, before a download fails.
    pub download_attempts: u32,
    /// Wait between two attempts.
    pub retry: Duration,
    /// How long a config change from head office runs before it is confirmed or rolled
    /// back.
    pub config_grace: Duration,
    /// The Debian package of this daemon.
    pub package: String,
    /// The `apt-cache` command that tells installed and candidate versions.
    pub apt_cache: PathBuf,
    /// Where `software.update` requests go; `<data_dir>/software` when absent.
    pub software_dir: Option<PathBuf>,
    /// How often installed and candidate versions are read.
    pub software_check: Duration,
}

impl UpdatesConfig {
    /// The directory `branchd-update.path` watches.
    pub fn software_dir(&self, data_dir: &Path) -> PathBuf {
        self.software_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("software"))
    }
}

impl Default for UpdatesConfig {
    fn default() -> Self {
        UpdatesConfig {
            ca_file: None,
            allowed_hosts: Vec::new(),
            max_model_bytes: 1024 * 1024 * 1024,
            download_attempts: 5,
            retry: Duration::from_secs(10),
            config_grace: Duration::from_secs(120),
            package: "branchd".into(),
            apt_cache: PathBuf::from("apt-cache"),
            software_dir: None,
            software_check: Duration::from_secs(6 * 3600),
        }
    }
}

/// Read `[updates]` (absent: the defaults).
pub fn read(root: &mut Section<'_, '_>) -> Option<UpdatesConfig> {
    let mut u = UpdatesConfig::default();
    let Some(mut s) = root.opt_table("updates") else {
        return Some(u);
    };
    u.ca_file = s.opt_str("ca_file").map(PathBuf::from);
    if let Some(hosts) = s.opt_str_list("allowed_hosts") {
        for h in &hosts {
            if h.is_empty() || h.contains(['/', ':', '@', ' ']) {
                s.problem("allowed_hosts", format!("`{h}` is not a host name"));
            }
        }
        u.allowed_hosts = hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
    }
    if let Some(mb) = s.opt_int("max_model_mb", 1..=16 * 1024) {
        u.max_model_bytes = mb as u64 * 1024 * 1024;
    }
    if let Some(n) = s.opt_int("download_attempts", 1..=100) {
        u.download_attempts = n as u32;
    }
    u.retry = secs(&mut s, "retry_s", 10, 3600);
    u.config_grace = secs(&mut s, "config_grace_s", 120, 86_400);
    if let Some(p) = s.opt_str("package") {
        if !is_package(&p) {
            s.problem("package", format!("`{p}` is not a Debian package name"));
        }
        u.package = p;
    }
    if let Some(c) = s.opt_str("apt_cache") {
        u.apt_cache = PathBuf::from(c);
    }
    u.software_dir = s.opt_str("software_dir").map(PathBuf::from);
    if let Some(m) = s.opt_int("software_check_min", 1..=7 * 24 * 60) {
        u.software_check = Duration::from_secs(m as u64 * 60);
    }
    s.finish();
    Some(u)
}

/// A Debian package name: lower-case letters, digits, `+`, `-`, `.`; two or more.
fn is_package(p: &str) -> bool {
    p.len() >= 2
        && p.as_bytes()[0].is_ascii_alphanumeric()
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}
