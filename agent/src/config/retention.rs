//! `[retention]`: how long the box keeps what grows with use. Every table that grows is
//! pruned past its period (the statistics keep their own roll-ups, `[stats] keep_days`);
//! only finished records go — open alerts, waiting tickets, running orders and unsent
//! events stay whatever their age. Head office's outbox is never pruned before head office
//! has acknowledged an event.
//!
//! ```toml
//! [retention]
//! status_history_days = 30   # STM status snapshots
//! device_days = 90           # STM events (their dedup), commands, resolved exceptions, decided authorisations
//! audit_days = 400           # the audit trail (≥ 365)
//! alerts_days = 90           # cleared alerts; notifications after their acknowledgement
//! commands_days = 30         # head-office command ids handled (kept past [mqtt] command_max_age_s)
//! arrivals_days = 30         # VIP arrivals (personal data)
//! tickets_days = 90          # lobby tickets (the statistics keep their roll-ups)
//! orders_days = 180          # delivered or cancelled orders, with their steps
//! leads_days = 90            # answered or expired leads, with their feedback
//! id_photos_days = 1         # chip photos, when [id_reader] keep_photo is on
//! outbox_days = 7            # events head office acknowledged (the PAD's stream resumes from them)
//! ```

use std::time::Duration;

use super::Section;

const DAY: u64 = 86_400;

/// `[retention]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// STM status snapshots.
    pub status_history: Duration,
    /// STM events, remote commands, resolved exceptions, decided authorisation tasks.
    pub device: Duration,
    /// The audit trail.
    pub audit: Duration,
    /// Cleared alerts, and notifications after their acknowledgement (or raising).
    pub alerts: Duration,
    /// Handled head-office command ids (at least the commands' maximum age, so a
    /// redelivery is still recognised).
    pub commands: Duration,
    /// VIP arrivals.
    pub arrivals: Duration,
    /// Lobby tickets.
    pub tickets: Duration,
    /// Finished orders.
    pub orders: Duration,
    /// Answered or expired leads.
    pub leads: Duration,
    /// Chip photos of ID cards.
    pub id_photos: Duration,
    /// Events head office acknowledged.
    pub outbox: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        let days = |d: u64| Duration::from_secs(d * DAY);
        Retention {
            status_history: days(30),
            device: days(90),
            audit: days(400),
            alerts: days(90),
            commands: days(30),
            arrivals: days(30),
            tickets: days(90),
            orders: days(180),
            leads: days(90),
            id_photos: days(1),
            outbox: days(7),
        }
    }
}

/// Read `[retention]` (absent: the defaults above).
pub fn read(root: &mut Section<'_, '_>) -> Option<Retention> {
    let mut r = Retention::default();
    let Some(mut s) = root.opt_table("retention") else {
        return Some(r);
    };
    // (key, field, fewest days)
    let fields: [(&str, &mut Duration, i64); 11] = [
        ("status_history_days", &mut r.status_history, 1),
        ("device_days", &mut r.device, 7),
        ("audit_days", &mut r.audit, 365),
        ("alerts_days", &mut r.alerts, 7),
        ("commands_days", &mut r.commands, 8),
        ("arrivals_days", &mut r.arrivals, 1),
        ("tickets_days", &mut r.tickets, 2),
        ("orders_days", &mut r.orders, 30),
        ("leads_days", &mut r.leads, 7),
        ("id_photos_days", &mut r.id_photos, 1),
        ("outbox_days", &mut r.outbox, 1),
    ];
    for (key, field, min) in fields {
        if let Some(d) = s.opt_int(key, min..=3660) {
            *field = Duration::from_secs(d as u64 * DAY);
        }
    }
    s.finish();
    Some(r)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(extra: &str) -> Result<Config, String> {
        Config::parse(&format!(
            "[branch]\nid = \"T1\"\nname = \"t\"\ndata_dir = \"/tmp/x\"\n[http]\nlisten = \"127.0.0.1:0\"\n{extra}"
        ))
        .map_err(|ps| ps.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
    }

    #[test]
    fn periods_are_read_in_days_and_too_short_ones_are_refused_with_their_key() {
        let c = parse("[retention]\naudit_days = 730\narrivals_days = 7\n").unwrap();
        assert_eq!(c.retention.audit.as_secs(), 730 * 86_400);
        assert_eq!(c.retention.arrivals.as_secs(), 7 * 86_400);
        assert_eq!(c.retention.orders.as_secs(), 180 * 86_400, "the default");
        let e = parse("[retention]\naudit_days = 30\n").unwrap_err();
        assert!(e.contains("audit_days"), "{e}");
        let e = parse("[retention]\nforever = true\n").unwrap_err();
        assert!(e.contains("forever"), "{e}");
    }
}
