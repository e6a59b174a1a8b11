//! The lobby queue and the ticket printer.
//!
//! - [`policy`]: the call order (priority classes, weight × wait, fairness, manual moves) and
//!   the `why` of every position — a pure function, tested by tables;
//! - [`tickets`]: the ticket row, its states and the queue's errors;
//! - [`counters`]: counter sessions (which counter is open, with whom, since when);
//! - [`order`]: the waiting tickets in call order with their estimated waits;
//! - [`ops`]: every operation, each one transaction with its `ticket.*` event;
//! - [`view`]: the whole queue for the PAD, and its figures for statistics and telemetry;
//! - [`waits`]: wait alerts at the target and twice the target, timed from stored issue times;
//! - [`urges`]: an urged order's waiting ticket moves up one priority step (`ticket.urged`),
//!   following `order.urged` on the event stream;
//! - [`printer`]: the ESC/POS printer task (status polling, alerts, printing);
//! - [`link`]: the signed customer link in the QR code of tickets and receipts;
//! - [`visit`]: the customer's page of their visit (public, rate-limited) and their
//!   rating of it, once (`ticket.rated`, or `order.rated` through the orders module);
//! - [`receipt`]: the receipt (回单) printed when an order is delivered, following
//!   `order.completed` on the event stream;
//! - `http`: the routes.
//!
//! Other modules issue tickets through the [`Queue`] handle; an ID card swipe
//! ([`Signal::CardSwiped`]) issues one for `[queue] swipe_service`, carrying the customer's
//! id when head office's hashed-ID mapping knows the card ([`crate::customers::by_hash`]).

mod http;
/// The JSON bodies of this module's routes, public for the fuzz targets (agent/fuzz).
#[doc(hidden)]
pub use http::{IssueBody, KioskIssueBody, MoveBody, OpenBody, TransferBody};
pub mod counters;
pub mod link;
pub mod ops;
pub mod order;
pub mod policy;
pub mod printer;
pub mod receipt;
pub mod tickets;
pub mod urges;
pub mod view;
pub mod visit;
pub mod waits;

use std::any::Any;
use std::sync::{Arc, OnceLock};

use branchd_drivers::printer::Ticket as PaperTicket;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::config::{Config, DeviceKind};
use crate::core::Core;
use crate::retention::{Bounded, Cutoff, Rule};
use crate::signals::Signal;
use crate::store::{Schema, Tx};

pub use ops::{Issued, TicketView, TransferTo};
pub use tickets::{IssueRequest, QueueError, Source, TicketState};
pub use view::QueueView;

