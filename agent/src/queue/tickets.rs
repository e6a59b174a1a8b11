//! Tickets in SQLite: the row, its states, the queue's errors, and the reads every queue
//! operation starts from.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::policy::{CallState, Moved};
use crate::clock::parse;
use crate::config::Config;
use crate::store::{Memo, StoreError, Tx, text_enum};

text_enum! {
    /// Where a ticket is in its day.
    pub enum TicketState {
        /// In the queue.
        Waiting = "waiting",
        /// Called to a counter.
        Called = "called",
        /// Served at a counter.
        Served = "served",
        /// The customer did not come when called.
        Skipped = "skipped",
        /// Recalled too often without the customer coming.
        NoShow = "no_show",
    }
}

impl TicketState {
    /// Waiting or at a counter.
    pub fn is_open(self) -> bool {
        matches!(self, TicketState::Waiting | TicketState::Called)
    }
}

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
    /// The counter is closed: nobody calls from it.
    #[error("counter {0} is closed")]
    CounterClosed(String),
    /// Another member of staff is at the counter.
    #[error("counter {counter} is open with {staff}; close it first")]
    CounterBusy {
        /// Counter id.
        counter: String,
        /// Who is at it.
        staff: String,
    },
    /// The counter still has a called ticket.
    #[error("counter {counter} has called ticket {number}; serve, skip or transfer it first")]
    CounterHasTicket {
        /// Counter id.
        counter: String,
        /// The called ticket.
        number: String,
    },
    /// No active account with this user name.
    #[error("no member of staff `{0}`")]
    UnknownStaff(String),
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
        state: TicketState,
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

text_enum! {
    /// Where a ticket request came from.
    pub enum Source {
        /// The PAD, over HTTP.
        Pad = "pad",
        /// A self-service kiosk, over HTTP.
        Kiosk = "kiosk",
        /// An ID card swipe on a lobby reader.
        Card = "card",
        /// An appointment or head-office order.
        Appointment = "appointment",
    }
}

