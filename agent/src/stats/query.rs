//! The figures of any period, read from the roll-ups: totals and a series by hour, day or
//! ISO week, narrowed to one service, STM, counter or member of staff.

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate};
use rusqlite::{Connection, params};
use serde_json::{Value, json};

use super::rollup::{hist_parse, hist_quantile};
use crate::config::Config;
use crate::store::StoreError;

/// How the series of a period are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// By hour (arrivals; the other figures are daily and grouped by day).
    Hour,
    /// By business day.
    Day,
    /// By ISO week (labelled with its Monday).
    Week,
}

impl By {
    fn as_str(self) -> &'static str {
        match self {
            By::Hour => "hour",
            By::Day => "day",
            By::Week => "week",
        }
    }
}

/// A period and what to narrow it to.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    /// First business day (inclusive).
    pub from: NaiveDate,
    /// Last business day (inclusive).
    pub to: NaiveDate,
    /// Grouping of the series.
    pub by: By,
    /// Only this service (tickets, arrivals, counters).
    pub service: Option<String>,
    /// Only this STM (transactions, vouchers, cash, exceptions).
    pub device: Option<String>,
    /// Only this counter (counters).
    pub counter: Option<String>,
    /// Only this member of staff (order steps).
    pub staff: Option<String>,
}

/// The longest period one request may ask for.
pub const MAX_DAYS: i64 = 800;

/// Read `from`, `to`, `days`, `by`, `service`, `device`, `counter`, `staff` (defaults: the
/// `days` — 30 — days to `to` — today —, by day). Errors name the parameter.
pub fn parse_period(q: &BTreeMap<String, String>, today: NaiveDate) -> Result<Period, String> {
    let date = |k: &str, default: NaiveDate| -> Result<NaiveDate, String> {
        match q.get(k) {
            None => Ok(default),
            Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| format!("`{k}` must be a date (YYYY-MM-DD), not `{v}`")),
        }
    };
    let to = date("to", today)?;
    let days = match q.get("days") {
        None => 30,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=MAX_DAYS).contains(&n) => n,
            _ => {
                return Err(format!(
                    "`days` must be a whole number from 1 to {MAX_DAYS}, not `{v}`"
                ));
            }
        },
    };
    let from = date("from", to - Duration::days(days - 1))?;
    if from > to {
        return Err(format!("`from` ({from}) is after `to` ({to})"));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(format!("a period is at most {MAX_DAYS} days"));
    }
    let by = match q.get("by").map(String::as_str) {
        None | Some("day") => By::Day,
        Some("hour") => By::Hour,
        Some("week") => By::Week,
        Some(v) => return Err(format!("`by` must be hour, day or week, not `{v}`")),
    };
    let opt = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(Period {
        from,
        to,
        by,
        service: opt("service"),
        device: opt("device"),
        counter: opt("counter"),
        staff: opt("staff"),
    })
}

/// The label of the bucket a day falls in (a week is labelled with its Monday).
pub fn bucket(by: By, day: &str) -> String {
    match (by, NaiveDate::parse_from_str(day, "%Y-%m-%d")) {
        (By::Week, Ok(d)) => {
            (d - Duration::days(i64::from(d.weekday().num_days_from_monday()))).to_string()
        }
        _ => day.to_string(),
    }
}

fn avg(sum: i64, n: i64) -> Value {
    if n > 0 {
        json!((sum as f64 / n as f64).round() as i64)
    } else {
        Value::Null
    }
}

/// Sums of integer columns keyed by a tuple of strings.
type Sums = BTreeMap<Vec<String>, Vec<i64>>;

/// Rows as (text columns, integer columns).
type Rows = Vec<(Vec<String>, Vec<i64>)>;

fn add(m: &mut Sums, key: Vec<String>, vals: &[i64]) {
    let e = m.entry(key).or_insert_with(|| vec![0; vals.len()]);
    for (a, b) in e.iter_mut().zip(vals) {
        *a += b;
    }
}

/// Rows of `sql` (params: from, to, filter) as (strings, integers).
fn rows(
    c: &Connection,
    sql: &str,
    p: &Period,
    filter: Option<&String>,
    n_str: usize,
    n_int: usize,
) -> Result<Rows, StoreError> {
    let mut stmt = c.prepare_cached(sql)?;
    let out = stmt.query_map(params![p.from.to_string(), p.to.to_string(), filter], |r| {
        let mut s = Vec::with_capacity(n_str);
        for i in 0..n_str {
            s.push(r.get::<_, String>(i)?);
        }
        let mut v = Vec::with_capacity(n_int);
        for i in 0..n_int {
            v.push(r.get::<_, i64>(n_str + i)?);
        }
        Ok((s, v))
    })?;
    Ok(out.collect::<Result<_, _>>()?)
}

