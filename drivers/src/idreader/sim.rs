//! A simulated ID card reader on a PTY, answering exactly the frames of the specification.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{CardText, PHOTO_LEN, PREAMBLE, Reply, Request, Sw3, TEXT_LEN};
use crate::pty::{PtyError, SimPort};

/// A fault to inject into the next reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyFault {
    /// Flip the checksum byte.
    BadChecksum,
    /// Send only the first half of the frame.
    Truncate,
}

#[derive(Debug)]
enum Control {
    Card(Option<(CardText, Vec<u8>)>),
    Fault(ReplyFault),
    Stop,
}

/// A running ID reader simulator; dropping it stops the thread and removes the device.
#[derive(Debug)]
pub struct IdReaderSim {
    control: mpsc::Sender<Control>,
    path: PathBuf,
    requests: Arc<Mutex<Vec<Request>>>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl IdReaderSim {
    /// Creates the PTY (and the stable `link_path`, if given) and starts the simulator.
    pub fn spawn(link_path: Option<PathBuf>) -> Result<IdReaderSim, PtyError> {
        let port = SimPort::open(link_path)?;
        let path = port.path();
        let (control, rx) = mpsc::channel();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let thread = std::thread::Builder::new()
            .name("idreader-sim".into())
            .spawn(move || run(port, rx, seen))
            .map_err(|source| PtyError::Link {
                path: PathBuf::new(),
                source,
            })?;
        Ok(IdReaderSim {
            control,
            path,
            requests,
            thread: Some(thread),
        })
    }

    /// The device path to open.
    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Puts a card on the reader; `photo_wlt` is padded or cut to 1024 bytes.
    pub fn put_card(&self, text: CardText, photo_wlt: Vec<u8>) {
        let _ = self.control.send(Control::Card(Some((text, photo_wlt))));
    }

    /// Takes the card off.
    pub fn take_card(&self) {
        let _ = self.control.send(Control::Card(None));
    }

    /// Damages the next reply.
    pub fn inject(&self, fault: ReplyFault) {
        let _ = self.control.send(Control::Fault(fault));
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.requests).clone()
    }
}

impl Drop for IdReaderSim {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reply a reader gives to a command frame body, given the card on it.
pub fn answer(body: &[u8], card: Option<&(CardText, Vec<u8>)>) -> Reply {
    match (Request::from_body(body), card) {
        (Some(Request::SamStatus), _) => Reply::new(Sw3::Ok, Vec::new()),
        (Some(Request::Find), Some(_)) => Reply::new(Sw3::CardFound, vec![0; 4]),
        (Some(Request::Find), None) => Reply::new(Sw3::FindFailed, Vec::new()),
        (Some(Request::Select), Some(_)) => Reply::new(Sw3::Ok, vec![0; 8]),
        (Some(Request::Select), None) => Reply::new(Sw3::SelectFailed, Vec::new()),
        (Some(Request::Read), Some((text, photo))) => {
            let mut data = Vec::with_capacity(4 + TEXT_LEN + PHOTO_LEN);
            data.extend_from_slice(&(TEXT_LEN as u16).to_be_bytes());
            data.extend_from_slice(&(PHOTO_LEN as u16).to_be_bytes());
            data.extend_from_slice(&text.encode());
            let mut photo = photo.clone();
            photo.resize(PHOTO_LEN, 0);
            data.extend_from_slice(&photo);
            Reply::new(Sw3::Ok, data)
        }
        (Some(Request::Read), None) => Reply::new(Sw3::ReadFailed, Vec::new()),
        (None, _) => Reply::new(Sw3::Command, Vec::new()),
    }
}

/// Splits complete command frames off the front of `buf`: `Ok(body)`, or `Err(sw3)` for a
/// frame the reader must refuse (checksum or length error).
fn take_frame(buf: &mut Vec<u8>) -> Option<Result<Vec<u8>, Sw3>> {
    while !buf.is_empty() && !PREAMBLE.starts_with(&buf[..buf.len().min(PREAMBLE.len())]) {
        buf.remove(0);
    }
    if buf.len() < 7 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([buf[5], buf[6]]));
    if !(2..=64).contains(&len) {
        buf.drain(..7);
        return Some(Err(Sw3::Length));
    }
    if buf.len() < 7 + len {
        return None;
    }
    let frame: Vec<u8> = buf.drain(..7 + len).collect();
    Some(match super::decode_frame(&frame) {
        Ok(body) => Ok(body),
        Err(_) => Err(Sw3::Checksum),
    })
}

fn run(mut port: SimPort, control: mpsc::Receiver<Control>, seen: Arc<Mutex<Vec<Request>>>) {
    let mut card = None;
    let mut fault = None;
    let mut input = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        while let Ok(c) = control.try_recv() {
            match c {
                Control::Card(c) => card = c,
                Control::Fault(f) => fault = Some(f),
                Control::Stop => return,
            }
        }
        let n = match port.poll(&mut buf, Duration::from_millis(5)) {
            Ok((_, n)) => n,
            Err(_) => 0,
        };
        input.extend_from_slice(&buf[..n]);
        while let Some(frame) = take_frame(&mut input) {
            let reply = match frame {
                Ok(body) => {
                    if let Some(r) = Request::from_body(&body) {
                        lock(&seen).push(r);
                    }
                    answer(&body, card.as_ref())
                }
                Err(sw3) => Reply::new(sw3, Vec::new()),
            };
            let mut bytes = reply.frame();
            match fault.take() {
                Some(ReplyFault::BadChecksum) => {
                    if let Some(last) = bytes.last_mut() {
                        *last ^= 0xFF;
                    }
                }
                Some(ReplyFault::Truncate) => bytes.truncate(bytes.len() / 2),
                None => {}
            }
            let _ = port.write(&bytes);
        }
    }
}
