//! Subscriptions that never lose an event.
//!
//! The in-process bus is a bounded broadcast channel: a receiver that falls more than its
//! capacity behind is told it lagged, and the events it missed are gone from the channel —
//! but not from the outbox. A [`Follower`] subscribes to the bus *before* it reads any
//! backlog, drops whatever it has already returned, and refills from the `events` table
//! whenever it lags or sees a gap; so it returns every committed event once, in `seq`
//! order, however slow it is. The SSE stream, the order timers, the arrival links and the
//! demo all follow the store this way.
//!
//! A consumer whose work must survive a restart (a ticket linked to its order, to its VIP's
//! arrival) keeps a durable [`Cursor`] in the `followers` table and records it in the same
//! transaction as its effect ([`consume`]): an event is handled exactly once, including the
//! events committed while the daemon was down.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Event, Store, StoreError, Tx};

/// Events read from the outbox per refill.
const BACKFILL: usize = 500;

/// Every event committed after a given `seq`, in order, each once.
pub struct Follower {
    rx: broadcast::Receiver<Arc<Event>>,
    store: Store,
    last: u64,
    pending: VecDeque<Event>,
    more_in_db: bool,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("last", &self.last)
            .finish()
    }
}

impl Follower {
    pub(super) fn new(store: Store, after: u64) -> Follower {
        // Subscribe first: nothing committed from here on can slip between the backlog
        // and the bus.
        let rx = store.subscribe();
        let committed = *store.committed().borrow();
        Follower {
            rx,
            store,
            last: after,
            pending: VecDeque::new(),
            more_in_db: after < committed,
        }
    }

    /// The `seq` of the last event returned (or the starting point).
    pub fn last(&self) -> u64 {
        self.last
    }

    async fn refill(&mut self) -> Result<(), StoreError> {
        let events = self.store.events_after(self.last, BACKFILL).await?;
        self.more_in_db = events.len() == BACKFILL;
        self.pending.extend(events);
        Ok(())
    }

    /// The next committed event. Waits for one to commit; `Err(Closed)` once the store is
    /// gone. Cancel-safe: dropping the future loses nothing.
    pub async fn next(&mut self) -> Result<Event, StoreError> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                if ev.seq <= self.last {
                    continue;
                }
                self.last = ev.seq;
                return Ok(ev);
            }
            if self.more_in_db {
                self.refill().await?;
                continue;
            }
            match self.rx.recv().await {
                Ok(ev) if ev.seq <= self.last => continue,
                Ok(ev) if ev.seq == self.last + 1 => {
                    self.last = ev.seq;
                    return Ok((*ev).clone());
                }
                // A gap (subscribed while a backlog was committing) or a lag: the outbox
                // has everything, in order.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => self.refill().await?,
                Err(broadcast::error::RecvError::Closed) => return Err(StoreError::Closed),
            }
        }
    }
}

/// The saved position of a named durable consumer (the `seq` of the last event handled).
pub fn cursor_get(c: &Connection, name: &str) -> Result<Option<u64>, StoreError> {
    Ok(
        c.query_row("SELECT seq FROM followers WHERE name = ?1", [name], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
        .map(|s| s as u64),
    )
}

/// Save a named consumer's position (in the caller's transaction).
pub fn cursor_set(tx: &Tx<'_>, name: &str, seq: u64) -> Result<(), StoreError> {
    tx.conn().execute(
        "INSERT INTO followers(name, seq) VALUES (?1, ?2) \
         ON CONFLICT(name) DO UPDATE SET seq = max(seq, excluded.seq)",
        params![name, seq as i64],
    )?;
    Ok(())
}

/// A durable consumer's position: saved with each event it handles; the events it passes
/// over are saved now and then (after a restart they are simply looked at again).
#[derive(Debug, Clone)]
pub struct Cursor {
    name: &'static str,
    saved: u64,
    at: u64,
}

impl Cursor {
    pub(super) fn new(name: &'static str, at: u64, saved: bool) -> Cursor {
        Cursor {
            name,
            // A consumer seen for the first time has nothing saved yet.
            saved: if saved { at } else { 0 },
            at,
        }
    }

    /// The consumer's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Events passed over since the last save.
    pub fn unsaved(&self) -> u64 {
        self.at.saturating_sub(self.saved)
    }

    /// Save the position now.
    pub async fn save(&mut self, store: &Store) -> Result<(), StoreError> {
        if self.at == self.saved {
            return Ok(());
        }
        let (name, at) = (self.name, self.at);
        store.write(move |tx| cursor_set(tx, name, at)).await?;
        self.saved = at;
        Ok(())
    }
}

/// Save a passed-over position after this many events…
const SAVE_EVERY: u64 = 1000;
/// …or after this long without an event.
const SAVE_IDLE: Duration = Duration::from_secs(5);
/// Pause before retrying a failed read or write.
const RETRY: Duration = Duration::from_secs(1);

/// Run the durable consumer `name` until `cancel`: every committed event after its cursor
/// for which `wants` is true is handled by `handle` in one write transaction that also
/// saves the cursor, so each is handled exactly once, across restarts too. A failed
/// handling is retried (nothing is skipped); the consumer stops when the store closes.
pub async fn consume<W, H>(
    store: Store,
    name: &'static str,
    cancel: CancellationToken,
    wants: W,
    handle: H,
) where
    W: Fn(&Event) -> bool,
    H: Fn(&mut Tx<'_>, &Event) -> Result<(), StoreError> + Clone + Send + 'static,
{
    let (mut follower, mut cursor) = loop {
        match store.follow_cursor(name).await {
            Ok(f) => break f,
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::warn!(consumer = name, error = %e, "cannot read the consumer's position");
                if !pause(&cancel).await {
                    return;
                }
            }
        }
    };
    // Known from now on, so the events committed while the daemon is down are not missed.
    save(&store, &mut cursor).await;
    loop {
        let idle = cursor.unsaved() > 0;
        let ev = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(SAVE_IDLE), if idle => {
                save(&store, &mut cursor).await;
                continue;
            }
            ev = follower.next() => ev,
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::warn!(consumer = name, error = %e, "cannot read the next event");
                if !pause(&cancel).await {
                    break;
                }
                continue;
            }
        };
        let seq = ev.seq;
        if !wants(&ev) {
            cursor.at = seq;
            if cursor.unsaved() >= SAVE_EVERY {
                save(&store, &mut cursor).await;
            }
            continue;
        }
        let ev = Arc::new(ev);
        loop {
            let (h, e) = (handle.clone(), ev.clone());
            let r = store
                .write(move |tx| {
                    h(tx, &e)?;
                    cursor_set(tx, name, e.seq)
                })
                .await;
            match r {
                Ok(()) => {
                    cursor.at = seq;
                    cursor.saved = seq;
                    break;
                }
                Err(StoreError::Closed) => return,
                Err(e) => {
                    tracing::warn!(consumer = name, seq, error = %e, "cannot handle an event; retrying");
                    if !pause(&cancel).await {
                        save(&store, &mut cursor).await;
                        return;
                    }
                }
            }
        }
    }
    save(&store, &mut cursor).await;
}

async fn save(store: &Store, cursor: &mut Cursor) {
    if let Err(e) = cursor.save(store).await {
        tracing::debug!(consumer = cursor.name, error = %e, "cannot save the consumer's position");
    }
}

/// Wait before a retry; false when cancelled meanwhile.
async fn pause(cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(RETRY) => true,
    }
}
