//! SQLite storage: one writer thread, a pool of readers, and the event outbox.
//!
//! Invariant 2 lives here: [`Store::write`] runs a closure inside one `IMMEDIATE`
//! transaction; every event the closure emits with [`Tx::emit`] gets the next gap-free
//! `seq` and is inserted into the `events` table (the outbox) in that same transaction.
//! Only after `COMMIT` succeeds are the events published on the in-process bus. An event
//! stays in the outbox until the head-office link marks it acknowledged.
//!
//! Invariant 3: the async runtime never touches SQLite. Writes go to a dedicated thread
//! over a channel; reads run on the blocking pool.
//!
//! Group commit: the writer takes every write queued when it gets to them (at most
//! [`MAX_GROUP`]) into one SQLite transaction, each write in a savepoint of its own, and
//! commits them with one fsync. A write that fails rolls back to its savepoint, so it
//! takes back only its own changes and events; every caller gets its answer, and every
//! event goes on the bus, only after that one `COMMIT`. Should SQLite end the whole
//! transaction (a full disk, an I/O error), the writes of the group that had run get that
//! error, as one transaction of their own would have; those not yet run go on in the
//! next transaction.

mod follow;
mod migrations;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

pub use follow::{Cursor, Follower, consume, cursor_get, cursor_set};
pub use migrations::{CORE, Schema, migrate, migrate_to, version};

use crate::clock::rfc3339;

/// A committed domain event, as stored in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Per-branch, gap-free, starting at 1.
    pub seq: u64,
    /// A ULID, unique forever.
    pub id: String,
    /// When it was committed.
    pub ts: DateTime<Utc>,
    /// e.g. `ticket.issued`.
    pub kind: String,
    /// Kind-specific payload.
    pub data: serde_json::Value,
}

impl Event {
    /// The head-office envelope (`v`, `seq`, `id`, `ts`, `branch`, `kind`, `data`); SSE
    /// uses the same shape.
    pub fn envelope(&self, branch: &str) -> serde_json::Value {
        serde_json::json!({
            "v": 1,
            "seq": self.seq,
            "id": self.id,
            "ts": rfc3339(self.ts),
            "branch": branch,
            "kind": self.kind,
            "data": self.data,
        })
    }

    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
        let ts: String = row.get(2)?;
        let data: String = row.get(4)?;
        Ok(Event {
            seq: row.get::<_, i64>(0)? as u64,
            id: row.get(1)?,
            ts: crate::clock::parse(&ts).unwrap_or_default(),
            kind: row.get(3)?,
            data: serde_json::from_str(&data).unwrap_or(serde_json::Value::Null),
        })
    }
}

/// An outbox event as its row holds it, `ts` and `data` as text: what the publisher sends
/// without parsing (see `sync::upstream::envelope_text`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Per-branch, gap-free, starting at 1.
    pub seq: u64,
    /// A ULID.
    pub id: String,
    /// When it was committed (RFC 3339, as written).
    pub ts: String,
    /// e.g. `ticket.issued`.
    pub kind: String,
    /// The payload's JSON text, as written.
    pub data: String,
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The writer thread is gone (shutting down).
    #[error("database writer is closed")]
    Closed,
    /// A value could not be encoded.
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
    /// Opening or migrating the database failed.
    #[error("{0}")]
    Open(String),
    /// The data disk filled up and its reserve was given back for what must still be
    /// written (alerts, sign-outs, the link's bookkeeping): ordinary writes wait for space.
    #[error("the data disk is full: only essential changes are saved until space returns")]
    Full,
    /// An event's data is larger than [`MAX_EVENT_BYTES`]; the transaction is rolled back.
    #[error("event `{kind}` is {bytes} bytes; at most {MAX_EVENT_BYTES} are sent")]
    EventTooLarge {
        /// The event's kind.
        kind: String,
        /// Its encoded size.
        bytes: usize,
    },
}

/// The largest event data [`Tx::emit`] records: events go to every PAD and to head
/// office, and one too large to publish would hold up the outbox behind it.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

impl StoreError {
    /// SQLite could not write for want of space (`SQLITE_FULL`, or an I/O error with
    /// `ENOSPC` underneath): the transaction was rolled back and nothing committed is
    /// damaged.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Full => true,
            StoreError::Sqlite(e) => {
                matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DiskFull))
            }
            _ => false,
        }
    }
}

