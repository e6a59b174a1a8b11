//! Plausible branch history: the demo starts with 120 days of roll-ups so every chart and
//! forecast means something, and the forecast benchmark backtests on years of it.
//!
//! A day's volume is a base × a weekday factor (busy Mondays and Fridays, quiet weekends) ×
//! a month-end peak × a slow yearly wave and trend, with Poisson-like noise; the branch's
//! closed days are zero.

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::params;

use super::rollup::{WAIT_BUCKET_S, hist_json};
use crate::config::{Config, DayKind, StatsConfig};
use crate::store::{Store, StoreError};

fn normal(rng: &mut StdRng) -> f64 {
    // Box–Muller.
    let u1: f64 = rng.r#gen::<f64>().max(1e-12);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The expected volume of day `i` (from `first`) for a `base` daily volume.
pub fn expected(first: NaiveDate, i: usize, base: f64, cal: &StatsConfig) -> f64 {
    let d = first + Duration::days(i as i64);
    if cal.day_kind(d) == DayKind::Closed {
        return 0.0;
    }
    let weekday = match d.weekday() {
        _ if cal.day_kind(d) == DayKind::MakeUp => 1.0,
        Weekday::Mon => 1.18,
        Weekday::Tue => 1.0,
        Weekday::Wed => 0.95,
        Weekday::Thu => 1.0,
        Weekday::Fri => 1.12,
        Weekday::Sat => 0.62,
        Weekday::Sun => 0.5,
    };
    let month_end = if (d + Duration::days(2)).month() != d.month() {
        1.3
    } else {
        1.0
    };
    let year = 1.0 + 0.08 * (2.0 * std::f64::consts::PI * f64::from(d.ordinal()) / 365.0).sin();
    let trend = 1.0 + 0.0002 * i as f64;
    base * weekday * month_end * year * trend
}

/// `n` days of volumes from `first` around `base` (deterministic for a `seed`).
pub fn synthetic(first: NaiveDate, n: usize, base: f64, cal: &StatsConfig, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let m = expected(first, i, base, cal);
            if m <= 0.0 {
                0.0
            } else {
                (m + m.sqrt() * 1.3 * normal(&mut rng)).round().max(0.0)
            }
        })
        .collect()
}

/// Arrivals' share by hour of an ordinary day: a morning and an early-afternoon peak.
const HOURS: [(u32, f64); 9] = [
    (9, 0.12),
    (10, 0.17),
    (11, 0.14),
    (12, 0.07),
    (13, 0.09),
    (14, 0.15),
    (15, 0.13),
    (16, 0.09),
    (17, 0.04),
];

