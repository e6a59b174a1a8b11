//! The queue's state in SQLite and every operation on it, each one transaction that commits
//! the change together with its `ticket.*` event.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::{Value, json};

use super::policy::{self, CallState, Candidate, Moved, Why};
use crate::alerts;
use crate::config::{Config, Service};
use crate::store::{StoreError, Tx, rfc3339};

/// Why a queue operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// No service with this code.
    #[error("unknown service `{0}`")]
    UnknownService(String),
    /// No ticket with this number today.
    #[error("no ticket {0} today")]
    UnknownTicket(String),
    /// No counter with this id (in the path).
    #[error("no counter {0}")]
    UnknownCounter(String),
    /// A counter named in a request body does not exist.
    #[error("no counter {0}")]
    BadCounter(String),
    /// Nothing waiting that this counter serves.
    #[error("no ticket is waiting for counter {0}")]
    QueueEmpty(String),
    /// The ticket is not in a state that allows this.
    #[error("ticket {number} is {state}; {needed}")]
    WrongState {
        /// Ticket number.
        number: String,
        /// Its state.
        state: String,
        /// What the operation needs.
        needed: &'static str,
    },
    /// A move outside 1..=len.
    #[error("position {position} is out of range: the queue has positions 1 to {len}")]
    BadPosition {
        /// Asked for.
        position: u32,
        /// Waiting tickets.
        len: usize,
    },
    /// Bad request content.
    #[error("{0}")]
    Invalid(String),
    /// Outside the service's opening hours.
    #[error("{0} is closed now (opening hours {1})")]
    ServiceClosed(String, String),
    /// No printer is configured.
    #[error("no ticket printer is configured")]
    NoPrinter,
    /// The printer cannot print now.
    #[error("the ticket printer cannot print: {0}")]
    PrinterUnavailable(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for QueueError {
    fn from(e: rusqlite::Error) -> Self {
        QueueError::Store(StoreError::from(e))
    }
}

/// Where a ticket request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The PAD or a kiosk, over HTTP.
    Pad,
    /// An ID card swipe on a lobby reader.
    Card,
    /// An appointment or head-office order.
    Appointment,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Pad => "pad",
            Source::Card => "card",
            Source::Appointment => "appointment",
        }
    }
}

/// A request for a ticket, from any module.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// Service code.
    pub service: String,
    /// The bank's customer id, if known (never a name or an ID number).
    pub customer_id: Option<String>,
    /// `normal`, `vip1`, `vip2` or `vip3` (`vip` = `vip1`), if known.
    pub customer_level: Option<String>,
    /// The appointment or order this visit belongs to (gives priority).
    pub appointment_id: Option<String>,
    /// Who asked.
    pub source: Source,
}

/// The VIP tier of a customer level: `Ok(None)` for a normal customer.
pub fn vip_tier(level: &str) -> Result<Option<u8>, QueueError> {
    match level {
        "normal" => Ok(None),
        "vip" | "vip1" => Ok(Some(1)),
        "vip2" => Ok(Some(2)),
        "vip3" => Ok(Some(3)),
        other => Err(QueueError::Invalid(format!(
            "unknown customer_level `{other}` (normal, vip1, vip2 or vip3)"
        ))),
    }
}

/// The queue level of a customer head office has sent as a VIP (`vip.upsert`), when the
/// ticket request does not give one: their level when it is a queue tier, else `vip1`.
fn enrolled_level(
    c: &rusqlite::Connection,
    customer_id: &str,
) -> Result<Option<String>, QueueError> {
    let vip = crate::sync::commands::vip_get(c, customer_id).map_err(QueueError::from)?;
    Ok(vip.map(|v| match vip_tier(&v.level) {
        Ok(_) => v.level,
        Err(_) => "vip1".to_string(),
    }))
}

/// A stored ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    /// Row id.
    pub id: i64,
    /// e.g. `A001`.
    pub number: String,
    /// Business day (branch-local date after the reset hour), `YYYY-MM-DD`.
    pub day: String,
    /// Current service.
    pub service: String,
    /// `waiting`, `called`, `served`, `skipped`, `no_show`.
    pub state: String,
    /// 0 normal, 1–3 priority.
    pub priority: u8,
    /// Customer level given at issue.
    pub customer_level: Option<String>,
    /// Customer id given at issue.
    pub customer_id: Option<String>,
    /// Appointment id given at issue.
    pub appointment_id: Option<String>,
    /// `pad`, `card`, `appointment`.
    pub source: String,
    /// Original issue time.
    pub issued_at: DateTime<Utc>,
    /// The counter it was called to.
    pub counter: Option<String>,
    /// Only this counter may call it (transfer to a counter).
    pub target_counter: Option<String>,
    /// When it was called.
    pub called_at: Option<DateTime<Utc>>,
    /// Recalls since the call.
    pub recalls: u32,
    /// Transferred from this service.
    pub transferred_from: Option<String>,
    /// Manual move.
    pub moved: Option<Moved>,
    /// Whether a ticket came out of the printer.
    pub printed: bool,
    /// Wait alerts raised so far (0, 1 at target, 2 at twice the target).
    pub alert_level: u8,
}

