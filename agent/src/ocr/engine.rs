//! The OCR engine: three ONNX sessions (detection, angle classification, recognition)
//! loaded from hash-checked files, and the pipeline from image bytes to text lines.

use std::path::Path;
use std::time::Instant;

use opencv::core::Mat;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::Tensor;

use super::det::{self, DetParams, Quad};
use super::rec::{self, Decoded, Dictionary, Readings};
use crate::image::{self, ImageError};
use crate::models::{self, ModelError, ModelSet, Shapes};

/// One recognised line.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Line {
    /// The text.
    pub text: String,
    /// Mean symbol probability.
    pub confidence: f32,
    /// Corners in the (upright) image, clockwise from top-left.
    #[serde(rename = "box")]
    pub quad: [[i32; 2]; 4],
    /// Per character of `text`, the recogniser's most likely readings (the character
    /// itself first); empty when not known. Not part of the API's answer.
    #[serde(skip)]
    pub readings: Vec<Readings>,
}

/// Time spent per stage, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Timing {
    /// Decoding the image.
    pub decode: f64,
    /// Text detection (pre-processing, model, post-processing).
    pub detect: f64,
    /// Angle classification of the lines.
    pub classify: f64,
    /// Line recognition.
    pub recognize: f64,
    /// Field extraction.
    pub extract: f64,
    /// Everything.
    pub total: f64,
}

