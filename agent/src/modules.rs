//! The daemon's domain modules, composed: their schemas, their handles (built in dependency
//! order, each given the core and the few handles it really needs), their routes with the
//! OpenAPI document, their start-up, and the demo's set-up. Adding a module is a line in
//! each list below.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use crate::core::Core;
use crate::customers::Customers;
use crate::devices::Devices;
use crate::http::auth::Auth;
use crate::http::{Access, Route, RouteSpec, openapi};
use crate::leads::Leads;
use crate::ocr::Ocr;
use crate::orders::Orders;
use crate::products::Products;
use crate::queue::Queue;
use crate::retention::{Bounded, Rule};
use crate::rights::Rights;
use crate::stats::Stats;
use crate::store::Schema;
use crate::sync::Sync;
use crate::updates::Updates;
use crate::vision::Vision;
use crate::{
    alerts, customers, devices, http, leads, ocr, orders, products, queue, retention, rights,
    stats, sync, updates, vips, vision,
};

/// Every module's schema, in migration order (after the store's own).
pub const SCHEMAS: &[Schema] = &[
    queue::SCHEMA,
    devices::SCHEMA,
    sync::SCHEMA,
    orders::SCHEMA,
    ocr::SCHEMA,
    stats::SCHEMA,
    vision::SCHEMA,
    vips::SCHEMA,
    products::SCHEMA,
    customers::SCHEMA,
    leads::SCHEMA,
    rights::SCHEMA,
    updates::SCHEMA,
];

/// The tables that grow, with the rows that may go (`[retention]`), per owner.
pub const RETENTION: &[&[Rule]] = &[
    retention::FOUNDATION,
    devices::RETENTION,
    sync::RETENTION,
    vision::RETENTION,
    orders::RETENTION,
    queue::RETENTION,
    leads::RETENTION,
];

/// The tables that do not grow with use, and why, per owner.
pub const BOUNDED: &[&[Bounded]] = &[
    retention::FOUNDATION_BOUNDED,
    devices::BOUNDED,
    sync::BOUNDED,
    orders::BOUNDED,
    queue::BOUNDED,
    leads::BOUNDED,
    rights::BOUNDED,
    customers::BOUNDED,
    products::BOUNDED,
    updates::BOUNDED,
    ocr::BOUNDED,
    stats::BOUNDED,
    vips::BOUNDED,
];

/// Every module's OpenAPI fragment (`{"paths":{…},"schemas":{…}}`).
pub const OPENAPI_FRAGMENTS: &[&str] = &[
    queue::OPENAPI,
    queue::VISIT_OPENAPI,
    devices::OPENAPI,
    orders::OPENAPI,
    ocr::OPENAPI,
    stats::OPENAPI,
    vision::OPENAPI,
    products::OPENAPI,
    customers::OPENAPI,
    leads::OPENAPI,
    rights::OPENAPI,
];

/// The handles of the running modules.
#[derive(Debug, Clone)]
pub struct Modules {
    /// The lobby queue and the ticket printer.
    pub queue: Queue,
    /// STMs, the ID card reader, authorisation tasks.
    pub devices: Devices,
    /// Head-office orders and their step timers.
    pub orders: Orders,
    /// The OCR worker pool.
    pub ocr: Ocr,
    /// VIP recognition.
    pub vision: Vision,
    /// The head-office link.
    pub sync: Sync,
    /// The product shelf and the calculators.
    pub products: Products,
    /// Customers in the branch now.
    pub customers: Customers,
    /// Marketing leads.
    pub leads: Leads,
    /// Rights and coupons.
    pub rights: Rights,
    /// Roll-ups, statistics of any period, forecasts and the staffing plan.
    pub stats: Stats,
    /// Updates from head office (model files).
    pub updates: Updates,
}

impl Modules {
    /// Every module, built on `core` (nothing is started yet).
    pub fn new(core: &Core) -> Modules {
        let devices = Devices::new(core);
        Modules {
            updates: Updates::new(core),
            queue: Queue::new(core),
            orders: Orders::new(core),
            ocr: Ocr::new(core, &devices),
            vision: Vision::new(core),
            sync: Sync::new(core, &devices),
            products: Products::new(core, &devices),
            customers: Customers::new(core),
            leads: Leads::new(core),
            rights: Rights::new(core),
            stats: Stats::new(core),
            devices,
        }
    }

    /// Start every module's long-lived tasks (on the core's tracker).
    pub fn start(&self) {
        self.queue.start();
        self.devices.start();
        self.sync.start();
        self.orders.start();
        self.ocr.start();
        self.vision.start();
        self.products.start();
        self.customers.start();
        self.leads.start();
        self.stats.start();
        self.updates.start();
    }