const COLUMNS: &str = "id, number, day, service, state, priority, customer_level, customer_id, \
    appointment_id, source, issued_at, counter, target_counter, called_at, recalls, \
    transferred_from, moved_pos, moved_calls, moved_at, moved_by, moved_reason, printed, alert_level";

fn ts(s: Option<String>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Ticket> {
    let moved_pos: Option<i64> = r.get(16)?;
    let moved = match moved_pos {
        Some(pos) => Some(Moved {
            position: pos as u32,
            calls_at: r.get::<_, i64>(17)? as u64,
            at: ts(r.get(18)?).unwrap_or_default(),
            by: r.get::<_, Option<String>>(19)?.unwrap_or_default(),
            reason: r.get(20)?,
        }),
        None => None,
    };
    Ok(Ticket {
        id: r.get(0)?,
        number: r.get(1)?,
        day: r.get(2)?,
        service: r.get(3)?,
        state: r.get(4)?,
        priority: r.get::<_, i64>(5)? as u8,
        customer_level: r.get(6)?,
        customer_id: r.get(7)?,
        appointment_id: r.get(8)?,
        source: r.get(9)?,
        issued_at: ts(Some(r.get(10)?)).unwrap_or_default(),
        counter: r.get(11)?,
        target_counter: r.get(12)?,
        called_at: ts(r.get(13)?),
        recalls: r.get::<_, i64>(14)? as u32,
        transferred_from: r.get(15)?,
        moved,
        printed: r.get::<_, i64>(21)? != 0,
        alert_level: r.get::<_, i64>(22)? as u8,
    })
}

/// The business day of `now`: the branch-local date, counted from the reset hour.
pub fn business_day(cfg: &Config, now: DateTime<Utc>) -> String {
    let local = now.with_timezone(&cfg.branch.utc_offset)
        - ChronoDuration::hours(i64::from(cfg.queue.reset_hour));
    local.format("%Y-%m-%d").to_string()
}

/// Today's tickets that are waiting or at a counter, oldest first.
pub fn open_tickets(c: &Connection, day: &str) -> Result<Vec<Ticket>, QueueError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM queue_tickets \
         WHERE state IN ('waiting', 'called') AND day = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([day], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Today's ticket with this number.
pub fn find(c: &Connection, day: &str, number: &str) -> Result<Ticket, QueueError> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM queue_tickets WHERE day = ?1 AND number = ?2"),
        params![day, number],
        from_row,
    )
    .optional()?
    .ok_or_else(|| QueueError::UnknownTicket(number.to_string()))
}

/// The persisted call counters.
pub fn call_state(c: &Connection) -> Result<CallState, QueueError> {
    let get = |k: &str| -> Result<i64, QueueError> {
        Ok(
            c.query_row("SELECT value FROM queue_state WHERE key = ?1", [k], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0),
        )
    };
    Ok(CallState {
        calls: get("calls")? as u64,
        streak: get("streak")? as u32,
    })
}

fn set_call_state(c: &Connection, s: CallState) -> Result<(), QueueError> {
    for (k, v) in [("calls", s.calls as i64), ("streak", i64::from(s.streak))] {
        c.execute(
            "INSERT INTO queue_state(key, value) VALUES (?1, ?2) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![k, v],
        )?;
    }
    Ok(())
}

fn candidate(cfg: &Config, t: &Ticket) -> Candidate {
    Candidate {
        id: t.id,
        number: t.number.clone(),
        service: t.service.clone(),
        priority: t.priority,
        vip_tier: t
            .customer_level
            .as_deref()
            .and_then(|l| vip_tier(l).ok().flatten()),
        appointment: t.appointment_id.is_some(),
        transferred_from: t.transferred_from.clone(),
        issued_at: t.issued_at,
        weight: cfg.service(&t.service).map_or(1.0, |s| s.priority_weight),
        moved: t.moved.clone(),
    }
}

