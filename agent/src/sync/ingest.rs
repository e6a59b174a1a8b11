//! `branchd hq ingest`: a reference head-office consumer. It follows every branch's events
//! and states on head office's broker and writes them into PostgreSQL:
//!
//! - `hq_events`: one row per (branch, seq), inserted idempotently — a redelivered event is
//!   counted as a duplicate and changes nothing;
//! - `hq_branches`: each branch's highest gap-free `seq` (`last_seq`), highest `seq` seen,
//!   counts, and its state from the retained `<p>/state` (birth and Will, the later session
//!   wins; within a session the Will wins);
//! - `hq_gaps`: holes in a branch's `seq`; one still open after `--gap-grace` gets a
//!   `rebirth` command to the branch (the box re-sends its state and a full snapshot);
//! - `hq_rejected`: messages that are not events of the contract, kept for inspection.
//!
//! Delivery is at-least-once end to end: the MQTT session is persistent, a batch of messages
//! (up to [`BATCH`], or what arrived within [`FLUSH`]) is written in one transaction, and the
//! messages are acknowledged to the broker only after it commits. A lost broker connection
//! drops the batch and its acks (the broker delivers them again); a database failure is
//! retried, and after [`STORE_ATTEMPTS`] the process exits without acknowledging.
//!
//! Several instances share the load either through an MQTT shared subscription (`--share`,
//! Mosquitto/EMQX/HiveMQ) or by branch (`--shard K/N`, for brokers without shared
//! subscriptions such as NATS). Rows are locked in branch order, so instances never
//! deadlock and a branch's gap-free `seq` is computed under its row lock.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Args;
use rumqttc::{AsyncClient, ConnectionError, Event, Incoming, Publish, QoS};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::hq::BrokerArgs;

/// Most messages written in one transaction.
pub const BATCH: usize = 500;
/// A batch is written at the latest this long after its first message.
pub const FLUSH: Duration = Duration::from_millis(20);
/// Attempts at one transaction before the process gives up (without acknowledging).
pub const STORE_ATTEMPTS: u32 = 10;

/// `branchd hq ingest …`
#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    broker: BrokerArgs,
    /// PostgreSQL connection string, e.g. `host=127.0.0.1 user=hq dbname=hq`.
    #[arg(long, value_name = "CONNINFO")]
    db: String,
    /// The first level of every branch's topic prefix (`bank` for `bank/<branch>`).
    #[arg(long, default_value = "bank")]
    root: String,
    /// Share the load with other instances in this group through an MQTT shared
    /// subscription (`$share/<group>/…`); each instance needs its own `--client-id`.
    #[arg(
        long,
        value_name = "GROUP",
        conflicts_with = "shard",
        requires = "client_id"
    )]
    share: Option<String>,
    /// Share the load by branch: this instance takes the branches whose id hashes to K
    /// (0-based) of N, for brokers without shared subscriptions (NATS).
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    shard: Option<Shard>,
    /// The MQTT client id; the session is persistent, so events wait at the broker while
    /// the instance is down (default `hq-ingest`, or `hq-ingest-K` with `--shard`).
    #[arg(long)]
    client_id: Option<String>,
    /// Seconds a gap may stay open before the branch is asked for a rebirth.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    gap_grace: u64,
    /// Stop after this many seconds (default: until SIGINT or SIGTERM).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<u64>,
}

/// One instance's part of the branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This instance (0-based).
    pub k: u32,
    /// Instances in all.
    pub n: u32,
}

impl Shard {
    /// Whether `branch` is this instance's (FNV-1a of the id, modulo N: stable everywhere).
    pub fn owns(&self, branch: &str) -> bool {
        let mut h: u32 = 0x811c_9dc5;
        for b in branch.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        h % self.n == self.k
    }
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: expected K/N, e.g. 0/3"))?;
    let (k, n): (u32, u32) = (
        k.parse().map_err(|_| format!("`{k}` is not a number"))?,
        n.parse().map_err(|_| format!("`{n}` is not a number"))?,
    );
    if n == 0 || k >= n {
        return Err(format!("`{s}`: K must be below N and N at least 1"));
    }
    Ok(Shard { k, n })
}

