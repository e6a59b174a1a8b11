//! STM-Link v1 framing: packets, CRC-16/CCITT-FALSE, COBS and the streaming decoder.

use crc::{CRC_16_IBM_3740, Crc};
use serde::{Deserialize, Serialize};

/// The protocol version carried in byte 0 of every packet.
pub const VERSION: u8 = 0x01;
/// The largest decoded packet: version, seq, type, payload and CRC.
pub const MAX_PACKET: usize = 4096;
/// The largest payload that fits a packet.
pub const MAX_PAYLOAD: usize = MAX_PACKET - 5;
/// The frame delimiter on the wire.
pub const DELIMITER: u8 = 0x00;

/// The largest COBS-encoded packet (without its delimiter).
const MAX_ENCODED: usize = MAX_PACKET + MAX_PACKET.div_ceil(254) + 1;

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0), catalogued as
/// CRC-16/IBM-3740.
pub const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_IBM_3740);

/// The CRC of `bytes` as STM-Link computes it.
pub fn crc16(bytes: &[u8]) -> u16 {
    CRC16.checksum(bytes)
}

/// The packet types of STM-Link v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// Device introduces itself (device → box).
    Hello = 0x01,
    /// Periodic liveness and state (device → box).
    Heartbeat = 0x02,
    /// Full device status (device → box).
    Status = 0x03,
    /// A device event (device → box).
    Event = 0x04,
    /// An operation to run (box → device).
    Command = 0x10,
    /// The outcome of a command (device → box).
    Result = 0x11,
    /// A packet was rejected (either direction).
    Nak = 0x7E,
    /// A packet was accepted (either direction); seq is that of the packet acknowledged.
    Ack = 0x7F,
}

impl PacketType {
    /// The type for a wire code, if it is one of the protocol's.
    pub fn from_code(code: u8) -> Option<PacketType> {
        Some(match code {
            0x01 => PacketType::Hello,
            0x02 => PacketType::Heartbeat,
            0x03 => PacketType::Status,
            0x04 => PacketType::Event,
            0x10 => PacketType::Command,
            0x11 => PacketType::Result,
            0x7E => PacketType::Nak,
            0x7F => PacketType::Ack,
            _ => return None,
        })
    }

    /// The wire code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Whether the receiver answers this packet with an ACK (all but ACK and NAK).
    pub fn needs_ack(self) -> bool {
        !matches!(self, PacketType::Ack | PacketType::Nak)
    }
}

/// A decoded packet. The version byte is implied: a packet with any version but
/// [`VERSION`] is rejected while decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Sequence number (per sender; for ACK, the seq acknowledged).
    pub seq: u8,
    /// Packet type.
    pub kind: PacketType,
    /// Compact UTF-8 JSON object, empty for ACK.
    pub payload: Vec<u8>,
}

/// Why a receiver rejects a packet, as carried in a NAK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum NakReason {
    /// CRC mismatch (or bytes that are not valid COBS).
    Crc,
    /// Too short or too long.
    Length,
    /// Unknown packet type.
    Type,
    /// Payload is not the JSON the type requires.
    Json,
    /// Unsupported protocol version.
    Version,
}

/// Why a frame did not decode into a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The bytes between two delimiters are not valid COBS.
    #[error("invalid cobs encoding")]
    Cobs,
    /// Fewer than 5 decoded bytes.
    #[error("packet too short: {len} bytes")]
    TooShort {
        /// Decoded length.
        len: usize,
    },
    /// More than [`MAX_PACKET`] decoded bytes (or a frame too long to be one).
    #[error("packet too long")]
    TooLong,
    /// CRC mismatch.
    #[error("crc mismatch: computed {computed:#06x}, received {received:#06x}")]
    Crc {
        /// Seq byte of the damaged packet (may itself be damaged).
        seq: u8,
        /// CRC computed over the received bytes.
        computed: u16,
        /// CRC carried by the packet.
        received: u16,
    },
    /// Version byte is not [`VERSION`].
    #[error("unsupported version {version}")]
    Version {
        /// Seq of the rejected packet.
        seq: u8,
        /// Version received.
        version: u8,
    },
    /// Type byte is not a known type.
    #[error("unknown packet type {code:#04x}")]
    Type {
        /// Seq of the rejected packet.
        seq: u8,
        /// Type code received.
        code: u8,
    },
}

impl FrameError {
    /// The NAK reason a receiver reports for this error.
    pub fn nak_reason(&self) -> NakReason {
        match self {
            FrameError::Cobs | FrameError::Crc { .. } => NakReason::Crc,
            FrameError::TooShort { .. } | FrameError::TooLong => NakReason::Length,
            FrameError::Version { .. } => NakReason::Version,
            FrameError::Type { .. } => NakReason::Type,
        }
    }

