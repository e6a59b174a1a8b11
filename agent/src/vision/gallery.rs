//! Arrivals in the database: the gallery of enrolled embeddings (read from the [`vips`]
//! records), each confirmed recognition (audited; a `vip.arrived` and an alert unless the
//! customer arrived within the period), and the link from an arrival to the ticket the
//! customer then takes.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use super::matcher::{Enrolled, Gallery};
use crate::alerts::{self, Level, NewAlert};
use crate::clock::{business_day, rfc3339};
use crate::config::Config;
use crate::store::{Event, StoreError, Tx};
use crate::{users, vips};

/// Every consenting customer's embedding made by `model_id`, normalised; embeddings of
/// the wrong length or all zeros are left out (and logged).
pub fn load(c: &Connection, model_id: &str, dim: usize) -> Result<Gallery, StoreError> {
    let mut entries = Vec::new();
    for (customer_id, v) in vips::embeddings(c, model_id)? {
        if v.len() != dim {
            tracing::warn!(%customer_id, len = v.len(), dim, "VIP embedding of the wrong length ignored");
            continue;
        }
        // head office's embeddings need not be normalised
        match super::engine::normalise(v) {
            Some(embedding) => entries.push(Enrolled {
                customer_id,
                embedding,
            }),
            None => tracing::warn!(%customer_id, "VIP embedding is zero; ignored"),
        }
    }
    Ok(Gallery { entries })
}

/// An arrival as listed to the PAD.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arrival {
    /// Row id.
    pub id: i64,
    /// Head office's customer id.
    pub customer_id: String,
    /// Name (from the VIP record; absent when the record has gone since).
    pub name: Option<String>,
    /// Level.
    pub level: Option<String>,
    /// Profile tags.
    pub tags: Vec<String>,
    /// Relationship manager.
    pub relationship_manager: Option<String>,
    /// Match cosine.
    pub confidence: f32,
    /// Which camera.
    pub camera: String,
    /// When it was recorded.
    pub ts: String,
    /// When the camera read the frame that confirmed it.
    pub seen_at: String,
    /// The ticket the customer took afterwards, once taken.
    pub ticket: Option<String>,
}

/// One confirmed sighting of an enrolled customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// Which camera.
    pub camera: String,
    /// Match cosine.
    pub confidence: f32,
    /// When the camera read the confirming frame.
    pub at: DateTime<Utc>,
}

/// What a confirmed recognition led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Recognised {
    /// A new arrival (event and alert raised).
    Arrived(Box<Arrival>),
    /// The customer already arrived within the period (audited only).
    Repeat,
    /// No VIP record any more (deleted meanwhile).
    Unknown,
}

/// Record one confirmed recognition: always an audit record; a `vip.arrived` event and an
/// alert unless the customer already arrived within `period`. The alert is for the lobby
/// managers and, when the relationship manager is a user of this box, for them by name
/// (`data.notify.users`). Neither carries the customer's name, tags or relationship
/// manager: staff read them through the arrivals route, and head office has its own records.
pub fn recognised(
    tx: &mut Tx<'_>,
    customer_id: &str,
    seen: &Seen,
    period: std::time::Duration,
    day: &str,
) -> Result<Recognised, StoreError> {
    let now = tx.now();
    let camera = seen.camera.as_str();
    let confidence = (seen.confidence * 1000.0).round() / 1000.0;
    let Some(vip) = vips::get(tx.conn(), customer_id)? else {
        return Ok(Recognised::Unknown);
    };
    let last: Option<i64> = tx
        .conn()
        .query_row(
            "SELECT max(at_ms) FROM vision_arrivals WHERE customer_id = ?1",
            [customer_id],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let now_ms = now.timestamp_millis();
    let repeat = last.is_some_and(|l| now_ms - l < period.as_millis() as i64);
    users::audit(
        tx,
        Some(&format!("camera:{camera}")),
        "vip.recognised",
        Some(customer_id),
        Some(&json!({"confidence": confidence, "camera": camera, "arrival": !repeat})),
    )?;
    if repeat {
        return Ok(Recognised::Repeat);
    }
    let ts = rfc3339(now);
    let seen_at = rfc3339(seen.at);
    tx.conn().execute(
        "INSERT INTO vision_arrivals(day, ts, at_ms, customer_id, camera, confidence, seen_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            day,
            ts,
            now_ms,
            customer_id,
            camera,
            f64::from(confidence),
            seen_at
        ],
    )?;
    let id = tx.conn().last_insert_rowid();
    let rm = vip.relationship_manager.clone();
    // Ids only: the customer's name, tags and relationship manager stay on the box, behind
    // the role-checked arrivals route (`GET /api/v1/vip/arrivals`).
    tx.emit(
        "vip.arrived",
        json!({"id": id, "customer_id": customer_id, "level": vip.level,
               "confidence": confidence, "camera": camera, "ts": ts, "seen_at": seen_at}),
    )?;
    let message = format!("VIP arrival {id} at {camera}");
    let mut users = Vec::new();
    if let Some(rm) = &rm
        && users::is_active(tx.conn(), rm)?
    {
        users.push(rm.clone());
    }
    alerts::raise(
        tx,
        &NewAlert {
            kind: "vip.arrived",
            level: Level::Info,
            source: Some(camera),
            key: None,
            message: &message,
            data: json!({"arrival_id": id, "customer_id": customer_id, "level": vip.level,
                         "camera": camera,
                         "notify": {"roles": ["lobby_manager"], "users": users}}),
        },
    )?;
    Ok(Recognised::Arrived(Box::new(Arrival {
        id,
        customer_id: customer_id.to_string(),
        name: Some(vip.name),
        level: Some(vip.level),
        tags: vip.tags,
        relationship_manager: rm,
        confidence,
        camera: camera.to_string(),
        ts,
        seen_at,
        ticket: None,
    })))
}

