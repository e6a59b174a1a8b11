//! Daemon updates through the bank's apt mirror. The daemon stays unprivileged: it only
//! reads which version is installed and which apt would install (`apt-cache policy`, for
//! telemetry), and for `software.update` writes a request file that a privileged one-shot
//! unit (`branchd-update.path` → `branchd-update.service` → `scripts/branchd-update`) picks
//! up. The script installs the version, rolls back to the previous one if the new daemon
//! does not become active, and leaves a result file that the daemon reports as an event
//! when it next starts (or sees it).
//!
//! Files in `[updates] software_dir` (default `<data_dir>/software`): `request.json`
//! (`{"command","package","version"}`, written by the daemon), `result.json`
//! (`{"ok","code","package","version","previous","installed","detail","request"}`, written
//! by the script, `request` being the request as it was).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value, json};

use crate::clock::rfc3339;
use crate::command::Fields;
use crate::config::Config;
use crate::core::Core;
use crate::store::{StoreError, Tx};

/// Installed and candidate version of a package, as `apt-cache policy` tells them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Versions {
    /// `None`: not installed.
    pub installed: Option<String>,
    /// `None`: apt knows no version to install.
    pub candidate: Option<String>,
}

/// Read `apt-cache policy PACKAGE` output.
pub fn parse_policy(out: &str) -> Versions {
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .filter(|v| !v.is_empty() && v != "(none)")
    };
    Versions {
        installed: field("Installed:"),
        candidate: field("Candidate:"),
    }
}

/// Run `apt-cache policy` (the command of `[updates] apt_cache`) for the package.
pub fn query(cfg: &Config) -> Result<Versions, String> {
    let u = &cfg.updates;
    let out = std::process::Command::new(&u.apt_cache)
        .args(["policy", &u.package])
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", u.apt_cache.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} policy {} failed: {}",
            u.apt_cache.display(),
            u.package,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_policy(&String::from_utf8_lossy(&out.stdout)))
}

/// The versions for telemetry (`null` before the first check).
pub fn telemetry(c: &Connection) -> Result<Value, StoreError> {
    Ok(c.query_row(
        "SELECT installed, candidate, checked_at FROM updates_software WHERE package = 'self'",
        [],
        |r| {
            Ok(json!({
                "installed": r.get::<_, Option<String>>(0)?,
                "candidate": r.get::<_, Option<String>>(1)?,
                "checked_at": r.get::<_, String>(2)?,
            }))
        },
    )
    .optional()?
    .unwrap_or(Value::Null))
}

/// Whether `v` is a Debian version (epoch, upstream, revision; no shell metacharacter).
pub fn is_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.as_bytes()[0].is_ascii_digit()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+-~:".contains(&b))
}

/// Read `software.update`'s data: `version`.
pub fn parse(data: &Map<String, Value>) -> Result<String, String> {
    let mut f = Fields::new(data);
    let version = f.string("version", 64);
    if let Some(v) = &version
        && !is_version(v)
    {
        f.problem(format!("`version`: `{v}` is not a Debian package version"));
    }
    f.finish()?;
    Ok(version.unwrap_or_default())
}

fn request_path(cfg: &Config) -> PathBuf {
    cfg.updates
        .software_dir(&cfg.branch.data_dir)
        .join("request.json")
}

fn result_path(cfg: &Config) -> PathBuf {
    cfg.updates
        .software_dir(&cfg.branch.data_dir)
        .join("result.json")
}

