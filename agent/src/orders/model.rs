//! Orders and their steps in SQLite: every transition checked against the current state,
//! applied and announced (`order.*`) in the caller's transaction.
//!
//! Customer names, phone numbers and ID numbers stay in these tables: no event carries them.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value, json};

use crate::alerts;
use crate::clock::{parse, rfc3339};
use crate::config::orders::{RecallAction, StepSpec};
use crate::store::{StoreError, Tx, text_enum};

/// Why an order operation was refused (nothing changed then).
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// No order with this id.
    #[error("no order `{0}`")]
    NotFound(String),
    /// The order has no such step.
    #[error("order `{0}` has no step `{1}`")]
    NoStep(String, String),
    /// The order's state does not allow this.
    #[error("{0}")]
    State(String),
    /// The request itself is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for OrderError {
    fn from(e: rusqlite::Error) -> Self {
        OrderError::Store(e.into())
    }
}

text_enum! {
    /// Where an order is in its journey.
    pub enum OrderStatus {
        /// Booked, waiting for review.
        Created = "created",
        /// Approved, waiting to be handled.
        Approved = "approved",
        /// A step has started.
        Executing = "executing",
        /// A step was taken back: the order waits for someone to pick it up.
        Recalled = "recalled",
        /// Every step done and handed over.
        Delivered = "delivered",
        /// Cancelled by head office.
        Cancelled = "cancelled",
        /// Not approved.
        Rejected = "rejected",
    }
}

impl OrderStatus {
    /// Whether the order is still open (not delivered, cancelled or rejected).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            OrderStatus::Created
                | OrderStatus::Approved
                | OrderStatus::Executing
                | OrderStatus::Recalled
        )
    }
}

text_enum! {
    /// Where a step is.
    pub enum StepState {
        /// Not started.
        Pending = "pending",
        /// Running, its timer counting.
        Active = "active",
        /// Finished.
        Done = "done",
    }
}

text_enum! {
    /// How far a running step's timer has got.
    pub enum StepLevel {
        /// Within its service time.
        Normal = "none",
        /// Past the near-timeout share of its service time.
        NearTimeout = "near_timeout",
        /// Past its service time.
        Timeout = "timeout",
        /// Past its recall delay, escalated to the branch manager.
        Escalated = "escalated",
    }
}

/// The customer of an order (kept on the box).
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    /// Name.
    pub name: String,
    /// Phone number.
    pub phone: Option<String>,
    /// Citizen ID number.
    pub id_number: Option<String>,
}

/// A new order from head office, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    /// Head office's order id.
    pub id: String,
    /// Business type (a template key).
    pub business_type: String,
    /// Display title.
    pub title: String,
    /// Where it was booked: `app`, `web`, `phone`, `branch`…
    pub channel: String,
    /// Queue priority of the customer's ticket on arrival.
    pub priority: String,
    /// The customer.
    pub customer: Customer,
    /// Booked time.
    pub appointment_at: Option<DateTime<Utc>>,
    /// Pre-filled form fields.
    pub fields: Map<String, Value>,
    /// Steps with their timers.
    pub steps: Vec<StepSpec>,
}

/// A change from head office, validated; `None` keeps the value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderUpdate {
    /// Order id.
    pub id: String,
    /// New title.
    pub title: Option<String>,
    /// New channel.
    pub channel: Option<String>,
    /// New priority.
    pub priority: Option<String>,
    /// New customer details.
    pub customer: Option<Customer>,
    /// New booked time.
    pub appointment_at: Option<DateTime<Utc>>,
    /// Replacement form fields.
    pub fields: Option<Map<String, Value>>,
    /// Replacement steps (only before any step started).
    pub steps: Option<Vec<StepSpec>>,
}

