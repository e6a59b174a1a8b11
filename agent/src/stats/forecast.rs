//! Daily forecasts with 80% and 95% intervals: MSTL (weekly seasonality) with an AutoETS
//! trend from `augurs` once there are four weeks of history, seasonal naive before that.
//! The branch's calendar is followed: closed days in the history are filled from the same
//! weekday a week before (so a holiday does not teach the model a false dip), closed days
//! ahead are forecast as zero, a make-up working day as an ordinary weekday of its week,
//! and the month-end peak the model leaves in its residuals is added back on month ends.
//! The intervals are calibrated on the history itself: fitted without its last four weeks,
//! the model's errors there say how much wider the intervals must be to hold 80% of the
//! outcomes (they are never narrowed).

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::prelude::{Fit, Predict};
use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde::Serialize;

use crate::config::{DayKind, StatsConfig};

/// Days of history from which MSTL + ETS is used (below: seasonal naive).
pub const MIN_MSTL_DAYS: usize = 28;

/// z of a central 80% normal interval.
const Z80: f64 = 1.281_551_565_5;
/// z of a central 95% normal interval.
const Z95: f64 = 1.959_963_985;

/// Which model made a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// MSTL (period 7) with an AutoETS trend.
    MstlEts,
    /// The same weekday last week.
    SeasonalNaive,
    /// The mean of the few days known.
    Mean,
    /// No history at all: zero.
    None,
}

/// One forecast day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    /// The date.
    pub date: NaiveDate,
    /// Point forecast.
    pub point: f64,
    /// 80% interval, low.
    pub lo80: f64,
    /// 80% interval, high.
    pub hi80: f64,
    /// 95% interval, low.
    pub lo95: f64,
    /// 95% interval, high.
    pub hi95: f64,
    /// The branch is closed that day.
    pub closed: bool,
}

/// A forecast and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// The model used.
    pub model: Model,
    /// Days of history it learnt from.
    pub history_days: usize,
    /// The days ahead.
    pub days: Vec<Day>,
}

fn is_month_end(d: NaiveDate) -> bool {
    (d + Duration::days(2)).month() != d.month()
}

/// Fill the closed days of a history (starting on `first`) from a week before, or the mean
/// of the open days.
fn impute(y: &[f64], first: NaiveDate, cal: &StatsConfig) -> Vec<f64> {
    let open: Vec<f64> = y
        .iter()
        .enumerate()
        .filter(|(i, _)| cal.day_kind(first + Duration::days(*i as i64)) != DayKind::Closed)
        .map(|(_, v)| *v)
        .collect();
    let mean = if open.is_empty() {
        0.0
    } else {
        open.iter().sum::<f64>() / open.len() as f64
    };
    let mut out: Vec<f64> = Vec::with_capacity(y.len());
    for (i, v) in y.iter().enumerate() {
        let d = first + Duration::days(i as i64);
        if cal.day_kind(d) == DayKind::Closed {
            out.push(if i >= 7 { out[i - 7] } else { mean });
        } else {
            out.push(*v);
        }
    }
    out
}

