//! The roll-ups: daily figures (and hourly arrivals) kept long after the raw rows and the
//! outbox are pruned, filled by a durable consumer of the events the other modules already
//! emit. Each event counts on the business day of its domain time (`at`, which the ticket
//! events carry), or else of its commit time.
//!
//! | table | one row per | from |
//! |---|---|---|
//! | `stats_tickets` | day, service | `ticket.issued/called/served/no_show` (waits as a 30 s histogram) |
//! | `stats_arrivals` | day, hour, service | `ticket.issued` |
//! | `stats_counters` | day, counter, service | `ticket.served` |
//! | `stats_txns` | day, STM, type | `device.transaction` |
//! | `stats_vouchers` | day, STM, kind | `device.consumable_used` |
//! | `stats_cash` | day, STM | `device.status` (the cycle's deposited/dispensed counters, differenced) |
//! | `stats_cash_cassettes` | day, STM, cassette | `device.status` (notes out and in per cassette) |
//! | `stats_cash_cycles` | STM, clearing cycle | `device.status` (kept when the STM resets its counters) |
//! | `stats_exceptions` | day, STM, module, code | `device.exception`, `device.exception_resolved` |
//! | `stats_steps` | day, step, staff | `order.step` (done) |

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Timelike, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use crate::clock::{business_date, rfc3339};
use crate::config::Config;
use crate::store::{Event, StoreError, Tx};

/// The migrations of the roll-up tables.
pub const STEPS: &[&str] = &[
    // 1: daily roll-ups, hourly arrivals, clearing cycles, open exceptions, the closed days
    //    and the forecasts; the roll-up consumer's position, from now.
    "CREATE TABLE stats_tickets (
         day TEXT NOT NULL,
         service TEXT NOT NULL,
         issued INTEGER NOT NULL DEFAULT 0,
         called INTEGER NOT NULL DEFAULT 0,
         served INTEGER NOT NULL DEFAULT 0,
         no_show INTEGER NOT NULL DEFAULT 0,
         wait_sum_s INTEGER NOT NULL DEFAULT 0,
         wait_max_s INTEGER NOT NULL DEFAULT 0,
         wait_hist TEXT NOT NULL DEFAULT '{}',
         service_sum_s INTEGER NOT NULL DEFAULT 0,
         source TEXT NOT NULL DEFAULT 'live',
         PRIMARY KEY (day, service)
     ) STRICT;
     CREATE TABLE stats_arrivals (
         day TEXT NOT NULL,
         hour INTEGER NOT NULL,
         service TEXT NOT NULL,
         issued INTEGER NOT NULL DEFAULT 0,
         PRIMARY KEY (day, hour, service)
     ) STRICT;
     CREATE TABLE stats_counters (
         day TEXT NOT NULL,
         counter TEXT NOT NULL,
         service TEXT NOT NULL,
         served INTEGER NOT NULL DEFAULT 0,
         service_sum_s INTEGER NOT NULL DEFAULT 0,
         PRIMARY KEY (day, counter, service)
     ) STRICT;
     CREATE TABLE stats_txns (
         day TEXT NOT NULL,
         device_id TEXT NOT NULL,
         txn_type TEXT NOT NULL,
         count INTEGER NOT NULL DEFAULT 0,
         ok INTEGER NOT NULL DEFAULT 0,
         amount INTEGER NOT NULL DEFAULT 0,
         duration_sum_s INTEGER NOT NULL DEFAULT 0,
         PRIMARY KEY (day, device_id, txn_type)
     ) STRICT;
     CREATE TABLE stats_vouchers (
         day TEXT NOT NULL,
         device_id TEXT NOT NULL,
         item TEXT NOT NULL,
         used INTEGER NOT NULL DEFAULT 0,
         PRIMARY KEY (day, device_id, item)
     ) STRICT;
     CREATE TABLE stats_cash (
         day TEXT NOT NULL,
         device_id TEXT NOT NULL,
         deposited INTEGER NOT NULL DEFAULT 0,
         dispensed INTEGER NOT NULL DEFAULT 0,
         PRIMARY KEY (day, device_id)
     ) STRICT;
     CREATE TABLE stats_cash_cassettes (
         day TEXT NOT NULL,
         device_id TEXT NOT NULL,
         cassette TEXT NOT NULL,
         denom INTEGER NOT NULL,
         notes_out INTEGER NOT NULL DEFAULT 0,
         notes_in INTEGER NOT NULL DEFAULT 0,
         PRIMARY KEY (day, device_id, cassette)
     ) STRICT;
     CREATE TABLE stats_cash_cycles (
         device_id TEXT NOT NULL,
         cycle_id TEXT NOT NULL,
         started_at TEXT NOT NULL,
         updated_at TEXT NOT NULL,
         deposited INTEGER NOT NULL DEFAULT 0,
         dispensed INTEGER NOT NULL DEFAULT 0,
         cassettes TEXT NOT NULL DEFAULT '{}',
         PRIMARY KEY (device_id, cycle_id)
     ) STRICT;
     CREATE TABLE stats_exceptions (
         day TEXT NOT NULL,
         device_id TEXT NOT NULL,
         module TEXT NOT NULL,
         code TEXT NOT NULL,
         raised INTEGER NOT NULL DEFAULT 0,
         resolved INTEGER NOT NULL DEFAULT 0,
         resolve_sum_s INTEGER NOT NULL DEFAULT 0,
         resolve_max_s INTEGER NOT NULL DEFAULT 0,
         PRIMARY KEY (day, device_id, module, code)
     ) STRICT;
     CREATE TABLE stats_open_exceptions (
         exception_id INTEGER PRIMARY KEY,
         device_id TEXT NOT NULL,
         code TEXT NOT NULL,
         raised_at TEXT NOT NULL
     ) STRICT;
     CREATE TABLE stats_steps (
         day TEXT NOT NULL,
         step TEXT NOT NULL,
         staff TEXT NOT NULL,
         done INTEGER NOT NULL DEFAULT 0,
         duration_sum_s INTEGER NOT NULL DEFAULT 0,
         duration_max_s INTEGER NOT NULL DEFAULT 0,
         sla_s INTEGER NOT NULL DEFAULT 0,
         overdue INTEGER NOT NULL DEFAULT 0,
         PRIMARY KEY (day, step, staff)
     ) STRICT;
     CREATE TABLE stats_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
     -- The roll-ups count every event committed from their creation on.
     INSERT INTO followers(name, seq)
         SELECT 'stats.rollup', CAST(value AS INTEGER) FROM meta WHERE key = 'event_seq';",
];

