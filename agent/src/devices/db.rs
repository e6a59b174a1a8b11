//! The devices module's tables and the transactions that change them. Every function that
//! changes state takes the writer's [`Tx`] and emits its event in the same transaction.

use branchd_drivers::stm::message::{AuthRequest, Exception, Transaction};
use branchd_drivers::stm::{CommandResult, DeviceState, Hello, Status};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::{Value, json};

use crate::alerts::{self, Level, NewAlert};
use crate::clock::rfc3339;
use crate::config::StmRules;
use crate::store::{StoreError, Tx, text_enum};

/// The module's migrations.
pub const STEPS: &[&str] = &[
    // 1: status history, device events (de-duplication), exceptions, authorisation tasks,
    //    remote commands, kept ID card photos.
    "CREATE TABLE device_status_history (
         id INTEGER PRIMARY KEY,
         device_id TEXT NOT NULL,
         ts TEXT NOT NULL,
         state TEXT NOT NULL,
         modules TEXT NOT NULL,
         consumables TEXT NOT NULL,
         cash TEXT NOT NULL
     ) STRICT;
     CREATE INDEX device_status_history_by_device ON device_status_history(device_id, ts);
     CREATE TABLE device_events (
         device_id TEXT NOT NULL,
         event_id TEXT NOT NULL,
         kind TEXT NOT NULL,
         device_ts TEXT NOT NULL,
         received_at TEXT NOT NULL,
         data TEXT,
         PRIMARY KEY (device_id, event_id)
     ) STRICT;
     CREATE TABLE device_exceptions (
         id INTEGER PRIMARY KEY,
         device_id TEXT NOT NULL,
         event_id TEXT NOT NULL,
         code TEXT NOT NULL,
         message TEXT NOT NULL,
         ts TEXT NOT NULL,
         resolved_at TEXT,
         resolved_by TEXT,
         note TEXT
     ) STRICT;
     CREATE INDEX device_exceptions_open ON device_exceptions(device_id) WHERE resolved_at IS NULL;
     CREATE TABLE auth_tasks (
         id INTEGER PRIMARY KEY,
         device_id TEXT NOT NULL,
         request_id TEXT NOT NULL,
         txn_type TEXT NOT NULL,
         state TEXT NOT NULL,
         ts TEXT NOT NULL,
         customer TEXT NOT NULL,
         elements TEXT NOT NULL,
         reason TEXT NOT NULL,
         decided_at TEXT,
         decided_by TEXT,
         decision TEXT,
         redo TEXT,
         comment TEXT,
         delivered INTEGER,
         UNIQUE (device_id, request_id)
     ) STRICT;
     CREATE TABLE device_commands (
         id INTEGER PRIMARY KEY,
         device_id TEXT NOT NULL,
         cmd_id TEXT NOT NULL,
         op TEXT NOT NULL,
         args TEXT NOT NULL,
         actor TEXT NOT NULL,
         sent_at TEXT NOT NULL,
         ok INTEGER NOT NULL,
         error TEXT
     ) STRICT;
     CREATE TABLE id_card_photos (
         id INTEGER PRIMARY KEY,
         reader TEXT NOT NULL,
         ts TEXT NOT NULL,
         photo_wlt BLOB NOT NULL
     ) STRICT;",
];

fn state_str(s: DeviceState) -> &'static str {
    match s {
        DeviceState::SignedOut => "signed_out",
        DeviceState::InService => "in_service",
        DeviceState::Paused => "paused",
        DeviceState::Maintenance => "maintenance",
        DeviceState::Fault => "fault",
    }
}

/// Make sure a configured device has its row (offline until it speaks).
pub fn ensure_device(tx: &mut Tx<'_>, id: &str, kind: &str) -> Result<(), StoreError> {
    tx.conn().execute(
        "INSERT INTO device_state(id, kind, online, updated_at) VALUES (?1, ?2, 0, ?3) \
         ON CONFLICT(id) DO UPDATE SET kind = excluded.kind",
        params![id, kind, rfc3339(tx.now())],
    )?;
    Ok(())
}

fn offline_key(id: &str) -> String {
    format!("device.offline:{id}")
}

