//! Walk-in customers of the day: a customer without an order whose ID card the staff
//! recognised and confirmed (OCR back-fill, 反填) is recorded here for the business day, so
//! the lobby can serve them from the card's fields. Personal data like the day's presence:
//! only the roles that serve customers read it, the event names the fields and their
//! sources and never a value, and the day's records are deleted when the business day ends
//! (with the presence, [`super::presence::purge`]).

use rusqlite::{Connection, params};
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::docfill::{self, FillBody};
use crate::store::{StoreError, Tx};

/// The customers schema's second step: the walk-in customers of the day.
pub const STEP_2: &str = "CREATE TABLE customers_walkin (
         id TEXT PRIMARY KEY,
         day TEXT NOT NULL,
         fields TEXT NOT NULL,
         ocr_id TEXT,
         created_by TEXT NOT NULL,
         created_at TEXT NOT NULL
     ) STRICT;
     CREATE INDEX customers_walkin_day ON customers_walkin(day);";

/// Record a walk-in customer of business day `day` from confirmed fields, with its
/// `customer.walkin_recorded` event and the audit record. Returns the record as the staff
/// see it.
pub fn record(tx: &mut Tx<'_>, day: &str, by: &str, body: &FillBody) -> Result<Value, StoreError> {
    let id = ulid::Ulid::new().to_string();
    let now = rfc3339(tx.now());
    tx.conn().execute(
        "INSERT INTO customers_walkin(id, day, fields, ocr_id, created_by, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id,
            day,
            serde_json::to_string(&body.fields)?,
            body.ocr_id,
            by,
            now
        ],
    )?;
    let summary = docfill::summary(body);
    let mut event = json!({"id": id, "day": day, "by": by});
    if let (Some(e), Value::Object(s)) = (event.as_object_mut(), summary.clone()) {
        e.extend(s);
    }
    tx.emit("customer.walkin_recorded", event)?;
    crate::users::audit(
        tx,
        Some(by),
        "customer.walkin_fill",
        Some(&id),
        Some(&summary),
    )?;
    Ok(
        json!({"id": id, "day": day, "fields": docfill::for_screen(serde_json::to_value(&body.fields)?),
              "ocr_id": body.ocr_id, "by": by, "at": now}),
    )
}

/// The walk-in customers of business day `day`, latest first, the ID numbers masked.
pub fn of_day(c: &Connection, day: &str) -> Result<Vec<Value>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT id, fields, ocr_id, created_by, created_at FROM customers_walkin \
         WHERE day = ?1 ORDER BY created_at DESC, id DESC",
    )?;
    let rows = st.query_map([day], |r| {
        let fields: String = r.get(1)?;
        Ok(json!({
            "id": r.get::<_, String>(0)?,
            "day": day,
            "fields": docfill::for_screen(serde_json::from_str(&fields).unwrap_or_else(|_| json!({}))),
            "ocr_id": r.get::<_, Option<String>>(2)?,
            "by": r.get::<_, String>(3)?,
            "at": r.get::<_, String>(4)?,
        }))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Delete the walk-ins of business days before `today`; how many went.
pub fn purge(tx: &Tx<'_>, today: &str) -> Result<usize, StoreError> {
    Ok(tx
        .conn()
        .execute("DELETE FROM customers_walkin WHERE day < ?1", [today])?)
}
