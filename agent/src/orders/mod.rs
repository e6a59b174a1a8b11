//! The orders module.

use std::any::Any;

use warp::Filter;
use warp::reply::Response;

use crate::app::App;
use crate::http::routes::RouteSpec;
use crate::store::Schema;

/// This module's tables.
pub const SCHEMA: Schema = Schema {
    module: "orders",
    steps: &[],
};

/// This module's routes.
pub const ROUTES: &[RouteSpec] = &[];

/// This module's OpenAPI fragment.
pub const OPENAPI: &str = r#"{"paths":{}}"#;

/// The module's shared state, held by the [`App`].
#[derive(Debug, Default)]
pub struct State {}

impl State {
    /// Build from the validated config.
    pub fn new(_cfg: &crate::config::Config) -> anyhow::Result<State> {
        Ok(State {})
    }
}

/// The routes.
pub fn routes(_app: &App) -> warp::filters::BoxedFilter<(Response,)> {
    warp::any()
        .and_then(|| async { Err::<Response, _>(warp::reject::not_found()) })
        .boxed()
}

/// Start the module's tasks.
pub fn start(_app: &App) -> anyhow::Result<()> {
    Ok(())
}

/// Demo set-up (simulators).
pub fn demo_prepare(_doc: &mut toml_edit::DocumentMut) -> anyhow::Result<Vec<Box<dyn Any + Send>>> {
    Ok(Vec::new())
}
