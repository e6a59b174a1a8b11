//! The data of head office's VIP commands (`vip.upsert`, `vip.delete`), read strictly:
//! every problem named, nothing applied unless all is well.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::command::Fields;
use crate::config::faces::FacesConfig;

/// A VIP record from head office. Never leaves the box again (no biometrics upstream).
#[derive(Debug, Clone, PartialEq)]
pub struct Vip {
    /// Head office's customer id.
    pub customer_id: String,
    /// Display name.
    pub name: String,
    /// Customer level, e.g. `gold`.
    pub level: String,
    /// e.g. `birthday`, `maturing_deposit`.
    pub tags: Vec<String>,
    /// The customer's relationship manager.
    pub relationship_manager: Option<String>,
    /// Whether the customer consented to face recognition.
    pub consent: bool,
    /// A photo to enrol locally (decoded), kept only until it is enrolled.
    pub photo: Option<Vec<u8>>,
    /// A ready embedding and the id of the model that produced it.
    pub embedding: Option<(Vec<f32>, String)>,
}

/// Largest photo accepted for local enrolment.
const MAX_PHOTO: usize = 5 << 20;

/// Parse and check the `data` of `vip.upsert`; the error names every problem.
pub fn upsert(data: &Map<String, Value>, faces: &FacesConfig) -> Result<Vip, String> {
    let mut f = Fields::new(data);
    let customer_id = f.string("customer_id", 64);
    let name = f.string("name", 100);
    let level = f.string("level", 32);
    let tags = f.opt_strings("tags", 50, 64).unwrap_or_default();
    let relationship_manager = f.opt_string("relationship_manager", 64);
    let consent = f.bool("consent");
    let photo = f.opt_string("photo", usize::MAX).and_then(|p| {
        match base64::engine::general_purpose::STANDARD.decode(p.as_bytes()) {
            Ok(b) if b.is_empty() => {
                f.problem("`photo` is empty");
                None
            }
            Ok(b) if b.len() > MAX_PHOTO => {
                f.problem(format!("`photo` is larger than {MAX_PHOTO} bytes"));
                None
            }
            Ok(b) => Some(b),
            Err(e) => {
                f.problem(format!("`photo` is not base64: {e}"));
                None
            }
        }
    });
    let embedding = f.opt_floats("embedding", 32, 4096);
    let model_id = f.opt_string("model_id", 64);
    let sent_embedding = embedding.is_some();
    let embedding = match (embedding, model_id) {
        // an embedding is only comparable with those of the same model
        (Some(_), Some(m)) if m != faces.model_id => {
            f.problem(format!(
                "`model_id` `{m}` does not match this branch's face embedder `{}`; \
                 send a photo or an embedding made by `{}`",
                faces.model_id, faces.model_id
            ));
            None
        }
        (Some(e), Some(_)) if e.len() != faces.dim => {
            f.problem(format!(
                "`embedding` has {} values; `{}` makes {}",
                e.len(),
                faces.model_id,
                faces.dim
            ));
            None
        }
        (Some(e), Some(m)) => Some((e, m)),
        (None, None) => None,
        (Some(_), None) => {
            f.problem("`model_id` is required with `embedding`");
            None
        }
        (None, Some(_)) => {
            f.problem("`model_id` is only meaningful with `embedding`");
            None
        }
    };
    if photo.is_some() && sent_embedding {
        f.problem("give either `photo` or `embedding`, not both");
    }
    if consent == Some(false) && (photo.is_some() || sent_embedding) {
        f.problem("`consent` is false: no face may be enrolled");
    }
    f.finish()?;
    Ok(Vip {
        customer_id: customer_id.unwrap_or_default(),
        name: name.unwrap_or_default(),
        level: level.unwrap_or_default(),
        tags,
        relationship_manager,
        consent: consent.unwrap_or(false),
        photo,
        embedding,
    })
}

/// Parse the `data` of `vip.delete`: the customer id.
pub fn delete(data: &Map<String, Value>) -> Result<String, String> {
    let mut f = Fields::new(data);
    let c = f.string("customer_id", 64);
    f.finish()?;
    Ok(c.unwrap_or_default())
}
