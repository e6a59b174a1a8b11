//! A simulated ESC/POS ticket printer on a PTY.
//!
//! It parses the command stream, decodes text with its configured encoding, keeps each
//! ticket (from ESC @ to the cut) as text lines plus QR data, records commands it does not
//! understand, and answers DLE EOT from its state. While out of paper, offline or with the
//! cover open it prints nothing: tickets sent meanwhile are counted as lost, not kept.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{PrinterStatus, TextEncoding};
use crate::pty::{PtyError, SimPort};

/// A ticket as the simulated printer printed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrintedTicket {
    /// Non-empty text lines, decoded.
    pub lines: Vec<String>,
    /// Data of each QR code printed.
    pub qr: Vec<String>,
}

impl PrintedTicket {
    /// All lines joined with newlines.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// Paper supply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Paper {
    /// Plenty.
    #[default]
    Ok,
    /// Near end: still prints.
    NearEnd,
    /// Out: prints nothing.
    Out,
}

/// What the printer holds, for assertions.
#[derive(Debug, Clone, Default)]
pub struct PrinterRecord {
    /// Tickets printed (cut), in order.
    pub tickets: Vec<PrintedTicket>,
    /// Tickets received while unable to print.
    pub lost_tickets: usize,
    /// Command sequences not understood, as received.
    pub unknown_commands: Vec<Vec<u8>>,
    /// DLE EOT queries answered.
    pub status_queries: usize,
}

#[derive(Debug, Default)]
struct State {
    paper: Paper,
    cover_open: bool,
    offline: bool,
    record: PrinterRecord,
}

