//! The connection to the head-office broker and the outbox publisher.
//!
//! One task owns the link. Each connection attempt gets a fresh rumqttc event loop, polled
//! by its own small task that only forwards what it sees over a channel, so nothing else
//! ever runs inside `poll` and the keep-alive never waits for SQLite. The owning task:
//! - takes the next session number, on disk, before each CONNECT, and publishes the birth
//!   with it on CONNACK (the Will, set before connecting, carries the same number). A
//!   number is never used twice, even by a box killed between its CONNECT and CONNACK:
//!   head office orders a branch's states by session, and within one session the Will
//!   wins, so a reused number would leave the box offline at head office for good. A
//!   number whose connection was refused before any byte went out (the broker is down) is
//!   given back, so each new connection still counts one up;
//! - publishes unacknowledged outbox events in `seq` order with at most `max_inflight` in
//!   flight, maps each PUBACK's packet id back to its `seq`, and marks events acknowledged
//!   in batches — an event is never marked before its PUBACK, so a crash or a lost link
//!   re-sends it (at-least-once). So that the drain keeps up with the broker, the events
//!   are read ahead of the window in large batches, their envelopes built from the stored
//!   text ([`super::upstream::envelope_text`]), and both the read and the marking run off
//!   the link's task: while one batch of PUBACKs is being committed the next accumulates
//!   and goes in one transaction, as ranges of `seq`;
//! - publishes telemetry, and hands `<p>/cmd` messages to the command task.
//!
//! Commands are handled by a task of their own, one at a time in arrival order, so a slow
//! one (a device command waits up to `[stm] command_timeout_s` for the STM) never stalls
//! the marking of PUBACKs, the outbox or telemetry. A command is acknowledged to the
//! broker only once its outcome is committed; one not acknowledged when a connection ends
//! comes back with the next session and is answered from its record.
//!
//! Reconnection uses a fresh session on our side (the broker keeps its own, clean session
//! false): whatever was in flight is simply read again from the outbox.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use anyhow::Context as _;
use rand::Rng;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, LastWill, MqttOptions, Outgoing, QoS,
    Transport,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Sync;
use super::Topics;

use crate::alerts::{self, Level, NewAlert};
use crate::clock::rfc3339;
use crate::config::Mqtt;
use crate::store::{self, StoreError, Tx};

/// The largest command handled: a photo needs less than 8 MiB.
pub const MAX_COMMAND_BYTES: usize = 8 << 20;
/// The largest MQTT packet read from the broker. A command between [`MAX_COMMAND_BYTES`]
/// and this is read, refused (`too large`) and acknowledged, so it does not come back; a
/// larger packet ends the connection in the MQTT library, and the broker's own size limit
/// (docs/head-office.md) must keep such packets away.
pub const MAX_PACKET_BYTES: usize = 32 << 20;
/// Commands received and not yet handled; past this, a command is left unacknowledged
/// (the broker delivers it again with the next session).
const COMMAND_QUEUE: usize = 256;

/// Past the high-water mark, one telemetry snapshot in this many is sent.
pub const THINNING: u64 = 10;
/// The alert key of a backlog past the high-water mark.
pub const BACKLOG_ALERT: &str = "sync.backlog";
/// The alert key of an event the broker keeps refusing.
pub const REFUSED_ALERT: &str = "sync.refused";
/// Consecutive connections lost on the same unacknowledged event before the broker is taken
/// to refuse it (a topic its ACL denies, a packet over its size limit, a topic it reserves).
pub const REFUSALS: u32 = 3;
/// A connection that lasted this long made progress even if nothing was acknowledged.
const STABLE: Duration = Duration::from_secs(60);
/// How much of a broker's or a library's reason goes into the alert.
const REASON_MAX: usize = 200;
/// How long a stopping daemon waits for PUBACKs of what is in flight.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Events read ahead of the in-flight window per read of the outbox; a new read starts
/// when fewer than half of these wait, so at most one and a half of them are held.
pub const READ_AHEAD: usize = 1024;