/// The device answered again: `device.online`, the offline alert cleared. No-op if it was
/// already online.
pub fn set_online(tx: &mut Tx<'_>, id: &str) -> Result<bool, StoreError> {
    let n = tx.conn().execute(
        "UPDATE device_state SET online = 1, updated_at = ?2 WHERE id = ?1 AND online = 0",
        params![id, rfc3339(tx.now())],
    )?;
    if n == 0 {
        return Ok(false);
    }
    tx.emit("device.online", json!({"device_id": id}))?;
    alerts::clear(tx, &offline_key(id))?;
    Ok(true)
}

/// The device fell silent: `device.offline` and an alert. No-op if already offline.
pub fn set_offline(tx: &mut Tx<'_>, id: &str, reason: &str) -> Result<bool, StoreError> {
    let n = tx.conn().execute(
        "UPDATE device_state SET online = 0, updated_at = ?2 WHERE id = ?1 AND online = 1",
        params![id, rfc3339(tx.now())],
    )?;
    if n == 0 {
        return Ok(false);
    }
    tx.emit("device.offline", json!({"device_id": id, "reason": reason}))?;
    let message = format!("{id} is offline ({reason})");
    alerts::raise(
        tx,
        &NewAlert {
            kind: "device.offline",
            level: Level::Critical,
            source: Some(id),
            key: Some(&offline_key(id)),
            message: &message,
            data: json!({"device_id": id}),
        },
    )?;
    Ok(true)
}

/// HELLO: model and firmware into the device's detail.
pub fn on_hello(tx: &mut Tx<'_>, id: &str, hello: &Hello) -> Result<(), StoreError> {
    let detail = json!({"model": hello.model, "firmware": hello.firmware,
                        "fitted": hello.modules});
    tx.conn().execute(
        "UPDATE device_state SET detail = json_patch(detail, ?2), updated_at = ?3 WHERE id = ?1",
        params![id, detail.to_string(), rfc3339(tx.now())],
    )?;
    Ok(())
}

/// A heartbeat's state, when it differs from the stored one (`device.status` then).
pub fn on_heartbeat_state(tx: &mut Tx<'_>, id: &str, state: DeviceState) -> Result<(), StoreError> {
    let n = tx.conn().execute(
        "UPDATE device_state SET state = ?2, updated_at = ?3 WHERE id = ?1 AND state IS NOT ?2",
        params![id, state_str(state), rfc3339(tx.now())],
    )?;
    if n > 0 {
        tx.emit(
            "device.status",
            json!({"device_id": id, "state": state_str(state)}),
        )?;
    }
    Ok(())
}