/// The durable consumer that links arrivals to tickets.
pub const TICKETS: &str = "vision.tickets";

/// Whether a committed event is a ticket issued to a known customer.
pub fn is_customer_ticket(ev: &Event) -> bool {
    ev.kind == "ticket.issued" && ev.data.get("customer_id").is_some_and(|v| v.is_string())
}

/// A ticket was issued to a customer: link it to the customer's latest arrival of that
/// business day that has no ticket yet (`vip.ticketed`). Returns the linked arrival's id,
/// if any. A ticket already linked is not linked again.
pub fn ticketed(tx: &mut Tx<'_>, cfg: &Config, ev: &Event) -> Result<Option<i64>, StoreError> {
    let (Some(customer_id), Some(number)) = (
        ev.data.get("customer_id").and_then(|v| v.as_str()),
        ev.data.get("number").and_then(|v| v.as_str()),
    ) else {
        return Ok(None);
    };
    let day = business_day(cfg, ev.ts);
    let arrival: Option<i64> = tx
        .conn()
        .query_row(
            "SELECT id FROM vision_arrivals \
             WHERE day = ?1 AND customer_id = ?2 AND ticket IS NULL \
             AND NOT EXISTS (SELECT 1 FROM vision_arrivals WHERE day = ?1 AND ticket = ?3) \
             ORDER BY id DESC LIMIT 1",
            params![day, customer_id, number],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = arrival else {
        return Ok(None);
    };
    tx.conn().execute(
        "UPDATE vision_arrivals SET ticket = ?2, ticketed_at = ?3 WHERE id = ?1",
        params![id, number, rfc3339(tx.now())],
    )?;
    let mut data = json!({"arrival_id": id, "customer_id": customer_id, "number": number});
    if let Some(v) = ev.data["visit_id"].as_str() {
        data["visit_id"] = json!(v);
    }
    tx.emit("vip.ticketed", data)?;
    Ok(Some(id))
}

/// The arrivals of business day `day`, newest first, with the VIP record's profile.
pub fn arrivals(c: &Connection, day: &str) -> Result<Vec<Arrival>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, customer_id, confidence, camera, ts, coalesce(seen_at, ts), ticket \
         FROM vision_arrivals WHERE day = ?1 ORDER BY id DESC",
    )?;
    let rows = stmt.query_map([day], |r| {
        Ok(Arrival {
            id: r.get(0)?,
            customer_id: r.get(1)?,
            name: None,
            level: None,
            tags: Vec::new(),
            relationship_manager: None,
            confidence: r.get::<_, f64>(2)? as f32,
            camera: r.get(3)?,
            ts: r.get(4)?,
            seen_at: r.get(5)?,
            ticket: r.get(6)?,
        })
    })?;
    let mut out = rows.collect::<Result<Vec<_>, _>>()?;
    for a in &mut out {
        if let Some(v) = vips::get(c, &a.customer_id)? {
            a.name = Some(v.name);
            a.level = Some(v.level);
            a.tags = v.tags;
            a.relationship_manager = v.relationship_manager;
        }
    }
    Ok(out)
}
