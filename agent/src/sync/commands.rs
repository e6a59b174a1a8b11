//! Head-office commands (`<p>/cmd`): validated completely before anything changes, applied
//! in one transaction together with the record of their id and their `ack` event, so each
//! is handled exactly once however often the broker delivers it.
//!
//! A command that cannot be parsed or is invalid is answered `ok:false` with a reason and
//! changes nothing; with an id, that answer is recorded too, so a redelivery gets the same.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value, json};

use super::Sync;
use crate::clock::rfc3339;
use crate::command::Fields;
use crate::config::Config;
use crate::store::{StoreError, Tx};

/// The answer of a command that was handled (its `ack` event is committed).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Whether it succeeded.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// The link must re-send its birth and a full snapshot.
    pub rebirth: bool,
    /// A redelivery of an already handled command.
    pub duplicate: bool,
}

/// A validated command.
#[derive(Debug, Clone)]
enum Cmd {
    VipUpsert(Box<crate::vips::Vip>),
    VipDelete(String),
    ConfigUpdate(Vec<(String, String, Value)>),
    DeviceCommand {
        device: String,
        op: String,
        args: Value,
        /// What the device answered, filled in by [`handle`] before the command is recorded.
        result: Option<Result<(), String>>,
    },
    Rebirth,
    Order(crate::orders::command::OrderCmd),
    ProductUpsert(Box<crate::products::Product>),
    ProductDelete(String),
    CustomerUpsert(Box<crate::customers::CustomerRecord>),
    CustomerDelete(String),
    LeadPush(Box<crate::leads::NewLead>),
    Rights(Box<crate::rights::RightsCmd>),
    Update(Box<crate::updates::UpdateCmd>),
    /// `config.update` with `set`: edits of the config file.
    ConfigEdit {
        edits: Vec<crate::updates::config::Edit>,
        /// The edited file, validated and written, filled in by [`handle`] before the
        /// command is recorded.
        prepared: Option<Result<Box<crate::updates::config::Prepared>, String>>,
    },
    /// `software.update`: the request for the privileged one-shot unit.
    SoftwareUpdate {
        version: String,
        /// Whether the request file was written, filled in by [`handle`].
        written: Option<Result<(), String>>,
    },
}

/// A command refused before anything changes.
#[derive(Debug, Clone, PartialEq)]
struct Refusal {
    id: Option<String>,
    kind: String,
    reason: String,
}

