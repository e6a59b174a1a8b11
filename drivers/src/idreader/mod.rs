//! Second-generation resident ID card readers: the SAM serial protocol.
//!
//! Frame: `AA AA AA 96 69 | LEN_H LEN_L | body | CHK`, where LEN counts every byte after
//! the LEN bytes (CHK included) and CHK is the XOR of LEN_H through the last body byte.
//! Commands are `CMD PARA`, replies `SW1 SW2 SW3 [data]`.
//!
//! [`IdReader`] is a blocking client (run it on a blocking thread); [`sim::IdReaderSim`]
//! is a reader on a PTY answering exactly the frames of the specification.

pub mod sim;
mod text;

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

pub use text::{CardText, Gender, TextError, Validity, nation_name};

/// The five bytes that open every frame.
pub const PREAMBLE: [u8; 5] = [0xAA, 0xAA, 0xAA, 0x96, 0x69];
/// Bytes of the text block in a read reply.
pub const TEXT_LEN: usize = 256;
/// Bytes of the photo (WLT) block in a read reply.
pub const PHOTO_LEN: usize = 1024;

/// The commands of the SAM protocol (`CMD`, `PARA`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SAM status (`11 FF`).
    SamStatus,
    /// Find a card (`20 01`).
    Find,
    /// Select the card (`20 02`).
    Select,
    /// Read text and photo (`30 01`).
    Read,
}

impl Request {
    /// `CMD PARA`.
    pub fn body(self) -> [u8; 2] {
        match self {
            Request::SamStatus => [0x11, 0xFF],
            Request::Find => [0x20, 0x01],
            Request::Select => [0x20, 0x02],
            Request::Read => [0x30, 0x01],
        }
    }

    /// The request for a command body, if known.
    pub fn from_body(body: &[u8]) -> Option<Request> {
        [
            Request::SamStatus,
            Request::Find,
            Request::Select,
            Request::Read,
        ]
        .into_iter()
        .find(|r| r.body() == body)
    }

    /// The full frame.
    pub fn frame(self) -> Vec<u8> {
        encode_frame(&self.body())
    }
}

/// SW3, the status byte of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sw3 {
    /// `90` success.
    Ok,
    /// `9F` card found.
    CardFound,
    /// `80` find failed (no card).
    FindFailed,
    /// `81` select failed.
    SelectFailed,
    /// `41` read failed.
    ReadFailed,
    /// `10` checksum error (in the command received by the reader).
    Checksum,
    /// `11` length error.
    Length,
    /// `21` command error.
    Command,
    /// `91` no content.
    NoContent,
    /// Any other value.
    Other(u8),
}

impl Sw3 {
    /// The status for a byte.
    pub fn from_byte(b: u8) -> Sw3 {
        match b {
            0x90 => Sw3::Ok,
            0x9F => Sw3::CardFound,
            0x80 => Sw3::FindFailed,
            0x81 => Sw3::SelectFailed,
            0x41 => Sw3::ReadFailed,
            0x10 => Sw3::Checksum,
            0x11 => Sw3::Length,
            0x21 => Sw3::Command,
            0x91 => Sw3::NoContent,
            b => Sw3::Other(b),
        }
    }

    /// The byte.
    pub fn byte(self) -> u8 {
        match self {
            Sw3::Ok => 0x90,
            Sw3::CardFound => 0x9F,
            Sw3::FindFailed => 0x80,
            Sw3::SelectFailed => 0x81,
            Sw3::ReadFailed => 0x41,
            Sw3::Checksum => 0x10,
            Sw3::Length => 0x11,
            Sw3::Command => 0x21,
            Sw3::NoContent => 0x91,
            Sw3::Other(b) => b,
        }
    }
}

/// A parsed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// SW1 (always `00` from a healthy reader).
    pub sw1: u8,
    /// SW2 (always `00`).
    pub sw2: u8,
    /// Status.
    pub sw3: Sw3,
    /// Data after the status bytes.
    pub data: Vec<u8>,
}