impl From<crate::vips::UnknownLevel> for QueueError {
    fn from(e: crate::vips::UnknownLevel) -> Self {
        QueueError::Invalid(e.to_string())
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
    /// Where it is.
    pub state: TicketState,
    /// 0 normal, 1–3 priority.
    pub priority: u8,
    /// Customer level given at issue.
    pub customer_level: Option<String>,
    /// Customer id given at issue.
    pub customer_id: Option<String>,
    /// Appointment id given at issue.
    pub appointment_id: Option<String>,
    /// Where the request came from.
    pub source: Source,
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
    /// The visit this ticket belongs to: an opaque id given at issue and carried by every
    /// event of the ticket (and by the events of modules that link to it).
    pub visit_id: String,
}

impl Ticket {
    /// Add what identifies the customer's journey to a ticket event's data: the visit
    /// always, the customer and the appointment when known.
    pub fn journey(&self, mut data: serde_json::Value) -> serde_json::Value {
        data["visit_id"] = serde_json::json!(self.visit_id);
        for (k, v) in [
            ("customer_id", &self.customer_id),
            ("appointment_id", &self.appointment_id),
        ] {
            if let Some(v) = v {
                data[k] = serde_json::json!(v);
            }
        }
        data
    }
}

const COLUMNS: &str = "id, number, day, service, state, priority, customer_level, customer_id, \
    appointment_id, source, issued_at, counter, target_counter, called_at, recalls, \
    transferred_from, moved_pos, moved_calls, moved_at, moved_by, moved_reason, printed, alert_level, \
    visit_id";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Ticket> {
    let moved_pos: Option<i64> = r.get(16)?;
    let moved = match moved_pos {
        Some(pos) => Some(Moved {
            position: pos as u32,
            calls_at: r.get::<_, i64>(17)? as u64,
            at: r
                .get::<_, Option<String>>(18)?
                .as_deref()
                .and_then(parse)
                .unwrap_or_default(),
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
        issued_at: parse(&r.get::<_, String>(10)?).unwrap_or_default(),
        counter: r.get(11)?,
        target_counter: r.get(12)?,
        called_at: r.get::<_, Option<String>>(13)?.as_deref().and_then(parse),
        recalls: r.get::<_, i64>(14)? as u32,
        transferred_from: r.get(15)?,
        moved,
        printed: r.get::<_, i64>(21)? != 0,
        alert_level: r.get::<_, i64>(22)? as u8,
        visit_id: r.get::<_, Option<String>>(23)?.unwrap_or_default(),
    })
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

/// [`open_tickets`] inside a write transaction, from the writer's memo of them: every
/// queue operation starts from the open tickets, and reading a thousand rows each time
/// was most of an operation's time. Temporary triggers on the writer's connection log
/// the id of every ticket row it inserts, updates or deletes (whatever module does it);
/// the memo reads those rows again, and only those. It reads everything again on a new
/// day, after a transaction that did not commit ([`Memo::rolled_back`]), and when
/// another connection committed (`PRAGMA data_version`).
pub fn open_tickets_tx(tx: &mut Tx<'_>, day: &str) -> Result<Arc<Vec<Ticket>>, QueueError> {
    let (c, memo) = tx.memo::<OpenMemo>();
    memo.refresh(c, day)?;
    Ok(memo.tickets.clone())
}

/// The writer's copy of today's open tickets ([`open_tickets_tx`]).
#[derive(Debug, Default)]
pub struct OpenMemo {
    /// The change log and its triggers were made in a transaction that committed (or
    /// are about to be, in this one).
    log: bool,
    /// `tickets` are today's open tickets as of the last refresh, plus the rows logged.
    valid: bool,
    day: String,
    data_version: i64,
    /// Ordered by id.
    tickets: Arc<Vec<Ticket>>,
}

impl Memo for OpenMemo {
    fn rolled_back(&mut self) {
        // The log may not exist (if this transaction made it), and rows this
        // transaction changed after the last refresh are in the memo without a log entry.
        self.log = false;
        self.valid = false;
    }
}

impl OpenMemo {
    fn refresh(&mut self, c: &Connection, day: &str) -> Result<(), QueueError> {
        if !self.log {
            c.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS queue_tickets_changed (id INTEGER PRIMARY KEY);
                 CREATE TEMP TRIGGER IF NOT EXISTS queue_tickets_changed_i
                     AFTER INSERT ON main.queue_tickets
                 BEGIN INSERT OR IGNORE INTO queue_tickets_changed(id) VALUES (NEW.id); END;
                 CREATE TEMP TRIGGER IF NOT EXISTS queue_tickets_changed_u
                     AFTER UPDATE ON main.queue_tickets
                 BEGIN
                     INSERT OR IGNORE INTO queue_tickets_changed(id) VALUES (OLD.id);
                     INSERT OR IGNORE INTO queue_tickets_changed(id) VALUES (NEW.id);
                 END;
                 CREATE TEMP TRIGGER IF NOT EXISTS queue_tickets_changed_d
                     AFTER DELETE ON main.queue_tickets
                 BEGIN INSERT OR IGNORE INTO queue_tickets_changed(id) VALUES (OLD.id); END;",
            )?;
            self.log = true;
            self.valid = false;
        }
        let data_version: i64 = c
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if !self.valid || self.day != day || self.data_version != data_version {
            c.prepare_cached("DELETE FROM temp.queue_tickets_changed")?
                .execute([])?;
            self.tickets = Arc::new(open_tickets(c, day)?);
            self.day = day.to_string();
            self.data_version = data_version;
            self.valid = true;
            return Ok(());
        }
        let changed: Vec<i64> = {
            let mut stmt = c.prepare_cached("SELECT id FROM temp.queue_tickets_changed")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        if changed.is_empty() {
            return Ok(());
        }
        let mut stmt = c.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM queue_tickets \
             WHERE id = ?1 AND state IN ('waiting', 'called') AND day = ?2"
        ))?;
        let tickets = Arc::make_mut(&mut self.tickets);
        for id in changed {
            let row = stmt.query_row(params![id, day], from_row).optional()?;
            match (tickets.binary_search_by_key(&id, |t| t.id), row) {
                (Ok(i), Some(t)) => tickets[i] = t,
                (Ok(i), None) => {
                    tickets.remove(i);
                }
                (Err(i), Some(t)) => tickets.insert(i, t),
                (Err(_), None) => {}
            }
        }
        c.prepare_cached("DELETE FROM temp.queue_tickets_changed")?
            .execute([])?;
        Ok(())
    }
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
            c.prepare_cached("SELECT value FROM queue_state WHERE key = ?1")?
                .query_row([k], |r| r.get(0))
                .optional()?
                .unwrap_or(0),
        )
    };
    Ok(CallState {
        calls: get("calls")? as u64,
        streak: get("streak")? as u32,
    })
}

pub(super) fn set_call_state(c: &Connection, s: CallState) -> Result<(), QueueError> {
    for (k, v) in [("calls", s.calls as i64), ("streak", i64::from(s.streak))] {
        c.prepare_cached(
            "INSERT INTO queue_state(key, value) VALUES (?1, ?2) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![k, v])?;
    }
    Ok(())
}

/// Average of the last recorded service times of a service, or the configured default.
pub fn avg_service_s(c: &Connection, cfg: &Config, service: &str) -> Result<f64, QueueError> {
    let avg: Option<f64> = c
        .prepare_cached(
            "SELECT avg(served_s) FROM (SELECT served_s FROM queue_service_times \
         WHERE service = ?1 ORDER BY id DESC LIMIT 20)",
        )?
        .query_row([service], |r| r.get(0))?;
    Ok(avg.unwrap_or(cfg.queue.default_service_time.as_secs_f64()))
}