/// The durable consumer that keeps the roll-ups.
pub const CONSUMER: &str = "stats.rollup";

/// Width of a wait histogram bucket.
pub const WAIT_BUCKET_S: i64 = 30;

/// Whether the roll-ups count `ev`.
pub fn wants(ev: &Event) -> bool {
    matches!(
        ev.kind.as_str(),
        "ticket.issued"
            | "ticket.called"
            | "ticket.served"
            | "ticket.no_show"
            | "device.transaction"
            | "device.consumable_used"
            | "device.status"
            | "device.exception"
            | "device.exception_resolved"
            | "order.step"
    )
}

fn s<'a>(ev: &'a Event, key: &str) -> &'a str {
    ev.data.get(key).and_then(Value::as_str).unwrap_or("")
}

fn i(ev: &Event, key: &str) -> i64 {
    ev.data.get(key).and_then(Value::as_i64).unwrap_or(0)
}

/// The exception's module: the first word of its code (`CASH_JAM` → `cash`).
pub fn module_of(code: &str) -> String {
    code.split(['_', '-'])
        .next()
        .unwrap_or(code)
        .to_ascii_lowercase()
}

/// Count `ev` in the roll-ups of its business day.
pub fn apply(tx: &mut Tx<'_>, cfg: &Config, ev: &Event) -> Result<(), StoreError> {
    let at = ev
        .data
        .get("at")
        .and_then(Value::as_str)
        .and_then(crate::clock::parse)
        .unwrap_or(ev.ts);
    let day = business_date(cfg, at).to_string();
    let c = tx.conn();
    match ev.kind.as_str() {
        "ticket.issued" => {
            let service = s(ev, "service");
            bump_tickets(c, &day, service, "issued = issued + 1")?;
            let hour = at.with_timezone(&cfg.branch.utc_offset).hour();
            c.execute(
                "INSERT INTO stats_arrivals(day, hour, service, issued) VALUES (?1, ?2, ?3, 1) \
                 ON CONFLICT DO UPDATE SET issued = issued + 1",
                params![day, hour, service],
            )?;
        }
        "ticket.called" => {
            let service = s(ev, "service");
            let wait = i(ev, "waited_s").max(0);
            bump_tickets(c, &day, service, "called = called + 1")?;
            let hist: String = c.query_row(
                "SELECT wait_hist FROM stats_tickets WHERE day = ?1 AND service = ?2",
                params![day, service],
                |r| r.get(0),
            )?;
            let mut hist: BTreeMap<i64, i64> = serde_json::from_str::<BTreeMap<String, i64>>(&hist)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| k.parse().ok().map(|k| (k, v)))
                .collect();
            *hist.entry(wait / WAIT_BUCKET_S).or_default() += 1;
            c.execute(
                "UPDATE stats_tickets SET wait_sum_s = wait_sum_s + ?3, \
                 wait_max_s = max(wait_max_s, ?3), wait_hist = ?4 WHERE day = ?1 AND service = ?2",
                params![day, service, wait, hist_json(&hist)],
            )?;
        }
        "ticket.served" => {
            let service = s(ev, "service");
            let took = i(ev, "service_s").max(0);
            bump_tickets(c, &day, service, "served = served + 1")?;
            c.execute(
                "UPDATE stats_tickets SET service_sum_s = service_sum_s + ?3 \
                 WHERE day = ?1 AND service = ?2",
                params![day, service, took],
            )?;
            c.execute(
                "INSERT INTO stats_counters(day, counter, service, served, service_sum_s) \
                 VALUES (?1, ?2, ?3, 1, ?4) ON CONFLICT DO UPDATE SET served = served + 1, \
                 service_sum_s = service_sum_s + excluded.service_sum_s",
                params![day, s(ev, "counter"), service, took],
            )?;
        }
        "ticket.no_show" => bump_tickets(c, &day, s(ev, "service"), "no_show = no_show + 1")?,
        "device.transaction" => {
            let ok = ev.data.get("ok").and_then(Value::as_bool).unwrap_or(false);
            c.execute(
                "INSERT INTO stats_txns(day, device_id, txn_type, count, ok, amount, duration_sum_s) \
                 VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6) ON CONFLICT DO UPDATE SET count = count + 1, \
                 ok = ok + excluded.ok, amount = amount + excluded.amount, \
                 duration_sum_s = duration_sum_s + excluded.duration_sum_s",
                params![
                    day,
                    s(ev, "device_id"),
                    non_empty(s(ev, "txn_type"), "other"),
                    i64::from(ok),
                    if ok { i(ev, "amount") } else { 0 },
                    i(ev, "duration_s").max(0)
                ],
            )?;
        }
        "device.consumable_used" => {
            c.execute(
                "INSERT INTO stats_vouchers(day, device_id, item, used) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT DO UPDATE SET used = used + excluded.used",
                params![
                    day,
                    s(ev, "device_id"),
                    s(ev, "item"),
                    i(ev, "count").max(0)
                ],
            )?;
        }
        "device.status" => {
            if let Some(cash) = ev.data.get("cash").filter(|c| c.is_object()) {
                cash_status(c, &day, s(ev, "device_id"), cash, ev.ts)?;
            }
        }
        "device.exception" => {
            let code = s(ev, "code");
            c.execute(
                "INSERT INTO stats_open_exceptions(exception_id, device_id, code, raised_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![
                    i(ev, "exception_id"),
                    s(ev, "device_id"),
                    code,
                    rfc3339(ev.ts)
                ],
            )?;
            c.execute(
                "INSERT INTO stats_exceptions(day, device_id, module, code, raised) \
                 VALUES (?1, ?2, ?3, ?4, 1) ON CONFLICT DO UPDATE SET raised = raised + 1",
                params![day, s(ev, "device_id"), module_of(code), code],
            )?;
        }
        "device.exception_resolved" => {
            let id = i(ev, "exception_id");
            let open: Option<(String, String, String)> = c
                .query_row(
                    "SELECT device_id, code, raised_at FROM stats_open_exceptions \
                     WHERE exception_id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            // An exception raised before the roll-ups existed has no start: not counted.
            if let Some((device, code, raised_at)) = open {
                let took =
                    crate::clock::parse(&raised_at).map_or(0, |t| (ev.ts - t).num_seconds().max(0));
                c.execute(
                    "INSERT INTO stats_exceptions(day, device_id, module, code, resolved, \
                     resolve_sum_s, resolve_max_s) VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5) \
                     ON CONFLICT DO UPDATE SET resolved = resolved + 1, \
                     resolve_sum_s = resolve_sum_s + excluded.resolve_sum_s, \
                     resolve_max_s = max(resolve_max_s, excluded.resolve_max_s)",
                    params![day, device, module_of(&code), code, took],
                )?;
                c.execute(
                    "DELETE FROM stats_open_exceptions WHERE exception_id = ?1",
                    [id],
                )?;
            }
        }
        "order.step" if s(ev, "state") == "done" => {
            let took = i(ev, "duration_s").max(0);
            let sla = i(ev, "sla_s");
            c.execute(
                "INSERT INTO stats_steps(day, step, staff, done, duration_sum_s, duration_max_s, \
                 sla_s, overdue) VALUES (?1, ?2, ?3, 1, ?4, ?4, ?5, ?6) \
                 ON CONFLICT DO UPDATE SET done = done + 1, \
                 duration_sum_s = duration_sum_s + excluded.duration_sum_s, \
                 duration_max_s = max(duration_max_s, excluded.duration_max_s), \
                 sla_s = excluded.sla_s, overdue = overdue + excluded.overdue",
                params![
                    day,
                    s(ev, "step"),
                    s(ev, "by"),
                    took,
                    sla,
                    i64::from(took > sla)
                ],
            )?;
        }
        _ => {}
    }
    Ok(())
}

