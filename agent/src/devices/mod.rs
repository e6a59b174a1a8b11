//! The devices module: the branch's STMs (over STM-Link), the lobby ID card reader (SAM),
//! and the supervisors' authorisation tasks.
//!
//! One task per configured STM owns its link ([`stm`]); one per ID reader polls it
//! ([`idreader`]). Everything a device reports is stored with its event in one transaction
//! ([`db`]). Remote commands go through [`Devices::send_command`], which the HTTP routes
//! and the head-office link share; each is audited and announced as `device.command`.

pub mod db;
pub mod demo;
mod http;
/// The JSON bodies of this module's routes, public for the fuzz targets (agent/fuzz).
#[doc(hidden)]
pub use http::{CommandBody, DecideBody, ResolveBody};
mod idreader;
mod stm;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use branchd_drivers::idreader::CardText;
use branchd_drivers::stm::{CommandError, CommandResult, StmHandle};
use serde_json::Value;

use crate::config::DeviceKind;
use crate::core::Core;
use crate::retention::{Bounded, Cutoff, Rule};
use crate::store::{Schema, StoreError};

/// This module's tables.
pub const SCHEMA: Schema = Schema {
    module: "devices",
    steps: db::STEPS,
};

/// The devices' tables that grow, and when their rows go (`[retention]`).
pub const RETENTION: &[Rule] = &[
    Rule {
        table: "device_status_history",
        old: "ts < ?1",
        cutoff: Cutoff::Time,
        keep: |c| c.retention.status_history,
    },
    Rule {
        table: "device_events",
        old: "received_at < ?1",
        cutoff: Cutoff::Time,
        keep: |c| c.retention.device,
    },
    Rule {
        table: "device_commands",
        old: "sent_at < ?1",
        cutoff: Cutoff::Time,
        keep: |c| c.retention.device,
    },
    Rule {
        table: "device_exceptions",
        old: "resolved_at IS NOT NULL AND resolved_at < ?1",
        cutoff: Cutoff::Time,
        keep: |c| c.retention.device,
    },
    Rule {
        table: "auth_tasks",
        old: "state != 'pending' AND ts < ?1",
        cutoff: Cutoff::Time,
        keep: |c| c.retention.device,
    },
    Rule {
        table: "id_card_photos",
        old: "ts < ?1",
        cutoff: Cutoff::Time,
        keep: |c| c.retention.id_photos,
    },
];

/// The devices' tables that do not grow with use.
pub const BOUNDED: &[Bounded] = &[Bounded {
    table: "device_state",
    why: "one row per configured device",
}];

/// This module's OpenAPI fragment.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The ops a remote command may use (`auth_result`, `sign_in` and `sign_out` have their
/// own routes). `show_product` is this box's extension of STM-Link (see
/// `docs/stm-link-extensions.md`).
pub const REMOTE_OPS: &[&str] = &[
    "get_status",
    "screenshot",
    "restart",
    "pause",
    "resume",
    "shutdown",
    "module_enable",
    "module_disable",
    "show_product",
];

/// One STM's live link.
#[derive(Debug, Default)]
struct Slot {
    handle: Option<StmHandle>,
    online: bool,
}

/// The devices module's handle: the live links of the STMs and the cards the readers read
/// lately.
#[derive(Debug, Clone)]
pub struct Devices {
    core: Core,
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    stms: Mutex<HashMap<String, Slot>>,
    /// The last card each reader read, in memory only (for checking a photo of it).
    cards: Mutex<HashMap<String, (CardText, tokio::time::Instant)>>,
}

impl Devices {
    /// The configured STMs (their links start with [`Devices::start`]).
    pub fn new(core: &Core) -> Devices {
        let stms = core
            .cfg
            .devices
            .iter()
            .filter(|d| d.kind == DeviceKind::Stm)
            .map(|d| (d.id.clone(), Slot::default()))
            .collect();
        Devices {
            core: core.clone(),
            inner: Arc::new(Inner {
                stms: Mutex::new(stms),
                cards: Mutex::default(),
            }),
        }
    }

