//! VIP arrival: on-device face recognition from the entrance cameras.
//!
//! Frames from each `[[cameras]]` source ([`camera`]: OpenCV `VideoCapture`, sampled, only
//! the latest kept) → [`detect`] (YuNet, letterboxed) → [`align`] (5-point similarity onto
//! the embedder's template) → embedding ([`engine`]) → [`matcher`] (cosine, threshold and
//! margin, quality gates, confirmed over several frames) → [`gallery::recognised`] (an
//! audit record, and unless the customer arrived within the period a `vip.arrived` event
//! and an alert). Models and their facts come from the manifest ([`models`]).
//!
//! Privacy: frames are never written to disk; faces that match nobody are dropped at once;
//! enrolment photos are deleted in the transaction that stores their embedding; events
//! carry no image and no embedding. `[faces] enabled = false` switches recognition off.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use warp::Filter;
use warp::reply::Response;

use crate::app::App;
use crate::http::auth::{Authed, guard, respond};
use crate::http::error::ApiError;
use crate::http::ok_json;
use crate::http::routes::{Access, RouteSpec, route};
use crate::store::Schema;
use crate::users::Role;

pub mod align;
pub mod camera;
pub mod cli;
pub mod config;
pub mod demo;
pub mod detect;
pub mod engine;
pub mod gallery;
pub mod matcher;
pub mod models;

/// This module's tables.
pub const SCHEMA: Schema = Schema {
    module: "vision",
    steps: &[
        // 1: arrivals (no image, no embedding: who, where, when, how sure).
        "CREATE TABLE vision_arrivals (
             id INTEGER PRIMARY KEY,
             day TEXT NOT NULL,
             ts TEXT NOT NULL,
             at_ms INTEGER NOT NULL,
             customer_id TEXT NOT NULL,
             camera TEXT NOT NULL,
             confidence REAL NOT NULL
         ) STRICT;
         CREATE INDEX vision_arrivals_day ON vision_arrivals(day);
         CREATE INDEX vision_arrivals_customer ON vision_arrivals(customer_id, at_ms);",
        // 2: when the camera read the confirming frame; the ticket the customer then took.
        "ALTER TABLE vision_arrivals ADD COLUMN seen_at TEXT;
         ALTER TABLE vision_arrivals ADD COLUMN ticket TEXT;
         ALTER TABLE vision_arrivals ADD COLUMN ticketed_at TEXT;",
    ],
};

const VIP_ROLES: Access = Access::Roles(&[Role::LobbyManager, Role::BranchManager]);

/// This module's routes.
pub const ROUTES: &[RouteSpec] = &[route(
    "GET",
    "/api/v1/vip/arrivals",
    VIP_ROLES,
    "/api/v1/vip/arrivals",
)];

/// This module's OpenAPI fragment.
pub const OPENAPI: &str = r##"{"paths":{"/api/v1/vip/arrivals":{"get":{
 "summary":"Today's VIP arrivals recognised by the cameras, newest first",
 "responses":{"200":{"description":"the arrivals of the business day","content":{"application/json":{"schema":{
  "type":"object","required":["arrivals"],"properties":{"arrivals":{"type":"array","items":{"$ref":"#/components/schemas/VipArrival"}}}}}}}}}}},
 "schemas":{"VipArrival":{"type":"object","required":["id","customer_id","tags","confidence","camera","ts","seen_at"],"properties":{
  "id":{"type":"integer"},"customer_id":{"type":"string"},"name":{"type":"string","nullable":true},
  "level":{"type":"string","nullable":true},"tags":{"type":"array","items":{"type":"string"}},
  "relationship_manager":{"type":"string","nullable":true},"confidence":{"type":"number"},
  "camera":{"type":"string"},"ts":{"type":"string","format":"date-time"},
  "seen_at":{"type":"string","format":"date-time","description":"when the camera read the frame that confirmed the arrival"},
  "ticket":{"type":"string","nullable":true,"description":"the ticket the customer took afterwards"}}}}}"##;

/// The module's shared state.
#[derive(Debug, Default)]
pub struct State {
    /// Bumped whenever the gallery may have changed; camera workers reload on a change.
    pub gallery_gen: Arc<AtomicU64>,
}

impl State {
    /// Build from the validated config (nothing is opened here).
    pub fn new(_cfg: &crate::config::Config) -> anyhow::Result<State> {
        Ok(State::default())
    }

    /// Tell the camera workers to reload the gallery.
    pub fn gallery_changed(&self) {
        self.gallery_gen.fetch_add(1, Ordering::Relaxed);
    }
}

/// The routes.
pub fn routes(app: &App) -> warp::filters::BoxedFilter<(Response,)> {
    let app = app.clone();
    warp::path!("api" / "v1" / "vip" / "arrivals")
        .and(warp::get())
        .and(guard(&app, "GET", "/api/v1/vip/arrivals"))
        .then(move |_: Authed| {
            let app = app.clone();
            async move {
                let day = crate::queue::ops::business_day(&app.cfg, Utc::now());
                let r = app
                    .store
                    .read(move |c| gallery::arrivals(c, &day))
                    .await
                    .map(|a| ok_json(&serde_json::json!({ "arrivals": a })))
                    .map_err(ApiError::from);
                respond(r)
            }
        })
        .boxed()
}

/// Start the module's tasks: the enrolment of photos from head office and one task per
/// camera — unless recognition is disabled.
pub fn start(app: &App) -> anyhow::Result<()> {
    if !app.cfg.faces.enabled {
        if !app.cfg.cameras.is_empty() {
            tracing::info!("face recognition is disabled ([faces] enabled = false)");
        }
        return Ok(());
    }
    camera::start_enrolment(app);
    for cam in &app.cfg.cameras {
        camera::start_camera(app, cam.clone());
    }
    Ok(())
}

/// Demo set-up: an entrance camera playing people arriving, when the photos and models
/// are there ([`demo`]).
pub fn demo_prepare(doc: &mut toml_edit::DocumentMut) -> anyhow::Result<Vec<Box<dyn Any + Send>>> {
    demo::prepare(doc)?;
    Ok(Vec::new())
}
