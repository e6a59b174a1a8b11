//! Head-office commands (`<p>/cmd`): validated completely before anything changes, applied
//! in one transaction together with the record of their id and their `ack` event, so each
//! is handled exactly once however often the broker delivers it.
//!
//! A command that cannot be parsed or is invalid is answered `ok:false` with a reason and
//! changes nothing; with an id, that answer is recorded too, so a redelivery gets the same.

use std::sync::Arc;

use base64::Engine as _;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::config::Config;
use crate::store::{StoreError, Tx, rfc3339};

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

/// A VIP record from head office. Never leaves the box again (no biometrics upstream).
#[derive(Debug, Clone, PartialEq)]
pub struct Vip {
    /// Head office's customer id.
    pub customer_id: String,
    /// Display name.
    pub name: String,
    /// Customer level, e.g. `gold`.
    pub level: String,
    /// e.g. `birthday`, `maturing_deposit`.
    pub tags: Vec<String>,
    /// The customer's relationship manager.
    pub relationship_manager: Option<String>,
    /// Whether the customer consented to face recognition.
    pub consent: bool,
    /// A photo to enrol locally (decoded), kept only until the vision module enrols it.
    pub photo: Option<Vec<u8>>,
    /// A ready embedding and the id of the model that produced it.
    pub embedding: Option<(Vec<f32>, String)>,
}

/// A validated command.
#[derive(Debug, Clone, PartialEq)]
enum Cmd {
    VipUpsert(Box<Vip>),
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
pub async fn handle(app: &App, payload: &[u8]) -> Result<Outcome, StoreError> {
    let mut parsed = parse(payload, &app.cfg);
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
        let seen = app
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
        if !seen {
            let actor = format!("hq:{id}");
            let sent = crate::devices::send_command(app, device, op, args.clone(), &actor).await;
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
    let cfg = Arc::clone(&app.cfg);
    app.store.write(move |tx| apply(tx, parsed, &cfg)).await
}

fn apply(
    tx: &mut Tx<'_>,
    parsed: Result<(String, String, Cmd), Refusal>,
    _cfg: &Config,
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
            let rebirth = cmd == Cmd::Rebirth;
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
        Cmd::VipUpsert(v) => {
            let embedding = v
                .embedding
                .as_ref()
                .map(|(e, _)| e.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
            let model_id = v.embedding.as_ref().map(|(_, m)| m.clone());
            let has_bio = v.photo.is_some() || v.embedding.is_some();
            // Without new biometrics, the enrolled ones stay (unless consent was withdrawn).
            tx.conn().execute(
                "INSERT INTO sync_vips(customer_id, name, level, tags, relationship_manager, consent, \
                     photo, embedding, model_id, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT(customer_id) DO UPDATE SET name = excluded.name, level = excluded.level, \
                     tags = excluded.tags, relationship_manager = excluded.relationship_manager, \
                     consent = excluded.consent, \
                     photo = CASE WHEN ?11 THEN excluded.photo WHEN excluded.consent = 0 THEN NULL ELSE photo END, \
                     embedding = CASE WHEN ?11 THEN excluded.embedding WHEN excluded.consent = 0 THEN NULL ELSE embedding END, \
                     model_id = CASE WHEN ?11 THEN excluded.model_id WHEN excluded.consent = 0 THEN NULL ELSE model_id END, \
                     updated_at = excluded.updated_at",
                params![
                    v.customer_id,
                    v.name,
                    v.level,
                    serde_json::to_string(&v.tags)?,
                    v.relationship_manager,
                    v.consent as i64,
                    v.photo,
                    embedding,
                    model_id,
                    now,
                    has_bio,
                ],
            )?;
            tx.emit(
                "vip.upserted",
                json!({"customer_id": v.customer_id, "level": v.level,
                       "photo_pending": v.photo.is_some(), "embedding": v.embedding.is_some(),
                       "command": id}),
            )?;
        }
        Cmd::VipDelete(customer_id) => {
            let n = tx.conn().execute(
                "DELETE FROM sync_vips WHERE customer_id = ?1",
                [&customer_id],
            )?;
            if n > 0 {
                tx.emit(
                    "vip.deleted",
                    json!({"customer_id": customer_id, "command": id}),
                )?;
            }
        }
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
    }
    Ok(Ok(()))
}

fn parse(payload: &[u8], cfg: &Config) -> Result<(String, String, Cmd), Refusal> {
    let refuse = |id: Option<String>, kind: &str, reason: String| Refusal {
        id,
        kind: kind.to_string(),
        reason,
    };
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
        Some(Value::String(k)) => k.clone(),
        _ => return Err(refuse(Some(id), "", "`kind` must be a string".into())),
    };
    let r = |reason: String| refuse(Some(id.clone()), &kind, reason);
    if env.get("v") != Some(&json!(1)) {
        return Err(r("`v` must be 1".into()));
    }
    for key in env.keys() {
        if !["v", "id", "ts", "kind", "data"].contains(&key.as_str()) {
            return Err(r(format!("unknown envelope key `{key}`")));
        }
    }
    let empty = Map::new();
    let data = match env.get("data") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(d)) => d,
        Some(_) => return Err(r("`data` must be an object".into())),
    };
    let cmd = match kind.as_str() {
        "vip.upsert" => Cmd::VipUpsert(Box::new(vip(data, cfg).map_err(r)?)),
        "vip.delete" => {
            let mut f = Fields::new(data);
            let c = f.string("customer_id", 64);
            f.finish().map_err(r)?;
            Cmd::VipDelete(c.unwrap_or_default())
        }
        "config.update" => Cmd::ConfigUpdate(config_update(data, cfg).map_err(r)?),
        "device.command" => {
            let mut f = Fields::new(data);
            let device = f.string("device", 64);
            let op = f.string("op", 32);
            let args = f.opt_object("args");
            if let Some(d) = &device {
                if !cfg.devices.iter().any(|x| &x.id == d) {
                    f.problems
                        .push(format!("`device`: no device `{d}` in this branch"));
                }
            }
            f.finish().map_err(r)?;
            Cmd::DeviceCommand {
                device: device.unwrap_or_default(),
                op: op.unwrap_or_default(),
                args: args.unwrap_or_else(|| json!({})),
                result: None,
            }
        }
        "rebirth" => Cmd::Rebirth,
        k if k.starts_with("order.") => {
            Cmd::Order(crate::orders::command::parse(k, data, &cfg.orders).map_err(r)?)
        }
        k => return Err(r(format!("unknown command kind `{k}`"))),
    };
    Ok((id, kind, cmd))
}