    /// Start the module's tasks: one per STM and per ID reader, and the authorisation
    /// timers.
    pub fn start(&self) {
        for dev in &self.core.cfg.devices {
            match dev.kind {
                DeviceKind::Stm => stm::spawn(self, dev.clone()),
                DeviceKind::IdReader => idreader::spawn(self, dev.clone()),
                DeviceKind::Printer => {}
            }
        }
        stm::resume_auth_timers(self);
    }

    fn with_slot<R>(&self, id: &str, f: impl FnOnce(&mut Slot) -> R) -> Option<R> {
        let mut stms = self.inner.stms.lock().unwrap_or_else(|e| e.into_inner());
        stms.get_mut(id).map(f)
    }

    /// Whether the STM is configured and answering.
    pub fn is_online(&self, id: &str) -> bool {
        self.with_slot(id, |s| s.online).unwrap_or(false)
    }

    fn remember_card(&self, reader: &str, card: CardText) {
        let mut cards = self.inner.cards.lock().unwrap_or_else(|e| e.into_inner());
        cards.insert(reader.to_string(), (card, tokio::time::Instant::now()));
    }

    /// The chip text `reader` read within `within`, and how long ago. Older text is
    /// forgotten here, so a card's personal data stays in memory no longer than that.
    pub fn recent_card(&self, reader: &str, within: Duration) -> Option<(CardText, Duration)> {
        let mut cards = self.inner.cards.lock().unwrap_or_else(|e| e.into_inner());
        cards.retain(|_, (_, at)| at.elapsed() <= within);
        cards
            .get(reader)
            .map(|(card, at)| (card.clone(), at.elapsed()))
    }
}

