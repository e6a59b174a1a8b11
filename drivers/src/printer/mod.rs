//! ESC/POS ticket printers: the ticket renderer, DLE EOT status, a client and a simulator.

pub mod sim;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// ESC/POS byte sequences used by the renderer.
pub mod cmd {
    /// ESC @: initialise.
    pub const INIT: [u8; 2] = [0x1B, 0x40];
    /// ESC a 0: align left.
    pub const ALIGN_LEFT: [u8; 3] = [0x1B, 0x61, 0x00];
    /// ESC a 1: centre.
    pub const ALIGN_CENTER: [u8; 3] = [0x1B, 0x61, 0x01];
    /// ESC a 2: align right.
    pub const ALIGN_RIGHT: [u8; 3] = [0x1B, 0x61, 0x02];
    /// ESC E 1: bold on.
    pub const BOLD_ON: [u8; 3] = [0x1B, 0x45, 0x01];
    /// ESC E 0: bold off.
    pub const BOLD_OFF: [u8; 3] = [0x1B, 0x45, 0x00];
    /// FS &: Chinese mode on.
    pub const CHINESE_ON: [u8; 2] = [0x1C, 0x26];
    /// FS .: Chinese mode off.
    pub const CHINESE_OFF: [u8; 2] = [0x1C, 0x2E];
    /// GS ( k: QR model 2.
    pub const QR_MODEL_2: [u8; 9] = [0x1D, 0x28, 0x6B, 0x04, 0x00, 0x31, 0x41, 0x32, 0x00];
    /// GS ( k: QR error correction M.
    pub const QR_EC_M: [u8; 8] = [0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x45, 0x31];
    /// GS ( k: print the stored QR symbol.
    pub const QR_PRINT: [u8; 8] = [0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30];
    /// GS V 1: partial cut.
    pub const CUT_PARTIAL: [u8; 3] = [0x1D, 0x56, 0x01];

    /// GS !: character size, `w` and `h` in 1..=8.
    pub fn size(w: u8, h: u8) -> [u8; 3] {
        let (w, h) = (w.clamp(1, 8), h.clamp(1, 8));
        [0x1D, 0x21, ((w - 1) << 4) | (h - 1)]
    }

    /// GS ( k: QR module size `n`.
    pub fn qr_module_size(n: u8) -> [u8; 8] {
        [0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x43, n]
    }

    /// GS ( k: store QR data (pL + 256·pH = len + 3).
    pub fn qr_store(data: &[u8]) -> Vec<u8> {
        let n = u16::try_from(data.len() + 3).unwrap_or(u16::MAX);
        let [pl, ph] = n.to_le_bytes();
        let mut v = vec![0x1D, 0x28, 0x6B, pl, ph, 0x31, 0x50, 0x30];
        v.extend_from_slice(&data[..usize::from(n) - 3]);
        v
    }

    /// ESC d n: feed `n` lines.
    pub fn feed(n: u8) -> [u8; 3] {
        [0x1B, 0x64, n]
    }

    /// DLE EOT n: real-time status query.
    pub fn status_query(n: u8) -> [u8; 3] {
        [0x10, 0x04, n]
    }
}

/// How a printer encodes text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextEncoding {
    /// GB18030 (the default).
    #[default]
    Gb18030,
    /// GBK.
    Gbk,
    /// UTF-8.
    Utf8,
}

