//! One task per STM: it owns the STM-Link session and turns what the device reports into
//! stored state and events, and keeps the authorisation timers.

use std::time::Duration;

use branchd_drivers::stm::{EventBody, LinkEvent, LinkOptions, StmLink};
use serde_json::json;

use super::Devices;
use super::db;
use crate::config::Device;
use crate::store::StoreError;

/// Start the link and its owner task for one configured STM.
pub(super) fn spawn(devices: &Devices, dev: Device) {
    let options = LinkOptions {
        baud: dev.baud,
        // The device forgets an event once it has the ACK: only a committed one gets it.
        ack_after_handling: true,
        ..LinkOptions::default()
    };
    let cancel = devices.core.cancel.child_token();
    let devices2 = devices.clone();
    devices.core.tracker.spawn(async move {
        let id = dev.id.clone();
        let kind = dev.kind.as_str();
        let ready = {
            let id = id.clone();
            devices2
                .core
                .store
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
        devices2.with_slot(&id, |s| s.handle = Some(handle));
        while let Some(ev) = events.recv().await {
            if let Err(e) = on_link_event(&devices2, &id, ev).await {
                tracing::error!(device = %id, error = %e, "cannot record what the device said");
            }
        }
        devices2.with_slot(&id, |s| {
            s.handle = None;
            s.online = false;
        });
        let _ = link.await;
        tracing::debug!(device = %id, "stm task stopped");
    });
}

async fn on_link_event(devices: &Devices, id: &str, ev: LinkEvent) -> Result<(), StoreError> {
    let id = id.to_string();
    match ev {
        LinkEvent::Connected => tracing::info!(device = %id, "stm port open"),
        LinkEvent::Down(reason) => {
            tracing::warn!(device = %id, %reason, "stm link down");
            let r = reason.to_string();
            devices
                .core
                .store
                .write(move |tx| db::set_detail(tx, &id, &json!({"last_error": r})))
                .await?;
        }
        LinkEvent::Online => {
            devices.with_slot(&id, |s| s.online = true);
            devices
                .core
                .store
                .write(move |tx| db::set_online(tx, &id))
                .await?;
        }
        LinkEvent::Offline => {
            devices.with_slot(&id, |s| s.online = false);
            devices
                .core
                .store
                .write(move |tx| db::set_offline(tx, &id, "no packet for 6 s"))
                .await?;
        }
        LinkEvent::Hello(hello) => {
            devices
                .core
                .store
                .write(move |tx| {
                    db::set_online(tx, &id)?;
                    db::on_hello(tx, &id, &hello)
                })
                .await?;
        }
        LinkEvent::Heartbeat(hb) => {
            devices
                .core
                .store
                .write(move |tx| db::on_heartbeat_state(tx, &id, hb.state))
                .await?;
        }
        // Acknowledged to the device only once committed (a failed write is retransmitted).
        LinkEvent::Status(status) => {
            let (status, receipt) = status.into_parts();
            let cfg = devices.core.cfg.clone();
            devices
                .core
                .store
                .write(move |tx| db::on_status(tx, &id, &status, &cfg.stm).map(|_| ()))
                .await?;
            receipt.kept();
        }
        LinkEvent::Event(event) => {
            let (event, receipt) = event.into_parts();
            let task = on_device_event(devices, id, event).await?;
            receipt.kept();
            if let Some((task_id, ts)) = task {
                schedule_auth_timeout(devices, task_id, ts, devices.core.cfg.stm.auth_timeout);
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
    devices: &Devices,
    id: String,
    event: branchd_drivers::stm::Event,
) -> Result<Option<(i64, String)>, StoreError> {
    devices.core.store
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
                    return Ok(Some((task_id, crate::clock::rfc3339(tx.now()))));
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
    devices: &Devices,
    task_id: i64,
    requested_at: String,
    after: Duration,
) {
    let devices2 = devices.clone();
    devices.core.tracker.spawn(async move {
        tokio::select! {
            () = devices2.core.cancel.cancelled() => {}
            () = tokio::time::sleep(after) => {
                let r = devices2
                    .core
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
pub(super) fn resume_auth_timers(devices: &Devices) {
    let devices2 = devices.clone();
    devices.core.tracker.spawn(async move {
        let waiting = match devices2.core.store.read(db::waiting_tasks).await {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot list waiting authorisation tasks");
                return;
            }
        };
        let limit = devices2.core.cfg.stm.auth_timeout;
        let now = chrono::Utc::now();
        for (task_id, ts) in waiting {
            let waited = chrono::DateTime::parse_from_rfc3339(&ts)
                .ok()
                .and_then(|t| (now - t.with_timezone(&chrono::Utc)).to_std().ok())
                .unwrap_or_default();
            schedule_auth_timeout(&devices2, task_id, ts, limit.saturating_sub(waited));
        }
    });
}
