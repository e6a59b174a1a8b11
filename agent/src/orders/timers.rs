//! Step timers and the arrival link, in one task on the app's tracker.
//!
//! Nothing about a timer is held in memory: each pass reads the running steps, computes
//! every step's next level (near-timeout, timeout, recall) from its stored `started_at`
//! and service time, and sleeps until the earliest. A restart therefore recomputes every
//! timer; a level already past is applied at once. Any committed event wakes the task to
//! recompute (a step started, finished or recalled elsewhere), and a `ticket.issued` with
//! an `appointment_id` links the ticket to its order.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::model::{self, Due};
use crate::store::{Event, Store, StoreError};

/// The module's clock: wall time at start plus the runtime's monotonic time since, so
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
        self.anchor_utc + chrono::Duration::from_std(since).unwrap_or(chrono::Duration::MAX)
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

/// Run until `cancel`: fire timer levels as they fall due, link arriving tickets.
pub async fn run(store: Store, clock: Clock, cancel: CancellationToken) {
    let mut bus = store.subscribe();
    loop {
        let next = match store.read(model::due_levels).await {
            Ok(d) => d.into_iter().next(),
            Err(e) => {
                tracing::warn!(error = %e, "order timers: cannot read the running steps");
                None
            }
        };
        let wake = next
            .as_ref()
            .map(|d| clock.instant_at(d.at))
            .unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(wake) => {
                if let Some(due) = next {
                    if let Err(e) = fire(&store, &clock, due).await {
                        tracing::warn!(error = %e, "order timers: cannot apply a timer level");
                    }
                }
            }
            ev = bus.recv() => match ev {
                Ok(ev) => {
                    if let Err(e) = on_event(&store, &ev).await {
                        tracing::warn!(error = %e, "orders: cannot link an arrival");
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "orders: fell behind the event bus");
                }
                Err(RecvError::Closed) => return,
            },
        }
    }
}

/// Apply one due level. The write runs on the blocking pool (a paused test clock does
/// not jump while it runs).
pub async fn fire(store: &Store, clock: &Clock, due: Due) -> Result<bool, StoreError> {
    let store = store.clone();
    let now = clock.now();
    tokio::task::spawn_blocking(move || {
        store.write_blocking(move |tx| model::apply_level(tx, &due, now))
    })
    .await
    .map_err(|_| StoreError::Closed)?
}

/// A `ticket.issued` with an `appointment_id` links the ticket to that order.
pub async fn on_event(store: &Store, ev: &Arc<Event>) -> Result<bool, StoreError> {
    if ev.kind != "ticket.issued" {
        return Ok(false);
    }
    let (Some(order), Some(ticket)) = (
        ev.data.get("appointment_id").and_then(|v| v.as_str()),
        ev.data.get("number").and_then(|v| v.as_str()),
    ) else {
        return Ok(false);
    };
    let (order, ticket) = (order.to_string(), ticket.to_string());
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        store.write_blocking(move |tx| model::link_ticket(tx, &order, &ticket))
    })
    .await
    .map_err(|_| StoreError::Closed)?
}
