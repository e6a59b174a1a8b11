//! Every queue operation, each one transaction that commits the change together with its
//! `ticket.*` event.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::Serialize;
use serde_json::{Value, json};

use super::order::{EstimateBasis, ordered};
use super::policy::{self, Why};
use super::tickets::{
    IssueRequest, QueueError, Ticket, TicketState, call_state, find, open_tickets_tx,
    set_call_state,
};
use crate::alerts;
use crate::clock::{business_day, rfc3339};
use crate::config::{Config, Service};
use crate::store::Tx;

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
    pub state: TicketState,
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

pub(super) fn view(t: &Ticket, now: DateTime<Utc>, call: Option<Value>) -> TicketView {
    TicketView {
        number: t.number.clone(),
        service: t.service.clone(),
        state: t.state,
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
    /// Which counters the estimate counts.
    pub estimate_basis: EstimateBasis,
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

pub(super) fn is_open(cfg: &Config, s: &Service, now: DateTime<Utc>) -> Result<(), QueueError> {
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
    if let Some(v) = v
        && (v.is_empty() || v.len() > 64 || v.chars().any(char::is_control))
    {
        return Err(QueueError::Invalid(format!(
            "{what} must be 1 to 64 printable characters"
        )));
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
        (None, Some(id)) => crate::vips::queue_level(tx.conn(), id)?,
        (None, None) => None,
    };
    let tier = match &level {
        Some(l) => crate::vips::tier(l)?,
        None => None,
    };
    let priority = tier
        .unwrap_or(0)
        .max(u8::from(req.appointment_id.is_some()));
    let day = business_day(cfg, now);
    let n: i64 = tx
        .conn()
        .prepare_cached(
            "INSERT INTO queue_numbers(service, day, last) VALUES (?1, ?2, 1) \
         ON CONFLICT(service, day) DO UPDATE SET last = last + 1 RETURNING last",
        )?
        .query_row(params![svc.code, day], |r| r.get(0))?;
    let number = format!(
        "{}{:0width$}",
        svc.prefix,
        n,
        width = usize::from(svc.number_width)
    );
    let visit_id = format!("{:032x}", rand::random::<u128>());
    tx.conn()
        .prepare_cached(
            "INSERT INTO queue_tickets(number, day, service, state, priority, customer_level, \
         customer_id, appointment_id, source, issued_at, visit_id) \
         VALUES (?1, ?2, ?3, 'waiting', ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            number,
            day,
            svc.code,
            i64::from(priority),
            level,
            req.customer_id,
            req.appointment_id,
            req.source.as_str(),
            rfc3339(now),
            visit_id
        ])?;
    let open = open_tickets_tx(tx, &day)?;
    let list = ordered(tx.conn(), cfg, now, &open[..], None)?;
    let me = (0..list.len())
        .rev()
        .find(|&i| list.ticket(i).number == number)
        .map(|i| list.view(i))
        .ok_or_else(|| QueueError::UnknownTicket(number.clone()))?;
    let mut data = json!({
        "number": number,
        "service": svc.code,
        "priority": priority,
        "position": me.position,
        "estimated_wait_s": me.estimated_wait_s,
        "source": req.source.as_str(),
        "at": rfc3339(now),
        "visit_id": visit_id,
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
    Ok(Issued {
        number,
        service: svc.code.clone(),
        position: me.position,
        people_ahead: me.position - 1,
        estimated_wait_s: me.estimated_wait_s,
        estimate_basis: me.estimate_basis,
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
    tx.conn()
        .prepare_cached("UPDATE queue_tickets SET printed = ?1 WHERE id = ?2")?
        .execute(params![i64::from(printed || t.printed), t.id])?;
    let mut data = t.journey(json!({"number": number, "service": t.service, "printed": printed}));
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
    tx.conn()
        .prepare_cached(
            "UPDATE queue_tickets SET state = 'served', finished_at = ?1 WHERE id = ?2",
        )?
        .execute(params![rfc3339(now), t.id])?;
    tx.conn()
        .prepare_cached(
            "INSERT INTO queue_service_times(service, served_s, ts) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![t.service, service_s, rfc3339(now)])?;
    tx.emit(
        "ticket.served",
        t.journey(
            json!({"number": t.number, "service": t.service, "counter": t.counter,
               "service_s": service_s.round() as u64,
               "waited_s": policy::waited_s(t.issued_at, called), "at": rfc3339(now)}),
        ),
    )?;
    let mut t = t.clone();
    t.state = TicketState::Served;
    Ok(view(&t, now, None))
}

/// Call the best ticket for an open counter. A ticket still at the counter is served first.
pub fn call_next(
    tx: &mut Tx<'_>,
    cfg: &Config,
    now: DateTime<Utc>,
    counter: &str,
) -> Result<TicketView, QueueError> {
    super::counters::ensure_open(tx.conn(), cfg, counter)?;
    let day = business_day(cfg, now);
    let open = open_tickets_tx(tx, &day)?;
    let list = ordered(tx.conn(), cfg, now, &open[..], Some(counter))?;
    if list.is_empty() {
        return Err(QueueError::QueueEmpty(counter.to_string()));
    }
    let next = list.ticket(0).clone();
    if let Some(cur) = open
        .iter()
        .find(|t| t.state == TicketState::Called && t.counter.as_deref() == Some(counter))
    {
        served(tx, cur, now)?;
    }
    let state = call_state(tx.conn())?.after_call(next.priority);
    set_call_state(tx.conn(), state)?;
    tx.conn()
        .prepare_cached(
            "UPDATE queue_tickets SET state = 'called', counter = ?1, called_at = ?2, recalls = 0 \
         WHERE id = ?3",
        )?
        .execute(params![counter, rfc3339(now), next.id])?;
    clear_wait_alerts(tx, &next)?;
    let text = call_text(&next.number, counter);
    let waited = policy::waited_s(next.issued_at, now);
    tx.emit(
        "ticket.called",
        next.journey(
            json!({"number": next.number, "service": next.service, "counter": counter,
               "priority": next.priority, "waited_s": waited, "call_text": text,
               "at": rfc3339(now)}),
        ),
    )?;
    let mut t = next;
    t.state = TicketState::Called;
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
    if t.state != TicketState::Called {
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
        tx.conn()
            .prepare_cached(
                "UPDATE queue_tickets SET state = 'no_show', finished_at = ?1 WHERE id = ?2",
            )?
            .execute(params![rfc3339(now), t.id])?;
        tx.emit(
            "ticket.no_show",
            t.journey(
                json!({"number": t.number, "service": t.service, "counter": counter,
                   "recalls": t.recalls, "at": rfc3339(now)}),
            ),
        )?;
        t.state = TicketState::NoShow;
        return Ok(view(&t, now, None));
    }
    t.recalls += 1;
    tx.conn()
        .prepare_cached("UPDATE queue_tickets SET recalls = ?1 WHERE id = ?2")?
        .execute(params![i64::from(t.recalls), t.id])?;
    let text = call_text(&t.number, &counter);
    tx.emit(
        "ticket.recalled",
        t.journey(
            json!({"number": t.number, "service": t.service, "counter": counter,
               "recalls": t.recalls, "call_text": text}),
        ),
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
    let state = if no_show {
        TicketState::NoShow
    } else {
        TicketState::Skipped
    };
    tx.conn()
        .prepare_cached("UPDATE queue_tickets SET state = ?1, finished_at = ?2 WHERE id = ?3")?
        .execute(params![state, rfc3339(now), t.id])?;
    tx.emit(
        if no_show {
            "ticket.no_show"
        } else {
            "ticket.skipped"
        },
        t.journey(
            json!({"number": t.number, "service": t.service, "counter": t.counter,
               "recalls": t.recalls, "at": rfc3339(now)}),
        ),
    )?;
    t.state = state;
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
    if !t.state.is_open() {
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
    tx.conn()
        .prepare_cached(
            "UPDATE queue_tickets SET state = 'waiting', service = ?1, target_counter = ?2, \
         transferred_from = ?3, priority = ?4, counter = NULL, called_at = NULL, recalls = 0, \
         moved_pos = NULL, moved_calls = NULL, moved_at = NULL, moved_by = NULL, \
         moved_reason = NULL WHERE id = ?5",
        )?
        .execute(params![service, counter, from, i64::from(priority), t.id])?;
    tx.emit(
        "ticket.transferred",
        t.journey(
            json!({"number": t.number, "from_service": from, "service": service,
               "counter": counter, "priority": priority}),
        ),
    )?;
    t.state = TicketState::Waiting;
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
    if t.state != TicketState::Waiting {
        return Err(QueueError::WrongState {
            number: t.number,
            state: t.state,
            needed: "only a waiting ticket can be moved",
        });
    }
    let open = open_tickets_tx(tx, &day)?;
    let list = ordered(tx.conn(), cfg, now, &open[..], None)?;
    if position == 0 || position as usize > list.len() {
        return Err(QueueError::BadPosition {
            position,
            len: list.len(),
        });
    }
    if let Some(r) = reason
        && r.chars().count() > 200
    {
        return Err(QueueError::Invalid(
            "reason must be at most 200 characters".into(),
        ));
    }
    let from = list.index_of(t.id).map_or(0, |i| i + 1);
    let calls = call_state(tx.conn())?.calls;
    tx.conn()
        .prepare_cached(
            "UPDATE queue_tickets SET moved_pos = ?1, moved_calls = ?2, moved_at = ?3, \
         moved_by = ?4, moved_reason = ?5 WHERE id = ?6",
        )?
        .execute(params![
            i64::from(position),
            calls as i64,
            rfc3339(now),
            by,
            reason,
            t.id
        ])?;
    let detail = json!({"from": from, "to": position, "reason": reason});
    crate::users::audit(tx, Some(by), "ticket.move", Some(&t.number), Some(&detail))?;
    tx.emit(
        "ticket.moved",
        t.journey(
            json!({"number": t.number, "service": t.service, "from": from,
               "position": position, "by": by, "reason": reason}),
        ),
    )?;
    Ok(view(&t, now, None))
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
            source: super::super::Source::Pad,
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
        let store = Store::open(&path, crate::modules::SCHEMAS).unwrap();
        assert_eq!(issue_at(&store, at(10, 0)), "A001");
        assert_eq!(issue_at(&store, at(19, 0)), "A002");
        store.close();
        let store = Store::open(&path, crate::modules::SCHEMAS).unwrap();
        assert_eq!(issue_at(&store, at(19, 59)), "A003");
        assert_eq!(issue_at(&store, at(20, 0)), "A001", "a new business day");
        store.close();
    }

    #[test]
    fn outside_opening_hours_no_ticket_is_issued_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("q.db"), crate::modules::SCHEMAS).unwrap();
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

    #[test]
    fn the_writers_memo_of_open_tickets_is_always_what_the_database_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let store = Store::open(&path, crate::modules::SCHEMAS).unwrap();
        let c = cfg("");
        // The memo and a fresh read of the same day, in one transaction.
        let memo_vs_db = |t: DateTime<Utc>| {
            let c = c.clone();
            store
                .write_blocking(move |tx| -> Result<_, QueueError> {
                    let day = business_day(&c, t);
                    let memo = open_tickets_tx(tx, &day)?;
                    Ok((
                        (*memo).clone(),
                        super::super::tickets::open_tickets(tx.conn(), &day)?,
                    ))
                })
                .unwrap()
        };
        let sql = |q: &'static str| {
            store
                .write_blocking(move |tx| -> Result<_, QueueError> {
                    Ok(tx.conn().execute(q, [])?)
                })
                .unwrap()
        };
        for _ in 0..3 {
            let c = c.clone();
            store
                .write_blocking(move |tx| issue(tx, &c, at(2, 0), &req()))
                .unwrap();
        }
        let (memo, db) = memo_vs_db(at(2, 0));
        assert_eq!(memo.len(), 3);
        assert_eq!(memo, db, "after three issues");

        // Another part of the daemon changes a ticket without the memo.
        assert_eq!(
            sql("UPDATE queue_tickets SET state = 'served' WHERE number = 'A001'"),
            1
        );
        let (memo, db) = memo_vs_db(at(2, 0));
        assert_eq!(memo.len(), 2);
        assert_eq!(memo, db, "after a change by other code");

        // A ticket issued in a transaction that then fails is not in the memo.
        let c2 = c.clone();
        let r = store.write_blocking(move |tx| -> Result<(), QueueError> {
            issue(tx, &c2, at(2, 1), &req())?;
            Err(QueueError::Invalid("changed my mind".into()))
        });
        assert!(r.is_err());
        // Nor a change made after the memo was read in a failed transaction.
        let c2 = c.clone();
        let r = store.write_blocking(move |tx| -> Result<(), QueueError> {
            let day = business_day(&c2, at(2, 1));
            assert_eq!(open_tickets_tx(tx, &day)?.len(), 2);
            tx.conn()
                .prepare_cached("UPDATE queue_tickets SET state = 'served' WHERE number = 'A002'")?
                .execute([])?;
            Err(QueueError::Invalid("changed my mind".into()))
        });
        assert!(r.is_err());
        let (memo, db) = memo_vs_db(at(2, 2));
        assert_eq!(memo.len(), 2);
        assert_eq!(memo, db, "after two transactions that did not commit");

        // Another connection (another process) commits a change.
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute(
                "UPDATE queue_tickets SET priority = 3 WHERE number = 'A003'",
                [],
            )
            .unwrap();
        let (memo, db) = memo_vs_db(at(2, 3));
        assert_eq!(
            memo.iter().find(|t| t.number == "A003").unwrap().priority,
            3
        );
        assert_eq!(memo, db, "after a commit by another connection");

        // A new day has no open ticket; the day before is read again when asked for.
        let (memo, db) = memo_vs_db(at(21, 0));
        assert!(memo.is_empty());
        assert_eq!(memo, db, "the next business day");
        let (memo, db) = memo_vs_db(at(2, 4));
        assert_eq!(memo.len(), 2);
        assert_eq!(memo, db, "back to the first day");
        store.close();
    }
}