/// One stored order.
#[derive(Debug, Clone)]
pub struct OrderRow {
    /// Id.
    pub id: String,
    /// Business type.
    pub business_type: String,
    /// Title.
    pub title: String,
    /// Channel.
    pub channel: String,
    /// Priority.
    pub priority: String,
    /// Customer.
    pub customer: Customer,
    /// Booked time.
    pub appointment_at: Option<String>,
    /// Status.
    pub status: OrderStatus,
    /// Form fields.
    pub fields: Value,
    /// Linked ticket.
    pub ticket: Option<String>,
    /// When the customer arrived.
    pub arrived_at: Option<String>,
    /// Approver.
    pub approved_by: Option<String>,
    /// Approval time.
    pub approved_at: Option<String>,
    /// Why it was rejected or cancelled.
    pub closed_reason: Option<String>,
    /// Delivery time.
    pub delivered_at: Option<String>,
    /// Who delivered.
    pub delivered_by: Option<String>,
    /// Rating 1–5.
    pub rating: Option<i64>,
    /// Rating comment.
    pub rating_comment: Option<String>,
    /// Rating time.
    pub rated_at: Option<String>,
    /// Timeout or manual recalls so far.
    pub recalls: i64,
    /// Created.
    pub created_at: String,
    /// The member of staff handling it now (who approved it, started a step, or was
    /// handed it).
    pub assignee: Option<String>,
    /// How often it was urged.
    pub urges: i64,
    /// When its customer was reported late for the appointment.
    pub overdue_at: Option<String>,
}

/// One stored step.
#[derive(Debug, Clone)]
pub struct StepRow {
    /// Position.
    pub idx: i64,
    /// Spec.
    pub spec: StepSpec,
    /// Where the step is.
    pub state: StepState,
    /// Timer level reached.
    pub level: StepLevel,
    /// Start.
    pub started_at: Option<String>,
    /// Who started it.
    pub started_by: Option<String>,
    /// End.
    pub finished_at: Option<String>,
    /// Who finished it.
    pub finished_by: Option<String>,
}

pub(super) const ORDER_COLS: &str = "id, business_type, title, channel, priority, customer_name, customer_phone, \
    customer_id_number, appointment_at, status, fields, ticket, arrived_at, approved_by, approved_at, \
    closed_reason, delivered_at, delivered_by, rating, rating_comment, rated_at, recalls, created_at, \
    assignee, urges, overdue_at";

pub(super) fn order_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrderRow> {
    Ok(OrderRow {
        id: r.get(0)?,
        business_type: r.get(1)?,
        title: r.get(2)?,
        channel: r.get(3)?,
        priority: r.get(4)?,
        customer: Customer {
            name: r.get(5)?,
            phone: r.get(6)?,
            id_number: r.get(7)?,
        },
        appointment_at: r.get(8)?,
        status: r.get(9)?,
        fields: serde_json::from_str(&r.get::<_, String>(10)?).unwrap_or_else(|_| json!({})),
        ticket: r.get(11)?,
        arrived_at: r.get(12)?,
        approved_by: r.get(13)?,
        approved_at: r.get(14)?,
        closed_reason: r.get(15)?,
        delivered_at: r.get(16)?,
        delivered_by: r.get(17)?,
        rating: r.get(18)?,
        rating_comment: r.get(19)?,
        rated_at: r.get(20)?,
        recalls: r.get(21)?,
        created_at: r.get(22)?,
        assignee: r.get(23)?,
        urges: r.get(24)?,
        overdue_at: r.get(25)?,
    })
}

const STEP_COLS: &str = "idx, key, name, customer_label, sla_s, near_pct, recall_after_s, recall_action, \
    state, level, started_at, started_by, finished_at, finished_by";

fn step_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StepRow> {
    Ok(StepRow {
        idx: r.get(0)?,
        spec: StepSpec {
            key: r.get(1)?,
            name: r.get(2)?,
            customer_label: r.get(3)?,
            sla_s: r.get::<_, i64>(4)? as u32,
            near_pct: r.get::<_, i64>(5)? as u8,
            recall_after_s: r.get::<_, i64>(6)? as u32,
            recall_action: RecallAction::parse(&r.get::<_, String>(7)?)
                .unwrap_or(RecallAction::Pool),
        },
        state: r.get(8)?,
        level: r.get(9)?,
        started_at: r.get(10)?,
        started_by: r.get(11)?,
        finished_at: r.get(12)?,
        finished_by: r.get(13)?,
    })
}

/// One order.
pub fn get(c: &Connection, id: &str) -> Result<Option<OrderRow>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {ORDER_COLS} FROM orders WHERE id = ?1"),
        [id],
        order_from_row,
    )
    .optional()?)
}