/// Exponential back-off between connection attempts: 1 s doubling up to 60 s, each wait
/// drawn uniformly from its upper half ("equal jitter") so a fleet does not reconnect in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// Shortest and longest ceiling.
    pub const MIN: Duration = Duration::from_secs(1);
    /// Longest ceiling.
    pub const MAX: Duration = Duration::from_secs(60);

    /// A fresh back-off.
    pub fn new() -> Backoff {
        Backoff { attempt: 0 }
    }

    /// The ceiling of the next wait.
    pub fn ceiling(&self) -> Duration {
        let secs = 1u64 << self.attempt.min(6);
        Duration::from_secs(secs).clamp(Self::MIN, Self::MAX)
    }

    /// The next wait (with jitter), advancing the back-off.
    pub fn next_wait(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(rand::thread_rng().r#gen::<f64>())
    }

    /// After a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// How a connection ended, for the back-off and the refusal watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// It was up and moved on: acknowledged events, had nothing in flight when lost, or
    /// lasted [`STABLE`]. Only then does the back-off start again from its shortest wait.
    pub progressed: bool,
    /// The oldest event in flight when it was lost without progress.
    pub stuck: Option<u64>,
    /// Why it ended, as the library or the broker said.
    pub reason: String,
}

/// What the link does about an [`Ending`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The link works; clear a refusal alert if one is open.
    Progress {
        /// An alert was raised and is to be cleared.
        clear: bool,
    },
    /// The broker refused the same event [`REFUSALS`] times in a row: raise the alert.
    Refused {
        /// The event's `seq`.
        seq: u64,
        /// Consecutive connections lost on it.
        attempts: u32,
    },
    /// Try again after the back-off.
    Retry,
}

/// Tells a broker that refuses one event (and drops the connection each time it is sent)
/// from an unlucky link. The event stays in the outbox; the back-off keeps growing, so a
/// refusal never turns into a hot reconnect loop.
#[derive(Debug, Default)]
pub struct RefusalWatch {
    seq: Option<u64>,
    count: u32,
    raised: bool,
}

impl RefusalWatch {
    /// Whether a refusal alert is open.
    pub fn raised(&self) -> bool {
        self.raised
    }

    /// After each connection.
    pub fn after(&mut self, e: &Ending) -> Verdict {
        if e.progressed {
            let clear = self.raised;
            *self = RefusalWatch::default();
            return Verdict::Progress { clear };
        }
        let Some(seq) = e.stuck else {
            return Verdict::Retry;
        };
        if self.seq == Some(seq) {
            self.count += 1;
        } else {
            self.seq = Some(seq);
            self.count = 1;
        }
        if self.count >= REFUSALS && !self.raised {
            self.raised = true;
            return Verdict::Refused {
                seq,
                attempts: self.count,
            };
        }
        Verdict::Retry
    }
}

