//! VIP arrival: on-device face recognition from the entrance cameras.
//!
//! Frames from each `[[cameras]]` source ([`camera`]: OpenCV `VideoCapture`, sampled, only
//! the latest kept) → [`detect`] (YuNet, letterboxed) → [`align`] (5-point similarity onto
//! the embedder's template) → embedding ([`engine`]) → [`matcher`] (cosine, threshold and
//! margin, quality gates, confirmed over several frames) → [`gallery::recognised`] (an
//! audit record, and unless the customer arrived within the period a `vip.arrived` event
//! and an alert). Models and their facts come from the manifest
//! ([`crate::models::faces`]); the VIP records and embeddings are the [`crate::vips`]
//! module's. A durable consumer of `ticket.issued` links an arrival to the ticket the
//! customer then takes ([`gallery::ticketed`]).
//!
//! Privacy: frames are never written to disk; faces that match nobody are dropped at once;
//! enrolment photos are deleted in the transaction that stores their embedding; events
//! carry no image and no embedding. `[faces] enabled = false` switches recognition off.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::business_day;
use crate::core::Core;
use crate::http::{Access, Route, ok_json};
use crate::retention::{Cutoff, Rule};
use crate::store::Schema;
use crate::users::Role;

pub mod align;
pub mod camera;
pub mod cli;
pub mod demo;
pub mod detect;
pub mod engine;
pub mod gallery;
pub mod matcher;

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

/// VIP arrivals are personal data: they go after `[retention] arrivals_days`.
pub const RETENTION: &[Rule] = &[Rule {
    table: "vision_arrivals",
    old: "ts < ?1",
    cutoff: Cutoff::Time,
    keep: |c| c.retention.arrivals,
}];

const VIP_ROLES: Access = Access::Roles(&[Role::LobbyManager, Role::BranchManager]);

/// This module's OpenAPI fragment.
pub const OPENAPI: &str = r##"{"paths":{"/api/v1/vip/arrivals":{"get":{
 "summary":"Today's VIP arrivals recognised by the cameras, newest first",
 "responses":{"401":{"$ref":"#/components/responses/Error"},"403":{"$ref":"#/components/responses/Error"},
  "200":{"description":"the arrivals of the business day","content":{"application/json":{"schema":{
  "type":"object","required":["arrivals"],"properties":{"arrivals":{"type":"array","items":{"$ref":"#/components/schemas/VipArrival"}}}}}}}}}}},
 "schemas":{"VipArrival":{"type":"object","required":["id","customer_id","tags","confidence","camera","ts","seen_at"],"properties":{
  "id":{"type":"integer"},"customer_id":{"type":"string"},"name":{"type":"string","nullable":true},
  "level":{"type":"string","nullable":true},"tags":{"type":"array","items":{"type":"string"}},
  "relationship_manager":{"type":"string","nullable":true},"confidence":{"type":"number"},
  "camera":{"type":"string"},"ts":{"type":"string","format":"date-time"},
  "seen_at":{"type":"string","format":"date-time","description":"when the camera read the frame that confirmed the arrival"},
  "ticket":{"type":"string","nullable":true,"description":"the ticket the customer took afterwards"}}}}}"##;

/// The photo a replacement face detector must find a face in before it is used
/// (`models/selftest`: a public-domain portrait).
const SELFTEST_FACE: &[u8] = include_bytes!("../../../models/selftest/face.jpg");

/// Load the face detector `detector` as `models` names it and run it on the bundled
/// portrait: the number of faces found scoring at least [`engine::ENROL_MIN_SCORE`], or
/// `Err` with the reason when there is none. Runs on the caller's thread (a worker).
pub fn selftest(
    models: &crate::models::ModelSet,
    detector: &str,
    threads: usize,
) -> Result<usize, String> {
    let mut d =
        engine::Detector::load_from(models, detector, threads).map_err(|e| e.to_string())?;
    let (faces, _) = d
        .detect_bytes(SELFTEST_FACE)
        .map_err(|e| format!("the self-test photo was not read: {e}"))?;
    match faces
        .iter()
        .filter(|f| f.score >= engine::ENROL_MIN_SCORE)
        .count()
    {
        0 => Err("no face found in the self-test photo".into()),
        n => Ok(n),
    }
}

/// The vision module's handle.
#[derive(Debug, Clone)]
pub struct Vision {
    core: Core,
    /// Bumped whenever the gallery may have changed; camera workers reload on a change.
    gallery_gen: Arc<AtomicU64>,
}

impl Vision {
    /// VIP recognition as `[faces]` says (nothing is opened here).
    pub fn new(core: &Core) -> Vision {
        Vision {
            core: core.clone(),
            gallery_gen: Arc::default(),
        }
    }

    /// Tell the camera workers to reload the gallery.
    pub fn gallery_changed(&self) {
        self.gallery_gen.fetch_add(1, Ordering::Relaxed);
    }

    /// The gallery's generation (changes whenever it may have changed).
    pub fn gallery_gen(&self) -> u64 {
        self.gallery_gen.load(Ordering::Relaxed)
    }

    /// `GET /api/v1/vip/arrivals`.
    pub fn routes(&self) -> Vec<Route> {
        vec![Route::get("/api/v1/vip/arrivals", VIP_ROLES).to(
            self.core.clone(),
            |core, _| async move {
                let day = business_day(&core.cfg, core.clock.now());
                let a = core.store.read(move |c| gallery::arrivals(c, &day)).await?;
                Ok(ok_json(&serde_json::json!({ "arrivals": a })))
            },
        )]
    }

    /// Start the module's tasks: the arrival-to-ticket link, and (unless recognition is
    /// disabled) the enrolment of photos from head office and one task per camera.
    pub fn start(&self) {
        let core = &self.core;
        let cfg = core.cfg.clone();
        core.spawn(crate::store::consume(
            core.store.clone(),
            gallery::TICKETS,
            core.cancel.clone(),
            gallery::is_customer_ticket,
            move |tx, ev| gallery::ticketed(tx, &cfg, ev).map(|_| ()),
        ));
        if !core.cfg.faces.enabled {
            if !core.cfg.cameras.is_empty() {
                tracing::info!("face recognition is disabled ([faces] enabled = false)");
            }
            camera::refuse_all_photos(self);
            return;
        }
        camera::start_enrolment(self);
        for cam in &core.cfg.cameras {
            camera::start_camera(self, cam.clone());
        }
    }
}

/// Demo set-up: an entrance camera playing people arriving, when the photos and models
/// are there ([`demo`]).
pub fn demo_prepare(doc: &mut toml_edit::DocumentMut) -> anyhow::Result<Vec<Box<dyn Any + Send>>> {
    demo::prepare(doc)?;
    Ok(Vec::new())
}