/// Why recognition failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OcrError {
    /// The upload is not a usable image.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The models cannot be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Image processing failed.
    #[error("image processing: {0}")]
    Cv(#[from] opencv::Error),
    /// Inference failed.
    #[error("inference: {0}")]
    Inference(String),
    /// The image is not the document asked for.
    #[error(transparent)]
    WrongKind(#[from] super::fields::WrongKind),
}

impl From<ort::Error> for OcrError {
    fn from(e: ort::Error) -> Self {
        OcrError::Inference(e.to_string())
    }
}

/// The three sessions and the dictionary.
#[derive(Debug)]
pub struct Engine {
    det: Session,
    cls: Session,
    rec: Session,
    dict: Dictionary,
    /// Detection settings.
    pub det_params: DetParams,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

impl Engine {
    /// Load ONNX Runtime and the three models from `dir`, refusing any file whose SHA-256
    /// differs from the manifest. `threads`: intra-op threads per model.
    pub fn load(dir: &Path, threads: usize) -> Result<Engine, ModelError> {
        Engine::load_from(&ModelSet::shipped(dir), threads)
    }

    /// Load the three models from the files `set` names for them (a replacement sent by
    /// head office is checked against its own hash).
    pub fn load_from(set: &ModelSet, threads: usize) -> Result<Engine, ModelError> {
        let entries = models::manifest()?;
        // check every model before loading the runtime, so a bad file is named first
        let det_b = set.read_verified(&models::entry(&entries, "ocr_det")?)?;
        let cls_b = set.read_verified(&models::entry(&entries, "ocr_cls")?)?;
        let rec_b = set.read_verified(&models::entry(&entries, "ocr_rec")?)?;
        models::init_runtime(set.dir(), &entries)?;
        let det = models::session(&det_b, threads, Shapes::Varying)?;
        let cls = models::session(&cls_b, threads, Shapes::Varying)?;
        let rec = models::session(&rec_b, threads, Shapes::Varying)?;
        let chars = rec
            .metadata()
            .and_then(|m| m.custom("character"))
            .map_err(|e| ModelError::Runtime(e.to_string()))?
            .ok_or_else(|| {
                ModelError::Runtime("the recognition model has no `character` metadata".into())
            })?;
        let dict = Dictionary::from_metadata(&chars);
        Ok(Engine {
            det,
            cls,
            rec,
            dict,
            det_params: DetParams::default(),
        })
    }

    /// Decode, detect, classify and recognise: the lines in reading order.
    pub fn lines(&mut self, bytes: &[u8], timing: &mut Timing) -> Result<Vec<Line>, OcrError> {
        let t = Instant::now();
        let img = image::decode(bytes)?;
        timing.decode = ms(t);
        let t = Instant::now();
        let boxes = self.detect(&img)?;
        timing.detect = ms(t);
        let mut crops = Vec::with_capacity(boxes.len());
        for (q, _) in &boxes {
            crops.push(det::crop(&img, q)?);
        }
        let t = Instant::now();
        let turned = self.classify(&mut crops)?;
        timing.classify = ms(t);
        let t = Instant::now();
        let mut texts = self.recognize(&crops)?;
        // The classifier takes some upright runs of letters and digits (a credit code) for
        // upside down: a line it turned over is read the other way up too, and the more
        // confident reading kept.
        if !turned.is_empty() {
            let mut as_found = Vec::with_capacity(turned.len());
            for &i in &turned {
                let mut m = Mat::default();
                opencv::core::rotate(&crops[i], &mut m, opencv::core::ROTATE_180)?;
                as_found.push(m);
            }
            for (&i, d) in turned.iter().zip(self.recognize(&as_found)?) {
                if d.confidence > texts[i].confidence {
                    texts[i] = d;
                }
            }
        }
        timing.recognize = ms(t);
        Ok(boxes
            .iter()
            .zip(texts)
            .filter(|(_, d)| d.confidence >= rec::TEXT_SCORE && !d.text.trim().is_empty())
            .map(|((q, _), d)| Line {
                text: d.text,
                confidence: d.confidence,
                quad: q.map(|p| [p[0].round() as i32, p[1].round() as i32]),
                readings: d.readings,
            })
            .collect())
    }

    /// Text boxes in reading order.
    pub fn detect(&mut self, img: &Mat) -> Result<Vec<(Quad, f32)>, OcrError> {
        let p = self.det_params;
        let input = det::preprocess(img, &p)?;
        let tensor = Tensor::from_array(([1usize, 3, input.h, input.w], input.data.clone()))?;
        let outputs = self.det.run(ort::inputs!["x" => tensor])?;
        let (shape, prob) = outputs[0].try_extract_tensor::<f32>()?;
        let n: i64 = shape.iter().product();
        if n as usize != input.h * input.w {
            return Err(OcrError::Inference(format!(
                "unexpected detector output shape {shape:?}"
            )));
        }
        Ok(det::postprocess(prob, &input, img.cols(), img.rows(), &p)?)
    }

    /// Turn over the crops the classifier says are upside down; their indices.
    pub fn classify(&mut self, crops: &mut [Mat]) -> Result<Vec<usize>, OcrError> {
        let mut turned_over = Vec::new();
        for start in (0..crops.len()).step_by(rec::BATCH) {
            let end = (start + rec::BATCH).min(crops.len());
            let refs: Vec<&Mat> = crops[start..end].iter().collect();
            let data = rec::batch_input(&refs, rec::CLS_WIDTH)?;
            let n = refs.len();
            let tensor =
                Tensor::from_array(([n, 3, rec::HEIGHT as usize, rec::CLS_WIDTH as usize], data))?;
            let outputs = self.cls.run(ort::inputs!["x" => tensor])?;
            let (_, probs) = outputs[0].try_extract_tensor::<f32>()?;
            if probs.len() != n * 2 {
                return Err(OcrError::Inference("unexpected classifier output".into()));
            }
            let flip: Vec<bool> = probs
                .chunks_exact(2)
                .map(|p| p[1] > p[0] && p[1] > rec::ROTATE_THRESH)
                .collect();
            drop(outputs);
            for (i, f) in flip.into_iter().enumerate() {
                if f {
                    let mut turned = Mat::default();
                    opencv::core::rotate(&crops[start + i], &mut turned, opencv::core::ROTATE_180)?;
                    crops[start + i] = turned;
                    turned_over.push(start + i);
                }
            }
        }
        Ok(turned_over)
    }

    /// Recognise crops in batches of similar aspect ratio; results in the crops' order,
    /// each with the most likely readings of its characters.
    pub fn recognize(&mut self, crops: &[Mat]) -> Result<Vec<Decoded>, OcrError> {
        let mut order: Vec<usize> = (0..crops.len()).collect();
        let ratio = |m: &Mat| m.cols() as f32 / m.rows().max(1) as f32;
        order.sort_by(|&a, &b| ratio(&crops[a]).total_cmp(&ratio(&crops[b])));
        let mut out = vec![Decoded::default(); crops.len()];
        for chunk in order.chunks(rec::BATCH) {
            let refs: Vec<&Mat> = chunk.iter().map(|&i| &crops[i]).collect();
            let width = rec::rec_batch_width(&refs);
            let data = rec::batch_input(&refs, width)?;
            let n = refs.len();
            let tensor = Tensor::from_array(([n, 3, rec::HEIGHT as usize, width as usize], data))?;
            let outputs = self.rec.run(ort::inputs!["x" => tensor])?;
            let (shape, probs) = outputs[0].try_extract_tensor::<f32>()?;
            let classes = usize::try_from(*shape.last().unwrap_or(&0)).unwrap_or(0);
            if classes != self.dict.classes() || shape.len() != 3 || shape[0] as usize != n {
                return Err(OcrError::Inference(format!(
                    "recogniser output {shape:?} does not fit a dictionary of {} classes",
                    self.dict.classes()
                )));
            }
            let per = probs.len() / n;
            for (k, &i) in chunk.iter().enumerate() {
                out[i] = self.dict.decode_readings(
                    &probs[k * per..(k + 1) * per],
                    classes,
                    rec::READINGS,
                );
            }
        }
        Ok(out)
    }
}