/// The figures of a period.
pub fn period(c: &Connection, cfg: &Config, p: &Period) -> Result<Value, StoreError> {
    Ok(json!({
        "from": p.from, "to": p.to, "by": p.by.as_str(),
        "tickets": tickets(c, cfg, p)?,
        "arrivals": arrivals(c, p)?,
        "counters": counters(c, p)?,
        "transactions": transactions(c, p)?,
        "vouchers": vouchers(c, p)?,
        "cash": cash(c, p)?,
        "exceptions": exceptions(c, p)?,
        "steps": steps(c, p)?,
    }))
}

fn tickets(c: &Connection, cfg: &Config, p: &Period) -> Result<Value, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT day, service, issued, called, served, no_show, wait_sum_s, wait_max_s, \
         service_sum_s, wait_hist FROM stats_tickets \
         WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR service = ?3) ORDER BY day, service",
    )?;
    let mut totals: Sums = BTreeMap::new();
    let mut series: Sums = BTreeMap::new();
    let mut hists: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
    let mut max: BTreeMap<String, i64> = BTreeMap::new();
    let mut q = stmt.query(params![p.from.to_string(), p.to.to_string(), p.service])?;
    while let Some(r) = q.next()? {
        let day: String = r.get(0)?;
        let service: String = r.get(1)?;
        let v: Vec<i64> = (2..9).map(|i| r.get(i)).collect::<Result<_, _>>()?;
        // issued, called, served, no_show, wait_sum, service_sum
        let sums = [v[0], v[1], v[2], v[3], v[4], v[6]];
        add(&mut totals, vec![service.clone()], &sums);
        add(
            &mut series,
            vec![bucket(p.by, &day), service.clone()],
            &sums,
        );
        let m = max.entry(service.clone()).or_default();
        *m = (*m).max(v[5]);
        let h = hists.entry(service).or_default();
        for (b, n) in hist_parse(&r.get::<_, String>(9)?) {
            *h.entry(b).or_default() += n;
        }
    }
    let name = |code: &str| cfg.service(code).map(|s| s.name.clone());
    let by_service: Vec<Value> = totals
        .iter()
        .map(|(k, v)| {
            let h = hists.get(&k[0]).cloned().unwrap_or_default();
            json!({"service": k[0], "name": name(&k[0]), "issued": v[0], "called": v[1],
                   "served": v[2], "no_show": v[3], "avg_wait_s": avg(v[4], v[1]),
                   "wait_p50_s": hist_quantile(&h, 0.5), "wait_p90_s": hist_quantile(&h, 0.9),
                   "max_wait_s": max.get(&k[0]).copied().filter(|m| *m > 0),
                   "avg_service_s": avg(v[5], v[2])})
        })
        .collect();
    let series: Vec<Value> = series
        .iter()
        .map(|(k, v)| {
            json!({"bucket": k[0], "service": k[1], "issued": v[0], "served": v[2],
                   "no_show": v[3], "avg_wait_s": avg(v[4], v[1])})
        })
        .collect();
    Ok(json!({"by_service": by_service, "series": series}))
}

fn arrivals(c: &Connection, p: &Period) -> Result<Value, StoreError> {
    let mut series: Sums = BTreeMap::new();
    for (s, v) in rows(
        c,
        "SELECT day, service, printf('%02d', hour), issued FROM stats_arrivals \
         WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR service = ?3)",
        p,
        p.service.as_ref(),
        3,
        1,
    )? {
        let b = match p.by {
            By::Hour => format!("{}T{}", s[0], s[2]),
            by => bucket(by, &s[0]),
        };
        add(&mut series, vec![b, s[1].clone()], &v);
    }
    let series: Vec<Value> = series
        .iter()
        .map(|(k, v)| json!({"bucket": k[0], "service": k[1], "issued": v[0]}))
        .collect();
    Ok(json!({"series": series}))
}

fn counters(c: &Connection, p: &Period) -> Result<Value, StoreError> {
    let mut totals: Sums = BTreeMap::new();
    let mut stmt = c.prepare_cached(
        "SELECT counter, service, served, service_sum_s FROM stats_counters \
         WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR service = ?3) \
         AND (?4 IS NULL OR counter = ?4)",
    )?;
    let mut q = stmt.query(params![
        p.from.to_string(),
        p.to.to_string(),
        p.service,
        p.counter
    ])?;
    while let Some(r) = q.next()? {
        add(
            &mut totals,
            vec![r.get(0)?, r.get(1)?],
            &[r.get(2)?, r.get(3)?],
        );
    }
    let by_counter: Vec<Value> = totals
        .iter()
        .map(|(k, v)| {
            json!({"counter": k[0], "service": k[1], "served": v[0],
                   "avg_service_s": avg(v[1], v[0])})
        })
        .collect();
    Ok(json!({"by_counter": by_counter}))
}

