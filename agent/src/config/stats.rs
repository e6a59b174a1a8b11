//! `[stats]`: how long the daily roll-ups are kept, and the branch's calendar — the days it
//! is closed and the make-up working days (调休) it opens although they fall on a closed
//! weekday — which the forecasts and the staffing plan follow.
//!
//! ```toml
//! [stats]
//! keep_days = 800                         # roll-ups older than this are deleted (≥ 400)
//! closed_weekdays = []                    # e.g. ["sun"]: the branch never opens on Sundays
//! closed_days = ["2027-02-16", "2027-02-17"]   # public holidays the branch is closed
//! working_days = ["2027-02-07"]           # make-up working days, open although a closed weekday
//! ```

use std::collections::{BTreeSet, HashSet};

use chrono::{Datelike, NaiveDate, Weekday};

use super::Section;

/// The fewest days of roll-ups a box may keep (a year and a month for year-on-year views).
pub const MIN_KEEP_DAYS: i64 = 400;

/// `[stats]`
#[derive(Debug, Clone, PartialEq)]
pub struct StatsConfig {
    /// Roll-ups older than this many days are deleted.
    pub keep_days: u32,
    /// Weekdays the branch never opens.
    pub closed_weekdays: HashSet<Weekday>,
    /// Dates the branch is closed (public holidays).
    pub closed_days: BTreeSet<NaiveDate>,
    /// Make-up working days: open, and worked like a weekday, whatever the weekday.
    pub working_days: BTreeSet<NaiveDate>,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            keep_days: 800,
            closed_weekdays: HashSet::new(),
            closed_days: BTreeSet::new(),
            working_days: BTreeSet::new(),
        }
    }
}

/// What kind of day a date is for the branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind {
    /// An ordinary open day.
    Open,
    /// A make-up working day (open, worked like a weekday).
    MakeUp,
    /// Closed: a public holiday or a closed weekday.
    Closed,
}

impl StatsConfig {
    /// What kind of day `d` is: a make-up day wins over a closed weekday, a closed day
    /// over everything.
    pub fn day_kind(&self, d: NaiveDate) -> DayKind {
        if self.closed_days.contains(&d) {
            DayKind::Closed
        } else if self.working_days.contains(&d) {
            DayKind::MakeUp
        } else if self.closed_weekdays.contains(&d.weekday()) {
            DayKind::Closed
        } else {
            DayKind::Open
        }
    }
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    match s {
        "mon" => Some(Weekday::Mon),
        "tue" => Some(Weekday::Tue),
        "wed" => Some(Weekday::Wed),
        "thu" => Some(Weekday::Thu),
        "fri" => Some(Weekday::Fri),
        "sat" => Some(Weekday::Sat),
        "sun" => Some(Weekday::Sun),
        _ => None,
    }
}

fn dates(s: &mut Section<'_, '_>, key: &str) -> BTreeSet<NaiveDate> {
    let mut out = BTreeSet::new();
    for d in s.opt_str_list(key).unwrap_or_default() {
        match NaiveDate::parse_from_str(&d, "%Y-%m-%d") {
            Ok(d) => {
                out.insert(d);
            }
            Err(_) => s.problem(key, format!("`{d}` is not a date (YYYY-MM-DD)")),
        }
    }
    out
}

/// Read `[stats]` (absent: 800 days kept, open every day).
pub fn read(root: &mut Section<'_, '_>) -> Option<StatsConfig> {
    let mut c = StatsConfig::default();
    let Some(mut s) = root.opt_table("stats") else {
        return Some(c);
    };
    if let Some(d) = s.opt_int("keep_days", MIN_KEEP_DAYS..=3660) {
        c.keep_days = d as u32;
    }
    for w in s.opt_str_list("closed_weekdays").unwrap_or_default() {
        match parse_weekday(&w) {
            Some(w) => {
                c.closed_weekdays.insert(w);
            }
            None => s.problem(
                "closed_weekdays",
                format!("`{w}` is not a weekday (mon, tue, wed, thu, fri, sat, sun)"),
            ),
        }
    }
    c.closed_days = dates(&mut s, "closed_days");
    c.working_days = dates(&mut s, "working_days");
    if let Some(d) = c.closed_days.intersection(&c.working_days).next() {
        s.problem(
            "working_days",
            format!("{d} is also in closed_days: a day is either closed or a make-up working day"),
        );
    }
    s.finish();
    Some(c)
}
