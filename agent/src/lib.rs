//! branchd, the edge daemon of a smart bank branch.
//!
//! Data flows one way: device links, cameras, head-office commands and PAD requests come
//! in → domain services decide → one SQLite transaction records the new state and the
//! outgoing event ([`store`]) → the event fans out to the PAD (SSE), head office (the
//! MQTT outbox) and devices. See ARCHITECTURE.md.

pub mod alerts;
pub mod app;
pub mod cli;
pub mod clock;
pub mod command;
pub mod config;
pub mod core;
pub mod customers;
pub mod demo;
pub mod devices;
pub mod docfill;
pub mod http;
pub mod image;
pub mod leads;
pub mod logging;
pub mod metrics;
pub mod models;
pub mod modules;
pub mod ocr;
pub mod orders;
pub mod products;
pub mod queue;
pub mod retention;
pub mod rights;
pub mod signals;
pub mod stats;
pub mod storage;
pub mod store;
pub mod sync;
pub mod tls;
pub mod updates;
pub mod users;
pub mod vips;
pub mod vision;

/// The version printed by `--version` and sent in the MQTT birth message.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
