//! Alerts for the staff: raised by domain services inside their own transactions,
//! acknowledged from the PAD, cleared when the condition ends.
//!
//! An alert with a `key` is raised at most once while open (a printer that stays out of
//! paper is one alert, not one per poll).

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::core::Core;
use crate::http::error::ApiError;
use crate::http::{Access, Route, ok_json};
use crate::store::{StoreError, Tx};

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Level {
    /// Worth knowing.
    #[serde(rename = "info")]
    Info,
    /// Needs attention soon.
    #[serde(rename = "warn")]
    Warning,
    /// Needs attention now.
    #[serde(rename = "critical")]
    Critical,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warn",
            Level::Critical => "critical",
        }
    }
}

/// Every kind of alert the box raises, with the fields of its `data` the PAD's text is
/// made from (the PAD renders `alertKinds.<kind>` and `alertMessages.<kind>` from the
/// locales; a kind's dots become `_` there). Raising a kind not listed here, or without one
/// of its fields, fails in debug builds; `it::language` checks both locales have every kind.
pub const KINDS: &[(&str, &[&str])] = &[
    ("device.offline", &["device_id"]),
    (
        "device.consumable_low",
        &["device_id", "item", "remaining", "threshold"],
    ),
    (
        "device.cassette_low",
        &["device_id", "cassette", "denom", "count"],
    ),
    ("device.exception", &["device_id", "code"]),
    ("auth.timeout", &["task_id", "device_id"]),
    ("printer.paper_low", &["device"]),
    ("printer.paper_out", &["device"]),
    ("printer.cover_open", &["device"]),
    ("printer.offline", &["device"]),
    ("queue.wait", &["number", "waited_min", "target_wait_min"]),
    ("order.near_timeout", &["id", "step_name", "sla_s"]),
    ("order.timeout", &["id", "step_name", "sla_s"]),
    ("order.recalled", &["id", "step_name"]),
    ("order.overdue", &["id", "appointment_at"]),
    ("lead.customer_arrived", &["customer_id", "count"]),
    ("camera.offline", &["camera"]),
    ("vision.unavailable", &["camera"]),
    ("vip.arrived", &["customer_id", "level", "camera"]),
    ("storage.low", &["min_free_mb"]),
    ("storage.full", &["min_free_mb"]),
    ("storage.headroom", &["days", "growth_mb_per_day"]),
    ("sync.refused", &["seq", "kind"]),
    ("sync.backlog", &["depth", "high_water"]),
];

/// A new alert.
#[derive(Debug, Clone)]
pub struct NewAlert<'a> {
    /// e.g. `printer.paper_out`, `queue.wait`, `device.offline`.
    pub kind: &'a str,
    /// Urgency.
    pub level: Level,
    /// Which device, service, task… it is about.
    pub source: Option<&'a str>,
    /// De-duplication key: at most one open alert per key.
    pub key: Option<&'a str>,
    /// Text for the staff.
    pub message: &'a str,
    /// Extra structured data.
    pub data: Value,
}

/// An alert as listed to the PAD.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// Row id.
    pub id: i64,
    /// Raised at.
    pub ts: String,
    /// Kind.
    pub kind: String,
    /// Level.
    pub level: String,
    /// About what.
    pub source: Option<String>,
    /// Text.
    pub message: String,
    /// Structured data.
    pub data: Value,
    /// Whether someone acknowledged it.
    pub acked: bool,
    /// Who acknowledged it.
    pub acked_by: Option<String>,
    /// Whether the condition has ended.
    pub cleared: bool,
}

/// Raise an alert (and emit `alert.raised`) unless one with the same key is open.
/// Returns the new alert's id.
pub fn raise(tx: &mut Tx<'_>, a: &NewAlert<'_>) -> Result<Option<i64>, StoreError> {
    debug_assert!(
        KINDS
            .iter()
            .any(|(k, fields)| *k == a.kind && fields.iter().all(|f| a.data.get(f).is_some())),
        "alert kind {} is not in alerts::KINDS, or its data {} lacks a field the PAD's text needs",
        a.kind,
        a.data
    );
    if let Some(key) = a.key {
        let open: Option<i64> = tx
            .conn()
            .query_row(
                "SELECT id FROM alerts WHERE key = ?1 AND cleared_at IS NULL",
                [key],
                |r| r.get(0),
            )
            .optional()?;
        if open.is_some() {
            return Ok(None);
        }
    }
    let ts = rfc3339(tx.now());
    tx.conn().execute(
        "INSERT INTO alerts(ts, kind, level, source, key, message, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            ts,
            a.kind,
            a.level.as_str(),
            a.source,
            a.key,
            a.message,
            a.data.to_string()
        ],
    )?;
    let id = tx.conn().last_insert_rowid();
    tx.emit(
        "alert.raised",
        json!({"id": id, "kind": a.kind, "level": a.level, "source": a.source,
               "message": a.message, "data": a.data}),
    )?;
    Ok(Some(id))
}

