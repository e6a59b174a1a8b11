//! Who is in the branch today: each customer identified by the entrance camera
//! (`vip.arrived`), an ID card swipe (the salted hash head office pushed), or a ticket
//! taken with a customer id — one row per customer and business day, with the ticket and
//! when it was called. The rows are personal data of the day: they are deleted when the
//! business day ends ([`run_purge`]).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Mark, Profile, marks, profile};
use crate::clock::{Clock, business_date, business_day, next_business_day, parse, rfc3339};
use crate::config::Config;
use crate::store::{Event, Store, StoreError, Tx};

crate::store::text_enum! {
    /// How a customer was identified.
    pub enum Via {
        /// The entrance camera recognised an enrolled VIP.
        Face = "face",
        /// An ID card on a lobby reader matched head office's hashed ID.
        IdCard = "id_card",
        /// A ticket was taken with the customer's id.
        Ticket = "ticket",
    }
}

/// The durable consumer that turns arrivals and tickets into presence.
pub const CONSUMER: &str = "customers.presence";

/// Whether the presence consumer handles `ev`.
pub fn wants(ev: &Event) -> bool {
    match ev.kind.as_str() {
        "vip.arrived" => ev.data.get("customer_id").is_some_and(|v| v.is_string()),
        "ticket.issued" => ev.data.get("customer_id").is_some_and(|v| v.is_string()),
        "ticket.called" | "ticket.served" | "ticket.no_show" => true,
        _ => false,
    }
}

/// Apply one wanted event: an arrival, a ticket, a call or the end of a service. Events
/// of an earlier business day (handled late, after a restart) are ignored: that day's
/// presence is gone.
pub fn on_event(tx: &mut Tx<'_>, cfg: &Config, ev: &Event) -> Result<(), StoreError> {
    let day = business_day(cfg, ev.ts);
    if day != business_day(cfg, tx.now()) {
        return Ok(());
    }
    let text = |k: &str| ev.data.get(k).and_then(|v| v.as_str()).map(str::to_string);
    match ev.kind.as_str() {
        "vip.arrived" => {
            let Some(customer) = text("customer_id") else {
                return Ok(());
            };
            let at = text("seen_at").and_then(|s| parse(&s)).unwrap_or(ev.ts);
            identified(tx, &day, &customer, Via::Face, at, None)?;
        }
        "ticket.issued" => {
            let (Some(customer), Some(number)) = (text("customer_id"), text("number")) else {
                return Ok(());
            };
            identified(tx, &day, &customer, Via::Ticket, ev.ts, Some(&number))?;
        }
        kind => {
            let Some(number) = text("number") else {
                return Ok(());
            };
            let column = if kind == "ticket.called" {
                "called_at"
            } else {
                "left_at"
            };
            tx.conn().execute(
                &format!(
                    "UPDATE customers_present SET {column} = coalesce({column}, ?3) \
                     WHERE day = ?1 AND ticket = ?2"
                ),
                params![day, number, rfc3339(ev.ts)],
            )?;
        }
    }
    Ok(())
}

/// Record that `customer_id` was identified on `day` (`customer.arrived` the first time
/// that day, `customer.identified` when a new way or a ticket is added). Returns whether
/// it was the first time.
pub fn identified(
    tx: &mut Tx<'_>,
    day: &str,
    customer_id: &str,
    via: Via,
    at: DateTime<Utc>,
    ticket: Option<&str>,
) -> Result<bool, StoreError> {
    let row: Option<(String, Option<String>)> = tx
        .conn()
        .query_row(
            "SELECT via, ticket FROM customers_present WHERE day = ?1 AND customer_id = ?2",
            params![day, customer_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let at_s = rfc3339(at);
    let Some((ways, had_ticket)) = row else {
        tx.conn().execute(
            "INSERT INTO customers_present(day, customer_id, arrived_at, via, ticket, ticket_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                day,
                customer_id,
                at_s,
                serde_json::to_string(&[via.as_str()])?,
                ticket,
                ticket.map(|_| at_s.clone())
            ],
        )?;
        let mut data = json!({"customer_id": customer_id, "via": via, "at": at_s});
        if let Some(t) = ticket {
            data["ticket"] = json!(t);
        }
        tx.emit("customer.arrived", data)?;
        return Ok(true);
    };
    let mut ways: Vec<String> = serde_json::from_str(&ways).unwrap_or_default();
    let new_way = !ways.iter().any(|w| w == via.as_str());
    if new_way {
        ways.push(via.as_str().to_string());
    }
    // A later ticket of the same customer replaces the first (she took another).
    let new_ticket = ticket.filter(|t| had_ticket.as_deref() != Some(*t));
    if !new_way && new_ticket.is_none() {
        return Ok(false);
    }
    tx.conn().execute(
        "UPDATE customers_present SET via = ?3, \
             ticket = coalesce(?4, ticket), \
             ticket_at = CASE WHEN ?4 IS NULL THEN ticket_at ELSE ?5 END, \
             called_at = CASE WHEN ?4 IS NULL THEN called_at ELSE NULL END, \
             left_at = CASE WHEN ?4 IS NULL THEN left_at ELSE NULL END \
         WHERE day = ?1 AND customer_id = ?2",
        params![
            day,
            customer_id,
            serde_json::to_string(&ways)?,
            new_ticket,
            at_s
        ],
    )?;
    let mut data = json!({"customer_id": customer_id, "via": via, "at": at_s});
    if let Some(t) = new_ticket {
        data["ticket"] = json!(t);
    }
    tx.emit("customer.identified", data)?;
    Ok(false)
}

/// Delete every presence row and walk-in customer of a business day before `today`
/// (`customers.purged` when there were any). Returns how many presence rows went.
pub fn purge(tx: &mut Tx<'_>, today: &str) -> Result<usize, StoreError> {
    let n = tx
        .conn()
        .execute("DELETE FROM customers_present WHERE day < ?1", [today])?;
    let walk_ins = super::walkin::purge(tx, today)?;
    if n > 0 || walk_ins > 0 {
        tx.emit(
            "customers.purged",
            json!({"day": today, "removed": n, "walk_ins": walk_ins}),
        )?;
    }
    Ok(n)
}

/// Delete the day's presence when each business day ends (and at start, what an earlier
/// day left), until `cancel`.
pub async fn run_purge(
    store: Store,
    cfg: std::sync::Arc<Config>,
    clock: Clock,
    cancel: CancellationToken,
) {
    loop {
        let now = clock.now();
        let today = business_day(&cfg, now);
        let r = store.write(move |tx| purge(tx, &today).map(|_| ())).await;
        match r {
            Ok(()) => {}
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot delete the presence of an earlier day; retrying");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(60)) => continue,
                }
            }
        }
        let next = next_business_day(&cfg, now);
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep_until(clock.instant_at(next)) => {}
        }
    }
}

