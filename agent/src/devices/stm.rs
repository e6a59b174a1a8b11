//! One task per STM: it owns the STM-Link session and turns what the device reports into
//! stored state and events, and keeps the authorisation timers.

use std::time::Duration;

use branchd_drivers::stm::{EventBody, LinkEvent, LinkOptions, StmLink};
use serde_json::json;

use super::db;
use crate::app::App;
use crate::config::Device;
use crate::store::StoreError;

/// Start the link and its owner task for one configured STM.
pub(super) fn spawn(app: &App, dev: Device) {
    let options = LinkOptions {
        baud: dev.baud,
        // The device forgets an event once it has the ACK: only a committed one gets it.
        ack_after_handling: true,
        ..LinkOptions::default()
    };
    let cancel = app.cancel.child_token();
    let app2 = app.clone();
    app.tracker.spawn(async move {
        let id = dev.id.clone();
        let kind = dev.kind.as_str();
        let ready = {
            let id = id.clone();
            app2.store
                .write(move |tx| {
                    db::ensure_device(tx, &id, kind)?;
                    // Whatever the last run thought, nothing is known until the device speaks.
                    tx.conn().execute(
                        "UPDATE device_state SET online = 0 WHERE id = ?1",
                        [id.as_str()],
                    )?;
                    Ok::<_, StoreError>(())
                })
                .await
        };
        if let Err(e) = ready {
            tracing::error!(device = %id, error = %e, "cannot record the device");
        }
        let (handle, mut events, link) = StmLink::spawn(&dev.path, options, cancel.clone());
        app2.devices.with_slot(&id, |s| s.handle = Some(handle));
        while let Some(ev) = events.recv().await {
            if let Err(e) = on_link_event(&app2, &id, ev).await {
                tracing::error!(device = %id, error = %e, "cannot record what the device said");
            }
        }
        app2.devices.with_slot(&id, |s| {
            s.handle = None;
            s.online = false;
        });
        let _ = link.await;
        tracing::debug!(device = %id, "stm task stopped");
    });
}

async fn on_link_event(app: &App, id: &str, ev: LinkEvent) -> Result<(), StoreError> {
    let id = id.to_string();
    match ev {
        LinkEvent::Connected => tracing::info!(device = %id, "stm port open"),
        LinkEvent::Down(reason) => {
            tracing::warn!(device = %id, %reason, "stm link down");
            let r = reason.to_string();
            app.store
                .write(move |tx| db::set_detail(tx, &id, &json!({"last_error": r})))
                .await?;
        }
        LinkEvent::Online => {
            app.devices.with_slot(&id, |s| s.online = true);
            app.store.write(move |tx| db::set_online(tx, &id)).await?;
        }
        LinkEvent::Offline => {
            app.devices.with_slot(&id, |s| s.online = false);
            app.store
                .write(move |tx| db::set_offline(tx, &id, "no packet for 6 s"))
                .await?;
        }
        LinkEvent::Hello(hello) => {
            app.store
                .write(move |tx| {
                    db::set_online(tx, &id)?;
                    db::on_hello(tx, &id, &hello)
                })
                .await?;
        }
        LinkEvent::Heartbeat(hb) => {
            app.store
                .write(move |tx| db::on_heartbeat_state(tx, &id, hb.state))
                .await?;
        }
        // Acknowledged to the device only once committed (a failed write is retransmitted).
        LinkEvent::Status(status) => {
            let (status, receipt) = status.into_parts();
            let cfg = app.cfg.clone();
            app.store
                .write(move |tx| db::on_status(tx, &id, &status, &cfg.stm).map(|_| ()))
                .await?;
            receipt.kept();
        }
        LinkEvent::Event(event) => {
            let (event, receipt) = event.into_parts();
            let task = on_device_event(app, id, event).await?;
            receipt.kept();
            if let Some((task_id, ts)) = task {
                schedule_auth_timeout(app, task_id, ts, app.cfg.stm.auth_timeout);
            }
        }
        LinkEvent::Result(r) => {
            tracing::info!(device = %id, cmd_id = %r.cmd_id, ok = r.ok, "late result from device");
        }
        other => tracing::debug!(device = %id, ?other, "link event"),
    }
    Ok(())
}

/// Store one device event exactly once (by `event_id`). Returns a new authorisation task
/// (its id and stored request time).
async fn on_device_event(
    app: &App,
    id: String,
    event: branchd_drivers::stm::Event,
) -> Result<Option<(i64, String)>, StoreError> {
    app.store
        .write(move |tx| {
            let kind = event.body.kind().to_string();
            // Transactions and consumables are kept whole for the statistics; other kinds
            // live in their own tables (and an auth request's customer stays out of here).
            let data = match &event.body {
                EventBody::Transaction(_) | EventBody::ConsumableUsed(_) => {
                    Some(serde_json::to_value(&event)?)
                }
                _ => None,
            };
            if !db::first_sighting(tx, &id, &event.event_id, &kind, &event.ts, data.as_ref())? {
                tracing::debug!(device = %id, event_id = %event.event_id, "duplicate event");
                return Ok(None);
            }
            match &event.body {
                EventBody::Transaction(t) => db::on_transaction(tx, &id, t)?,
                EventBody::Exception(e) => {
                    db::on_exception(tx, &id, &event.event_id, &event.ts, e)?;
                }
                EventBody::AuthRequest(r) => {
                    let task_id = db::on_auth_request(tx, &id, r)?;
                    return Ok(Some((task_id, crate::store::rfc3339(tx.now()))));
                }
                EventBody::ConsumableUsed(u) => {
                    tx.emit(
                        "device.consumable_used",
                        json!({"device_id": id, "item": u.item, "count": u.count}),
                    )?;
                }
                other => {
                    tracing::info!(device = %id, kind = other.kind(), "event of an unknown kind kept");
                }
            }
            Ok(None)
        })
        .await
}

/// Raise the timeout alert of a task still waiting after `after`.
pub(super) fn schedule_auth_timeout(
    app: &App,
    task_id: i64,
    requested_at: String,
    after: Duration,
) {
    let app2 = app.clone();
    app.tracker.spawn(async move {
        tokio::select! {
            () = app2.cancel.cancelled() => {}
            () = tokio::time::sleep(after) => {
                let r = app2
                    .store
                    .write(move |tx| db::on_auth_timeout(tx, task_id, &requested_at))
                    .await;
                if let Err(e) = r {
                    tracing::error!(task_id, error = %e, "cannot record the authorisation timeout");
                }
            }
        }
    });
}

/// After a restart: the timers of tasks still waiting, for the time they have left.
pub(super) fn resume_auth_timers(app: &App) {
    let app2 = app.clone();
    app.tracker.spawn(async move {
        let waiting = match app2.store.read(db::waiting_tasks).await {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot list waiting authorisation tasks");
                return;
            }
        };
        let limit = app2.cfg.stm.auth_timeout;
        let now = chrono::Utc::now();
        for (task_id, ts) in waiting {
            let waited = chrono::DateTime::parse_from_rfc3339(&ts)
                .ok()
                .and_then(|t| (now - t.with_timezone(&chrono::Utc)).to_std().ok())
                .unwrap_or_default();
            schedule_auth_timeout(&app2, task_id, ts, limit.saturating_sub(waited));
        }
    });
}
