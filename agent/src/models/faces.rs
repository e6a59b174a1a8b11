//! The face models' facts from the model manifest: which file, its input size, the
//! detector's decoding parameters and the embedder's alignment template. Nothing about a
//! model is hard-coded here, so another detector or embedder listed in the manifest can
//! replace the default one by configuration (`[faces] detector` / `embedder`).

use std::path::Path;

use crate::models::{self, ModelEntry, ModelError};

/// The detector's decoding facts (`[models.input]` of a `face_detector` entry).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorSpec {
    /// The manifest entry.
    pub entry: ModelEntry,
    /// Input tensor name.
    pub tensor: String,
    /// Fixed input width.
    pub width: usize,
    /// Fixed input height.
    pub height: usize,
    /// Feature strides, e.g. 8, 16, 32.
    pub strides: Vec<usize>,
    /// Faces scoring below this are dropped.
    pub score_threshold: f32,
    /// Non-maximum suppression IoU.
    pub nms_iou: f32,
    /// At most this many candidates enter NMS.
    pub top_k: usize,
}

/// The embedder's facts (`[models.input]` of a `face_embedder` entry).
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedderSpec {
    /// The manifest entry.
    pub entry: ModelEntry,
    /// The id stored beside every embedding it makes (the file name without `.onnx`).
    pub model_id: String,
    /// Input tensor name.
    pub tensor: String,
    /// Output tensor name.
    pub output: String,
    /// Square input side in pixels.
    pub input_size: usize,
    /// Embedding length.
    pub dim: usize,
    /// Five landmark positions in [0, 1], in the detector's landmark order.
    pub template: [[f32; 2]; 5],
    /// The manifest's suggested match threshold (cosine).
    pub match_threshold: Option<f32>,
}

fn input_table<'d>(
    doc: &'d toml_edit::DocumentMut,
    name: &str,
) -> Result<&'d toml_edit::Table, ModelError> {
    let models = doc
        .get("models")
        .and_then(|m| m.as_array_of_tables())
        .ok_or_else(|| ModelError::Manifest("no [[models]] entries".into()))?;
    let t = models
        .iter()
        .find(|t| t.get("name").and_then(|v| v.as_str()) == Some(name))
        .ok_or_else(|| ModelError::NotInManifest(format!("model `{name}`")))?;
    t.get("input")
        .and_then(|i| i.as_table())
        .ok_or_else(|| ModelError::Manifest(format!("`{name}` has no [models.input]")))
}

fn bad(name: &str, key: &str) -> ModelError {
    ModelError::Manifest(format!(
        "`{name}`: [models.input] `{key}` is missing or invalid"
    ))
}

fn int(t: &toml_edit::Table, name: &str, key: &str) -> Result<usize, ModelError> {
    t.get(key)
        .and_then(|v| v.as_integer())
        .filter(|v| *v > 0)
        .map(|v| v as usize)
        .ok_or_else(|| bad(name, key))
}

fn float(t: &toml_edit::Table, name: &str, key: &str) -> Result<f32, ModelError> {
    t.get(key)
        .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
        .map(|v| v as f32)
        .ok_or_else(|| bad(name, key))
}

fn string(t: &toml_edit::Table, name: &str, key: &str) -> Result<String, ModelError> {
    t.get(key)
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| bad(name, key))
}

fn by_name(entries: &[ModelEntry], name: &str, role: &str) -> Result<ModelEntry, ModelError> {
    let e = entries
        .iter()
        .find(|e| e.name == name)
        .cloned()
        .ok_or_else(|| ModelError::NotInManifest(format!("model `{name}`")))?;
    if e.role != role {
        return Err(ModelError::Manifest(format!(
            "model `{name}` is a {}, not a {role}",
            e.role
        )));
    }
    Ok(e)
}

/// The detector `name` of a manifest text.
pub fn detector_spec(text: &str, name: &str) -> Result<DetectorSpec, ModelError> {
    let entries = models::parse_manifest(text)?;
    let entry = by_name(&entries, name, "face_detector")?;
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| ModelError::Manifest(e.to_string()))?;
    let t = input_table(&doc, name)?;
    let strides = t
        .get("strides")
        .and_then(|v| v.as_array())
        .and_then(|a| {
            a.iter()
                .map(|v| v.as_integer().filter(|s| *s > 0).map(|s| s as usize))
                .collect::<Option<Vec<_>>>()
        })
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(name, "strides"))?;
    Ok(DetectorSpec {
        tensor: string(t, name, "tensor")?,
        width: int(t, name, "width")?,
        height: int(t, name, "height")?,
        strides,
        score_threshold: float(t, name, "score_threshold")?,
        nms_iou: float(t, name, "nms_iou_threshold")?,
        top_k: int(t, name, "top_k")?,
        entry,
    })
}

