//! STM-Link v1: the serial protocol to smart teller machines.
//!
//! - [`codec`]: packets, CRC, COBS framing and the streaming [`Decoder`](codec::Decoder);
//! - [`message`]: the typed JSON payloads;
//! - [`link`]: the box's session task ([`StmLink::spawn`]) with ACKs, retransmits,
//!   duplicate suppression, reconnects, offline detection and commands;
//! - [`sim`]: a simulated STM on a PTY ([`StmSim`]).

pub mod codec;
mod engine;
pub mod link;
pub mod message;
pub mod sim;

pub use codec::{Decoder, FrameError, NakReason, Packet, PacketType};
pub use link::{
    CommandError, Delivered, DownReason, LinkEvent, LinkOptions, Receipt, StmHandle, StmLink,
};
pub use message::{
    AuthRequest, AuthResultArgs, Cash, Cassette, Command, CommandResult, Decision, DeviceState,
    Event, EventBody, Heartbeat, Hello, Message, ModuleStatus, ProductCard, ShowProductArgs,
    Showing, Status, Transaction, TxnType,
};
pub use sim::{Faults, StmSim, StmSimConfig};

/// Command op names of STM-Link v1.
pub mod ops {
    /// Reply with STATUS.
    pub const GET_STATUS: &str = "get_status";
    /// Daily opening.
    pub const SIGN_IN: &str = "sign_in";
    /// Daily closing.
    pub const SIGN_OUT: &str = "sign_out";
    /// Stop serving for a while.
    pub const PAUSE: &str = "pause";
    /// Serve again.
    pub const RESUME: &str = "resume";
    /// Restart the machine.
    pub const RESTART: &str = "restart";
    /// Power the machine off.
    pub const SHUTDOWN: &str = "shutdown";
    /// Screen thumbnail (`data.png_base64`).
    pub const SCREENSHOT: &str = "screenshot";
    /// Enable a module (`args.module`).
    pub const MODULE_ENABLE: &str = "module_enable";
    /// Disable a module (`args.module`).
    pub const MODULE_DISABLE: &str = "module_disable";
    /// A supervisor's decision on an `auth_request`.
    pub const AUTH_RESULT: &str = "auth_result";
    /// Put a product card on the screen (`args.product`; an extension of STM-Link v1).
    pub const SHOW_PRODUCT: &str = "show_product";
}