/// The persisted session counter (0 before the first connection).
pub fn session(c: &Connection) -> Result<u64, StoreError> {
    let v: Option<String> = c
        .query_row(
            "SELECT value FROM sync_meta WHERE key = 'session'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Gives back session number `n` if it is still the last one taken.
fn give_back_session(tx: &mut Tx<'_>, n: u64) -> Result<(), StoreError> {
    tx.conn().execute(
        "UPDATE sync_meta SET value = ?1 WHERE key = 'session' AND value = ?2",
        [(n - 1).to_string(), n.to_string()],
    )?;
    Ok(())
}

/// Takes the next session number: stored before it is used in a CONNECT.
fn next_session(tx: &mut Tx<'_>) -> Result<u64, StoreError> {
    let n = session(tx.conn())? + 1;
    tx.conn().execute(
        "INSERT INTO sync_meta(key, value) VALUES ('session', ?1) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [n.to_string()],
    )?;
    Ok(n)
}

/// Mark events acknowledged by the broker (never un-marks; already marked ones stay). The
/// `seqs` (in any order) are marked as runs of consecutive numbers, one statement a run.
pub fn mark_acked(c: &Connection, seqs: &[u64], at: &str) -> Result<usize, StoreError> {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut stmt = c.prepare_cached(
        "UPDATE events SET acked_at = ?1 WHERE seq BETWEEN ?2 AND ?3 AND acked_at IS NULL",
    )?;
    let mut n = 0;
    let mut i = 0;
    while i < sorted.len() {
        let first = sorted[i];
        let mut last = first;
        i += 1;
        while i < sorted.len() && sorted[i] == last + 1 {
            last = sorted[i];
            i += 1;
        }
        n += stmt.execute(params![at, first as i64, last as i64])?;
    }
    Ok(n)
}

/// Delete acknowledged events older than `before` (at most `limit`); never an
/// unacknowledged one, and never one a durable in-process consumer has yet to handle.
/// Returns how many went.
pub fn prune_acked(c: &Connection, before: &str, limit: usize) -> Result<usize, StoreError> {
    Ok(c.execute(
        &format!(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE {ACKED_BEFORE} \
             ORDER BY seq LIMIT ?2)"
        ),
        params![before, limit as i64],
    )?)
}

/// An event that may go: acknowledged by head office before `?1`, and handled by every
/// durable in-process consumer.
pub const ACKED_BEFORE: &str = "acked_at IS NOT NULL AND acked_at < ?1 \
     AND seq <= (SELECT coalesce(min(seq), 9223372036854775807) FROM followers)";

/// Resident set size of this process in bytes (0 where /proc is unavailable).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The telemetry snapshot: devices and queue (through their modules), outbox depth,
/// uptime, RSS.
pub fn telemetry(
    c: &Connection,
    cfg: &crate::config::Config,
    now: chrono::DateTime<chrono::Utc>,
    uptime: Duration,
    full: bool,
) -> Result<Value, StoreError> {
    let depth = store::outbox_depth(c)?;
    let mut v = json!({
        "ts": rfc3339(now),
        "devices": crate::devices::db::telemetry(c)?,
        "queue": crate::queue::view::telemetry(c, cfg, now)?,
        "outbox_depth": depth,
        "uptime_s": uptime.as_secs(),
        "rss_bytes": rss_bytes(),
        "software": crate::updates::software::telemetry(c)?,
    });
    if full {
        v["snapshot"] = json!(true);
        v["vips"] = json!(crate::vips::count(c)?);
        v["config_overrides"] = super::commands::overrides_json(c)?;
    }
    Ok(v)
}

/// What a QoS 1 publish of ours is, until its packet id is known.
#[derive(Debug, Clone, Copy)]
enum Tag {
    Event(u64),
    Other,
}

/// An outbox event ready to publish.
struct Ready {
    seq: u64,
    topic: String,
    payload: Vec<u8>,
}

/// A read of the outbox or a marking of acknowledged events, running off the link's task.
type Pending<T> = Option<tokio::task::JoinHandle<Result<T, StoreError>>>;

/// The outcome of a pending store task once it is done (never, if there is none).
async fn joined<T>(task: &mut Pending<T>) -> anyhow::Result<T> {
    match task {
        Some(t) => Ok(t.await.context("a store task of the link")??),
        None => std::future::pending().await,
    }
}

/// Wait for a pending store task, if there is one.
async fn joined_now(task: &mut Pending<()>) -> anyhow::Result<()> {
    match task.take() {
        Some(t) => Ok(t.await.context("a store task of the link")??),
        None => Ok(()),
    }
}

/// Why a connection ended.
enum End {
    Cancelled,
    Lost(Ending),
}

/// The link task: connect, serve, back off, again — until the daemon stops.
pub async fn run(sync: Sync, mqtt: Mqtt) {
    let topics = Topics::new(&mqtt.prefix);
    let mut backoff = Backoff::new();
    let mut watch = RefusalWatch::default();
    let mut probe = false;
    let (commands, queue) = mpsc::channel(COMMAND_QUEUE);
    let rebirth = std::sync::Arc::new(tokio::sync::Notify::new());
    sync.core
        .spawn(handle_commands(sync.clone(), queue, rebirth.clone()));
    let link = Link { commands, rebirth };
    loop {
        if sync.core.cancel.is_cancelled() {
            return;
        }
        let ending = match attempt(&sync, &mqtt, &topics, &link, probe, watch.raised()).await {
            Ok(End::Cancelled) => return,
            Ok(End::Lost(ending)) => ending,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "mqtt: cannot set up the connection");
                Ending {
                    progressed: false,
                    stuck: None,
                    reason: format!("{e:#}"),
                }
            }
        };
        sync.set_connected(false);
        if ending.progressed {
            backoff.reset();
        }
        // Lost with events in flight and none acknowledged: the next connection sends one
        // event at a time until the broker acknowledges one, so a refusal is pinned on the
        // event that causes it, not on an earlier one whose PUBACK the reset swallowed.
        probe = !ending.progressed && ending.stuck.is_some();
        if let Err(e) = refusal(&sync, &topics, &ending, watch.after(&ending)).await {
            tracing::warn!(error = %format!("{e:#}"), "mqtt: refusal alert");
        }
        sync.core
            .metrics
            .mqtt_backoff_ms
            .set(backoff.ceiling().as_millis() as i64);
        let wait = backoff.next_wait();
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            "mqtt: reconnecting after a pause"
        );
        tokio::select! {
            _ = sync.core.cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// What every connection shares with the command task.
struct Link {
    /// Commands to handle, with the client of the connection that received them.
    commands: mpsc::Sender<(rumqttc::Publish, AsyncClient)>,
    /// Told by the command task when a `rebirth` was handled.
    rebirth: std::sync::Arc<tokio::sync::Notify>,
}

/// The command task: handle each command received, in order, until the daemon stops; then
/// acknowledge it to the broker on the connection it came from (if that connection is gone,
/// the broker delivers it again and its record answers).
async fn handle_commands(
    sync: Sync,
    mut queue: mpsc::Receiver<(rumqttc::Publish, AsyncClient)>,
    rebirth: std::sync::Arc<tokio::sync::Notify>,
) {
    loop {
        let (publish, client) = tokio::select! {
            _ = sync.core.cancel.cancelled() => return,
            next = queue.recv() => match next {
                Some(next) => next,
                None => return,
            },
        };
        // Stopping mid-command is a crash as far as the command is concerned: nothing is
        // acknowledged, and the record (or the "sending" mark of a device command) decides
        // what the redelivery does.
        let outcome = tokio::select! {
            _ = sync.core.cancel.cancelled() => return,
            o = super::commands::handle(&sync, &publish.payload) => o,
        };
        match outcome {
            Ok(o) => {
                if o.rebirth {
                    rebirth.notify_one();
                }
                if let Err(e) = client.ack(&publish).await {
                    tracing::debug!(error = %e, "mqtt: a command's connection is gone; it will be redelivered and answered from its record");
                }
            }
            Err(e) => {
                // Not acknowledged: the broker delivers it again on the next session.
                tracing::error!(error = %e, "mqtt: cannot record a command; it will be redelivered");
            }
        }
    }
}

/// Raise or clear the `sync.refused` alert as the watch decided.
async fn refusal(
    sync: &Sync,
    topics: &Topics,
    ending: &Ending,
    verdict: Verdict,
) -> anyhow::Result<()> {
    match verdict {
        Verdict::Retry | Verdict::Progress { clear: false } => Ok(()),
        Verdict::Progress { clear: true } => {
            tracing::info!("mqtt: the broker takes events again");
            sync.core
                .store
                .write(|tx| alerts::clear(tx, REFUSED_ALERT))
                .await?;
            Ok(())
        }
        Verdict::Refused { seq, attempts } => {
            let kind = sync
                .core
                .store
                .read(move |c| store::unacked_after(c, seq.saturating_sub(1), 1))
                .await?
                .into_iter()
                .find(|e| e.seq == seq)
                .map(|e| super::upstream::envelope(&e, "").0.to_string())
                .unwrap_or_default();
            let topic = topics.event(&kind);
            let reason: String = ending.reason.chars().take(REASON_MAX).collect();
            tracing::error!(
                seq, %topic, %reason, attempts,
                "mqtt: the broker refuses an event; it stays in the outbox and is retried with back-off"
            );
            sync.core
                .store
                .write(move |tx| {
                    let message = format!("head office's broker refuses event {seq} on {topic}");
                    alerts::raise(
                        tx,
                        &NewAlert {
                            kind: REFUSED_ALERT,
                            level: Level::Critical,
                            source: Some("sync"),
                            key: Some(REFUSED_ALERT),
                            message: &message,
                            data: json!({
                                "seq": seq,
                                "kind": kind,
                                "topic": topic,
                                "reason": reason,
                                "attempts": attempts,
                            }),
                        },
                    )
                })
                .await?;
            Ok(())
        }
    }
}

async fn options(
    sync: &Sync,
    mqtt: &Mqtt,
    session: u64,
    topics: &Topics,
) -> anyhow::Result<MqttOptions> {
    let mut o = MqttOptions::new(
        format!("branchd-{}", sync.core.cfg.branch.id),
        mqtt.host.clone(),
        mqtt.port,
    );
    o.set_clean_session(false)
        .set_keep_alive(mqtt.keep_alive)
        .set_manual_acks(true)
        .set_inflight(mqtt.max_inflight.saturating_add(16))
        .set_request_channel_capacity(mqtt.max_inflight as usize + 64)
        // Read past the command limit, so an over-size command is refused, not a loop.
        .set_max_packet_size(MAX_PACKET_BYTES, 16 << 20)
        .set_last_will(LastWill::new(
            topics.state(),
            json!({"online": false, "session": session}).to_string(),
            QoS::AtLeastOnce,
            true,
        ));
    if let Some(user) = &mqtt.username {
        let password = match &mqtt.password_file {
            Some(p) => tokio::fs::read_to_string(p)
                .await
                .with_context(|| format!("cannot read [mqtt] password_file {}", p.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            None => String::new(),
        };
        o.set_credentials(user.clone(), password);
    }
    if mqtt.tls {
        let (ca, cert, key) = (
            mqtt.ca_file.clone(),
            mqtt.client_cert.clone(),
            mqtt.client_key.clone(),
        );
        let cfg = tokio::task::spawn_blocking(move || {
            crate::tls::client_config(ca.as_deref(), cert.as_deref(), key.as_deref())
        })
        .await??;
        o.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(cfg),
        ));
    }
    Ok(o)
}

async fn poll(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Result<Event, ConnectionError>>) {
    loop {
        let ev = eventloop.poll().await;
        let end = ev.is_err();
        if tx.send(ev).is_err() || end {
            return;
        }
    }
}

/// One connection, from CONNECT to its loss (or the daemon stopping).
async fn attempt(
    sync: &Sync,
    mqtt: &Mqtt,
    topics: &Topics,
    link: &Link,
    probe: bool,
    refused: bool,
) -> anyhow::Result<End> {
    let session = sync
        .core
        .store
        .write_essential(next_session)
        .await
        .context("taking the next session number")?;
    let opts = options(sync, mqtt, session, topics).await?;
    let (client, eventloop) = AsyncClient::new(opts, mqtt.max_inflight as usize + 64);
    let (tx, rx) = mpsc::unbounded_channel();
    let poller = sync.core.tracker.spawn(poll(eventloop, tx));
    let mut conn = Conn {
        sync: sync.clone(),
        mqtt: mqtt.clone(),
        topics: topics.clone(),
        client,
        session,
        connected: false,
        connected_at: None,
        acked_any: false,
        probe,
        refused,
        order: VecDeque::new(),
        by_pkid: HashMap::new(),
        in_window: 0,
        cursor: 0,
        ahead: VecDeque::new(),
        reading: None,
        read_until: (0, 0),
        acked: Vec::new(),
        flushing: None,
        commands: link.commands.clone(),
        tick_n: 0,
        rebirth: false,
        unsent: false,
    };
    let end = conn.serve(rx, &link.rebirth).await;
    poller.abort();
    let _ = poller.await;
    if conn.unsent {
        sync.core
            .store
            .write_essential(move |tx| give_back_session(tx, session))
            .await
            .context("giving back an unused session number")?;
    }
    Ok(end)
}

/// Whether a lost connection never reached the broker: refused at TCP, so no CONNECT (and no
/// Will with its session number) went out.
fn refused_before_connect(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<ConnectionError>(),
            Some(ConnectionError::Io(io)) if io.kind() == std::io::ErrorKind::ConnectionRefused
        )
    })
}