/// Largest photo accepted for local enrolment.
const MAX_PHOTO: usize = 5 << 20;

fn vip(data: &Map<String, Value>, cfg: &Config) -> Result<Vip, String> {
    let mut f = Fields::new(data);
    let customer_id = f.string("customer_id", 64);
    let name = f.string("name", 100);
    let level = f.string("level", 32);
    let tags = f.opt_strings("tags", 50, 64).unwrap_or_default();
    let relationship_manager = f.opt_string("relationship_manager", 64);
    let consent = f.bool("consent");
    let photo = f.opt_string("photo", usize::MAX).and_then(|p| {
        match base64::engine::general_purpose::STANDARD.decode(p.as_bytes()) {
            Ok(b) if b.is_empty() => {
                f.problems.push("`photo` is empty".into());
                None
            }
            Ok(b) if b.len() > MAX_PHOTO => {
                f.problems
                    .push(format!("`photo` is larger than {MAX_PHOTO} bytes"));
                None
            }
            Ok(b) => Some(b),
            Err(e) => {
                f.problems.push(format!("`photo` is not base64: {e}"));
                None
            }
        }
    });
    let embedding = f.opt_floats("embedding", 32, 4096);
    let model_id = f.opt_string("model_id", 64);
    let sent_embedding = embedding.is_some();
    let embedding = match (embedding, model_id) {
        // an embedding is only comparable with those of the same model
        (Some(_), Some(m)) if m != cfg.faces.model_id => {
            f.problems.push(format!(
                "`model_id` `{m}` does not match this branch's face embedder `{}`; \
                 send a photo or an embedding made by `{}`",
                cfg.faces.model_id, cfg.faces.model_id
            ));
            None
        }
        (Some(e), Some(_)) if e.len() != cfg.faces.dim => {
            f.problems.push(format!(
                "`embedding` has {} values; `{}` makes {}",
                e.len(),
                cfg.faces.model_id,
                cfg.faces.dim
            ));
            None
        }
        (Some(e), Some(m)) => Some((e, m)),
        (None, None) => None,
        (Some(_), None) => {
            f.problems
                .push("`model_id` is required with `embedding`".into());
            None
        }
        (None, Some(_)) => {
            f.problems
                .push("`model_id` is only meaningful with `embedding`".into());
            None
        }
    };
    if photo.is_some() && sent_embedding {
        f.problems
            .push("give either `photo` or `embedding`, not both".into());
    }
    if consent == Some(false) && (photo.is_some() || sent_embedding) {
        f.problems
            .push("`consent` is false: no face may be enrolled".into());
    }
    f.finish()?;
    Ok(Vip {
        customer_id: customer_id.unwrap_or_default(),
        name: name.unwrap_or_default(),
        level: level.unwrap_or_default(),
        tags,
        relationship_manager,
        consent: consent.unwrap_or(false),
        photo,
        embedding,
    })
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

/// A strict reader of a command's `data`: every problem collected, unknown keys refused.
struct Fields<'a> {
    data: &'a Map<String, Value>,
    used: Vec<&'static str>,
    problems: Vec<String>,
}

