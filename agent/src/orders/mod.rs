//! Head-office orders: appointments and pre-processed applications booked online, run at
//! the branch step by step, each step with a service time and three timer levels.
//!
//! - [`config`]: `[orders]` — step templates per business type, timer defaults.
//! - [`model`]: orders and steps in SQLite; every transition with its `order.*` event.
//! - [`command`]: `order.create|update|cancel` from head office (called by the sync module
//!   inside the transaction that records the command as handled).
//! - [`timers`]: near-timeout, timeout and recall of running steps, recomputed from the
//!   stored timestamps (so they survive restarts); the arrival link (`ticket.issued` with
//!   an `appointment_id`).
//! - [`http`]: the staff API and the customer view.
//!
//! Customer names, phones and ID numbers stay on the box: no event carries them.

pub mod command;
pub mod config;
mod demo;
pub mod http;
pub mod model;
pub mod timers;

use std::any::Any;

use warp::reply::Response;

use crate::app::App;
use crate::http::routes::{Access, RouteSpec};
use crate::store::{Schema, StoreError};
use crate::users::Role;

pub use model::order_for_customer;

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
    ],
};

const STAFF: Access = Access::Roles(&[Role::LobbyManager, Role::BranchManager]);

/// Every order route is for the same staff.
const fn route(method: &'static str, path: &'static str, sample: &'static str) -> RouteSpec {
    crate::http::routes::route(method, path, STAFF, sample)
}

/// This module's routes.
pub const ROUTES: &[RouteSpec] = &[
    route("GET", "/api/v1/orders", "/api/v1/orders"),
    route("GET", "/api/v1/orders/{id}", "/api/v1/orders/ORD-1"),
    route(
        "POST",
        "/api/v1/orders/{id}/approve",
        "/api/v1/orders/ORD-1/approve",
    ),
    route(
        "POST",
        "/api/v1/orders/{id}/reject",
        "/api/v1/orders/ORD-1/reject",
    ),
    route(
        "POST",
        "/api/v1/orders/{id}/steps/{key}/start",
        "/api/v1/orders/ORD-1/steps/pre_review/start",
    ),
    route(
        "POST",
        "/api/v1/orders/{id}/steps/{key}/finish",
        "/api/v1/orders/ORD-1/steps/pre_review/finish",
    ),
    route(
        "POST",
        "/api/v1/orders/{id}/deliver",
        "/api/v1/orders/ORD-1/deliver",
    ),
    route(
        "POST",
        "/api/v1/orders/{id}/recall",
        "/api/v1/orders/ORD-1/recall",
    ),
    route(
        "POST",
        "/api/v1/orders/{id}/rating",
        "/api/v1/orders/ORD-1/rating",
    ),
];

/// This module's OpenAPI fragment.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The module's shared state, held by the [`App`].
#[derive(Debug, Default)]
pub struct State {
    /// The clock of timestamps and timers.
    pub clock: timers::Clock,
}

impl State {
    /// Build from the validated config.
    pub fn new(_cfg: &crate::config::Config) -> anyhow::Result<State> {
        Ok(State {
            clock: timers::Clock::new(),
        })
    }
}

/// The routes.
pub fn routes(app: &App) -> warp::filters::BoxedFilter<(Response,)> {
    http::routes(app)
}

/// Start the step timers and the arrival link (and, in the demo, the sample orders).
pub fn start(app: &App) -> anyhow::Result<()> {
    let store = app.store.clone();
    let clock = app.orders.clock;
    let cancel = app.cancel.clone();
    if app.cfg.orders.demo_samples {
        let cfg = app.cfg.orders.clone();
        let store = store.clone();
        app.tracker.spawn(async move {
            let now = clock.now();
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
    app.tracker.spawn(timers::run(store, clock, cancel));
    Ok(())
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
