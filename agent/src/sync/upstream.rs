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

use crate::store::{Event, StoredEvent};

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

/// The topic kind and the envelope text of `ev` as it is stored, without parsing its data
/// into a tree and writing it again: the same bytes as [`envelope`] gives for the parsed
/// event (the envelope's fields in the order `serde_json` writes them, `data` as it was
/// written by `Tx::emit`). Only an `alert.*` event's data is parsed, to tell a local-only
/// one; data that is not JSON goes as `null`, as the parsed path sends it.
pub fn envelope_text<'e>(ev: &'e StoredEvent, branch: &str) -> (&'e str, Vec<u8>) {
    let local = ev.kind.starts_with("alert.")
        && serde_json::from_str::<Value>(&ev.data).is_ok_and(|d| local_only(&ev.kind, &d));
    let (kind, data) = if local {
        (LOCAL, "{}")
    } else if serde_json::from_str::<serde::de::IgnoredAny>(&ev.data).is_ok() {
        (ev.kind.as_str(), ev.data.as_str())
    } else {
        (ev.kind.as_str(), "null")
    };
    let mut out = Vec::with_capacity(64 + branch.len() + ev.id.len() + kind.len() + data.len());
    out.extend_from_slice(b"{\"branch\":");
    string(&mut out, branch);
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b",\"id\":");
    string(&mut out, &ev.id);
    out.extend_from_slice(b",\"kind\":");
    string(&mut out, kind);
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(ev.seq.to_string().as_bytes());
    out.extend_from_slice(b",\"ts\":");
    string(&mut out, &ev.ts);
    out.extend_from_slice(b",\"v\":1}");
    (kind, out)
}

/// `s` as a JSON string, escaped.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
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
                json!({"id": 4, "kind": "lead.customer_arrived", "by": "lobby"}),
                true,
            ),
            ("alert.cleared", json!({"kind": "customer.birthday"}), true),
            ("alert.raised", json!({"kind": "device.offline"}), false),
            ("alert.raised", json!({"kind": "storage.full"}), false),
            (
                "alert.acked",
                json!({"id": 3, "kind": "device.offline", "by": "lobby"}),
                false,
            ),
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
            // The outbox sends the stored text: the same bytes as the parsed path.
            let stored = StoredEvent {
                seq: ev.seq,
                id: ev.id.clone(),
                ts: crate::clock::rfc3339(ev.ts),
                kind: ev.kind.clone(),
                data: data.to_string(),
            };
            let (text_kind, text) = envelope_text(&stored, "NJ0101");
            assert_eq!(text_kind, topic_kind);
            assert_eq!(String::from_utf8(text).unwrap(), env.to_string());
        }
    }

    #[test]
    fn the_stored_text_goes_byte_for_byte_as_the_parsed_envelope_with_its_fields_escaped() {
        let ev = Event {
            seq: 18_446_744_073_709,
            id: "01J\"\\\u{1}".into(),
            ts: chrono::Utc::now(),
            kind: "ticket.issued".into(),
            data: json!({"z": 1.5, "a": [null, true, "名\n"], "m": {"y": -3, "b": u64::MAX}}),
        };
        let stored = StoredEvent {
            seq: ev.seq,
            id: ev.id.clone(),
            ts: crate::clock::rfc3339(ev.ts),
            kind: ev.kind.clone(),
            data: ev.data.to_string(),
        };
        let branch = "NJ\"01";
        let (_, text) = envelope_text(&stored, branch);
        assert_eq!(
            String::from_utf8(text).unwrap(),
            envelope(&ev, branch).1.to_string()
        );
        // Data that is not JSON goes as null, as the parsed path reads it.
        let broken = StoredEvent {
            data: "{not json".into(),
            ..stored
        };
        let (_, text) = envelope_text(&broken, branch);
        let v: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["data"], Value::Null);
        assert_eq!(v["seq"], json!(ev.seq));
    }
}