impl TextEncoding {
    fn encoding(self) -> &'static encoding_rs::Encoding {
        match self {
            TextEncoding::Gb18030 => encoding_rs::GB18030,
            TextEncoding::Gbk => encoding_rs::GBK,
            TextEncoding::Utf8 => encoding_rs::UTF_8,
        }
    }

    /// Encodes text (characters GBK lacks become `?`).
    pub fn encode(self, text: &str) -> Vec<u8> {
        let (bytes, _, had_errors) = self.encoding().encode(text);
        if !had_errors {
            return bytes.into_owned();
        }
        let mut out = Vec::new();
        for c in text.chars() {
            let s = c.to_string();
            let (b, _, bad) = self.encoding().encode(&s);
            out.extend_from_slice(if bad { b"?" } else { &b });
        }
        out
    }

    /// Decodes text (malformed bytes become U+FFFD).
    pub fn decode(self, bytes: &[u8]) -> String {
        self.encoding()
            .decode_without_bom_handling(bytes)
            .0
            .into_owned()
    }

    /// Whether the printer needs FS & (Chinese mode) for this encoding.
    fn chinese_mode(self) -> bool {
        !matches!(self, TextEncoding::Utf8)
    }
}

/// A queue ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Bank name (bold header).
    pub bank_name: String,
    /// Branch name.
    pub branch_name: String,
    /// Service, Chinese.
    pub service_zh: String,
    /// Service, English.
    pub service_en: String,
    /// Ticket number, printed large.
    pub number: String,
    /// People ahead in the queue.
    pub people_ahead: u32,
    /// Estimated wait in minutes.
    pub estimated_wait_min: u32,
    /// Issue time, formatted.
    pub issued_at: String,
    /// Data of the QR code (e.g. a URL to follow the queue).
    pub qr_data: String,
}

impl Ticket {
    /// The text lines of the ticket, in print order (what a simulator should read back).
    pub fn lines(&self) -> Vec<String> {
        vec![
            self.bank_name.clone(),
            self.branch_name.clone(),
            format!("{} {}", self.service_zh, self.service_en),
            self.number.clone(),
            format!(
                "前面还有 {} 人 / {} ahead",
                self.people_ahead, self.people_ahead
            ),
            format!(
                "预计等待 {} 分钟 / about {} min",
                self.estimated_wait_min, self.estimated_wait_min
            ),
            self.issued_at.clone(),
        ]
    }

    /// The ESC/POS bytes: initialise, centre, Chinese mode, bold header, the number at
    /// 4×4, the queue lines, a QR code (model 2, module 6, EC M), feed and partial cut.
    pub fn render(&self, encoding: TextEncoding) -> Vec<u8> {
        let lines = self.lines();
        let mut b = opening(encoding);
        let text = |b: &mut Vec<u8>, s: &str| line(b, encoding, s);
        b.extend_from_slice(&cmd::BOLD_ON);
        text(&mut b, &lines[0]);
        b.extend_from_slice(&cmd::BOLD_OFF);
        text(&mut b, &lines[1]);
        text(&mut b, &lines[2]);
        b.extend_from_slice(&cmd::size(4, 4));
        b.extend_from_slice(&cmd::BOLD_ON);
        text(&mut b, &lines[3]);
        b.extend_from_slice(&cmd::BOLD_OFF);
        b.extend_from_slice(&cmd::size(1, 1));
        text(&mut b, &lines[4]);
        text(&mut b, &lines[5]);
        qr_code(&mut b, &self.qr_data);
        text(&mut b, &lines[6]);
        cut(&mut b);
        b
    }
}

/// One step of an order on a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptStep {
    /// The step's name for the customer.
    pub label: String,
    /// When it started, formatted (empty when unknown).
    pub started: String,
    /// When it finished, formatted (empty when unknown).
    pub finished: String,
}

/// The receipt (回单) of a delivered order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Bank name (bold header).
    pub bank_name: String,
    /// Branch name.
    pub branch_name: String,
    /// The order's id.
    pub order_id: String,
    /// The order's title.
    pub title: String,
    /// Its business type.
    pub business_type: String,
    /// Each step with its times.
    pub steps: Vec<ReceiptStep>,
    /// When it was delivered, formatted.
    pub delivered_at: String,
    /// Data of the QR code (the customer's page).
    pub qr_data: String,
}

