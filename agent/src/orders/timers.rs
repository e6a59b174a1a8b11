//! Step timers and the arrival link.
//!
//! Nothing about a timer is held in memory: each pass reads the running steps, computes
//! every step's next level (near-timeout, timeout, recall) from its stored `started_at`
//! and service time, and sleeps until the earliest. A restart therefore recomputes every
//! timer; a level already past is applied at once. Every `order.*` event wakes the timers
//! to recompute (a step started, finished or recalled elsewhere).
//!
//! Appointments have one timer of the same kind: a customer not arrived `grace` after the
//! booked time is reported late once (`order.overdue`, with an alert cleared when the
//! customer arrives or the order closes), recomputed from `appointment_at`.
//!
//! The arrival link is a durable consumer of the event stream: a `ticket.issued` with an
//! `appointment_id` links the ticket to its order, exactly once, including tickets issued
//! while the link was not running.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::model::{
    OrderStatus, StepLevel, StepState, alert_key, get, link_ticket, overdue_key, set_status,
    step_secs, steps, updated,
};
use crate::alerts::{self, Level, NewAlert};
use crate::clock::{Clock, parse};
use crate::config::orders::RecallAction;
use crate::store::{Event, Store, StoreError, Tx};

/// The durable consumer that links arriving tickets to their orders.
pub const ARRIVALS: &str = "orders.arrivals";

/// Run until `cancel`: fire timer levels as they fall due, recomputing on every order event.
pub async fn run(
    store: Store,
    clock: Clock,
    cancel: CancellationToken,
    grace: std::time::Duration,
) {
    let grace = chrono::Duration::from_std(grace).unwrap_or_default();
    let mut events = store.follow(*store.committed().borrow());
    loop {
        let due = store
            .read(move |c| {
                let mut d = due_levels(c)?;
                d.extend(due_overdue(c, grace)?);
                d.sort_by_key(|d| d.at);
                Ok::<_, StoreError>(d)
            })
            .await;
        let next = match due {
            Ok(d) => d.into_iter().next(),
            Err(e) => {
                tracing::warn!(error = %e, "order timers: cannot read the running steps");
                None
            }
        };
        let wake = next
            .as_ref()
            .map(|d| clock.instant_at(d.at))
            .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600));
        // Wait for a due level or for an order event (anything else leaves the timers as
        // they are).
        let due = loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(wake) => break next,
                ev = events.next() => match ev {
                    Ok(ev) if ev.kind.starts_with("order.") => break None,
                    Ok(_) => {}
                    Err(StoreError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "order timers: cannot follow the events");
                        break None;
                    }
                },
            }
        };
        if let Some(due) = due
            && let Err(e) = fire(&store, &clock, due).await
        {
            tracing::warn!(error = %e, "order timers: cannot apply a timer level");
        }
    }
}

/// Apply one due level. The write runs on the blocking pool (a paused test clock does
/// not jump while it runs).
pub async fn fire(store: &Store, clock: &Clock, due: Due) -> Result<bool, StoreError> {
    let store = store.clone();
    let now = clock.now();
    tokio::task::spawn_blocking(move || store.write_blocking(move |tx| apply_level(tx, &due, now)))
        .await
        .map_err(|_| StoreError::Closed)?
}

/// Run the arrival link until `cancel` (see the module's docs).
pub async fn link_arrivals(store: Store, cancel: CancellationToken) {
    crate::store::consume(store, ARRIVALS, cancel, is_arrival, |tx, ev| {
        arrived(tx, ev).map(|_| ())
    })
    .await;
}

fn is_arrival(ev: &Event) -> bool {
    ev.kind == "ticket.issued" && ev.data.get("appointment_id").is_some_and(|v| v.is_string())
}

/// A `ticket.issued` with an `appointment_id` links the ticket to that order. Returns
/// whether anything changed.
pub fn arrived(tx: &mut Tx<'_>, ev: &Event) -> Result<bool, StoreError> {
    let (Some(order), Some(ticket)) = (
        ev.data.get("appointment_id").and_then(|v| v.as_str()),
        ev.data.get("number").and_then(|v| v.as_str()),
    ) else {
        return Ok(false);
    };
    link_ticket(tx, order, ticket, ev.data["visit_id"].as_str())
}

