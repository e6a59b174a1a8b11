//! Device protocols, transports and simulators for branchd.
//!
//! This crate knows bytes on a wire and nothing else: no SQLite, no MQTT, no HTTP.
//!
//! - [`stm`]: STM-Link v1 to smart teller machines (codec, link session, simulator);
//! - [`idreader`]: the SAM serial protocol of second-generation ID card readers;
//! - [`printer`]: ESC/POS ticket printers (renderer, status, client, simulator);
//! - [`checks`]: check characters of citizen ID numbers and unified social credit codes;
//! - [`pty`]: pseudo-terminals the simulators sit on.
#![deny(missing_docs)]

pub mod checks;
pub mod idreader;
pub mod printer;
pub mod pty;
mod rng;
pub mod stm;