/// This module's tables.
pub const SCHEMA: Schema = Schema {
    module: "queue",
    steps: &[
        // 1: daily numbers, tickets, call counters, recorded service times.
        "CREATE TABLE queue_numbers (
             service TEXT NOT NULL,
             day TEXT NOT NULL,
             last INTEGER NOT NULL,
             PRIMARY KEY (service, day)
         ) STRICT;
         CREATE TABLE queue_tickets (
             id INTEGER PRIMARY KEY,
             number TEXT NOT NULL,
             day TEXT NOT NULL,
             service TEXT NOT NULL,
             state TEXT NOT NULL,
             priority INTEGER NOT NULL DEFAULT 0,
             customer_level TEXT,
             customer_id TEXT,
             appointment_id TEXT,
             source TEXT NOT NULL,
             issued_at TEXT NOT NULL,
             counter TEXT,
             target_counter TEXT,
             called_at TEXT,
             finished_at TEXT,
             recalls INTEGER NOT NULL DEFAULT 0,
             transferred_from TEXT,
             moved_pos INTEGER,
             moved_calls INTEGER,
             moved_at TEXT,
             moved_by TEXT,
             moved_reason TEXT,
             printed INTEGER NOT NULL DEFAULT 0,
             alert_level INTEGER NOT NULL DEFAULT 0
         ) STRICT;
         CREATE UNIQUE INDEX queue_tickets_number ON queue_tickets(day, number);
         CREATE INDEX queue_tickets_open ON queue_tickets(day, state)
             WHERE state IN ('waiting', 'called');
         CREATE TABLE queue_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
         CREATE TABLE queue_service_times (
             id INTEGER PRIMARY KEY,
             service TEXT NOT NULL,
             served_s REAL NOT NULL,
             ts TEXT NOT NULL
         ) STRICT;
         CREATE INDEX queue_service_times_service ON queue_service_times(service, id);",
        // 2: counter sessions: a counter is open while a member of staff is at it.
        "CREATE TABLE queue_counter_sessions (
             id INTEGER PRIMARY KEY,
             counter TEXT NOT NULL,
             staff TEXT NOT NULL,
             opened_at TEXT NOT NULL,
             closed_at TEXT,
             served INTEGER
         ) STRICT;
         CREATE UNIQUE INDEX queue_counter_sessions_open ON queue_counter_sessions(counter)
             WHERE closed_at IS NULL;",
        // 3: the customer's rating of a served ticket, and the box's own key that signs
        // the customer links (made here once, from SQLite's randomness, which the
        // operating system seeds; it never leaves the box).
        "ALTER TABLE queue_tickets ADD COLUMN rating INTEGER;
         ALTER TABLE queue_tickets ADD COLUMN rating_tags TEXT;
         ALTER TABLE queue_tickets ADD COLUMN rated_at TEXT;
         CREATE TABLE queue_link_key (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             key BLOB NOT NULL CHECK (length(key) = 32)
         ) STRICT;
         INSERT INTO queue_link_key(id, key) VALUES (1, randomblob(32));",
        // 4: the visit a ticket belongs to: one id from issue to rating, on every ticket
        // event, so head office can follow a customer's journey (tickets issued before this
        // step get one of their own).
        "ALTER TABLE queue_tickets ADD COLUMN visit_id TEXT;
         UPDATE queue_tickets SET visit_id = lower(hex(randomblob(16))) WHERE visit_id IS NULL;",
        // 5: the wait-alert timer's question, "the longest-waiting ticket of each service
        // at each alert level", answered from an index.
        "CREATE INDEX queue_tickets_due ON queue_tickets(day, service, alert_level, issued_at)
             WHERE state = 'waiting';",
    ],
};

/// Past days' tickets go after `[retention] tickets_days`; the statistics keep their
/// roll-ups. Closed counter sessions go after the same period; an open one stays.
pub const RETENTION: &[Rule] = &[
    Rule {
        table: "queue_tickets",
        old: "day < ?1",
        cutoff: Cutoff::Day,
        keep: |c| c.retention.tickets,
    },
    Rule {
        table: "queue_numbers",
        old: "day < ?1",
        cutoff: Cutoff::Day,
        keep: |c| c.retention.tickets,
    },
    Rule {
        table: "queue_service_times",
        old: "ts < ?1",
        cutoff: Cutoff::Time,
        keep: |c| c.retention.tickets,
    },
    Rule {
        table: "queue_counter_sessions",
        old: "closed_at < ?1",
        cutoff: Cutoff::Time,
        keep: |c| c.retention.tickets,
    },
];

/// The queue's tables that do not grow with use.
pub const BOUNDED: &[Bounded] = &[
    Bounded {
        table: "queue_state",
        why: "a few counters of the queue's own state",
    },
    Bounded {
        table: "queue_link_key",
        why: "one row: the key that signs customer links",
    },
];

/// This module's OpenAPI fragment.
pub const OPENAPI: &str = include_str!("openapi.json");
/// The customer page's routes ([`visit`]).
pub const VISIT_OPENAPI: &str = include_str!("visit.openapi.json");

/// The queue's handle: cheap to clone, shared by the routes, the tasks and the modules that
/// issue tickets.
#[derive(Debug, Clone)]
pub struct Queue {
    core: Core,
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Woken on every queue change (the wait-alert timer recomputes).
    changed: Notify,
    printer: OnceLock<printer::PrinterHandle>,
    /// The key of the customer links, once read.
    link_key: visit::LinkKey,
    /// The public routes' requests per client.
    limit: visit::RateLimit,
}

