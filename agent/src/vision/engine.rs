//! The face engine: a detector and an embedder session loaded from hash-checked files,
//! and the steps from a frame to faces and from a face to its normalised embedding.

use std::path::Path;
use std::time::Instant;

use opencv::core::Mat;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::Tensor;

use super::align;
use super::detect::{self, Face, StrideOutput};
use crate::image::{self, ImageError};
use crate::models::faces::{self as models, DetectorSpec, EmbedderSpec};
use crate::models::{ModelError, ModelSet, Shapes, session};

/// Faces an enrolment photo may show besides the customer's: detections scoring under this
/// (partial faces at the edge, people far behind) are not counted.
pub const ENROL_MIN_SCORE: f32 = 0.75;

/// Images with a side under this many pixels are refused (no face fits).
pub const MIN_SIDE: i32 = 32;

/// Why a face step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaceError {
    /// Not a usable image.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Too small to hold a face.
    #[error("the image is {0}x{1} pixels; faces need at least {MIN_SIDE}x{MIN_SIDE}")]
    TooSmall(i32, i32),
    /// The models cannot be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Image processing failed.
    #[error("image processing: {0}")]
    Cv(#[from] opencv::Error),
    /// Inference failed.
    #[error("inference: {0}")]
    Inference(String),
}

impl From<ort::Error> for FaceError {
    fn from(e: ort::Error) -> Self {
        FaceError::Inference(e.to_string())
    }
}

/// Time spent per stage, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Timing {
    /// Decoding the image.
    pub decode: f64,
    /// Detection (scaling, model, decoding, NMS).
    pub detect: f64,
    /// Everything.
    pub total: f64,
}

/// The models to load from the manifest, and the detector's longest side per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelNames {
    /// A `face_detector` entry.
    pub detector: String,
    /// A `face_embedder` entry.
    pub embedder: String,
    /// See [`Detector::set_max_side`]; `None`: the model's own input size.
    pub detect_max_side: Option<usize>,
}

impl Default for ModelNames {
    fn default() -> Self {
        ModelNames {
            detector: "face_detector".into(),
            embedder: "face_embedder".into(),
            detect_max_side: None,
        }
    }
}

impl From<&crate::config::faces::FacesConfig> for ModelNames {
    fn from(cfg: &crate::config::faces::FacesConfig) -> Self {
        ModelNames {
            detector: cfg.detector.clone(),
            embedder: cfg.embedder.clone(),
            detect_max_side: Some(cfg.detect_max_side),
        }
    }
}

pub(crate) fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// The detector alone (enough for `branchd faces`).
#[derive(Debug)]
pub struct Detector {
    session: Session,
    /// Its manifest facts.
    pub spec: DetectorSpec,
    /// The longest side, in input pixels, of one run (a multiple of the largest stride).
    max_side: usize,
}

impl Detector {
    /// Load the detector `name` from `dir`, refusing a file whose SHA-256 differs.
    pub fn load(dir: &Path, name: &str, threads: usize) -> Result<Detector, ModelError> {
        Detector::load_from(&ModelSet::shipped(dir), name, threads)
    }

    /// Load the detector `name` from the file `set` names for it. The file's declared input
    /// size is freed, so that it runs at each image's own size.
    pub fn load_from(set: &ModelSet, name: &str, threads: usize) -> Result<Detector, ModelError> {
        let spec = models::detector_spec(crate::models::MANIFEST, name)?;
        let bytes = models::load_from(set, &spec.entry)?;
        let bytes = crate::models::onnx::free_input_size(&bytes, &spec.tensor)?;
        let mut d = Detector {
            session: session(&bytes, threads, Shapes::Fixed)?,
            max_side: 0,
            spec,
        };
        d.set_max_side(d.spec.width.max(d.spec.height));
        Ok(d)
    }

    /// Images with a longer side than `px` (rounded down to the largest stride) run as
    /// several passes: see [`detect::passes`].
    pub fn set_max_side(&mut self, px: usize) {
        let stride = self.stride();
        self.max_side = (px / stride).max(2) * stride;
    }

    /// The longest side of one run.
    pub fn max_side(&self) -> usize {
        self.max_side
    }

    fn stride(&self) -> usize {
        self.spec.strides.iter().copied().max().unwrap_or(32)
    }

    /// Faces in a BGR image (a photo), best first, in image pixels; see [`detect::passes`].
    pub fn detect(&mut self, img: &Mat) -> Result<Vec<Face>, FaceError> {
        check_size(img)?;
        let (w, h) = (img.cols(), img.rows());
        let passes = detect::passes(w, h, self.max_side as i32);
        if let [pass] = passes.as_slice() {
            return self.run(img, pass.scale);
        }
        // Where passes found the same face, the full-resolution one is kept: it saw the
        // face as a single run at the image's size would.
        let (mut full, mut scaled) = (Vec::new(), Vec::new());
        for pass in &passes {
            let part = Mat::roi(img, pass.rect)?;
            let mut found = self.run(&part, pass.scale)?;
            detect::place(&mut found, pass, w, h);
            if pass.scale == 1.0 {
                &mut full
            } else {
                &mut scaled
            }
            .extend(found);
        }
        let mut faces = detect::nms(full, self.spec.nms_iou, self.spec.top_k);
        faces.extend(detect::nms(scaled, self.spec.nms_iou, self.spec.top_k));
        let mut faces = detect::suppress(faces, self.spec.nms_iou);
        faces.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(faces)
    }