/// An order's steps, in order.
pub fn steps(c: &Connection, id: &str) -> Result<Vec<StepRow>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {STEP_COLS} FROM order_steps WHERE order_id = ?1 ORDER BY idx"
    ))?;
    let rows = stmt.query_map([id], step_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn must_get(c: &Connection, id: &str) -> Result<OrderRow, OrderError> {
    get(c, id)?.ok_or_else(|| OrderError::NotFound(id.to_string()))
}

fn insert_steps(c: &Connection, id: &str, steps: &[StepSpec]) -> Result<(), StoreError> {
    for (i, s) in steps.iter().enumerate() {
        c.execute(
            "INSERT INTO order_steps(order_id, idx, key, name, customer_label, sla_s, near_pct, \
                 recall_after_s, recall_action) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                id,
                i as i64,
                s.key,
                s.name,
                s.customer_label,
                s.sla_s as i64,
                s.near_pct as i64,
                s.recall_after_s as i64,
                s.recall_action.as_str()
            ],
        )?;
    }
    Ok(())
}

fn step_keys(steps: &[StepSpec]) -> Vec<&str> {
    steps.iter().map(|s| s.key.as_str()).collect()
}

/// Create an order (`order.created`). Refused when the id exists.
pub fn create(tx: &mut Tx<'_>, o: &NewOrder, command: Option<&str>) -> Result<(), OrderError> {
    if get(tx.conn(), &o.id)?.is_some() {
        return Err(OrderError::State(format!(
            "order `{}` already exists",
            o.id
        )));
    }
    let now = rfc3339(tx.now());
    tx.conn().execute(
        "INSERT INTO orders(id, business_type, title, channel, priority, customer_name, customer_phone, \
             customer_id_number, appointment_at, status, fields, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'created', ?10, ?11, ?11)",
        params![
            o.id,
            o.business_type,
            o.title,
            o.channel,
            o.priority,
            o.customer.name,
            o.customer.phone,
            o.customer.id_number,
            o.appointment_at.map(rfc3339),
            Value::Object(o.fields.clone()).to_string(),
            now
        ],
    )?;
    insert_steps(tx.conn(), &o.id, &o.steps)?;
    tx.emit(
        "order.created",
        json!({"id": o.id, "business_type": o.business_type, "channel": o.channel,
               "priority": o.priority, "status": "created",
               "appointment_at": o.appointment_at.map(rfc3339),
               "steps": step_keys(&o.steps), "command": command}),
    )?;
    Ok(())
}

/// Change an open order (`order.updated`). Steps can be replaced only before any started.
pub fn update(tx: &mut Tx<'_>, u: &OrderUpdate, command: Option<&str>) -> Result<(), OrderError> {
    let o = must_get(tx.conn(), &u.id)?;
    if !o.status.is_open() {
        return Err(OrderError::State(format!(
            "order `{}` is {}: it can no longer be changed",
            o.id, o.status
        )));
    }
    if u.steps.is_some() {
        let st = steps(tx.conn(), &o.id)?;
        if st.iter().any(|s| s.state != StepState::Pending) {
            return Err(OrderError::State(format!(
                "order `{}` has started steps: its steps can no longer be replaced",
                o.id
            )));
        }
    }
    let c = tx.conn();
    let mut changed = Vec::new();
    // The columns a change sets, each with its new value (None: unchanged).
    let set = |column: &'static str, value: Option<String>, changed: &mut Vec<&str>| {
        if let Some(v) = value {
            c.execute(
                &format!("UPDATE orders SET {column} = ?2 WHERE id = ?1"),
                params![o.id, v],
            )?;
            changed.push(column);
        }
        Ok::<_, rusqlite::Error>(())
    };
    set("title", u.title.clone(), &mut changed)?;
    set("channel", u.channel.clone(), &mut changed)?;
    set("priority", u.priority.clone(), &mut changed)?;
    if let Some(cu) = &u.customer {
        c.execute(
            "UPDATE orders SET customer_name = ?2, customer_phone = ?3, customer_id_number = ?4 \
             WHERE id = ?1",
            params![o.id, cu.name, cu.phone, cu.id_number],
        )?;
        changed.push("customer");
    }
    set(
        "appointment_at",
        u.appointment_at.map(rfc3339),
        &mut changed,
    )?;
    if u.appointment_at.is_some() {
        // A new time is a new appointment: its customer may be reported late again.
        c.execute("UPDATE orders SET overdue_at = NULL WHERE id = ?1", [&o.id])?;
    }
    let fields = u
        .fields
        .as_ref()
        .map(|f| Value::Object(f.clone()).to_string());
    set("fields", fields, &mut changed)?;
    if let Some(s) = &u.steps {
        c.execute("DELETE FROM order_steps WHERE order_id = ?1", [&o.id])?;
        insert_steps(c, &o.id, s)?;
        changed.push("steps");
    }
    if u.appointment_at.is_some() {
        alerts::clear(tx, &overdue_key(&o.id))?;
    }
    touch(tx, &o.id)?;
    let steps_now = u.steps.as_deref().map(step_keys);
    tx.emit(
        "order.updated",
        json!({"id": o.id, "status": o.status, "changed": changed,
               "appointment_at": u.appointment_at.map(rfc3339), "steps": steps_now,
               "command": command}),
    )?;
    Ok(())
}