/// The embedder `name` of a manifest text.
pub fn embedder_spec(text: &str, name: &str) -> Result<EmbedderSpec, ModelError> {
    let entries = models::parse_manifest(text)?;
    let entry = by_name(&entries, name, "face_embedder")?;
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| ModelError::Manifest(e.to_string()))?;
    let t = input_table(&doc, name)?;
    if t.get("alignment").and_then(|v| v.as_str()) != Some("similarity_5pt") {
        return Err(bad(name, "alignment"));
    }
    let rows = t
        .get("alignment_template")
        .and_then(|v| v.as_array())
        .ok_or_else(|| bad(name, "alignment_template"))?;
    let mut template = [[0.0f32; 2]; 5];
    if rows.len() != 5 {
        return Err(bad(name, "alignment_template"));
    }
    for (i, row) in rows.iter().enumerate() {
        let xy = row
            .as_array()
            .filter(|a| a.len() == 2)
            .and_then(|a| {
                let x = a.get(0)?.as_float()?;
                let y = a.get(1)?.as_float()?;
                Some([x as f32, y as f32])
            })
            .ok_or_else(|| bad(name, "alignment_template"))?;
        template[i] = xy;
    }
    let model_id = entry
        .file
        .rsplit('/')
        .next()
        .unwrap_or(&entry.file)
        .trim_end_matches(".onnx")
        .to_string();
    Ok(EmbedderSpec {
        model_id,
        tensor: string(t, name, "tensor")?,
        output: string(t, name, "output")?,
        input_size: int(t, name, "input_size")?,
        dim: int(t, name, "output_dim")?,
        template,
        match_threshold: t
            .get("match_threshold")
            .and_then(|v| v.as_float())
            .map(|v| v as f32),
        entry,
    })
}

/// Read a face model's bytes, refusing a file whose SHA-256 differs from the manifest,
/// and make sure ONNX Runtime is loaded.
pub fn load_checked(dir: &Path, entry: &ModelEntry) -> Result<Vec<u8>, ModelError> {
    load_from(&models::ModelSet::shipped(dir), entry)
}

/// Like [`load_checked`], from the file `set` names for the entry (a replacement is checked
/// against its own hash).
pub fn load_from(set: &models::ModelSet, entry: &ModelEntry) -> Result<Vec<u8>, ModelError> {
    let bytes = set.read_verified(entry)?;
    models::init_runtime(set.dir(), &models::manifest()?)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_manifest_describes_yunet_and_the_embedder() {
        let d = detector_spec(models::MANIFEST, "face_detector").unwrap();
        assert_eq!((d.width, d.height), (640, 640));
        assert_eq!(d.strides, vec![8, 16, 32]);
        assert!((d.nms_iou - 0.3).abs() < 1e-6);
        assert!((d.score_threshold - 0.6).abs() < 1e-6);
        let e = embedder_spec(models::MANIFEST, "face_embedder").unwrap();
        assert_eq!(e.input_size, 128);
        assert_eq!(e.dim, 256);
        assert_eq!(e.model_id, "face_reidentification_retail_0095");
        assert!((e.template[2][0] - 0.5003).abs() < 1e-6);
    }

    #[test]
    fn another_embedder_is_read_from_its_own_entry() {
        let text = models::MANIFEST.to_string()
            + r#"
[[models]]
name = "sface"
role = "face_embedder"
file = "face_recognition_sface_2021dec.onnx"
sha256 = "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"
bytes = 38696353
licence = "Apache-2.0"
version = "SFace 2021dec"
[models.input]
tensor = "data"
input_size = 112
output = "fc1"
output_dim = 128
alignment = "similarity_5pt"
alignment_template = [[0.3419, 0.4616], [0.6565, 0.4598], [0.5002, 0.6405], [0.3710, 0.8247], [0.6315, 0.8232]]
"#;
        let e = embedder_spec(&text, "sface").unwrap();
        assert_eq!((e.input_size, e.dim), (112, 128));
        assert_eq!(e.model_id, "face_recognition_sface_2021dec");
        assert_eq!(e.tensor, "data");
        assert!(e.match_threshold.is_none());
    }

    #[test]
    fn a_wrong_role_or_missing_entry_is_named() {
        let err = embedder_spec(models::MANIFEST, "face_detector").unwrap_err();
        assert!(err.to_string().contains("face_detector"), "{err}");
        let err = detector_spec(models::MANIFEST, "nope").unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn a_corrupt_face_model_is_refused_by_its_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let e = embedder_spec(models::MANIFEST, "face_embedder").unwrap();
        std::fs::write(dir.path().join(&e.entry.file), b"garbage").unwrap();
        let err = load_checked(dir.path(), &e.entry).unwrap_err();
        assert!(matches!(err, ModelError::Hash { .. }), "{err}");
        assert!(err.to_string().contains("sha256 mismatch"), "{err}");
    }
}