/// Handle one command payload: parse, validate, apply, record, ack — or refuse with a
/// reason. `Err` only when the database failed (nothing was recorded then).
pub async fn handle(sync: &Sync, payload: &[u8]) -> Result<Outcome, StoreError> {
    let core = &sync.core;
    let mut parsed = parse(payload, &core.cfg);
    if let Ok((id, kind, _)) = &parsed
        && let Err(reason) = fresh(payload, kind, core.clock.now(), &core.cfg)
    {
        parsed = Err(Refusal {
            id: Some(id.clone()),
            kind: kind.clone(),
            reason,
        });
    }
    if let Ok((
        id,
        _,
        Cmd::DeviceCommand {
            device,
            op,
            args,
            result,
        },
    )) = &mut parsed
    {
        // Sent to the device only the first time; a redelivery gets the recorded answer.
        let key = id.clone();
        let seen = core
            .store
            .read(move |c| {
                Ok::<_, StoreError>(
                    c.query_row("SELECT 1 FROM sync_commands WHERE id = ?1", [&key], |_| {
                        Ok(())
                    })
                    .optional()?
                    .is_some(),
                )
            })
            .await?;
        if !seen && began_sending(core, id).await? {
            *result = Some(Err(format!(
                "the box stopped while sending this command to {device}; it is not sent \
                 again (check the device)"
            )));
        } else if !seen {
            let actor = format!("hq:{id}");
            let sent = sync
                .devices
                .send_command(device, op, args.clone(), &actor)
                .await;
            *result = Some(match sent {
                Ok(r) if r.ok => Ok(()),
                Ok(r) => Err(format!(
                    "{device} refused `{op}`: {}",
                    r.error.unwrap_or_else(|| "no reason given".into())
                )),
                Err(crate::devices::SendError::Store(e)) => return Err(e),
                Err(e) => Err(e.to_string()),
            });
        }
    }
    if let Ok((id, _, Cmd::ConfigEdit { edits, prepared })) = &mut parsed {
        // Validated against the file and written only the first time.
        if !seen(core, id).await? {
            let (source, edits, cmd) = (core.cfg.source.clone(), edits.clone(), id.clone());
            let r = tokio::task::spawn_blocking(move || {
                let p = crate::updates::config::prepare(source.as_deref(), &edits)?;
                crate::updates::config::write(&p, &cmd)
                    .map_err(|e| format!("cannot write {}: {e}", p.path.display()))?;
                Ok::<_, String>(Box::new(p))
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            *prepared = Some(r);
        }
    }
    if let Ok((id, _, Cmd::SoftwareUpdate { version, written })) = &mut parsed
        && !seen(core, id).await?
    {
        let (cfg, v, cmd) = (core.cfg.clone(), version.clone(), id.clone());
        *written = Some(
            tokio::task::spawn_blocking(move || {
                crate::updates::software::write_request(&cfg, &cmd, &v)
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string())),
        );
    }
    let applied = match &parsed {
        Ok((
            _,
            _,
            Cmd::ConfigEdit {
                prepared: Some(Ok(p)),
                ..
            },
        )) => Some((**p).clone()),
        _ => None,
    };
    let outcome = core.store.write(move |tx| apply(tx, parsed)).await?;
    if let Some(p) = applied
        && outcome.ok
        && !outcome.duplicate
    {
        crate::updates::config::apply(core, p);
    }
    Ok(outcome)
}

/// Whether command `id` was handled before.
async fn seen(core: &crate::core::Core, id: &str) -> Result<bool, StoreError> {
    let key = id.to_string();
    core.store
        .read(move |c| {
            Ok::<_, StoreError>(
                c.query_row("SELECT 1 FROM sync_commands WHERE id = ?1", [&key], |_| {
                    Ok(())
                })
                .optional()?
                .is_some(),
            )
        })
        .await
}

/// The mark of a device command being sent: committed before the device sees it, removed
/// with the command's record.
fn sending_key(id: &str) -> String {
    format!("sync.sending.{id}")
}

/// Mark the device command `id` as being sent; true when a previous run had marked it and
/// stopped before recording its answer (then it must not be sent twice).
async fn began_sending(core: &crate::core::Core, id: &str) -> Result<bool, StoreError> {
    let key = sending_key(id);
    core.store
        .write(move |tx| {
            let before = crate::store::meta_get(tx.conn(), &key)?.is_some();
            if !before {
                crate::store::meta_set(tx.conn(), &key, &rfc3339(tx.now()))?;
            }
            Ok(before)
        })
        .await
}

fn apply(
    tx: &mut Tx<'_>,
    parsed: Result<(String, String, Cmd), Refusal>,
) -> Result<Outcome, StoreError> {
    let (id, kind) = match &parsed {
        Ok((id, kind, _)) => (Some(id.clone()), kind.clone()),
        Err(r) => (r.id.clone(), r.kind.clone()),
    };
    if let Some(id) = &id {
        let seen: Option<(bool, Option<String>)> = tx
            .conn()
            .query_row(
                "SELECT ok, error FROM sync_commands WHERE id = ?1",
                [id],
                |r| Ok((r.get::<_, i64>(0)? != 0, r.get(1)?)),
            )
            .optional()?;
        if let Some((ok, error)) = seen {
            emit_ack(tx, Some(id), ok, error.as_deref())?;
            return Ok(Outcome {
                ok,
                error,
                rebirth: false,
                duplicate: true,
            });
        }
    }
    let (result, rebirth) = match parsed {
        Ok((id, _, cmd)) => {
            let rebirth = matches!(cmd, Cmd::Rebirth);
            (execute(tx, &id, cmd)?, rebirth)
        }
        Err(r) => (Err(r.reason), false),
    };
    let (ok, error) = match result {
        Ok(()) => (true, None),
        Err(e) => (false, Some(e)),
    };
    if let Some(id) = &id {
        tx.conn().execute(
            "INSERT INTO sync_commands(id, kind, received_at, ok, error) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, kind, rfc3339(tx.now()), ok as i64, error],
        )?;
        tx.conn()
            .execute("DELETE FROM meta WHERE key = ?1", [sending_key(id)])?;
    }
    emit_ack(tx, id.as_deref(), ok, error.as_deref())?;
    Ok(Outcome {
        ok,
        error,
        rebirth: rebirth && ok,
        duplicate: false,
    })
}

fn emit_ack(
    tx: &mut Tx<'_>,
    id: Option<&str>,
    ok: bool,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let mut data = json!({"ref": id, "ok": ok});
    if let Some(e) = error {
        data["error"] = json!(e);
    }
    tx.emit("ack", data)?;
    Ok(())
}

/// Apply a valid command. The inner `Err` is a refusal decided against the current state
/// (nothing has been changed when it is returned).
fn execute(tx: &mut Tx<'_>, id: &str, cmd: Cmd) -> Result<Result<(), String>, StoreError> {
    let now = rfc3339(tx.now());
    match cmd {
        Cmd::VipUpsert(v) => crate::vips::upsert(tx, &v, id)?,
        Cmd::VipDelete(customer_id) => crate::vips::delete(tx, &customer_id, id)?,
        Cmd::ConfigUpdate(items) => {
            let mut services: Vec<&str> = Vec::new();
            for (service, key, value) in &items {
                tx.conn().execute(
                    "INSERT INTO sync_config_overrides(scope, key, value, updated_at) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT(scope, key) DO UPDATE SET \
                     value = excluded.value, updated_at = excluded.updated_at",
                    params![format!("service:{service}"), key, value.to_string(), now],
                )?;
                if !services.contains(&service.as_str()) {
                    services.push(service);
                }
            }
            tx.emit(
                "config.updated",
                json!({"services": services, "command": id}),
            )?;
        }
        Cmd::DeviceCommand {
            device,
            op,
            args,
            result,
        } => {
            // The device's answer (audited as `device.command` by the devices module).
            let result =
                result.unwrap_or_else(|| Err("the command was not sent to the device".into()));
            let state = if result.is_ok() { "done" } else { "failed" };
            tx.conn().execute(
                "INSERT INTO sync_device_commands(cmd_id, device, op, args, received_at, state) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, device, op, args.to_string(), now, state],
            )?;
            return Ok(result);
        }
        Cmd::Rebirth => {}
        Cmd::Order(c) => return crate::orders::command::apply(tx, id, c),
        Cmd::ProductUpsert(p) => crate::products::upsert(tx, &p, id)?,
        Cmd::ProductDelete(code) => crate::products::delete(tx, &code, id)?,
        Cmd::CustomerUpsert(c) => crate::customers::upsert(tx, &c, id)?,
        Cmd::CustomerDelete(c) => crate::customers::delete(tx, &c, id)?,
        Cmd::LeadPush(l) => return crate::leads::push(tx, &l, id),
        Cmd::Rights(r) => crate::rights::apply(tx, id, *r)?,
        Cmd::Update(u) => return crate::updates::request(tx, id, *u),
        Cmd::ConfigEdit { prepared, .. } => {
            let p = match prepared {
                Some(Ok(p)) => p,
                Some(Err(e)) => return Ok(Err(e)),
                None => return Ok(Err("the change was not prepared".into())),
            };
            crate::updates::config::record(tx, id, &p)?;
        }
        Cmd::SoftwareUpdate { version, written } => {
            match written.unwrap_or_else(|| Err("the request was not written".into())) {
                Ok(()) => crate::updates::software::record(tx, id, &version)?,
                Err(e) => return Ok(Err(e)),
            }
        }
    }
    Ok(Ok(()))
}

/// Commands older than this are refused when the box has no `[mqtt]` table (commands
/// then come only from tests and tools).
const COMMAND_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);
/// The same for device commands.
const DEVICE_COMMAND_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

/// Whether a command is young enough to run, by its envelope's `ts` (required): older
/// than `[mqtt] command_max_age_s`, or for `device.command` `device_command_max_age_s`,
/// it is refused, so a command queued by the broker through a long outage does not run
/// on reconnect. A redelivery of a command already handled still gets its recorded
/// answer.
fn fresh(
    payload: &[u8],
    kind: &str,
    now: chrono::DateTime<chrono::Utc>,
    cfg: &Config,
) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Stamp {
        ts: Option<String>,
    }
    let ts = serde_json::from_slice::<Stamp>(payload)
        .ok()
        .and_then(|s| s.ts)
        .ok_or("`ts` is required: a command's age is checked before it runs")?;
    let at = crate::clock::parse(&ts).ok_or_else(|| {
        let shown: String = ts.chars().take(40).collect();
        format!("`ts` `{shown}` is not an RFC 3339 time")
    })?;
    let max = match (kind, &cfg.mqtt) {
        ("device.command", Some(m)) => m.device_command_max_age,
        ("device.command", None) => DEVICE_COMMAND_MAX_AGE,
        (_, Some(m)) => m.command_max_age,
        (_, None) => COMMAND_MAX_AGE,
    };
    let age = (now - at).to_std().unwrap_or_default();
    if age > max {
        return Err(format!(
            "the command is {} s old; `{kind}` commands older than {} s are not run",
            age.as_secs(),
            max.as_secs()
        ));
    }
    Ok(())
}

