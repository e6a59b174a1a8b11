//! OCR of ID cards and business licences on the box.
//!
//! Image bytes → [`crate::image`] (header checks, decode with EXIF orientation) → [`det`] (DB text
//! detection) → angle classification and batched recognition ([`rec`], CTC) → [`fields`]
//! (layout, labels, checks). Models come from the models directory and are refused when
//! their SHA-256 differs from `models/manifest.toml` ([`crate::models`]). Inference runs on the
//! [`pool`]'s own threads behind a bounded queue. Uploaded images are never stored; the
//! `ocr.completed` event says which document and which fields were found and validated,
//! never their values.

use std::any::Any;
use std::collections::BTreeMap;
use std::time::Instant;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::http::StatusCode;

use crate::config::DeviceKind;
use crate::core::Core;
use crate::devices::Devices;
use crate::http::error::ApiError;
use crate::http::{Access, Reply, Request, Route, ok_json};
use crate::image;
use crate::retention::Bounded;
use crate::store::Schema;
use crate::users::Role;

pub mod chip;
pub mod cli;
pub mod det;
pub mod engine;
pub mod expiry;
pub mod fields;
pub mod pool;
pub mod rec;
pub mod retention;

use engine::{Engine, Line, OcrError, Timing};
use fields::{DocKind, Field, Requested, Side};

/// Largest accepted upload.
pub const MAX_BODY: u64 = 10 * 1024 * 1024;

/// This module's tables: images kept for a configured period (none by default).
pub const SCHEMA: Schema = Schema {
    module: "ocr",
    steps: &[retention::STEP_1],
};

/// Kept document images go at their own time (`[ocr] keep_images_min`).
pub const BOUNDED: &[Bounded] = &[Bounded {
    table: "ocr_images",
    why: "each deleted at its delete_at by the OCR module",
}];

const OCR_ROLES: Access = Access::Roles(&[Role::LobbyManager, Role::BranchManager]);

/// This module's OpenAPI fragment.
pub const OPENAPI: &str = r##"{"paths":{"/api/v1/ocr":{"post":{
 "summary":"Recognise an ID card or business licence photo",
 "parameters":[{"name":"kind","in":"query","schema":{"type":"string","enum":["id-card","licence","auto"],"default":"auto"}},
  {"name":"reader","in":"query","description":"check an ID card against the chip this reader read last; `auto`: the latest card on any reader, if one was read lately (no check otherwise)","schema":{"type":"string"}}],
 "requestBody":{"required":true,"content":{"image/jpeg":{"schema":{"type":"string","format":"binary"}},"image/png":{"schema":{"type":"string","format":"binary"}}}},
 "responses":{"200":{"description":"fields, lines and timings","content":{"application/json":{"schema":{"$ref":"#/components/schemas/OcrResult"}}}},
  "400":{"description":"not a usable image, a bad kind or an unknown reader"},
  "409":{"description":"no recent card on the reader"},"413":{"description":"over 10 MB"},
  "415":{"description":"not image/jpeg or image/png"},"422":{"description":"not the document asked for"},
  "503":{"description":"busy or models unavailable"},
  "401":{"$ref":"#/components/responses/Error"},"403":{"$ref":"#/components/responses/Error"}}}}},
 "schemas":{"OcrResult":{"type":"object","required":["kind","fields","lines","timing_ms"],"properties":{
  "id":{"type":"string","description":"this recognition, as named by its ocr.completed event and when its fields are filled into a record"},
  "kind":{"type":"string","enum":["id_card","licence"]},
  "side":{"type":"string","enum":["front","back"]},
  "fields":{"type":"object","additionalProperties":{"type":"object","required":["value","confidence"],"properties":{
    "value":{"type":"string"},"confidence":{"type":"number"},"valid":{"type":"boolean"},"suggestion":{"type":"string"}}}},
  "lines":{"type":"array","items":{"type":"object","properties":{"text":{"type":"string"},"confidence":{"type":"number"},
    "box":{"type":"array","items":{"type":"array","items":{"type":"integer"}}}}}},
  "timing_ms":{"type":"object","additionalProperties":{"type":"number"}},
  "expiry":{"type":"object","description":"ID cards whose validity date is known (the back side's valid_to, else the chip's of the same card), judged against the branch's local date",
   "required":["source","long_term","expired"],"properties":{
    "source":{"type":"string","enum":["chip","photo"]},"long_term":{"type":"boolean"},"expired":{"type":"boolean"},
    "expires_in_days":{"type":"integer","description":"only within 30 days of the last valid day"},
    "hint":{"type":"object","properties":{"code":{"type":"string","enum":["id_expired","id_expires_soon"]},
      "params":{"type":"object","properties":{"days":{"type":"integer"}}}}}}},
  "image":{"type":"object","description":"only with [ocr] keep_images_min","properties":{"id":{"type":"string"},"delete_at":{"type":"string","format":"date-time"}}},
  "chip_check":{"type":"object","properties":{"source":{"type":"string"},"read_s_ago":{"type":"integer"},
    "fields":{"type":"object","additionalProperties":{"type":"string","enum":["match","mismatch","missing"]}},
    "mismatches":{"type":"array","items":{"type":"string"}},"all_match":{"type":"boolean"},
    "chip":{"type":"object","additionalProperties":{"type":"string"}}}}}}}}"##;

