//! Integration tests of the daemon through its public interfaces: HTTP, the CLI, the
//! database after a crash.

mod api;
mod architecture;
mod cli;
mod common;
mod config_update;
mod crash;
mod devices;
mod faces;
mod follow;
mod marketing;
mod mqtt;
mod ocr;
mod orders;
mod queue;
mod software_update;
mod sse;
mod sync;
mod updates;
