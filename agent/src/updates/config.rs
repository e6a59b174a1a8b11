//! `config.update` for any key of the config file.
//!
//! `{"set": {"<key>": value, …}}`: keys are written as the config's own problems name them
//! (`faces.match_threshold`, `services[0].target_wait_min`); a `null` value removes the key
//! (its default applies). The edited file is validated by the config loader exactly as the
//! file is at start-up, and refused with every problem named. A valid change is written
//! atomically (`<file>.new`, fsync, rename), the previous file kept as `<file>.prev`, and
//! audited. Keys of [`LIVE`] are applied at once ([`crate::core::Core::config`]); any
//! other key by a clean restart (the daemon drains and exits with [`EX_RESTART`], and
//! systemd starts it again).
//!
//! Until the change is confirmed, `<file>.pending` records it. It is rolled back (the
//! previous file restored, `config.rolled_back` with the reason) when the daemon cannot
//! start with it, when it starts a second time without having confirmed it (a crash
//! loop), or when at the end of `[updates] config_grace_s` its database does not answer or,
//! with `[mqtt]`, the head-office link neither is up nor came up; otherwise it is confirmed
//! then (`config.confirmed`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::core::Core;
use crate::store::{StoreError, Tx};

/// The exit code of a restart for a config change (sysexits EX_TEMPFAIL): not 0, so
/// systemd's `Restart=on-failure` starts the daemon again.
pub const EX_RESTART: u8 = 75;

/// Keys applied while the daemon runs (`*`: any index); every other key needs a restart.
pub const LIVE: &[&str] = &[
    "services[*].target_wait_min",
    "services[*].priority_weight",
    "services[*].name",
    "services[*].name_en",
    "services[*].hours",
    "queue.fairness_after",
    "queue.no_show_after_recalls",
    "queue.default_service_time_s",
];

/// One part of a key path.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// One edit: set (or with `None` remove) a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    /// The key as written.
    pub key: String,
    path: Vec<Seg>,
    /// The new value (JSON, as sent); `None`: remove the key.
    pub value: Option<Value>,
}

/// Read the new form's data (`set`).
pub fn parse(data: &Map<String, Value>) -> Result<Vec<Edit>, String> {
    let mut problems = Vec::new();
    for k in data.keys() {
        if k != "set" {
            problems.push(format!("unknown key `{k}`"));
        }
    }
    let mut edits = Vec::new();
    match data.get("set") {
        Some(Value::Object(set)) if !set.is_empty() && set.len() <= 100 => {
            for (key, v) in set {
                match key_path(key) {
                    Ok(path) => {
                        if !v.is_null()
                            && let Err(e) = toml_value(v)
                        {
                            problems.push(format!("`{key}`: {e}"));
                            continue;
                        }
                        edits.push(Edit {
                            key: key.clone(),
                            path,
                            value: Some(v.clone()).filter(|v| !v.is_null()),
                        });
                    }
                    Err(e) => problems.push(e),
                }
            }
        }
        _ => problems.push("`set` must be an object of 1–100 keys".into()),
    }
    if problems.is_empty() {
        Ok(edits)
    } else {
        Err(problems.join("; "))
    }
}

fn key_path(key: &str) -> Result<Vec<Seg>, String> {
    let bad = || {
        format!(
            "`{key}` is not a config key like `faces.match_threshold` or `services[0].target_wait_min`"
        )
    };
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(bad());
        }
        out.push(Seg::Key(name.to_string()));
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            let i: usize = r[..end].parse().map_err(|_| bad())?;
            out.push(Seg::Index(i));
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return Err(bad());
        }
    }
    if out.is_empty() || out.len() > 8 {
        return Err(bad());
    }
    Ok(out)
}

/// A JSON value as TOML: strings, integers, floats, booleans, arrays and tables of them.
fn toml_value(v: &Value) -> Result<toml_edit::Value, String> {
    Ok(match v {
        Value::String(s) => s.as_str().into(),
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().ok_or("a number out of range")?.into(),
        },
        Value::Array(a) => {
            let mut arr = toml_edit::Array::new();
            for x in a {
                arr.push(toml_value(x)?);
            }
            toml_edit::Value::Array(arr)
        }
        Value::Object(o) => {
            let mut t = toml_edit::InlineTable::new();
            for (k, x) in o {
                t.insert(k, toml_value(x)?);
            }
            toml_edit::Value::InlineTable(t)
        }
        Value::Null => {
            return Err("null is only allowed as a whole value (to remove the key)".into());
        }
    })
}