/// At most 64 characters of a string head office sent, to echo in a refusal (the
/// refusal is an event, and events stay small).
fn cut(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

/// Parses and validates a command payload as [`handle`] does before anything runs (the
/// envelope, its age at `now`, and the `data` of its kind) and changes nothing: the
/// command's id and kind, or the refusal's id (when the envelope has a valid one) and
/// reason. Public for the fuzz targets (agent/fuzz).
pub fn check(
    payload: &[u8],
    cfg: &Config,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(String, String), (Option<String>, String)> {
    let (id, kind, _) = parse(payload, cfg).map_err(|r| (r.id, r.reason))?;
    fresh(payload, &kind, now, cfg).map_err(|reason| (Some(id.clone()), reason))?;
    Ok((id, kind))
}

fn parse(payload: &[u8], cfg: &Config) -> Result<(String, String, Cmd), Refusal> {
    let refuse = |id: Option<String>, kind: &str, reason: String| Refusal {
        id,
        kind: kind.to_string(),
        reason,
    };
    if payload.len() > super::link::MAX_COMMAND_BYTES {
        // Refused with its id where one can be read, so a redelivery gets the same answer.
        #[derive(serde::Deserialize)]
        struct Head {
            id: Option<String>,
            kind: Option<String>,
        }
        let head = serde_json::from_slice::<Head>(payload).ok();
        let (id, kind) = head.map_or((None, None), |h| (h.id, h.kind));
        let id = id.filter(|s| !s.is_empty() && s.len() <= 128);
        let kind = kind.filter(|k| k.len() <= 64).unwrap_or_default();
        return Err(refuse(
            id,
            &kind,
            format!(
                "the command is too large ({} bytes; at most {} MiB)",
                payload.len(),
                super::link::MAX_COMMAND_BYTES >> 20
            ),
        ));
    }
    let v: Value = serde_json::from_slice(payload)
        .map_err(|e| refuse(None, "", format!("malformed JSON: {e}")))?;
    let Value::Object(env) = v else {
        return Err(refuse(None, "", "the command must be a JSON object".into()));
    };
    let id = match env.get("id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 => s.clone(),
        _ => {
            return Err(refuse(
                None,
                "",
                "`id` must be a non-empty string of at most 128 characters".into(),
            ));
        }
    };
    let kind = match env.get("kind") {
        Some(Value::String(k)) if k.len() <= 64 => k.clone(),
        _ => {
            return Err(refuse(
                Some(id),
                "",
                "`kind` must be a string of at most 64 characters".into(),
            ));
        }
    };
    let r = |reason: String| refuse(Some(id.clone()), &kind, reason);
    if env.get("v") != Some(&json!(1)) {
        return Err(r("`v` must be 1".into()));
    }
    for key in env.keys() {
        if !["v", "id", "ts", "kind", "data", "branch"].contains(&key.as_str()) {
            return Err(r(format!("unknown envelope key `{}`", cut(key))));
        }
    }
    // Optional; a command that names a branch must name this one (a misrouted command,
    // or one replayed from another branch's topic, never runs here).
    match env.get("branch") {
        None => {}
        Some(Value::String(b)) if *b == cfg.branch.id => {}
        Some(Value::String(b)) => {
            return Err(r(format!(
                "the command is for branch `{}`, this is `{}`",
                cut(b),
                cfg.branch.id
            )));
        }
        Some(_) => return Err(r("`branch` must be a string".into())),
    }
    let empty = Map::new();
    let data = match env.get("data") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(d)) => d,
        Some(_) => return Err(r("`data` must be an object".into())),
    };
    let cmd = match kind.as_str() {
        "vip.upsert" => Cmd::VipUpsert(Box::new(
            crate::vips::command::upsert(data, &cfg.faces).map_err(r)?,
        )),
        "vip.delete" => Cmd::VipDelete(crate::vips::command::delete(data).map_err(r)?),
        "config.update" if data.contains_key("set") => Cmd::ConfigEdit {
            edits: crate::updates::config::parse(data).map_err(r)?,
            prepared: None,
        },
        "config.update" => Cmd::ConfigUpdate(config_update(data, cfg).map_err(r)?),
        "software.update" => Cmd::SoftwareUpdate {
            version: crate::updates::software::parse(data).map_err(r)?,
            written: None,
        },
        "device.command" => {
            let mut f = Fields::new(data);
            let device = f.string("device", 64);
            let op = f.string("op", 32);
            let args = f.opt_object("args", 100);
            if let Some(d) = &device
                && !cfg.devices.iter().any(|x| &x.id == d)
            {
                f.problem(format!("`device`: no device `{d}` in this branch"));
            }
            f.finish().map_err(r)?;
            Cmd::DeviceCommand {
                device: device.unwrap_or_default(),
                op: op.unwrap_or_default(),
                args: Value::Object(args.unwrap_or_default()),
                result: None,
            }
        }
        "rebirth" => Cmd::Rebirth,
        k if k.starts_with("order.") => {
            Cmd::Order(crate::orders::command::parse(k, data, &cfg.orders).map_err(r)?)
        }
        "product.upsert" => {
            Cmd::ProductUpsert(Box::new(crate::products::command::upsert(data).map_err(r)?))
        }
        "product.delete" => Cmd::ProductDelete(crate::products::command::delete(data).map_err(r)?),
        "customer.upsert" => Cmd::CustomerUpsert(Box::new(
            crate::customers::command::upsert(data).map_err(r)?,
        )),
        "customer.delete" => {
            Cmd::CustomerDelete(crate::customers::command::delete(data).map_err(r)?)
        }
        "lead.push" => Cmd::LeadPush(Box::new(crate::leads::parse_push(data).map_err(r)?)),
        k @ ("rights.grant" | "rights.revoke") => Cmd::Rights(Box::new(
            crate::rights::parse(k, data, &cfg.rights).map_err(r)?,
        )),
        k @ ("model.update" | "model.rollback") => {
            Cmd::Update(Box::new(crate::updates::parse(k, data, cfg).map_err(r)?))
        }
        k => return Err(r(format!("unknown command kind `{k}`"))),
    };
    Ok((id, kind, cmd))
}