impl Receipt {
    /// The text lines before the QR code, in print order.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            self.bank_name.clone(),
            self.branch_name.clone(),
            "业务回单 / Receipt".to_string(),
            format!("单号 / Order: {}", self.order_id),
            format!("{} ({})", self.title, self.business_type),
        ];
        for s in &self.steps {
            lines.push(s.label.clone());
            lines.push(format!("{} - {}", s.started, s.finished));
        }
        lines.push(format!("办结 / Delivered: {}", self.delivered_at));
        lines
    }

    /// The line under the QR code.
    pub const FOOTER: &'static str = "扫码查看并评价 / Scan to view and rate";

    /// The ESC/POS bytes: initialise, centre, Chinese mode, bold header, the order and its
    /// steps left-aligned, the delivery time, a QR code (model 2, module 6, EC M), the
    /// footer, feed and partial cut.
    pub fn render(&self, encoding: TextEncoding) -> Vec<u8> {
        let lines = self.lines();
        let mut b = opening(encoding);
        let text = |b: &mut Vec<u8>, s: &str| line(b, encoding, s);
        b.extend_from_slice(&cmd::BOLD_ON);
        text(&mut b, &lines[0]);
        b.extend_from_slice(&cmd::BOLD_OFF);
        text(&mut b, &lines[1]);
        b.extend_from_slice(&cmd::BOLD_ON);
        text(&mut b, &lines[2]);
        b.extend_from_slice(&cmd::BOLD_OFF);
        b.extend_from_slice(&cmd::ALIGN_LEFT);
        for l in &lines[3..] {
            text(&mut b, l);
        }
        b.extend_from_slice(&cmd::ALIGN_CENTER);
        qr_code(&mut b, &self.qr_data);
        text(&mut b, Self::FOOTER);
        cut(&mut b);
        b
    }
}

/// The start of every slip: initialise, centre, and Chinese mode where the encoding needs it.
fn opening(encoding: TextEncoding) -> Vec<u8> {
    let mut b = Vec::with_capacity(1024);
    b.extend_from_slice(&cmd::INIT);
    b.extend_from_slice(&cmd::ALIGN_CENTER);
    if encoding.chinese_mode() {
        b.extend_from_slice(&cmd::CHINESE_ON);
    }
    b
}

/// One line of text in the printer's encoding.
fn line(b: &mut Vec<u8>, encoding: TextEncoding, s: &str) {
    b.extend_from_slice(&encoding.encode(s));
    b.push(b'\n');
}

/// The end of every slip: feed past the cutter, then a partial cut.
fn cut(b: &mut Vec<u8>) {
    b.extend_from_slice(&cmd::feed(4));
    b.extend_from_slice(&cmd::CUT_PARTIAL);
}

/// A QR code of `data` (model 2, module 6, EC M) and a line feed.
fn qr_code(b: &mut Vec<u8>, data: &str) {
    b.extend_from_slice(&cmd::QR_MODEL_2);
    b.extend_from_slice(&cmd::qr_module_size(6));
    b.extend_from_slice(&cmd::QR_EC_M);
    b.extend_from_slice(&cmd::qr_store(data.as_bytes()));
    b.extend_from_slice(&cmd::QR_PRINT);
    b.push(b'\n');
}

/// The printer's state from the four DLE EOT answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrinterStatus {
    /// Not offline (n = 1, bit 3 clear).
    pub online: bool,
    /// Cover open (n = 2, bit 2).
    pub cover_open: bool,
    /// Printing stopped at paper end (n = 2, bit 5).
    pub paper_end_stop: bool,
    /// An error occurred (n = 2, bit 6).
    pub error: bool,
    /// Autocutter error (n = 3, bit 3).
    pub autocutter_error: bool,
    /// Unrecoverable error (n = 3, bit 5).
    pub unrecoverable_error: bool,
    /// Paper near end (n = 4, bits 2 and 3).
    pub paper_near_end: bool,
    /// Paper out (n = 4, bits 5 and 6).
    pub paper_out: bool,
}

/// Why a status byte is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// `n` is not 1–4.
    #[error("unknown status query n = {0}")]
    Query(u8),
    /// The fixed bits (`0xx1xx10`) are wrong: not a status byte.
    #[error("status byte {0:#04x} has wrong fixed bits")]
    FixedBits(u8),
}