/// A timer level that falls due for a running step.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    /// Order.
    pub order_id: String,
    /// Step key.
    pub step: String,
    /// When the step started (the timer's base; a restarted step is another timer).
    pub started_at: String,
    /// The level reached so far.
    pub from_level: StepLevel,
    /// `near_timeout`, `timeout`, `recall`, or `overdue` (an appointment, no step).
    pub level: &'static str,
    /// When it falls due.
    pub at: DateTime<Utc>,
}

/// The next level of every running step, earliest first.
pub fn due_levels(c: &Connection) -> Result<Vec<Due>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT s.order_id, s.key, s.started_at, s.level, s.sla_s, s.near_pct, s.recall_after_s \
         FROM order_steps s JOIN orders o ON o.id = s.order_id \
         WHERE s.state = 'active' AND o.status = 'executing' AND s.started_at IS NOT NULL",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, StepLevel>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, i64>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (order_id, step, started_at, level, sla, near, recall_after) = row?;
        let Some(start) = parse(&started_at) else {
            continue;
        };
        // Milliseconds, so a 1 s step still warns before it times out.
        let (next, after_ms) = match level {
            StepLevel::Normal => ("near_timeout", sla * 1000 * near / 100),
            StepLevel::NearTimeout => ("timeout", sla * 1000),
            StepLevel::Timeout => ("recall", (sla + recall_after) * 1000),
            StepLevel::Escalated => continue,
        };
        out.push(Due {
            order_id,
            step,
            started_at,
            from_level: level,
            level: next,
            at: start + chrono::Duration::milliseconds(after_ms),
        });
    }
    out.sort_by_key(|d| d.at);
    Ok(out)
}

/// The appointments whose customer is not here yet and not yet reported late: due
/// `grace` after the booked time (level `overdue`, no step; `started_at` holds the booked
/// time, so a changed appointment is another timer).
pub fn due_overdue(c: &Connection, grace: chrono::Duration) -> Result<Vec<Due>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, appointment_at FROM orders \
         WHERE status IN ('created', 'approved', 'executing', 'recalled') \
         AND appointment_at IS NOT NULL AND arrived_at IS NULL AND overdue_at IS NULL",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (order_id, appointment_at) = row?;
        let Some(at) = parse(&appointment_at) else {
            continue;
        };
        out.push(Due {
            order_id,
            step: String::new(),
            started_at: appointment_at,
            from_level: StepLevel::Normal,
            level: "overdue",
            at: at + grace,
        });
    }
    out.sort_by_key(|d| d.at);
    Ok(out)
}

/// Report a late customer (`order.overdue` and its alert), unless the customer arrived,
/// the order closed or the appointment moved meanwhile.
fn apply_overdue(tx: &mut Tx<'_>, d: &Due, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let Some(o) = get(tx.conn(), &d.order_id)? else {
        return Ok(false);
    };
    if !o.status.is_open()
        || o.arrived_at.is_some()
        || o.overdue_at.is_some()
        || o.appointment_at.as_deref() != Some(d.started_at.as_str())
    {
        return Ok(false);
    }
    let id = o.id.as_str();
    tx.conn().execute(
        "UPDATE orders SET overdue_at = ?2 WHERE id = ?1",
        params![id, crate::clock::rfc3339(now)],
    )?;
    let late_min = parse(&d.started_at).map(|a| (now - a).num_minutes().max(0));
    // The title stays on the box, as with every order event; the PAD reads it by id.
    let data = json!({"id": id, "appointment_at": o.appointment_at,
                      "business_type": o.business_type, "late_min": late_min});
    alerts::raise(
        tx,
        &NewAlert {
            kind: "order.overdue",
            level: Level::Warning,
            source: Some(id),
            key: Some(&overdue_key(id)),
            message: &format!("订单 {id} 的预约客户尚未到店"),
            data: data.clone(),
        },
    )?;
    tx.emit("order.overdue", data)?;
    updated(tx, id, o.status, "overdue")?;
    Ok(true)
}