/// The answer of `branchd ocr --json` and `POST /api/v1/ocr`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OcrResult {
    /// This recognition's id (the `id` of its `ocr.completed`), named when its fields are
    /// filled into a record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Which document.
    pub kind: DocKind,
    /// ID cards: which side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// The fields found.
    pub fields: BTreeMap<String, Field>,
    /// Every recognised line.
    pub lines: Vec<Line>,
    /// Per-stage time.
    pub timing_ms: Timing,
    /// With chip data of the same card: the per-field comparison.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chip_check: Option<chip::ChipCheck>,
    /// ID cards with a validity date (the chip's, or a back side's): expired, or expiring
    /// soon, against the branch's local date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<expiry::Expiry>,
    /// With a retention period configured: the kept upload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<retention::KeptImage>,
}

/// Recognise one image with an engine (on the caller's thread).
pub fn recognise(
    engine: &mut Engine,
    bytes: &[u8],
    kind: Requested,
) -> Result<OcrResult, OcrError> {
    let start = Instant::now();
    let mut timing = Timing::default();
    let lines = engine.lines(bytes, &mut timing)?;
    let t = Instant::now();
    let doc = fields::extract(&lines, kind)?;
    timing.extract = t.elapsed().as_secs_f64() * 1000.0;
    timing.total = start.elapsed().as_secs_f64() * 1000.0;
    let round = |v: f64| (v * 10.0).round() / 10.0;
    let timing = Timing {
        decode: round(timing.decode),
        detect: round(timing.detect),
        classify: round(timing.classify),
        recognize: round(timing.recognize),
        extract: round(timing.extract),
        total: round(timing.total),
    };
    Ok(OcrResult {
        id: None,
        kind: doc.kind,
        side: doc.side,
        fields: doc.fields,
        lines,
        timing_ms: timing,
        chip_check: None,
        expiry: None,
        image: None,
    })
}

/// The ID card photo a replacement OCR model must read before it is used, and what it
/// must read there (`models/selftest`).
const SELFTEST_CARD: &[u8] = include_bytes!("../../../models/selftest/id-card.jpg");
const SELFTEST_TRUTH: &str = include_str!("../../../models/selftest/id-card.json");

/// Load the OCR models as `models` names them and read the bundled ID card photo: `Err`
/// with the reason unless every field of the card comes out exactly. Runs on the caller's
/// thread (a worker, never the async runtime).
pub fn selftest(models: &crate::models::ModelSet, threads: usize) -> Result<(), String> {
    let truth: BTreeMap<String, String> =
        serde_json::from_str(SELFTEST_TRUTH).map_err(|e| format!("self-test truth: {e}"))?;
    let mut engine = Engine::load_from(models, threads).map_err(|e| e.to_string())?;
    let r = recognise(&mut engine, SELFTEST_CARD, Requested::IdCard)
        .map_err(|e| format!("the self-test card was not read: {e}"))?;
    for (key, want) in &truth {
        let got = r.fields.get(key).map(|f| f.value.as_str());
        if got != Some(want.as_str()) {
            return Err(format!(
                "the self-test card's `{key}` was read as {got:?}, not {want:?}"
            ));
        }
    }
    Ok(())
}

