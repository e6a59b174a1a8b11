//! The ticket printer task: polls DLE EOT status, announces changes (`printer.status`,
//! `device_state`, paper-low / paper-out / cover-open / offline alerts), and prints tickets
//! only when the printer says it can (checking again after each ticket).
//!
//! Serial IO runs on the blocking pool; the task owns the connection and reopens it after
//! an error.

use std::path::PathBuf;
use std::time::Duration;

use branchd_drivers::printer::{Printer, PrinterError, PrinterStatus, TextEncoding};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::alerts::{self, Level, NewAlert};
use crate::clock::rfc3339;
use crate::config::Device;
use crate::core::Core;
use crate::store::{StoreError, Tx};

/// What the box knows about the printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    /// It answered (or, for a write-only lp device, could be opened).
    pub reachable: bool,
    /// It answered the status queries.
    pub status_known: bool,
    /// The status it answered.
    pub status: PrinterStatus,
}

impl Health {
    /// Whether a ticket sent now would come out.
    pub fn can_print(&self) -> bool {
        self.reachable
            && (!self.status_known
                || (self.status.online && !self.status.paper_out && !self.status.cover_open))
    }

    /// Why it cannot print.
    pub fn problem(&self) -> Option<&'static str> {
        if !self.reachable {
            Some("offline")
        } else if !self.status_known {
            None
        } else if self.status.paper_out {
            Some("paper_out")
        } else if self.status.cover_open {
            Some("cover_open")
        } else if !self.status.online {
            Some("offline")
        } else {
            None
        }
    }

    fn paper(&self) -> &'static str {
        if self.status.paper_out {
            "out"
        } else if self.status.paper_near_end {
            "low"
        } else {
            "ok"
        }
    }
}

/// Parse a configured printer encoding.
pub fn encoding(name: &str) -> TextEncoding {
    match name {
        "gbk" => TextEncoding::Gbk,
        "utf-8" => TextEncoding::Utf8,
        _ => TextEncoding::Gb18030,
    }
}

struct Job {
    bytes: Vec<u8>,
    reply: oneshot::Sender<Result<(), String>>,
}

/// A handle on the printer task.
#[derive(Debug, Clone)]
pub struct PrinterHandle {
    /// The device id.
    pub device_id: String,
    /// Its text encoding.
    pub encoding: TextEncoding,
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({} bytes)", self.bytes.len())
    }
}

impl PrinterHandle {
    /// Print rendered bytes; `Err` says why nothing came out.
    pub async fn print(&self, bytes: Vec<u8>) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(Job { bytes, reply })
            .await
            .map_err(|_| "the printer task has stopped".to_string())?;
        match tokio::time::timeout(Duration::from_secs(15), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err("the printer task has stopped".into()),
            Err(_) => Err("the printer did not answer in time".into()),
        }
    }
}

/// Start the task for one configured printer.
pub fn start(core: &Core, dev: &Device) -> PrinterHandle {
    let (tx, rx) = mpsc::channel(64);
    let handle = PrinterHandle {
        device_id: dev.id.clone(),
        encoding: encoding(&dev.encoding),
        jobs: tx,
    };
    core.spawn(run(
        core.clone(),
        dev.id.clone(),
        PathBuf::from(&dev.path),
        dev.baud,
        rx,
    ));
    handle
}

type Io<T> = (Option<Printer>, T);

/// One status round on the blocking pool: open if needed, query, drop the connection on error.
async fn check(conn: Option<Printer>, path: PathBuf, baud: u32) -> Io<Health> {
    tokio::task::spawn_blocking(move || {
        let is_lp = path.starts_with("/dev/usb");
        let mut p = match conn {
            Some(p) => p,
            None => match Printer::open_path(&path, baud) {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!(error = %e, "printer not reachable");
                    return (None, Health::default());
                }
            },
        };
        match p.status() {
            Ok(status) => (
                Some(p),
                Health {
                    reachable: true,
                    status_known: true,
                    status,
                },
            ),
            // A write-only lp device cannot tell: assume it prints.
            Err(PrinterError::StatusUnavailable) if is_lp => (
                Some(p),
                Health {
                    reachable: true,
                    status_known: false,
                    status: PrinterStatus::default(),
                },
            ),
            Err(e) => {
                tracing::debug!(error = %e, "printer status failed");
                (None, Health::default())
            }
        }
    })
    .await
    .unwrap_or((None, Health::default()))
}

