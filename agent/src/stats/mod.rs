//! Decisions for the branch manager: the day's figures, the figures of any period, the
//! forecasts and the staffing plan.
//!
//! - [`rollup`]: daily roll-ups (and hourly arrivals) kept by a durable consumer of the
//!   events the queue, devices and orders modules already emit; kept `[stats] keep_days`
//!   (≥ 400) however the raw rows and the outbox are pruned.
//! - [`import`]: `branchd history import` of past daily volumes.
//! - [`query`]: any period, by hour, day or week, narrowed to a service, STM, counter or
//!   member of staff.
//! - [`forecast`]: 7 and 30 days ahead with 80% and 95% intervals (MSTL + ETS, seasonal
//!   naive on short history), following the branch's holiday calendar.
//! - [`staffing`]: counters needed per hour and service (Erlang C) beside those planned.
//! - Once a business day has ended: `stats.daily` (aggregates only, no staff names) and the
//!   forecasts recomputed (`forecast.updated`).
//!
//! The day's figures read the current consumables and cassettes through the devices
//! module; everything else comes from this module's own tables.

pub mod demo;
pub mod forecast;
pub mod import;
pub mod query;
pub mod rollup;
pub mod staffing;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};
use rusqlite::{Connection, params};
use serde_json::{Value, json};

use crate::clock::{business_date, business_day, next_business_day, rfc3339};
use crate::config::Config;
use crate::core::Core;
use crate::http::error::ApiError;
use crate::http::{Access, Route, ok_json};
use crate::retention::Bounded;
use crate::store::{Schema, StoreError, Tx};
use crate::users::Role;
use crate::{devices, queue};

/// The roll-up tables.
pub const SCHEMA: Schema = Schema {
    module: "stats",
    steps: rollup::STEPS,
};

/// The roll-ups are pruned by the statistics themselves, past `[stats] keep_days`.
pub const BOUNDED: &[Bounded] = &[
    Bounded {
        table: "stats_tickets",
        why: "pruned past [stats] keep_days",
    },
    Bounded {
        table: "stats_arrivals",
        why: "pruned past [stats] keep_days",
    },
    Bounded {
        table: "stats_counters",
        why: "pruned past [stats] keep_days",
    },
    Bounded {
        table: "stats_txns",
        why: "pruned past [stats] keep_days",
    },
    Bounded {
        table: "stats_vouchers",
        why: "pruned past [stats] keep_days",
    },
    Bounded {
        table: "stats_cash",
        why: "pruned past [stats] keep_days",
    },
    Bounded {
        table: "stats_cash_cassettes",
        why: "pruned past [stats] keep_days",
    },
    Bounded {
        table: "stats_cash_cycles",
        why: "pruned past [stats] keep_days",
    },
    Bounded {
        table: "stats_exceptions",
        why: "pruned past [stats] keep_days",
    },
    Bounded {
        table: "stats_open_exceptions",
        why: "open exceptions only",
    },
    Bounded {
        table: "stats_steps",
        why: "pruned past [stats] keep_days",
    },
    Bounded {
        table: "stats_meta",
        why: "a few keys",
    },
];

/// This module's OpenAPI fragment.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Who reads the statistics.
const READERS: Access = Access::Roles(&[Role::BranchManager, Role::LobbyManager]);

/// Days of history the forecasts learn from, at most.
pub const HISTORY_DAYS: i64 = 365;

/// The statistics' handle.
#[derive(Debug, Clone)]
pub struct Stats {
    core: Core,
}

impl Stats {
    /// The statistics on `core`.
    pub fn new(core: &Core) -> Stats {
        Stats { core: core.clone() }
    }

    /// Keep the roll-ups, and close each business day (`stats.daily`, pruning, forecasts).
    pub fn start(&self) {
        let core = &self.core;
        let cfg = core.cfg.clone();
        core.spawn(crate::store::consume(
            core.store.clone(),
            rollup::CONSUMER,
            core.cancel.clone(),
            rollup::wants,
            move |tx, ev| rollup::apply(tx, &cfg, ev),
        ));
        core.spawn(close_days(core.clone()));
    }