const FIXED_MASK: u8 = 0b1001_0011;
const FIXED_VALUE: u8 = 0b0001_0010;

impl PrinterStatus {
    /// Folds the answer `byte` to DLE EOT `n` into this status.
    pub fn apply(&mut self, n: u8, byte: u8) -> Result<(), StatusError> {
        if !(1..=4).contains(&n) {
            return Err(StatusError::Query(n));
        }
        if byte & FIXED_MASK != FIXED_VALUE {
            return Err(StatusError::FixedBits(byte));
        }
        let bit = |i: u8| byte & (1 << i) != 0;
        match n {
            1 => self.online = !bit(3),
            2 => {
                self.cover_open = bit(2);
                self.paper_end_stop = bit(5);
                self.error = bit(6);
            }
            3 => {
                self.autocutter_error = bit(3);
                self.unrecoverable_error = bit(5);
            }
            _ => {
                self.paper_near_end = bit(2) && bit(3);
                self.paper_out = bit(5) && bit(6);
            }
        }
        Ok(())
    }

    /// Parses the four answers to DLE EOT 1, 2, 3 and 4.
    pub fn from_bytes(bytes: [u8; 4]) -> Result<PrinterStatus, StatusError> {
        let mut s = PrinterStatus::default();
        for (n, b) in (1..=4).zip(bytes) {
            s.apply(n, b)?;
        }
        Ok(s)
    }

    /// The byte a printer in this state answers to DLE EOT `n` (for simulators).
    pub fn byte(&self, n: u8) -> u8 {
        let set = |on: bool, bits: u8| if on { bits } else { 0 };
        FIXED_VALUE
            | match n {
                1 => set(!self.online, 1 << 3),
                2 => {
                    set(self.cover_open, 1 << 2)
                        | set(self.paper_end_stop, 1 << 5)
                        | set(self.error, 1 << 6)
                }
                3 => set(self.autocutter_error, 1 << 3) | set(self.unrecoverable_error, 1 << 5),
                4 => set(self.paper_near_end, 0b1100) | set(self.paper_out, 0b110_0000),
                _ => 0,
            }
    }
}

