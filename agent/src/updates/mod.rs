//! Updates from head office while the box runs: model files (`model.update`,
//! `model.rollback`), the config file (`config.update` with `set`: [`config`]) and the
//! daemon's own package (`software.update`: [`software`]).
//!
//! A command is validated completely by [`parse`], then recorded as a job in the command's
//! own transaction ([`request`]), so its `ack` means "accepted" and a restart does not lose
//! it. One task works through the jobs in order ([`model`]): download with resume
//! ([`download`]) into a staging directory on the data disk, check size and SHA-256, load
//! and self-test the new file on a worker thread against a bundled image, then move it
//! beside the previous file, swap it into [`crate::models::ModelSet`] and record it —
//! engines take it between two inferences. Progress and the result are events with
//! a code and parameters; a bad hash or a failed self-test changes nothing.

pub mod config;
pub mod download;
pub mod model;
pub mod software;

use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value, json};

use crate::clock::rfc3339;
use crate::command::Fields;
use crate::config::Config;
use crate::core::Core;
use crate::retention::Bounded;
use crate::store::{Schema, StoreError, Tx, text_enum};

/// This module's tables.
pub const SCHEMA: Schema = Schema {
    module: "updates",
    steps: &[
        // 1: the model files that replace shipped ones (file NULL: the shipped file), the
        //    one before each (kept for model.rollback), and the jobs head office asked for.
        "CREATE TABLE updates_models (
             name TEXT PRIMARY KEY,
             file TEXT,
             sha256 TEXT NOT NULL,
             prev_file TEXT,
             prev_sha256 TEXT,
             updated_at TEXT NOT NULL,
             command TEXT NOT NULL
         ) STRICT;
         CREATE TABLE updates_jobs (
             seq INTEGER PRIMARY KEY,
             id TEXT NOT NULL UNIQUE,
             kind TEXT NOT NULL,
             name TEXT NOT NULL,
             sha256 TEXT,
             size INTEGER,
             url TEXT,
             state TEXT NOT NULL,
             received_at TEXT NOT NULL,
             finished_at TEXT,
             code TEXT
         ) STRICT;
         CREATE TABLE updates_software (
             package TEXT PRIMARY KEY,
             installed TEXT,
             candidate TEXT,
             checked_at TEXT NOT NULL
         ) STRICT;",
    ],
};

/// The updates' tables grow only with head office's updates.
pub const BOUNDED: &[Bounded] = &[
    Bounded {
        table: "updates_models",
        why: "one row per model",
    },
    Bounded {
        table: "updates_jobs",
        why: "one row per update head office sends (a few a year)",
    },
    Bounded {
        table: "updates_software",
        why: "one row per software update head office sends",
    },
];

text_enum! {
    /// Where a job is.
    pub enum JobState {
        /// Waiting or in progress (a restart resumes it).
        Pending = "pending",
        /// Applied.
        Done = "done",
        /// Given up; nothing changed.
        Failed = "failed",
    }
}

/// A validated update command.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateCmd {
    /// Replace a model file.
    Model(ModelUpdate),
    /// Go back to the file before the current one.
    Rollback {
        /// The manifest entry.
        name: String,
    },
}

/// `model.update`'s data.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelUpdate {
    /// The manifest entry the file replaces (`ocr_det`, `face_detector`, …).
    pub name: String,
    /// The file's SHA-256, lower-case hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Where to download it: HTTPS on the bank's artifact server.
    pub url: String,
}

/// The manifest roles a file can be replaced for while the daemon runs.
const REPLACEABLE: &[&str] = &["ocr_det", "ocr_rec", "ocr_cls", "face_detector"];

fn model_name(f: &mut Fields<'_>) -> Option<String> {
    let name = f.string("name", 64)?;
    let entries = crate::models::manifest().unwrap_or_default();
    match entries.iter().find(|e| e.name == name) {
        None => f.problem(format!("`name`: the model manifest has no `{name}`")),
        Some(e) if e.role == "face_embedder" => f.problem(format!(
            "`name`: `{name}` is a face embedder; replacing it would void every enrolled embedding, so it comes with a software update"
        )),
        Some(e) if !REPLACEABLE.contains(&e.role.as_str()) => f.problem(format!(
            "`name`: `{name}` ({}) comes with a software update",
            e.role
        )),
        Some(_) => return Some(name),
    }
    None
}