    /// The routes.
    pub fn routes(&self) -> Vec<Route> {
        routes(&self.core)
    }
}

/// How long after a business day begins the previous one is closed (the roll-up consumer
/// has caught up by then).
const CLOSE_AFTER: Duration = Duration::minutes(1);

/// Close each business day as it ends: at start the one before the current day (when the
/// box was counting then and it is not closed yet), then one every day.
async fn close_days(core: Core) {
    loop {
        let now = core.clock.now();
        let cfg = core.cfg.clone();
        let r = core
            .store
            .write(move |tx| close_day(tx, &cfg, now).map(|_| ()))
            .await;
        match r {
            Ok(()) => {}
            Err(StoreError::Closed) => return,
            Err(e) => tracing::warn!(error = %e, "cannot close the business day's statistics"),
        }
        let next = next_business_day(&core.cfg, core.clock.now()) + CLOSE_AFTER;
        let at = core.clock.instant_at(next);
        tokio::select! {
            () = core.cancel.cancelled() => return,
            () = tokio::time::sleep_until(at) => {}
        }
    }
}

/// Days a box catches up on when it was down: `stats.daily` for at most this many.
pub const MAX_CLOSE_BACK: i64 = 31;

/// Close the business days up to the one before `now` not closed yet (the last
/// [`MAX_CLOSE_BACK`] at most): `stats.daily` with each day's aggregates, roll-ups past `keep_days` pruned, forecasts recomputed (`forecast.updated`).
/// Returns whether it was closed now. On a box's first start nothing is closed: the days
/// before it were not counted.
pub fn close_day(tx: &mut Tx<'_>, cfg: &Config, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let today = business_date(cfg, now);
    let day = today - Duration::days(1);
    let done = rollup::meta_get(tx.conn(), "closed_day")?;
    let Some(done) = done else {
        // A box starting for the first time counted none of the days before: its first
        // day to close is today.
        rollup::meta_set(tx.conn(), "closed_day", &day.to_string())?;
        return Ok(false);
    };
    if done.as_str() >= day.to_string().as_str() {
        return Ok(false);
    }
    // Every day not closed yet (the box may have been down), at most the last month.
    let after = NaiveDate::parse_from_str(&done, "%Y-%m-%d")
        .unwrap_or(day - Duration::days(1))
        .max(day - Duration::days(MAX_CLOSE_BACK));
    let mut d = after + Duration::days(1);
    while d <= day {
        let daily = daily_aggregates(tx.conn(), cfg, d)?;
        tx.emit("stats.daily", daily)?;
        d += Duration::days(1);
    }
    rollup::prune(tx.conn(), cfg, today)?;
    rollup::meta_set(tx.conn(), "closed_day", &day.to_string())?;
    let f = forecasts(tx.conn(), cfg, today, 30)?;
    store_forecast(tx, today, now, &f)?;
    Ok(true)
}

fn store_forecast(
    tx: &mut Tx<'_>,
    today: NaiveDate,
    now: DateTime<Utc>,
    f: &Value,
) -> Result<(), StoreError> {
    rollup::meta_set(tx.conn(), "forecast", &f.to_string())?;
    rollup::meta_set(tx.conn(), "forecast_day", &today.to_string())?;
    let series = |k: &str| f[k].as_array().map_or(0, Vec::len);
    tx.emit(
        "forecast.updated",
        json!({"day": today, "computed_at": rfc3339(now), "horizon_days": 30,
               "series": {"tickets": series("tickets"), "transactions": series("transactions"),
                          "vouchers": series("vouchers"), "cash": series("cash")}}),
    )?;
    Ok(())
}

