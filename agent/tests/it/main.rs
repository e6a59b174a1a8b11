//! Integration tests of the daemon through its public interfaces: HTTP, the CLI, the
//! database after a crash.

mod api;
mod cli;
mod common;
mod crash;
mod orders;
mod sse;
mod sync;
