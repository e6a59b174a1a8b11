//! Who sees which event on the stream, and which alert: the roles of the routes that read
//! the same data. Customers' identities, VIPs, leads, coupons, orders, documents and the
//! shelf are for the roles that serve customers (lobby manager, branch manager), as their
//! routes are; everything else is for every member of staff. A kiosk is no member of
//! staff: it may not open the stream at all (`Access::Staff`) and sees nothing here.

use crate::users::Role;

/// The roles that serve customers.
const SERVING: &[Role] = &[Role::LobbyManager, Role::BranchManager];

/// Kinds (by prefix) only [`SERVING`] sees.
const SERVING_KINDS: &[&str] = &[
    "vip.",
    "customer.",
    "customers.",
    "lead.",
    "rights.",
    "order.",
    "ocr.",
    "product.",
];

/// Whether `role` may see something of `kind` (an event kind, or an alert's kind).
pub fn may_see(role: Role, kind: &str) -> bool {
    role.is_staff() && !SERVING_KINDS.iter().any(|p| kind.starts_with(p)) || SERVING.contains(&role)
}

/// Whether `role` may see the event `kind` with `data` on the stream: an alert's events
/// are judged by the alert's own kind when they name it.
pub fn may_see_event(role: Role, kind: &str, data: &serde_json::Value) -> bool {
    let judged = match (kind.starts_with("alert."), data["kind"].as_str()) {
        (true, Some(alert_kind)) => alert_kind,
        _ => kind,
    };
    may_see(role, judged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn customer_data_is_for_the_serving_roles_and_the_rest_for_all_staff_never_a_kiosk() {
        // (kind, alert kind, who sees it)
        let cases = [
            ("vip.arrived", None, SERVING),
            ("customer.identified", None, SERVING),
            ("lead.received", None, SERVING),
            ("order.created", None, SERVING),
            ("alert.raised", Some("vip.arrived"), SERVING),
            ("alert.raised", Some("lead.customer_arrived"), SERVING),
            ("alert.raised", Some("device.offline"), &Role::STAFF[..]),
            ("alert.acked", None, &Role::STAFF[..]),
            ("ticket.issued", None, &Role::STAFF[..]),
            ("device.exception", None, &Role::STAFF[..]),
            ("auth.requested", None, &Role::STAFF[..]),
        ];
        for (kind, alert_kind, who) in cases {
            let data = alert_kind.map_or(json!({}), |k| json!({"kind": k}));
            for role in Role::ALL {
                assert_eq!(
                    may_see_event(role, kind, &data),
                    who.contains(&role),
                    "{role} {kind} {alert_kind:?}"
                );
            }
        }
    }
}