/// Why a command got no RESULT from the device.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Not a configured STM.
    #[error("no STM `{0}` in this branch")]
    UnknownDevice(String),
    /// Not an op of STM-Link, or bad arguments.
    #[error("{0}")]
    BadRequest(String),
    /// The device is offline.
    #[error("{0} is offline")]
    Offline(String),
    /// The link is not open (reconnecting, stopped).
    #[error("{0} cannot be reached: {1}")]
    Unavailable(String, String),
    /// No RESULT in time.
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
    /// `sign_out` while exceptions are open: each must be recorded as handled first,
    /// whoever asks (the PAD, a remote command, head office).
    #[error(
        "{device} has {} open exception(s) ({}); record how each was handled first",
        .open.len(),
        .open.iter().map(|e| e.code.as_str()).collect::<Vec<_>>().join(", ")
    )]
    OpenExceptions {
        /// The device.
        device: String,
        /// Its open exceptions.
        open: Vec<db::OpenException>,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who sent a command, for the audit trail (`user`, or `hq:<command id>`).
pub type Actor = String;

impl Devices {
    /// Send one STM-Link op to an STM and wait for its RESULT (up to `[stm] command_timeout_s`).
    /// The outcome — a RESULT, a timeout or a link failure — is recorded with the actor in the
    /// audit trail and announced as `device.command`. `Ok` carries the device's RESULT, which
    /// may say `ok: false`.
    ///
    /// The head-office link calls this for its `device.command` kind, and the PAD for
    /// sign-in, sign-out and remote ops: the same rules hold for every caller (no
    /// `sign_out` over open exceptions; a successful sign-in or sign-out is recorded).
    pub async fn send_command(
        &self,
        device_id: &str,
        op: &str,
        args: Value,
        actor: &str,
    ) -> Result<CommandResult, SendError> {
        if !REMOTE_OPS.contains(&op) && !matches!(op, "sign_in" | "sign_out") {
            return Err(SendError::BadRequest(format!(
                "unknown op `{op}` (expected one of {})",
                REMOTE_OPS.join(", ")
            )));
        }
        let args = match args {
            Value::Null => Value::Object(Default::default()),
            Value::Object(m) => Value::Object(m),
            _ => return Err(SendError::BadRequest("`args` must be an object".into())),
        };
        if matches!(op, "module_enable" | "module_disable")
            && !args.get("module").is_some_and(Value::is_string)
        {
            return Err(SendError::BadRequest(format!(
                "`{op}` needs `args.module`, the module's name"
            )));
        }
        if op == "show_product"
            && let Err(e) =
                serde_json::from_value::<branchd_drivers::stm::ShowProductArgs>(args.clone())
        {
            return Err(SendError::BadRequest(format!(
                "`show_product` needs `args.product`, the product card: {e}"
            )));
        }
        if op == "sign_out" {
            let id = device_id.to_string();
            let open = self
                .core
                .store
                .read(move |c| db::open_exceptions(c, &id))
                .await?;
            if !open.is_empty() {
                return Err(SendError::OpenExceptions {
                    device: device_id.to_string(),
                    open,
                });
            }
        }
        let result = self.raw_command(device_id, op, args, actor, true).await?;
        if result.ok && matches!(op, "sign_in" | "sign_out") {
            let (id, by, signed_in) = (device_id.to_string(), actor.to_string(), op == "sign_in");
            let write = move |tx: &mut crate::store::Tx<'_>| db::on_signed(tx, &id, signed_in, &by);
            if signed_in {
                self.core.store.write(write).await?;
            } else {
                self.core.store.write_essential(write).await?;
            }
        }
        Ok(result)
    }

    /// Send any op (including `auth_result`); `record` says whether to record it as a remote
    /// command (authorisation decisions are recorded as such instead).
    async fn raw_command(
        &self,
        device_id: &str,
        op: &str,
        args: Value,
        actor: &str,
        record: bool,
    ) -> Result<CommandResult, SendError> {
        let (handle, online) = self
            .with_slot(device_id, |s| (s.handle.clone(), s.online))
            .ok_or_else(|| SendError::UnknownDevice(device_id.to_string()))?;
        let Some(handle) = handle else {
            return Err(SendError::Unavailable(
                device_id.to_string(),
                "its link is not running".into(),
            ));
        };
        if !online {
            return Err(SendError::Offline(device_id.to_string()));
        }
        let timeout = self.core.cfg.stm.command_timeout;
        let cmd_id = handle.next_cmd_id();
        let command = branchd_drivers::stm::Command {
            cmd_id: cmd_id.clone(),
            op: op.to_string(),
            args: args.clone(),
        };
        let sent = handle.send(command, timeout).await;
        let outcome: Result<CommandResult, String> = match &sent {
            Ok(r) => Ok(r.clone()),
            Err(e) => Err(e.to_string()),
        };
        if record {
            let (id, op, actor, cmd) = (
                device_id.to_string(),
                op.to_string(),
                actor.to_string(),
                cmd_id,
            );
            // A sign-out is saved even on a full disk (from the reserve kept for it).
            let essential = op == "sign_out";
            let write = move |tx: &mut crate::store::Tx<'_>| {
                db::record_command(tx, &id, &cmd, &op, &args, &actor, &outcome)
            };
            if essential {
                self.core.store.write_essential(write).await?;
            } else {
                self.core.store.write(write).await?;
            }
        }
        match sent {
            Ok(r) => Ok(r),
            Err(CommandError::Timeout(t)) => Err(SendError::Timeout(device_id.to_string(), t)),
            Err(e) => Err(SendError::Unavailable(device_id.to_string(), e.to_string())),
        }
    }
}

/// Demo set-up: two STMs and one ID reader on pseudo-terminals, and their scripts.
pub fn demo_prepare(doc: &mut toml_edit::DocumentMut) -> anyhow::Result<Vec<Box<dyn Any + Send>>> {
    demo::prepare(doc)
}

#[cfg(test)]
mod tests;
