//! VIP customers: the records head office sends (`vip.upsert`, `vip.delete`) or staff enrol
//! on the box (`branchd vip enroll`), their levels, the photos waiting to be enrolled, and
//! the embedding codec. This module owns the `vips` table; the vision module matches faces
//! against its embeddings, the queue reads a customer's level.
//!
//! Biometrics never leave the box: events name the customer, never a photo or an
//! embedding, and a photo is deleted in the transaction that stores its embedding.

pub mod command;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use crate::clock::rfc3339;
use crate::retention::Bounded;
use crate::store::{Schema, StoreError, Tx};
use crate::users;

pub use command::Vip;

/// This module's tables. The records were first kept by the head-office link
/// (`sync_vips`, created by the sync schema); they are this module's since.
pub const SCHEMA: Schema = Schema {
    module: "vips",
    steps: &["ALTER TABLE sync_vips RENAME TO vips;"],
};

/// The VIP records do not grow with use.
pub const BOUNDED: &[Bounded] = &[Bounded {
    table: "vips",
    why: "one row per VIP head office describes, deleted when it deletes them",
}];

/// An embedding as stored: little-endian `f32`s.
pub fn encode(embedding: &[f32]) -> Vec<u8> {
    embedding.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored embedding (trailing bytes that make no whole `f32` are ignored).
pub fn decode(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// A customer level the queue does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown customer_level `{0}` (normal, vip1, vip2 or vip3)")]
pub struct UnknownLevel(pub String);

/// The VIP tier of a customer level (`vip` = `vip1`): `Ok(None)` for a normal customer.
pub fn tier(level: &str) -> Result<Option<u8>, UnknownLevel> {
    match level {
        "normal" => Ok(None),
        "vip" | "vip1" => Ok(Some(1)),
        "vip2" => Ok(Some(2)),
        "vip3" => Ok(Some(3)),
        other => Err(UnknownLevel(other.to_string())),
    }
}

/// The queue level of an enrolled customer: their level when it is a queue tier, else
/// `vip1`; `None` for a customer who is not a VIP here.
pub fn queue_level(c: &Connection, customer_id: &str) -> Result<Option<String>, StoreError> {
    Ok(get(c, customer_id)?.map(|v| match tier(&v.level) {
        Ok(_) => v.level,
        Err(_) => "vip1".to_string(),
    }))
}

/// A VIP record as stored (biometrics stay in the table).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredVip {
    /// Customer id.
    pub customer_id: String,
    /// Name.
    pub name: String,
    /// Level.
    pub level: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Relationship manager.
    pub relationship_manager: Option<String>,
    /// Consent to face recognition.
    pub consent: bool,
    /// A photo waits for enrolment.
    pub photo_pending: bool,
    /// The embedding's model, when there is one.
    pub model_id: Option<String>,
}

/// One VIP record.
pub fn get(c: &Connection, customer_id: &str) -> Result<Option<StoredVip>, StoreError> {
    Ok(c.query_row(
        "SELECT customer_id, name, level, tags, relationship_manager, consent, photo IS NOT NULL, model_id \
         FROM vips WHERE customer_id = ?1",
        [customer_id],
        |r| {
            Ok(StoredVip {
                customer_id: r.get(0)?,
                name: r.get(1)?,
                level: r.get(2)?,
                tags: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                relationship_manager: r.get(4)?,
                consent: r.get::<_, i64>(5)? != 0,
                photo_pending: r.get(6)?,
                model_id: r.get(7)?,
            })
        },
    )
    .optional()?)
}

/// How many VIP records there are (telemetry).
pub fn count(c: &Connection) -> Result<u64, StoreError> {
    Ok(c.query_row("SELECT count(*) FROM vips", [], |r| r.get::<_, i64>(0))? as u64)
}

/// Every consenting customer's embedding made by `model_id`, by customer id.
pub fn embeddings(c: &Connection, model_id: &str) -> Result<Vec<(String, Vec<f32>)>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT customer_id, embedding FROM vips \
         WHERE consent = 1 AND embedding IS NOT NULL AND model_id = ?1 ORDER BY customer_id",
    )?;
    let rows = stmt.query_map([model_id], |r| {
        Ok((r.get::<_, String>(0)?, decode(&r.get::<_, Vec<u8>>(1)?)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Photos waiting to become embeddings (consenting customers only).
pub fn photos_pending(c: &Connection) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT customer_id, photo FROM vips WHERE photo IS NOT NULL AND consent = 1",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Apply head office's `vip.upsert` (`vip.upserted`). Without new biometrics the enrolled
/// ones stay, unless consent was withdrawn.
pub fn upsert(tx: &mut Tx<'_>, v: &Vip, command: &str) -> Result<(), StoreError> {
    let embedding = v.embedding.as_ref().map(|(e, _)| encode(e));
    let model_id = v.embedding.as_ref().map(|(_, m)| m.clone());
    let has_bio = v.photo.is_some() || v.embedding.is_some();
    tx.conn().execute(
        "INSERT INTO vips(customer_id, name, level, tags, relationship_manager, consent, \
             photo, embedding, model_id, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
         ON CONFLICT(customer_id) DO UPDATE SET name = excluded.name, level = excluded.level, \
             tags = excluded.tags, relationship_manager = excluded.relationship_manager, \
             consent = excluded.consent, \
             photo = CASE WHEN ?11 THEN excluded.photo WHEN excluded.consent = 0 THEN NULL ELSE photo END, \
             embedding = CASE WHEN ?11 THEN excluded.embedding WHEN excluded.consent = 0 THEN NULL ELSE embedding END, \
             model_id = CASE WHEN ?11 THEN excluded.model_id WHEN excluded.consent = 0 THEN NULL ELSE model_id END, \
             updated_at = excluded.updated_at",
        params![
            v.customer_id,
            v.name,
            v.level,
            serde_json::to_string(&v.tags)?,
            v.relationship_manager,
            v.consent as i64,
            v.photo,
            embedding,
            model_id,
            rfc3339(tx.now()),
            has_bio,
        ],
    )?;
    tx.emit(
        "vip.upserted",
        json!({"customer_id": v.customer_id, "level": v.level,
               "photo_pending": v.photo.is_some(), "embedding": v.embedding.is_some(),
               "command": command}),
    )?;
    Ok(())
}

/// Apply head office's `vip.delete` (`vip.deleted`, when there was a record).
pub fn delete(tx: &mut Tx<'_>, customer_id: &str, command: &str) -> Result<(), StoreError> {
    let n = tx
        .conn()
        .execute("DELETE FROM vips WHERE customer_id = ?1", [customer_id])?;
    if n > 0 {
        tx.emit(
            "vip.deleted",
            json!({"customer_id": customer_id, "command": command}),
        )?;
    }
    Ok(())
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
    tx.conn().execute(
        "INSERT INTO vips(customer_id, name, level, tags, relationship_manager, consent, \
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
            encode(embedding),
            model_id,
            rfc3339(tx.now()),
        ],
    )?;
    enrolled(tx, &e.customer_id, model_id, "local", actor)
}

/// A pending photo was enrolled: keep the embedding, drop the photo, announce it. False
/// when the record has gone meanwhile.
pub fn photo_enrolled(
    tx: &mut Tx<'_>,
    customer_id: &str,
    embedding: &[f32],
    model_id: &str,
) -> Result<bool, StoreError> {
    let n = tx.conn().execute(
        "UPDATE vips SET embedding = ?2, model_id = ?3, photo = NULL, updated_at = ?4 \
         WHERE customer_id = ?1",
        params![customer_id, encode(embedding), model_id, rfc3339(tx.now())],
    )?;
    if n == 0 {
        return Ok(false);
    }
    enrolled(tx, customer_id, model_id, "photo", "vision")?;
    Ok(true)
}

/// `vip.enrolled` and its audit record.
fn enrolled(
    tx: &mut Tx<'_>,
    customer_id: &str,
    model_id: &str,
    source: &str,
    actor: &str,
) -> Result<(), StoreError> {
    tx.emit(
        "vip.enrolled",
        json!({"customer_id": customer_id, "model_id": model_id, "source": source}),
    )?;
    users::audit(
        tx,
        Some(actor),
        "vip.enrol",
        Some(customer_id),
        Some(&json!({"model_id": model_id})),
    )
}

/// A pending photo could not be enrolled: drop it (photos are never kept) and tell head
/// office why, so it can send another.
pub fn photo_refused(tx: &mut Tx<'_>, customer_id: &str, reason: &str) -> Result<(), StoreError> {
    tx.conn().execute(
        "UPDATE vips SET photo = NULL, updated_at = ?2 WHERE customer_id = ?1",
        params![customer_id, rfc3339(tx.now())],
    )?;
    tx.emit(
        "vip.enrolment_failed",
        json!({"customer_id": customer_id, "reason": reason}),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_queue_tiers_and_unknown_ones_are_named() {
        let cases = [
            ("normal", Ok(None)),
            ("vip", Ok(Some(1))),
            ("vip1", Ok(Some(1))),
            ("vip2", Ok(Some(2))),
            ("vip3", Ok(Some(3))),
            ("gold", Err(UnknownLevel("gold".into()))),
        ];
        for (level, want) in cases {
            assert_eq!(tier(level), want, "{level}");
        }
    }

    #[test]
    fn embeddings_round_trip_through_their_stored_bytes() {
        let e = vec![0.25f32, -1.5, 3.0e-7, f32::MAX];
        assert_eq!(encode(&e).len(), 16);
        assert_eq!(decode(&encode(&e)), e);
        assert_eq!(
            decode(&[0, 0, 128, 63, 1]),
            vec![1.0],
            "a stray byte is ignored"
        );
    }
}