impl Queue {
    /// The queue of the configured services and counters.
    pub fn new(core: &Core) -> Queue {
        Queue {
            core: core.clone(),
            inner: Arc::default(),
        }
    }

    /// Start the printer task, the wait-alert timer and the card-swipe listener.
    pub fn start(&self) {
        let cfg = &self.core.cfg;
        if let Some(dev) = cfg.devices.iter().find(|d| d.kind == DeviceKind::Printer) {
            let _ = self.inner.printer.set(printer::start(&self.core, dev));
        }
        self.core.spawn(waits::run(self.clone()));
        self.core.spawn(crate::store::consume(
            self.core.store.clone(),
            urges::URGES,
            self.core.cancel.clone(),
            urges::is_urge,
            |tx, ev| urges::urged(tx, ev).map(|_| ()),
        ));
        self.core.spawn(receipt::run(self.clone()));
        // Subscribe now, so no swipe after start is missed.
        let rx = self.core.signals.subscribe();
        self.core.spawn(self.clone().swipes(rx));
    }

    /// The queue's time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.core.clock.now()
    }

    /// The validated config.
    pub fn cfg(&self) -> &Config {
        &self.core.cfg
    }

    /// The ticket printer, if one is configured.
    pub fn printer(&self) -> Option<&printer::PrinterHandle> {
        self.inner.printer.get()
    }

    /// Issue a ticket (any module may): one transaction with `ticket.issued`, then the
    /// paper ticket; a ticket that cannot be printed is still issued, with `printed: false`.
    pub async fn issue(&self, req: IssueRequest) -> Result<Issued, QueueError> {
        let (store, cfg) = (&self.core.store, self.core.config());
        let now = self.now();
        let mut issued = store
            .write(move |tx| ops::issue(tx, &cfg, now, &req))
            .await?;
        self.inner.changed.notify_one();
        if let Some(p) = self.printer() {
            let qr = self.ticket_qr(&issued.day, &issued.number, now).await?;
            let result = p
                .print(paper(&self.core.config(), &issued, qr).render(p.encoding))
                .await;
            let cfg = self.core.config();
            let number = issued.number.clone();
            let printed = result.is_ok();
            let reason = result.err();
            store
                .write(move |tx| {
                    ops::set_printed(tx, &cfg, now, &number, printed, reason.as_deref(), false)
                })
                .await?;
            issued.printed = printed;
        }
        Ok(issued)
    }

    /// Print a ticket again (after the printer is back): `ticket.reprint`. Refused,
    /// changing nothing, while the printer cannot print.
    pub async fn reprint(&self, number: &str) -> Result<TicketView, QueueError> {
        let p = self.printer().ok_or(QueueError::NoPrinter)?;
        let cfg = self.core.config();
        let now = self.now();
        let n = number.to_string();
        let (snapshot, ticket) = self
            .core
            .store
            .read(move |c| -> Result<_, QueueError> {
                let t = tickets::find(c, &crate::clock::business_day(&cfg, now), &n)?;
                Ok((view::snapshot(c, &cfg, now)?, t))
            })
            .await?;
        if !ticket.state.is_open() {
            return Err(QueueError::WrongState {
                number: ticket.number,
                state: ticket.state,
                needed: "only a waiting or called ticket can be reprinted",
            });
        }
        let w = snapshot.waiting.iter().find(|w| w.number == ticket.number);
        let issued = Issued {
            number: ticket.number.clone(),
            service: ticket.service.clone(),
            position: w.map_or(0, |w| w.position),
            people_ahead: w.map_or(0, |w| w.position.saturating_sub(1)),
            estimated_wait_s: w.map_or(0, |w| w.estimated_wait_s),
            estimate_basis: w.map_or(order::EstimateBasis::Configured, |w| w.estimate_basis),
            priority: ticket.priority,
            issued_at: crate::clock::rfc3339(ticket.issued_at),
            printed: ticket.printed,
            why: Vec::new(),
            day: ticket.day.clone(),
        };
        let qr = self.ticket_qr(&issued.day, &issued.number, now).await?;
        p.print(paper(&self.core.config(), &issued, qr).render(p.encoding))
            .await
            .map_err(QueueError::PrinterUnavailable)?;
        let cfg = self.core.config();
        let n = ticket.number.clone();
        self.core
            .store
            .write(move |tx| ops::set_printed(tx, &cfg, now, &n, true, None, true))
            .await?;
        let mut t = ticket;
        t.printed = true;
        Ok(ops::view(&t, now, None))
    }

    /// The QR code of a paper ticket: the URL of the customer's page of the ticket.
    async fn ticket_qr(
        &self,
        day: &str,
        number: &str,
        now: DateTime<Utc>,
    ) -> Result<String, QueueError> {
        let (token, _) = self
            .customer_url(link::Kind::Ticket, &link::ticket_id(day, number), now)
            .await?;
        Ok(link::url(&self.core.config(), &token))
    }

    /// Run one queue operation in a transaction and wake the alert timer.
    pub async fn operate<R, F>(&self, f: F) -> Result<R, QueueError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx<'_>, &Config, DateTime<Utc>) -> Result<R, QueueError> + Send + 'static,
    {
        let cfg = self.core.config();
        let now = self.now();
        let r = self.core.store.write(move |tx| f(tx, &cfg, now)).await?;
        self.inner.changed.notify_one();
        Ok(r)
    }

    /// The queue now, in call order.
    pub async fn snapshot(&self) -> Result<QueueView, QueueError> {
        let cfg = self.core.config();
        let now = self.now();
        self.core
            .store
            .read(move |c| view::snapshot(c, &cfg, now))
            .await
    }

    /// ID card swipes on lobby readers issue a ticket for `[queue] swipe_service`, with the
    /// priority of the customer's booked order when there is one.
    async fn swipes(self, mut rx: tokio::sync::broadcast::Receiver<Signal>) {
        loop {
            let sig = tokio::select! {
                _ = self.core.cancel.cancelled() => return,
                s = rx.recv() => s,
            };
            match sig {
                Ok(Signal::CardSwiped {
                    reader,
                    valid,
                    id_number,
                    ..
                }) => self.swiped(&reader, valid, id_number).await,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "card swipes missed");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    async fn swiped(&self, reader: &str, valid: bool, id_number: String) {
        if !valid {
            tracing::info!(%reader, "card swipe with an invalid ID number: no ticket");
            return;
        }
        let cfg = &self.core.cfg;
        let Some(service) = cfg
            .queue
            .swipe_service
            .clone()
            .or_else(|| cfg.services.first().map(|s| s.code.clone()))
        else {
            return;
        };
        // A customer with a booked order gets the appointment's priority, and the order is
        // linked to the ticket (the orders module follows `ticket.issued`). A card head
        // office knows by its salted hash names the customer, and their level gives the
        // ticket its priority: the VIP record's level, or else the level head office gave
        // the customer (`customer.upsert`) when it is a queue level.
        let hash = cfg
            .customers
            .id_salt
            .as_deref()
            .map(|salt| crate::customers::id_hash(salt, &id_number));
        let (appointment_id, customer_id, customer_level) = match self
            .core
            .store
            .read(move |c| -> Result<_, crate::store::StoreError> {
                let order = crate::orders::order_for_customer(c, &id_number)?;
                let customer = match &hash {
                    Some(h) => crate::customers::by_hash(c, h)?,
                    None => None,
                };
                let level = match &customer {
                    Some(id) if crate::vips::queue_level(c, id)?.is_none() => {
                        crate::customers::profile(c, id)?
                            .and_then(|p| p.level)
                            .filter(|l| crate::vips::tier(l).is_ok())
                    }
                    _ => None,
                };
                Ok((order, customer, level))
            })
            .await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(%reader, error = %e, "cannot look up the customer's orders");
                (None, None, None)
            }
        };
        let source = if appointment_id.is_some() {
            Source::Appointment
        } else {
            Source::Card
        };
        let req = IssueRequest {
            service,
            customer_id,
            customer_level,
            appointment_id,
            source,
        };
        match self.issue(req).await {
            Ok(t) => tracing::info!(%reader, number = %t.number, "ticket from a card swipe"),
            Err(e) => tracing::warn!(%reader, error = %e, "no ticket for a card swipe"),
        }
    }
}