/// Fill `days` days of history before `today` into the roll-ups (only when there are none
/// yet).
pub fn seed(store: &Store, cfg: &Config, today: NaiveDate, days: usize) -> Result<(), StoreError> {
    let cfg = cfg.clone();
    store.write_blocking(move |tx| {
        let c = tx.conn();
        let any: bool = c.query_row("SELECT EXISTS (SELECT 1 FROM stats_tickets)", [], |r| {
            r.get(0)
        })?;
        if any {
            return Ok(());
        }
        let first = today - Duration::days(days as i64);
        let mut rng = StdRng::seed_from_u64(20_261_206);
        for (si, s) in cfg.services.iter().enumerate() {
            let (base, service_s, wait_s) = match si {
                0 => (140.0, 300.0, 420.0),
                1 => (35.0, 600.0, 300.0),
                _ => (22.0, 900.0, 240.0),
            };
            let counters: Vec<&str> = cfg
                .counters
                .iter()
                .filter(|k| k.services.contains(&s.code))
                .map(|k| k.id.as_str())
                .collect();
            let volumes = synthetic(first, days, base, &cfg.stats, 7 + si as u64);
            for (i, issued) in volumes.iter().enumerate() {
                let issued = *issued as i64;
                if issued == 0 {
                    continue;
                }
                let day = (first + Duration::days(i as i64)).to_string();
                let served = (issued as f64 * 0.93).round() as i64;
                let no_show = issued - served;
                let mut hist = std::collections::BTreeMap::new();
                let (mut sum, mut max) = (0i64, 0i64);
                for _ in 0..served {
                    let w = (-wait_s * rng.r#gen::<f64>().max(1e-9).ln()) as i64;
                    *hist.entry(w / WAIT_BUCKET_S).or_insert(0i64) += 1;
                    sum += w;
                    max = max.max(w);
                }
                let took = (served as f64 * service_s * (1.0 + 0.1 * normal(&mut rng))) as i64;
                c.execute(
                    "INSERT INTO stats_tickets(day, service, issued, called, served, no_show, \
                     wait_sum_s, wait_max_s, wait_hist, service_sum_s, source) \
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9, 'demo')",
                    params![day, s.code, issued, served, no_show, sum, max, hist_json(&hist), took.max(0)],
                )?;
                let mut left = issued;
                for (k, (hour, share)) in HOURS.iter().enumerate() {
                    let n = if k + 1 == HOURS.len() {
                        left
                    } else {
                        ((issued as f64 * share).round() as i64).min(left)
                    };
                    left -= n;
                    if n > 0 {
                        c.execute(
                            "INSERT INTO stats_arrivals(day, hour, service, issued) VALUES (?1, ?2, ?3, ?4)",
                            params![day, hour, s.code, n],
                        )?;
                    }
                }
                for (k, counter) in counters.iter().enumerate() {
                    let share = served / counters.len() as i64
                        + i64::from((k as i64) < served % counters.len() as i64);
                    c.execute(
                        "INSERT INTO stats_counters(day, counter, service, served, service_sum_s) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![day, counter, s.code, share, (share as f64 * service_s) as i64],
                    )?;
                }
            }
        }
        let stms: Vec<String> = cfg
            .devices
            .iter()
            .filter(|d| d.kind == crate::config::DeviceKind::Stm)
            .map(|d| d.id.clone())
            .collect();
        const TXNS: [(&str, f64, i64); 7] = [
            ("withdrawal", 38.0, 1500),
            ("deposit", 22.0, 2200),
            ("transfer", 16.0, 30000),
            ("issue_card", 8.0, 0),
            ("open_account", 4.0, 0),
            ("wealth_purchase", 3.0, 50000),
            ("statement", 10.0, 0),
        ];
        const ITEMS: [(&str, f64); 5] = [
            ("debit_card", 9.0),
            ("ukey", 3.0),
            ("cheque_book", 1.0),
            ("deposit_cert", 2.0),
            ("receipt_paper_pct", 4.0),
        ];
        for (di, dev) in stms.iter().enumerate() {
            let scale = if di == 0 { 1.0 } else { 0.7 };
            for (ti, (kind, base, amount)) in TXNS.iter().enumerate() {
                let v = synthetic(first, days, base * scale, &cfg.stats, 100 + (di * 10 + ti) as u64);
                for (i, n) in v.iter().enumerate() {
                    if *n > 0.0 {
                        c.execute(
                            "INSERT INTO stats_txns(day, device_id, txn_type, count, ok, amount, \
                             duration_sum_s) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
                            params![
                                (first + Duration::days(i as i64)).to_string(),
                                dev,
                                kind,
                                *n as i64,
                                *n as i64 * amount,
                                *n as i64 * 95
                            ],
                        )?;
                    }
                }
            }
            for (ii, (item, base)) in ITEMS.iter().enumerate() {
                let v = synthetic(first, days, base * scale, &cfg.stats, 300 + (di * 10 + ii) as u64);
                for (i, n) in v.iter().enumerate() {
                    if *n > 0.0 {
                        c.execute(
                            "INSERT INTO stats_vouchers(day, device_id, item, used) VALUES (?1, ?2, ?3, ?4)",
                            params![(first + Duration::days(i as i64)).to_string(), dev, item, *n as i64],
                        )?;
                    }
                }
            }
            let out = synthetic(first, days, 60.0 * scale, &cfg.stats, 500 + di as u64);
            let inn = synthetic(first, days, 25.0 * scale, &cfg.stats, 600 + di as u64);
            for i in 0..days {
                let (o, n) = (out[i] as i64, inn[i] as i64);
                if o == 0 && n == 0 {
                    continue;
                }
                let day = (first + Duration::days(i as i64)).to_string();
                c.execute(
                    "INSERT INTO stats_cash(day, device_id, deposited, dispensed) VALUES (?1, ?2, ?3, ?4)",
                    params![day, dev, n * 100 + n * 40, o * 100 * 3 / 4 + o * 50 / 4 * 2],
                )?;
                c.execute(
                    "INSERT INTO stats_cash_cassettes(day, device_id, cassette, denom, notes_out, notes_in) \
                     VALUES (?1, ?2, 'C1', 100, ?3, ?4), (?1, ?2, 'C2', 50, ?5, 0)",
                    params![day, dev, o * 3 / 4, n, o / 2],
                )?;
            }
            for i in (0..days).step_by(9) {
                let day = (first + Duration::days((i + di * 4) as i64 % days as i64)).to_string();
                let (code, took) = if i % 2 == 0 { ("CASH_JAM", 900) } else { ("PRINTER_PAPER", 420) };
                c.execute(
                    "INSERT INTO stats_exceptions(day, device_id, module, code, raised, resolved, \
                     resolve_sum_s, resolve_max_s) VALUES (?1, ?2, ?3, ?4, 1, 1, ?5, ?5) \
                     ON CONFLICT DO NOTHING",
                    params![day, dev, super::rollup::module_of(code), code, took],
                )?;
            }
        }
        Ok(())
    })
}