/// A write transaction handed to [`Store::write`] closures.
#[derive(Debug)]
pub struct Tx<'c> {
    conn: &'c Connection,
    next_seq: u64,
    now: DateTime<Utc>,
    events: Vec<Event>,
    memos: &'c mut Memos,
}

/// What a module keeps on the writer between transactions ([`Tx::memo`]).
pub trait Memo: Default + Send + 'static {
    /// A write did not commit (its savepoint or its whole transaction was rolled back):
    /// whatever it changed in the memos may describe rows that are not in the database.
    fn rolled_back(&mut self);
}

trait AnyMemo: Any + Send {
    fn rolled_back(&mut self);
    fn as_any(&mut self) -> &mut dyn Any;
}

impl<T: Memo> AnyMemo for T {
    fn rolled_back(&mut self) {
        Memo::rolled_back(self);
    }
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// The writer's memos, by type.
#[derive(Default)]
struct Memos(HashMap<TypeId, Box<dyn AnyMemo>>);

impl Memos {
    fn rolled_back(&mut self) {
        for m in self.0.values_mut() {
            m.rolled_back();
        }
    }
}

impl std::fmt::Debug for Memos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Memos({})", self.0.len())
    }
}

impl Tx<'_> {
    /// The connection, for domain reads and writes inside the transaction.
    pub fn conn(&self) -> &Connection {
        self.conn
    }

    /// The transaction's wall-clock time.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Record an outgoing event in the outbox, in this transaction. Returns its `seq`.
    pub fn emit(&mut self, kind: &str, data: impl Serialize) -> Result<u64, StoreError> {
        // A kind's dot-separated parts become head-office topic levels.
        debug_assert!(
            kind.split('.').all(|l| !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')),
            "event kind {kind:?} is not made of portable topic levels"
        );
        let data = serde_json::to_value(data)?;
        let text = data.to_string();
        if text.len() > MAX_EVENT_BYTES {
            return Err(StoreError::EventTooLarge {
                kind: kind.to_string(),
                bytes: text.len(),
            });
        }
        let seq = self.next_seq;
        let id = ulid::Ulid::new().to_string();
        self.conn
            .prepare_cached(
                "INSERT INTO events(seq, id, ts, kind, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![seq as i64, id, rfc3339(self.now), kind, text])?;
        self.next_seq += 1;
        self.events.push(Event {
            seq,
            id,
            ts: self.now,
            kind: kind.to_string(),
            data,
        });
        Ok(seq)
    }

    /// Events emitted so far in this transaction.
    pub fn emitted(&self) -> &[Event] {
        &self.events
    }

    /// The writer's `T`, kept from one transaction to the next (made with `Default` on
    /// first use), with the connection: a module's memo of its own rows, so that an
    /// operation does not read them all again. The store does not know what it holds; it
    /// tells every memo when a write does not commit ([`Memo::rolled_back`]), and
    /// the owner checks it against the database before trusting it (see
    /// `queue::tickets::open_tickets_tx`).
    pub fn memo<T: Memo>(&mut self) -> (&Connection, &mut T) {
        let memo = self
            .memos
            .0
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .as_any()
            .downcast_mut::<T>()
            .expect("a memo is stored under its own type");
        (self.conn, memo)
    }
}

/// The most writes committed in one transaction.
pub const MAX_GROUP: usize = 64;

/// A write waiting for the writer.
trait Job: Send {
    /// Run the write's closure in `tx`, keeping its outcome; whether it succeeded.
    fn run(&mut self, tx: &mut Tx<'_>) -> bool;
    /// Answer the caller: with the write's own outcome, or with `failed` (the transaction
    /// it ran in did not commit, or it never ran) when that outcome was a success.
    fn answer(self: Box<Self>, failed: Option<StoreError>);
}

struct Write<F, R, E> {
    f: Option<F>,
    out: Option<Result<R, E>>,
    reply: std::sync::mpsc::Sender<Result<R, E>>,
}

impl<F, R, E> Job for Write<F, R, E>
where
    F: FnOnce(&mut Tx<'_>) -> Result<R, E> + Send,
    R: Send,
    E: From<StoreError> + Send,
{
    fn run(&mut self, tx: &mut Tx<'_>) -> bool {
        let f = self.f.take().expect("a write runs once");
        let out = f(tx);
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn answer(self: Box<Self>, failed: Option<StoreError>) {
        let out = match (self.out, failed) {
            (Some(Err(own)), _) => Err(own),
            (Some(Ok(_)) | None, Some(e)) => Err(E::from(e)),
            (Some(Ok(v)), None) => Ok(v),
            (None, None) => Err(E::from(StoreError::Closed)),
        };
        // The caller may have stopped waiting; what committed stays committed.
        let _ = self.reply.send(out);
    }
}

/// The same failure again, for every write of a group that did not commit: SQLite's code
/// is kept, so a full disk is still told as one ([`StoreError::is_disk_full`]).
fn echo(e: &StoreError) -> StoreError {
    match e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, msg)) => {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(*code, msg.clone()))
        }
        StoreError::Full => StoreError::Full,
        StoreError::Closed => StoreError::Closed,
        other => StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
            Some(format!("the transaction was rolled back: {other}")),
        )),
    }
}

