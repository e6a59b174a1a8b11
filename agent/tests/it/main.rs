//! Integration tests of the daemon through its public interfaces: HTTP, the CLI, the
//! database after a crash.

mod abuse;
mod api;
mod architecture;
mod broker_acl;
mod chaos;
mod chaos_harness;
mod cli;
mod commands;
mod common;
mod config_update;
mod crash;
mod customer_page;
mod devices;
mod events_doc;
mod faces;
mod fleet;
mod fleet_harness;
mod follow;
mod language;
mod marketing;
mod mqtt;
mod ocr;
mod order_fill;
mod orders;
mod privacy;
mod queue;
mod retention;
mod software_update;
mod sources;
mod sse;
mod stats;
mod storage;
mod sync;
mod updates;
