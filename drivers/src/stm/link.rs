//! The box side of STM-Link: one tokio task per device owning the serial port session.
//!
//! ## Threads and the runtime
//! `serialport` is a blocking API, and the runtime must never block on a serial port. Each
//! open port therefore gets two small dedicated threads: a *reader* that blocks in `read`
//! with a short timeout (so it notices a closed link within [`LinkOptions::read_timeout`])
//! and forwards chunks over a bounded channel, and a *writer* that drains a bounded
//! channel of frames ([`WRITE_QUEUE`]; a frame that finds it full is dropped, which the
//! protocol absorbs: a lost ACK or NAK costs the peer a retransmit, a lost packet of ours
//! is retransmitted on our ACK timeout). Both end when the session drops its channel ends; the task joins them
//! (off the runtime) before reconnecting or returning. This is portable to every port
//! `serialport` supports (including USB-CDC quirks) and costs two threads per device, of
//! which a branch has a handful; `AsyncFd` would save the threads but ties the link to raw
//! non-blocking TTY file descriptors.
//!
//! ## Time
//! All timing (ACK timeout, back-off, offline detection) uses `tokio::time`, so tests run
//! it under a paused clock.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::engine::{Engine, Happening, Timing};
use super::message::{Command, CommandResult, Event, Heartbeat, Hello, Message, Status};

/// Frames waiting for the writer thread, at most: a port that cannot keep up (or a
/// babbling device answered frame by frame) cannot grow memory without bound.
pub const WRITE_QUEUE: usize = 64;

/// Link parameters. [`Default`] gives the values of the specification.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Baud rate (8N1, no flow control).
    pub baud: u32,
    /// How long to wait for an ACK before retransmitting (500 ms).
    pub ack_timeout: Duration,
    /// Retransmits before the link is declared down (3).
    pub max_retransmits: u32,
    /// Silence after which the device is offline (6 s).
    pub offline_after: Duration,
    /// First reconnect delay (1 s); doubles on each failure.
    pub backoff_initial: Duration,
    /// Longest reconnect delay (30 s).
    pub backoff_max: Duration,
    /// Serial read timeout of the reader thread: bounds how fast it notices shutdown.
    pub read_timeout: Duration,
    /// Capacity of the event channel.
    pub event_capacity: usize,
    /// Acknowledge EVENT and STATUS only when the receiver has kept them (see
    /// [`Delivered`]) instead of on arrival. Off by default (the specification's ACK on
    /// receipt); a receiver that must not lose what it was told turns it on.
    pub ack_after_handling: bool,
}

impl Default for LinkOptions {
    fn default() -> LinkOptions {
        LinkOptions {
            baud: 115_200,
            ack_timeout: Duration::from_millis(500),
            max_retransmits: 3,
            offline_after: Duration::from_secs(6),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            read_timeout: Duration::from_millis(50),
            event_capacity: 256,
            ack_after_handling: false,
        }
    }
}

/// Why the link went down.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DownReason {
    /// The port could not be opened.
    Open(String),
    /// Reading failed (device unplugged, hangup).
    Read(String),
    /// Writing failed.
    Write(String),
    /// A packet was not acknowledged after all retransmits.
    NoAck,
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownReason::Open(e) => write!(f, "cannot open port: {e}"),
            DownReason::Read(e) => write!(f, "read failed: {e}"),
            DownReason::Write(e) => write!(f, "write failed: {e}"),
            DownReason::NoAck => f.write_str("no ack after retransmits"),
        }
    }
}

/// A delivered message and, with [`LinkOptions::ack_after_handling`], the receipt that
/// releases its ACK. Derefs to the message.
///
/// [`Delivered::keep`] (or [`Receipt::kept`] after [`Delivered::into_parts`]) says the
/// message is safe, e.g. committed: only then does the device get its ACK. Dropping it
/// unsettled sends no ACK; the device retransmits and the message is delivered again.
#[derive(Debug)]
pub struct Delivered<T> {
    message: T,
    receipt: Receipt,
}

impl<T> Delivered<T> {
    fn new(message: T, receipt: Receipt) -> Delivered<T> {
        Delivered { message, receipt }
    }

    /// The message and its receipt, to settle after handling the message.
    pub fn into_parts(self) -> (T, Receipt) {
        (self.message, self.receipt)
    }

    /// Takes the message and lets the ACK go at once.
    pub fn keep(self) -> T {
        self.receipt.kept();
        self.message
    }
}

impl<T> std::ops::Deref for Delivered<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.message
    }
}

impl<T: PartialEq> PartialEq for Delivered<T> {
    fn eq(&self, other: &Delivered<T>) -> bool {
        self.message == other.message
    }
}

/// Releases the ACK of one delivered packet (see [`Delivered`]).
#[derive(Debug)]
pub struct Receipt {
    id: Option<u64>,
    settle: mpsc::UnboundedSender<(u64, bool)>,
}