/// Write the request for the one-shot unit (atomically). Refused while another request
/// waits. Off the async runtime.
pub fn write_request(cfg: &Config, command: &str, version: &str) -> Result<(), String> {
    let path = request_path(cfg);
    if path.exists() {
        return Err("another software update is waiting to be installed".into());
    }
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let body = json!({"command": command, "package": cfg.updates.package, "version": version});
    let tmp = dir.join("request.json.new");
    std::fs::write(&tmp, body.to_string())
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Record the request (the command's transaction).
pub fn record(tx: &mut Tx<'_>, id: &str, version: &str) -> Result<(), StoreError> {
    tx.emit(
        "software.update.requested",
        json!({"command": id, "version": version}),
    )?;
    Ok(())
}

/// Check the versions now and then, and report the one-shot unit's result when there is
/// one (at start, after the package upgrade restarted the daemon; and while it runs).
pub async fn watch(core: Core) {
    let mut next_check = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_check {
            next_check = tokio::time::Instant::now() + core.cfg.updates.software_check;
            let cfg = core.cfg.clone();
            // apt-cache may take seconds on a busy box; a stop does not wait for it
            let checked = tokio::select! {
                _ = core.cancel.cancelled() => return,
                r = tokio::task::spawn_blocking(move || query(&cfg)) => r,
            };
            match checked {
                Ok(Ok(v)) => {
                    let r = core
                        .store
                        .write(move |tx| {
                            tx.conn().execute(
                                "INSERT INTO updates_software(package, installed, candidate, checked_at) \
                                 VALUES ('self', ?1, ?2, ?3) ON CONFLICT(package) DO UPDATE SET \
                                 installed = excluded.installed, candidate = excluded.candidate, \
                                 checked_at = excluded.checked_at",
                                params![v.installed, v.candidate, rfc3339(tx.now())],
                            )?;
                            Ok::<_, StoreError>(())
                        })
                        .await;
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "cannot record the package versions");
                    }
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "package versions unknown"),
                Err(e) => tracing::warn!(error = %e, "package version check failed"),
            }
        }
        report_result(&core).await;
        tokio::select! {
            _ = core.cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Turn a result file into its event, once.
async fn report_result(core: &Core) {
    let path = result_path(&core.cfg);
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return;
    };
    let r: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "unreadable update result");
            json!({"ok": false, "code": "unreadable_result", "detail": e.to_string()})
        }
    };
    let kind = if r["ok"] == json!(true) {
        "software.updated"
    } else {
        "software.update.failed"
    };
    let mut data = json!({});
    // the script echoes the request it was given; the command id is in there
    if let Some(c) = r["request"].get("command").filter(|c| c.is_string()) {
        data["command"] = c.clone();
    }
    for k in [
        "package",
        "version",
        "code",
        "previous",
        "installed",
        "detail",
    ] {
        if let Some(v) = r.get(k).filter(|v| !v.is_null()) {
            data[k] = v.clone();
        }
    }
    let done = core
        .store
        .write(move |tx| {
            crate::users::audit(tx, Some("branchd-update"), kind, None, Some(&data))?;
            tx.emit(kind, data)?;
            Ok::<_, StoreError>(())
        })
        .await;
    match done {
        Ok(()) => {
            if let Err(e) = tokio::fs::remove_file(&path).await {
                tracing::warn!(file = %path.display(), error = %e, "cannot remove the update result");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot record the update result"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_cache_policy_gives_installed_and_candidate() {
        let out = "branchd:\n  Installed: 0.1.0-1\n  Candidate: 0.2.0-1\n  Version table:\n     0.2.0-1 500\n";
        assert_eq!(
            parse_policy(out),
            Versions {
                installed: Some("0.1.0-1".into()),
                candidate: Some("0.2.0-1".into())
            }
        );
        let none = "branchd:\n  Installed: (none)\n  Candidate: 0.2.0-1\n";
        assert_eq!(parse_policy(none).installed, None);
        assert_eq!(parse_policy(""), Versions::default());
    }

    #[test]
    fn only_debian_versions_are_accepted() {
        for (v, ok) in [
            ("0.2.0-1", true),
            ("1:2.3~rc1+deb12u1", true),
            ("", false),
            ("latest", false),
            ("1.0; rm -rf /", false),
            ("1.0 2", false),
            ("$(id)", false),
        ] {
            assert_eq!(is_version(v), ok, "{v}");
        }
    }
}
