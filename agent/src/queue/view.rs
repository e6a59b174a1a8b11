//! The whole queue as the PAD shows it, and the queue's figures for the statistics and
//! head office's telemetry.

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::Serialize;
use serde_json::{Value, json};

use super::counters::open_sessions;
use super::ops::is_open;
use super::order::{WaitingView, ordered};
use super::policy;
use super::tickets::{QueueError, TicketState, open_tickets};
use crate::clock::{business_day, parse, rfc3339};
use crate::config::Config;
use crate::store::StoreError;

/// A counter and the ticket it is serving.
#[derive(Debug, Clone, Serialize)]
pub struct CounterView {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Services it serves.
    pub services: Vec<String>,
    /// Open for calls (a member of staff is at it).
    pub open: bool,
    /// Who is at it (user name), while open.
    pub staff: Option<String>,
    /// Since when it is open.
    pub since: Option<String>,
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
    /// Open counters serving it.
    pub counters_open: usize,
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
    let waiting: Vec<WaitingView> = ordered(c, cfg, now, &open, None)?.views();
    let sessions = open_sessions(c)?;
    let counters = cfg
        .counters
        .iter()
        .map(|k| CounterView {
            id: k.id.clone(),
            name: k.name.clone(),
            services: k.services.clone(),
            open: sessions.contains_key(&k.id),
            staff: sessions.get(&k.id).map(|s| s.staff.clone()),
            since: sessions.get(&k.id).map(|s| s.since.clone()),
            current: open
                .iter()
                .find(|t| {
                    t.state == TicketState::Called && t.counter.as_deref() == Some(k.id.as_str())
                })
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
                counters_open: cfg
                    .counters
                    .iter()
                    .filter(|k| k.services.contains(&s.code) && sessions.contains_key(&k.id))
                    .count(),
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

/// The queue's part of head office's telemetry: per service, how many wait and the longest
/// wait; how many are at counters; how many counters are open. Numbers only, no customer.
pub fn telemetry(c: &Connection, cfg: &Config, now: DateTime<Utc>) -> Result<Value, StoreError> {
    let day = business_day(cfg, now);
    let mut stmt = c.prepare_cached(
        "SELECT service, count(*), min(issued_at) FROM queue_tickets \
         WHERE day = ?1 AND state = 'waiting' GROUP BY service",
    )?;
    let waiting: Vec<(String, i64, Option<String>)> = stmt
        .query_map([&day], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let serving: i64 = c.query_row(
        "SELECT count(*) FROM queue_tickets WHERE day = ?1 AND state = 'called'",
        [&day],
        |r| r.get(0),
    )?;
    // The open sessions of configured counters (head office's `config.update` may have
    // removed a counter that was open).
    let counters_open = {
        let mut stmt =
            c.prepare_cached("SELECT counter FROM queue_counter_sessions WHERE closed_at IS NULL")?;
        let open: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        open.iter()
            .filter(|id| cfg.counters.iter().any(|k| &k.id == *id))
            .count()
    };
    let services: Vec<Value> = cfg
        .services
        .iter()
        .map(|s| {
            let (n, oldest) = waiting
                .iter()
                .find(|(code, _, _)| *code == s.code)
                .map_or((0, None), |(_, n, o)| (*n, o.as_deref().and_then(parse)));
            json!({"code": s.code, "waiting": n,
                   "longest_wait_s": oldest.map_or(0, |t| policy::waited_s(t, now))})
        })
        .collect();
    Ok(json!({
        "day": day,
        "waiting": waiting.iter().map(|(_, n, _)| n).sum::<i64>(),
        "serving": serving,
        "counters_open": counters_open,
        "services": services,
    }))
}

/// Tickets of business day `day` per configured service (config order, every service even
/// with no ticket): issued, served, average and longest wait until called.
pub fn day_by_service(c: &Connection, cfg: &Config, day: &str) -> Result<Vec<Value>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT service, COUNT(*),
                SUM(state = 'served'),
                AVG(CASE WHEN called_at IS NOT NULL
                    THEN (julianday(called_at) - julianday(issued_at)) * 86400.0 END),
                MAX(CASE WHEN called_at IS NOT NULL
                    THEN (julianday(called_at) - julianday(issued_at)) * 86400.0 END)
         FROM queue_tickets WHERE day = ?1 GROUP BY service",
    )?;
    let mut rows: std::collections::BTreeMap<String, (i64, i64, Option<f64>, Option<f64>)> =
        std::collections::BTreeMap::new();
    for r in stmt.query_map([day], |r| {
        Ok((
            r.get::<_, String>(0)?,
            (
                r.get(1)?,
                r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                r.get(3)?,
                r.get(4)?,
            ),
        ))
    })? {
        let (service, v) = r?;
        rows.insert(service, v);
    }
    Ok(cfg
        .services
        .iter()
        .map(|s| {
            let (issued, served, avg, max) = rows.get(&s.code).copied().unwrap_or_default();
            json!({
                "service": s.code, "name": s.name, "issued": issued, "served": served,
                "avg_wait_s": avg.map(|v| v.round() as i64),
                "max_wait_s": max.map(|v| v.round() as i64),
            })
        })
        .collect())
}
