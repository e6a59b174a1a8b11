//! What of each event reaches head office. Every event keeps its place in the sequence
//! upstream — `seq` is gap-free, so head office can prove nothing was lost — but a
//! local-only event goes as a bare marker: kind `local` on `<p>/events/local`, its `seq`,
//! `id` and `ts`, and empty `data`. Its kind and content never leave the box.
//!
//! Local-only are the staff notifications about customers: the alerts (raised, acknowledged,
//! cleared) of customer kinds, whose routing names the staff to tell and whose text is for
//! the PAD. Head office gets the domain events themselves (`vip.arrived`, `lead.*`, …),
//! which carry ids, never names.

use serde_json::{Value, json};

use crate::store::Event;

/// The kind a local-only event has upstream.
pub const LOCAL: &str = "local";

/// Alert kinds (by prefix) whose alert events stay on the box.
const CUSTOMER_ALERTS: &[&str] = &["vip.", "customer.", "customers.", "lead."];

/// Whether the event `kind` with `data` never reaches head office.
pub fn local_only(kind: &str, data: &Value) -> bool {
    kind.starts_with("alert.")
        && data["kind"]
            .as_str()
            .is_some_and(|k| CUSTOMER_ALERTS.iter().any(|p| k.starts_with(p)))
}

/// The kind (for the topic) and the envelope head office gets for `ev`.
pub fn envelope<'e>(ev: &'e Event, branch: &str) -> (&'e str, Value) {
    if local_only(&ev.kind, &ev.data) {
        let mut e = ev.envelope(branch);
        e["kind"] = json!(LOCAL);
        e["data"] = json!({});
        (LOCAL, e)
    } else {
        (&ev.kind, ev.envelope(branch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: Value) -> Event {
        Event {
            seq: 41,
            id: "01J".into(),
            ts: chrono::Utc::now(),
            kind: kind.into(),
            data,
        }
    }

    #[test]
    fn staff_notifications_about_customers_go_as_markers_and_everything_else_whole() {
        // (kind, data, local only)
        let cases = [
            (
                "alert.raised",
                json!({"kind": "vip.arrived", "data": {"notify": {"users": ["rm"]}}}),
                true,
            ),
            (
                "alert.acked",
                json!({"kind": "lead.customer_arrived"}),
                true,
            ),
            ("alert.cleared", json!({"kind": "customer.birthday"}), true),
            ("alert.raised", json!({"kind": "device.offline"}), false),
            ("alert.raised", json!({"kind": "storage.full"}), false),
            ("alert.acked", json!({"id": 3}), false),
            (
                "vip.arrived",
                json!({"customer_id": "C1", "level": "gold"}),
                false,
            ),
            ("ticket.issued", json!({"number": "A001"}), false),
        ];
        for (kind, data, local) in cases {
            let ev = event(kind, data.clone());
            assert_eq!(local_only(kind, &data), local, "{kind} {data}");
            let (topic_kind, env) = envelope(&ev, "NJ0101");
            assert_eq!(env["seq"], 41, "every event keeps its seq upstream");
            if local {
                assert_eq!(topic_kind, LOCAL);
                assert_eq!(env["kind"], LOCAL);
                assert_eq!(env["data"], json!({}));
                assert!(!env.to_string().contains(kind), "{env}");
            } else {
                assert_eq!(topic_kind, kind);
                assert_eq!(env, ev.envelope("NJ0101"));
            }
        }
    }
}
