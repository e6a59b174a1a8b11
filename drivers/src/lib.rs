//! Device protocols, transports and simulators for branchd.
//!
//! This crate knows bytes on a wire and nothing else: no SQLite, no MQTT, no HTTP.
#![deny(missing_docs)]