/// Forecast `horizon` days after a daily history `y` whose first value is for `first`
/// (the history ends the day before the forecast starts).
pub fn daily(y: &[f64], first: NaiveDate, horizon: usize, cal: &StatsConfig) -> Forecast {
    let start = first + Duration::days(y.len() as i64);
    let x = impute(y, first, cal);
    let (model, mut days) = match mstl(&x, first, horizon) {
        Some(days) => (Model::MstlEts, days),
        None => {
            let (m, d) = naive(&x, horizon);
            (m, d)
        }
    };
    // Dates, the calendar ahead, no negative counts.
    for (i, d) in days.iter_mut().enumerate() {
        d.date = start + Duration::days(i as i64);
    }
    let weekday_mean = |days: &[Day], f: fn(&Day) -> f64| -> Option<f64> {
        let v: Vec<f64> = days
            .iter()
            .filter(|d| {
                !matches!(d.date.weekday(), Weekday::Sat | Weekday::Sun)
                    && cal.day_kind(d.date) == DayKind::Open
            })
            .map(f)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let snapshot = days.clone();
    for d in &mut days {
        match cal.day_kind(d.date) {
            DayKind::Closed => {
                *d = Day {
                    date: d.date,
                    point: 0.0,
                    lo80: 0.0,
                    hi80: 0.0,
                    lo95: 0.0,
                    hi95: 0.0,
                    closed: true,
                };
            }
            DayKind::MakeUp if matches!(d.date.weekday(), Weekday::Sat | Weekday::Sun) => {
                if let Some(p) = weekday_mean(&snapshot, |d| d.point) {
                    let shift = p - d.point;
                    d.point += shift;
                    d.lo80 += shift;
                    d.hi80 += shift;
                    d.lo95 += shift;
                    d.hi95 += shift;
                }
            }
            _ => {}
        }
        d.point = d.point.max(0.0);
        d.lo80 = d.lo80.max(0.0);
        d.lo95 = d.lo95.max(0.0);
        d.hi80 = d.hi80.max(d.point);
        d.hi95 = d.hi95.max(d.hi80);
    }
    Forecast {
        model,
        history_days: y.len(),
        days,
    }
}

/// MSTL + AutoETS with the month-end residual added back; None when the history is too
/// short or the fit fails.
fn mstl(x: &[f64], first: NaiveDate, horizon: usize) -> Option<Vec<Day>> {
    fit_mstl(x, first, horizon, true)
}

/// MSTL + AutoETS without the interval calibration.
fn mstl_raw(x: &[f64], first: NaiveDate, horizon: usize) -> Option<Vec<Day>> {
    fit_mstl(x, first, horizon, false)
}

fn fit_mstl(x: &[f64], first: NaiveDate, horizon: usize, calibrate: bool) -> Option<Vec<Day>> {
    if x.len() < MIN_MSTL_DAYS || horizon == 0 {
        return None;
    }
    let model = MSTLModel::new(vec![7], AutoETS::non_seasonal().into_trend_model());
    let fit = model.fit(x).ok()?;
    let p80 = fit.predict(horizon, 0.8).ok()?;
    let p95 = fit.predict(horizon, 0.95).ok()?;
    let i80 = p80.intervals?;
    let i95 = p95.intervals?;
    // The month-end effect: the mean in-sample residual of month-end days, when the
    // history holds at least two month ends.
    let inside = fit.predict_in_sample(None).ok()?;
    let (mut sum, mut n, mut ends) = (0.0, 0usize, std::collections::BTreeSet::new());
    for (i, (yv, fv)) in x.iter().zip(&inside.point).enumerate() {
        let d = first + Duration::days(i as i64);
        if is_month_end(d) && fv.is_finite() {
            sum += yv - fv;
            n += 1;
            ends.insert((d.year(), d.month()));
        }
    }
    let bump = if ends.len() >= 2 && n > 0 {
        sum / n as f64
    } else {
        0.0
    };
    let widen = if calibrate {
        calibration(x, first)
    } else {
        1.0
    };
    let around = |p: f64, b: f64| p + (b - p) * widen;
    let start = first + Duration::days(x.len() as i64);
    let days = (0..horizon)
        .map(|h| {
            let d = start + Duration::days(h as i64);
            let b = if is_month_end(d) { bump } else { 0.0 };
            let p = p80.point[h];
            Day {
                date: d,
                point: p + b,
                lo80: around(p, i80.lower[h]) + b,
                hi80: around(p, i80.upper[h]) + b,
                lo95: around(p, i95.lower[h]) + b,
                hi95: around(p, i95.upper[h]) + b,
                closed: false,
            }
        })
        .collect::<Vec<_>>();
    days.iter()
        .all(|d| d.point.is_finite() && d.lo95.is_finite() && d.hi95.is_finite())
        .then_some(days)
}

/// Days held out of the history to calibrate the intervals.
const HOLDOUT: usize = 28;

/// How much wider the intervals must be to hold 80% of the outcomes: the model is fitted
/// without the last four weeks of history, and the 80th percentile of the errors there,
/// relative to the interval's half-width at each horizon, is the factor (never below 1:
/// intervals are only ever widened).
fn calibration(x: &[f64], first: NaiveDate) -> f64 {
    if x.len() < MIN_MSTL_DAYS + HOLDOUT {
        return 1.0;
    }
    let cut = x.len() - HOLDOUT;
    let Some(days) = mstl_raw(&x[..cut], first, HOLDOUT) else {
        return 1.0;
    };
    let mut r: Vec<f64> = days
        .iter()
        .zip(&x[cut..])
        .filter_map(|(d, y)| {
            let half = (d.hi80 - d.lo80) / 2.0;
            (half > 0.0).then(|| (y - d.point).abs() / half)
        })
        .collect();
    if r.is_empty() {
        return 1.0;
    }
    r.sort_by(f64::total_cmp);
    let q = r[((r.len() as f64 * 0.8).ceil() as usize).clamp(1, r.len()) - 1];
    q.max(1.0)
}

/// Seasonal naive (a week ago) with intervals from the spread of week-on-week changes;
/// the mean when less than a week is known.
pub fn naive(x: &[f64], horizon: usize) -> (Model, Vec<Day>) {
    let n = x.len();
    if n == 0 {
        let zero = Day {
            date: NaiveDate::MIN,
            point: 0.0,
            lo80: 0.0,
            hi80: 0.0,
            lo95: 0.0,
            hi95: 0.0,
            closed: false,
        };
        return (Model::None, vec![zero; horizon]);
    }
    let sd = |v: &[f64]| -> f64 {
        if v.len() < 2 {
            return 0.0;
        }
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    };
    let (model, sigma): (Model, f64) = if n >= 7 {
        let diffs: Vec<f64> = (7..n).map(|t| x[t] - x[t - 7]).collect();
        let s = if diffs.len() >= 2 {
            // Residuals of a seasonal random walk: their RMS.
            (diffs.iter().map(|d| d * d).sum::<f64>() / diffs.len() as f64).sqrt()
        } else {
            sd(x)
        };
        (Model::SeasonalNaive, s)
    } else {
        (Model::Mean, sd(x))
    };
    let mean = x.iter().sum::<f64>() / n as f64;
    let days = (0..horizon)
        .map(|h| {
            let (point, k) = if model == Model::SeasonalNaive {
                (x[n - 7 + h % 7], ((h / 7) + 1) as f64)
            } else {
                (mean, 1.0 + 1.0 / n as f64)
            };
            let w = sigma * k.sqrt();
            Day {
                date: NaiveDate::MIN,
                point,
                lo80: point - Z80 * w,
                hi80: point + Z80 * w,
                lo95: point - Z95 * w,
                hi95: point + Z95 * w,
                closed: false,
            }
        })
        .collect();
    (model, days)
}

/// How many whole days `remaining` lasts against a forecast of daily use (None: longer
/// than the forecast).
pub fn days_left(remaining: f64, days: &[Day]) -> Option<usize> {
    let mut left = remaining;
    for (i, d) in days.iter().enumerate() {
        left -= d.point;
        if left < 0.0 {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekly(n: usize, first: NaiveDate) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let d = first + Duration::days(i as i64);
                match d.weekday() {
                    Weekday::Sat | Weekday::Sun => 40.0,
                    _ => 100.0 + (i % 3) as f64,
                }
            })
            .collect()
    }

    #[test]
    fn short_history_uses_seasonal_naive_and_says_so() {
        let first = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(); // a Monday
        let y = weekly(14, first);
        let f = daily(&y, first, 7, &StatsConfig::default());
        assert_eq!((f.model, f.history_days), (Model::SeasonalNaive, 14));
        // 2026-11-16 is a Monday: last Monday's figure.
        assert_eq!(f.days[0].date.to_string(), "2026-11-16");
        assert_eq!(f.days[0].point, y[7]);
        assert!(f.days.iter().all(|d| d.lo95 <= d.lo80
            && d.lo80 <= d.point
            && d.point <= d.hi80
            && d.hi80 <= d.hi95));
    }

    #[test]
    fn long_history_uses_mstl_and_keeps_the_weekly_shape() {
        let first = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let y = weekly(140, first);
        let f = daily(&y, first, 14, &StatsConfig::default());
        assert_eq!(f.model, Model::MstlEts);
        for d in &f.days {
            let weekend = matches!(d.date.weekday(), Weekday::Sat | Weekday::Sun);
            let want = if weekend { 40.0 } else { 101.0 };
            assert!(
                (d.point - want).abs() < 8.0,
                "{}: {} vs {want}",
                d.date,
                d.point
            );
        }
    }

    #[test]
    fn the_calendar_closes_holidays_and_opens_make_up_days() {
        let first = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let y = weekly(140, first);
        let start = first + Duration::days(140); // 2026-10-19, a Monday
        let mut cal = StatsConfig::default();
        cal.closed_days.insert(start + Duration::days(2));
        cal.working_days.insert(start + Duration::days(5)); // the Saturday
        let f = daily(&y, first, 7, &cal);
        assert!(f.days[2].closed && f.days[2].point == 0.0 && f.days[2].hi95 == 0.0);
        assert!(
            f.days[5].point > 80.0,
            "a make-up Saturday is worked like a weekday"
        );
        assert!(f.days[6].point < 60.0, "an ordinary Sunday stays quiet");
    }

    #[test]
    fn days_left_counts_whole_days_of_forecast_use() {
        let day = |p| Day {
            date: NaiveDate::MIN,
            point: p,
            lo80: p,
            hi80: p,
            lo95: p,
            hi95: p,
            closed: false,
        };
        let days = vec![day(10.0); 5];
        assert_eq!(days_left(25.0, &days), Some(2));
        assert_eq!(days_left(100.0, &days), None);
    }
}