/// Average of the last recorded service times of a service, or the configured default.
pub fn avg_service_s(c: &Connection, cfg: &Config, service: &str) -> Result<f64, QueueError> {
    let avg: Option<f64> = c.query_row(
        "SELECT avg(served_s) FROM (SELECT served_s FROM queue_service_times \
         WHERE service = ?1 ORDER BY id DESC LIMIT 20)",
        [service],
        |r| r.get(0),
    )?;
    Ok(avg.unwrap_or(cfg.queue.default_service_time.as_secs_f64()))
}

/// A waiting ticket in the call order.
#[derive(Debug, Clone, Serialize)]
pub struct WaitingView {
    /// 1-based position.
    pub position: usize,
    /// Number.
    pub number: String,
    /// Service code.
    pub service: String,
    /// 0 normal, 1–3 priority.
    pub priority: u8,
    /// Seconds waited since the original issue.
    pub waited_s: u64,
    /// Estimated seconds until called.
    pub estimated_wait_s: u64,
    /// Issue time.
    pub issued_at: String,
    /// Customer level, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_level: Option<String>,
    /// Customer id, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Appointment id, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointment_id: Option<String>,
    /// Only this counter will call it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counter: Option<String>,
    /// Whether a paper ticket came out.
    pub printed: bool,
    /// Why it stands here.
    pub why: Vec<Why>,
}

/// The waiting tickets in call order with their estimates (all of them, or those a
/// counter may call).
pub fn ordered(
    c: &Connection,
    cfg: &Config,
    now: DateTime<Utc>,
    open: &[Ticket],
    for_counter: Option<&str>,
) -> Result<Vec<(Ticket, WaitingView)>, QueueError> {
    let waiting: Vec<&Ticket> = open
        .iter()
        .filter(|t| t.state == "waiting")
        .filter(|t| match for_counter {
            None => true,
            Some(cid) => match &t.target_counter {
                Some(target) => target == cid,
                None => cfg
                    .counters
                    .iter()
                    .any(|k| k.id == cid && k.services.contains(&t.service)),
            },
        })
        .collect();
    let cands: Vec<Candidate> = waiting.iter().map(|t| candidate(cfg, t)).collect();
    let placed = policy::order(&cands, now, call_state(c)?, cfg.queue.fairness_after);
    // Estimates: tickets ahead that the same counters could take, times the average service
    // time, over the counters serving the service.
    let mut avg: HashMap<&str, f64> = HashMap::new();
    for s in &cfg.services {
        avg.insert(s.code.as_str(), avg_service_s(c, cfg, &s.code)?);
    }
    let mut shared: HashMap<&str, (HashSet<&str>, usize)> = HashMap::new();
    for s in &cfg.services {
        let counters: Vec<_> = cfg
            .counters
            .iter()
            .filter(|k| k.services.contains(&s.code))
            .collect();
        let set = counters
            .iter()
            .flat_map(|k| k.services.iter().map(String::as_str))
            .chain(std::iter::once(s.code.as_str()))
            .collect();
        shared.insert(s.code.as_str(), (set, counters.len().max(1)));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(placed.len());
    for (pos, p) in placed.into_iter().enumerate() {
        let t = waiting[p.index];
        let est = match shared.get(t.service.as_str()) {
            Some((set, n)) => {
                let ahead: usize = set.iter().map(|s| seen.get(s).copied().unwrap_or(0)).sum();
                let a = avg
                    .get(t.service.as_str())
                    .copied()
                    .unwrap_or(cfg.queue.default_service_time.as_secs_f64());
                (ahead as f64 * a / *n as f64).round() as u64
            }
            None => 0,
        };
        *seen.entry(t.service.as_str()).or_default() += 1;
        out.push((
            t.clone(),
            WaitingView {
                position: pos + 1,
                number: t.number.clone(),
                service: t.service.clone(),
                priority: t.priority,
                waited_s: policy::waited_s(t.issued_at, now),
                estimated_wait_s: est,
                issued_at: rfc3339(t.issued_at),
                customer_level: t.customer_level.clone(),
                customer_id: t.customer_id.clone(),
                appointment_id: t.appointment_id.clone(),
                counter: t.target_counter.clone(),
                printed: t.printed,
                why: p.why,
            },
        ));
    }
    Ok(out)
}

/// The call text for displays and voice.
pub fn call_text(number: &str, counter: &str) -> Value {
    json!({
        "zh": format!("请{number}号到{counter}号窗口办理"),
        "en": format!("Ticket {number}, please go to counter {counter}"),
    })
}

/// A ticket as answered by the counter operations.
#[derive(Debug, Clone, Serialize)]
pub struct TicketView {
    /// Number.
    pub number: String,
    /// Service code.
    pub service: String,
    /// State after the operation.
    pub state: String,
    /// Priority.
    pub priority: u8,
    /// The counter it was called to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counter: Option<String>,
    /// Seconds waited (until the call, once called).
    pub waited_s: u64,
    /// Recalls since the call.
    pub recalls: u32,
    /// Whether a paper ticket came out.
    pub printed: bool,
    /// The call text, for a call or recall.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_text: Option<Value>,
}

fn view(t: &Ticket, now: DateTime<Utc>, call: Option<Value>) -> TicketView {
    TicketView {
        number: t.number.clone(),
        service: t.service.clone(),
        state: t.state.clone(),
        priority: t.priority,
        counter: t.counter.clone(),
        waited_s: policy::waited_s(t.issued_at, t.called_at.unwrap_or(now)),
        recalls: t.recalls,
        printed: t.printed,
        call_text: call,
    }
}

/// The answer to an issue.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    /// Number.
    pub number: String,
    /// Service code.
    pub service: String,
    /// 1-based position in the call order.
    pub position: usize,
    /// People ahead.
    pub people_ahead: usize,
    /// Estimated wait.
    pub estimated_wait_s: u64,
    /// 0 normal, 1–3 priority.
    pub priority: u8,
    /// Issue time.
    pub issued_at: String,
    /// Whether the paper ticket came out.
    pub printed: bool,
    /// Why it stands where it stands.
    pub why: Vec<Why>,
    /// The business day.
    pub day: String,
}