fn transactions(c: &Connection, p: &Period) -> Result<Value, StoreError> {
    let mut totals: Sums = BTreeMap::new();
    let mut series: Sums = BTreeMap::new();
    for (s, v) in rows(
        c,
        "SELECT day, device_id, txn_type, count, ok, amount, duration_sum_s FROM stats_txns \
         WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR device_id = ?3)",
        p,
        p.device.as_ref(),
        3,
        4,
    )? {
        add(&mut totals, vec![s[2].clone()], &v);
        add(
            &mut series,
            vec![bucket(p.by, &s[0]), s[1].clone(), s[2].clone()],
            &v,
        );
    }
    let mut by_type: Vec<Value> = totals
        .iter()
        .map(|(k, v)| {
            json!({"txn_type": k[0], "count": v[0], "ok": v[1], "amount": v[2],
                   "avg_duration_s": avg(v[3], v[0])})
        })
        .collect();
    by_type.sort_by_key(|v| std::cmp::Reverse(v["count"].as_i64().unwrap_or(0)));
    let series: Vec<Value> = series
        .iter()
        .map(|(k, v)| {
            json!({"bucket": k[0], "device_id": k[1], "txn_type": k[2], "count": v[0],
                   "amount": v[2]})
        })
        .collect();
    Ok(json!({"by_type": by_type, "series": series}))
}

fn vouchers(c: &Connection, p: &Period) -> Result<Value, StoreError> {
    let mut totals: Sums = BTreeMap::new();
    let mut series: Sums = BTreeMap::new();
    for (s, v) in rows(
        c,
        "SELECT day, device_id, item, used FROM stats_vouchers \
         WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR device_id = ?3)",
        p,
        p.device.as_ref(),
        3,
        1,
    )? {
        add(&mut totals, vec![s[1].clone(), s[2].clone()], &v);
        add(
            &mut series,
            vec![bucket(p.by, &s[0]), s[1].clone(), s[2].clone()],
            &v,
        );
    }
    let by_kind: Vec<Value> = totals
        .iter()
        .map(|(k, v)| json!({"device_id": k[0], "item": k[1], "used": v[0]}))
        .collect();
    let series: Vec<Value> = series
        .iter()
        .map(|(k, v)| json!({"bucket": k[0], "device_id": k[1], "item": k[2], "used": v[0]}))
        .collect();
    Ok(json!({"by_kind": by_kind, "series": series}))
}