impl Receipt {
    /// The message is safe: acknowledge it to the device.
    pub fn kept(mut self) {
        if let Some(id) = self.id.take() {
            let _ = self.settle.send((id, true));
        }
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let _ = self.settle.send((id, false));
        }
    }
}

/// What the link reports, in order.
#[derive(Debug, PartialEq)]
#[non_exhaustive]
pub enum LinkEvent {
    /// The port was opened.
    Connected,
    /// The port was closed; the link reconnects with back-off.
    Down(DownReason),
    /// A valid packet arrived after silence (or for the first time).
    Online,
    /// No valid packet for [`LinkOptions::offline_after`].
    Offline,
    /// HELLO (after every device reconnect or restart).
    Hello(Hello),
    /// HEARTBEAT.
    Heartbeat(Heartbeat),
    /// STATUS.
    Status(Delivered<Status>),
    /// EVENT (not de-duplicated by `event_id`: that spans restarts and is the caller's job).
    Event(Delivered<Event>),
    /// A RESULT nobody waits for any more (its command timed out) or never sent.
    Result(CommandResult),
}

/// Why a command got no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// No RESULT within the timeout (the daemon answers 504).
    #[error("no result within {0:?}")]
    Timeout(Duration),
    /// The port is not open right now.
    #[error("device link is not connected")]
    NotConnected,
    /// The link went down before the device acknowledged the command.
    #[error("device link went down before the command was acknowledged")]
    LinkDown,
    /// The command does not fit in a packet.
    #[error("command too large for a packet")]
    TooLarge,
    /// The link task has stopped.
    #[error("device link stopped")]
    Closed,
}

#[derive(Debug)]
struct Request {
    command: Command,
    reply: oneshot::Sender<Result<CommandResult, CommandError>>,
}

/// A cloneable handle to send commands over a running link.
#[derive(Debug, Clone)]
pub struct StmHandle {
    requests: mpsc::Sender<Request>,
    prefix: Arc<str>,
    counter: Arc<AtomicU64>,
}

impl StmHandle {
    /// Sends `op` with `args` under a fresh `cmd_id` and waits up to `timeout` for its
    /// RESULT. A RESULT with `ok: false` is still `Ok`: the device answered.
    pub async fn send_command(
        &self,
        op: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<CommandResult, CommandError> {
        let command = Command {
            cmd_id: self.next_cmd_id(),
            op: op.to_owned(),
            args,
        };
        self.send(command, timeout).await
    }

    /// Sends a command whose `cmd_id` the caller chose (e.g. the id it recorded) and waits
    /// up to `timeout` for its RESULT.
    pub async fn send(
        &self,
        command: Command,
        timeout: Duration,
    ) -> Result<CommandResult, CommandError> {
        let (reply, rx) = oneshot::channel();
        let request = Request { command, reply };
        match tokio::time::timeout(timeout, async {
            self.requests
                .send(request)
                .await
                .map_err(|_| CommandError::Closed)?;
            rx.await.map_err(|_| CommandError::Closed)?
        })
        .await
        {
            Ok(result) => result,
            Err(_) => Err(CommandError::Timeout(timeout)),
        }
    }

    /// A command id unique to this link and this process start.
    pub fn next_cmd_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{}-{n}", self.prefix)
    }
}

/// Spawns STM-Link sessions.
#[derive(Debug)]
pub struct StmLink;

impl StmLink {
    /// Spawns the link task for the device at `path` (reopened by that path after every
    /// failure). Returns the command handle, the event stream and the task, which ends
    /// when `cancel` fires or the event receiver is dropped, after closing the port.
    ///
    /// Must be called within a tokio runtime.
    pub fn spawn(
        path: impl Into<PathBuf>,
        options: LinkOptions,
        cancel: CancellationToken,
    ) -> (StmHandle, mpsc::Receiver<LinkEvent>, JoinHandle<()>) {
        let connector = SerialConnector {
            path: path.into(),
            baud: options.baud,
            read_timeout: options.read_timeout,
            absent: false,
        };
        spawn_with(connector, options, cancel)
    }
}

pub(crate) fn spawn_with<C: Connector>(
    connector: C,
    options: LinkOptions,
    cancel: CancellationToken,
) -> (StmHandle, mpsc::Receiver<LinkEvent>, JoinHandle<()>) {
    let (events, events_rx) = mpsc::channel(options.event_capacity.max(1));
    let (requests, requests_rx) = mpsc::channel(32);
    let (settle, settle_rx) = mpsc::unbounded_channel();
    let prefix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let handle = StmHandle {
        requests,
        prefix: format!("c{prefix:x}").into(),
        counter: Arc::new(AtomicU64::new(0)),
    };
    let engine = Engine::new(Timing {
        ack_timeout: options.ack_timeout,
        max_retransmits: options.max_retransmits,
    });
    let runner = Runner {
        engine: if options.ack_after_handling {
            engine.defer_acks()
        } else {
            engine
        },
        settle,
        settle_rx,
        backoff: options.backoff_initial,
        options,
        connector,
        cancel,
        events,
        requests: requests_rx,
        requests_open: true,
        pending: HashMap::new(),
        unacked: HashMap::new(),
        next_token: 0,
        replugged: false,
        online: false,
        last_valid: Instant::now(),
    };
    (handle, events_rx, tokio::spawn(runner.run()))
}