/// State owned by the writer thread.
struct Writer {
    conn: Connection,
    memos: Memos,
    last_seq: u64,
    bus: broadcast::Sender<Arc<Event>>,
    committed: watch::Sender<u64>,
    stats: Arc<WriteStats>,
}

/// Counters of the writer, for `/metrics`.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Committed writes.
    pub commits: std::sync::atomic::AtomicU64,
    /// Writes that failed and were rolled back.
    pub rollbacks: std::sync::atomic::AtomicU64,
    /// Committed SQLite transactions (writes queued together share one).
    pub transactions: std::sync::atomic::AtomicU64,
    /// Committed events.
    pub events: std::sync::atomic::AtomicU64,
    /// Total microseconds spent in committed transactions.
    pub commit_micros: std::sync::atomic::AtomicU64,
}

impl Writer {
    /// Serve writes until every handle is gone: each time, all that are queued (up to
    /// [`MAX_GROUP`]) in one transaction.
    fn serve(&mut self, jobs: &std::sync::mpsc::Receiver<Box<dyn Job>>) {
        while let Ok(first) = jobs.recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match jobs.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            while !group.is_empty() {
                group = self.group(group);
            }
        }
    }

    fn exec(&self, sql: &str) -> Result<(), StoreError> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    /// Run `jobs` in one transaction, commit, answer them. Returns the jobs not run when
    /// SQLite ended the transaction early.
    fn group(&mut self, jobs: Vec<Box<dyn Job>>) -> Vec<Box<dyn Job>> {
        use std::sync::atomic::Ordering::Relaxed;
        let started = Instant::now();
        if let Err(e) = self.exec("BEGIN IMMEDIATE") {
            for job in jobs {
                job.answer(Some(echo(&e)));
            }
            return Vec::new();
        }
        let mut ran = Vec::with_capacity(jobs.len());
        let mut rest = jobs.into_iter();
        let mut events: Vec<Event> = Vec::new();
        let mut failed = 0;
        let mut aborted = None;
        for mut job in rest.by_ref() {
            if let Err(e) = self.exec("SAVEPOINT write") {
                aborted = Some(e);
                ran.push(job);
                break;
            }
            let mut tx = Tx {
                conn: &self.conn,
                next_seq: self.last_seq + events.len() as u64 + 1,
                now: Utc::now(),
                events: Vec::new(),
                memos: &mut self.memos,
            };
            let ok = job.run(&mut tx);
            let emitted = tx.events;
            ran.push(job);
            if self.conn.is_autocommit() {
                // SQLite rolled the whole transaction back under the write.
                aborted = Some(StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                    Some("the transaction was rolled back by a failure inside it".into()),
                )));
                break;
            }
            let done = if ok {
                events.extend(emitted);
                self.exec("RELEASE write")
            } else {
                failed += 1;
                self.memos.rolled_back();
                self.exec("ROLLBACK TO write")
                    .and_then(|()| self.exec("RELEASE write"))
            };
            if let Err(e) = done {
                aborted = Some(e);
                break;
            }
        }
        let rest: Vec<_> = rest.collect();
        let outcome = match aborted {
            Some(e) => Err(e),
            None => self.commit(events.last().map(|e| e.seq)),
        };
        if let Err(e) = outcome {
            // Dropping what the transaction did, if SQLite has not already.
            if !self.conn.is_autocommit() {
                let _ = self.exec("ROLLBACK");
            }
            self.stats.rollbacks.fetch_add(ran.len() as u64, Relaxed);
            self.memos.rolled_back();
            for job in ran {
                job.answer(Some(echo(&e)));
            }
            return rest;
        }
        let committed = (ran.len() - failed) as u64;
        self.stats.commits.fetch_add(committed, Relaxed);
        self.stats.rollbacks.fetch_add(failed as u64, Relaxed);
        self.stats.transactions.fetch_add(1, Relaxed);
        self.stats
            .commit_micros
            .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        if let Some(last) = events.last() {
            self.last_seq = last.seq;
            self.stats.events.fetch_add(events.len() as u64, Relaxed);
            for ev in events {
                // No receiver is fine: the outbox holds the event anyway.
                let _ = self.bus.send(Arc::new(ev));
            }
            self.committed.send_replace(self.last_seq);
        }
        for job in ran {
            job.answer(None);
        }
        rest
    }

    /// Record the last event's `seq` and commit.
    fn commit(&self, last_seq: Option<u64>) -> Result<(), StoreError> {
        if let Some(seq) = last_seq {
            self.conn
                .prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'event_seq'")?
                .execute(params![seq.to_string()])?;
        }
        self.exec("COMMIT")
    }
}

