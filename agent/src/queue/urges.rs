//! Urged orders (催单). When staff urge an order whose customer already waits with a
//! ticket, the ticket moves up one priority step, up to the highest (`ticket.urged`). The
//! queue follows `order.urged` on the event stream with a durable consumer, as the orders
//! follow `ticket.issued`: the orders module does not know the queue.

use rusqlite::{OptionalExtension, params};
use serde_json::json;

use crate::store::{Event, StoreError, Tx};

/// The durable consumer's name.
pub const URGES: &str = "queue.urges";
/// The highest priority a ticket has (0 normal, 1 appointment, up to 3 by customer level).
pub const TOP_PRIORITY: i64 = 3;

/// Whether `ev` urges an order whose customer has a ticket.
pub fn is_urge(ev: &Event) -> bool {
    ev.kind == "order.urged" && ev.data["id"].is_string() && ev.data["ticket"].is_string()
}

/// Move the urged order's waiting ticket up one priority step. Returns whether it moved: a
/// ticket already called or finished, or already at the top, stays as it is.
pub fn urged(tx: &mut Tx<'_>, ev: &Event) -> Result<bool, StoreError> {
    let (Some(order), Some(number)) = (ev.data["id"].as_str(), ev.data["ticket"].as_str()) else {
        return Ok(false);
    };
    let waiting: Option<(i64, String, i64, Option<String>)> = tx
        .conn()
        .query_row(
            "SELECT id, service, priority, visit_id FROM queue_tickets \
             WHERE number = ?1 AND appointment_id = ?2 AND state = 'waiting' \
             ORDER BY id DESC LIMIT 1",
            params![number, order],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((id, service, from, visit_id)) = waiting else {
        return Ok(false);
    };
    if from >= TOP_PRIORITY {
        return Ok(false);
    }
    let priority = from + 1;
    tx.conn().execute(
        "UPDATE queue_tickets SET priority = ?2 WHERE id = ?1",
        params![id, priority],
    )?;
    tx.emit(
        "ticket.urged",
        json!({"number": number, "service": service, "order": order,
               "priority": priority, "from": from, "visit_id": visit_id,
               "appointment_id": order}),
    )?;
    Ok(true)
}