/// STATUS: stored (with history) when it changed, `device.status`, and the consumable and
/// cassette alerts raised or cleared.
pub fn on_status(
    tx: &mut Tx<'_>,
    id: &str,
    status: &Status,
    rules: &StmRules,
) -> Result<bool, StoreError> {
    let state = state_str(status.state);
    let modules = serde_json::to_string(&status.modules)?;
    let consumables = serde_json::to_string(&status.consumables)?;
    let cash = serde_json::to_string(&status.cash)?;
    let ts = rfc3339(tx.now());
    let same: bool = tx
        .conn()
        .query_row(
            "SELECT state IS ?2 AND modules = ?3 AND consumables = ?4 AND cash IS ?5 \
             FROM device_state WHERE id = ?1",
            params![id, state, modules, consumables, cash],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(false);
    if same {
        return Ok(false);
    }
    tx.conn().execute(
        "UPDATE device_state SET state = ?2, modules = ?3, consumables = ?4, cash = ?5, \
         updated_at = ?6 WHERE id = ?1",
        params![id, state, modules, consumables, cash, ts],
    )?;
    tx.conn().execute(
        "INSERT INTO device_status_history(device_id, ts, state, modules, consumables, cash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, ts, state, modules, consumables, cash],
    )?;
    tx.emit(
        "device.status",
        json!({"device_id": id, "state": state, "modules": status.modules,
               "consumables": status.consumables, "cash": status.cash}),
    )?;
    for (item, threshold) in &rules.consumables_low {
        let key = format!("device.consumable_low:{id}:{item}");
        match status.consumables.get(item) {
            Some(&n) if n < *threshold => {
                let message = format!("{id}: {item} is low ({n} left, threshold {threshold})");
                alerts::raise(
                    tx,
                    &NewAlert {
                        kind: "device.consumable_low",
                        level: Level::Warning,
                        source: Some(id),
                        key: Some(&key),
                        message: &message,
                        data: json!({"device_id": id, "item": item, "remaining": n,
                                     "threshold": threshold}),
                    },
                )?;
            }
            _ => {
                alerts::clear(tx, &key)?;
            }
        }
    }
    for c in &status.cash.cassettes {
        let key = format!("device.cassette_low:{id}:{}", c.id);
        if c.count < rules.cassette_low_notes {
            let message = format!(
                "{id}: cassette {} ({} yuan) is running low ({} notes)",
                c.id, c.denom, c.count
            );
            alerts::raise(
                tx,
                &NewAlert {
                    kind: "device.cassette_low",
                    level: Level::Warning,
                    source: Some(id),
                    key: Some(&key),
                    message: &message,
                    data: json!({"device_id": id, "cassette": c.id, "denom": c.denom,
                                 "count": c.count, "threshold": rules.cassette_low_notes}),
                },
            )?;
        } else {
            alerts::clear(tx, &key)?;
        }
    }
    Ok(true)
}

/// Record a device event id; false when it was seen before (a redelivery, perhaps across
/// a restart of either side), in which case nothing else must happen.
pub fn first_sighting(
    tx: &mut Tx<'_>,
    id: &str,
    event_id: &str,
    kind: &str,
    device_ts: &str,
    data: Option<&Value>,
) -> Result<bool, StoreError> {
    let n = tx.conn().execute(
        "INSERT INTO device_events(device_id, event_id, kind, device_ts, received_at, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        params![
            id,
            event_id,
            kind,
            device_ts,
            rfc3339(tx.now()),
            data.map(|d| d.to_string())
        ],
    )?;
    Ok(n > 0)
}

/// A transaction: `device.transaction`.
pub fn on_transaction(tx: &mut Tx<'_>, id: &str, t: &Transaction) -> Result<(), StoreError> {
    let mut data = json!({"device_id": id, "txn_id": t.txn_id, "txn_type": t.txn_type,
                          "amount": t.amount, "ok": t.ok, "duration_s": t.duration_s});
    if let Some(p) = &t.product {
        data["product"] = json!(p);
    }
    tx.emit("device.transaction", data)?;
    Ok(())
}

/// An exception: stored open, `device.exception`, and an alert.
pub fn on_exception(
    tx: &mut Tx<'_>,
    id: &str,
    event_id: &str,
    device_ts: &str,
    e: &Exception,
) -> Result<i64, StoreError> {
    tx.conn().execute(
        "INSERT INTO device_exceptions(device_id, event_id, code, message, ts) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, event_id, e.code, e.message, device_ts],
    )?;
    let exc_id = tx.conn().last_insert_rowid();
    tx.emit(
        "device.exception",
        json!({"device_id": id, "exception_id": exc_id, "code": e.code, "message": e.message}),
    )?;
    let message = format!("{id}: {} ({})", e.message, e.code);
    alerts::raise(
        tx,
        &NewAlert {
            kind: "device.exception",
            level: Level::Warning,
            source: Some(id),
            key: Some(&format!("device.exception:{exc_id}")),
            message: &message,
            data: json!({"device_id": id, "exception_id": exc_id, "code": e.code}),
        },
    )?;
    Ok(exc_id)
}

/// An open exception as the PAD lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenException {
    /// Row id (used to resolve it).
    pub id: i64,
    /// Device's code, e.g. `CASH_JAM`.
    pub code: String,
    /// Device's message.
    pub message: String,
    /// When the device reported it.
    pub ts: String,
}