/// Whether `key` is applied live.
pub fn is_live(key: &str) -> bool {
    let general: String = {
        let mut s = String::new();
        let mut in_index = false;
        for c in key.chars() {
            match c {
                '[' => {
                    in_index = true;
                    s.push_str("[*]");
                }
                ']' => in_index = false,
                c if !in_index => s.push(c),
                _ => {}
            }
        }
        s
    };
    LIVE.contains(&general.as_str())
}

/// A change checked against the file and the loader, ready to be written.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The config file.
    pub path: PathBuf,
    /// The edited text.
    pub text: String,
    /// The validated config of that text.
    pub config: Box<Config>,
    /// Every key changed, with its value before and after (TOML text; `null` when absent).
    pub changes: Vec<Value>,
    /// Whether a key needs a restart.
    pub restart: bool,
}

/// Apply `edits` to the config file and validate the result as the loader does. `Err` is
/// the refusal, naming every problem. Reads the file: call it off the async runtime.
pub fn prepare(source: Option<&Path>, edits: &[Edit]) -> Result<Prepared, String> {
    let path = source.ok_or("this daemon was not started from a config file")?;
    let src = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = src
        .parse()
        .map_err(|e| format!("the config file is not valid TOML: {e}"))?;
    let mut changes = Vec::new();
    let mut problems = Vec::new();
    for e in edits {
        let before = get(doc.as_table(), &e.path);
        let r = match &e.value {
            Some(v) => toml_value(v).and_then(|v| set(&mut doc, &e.path, v)),
            None => remove(&mut doc, &e.path),
        };
        if let Err(p) = r {
            problems.push(format!("`{}`: {p}", e.key));
            continue;
        }
        let after = get(doc.as_table(), &e.path);
        changes.push(json!({"key": e.key, "before": before, "after": after}));
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let text = doc.to_string();
    let mut config = Config::parse(&text).map_err(|ps| {
        ps.iter()
            .map(|p| format!("`{}`: {}", p.key, p.message))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    config.source = Some(path.to_path_buf());
    Ok(Prepared {
        path: path.to_path_buf(),
        text,
        config: Box::new(config),
        restart: edits.iter().any(|e| !is_live(&e.key)),
        changes,
    })
}

/// A key's value as TOML text, if the key is there.
fn get(t: &dyn toml_edit::TableLike, path: &[Seg]) -> Option<String> {
    match path {
        [Seg::Key(k)] => t.get(k).map(|i| match i.as_value() {
            // the value alone, without its comment
            Some(v) => {
                let mut v = v.clone();
                v.decor_mut().clear();
                v.to_string()
            }
            None => i.to_string().trim().to_string(),
        }),
        [Seg::Key(k), Seg::Index(i), rest @ ..] => {
            get(t.get(k)?.as_array_of_tables()?.get(*i)?, rest)
        }
        [Seg::Key(k), rest @ ..] => get(t.get(k)?.as_table_like()?, rest),
        _ => None,
    }
}

/// The table at `path`, creating plain tables on the way when `create`.
fn table_mut<'d>(
    t: &'d mut dyn toml_edit::TableLike,
    path: &[Seg],
    create: bool,
) -> Result<&'d mut dyn toml_edit::TableLike, String> {
    match path {
        [] => Ok(t),
        [Seg::Key(k), Seg::Index(i), rest @ ..] => {
            let aot = t
                .get_mut(k)
                .and_then(|x| x.as_array_of_tables_mut())
                .ok_or_else(|| format!("`{k}` is not a list of tables such as [[services]]"))?;
            let len = aot.len();
            let e = aot
                .get_mut(*i)
                .ok_or_else(|| format!("`{k}` has {len} entries; [{i}] is not one of them"))?;
            table_mut(e, rest, create)
        }
        [Seg::Key(k), rest @ ..] => {
            if t.get(k).is_none() {
                if !create {
                    return Err(format!("there is no `{k}`"));
                }
                t.insert(k, toml_edit::Item::Table(toml_edit::Table::new()));
            }
            let next = t
                .get_mut(k)
                .and_then(|x| x.as_table_like_mut())
                .ok_or_else(|| format!("`{k}` is a value, not a table"))?;
            table_mut(next, rest, create)
        }
        [Seg::Index(_), ..] => Err("an index must follow a list's name".into()),
    }
}

/// The parent table's path and the last key's name.
fn split(path: &[Seg], what: &str) -> Result<(Vec<Seg>, String), String> {
    match path.split_last() {
        Some((Seg::Key(last), parent)) if !parent.is_empty() => Ok((parent.to_vec(), last.clone())),
        Some((Seg::Key(_), _)) => Err(format!("a whole section cannot be {what}; name its keys")),
        _ => Err("a key must end with a name".into()),
    }
}

fn set(doc: &mut toml_edit::DocumentMut, path: &[Seg], v: toml_edit::Value) -> Result<(), String> {
    let (parent, last) = split(path, "set")?;
    let t = table_mut(doc.as_table_mut(), &parent, true)?;
    if !t.contains_key(&last) {
        t.insert(&last, toml_edit::Item::Value(v));
        return Ok(());
    }
    let existing = t.get_mut(&last).ok_or("no such key")?;
    let Some(old) = existing.as_value() else {
        return Err("it is a section, not a value".into());
    };
    // keep the key's comments and position
    let mut v = v;
    *v.decor_mut() = old.decor().clone();
    *existing = toml_edit::Item::Value(v);
    Ok(())
}

fn remove(doc: &mut toml_edit::DocumentMut, path: &[Seg]) -> Result<(), String> {
    let (parent, last) = split(path, "removed")?;
    let t = table_mut(doc.as_table_mut(), &parent, false)?;
    t.remove(&last)
        .map(|_| ())
        .ok_or_else(|| "there is no such key to remove".into())
}

/// The record of a change not yet confirmed (`<file>.pending`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// The command.
    pub command: String,
    /// The keys changed.
    pub keys: Vec<String>,
    /// Whether it needed a restart.
    pub restart: bool,
    /// Daemon starts with this change so far.
    pub starts: u32,
}