struct Conn {
    sync: Sync,
    mqtt: Mqtt,
    topics: Topics,
    client: AsyncClient,
    session: u64,
    connected: bool,
    /// When the CONNACK came.
    connected_at: Option<tokio::time::Instant>,
    /// Whether the broker acknowledged an event on this connection.
    acked_any: bool,
    /// One event in flight until the first is acknowledged (after a loss without progress).
    probe: bool,
    /// A `sync.refused` alert is open: the first acknowledged event clears it.
    refused: bool,
    /// QoS 1 publishes requested, waiting for their packet id (in request order).
    order: VecDeque<Tag>,
    /// QoS 1 publishes sent, waiting for their PUBACK.
    by_pkid: HashMap<u16, Tag>,
    /// Events published and not yet PUBACKed.
    in_window: usize,
    /// Highest `seq` read from the outbox on this connection (published or ahead).
    cursor: u64,
    /// Events read and not yet published, in `seq` order.
    ahead: VecDeque<Ready>,
    /// The read of the next events, if one runs.
    reading: Pending<Vec<Ready>>,
    /// The running read's committed head and how many events it asked for.
    read_until: (u64, usize),
    /// PUBACKed events not yet marked in the database.
    acked: Vec<u64>,
    /// The marking of acknowledged events, if one runs.
    flushing: Pending<()>,
    /// The command task's queue.
    commands: mpsc::Sender<(rumqttc::Publish, AsyncClient)>,
    tick_n: u64,
    rebirth: bool,
    /// The connection was refused before any byte went out: its session number is unused.
    unsent: bool,
}