fn touch(tx: &Tx<'_>, id: &str) -> Result<(), StoreError> {
    tx.conn().execute(
        "UPDATE orders SET updated_at = ?2 WHERE id = ?1",
        params![id, rfc3339(tx.now())],
    )?;
    Ok(())
}

pub(super) fn set_status(tx: &Tx<'_>, id: &str, status: OrderStatus) -> Result<(), StoreError> {
    tx.conn().execute(
        "UPDATE orders SET status = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, status, rfc3339(tx.now())],
    )?;
    Ok(())
}

/// An `order.updated` after a change announced under its own kind, so screens that follow
/// only the common order kinds refetch too.
pub(super) fn updated(
    tx: &mut Tx<'_>,
    id: &str,
    status: OrderStatus,
    cause: &str,
) -> Result<(), StoreError> {
    tx.emit(
        "order.updated",
        json!({"id": id, "status": status, "cause": cause}),
    )?;
    Ok(())
}

/// The key of an order's `order.overdue` alert (its customer late for the appointment).
pub fn overdue_key(id: &str) -> String {
    format!("order:{id}:overdue")
}

/// The alert keys of one step's timer levels.
pub fn alert_key(id: &str, step: &str, level: &str) -> String {
    format!("order:{id}:{step}:{level}")
}

pub(super) fn clear_step_alerts(tx: &mut Tx<'_>, id: &str, step: &str) -> Result<(), StoreError> {
    for level in ["near_timeout", "timeout", "recalled"] {
        alerts::clear(tx, &alert_key(id, step, level))?;
    }
    Ok(())
}

fn reset_active_steps(tx: &mut Tx<'_>, id: &str) -> Result<Vec<String>, StoreError> {
    let active: Vec<String> = steps(tx.conn(), id)?
        .into_iter()
        .filter(|s| s.state == StepState::Active)
        .map(|s| s.spec.key)
        .collect();
    for key in &active {
        tx.conn().execute(
            "UPDATE order_steps SET state = 'pending', level = 'none', started_at = NULL, \
             started_by = NULL WHERE order_id = ?1 AND key = ?2",
            params![id, key],
        )?;
        clear_step_alerts(tx, id, key)?;
    }
    Ok(active)
}

/// Cancel an open order (`order.cancelled`).
pub fn cancel(
    tx: &mut Tx<'_>,
    id: &str,
    reason: Option<&str>,
    command: Option<&str>,
) -> Result<(), OrderError> {
    let o = must_get(tx.conn(), id)?;
    if !o.status.is_open() {
        return Err(OrderError::State(format!(
            "order `{id}` is {}: it cannot be cancelled",
            o.status
        )));
    }
    reset_active_steps(tx, id)?;
    tx.conn().execute(
        "UPDATE orders SET closed_reason = ?2 WHERE id = ?1",
        params![id, reason],
    )?;
    set_status(tx, id, OrderStatus::Cancelled)?;
    alerts::clear(tx, &overdue_key(id))?;
    tx.emit(
        "order.cancelled",
        json!({"id": id, "reason": reason, "command": command}),
    )?;
    Ok(())
}