async fn send(conn: Printer, bytes: Vec<u8>) -> Io<Result<(), String>> {
    tokio::task::spawn_blocking(move || {
        let mut p = conn;
        match p.print(&bytes) {
            Ok(()) => (Some(p), Ok(())),
            Err(e) => (None, Err(e.to_string())),
        }
    })
    .await
    .unwrap_or((None, Err("the print job failed".into())))
}

const ALERTS: [(&str, &str, Level); 4] = [
    (
        "paper_low",
        "the ticket printer is low on paper",
        Level::Info,
    ),
    (
        "paper_out",
        "the ticket printer is out of paper: tickets are issued without paper",
        Level::Critical,
    ),
    (
        "cover_open",
        "the ticket printer's cover is open",
        Level::Warning,
    ),
    ("offline", "the ticket printer is offline", Level::Critical),
];

/// Record a changed printer health: device state, `printer.status`, alerts raised/cleared.
pub fn record(tx: &mut Tx<'_>, device: &str, h: &Health) -> Result<(), StoreError> {
    let problem = h.problem();
    let state = problem.unwrap_or("ok");
    tx.conn().execute(
        "INSERT INTO device_state(id, kind, online, state, consumables, updated_at) \
         VALUES (?1, 'printer', ?2, ?3, ?4, ?5) \
         ON CONFLICT(id) DO UPDATE SET online = excluded.online, state = excluded.state, \
         consumables = excluded.consumables, updated_at = excluded.updated_at",
        rusqlite::params![
            device,
            i64::from(h.reachable && h.status.online),
            state,
            json!({"paper": h.paper()}).to_string(),
            rfc3339(tx.now())
        ],
    )?;
    tx.emit(
        "printer.status",
        json!({"device": device, "online": h.reachable && (h.status.online || !h.status_known),
               "state": state, "paper": h.paper(), "cover_open": h.status.cover_open,
               "status_known": h.status_known}),
    )?;
    let active = |what: &str| match what {
        "paper_low" => h.reachable && h.status.paper_near_end && !h.status.paper_out,
        "paper_out" => h.reachable && h.status.paper_out,
        "cover_open" => h.reachable && h.status.cover_open,
        _ => problem == Some("offline"),
    };
    for (what, message, level) in ALERTS {
        let key = format!("printer.{what}:{device}");
        if active(what) {
            alerts::raise(
                tx,
                &NewAlert {
                    kind: &format!("printer.{what}"),
                    level,
                    source: Some(device),
                    key: Some(&key),
                    message,
                    data: json!({"device": device, "audience": "lobby_manager"}),
                },
            )?;
        } else {
            alerts::clear(tx, &key)?;
        }
    }
    Ok(())
}

async fn run(core: Core, device: String, path: PathBuf, baud: u32, mut jobs: mpsc::Receiver<Job>) {
    let mut conn: Option<Printer> = None;
    let mut last: Option<Health> = None;
    let mut tick = tokio::time::interval(core.cfg.queue.printer_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let job = tokio::select! {
            _ = core.cancel.cancelled() => return,
            _ = tick.tick() => None,
            j = jobs.recv() => match j {
                Some(j) => Some(j),
                None => return,
            },
        };
        let (c, mut health) = check(conn.take(), path.clone(), baud).await;
        conn = c;
        let mut outcome = None;
        if let Some(job) = job {
            let result = match (health.can_print(), conn.take()) {
                (true, Some(p)) => {
                    let (c, r) = send(p, job.bytes).await;
                    conn = c;
                    match r {
                        // Did it come out? Ask again: a printer that ran out mid-ticket
                        // drops it.
                        Ok(()) => {
                            let (c, after) = check(conn.take(), path.clone(), baud).await;
                            conn = c;
                            health = after;
                            if after.can_print() {
                                Ok(())
                            } else {
                                Err(after.problem().unwrap_or("offline").to_string())
                            }
                        }
                        Err(e) => {
                            health = Health::default();
                            Err(e)
                        }
                    }
                }
                (_, kept) => {
                    conn = kept;
                    Err(health.problem().unwrap_or("offline").to_string())
                }
            };
            outcome = Some((job.reply, result));
        }
        if last != Some(health) {
            let d = device.clone();
            let h = health;
            match core.store.write(move |tx| record(tx, &d, &h)).await {
                Ok(()) => last = Some(health),
                Err(e) => tracing::warn!(error = %e, "cannot record the printer status"),
            }
        }
        if let Some((reply, result)) = outcome {
            let _ = reply.send(result);
        }
    }
}
