//! What the staff and the customer see of an order: the list, the staff view with every
//! step's timer, and the customer view in plain words with no staff names.

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde_json::{Value, json};

use super::model::{
    ORDER_COLS, OrderRow, OrderStatus, StepLevel, StepRow, StepState, get, order_from_row,
    step_secs, steps,
};
use crate::clock::{parse, rfc3339};
use crate::store::StoreError;

/// The state shown for a step: `pending`, `active`, `done`, `near_timeout`, `timeout`.
fn step_state(s: &StepRow) -> &'static str {
    match (s.state, s.level) {
        (StepState::Done, _) => "done",
        (StepState::Active, StepLevel::NearTimeout) => "near_timeout",
        (StepState::Active, StepLevel::Timeout | StepLevel::Escalated) => "timeout",
        (StepState::Active, _) => "active",
        (StepState::Pending, _) => "pending",
    }
}

fn staff_step(s: &StepRow, now: DateTime<Utc>) -> Value {
    let elapsed = step_secs(s, now);
    let sla = s.spec.sla_s as i64;
    let started = s.started_at.as_deref().and_then(parse);
    let at = |secs: i64| started.map(|t| rfc3339(t + chrono::Duration::seconds(secs)));
    let near = sla * s.spec.near_pct as i64 / 100;
    json!({
        "key": s.spec.key,
        "name": s.spec.name,
        "customer_label": s.spec.customer_label,
        "state": step_state(s),
        "started_at": s.started_at,
        "started_by": s.started_by,
        "finished_at": s.finished_at,
        "finished_by": s.finished_by,
        "sla_s": sla,
        "elapsed_s": elapsed,
        "overdue": elapsed.is_some_and(|e| e > sla),
        "overdue_s": elapsed.map(|e| (e - sla).max(0)),
        "near_timeout_at": if s.state == StepState::Active { at(near) } else { None },
        "timeout_at": if s.state == StepState::Active { at(sla) } else { None },
        "escalated": s.level == StepLevel::Escalated,
        "near_timeout_pct": s.spec.near_pct,
        "recall_action": s.spec.recall_action,
    })
}

fn current_step(st: &[StepRow], now: DateTime<Utc>) -> Value {
    st.iter()
        .find(|s| s.state == StepState::Active)
        .map(|s| staff_step(s, now))
        .unwrap_or(Value::Null)
}

/// Whether an order is overdue: a step past its service time, or its customer reported
/// late for the appointment and still not here.
fn overdue(o: &OrderRow, st: &[StepRow], now: DateTime<Utc>) -> bool {
    let late = o.status.is_open() && o.overdue_at.is_some() && o.arrived_at.is_none();
    late || st
        .iter()
        .any(|s| step_secs(s, now).is_some_and(|e| e > s.spec.sla_s as i64))
}

fn summary(o: &OrderRow, st: &[StepRow], now: DateTime<Utc>) -> Value {
    json!({
        "id": o.id,
        "title": o.title,
        "business_type": o.business_type,
        "channel": o.channel,
        "priority": o.priority,
        "status": o.status,
        "customer_name": o.customer.name,
        "ticket": o.ticket,
        "appointment_at": o.appointment_at,
        "created_at": o.created_at,
        "assignee": o.assignee,
        "urges": o.urges,
        "overdue": overdue(o, st, now),
        "late": o.status.is_open() && o.overdue_at.is_some() && o.arrived_at.is_none(),
        "current_step": current_step(st, now),
    })
}

/// Every order for the staff list: open ones first, by appointment.
pub fn list(c: &Connection, now: DateTime<Utc>) -> Result<Vec<Value>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {ORDER_COLS} FROM orders ORDER BY \
         status NOT IN ('created', 'approved', 'executing', 'recalled'), \
         appointment_at IS NULL, appointment_at, created_at LIMIT 500"
    ))?;
    let rows = stmt
        .query_map([], order_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.iter()
        .map(|o| Ok(summary(o, &steps(c, &o.id)?, now)))
        .collect()
}

/// The staff view: every step with who, when, durations and overdue marks.
pub fn staff_view(
    c: &Connection,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Value>, StoreError> {
    let Some(o) = get(c, id)? else {
        return Ok(None);
    };
    let st = steps(c, id)?;
    let mut v = summary(&o, &st, now);
    let extra = json!({
        "customer": {
            "name": o.customer.name,
            "phone": o.customer.phone,
            "id_number_masked": o.customer.id_number.as_deref().map(crate::docfill::mask_id),
            "filled": super::fill::staff_section(c, id)?,
        },
        "arrived_at": o.arrived_at,
        "approved_by": o.approved_by,
        "approved_at": o.approved_at,
        "delivered_by": o.delivered_by,
        "delivered_at": o.delivered_at,
        "closed_reason": o.closed_reason,
        "recalls": o.recalls,
        "rating": o.rating.map(|r| json!({"score": r, "comment": o.rating_comment, "rated_at": o.rated_at})),
        "closed": o.rating.is_some()
            || matches!(o.status, OrderStatus::Cancelled | OrderStatus::Rejected),
        "steps": st.iter().map(|s| staff_step(s, now)).collect::<Vec<_>>(),
        "fields": o.fields,
    });
    if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
        obj.extend(more);
    }
    Ok(Some(v))
}

fn status_words(status: OrderStatus) -> (&'static str, &'static str) {
    match status {
        OrderStatus::Created => ("已受理，等待审核", "received, waiting for review"),
        OrderStatus::Approved => ("审核通过，等待办理", "approved, waiting to be handled"),
        OrderStatus::Executing => ("正在办理", "being handled"),
        OrderStatus::Recalled => ("正在为您安排办理人员", "we are finding someone to help you"),
        OrderStatus::Delivered => ("已办结", "done"),
        OrderStatus::Cancelled => ("已取消", "cancelled"),
        OrderStatus::Rejected => ("未通过审核", "not approved"),
    }
}

/// The customer view: milestones in plain words, no staff names, no timers.
pub fn customer_view(c: &Connection, id: &str) -> Result<Option<Value>, StoreError> {
    let Some(o) = get(c, id)? else {
        return Ok(None);
    };
    let st = steps(c, id)?;
    let mut milestones = vec![json!({"label": "已受理", "label_en": "received",
                                      "state": "done", "at": o.created_at})];
    let approved = o.approved_at.is_some();
    milestones.push(json!({"label": "审核通过", "label_en": "approved",
        "state": if approved { "done" } else if o.status == OrderStatus::Created { "current" } else { "upcoming" },
        "at": o.approved_at}));
    for s in &st {
        let label = s.spec.customer_label.clone().unwrap_or(s.spec.name.clone());
        let state = match s.state {
            StepState::Done => "done",
            StepState::Active => "current",
            _ => "upcoming",
        };
        milestones.push(json!({"label": label, "state": state, "at": s.finished_at}));
    }
    let delivered = o.status == OrderStatus::Delivered;
    milestones.push(json!({"label": "办结", "label_en": "done",
        "state": if delivered { "done" } else { "upcoming" }, "at": o.delivered_at}));
    let (zh, en) = status_words(o.status);
    Ok(Some(json!({
        "id": o.id,
        "title": o.title,
        "status": o.status,
        "status_text": zh,
        "status_text_en": en,
        "ticket": o.ticket,
        "appointment_at": o.appointment_at,
        "milestones": milestones,
        "rated": o.rating.is_some(),
    })))
}