/// The OCR module's handle: the worker pool, and the ID card readers' recent chips (to
/// check a photo of the card against).
#[derive(Debug, Clone)]
pub struct Ocr {
    core: Core,
    devices: Devices,
    pool: Arc<pool::Pool>,
}

impl Ocr {
    /// The worker pool as `[ocr]` says: threads start now, models load on the first
    /// request.
    pub fn new(core: &Core, devices: &Devices) -> Ocr {
        let cfg = &core.cfg;
        Ocr {
            core: core.clone(),
            devices: devices.clone(),
            pool: Arc::new(pool::Pool::start(
                core.models.clone(),
                cfg.ocr.workers,
                cfg.ocr.queue,
                cfg.ocr.threads,
            )),
        }
    }

    /// Queue an image.
    pub fn submit(
        &self,
        bytes: Vec<u8>,
        kind: Requested,
    ) -> Result<tokio::sync::oneshot::Receiver<pool::Reply>, pool::SubmitError> {
        self.pool.submit(bytes, kind)
    }

    /// The model generation the workers' engine was last loaded at, if any was.
    pub fn loaded_generation(&self) -> Option<u64> {
        self.pool.loaded_generation()
    }

    /// `POST /api/v1/ocr`.
    pub fn routes(&self) -> Vec<Route> {
        vec![
            Route::post("/api/v1/ocr", OCR_ROLES)
                .bytes(MAX_BODY)
                .to(self.clone(), handle),
        ]
    }

    /// Start the module's tasks: deletion timers of kept images; stop the worker pool when
    /// the daemon stops.
    pub fn start(&self) {
        retention::resume(&self.core);
        let (cancel, pool) = (self.core.cancel.clone(), self.pool.clone());
        self.core.spawn(async move {
            cancel.cancelled().await;
            let _ = tokio::task::spawn_blocking(move || pool.stop()).await;
        });
    }
}

/// The event sent when a document was recognised: its id, kind, side, which fields were
/// found and which passed or failed their check, whether an ID card is expired or expires
/// soon. Never a value.
pub fn completed_event(r: &OcrResult) -> serde_json::Value {
    let validated: BTreeMap<&str, bool> = r
        .fields
        .iter()
        .filter_map(|(k, f)| f.valid.map(|v| (k.as_str(), v)))
        .collect();
    let mut event = serde_json::json!({
        "id": r.id,
        "kind": r.kind,
        "side": r.side,
        "fields_found": r.fields.keys().collect::<Vec<_>>(),
        "validated": validated,
    });
    if let Some(c) = &r.chip_check {
        // which fields differ from the chip, never what they say
        event["chip_check"] =
            serde_json::json!({"all_match": c.all_match, "mismatches": c.mismatches});
    }
    if let Some(e) = &r.expiry {
        // whether the card is expired or expires soon, never its date
        event["expired"] = serde_json::json!(e.expired);
        event["expires_soon"] = serde_json::json!(e.expires_soon());
    }
    event
}

/// Map a recognition error to the API's error.
pub fn api_error(e: &OcrError) -> ApiError {
    use image::ImageError as I;
    match e {
        OcrError::Image(I::TooLarge(..)) => ApiError::bad_request("image_too_large", e.to_string()),
        OcrError::Image(I::Empty(..)) => ApiError::bad_request("empty_image", e.to_string()),
        OcrError::Image(I::NotAnImage) => ApiError::bad_request("not_an_image", e.to_string()),
        OcrError::Image(_) => ApiError::bad_request("invalid_image", e.to_string()),
        OcrError::WrongKind(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong_kind",
            e.to_string(),
        ),
        OcrError::Model(m) => {
            tracing::error!(error = %m, "OCR unavailable");
            ApiError::unavailable("ocr_unavailable", e.to_string())
        }
        OcrError::Cv(_) | OcrError::Inference(_) => {
            tracing::warn!(error = %e, "OCR failed");
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ocr_failed",
                "the image could not be processed",
            )
        }
    }
}

#[derive(Debug, Deserialize)]
struct KindQuery {
    kind: Option<String>,
    /// Check an ID card against the chip this reader read last.
    reader: Option<String>,
}

