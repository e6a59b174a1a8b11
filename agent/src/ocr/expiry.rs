//! Whether an ID card is still valid (证件到期): its `valid_to` (有效期限, a date or 长期)
//! judged against the branch's local date. A card is valid through its last day; within
//! [`SOON_DAYS`] of it the staff get a hint, after it a red flag. The date is the photo's
//! (a back side's `valid_to`, the side in the staff's hands) or, for a photo without one,
//! the chip's when a reader read the same card (its ID number matched the photo's).

use branchd_drivers::idreader::Validity;
use chrono::NaiveDate;
use serde::Serialize;

/// How many days ahead an expiry is worth a hint.
pub const SOON_DAYS: i64 = 30;

/// Where the validity date came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DateSource {
    /// The chip a reader read.
    Chip,
    /// The photo's `valid_to` field.
    Photo,
}

/// What the PAD shows about the card's validity: a code it finds in its locales, with
/// parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hint {
    /// `id_expired` or `id_expires_soon`.
    pub code: &'static str,
    /// `days`: days left (`id_expires_soon`) or days since the last valid day (`id_expired`).
    pub params: serde_json::Value,
}

/// The card's validity (`expiry` in the OCR answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expiry {
    /// Where the date came from.
    pub source: DateSource,
    /// 长期: the card does not expire.
    pub long_term: bool,
    /// The last valid day is before the branch's local date.
    pub expired: bool,
    /// Within [`SOON_DAYS`] of the last valid day (0: today is the last valid day).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<i64>,
    /// What to tell the staff, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<Hint>,
}

impl Expiry {
    /// Whether the hint is `id_expires_soon`.
    pub fn expires_soon(&self) -> bool {
        self.expires_in_days.is_some()
    }
}

/// A photo's `valid_to` value as the field extraction writes it (`YYYY-MM-DD` or 长期).
pub fn parse_valid_to(value: &str) -> Option<Validity> {
    let v = value.trim();
    if v == "长期" {
        return Some(Validity::LongTerm);
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .map(Validity::Until)
}

/// Judge a validity against `today` (the branch's local date).
pub fn judge(validity: Validity, source: DateSource, today: NaiveDate) -> Expiry {
    let last = match validity {
        Validity::LongTerm => {
            return Expiry {
                source,
                long_term: true,
                expired: false,
                expires_in_days: None,
                hint: None,
            };
        }
        Validity::Until(d) => d,
    };
    let days = (last - today).num_days();
    let (expired, soon) = (days < 0, (0..=SOON_DAYS).contains(&days));
    let hint = if expired {
        Some(Hint {
            code: "id_expired",
            params: serde_json::json!({"days": -days}),
        })
    } else if soon {
        Some(Hint {
            code: "id_expires_soon",
            params: serde_json::json!({"days": days}),
        })
    } else {
        None
    };
    Expiry {
        source,
        long_term: false,
        expired,
        expires_in_days: soon.then_some(days),
        hint,
    }
}

/// The card's validity from the photo's `valid_to` (a back side), else from the chip of
/// the same card (`chip`: only when the chip check matched the photo's ID number); `None`
/// when neither gives a date.
pub fn of(
    photo_valid_to: Option<&str>,
    chip: Option<Validity>,
    today: NaiveDate,
) -> Option<Expiry> {
    match (photo_valid_to.and_then(parse_valid_to), chip) {
        (Some(v), _) => Some(judge(v, DateSource::Photo, today)),
        (None, Some(v)) => Some(judge(v, DateSource::Chip, today)),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn photo(valid_to: &str, today: &str) -> Expiry {
        of(Some(valid_to), None, day(today)).unwrap()
    }

    #[test]
    fn a_card_past_its_last_day_is_expired_with_a_red_flag() {
        let e = photo("2026-12-01", "2026-12-07");
        assert!(e.expired);
        assert!(!e.expires_soon());
        assert_eq!(e.hint.as_ref().unwrap().code, "id_expired");
        assert_eq!(e.hint.unwrap().params["days"], 6);
        assert_eq!(e.source, DateSource::Photo);
    }

    #[test]
    fn a_card_is_valid_through_its_last_day_and_expired_the_day_after() {
        let last = photo("2026-12-07", "2026-12-07");
        assert!(!last.expired);
        assert_eq!(last.expires_in_days, Some(0));
        assert_eq!(last.hint.unwrap().code, "id_expires_soon");
        let after = photo("2026-12-06", "2026-12-07");
        assert!(after.expired);
        assert_eq!(after.expires_in_days, None);
    }

    #[test]
    fn within_thirty_days_is_a_hint_with_the_days_left_and_later_is_nothing() {
        let soon = photo("2027-01-06", "2026-12-07");
        assert!(!soon.expired);
        assert_eq!(soon.expires_in_days, Some(30));
        assert_eq!(soon.hint.unwrap().params, serde_json::json!({"days": 30}));
        let later = photo("2027-01-07", "2026-12-07");
        assert!(!later.expired);
        assert_eq!(later.expires_in_days, None);
        assert_eq!(later.hint, None);
    }

    #[test]
    fn the_last_valid_day_is_judged_by_the_branch_clock_not_utc() {
        let cfg = crate::config::Config::parse(
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\nutc_offset = \"+08:00\"\n\
             [http]\nlisten = \"0.0.0.0:1\"\n",
        )
        .unwrap();
        use chrono::TimeZone;
        // 00:30 on the 7th in the branch (+08:00) is still the 6th in UTC, and the branch's
        // date stays the 7th before the queue's 04:00 reset too.
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 12, 6, 16, 30, 0)
            .unwrap();
        let today = crate::clock::local_date(&cfg, now);
        assert_eq!(today, day("2026-12-07"));
        assert!(of(Some("2026-12-06"), None, today).unwrap().expired);
        let before_midnight = crate::clock::local_date(&cfg, now - chrono::Duration::hours(1));
        assert!(
            !of(Some("2026-12-06"), None, before_midnight)
                .unwrap()
                .expired
        );
    }

    #[test]
    fn a_long_term_card_never_expires() {
        let e = photo("长期", "2099-12-31");
        assert!(e.long_term);
        assert!(!e.expired);
        assert_eq!(e.expires_in_days, None);
        assert_eq!(e.hint, None);
    }

    #[test]
    fn the_photo_date_comes_first_then_the_chip_and_no_date_means_no_judgement() {
        let chip = Some(Validity::Until(day("2030-01-01")));
        let back = of(Some("2020-01-01"), chip, day("2026-12-07")).unwrap();
        assert_eq!(back.source, DateSource::Photo);
        assert!(back.expired);
        let front = of(None, chip, day("2026-12-07")).unwrap();
        assert_eq!(front.source, DateSource::Chip);
        assert!(!front.expired);
        assert_eq!(of(None, None, day("2026-12-07")), None);
        assert_eq!(of(Some("2035-13-40"), None, day("2026-12-07")), None);
    }
}
