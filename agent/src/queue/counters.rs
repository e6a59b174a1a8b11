//! Counter sessions: a counter is open while a member of staff sits at it. Only an open
//! counter calls tickets, and the wait estimates count the open counters.
//!
//! - Opening an open counter by the staff member already on it changes nothing (no event);
//!   by anyone else it is refused (`CounterBusy`): the counter is closed first, so that a
//!   hand-over is two announced steps and never a silent change of who serves.
//! - A counter with a called ticket not yet finished cannot close (`CounterHasTicket`): the
//!   ticket is served, skipped or transferred first, so no customer is left called to an
//!   empty counter. Closing a closed counter changes nothing.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use super::tickets::QueueError;
use crate::clock::rfc3339;
use crate::config::Config;
use crate::store::Tx;

/// Who is at an open counter, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// The staff member's user name.
    pub staff: String,
    /// When the counter opened.
    pub since: String,
}

/// A counter after an open or close.
#[derive(Debug, Clone, Serialize)]
pub struct CounterState {
    /// Counter id.
    pub counter: String,
    /// Open for calls.
    pub open: bool,
    /// Who is at it (an open counter), or was (a counter just closed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staff: Option<String>,
    /// When it opened (an open counter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Tickets served during the session just closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served: Option<u64>,
    /// Whether this call changed anything (an event was committed).
    pub changed: bool,
}

fn known(cfg: &Config, counter: &str) -> Result<(), QueueError> {
    if cfg.counters.iter().any(|k| k.id == counter) {
        Ok(())
    } else {
        Err(QueueError::UnknownCounter(counter.to_string()))
    }
}

/// The open counters, by id.
pub fn open_sessions(c: &Connection) -> Result<HashMap<String, Session>, QueueError> {
    let mut stmt = c.prepare_cached(
        "SELECT counter, staff, opened_at FROM queue_counter_sessions WHERE closed_at IS NULL",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Session {
                staff: r.get(1)?,
                since: r.get(2)?,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The session of `counter`, if it is open.
pub fn session(c: &Connection, counter: &str) -> Result<Option<(i64, Session)>, QueueError> {
    Ok(c.prepare_cached(
        "SELECT id, staff, opened_at FROM queue_counter_sessions \
         WHERE counter = ?1 AND closed_at IS NULL",
    )?
    .query_row([counter], |r| {
        Ok((
            r.get(0)?,
            Session {
                staff: r.get(1)?,
                since: r.get(2)?,
            },
        ))
    })
    .optional()?)
}

/// Refuse a call at a counter that is not open.
pub fn ensure_open(c: &Connection, cfg: &Config, counter: &str) -> Result<Session, QueueError> {
    known(cfg, counter)?;
    session(c, counter)?
        .map(|(_, s)| s)
        .ok_or_else(|| QueueError::CounterClosed(counter.to_string()))
}

/// Open `counter` with `staff` at it (`counter.opened`).
pub fn open(
    tx: &mut Tx<'_>,
    cfg: &Config,
    now: DateTime<Utc>,
    counter: &str,
    staff: &str,
) -> Result<CounterState, QueueError> {
    known(cfg, counter)?;
    if !crate::users::is_active(tx.conn(), staff)? {
        return Err(QueueError::UnknownStaff(staff.to_string()));
    }
    if let Some((_, s)) = session(tx.conn(), counter)? {
        if s.staff == staff {
            return Ok(CounterState {
                counter: counter.to_string(),
                open: true,
                staff: Some(s.staff),
                since: Some(s.since),
                served: None,
                changed: false,
            });
        }
        return Err(QueueError::CounterBusy {
            counter: counter.to_string(),
            staff: s.staff,
        });
    }
    let at = rfc3339(now);
    tx.conn()
        .prepare_cached(
            "INSERT INTO queue_counter_sessions(counter, staff, opened_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![counter, staff, at])?;
    tx.emit(
        "counter.opened",
        json!({"counter": counter, "staff": staff, "at": at}),
    )?;
    Ok(CounterState {
        counter: counter.to_string(),
        open: true,
        staff: Some(staff.to_string()),
        since: Some(at),
        served: None,
        changed: true,
    })
}

/// Close `counter` (`counter.closed`, with the tickets served since it opened).
pub fn close(
    tx: &mut Tx<'_>,
    cfg: &Config,
    now: DateTime<Utc>,
    counter: &str,
) -> Result<CounterState, QueueError> {
    known(cfg, counter)?;
    let Some((id, s)) = session(tx.conn(), counter)? else {
        return Ok(CounterState {
            counter: counter.to_string(),
            open: false,
            staff: None,
            since: None,
            served: None,
            changed: false,
        });
    };
    let called: Option<String> = tx
        .conn()
        .prepare_cached(
            "SELECT number FROM queue_tickets WHERE state = 'called' AND counter = ?1 \
             ORDER BY id LIMIT 1",
        )?
        .query_row([counter], |r| r.get(0))
        .optional()?;
    if let Some(number) = called {
        return Err(QueueError::CounterHasTicket {
            counter: counter.to_string(),
            number,
        });
    }
    let served: i64 = tx
        .conn()
        .prepare_cached(
            "SELECT count(*) FROM queue_tickets WHERE state = 'served' AND counter = ?1 \
         AND finished_at >= ?2",
        )?
        .query_row(params![counter, s.since], |r| r.get(0))?;
    let at = rfc3339(now);
    tx.conn()
        .prepare_cached(
            "UPDATE queue_counter_sessions SET closed_at = ?1, served = ?2 WHERE id = ?3",
        )?
        .execute(params![at, served, id])?;
    tx.emit(
        "counter.closed",
        json!({"counter": counter, "staff": s.staff, "served": served, "at": at}),
    )?;
    Ok(CounterState {
        counter: counter.to_string(),
        open: false,
        staff: Some(s.staff),
        since: None,
        served: Some(served as u64),
        changed: true,
    })
}
