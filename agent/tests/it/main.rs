//! Integration tests of the daemon through its public interfaces: HTTP, the CLI, the
//! database after a crash.

mod api;
mod cli;
mod common;
mod crash;
mod devices;
mod faces;
mod ocr;
mod orders;
mod queue;
mod sse;
mod sync;