impl Conn {
    async fn serve(
        &mut self,
        mut rx: mpsc::UnboundedReceiver<Result<Event, ConnectionError>>,
        rebirth: &tokio::sync::Notify,
    ) -> End {
        let mut committed = self.sync.core.store.committed();
        let mut tick = tokio::time::interval(self.mqtt.telemetry_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let cancel = self.sync.core.cancel.clone();
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    self.drain(&mut rx).await;
                    return End::Cancelled;
                }
                ev = rx.recv() => {
                    let Some(ev) = ev else {
                        return self.lost(None).await;
                    };
                    if let Err(e) = self.on_event(ev).await {
                        return self.lost(Some(e)).await;
                    }
                    while let Ok(ev) = rx.try_recv() {
                        if let Err(e) = self.on_event(ev).await {
                            return self.lost(Some(e)).await;
                        }
                    }
                }
                r = committed.changed() => {
                    if r.is_err() {
                        // The store is gone: the daemon is stopping.
                        cancel.cancelled().await;
                    }
                }
                batch = joined(&mut self.reading) => {
                    self.reading = None;
                    match batch {
                        Ok(batch) => self.read_done(batch),
                        Err(e) => return self.lost(Some(e)).await,
                    }
                }
                done = joined(&mut self.flushing) => {
                    self.flushing = None;
                    if let Err(e) = done {
                        return self.lost(Some(e.context("marking events acknowledged"))).await;
                    }
                }
                _ = rebirth.notified() => self.rebirth = true,
                _ = tick.tick(), if self.connected => {
                    self.tick_n += 1;
                    if let Err(e) = self.telemetry(false).await {
                        tracing::warn!(error = %format!("{e:#}"), "mqtt: telemetry");
                    }
                }
            }
            if let Err(e) = self.step(&committed).await {
                return self.lost(Some(e)).await;
            }
        }
    }

    /// After every wake-up: mark acknowledged events, answer a rebirth, fill the window, read
    /// ahead.
    async fn step(&mut self, committed: &tokio::sync::watch::Receiver<u64>) -> anyhow::Result<()> {
        self.start_flush();
        if std::mem::take(&mut self.rebirth) && self.connected {
            self.birth()?;
            self.telemetry(true).await?;
        }
        if !self.connected {
            return Ok(());
        }
        let window = if self.probe && !self.acked_any {
            1
        } else {
            self.mqtt.max_inflight as usize
        };
        while self.in_window < window {
            let Some(ev) = self.ahead.pop_front() else {
                break;
            };
            self.client
                .try_publish(ev.topic, QoS::AtLeastOnce, false, ev.payload)
                .context("publish an event")?;
            self.order.push_back(Tag::Event(ev.seq));
            self.in_window += 1;
        }
        let head = *committed.borrow();
        if self.reading.is_none() && self.ahead.len() < READ_AHEAD / 2 && self.cursor < head {
            let (after, want) = (self.cursor, READ_AHEAD);
            let (store, topics) = (self.sync.core.store.clone(), self.topics.clone());
            let branch = self.sync.core.cfg.branch.id.clone();
            self.read_until = (head, want);
            self.reading = Some(tokio::task::spawn_blocking(move || {
                let rows = store.read_blocking(|c| store::unacked_text_after(c, after, want))?;
                Ok(rows
                    .iter()
                    .map(|ev| {
                        let (kind, payload) = super::upstream::envelope_text(ev, &branch);
                        Ready {
                            seq: ev.seq,
                            topic: topics.event(kind),
                            payload,
                        }
                    })
                    .collect())
            }));
        }
        Ok(())
    }

    /// A read of the outbox came back.
    fn read_done(&mut self, batch: Vec<Ready>) {
        let (head, want) = self.read_until;
        let got = batch.len();
        if let Some(last) = batch.last() {
            self.cursor = last.seq;
        }
        if got < want {
            // Everything unacknowledged up to the head is read.
            self.cursor = self.cursor.max(head);
        }
        self.ahead.extend(batch);
    }

    async fn on_event(&mut self, ev: Result<Event, ConnectionError>) -> anyhow::Result<()> {
        match ev.context("mqtt connection")? {
            Event::Incoming(Incoming::ConnAck(ack)) => {
                let n = self.session;
                self.connected = true;
                self.connected_at = Some(tokio::time::Instant::now());
                self.sync.set_connected(true);
                tracing::info!(
                    session = n,
                    session_present = ack.session_present,
                    "mqtt: connected"
                );
                self.client
                    .try_subscribe(self.topics.cmd(), QoS::AtLeastOnce)
                    .context("subscribe to commands")?;
                self.birth()?;
            }
            Event::Incoming(Incoming::PubAck(ack)) => match self.by_pkid.remove(&ack.pkid) {
                Some(Tag::Event(seq)) => {
                    self.in_window = self.in_window.saturating_sub(1);
                    self.acked_any = true;
                    self.acked.push(seq);
                }
                Some(Tag::Other) | None => {}
            },
            Event::Incoming(Incoming::Publish(p)) => {
                if p.topic == self.topics.cmd() {
                    if let Err(e) = self.commands.try_send((p, self.client.clone())) {
                        tracing::warn!(error = %e, "mqtt: too many commands waiting; this one is left for the broker to deliver again");
                    }
                } else {
                    let _ = self.client.try_ack(&p);
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) if pkid != 0 => {
                if let Some(tag) = self.order.pop_front() {
                    self.by_pkid.insert(pkid, tag);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn birth(&mut self) -> anyhow::Result<()> {
        let birth = json!({
            "online": true,
            "session": self.session,
            "ts": rfc3339(chrono::Utc::now()),
            "version": env!("CARGO_PKG_VERSION"),
            "boot_id": self.sync.boot_id(),
        });
        self.client
            .try_publish(
                self.topics.state(),
                QoS::AtLeastOnce,
                true,
                birth.to_string(),
            )
            .context("publish the birth")?;
        self.order.push_back(Tag::Other);
        Ok(())
    }

    async fn telemetry(&mut self, full: bool) -> anyhow::Result<()> {
        let core = &self.sync.core;
        let uptime = core.started.elapsed();
        let (cfg, now) = (core.cfg.clone(), chrono::Utc::now());
        let snap = core
            .store
            .read(move |c| telemetry(c, &cfg, now, uptime, full))
            .await?;
        let depth = snap["outbox_depth"].as_u64().unwrap_or(0);
        if !full && depth > self.mqtt.outbox_high_water && self.tick_n % THINNING != 1 {
            return Ok(()); // thinned: the link's bandwidth goes to the backlog
        }
        self.client
            .try_publish(
                self.topics.telemetry(),
                QoS::AtMostOnce,
                false,
                snap.to_string(),
            )
            .context("publish telemetry")?;
        Ok(())
    }

    /// Start marking the PUBACKed events, unless a marking runs (the next one takes what
    /// came meanwhile) or there is nothing to mark.
    fn start_flush(&mut self) {
        if self.flushing.is_some() || self.acked.is_empty() {
            return;
        }
        let seqs = std::mem::take(&mut self.acked);
        let clear = std::mem::take(&mut self.refused);
        let store = self.sync.core.store.clone();
        self.flushing = Some(self.sync.core.tracker.spawn(async move {
            store
                .write_essential(move |tx| {
                    let at = rfc3339(tx.now());
                    mark_acked(tx.conn(), &seqs, &at)?;
                    if clear {
                        tracing::info!("mqtt: the broker takes events again");
                        alerts::clear(tx, REFUSED_ALERT)?;
                    }
                    Ok::<_, StoreError>(())
                })
                .await
        }));
    }

    /// Wait for the running marking, then mark what is left.
    async fn flush_acks(&mut self) -> anyhow::Result<()> {
        joined_now(&mut self.flushing)
            .await
            .context("marking events acknowledged")?;
        self.start_flush();
        joined_now(&mut self.flushing)
            .await
            .context("marking events acknowledged")
    }

    async fn lost(&mut self, e: Option<anyhow::Error>) -> End {
        self.unsent = !self.connected && e.as_ref().is_some_and(refused_before_connect);
        let reason = match e {
            Some(e) => {
                let reason = format!("{e:#}");
                tracing::warn!(error = %reason, session = self.session, "mqtt: link lost");
                reason
            }
            None => {
                tracing::warn!(session = self.session, "mqtt: link lost");
                "the connection closed".to_string()
            }
        };
        if let Err(e) = self.flush_acks().await {
            tracing::warn!(error = %format!("{e:#}"), "mqtt: cannot mark acknowledged events; they will be re-sent");
        }
        End::Lost(self.ending(reason))
    }

    /// How this connection ended: see [`Ending`].
    fn ending(&self, reason: String) -> Ending {
        let in_flight = self
            .by_pkid
            .values()
            .chain(self.order.iter())
            .filter_map(|t| match t {
                Tag::Event(seq) => Some(*seq),
                Tag::Other => None,
            })
            .min();
        let lasted = self.connected_at.is_some_and(|at| at.elapsed() >= STABLE);
        let progressed = self.connected && (self.acked_any || in_flight.is_none() || lasted);
        Ending {
            progressed,
            stuck: if progressed || !self.connected {
                None
            } else {
                in_flight
            },
            reason,
        }
    }

    /// The daemon is stopping: wait briefly for what is in flight, say goodbye, disconnect.
    async fn drain(&mut self, rx: &mut mpsc::UnboundedReceiver<Result<Event, ConnectionError>>) {
        if self.connected {
            let deadline = tokio::time::Instant::now() + DRAIN_GRACE;
            while self.in_window > 0 {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(ev)) => {
                        if self.on_event(ev).await.is_err() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            let goodbye = json!({"online": false, "session": self.session}).to_string();
            let _ = self
                .client
                .try_publish(self.topics.state(), QoS::AtLeastOnce, true, goodbye);
            let _ = self.client.try_disconnect();
            // Let the poller write the goodbye and the DISCONNECT.
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                while let Some(ev) = rx.recv().await {
                    if ev.is_err() {
                        break;
                    }
                }
            })
            .await;
        }
        if let Err(e) = self.flush_acks().await {
            tracing::warn!(error = %format!("{e:#}"), "mqtt: cannot mark acknowledged events; they will be re-sent");
        }
    }
}

/// Outbox upkeep, with or without a link: the `sync.backlog` alert. (Acknowledged events
/// are pruned by the retention task, [`super::RETENTION`].)
pub async fn maintain(sync: Sync, mqtt: Mqtt) {
    let mut raised: Option<bool> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sync.core.cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = backlog(&sync, &mqtt, &mut raised).await {
            tracing::warn!(error = %e, "outbox: backlog check");
        }
    }
}

async fn backlog(sync: &Sync, mqtt: &Mqtt, raised: &mut Option<bool>) -> Result<(), StoreError> {
    let depth = sync.core.store.read(store::outbox_depth).await?;
    let over = depth > mqtt.outbox_high_water;
    if *raised == Some(over) {
        return Ok(());
    }
    let hw = mqtt.outbox_high_water;
    sync.core
        .store
        .write(move |tx| -> Result<(), StoreError> {
            if over {
                let message = format!("{depth} events wait for head office (high-water mark {hw})");
                alerts::raise(
                    tx,
                    &NewAlert {
                        kind: BACKLOG_ALERT,
                        level: Level::Warning,
                        source: Some("sync"),
                        key: Some(BACKLOG_ALERT),
                        message: &message,
                        data: json!({"depth": depth, "high_water": hw}),
                    },
                )?;
            } else {
                alerts::clear(tx, BACKLOG_ALERT)?;
            }
            Ok(())
        })
        .await?;
    *raised = Some(over);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_with_jitter_and_resets() {
        let mut b = Backoff::new();
        let ceilings: Vec<u64> = (0..9)
            .map(|_| {
                let c = b.ceiling();
                let w = b.next_wait();
                assert!(w >= c / 2 && w <= c, "{w:?} within the upper half of {c:?}");
                c.as_secs()
            })
            .collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }

    fn lost(stuck: u64) -> Ending {
        Ending {
            progressed: false,
            stuck: Some(stuck),
            reason: "connection reset by peer".into(),
        }
    }

    #[test]
    fn an_event_lost_three_connections_running_is_refused_once_and_cleared_by_progress() {
        let mut w = RefusalWatch::default();
        assert_eq!(w.after(&lost(7)), Verdict::Retry);
        assert_eq!(w.after(&lost(7)), Verdict::Retry);
        assert_eq!(
            w.after(&lost(7)),
            Verdict::Refused {
                seq: 7,
                attempts: 3
            }
        );
        // Raised once, however long the refusal lasts.
        assert_eq!(w.after(&lost(7)), Verdict::Retry);
        let up = Ending {
            progressed: true,
            stuck: None,
            reason: String::new(),
        };
        assert_eq!(w.after(&up), Verdict::Progress { clear: true });
        assert_eq!(w.after(&up), Verdict::Progress { clear: false });
    }

    #[test]
    fn losses_on_different_events_or_with_the_broker_down_are_not_a_refusal() {
        let mut w = RefusalWatch::default();
        for seq in [1, 2, 3, 4] {
            assert_eq!(w.after(&lost(seq)), Verdict::Retry);
        }
        let down = Ending {
            progressed: false,
            stuck: None,
            reason: "connection refused".into(),
        };
        for _ in 0..5 {
            assert_eq!(w.after(&down), Verdict::Retry);
        }
    }

    #[test]
    fn rss_is_reported() {
        assert!(rss_bytes() > 0);
    }
}