    /// Faces in a camera frame, best first: one run, the frame scaled down to the longest
    /// side when it is larger. At the entrance faces are near and large, and tiles would
    /// multiply the cost of every frame; photos go through [`Detector::detect`].
    pub fn detect_frame(&mut self, img: &Mat) -> Result<Vec<Face>, FaceError> {
        check_size(img)?;
        let scale = detect::fit(img.cols(), img.rows(), self.max_side as i32);
        self.run(img, scale)
    }

    /// One run of the model on `img` scaled by `scale`: faces in `img`'s pixels.
    fn run(
        &mut self,
        img: &(impl MatTraitConst + opencv::core::ToInputArray),
        scale: f32,
    ) -> Result<Vec<Face>, FaceError> {
        let mut input = detect::prepare(img, scale, self.stride())?;
        let spec = &self.spec;
        let (iw, ih) = (input.width, input.height);
        let data = std::mem::take(&mut input.data);
        let tensor = Tensor::from_array(([1usize, 3, ih, iw], data))?;
        let outputs = self
            .session
            .run(ort::inputs![spec.tensor.as_str() => tensor])?;
        let mut per_stride = Vec::with_capacity(spec.strides.len());
        for &s in &spec.strides {
            let n = (iw / s) * (ih / s);
            let o = StrideOutput {
                stride: s,
                cls: output(&outputs, &format!("cls_{s}"))?,
                obj: output(&outputs, &format!("obj_{s}"))?,
                bbox: output(&outputs, &format!("bbox_{s}"))?,
                kps: output(&outputs, &format!("kps_{s}"))?,
            };
            if o.cls.len() != n || o.bbox.len() != 4 * n || o.kps.len() != 10 * n {
                return Err(FaceError::Inference(format!(
                    "detector outputs of stride {s} do not have {n} cells"
                )));
            }
            per_stride.push(o);
        }
        Ok(detect::postprocess(&per_stride, spec, iw, input.scale))
    }

    /// Decode image bytes and detect: faces and timings.
    pub fn detect_bytes(&mut self, bytes: &[u8]) -> Result<(Vec<Face>, Timing), FaceError> {
        let start = Instant::now();
        let img = image::decode(bytes)?;
        let decode = ms(start);
        let t = Instant::now();
        let faces = self.detect(&img)?;
        let detect = ms(t);
        Ok((
            faces,
            Timing {
                decode,
                detect,
                total: ms(start),
            },
        ))
    }
}

/// One named output of a run as floats.
fn output<'a>(
    outputs: &'a ort::session::SessionOutputs<'_>,
    name: &str,
) -> Result<&'a [f32], FaceError> {
    let v = outputs
        .get(name)
        .ok_or_else(|| FaceError::Inference(format!("the model has no output {name}")))?;
    let (_, data) = v.try_extract_tensor::<f32>()?;
    Ok(data)
}

/// Refuse images too small to hold a face.
pub fn check_size(img: &Mat) -> Result<(), FaceError> {
    if img.cols() < MIN_SIDE || img.rows() < MIN_SIDE {
        return Err(FaceError::TooSmall(img.cols(), img.rows()));
    }
    Ok(())
}

/// The embedder.
#[derive(Debug)]
pub struct Embedder {
    session: Session,
    /// Its manifest facts.
    pub spec: EmbedderSpec,
}

impl Embedder {
    /// Load the embedder `name` from `dir`, refusing a file whose SHA-256 differs.
    pub fn load(dir: &Path, name: &str, threads: usize) -> Result<Embedder, ModelError> {
        Embedder::load_from(&ModelSet::shipped(dir), name, threads)
    }

    /// Load the embedder `name` from the file `set` names for it.
    pub fn load_from(set: &ModelSet, name: &str, threads: usize) -> Result<Embedder, ModelError> {
        let spec = models::embedder_spec(crate::models::MANIFEST, name)?;
        let bytes = models::load_from(set, &spec.entry)?;
        Ok(Embedder {
            session: session(&bytes, threads, Shapes::Fixed)?,
            spec,
        })
    }

    /// The aligned face crop of `face` in `img`.
    pub fn align(&self, img: &Mat, face: &Face) -> Result<Mat, FaceError> {
        Ok(align::align(
            img,
            &face.landmarks,
            &self.spec.template,
            self.spec.input_size,
        )?)
    }