fn is_open(cfg: &Config, s: &Service, now: DateTime<Utc>) -> Result<(), QueueError> {
    if let Some((open, close)) = s.hours {
        let local = now.with_timezone(&cfg.branch.utc_offset).time();
        if local < open || local >= close {
            return Err(QueueError::ServiceClosed(
                s.code.clone(),
                format!("{}-{}", open.format("%H:%M"), close.format("%H:%M")),
            ));
        }
    }
    Ok(())
}

fn check_id(what: &str, v: &Option<String>) -> Result<(), QueueError> {
    if let Some(v) = v {
        if v.is_empty() || v.len() > 64 || v.chars().any(char::is_control) {
            return Err(QueueError::Invalid(format!(
                "{what} must be 1 to 64 printable characters"
            )));
        }
    }
    Ok(())
}

/// Issue a ticket (in one transaction with `ticket.issued`).
pub fn issue(
    tx: &mut Tx<'_>,
    cfg: &Config,
    now: DateTime<Utc>,
    req: &IssueRequest,
) -> Result<Issued, QueueError> {
    let svc = cfg
        .service(&req.service)
        .ok_or_else(|| QueueError::UnknownService(req.service.clone()))?;
    is_open(cfg, svc, now)?;
    check_id("customer_id", &req.customer_id)?;
    check_id("appointment_id", &req.appointment_id)?;
    let level = match (&req.customer_level, &req.customer_id) {
        (Some(l), _) => Some(l.clone()),
        (None, Some(id)) => enrolled_level(tx.conn(), id)?,
        (None, None) => None,
    };
    let tier = match &level {
        Some(l) => vip_tier(l)?,
        None => None,
    };
    let priority = tier
        .unwrap_or(0)
        .max(u8::from(req.appointment_id.is_some()));
    let day = business_day(cfg, now);
    let n: i64 = tx.conn().query_row(
        "INSERT INTO queue_numbers(service, day, last) VALUES (?1, ?2, 1) \
         ON CONFLICT(service, day) DO UPDATE SET last = last + 1 RETURNING last",
        params![svc.code, day],
        |r| r.get(0),
    )?;
    let number = format!(
        "{}{:0width$}",
        svc.prefix,
        n,
        width = usize::from(svc.number_width)
    );
    tx.conn().execute(
        "INSERT INTO queue_tickets(number, day, service, state, priority, customer_level, \
         customer_id, appointment_id, source, issued_at) \
         VALUES (?1, ?2, ?3, 'waiting', ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            number,
            day,
            svc.code,
            i64::from(priority),
            level,
            req.customer_id,
            req.appointment_id,
            req.source.as_str(),
            rfc3339(now)
        ],
    )?;
    let open = open_tickets(tx.conn(), &day)?;
    let list = ordered(tx.conn(), cfg, now, &open, None)?;
    let me = list
        .iter()
        .find(|(t, _)| t.number == number)
        .map(|(_, v)| v.clone())
        .ok_or_else(|| QueueError::UnknownTicket(number.clone()))?;
    let mut data = json!({
        "number": number,
        "service": svc.code,
        "priority": priority,
        "position": me.position,
        "estimated_wait_s": me.estimated_wait_s,
        "source": req.source.as_str(),
    });
    for (k, v) in [
        ("customer_id", &req.customer_id),
        ("appointment_id", &req.appointment_id),
        ("customer_level", &level),
    ] {
        if let Some(v) = v {
            data[k] = json!(v);
        }
    }
    tx.emit("ticket.issued", data)?;
    if let Some(customer) = &req.customer_id {
        // a VIP greeted at the door earlier today: her arrival now shows this ticket
        crate::vision::gallery::link_ticket(tx, &day, customer, &number)?;
    }
    Ok(Issued {
        number,
        service: svc.code.clone(),
        position: me.position,
        people_ahead: me.position - 1,
        estimated_wait_s: me.estimated_wait_s,
        priority,
        issued_at: rfc3339(now),
        printed: false,
        why: me.why,
        day,
    })
}