/// The aggregates head office gets for one business day: figures per service, STM, kind
/// and step — never a customer, and no staff names.
pub fn daily_aggregates(c: &Connection, cfg: &Config, day: NaiveDate) -> Result<Value, StoreError> {
    let p = query::Period {
        from: day,
        to: day,
        by: query::By::Hour,
        service: None,
        device: None,
        counter: None,
        staff: None,
    };
    let v = query::period(c, cfg, &p)?;
    // Steps by step only (the period view splits them by member of staff).
    let mut steps: BTreeMap<String, (i64, i64, i64, i64)> = BTreeMap::new();
    for s in v["steps"]["by_step"].as_array().into_iter().flatten() {
        let e = steps
            .entry(s["step"].as_str().unwrap_or("").to_string())
            .or_default();
        let done = s["done"].as_i64().unwrap_or(0);
        e.0 += done;
        e.1 += s["avg_s"].as_i64().unwrap_or(0) * done;
        e.2 = s["sla_s"].as_i64().unwrap_or(0);
        e.3 += s["overdue"].as_i64().unwrap_or(0);
    }
    let steps: Vec<Value> = steps
        .into_iter()
        .map(|(k, (done, sum, sla, overdue))| {
            json!({"step": k, "done": done, "avg_s": if done > 0 { Some(sum / done) } else { None },
                   "sla_s": sla, "overdue": overdue})
        })
        .collect();
    let mut tickets = v["tickets"]["by_service"].clone();
    for t in tickets.as_array_mut().into_iter().flatten() {
        if let Value::Object(m) = t {
            m.remove("name");
        }
    }
    Ok(json!({
        "day": day,
        "tickets": tickets,
        "arrivals": v["arrivals"]["series"],
        "transactions": v["transactions"]["by_type"],
        "vouchers": v["vouchers"]["by_kind"],
        "cash": v["cash"]["by_device"],
        "exceptions": v["exceptions"]["by_kind"],
        "steps": steps,
    }))
}