/// A customer in the branch today, as the PAD lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Present {
    /// Head office's customer id.
    pub customer_id: String,
    /// Name (absent when head office has not described the customer).
    pub name: Option<String>,
    /// Level.
    pub level: Option<String>,
    /// Assessed risk tolerance, `C1`–`C5`.
    pub risk_level: Option<String>,
    /// Relationship manager.
    pub relationship_manager: Option<String>,
    /// How the customer was identified, first way first.
    pub via: Vec<Via>,
    /// When first identified today.
    pub arrived_at: String,
    /// The ticket taken, if any.
    pub ticket: Option<String>,
    /// When the ticket was taken.
    pub ticket_at: Option<String>,
    /// When the ticket was called.
    pub called_at: Option<String>,
    /// When the service ended (served or no-show).
    pub left_at: Option<String>,
    /// `arrived`, `waiting`, `called` or `left`.
    pub state: &'static str,
    /// Seconds waited: from arrival to the call (or to now while waiting).
    pub waited_s: u64,
    /// Birthday this week, deposits and wealth maturing soon.
    pub marks: Vec<Mark>,
}

/// Everyone identified on business day `day` with their profile and marks, first
/// arrivals first.
pub fn list(
    c: &Connection,
    day: &str,
    today: NaiveDate,
    now: DateTime<Utc>,
    maturity_days: u32,
) -> Result<Vec<Present>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT customer_id, arrived_at, via, ticket, ticket_at, called_at, left_at \
         FROM customers_present WHERE day = ?1 ORDER BY arrived_at, customer_id",
    )?;
    let rows = stmt.query_map([day], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, Option<String>>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (customer_id, arrived_at, via, ticket, ticket_at, called_at, left_at) = row?;
        let p: Option<Profile> = profile(c, &customer_id)?;
        let via: Vec<Via> = serde_json::from_str::<Vec<String>>(&via)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.parse().ok())
            .collect();
        let start = parse(&arrived_at).unwrap_or(now);
        let end = called_at.as_deref().and_then(parse).unwrap_or(now);
        let state = match (&ticket, &called_at, &left_at) {
            (_, _, Some(_)) => "left",
            (_, Some(_), None) => "called",
            (Some(_), None, None) => "waiting",
            (None, None, None) => "arrived",
        };
        out.push(Present {
            name: p.as_ref().map(|p| p.name.clone()),
            level: p.as_ref().and_then(|p| p.level.clone()),
            risk_level: p
                .as_ref()
                .and_then(|p| p.risk_level)
                .map(|r| format!("C{r}")),
            relationship_manager: p.as_ref().and_then(|p| p.relationship_manager.clone()),
            marks: p
                .as_ref()
                .map(|p| marks(p, today, maturity_days))
                .unwrap_or_default(),
            customer_id,
            via,
            arrived_at,
            ticket,
            ticket_at,
            called_at,
            left_at,
            state,
            waited_s: crate::clock::secs_between(start, end),
        });
    }
    Ok(out)
}

/// Today's presence for `cfg` at `now`.
pub fn today(c: &Connection, cfg: &Config, now: DateTime<Utc>) -> Result<Vec<Present>, StoreError> {
    list(
        c,
        &business_day(cfg, now),
        business_date(cfg, now),
        now,
        cfg.customers.maturity_days,
    )
}

/// Whether `customer_id` has been identified on business day `day`.
pub fn is_present(c: &Connection, day: &str, customer_id: &str) -> Result<bool, StoreError> {
    Ok(c.query_row(
        "SELECT 1 FROM customers_present WHERE day = ?1 AND customer_id = ?2",
        params![day, customer_id],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}
