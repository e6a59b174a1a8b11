//! Customers in the branch now (在线客户): head office's description of its customers (the
//! `customer.*` commands: name, level, risk tolerance, birthday, maturities, relationship
//! manager, and the salted hash of the ID number — never the number), and who of them is
//! in the branch today ([`presence`]).
//!
//! A customer is identified by the entrance camera (`vip.arrived`), by an ID card swipe
//! whose salted hash matches a record ([`Signal::CardSwiped`], [`id_hash`]), or by a ticket
//! taken with their id (`ticket.issued`). The list carries head office's marks — birthday
//! this week, a deposit or wealth product maturing within `[customers] maturity_days` —
//! and how long each has waited. It is personal data: only the roles that serve customers
//! read it ([`SERVING`]), events carry the customer id and never a name, and the day's rows
//! are deleted when the business day ends. So are the day's walk-in customers
//! ([`walkin`]): a customer without an order recorded from a confirmed ID card.

pub mod command;
pub mod demo;
mod http;
pub mod presence;
pub mod walkin;

use chrono::{Datelike, Duration as ChronoDuration, NaiveDate};
use hmac::{Hmac, Mac};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::json;
use sha2::Sha256;

use crate::clock::{business_day, rfc3339};
use crate::core::Core;
use crate::http::{Access, Route};
use crate::retention::Bounded;
use crate::signals::Signal;
use crate::store::{Schema, StoreError, Tx};
use crate::users::Role;
use crate::vips;

pub use command::{CustomerRecord, Maturity};
pub use presence::{Present, Via};

/// This module's tables.
pub const SCHEMA: Schema = Schema {
    module: "customers",
    steps: &[
        // 1: head office's customer records and the day's presence.
        "CREATE TABLE customers (
             customer_id TEXT PRIMARY KEY,
             id_hash TEXT UNIQUE,
             name TEXT NOT NULL,
             level TEXT,
             risk_level INTEGER,
             birthday TEXT,
             relationship_manager TEXT,
             maturities TEXT NOT NULL DEFAULT '[]',
             updated_at TEXT NOT NULL
         ) STRICT;
         CREATE TABLE customers_present (
             day TEXT NOT NULL,
             customer_id TEXT NOT NULL,
             arrived_at TEXT NOT NULL,
             via TEXT NOT NULL,
             ticket TEXT,
             ticket_at TEXT,
             called_at TEXT,
             left_at TEXT,
             PRIMARY KEY (day, customer_id)
         ) STRICT;
         CREATE INDEX customers_present_ticket ON customers_present(day, ticket);",
        // 2: walk-in customers of the day, from a confirmed ID card.
        walkin::STEP_2,
    ],
};

/// The customers' tables do not grow with use.
pub const BOUNDED: &[Bounded] = &[
    Bounded {
        table: "customers",
        why: "head office's records, deleted when it deletes them",
    },
    Bounded {
        table: "customers_present",
        why: "purged when each business day ends",
    },
    Bounded {
        table: "customers_walkin",
        why: "purged when each business day ends",
    },
];

/// This module's OpenAPI fragment.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The roles that serve customers: the only ones that see their personal data.
pub const SERVING: Access = Access::Roles(&[Role::LobbyManager, Role::BranchManager]);

