//! The head-office link over MQTT: the only module that knows topics and the wire format.
//!
//! - [`link`] owns the connection: birth and Will on `<p>/state` tied by a persisted session
//!   counter, reconnect with back-off, the outbox publisher (committed events in `seq` order,
//!   marked acknowledged only on their PUBACK), telemetry, and the downlink.
//! - [`commands`] handles `<p>/cmd`: each command exactly once, answered with an `ack` event.
//! - [`hq`] is a small head-office console (`branchd hq watch|send`) for operators and tests.
//! - [`ingest`] is a reference head-office consumer (`branchd hq ingest`): every branch's
//!   events into PostgreSQL, idempotent by (branch, seq), with gaps and states tracked.

pub mod commands;
pub mod hq;
pub mod ingest;
pub mod link;
pub mod upstream;

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::core::Core;
use crate::devices::Devices;
use crate::retention::{Bounded, Cutoff, Rule};
use crate::store::Schema;

/// This module's tables.
pub const SCHEMA: Schema = Schema {
    module: "sync",
    steps: &[
        // 1: link state, handled commands, VIP records (the vips module's since), config
        //    overrides, device commands.
        "CREATE TABLE sync_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
         CREATE TABLE sync_commands (
             id TEXT PRIMARY KEY,
             kind TEXT NOT NULL,
             received_at TEXT NOT NULL,
             ok INTEGER NOT NULL,
             error TEXT
         ) STRICT;
         CREATE TABLE sync_vips (
             customer_id TEXT PRIMARY KEY,
             name TEXT NOT NULL,
             level TEXT NOT NULL,
             tags TEXT NOT NULL DEFAULT '[]',
             relationship_manager TEXT,
             consent INTEGER NOT NULL,
             photo BLOB,
             embedding BLOB,
             model_id TEXT,
             updated_at TEXT NOT NULL
         ) STRICT;
         CREATE TABLE sync_config_overrides (
             scope TEXT NOT NULL,
             key TEXT NOT NULL,
             value TEXT NOT NULL,
             updated_at TEXT NOT NULL,
             PRIMARY KEY (scope, key)
         ) STRICT;
         CREATE TABLE sync_device_commands (
             cmd_id TEXT PRIMARY KEY,
             device TEXT NOT NULL,
             op TEXT NOT NULL,
             args TEXT NOT NULL,
             received_at TEXT NOT NULL,
             state TEXT NOT NULL
         ) STRICT;",
    ],
};

/// The head-office link's tables that grow, and when their rows go (`[retention]`): an
/// event only once head office acknowledged it (with or without `[mqtt]` now); a
/// handled command's id is kept at least as long as head office may still deliver it.
pub const RETENTION: &[Rule] = &[
    Rule {
        table: "events",
        old: link::ACKED_BEFORE,
        cutoff: Cutoff::Time,
        keep: |c| c.retention.outbox,
    },
    Rule {
        table: "sync_commands",
        old: "received_at < ?1",
        cutoff: Cutoff::Time,
        keep: command_keep,
    },
    Rule {
        table: "sync_device_commands",
        old: "received_at < ?1",
        cutoff: Cutoff::Time,
        keep: command_keep,
    },
];

/// The head-office link's tables that do not grow with use.
pub const BOUNDED: &[Bounded] = &[
    Bounded {
        table: "sync_meta",
        why: "a few keys of the link's own state",
    },
    Bounded {
        table: "sync_config_overrides",
        why: "one row per service and setting head office overrides",
    },
];

/// How long a handled command's record is kept: `[retention] commands_days`, and never
/// less than a day past the oldest command the box still runs.
fn command_keep(c: &crate::config::Config) -> std::time::Duration {
    let oldest = c
        .mqtt
        .as_ref()
        .map_or(std::time::Duration::from_secs(7 * 86_400), |m| {
            m.command_max_age.max(m.device_command_max_age)
        });
    c.retention
        .commands
        .max(oldest + std::time::Duration::from_secs(86_400))
}