/// Read a `model.*` command's data.
pub fn parse(kind: &str, data: &Map<String, Value>, cfg: &Config) -> Result<UpdateCmd, String> {
    let mut f = Fields::new(data);
    let name = model_name(&mut f);
    let cmd = match kind {
        "model.update" => {
            let sha256 = f.string("sha256", 64).map(|s| s.to_ascii_lowercase());
            if let Some(h) = &sha256
                && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                f.problem("`sha256` must be 64 hex digits");
            }
            let max = cfg.updates.max_model_bytes;
            let size = f.int("size", 1, max as i64).map(|n| n as u64);
            let url = f.string("url", 2048);
            if let Some(u) = &url
                && let Err(e) = check_url(u, &cfg.updates.allowed_hosts)
            {
                f.problem(format!("`url`: {e}"));
            }
            f.finish()?;
            UpdateCmd::Model(ModelUpdate {
                name: name.unwrap_or_default(),
                sha256: sha256.unwrap_or_default(),
                size: size.unwrap_or_default(),
                url: url.unwrap_or_default(),
            })
        }
        "model.rollback" => {
            f.finish()?;
            UpdateCmd::Rollback {
                name: name.unwrap_or_default(),
            }
        }
        k => return Err(format!("unknown command kind `{k}`")),
    };
    Ok(cmd)
}