/// The tables, created if missing (under an advisory lock: instances start together).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hq_events (
    branch TEXT NOT NULL,
    seq BIGINT NOT NULL,
    id TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    kind TEXT NOT NULL,
    data JSONB NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (branch, seq)
);
CREATE TABLE IF NOT EXISTS hq_branches (
    branch TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL DEFAULT 0,
    max_seq BIGINT NOT NULL DEFAULT 0,
    events BIGINT NOT NULL DEFAULT 0,
    duplicates BIGINT NOT NULL DEFAULT 0,
    online BOOLEAN,
    session BIGINT,
    version TEXT,
    boot_id TEXT,
    state_at TIMESTAMPTZ,
    last_event_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS hq_gaps (
    branch TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    rebirth_at TIMESTAMPTZ,
    filled_at TIMESTAMPTZ,
    PRIMARY KEY (branch, first_seq)
);
CREATE TABLE IF NOT EXISTS hq_rejected (
    id BIGSERIAL PRIMARY KEY,
    topic TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS hq_events_visit ON hq_events ((data->>'visit_id'))
    WHERE data ? 'visit_id';
CREATE OR REPLACE VIEW hq_journeys AS
    SELECT branch, data->>'visit_id' AS visit_id, seq, ts, kind,
           data->>'number' AS ticket, data->>'customer_id' AS customer_id,
           data->>'appointment_id' AS appointment_id
    FROM hq_events WHERE data ? 'visit_id';
";

/// One event of the contract, checked against its topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    /// The branch (from the topic, equal to the envelope's).
    pub branch: String,
    /// Its `seq`.
    pub seq: i64,
    /// Its ULID.
    pub id: String,
    /// When the box committed it.
    pub ts: DateTime<Utc>,
    /// Its kind (`ticket.issued`).
    pub kind: String,
    /// Its data.
    pub data: Value,
}

/// A branch's birth, Will or goodbye.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// The branch.
    pub branch: String,
    /// Online (birth) or not (Will, goodbye).
    pub online: bool,
    /// The box's connection counter.
    pub session: i64,
    /// Its software version (births only).
    pub version: Option<String>,
    /// This run of the daemon (births only).
    pub boot_id: Option<String>,
}

/// What one message is.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// An event.
    Event(Ev),
    /// A state.
    State(State),
    /// Not this instance's branch (`--shard`).
    Elsewhere,
    /// Not a message of the contract.
    Rejected {
        /// Why.
        reason: String,
    },
}

/// Read one message under `<root>/<branch>/…`.
pub fn parse(root: &str, topic: &str, payload: &[u8], shard: Option<Shard>) -> Message {
    let reject = |reason: &str| Message::Rejected {
        reason: reason.to_string(),
    };
    let mut levels = topic.split('/');
    if levels.next() != Some(root) {
        return reject("topic outside the root");
    }
    let Some(branch) = levels.next().filter(|b| !b.is_empty()) else {
        return reject("topic without a branch");
    };
    if shard.is_some_and(|s| !s.owns(branch)) {
        return Message::Elsewhere;
    }
    let rest: Vec<&str> = levels.collect();
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        return reject("payload is not JSON");
    };
    match rest.as_slice() {
        ["state"] => {
            let (Some(online), Some(session)) = (v["online"].as_bool(), v["session"].as_i64())
            else {
                return reject("state without `online` and `session`");
            };
            Message::State(State {
                branch: branch.to_string(),
                online,
                session,
                version: v["version"].as_str().map(String::from),
                boot_id: v["boot_id"].as_str().map(String::from),
            })
        }
        ["events", path @ ..] if !path.is_empty() => {
            let kind = v["kind"].as_str().unwrap_or_default();
            if kind.is_empty() || kind.replace('.', "/") != path.join("/") {
                return reject("the envelope's kind does not match its topic");
            }
            if v["branch"].as_str() != Some(branch) {
                return reject("the envelope's branch does not match its topic");
            }
            let Some(seq) = v["seq"].as_i64().filter(|s| *s >= 1) else {
                return reject("no positive `seq`");
            };
            let Some(id) = v["id"].as_str() else {
                return reject("no `id`");
            };
            let Some(ts) = v["ts"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            else {
                return reject("no RFC 3339 `ts`");
            };
            Message::Event(Ev {
                branch: branch.to_string(),
                seq,
                id: id.to_string(),
                ts: ts.with_timezone(&Utc),
                kind: kind.to_string(),
                data: v["data"].clone(),
            })
        }
        _ => reject("not an event or a state topic"),
    }
}