/// A printer error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrinterError {
    /// The device could not be opened.
    #[error("cannot open printer {path}: {source}")]
    Open {
        /// Device path.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// Writing or reading failed.
    #[error("printer io: {0}")]
    Io(#[from] io::Error),
    /// The printer did not answer a status query in time (USB lp devices often cannot).
    #[error("printer status unavailable")]
    StatusUnavailable,
    /// The answer was not a status byte.
    #[error(transparent)]
    Status(#[from] StatusError),
}

/// How the printer is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrinterPort {
    /// A serial port (RS-232 or USB-serial) at a baud rate.
    Serial {
        /// Device path.
        path: PathBuf,
        /// Baud rate.
        baud: u32,
    },
    /// A USB printer-class character device such as `/dev/usb/lp0`: a plain byte stream,
    /// read back only if the printer supports it.
    UsbLp {
        /// Device path.
        path: PathBuf,
    },
}

/// A blocking printer client (run it on a blocking thread).
#[derive(Debug)]
pub struct Printer {
    conn: Conn,
    status_timeout: Duration,
}

#[derive(Debug)]
enum Conn {
    Serial(serialport::TTYPort),
    /// `readable` is false when the device could only be opened write-only.
    Lp {
        file: File,
        readable: bool,
    },
}

impl Printer {
    /// Opens the printer. A serial port is configured raw at its baud rate; an lp device is
    /// opened read-write if possible, else write-only (status queries then fail with
    /// [`PrinterError::StatusUnavailable`]).
    pub fn open(port: &PrinterPort) -> Result<Printer, PrinterError> {
        let open_err = |path: &Path, source| PrinterError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = match port {
            PrinterPort::Serial { path, baud } => Conn::Serial(
                serialport::new(path.to_string_lossy(), *baud)
                    .timeout(Duration::from_millis(500))
                    .open_native()
                    .map_err(|e| open_err(path, e.into()))?,
            ),
            PrinterPort::UsbLp { path } => {
                match OpenOptions::new().read(true).write(true).open(path) {
                    Ok(file) => Conn::Lp {
                        file,
                        readable: true,
                    },
                    Err(_) => Conn::Lp {
                        file: OpenOptions::new()
                            .write(true)
                            .open(path)
                            .map_err(|e| open_err(path, e))?,
                        readable: false,
                    },
                }
            }
        };
        Ok(Printer {
            conn,
            status_timeout: Duration::from_millis(500),
        })
    }

    /// Opens a device path, as an lp device if it lives under `/dev/usb/`, else serial.
    pub fn open_path(path: &Path, baud: u32) -> Result<Printer, PrinterError> {
        let port = if path.starts_with("/dev/usb") {
            PrinterPort::UsbLp { path: path.into() }
        } else {
            PrinterPort::Serial {
                path: path.into(),
                baud,
            }
        };
        Printer::open(&port)
    }

    /// Sets how long to wait for each status byte (500 ms by default).
    pub fn set_status_timeout(&mut self, timeout: Duration) {
        self.status_timeout = timeout;
    }

    fn writer(&mut self) -> &mut dyn Write {
        match &mut self.conn {
            Conn::Serial(port) => port,
            Conn::Lp { file, .. } => file,
        }
    }

    /// Sends bytes (a rendered ticket).
    pub fn print(&mut self, bytes: &[u8]) -> Result<(), PrinterError> {
        let w = self.writer();
        w.write_all(bytes)?;
        w.flush()?;
        Ok(())
    }

    fn read_byte(&mut self) -> Result<u8, PrinterError> {
        let mut b = [0u8; 1];
        match &mut self.conn {
            Conn::Serial(port) => {
                serialport::SerialPort::set_timeout(port, self.status_timeout)
                    .map_err(io::Error::from)?;
                match port.read(&mut b) {
                    Ok(1) => Ok(b[0]),
                    Ok(_) => Err(PrinterError::StatusUnavailable),
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                        Err(PrinterError::StatusUnavailable)
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Conn::Lp { file, .. } => {
                if !poll_readable(file, self.status_timeout)? {
                    return Err(PrinterError::StatusUnavailable);
                }
                match file.read(&mut b)? {
                    1 => Ok(b[0]),
                    _ => Err(PrinterError::StatusUnavailable),
                }
            }
        }
    }

    /// Drops bytes that arrived unasked, so answers line up with queries.
    fn drain_input(&mut self) -> Result<(), PrinterError> {
        match &mut self.conn {
            Conn::Serial(port) => {
                serialport::SerialPort::clear(port, serialport::ClearBuffer::Input)
                    .map_err(io::Error::from)?;
            }
            Conn::Lp { file, .. } => {
                let mut stale = [0u8; 64];
                while poll_readable(file, Duration::ZERO)? {
                    if file.read(&mut stale)? == 0 {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Queries DLE EOT 1–4 and folds the answers into a [`PrinterStatus`].
    pub fn status(&mut self) -> Result<PrinterStatus, PrinterError> {
        if matches!(
            self.conn,
            Conn::Lp {
                readable: false,
                ..
            }
        ) {
            return Err(PrinterError::StatusUnavailable);
        }
        self.drain_input()?;
        let mut status = PrinterStatus::default();
        for n in 1..=4 {
            self.writer().write_all(&cmd::status_query(n))?;
            let b = self.read_byte()?;
            status.apply(n, b)?;
        }
        Ok(status)
    }
}

fn poll_readable(file: &File, timeout: Duration) -> io::Result<bool> {
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
    let n = poll(&mut fds, PollTimeout::from(ms)).map_err(io::Error::from)?;
    Ok(n > 0
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN)))
}