/// What the port threads report.
#[derive(Debug)]
pub(crate) enum Input {
    Bytes(Vec<u8>),
    ReadFailed(io::Error),
    WriteFailed(io::Error),
}

/// One open port: chunks in, frames out, and the threads behind them.
pub(crate) struct Conn {
    pub rx: mpsc::Receiver<Input>,
    pub tx: mpsc::Sender<Vec<u8>>,
    pub threads: Vec<std::thread::JoinHandle<()>>,
}

/// Opens the port; a seam so the timing rules can be tested under a paused clock.
pub(crate) trait Connector: Send + 'static {
    fn connect(&mut self) -> impl Future<Output = io::Result<Conn>> + Send;

    /// How often to look for the device reappearing while backing off (hot-plug).
    fn hotplug_poll(&self) -> Option<Duration> {
        None
    }

    /// Whether the device node was missing and has come back since the last call: the
    /// back-off is cut short then (a re-plugged USB adapter answers within a second).
    fn reappeared(&mut self) -> bool {
        false
    }
}

struct SerialConnector {
    path: PathBuf,
    baud: u32,
    read_timeout: Duration,
    /// The device node was missing when last looked at.
    absent: bool,
}

impl Connector for SerialConnector {
    fn hotplug_poll(&self) -> Option<Duration> {
        Some(Duration::from_millis(200))
    }

    fn reappeared(&mut self) -> bool {
        let exists = self.path.exists();
        let back = self.absent && exists;
        self.absent = !exists;
        back
    }

    async fn connect(&mut self) -> io::Result<Conn> {
        let path = self.path.to_string_lossy().into_owned();
        let (baud, timeout) = (self.baud, self.read_timeout);
        let port = tokio::task::spawn_blocking(move || {
            serialport::new(path, baud)
                .timeout(timeout)
                .open_native()
                .map_err(io::Error::from)
        })
        .await
        .map_err(io::Error::other)??;
        let writer = port.try_clone_native().map_err(io::Error::from)?;
        let (in_tx, rx) = mpsc::channel(64);
        let (tx, out_rx) = mpsc::channel(WRITE_QUEUE);
        let err_tx = in_tx.clone();
        let reader = std::thread::Builder::new()
            .name("stm-link-read".into())
            .spawn(move || read_loop(port, in_tx))?;
        let writer = std::thread::Builder::new()
            .name("stm-link-write".into())
            .spawn(move || write_loop(writer, out_rx, err_tx))?;
        Ok(Conn {
            rx,
            tx,
            threads: vec![reader, writer],
        })
    }
}