/// `{"services":{"<code>":{"target_wait_min":n,"priority_weight":x}}}`, checked against
/// the same ranges as the config file.
fn config_update(
    data: &Map<String, Value>,
    cfg: &Config,
) -> Result<Vec<(String, String, Value)>, String> {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for key in data.keys() {
        if key != "services" {
            problems.push(format!("unknown key `{key}` (supported: services)"));
        }
    }
    match data.get("services") {
        Some(Value::Object(services)) if !services.is_empty() => {
            for (code, v) in services {
                if cfg.service(code).is_none() {
                    problems.push(format!("`services.{code}`: no such service in this branch"));
                    continue;
                }
                let Value::Object(fields) = v else {
                    problems.push(format!("`services.{code}` must be an object"));
                    continue;
                };
                for (k, val) in fields {
                    let ok = match k.as_str() {
                        "target_wait_min" => val.as_i64().is_some_and(|n| (1..=600).contains(&n)),
                        "priority_weight" => {
                            val.as_f64().is_some_and(|x| (0.1..=10.0).contains(&x))
                        }
                        _ => {
                            problems.push(format!(
                                "`services.{code}.{k}`: unknown key (supported: target_wait_min, priority_weight)"
                            ));
                            continue;
                        }
                    };
                    if ok {
                        out.push((code.clone(), k.clone(), val.clone()));
                    } else {
                        let range = if k == "target_wait_min" {
                            "an integer 1–600"
                        } else {
                            "a number 0.1–10"
                        };
                        problems.push(format!("`services.{code}.{k}` must be {range}"));
                    }
                }
            }
        }
        _ => problems.push("`services` must be a non-empty object".into()),
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems.join("; "))
    }
}