fn cash(c: &Connection, p: &Period) -> Result<Value, StoreError> {
    let mut totals: Sums = BTreeMap::new();
    let mut series: Sums = BTreeMap::new();
    for (s, v) in rows(
        c,
        "SELECT day, device_id, deposited, dispensed FROM stats_cash \
         WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR device_id = ?3)",
        p,
        p.device.as_ref(),
        2,
        2,
    )? {
        add(&mut totals, vec![s[1].clone()], &v);
        add(&mut series, vec![bucket(p.by, &s[0]), s[1].clone()], &v);
    }
    let mut cassettes: Sums = BTreeMap::new();
    for (s, v) in rows(
        c,
        "SELECT device_id, cassette, denom, notes_out, notes_in FROM stats_cash_cassettes \
         WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR device_id = ?3)",
        p,
        p.device.as_ref(),
        2,
        3,
    )? {
        let denom = v[0];
        add(
            &mut cassettes,
            vec![s[0].clone(), s[1].clone()],
            &[denom, v[1], v[2], v[1] * denom, v[2] * denom],
        );
    }
    let by_device: Vec<Value> = totals
        .iter()
        .map(|(k, v)| {
            json!({"device_id": k[0], "deposited": v[0], "dispensed": v[1],
                   "net_out": v[1] - v[0]})
        })
        .collect();
    let series: Vec<Value> = series
        .iter()
        .map(|(k, v)| {
            json!({"bucket": k[0], "device_id": k[1], "deposited": v[0], "dispensed": v[1]})
        })
        .collect();
    let cassettes: Vec<Value> = cassettes
        .iter()
        .map(|(k, v)| {
            json!({"device_id": k[0], "cassette": k[1], "notes_out": v[1], "notes_in": v[2],
                   "cash_out": v[3], "cash_in": v[4]})
        })
        .collect();
    // Clearing cycles that overlap the period.
    let mut stmt = c.prepare_cached(
        "SELECT device_id, cycle_id, started_at, updated_at, deposited, dispensed, cassettes \
         FROM stats_cash_cycles WHERE substr(started_at, 1, 10) <= ?2 \
         AND substr(updated_at, 1, 10) >= ?1 AND (?3 IS NULL OR device_id = ?3) \
         ORDER BY device_id, started_at",
    )?;
    let cycles = stmt
        .query_map(
            params![p.from.to_string(), p.to.to_string(), p.device],
            |r| {
                let cs: String = r.get(6)?;
                let cs: BTreeMap<String, super::rollup::CycleCassette> =
                    serde_json::from_str(&cs).unwrap_or_default();
                let cs: Vec<Value> = cs
                    .into_iter()
                    .map(|(id, k)| {
                        json!({"cassette": id, "denom": k.denom, "start": k.start,
                               "count": k.count, "notes_out": k.notes_out,
                               "notes_in": k.notes_in})
                    })
                    .collect();
                Ok(json!({"device_id": r.get::<_, String>(0)?,
                          "cycle_id": r.get::<_, String>(1)?,
                          "started_at": r.get::<_, String>(2)?,
                          "updated_at": r.get::<_, String>(3)?,
                          "deposited": r.get::<_, i64>(4)?, "dispensed": r.get::<_, i64>(5)?,
                          "cassettes": cs}))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(
        json!({"by_device": by_device, "series": series, "cassettes": cassettes,
              "cycles": cycles}),
    )
}

fn exceptions(c: &Connection, p: &Period) -> Result<Value, StoreError> {
    let mut totals: Sums = BTreeMap::new();
    let mut max: BTreeMap<Vec<String>, i64> = BTreeMap::new();
    for (s, v) in rows(
        c,
        "SELECT device_id, module, code, raised, resolved, resolve_sum_s, resolve_max_s \
         FROM stats_exceptions WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR device_id = ?3)",
        p,
        p.device.as_ref(),
        3,
        4,
    )? {
        add(&mut totals, s.clone(), &v[..3]);
        let m = max.entry(s).or_default();
        *m = (*m).max(v[3]);
    }
    let by_kind: Vec<Value> = totals
        .iter()
        .map(|(k, v)| {
            json!({"device_id": k[0], "module": k[1], "code": k[2], "raised": v[0],
                   "resolved": v[1], "avg_resolve_s": avg(v[2], v[1]),
                   "max_resolve_s": max.get(k).copied().filter(|_| v[1] > 0)})
        })
        .collect();
    Ok(json!({"by_kind": by_kind}))
}

fn steps(c: &Connection, p: &Period) -> Result<Value, StoreError> {
    let mut totals: Sums = BTreeMap::new();
    for (s, v) in rows(
        c,
        "SELECT step, staff, done, duration_sum_s, duration_max_s, sla_s, overdue \
         FROM stats_steps WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR staff = ?3)",
        p,
        p.staff.as_ref(),
        2,
        5,
    )? {
        let e = totals.entry(s).or_insert_with(|| vec![0; 5]);
        e[0] += v[0];
        e[1] += v[1];
        e[2] = e[2].max(v[2]);
        e[3] = v[3];
        e[4] += v[4];
    }
    let by_step: Vec<Value> = totals
        .iter()
        .map(|(k, v)| {
            json!({"step": k[0], "staff": k[1], "done": v[0], "avg_s": avg(v[1], v[0]),
                   "max_s": v[2], "sla_s": v[3], "overdue": v[4]})
        })
        .collect();
    Ok(json!({"by_step": by_step}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_period_reads_its_parameters_or_says_which_is_wrong() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        let p = parse_period(&q(&[]), today).unwrap();
        assert_eq!(
            (p.from.to_string(), p.to, p.by),
            ("2026-11-07".into(), today, By::Day)
        );
        let p = parse_period(
            &q(&[
                ("from", "2026-01-01"),
                ("to", "2026-01-31"),
                ("by", "week"),
                ("service", "vip"),
            ]),
            today,
        )
        .unwrap();
        assert_eq!((p.by, p.service.as_deref()), (By::Week, Some("vip")));
        let p = parse_period(&q(&[("days", "7")]), today).unwrap();
        assert_eq!(p.from.to_string(), "2026-11-30");
        for (bad, says) in [
            (vec![("from", "2026-02-30")], "`from` must be a date"),
            (
                vec![("from", "2026-02-02"), ("to", "2026-02-01")],
                "is after",
            ),
            (vec![("by", "month")], "`by` must be hour, day or week"),
            (vec![("from", "2020-01-01")], "at most 800 days"),
            (vec![("days", "0")], "`days` must be a whole number"),
        ] {
            let e = parse_period(&q(&bad), today).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_week_is_labelled_with_its_monday() {
        assert_eq!(bucket(By::Week, "2026-12-06"), "2026-11-30");
        assert_eq!(bucket(By::Week, "2026-11-30"), "2026-11-30");
        assert_eq!(bucket(By::Day, "2026-12-06"), "2026-12-06");
    }
}