impl Reply {
    /// A reply with `sw3` and `data` (SW1 = SW2 = 0).
    pub fn new(sw3: Sw3, data: Vec<u8>) -> Reply {
        Reply {
            sw1: 0,
            sw2: 0,
            sw3,
            data,
        }
    }

    /// The full frame.
    pub fn frame(&self) -> Vec<u8> {
        let mut body = vec![self.sw1, self.sw2, self.sw3.byte()];
        body.extend_from_slice(&self.data);
        encode_frame(&body)
    }

    /// Parses a frame body (SW1 SW2 SW3 data).
    pub fn from_body(body: &[u8]) -> Result<Reply, IdReaderError> {
        if body.len() < 3 {
            return Err(IdReaderError::Truncated);
        }
        Ok(Reply {
            sw1: body[0],
            sw2: body[1],
            sw3: Sw3::from_byte(body[2]),
            data: body[3..].to_vec(),
        })
    }
}

/// Wraps a body in preamble, LEN and CHK.
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len() + 1).unwrap_or(u16::MAX);
    let mut frame = PREAMBLE.to_vec();
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    let chk = frame[5..].iter().fold(0, |acc, b| acc ^ b);
    frame.push(chk);
    frame
}

/// Parses a complete frame (starting at the preamble) into its body.
pub fn decode_frame(frame: &[u8]) -> Result<Vec<u8>, IdReaderError> {
    if frame.len() < 8 || frame[..5] != PREAMBLE {
        return Err(IdReaderError::Truncated);
    }
    let len = usize::from(u16::from_be_bytes([frame[5], frame[6]]));
    if len == 0 || frame.len() < 7 + len {
        return Err(IdReaderError::Truncated);
    }
    let chk_at = 6 + len;
    let computed = frame[5..chk_at].iter().fold(0, |acc, b| acc ^ b);
    if computed != frame[chk_at] {
        return Err(IdReaderError::Checksum {
            computed,
            received: frame[chk_at],
        });
    }
    Ok(frame[7..chk_at].to_vec())
}

