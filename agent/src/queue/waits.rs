//! Wait alerts: a ticket waiting past its service's target raises a `queue.alert` (level 1,
//! a warning to lobby managers), and again at twice the target (level 2, critical).
//!
//! The timers are derived from the stored issue times and the alert level already raised,
//! so after a restart they fire exactly when they would have; nothing is kept in memory.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde_json::json;

use super::Queue;
use super::ops;
use super::tickets::{QueueError, Ticket, TicketState, open_tickets_tx};
use crate::alerts::{self, Level, NewAlert};
use crate::clock::business_day;
use crate::config::Config;
use crate::store::Tx;

fn threshold(cfg: &Config, t: &Ticket, level: u8) -> Option<DateTime<Utc>> {
    let target = cfg.service(&t.service)?.target_wait;
    let d = chrono::Duration::from_std(target * u32::from(level)).ok()?;
    Some(t.issued_at + d)
}

/// When the next wait alert falls due today: for each service and alert level, the
/// threshold of its longest-waiting ticket (a lookup in an index per service and level,
/// not a read of every ticket: the timer looks again after every queue change).
pub fn next_due(
    c: &Connection,
    cfg: &Config,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, QueueError> {
    let mut stmt = c.prepare_cached(
        "SELECT MIN(issued_at) FROM queue_tickets \
         WHERE state = 'waiting' AND day = ?1 AND service = ?2 AND alert_level = ?3",
    )?;
    let day = business_day(cfg, now);
    let mut due: Option<DateTime<Utc>> = None;
    for svc in &cfg.services {
        for level in 0..2u8 {
            let oldest: Option<String> =
                stmt.query_row(rusqlite::params![day, svc.code, level], |r| r.get(0))?;
            let Some(issued_at) = oldest.as_deref().and_then(crate::clock::parse) else {
                continue;
            };
            if let Ok(d) = chrono::Duration::from_std(svc.target_wait * u32::from(level + 1)) {
                let at = issued_at + d;
                due = Some(due.map_or(at, |x| x.min(at)));
            }
        }
    }
    Ok(due)
}

/// Raise every wait alert due at `now` (one transaction; each with its `queue.alert`).
/// Returns how many were raised.
pub fn raise_due(tx: &mut Tx<'_>, cfg: &Config, now: DateTime<Utc>) -> Result<usize, QueueError> {
    let day = business_day(cfg, now);
    let open = open_tickets_tx(tx, &day)?;
    let mut raised = 0;
    for t in open.iter().filter(|t| t.state == TicketState::Waiting) {
        let Some(svc) = cfg.service(&t.service) else {
            continue;
        };
        let mut level = t.alert_level;
        while level < 2 && threshold(cfg, t, level + 1).is_some_and(|at| at <= now) {
            level += 1;
        }
        if level == t.alert_level {
            continue;
        }
        let waited = super::policy::waited_s(t.issued_at, now);
        let target = svc.target_wait.as_secs();
        let message = if level == 1 {
            format!(
                "ticket {} ({}) has waited {} min, past the target of {} min",
                t.number,
                svc.name,
                waited / 60,
                target / 60
            )
        } else {
            format!(
                "ticket {} ({}) has waited {} min, twice the target of {} min",
                t.number,
                svc.name,
                waited / 60,
                target / 60
            )
        };
        let data = json!({"number": t.number, "service": t.service, "level": level,
                          "waited_s": waited, "target_wait_s": target,
                          "waited_min": waited / 60, "target_wait_min": target / 60,
                          "audience": "lobby_manager"});
        let key = ops::wait_alert_key(t.id, level);
        let id = alerts::raise(
            tx,
            &NewAlert {
                kind: "queue.wait",
                level: if level == 1 {
                    Level::Warning
                } else {
                    Level::Critical
                },
                source: Some(&t.service),
                key: Some(&key),
                message: &message,
                data: data.clone(),
            },
        )?;
        if level == 2 {
            alerts::clear(tx, &ops::wait_alert_key(t.id, 1))?;
        }
        let mut ev = data;
        ev["id"] = json!(id);
        ev["alert_id"] = json!(id);
        ev["kind"] = json!("queue.wait");
        ev["level"] = json!(if level == 1 { "warn" } else { "critical" });
        ev["alert_level"] = json!(level);
        ev["message"] = json!(message);
        tx.emit("queue.alert", ev)?;
        tx.conn()
            .prepare_cached("UPDATE queue_tickets SET alert_level = ?1 WHERE id = ?2")?
            .execute(rusqlite::params![i64::from(level), t.id])?;
        raised += 1;
    }
    Ok(raised)
}

/// The alert timer: sleeps until the next threshold (or a queue change), raises what is due.
pub async fn run(queue: Queue) {
    let core = queue.core.clone();
    loop {
        // the service targets as head office last set them (`config.update` applies them live)
        let cfg = core.config();
        let now = queue.now();
        let c2 = cfg.clone();
        let next = core.store.read(move |c| next_due(c, &c2, now)).await;
        let wait = match next {
            Ok(Some(at)) if at <= now => {
                let c3 = cfg.clone();
                match core.store.write(move |tx| raise_due(tx, &c3, now)).await {
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot raise queue wait alerts");
                        Some(Duration::from_secs(5))
                    }
                }
            }
            Ok(Some(at)) => {
                Some((at - now).to_std().unwrap_or_default() + Duration::from_millis(5))
            }
            // Nothing to watch: wait for the next change.
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the queue for wait alerts");
                Some(Duration::from_secs(5))
            }
        };
        let sleep = async {
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = core.cancel.cancelled() => return,
            _ = queue.inner.changed.notified() => {}
            _ = sleep => {}
        }
    }
}