/// Record whether a ticket's paper came out (`ticket.printed`, or `ticket.reprint`).
pub fn set_printed(
    tx: &mut Tx<'_>,
    cfg: &Config,
    now: DateTime<Utc>,
    number: &str,
    printed: bool,
    reason: Option<&str>,
    reprint: bool,
) -> Result<(), QueueError> {
    let t = find(tx.conn(), &business_day(cfg, now), number)?;
    tx.conn().execute(
        "UPDATE queue_tickets SET printed = ?1 WHERE id = ?2",
        params![i64::from(printed || t.printed), t.id],
    )?;
    let mut data = json!({"number": number, "service": t.service, "printed": printed});
    if let Some(r) = reason {
        data["reason"] = json!(r);
    }
    tx.emit(
        if reprint {
            "ticket.reprint"
        } else {
            "ticket.printed"
        },
        data,
    )?;
    Ok(())
}

fn clear_wait_alerts(tx: &mut Tx<'_>, t: &Ticket) -> Result<(), QueueError> {
    if t.alert_level > 0 {
        for level in 1..=2 {
            alerts::clear(tx, &wait_alert_key(t.id, level))?;
        }
    }
    Ok(())
}

/// The de-duplication key of a ticket's wait alert.
pub fn wait_alert_key(ticket_id: i64, level: u8) -> String {
    format!("queue.wait:{ticket_id}:{level}")
}

fn served(tx: &mut Tx<'_>, t: &Ticket, now: DateTime<Utc>) -> Result<TicketView, QueueError> {
    let called = t.called_at.unwrap_or(now);
    let service_s = (now - called).num_milliseconds().max(0) as f64 / 1000.0;
    tx.conn().execute(
        "UPDATE queue_tickets SET state = 'served', finished_at = ?1 WHERE id = ?2",
        params![rfc3339(now), t.id],
    )?;
    tx.conn().execute(
        "INSERT INTO queue_service_times(service, served_s, ts) VALUES (?1, ?2, ?3)",
        params![t.service, service_s, rfc3339(now)],
    )?;
    tx.emit(
        "ticket.served",
        json!({"number": t.number, "service": t.service, "counter": t.counter,
               "service_s": service_s.round() as u64,
               "waited_s": policy::waited_s(t.issued_at, called)}),
    )?;
    let mut t = t.clone();
    t.state = "served".into();
    Ok(view(&t, now, None))
}

/// Call the best ticket for a counter. A ticket still at the counter is served first.
pub fn call_next(
    tx: &mut Tx<'_>,
    cfg: &Config,
    now: DateTime<Utc>,
    counter: &str,
) -> Result<TicketView, QueueError> {
    if !cfg.counters.iter().any(|k| k.id == counter) {
        return Err(QueueError::UnknownCounter(counter.to_string()));
    }
    let day = business_day(cfg, now);
    let open = open_tickets(tx.conn(), &day)?;
    let list = ordered(tx.conn(), cfg, now, &open, Some(counter))?;
    let Some((next, _)) = list.into_iter().next() else {
        return Err(QueueError::QueueEmpty(counter.to_string()));
    };
    if let Some(cur) = open
        .iter()
        .find(|t| t.state == "called" && t.counter.as_deref() == Some(counter))
    {
        served(tx, cur, now)?;
    }
    let state = call_state(tx.conn())?.after_call(next.priority);
    set_call_state(tx.conn(), state)?;
    tx.conn().execute(
        "UPDATE queue_tickets SET state = 'called', counter = ?1, called_at = ?2, recalls = 0 \
         WHERE id = ?3",
        params![counter, rfc3339(now), next.id],
    )?;
    clear_wait_alerts(tx, &next)?;
    let text = call_text(&next.number, counter);
    let waited = policy::waited_s(next.issued_at, now);
    tx.emit(
        "ticket.called",
        json!({"number": next.number, "service": next.service, "counter": counter,
               "priority": next.priority, "waited_s": waited, "call_text": text}),
    )?;
    let mut t = next;
    t.state = "called".into();
    t.counter = Some(counter.to_string());
    t.called_at = Some(now);
    t.recalls = 0;
    Ok(view(&t, now, Some(text)))
}