/// Overrides from head office (`config.update`), for the queue module to apply over the
/// config file: `{"<service>":{"target_wait_min":n,...}}`.
pub fn overrides_json(c: &Connection) -> Result<Value, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT scope, key, value FROM sync_config_overrides ORDER BY scope, key",
    )?;
    let mut out = Map::new();
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    for row in rows {
        let (scope, key, value) = row?;
        let name = scope.strip_prefix("service:").unwrap_or(&scope).to_string();
        let entry = out.entry(name).or_insert_with(|| json!({}));
        entry[key] = serde_json::from_str(&value).unwrap_or(Value::Null);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn cfg() -> Config {
        Config::parse(
            "[branch]\nid = \"T1\"\nname = \"t\"\ndata_dir = \"/tmp/x\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [[services]]\ncode = \"personal\"\nprefix = \"A\"\nname = \"个人\"\n",
        )
        .expect("config")
    }

    #[test]
    fn a_command_naming_another_branch_is_refused_and_one_naming_this_branch_runs() {
        let cfg = cfg();
        let env = |branch: Value| {
            json!({"v":1,"id":"b-1","kind":"rebirth","branch":branch,"data":{}}).to_string()
        };
        assert!(parse(env(json!("T1")).as_bytes(), &cfg).is_ok());
        let other = parse(env(json!("SH0202")).as_bytes(), &cfg).unwrap_err();
        assert_eq!(other.id.as_deref(), Some("b-1"), "recorded under its id");
        assert!(
            other.reason.contains("for branch `SH0202`, this is `T1`"),
            "{}",
            other.reason
        );
        let odd = parse(env(json!(7)).as_bytes(), &cfg).unwrap_err();
        assert!(
            odd.reason.contains("`branch` must be a string"),
            "{}",
            odd.reason
        );
    }

    #[test]
    fn an_over_size_command_is_refused_under_its_id_without_being_parsed_further() {
        let cfg = cfg();
        let filler = "A".repeat(super::super::link::MAX_COMMAND_BYTES);
        let big = json!({"v":1,"id":"big-1","kind":"vip.upsert","ts":"2026-12-06T12:00:00Z",
                         "data":{"photo": filler}})
        .to_string();
        let r = parse(big.as_bytes(), &cfg).unwrap_err();
        assert_eq!(r.id.as_deref(), Some("big-1"));
        assert_eq!(r.kind, "vip.upsert");
        assert!(
            r.reason.starts_with("the command is too large ("),
            "{}",
            r.reason
        );
        assert!(
            r.reason.len() < 100,
            "the refusal does not echo the payload"
        );
        // Not even JSON: refused all the same, without an id.
        let junk = vec![b'{'; super::super::link::MAX_COMMAND_BYTES + 1];
        let r = parse(&junk, &cfg).unwrap_err();
        assert_eq!(r.id, None);
        assert!(r.reason.contains("too large"), "{}", r.reason);
    }

    #[test]
    fn commands_past_their_maximum_age_are_refused() {
        let cfg = cfg();
        let now = crate::clock::parse("2026-12-06T12:00:00Z").unwrap();
        let env = |kind: &str, ts: Value| {
            let mut e = json!({"v":1,"id":"c","kind":kind,"data":{}});
            if !ts.is_null() {
                e["ts"] = ts;
            }
            e.to_string()
        };
        // (kind, ts, refusal containing; "" = runs)
        let cases = [
            ("rebirth", json!("2026-12-06T11:59:00Z"), ""),
            ("rebirth", json!("2026-11-30T12:00:00Z"), ""),
            (
                "rebirth",
                json!("2026-11-29T11:59:59Z"),
                "older than 604800 s",
            ),
            ("rebirth", json!("2026-12-06T20:00:00+08:00"), ""),
            ("device.command", json!("2026-12-06T11:56:00Z"), ""),
            (
                "device.command",
                json!("2026-12-06T11:54:59Z"),
                "`device.command` commands older than 300 s",
            ),
            (
                "device.command",
                json!("2026-12-03T12:00:00Z"),
                "is 259200 s old",
            ),
            ("rebirth", json!("yesterday"), "not an RFC 3339 time"),
            ("rebirth", Value::Null, "`ts` is required"),
            ("rebirth", json!(7), "`ts` is required"),
        ];
        for (kind, ts, want) in cases {
            let got = fresh(env(kind, ts.clone()).as_bytes(), kind, now, &cfg);
            match want {
                "" => assert_eq!(got, Ok(()), "{kind} {ts}"),
                want => assert!(
                    got.as_ref().is_err_and(|e| e.contains(want)),
                    "{kind} {ts}: {got:?} lacks `{want}`"
                ),
            }
        }
    }

    #[test]
    fn refusals_name_the_problem() {
        let cfg = cfg();
        let emb: Vec<f32> = vec![0.5; 128];
        let cases: &[(Value, &str)] = &[
            (json!([1]), "must be a JSON object"),
            (json!({"v":1,"kind":"rebirth"}), "`id` must be"),
            (
                json!({"v":1,"id":"a","kind":"nope"}),
                "unknown command kind `nope`",
            ),
            (json!({"v":2,"id":"a","kind":"rebirth"}), "`v` must be 1"),
            (
                json!({"v":1,"id":"a","kind":"order.create","data":{}}),
                "`order_id` is required",
            ),
            (
                json!({"v":1,"id":"a","kind":"vip.upsert","data":{"name":"x"}}),
                "`customer_id` is required",
            ),
            (
                json!({"v":1,"id":"a","kind":"vip.upsert","data":{"customer_id":"c","name":"n","level":"gold","consent":true,"photo":"!!"}}),
                "not base64",
            ),
            (
                json!({"v":1,"id":"a","kind":"vip.upsert","data":{"customer_id":"c","name":"n","level":"gold","consent":false,"embedding":emb,"model_id":"m"}}),
                "no face may be enrolled",
            ),
            (
                json!({"v":1,"id":"a","kind":"vip.upsert","data":{"customer_id":"c","name":"n","level":"gold","consent":true,"embedding":emb}}),
                "`model_id` is required",
            ),
            (
                json!({"v":1,"id":"a","kind":"vip.upsert","data":{"customer_id":"c","name":"n","level":"gold","consent":true,"embedding":emb,"model_id":"arcface-r100"}}),
                "`model_id` `arcface-r100` does not match this branch's face embedder `face_reidentification_retail_0095`",
            ),
            (
                json!({"v":1,"id":"a","kind":"vip.upsert","data":{"customer_id":"c","name":"n","level":"gold","consent":true,"embedding":emb,"model_id":"face_reidentification_retail_0095"}}),
                "`embedding` has 128 values; `face_reidentification_retail_0095` makes 256",
            ),
            (
                json!({"v":1,"id":"a","kind":"vip.upsert","data":{"customer_id":"c","name":"n","level":"gold","consent":true,"shoe":1}}),
                "unknown key `shoe`",
            ),
            (
                json!({"v":1,"id":"a","kind":"config.update","data":{"services":{"personal":{"target_wait_min":0}}}}),
                "must be an integer 1–600",
            ),
            (
                json!({"v":1,"id":"a","kind":"config.update","data":{"services":{"loans":{"target_wait_min":5}}}}),
                "no such service",
            ),
            (
                json!({"v":1,"id":"a","kind":"device.command","data":{"device":"STM-99","op":"reset"}}),
                "no device `STM-99`",
            ),
        ];
        let long = "k".repeat(100_000);
        let long_cases = [
            (
                json!({"v":1,"id":"a","kind":long}),
                "`kind` must be a string of at most 64 characters",
            ),
            (
                json!({"v":1,"id":"a","kind":"rebirth",long.as_str():1}),
                "unknown envelope key `kkkk",
            ),
        ];
        for (payload, want) in long_cases {
            let got = parse(payload.to_string().as_bytes(), &cfg).expect_err("refused");
            assert!(got.reason.contains(want), "{}", got.reason);
            assert!(
                got.reason.len() < 200,
                "echoed whole: {} bytes",
                got.reason.len()
            );
            assert!(got.kind.len() <= 64);
        }
        for (payload, want) in cases {
            let got = parse(payload.to_string().as_bytes(), &cfg).expect_err("refused");
            assert!(
                got.reason.contains(want),
                "{payload}: `{}` lacks `{want}`",
                got.reason
            );
        }
        let bad = parse(b"{not json", &cfg).expect_err("refused");
        assert!(bad.reason.starts_with("malformed JSON"), "{}", bad.reason);
        assert_eq!(bad.id, None);
    }

    #[test]
    fn valid_commands_parse() {
        let cfg = cfg();
        let (id, kind, cmd) = parse(
            json!({"v":1,"id":"c1","ts":"t","kind":"config.update",
                   "data":{"services":{"personal":{"target_wait_min":12,"priority_weight":1.5}}}})
            .to_string()
            .as_bytes(),
            &cfg,
        )
        .expect("valid");
        assert_eq!((id.as_str(), kind.as_str()), ("c1", "config.update"));
        assert!(matches!(cmd, Cmd::ConfigUpdate(ref v) if v.len() == 2));
        let photo = base64::engine::general_purpose::STANDARD.encode(b"\xff\xd8jpeg");
        let (_, _, cmd) = parse(
            json!({"v":1,"id":"c2","kind":"vip.upsert","data":{"customer_id":"C1","name":"王",
                   "level":"gold","tags":["birthday"],"consent":true,"photo":photo}})
            .to_string()
            .as_bytes(),
            &cfg,
        )
        .expect("valid");
        let Cmd::VipUpsert(v) = cmd else {
            panic!("vip")
        };
        assert_eq!(v.photo.as_deref(), Some(&b"\xff\xd8jpeg"[..]));
        let emb = vec![0.1f32; 256];
        let (_, _, cmd) = parse(
            json!({"v":1,"id":"c3","kind":"vip.upsert","data":{"customer_id":"C2","name":"李",
                   "level":"gold","consent":true,"embedding":emb,
                   "model_id":"face_reidentification_retail_0095"}})
            .to_string()
            .as_bytes(),
            &cfg,
        )
        .expect("an embedding of the configured embedder is accepted");
        let Cmd::VipUpsert(v) = cmd else {
            panic!("vip")
        };
        assert_eq!(v.embedding.map(|(e, _)| e.len()), Some(256));
    }
}