/// Clear the open alert with `key`, if any (emits `alert.cleared`).
pub fn clear(tx: &mut Tx<'_>, key: &str) -> Result<bool, StoreError> {
    let open: Option<(i64, String)> = tx
        .conn()
        .query_row(
            "SELECT id, kind FROM alerts WHERE key = ?1 AND cleared_at IS NULL",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((id, kind)) = open else {
        return Ok(false);
    };
    tx.conn().execute(
        "UPDATE alerts SET cleared_at = ?1 WHERE id = ?2",
        params![rfc3339(tx.now()), id],
    )?;
    tx.emit("alert.cleared", json!({"id": id, "kind": kind}))?;
    Ok(true)
}

/// Why an acknowledgement failed.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    /// No such alert.
    #[error("no alert {0}")]
    NotFound(i64),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Acknowledge an alert (idempotent; emits `alert.acked` the first time). The event names
/// the alert's kind, as `alert.raised` and `alert.cleared` do, so that an acknowledgement
/// of a customer's alert stays on the box like the alert itself (`sync::upstream`).
pub fn ack(tx: &mut Tx<'_>, id: i64, by: &str) -> Result<Alert, AckError> {
    let found: Option<(String, Option<String>)> = tx
        .conn()
        .query_row(
            "SELECT kind, acked_at FROM alerts WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(StoreError::from)?;
    match found {
        None => return Err(AckError::NotFound(id)),
        Some((_, Some(_))) => {}
        Some((kind, None)) => {
            tx.conn()
                .execute(
                    "UPDATE alerts SET acked_at = ?1, acked_by = ?2 WHERE id = ?3",
                    params![rfc3339(tx.now()), by, id],
                )
                .map_err(StoreError::from)?;
            tx.emit("alert.acked", json!({"id": id, "kind": kind, "by": by}))?;
        }
    }
    get(tx.conn(), id)?.ok_or(AckError::NotFound(id))
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alert> {
    let data: Option<String> = r.get(6)?;
    Ok(Alert {
        id: r.get(0)?,
        ts: r.get(1)?,
        kind: r.get(2)?,
        level: r.get(3)?,
        source: r.get(4)?,
        message: r.get(5)?,
        data: data
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(Value::Null),
        acked: r.get::<_, Option<String>>(7)?.is_some(),
        acked_by: r.get(8)?,
        cleared: r.get::<_, Option<String>>(9)?.is_some(),
    })
}

const COLUMNS: &str = "id, ts, kind, level, source, message, data, acked_at, acked_by, cleared_at";

/// One alert.
pub fn get(c: &Connection, id: i64) -> Result<Option<Alert>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {COLUMNS} FROM alerts WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()?)
}

/// Open alerts first (newest first), then recently ended ones, at most `limit`.
pub fn list(c: &Connection, limit: usize) -> Result<Vec<Alert>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM alerts \
         ORDER BY (cleared_at IS NULL AND acked_at IS NULL) DESC, id DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit as i64], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl From<AckError> for ApiError {
    fn from(e: AckError) -> Self {
        match e {
            AckError::NotFound(id) => {
                ApiError::not_found("alert_not_found", format!("no alert {id}"))
            }
            AckError::Store(e) => e.into(),
        }
    }
}

/// `GET /api/v1/alerts` and `POST /api/v1/alerts/{id}/ack`, for every member of staff;
/// each sees, and may acknowledge, the alerts of kinds its role may see
/// ([`crate::http::visibility`]).
pub fn routes(core: &Core) -> Vec<Route> {
    use crate::http::visibility::may_see;
    vec![
        Route::get("/api/v1/alerts", Access::Staff).to(core.clone(), |core, req| async move {
            let role = req.who()?.user.role;
            let all = core.store.read(|c| list(c, 200)).await?;
            let mine: Vec<Alert> = all.into_iter().filter(|a| may_see(role, &a.kind)).collect();
            Ok(ok_json(&mine))
        }),
        Route::post("/api/v1/alerts/{id}/ack", Access::Staff).to(
            core.clone(),
            |core, req| async move {
                let id: i64 = req.parse("id")?;
                let role = req.who()?.user.role;
                let alert = core.store.read(move |c| get(c, id)).await?;
                if alert.is_some_and(|a| !may_see(role, &a.kind)) {
                    return Err(ApiError::not_found(
                        "alert_not_found",
                        format!("no alert {id}"),
                    ));
                }
                let by = req.username()?;
                Ok(ok_json(
                    &core.store.write(move |tx| ack(tx, id, &by)).await?,
                ))
            },
        ),
    ]
}