/// Whether a state (`session`, `online`) replaces the one recorded: a later session wins;
/// within one session the Will or goodbye wins over a birth that may arrive after it.
pub fn supersedes(old: Option<(i64, bool)>, new: (i64, bool)) -> bool {
    match old {
        None => true,
        Some((session, online)) => new.0 > session || (new.0 == session && (!new.1 || online)),
    }
}

/// Counters of one run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    /// Events inserted.
    pub events: u64,
    /// Events already there.
    pub duplicates: u64,
    /// States applied.
    pub states: u64,
    /// Messages rejected.
    pub rejected: u64,
    /// Rebirths asked for.
    pub rebirths: u64,
}

/// A PostgreSQL connection that comes back after a failure.
struct Db {
    conninfo: String,
    client: Option<tokio_postgres::Client>,
}

impl Db {
    async fn client(&mut self) -> anyhow::Result<&mut tokio_postgres::Client> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let (client, conn) = tokio_postgres::connect(&self.conninfo, tokio_postgres::NoTls)
                .await
                .context("cannot connect to PostgreSQL")?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::warn!(error = %e, "ingest: PostgreSQL connection");
                }
            });
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("just connected"))
    }

    /// Run one transaction, retrying on failure with back-off (up to 5 s) and a fresh
    /// connection, [`STORE_ATTEMPTS`] times.
    async fn write(&mut self, batch: &Batch) -> anyhow::Result<Totals> {
        let mut wait = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            let r = match self.client().await {
                Ok(c) => store(c, batch).await,
                Err(e) => Err(e),
            };
            match r {
                Ok(t) => return Ok(t),
                Err(e) if attempt < STORE_ATTEMPTS => {
                    tracing::warn!(error = %format!("{e:#}"), attempt, "ingest: writing a batch");
                    self.client = None;
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// What arrived since the last write.
#[derive(Debug, Default)]
struct Batch {
    events: Vec<Ev>,
    states: Vec<State>,
    rejected: Vec<(String, String, String)>,
    acks: Vec<Publish>,
}

impl Batch {
    fn len(&self) -> usize {
        self.acks.len()
    }
}

/// Create the tables (once, whichever instance comes first).
async fn schema(c: &mut tokio_postgres::Client) -> anyhow::Result<()> {
    let tx = c.transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('branchd-hq-schema'))",
        &[],
    )
    .await?;
    tx.batch_execute(SCHEMA).await?;
    tx.commit().await?;
    Ok(())
}

/// Write one batch in one transaction.
async fn store(c: &mut tokio_postgres::Client, b: &Batch) -> anyhow::Result<Totals> {
    let mut t = Totals::default();
    let tx = c.transaction().await?;
    let branches: BTreeSet<&str> = b
        .events
        .iter()
        .map(|e| e.branch.as_str())
        .chain(b.states.iter().map(|s| s.branch.as_str()))
        .collect();
    // Lock every branch row of the batch, in one order for every instance.
    for branch in &branches {
        tx.execute(
            "INSERT INTO hq_branches(branch) VALUES ($1) ON CONFLICT DO NOTHING",
            &[branch],
        )
        .await?;
    }
    let names: Vec<&str> = branches.iter().copied().collect();
    tx.query(
        "SELECT branch FROM hq_branches WHERE branch = ANY($1) ORDER BY branch FOR UPDATE",
        &[&names],
    )
    .await?;
    if !b.events.is_empty() {
        let (mut br, mut seq, mut id, mut ts, mut kind, mut data) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for e in &b.events {
            br.push(e.branch.as_str());
            seq.push(e.seq);
            id.push(e.id.as_str());
            ts.push(e.ts);
            kind.push(e.kind.as_str());
            data.push(&e.data);
        }
        let inserted = tx
            .query(
                "INSERT INTO hq_events(branch, seq, id, ts, kind, data) \
                 SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::timestamptz[], \
                                      $5::text[], $6::jsonb[]) \
                 ON CONFLICT DO NOTHING RETURNING branch",
                &[&br, &seq, &id, &ts, &kind, &data],
            )
            .await?;
        let mut per: BTreeMap<String, i64> = BTreeMap::new();
        for row in &inserted {
            *per.entry(row.get(0)).or_default() += 1;
        }
        t.events = inserted.len() as u64;
        t.duplicates = (b.events.len() - inserted.len()) as u64;
        let mut offered: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for e in &b.events {
            let o = offered.entry(e.branch.as_str()).or_default();
            o.0 += 1;
            o.1 = o.1.max(e.seq);
        }
        for (branch, (n, max)) in offered {
            let new = per.get(branch).copied().unwrap_or(0);
            advance(&tx, branch, max, new, n - new).await?;
        }
    }
    for s in &b.states {
        let row = tx
            .query_one(
                "SELECT session, online FROM hq_branches WHERE branch = $1",
                &[&s.branch],
            )
            .await?;
        let old: Option<(i64, bool)> = row
            .get::<_, Option<i64>>(0)
            .zip(row.get::<_, Option<bool>>(1));
        if supersedes(old, (s.session, s.online)) {
            tx.execute(
                "UPDATE hq_branches SET online = $2, session = $3, \
                 version = coalesce($4, version), boot_id = coalesce($5, boot_id), \
                 state_at = now() WHERE branch = $1",
                &[&s.branch, &s.online, &s.session, &s.version, &s.boot_id],
            )
            .await?;
            t.states += 1;
        }
    }
    for (topic, reason, payload) in &b.rejected {
        tx.execute(
            "INSERT INTO hq_rejected(topic, reason, payload) VALUES ($1, $2, $3)",
            &[topic, reason, payload],
        )
        .await?;
        t.rejected += 1;
    }
    tx.commit().await?;
    Ok(t)
}

/// Move a branch's gap-free `seq` forward after new events, and record or close its gap.
async fn advance(
    tx: &tokio_postgres::Transaction<'_>,
    branch: &str,
    max: i64,
    inserted: i64,
    duplicates: i64,
) -> anyhow::Result<()> {
    let row = tx
        .query_one(
            "SELECT last_seq FROM hq_branches WHERE branch = $1",
            &[&branch],
        )
        .await?;
    let last: i64 = row.get(0);
    // The end of the run of consecutive seqs starting right after `last`, if it has begun.
    let run_end: Option<i64> = tx
        .query_opt(
            "SELECT e.seq FROM hq_events e WHERE e.branch = $1 AND e.seq > $2 \
             AND NOT EXISTS (SELECT 1 FROM hq_events f WHERE f.branch = $1 AND f.seq = e.seq + 1) \
             ORDER BY e.seq LIMIT 1",
            &[&branch, &last],
        )
        .await?
        .map(|r| r.get(0));
    let begun = tx
        .query_opt(
            "SELECT 1 FROM hq_events WHERE branch = $1 AND seq = $2",
            &[&branch, &(last + 1)],
        )
        .await?
        .is_some();
    let new_last = if begun { run_end.unwrap_or(last) } else { last };
    tx.execute(
        "UPDATE hq_branches SET last_seq = $2, max_seq = greatest(max_seq, $3), \
         events = events + $4, duplicates = duplicates + $5, last_event_at = now() \
         WHERE branch = $1",
        &[&branch, &new_last, &max, &inserted, &duplicates],
    )
    .await?;
    tx.execute(
        "UPDATE hq_gaps SET filled_at = now() \
         WHERE branch = $1 AND filled_at IS NULL AND last_seq <= $2",
        &[&branch, &new_last],
    )
    .await?;
    // A hole after the gap-free part: from new_last + 1 to just before the next seq held.
    let next: Option<i64> = tx
        .query_opt(
            "SELECT seq FROM hq_events WHERE branch = $1 AND seq > $2 ORDER BY seq LIMIT 1",
            &[&branch, &new_last],
        )
        .await?
        .map(|r| r.get(0));
    if let Some(next) = next {
        tx.execute(
            "INSERT INTO hq_gaps(branch, first_seq, last_seq) VALUES ($1, $2, $3) \
             ON CONFLICT (branch, first_seq) DO UPDATE SET last_seq = excluded.last_seq",
            &[&branch, &(new_last + 1), &(next - 1)],
        )
        .await?;
    }
    Ok(())
}

/// Claim the gaps open longer than `grace` that nobody asked a rebirth for yet.
async fn overdue_gaps(db: &mut Db, grace: Duration) -> anyhow::Result<Vec<(String, i64, i64)>> {
    let c = db.client().await?;
    let rows = c
        .query(
            "UPDATE hq_gaps SET rebirth_at = now() \
             WHERE filled_at IS NULL AND rebirth_at IS NULL \
             AND seen_at < now() - make_interval(secs => $1) \
             RETURNING branch, first_seq, last_seq",
            &[&grace.as_secs_f64()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Run `branchd hq ingest`.
pub fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(ingest(args))
}

async fn poll(
    mut el: rumqttc::EventLoop,
    tx: mpsc::UnboundedSender<Result<Event, ConnectionError>>,
) {
    loop {
        let ev = el.poll().await;
        let failed = ev.is_err();
        if tx.send(ev).is_err() {
            return;
        }
        if failed {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[allow(clippy::print_stdout)]
async fn ingest(a: IngestArgs) -> anyhow::Result<ExitCode> {
    let mut db = Db {
        conninfo: a.db.clone(),
        client: None,
    };
    schema(db.client().await?)
        .await
        .context("creating the head-office tables")?;
    let client_id = a.client_id.clone().unwrap_or_else(|| match a.shard {
        Some(s) => format!("hq-ingest-{}", s.k),
        None => "hq-ingest".to_string(),
    });
    let mut o = a.broker.options(&client_id).await?;
    o.set_clean_session(false)
        .set_manual_acks(true)
        .set_inflight(1000);
    let (client, el) = AsyncClient::new(o, 4 * BATCH);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let poller = tokio::spawn(poll(el, tx));
    let events_filter = match &a.share {
        Some(g) => format!("$share/{g}/{}/+/events/#", a.root),
        None => format!("{}/+/events/#", a.root),
    };
    let states_filter = format!("{}/+/state", a.root);
    let deadline = a
        .duration
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let grace = Duration::from_secs(a.gap_grace);
    let mut totals = Totals::default();
    let mut batch = Batch::default();
    let mut flush_at: Option<tokio::time::Instant> = None;
    let mut gap_tick =
        tokio::time::interval(Duration::from_secs(1).min(grace.max(Duration::from_millis(100))));
    let stop = crate::core::shutdown_signal();
    tokio::pin!(stop);
    let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
    println!("ingest: {client_id} on {events_filter}");
    loop {
        tokio::select! {
            biased;
            () = &mut stop => break,
            () = tokio::time::sleep_until(deadline.unwrap_or_else(far)), if deadline.is_some() => break,
            () = tokio::time::sleep_until(flush_at.unwrap_or_else(far)), if flush_at.is_some() => {
                flush(&mut db, &client, &mut batch, &mut totals).await?;
                flush_at = None;
            }
            ev = rx.recv() => {
                let Some(ev) = ev else { break };
                match ev {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        client.subscribe(&events_filter, QoS::AtLeastOnce).await?;
                        client.subscribe(&states_filter, QoS::AtLeastOnce).await?;
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        // From here on the broker keeps this session's messages.
                        println!("ingest: subscribed");
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        take(&a, &mut batch, p);
                        if batch.len() >= BATCH {
                            flush(&mut db, &client, &mut batch, &mut totals).await?;
                            flush_at = None;
                        } else if flush_at.is_none() {
                            flush_at = Some(tokio::time::Instant::now() + FLUSH);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // Unacknowledged messages come again on the next connection.
                        tracing::warn!(error = %e, dropped = batch.len(), "ingest: broker connection lost");
                        batch = Batch::default();
                        flush_at = None;
                    }
                }
            }
            _ = gap_tick.tick() => {
                for (branch, first, last) in overdue_gaps(&mut db, grace).await? {
                    let cmd = json!({
                        "v": 1,
                        "id": format!("hq-rebirth-{branch}-{first}-{}", ulid::Ulid::new()),
                        "ts": crate::clock::rfc3339(Utc::now()),
                        "kind": "rebirth",
                        "data": {},
                    });
                    tracing::warn!(%branch, first, last, "ingest: a gap stayed open; asking for a rebirth");
                    client
                        .publish(format!("{}/{branch}/cmd", a.root), QoS::AtLeastOnce, false, cmd.to_string())
                        .await?;
                    totals.rebirths += 1;
                }
            }
        }
    }
    flush(&mut db, &client, &mut batch, &mut totals).await?;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(500), poller).await;
    println!(
        "ingest: {} events, {} duplicates, {} states, {} rejected, {} rebirths",
        totals.events, totals.duplicates, totals.states, totals.rejected, totals.rebirths
    );
    Ok(ExitCode::SUCCESS)
}

/// Sort one message into the batch (it is acknowledged with the batch).
fn take(a: &IngestArgs, batch: &mut Batch, p: Publish) {
    match parse(&a.root, &p.topic, &p.payload, a.shard) {
        Message::Event(e) => batch.events.push(e),
        Message::State(s) => batch.states.push(s),
        Message::Elsewhere => {}
        Message::Rejected { reason } => {
            let payload: String = String::from_utf8_lossy(&p.payload)
                .chars()
                .take(4096)
                .collect();
            batch.rejected.push((p.topic.clone(), reason, payload));
        }
    }
    batch.acks.push(p);
}

/// Write the batch, then acknowledge its messages.
async fn flush(
    db: &mut Db,
    client: &AsyncClient,
    batch: &mut Batch,
    totals: &mut Totals,
) -> anyhow::Result<()> {
    if batch.len() == 0 {
        return Ok(());
    }
    let t = db.write(batch).await.context("writing to PostgreSQL")?;
    totals.events += t.events;
    totals.duplicates += t.duplicates;
    totals.states += t.states;
    totals.rejected += t.rejected;
    for p in std::mem::take(batch).acks {
        client.ack(&p).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(topic: &str, v: Value) -> Message {
        parse("bank", topic, v.to_string().as_bytes(), None)
    }

    #[test]
    fn an_event_is_read_from_its_topic_and_envelope() {
        let m = ev(
            "bank/NJ0101/events/ticket/issued",
            json!({"v":1,"seq":7,"id":"01J","ts":"2026-12-06T09:00:00Z","branch":"NJ0101",
                   "kind":"ticket.issued","data":{"number":"A001"}}),
        );
        let Message::Event(e) = m else {
            panic!("{m:?}")
        };
        assert_eq!(
            (e.branch.as_str(), e.seq, e.kind.as_str()),
            ("NJ0101", 7, "ticket.issued")
        );
        assert_eq!(e.data["number"], "A001");
    }

    #[test]
    fn messages_off_the_contract_are_rejected_with_a_reason() {
        let good = json!({"v":1,"seq":7,"id":"01J","ts":"2026-12-06T09:00:00Z","branch":"NJ0101",
                          "kind":"ticket.issued","data":{}});
        let cases = [
            (
                "bank/NJ0101/events/ticket/called",
                good.clone(),
                "kind does not match",
            ),
            (
                "bank/NJ0102/events/ticket/issued",
                good.clone(),
                "branch does not match",
            ),
            (
                "bank/NJ0101/events/ticket/issued",
                json!({"kind":"ticket.issued","branch":"NJ0101","seq":0}),
                "positive `seq`",
            ),
            ("bank/NJ0101/telemetry", json!({}), "not an event"),
            ("bank/NJ0101/state", json!({"online": true}), "`session`"),
        ];
        for (topic, v, why) in cases {
            match ev(topic, v) {
                Message::Rejected { reason } => assert!(reason.contains(why), "{topic}: {reason}"),
                m => panic!("{topic}: {m:?}"),
            }
        }
        assert!(matches!(
            parse("bank", "bank/NJ0101/events/x", b"{not json", None),
            Message::Rejected { .. }
        ));
    }

    #[test]
    fn the_later_session_wins_and_within_one_the_will_wins() {
        assert!(supersedes(None, (1, true)));
        assert!(supersedes(Some((1, true)), (2, true)));
        assert!(supersedes(Some((2, false)), (3, true)));
        assert!(
            !supersedes(Some((3, true)), (2, false)),
            "an old Will arriving late"
        );
        assert!(
            supersedes(Some((3, true)), (3, false)),
            "the Will of the current session"
        );
        assert!(
            !supersedes(Some((3, false)), (3, true)),
            "a birth after its own Will"
        );
        assert!(supersedes(Some((3, true)), (3, true)), "a rebirth");
    }

    #[test]
    fn shards_split_the_branches_between_instances() {
        let branches: Vec<String> = (0..300).map(|i| format!("B{i:03}")).collect();
        let n = 3;
        let mut counts = [0; 3];
        for b in &branches {
            let owners: Vec<u32> = (0..n).filter(|k| Shard { k: *k, n }.owns(b)).collect();
            assert_eq!(owners.len(), 1, "{b} has exactly one owner");
            counts[owners[0] as usize] += 1;
        }
        assert!(counts.iter().all(|c| *c > 50), "{counts:?}");
        assert_eq!(parse_shard("1/3"), Ok(Shard { k: 1, n: 3 }));
        assert!(parse_shard("3/3").is_err());
        assert!(parse_shard("x").is_err());
    }
}