/// Approve a new order (`order.updated` with status `approved`).
pub fn approve(tx: &mut Tx<'_>, id: &str, by: &str) -> Result<(), OrderError> {
    let o = must_get(tx.conn(), id)?;
    if o.status != OrderStatus::Created {
        return Err(OrderError::State(format!(
            "order `{id}` is {}: only a new order can be approved",
            o.status
        )));
    }
    tx.conn().execute(
        "UPDATE orders SET approved_by = ?2, approved_at = ?3, assignee = ?2 WHERE id = ?1",
        params![id, by, rfc3339(tx.now())],
    )?;
    set_status(tx, id, OrderStatus::Approved)?;
    tx.emit(
        "order.updated",
        json!({"id": id, "status": "approved", "by": by}),
    )?;
    Ok(())
}

/// Reject an order before it is executed (`order.updated` with status `rejected`).
pub fn reject(tx: &mut Tx<'_>, id: &str, by: &str, reason: &str) -> Result<(), OrderError> {
    let o = must_get(tx.conn(), id)?;
    if !matches!(o.status, OrderStatus::Created | OrderStatus::Approved) {
        return Err(OrderError::State(format!(
            "order `{id}` is {}: only an order not yet executed can be rejected",
            o.status
        )));
    }
    tx.conn().execute(
        "UPDATE orders SET closed_reason = ?2 WHERE id = ?1",
        params![id, reason],
    )?;
    set_status(tx, id, OrderStatus::Rejected)?;
    alerts::clear(tx, &overdue_key(id))?;
    tx.emit(
        "order.updated",
        json!({"id": id, "status": "rejected", "by": by}),
    )?;
    Ok(())
}

fn find_step(st: &[StepRow], id: &str, key: &str) -> Result<StepRow, OrderError> {
    st.iter()
        .find(|s| s.spec.key == key)
        .cloned()
        .ok_or_else(|| OrderError::NoStep(id.to_string(), key.to_string()))
}

/// Start a step (`order.step`): the next step in order, once the order is approved, with
/// no other step running.
pub fn start_step(
    tx: &mut Tx<'_>,
    id: &str,
    key: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    let o = must_get(tx.conn(), id)?;
    let st = steps(tx.conn(), id)?;
    let step = find_step(&st, id, key)?;
    if !matches!(
        o.status,
        OrderStatus::Approved | OrderStatus::Executing | OrderStatus::Recalled
    ) {
        return Err(OrderError::State(format!(
            "order `{id}` is {}: steps start once it is approved",
            o.status
        )));
    }
    if step.state != StepState::Pending {
        return Err(OrderError::State(format!(
            "step `{key}` is {}, not pending",
            step.state
        )));
    }
    if let Some(a) = st.iter().find(|s| s.state == StepState::Active) {
        return Err(OrderError::State(format!(
            "step `{}` is still running",
            a.spec.key
        )));
    }
    if let Some(p) = st
        .iter()
        .find(|s| s.idx < step.idx && s.state != StepState::Done)
    {
        return Err(OrderError::State(format!(
            "step `{}` comes first",
            p.spec.key
        )));
    }
    let at = rfc3339(now);
    tx.conn().execute(
        "UPDATE order_steps SET state = 'active', level = 'none', started_at = ?3, started_by = ?4 \
         WHERE order_id = ?1 AND key = ?2",
        params![id, key, at, by],
    )?;
    clear_step_alerts(tx, id, key)?;
    tx.conn().execute(
        "UPDATE orders SET assignee = ?2 WHERE id = ?1",
        params![id, by],
    )?;
    set_status(tx, id, OrderStatus::Executing)?;
    tx.emit(
        "order.step",
        json!({"id": id, "step": key, "state": "active", "by": by, "at": at,
               "sla_s": step.spec.sla_s}),
    )?;
    Ok(())
}

fn secs_between(a: &str, b: DateTime<Utc>) -> Option<i64> {
    parse(a).map(|a| (b - a).num_milliseconds().max(0) / 1000)
}