/// The device's open exceptions, oldest first.
pub fn open_exceptions(c: &Connection, id: &str) -> Result<Vec<OpenException>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, code, message, ts FROM device_exceptions \
         WHERE device_id = ?1 AND resolved_at IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(OpenException {
            id: r.get(0)?,
            code: r.get(1)?,
            message: r.get(2)?,
            ts: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Why resolving an exception failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No such exception on this device.
    #[error("no exception {0} on this device")]
    NotFound(i64),
    /// It was resolved before.
    #[error("exception {0} is already resolved")]
    AlreadyResolved(i64),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Resolve an open exception with the admin's note: `device.exception_resolved`, audit,
/// its alert cleared.
pub fn resolve_exception(
    tx: &mut Tx<'_>,
    id: &str,
    exc_id: i64,
    note: &str,
    by: &str,
) -> Result<(), ResolveError> {
    let resolved: Option<Option<String>> = tx
        .conn()
        .query_row(
            "SELECT resolved_at FROM device_exceptions WHERE id = ?1 AND device_id = ?2",
            params![exc_id, id],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::from)?;
    match resolved {
        None => return Err(ResolveError::NotFound(exc_id)),
        Some(Some(_)) => return Err(ResolveError::AlreadyResolved(exc_id)),
        Some(None) => {}
    }
    tx.conn()
        .execute(
            "UPDATE device_exceptions SET resolved_at = ?2, resolved_by = ?3, note = ?4 \
             WHERE id = ?1",
            params![exc_id, rfc3339(tx.now()), by, note],
        )
        .map_err(StoreError::from)?;
    tx.emit(
        "device.exception_resolved",
        json!({"device_id": id, "exception_id": exc_id, "by": by}),
    )?;
    crate::users::audit(
        tx,
        Some(by),
        "device.exception_resolve",
        Some(id),
        Some(&json!({"exception_id": exc_id, "note": note})),
    )?;
    alerts::clear(tx, &format!("device.exception:{exc_id}"))?;
    Ok(())
}

/// An `auth_request`: a pending task and `auth.requested` (without the customer's data).
/// Returns the task id.
pub fn on_auth_request(tx: &mut Tx<'_>, id: &str, r: &AuthRequest) -> Result<i64, StoreError> {
    let txn_type = serde_json::to_value(r.txn_type)?;
    let txn_type = txn_type.as_str().unwrap_or("other").to_string();
    tx.conn().execute(
        "INSERT INTO auth_tasks(device_id, request_id, txn_type, state, ts, customer, elements, reason) \
         VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7) \
         ON CONFLICT(device_id, request_id) DO UPDATE SET state = 'pending', ts = excluded.ts, \
             elements = excluded.elements, reason = excluded.reason, decided_at = NULL, \
             decided_by = NULL, decision = NULL, redo = NULL, comment = NULL, delivered = NULL",
        params![
            id,
            r.request_id,
            txn_type,
            rfc3339(tx.now()),
            serde_json::to_string(&r.customer)?,
            Value::Object(r.elements.clone()).to_string(),
            r.reason
        ],
    )?;
    let task_id: i64 = tx.conn().query_row(
        "SELECT id FROM auth_tasks WHERE device_id = ?1 AND request_id = ?2",
        params![id, r.request_id],
        |row| row.get(0),
    )?;
    tx.emit(
        "auth.requested",
        json!({"task_id": task_id, "device_id": id, "request_id": r.request_id,
               "txn_type": txn_type, "reason": r.reason}),
    )?;
    Ok(task_id)
}

text_enum! {
    /// Where an authorisation task is.
    pub enum TaskState {
        /// Waiting for a supervisor.
        Pending = "pending",
        /// The supervisor asked the customer to redo some checks; waiting again.
        Redo = "redo",
        /// Approved on the device.
        Approved = "approved",
        /// Rejected on the device.
        Rejected = "rejected",
        /// Nobody answered in time (a supervisor may still decide).
        Timeout = "timeout",
    }
}

impl TaskState {
    /// Whether a supervisor may still decide. Not after a `redo`: the STM forgets the
    /// request until the customer has redone the steps and it asks again (then the task
    /// is pending once more).
    pub fn is_open(self) -> bool {
        matches!(self, TaskState::Pending | TaskState::Timeout)
    }
}

/// An authorisation task as the PAD lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    /// Task id.
    pub id: i64,
    /// The STM asking.
    pub device_id: String,
    /// The device's request id.
    pub request_id: String,
    /// Business type.
    pub txn_type: String,
    /// Where it is.
    pub state: TaskState,
    /// When it was requested.
    pub ts: String,
    /// Name and masked ID number, as the device sent them.
    pub customer: Value,
    /// Elements to review.
    pub elements: Value,
    /// Why approval is needed.
    pub reason: String,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<String>,
    /// Steps to redo (for `redo`).
    pub redo: Option<Value>,
    /// The supervisor's comment.
    pub comment: Option<String>,
}

const TASK_COLUMNS: &str = "id, device_id, request_id, txn_type, state, ts, customer, elements, \
                            reason, decided_by, decided_at, redo, comment";

fn task_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Task> {
    let parse = |s: String| serde_json::from_str(&s).unwrap_or(Value::Null);
    Ok(Task {
        id: r.get(0)?,
        device_id: r.get(1)?,
        request_id: r.get(2)?,
        txn_type: r.get(3)?,
        state: r.get(4)?,
        ts: r.get(5)?,
        customer: parse(r.get(6)?),
        elements: parse(r.get(7)?),
        reason: r.get(8)?,
        decided_by: r.get(9)?,
        decided_at: r.get(10)?,
        redo: r.get::<_, Option<String>>(11)?.map(parse),
        comment: r.get(12)?,
    })
}

/// Open tasks (pending, redo, timed out) first, then today's decided ones; newest first.
pub fn tasks(c: &Connection, limit: usize) -> Result<Vec<Task>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {TASK_COLUMNS} FROM auth_tasks \
         ORDER BY (state IN ('pending', 'redo', 'timeout')) DESC, id DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit as i64], task_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One task.
