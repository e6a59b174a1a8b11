//! Head-office orders: appointments and pre-processed applications booked online, run at
//! the branch step by step, each step with a service time and three timer levels.
//!
//! - [`model`]: orders and steps in SQLite; every transition with its `order.*` event.
//! - [`views`]: the staff list and view, and the customer view.
//! - [`command`]: `order.create|update|cancel` from head office (applied by the sync module
//!   inside the transaction that records the command as handled).
//! - [`timers`]: near-timeout, timeout and recall of running steps, and the customer late
//!   for the appointment, recomputed from the stored timestamps (so they survive
//!   restarts); the arrival link (`ticket.issued` with
//!   an `appointment_id`), a durable consumer of the event stream.
//! - `http`: the staff API and the customer view.
//! - [`fill`]: an ID card's confirmed fields filled into an order's customer section.
//! - The step templates and timer defaults are `[orders]` in the config
//!   ([`crate::config::orders`]).
//!
//! Customer names, phones and ID numbers stay on the box: no event carries them.

pub mod command;
mod demo;
pub mod fill;
mod http;
/// The JSON bodies of this module's routes, public for the fuzz targets (agent/fuzz).
#[doc(hidden)]
pub use http::{HandoverBody, NoteBody, RatingBody, ReasonBody};
pub mod model;
pub mod timers;
pub mod views;

use std::any::Any;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::core::Core;
use crate::retention::{Bounded, Cutoff, Rule};
use crate::store::{Schema, Store, StoreError};

pub use model::{OrderStatus, StepLevel, StepState, order_for_customer};

/// This module's tables.
pub const SCHEMA: Schema = Schema {
    module: "orders",
    steps: &[
        // 1: orders and their steps.
        "CREATE TABLE orders (
             id TEXT PRIMARY KEY,
             business_type TEXT NOT NULL,
             title TEXT NOT NULL,
             channel TEXT NOT NULL,
             priority TEXT NOT NULL,
             customer_name TEXT NOT NULL,
             customer_phone TEXT,
             customer_id_number TEXT,
             appointment_at TEXT,
             status TEXT NOT NULL,
             fields TEXT NOT NULL DEFAULT '{}',
             ticket TEXT,
             arrived_at TEXT,
             approved_by TEXT,
             approved_at TEXT,
             closed_reason TEXT,
             delivered_at TEXT,
             delivered_by TEXT,
             rating INTEGER,
             rating_comment TEXT,
             rated_at TEXT,
             recalls INTEGER NOT NULL DEFAULT 0,
             created_at TEXT NOT NULL,
             updated_at TEXT NOT NULL
         ) STRICT;
         CREATE INDEX orders_customer ON orders(customer_id_number)
             WHERE customer_id_number IS NOT NULL;
         CREATE TABLE order_steps (
             order_id TEXT NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
             idx INTEGER NOT NULL,
             key TEXT NOT NULL,
             name TEXT NOT NULL,
             customer_label TEXT,
             sla_s INTEGER NOT NULL,
             near_pct INTEGER NOT NULL,
             recall_after_s INTEGER NOT NULL,
             recall_action TEXT NOT NULL,
             state TEXT NOT NULL DEFAULT 'pending',
             level TEXT NOT NULL DEFAULT 'none',
             started_at TEXT,
             started_by TEXT,
             finished_at TEXT,
             finished_by TEXT,
             PRIMARY KEY (order_id, idx),
             UNIQUE (order_id, key)
         ) STRICT;
         CREATE INDEX order_steps_active ON order_steps(state) WHERE state = 'active';",
        // 2: who handles an order now, how often it was urged, and when its customer was
        // reported late for the appointment.
        "ALTER TABLE orders ADD COLUMN assignee TEXT;
         ALTER TABLE orders ADD COLUMN urges INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE orders ADD COLUMN overdue_at TEXT;",
        // 3: the customer fields filled in from a document (OCR back-fill).
        fill::STEP_3,
        // 4: the tags the customer chose with their rating (a JSON array of codes).
        "ALTER TABLE orders ADD COLUMN rating_tags TEXT;",
    ],
};

/// Finished orders go after `[retention] orders_days`, their steps with them.
pub const RETENTION: &[Rule] = &[Rule {
    table: "orders",
    old: "status IN ('delivered', 'cancelled', 'rejected') AND updated_at < ?1",
    cutoff: Cutoff::Time,
    keep: |c| c.retention.orders,
}];

/// Steps are deleted with their order (`ON DELETE CASCADE`).
pub const BOUNDED: &[Bounded] = &[Bounded {
    table: "order_steps",
    why: "deleted with their order",
}];

/// This module's OpenAPI fragment.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The orders module's handle.
#[derive(Debug, Clone)]
pub struct Orders {
    core: Core,
}

impl Orders {
    /// Orders with the `[orders]` templates.
    pub fn new(core: &Core) -> Orders {
        Orders { core: core.clone() }
    }

    /// Start the step timers and the arrival link (and, in the demo, the sample orders).
    pub fn start(&self) {
        let core = &self.core;
        if core.cfg.orders.demo_samples {
            let (cfg, store, now) = (
                core.cfg.orders.clone(),
                core.store.clone(),
                core.clock.now(),
            );
            core.spawn(async move {
                let r = store
                    .write(move |tx| -> Result<usize, StoreError> {
                        demo::create_samples(tx, &cfg, now)
                    })
                    .await;
                match r {
                    Ok(n) if n > 0 => tracing::info!(orders = n, "demo orders created"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot create the demo orders"),
                }
            });
        }
        let grace =
            std::time::Duration::from_secs(u64::from(core.cfg.orders.overdue_grace_min) * 60);
        core.spawn(run(
            core.store.clone(),
            core.clock,
            core.cancel.clone(),
            grace,
        ));
    }
}

/// The module's long-lived work until `cancel`: the step and appointment timers (an
/// appointment is overdue `grace` after its time) and the arrival link.
pub async fn run(
    store: Store,
    clock: Clock,
    cancel: CancellationToken,
    grace: std::time::Duration,
) {
    tokio::join!(
        timers::run(store.clone(), clock, cancel.clone(), grace),
        timers::link_arrivals(store, cancel),
    );
}

/// Demo set-up: turn the sample orders on.
pub fn demo_prepare(doc: &mut toml_edit::DocumentMut) -> anyhow::Result<Vec<Box<dyn Any + Send>>> {
    if doc.get("orders").is_none() {
        doc["orders"] = toml_edit::Item::Table(toml_edit::Table::new());
    }
    doc["orders"]["demo_samples"] = toml_edit::value(true);
    Ok(Vec::new())
}

#[cfg(test)]
mod tests;