/// Finish the running step (`order.step`), clearing its timer alerts.
pub fn finish_step(
    tx: &mut Tx<'_>,
    id: &str,
    key: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    let o = must_get(tx.conn(), id)?;
    let st = steps(tx.conn(), id)?;
    let step = find_step(&st, id, key)?;
    if step.state != StepState::Active || o.status != OrderStatus::Executing {
        return Err(OrderError::State(format!(
            "step `{key}` is {}, not running",
            step.state
        )));
    }
    let at = rfc3339(now);
    tx.conn().execute(
        "UPDATE order_steps SET state = 'done', finished_at = ?3, finished_by = ?4 \
         WHERE order_id = ?1 AND key = ?2",
        params![id, key, at, by],
    )?;
    clear_step_alerts(tx, id, key)?;
    touch(tx, id)?;
    let duration = step
        .started_at
        .as_deref()
        .and_then(|s| secs_between(s, now));
    tx.emit(
        "order.step",
        json!({"id": id, "step": key, "state": "done", "by": by, "at": at,
               "duration_s": duration, "sla_s": step.spec.sla_s,
               "overdue": duration.is_some_and(|d| d > step.spec.sla_s as i64)}),
    )?;
    Ok(())
}

/// Deliver an order whose steps are all done (`order.completed`).
pub fn deliver(tx: &mut Tx<'_>, id: &str, by: &str, now: DateTime<Utc>) -> Result<(), OrderError> {
    let o = must_get(tx.conn(), id)?;
    let st = steps(tx.conn(), id)?;
    if o.status != OrderStatus::Executing {
        return Err(OrderError::State(format!(
            "order `{id}` is {}: only an order being executed can be delivered",
            o.status
        )));
    }
    if let Some(s) = st.iter().find(|s| s.state != StepState::Done) {
        return Err(OrderError::State(format!(
            "step `{}` is not done yet",
            s.spec.key
        )));
    }
    let at = rfc3339(now);
    tx.conn().execute(
        "UPDATE orders SET delivered_at = ?2, delivered_by = ?3 WHERE id = ?1",
        params![id, at, by],
    )?;
    set_status(tx, id, OrderStatus::Delivered)?;
    alerts::clear(tx, &overdue_key(id))?;
    let overdue: Vec<&str> = st
        .iter()
        .filter(|s| step_secs(s, now).is_some_and(|d| d > s.spec.sla_s as i64))
        .map(|s| s.spec.key.as_str())
        .collect();
    tx.emit(
        "order.completed",
        json!({"id": id, "status": "delivered", "by": by, "at": at,
               "total_s": secs_between(&o.created_at, now), "overdue_steps": overdue}),
    )?;
    Ok(())
}

/// Take the running step back (`order.recalled`): the order returns to the pool.
pub fn recall(tx: &mut Tx<'_>, id: &str, by: &str) -> Result<(), OrderError> {
    let o = must_get(tx.conn(), id)?;
    if o.status != OrderStatus::Executing {
        return Err(OrderError::State(format!(
            "order `{id}` is {}: only an order being executed can be recalled",
            o.status
        )));
    }
    let reset = reset_active_steps(tx, id)?;
    let Some(step) = reset.first() else {
        return Err(OrderError::State(format!(
            "order `{id}` has no running step to recall"
        )));
    };
    tx.conn().execute(
        "UPDATE orders SET recalls = recalls + 1 WHERE id = ?1",
        [id],
    )?;
    set_status(tx, id, OrderStatus::Recalled)?;
    tx.emit(
        "order.recalled",
        json!({"id": id, "step": step, "action": "manual", "by": by}),
    )?;
    updated(tx, id, OrderStatus::Recalled, "recalled")?;
    Ok(())
}

/// The priority an urged order gets.
pub const URGENT: &str = "urgent";

/// Urge an open order (`order.urged`): its priority becomes [`URGENT`] and the count of
/// urges grows. The queue follows the event and moves the customer's waiting ticket up
/// (`crate::queue::urges`).
pub fn urge(tx: &mut Tx<'_>, id: &str, by: &str) -> Result<(), OrderError> {
    let o = must_get(tx.conn(), id)?;
    if !o.status.is_open() {
        return Err(OrderError::State(format!(
            "order `{id}` is {}: only an open order can be urged",
            o.status
        )));
    }
    tx.conn().execute(
        "UPDATE orders SET priority = ?2, urges = urges + 1 WHERE id = ?1",
        params![id, URGENT],
    )?;
    touch(tx, id)?;
    tx.emit(
        "order.urged",
        json!({"id": id, "priority": URGENT, "previous_priority": o.priority,
               "urges": o.urges + 1, "ticket": o.ticket, "by": by}),
    )?;
    updated(tx, id, o.status, "urged")?;
    Ok(())
}