/// The hash head office keys its customers by: HMAC-SHA256 of the ID number (upper-case,
/// trimmed) under the shared salt, as 64 lower-case hex digits.
pub fn id_hash(salt: &str, id_number: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(salt.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(id_number.trim().to_ascii_uppercase().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Apply head office's `customer.upsert` (`customer.upserted`, naming only the id).
pub fn upsert(tx: &mut Tx<'_>, c: &CustomerRecord, command: &str) -> Result<(), StoreError> {
    // A hash now given to this customer is nobody else's any more.
    if let Some(h) = &c.id_hash {
        tx.conn().execute(
            "UPDATE customers SET id_hash = NULL WHERE id_hash = ?1 AND customer_id <> ?2",
            params![h, c.customer_id],
        )?;
    }
    tx.conn().execute(
        "INSERT INTO customers(customer_id, id_hash, name, level, risk_level, birthday, \
             relationship_manager, maturities, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT(customer_id) DO UPDATE SET id_hash = excluded.id_hash, \
             name = excluded.name, level = excluded.level, risk_level = excluded.risk_level, \
             birthday = excluded.birthday, relationship_manager = excluded.relationship_manager, \
             maturities = excluded.maturities, updated_at = excluded.updated_at",
        params![
            c.customer_id,
            c.id_hash,
            c.name,
            c.level,
            c.risk_level,
            c.birthday.map(|(m, d)| format!("{m:02}-{d:02}")),
            c.relationship_manager,
            serde_json::to_string(&c.maturities)?,
            rfc3339(tx.now()),
        ],
    )?;
    tx.emit(
        "customer.upserted",
        json!({"customer_id": c.customer_id, "command": command}),
    )?;
    Ok(())
}

/// Apply head office's `customer.delete` (`customer.deleted` when there was a record).
pub fn delete(tx: &mut Tx<'_>, customer_id: &str, command: &str) -> Result<(), StoreError> {
    let n = tx.conn().execute(
        "DELETE FROM customers WHERE customer_id = ?1",
        [customer_id],
    )?;
    if n > 0 {
        tx.emit(
            "customer.deleted",
            json!({"customer_id": customer_id, "command": command}),
        )?;
    }
    Ok(())
}

/// What the box knows of a customer: head office's record, or else the VIP record.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Customer id.
    pub customer_id: String,
    /// Name.
    pub name: String,
    /// Level.
    pub level: Option<String>,
    /// Risk tolerance 1–5 (`C1`–`C5`).
    pub risk_level: Option<u8>,
    /// Birthday (month, day).
    pub birthday: Option<(u32, u32)>,
    /// Relationship manager.
    pub relationship_manager: Option<String>,
    /// Maturing products.
    pub maturities: Vec<Maturity>,
    /// Salted hash of the ID number.
    pub id_hash: Option<String>,
}

/// The profile of `customer_id`, if the box knows them.
pub fn profile(c: &Connection, customer_id: &str) -> Result<Option<Profile>, StoreError> {
    let rec = c
        .query_row(
            "SELECT name, level, risk_level, birthday, relationship_manager, maturities, id_hash \
             FROM customers WHERE customer_id = ?1",
            [customer_id],
            |r| {
                Ok(Profile {
                    customer_id: customer_id.to_string(),
                    name: r.get(0)?,
                    level: r.get(1)?,
                    risk_level: r.get::<_, Option<i64>>(2)?.map(|v| v as u8),
                    birthday: r.get::<_, Option<String>>(3)?.and_then(|b| {
                        let (m, d) = b.split_once('-')?;
                        Some((m.parse().ok()?, d.parse().ok()?))
                    }),
                    relationship_manager: r.get(4)?,
                    maturities: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                    id_hash: r.get(6)?,
                })
            },
        )
        .optional()?;
    if let Some(mut p) = rec {
        if (p.level.is_none() || p.relationship_manager.is_none())
            && let Some(v) = vips::get(c, customer_id)?
        {
            p.level = p.level.or(Some(v.level));
            p.relationship_manager = p.relationship_manager.or(v.relationship_manager);
        }
        return Ok(Some(p));
    }
    Ok(vips::get(c, customer_id)?.map(|v| Profile {
        customer_id: v.customer_id,
        name: v.name,
        level: Some(v.level),
        risk_level: None,
        birthday: None,
        relationship_manager: v.relationship_manager,
        maturities: Vec::new(),
        id_hash: None,
    }))
}

/// The customer whose ID number hashes to `hash`.
pub fn by_hash(c: &Connection, hash: &str) -> Result<Option<String>, StoreError> {
    Ok(c.query_row(
        "SELECT customer_id FROM customers WHERE id_hash = ?1",
        [hash],
        |r| r.get(0),
    )
    .optional()?)
}

/// A mark on a customer's card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mark {
    /// `birthday`, `deposit_maturing` or `wealth_maturing`.
    pub kind: &'static str,
    /// The day (this year's birthday, the maturity date).
    pub date: NaiveDate,
    /// Days from today (0: today).
    pub days: i64,
    /// The maturing product, when head office named it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
}

/// Head office's marks on `p` as of `today`: a birthday in this week (Monday to Sunday),
/// deposits and wealth products maturing within `maturity_days` days.
pub fn marks(p: &Profile, today: NaiveDate, maturity_days: u32) -> Vec<Mark> {
    let mut out = Vec::new();
    if let Some((m, d)) = p.birthday {
        let monday =
            today - ChronoDuration::days(i64::from(today.weekday().num_days_from_monday()));
        let sunday = monday + ChronoDuration::days(6);
        // The week may span two years; 29 February falls on the 28th in other years.
        for year in [monday.year(), sunday.year()] {
            let date = NaiveDate::from_ymd_opt(year, m, d)
                .or_else(|| NaiveDate::from_ymd_opt(year, m, d - 1));
            if let Some(date) = date.filter(|x| (monday..=sunday).contains(x))
                && !out.iter().any(|x: &Mark| x.date == date)
            {
                out.push(Mark {
                    kind: "birthday",
                    date,
                    days: (date - today).num_days(),
                    product: None,
                });
            }
        }
    }
    let last = today + ChronoDuration::days(i64::from(maturity_days));
    for m in &p.maturities {
        if (today..=last).contains(&m.date) {
            out.push(Mark {
                kind: if m.kind == "wealth" {
                    "wealth_maturing"
                } else {
                    "deposit_maturing"
                },
                date: m.date,
                days: (m.date - today).num_days(),
                product: m.product.clone(),
            });
        }
    }
    out
}

/// The customers module's handle.
#[derive(Debug, Clone)]
pub struct Customers {
    core: Core,
}

impl Customers {
    /// The customers module.
    pub fn new(core: &Core) -> Customers {
        Customers { core: core.clone() }
    }

    /// Start the presence consumer, the card-swipe listener and the end-of-day purge.
    pub fn start(&self) {
        let core = &self.core;
        let cfg = core.cfg.clone();
        core.spawn(crate::store::consume(
            core.store.clone(),
            presence::CONSUMER,
            core.cancel.clone(),
            presence::wants,
            move |tx, ev| presence::on_event(tx, &cfg, ev),
        ));
        // Subscribe now, so no swipe after start is missed.
        let rx = core.signals.subscribe();
        core.spawn(self.clone().swipes(rx));
        core.spawn(presence::run_purge(
            core.store.clone(),
            core.cfg.clone(),
            core.clock,
            core.cancel.clone(),
        ));
    }

    /// The routes (see `http.rs`).
    pub fn routes(&self) -> Vec<Route> {
        http::routes(self)
    }

    /// ID card swipes: a card whose salted hash head office knows identifies its holder.
    async fn swipes(self, mut rx: tokio::sync::broadcast::Receiver<Signal>) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let sig = tokio::select! {
                () = self.core.cancel.cancelled() => return,
                s = rx.recv() => s,
            };
            match sig {
                Ok(Signal::CardSwiped {
                    reader,
                    id_number,
                    valid: true,
                    ..
                }) => {
                    if let Err(e) = self.swiped(&id_number).await {
                        tracing::warn!(%reader, error = %e, "cannot look up the card's holder");
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "card swipes missed"),
                Err(RecvError::Closed) => return,
            }
        }
    }

    async fn swiped(&self, id_number: &str) -> Result<(), StoreError> {
        let Some(salt) = &self.core.cfg.customers.id_salt else {
            return Ok(());
        };
        // Only the hash goes further; the number itself is dropped here.
        let hash = id_hash(salt, id_number);
        let now = self.core.clock.now();
        let day = business_day(&self.core.cfg, now);
        self.core
            .store
            .write(move |tx| {
                if let Some(customer) = by_hash(tx.conn(), &hash)? {
                    presence::identified(tx, &day, &customer, Via::IdCard, now, None)?;
                }
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests;