    /// The seq of the rejected packet, when it could be read.
    pub fn seq(&self) -> Option<u8> {
        match self {
            FrameError::Crc { seq, .. }
            | FrameError::Version { seq, .. }
            | FrameError::Type { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The payload exceeds [`MAX_PAYLOAD`].
    #[error("payload of {len} bytes exceeds {MAX_PAYLOAD}")]
    PayloadTooLong {
        /// Payload length.
        len: usize,
    },
}

impl Packet {
    /// A packet of `kind` with `seq` and `payload`.
    pub fn new(seq: u8, kind: PacketType, payload: Vec<u8>) -> Packet {
        Packet { seq, kind, payload }
    }

    /// The ACK for the packet with sequence number `seq`.
    pub fn ack(seq: u8) -> Packet {
        Packet::new(seq, PacketType::Ack, Vec::new())
    }

    /// The decoded bytes: version, seq, type, payload, CRC (big-endian).
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        if self.payload.len() > MAX_PAYLOAD {
            return Err(EncodeError::PayloadTooLong {
                len: self.payload.len(),
            });
        }
        let mut bytes = Vec::with_capacity(self.payload.len() + 5);
        bytes.extend_from_slice(&[VERSION, self.seq, self.kind.code()]);
        bytes.extend_from_slice(&self.payload);
        let crc = crc16(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        Ok(bytes)
    }

    /// The bytes on the wire: COBS-encoded packet followed by the `0x00` delimiter.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut wire = cobs::encode_vec(&self.to_bytes()?);
        wire.push(DELIMITER);
        Ok(wire)
    }

    /// Parses decoded (un-COBSed) bytes into a packet, checking length, CRC, version and
    /// type, in that order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Packet, FrameError> {
        if bytes.len() < 5 {
            return Err(FrameError::TooShort { len: bytes.len() });
        }
        if bytes.len() > MAX_PACKET {
            return Err(FrameError::TooLong);
        }
        let (body, crc) = bytes.split_at(bytes.len() - 2);
        let received = u16::from_be_bytes([crc[0], crc[1]]);
        let computed = crc16(body);
        let seq = body[1];
        if computed != received {
            return Err(FrameError::Crc {
                seq,
                computed,
                received,
            });
        }
        if body[0] != VERSION {
            return Err(FrameError::Version {
                seq,
                version: body[0],
            });
        }
        let kind = PacketType::from_code(body[2]).ok_or(FrameError::Type { seq, code: body[2] })?;
        Ok(Packet::new(seq, kind, body[3..].to_vec()))
    }

    /// Decodes one frame: the COBS bytes between two delimiters (delimiter excluded).
    pub fn decode_frame(frame: &[u8]) -> Result<Packet, FrameError> {
        if frame.len() > MAX_ENCODED {
            return Err(FrameError::TooLong);
        }
        let bytes = cobs::decode_vec(frame).map_err(|_| FrameError::Cobs)?;
        Packet::from_bytes(&bytes)
    }
}

/// A streaming decoder: feed it bytes as they arrive, get packets (or the reason a frame
/// was dropped) at each delimiter.
///
/// Bytes before a delimiter that do not decode into a valid packet are dropped; decoding
/// resumes after the delimiter. An over-long run of bytes without a delimiter is discarded
/// up to the next delimiter without growing memory. A packet is only ever yielded if its
/// CRC, version, type and length are all valid.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    overflow: bool,
}

impl Decoder {
    /// A decoder waiting for the first delimiter-terminated frame.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Feeds one byte; returns a result when it completes a non-empty frame.
    pub fn push(&mut self, byte: u8) -> Option<Result<Packet, FrameError>> {
        if byte != DELIMITER {
            if !self.overflow {
                if self.buf.len() == MAX_ENCODED {
                    self.overflow = true;
                    self.buf.clear();
                } else {
                    self.buf.push(byte);
                }
            }
            return None;
        }
        if std::mem::take(&mut self.overflow) {
            return Some(Err(FrameError::TooLong));
        }
        if self.buf.is_empty() {
            return None;
        }
        let result = Packet::decode_frame(&self.buf);
        self.buf.clear();
        Some(result)
    }

    /// Feeds a chunk of bytes; returns every completed frame's result, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Packet, FrameError>> {
        bytes.iter().filter_map(|&b| self.push(b)).collect()
    }

    /// Forgets any partial frame (after a reconnect).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.overflow = false;
    }
}