/// Hand an open order over to another member of staff (`order.handed_over`), who must
/// be an active account that may handle orders (checked by the caller).
pub fn hand_over(tx: &mut Tx<'_>, id: &str, by: &str, to: &str) -> Result<(), OrderError> {
    let o = must_get(tx.conn(), id)?;
    if !o.status.is_open() {
        return Err(OrderError::State(format!(
            "order `{id}` is {}: only an open order can be handed over",
            o.status
        )));
    }
    if o.assignee.as_deref() == Some(to) {
        return Err(OrderError::State(format!(
            "order `{id}` is already handled by `{to}`"
        )));
    }
    tx.conn().execute(
        "UPDATE orders SET assignee = ?2 WHERE id = ?1",
        params![id, to],
    )?;
    touch(tx, id)?;
    tx.emit(
        "order.handed_over",
        json!({"id": id, "from": o.assignee, "to": to, "by": by}),
    )?;
    updated(tx, id, o.status, "handed_over")?;
    Ok(())
}

/// The customer's rating of a delivered order, closing the journey (`order.rated` with the
/// tag codes; the comment stays on the box). Once: a rated order refuses another.
pub fn rate(
    tx: &mut Tx<'_>,
    id: &str,
    score: u8,
    comment: Option<&str>,
    tags: &[String],
) -> Result<(), OrderError> {
    if !(1..=5).contains(&score) {
        return Err(OrderError::Invalid("`score` must be 1 to 5".into()));
    }
    let o = must_get(tx.conn(), id)?;
    if o.status != OrderStatus::Delivered {
        return Err(OrderError::State(format!(
            "order `{id}` is {}: only a delivered order can be rated",
            o.status
        )));
    }
    if o.rating.is_some() {
        return Err(OrderError::State(format!("order `{id}` is already rated")));
    }
    tx.conn().execute(
        "UPDATE orders SET rating = ?2, rating_comment = ?3, rated_at = ?4, rating_tags = ?5 \
         WHERE id = ?1",
        params![
            id,
            score as i64,
            comment,
            rfc3339(tx.now()),
            serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
        ],
    )?;
    touch(tx, id)?;
    tx.emit(
        "order.rated",
        json!({"id": id, "score": score, "commented": comment.is_some(), "tags": tags,
               "closed": true}),
    )?;
    updated(tx, id, OrderStatus::Delivered, "rated")?;
    Ok(())
}

/// Link a ticket to an open order when its customer arrives (`order.arrived`). Returns
/// whether anything changed.
pub fn link_ticket(
    tx: &mut Tx<'_>,
    id: &str,
    ticket: &str,
    visit_id: Option<&str>,
) -> Result<bool, StoreError> {
    let Some(o) = get(tx.conn(), id)? else {
        return Ok(false);
    };
    if !o.status.is_open() || o.ticket.as_deref() == Some(ticket) {
        return Ok(false);
    }
    tx.conn().execute(
        "UPDATE orders SET ticket = ?2, arrived_at = ?3, updated_at = ?3 WHERE id = ?1",
        params![id, ticket, rfc3339(tx.now())],
    )?;
    alerts::clear(tx, &overdue_key(id))?;
    let mut data = json!({"id": id, "ticket": ticket, "priority": o.priority});
    if let Some(v) = visit_id {
        data["visit_id"] = json!(v);
    }
    tx.emit("order.arrived", data)?;
    updated(tx, id, o.status, "arrived")?;
    Ok(true)
}

/// The open order of a customer (by citizen ID number), earliest appointment first: for
/// the queue, so a card-swipe ticket gets the order's priority.
pub fn order_for_customer(c: &Connection, id_number: &str) -> Result<Option<String>, StoreError> {
    Ok(c.query_row(
        "SELECT id FROM orders WHERE customer_id_number = ?1 \
         AND status IN ('created', 'approved', 'executing', 'recalled') \
         ORDER BY appointment_at IS NULL, appointment_at, created_at LIMIT 1",
        [id_number],
        |r| r.get(0),
    )
    .optional()?)
}

/// A step's run time: finished − started, or now − started while running.
pub(super) fn step_secs(s: &StepRow, now: DateTime<Utc>) -> Option<i64> {
    let start = parse(s.started_at.as_deref()?)?;
    let end = s.finished_at.as_deref().and_then(parse).unwrap_or(now);
    Some((end - start).num_milliseconds().max(0) / 1000)
}