impl State {
    fn status(&self) -> PrinterStatus {
        let out = self.paper == Paper::Out;
        PrinterStatus {
            online: !(self.offline || self.cover_open || out),
            cover_open: self.cover_open,
            paper_end_stop: out,
            paper_near_end: self.paper != Paper::Ok,
            paper_out: out,
            ..PrinterStatus::default()
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running printer simulator; dropping it stops the thread and removes the device.
#[derive(Debug)]
pub struct PrinterSim {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    path: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl PrinterSim {
    /// Creates the PTY (and the stable `link_path`, if given) and starts the simulator.
    pub fn spawn(
        encoding: TextEncoding,
        link_path: Option<PathBuf>,
    ) -> Result<PrinterSim, PtyError> {
        let port = SimPort::open(link_path)?;
        let path = port.path();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("printer-sim".into())
            .spawn(move || run(port, encoding, s, st))
            .map_err(|source| PtyError::Link {
                path: PathBuf::new(),
                source,
            })?;
        Ok(PrinterSim {
            state,
            stop,
            path,
            thread: Some(thread),
        })
    }

    /// The device path to open.
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Sets the paper supply.
    pub fn set_paper(&self, paper: Paper) {
        lock(&self.state).paper = paper;
    }

    /// Opens or closes the cover.
    pub fn set_cover_open(&self, open: bool) {
        lock(&self.state).cover_open = open;
    }

    /// Takes the printer offline (or back online).
    pub fn set_offline(&self, offline: bool) {
        lock(&self.state).offline = offline;
    }

    /// The status the printer reports now.
    pub fn status(&self) -> PrinterStatus {
        lock(&self.state).status()
    }

    /// A snapshot of what was printed and received.
    pub fn record(&self) -> PrinterRecord {
        lock(&self.state).record.clone()
    }

    /// Polls the record every 10 ms until `pred` holds or `timeout` passes.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&PrinterRecord) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&lock(&self.state).record) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for PrinterSim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One ESC/POS element of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// ESC @.
    Init,
    /// A formatting command with no effect on the text kept (alignment, bold, size,
    /// Chinese mode, feed, QR settings).
    Format,
    /// GS ( k store: QR data.
    QrStore(Vec<u8>),
    /// GS ( k print.
    QrPrint,
    /// GS V: cut.
    Cut,
    /// DLE EOT n.
    StatusQuery(u8),
    /// LF.
    NewLine,
    /// A text byte.
    Text(u8),
    /// A command the printer does not understand (skipped).
    Unknown(Vec<u8>),
}

/// Parses the element at the front of `buf`: the element and the bytes it used, or `None`
/// if more bytes are needed.
pub fn parse_op(buf: &[u8]) -> Option<(Op, usize)> {
    let b0 = *buf.first()?;
    let at = |i: usize| buf.get(i).copied();
    let unknown = |n: usize| Some((Op::Unknown(buf[..n].to_vec()), n));
    match b0 {
        0x1B => match at(1)? {
            0x40 => Some((Op::Init, 2)),
            0x61 | 0x45 | 0x64 | 0x21 | 0x4D => at(2).map(|_| (Op::Format, 3)),
            _ => unknown(2),
        },
        0x1C => match at(1)? {
            0x26 | 0x2E => Some((Op::Format, 2)),
            _ => unknown(2),
        },
        0x1D => match at(1)? {
            0x21 => at(2).map(|_| (Op::Format, 3)),
            0x56 => match at(2)? {
                0x00 | 0x01 | 0x30 | 0x31 => Some((Op::Cut, 3)),
                0x41 | 0x42 | 0x61 | 0x62 => at(3).map(|_| (Op::Cut, 4)),
                _ => unknown(3),
            },
            0x28 => {
                let (fn_group, pl, ph) = (at(2)?, at(3)?, at(4)?);
                let len = usize::from(pl) + 256 * usize::from(ph);
                let total = 5 + len;
                if buf.len() < total {
                    return None;
                }
                let data = &buf[5..total];
                let op = match (fn_group, data) {
                    (0x6B, [0x31, 0x50, 0x30, qr @ ..]) => Op::QrStore(qr.to_vec()),
                    (0x6B, [0x31, 0x51, 0x30]) => Op::QrPrint,
                    (0x6B, [0x31, 0x41 | 0x43 | 0x45, ..]) => Op::Format,
                    _ => Op::Unknown(buf[..total].to_vec()),
                };
                Some((op, total))
            }
            _ => unknown(2),
        },
        0x10 => match at(1)? {
            0x04 => at(2).map(|n| (Op::StatusQuery(n), 3)),
            _ => unknown(2),
        },
        0x0A => Some((Op::NewLine, 1)),
        0x0D => Some((Op::Format, 1)),
        b if b < 0x20 => unknown(1),
        b => Some((Op::Text(b), 1)),
    }
}

#[derive(Default)]
struct Job {
    ticket: PrintedTicket,
    line: Vec<u8>,
    qr: Option<Vec<u8>>,
}

impl Job {
    fn end_line(&mut self, encoding: TextEncoding) {
        let text = encoding.decode(&std::mem::take(&mut self.line));
        let text = text.trim();
        if !text.is_empty() {
            self.ticket.lines.push(text.to_owned());
        }
    }
}

fn run(mut port: SimPort, encoding: TextEncoding, state: Arc<Mutex<State>>, stop: Arc<AtomicBool>) {
    let mut input: Vec<u8> = Vec::new();
    let mut buf = [0u8; 1024];
    let mut job: Option<Job> = None;
    while !stop.load(Ordering::Relaxed) {
        let n = match port.poll(&mut buf, Duration::from_millis(5)) {
            Ok((_, n)) => n,
            Err(_) => 0,
        };
        input.extend_from_slice(&buf[..n]);
        let mut used = 0;
        while let Some((op, len)) = parse_op(&input[used..]) {
            used += len;
            let mut st = lock(&state);
            match op {
                Op::Init => job = Some(Job::default()),
                Op::Format => {}
                Op::Text(b) => job.get_or_insert_with(Job::default).line.push(b),
                Op::NewLine => job.get_or_insert_with(Job::default).end_line(encoding),
                Op::QrStore(data) => job.get_or_insert_with(Job::default).qr = Some(data),
                Op::QrPrint => {
                    let j = job.get_or_insert_with(Job::default);
                    if let Some(qr) = j.qr.clone() {
                        j.ticket.qr.push(String::from_utf8_lossy(&qr).into_owned());
                    }
                }
                Op::Cut => {
                    let mut j = job.take().unwrap_or_default();
                    j.end_line(encoding);
                    if st.status().online {
                        tracing::info!(
                            lines = ?j.ticket.lines,
                            qr = ?j.ticket.qr,
                            "printer sim printed"
                        );
                        st.record.tickets.push(j.ticket);
                    } else {
                        st.record.lost_tickets += 1;
                    }
                }
                Op::StatusQuery(n) => {
                    st.record.status_queries += 1;
                    if (1..=4).contains(&n) {
                        let byte = st.status().byte(n);
                        drop(st);
                        let _ = port.write(&[byte]);
                    }
                }
                Op::Unknown(bytes) => st.record.unknown_commands.push(bytes),
            }
        }
        input.drain(..used);
    }
}