fn called(
    c: &Connection,
    cfg: &Config,
    now: DateTime<Utc>,
    number: &str,
) -> Result<Ticket, QueueError> {
    let t = find(c, &business_day(cfg, now), number)?;
    if t.state != "called" {
        return Err(QueueError::WrongState {
            number: t.number,
            state: t.state,
            needed: "only a called ticket can be recalled, skipped or served",
        });
    }
    Ok(t)
}

/// Recall a called ticket; past `no_show_after_recalls` recalls it becomes a no-show.
pub fn recall(
    tx: &mut Tx<'_>,
    cfg: &Config,
    now: DateTime<Utc>,
    number: &str,
) -> Result<TicketView, QueueError> {
    let mut t = called(tx.conn(), cfg, now, number)?;
    let counter = t.counter.clone().unwrap_or_default();
    if t.recalls >= cfg.queue.no_show_after_recalls {
        tx.conn().execute(
            "UPDATE queue_tickets SET state = 'no_show', finished_at = ?1 WHERE id = ?2",
            params![rfc3339(now), t.id],
        )?;
        tx.emit(
            "ticket.no_show",
            json!({"number": t.number, "service": t.service, "counter": counter,
                   "recalls": t.recalls}),
        )?;
        t.state = "no_show".into();
        return Ok(view(&t, now, None));
    }
    t.recalls += 1;
    tx.conn().execute(
        "UPDATE queue_tickets SET recalls = ?1 WHERE id = ?2",
        params![i64::from(t.recalls), t.id],
    )?;
    let text = call_text(&t.number, &counter);
    tx.emit(
        "ticket.recalled",
        json!({"number": t.number, "service": t.service, "counter": counter,
               "recalls": t.recalls, "call_text": text}),
    )?;
    Ok(view(&t, now, Some(text)))
}

/// The customer did not come: the counter moves on (`ticket.skipped`; `ticket.no_show` once
/// the ticket has been recalled `no_show_after_recalls` times).
pub fn skip(
    tx: &mut Tx<'_>,
    cfg: &Config,
    now: DateTime<Utc>,
    number: &str,
) -> Result<TicketView, QueueError> {
    let mut t = called(tx.conn(), cfg, now, number)?;
    let no_show = t.recalls >= cfg.queue.no_show_after_recalls;
    let state = if no_show { "no_show" } else { "skipped" };
    tx.conn().execute(
        "UPDATE queue_tickets SET state = ?1, finished_at = ?2 WHERE id = ?3",
        params![state, rfc3339(now), t.id],
    )?;
    tx.emit(
        if no_show {
            "ticket.no_show"
        } else {
            "ticket.skipped"
        },
        json!({"number": t.number, "service": t.service, "counter": t.counter,
               "recalls": t.recalls}),
    )?;
    t.state = state.into();
    Ok(view(&t, now, None))
}

/// The counter has served the ticket; its service time is recorded.
pub fn serve_done(
    tx: &mut Tx<'_>,
    cfg: &Config,
    now: DateTime<Utc>,
    number: &str,
) -> Result<TicketView, QueueError> {
    let t = called(tx.conn(), cfg, now, number)?;
    served(tx, &t, now)
}

/// Where a ticket is transferred.
#[derive(Debug, Clone)]
pub enum TransferTo {
    /// To another service's queue.
    Service(String),
    /// To one counter.
    Counter(String),
}

