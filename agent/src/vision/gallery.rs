//! The VIP gallery in the database: enrolled embeddings live in the sync module's
//! `sync_vips` records (from head office's `vip.upsert` or from `branchd vip enroll`); this
//! module reads them for matching, enrols pending photos (embedding kept, photo dropped in
//! the same transaction), and records arrivals.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use super::matcher::{Enrolled, Gallery};
use crate::alerts::{self, Level, NewAlert};
use crate::store::{StoreError, Tx, rfc3339};
use crate::sync::commands;

/// Every consenting customer's embedding made by `model_id`.
pub fn load(c: &Connection, model_id: &str, dim: usize) -> Result<Gallery, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT customer_id, embedding FROM sync_vips \
         WHERE consent = 1 AND embedding IS NOT NULL AND model_id = ?1 ORDER BY customer_id",
    )?;
    let rows = stmt.query_map([model_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
    })?;
    let mut entries = Vec::new();
    for row in rows {
        let (customer_id, bytes) = row?;
        let v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
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

/// A customer enrolled on the box (by `branchd vip enroll`).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalEnrolment {
    /// Head office's customer id.
    pub customer_id: String,
    /// Display name.
    pub name: String,
    /// Customer level.
    pub level: String,
    /// Profile tags.
    pub tags: Vec<String>,
    /// Relationship manager.
    pub relationship_manager: Option<String>,
}

/// Store a locally computed embedding (consent given) and announce the enrolment (never
/// the embedding itself).
pub fn enrol_local(
    tx: &mut Tx<'_>,
    e: &LocalEnrolment,
    embedding: &[f32],
    model_id: &str,
    actor: &str,
) -> Result<(), StoreError> {
    let bytes: Vec<u8> = embedding.iter().flat_map(|x| x.to_le_bytes()).collect();
    tx.conn().execute(
        "INSERT INTO sync_vips(customer_id, name, level, tags, relationship_manager, consent, \
             photo, embedding, model_id, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 1, NULL, ?6, ?7, ?8) \
         ON CONFLICT(customer_id) DO UPDATE SET name = excluded.name, level = excluded.level, \
             tags = excluded.tags, relationship_manager = excluded.relationship_manager, \
             consent = 1, photo = NULL, embedding = excluded.embedding, \
             model_id = excluded.model_id, updated_at = excluded.updated_at",
        params![
            e.customer_id,
            e.name,
            e.level,
            serde_json::to_string(&e.tags)?,
            e.relationship_manager,
            bytes,
            model_id,
            rfc3339(tx.now()),
        ],
    )?;
    tx.emit(
        "vip.enrolled",
        json!({"customer_id": e.customer_id, "model_id": model_id, "source": "local"}),
    )?;
    crate::users::audit(
        tx,
        Some(actor),
        "vip.enrol",
        Some(&e.customer_id),
        Some(&json!({"model_id": model_id})),
    )?;
    Ok(())
}

/// A pending photo was enrolled: keep the embedding, drop the photo, announce it.
pub fn photo_enrolled(
    tx: &mut Tx<'_>,
    customer_id: &str,
    embedding: &[f32],
    model_id: &str,
) -> Result<bool, StoreError> {
    if !commands::enrolled(tx, customer_id, embedding, model_id)? {
        return Ok(false);
    }
    tx.emit(
        "vip.enrolled",
        json!({"customer_id": customer_id, "model_id": model_id, "source": "photo"}),
    )?;
    crate::users::audit(
        tx,
        Some("vision"),
        "vip.enrol",
        Some(customer_id),
        Some(&json!({"model_id": model_id})),
    )?;
    Ok(true)
}