/// Apply a timer level that fell due, unless the step moved on meanwhile (then nothing
/// changes). Returns whether it applied.
pub fn apply_level(tx: &mut Tx<'_>, d: &Due, now: DateTime<Utc>) -> Result<bool, StoreError> {
    if d.level == "overdue" {
        return apply_overdue(tx, d, now);
    }
    let Some(o) = get(tx.conn(), &d.order_id)? else {
        return Ok(false);
    };
    let st = steps(tx.conn(), &d.order_id)?;
    let Some(s) = st.iter().find(|s| s.spec.key == d.step) else {
        return Ok(false);
    };
    if o.status != OrderStatus::Executing
        || s.state != StepState::Active
        || s.started_at.as_deref() != Some(d.started_at.as_str())
        || s.level != d.from_level
    {
        return Ok(false);
    }
    let (id, key) = (d.order_id.as_str(), d.step.as_str());
    let elapsed = step_secs(s, now);
    let sla = s.spec.sla_s;
    let data = json!({"id": id, "step": key, "step_name": s.spec.name, "sla_s": sla,
                      "elapsed_s": elapsed, "started_by": s.started_by});
    match d.level {
        "near_timeout" | "timeout" => {
            tx.conn().execute(
                "UPDATE order_steps SET level = ?3 WHERE order_id = ?1 AND key = ?2",
                params![id, key, d.level],
            )?;
            let (message, level) = if d.level == "near_timeout" {
                (
                    format!("订单 {id} 的「{}」即将超时（时限 {sla} 秒）", s.spec.name),
                    Level::Warning,
                )
            } else {
                alerts::clear(tx, &alert_key(id, key, "near_timeout"))?;
                (
                    format!("订单 {id} 的「{}」已超时（时限 {sla} 秒）", s.spec.name),
                    Level::Critical,
                )
            };
            let kind = format!("order.{}", d.level);
            alerts::raise(
                tx,
                &NewAlert {
                    kind: &kind,
                    level,
                    source: Some(id),
                    key: Some(&alert_key(id, key, d.level)),
                    message: &message,
                    data: data.clone(),
                },
            )?;
            tx.emit(&kind, data)?;
        }
        _ => {
            alerts::clear(tx, &alert_key(id, key, "timeout"))?;
            let action = s.spec.recall_action;
            tx.conn().execute(
                "UPDATE orders SET recalls = recalls + 1 WHERE id = ?1",
                [id],
            )?;
            let message = match action {
                RecallAction::Pool => {
                    tx.conn().execute(
                        "UPDATE order_steps SET state = 'pending', level = 'none', started_at = NULL, \
                         started_by = NULL WHERE order_id = ?1 AND key = ?2",
                        params![id, key],
                    )?;
                    set_status(tx, id, OrderStatus::Recalled)?;
                    format!(
                        "订单 {id} 的「{}」超时未完成，已收回待重新分配",
                        s.spec.name
                    )
                }
                RecallAction::Escalate => {
                    tx.conn().execute(
                        "UPDATE order_steps SET level = 'escalated' WHERE order_id = ?1 AND key = ?2",
                        params![id, key],
                    )?;
                    format!(
                        "订单 {id} 的「{}」超时未完成，已上报网点负责人",
                        s.spec.name
                    )
                }
            };
            let mut data = data;
            data["action"] = json!(action.as_str());
            alerts::raise(
                tx,
                &NewAlert {
                    kind: "order.recalled",
                    level: Level::Critical,
                    source: Some(id),
                    key: Some(&alert_key(id, key, "recalled")),
                    message: &message,
                    data: data.clone(),
                },
            )?;
            tx.emit("order.recalled", data)?;
            let status = match action {
                RecallAction::Pool => OrderStatus::Recalled,
                RecallAction::Escalate => OrderStatus::Executing,
            };
            updated(tx, id, status, "recalled")?;
        }
    }
    Ok(true)
}