pub fn task(c: &Connection, task_id: i64) -> Result<Option<Task>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {TASK_COLUMNS} FROM auth_tasks WHERE id = ?1"),
        [task_id],
        task_row,
    )
    .optional()?)
}

/// Tasks still waiting for a decision: (id, requested at).
pub fn waiting_tasks(c: &Connection) -> Result<Vec<(i64, String)>, StoreError> {
    let mut stmt =
        c.prepare_cached("SELECT id, ts FROM auth_tasks WHERE state IN ('pending', 'redo')")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn auth_alert_key(task_id: i64) -> String {
    format!("auth.timeout:{task_id}")
}

/// A task waited too long: state `timeout`, `auth.timeout`, an alert to the supervisors.
/// Nothing happens if it was decided (or its request renewed) in the meantime.
pub fn on_auth_timeout(
    tx: &mut Tx<'_>,
    task_id: i64,
    requested_at: &str,
) -> Result<bool, StoreError> {
    let row: Option<String> = tx
        .conn()
        .query_row(
            "SELECT device_id FROM auth_tasks WHERE id = ?1 AND ts = ?2 \
             AND state IN ('pending', 'redo')",
            params![task_id, requested_at],
            |r| r.get(0),
        )
        .optional()?;
    let Some(device_id) = row else {
        return Ok(false);
    };
    tx.conn().execute(
        "UPDATE auth_tasks SET state = 'timeout' WHERE id = ?1",
        [task_id],
    )?;
    tx.emit(
        "auth.timeout",
        json!({"task_id": task_id, "device_id": device_id}),
    )?;
    let message = format!("authorisation request on {device_id} is waiting for a supervisor");
    alerts::raise(
        tx,
        &NewAlert {
            kind: "auth.timeout",
            level: Level::Critical,
            source: Some(&device_id),
            key: Some(&auth_alert_key(task_id)),
            message: &message,
            data: json!({"task_id": task_id, "device_id": device_id}),
        },
    )?;
    Ok(true)
}

/// Record a decision delivered to (or attempted on) the device: state, `auth.decided`,
/// audit, the timeout alert cleared.
#[allow(clippy::too_many_arguments)]
pub fn record_decision(
    tx: &mut Tx<'_>,
    task_id: i64,
    decision: &str,
    redo: &[String],
    comment: &str,
    by: &str,
    result: &Result<CommandResult, String>,
) -> Result<(), StoreError> {
    let device_id: String = tx.conn().query_row(
        "SELECT device_id FROM auth_tasks WHERE id = ?1",
        [task_id],
        |r| r.get(0),
    )?;
    let delivered = matches!(result, Ok(r) if r.ok);
    if delivered {
        let state = match decision {
            "approve" => TaskState::Approved,
            "reject" => TaskState::Rejected,
            _ => TaskState::Redo,
        };
        let redo_json = (!redo.is_empty()).then(|| json!(redo).to_string());
        tx.conn().execute(
            "UPDATE auth_tasks SET state = ?2, decided_at = ?3, decided_by = ?4, decision = ?5, \
             redo = ?6, comment = ?7, delivered = 1 WHERE id = ?1",
            params![
                task_id,
                state,
                rfc3339(tx.now()),
                by,
                decision,
                redo_json,
                comment
            ],
        )?;
        tx.emit(
            "auth.decided",
            json!({"task_id": task_id, "device_id": device_id, "decision": decision,
                   "redo": redo, "by": by}),
        )?;
        alerts::clear(tx, &auth_alert_key(task_id))?;
    }
    let outcome = match result {
        Ok(r) => json!({"ok": r.ok, "error": r.error}),
        Err(e) => json!({"ok": false, "error": e}),
    };
    crate::users::audit(
        tx,
        Some(by),
        "auth.decide",
        Some(&device_id),
        Some(
            &json!({"task_id": task_id, "decision": decision, "redo": redo,
                     "comment": comment, "result": outcome}),
        ),
    )?;
    Ok(())
}

/// Record a remote command and its outcome: `device_commands`, the audit trail and the
/// `device.command` event.
pub fn record_command(
    tx: &mut Tx<'_>,
    id: &str,
    cmd_id: &str,
    op: &str,
    args: &Value,
    actor: &str,
    result: &Result<CommandResult, String>,
) -> Result<(), StoreError> {
    let (ok, error) = match result {
        Ok(r) => (r.ok, r.error.clone()),
        Err(e) => (false, Some(e.clone())),
    };
    let ts = rfc3339(tx.now());
    tx.conn().execute(
        "INSERT INTO device_commands(device_id, cmd_id, op, args, actor, sent_at, ok, error) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            cmd_id,
            op,
            args.to_string(),
            actor,
            ts,
            ok as i64,
            error
        ],
    )?;
    crate::users::audit(
        tx,
        Some(actor),
        "device.command",
        Some(id),
        Some(&json!({"cmd_id": cmd_id, "op": op, "args": args, "ok": ok, "error": error})),
    )?;
    tx.emit(
        "device.command",
        json!({"device_id": id, "cmd_id": cmd_id, "op": op, "by": actor, "ok": ok,
               "error": error}),
    )?;
    Ok(())
}