/// The figures of the business day that contains `now`.
pub fn today(c: &Connection, cfg: &Config, now: DateTime<Utc>) -> Result<Value, StoreError> {
    let day = business_day(cfg, now);
    let date = business_date(cfg, now);
    // The branch's local midnight, as a UTC timestamp comparable with the devices' records.
    let midnight = now
        .with_timezone(&cfg.branch.utc_offset)
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(cfg.branch.utc_offset).single())
        .map(|t| rfc3339(t.with_timezone(&Utc)))
        .unwrap_or_default();
    // Daily use: the mean of the last 28 days (today excluded) since the first use seen.
    let since = (date - Duration::days(28)).to_string();
    let mut use_stmt = c.prepare_cached(
        "SELECT coalesce(sum(CASE WHEN day < ?4 THEN used END), 0), min(day), \
         coalesce(sum(CASE WHEN day = ?4 THEN used END), 0) FROM stats_vouchers \
         WHERE device_id = ?1 AND item = ?2 AND day >= ?3",
    )?;
    let mut items = Vec::new();
    for mut item in devices::db::consumables(c)? {
        let device = item["device_id"].as_str().unwrap_or("").to_string();
        let name = item["item"].as_str().unwrap_or("").to_string();
        let (used, first, today_used): (i64, Option<String>, i64) = use_stmt
            .query_row(params![device, name, since, day], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        let days = first
            .and_then(|f| NaiveDate::parse_from_str(&f, "%Y-%m-%d").ok())
            .map_or(0, |f| (date - f).num_days().clamp(0, 28));
        let daily_use = (days > 0).then(|| used as f64 / days as f64);
        let remaining = item["remaining"].as_f64();
        let days_left = match (remaining, daily_use) {
            (Some(r), Some(u)) if u > 0.0 => Some((r / u * 10.0).floor() / 10.0),
            _ => None,
        };
        item["used_today"] = json!(today_used);
        item["daily_use"] = json!(daily_use.map(|u| (u * 10.0).round() / 10.0));
        item["days_left"] = json!(days_left);
        item["runs_out_on"] =
            json!(days_left.map(|d| (date + Duration::days(d.floor() as i64)).to_string()));
        items.push(item);
    }
    // Each cassette with the cash in and out of today.
    let mut cash_stmt = c.prepare_cached(
        "SELECT coalesce(sum(notes_in * denom), 0), coalesce(sum(notes_out * denom), 0) \
         FROM stats_cash_cassettes WHERE day = ?1 AND device_id = ?2 AND cassette = ?3",
    )?;
    let mut cassettes = Vec::new();
    for mut k in devices::db::cassettes(c)? {
        let (cash_in, cash_out): (i64, i64) = cash_stmt.query_row(
            params![
                day,
                k["device_id"].as_str().unwrap_or(""),
                k["id"].as_str().unwrap_or("")
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        k["cash_in"] = json!(cash_in);
        k["cash_out"] = json!(cash_out);
        cassettes.push(k);
    }
    let mut by_device = c.prepare_cached(
        "SELECT device_id, deposited, dispensed FROM stats_cash WHERE day = ?1 ORDER BY device_id",
    )?;
    let devices: Vec<Value> = by_device
        .query_map([&day], |r| {
            Ok(
                json!({"device_id": r.get::<_, String>(0)?, "deposited": r.get::<_, i64>(1)?,
                      "dispensed": r.get::<_, i64>(2)?}),
            )
        })?
        .collect::<Result<_, _>>()?;
    Ok(json!({
        "date": day,
        "tickets": {"by_service": queue::view::day_by_service(c, cfg, &day)?},
        "transactions": {"by_type": devices::db::transactions_by_type(c, &midnight)?},
        "consumables": {"items": items},
        "cash": {"cassettes": cassettes, "by_device": devices},
    }))
}

/// Dense daily series of `sql` (rows: key, day, value; params: from, to) from the first day
/// each key has a row to `to`.
fn series(
    c: &Connection,
    sql: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<BTreeMap<String, (NaiveDate, Vec<f64>)>, StoreError> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut raw: BTreeMap<String, BTreeMap<NaiveDate, f64>> = BTreeMap::new();
    let mut q = stmt.query(params![from.to_string(), to.to_string()])?;
    while let Some(r) = q.next()? {
        let key: String = r.get(0)?;
        let Ok(day) = NaiveDate::parse_from_str(&r.get::<_, String>(1)?, "%Y-%m-%d") else {
            continue;
        };
        *raw.entry(key).or_default().entry(day).or_default() += r.get::<_, f64>(2)?;
    }
    Ok(raw
        .into_iter()
        .filter_map(|(k, days)| {
            let first = *days.keys().next()?;
            let n = (to - first).num_days() + 1;
            let v = (0..n)
                .map(|i| {
                    days.get(&(first + Duration::days(i)))
                        .copied()
                        .unwrap_or(0.0)
                })
                .collect();
            Some((k, (first, v)))
        })
        .collect())
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn forecast_json(f: &forecast::Forecast) -> Value {
    let days: Vec<Value> = f
        .days
        .iter()
        .map(|d| {
            json!({"date": d.date, "point": round1(d.point), "lo80": round1(d.lo80),
                   "hi80": round1(d.hi80), "lo95": round1(d.lo95), "hi95": round1(d.hi95),
                   "closed": d.closed})
        })
        .collect();
    json!({"model": f.model, "history_days": f.history_days, "days": days})
}

/// Each service's share of a weekday's arrivals by hour, from the last eight weeks
/// (`[weekday 0 = Monday][hour]`); a weekday without data takes the all-week profile.
pub fn hourly_profile(
    c: &Connection,
    service: &str,
    today: NaiveDate,
) -> Result<[[f64; 24]; 7], StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT day, hour, issued FROM stats_arrivals WHERE service = ?1 AND day >= ?2 AND day < ?3",
    )?;
    let mut counts = [[0.0f64; 24]; 7];
    let mut q = stmt.query(params![
        service,
        (today - Duration::days(56)).to_string(),
        today.to_string()
    ])?;
    while let Some(r) = q.next()? {
        let Ok(d) = NaiveDate::parse_from_str(&r.get::<_, String>(0)?, "%Y-%m-%d") else {
            continue;
        };
        let h: i64 = r.get(1)?;
        if (0..24).contains(&h) {
            counts[d.weekday().num_days_from_monday() as usize][h as usize] +=
                r.get::<_, f64>(2)?;
        }
    }
    let mut all = [0.0f64; 24];
    for w in &counts {
        for (a, v) in all.iter_mut().zip(w) {
            *a += v;
        }
    }
    let norm = |v: &[f64; 24]| -> Option<[f64; 24]> {
        let s: f64 = v.iter().sum();
        (s > 0.0).then(|| v.map(|x| x / s))
    };
    // No arrivals at all: an even spread over 09:00–17:00.
    let fallback = norm(&all).unwrap_or_else(|| {
        let mut v = [0.0; 24];
        for x in &mut v[9..17] {
            *x = 1.0 / 8.0;
        }
        v
    });
    Ok(counts.map(|w| norm(&w).unwrap_or(fallback)))
}

/// The forecasts of the `horizon` days from `today`: ticket volume per service (with its
/// hourly profile), STM transactions per type, voucher use per STM and kind (days left,
/// runs-out date, reorder hint) and cash net out per STM (days until empty, replenishment
/// hint, each cassette's days until it empties).
pub fn forecasts(
    c: &Connection,
    cfg: &Config,
    today: NaiveDate,
    horizon: usize,
) -> Result<Value, StoreError> {
    let to = today - Duration::days(1);
    let from = today - Duration::days(HISTORY_DAYS);
    let cal = &cfg.stats;
    let fc = |first: NaiveDate, y: &[f64]| forecast::daily(y, first, horizon, cal);
    let tickets_hist = series(
        c,
        "SELECT service, day, issued FROM stats_tickets WHERE day BETWEEN ?1 AND ?2",
        from,
        to,
    )?;
    let mut tickets = Vec::new();
    for s in &cfg.services {
        let (first, y) = tickets_hist
            .get(&s.code)
            .cloned()
            .unwrap_or((today, Vec::new()));
        let f = fc(first, &y);
        let profile = hourly_profile(c, &s.code, today)?;
        let hourly: Vec<Value> = profile
            .iter()
            .enumerate()
            .flat_map(|(w, hours)| {
                hours.iter().enumerate().filter(|(_, s)| **s > 0.0).map(
                    move |(h, s)| json!({"weekday": w + 1, "hour": h, "share": (s * 1000.0).round() / 1000.0}),
                )
            })
            .collect();
        let mut v = forecast_json(&f);
        v["service"] = json!(s.code);
        v["hourly_profile"] = json!(hourly);
        tickets.push(v);
    }
    let mut transactions = Vec::new();
    for (k, (first, y)) in series(
        c,
        "SELECT txn_type, day, count FROM stats_txns WHERE day BETWEEN ?1 AND ?2",
        from,
        to,
    )? {
        let mut v = forecast_json(&fc(first, &y));
        v["txn_type"] = json!(k);
        transactions.push(v);
    }
    // Vouchers: remaining from each STM's last status.
    let remaining: BTreeMap<String, f64> = devices::db::consumables(c)?
        .iter()
        .filter_map(|i| {
            Some((
                format!("{}\u{1f}{}", i["device_id"].as_str()?, i["item"].as_str()?),
                i["remaining"].as_f64()?,
            ))
        })
        .collect();
    let mut vouchers = Vec::new();
    for (k, (first, y)) in series(
        c,
        "SELECT device_id || char(31) || item, day, used FROM stats_vouchers \
         WHERE day BETWEEN ?1 AND ?2",
        from,
        to,
    )? {
        let f = fc(first, &y);
        let (device, item) = k.split_once('\u{1f}').unwrap_or((k.as_str(), ""));
        let left = remaining.get(&k).copied();
        let days_left = left.and_then(|r| forecast::days_left(r, &f.days));
        let mut v = forecast_json(&f);
        v["device_id"] = json!(device);
        v["item"] = json!(item);
        v["remaining"] = json!(left);
        v["days_left"] = json!(days_left);
        v["runs_out_on"] = json!(days_left.map(|d| (today + Duration::days(d as i64)).to_string()));
        v["reorder"] = json!(days_left.is_some_and(|d| d < REORDER_DAYS));
        vouchers.push(v);
    }
    // Cash: net out per STM against the cash in its cassettes.
    let mut on_hand: BTreeMap<String, f64> = BTreeMap::new();
    for k in devices::db::cassettes(c)? {
        let (Some(d), Some(denom), Some(count)) = (
            k["device_id"].as_str(),
            k["denom"].as_f64(),
            k["count"].as_f64(),
        ) else {
            continue;
        };
        *on_hand.entry(d.to_string()).or_default() += denom * count;
    }
    // Each cassette: its notes' net out against the notes in it now.
    let mut counts: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for k in devices::db::cassettes(c)? {
        let (Some(d), Some(id), Some(denom), Some(count)) = (
            k["device_id"].as_str(),
            k["id"].as_str(),
            k["denom"].as_f64(),
            k["count"].as_f64(),
        ) else {
            continue;
        };
        counts.insert(format!("{d}\u{1f}{id}"), (denom, count));
    }
    let mut cassettes: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (k, (first, y)) in series(
        c,
        "SELECT device_id || char(31) || cassette, day, notes_out - notes_in \
         FROM stats_cash_cassettes WHERE day BETWEEN ?1 AND ?2",
        from,
        to,
    )? {
        let f = fc(first, &y);
        let (device, id) = k.split_once('\u{1f}').unwrap_or((k.as_str(), ""));
        let now = counts.get(&k).copied();
        let days = now.and_then(|(_, n)| forecast::days_left(n, &f.days));
        cassettes
            .entry(device.to_string())
            .or_default()
            .push(json!({
                "cassette": id,
                "denom": now.map(|(d, _)| d),
                "count": now.map(|(_, n)| n),
                "model": f.model,
                "days_until_empty": days,
                "empty_on": days.map(|d| (today + Duration::days(d as i64)).to_string()),
            }));
    }
    let mut cash = Vec::new();
    for (k, (first, y)) in series(
        c,
        "SELECT device_id, day, dispensed - deposited FROM stats_cash WHERE day BETWEEN ?1 AND ?2",
        from,
        to,
    )? {
        let f = fc(first, &y);
        let hand = on_hand.get(&k).copied();
        let days = hand.and_then(|h| forecast::days_left(h, &f.days));
        let mut v = forecast_json(&f);
        v["device_id"] = json!(k);
        v["on_hand"] = json!(hand);
        v["days_until_empty"] = json!(days);
        v["empty_on"] = json!(days.map(|d| (today + Duration::days(d as i64)).to_string()));
        let ks = cassettes.remove(&k).unwrap_or_default();
        let first_empty = ks
            .iter()
            .filter_map(|x| x["days_until_empty"].as_u64())
            .min();
        v["replenish"] = json!(
            days.is_some_and(|d| d < REPLENISH_DAYS)
                || first_empty.is_some_and(|d| (d as usize) < REPLENISH_DAYS)
        );
        v["cassettes"] = json!(ks);
        cash.push(v);
    }
    Ok(json!({
        "from": today, "horizon_days": horizon,
        "tickets": tickets, "transactions": transactions, "vouchers": vouchers, "cash": cash,
    }))
}

/// Reorder a voucher that runs out within this many days (delivery takes about a week).
pub const REORDER_DAYS: usize = 7;
/// Replenish an STM whose cash runs out within this many days.
pub const REPLENISH_DAYS: usize = 2;

/// Each service's mean service time over the last eight weeks (None without data).
fn mean_service_s(
    c: &Connection,
    service: &str,
    today: NaiveDate,
) -> Result<Option<f64>, StoreError> {
    let (sum, n): (i64, i64) = c.query_row(
        "SELECT coalesce(sum(service_sum_s), 0), coalesce(sum(served), 0) FROM stats_tickets \
         WHERE service = ?1 AND day >= ?2 AND day < ?3 AND service_sum_s > 0",
        params![
            service,
            (today - Duration::days(56)).to_string(),
            today.to_string()
        ],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((n > 0).then(|| sum as f64 / n as f64))
}

/// The mean service time assumed before any is measured.
pub const DEFAULT_SERVICE_S: f64 = 300.0;

/// The staffing plan of the `days` days from `today`: per day, hour and service, the
/// forecast arrivals, the measured service time, the counters needed to call 90% within
/// the target wait, and the counters planned (configured for the service and open).
pub fn staffing_plan(
    c: &Connection,
    cfg: &Config,
    today: NaiveDate,
    days: usize,
) -> Result<Value, StoreError> {
    let f = forecasts(c, cfg, today, days)?;
    let mut out = Vec::new();
    for (si, s) in cfg.services.iter().enumerate() {
        let profile = hourly_profile(c, &s.code, today)?;
        let measured = mean_service_s(c, &s.code, today)?;
        let service_s = measured.unwrap_or(DEFAULT_SERVICE_S);
        let planned_all = cfg
            .counters
            .iter()
            .filter(|k| k.services.contains(&s.code))
            .count() as u32;
        let target = s.target_wait.as_secs_f64();
        let fdays = f["tickets"][si]["days"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for d in fdays {
            let Some(date) = d["date"]
                .as_str()
                .and_then(|x| NaiveDate::parse_from_str(x, "%Y-%m-%d").ok())
            else {
                continue;
            };
            let point = d["point"].as_f64().unwrap_or(0.0);
            let shares = profile[date.weekday().num_days_from_monday() as usize];
            for (h, share) in shares.iter().enumerate() {
                // Open when the hour overlaps the service's opening hours (or always).
                let open = s.hours.is_none_or(|(a, b)| {
                    let (from, to) = (h as u32 * 3600, h as u32 * 3600 + 3600);
                    a.num_seconds_from_midnight() < to && from < b.num_seconds_from_midnight()
                });
                let arrivals = point * share;
                // The hours customers come in, and the opening hours when they are set.
                if !(*share > 0.0 || (s.hours.is_some() && open)) {
                    continue;
                }
                out.push(json!({
                    "date": date, "hour": h, "service": s.code,
                    "arrivals": round1(arrivals),
                    "service_s": service_s.round() as i64,
                    "service_s_measured": measured.is_some(),
                    "target_wait_s": target as i64,
                    "needed": staffing::counters_needed(arrivals, service_s, target),
                    "planned": if open { planned_all } else { 0 },
                }));
            }
        }
    }
    Ok(json!({"from": today, "days": days, "served_within": staffing::SERVED_WITHIN, "hours": out}))
}

/// The forecasts for `today`: the stored ones when computed today, otherwise computed
/// now, stored and announced (`forecast.updated`).
async fn current_forecast(core: &Core) -> Result<Value, StoreError> {
    let cfg = core.cfg.clone();
    let now = core.clock.now();
    let today = business_date(&cfg, now);
    let cached = core
        .store
        .read(move |c| -> Result<Option<Value>, StoreError> {
            if rollup::meta_get(c, "forecast_day")?.as_deref() == Some(today.to_string().as_str()) {
                Ok(rollup::meta_get(c, "forecast")?.and_then(|s| serde_json::from_str(&s).ok()))
            } else {
                Ok(None)
            }
        })
        .await?;
    if let Some(v) = cached {
        return Ok(v);
    }
    let cfg2 = cfg.clone();
    let f = core
        .store
        .read(move |c| forecasts(c, &cfg2, today, 30))
        .await?;
    let f2 = f.clone();
    core.store
        .write(move |tx| store_forecast(tx, today, now, &f2))
        .await?;
    Ok(f)
}

/// Keep the first `horizon` days of each forecast.
fn cut(mut f: Value, horizon: usize) -> Value {
    for k in ["tickets", "transactions", "vouchers", "cash"] {
        for s in f[k].as_array_mut().into_iter().flatten() {
            if let Some(days) = s["days"].as_array_mut() {
                days.truncate(horizon);
            }
        }
    }
    f["horizon_days"] = json!(horizon);
    f
}

fn query_map(req: &crate::http::Request) -> Result<BTreeMap<String, String>, ApiError> {
    req.query()
}

/// `GET /api/v1/stats`, `/stats/period`, `/stats/forecast`, `/stats/staffing`.
pub fn routes(core: &Core) -> Vec<Route> {
    vec![
        Route::get("/api/v1/stats", READERS).to(core.clone(), |core, _| async move {
            let cfg = core.cfg.clone();
            let now = core.clock.now();
            Ok(ok_json(
                &core.store.read(move |c| today(c, &cfg, now)).await?,
            ))
        }),
        Route::get("/api/v1/stats/period", READERS).to(core.clone(), |core, req| async move {
            let today = business_date(&core.cfg, core.clock.now());
            let p = query::parse_period(&query_map(&req)?, today)
                .map_err(|e| ApiError::bad_request("invalid_query", e))?;
            let cfg = core.cfg.clone();
            Ok(ok_json(
                &core.store.read(move |c| query::period(c, &cfg, &p)).await?,
            ))
        }),
        Route::get("/api/v1/stats/forecast", READERS).to(core.clone(), |core, req| async move {
            let q = query_map(&req)?;
            let horizon = match q.get("horizon").map(String::as_str) {
                None | Some("7") => 7,
                Some("30") => 30,
                Some(v) => {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        format!("`horizon` must be 7 or 30, not `{v}`"),
                    ));
                }
            };
            let f = current_forecast(&core).await?;
            let mut f = cut(f, horizon);
            f["calendar"] = json!({
                "closed_days": core.cfg.stats.closed_days,
                "working_days": core.cfg.stats.working_days,
            });
            Ok(ok_json(&f))
        }),
        Route::get("/api/v1/stats/staffing", READERS).to(core.clone(), |core, req| async move {
            let q = query_map(&req)?;
            let days = match q.get("days") {
                None => 7,
                Some(v) => match v.parse::<usize>() {
                    Ok(d) if (1..=14).contains(&d) => d,
                    _ => {
                        return Err(ApiError::bad_request(
                            "invalid_query",
                            format!("`days` must be a whole number from 1 to 14, not `{v}`"),
                        ));
                    }
                },
            };
            let cfg = core.cfg.clone();
            let today = business_date(&cfg, core.clock.now());
            Ok(ok_json(
                &core
                    .store
                    .read(move |c| staffing_plan(c, &cfg, today, days))
                    .await?,
            ))
        }),
    ]
}

/// Shared by the CLI: load a CSV of past daily volumes into the database (see [`import`]).
pub fn import_file(
    store: &crate::store::Store,
    text: &str,
    file: &str,
    services: Option<Vec<String>>,
) -> Result<usize, import::ImportError> {
    let rows = import::parse(text, services.as_deref()).map_err(import::ImportError::Rows)?;
    let file = file.to_string();
    let rows = Arc::new(rows);
    store.write_blocking(move |tx| import::load(tx, &rows, &file))
}
