//! The lobby ID card reader: a blocking SAM client polled on its own thread. A card put on
//! the reader is read once (until it is taken off): `Signal::CardSwiped` for the queue and
//! `device.card_read` without personal data.

use std::time::Duration;

use branchd_drivers::checks::validate_citizen_id;
use branchd_drivers::idreader::{CardRead, IdReader, IdReaderError};
use serde_json::json;
use tokio::sync::mpsc;

use super::Devices;
use super::db;
use crate::config::Device;
use crate::signals::Signal;
use crate::store::StoreError;

/// What the polling thread reports.
#[derive(Debug)]
enum Seen {
    Online,
    Offline(String),
    Card(Box<CardRead>),
    Error(String),
}

/// Start the polling thread and its owner task for one reader.
pub(super) fn spawn(devices: &Devices, dev: Device) {
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = devices.core.cancel.child_token();
    let poll = devices.core.cfg.id_reader.poll_interval;
    let (path, baud) = (dev.path.clone(), dev.baud);
    let stop = cancel.clone();
    let thread = std::thread::Builder::new()
        .name("idreader".into())
        .spawn(move || poll_loop(&path, baud, poll, &stop, &tx));
    let thread = match thread {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(device = %dev.id, error = %e, "cannot start the id reader thread");
            return;
        }
    };
    let devices2 = devices.clone();
    devices.core.tracker.spawn(async move {
        let id = dev.id.clone();
        {
            let id2 = id.clone();
            let r = devices2
                .core
                .store
                .write(move |tx| {
                    db::ensure_device(tx, &id2, "id_reader")?;
                    tx.conn().execute(
                        "UPDATE device_state SET online = 0 WHERE id = ?1",
                        [id2.as_str()],
                    )?;
                    Ok::<_, StoreError>(())
                })
                .await;
            if let Err(e) = r {
                tracing::error!(device = %id, error = %e, "cannot record the device");
            }
        }
        loop {
            let seen = tokio::select! {
                () = cancel.cancelled() => break,
                s = rx.recv() => match s { Some(s) => s, None => break },
            };
            if let Err(e) = on_seen(&devices2, &id, seen).await {
                tracing::error!(device = %id, error = %e, "cannot record what the reader said");
            }
        }
        drop(rx);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    });
}

async fn on_seen(devices: &Devices, id: &str, seen: Seen) -> Result<(), StoreError> {
    let id = id.to_string();
    match seen {
        Seen::Online => {
            devices
                .core
                .store
                .write(move |tx| {
                    db::set_online(tx, &id)?;
                    db::set_detail(tx, &id, &json!({"last_error": null}))
                })
                .await
        }
        Seen::Offline(why) => {
            devices
                .core
                .store
                .write(move |tx| {
                    db::set_offline(tx, &id, &why)?;
                    db::set_detail(tx, &id, &json!({"last_error": why}))
                })
                .await
        }
        Seen::Error(why) => {
            tracing::warn!(device = %id, error = %why, "id reader");
            devices
                .core
                .store
                .write(move |tx| db::set_detail(tx, &id, &json!({"last_error": why})))
                .await
        }
        Seen::Card(card) => {
            let valid = validate_citizen_id(&card.text.id_number).is_ok();
            let photo = devices
                .core
                .cfg
                .id_reader
                .keep_photo
                .then(|| card.photo_wlt.clone());
            let reader = id.clone();
            devices
                .core
                .store
                .write(move |tx| db::on_card_read(tx, &reader, valid, photo.as_deref()))
                .await?;
            if !devices.core.cfg.id_reader.chip_check_window.is_zero() {
                devices.remember_card(&id, card.text.clone());
            }
            // No receiver (no queue running) is fine: the card read is recorded anyway.
            let _ = devices.core.signals.send(Signal::CardSwiped {
                reader: id,
                id_number: card.text.id_number.clone(),
                name: card.text.name.clone(),
                valid,
            });
            Ok(())
        }
    }
}

/// Consecutive failed polls after which the reader counts as offline.
const OFFLINE_AFTER_FAILURES: u32 = 3;

fn poll_loop(
    path: &str,
    baud: u32,
    every: Duration,
    cancel: &tokio_util::sync::CancellationToken,
    out: &mpsc::Sender<Seen>,
) {
    let mut reader: Option<IdReader> = None;
    let mut online = false;
    let mut failures = 0u32;
    let mut card_present = false;
    let report = |s: Seen| out.blocking_send(s).is_ok();
    while !cancel.is_cancelled() {
        if reader.is_none() {
            match IdReader::open(path, baud) {
                Ok(r) => reader = Some(r),
                Err(e) => {
                    if online || failures == 0 {
                        online = false;
                        if !report(Seen::Offline(e.to_string())) {
                            return;
                        }
                    }
                    failures = failures.saturating_add(1);
                    sleep_unless_cancelled(cancel, Duration::from_secs(1));
                    continue;
                }
            }
        }
        let Some(r) = reader.as_mut() else { continue };
        let result = r.sam_status().and_then(|()| r.poll_card());
        match result {
            Ok(card) => {
                failures = 0;
                if !online {
                    online = true;
                    if !report(Seen::Online) {
                        return;
                    }
                }
                match card {
                    Some(card) if !card_present => {
                        card_present = true;
                        if !report(Seen::Card(Box::new(card))) {
                            return;
                        }
                    }
                    Some(_) => {}
                    None => card_present = false,
                }
            }
            Err(e) => {
                failures += 1;
                let fatal = matches!(e, IdReaderError::Io(_) | IdReaderError::Open(_));
                if fatal {
                    reader = None;
                }
                if !report(Seen::Error(e.to_string())) {
                    return;
                }
                if online && (fatal || failures >= OFFLINE_AFTER_FAILURES) {
                    online = false;
                    if !report(Seen::Offline(e.to_string())) {
                        return;
                    }
                }
            }
        }
        sleep_unless_cancelled(cancel, every);
    }
}

fn sleep_unless_cancelled(cancel: &tokio_util::sync::CancellationToken, d: Duration) {
    let until = std::time::Instant::now() + d;
    while !cancel.is_cancelled() {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}