/// The topics under one prefix. Only this module builds topic names.
#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// Topics under `prefix` (e.g. `bank/NJ0101`).
    pub fn new(prefix: &str) -> Topics {
        Topics {
            prefix: prefix.to_string(),
        }
    }

    /// Birth and Will (retained).
    pub fn state(&self) -> String {
        format!("{}/state", self.prefix)
    }

    /// One event kind: its dots become topic levels (`ticket.issued` →
    /// `<p>/events/ticket/issued`), as some brokers (NATS) reserve `.` in topics and head
    /// office subscribes to whole families (`bank/+/events/ticket/#`).
    pub fn event(&self, kind: &str) -> String {
        format!("{}/events/{}", self.prefix, kind.replace('.', "/"))
    }

    /// Every event (a subscription filter).
    pub fn events_filter(&self) -> String {
        format!("{}/events/#", self.prefix)
    }

    /// Periodic snapshots.
    pub fn telemetry(&self) -> String {
        format!("{}/telemetry", self.prefix)
    }

    /// Head-office commands.
    pub fn cmd(&self) -> String {
        format!("{}/cmd", self.prefix)
    }
}

/// Whether every level of `topic` uses only letters, digits, `_` and `-` (the contract's
/// portable topic alphabet: no `.`, space, `+`, `#` or `$`).
pub fn portable_topic(topic: &str) -> bool {
    topic.split('/').all(|level| {
        !level.is_empty()
            && level
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

/// The head-office link's handle.
#[derive(Debug, Clone)]
pub struct Sync {
    core: Core,
    /// Remote commands from head office go to the devices.
    devices: Devices,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Identifies this run of the daemon in the birth message, so head office sees restarts.
    boot_id: String,
    /// Whether the link is up (for diagnostics).
    connected: AtomicBool,
}

impl Sync {
    /// The link of this branch; `devices` carries out head office's device commands.
    pub fn new(core: &Core, devices: &Devices) -> Sync {
        Sync {
            core: core.clone(),
            devices: devices.clone(),
            inner: Arc::new(Inner {
                boot_id: ulid::Ulid::new().to_string(),
                connected: AtomicBool::new(false),
            }),
        }
    }

    /// Start the link (only with an `[mqtt]` table) and the outbox maintenance.
    pub fn start(&self) {
        let Some(mqtt) = self.core.cfg.mqtt.clone() else {
            return;
        };
        self.core.spawn(link::run(self.clone(), mqtt.clone()));
        self.core.spawn(link::maintain(self.clone(), mqtt));
    }

    /// This run's id.
    pub fn boot_id(&self) -> &str {
        &self.inner.boot_id
    }

    /// Whether the link is up.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Relaxed)
    }

    fn set_connected(&self, up: bool) {
        self.inner.connected.store(up, Ordering::Relaxed);
        self.core.metrics.mqtt_up.set(i64::from(up));
        if up {
            self.core.metrics.mqtt_connects.inc();
        }
    }
}

/// Demo set-up: nothing to simulate (`branchd demo --mqtt URL` fills `[mqtt] url`).
pub fn demo_prepare(_doc: &mut toml_edit::DocumentMut) -> anyhow::Result<Vec<Box<dyn Any + Send>>> {
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_kind_becomes_topic_levels_every_broker_accepts() {
        let t = Topics::new("bank/NJ0101");
        assert_eq!(t.event("ticket.issued"), "bank/NJ0101/events/ticket/issued");
        assert_eq!(t.event("ack"), "bank/NJ0101/events/ack");
        assert_eq!(
            t.event("order.step.started"),
            "bank/NJ0101/events/order/step/started"
        );
        for topic in [t.event("ticket.issued"), t.state(), t.telemetry(), t.cmd()] {
            assert!(portable_topic(&topic), "{topic}");
        }
        assert!(!portable_topic("bank/NJ0101/events/ticket.issued"));
        assert!(!portable_topic("bank//events"));
        assert!(!portable_topic("bank/$SYS/x"));
    }
}