async fn handle(ocr: Ocr, req: Request) -> Reply {
    let q: KindQuery = req.query()?;
    let content_type = req.header("content-type").map(str::to_string);
    let body = req.body().clone();
    let kind: Requested = q
        .kind
        .as_deref()
        .unwrap_or("auto")
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid_kind", e))?;
    let ct = content_type.unwrap_or_default();
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "image/jpeg" && mime != "image/png" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the photo as image/jpeg or image/png, not {mime:?}"),
        ));
    }
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "not_an_image",
            "the request body is empty",
        ));
    }
    // cheap checks here, so a bad upload never takes a worker's place in the queue
    image::sniff(&body).map_err(|e| api_error(&OcrError::Image(e)))?;
    let chip = match q.reader.as_deref() {
        None => None,
        // the PAD's way: whichever reader read a card lately, if any
        Some("auto") => latest_chip(&ocr),
        Some(reader) => Some((reader.to_string(), recent_chip(&ocr, reader)?)),
    };
    let rx = ocr.submit(body.to_vec(), kind).map_err(|e| match e {
        pool::SubmitError::Busy => {
            let mut err = ApiError::unavailable("ocr_busy", e.to_string());
            err.retry_after = Some(1);
            err
        }
        pool::SubmitError::Stopped => ApiError::unavailable("shutting_down", e.to_string()),
    })?;
    let mut result = rx
        .await
        .map_err(|_| ApiError::unavailable("shutting_down", "the recogniser has stopped"))?
        .map_err(|e| api_error(&e))?;
    let mut chip_validity = None;
    if let Some((reader, (card, age))) = chip {
        let check = chip::check(&result, &card, &reader, Some(age.as_secs())).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_an_id_card",
                e.to_string(),
            )
        })?;
        // the chip's validity speaks for the photographed card only if it is the same card
        if check.fields.get("id_number") == Some(&chip::Verdict::Match) {
            chip_validity = Some(card.valid_to);
        }
        result.chip_check = Some(check);
    }
    if result.kind == fields::DocKind::IdCard {
        let today = crate::clock::local_date(&ocr.core.cfg, ocr.core.clock.now());
        let photo = result.fields.get("valid_to").map(|f| f.value.as_str());
        result.expiry = expiry::of(photo, chip_validity, today);
    }
    result.id = Some(ulid::Ulid::new().to_string());
    let event = completed_event(&result);
    let ext = if mime == "image/png" { "png" } else { "jpg" };
    let kind = serde_json::to_value(result.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    result.image = retention::commit(&ocr.core, body.to_vec(), ext, kind, event)
        .await
        .map_err(|e| match e {
            retention::KeepError::Store(e) => ApiError::from(e),
            e @ retention::KeepError::Io(_) => {
                tracing::error!(error = %e, "cannot keep an OCR image");
                ApiError::unavailable("storage_failed", e.to_string())
            }
        })?;
    Ok(ok_json(&result))
}

/// The card read most recently on any reader within the window, if any.
fn latest_chip(
    ocr: &Ocr,
) -> Option<(
    String,
    (branchd_drivers::idreader::CardText, std::time::Duration),
)> {
    let within = ocr.core.cfg.id_reader.chip_check_window;
    ocr.core
        .cfg
        .devices
        .iter()
        .filter(|d| d.kind == DeviceKind::IdReader)
        .filter_map(|d| Some((d.id.clone(), ocr.devices.recent_card(&d.id, within)?)))
        .min_by_key(|(_, (_, age))| *age)
}

/// The card the reader read last, if recent enough to be the one photographed.
fn recent_chip(
    ocr: &Ocr,
    reader: &str,
) -> Result<(branchd_drivers::idreader::CardText, std::time::Duration), ApiError> {
    let known = ocr
        .core
        .cfg
        .devices
        .iter()
        .any(|d| d.id == reader && d.kind == DeviceKind::IdReader);
    if !known {
        return Err(ApiError::bad_request(
            "unknown_reader",
            format!("no ID card reader `{reader}` in this branch"),
        ));
    }
    let within = ocr.core.cfg.id_reader.chip_check_window;
    ocr.devices.recent_card(reader, within).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_chip_data",
            format!(
                "no card was read on {reader} in the last {} s: put the card on the reader, then take the photo",
                within.as_secs()
            ),
        )
    })
}

/// Demo set-up (nothing to simulate).
pub fn demo_prepare(_doc: &mut toml_edit::DocumentMut) -> anyhow::Result<Vec<Box<dyn Any + Send>>> {
    Ok(Vec::new())
}