/// Send a ticket to another service or counter: it keeps its issue time and gets priority.
pub fn transfer(
    tx: &mut Tx<'_>,
    cfg: &Config,
    now: DateTime<Utc>,
    number: &str,
    to: &TransferTo,
) -> Result<TicketView, QueueError> {
    let mut t = find(tx.conn(), &business_day(cfg, now), number)?;
    if t.state != "waiting" && t.state != "called" {
        return Err(QueueError::WrongState {
            number: t.number,
            state: t.state,
            needed: "only a waiting or called ticket can be transferred",
        });
    }
    let (service, counter) = match to {
        TransferTo::Service(s) => {
            if cfg.service(s).is_none() {
                return Err(QueueError::UnknownService(s.clone()));
            }
            (s.clone(), None)
        }
        TransferTo::Counter(k) => {
            if !cfg.counters.iter().any(|c| &c.id == k) {
                return Err(QueueError::BadCounter(k.clone()));
            }
            (t.service.clone(), Some(k.clone()))
        }
    };
    let from = t.service.clone();
    let priority = t.priority.max(1);
    tx.conn().execute(
        "UPDATE queue_tickets SET state = 'waiting', service = ?1, target_counter = ?2, \
         transferred_from = ?3, priority = ?4, counter = NULL, called_at = NULL, recalls = 0, \
         moved_pos = NULL, moved_calls = NULL, moved_at = NULL, moved_by = NULL, \
         moved_reason = NULL WHERE id = ?5",
        params![service, counter, from, i64::from(priority), t.id],
    )?;
    tx.emit(
        "ticket.transferred",
        json!({"number": t.number, "from_service": from, "service": service,
               "counter": counter, "priority": priority}),
    )?;
    t.state = "waiting".into();
    t.service = service;
    t.counter = None;
    t.called_at = None;
    t.recalls = 0;
    t.priority = priority;
    Ok(view(&t, now, None))
}

/// Move a waiting ticket to a position (a manual reorder, recorded with who and why).
pub fn move_to(
    tx: &mut Tx<'_>,
    cfg: &Config,
    now: DateTime<Utc>,
    number: &str,
    position: u32,
    by: &str,
    reason: Option<&str>,
) -> Result<TicketView, QueueError> {
    let day = business_day(cfg, now);
    let t = find(tx.conn(), &day, number)?;
    if t.state != "waiting" {
        return Err(QueueError::WrongState {
            number: t.number,
            state: t.state,
            needed: "only a waiting ticket can be moved",
        });
    }
    let open = open_tickets(tx.conn(), &day)?;
    let list = ordered(tx.conn(), cfg, now, &open, None)?;
    if position == 0 || position as usize > list.len() {
        return Err(QueueError::BadPosition {
            position,
            len: list.len(),
        });
    }
    if let Some(r) = reason {
        if r.chars().count() > 200 {
            return Err(QueueError::Invalid(
                "reason must be at most 200 characters".into(),
            ));
        }
    }
    let from = list
        .iter()
        .find(|(x, _)| x.id == t.id)
        .map_or(0, |(_, v)| v.position);
    let calls = call_state(tx.conn())?.calls;
    tx.conn().execute(
        "UPDATE queue_tickets SET moved_pos = ?1, moved_calls = ?2, moved_at = ?3, \
         moved_by = ?4, moved_reason = ?5 WHERE id = ?6",
        params![
            i64::from(position),
            calls as i64,
            rfc3339(now),
            by,
            reason,
            t.id
        ],
    )?;
    let detail = json!({"from": from, "to": position, "reason": reason});
    crate::users::audit(tx, Some(by), "ticket.move", Some(&t.number), Some(&detail))?;
    tx.emit(
        "ticket.moved",
        json!({"number": t.number, "service": t.service, "from": from,
               "position": position, "by": by, "reason": reason}),
    )?;
    Ok(view(&t, now, None))
}

/// A counter and the ticket it is serving.
#[derive(Debug, Clone, Serialize)]
pub struct CounterView {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Services it serves.
    pub services: Vec<String>,
    /// Open for calls.
    pub open: bool,
    /// The called ticket.
    pub current: Option<Value>,
}

/// Figures per service.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceView {
    /// Code.
    pub code: String,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Ticket prefix.
    pub prefix: String,
    /// Target wait.
    pub target_wait_s: u64,
    /// Tickets waiting.
    pub waiting: usize,
    /// Longest wait now.
    pub longest_wait_s: u64,
    /// Average wait of those waiting.
    pub avg_wait_s: u64,
    /// Within opening hours now.
    pub open: bool,
}

/// `GET /api/v1/queue`.
#[derive(Debug, Clone, Serialize)]
pub struct QueueView {
    /// Business day.
    pub day: String,
    /// Waiting tickets in call order.
    pub waiting: Vec<WaitingView>,
    /// Counters.
    pub counters: Vec<CounterView>,
    /// Services.
    pub services: Vec<ServiceView>,
}