    /// The L2-normalised embedding of an aligned crop.
    pub fn embed(&mut self, aligned: &Mat) -> Result<Vec<f32>, FaceError> {
        let n = self.spec.input_size;
        if aligned.cols() as usize != n || aligned.rows() as usize != n {
            return Err(FaceError::Inference(format!(
                "the aligned face is {}x{}, the embedder wants {n}x{n}",
                aligned.cols(),
                aligned.rows()
            )));
        }
        let data = detect::bgr_chw(aligned)?;
        let tensor = Tensor::from_array(([1usize, 3, n, n], data))?;
        let outputs = self
            .session
            .run(ort::inputs![self.spec.tensor.as_str() => tensor])?;
        let v = output(&outputs, &self.spec.output)?;
        if v.len() != self.spec.dim {
            return Err(FaceError::Inference(format!(
                "the embedder gave {} values, the manifest says {}",
                v.len(),
                self.spec.dim
            )));
        }
        normalise(v.to_vec())
            .ok_or_else(|| FaceError::Inference("the embedding is all zeros".into()))
    }
}

/// L2-normalise; `None` for a zero or non-finite vector.
pub fn normalise(mut v: Vec<f32>) -> Option<Vec<f32>> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm <= f32::EPSILON {
        return None;
    }
    for x in &mut v {
        *x /= norm;
    }
    Some(v)
}

/// Cosine of two normalised vectors (their dot product).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Detector and embedder together.
#[derive(Debug)]
pub struct FaceEngine {
    /// Finds faces.
    pub detector: Detector,
    /// Turns an aligned face into a vector.
    pub embedder: Embedder,
}

impl FaceEngine {
    /// Load both models (both hashes are checked before the runtime loads either).
    pub fn load(dir: &Path, names: &ModelNames, threads: usize) -> Result<FaceEngine, ModelError> {
        FaceEngine::load_from(&ModelSet::shipped(dir), names, threads)
    }

    /// Load both models from the files `set` names for them.
    pub fn load_from(
        set: &ModelSet,
        names: &ModelNames,
        threads: usize,
    ) -> Result<FaceEngine, ModelError> {
        let mut detector = Detector::load_from(set, &names.detector, threads)?;
        if let Some(px) = names.detect_max_side {
            detector.set_max_side(px);
        }
        Ok(FaceEngine {
            detector,
            embedder: Embedder::load_from(set, &names.embedder, threads)?,
        })
    }

    /// Every face of an image with its embedding.
    pub fn faces_with_embeddings(&mut self, img: &Mat) -> Result<Vec<(Face, Vec<f32>)>, FaceError> {
        let faces = self.detector.detect(img)?;
        let mut out = Vec::with_capacity(faces.len());
        for f in faces {
            let crop = self.embedder.align(img, &f)?;
            out.push((f, self.embedder.embed(&crop)?));
        }
        Ok(out)
    }

    /// The embedding of the one face of an enrolment photo: refused when there is no face
    /// or more than one scoring at least [`ENROL_MIN_SCORE`].
    pub fn enrolment_embedding(&mut self, bytes: &[u8]) -> Result<Vec<f32>, EnrolError> {
        let img = image::decode(bytes).map_err(FaceError::from)?;
        let mut faces = Vec::new();
        for f in self.detector.detect(&img)? {
            if f.score >= ENROL_MIN_SCORE {
                let crop = self.embedder.align(&img, &f)?;
                faces.push((f, self.embedder.embed(&crop)?));
            }
        }
        match faces.len() {
            0 => Err(EnrolError::NoFace),
            1 => Ok(faces.into_iter().next().map(|(_, e)| e).unwrap_or_default()),
            n => Err(EnrolError::SeveralFaces(n)),
        }
    }
}

/// Why a photo cannot be enrolled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrolError {
    /// The photo could not be processed.
    #[error(transparent)]
    Face(#[from] FaceError),
    /// No face found.
    #[error("no face found in the photo")]
    NoFace,
    /// Ambiguous.
    #[error("{0} faces found in the photo; an enrolment photo must show exactly one")]
    SeveralFaces(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_vectors_have_unit_length_and_zero_is_refused() {
        let v = normalise(vec![3.0, 4.0]).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert!((cosine(&v, &v) - 1.0).abs() < 1e-6);
        assert!(normalise(vec![0.0, 0.0]).is_none());
        assert!(normalise(vec![f32::NAN, 1.0]).is_none());
    }

    #[test]
    fn a_tiny_image_is_refused_with_its_size() {
        let img = Mat::new_rows_cols_with_default(
            1,
            1,
            opencv::core::CV_8UC3,
            opencv::core::Scalar::all(0.0),
        )
        .unwrap();
        let err = check_size(&img).unwrap_err();
        assert!(err.to_string().contains("1x1"), "{err}");
    }
}
