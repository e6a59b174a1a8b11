//! The registry of domain modules: their schemas, routes, OpenAPI fragments, start hooks and
//! demo set-up. Adding a module is one line in each list below.

use std::any::Any;

use warp::Filter;
use warp::reply::Response;

use crate::app::App;
use crate::http::routes::RouteSpec;
use crate::store::{CORE, Schema};
use crate::{devices, ocr, orders, queue, stats, sync, vision};

/// Every module's schema, in migration order.
pub const SCHEMAS: &[Schema] = &[
    CORE,
    queue::SCHEMA,
    devices::SCHEMA,
    sync::SCHEMA,
    orders::SCHEMA,
    ocr::SCHEMA,
    stats::SCHEMA,
    vision::SCHEMA,
];

/// Every module's route table.
pub const ROUTE_TABLES: &[&[RouteSpec]] = &[
    crate::http::routes::CORE_ROUTES,
    queue::ROUTES,
    devices::ROUTES,
    sync::ROUTES,
    orders::ROUTES,
    ocr::ROUTES,
    stats::ROUTES,
    vision::ROUTES,
];

/// Every module's OpenAPI fragment (`{"paths":{…},"schemas":{…}}`).
pub const OPENAPI_FRAGMENTS: &[&str] = &[
    queue::OPENAPI,
    devices::OPENAPI,
    sync::OPENAPI,
    orders::OPENAPI,
    ocr::OPENAPI,
    stats::OPENAPI,
    vision::OPENAPI,
];

/// The modules' routes.
pub fn router(app: &App) -> warp::filters::BoxedFilter<(Response,)> {
    queue::routes(app)
        .or(devices::routes(app))
        .unify()
        .or(sync::routes(app))
        .unify()
        .or(orders::routes(app))
        .unify()
        .or(ocr::routes(app))
        .unify()
        .or(stats::routes(app))
        .unify()
        .or(vision::routes(app))
        .unify()
        .boxed()
}

/// Start every module's long-lived tasks (on the app's tracker).
pub fn start(app: &App) -> anyhow::Result<()> {
    queue::start(app)?;
    devices::start(app)?;
    sync::start(app)?;
    orders::start(app)?;
    ocr::start(app)?;
    vision::start(app)?;
    Ok(())
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