struct Inner {
    jobs: Mutex<Option<std::sync::mpsc::Sender<Box<dyn Job>>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Idle read connections; `None` once closed, so that reads after that keep no file open.
    readers: Mutex<Option<Vec<Connection>>>,
    /// Reads running now, each with a connection open; [`Store::close`] waits for them.
    reading: Reading,
    path: PathBuf,
    bus: broadcast::Sender<Arc<Event>>,
    committed: watch::Receiver<u64>,
    stats: Arc<WriteStats>,
    /// Set while the disk's reserve is given back: only [`Store::write_essential`] writes.
    reserve_only: std::sync::atomic::AtomicBool,
}

/// The database: cheap to clone, shared by every service.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

const BUS_CAPACITY: usize = 4096;
const MAX_IDLE_READERS: usize = 4;
/// How long [`Store::close`] waits for reads still running (a task stopped while awaiting
/// one leaves it running to its end).
const CLOSE_WAITS_FOR_READS: Duration = Duration::from_secs(10);

/// A count of the reads running now, and a way to wait until there are none.
#[derive(Default)]
struct Reading {
    running: Mutex<usize>,
    ended: Condvar,
}

impl Reading {
    fn enter(&self) -> ReadGuard<'_> {
        *self.running.lock().expect("reading lock") += 1;
        ReadGuard(self)
    }

    /// Whether every read ended within `limit`.
    fn wait_idle(&self, limit: Duration) -> bool {
        let running = self.running.lock().expect("reading lock");
        let (running, _) = self
            .ended
            .wait_timeout_while(running, limit, |n| *n > 0)
            .expect("reading lock");
        *running == 0
    }
}

/// One read running; its end is counted when dropped, even if the read panicked.
struct ReadGuard<'a>(&'a Reading);

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().expect("reading lock");
        *running -= 1;
        if *running == 0 {
            self.0.ended.notify_all();
        }
    }
}