/// An HTTPS URL without credentials, on an allowed host when hosts are configured.
fn check_url(u: &str, allowed: &[String]) -> Result<(), String> {
    let url = reqwest::Url::parse(u).map_err(|e| format!("`{u}` is not a URL: {e}"))?;
    if url.scheme() != "https" {
        return Err(format!("`{u}` must be https://"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials do not belong in the URL".into());
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if !allowed.is_empty() && !allowed.contains(&host) {
        return Err(format!(
            "host `{host}` is not in [updates] allowed_hosts ({})",
            allowed.join(", ")
        ));
    }
    Ok(())
}

/// Record an accepted command as a job, in the command's transaction. The inner `Err` is a
/// refusal decided against the current state (nothing changed).
pub fn request(
    tx: &mut Tx<'_>,
    id: &str,
    cmd: UpdateCmd,
) -> Result<Result<(), String>, StoreError> {
    let now = rfc3339(tx.now());
    match cmd {
        UpdateCmd::Model(m) => {
            let current: Option<String> = tx
                .conn()
                .query_row(
                    "SELECT sha256 FROM updates_models WHERE name = ?1",
                    [&m.name],
                    |r| r.get(0),
                )
                .optional()?;
            let shipped = crate::models::manifest()
                .ok()
                .and_then(|es| es.into_iter().find(|e| e.name == m.name))
                .map(|e| e.sha256);
            if current.or(shipped).as_deref() == Some(m.sha256.as_str()) {
                return Ok(Err(format!(
                    "`{}` already runs the file with sha256 {}",
                    m.name, m.sha256
                )));
            }
            tx.conn().execute(
                "INSERT INTO updates_jobs(id, kind, name, sha256, size, url, state, received_at) \
                 VALUES (?1, 'model.update', ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id,
                    m.name,
                    m.sha256,
                    m.size as i64,
                    m.url,
                    JobState::Pending.as_str(),
                    now
                ],
            )?;
            tx.emit(
                "model.update.requested",
                json!({"command": id, "name": m.name, "sha256": m.sha256, "size": m.size}),
            )?;
        }
        UpdateCmd::Rollback { name } => {
            let prev: Option<Option<String>> = tx
                .conn()
                .query_row(
                    "SELECT prev_sha256 FROM updates_models WHERE name = ?1",
                    [&name],
                    |r| r.get(0),
                )
                .optional()?;
            if prev.flatten().is_none() {
                return Ok(Err(format!("`{name}` has no previous file to go back to")));
            }
            tx.conn().execute(
                "INSERT INTO updates_jobs(id, kind, name, state, received_at) \
                 VALUES (?1, 'model.rollback', ?2, ?3, ?4)",
                params![id, name, JobState::Pending.as_str(), now],
            )?;
            tx.emit(
                "model.rollback.requested",
                json!({"command": id, "name": name}),
            )?;
        }
    }
    Ok(Ok(()))
}

/// Put the model files head office sent earlier back in use; called at start-up before any
/// module is built, so no engine ever loads a file they replaced.
pub async fn restore_models(core: &Core) {
    match core.store.read(model::installed).await {
        Ok(list) => {
            for (name, r) in list {
                tracing::info!(model = %name, sha256 = %r.sha256, "model replaced by head office");
                core.models.set(&name, Some(r));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the replaced models; using the shipped ones")
        }
    }
}

/// The updates module's handle.
#[derive(Debug, Clone)]
pub struct Updates {
    core: Core,
}

impl Updates {
    /// The module (nothing is started yet).
    pub fn new(core: &Core) -> Updates {
        Updates { core: core.clone() }
    }

    /// Start the task that works through the model jobs, the one that confirms or rolls
    /// back config changes, and the one that reads package versions and reports software
    /// updates.
    pub fn start(&self) {
        self.core.spawn(model::run(self.clone()));
        self.core.spawn(config::watch(self.core.clone()));
        self.core.spawn(software::watch(self.core.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        Config::parse(&format!(
            "[branch]\nid = \"T1\"\nname = \"t\"\ndata_dir = \"/tmp/x\"\n[http]\nlisten = \"127.0.0.1:0\"\n{extra}"
        ))
        .expect("config")
    }

    fn data(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("an object")
    }

    const SHA: &str = "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9";

    #[test]
    fn model_commands_are_read_strictly() {
        let cfg =
            cfg("[updates]\nallowed_hosts = [\"artifacts.bank.example\"]\nmax_model_mb = 10\n");
        let url = "https://artifacts.bank.example/m/det.onnx";
        let ok = parse(
            "model.update",
            &data(json!({"name": "ocr_det", "sha256": SHA.to_uppercase(), "size": 5, "url": url})),
            &cfg,
        )
        .expect("valid");
        assert_eq!(
            ok,
            UpdateCmd::Model(ModelUpdate {
                name: "ocr_det".into(),
                sha256: SHA.into(),
                size: 5,
                url: url.into()
            })
        );
        let cases: &[(&str, Value, &str)] = &[
            (
                "model.update",
                json!({"sha256": SHA, "size": 5, "url": url}),
                "`name` is required",
            ),
            (
                "model.update",
                json!({"name": "nope", "sha256": SHA, "size": 5, "url": url}),
                "has no `nope`",
            ),
            (
                "model.update",
                json!({"name": "face_embedder", "sha256": SHA, "size": 5, "url": url}),
                "void every enrolled embedding",
            ),
            (
                "model.update",
                json!({"name": "onnxruntime_x86_64", "sha256": SHA, "size": 5, "url": url}),
                "comes with a software update",
            ),
            (
                "model.update",
                json!({"name": "ocr_det", "sha256": "abc", "size": 5, "url": url}),
                "64 hex digits",
            ),
            (
                "model.update",
                json!({"name": "ocr_det", "sha256": SHA, "size": 11 * 1024 * 1024, "url": url}),
                "`size`",
            ),
            (
                "model.update",
                json!({"name": "ocr_det", "sha256": SHA, "size": 5, "url": "http://artifacts.bank.example/x"}),
                "must be https://",
            ),
            (
                "model.update",
                json!({"name": "ocr_det", "sha256": SHA, "size": 5, "url": "https://evil.example/x"}),
                "not in [updates] allowed_hosts",
            ),
            (
                "model.update",
                json!({"name": "ocr_det", "sha256": SHA, "size": 5, "url": "https://u:p@artifacts.bank.example/x"}),
                "credentials",
            ),
            (
                "model.update",
                json!({"name": "ocr_det", "sha256": SHA, "size": 5, "url": url, "extra": 1}),
                "unknown key `extra`",
            ),
            ("model.rollback", json!({}), "`name` is required"),
        ];
        for (kind, d, want) in cases {
            let err = parse(kind, &data(d.clone()), &cfg).expect_err("refused");
            assert!(err.contains(want), "{d}: `{err}` lacks `{want}`");
        }
    }
}
