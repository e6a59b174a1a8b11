//! The table of every HTTP route and who may call it (the core's here, each module's in
//! its own `ROUTES`).
//!
//! The filters look their access rule up here (a route missing from the table panics when
//! the router is built), and the tests walk the same table: every `/api/v1` route but login
//! answers 401 without a session, and each role gets 403 exactly where the table says.

use crate::users::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No session needed.
    Public,
    /// Any logged-in member of staff.
    Staff,
    /// Only these roles.
    Roles(&'static [Role]),
}

impl Access {
    /// Whether `role` may call.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public | Access::Staff => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }
}

/// One route.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: &'static str,
    /// OpenAPI path template.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// A concrete path to call in tests.
    pub sample: &'static str,
}

/// A route-table entry (a `const fn`, so module tables stay constants).
pub const fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    sample: &'static str,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        sample,
    }
}

use Access::{Public, Staff};

/// The core routes; modules add theirs (see `modules::ROUTE_TABLES`).
pub const CORE_ROUTES: &[RouteSpec] = &[
    route("GET", "/healthz", Public, "/healthz"),
    route("GET", "/metrics", Public, "/metrics"),
    route("POST", "/api/v1/auth/login", Public, "/api/v1/auth/login"),
    route("POST", "/api/v1/auth/logout", Staff, "/api/v1/auth/logout"),
    route("GET", "/api/v1/auth/me", Staff, "/api/v1/auth/me"),
    route("GET", "/api/v1/events", Staff, "/api/v1/events"),
    route("GET", "/api/v1/openapi.json", Staff, "/api/v1/openapi.json"),
    route("GET", "/api/v1/alerts", Staff, "/api/v1/alerts"),
    route(
        "POST",
        "/api/v1/alerts/{id}/ack",
        Staff,
        "/api/v1/alerts/1/ack",
    ),
    route("GET", "/api/v1/users", MANAGER, "/api/v1/users"),
    route("GET", "/api/v1/audit", MANAGER, "/api/v1/audit"),
];

const MANAGER: Access = Access::Roles(&[Role::BranchManager]);

/// Every route of the daemon.
pub fn all() -> impl Iterator<Item = &'static RouteSpec> {
    crate::modules::ROUTE_TABLES.iter().flat_map(|t| t.iter())
}

/// The route with this method and template.
pub fn spec(method: &str, path: &str) -> &'static RouteSpec {
    all()
        .find(|r| r.method == method && r.path == path)
        .unwrap_or_else(|| panic!("route {method} {path} is missing from ROUTES"))
}