/// A sign-in or sign-out the device confirmed.
pub fn on_signed(tx: &mut Tx<'_>, id: &str, signed_in: bool, by: &str) -> Result<(), StoreError> {
    let (kind, state) = if signed_in {
        ("device.signed_in", "in_service")
    } else {
        ("device.signed_out", "signed_out")
    };
    tx.conn().execute(
        "UPDATE device_state SET state = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, state, rfc3339(tx.now())],
    )?;
    tx.emit(kind, json!({"device_id": id, "by": by}))?;
    Ok(())
}

/// A card read on the lobby reader: `device.card_read` (no personal data) and the photo
/// kept if configured.
pub fn on_card_read(
    tx: &mut Tx<'_>,
    reader: &str,
    valid: bool,
    photo: Option<&[u8]>,
) -> Result<(), StoreError> {
    let mut photo_id = None;
    if let Some(p) = photo {
        tx.conn().execute(
            "INSERT INTO id_card_photos(reader, ts, photo_wlt) VALUES (?1, ?2, ?3)",
            params![reader, rfc3339(tx.now()), p],
        )?;
        photo_id = Some(tx.conn().last_insert_rowid());
    }
    tx.emit(
        "device.card_read",
        json!({"device_id": reader, "valid_id_number": valid, "photo_kept": photo_id.is_some()}),
    )?;
    Ok(())
}

/// Extra detail of a device (e.g. the reader's last error) merged into its row.
pub fn set_detail(tx: &mut Tx<'_>, id: &str, patch: &Value) -> Result<(), StoreError> {
    tx.conn().execute(
        "UPDATE device_state SET detail = json_patch(detail, ?2) WHERE id = ?1",
        params![id, patch.to_string()],
    )?;
    Ok(())
}

