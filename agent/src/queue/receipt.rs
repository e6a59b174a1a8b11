//! The receipt (回单) of a delivered order, printed on the ticket printer: the order, its
//! business, each step with its start and finish times, when it was delivered, and a QR
//! code that opens the customer's page ([`super::visit`]) where they rate it.
//!
//! The queue follows `order.completed` on the event stream, as it follows `order.urged`:
//! the orders module does not know the printer. The position is saved after each receipt
//! has gone to the printer, so a receipt is printed at least once across restarts (a stop
//! between the paper and the save prints it again).

use std::time::Duration;

use branchd_drivers::printer::{Receipt, ReceiptStep};
use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::Queue;
use super::link::{self, Kind};
use crate::clock::parse;
use crate::config::Config;
use crate::orders::model as orders;
use crate::store::{Event, StoreError, cursor_set};

/// The consumer's name (its position in the event stream).
pub const RECEIPTS: &str = "queue.receipts";
/// Passed-over events are saved after this long without an event…
const SAVE_IDLE: Duration = Duration::from_secs(5);
/// …or after this many (the outbox is not pruned past the position saved).
const SAVE_EVERY: u64 = 1000;

/// Whether `ev` delivers an order.
pub fn is_delivery(ev: &Event) -> bool {
    ev.kind == "order.completed" && ev.data["id"].is_string()
}

fn local(cfg: &Config, at: Option<&str>, fmt: &str) -> String {
    at.and_then(parse)
        .map(|t| {
            t.with_timezone(&cfg.branch.utc_offset)
                .format(fmt)
                .to_string()
        })
        .unwrap_or_default()
}

/// The receipt of order `id` with `qr_data` in its QR code; `None` when the order is gone.
pub fn receipt(
    c: &Connection,
    cfg: &Config,
    id: &str,
    qr_data: String,
) -> Result<Option<Receipt>, StoreError> {
    let Some(o) = orders::get(c, id)? else {
        return Ok(None);
    };
    let steps = orders::steps(c, id)?
        .into_iter()
        .map(|s| ReceiptStep {
            label: s.spec.customer_label.clone().unwrap_or(s.spec.name.clone()),
            started: local(cfg, s.started_at.as_deref(), "%H:%M"),
            finished: local(cfg, s.finished_at.as_deref(), "%H:%M"),
        })
        .collect();
    Ok(Some(Receipt {
        bank_name: cfg.branch.bank_name.clone(),
        branch_name: cfg.branch.name.clone(),
        order_id: o.id,
        title: o.title,
        business_type: o.business_type,
        steps,
        delivered_at: local(cfg, o.delivered_at.as_deref(), "%Y-%m-%d %H:%M"),
        qr_data,
    }))
}

impl Queue {
    /// Print the receipt of delivered order `id` (its link valid until the business day of
    /// `now` ends).
    pub async fn print_receipt(&self, id: &str, now: DateTime<Utc>) -> Result<(), String> {
        let p = self.printer().ok_or("no ticket printer is configured")?;
        let cfg = self.core.config();
        let (token, _) = self
            .customer_url(Kind::Order, id, now)
            .await
            .map_err(|e| e.to_string())?;
        let qr = link::url(&cfg, &token);
        let i = id.to_string();
        let r = self
            .core
            .store
            .read(move |c| receipt(c, &cfg, &i, qr))
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("order `{id}` is gone"))?;
        p.print(r.render(p.encoding)).await
    }
}

/// Follow the deliveries until the daemon stops, printing a receipt for each.
pub async fn run(q: Queue) {
    if q.printer().is_none() {
        return;
    }
    let store = q.core.store.clone();
    let cancel = q.core.cancel.clone();
    let mut follower = loop {
        match store.follow_cursor(RECEIPTS).await {
            Ok((f, _)) => break f,
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the receipts' position");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let save = |seq: u64| {
        let store = store.clone();
        async move {
            if let Err(e) = store.write(move |tx| cursor_set(tx, RECEIPTS, seq)).await {
                tracing::warn!(error = %e, "cannot save the receipts' position");
            }
        }
    };
    // Known from now on, so deliveries while the daemon is down get their receipt.
    let mut saved = follower.last();
    save(saved).await;
    let mut unsaved: Option<u64> = None;
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(SAVE_IDLE), if unsaved.is_some() => {
                if let Some(seq) = unsaved.take() {
                    save(seq).await;
                    saved = seq;
                }
                continue;
            }
            ev = follower.next() => ev,
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the next event");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if !is_delivery(&ev) {
            if ev.seq.saturating_sub(saved) >= SAVE_EVERY {
                save(ev.seq).await;
                saved = ev.seq;
                unsaved = None;
            } else {
                unsaved = Some(ev.seq);
            }
            continue;
        }
        let id = ev.data["id"].as_str().unwrap_or_default();
        match q.print_receipt(id, q.now()).await {
            Ok(()) => tracing::info!(order = %id, "receipt printed"),
            Err(e) => tracing::warn!(order = %id, error = %e, "no receipt printed"),
        }
        unsaved = None;
        save(ev.seq).await;
        saved = ev.seq;
    }
    if let Some(seq) = unsaved {
        save(seq).await;
    }
}