fn non_empty<'a>(v: &'a str, or: &'a str) -> &'a str {
    if v.is_empty() { or } else { v }
}

fn bump_tickets(c: &Connection, day: &str, service: &str, set: &str) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO stats_tickets(day, service) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![day, service],
    )?;
    c.execute(
        &format!("UPDATE stats_tickets SET {set} WHERE day = ?1 AND service = ?2"),
        params![day, service],
    )?;
    Ok(())
}

/// A wait histogram as stored: `{"bucket": count}`.
pub fn hist_json(h: &BTreeMap<i64, i64>) -> String {
    let m: serde_json::Map<String, Value> =
        h.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    Value::Object(m).to_string()
}

/// Read a stored wait histogram.
pub fn hist_parse(s: &str) -> BTreeMap<i64, i64> {
    serde_json::from_str::<BTreeMap<String, i64>>(s)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| k.parse().ok().map(|k| (k, v)))
        .collect()
}

/// The `q`-quantile of a wait histogram, as the middle of its bucket (None when empty).
pub fn hist_quantile(h: &BTreeMap<i64, i64>, q: f64) -> Option<i64> {
    let total: i64 = h.values().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as i64).max(1);
    let mut seen = 0;
    for (b, n) in h {
        seen += n;
        if seen >= rank {
            return Some(b * WAIT_BUCKET_S + WAIT_BUCKET_S / 2);
        }
    }
    None
}