/// Every device as `GET /api/v1/devices` lists it.
pub fn list(c: &Connection) -> Result<Vec<Value>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT d.id, d.kind, d.online, d.state, d.modules, d.consumables, d.cash, d.detail, \
             d.updated_at, \
             (SELECT count(*) FROM device_exceptions e \
              WHERE e.device_id = d.id AND e.resolved_at IS NULL) \
         FROM device_state d ORDER BY d.id",
    )?;
    let rows = stmt.query_map([], |r| {
        let parse = |s: Option<String>| {
            s.and_then(|s| serde_json::from_str::<Value>(&s).ok())
                .unwrap_or(Value::Null)
        };
        let detail = parse(r.get(7)?);
        Ok(json!({
            "id": r.get::<_, String>(0)?,
            "kind": r.get::<_, String>(1)?,
            "online": r.get::<_, i64>(2)? != 0,
            "state": r.get::<_, Option<String>>(3)?,
            "modules": parse(r.get(4)?),
            "consumables": parse(r.get(5)?),
            "cash": parse(r.get(6)?),
            "model": detail.get("model").cloned().unwrap_or(Value::Null),
            "firmware": detail.get("firmware").cloned().unwrap_or(Value::Null),
            "last_error": detail.get("last_error").cloned().unwrap_or(Value::Null),
            "updated_at": r.get::<_, String>(8)?,
            "open_exceptions": r.get::<_, i64>(9)?,
        }))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// STM transactions received since `since` (RFC 3339) by type: count and amount.
pub fn transactions_by_type(c: &Connection, since: &str) -> Result<Vec<Value>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT COALESCE(json_extract(data, '$.txn_type'), 'other'), COUNT(*),
                COALESCE(SUM(json_extract(data, '$.amount')), 0)
         FROM device_events WHERE kind = 'transaction' AND received_at >= ?1
         GROUP BY 1 ORDER BY 2 DESC",
    )?;
    let rows = stmt.query_map([since], |r| {
        Ok(
            json!({"txn_type": r.get::<_, String>(0)?, "count": r.get::<_, i64>(1)?,
                  "amount": r.get::<_, f64>(2)?}),
        )
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Each STM's latest status row.
fn latest_status(c: &Connection) -> Result<Vec<(String, Value, Value)>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT h.device_id, h.consumables, h.cash FROM device_status_history h
         WHERE h.id = (SELECT MAX(id) FROM device_status_history WHERE device_id = h.device_id)
         ORDER BY h.device_id",
    )?;
    let rows = stmt.query_map([], |r| {
        let parse = |s: String| serde_json::from_str(&s).unwrap_or(Value::Null);
        Ok((r.get(0)?, parse(r.get(1)?), parse(r.get(2)?)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Each STM's consumables as it last reported them.
pub fn consumables(c: &Connection) -> Result<Vec<Value>, StoreError> {
    let mut items = Vec::new();
    for (device, consumables, _) in latest_status(c)? {
        if let Value::Object(m) = consumables {
            for (item, remaining) in m {
                items.push(json!({"item": item, "device_id": device, "remaining": remaining}));
            }
        }
    }
    Ok(items)
}

/// Each STM's cassettes as it last reported them.
pub fn cassettes(c: &Connection) -> Result<Vec<Value>, StoreError> {
    let mut out = Vec::new();
    for (device, _, cash) in latest_status(c)? {
        let Some(list) = cash.get("cassettes").and_then(Value::as_array) else {
            continue;
        };
        for k in list {
            let mut k = k.clone();
            if let Value::Object(m) = &mut k {
                m.insert("device_id".into(), json!(device));
            }
            out.push(k);
        }
    }
    Ok(out)
}

/// The devices' part of head office's telemetry: each device's kind, whether it answers,
/// its state, modules and consumables.
pub fn telemetry(c: &Connection) -> Result<Vec<Value>, StoreError> {
    const KEEP: [&str; 7] = [
        "id",
        "kind",
        "online",
        "state",
        "modules",
        "consumables",
        "updated_at",
    ];
    Ok(list(c)?
        .into_iter()
        .map(|mut d| {
            if let Value::Object(m) = &mut d {
                m.retain(|k, _| KEEP.contains(&k.as_str()));
            }
            d
        })
        .collect())
}
