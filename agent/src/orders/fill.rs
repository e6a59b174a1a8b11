//! OCR back-fill (反填) into an order's customer section: the staff confirm an ID card's
//! fields on the PAD (their corrections made, the chip's values taken where the photo
//! differed) and fill them into an open order with one touch.
//!
//! The values are kept with the order on the box ([`STEP_3`]); the staff view shows them,
//! the customer view never. `order.customer_filled` names the fields and where each came
//! from (photo or chip), never a value; the audit trail records who filled which fields
//! from which source ([`crate::docfill`]).

use serde_json::{Value, json};

use super::Orders;
use super::model::{OrderError, get};
use crate::clock::rfc3339;
use crate::docfill::{self, FillBody, FillError};
use crate::http::error::ApiError;
use crate::http::{Reply, Request};
use crate::store::{StoreError, Tx};

/// The orders schema's third step: the customer fields filled in from a document.
pub const STEP_3: &str = "ALTER TABLE orders ADD COLUMN customer_doc TEXT;";

/// A refused fill as the API answers it: `invalid_customer_field` naming the field.
pub fn api_error(e: FillError) -> ApiError {
    let field = e.field.clone();
    ApiError::bad_request("invalid_customer_field", e.why).with_details(json!({"field": field}))
}

/// Fill the fields into the open order `id` (merged over what an earlier fill gave), with
/// its `order.customer_filled` event and the audit record.
pub fn fill(tx: &mut Tx<'_>, id: &str, by: &str, body: &FillBody) -> Result<(), OrderError> {
    let o = get(tx.conn(), id)?.ok_or_else(|| OrderError::NotFound(id.to_string()))?;
    if !o.status.is_open() {
        return Err(OrderError::State(format!(
            "order `{id}` is {}: its customer can no longer be filled in",
            o.status
        )));
    }
    let mut doc = stored(tx.conn(), id)?.unwrap_or_else(|| json!({"fields": {}}));
    for (k, f) in &body.fields {
        doc["fields"][k] = serde_json::to_value(f).map_err(StoreError::from)?;
    }
    let now = rfc3339(tx.now());
    doc["by"] = json!(by);
    doc["at"] = json!(now);
    doc["ocr_id"] = json!(body.ocr_id);
    tx.conn().execute(
        "UPDATE orders SET customer_doc = ?2, updated_at = ?3 WHERE id = ?1",
        rusqlite::params![id, doc.to_string(), now],
    )?;
    // the names and sources of the fields, never their values
    let summary = docfill::summary(body);
    let mut event = json!({"id": id, "status": o.status, "by": by});
    if let (Some(e), Value::Object(s)) = (event.as_object_mut(), summary.clone()) {
        e.extend(s);
    }
    tx.emit("order.customer_filled", event)?;
    crate::users::audit(
        tx,
        Some(by),
        "order.customer_fill",
        Some(id),
        Some(&summary),
    )?;
    Ok(())
}

/// The stored customer section of an order, if anything was filled in.
pub fn stored(c: &rusqlite::Connection, id: &str) -> Result<Option<Value>, StoreError> {
    use rusqlite::OptionalExtension;
    let text: Option<Option<String>> = c
        .query_row("SELECT customer_doc FROM orders WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(text.flatten().and_then(|t| serde_json::from_str(&t).ok()))
}

/// The filled customer section for the staff view: every field with its source, the ID
/// number masked as the order's own is.
pub fn staff_section(c: &rusqlite::Connection, id: &str) -> Result<Value, StoreError> {
    let Some(mut doc) = stored(c, id)? else {
        return Ok(Value::Null);
    };
    doc["fields"] = docfill::for_screen(doc["fields"].take());
    Ok(doc)
}

/// `POST /api/v1/orders/{id}/customer`: fill the confirmed fields in; answers the order's
/// staff view.
pub async fn handle(o: Orders, req: Request) -> Reply {
    let id = req.param("id")?.to_string();
    let by = req.username()?;
    let body = docfill::validate(req.json()?).map_err(api_error)?;
    let oid = id.clone();
    o.core
        .store
        .write(move |tx| fill(tx, &oid, &by, &body))
        .await?;
    super::http::staff_answer(&o, id).await
}