/// A pending photo could not be enrolled: drop it (photos are never kept) and tell head
/// office why, so it can send another.
pub fn photo_refused(tx: &mut Tx<'_>, customer_id: &str, reason: &str) -> Result<(), StoreError> {
    tx.conn().execute(
        "UPDATE sync_vips SET photo = NULL, updated_at = ?2 WHERE customer_id = ?1",
        params![customer_id, rfc3339(tx.now())],
    )?;
    tx.emit(
        "vip.enrolment_failed",
        json!({"customer_id": customer_id, "reason": reason}),
    )?;
    Ok(())
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

/// Whether `name` is an active user of this box (a relationship manager who signs in to
/// the PAD is told personally).
fn is_local_user(c: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(c.query_row(
        "SELECT 1 FROM users WHERE username = ?1 AND disabled = 0",
        [name],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// Record one confirmed recognition: always an audit record; a `vip.arrived` event and an
/// alert unless the customer already arrived within `period`. The alert is for the lobby
/// managers and, when the relationship manager is a user of this box, for them by name
/// (`data.notify.users`); `vip.arrived` names the relationship manager so head office can
/// reach one who is not in the branch.
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
    let Some(vip) = commands::vip_get(tx.conn(), customer_id)? else {
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
    crate::users::audit(
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
    tx.emit(
        "vip.arrived",
        json!({"id": id, "customer_id": customer_id, "level": vip.level,
               "confidence": confidence, "camera": camera, "ts": ts, "seen_at": seen_at,
               "relationship_manager": rm}),
    )?;
    let mut message = format!("VIP {} ({}) arrived at {camera}", vip.name, vip.level);
    if !vip.tags.is_empty() {
        message.push_str(&format!("; tags: {}", vip.tags.join(", ")));
    }
    if let Some(rm) = &rm {
        message.push_str(&format!("; relationship manager: {rm}"));
    }
    let mut users = Vec::new();
    if let Some(rm) = &rm {
        if is_local_user(tx.conn(), rm)? {
            users.push(rm.clone());
        }
    }
    alerts::raise(
        tx,
        &NewAlert {
            kind: "vip.arrived",
            level: Level::Info,
            source: Some(camera),
            key: None,
            message: &message,
            data: json!({"arrival_id": id, "customer_id": customer_id, "name": vip.name,
                         "level": vip.level, "tags": vip.tags, "relationship_manager": rm,
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

/// A ticket was issued to `customer_id` on business day `day`: link it to the customer's
/// latest arrival of that day that has no ticket yet (`vip.ticketed`). Returns the linked
/// arrival's id, if any.
pub fn link_ticket(
    tx: &mut Tx<'_>,
    day: &str,
    customer_id: &str,
    number: &str,
) -> Result<Option<i64>, StoreError> {
    let arrival: Option<i64> = tx
        .conn()
        .query_row(
            "SELECT id FROM vision_arrivals \
             WHERE day = ?1 AND customer_id = ?2 AND ticket IS NULL ORDER BY id DESC LIMIT 1",
            params![day, customer_id],
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
    tx.emit(
        "vip.ticketed",
        json!({"arrival_id": id, "customer_id": customer_id, "number": number}),
    )?;
    Ok(Some(id))
}

/// The arrivals of business day `day`, newest first, with the VIP record's profile.
pub fn arrivals(c: &Connection, day: &str) -> Result<Vec<Arrival>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT a.id, a.customer_id, v.name, v.level, v.tags, v.relationship_manager, \
                a.confidence, a.camera, a.ts, coalesce(a.seen_at, a.ts), a.ticket \
         FROM vision_arrivals a LEFT JOIN sync_vips v ON v.customer_id = a.customer_id \
         WHERE a.day = ?1 ORDER BY a.id DESC",
    )?;
    let rows = stmt.query_map([day], |r| {
        Ok(Arrival {
            id: r.get(0)?,
            customer_id: r.get(1)?,
            name: r.get(2)?,
            level: r.get(3)?,
            tags: r
                .get::<_, Option<String>>(4)?
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default(),
            relationship_manager: r.get(5)?,
            confidence: r.get::<_, f64>(6)? as f32,
            camera: r.get(7)?,
            ts: r.get(8)?,
            seen_at: r.get(9)?,
            ticket: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