/// Write, sync and remove a small file in `dir`: the real write `/healthz`, the watchdog
/// and start-up use to tell a data dir that takes writes from one that is read-only or
/// full (a `SELECT` answers on both).
pub fn probe_dir(dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(".write-probe");
    let result = (|| {
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&[0u8; 4096])?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// Make the database and its WAL files readable and writable by the owner only (SQLite
/// gives files it creates later the database file's mode).
fn owner_only(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_os_string();
        name.push(suffix);
        let file = Path::new(&name);
        match std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !suffix.is_empty() => {}
            Err(e) => {
                return Err(StoreError::Open(format!(
                    "cannot make {} owner-only: {e}",
                    file.display()
                )));
            }
        }
    }
    Ok(())
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Every statement on the request path is prepared once per connection.
    conn.set_prepared_statement_cache_capacity(64);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl Store {
    /// Open (creating if needed) the database at `path`, bring it to the latest version of
    /// the store's own schema and of every module schema in `schemas`, and start the writer.
    pub fn open(path: &Path, schemas: &[Schema]) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Open(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(path)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Open(format!(
                "{}: cannot use WAL journal mode (got {mode})",
                path.display()
            )));
        }
        // Durability of every commit on the event path: fsync on each transaction.
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Deleted rows (personal data past its retention) are overwritten, not left in
        // free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
        // The writer's temporary tables (a memo's change log, `Tx::memo`) live in memory,
        // not in a temporary file: they are small and touched by every queue operation.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        configure(&conn)?;
        owner_only(path)?;
        migrate(&mut conn, &[&[CORE], schemas].concat())
            .map_err(|e| StoreError::Open(format!("migration failed: {e}")))?;
        let last_seq: u64 = conn
            .query_row("SELECT value FROM meta WHERE key = 'event_seq'", [], |r| {
                r.get::<_, String>(0)
            })?
            .parse()
            .map_err(|_| StoreError::Open("meta.event_seq is not a number".into()))?;

        let (bus, _) = broadcast::channel(BUS_CAPACITY);
        let (committed_tx, committed_rx) = watch::channel(last_seq);
        let stats = Arc::new(WriteStats::default());
        let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<Box<dyn Job>>();
        let mut writer = Writer {
            conn,
            memos: Memos::default(),
            last_seq,
            bus: bus.clone(),
            committed: committed_tx,
            stats: stats.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || {
                writer.serve(&jobs_rx);
                // All handles are gone: leave a tidy WAL behind.
                let _ = writer
                    .conn
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            })
            .map_err(|e| StoreError::Open(format!("cannot start the writer thread: {e}")))?;
        Ok(Store {
            inner: Arc::new(Inner {
                jobs: Mutex::new(Some(jobs_tx)),
                writer_thread: Mutex::new(Some(thread)),
                readers: Mutex::new(Some(Vec::new())),
                reading: Reading::default(),
                path: path.to_path_buf(),
                bus,
                committed: committed_rx,
                stats,
                reserve_only: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// Run `f` in one write transaction; its events commit with it or not at all.
    pub async fn write<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_as(false, f).await
    }

    /// Like [`Store::write`], also while the disk's reserve is given back
    /// ([`Store::set_reserve_only`]): alerts, sign-outs and the head-office link's
    /// bookkeeping, which must be saved when nothing else can.
    pub async fn write_essential<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_as(true, f).await
    }

    async fn write_as<R, E, F>(&self, essential: bool, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        // Waiting on the blocking pool (not on a channel) keeps a paused test clock from
        // jumping ahead while the writer thread commits in real time.
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_blocking_as(essential, f))
            .await
            .map_err(|_| E::from(StoreError::Closed))?
    }

    /// Keep ordinary writes off the disk's reserve (`true`, when it was given back because
    /// the disk filled), or let them write again (`false`, once space returned).
    pub fn set_reserve_only(&self, on: bool) {
        self.inner
            .reserve_only
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether only essential writes are taken ([`Store::set_reserve_only`]).
    pub fn reserve_only(&self) -> bool {
        self.inner
            .reserve_only
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Like [`Store::write`], for callers on a plain thread (CLI commands, benchmarks).
    pub fn write_blocking<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.write_blocking_as(false, f)
    }

    fn write_blocking_as<R, E, F>(&self, essential: bool, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        if !essential && self.reserve_only() {
            return Err(E::from(StoreError::Full));
        }
        let (reply, answer) = std::sync::mpsc::channel();
        self.submit(Box::new(Write {
            f: Some(f),
            out: None,
            reply,
        }))?;
        answer.recv().map_err(|_| E::from(StoreError::Closed))?
    }

    fn submit(&self, job: Box<dyn Job>) -> Result<(), StoreError> {
        let jobs = self.inner.jobs.lock().expect("jobs lock");
        match jobs.as_ref() {
            Some(s) => s.send(job).map_err(|_| StoreError::Closed),
            None => Err(StoreError::Closed),
        }
    }

    /// Run a read-only query on the blocking pool.
    pub async fn read<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&Connection) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_blocking(f))
            .await
            .map_err(|_| E::from(StoreError::Closed))?
    }

    /// A read on the calling thread (for CLI commands and blocking workers).
    pub fn read_blocking<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&Connection) -> Result<R, E>,
        E: From<StoreError>,
    {
        let _reading = self.inner.reading.enter();
        let conn = self
            .inner
            .readers
            .lock()
            .expect("readers lock")
            .as_mut()
            .and_then(Vec::pop);
        let conn = match conn {
            Some(c) => c,
            None => self.open_reader().map_err(E::from)?,
        };
        let out = f(&conn);
        let mut pool = self.inner.readers.lock().expect("readers lock");
        if let Some(pool) = pool.as_mut().filter(|p| p.len() < MAX_IDLE_READERS) {
            pool.push(conn);
        }
        out
    }

    fn open_reader(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.inner.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&conn)?;
        Ok(conn)
    }

    /// Committed events, in order, as they commit. A receiver that falls more than the
    /// bus's capacity behind loses events: in-process consumers use [`Store::follow`].
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.inner.bus.subscribe()
    }

    /// Every event committed after `after`, in order, each once: from the bus while the
    /// follower keeps up, from the outbox when it falls behind or starts in the past.
    pub fn follow(&self, after: u64) -> Follower {
        Follower::new(self.clone(), after)
    }

    /// Every event after the last one the named consumer recorded as handled (see
    /// [`Cursor`]); a consumer seen for the first time starts at the events committed from
    /// now on.
    pub async fn follow_cursor(
        &self,
        name: &'static str,
    ) -> Result<(Follower, Cursor), StoreError> {
        let head = *self.committed().borrow();
        let saved = self.read(move |c| follow::cursor_get(c, name)).await?;
        let after = saved.unwrap_or(head);
        Ok((
            self.follow(after),
            Cursor::new(name, after, saved.is_some()),
        ))
    }

    /// The `seq` of the last committed event, updated on every commit.
    pub fn committed(&self) -> watch::Receiver<u64> {
        self.inner.committed.clone()
    }

    /// The writer's counters.
    pub fn stats(&self) -> &WriteStats {
        &self.inner.stats
    }

    /// Events with `seq > after`, at most `limit`, in order.
    pub async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.read(move |c| events_after(c, after, limit)).await
    }

    /// Stop accepting writes, let the writer finish what it has, and wait for it and for the
    /// reads still running (up to [`CLOSE_WAITS_FOR_READS`]). When it returns, the store
    /// keeps no database file open, so the data dir can be unmounted or remounted read-only;
    /// a read after that opens its own connection and closes it when done.
    pub fn close(&self) {
        self.inner.readers.lock().expect("readers lock").take();
        self.inner.jobs.lock().expect("jobs lock").take();
        if let Some(t) = self.inner.writer_thread.lock().expect("thread lock").take() {
            let _ = t.join();
        }
        if !self.inner.reading.wait_idle(CLOSE_WAITS_FOR_READS) {
            tracing::warn!(
                waited_s = CLOSE_WAITS_FOR_READS.as_secs(),
                "store closed with a read still running"
            );
        }
    }
}