    /// Every route of the daemon: the system and login routes, the event stream, the
    /// modules' routes, and the OpenAPI document describing them all.
    pub fn routes(&self, core: &Core, auth: &Auth) -> Vec<Route> {
        let mut routes = http::system_routes(core);
        routes.extend(auth.routes());
        routes.extend(http::sse::routes(core));
        routes.extend(alerts::routes(core));
        routes.extend(self.stats.routes());
        routes.extend(self.queue.routes());
        routes.extend(self.queue.visit_routes());
        routes.extend(self.devices.routes());
        routes.extend(self.orders.routes());
        routes.extend(self.ocr.routes());
        routes.extend(self.vision.routes());
        routes.extend(self.products.routes());
        routes.extend(self.customers.routes());
        routes.extend(self.leads.routes());
        routes.extend(self.rights.routes());
        let doc: Arc<OnceLock<String>> = Arc::default();
        routes.push(Route::get("/api/v1/openapi.json", Access::Staff).to(
            doc.clone(),
            |doc, _| async move {
                let body = doc.get().cloned().unwrap_or_default();
                Ok(warp::Reply::into_response(warp::reply::with_header(
                    body,
                    "content-type",
                    "application/json",
                )))
            },
        ));
        let specs: Vec<RouteSpec> = routes.iter().map(Route::spec).collect();
        let _ = doc.set(openapi::document(openapi::CORE, OPENAPI_FRAGMENTS, &specs));
        routes
    }
}

/// Prepare the demo: each module may start simulators and fill their device paths into
/// the demo config. The returned values keep the simulators alive.
pub fn demo_prepare(doc: &mut toml_edit::DocumentMut) -> anyhow::Result<Vec<Box<dyn Any + Send>>> {
    let mut keep = Vec::new();
    keep.extend(queue::demo_prepare(doc)?);
    keep.extend(devices::demo_prepare(doc)?);
    keep.extend(sync::demo_prepare(doc)?);
    keep.extend(orders::demo_prepare(doc)?);
    keep.extend(ocr::demo_prepare(doc)?);
    keep.extend(vision::demo_prepare(doc)?);
    Ok(keep)
}

/// Fill the demo's database as head office would have: products, customers, leads and
/// coupons (dates relative to today), before the daemon starts; and open the lobby's
/// counters with the demo's counter staff (their accounts exist by then).
pub fn demo_seed(store: &crate::store::Store, cfg: &crate::config::Config) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let today = crate::clock::business_date(cfg, now);
    products::demo::seed(store, today)?;
    customers::demo::seed(store, cfg, today)?;
    leads::demo::seed(store, now)?;
    rights::demo::seed(store, cfg, today)?;
    stats::demo::seed(store, cfg, today, 120)?;
    queue::demo_open_counters(store, cfg, now)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreError, migrate_to};

    #[test]
    fn every_openapi_fragment_is_json_with_paths() {
        for f in OPENAPI_FRAGMENTS {
            let v: serde_json::Value = serde_json::from_str(f).expect("valid JSON");
            assert!(v["paths"].is_object(), "{f}");
        }
    }

    #[test]
    fn migrations_apply_from_empty_and_from_every_earlier_version() {
        let all: &[Schema] = &[&[crate::store::CORE], SCHEMAS].concat();
        let total: usize = all.iter().map(|s| s.steps.len()).sum();
        for (m, schema) in all.iter().enumerate() {
            for start in 0..=schema.steps.len() {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("m.db");
                {
                    let mut conn = rusqlite::Connection::open(&path).unwrap();
                    // Earlier modules complete, this one at `start`, later ones absent.
                    for earlier in &all[..m] {
                        migrate_to(&mut conn, earlier, earlier.steps.len()).unwrap();
                    }
                    migrate_to(&mut conn, schema, start).unwrap();
                    if m > 0 || start >= 1 {
                        // Data written at the old version must survive the upgrade.
                        conn.execute(
                            "INSERT INTO events(seq, id, ts, kind, data) VALUES (1, 'x', 't', 'k', '{}')",
                            [],
                        )
                        .unwrap();
                        conn.execute("UPDATE meta SET value = '1' WHERE key = 'event_seq'", [])
                            .unwrap();
                    }
                }
                let what = format!("{} from v{start}", schema.module);
                let store = Store::open(&path, SCHEMAS).unwrap_or_else(|e| panic!("{what}: {e}"));
                let versions: usize = store
                    .read_blocking(|c| -> Result<i64, StoreError> {
                        Ok(
                            c.query_row("SELECT sum(version) FROM schema_versions", [], |r| {
                                r.get(0)
                            })?,
                        )
                    })
                    .unwrap() as usize;
                assert_eq!(versions, total, "{what}");
                let seq = store
                    .write_blocking(|tx| tx.emit("after.upgrade", serde_json::json!({})))
                    .unwrap();
                assert_eq!(seq, if m > 0 || start >= 1 { 2 } else { 1 }, "{what}");
                store.close();
            }
        }
    }
}