/// The paper ticket of an issued ticket, with `qr_data` in its QR code (the URL of the
/// customer's page).
pub fn paper(cfg: &Config, t: &Issued, qr_data: String) -> PaperTicket {
    let svc = cfg.service(&t.service);
    let issued_local = crate::clock::parse(&t.issued_at)
        .map(|d| {
            d.with_timezone(&cfg.branch.utc_offset)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default();
    PaperTicket {
        bank_name: cfg.branch.bank_name.clone(),
        branch_name: cfg.branch.name.clone(),
        service_zh: svc.map_or_else(|| t.service.clone(), |s| s.name.clone()),
        service_en: svc.map_or_else(|| t.service.clone(), |s| s.name_en.clone()),
        number: t.number.clone(),
        people_ahead: t.people_ahead as u32,
        estimated_wait_min: t.estimated_wait_s.div_ceil(60) as u32,
        issued_at: issued_local,
        qr_data,
    }
}

/// Demo set-up: a printer simulator on a pseudo-terminal, as `[[devices]]` `PRN-01`.
pub fn demo_prepare(doc: &mut toml_edit::DocumentMut) -> anyhow::Result<Vec<Box<dyn Any + Send>>> {
    use anyhow::Context as _;
    use branchd_drivers::printer::{TextEncoding, sim::PrinterSim};
    let sim = PrinterSim::spawn(TextEncoding::Gb18030, None)
        .context("cannot start the printer simulator")?;
    let mut t = toml_edit::Table::new();
    t["id"] = toml_edit::value("PRN-01");
    t["kind"] = toml_edit::value("printer");
    t["path"] = toml_edit::value(sim.path().display().to_string());
    t["encoding"] = toml_edit::value("gb18030");
    let devices = doc
        .entry("devices")
        .or_insert(toml_edit::Item::ArrayOfTables(
            toml_edit::ArrayOfTables::new(),
        ));
    devices
        .as_array_of_tables_mut()
        .context("`devices` in the demo config is not an array of tables")?
        .push(t);
    Ok(vec![Box::new(sim)])
}

/// The demo's counter staff: (counter, user name). The demo creates their accounts and
/// opens each counter with its member of staff at start, so the demo's lobby calls as soon
/// as it runs.
pub const DEMO_STAFF: &[(&str, &str)] = &[("1", "teller1"), ("2", "teller2"), ("3", "teller3")];

/// Demo set-up: open every configured counter that has a demo member of staff (a counter
/// already open, with whoever, stays as it is).
pub fn demo_open_counters(
    store: &crate::store::Store,
    cfg: &Config,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    for (counter, staff) in DEMO_STAFF {
        if !cfg.counters.iter().any(|k| k.id == *counter) {
            continue;
        }
        let c2 = cfg.clone();
        match store.write_blocking(move |tx| counters::open(tx, &c2, now, counter, staff)) {
            Ok(_) | Err(QueueError::CounterBusy { .. }) => {}
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("opening counter {counter}")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use branchd_drivers::printer::TextEncoding;

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    fn cfg() -> Config {
        crate::config::Config::parse(
            r#"
[branch]
id = "NJ0101"
name = "南京分行营业部"
bank_name = "示范银行"
data_dir = "unused"
[http]
listen = "127.0.0.1:0"
[[services]]
code = "personal"
prefix = "A"
name = "个人业务"
name_en = "Personal banking"
"#,
        )
        .unwrap()
    }

    fn issued() -> Issued {
        Issued {
            number: "A007".into(),
            service: "personal".into(),
            position: 4,
            people_ahead: 3,
            estimated_wait_s: 450,
            estimate_basis: order::EstimateBasis::Open,
            priority: 0,
            issued_at: "2026-11-23T01:05:00.000Z".into(),
            printed: false,
            why: Vec::new(),
            day: "2026-11-23".into(),
        }
    }

    #[test]
    fn the_demo_gets_a_printer_simulator_in_its_devices() {
        let mut doc: toml_edit::DocumentMut = crate::config::DEMO_CONFIG.parse().unwrap();
        let keep = demo_prepare(&mut doc).unwrap();
        assert_eq!(keep.len(), 1);
        let cfg = crate::config::Config::parse(&doc.to_string()).unwrap();
        let printer = cfg
            .devices
            .iter()
            .find(|d| d.kind == DeviceKind::Printer)
            .expect("a printer device");
        assert!(std::path::Path::new(&printer.path).exists());
        let mut p = branchd_drivers::printer::Printer::open_path(
            std::path::Path::new(&printer.path),
            printer.baud,
        )
        .unwrap();
        assert!(p.status().unwrap().online);
    }

    #[test]
    fn the_paper_ticket_holds_bank_branch_service_number_wait_local_time_and_id() {
        let t = paper(
            &cfg(),
            &issued(),
            "http://branchd.local:8443/c/dG9rZW4".into(),
        );
        assert_eq!(
            t.lines(),
            [
                "示范银行",
                "南京分行营业部",
                "个人业务 Personal banking",
                "A007",
                "前面还有 3 人 / 3 ahead",
                "预计等待 8 分钟 / about 8 min",
                "2026-11-23 09:05",
            ]
        );
        assert_eq!(t.qr_data, "http://branchd.local:8443/c/dG9rZW4");
    }

    #[test]
    fn golden_ticket_bytes_in_gb18030_with_the_qr_block_length() {
        let qr_data = "http://branchd.local:8443/c/dG9rZW4";
        let bytes = paper(&cfg(), &issued(), qr_data.into()).render(TextEncoding::Gb18030);
        // ESC @, centre, FS & (Chinese mode), bold, then 示范银行 in GB18030.
        let head: &[u8] = &[
            0x1B, 0x40, 0x1B, 0x61, 0x01, 0x1C, 0x26, 0x1B, 0x45, 0x01, 0xCA, 0xBE, 0xB7, 0xB6,
            0xD2, 0xF8, 0xD0, 0xD0, 0x0A,
        ];
        assert_eq!(&bytes[..head.len()], head);
        // 个人业务 in GB18030, then the English name.
        let service = [
            &[0xB8, 0xF6, 0xC8, 0xCB, 0xD2, 0xB5, 0xCE, 0xF1, 0x20][..],
            b"Personal banking\n",
        ]
        .concat();
        assert!(find(&bytes, &service).is_some());
        // The number at 4×4, bold.
        let big = [&[0x1D, 0x21, 0x33, 0x1B, 0x45, 0x01][..], b"A007\n"].concat();
        assert!(find(&bytes, &big).is_some());
        // QR store: pL pH = len(qr_data) + 3 = 38.
        let qr = [
            &[0x1D, 0x28, 0x6B, 38, 0x00, 0x31, 0x50, 0x30][..],
            qr_data.as_bytes(),
            &[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30],
        ]
        .concat();
        assert!(find(&bytes, &qr).is_some());
        assert!(bytes.ends_with(&[0x1B, 0x64, 0x04, 0x1D, 0x56, 0x01]));
        // Every byte parses as ESC/POS a printer understands.
        let mut rest = &bytes[..];
        while let Some((op, n)) = branchd_drivers::printer::sim::parse_op(rest) {
            assert!(
                !matches!(op, branchd_drivers::printer::sim::Op::Unknown(_)),
                "{op:?}"
            );
            rest = &rest[n..];
        }
        assert!(rest.is_empty());
    }
}