impl<'a> Fields<'a> {
    fn new(data: &'a Map<String, Value>) -> Self {
        Fields {
            data,
            used: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.data.get(key).filter(|v| !v.is_null())
    }

    fn opt_string(&mut self, key: &'static str, max: usize) -> Option<String> {
        match self.get(key)? {
            Value::String(s) if !s.trim().is_empty() && s.chars().count() <= max => Some(s.clone()),
            _ => {
                self.problems.push(format!(
                    "`{key}` must be a non-empty string of at most {max} characters"
                ));
                None
            }
        }
    }

    fn string(&mut self, key: &'static str, max: usize) -> Option<String> {
        if self.data.get(key).is_none_or(Value::is_null) {
            self.used.push(key);
            self.problems.push(format!("`{key}` is required"));
            return None;
        }
        self.opt_string(key, max)
    }

    fn bool(&mut self, key: &'static str) -> Option<bool> {
        match self.get(key) {
            Some(Value::Bool(b)) => Some(*b),
            None => {
                self.problems.push(format!("`{key}` is required"));
                None
            }
            Some(_) => {
                self.problems.push(format!("`{key}` must be true or false"));
                None
            }
        }
    }

    fn opt_strings(
        &mut self,
        key: &'static str,
        max_n: usize,
        max_len: usize,
    ) -> Option<Vec<String>> {
        let v = self.get(key)?;
        let ok = v.as_array().filter(|a| a.len() <= max_n).and_then(|a| {
            a.iter()
                .map(|x| {
                    x.as_str()
                        .filter(|s| !s.is_empty() && s.chars().count() <= max_len)
                        .map(String::from)
                })
                .collect::<Option<Vec<_>>>()
        });
        if ok.is_none() {
            self.problems.push(format!(
                "`{key}` must be a list of at most {max_n} non-empty strings of at most {max_len} characters"
            ));
        }
        ok
    }

    fn opt_floats(&mut self, key: &'static str, min_n: usize, max_n: usize) -> Option<Vec<f32>> {
        let v = self.get(key)?;
        let ok = v
            .as_array()
            .filter(|a| (min_n..=max_n).contains(&a.len()))
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_f64().filter(|f| f.is_finite()).map(|f| f as f32))
                    .collect::<Option<Vec<_>>>()
            });
        if ok.is_none() {
            self.problems.push(format!(
                "`{key}` must be a list of {min_n}–{max_n} finite numbers"
            ));
        }
        ok
    }

    fn opt_object(&mut self, key: &'static str) -> Option<Value> {
        match self.get(key)? {
            v @ Value::Object(_) => Some(v.clone()),
            _ => {
                self.problems.push(format!("`{key}` must be an object"));
                None
            }
        }
    }

    fn finish(mut self) -> Result<(), String> {
        for k in self.data.keys() {
            if !self.used.contains(&k.as_str()) {
                self.problems.push(format!("unknown key `{k}`"));
            }
        }
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(self.problems.join("; "))
        }
    }
}

/// A VIP record as stored (for the vision module and tests; biometrics stay here).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredVip {
    /// Customer id.
    pub customer_id: String,
    /// Name.
    pub name: String,
    /// Level.
    pub level: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Relationship manager.
    pub relationship_manager: Option<String>,
    /// Consent to face recognition.
    pub consent: bool,
    /// A photo waits for enrolment.
    pub photo_pending: bool,
    /// The embedding's model, when there is one.
    pub model_id: Option<String>,
}

/// One VIP record.
pub fn vip_get(c: &Connection, customer_id: &str) -> Result<Option<StoredVip>, StoreError> {
    Ok(c.query_row(
        "SELECT customer_id, name, level, tags, relationship_manager, consent, photo IS NOT NULL, model_id \
         FROM sync_vips WHERE customer_id = ?1",
        [customer_id],
        |r| {
            Ok(StoredVip {
                customer_id: r.get(0)?,
                name: r.get(1)?,
                level: r.get(2)?,
                tags: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                relationship_manager: r.get(4)?,
                consent: r.get::<_, i64>(5)? != 0,
                photo_pending: r.get(6)?,
                model_id: r.get(7)?,
            })
        },
    )
    .optional()?)
}

/// Enrolment hook for the vision module: photos waiting to become embeddings.
pub fn photos_pending(c: &Connection) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT customer_id, photo FROM sync_vips WHERE photo IS NOT NULL AND consent = 1",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Enrolment hook for the vision module: store the embedding and drop the photo, in one
/// transaction (the photo is never kept past enrolment).
pub fn enrolled(
    tx: &mut Tx<'_>,
    customer_id: &str,
    embedding: &[f32],
    model_id: &str,
) -> Result<bool, StoreError> {
    let bytes: Vec<u8> = embedding.iter().flat_map(|x| x.to_le_bytes()).collect();
    Ok(tx.conn().execute(
        "UPDATE sync_vips SET embedding = ?2, model_id = ?3, photo = NULL, updated_at = ?4 \
         WHERE customer_id = ?1",
        params![customer_id, bytes, model_id, rfc3339(tx.now())],
    )? > 0)
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

    fn cfg() -> Config {
        Config::parse(
            "[branch]\nid = \"T1\"\nname = \"t\"\ndata_dir = \"/tmp/x\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [[services]]\ncode = \"personal\"\nprefix = \"A\"\nname = \"个人\"\n",
        )
        .expect("config")
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
