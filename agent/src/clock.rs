//! Time in one place: the daemon's clock, the one timestamp format, the business day.
//!
//! Every stored timestamp is RFC 3339 UTC with milliseconds ([`rfc3339`]) and is read back
//! with [`parse`]. Timers and domain timestamps come from one [`Clock`]: the wall time at
//! start plus tokio's monotonic time since, so a paused test clock moves both together.

use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, Utc};
use tokio::time::Instant;

use crate::config::Config;

/// The daemon's clock: wall time at start plus the runtime's monotonic time since, so
/// timers and timestamps agree (and follow a paused clock in tests).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor_utc: DateTime<Utc>,
    anchor: Instant,
}

impl Clock {
    /// A clock starting at the current wall time.
    pub fn new() -> Clock {
        Clock::starting_at(Utc::now())
    }

    /// A clock reading `utc` now.
    pub fn starting_at(utc: DateTime<Utc>) -> Clock {
        Clock {
            anchor_utc: utc,
            anchor: Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        let since = Instant::now().saturating_duration_since(self.anchor);
        self.anchor_utc + ChronoDuration::from_std(since).unwrap_or(ChronoDuration::MAX)
    }

    /// The runtime instant at which this clock reads `t` (now, when `t` is past).
    pub fn instant_at(&self, t: DateTime<Utc>) -> Instant {
        match (t - self.anchor_utc).to_std() {
            Ok(d) => self.anchor + d,
            Err(_) => Instant::now(),
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// RFC 3339 with milliseconds and `Z`, the format of every stored timestamp.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Read a timestamp in RFC 3339 (any offset) as UTC.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The business day of `now`: the branch-local date, counted from `[queue] reset_hour`
/// (daily ticket numbering, the day's arrivals and figures).
pub fn business_day(cfg: &Config, now: DateTime<Utc>) -> String {
    let local = now.with_timezone(&cfg.branch.utc_offset)
        - ChronoDuration::hours(i64::from(cfg.queue.reset_hour));
    local.format("%Y-%m-%d").to_string()
}

/// When the business day after the one of `now` begins (`[queue] reset_hour`, branch-local).
pub fn next_business_day(cfg: &Config, now: DateTime<Utc>) -> DateTime<Utc> {
    let reset = ChronoDuration::hours(i64::from(cfg.queue.reset_hour));
    let local = now.with_timezone(&cfg.branch.utc_offset) - reset;
    let next_midnight = local.date_naive() + ChronoDuration::days(1);
    let start = next_midnight.and_hms_opt(0, 0, 0).unwrap_or_default() + reset;
    start
        .and_local_timezone(cfg.branch.utc_offset)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now + ChronoDuration::days(1))
}

/// The branch-local calendar date of the business day of `now`.
pub fn business_date(cfg: &Config, now: DateTime<Utc>) -> chrono::NaiveDate {
    (now.with_timezone(&cfg.branch.utc_offset)
        - ChronoDuration::hours(i64::from(cfg.queue.reset_hour)))
    .date_naive()
}

/// The branch-local calendar date at `now` (`branch.utc_offset`, midnight to midnight): the
/// day a document's validity is judged against.
pub fn local_date(cfg: &Config, now: DateTime<Utc>) -> chrono::NaiveDate {
    now.with_timezone(&cfg.branch.utc_offset).date_naive()
}

/// Whole seconds from `from` to `to`, never negative.
pub fn secs_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_seconds().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_round_trip_in_utc_with_milliseconds() {
        let t =
            Utc.with_ymd_and_hms(2026, 11, 23, 1, 5, 0).unwrap() + ChronoDuration::milliseconds(42);
        assert_eq!(rfc3339(t), "2026-11-23T01:05:00.042Z");
        assert_eq!(parse(&rfc3339(t)), Some(t));
        assert_eq!(parse("2026-11-23T09:05:00.042+08:00"), Some(t));
        assert_eq!(parse("yesterday"), None);
    }

    #[test]
    fn the_next_business_day_starts_at_the_reset_hour_branch_time() {
        let cfg = Config::parse(
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n",
        )
        .unwrap();
        // Beijing time, reset at 04:00: 03:59 on the 23rd still belongs to the 22nd.
        let cases = [
            ((2026, 11, 22, 19, 59), "2026-11-22", (2026, 11, 22, 20, 0)),
            ((2026, 11, 22, 20, 0), "2026-11-23", (2026, 11, 23, 20, 0)),
            ((2026, 11, 23, 1, 0), "2026-11-23", (2026, 11, 23, 20, 0)),
        ];
        for ((y, mo, d, h, mi), day, (ny, nmo, nd, nh, nmi)) in cases {
            let now = Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap();
            assert_eq!(business_day(&cfg, now), day, "{now}");
            assert_eq!(business_date(&cfg, now).to_string(), day, "{now}");
            let next = Utc.with_ymd_and_hms(ny, nmo, nd, nh, nmi, 0).unwrap();
            assert_eq!(next_business_day(&cfg, now), next, "{now}");
            assert_ne!(business_day(&cfg, next), day);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_follows_the_runtime_and_maps_times_to_instants() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 1, 0, 0).unwrap();
        let clock = Clock::starting_at(t0);
        tokio::time::advance(std::time::Duration::from_secs(90)).await;
        assert_eq!(clock.now(), t0 + ChronoDuration::seconds(90));
        let later = t0 + ChronoDuration::seconds(120);
        assert_eq!(
            clock.instant_at(later) - Instant::now(),
            std::time::Duration::from_secs(30)
        );
        assert!(clock.instant_at(t0) <= Instant::now(), "a past time is now");
    }
}
