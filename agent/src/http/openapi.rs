//! The OpenAPI description served at `/api/v1/openapi.json`: the core document
//! (`openapi.json`: system, auth, events, alerts, staff) with every module's fragment
//! (`{"paths":{…},"schemas":{…}}`) merged in, and each operation's allowed roles
//! (`x-roles`) taken from the route declarations, so the document and the router cannot
//! disagree about who may call what.

use serde_json::{Value, json};

use super::route::{Access, RouteSpec};

/// The core part of the document.
pub const CORE: &str = include_str!("openapi.json");

/// The whole document: `core` with the `fragments` merged in, and `x-roles` on every
/// declared operation (and a 403 on every one that needs a session).
///
/// # Panics
/// When `core` or a fragment is not valid JSON (they are compiled in; a test parses them).
pub fn document(core: &str, fragments: &[&str], routes: &[RouteSpec]) -> String {
    let mut doc: Value = serde_json::from_str(core).expect("openapi.json is valid JSON");
    for fragment in fragments {
        let f: Value =
            serde_json::from_str(fragment).expect("a module's OpenAPI fragment is valid JSON");
        for (section, target) in [("paths", "/paths"), ("schemas", "/components/schemas")] {
            if let (Some(add), Some(into)) = (
                f.get(section).and_then(|v| v.as_object()),
                doc.pointer_mut(target).and_then(|v| v.as_object_mut()),
            ) {
                into.extend(add.clone());
            }
        }
    }
    for r in routes {
        let pointer = format!(
            "/paths/{}/{}",
            r.path.replace('~', "~0").replace('/', "~1"),
            r.method.to_ascii_lowercase()
        );
        if let Some(Value::Object(op)) = doc.pointer_mut(&pointer) {
            let roles: Vec<&str> = r.access.roles().iter().map(|r| r.as_str()).collect();
            op.insert("x-roles".into(), json!(roles));
            // Every route that needs a session refuses some role (a staff route, the
            // kiosk): its 403 is documented whether or not the fragment wrote it.
            if r.access != Access::Public
                && let Some(Value::Object(responses)) = op.get_mut("responses")
            {
                responses
                    .entry("403")
                    .or_insert_with(|| json!({"$ref": "#/components/responses/Error"}));
            }
        }
    }
    doc.to_string()
}