/// One cassette within a clearing cycle.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct CycleCassette {
    /// Note value, yuan.
    pub denom: i64,
    /// Notes at the cycle's first status.
    pub start: i64,
    /// Notes now.
    pub count: i64,
    /// Notes taken out during the cycle.
    pub notes_out: i64,
    /// Notes put in during the cycle (recycling, deposits).
    pub notes_in: i64,
}

/// A `device.status` with cash: the clearing cycle's counters differenced into the day's
/// deposited and dispensed (a new cycle, or counters that went down, start from zero), and
/// each cassette's note count differenced into notes out and in.
fn cash_status(
    c: &Connection,
    day: &str,
    device: &str,
    cash: &Value,
    ts: DateTime<Utc>,
) -> Result<(), StoreError> {
    let cycle = cash
        .get("cycle_id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let deposited = cash.get("deposited").and_then(Value::as_i64).unwrap_or(0);
    let dispensed = cash.get("dispensed").and_then(Value::as_i64).unwrap_or(0);
    let prev: Option<(i64, i64, String)> = c
        .query_row(
            "SELECT deposited, dispensed, cassettes FROM stats_cash_cycles \
             WHERE device_id = ?1 AND cycle_id = ?2",
            params![device, cycle],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let (d_in, d_out, mut cassettes) = match &prev {
        Some((p_in, p_out, cs)) => (
            if deposited >= *p_in {
                deposited - p_in
            } else {
                deposited
            },
            if dispensed >= *p_out {
                dispensed - p_out
            } else {
                dispensed
            },
            serde_json::from_str::<BTreeMap<String, CycleCassette>>(cs).unwrap_or_default(),
        ),
        None => (deposited, dispensed, BTreeMap::new()),
    };
    for k in cash
        .get("cassettes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = k
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let denom = k.get("denom").and_then(Value::as_i64).unwrap_or(0);
        let count = k.get("count").and_then(Value::as_i64).unwrap_or(0);
        let e = cassettes.entry(id.clone()).or_insert(CycleCassette {
            denom,
            start: count,
            count,
            ..CycleCassette::default()
        });
        let (out, inn) = if count < e.count {
            (e.count - count, 0)
        } else {
            (0, count - e.count)
        };
        e.count = count;
        e.denom = denom;
        e.notes_out += out;
        e.notes_in += inn;
        if out > 0 || inn > 0 {
            c.execute(
                "INSERT INTO stats_cash_cassettes(day, device_id, cassette, denom, notes_out, \
                 notes_in) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO UPDATE SET \
                 denom = excluded.denom, notes_out = notes_out + excluded.notes_out, \
                 notes_in = notes_in + excluded.notes_in",
                params![day, device, id, denom, out, inn],
            )?;
        }
    }
    let now = rfc3339(ts);
    c.execute(
        "INSERT INTO stats_cash_cycles(device_id, cycle_id, started_at, updated_at, deposited, \
         dispensed, cassettes) VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6) \
         ON CONFLICT DO UPDATE SET updated_at = excluded.updated_at, \
         deposited = excluded.deposited, dispensed = excluded.dispensed, \
         cassettes = excluded.cassettes",
        params![
            device,
            cycle,
            now,
            deposited,
            dispensed,
            serde_json::to_string(&cassettes)?
        ],
    )?;
    if d_in > 0 || d_out > 0 {
        c.execute(
            "INSERT INTO stats_cash(day, device_id, deposited, dispensed) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT DO UPDATE SET deposited = deposited + excluded.deposited, \
             dispensed = dispensed + excluded.dispensed",
            params![day, device, d_in, d_out],
        )?;
    }
    Ok(())
}

/// The tables holding one row per day (pruned by age).
const DAILY_TABLES: &[&str] = &[
    "stats_tickets",
    "stats_arrivals",
    "stats_counters",
    "stats_txns",
    "stats_vouchers",
    "stats_cash",
    "stats_cash_cassettes",
    "stats_exceptions",
    "stats_steps",
];

/// Delete roll-ups older than `[stats] keep_days` before `today` (and clearing cycles not
/// updated since); returns how many rows went.
pub fn prune(c: &Connection, cfg: &Config, today: chrono::NaiveDate) -> Result<usize, StoreError> {
    let before = today - Duration::days(i64::from(cfg.stats.keep_days));
    let day = before.to_string();
    let mut n = 0;
    for t in DAILY_TABLES {
        n += c.execute(&format!("DELETE FROM {t} WHERE day < ?1"), [&day])?;
    }
    n += c.execute(
        "DELETE FROM stats_cash_cycles WHERE updated_at < ?1",
        [format!("{day}T00:00:00.000Z")],
    )?;
    Ok(n)
}

/// A value kept in `stats_meta`.
pub fn meta_get(c: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(
        c.query_row("SELECT value FROM stats_meta WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?,
    )
}

/// Keep a value in `stats_meta`.
pub fn meta_set(c: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO stats_meta(key, value) VALUES (?1, ?2) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_wait_histogram_are_bucket_middles() {
        let mut h = BTreeMap::new();
        // 10 waits of 0–29 s, 8 of 60–89 s, 2 of 600–629 s.
        h.insert(0, 10);
        h.insert(2, 8);
        h.insert(20, 2);
        assert_eq!(hist_quantile(&h, 0.5), Some(15));
        assert_eq!(hist_quantile(&h, 0.9), Some(75));
        assert_eq!(hist_quantile(&h, 1.0), Some(615));
        assert_eq!(hist_quantile(&BTreeMap::new(), 0.5), None);
        assert_eq!(hist_parse(&hist_json(&h)), h);
    }

    #[test]
    fn an_exception_module_is_the_first_word_of_its_code() {
        for (code, module) in [
            ("CASH_JAM", "cash"),
            ("CARD-STUCK", "card"),
            ("PRINTER", "printer"),
        ] {
            assert_eq!(module_of(code), module, "{code}");
        }
    }
}