/// Reads one frame from `port`: skips bytes until the preamble, then reads LEN bytes.
/// Fails with [`IdReaderError::Timeout`] if nothing arrives and
/// [`IdReaderError::Truncated`] if a frame starts but does not complete by `deadline`.
pub fn read_frame(port: &mut impl Read, deadline: Instant) -> Result<Vec<u8>, IdReaderError> {
    let mut frame = Vec::new();
    let mut byte = [0u8; 1];
    let mut need = PREAMBLE.len() + 2;
    while frame.len() < need {
        if Instant::now() >= deadline {
            return Err(if frame.is_empty() {
                IdReaderError::Timeout
            } else {
                IdReaderError::Truncated
            });
        }
        match port.read(&mut byte) {
            Ok(0) => return Err(IdReaderError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {
                frame.push(byte[0]);
                // Resynchronise: keep the longest tail that may still start a preamble.
                while !PREAMBLE.starts_with(&frame[..frame.len().min(PREAMBLE.len())]) {
                    frame.remove(0);
                }
                if frame.len() == PREAMBLE.len() + 2 {
                    need = 7 + usize::from(u16::from_be_bytes([frame[5], frame[6]]));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(IdReaderError::Io(e)),
        }
    }
    Ok(frame)
}

/// An ID reader error. No card data is returned with any of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdReaderError {
    /// The port could not be opened.
    #[error("cannot open id reader: {0}")]
    Open(#[from] serialport::Error),
    /// Reading or writing failed.
    #[error("id reader io: {0}")]
    Io(#[from] io::Error),
    /// No reply in time.
    #[error("id reader did not answer")]
    Timeout,
    /// A reply started but was cut short (or is too short to be one).
    #[error("truncated reply from id reader")]
    Truncated,
    /// A reply with a wrong checksum.
    #[error("bad checksum from id reader: computed {computed:#04x}, received {received:#04x}")]
    Checksum {
        /// XOR computed over the frame.
        computed: u8,
        /// CHK received.
        received: u8,
    },
    /// The reader answered with an unexpected status.
    #[error("id reader answered {0:?} to {1:?}")]
    Status(Sw3, Request),
    /// The read reply is not laid out as the protocol says.
    #[error("malformed card data: {0}")]
    Layout(String),
    /// The text block does not parse.
    #[error("invalid card text: {0}")]
    Text(#[from] TextError),
}

/// Everything read from a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRead {
    /// The text fields.
    pub text: CardText,
    /// The photo, WLT-encoded (decoding needs a vendor library): keep it as a blob or drop it.
    pub photo_wlt: Vec<u8>,
}

/// Parses the data of a read reply: text length, photo length (both big-endian u16), text,
/// photo.
pub fn parse_read_data(data: &[u8]) -> Result<CardRead, IdReaderError> {
    if data.len() < 4 {
        return Err(IdReaderError::Truncated);
    }
    let text_len = usize::from(u16::from_be_bytes([data[0], data[1]]));
    let photo_len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    if text_len != TEXT_LEN || data.len() != 4 + text_len + photo_len {
        return Err(IdReaderError::Layout(format!(
            "text {text_len} + photo {photo_len} bytes in {} bytes of data",
            data.len()
        )));
    }
    let text = CardText::parse(&data[4..4 + text_len])?;
    Ok(CardRead {
        text,
        photo_wlt: data[4 + text_len..].to_vec(),
    })
}

/// A blocking client of one reader on a serial path.
pub struct IdReader {
    port: Box<dyn serialport::SerialPort>,
    reply_timeout: Duration,
}

impl std::fmt::Debug for IdReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdReader")
            .field("port", &self.port.name())
            .finish()
    }
}

impl IdReader {
    /// Opens the reader at `path` (115200 8N1 is the standard rate).
    pub fn open(path: &str, baud: u32) -> Result<IdReader, IdReaderError> {
        let port = serialport::new(path, baud)
            .timeout(Duration::from_millis(20))
            .open()?;
        Ok(IdReader {
            port,
            reply_timeout: Duration::from_secs(1),
        })
    }

    /// Sets how long to wait for each reply (1 s by default).
    pub fn set_reply_timeout(&mut self, timeout: Duration) {
        self.reply_timeout = timeout;
    }

    /// Sends a request and returns its reply.
    pub fn transact(&mut self, request: Request) -> Result<Reply, IdReaderError> {
        let _ = self.port.clear(serialport::ClearBuffer::Input);
        self.port.write_all(&request.frame())?;
        let frame = read_frame(&mut self.port, Instant::now() + self.reply_timeout)?;
        Reply::from_body(&decode_frame(&frame)?)
    }

    /// Asks the SAM module for its status; `Ok` when it answers `90`.
    pub fn sam_status(&mut self) -> Result<(), IdReaderError> {
        let reply = self.transact(Request::SamStatus)?;
        match reply.sw3 {
            Sw3::Ok => Ok(()),
            sw3 => Err(IdReaderError::Status(sw3, Request::SamStatus)),
        }
    }

    /// Looks for a card: `Ok(None)` when there is none, else find → select → read.
    pub fn poll_card(&mut self) -> Result<Option<CardRead>, IdReaderError> {
        match self.transact(Request::Find)?.sw3 {
            Sw3::CardFound => {}
            Sw3::FindFailed => return Ok(None),
            sw3 => return Err(IdReaderError::Status(sw3, Request::Find)),
        }
        let select = self.transact(Request::Select)?;
        if select.sw3 != Sw3::Ok {
            return Err(IdReaderError::Status(select.sw3, Request::Select));
        }
        let read = self.transact(Request::Read)?;
        if read.sw3 != Sw3::Ok {
            return Err(IdReaderError::Status(read.sw3, Request::Read));
        }
        parse_read_data(&read.data).map(Some)
    }
}
