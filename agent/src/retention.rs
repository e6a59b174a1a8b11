//! Retention: each module names the tables it owns that grow with use, and when a row of
//! one is finished and past its `[retention]` period; once a day (and a minute after start)
//! this task deletes such rows in small batches, each its own transaction, so the writer is
//! never held for long. Tables that do not grow with use are named too, with the reason
//! ([`Bounded`]), and a test fails on any table named by neither.
//!
//! Deleted rows are overwritten on disk (`secure_delete`), and their pages are reused by the
//! rows that come after; the file does not shrink, it stops growing.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::rfc3339;
use crate::config::Config;
use crate::core::Core;
use crate::store::StoreError;

/// How a rule's cut-off is written, as the column it is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cutoff {
    /// An RFC 3339 timestamp (`2026-12-06T09:15:02.318Z`).
    Time,
    /// A business date (`2026-12-06`).
    Day,
}

/// One table's retention.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The table.
    pub table: &'static str,
    /// The condition on a row that may go, with `?1` the cut-off (rows older than it).
    pub old: &'static str,
    /// How the cut-off is written.
    pub cutoff: Cutoff,
    /// How long rows are kept.
    pub keep: fn(&Config) -> Duration,
}

/// A table that does not grow with use, and why.
#[derive(Debug, Clone, Copy)]
pub struct Bounded {
    /// The table.
    pub table: &'static str,
    /// Why it stays small (or who prunes it).
    pub why: &'static str,
}

/// The foundation's tables that grow: the audit trail and finished alerts.
pub const FOUNDATION: &[Rule] = &[
    Rule {
        table: "audit",
        old: "ts < ?1",
        cutoff: Cutoff::Time,
        keep: |c| c.retention.audit,
    },
    // An alert with a key stands for a condition: it goes once cleared (acknowledged or
    // not, it stays while the condition lasts). One without a key is a notification: it
    // goes after its acknowledgement, or after being raised if nobody acknowledged it.
    Rule {
        table: "alerts",
        old: "coalesce(cleared_at, CASE WHEN key IS NULL THEN coalesce(acked_at, ts) END) < ?1",
        cutoff: Cutoff::Time,
        keep: |c| c.retention.alerts,
    },
];

/// The foundation's tables that do not grow with use.
pub const FOUNDATION_BOUNDED: &[Bounded] = &[
    Bounded {
        table: "meta",
        why: "a few keys (the sequence, marks of work in progress)",
    },
    Bounded {
        table: "users",
        why: "one row per staff account",
    },
    Bounded {
        table: "sessions",
        why: "deleted when they expire",
    },
    Bounded {
        table: "followers",
        why: "one row per durable consumer",
    },
    Bounded {
        table: "schema_versions",
        why: "one row per module",
    },
];

/// Rows deleted per transaction.
const BATCH: i64 = 2_000;
/// Pruning runs this long after start, then daily.
const FIRST_RUN: Duration = Duration::from_secs(60);
const EVERY: Duration = Duration::from_secs(24 * 3600);

impl Rule {
    /// The cut-off for a run at `now`.
    pub fn cutoff(&self, cfg: &Config, now: DateTime<Utc>) -> String {
        let keep = chrono::Duration::from_std((self.keep)(cfg)).unwrap_or(chrono::Duration::MAX);
        let at = now
            .checked_sub_signed(keep)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        match self.cutoff {
            Cutoff::Time => rfc3339(at),
            Cutoff::Day => at.date_naive().format("%Y-%m-%d").to_string(),
        }
    }
}

/// Delete, batch by batch, every row past its period; returns the rows deleted per table.
pub async fn prune(core: &Core, rules: &[Rule]) -> Result<Vec<(&'static str, usize)>, StoreError> {
    let now = core.clock.now();
    let mut done = Vec::new();
    for rule in rules {
        let cutoff = rule.cutoff(&core.cfg, now);
        let sql = format!(
            "DELETE FROM {t} WHERE rowid IN (SELECT rowid FROM {t} WHERE {old} LIMIT {BATCH})",
            t = rule.table,
            old = rule.old
        );
        let mut total = 0;
        loop {
            if core.cancel.is_cancelled() {
                return Ok(done);
            }
            let (sql, c) = (sql.clone(), cutoff.clone());
            let n = core
                .store
                .write(move |tx| Ok::<_, StoreError>(tx.conn().execute(&sql, [&c])?))
                .await?;
            total += n;
            if (n as i64) < BATCH {
                break;
            }
            tokio::task::yield_now().await;
        }
        if total > 0 {
            tracing::info!(table = rule.table, rows = total, "retention: pruned");
        }
        done.push((rule.table, total));
    }
    Ok(done)
}

/// Prune a minute after start and then daily, until the daemon stops.
pub fn start(core: &Core, rules: &'static [&'static [Rule]]) {
    let core2 = core.clone();
    core.spawn(async move {
        let mut wait = FIRST_RUN;
        loop {
            tokio::select! {
                _ = core2.cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = EVERY;
            for rules in rules {
                match prune(&core2, rules).await {
                    Ok(_) => {}
                    Err(StoreError::Closed) => return,
                    Err(e) => tracing::warn!(error = %e, "retention: prune failed; next time"),
                }
            }
        }
    });
}