/// Events with `seq > after` (all of them, acknowledged or not, while kept).
pub fn events_after(c: &Connection, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, id, ts, kind, data FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after as i64, limit as i64], Event::from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Outbox events not yet acknowledged by head office, oldest first.
pub fn unacked_after(c: &Connection, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, id, ts, kind, data FROM events \
         WHERE seq > ?1 AND acked_at IS NULL ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after as i64, limit as i64], Event::from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// [`unacked_after`] as stored text, for the publisher.
pub fn unacked_text_after(
    c: &Connection,
    after: u64,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, id, ts, kind, data FROM events \
         WHERE seq > ?1 AND acked_at IS NULL ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after as i64, limit as i64], |r| {
        Ok(StoredEvent {
            seq: r.get::<_, i64>(0)? as u64,
            id: r.get(1)?,
            ts: r.get(2)?,
            kind: r.get(3)?,
            data: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Number of events waiting for head office's acknowledgement.
pub fn outbox_depth(c: &Connection) -> Result<u64, StoreError> {
    Ok(c.query_row(
        "SELECT count(*) FROM events WHERE acked_at IS NULL",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Read one value of the `meta` table.
pub fn meta_get(c: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(
        c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?,
    )
}

/// Set one value of the `meta` table.
pub fn meta_set(c: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO meta(key, value) VALUES (?1, ?2) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// An enum of states stored as text: `as_str`, `FromStr`, `Display`, serde as the text,
/// and rusqlite conversions, from one list of `Variant = "text"` pairs.
///
/// ```ignore
/// crate::store::text_enum! {
///     /// Where a ticket is.
///     pub enum TicketState { Waiting = "waiting", Called = "called" }
/// }
/// ```
macro_rules! text_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and serialised text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} `{other}`", stringify!($name))),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl ::rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> ::rusqlite::Result<::rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl ::rusqlite::types::FromSql for $name {
            fn column_result(
                v: ::rusqlite::types::ValueRef<'_>,
            ) -> ::rusqlite::types::FromSqlResult<Self> {
                v.as_str()?
                    .parse()
                    .map_err(|e: String| ::rusqlite::types::FromSqlError::Other(e.into()))
            }
        }
    };
}
pub(crate) use text_enum;

#[cfg(test)]
mod tests;