fn read_loop(mut port: impl Read, tx: mpsc::Sender<Input>) {
    let mut buf = [0u8; 1024];
    while !tx.is_closed() {
        match port.read(&mut buf) {
            Ok(0) => {
                let _ = tx.blocking_send(Input::ReadFailed(io::ErrorKind::UnexpectedEof.into()));
                return;
            }
            Ok(n) => {
                if tx.blocking_send(Input::Bytes(buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => {
                let _ = tx.blocking_send(Input::ReadFailed(e));
                return;
            }
        }
    }
}

fn write_loop(
    mut port: impl Write,
    mut frames: mpsc::Receiver<Vec<u8>>,
    errors: mpsc::Sender<Input>,
) {
    while let Some(frame) = frames.blocking_recv() {
        if let Err(e) = write_patiently(&mut port, &frame) {
            let _ = errors.blocking_send(Input::WriteFailed(e));
            return;
        }
    }
}

/// `write_all` that tolerates a few short write timeouts (a slow reader on the other end).
fn write_patiently(port: &mut impl Write, mut bytes: &[u8]) -> io::Result<()> {
    let mut stalls = 0;
    while !bytes.is_empty() {
        match port.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::TimedOut && stalls < 40 => stalls += 1,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

type Reply = oneshot::Sender<Result<CommandResult, CommandError>>;

struct Runner<C> {
    options: LinkOptions,
    connector: C,
    cancel: CancellationToken,
    events: mpsc::Sender<LinkEvent>,
    requests: mpsc::Receiver<Request>,
    /// Receipts hand their verdicts back here (the runner keeps a sender: never closed).
    settle: mpsc::UnboundedSender<(u64, bool)>,
    settle_rx: mpsc::UnboundedReceiver<(u64, bool)>,
    /// False once every handle is dropped: stop polling the closed channel.
    requests_open: bool,
    engine: Engine,
    /// Commands waiting for their RESULT, by `cmd_id`.
    pending: HashMap<String, Reply>,
    /// Commands not yet acknowledged: engine token → `cmd_id`.
    unacked: HashMap<u64, String>,
    next_token: u64,
    backoff: Duration,
    /// The device node reappeared during the last back-off.
    replugged: bool,
    online: bool,
    last_valid: Instant,
}

/// How a session ended.
enum End {
    Down(DownReason),
    Stop,
}

impl<C: Connector> Runner<C> {
    async fn run(mut self) {
        loop {
            let conn = tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                conn = self.connector.connect() => conn,
            };
            let end = match conn {
                Ok(conn) => {
                    if !self.emit(LinkEvent::Connected).await {
                        break;
                    }
                    let Conn { rx, tx, threads } = conn;
                    let end = self.session(rx, &tx).await;
                    drop(tx);
                    for token in self.engine.clear() {
                        self.fail_unacked(token, CommandError::LinkDown);
                    }
                    join_threads(threads).await;
                    end
                }
                Err(e) => End::Down(DownReason::Open(e.to_string())),
            };
            let End::Down(reason) = end else { break };
            tracing::debug!(%reason, backoff = ?self.backoff, "stm link down");
            if !self.emit(LinkEvent::Down(reason)).await || !self.idle(self.backoff).await {
                break;
            }
            if std::mem::take(&mut self.replugged) {
                self.backoff = self.options.backoff_initial;
            } else {
                self.backoff = (self.backoff * 2).min(self.options.backoff_max);
            }
        }
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(CommandError::Closed));
        }
    }

    /// Sends an event; false when the link should stop (cancelled or nobody listens).
    async fn emit(&mut self, event: LinkEvent) -> bool {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => false,
            sent = self.events.send(event) => sent.is_ok(),
        }
    }

    fn offline_deadline(&self) -> Option<Instant> {
        self.online
            .then(|| self.last_valid + self.options.offline_after)
    }

    async fn check_offline(&mut self) -> bool {
        if self.offline_deadline().is_some_and(|d| Instant::now() >= d) {
            self.online = false;
            return self.emit(LinkEvent::Offline).await;
        }
        true
    }

    /// Waits out a back-off while the port is closed; false when the link should stop.
    async fn idle(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        let poll = self.connector.hotplug_poll();
        loop {
            let mut wake = self.offline_deadline().map_or(until, |d| d.min(until));
            if let Some(p) = poll {
                wake = wake.min(Instant::now() + p);
            }
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return false,
                req = self.requests.recv(), if self.requests_open => match req {
                    Some(req) => { let _ = req.reply.send(Err(CommandError::NotConnected)); }
                    None => self.requests_open = false,
                },
                () = tokio::time::sleep_until(wake) => {
                    if !self.check_offline().await {
                        return false;
                    }
                    if Instant::now() >= until {
                        return true;
                    }
                    if poll.is_some() && self.connector.reappeared() {
                        self.replugged = true;
                        return true;
                    }
                }
            }
        }
    }

    async fn session(&mut self, mut rx: mpsc::Receiver<Input>, tx: &mpsc::Sender<Vec<u8>>) -> End {
        let mut out = Vec::new();
        let mut happened = Vec::new();
        loop {
            let far = Instant::now() + Duration::from_secs(3600);
            let wake = [
                self.engine.next_deadline().map(Instant::from_std),
                self.offline_deadline(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(far);
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return End::Stop,
                chunk = rx.recv() => match chunk {
                    Some(Input::Bytes(bytes)) => {
                        let now = Instant::now().into_std();
                        self.engine.on_bytes(&bytes, now, &mut out, &mut happened);
                    }
                    Some(Input::WriteFailed(e)) => return End::Down(DownReason::Write(e.to_string())),
                    Some(Input::ReadFailed(e)) => return End::Down(DownReason::Read(e.to_string())),
                    None => return End::Down(DownReason::Read("reader stopped".into())),
                },
                req = self.requests.recv(), if self.requests_open => match req {
                    Some(req) => self.start_command(req, &mut out),
                    None => self.requests_open = false,
                },
                Some((receipt, kept)) = self.settle_rx.recv() => {
                    self.engine.settle(receipt, kept, &mut out);
                }
                () = tokio::time::sleep_until(wake) => {
                    let now = Instant::now().into_std();
                    self.engine.on_timer(now, &mut out, &mut happened);
                    if !self.check_offline().await {
                        return End::Stop;
                    }
                }
            }
            for frame in out.drain(..) {
                if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(frame) {
                    tracing::debug!("stm writer queue full; frame dropped");
                }
            }
            let mut gave_up = false;
            for h in std::mem::take(&mut happened) {
                match h {
                    Happening::GaveUp(token) => {
                        self.fail_unacked(token, CommandError::LinkDown);
                        gave_up = true;
                    }
                    h => {
                        if !self.on_happening(h).await {
                            return End::Stop;
                        }
                    }
                }
            }
            if gave_up {
                return End::Down(DownReason::NoAck);
            }
        }
    }

    fn start_command(&mut self, req: Request, out: &mut Vec<Vec<u8>>) {
        self.pending.retain(|_, reply| !reply.is_closed());
        let token = self.next_token;
        self.next_token += 1;
        let cmd_id = req.command.cmd_id.clone();
        let now = Instant::now().into_std();
        match self
            .engine
            .send_reliable(token, Message::Command(req.command), now, out)
        {
            Ok(()) => {
                self.unacked.insert(token, cmd_id.clone());
                self.pending.insert(cmd_id, req.reply);
            }
            Err(_) => {
                let _ = req.reply.send(Err(CommandError::TooLarge));
            }
        }
    }

    fn fail_unacked(&mut self, token: u64, error: CommandError) {
        if let Some(cmd_id) = self.unacked.remove(&token)
            && let Some(reply) = self.pending.remove(&cmd_id)
        {
            let _ = reply.send(Err(error));
        }
    }

    async fn on_happening(&mut self, h: Happening) -> bool {
        match h {
            Happening::Alive => {
                self.last_valid = Instant::now();
                self.backoff = self.options.backoff_initial;
                if !self.online {
                    self.online = true;
                    return self.emit(LinkEvent::Online).await;
                }
                true
            }
            Happening::Acked(token) => {
                self.unacked.remove(&token);
                true
            }
            Happening::Delivered(msg, receipt) => {
                let receipt = Receipt {
                    id: receipt,
                    settle: self.settle.clone(),
                };
                let event = match msg {
                    Message::Hello(m) => LinkEvent::Hello(m),
                    Message::Heartbeat(m) => LinkEvent::Heartbeat(m),
                    Message::Status(m) => LinkEvent::Status(Delivered::new(m, receipt)),
                    Message::Event(m) => LinkEvent::Event(Delivered::new(m, receipt)),
                    Message::Result(result) => match self.pending.remove(&result.cmd_id) {
                        Some(reply) => match reply.send(Ok(result)) {
                            Ok(()) => return true,
                            Err(Ok(late)) => LinkEvent::Result(late),
                            Err(Err(_)) => return true,
                        },
                        None => LinkEvent::Result(result),
                    },
                    other => {
                        tracing::debug!(?other, "unexpected message from device");
                        return true;
                    }
                };
                self.emit(event).await
            }
            Happening::Rejected(why) => {
                tracing::debug!(%why, "stm frame rejected");
                true
            }
            Happening::NakReceived(nak) => {
                tracing::debug!(?nak, "stm device sent nak");
                true
            }
            Happening::GaveUp(_) => true,
        }
    }
}

async fn join_threads(threads: Vec<std::thread::JoinHandle<()>>) {
    if threads.is_empty() {
        return;
    }
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    //! The timing rules under tokio's paused clock, with the test playing the device over
    //! in-memory channels (the PTY end-to-end tests live in `tests/`).

    use std::collections::VecDeque;
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::stm::codec::{Decoder, Packet, PacketType};

    struct Peer {
        to_box: mpsc::Sender<Input>,
        from_box: mpsc::Receiver<Vec<u8>>,
    }

    impl Peer {
        async fn send(&self, seq: u8, kind: PacketType, json: &str) {
            let wire = Packet::new(seq, kind, json.as_bytes().to_vec())
                .encode()
                .unwrap();
            self.to_box.send(Input::Bytes(wire)).await.unwrap();
        }

        async fn recv(&mut self) -> Packet {
            let wire = self.from_box.recv().await.expect("box closed the link");
            let mut got = Decoder::new().feed(&wire);
            assert_eq!(got.len(), 1);
            got.remove(0).unwrap()
        }
    }

    struct Script {
        plan: VecDeque<bool>,
        log: Arc<Mutex<Vec<Instant>>>,
        peers: mpsc::UnboundedSender<Peer>,
        /// When the device node comes back (a re-plugged adapter), if it does.
        reappears_at: Option<Instant>,
    }

    impl Connector for Script {
        fn hotplug_poll(&self) -> Option<Duration> {
            self.reappears_at.map(|_| Duration::from_millis(200))
        }

        fn reappeared(&mut self) -> bool {
            match self.reappears_at {
                Some(at) if Instant::now() >= at => {
                    self.reappears_at = None;
                    true
                }
                _ => false,
            }
        }

        async fn connect(&mut self) -> io::Result<Conn> {
            self.log.lock().unwrap().push(Instant::now());
            if !self.plan.pop_front().unwrap_or(false) {
                return Err(io::ErrorKind::NotFound.into());
            }
            let (to_box, rx) = mpsc::channel(16);
            let (tx, from_box) = mpsc::channel(WRITE_QUEUE);
            self.peers.send(Peer { to_box, from_box }).unwrap();
            Ok(Conn {
                rx,
                tx,
                threads: Vec::new(),
            })
        }
    }

    struct Harness {
        handle: StmHandle,
        events: mpsc::Receiver<LinkEvent>,
        peers: mpsc::UnboundedReceiver<Peer>,
        log: Arc<Mutex<Vec<Instant>>>,
        cancel: CancellationToken,
        task: JoinHandle<()>,
    }

    fn start(plan: &[bool]) -> Harness {
        start_with(plan, LinkOptions::default())
    }

    fn start_with(plan: &[bool], options: LinkOptions) -> Harness {
        start_script(plan, options, None)
    }

    fn start_script(plan: &[bool], options: LinkOptions, reappears_at: Option<Instant>) -> Harness {
        let (peers_tx, peers) = mpsc::unbounded_channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let script = Script {
            plan: plan.iter().copied().collect(),
            log: log.clone(),
            peers: peers_tx,
            reappears_at,
        };
        let cancel = CancellationToken::new();
        let (handle, events, task) = spawn_with(script, options, cancel.clone());
        Harness {
            handle,
            events,
            peers,
            log,
            cancel,
            task,
        }
    }

    impl Harness {
        async fn next(&mut self) -> LinkEvent {
            self.events.recv().await.expect("link ended")
        }
    }

    const HB: &str = r#"{"state":"in_service","uptime_s":1}"#;

    #[tokio::test(start_paused = true)]
    async fn unacked_command_is_retransmitted_then_link_backs_off() {
        let mut h = start(&[true]);
        let mut peer = h.peers.recv().await.unwrap();
        assert_eq!(h.next().await, LinkEvent::Connected);
        let t0 = Instant::now();
        let handle = h.handle.clone();
        let cmd = tokio::spawn(async move {
            handle
                .send_command("sign_in", json!({}), Duration::from_secs(60))
                .await
        });
        let mut sent = Vec::new();
        for _ in 0..4 {
            let p = peer.recv().await;
            sent.push(((Instant::now() - t0).as_millis(), p.seq, p.kind));
        }
        assert_eq!(
            sent,
            [0, 500, 1000, 1500].map(|ms| (ms, 0, PacketType::Command)),
            "same packet, same seq, every 500 ms, 3 retransmits"
        );
        assert_eq!(h.next().await, LinkEvent::Down(DownReason::NoAck));
        assert_eq!((Instant::now() - t0).as_millis(), 2000);
        assert_eq!(cmd.await.unwrap(), Err(CommandError::LinkDown));
        // Every reopen fails: the delays double from 1 s and stop at 30 s.
        for _ in 0..8 {
            assert!(matches!(
                h.next().await,
                LinkEvent::Down(DownReason::Open(_))
            ));
        }
        let log = h.log.lock().unwrap().clone();
        let gaps: Vec<u64> = log
            .windows(2)
            .skip(1)
            .map(|w| (w[1] - w[0]).as_secs())
            .collect();
        assert_eq!(
            (log[1] - t0).as_millis(),
            3000,
            "first reopen 1 s after going down"
        );
        assert_eq!(gaps, [2, 4, 8, 16, 30, 30, 30]);
        h.cancel.cancel();
        h.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_device_that_comes_back_during_a_long_back_off_is_reopened_at_once() {
        // Unplugged for 8.5 s: the reopens at 1, 3 and 7 s fail and the back-off has grown
        // to 8 s, but the node reappearing cuts it short.
        let t0 = Instant::now();
        let mut h = start_script(
            &[true, false, false, false, true],
            LinkOptions::default(),
            Some(t0 + Duration::from_millis(8_500)),
        );
        let peer = h.peers.recv().await.unwrap();
        assert_eq!(h.next().await, LinkEvent::Connected);
        drop(peer); // unplugged
        for _ in 0..4 {
            assert!(matches!(h.next().await, LinkEvent::Down(_)));
        }
        assert_eq!(h.next().await, LinkEvent::Connected);
        let log = h.log.lock().unwrap().clone();
        let at: Vec<u128> = log.iter().map(|t| (*t - t0).as_millis()).collect();
        assert_eq!(&at[..4], [0, 1000, 3000, 7000], "{at:?}");
        assert!(
            (8_500..=8_700).contains(&at[4]),
            "reopened within one hot-plug poll of its return, not at 15 s: {at:?}"
        );
        // The back-off starts again from the beginning.
        drop(h.peers.recv().await.unwrap());
        assert!(matches!(h.next().await, LinkEvent::Down(_)));
        assert!(matches!(h.next().await, LinkEvent::Down(_)));
        let log = h.log.lock().unwrap().clone();
        assert_eq!((log[5] - log[4]).as_millis(), 1000, "{log:?}");
        h.cancel.cancel();
        h.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_port_that_cannot_keep_up_holds_a_bounded_queue_and_the_link_goes_on() {
        let mut h = start(&[true]);
        let mut peer = h.peers.recv().await.unwrap();
        assert_eq!(h.next().await, LinkEvent::Connected);
        // A thousand packets that each want an ACK, and nobody writing the ACKs out.
        const FLOOD: usize = 1000;
        let to_box = peer.to_box.clone();
        let babble = tokio::spawn(async move {
            for i in 0..FLOOD {
                let wire = Packet::new(i as u8, PacketType::Heartbeat, HB.as_bytes().to_vec())
                    .encode()
                    .unwrap();
                to_box.send(Input::Bytes(wire)).await.unwrap();
            }
        });
        let mut heartbeats = 0;
        while heartbeats < FLOOD {
            if let LinkEvent::Heartbeat(_) = h.next().await {
                heartbeats += 1;
            }
        }
        babble.await.unwrap();
        let mut queued = 0;
        while peer.from_box.try_recv().is_ok() {
            queued += 1;
        }
        assert!(queued <= WRITE_QUEUE, "{queued} frames queued for the port");
        // The writer caught up: the next packet is answered.
        peer.send(7, PacketType::Heartbeat, HB).await;
        let ack = peer.recv().await;
        assert_eq!((ack.seq, ack.kind), (7, PacketType::Ack));
        h.cancel.cancel();
        h.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn offline_after_six_silent_seconds_online_on_next_packet() {
        let mut h = start(&[true]);
        let peer = h.peers.recv().await.unwrap();
        assert_eq!(h.next().await, LinkEvent::Connected);
        let t0 = Instant::now();
        peer.send(0, PacketType::Heartbeat, HB).await;
        assert_eq!(h.next().await, LinkEvent::Online);
        assert!(matches!(h.next().await, LinkEvent::Heartbeat(_)));
        peer.send(1, PacketType::Heartbeat, HB).await; // at t0: still online
        assert!(matches!(h.next().await, LinkEvent::Heartbeat(_)));
        assert_eq!(h.next().await, LinkEvent::Offline);
        assert_eq!((Instant::now() - t0).as_millis(), 6000);
        tokio::time::sleep(Duration::from_secs(4)).await;
        peer.send(2, PacketType::Heartbeat, HB).await;
        assert_eq!(h.next().await, LinkEvent::Online);
        h.cancel.cancel();
        h.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn duplicates_are_acked_again_but_delivered_once() {
        // (seq, type, delivered?) — HELLO is always delivered and resets the filter.
        let script: &[(u8, PacketType, bool)] = &[
            (7, PacketType::Heartbeat, true),
            (7, PacketType::Heartbeat, false),
            (8, PacketType::Heartbeat, true),
            (8, PacketType::Hello, true),
            (8, PacketType::Hello, true),
            (8, PacketType::Heartbeat, false),
            (0, PacketType::Heartbeat, true),
            (255, PacketType::Heartbeat, true),
            (0, PacketType::Heartbeat, true),
        ];
        let hello = r#"{"device_id":"STM-01","model":"m","firmware":"f","modules":[]}"#;
        let mut h = start(&[true]);
        let mut peer = h.peers.recv().await.unwrap();
        assert_eq!(h.next().await, LinkEvent::Connected);
        for (i, &(seq, kind, delivered)) in script.iter().enumerate() {
            let json = if kind == PacketType::Hello { hello } else { HB };
            peer.send(seq, kind, json).await;
            let ack = peer.recv().await;
            assert_eq!(
                (ack.kind, ack.seq),
                (PacketType::Ack, seq),
                "step {i}: acked"
            );
            let mut got = Vec::new();
            while let Ok(ev) = h.events.try_recv() {
                if ev != LinkEvent::Online {
                    got.push(ev);
                }
            }
            assert_eq!(got.len(), usize::from(delivered), "step {i}: {got:?}");
        }
        h.cancel.cancel();
        h.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn commands_get_results_timeouts_and_late_results() {
        let mut h = start(&[true]);
        let mut peer = h.peers.recv().await.unwrap();
        assert_eq!(h.next().await, LinkEvent::Connected);
        let handle = h.handle.clone();
        let cmd = tokio::spawn(async move {
            handle
                .send_command("get_status", json!({}), Duration::from_secs(5))
                .await
        });
        let p = peer.recv().await;
        let sent: Command = serde_json::from_slice(&p.payload).unwrap();
        peer.send(p.seq, PacketType::Ack, "").await;
        let result = format!(
            r#"{{"cmd_id":"{}","ok":true,"error":null,"data":{{"x":1}}}}"#,
            sent.cmd_id
        );
        peer.send(0, PacketType::Result, &result).await;
        let got = cmd.await.unwrap().unwrap();
        assert!(got.ok);
        assert_eq!(got.data, Some(json!({"x": 1})));

        // No RESULT: a typed timeout after exactly the timeout; a late RESULT is reported.
        let handle = h.handle.clone();
        let t0 = Instant::now();
        let cmd = tokio::spawn(async move {
            handle
                .send_command("restart", json!({}), Duration::from_secs(3))
                .await
        });
        let _ack_of_result = peer.recv().await;
        let p = peer.recv().await;
        let sent: Command = serde_json::from_slice(&p.payload).unwrap();
        peer.send(p.seq, PacketType::Ack, "").await;
        assert_eq!(
            cmd.await.unwrap(),
            Err(CommandError::Timeout(Duration::from_secs(3)))
        );
        assert_eq!((Instant::now() - t0).as_secs(), 3);
        let late = format!(
            r#"{{"cmd_id":"{}","ok":true,"error":null,"data":null}}"#,
            sent.cmd_id
        );
        peer.send(1, PacketType::Result, &late).await;
        loop {
            match h.next().await {
                LinkEvent::Result(r) => {
                    assert_eq!(r.cmd_id, sent.cmd_id);
                    break;
                }
                LinkEvent::Online => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        h.cancel.cancel();
        h.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn commands_fail_fast_while_disconnected_and_after_shutdown() {
        let mut h = start(&[false]);
        assert!(matches!(
            h.next().await,
            LinkEvent::Down(DownReason::Open(_))
        ));
        let r = h
            .handle
            .send_command("sign_in", json!({}), Duration::from_secs(5))
            .await;
        assert_eq!(r, Err(CommandError::NotConnected));
        h.cancel.cancel();
        h.task.await.unwrap();
        let r = h
            .handle
            .send_command("sign_in", json!({}), Duration::from_secs(5))
            .await;
        assert_eq!(r, Err(CommandError::Closed));
    }

    const EVENT: &str = r#"{"event_id":"STM-01-7","kind":"exception","ts":"2026-11-22T09:00:00+08:00","code":"CASH_JAM","message":"jam"}"#;

    /// The next packet from the box within `ms` of paused time, if any.
    async fn sent_within(peer: &mut Peer, ms: u64) -> Option<Packet> {
        tokio::time::timeout(Duration::from_millis(ms), peer.recv())
            .await
            .ok()
    }

    #[tokio::test(start_paused = true)]
    async fn with_ack_after_handling_the_device_gets_its_ack_only_once_the_event_is_kept() {
        let options = LinkOptions {
            ack_after_handling: true,
            ..LinkOptions::default()
        };
        let mut h = start_with(&[true], options);
        let mut peer = h.peers.recv().await.unwrap();
        assert_eq!(h.next().await, LinkEvent::Connected);
        peer.send(5, PacketType::Event, EVENT).await;
        assert_eq!(h.next().await, LinkEvent::Online);
        let LinkEvent::Event(first) = h.next().await else {
            panic!("expected the event")
        };
        assert_eq!(first.event_id, "STM-01-7");
        assert!(
            sent_within(&mut peer, 1000).await.is_none(),
            "no ACK while unsettled"
        );

        // Its retransmit while the receiver is busy: neither acknowledged nor delivered.
        peer.send(5, PacketType::Event, EVENT).await;
        assert!(sent_within(&mut peer, 100).await.is_none());
        assert!(h.events.try_recv().is_err());

        // The receiver could not keep it (say, the disk was full): still no ACK, and the
        // next retransmit is delivered again.
        drop(first);
        assert!(sent_within(&mut peer, 100).await.is_none());
        peer.send(5, PacketType::Event, EVENT).await;
        let LinkEvent::Event(second) = h.next().await else {
            panic!("expected the event again")
        };
        let (event, receipt) = second.into_parts();
        assert_eq!(event.event_id, "STM-01-7");
        receipt.kept();
        let ack = peer.recv().await;
        assert_eq!((ack.kind, ack.seq), (PacketType::Ack, 5));

        // Heartbeats are acknowledged on arrival as always.
        peer.send(6, PacketType::Heartbeat, HB).await;
        let ack = peer.recv().await;
        assert_eq!((ack.kind, ack.seq), (PacketType::Ack, 6));
        h.cancel.cancel();
        h.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn by_default_events_are_acked_on_arrival() {
        let mut h = start(&[true]);
        let mut peer = h.peers.recv().await.unwrap();
        assert_eq!(h.next().await, LinkEvent::Connected);
        peer.send(5, PacketType::Event, EVENT).await;
        let ack = peer.recv().await;
        assert_eq!((ack.kind, ack.seq), (PacketType::Ack, 5));
        assert_eq!(h.next().await, LinkEvent::Online);
        assert!(matches!(h.next().await, LinkEvent::Event(_)));
        h.cancel.cancel();
        h.task.await.unwrap();
    }
}