fn with_ext(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// The previous file (`<file>.prev`).
pub fn prev_path(path: &Path) -> PathBuf {
    with_ext(path, "prev")
}

fn pending_path(path: &Path) -> PathBuf {
    with_ext(path, "pending")
}

fn rolled_back_path(path: &Path) -> PathBuf {
    with_ext(path, "rolled-back")
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = with_ext(path, "new");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Write the prepared file (the current one kept as `<file>.prev`) and its pending record.
pub fn write(p: &Prepared, command: &str) -> std::io::Result<()> {
    let current = std::fs::read(&p.path)?;
    write_atomic(&prev_path(&p.path), &current)?;
    let pending = Pending {
        command: command.to_string(),
        keys: p
            .changes
            .iter()
            .filter_map(|c| c["key"].as_str().map(str::to_string))
            .collect(),
        restart: p.restart,
        starts: 0,
    };
    write_atomic(
        &pending_path(&p.path),
        serde_json::to_string(&pending)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    write_atomic(&p.path, p.text.as_bytes())
}

/// The change waiting for confirmation, if any.
pub fn pending(path: &Path) -> Option<Pending> {
    let b = std::fs::read(pending_path(path)).ok()?;
    serde_json::from_slice(&b).ok()
}

/// Count a start with the pending change.
pub fn count_start(path: &Path, mut p: Pending) -> std::io::Result<()> {
    p.starts += 1;
    write_atomic(
        &pending_path(path),
        serde_json::to_string(&p).unwrap_or_default().as_bytes(),
    )
}

/// Put the previous file back and note why, for the daemon to report once its database is
/// open. Returns the previous config, validated.
pub fn roll_back(path: &Path, reason: &str) -> anyhow::Result<Config> {
    use anyhow::Context as _;
    let prev = prev_path(path);
    let text = std::fs::read(&prev).with_context(|| format!("cannot read {}", prev.display()))?;
    let p = pending(path);
    write_atomic(path, &text).with_context(|| format!("cannot restore {}", path.display()))?;
    let note = json!({"command": p.as_ref().map(|p| p.command.clone()),
                      "keys": p.as_ref().map(|p| p.keys.clone()), "reason": reason});
    write_atomic(&rolled_back_path(path), note.to_string().as_bytes())?;
    let _ = std::fs::remove_file(pending_path(path));
    tracing::warn!(file = %path.display(), %reason, "config change rolled back");
    Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Record an applied change (audit and event) in the command's transaction.
pub fn record(tx: &mut Tx<'_>, id: &str, p: &Prepared) -> Result<(), StoreError> {
    let keys: Vec<&str> = p.changes.iter().filter_map(|c| c["key"].as_str()).collect();
    let detail = json!({"command": id, "file": p.path.display().to_string(),
                        "changes": p.changes, "restart": p.restart});
    crate::users::audit(
        tx,
        Some(&format!("hq:{id}")),
        "config.update",
        Some(&p.path.display().to_string()),
        Some(&detail),
    )?;
    tx.emit(
        "config.changed",
        json!({"command": id, "keys": keys,
               "apply": if p.restart { "restart" } else { "live" }}),
    )?;
    Ok(())
}

/// After the change is committed: apply it live, or ask for a restart.
pub fn apply(core: &Core, p: Prepared) {
    if p.restart {
        tracing::info!("config changed; restarting to apply it");
        core.restart.cancel();
    } else {
        core.set_config(*p.config);
        tracing::info!("config changed; applied live");
    }
}

/// Watch over changes not yet confirmed: report a rollback made at start-up; then, for the
/// change pending at start and for each live change, after the grace period confirm it if
/// the database answers, or roll it back.
pub async fn watch(core: Core) {
    let Some(path) = core.cfg.source.clone() else {
        return;
    };
    let mut events = core.store.subscribe();
    if let Ok(note) = std::fs::read(rolled_back_path(&path)) {
        let note: Value = serde_json::from_slice(&note).unwrap_or(Value::Null);
        let r = core
            .store
            .write(move |tx| {
                crate::users::audit(tx, Some("branchd"), "config.rolled_back", None, Some(&note))?;
                tx.emit("config.rolled_back", note)?;
                Ok::<_, StoreError>(())
            })
            .await;
        if r.is_ok() {
            let _ = std::fs::remove_file(rolled_back_path(&path));
        }
    }
    loop {
        if let Some(p) = pending(&path) {
            let connects = core.metrics.mqtt_connects.get();
            tokio::select! {
                _ = core.cancel.cancelled() => return,
                _ = tokio::time::sleep(core.cfg.updates.config_grace) => {}
            }
            if !confirm_or_roll_back(&core, &path, p, connects).await {
                return;
            }
        }
        // the next live change
        loop {
            tokio::select! {
                _ = core.cancel.cancelled() => return,
                ev = events.recv() => match ev {
                    Ok(ev) if ev.kind == "config.changed" && ev.data["apply"] == "live" => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

/// Confirm `p` when the daemon is healthy: its database answers and, with `[mqtt]`, the
/// head-office link is up or came up during the grace period (`connects` is the count of
/// connections when it began). Otherwise put the previous file back and restart. False when
/// the daemon is restarting.
async fn confirm_or_roll_back(core: &Core, path: &Path, p: Pending, connects: u64) -> bool {
    let db = core
        .store
        .write(|tx| -> Result<(), StoreError> {
            tx.conn().query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
        .is_ok();
    let m = &core.metrics;
    let link = core.cfg.mqtt.is_none() || m.mqtt_up.get() == 1 || m.mqtt_connects.get() > connects;
    let unhealthy = match (db, link) {
        (false, _) => Some("the database did not answer within the grace period"),
        (true, false) => Some("the head-office link did not come up within the grace period"),
        (true, true) => None,
    };
    if let Some(reason) = unhealthy {
        tracing::error!(%reason, "rolling the config change back");
        if let Err(e) = roll_back(path, reason) {
            tracing::error!(error = %format!("{e:#}"), "cannot roll the config change back");
        }
        core.restart.cancel();
        return false;
    }
    let _ = std::fs::remove_file(pending_path(path));
    let data = json!({"command": p.command, "keys": p.keys});
    let r = core
        .store
        .write(move |tx| {
            crate::users::audit(tx, Some("branchd"), "config.confirmed", None, Some(&data))?;
            tx.emit("config.confirmed", data)?;
            Ok::<_, StoreError>(())
        })
        .await;
    if let Err(e) = r {
        tracing::error!(error = %e, "cannot record the config confirmation");
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_as_the_config_names_them() {
        assert_eq!(
            key_path("services[2].target_wait_min").unwrap(),
            vec![
                Seg::Key("services".into()),
                Seg::Index(2),
                Seg::Key("target_wait_min".into())
            ]
        );
        for bad in ["", "a..b", "A.b", "a[x].b", "a[1", "a]1.b", "a.b c"] {
            assert!(key_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_the_listed_keys_apply_live() {
        for (key, live) in [
            ("services[0].target_wait_min", true),
            ("services[12].priority_weight", true),
            ("queue.fairness_after", true),
            ("queue.reset_hour", false),
            ("services[0].prefix", false),
            ("log.level", false),
            ("mqtt.url", false),
        ] {
            assert_eq!(is_live(key), live, "{key}");
        }
    }
}