/// The whole queue now.
pub fn snapshot(c: &Connection, cfg: &Config, now: DateTime<Utc>) -> Result<QueueView, QueueError> {
    let day = business_day(cfg, now);
    let open = open_tickets(c, &day)?;
    let waiting: Vec<WaitingView> = ordered(c, cfg, now, &open, None)?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let counters = cfg
        .counters
        .iter()
        .map(|k| CounterView {
            id: k.id.clone(),
            name: k.name.clone(),
            services: k.services.clone(),
            open: true,
            current: open
                .iter()
                .find(|t| t.state == "called" && t.counter.as_deref() == Some(k.id.as_str()))
                .map(|t| {
                    json!({"number": t.number, "service": t.service,
                           "called_at": t.called_at.map(rfc3339), "recalls": t.recalls,
                           "waited_s": policy::waited_s(t.issued_at, t.called_at.unwrap_or(now))})
                }),
        })
        .collect();
    let services = cfg
        .services
        .iter()
        .map(|s| {
            let mine: Vec<u64> = waiting
                .iter()
                .filter(|w| w.service == s.code)
                .map(|w| w.waited_s)
                .collect();
            ServiceView {
                code: s.code.clone(),
                name: s.name.clone(),
                name_en: s.name_en.clone(),
                prefix: s.prefix.clone(),
                target_wait_s: s.target_wait.as_secs(),
                waiting: mine.len(),
                longest_wait_s: mine.iter().copied().max().unwrap_or(0),
                avg_wait_s: if mine.is_empty() {
                    0
                } else {
                    mine.iter().sum::<u64>() / mine.len() as u64
                },
                open: is_open(cfg, s, now).is_ok(),
            }
        })
        .collect();
    Ok(QueueView {
        day,
        waiting,
        counters,
        services,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use chrono::TimeZone;

    fn cfg(extra: &str) -> Config {
        Config::parse(&format!(
            r#"
[branch]
id = "T1"
name = "测试"
data_dir = "unused"
utc_offset = "+08:00"
[http]
listen = "127.0.0.1:0"
[[services]]
code = "personal"
prefix = "A"
name = "个人业务"
{extra}
[[counters]]
id = "1"
services = ["personal"]
"#
        ))
        .unwrap()
    }

    fn req() -> IssueRequest {
        IssueRequest {
            service: "personal".into(),
            customer_id: None,
            customer_level: None,
            appointment_id: None,
            source: Source::Pad,
        }
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).unwrap()
    }

    #[test]
    fn the_business_day_turns_at_the_reset_hour_in_branch_time() {
        let c = cfg("");
        // 04:00 in +08:00 is 20:00 UTC the day before.
        assert_eq!(business_day(&c, at(19, 59)), "2026-11-23");
        assert_eq!(business_day(&c, at(20, 0)), "2026-11-24");
        let mut c0 = cfg("");
        c0.queue.reset_hour = 0;
        assert_eq!(business_day(&c0, at(15, 59)), "2026-11-23");
        assert_eq!(business_day(&c0, at(16, 0)), "2026-11-24");
    }

    #[test]
    fn numbering_restarts_at_the_reset_hour_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let c = cfg("");
        let issue_at = |store: &Store, t: DateTime<Utc>| {
            let c = c.clone();
            store
                .write_blocking(move |tx| issue(tx, &c, t, &req()))
                .unwrap()
                .number
        };
        let store = Store::open(&path).unwrap();
        assert_eq!(issue_at(&store, at(10, 0)), "A001");
        assert_eq!(issue_at(&store, at(19, 0)), "A002");
        store.close();
        let store = Store::open(&path).unwrap();
        assert_eq!(issue_at(&store, at(19, 59)), "A003");
        assert_eq!(issue_at(&store, at(20, 0)), "A001", "a new business day");
        store.close();
    }

    #[test]
    fn outside_opening_hours_no_ticket_is_issued_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("q.db")).unwrap();
        let c = cfg("hours = \"08:30-17:00\"");
        let c2 = c.clone();
        // 08:00 local = 00:00 UTC.
        let r = store.write_blocking(move |tx| issue(tx, &c2, at(0, 0), &req()));
        assert!(
            matches!(&r, Err(QueueError::ServiceClosed(code, hours)) if code == "personal" && hours == "08:30-17:00"),
            "{r:?}"
        );
        assert_eq!(*store.committed().borrow(), 0);
        let c2 = c.clone();
        let n = store
            .write_blocking(move |tx| issue(tx, &c2, at(1, 0), &req()))
            .unwrap();
        assert_eq!(n.number, "A001", "the refused request used no number");
        store.close();
    }
}
