//! Face detection with YuNet: letterbox to the model's fixed input (keep the aspect ratio,
//! pad bottom-right with 0), decode the anchor-free outputs of every stride
//! (score = sqrt(cls·obj)), non-maximum suppression, and map boxes and landmarks back to the
//! original image.

use opencv::core::{Mat, Rect, Scalar, Size};
use opencv::imgproc;
use opencv::prelude::*;

use crate::models::faces::DetectorSpec;

/// One detected face, in original image pixels.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Face {
    /// `[x, y, w, h]`, top-left corner and size.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Detection confidence in [0, 1].
    pub score: f32,
    /// Right eye, left eye, nose tip, right and left mouth corner (`[x, y]` each).
    pub landmarks: [[f32; 2]; 5],
}

impl Face {
    /// The shorter side of the box.
    pub fn size(&self) -> f32 {
        self.bbox[2].min(self.bbox[3])
    }

    /// Rounded to 0.1 px and 0.001 score, for output.
    pub fn rounded(&self) -> Face {
        let r = |v: f32| (v * 10.0).round() / 10.0;
        Face {
            bbox: self.bbox.map(r),
            score: (self.score * 1000.0).round() / 1000.0,
            landmarks: self.landmarks.map(|p| p.map(r)),
        }
    }
}

/// The letterboxed input: NCHW f32 (BGR, 0–255) and the scale back to the image.
#[derive(Debug)]
pub struct Letterboxed {
    /// `[1, 3, h, w]` values.
    pub data: Vec<f32>,
    /// Input pixels per image pixel.
    pub scale: f32,
}

/// Scale `img` to fit `w`×`h` keeping its aspect ratio, pad bottom-right with 0, and lay
/// it out as CHW floats (BGR, 0–255).
pub fn letterbox(img: &Mat, w: usize, h: usize) -> opencv::Result<Letterboxed> {
    let (iw, ih) = (img.cols().max(1) as f32, img.rows().max(1) as f32);
    let scale = (w as f32 / iw).min(h as f32 / ih);
    let nw = ((iw * scale).round() as i32).clamp(1, w as i32);
    let nh = ((ih * scale).round() as i32).clamp(1, h as i32);
    let mut resized = Mat::default();
    imgproc::resize(
        img,
        &mut resized,
        Size::new(nw, nh),
        0.0,
        0.0,
        if scale < 1.0 {
            imgproc::INTER_AREA
        } else {
            imgproc::INTER_LINEAR
        },
    )?;
    let mut canvas = Mat::new_rows_cols_with_default(
        h as i32,
        w as i32,
        opencv::core::CV_8UC3,
        Scalar::all(0.0),
    )?;
    {
        let mut roi = Mat::roi_mut(&mut canvas, Rect::new(0, 0, nw, nh))?;
        resized.copy_to(&mut roi)?;
    }
    Ok(Letterboxed {
        data: bgr_chw(&canvas)?,
        scale,
    })
}

/// A continuous BGR u8 image as CHW floats (0–255).
pub fn bgr_chw(img: &Mat) -> opencv::Result<Vec<f32>> {
    let owned;
    let img = if img.is_continuous() {
        img
    } else {
        owned = img.try_clone()?;
        &owned
    };
    let bytes = img.data_bytes()?;
    let plane = (img.rows() * img.cols()) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, px) in bytes.chunks_exact(3).enumerate() {
        out[i] = f32::from(px[0]);
        out[plane + i] = f32::from(px[1]);
        out[2 * plane + i] = f32::from(px[2]);
    }
    Ok(out)
}

/// The four outputs of one stride, each flattened.
#[derive(Debug, Clone, Copy)]
pub struct StrideOutput<'a> {
    /// The stride in input pixels.
    pub stride: usize,
    /// `[N]` class scores.
    pub cls: &'a [f32],
    /// `[N]` objectness.
    pub obj: &'a [f32],
    /// `[N, 4]` box offsets.
    pub bbox: &'a [f32],
    /// `[N, 10]` landmark offsets.
    pub kps: &'a [f32],
}

/// Decode the outputs of every stride into faces in input pixels, above the threshold.
pub fn decode(outputs: &[StrideOutput<'_>], input_w: usize, threshold: f32) -> Vec<Face> {
    let mut faces = Vec::new();
    for o in outputs {
        let cols = input_w / o.stride;
        let n = o
            .cls
            .len()
            .min(o.obj.len())
            .min(o.bbox.len() / 4)
            .min(o.kps.len() / 10);
        let s = o.stride as f32;
        for i in 0..n {
            let cls = o.cls[i].clamp(0.0, 1.0);
            let obj = o.obj[i].clamp(0.0, 1.0);
            let score = (cls * obj).sqrt();
            if score < threshold {
                continue;
            }
            let (row, col) = ((i / cols) as f32, (i % cols) as f32);
            let b = &o.bbox[i * 4..i * 4 + 4];
            let cx = (col + b[0]) * s;
            let cy = (row + b[1]) * s;
            let w = b[2].exp() * s;
            let h = b[3].exp() * s;
            let k = &o.kps[i * 10..i * 10 + 10];
            let mut landmarks = [[0.0f32; 2]; 5];
            for (j, l) in landmarks.iter_mut().enumerate() {
                *l = [(col + k[2 * j]) * s, (row + k[2 * j + 1]) * s];
            }
            faces.push(Face {
                bbox: [cx - w / 2.0, cy - h / 2.0, w, h],
                score,
                landmarks,
            });
        }
    }
    faces
}

/// Intersection over union of two `[x, y, w, h]` boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let x1 = a[0].max(b[0]);
    let y1 = a[1].max(b[1]);
    let x2 = (a[0] + a[2]).min(b[0] + b[2]);
    let y2 = (a[1] + a[3]).min(b[1] + b[3]);
    let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Greedy non-maximum suppression: the best `top_k` by score, then drop every face that
/// overlaps a better kept one by more than `iou_threshold`.
pub fn nms(mut faces: Vec<Face>, iou_threshold: f32, top_k: usize) -> Vec<Face> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    faces.truncate(top_k);
    let mut kept: Vec<Face> = Vec::new();
    for f in faces {
        if kept.iter().all(|k| iou(&k.bbox, &f.bbox) <= iou_threshold) {
            kept.push(f);
        }
    }
    kept
}

/// Map faces from letterboxed input pixels back to the image.
pub fn unletterbox(faces: &mut [Face], scale: f32) {
    let inv = 1.0 / scale;
    for f in faces {
        f.bbox = f.bbox.map(|v| v * inv);
        f.landmarks = f.landmarks.map(|p| p.map(|v| v * inv));
    }
}

/// Decode, suppress and map back: the detector's post-processing in one call.
pub fn postprocess(outputs: &[StrideOutput<'_>], spec: &DetectorSpec, scale: f32) -> Vec<Face> {
    let raw = decode(outputs, spec.width, spec.score_threshold);
    let mut faces = nms(raw, spec.nms_iou, spec.top_k);
    unletterbox(&mut faces, scale);
    faces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DetectorSpec {
        crate::models::faces::detector_spec(crate::models::MANIFEST, "face_detector").unwrap()
    }

    #[test]
    fn a_cell_decodes_to_its_box_and_landmarks() {
        // stride 32, a 2x2 grid (input 64): one confident cell at row 1, col 0
        let cls = [0.0, 0.0, 0.81, 0.0];
        let obj = [0.0, 0.0, 1.0, 0.0];
        let mut bbox = [0.0f32; 16];
        bbox[8..12].copy_from_slice(&[0.5, 0.25, 0.0, (2.0f32).ln()]);
        let mut kps = [0.0f32; 40];
        kps[20..30].copy_from_slice(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]);
        let out = StrideOutput {
            stride: 32,
            cls: &cls,
            obj: &obj,
            bbox: &bbox,
            kps: &kps,
        };
        let faces = decode(&[out], 64, 0.6);
        assert_eq!(faces.len(), 1);
        let f = faces[0];
        assert!((f.score - 0.9).abs() < 1e-6, "sqrt(0.81 * 1)");
        // cx = (0 + 0.5) * 32 = 16, cy = (1 + 0.25) * 32 = 40, w = 32, h = 64
        let want = [0.0, 8.0, 32.0, 64.0];
        for (a, b) in f.bbox.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "{:?}", f.bbox);
        }
        assert!((f.landmarks[0][0] - 3.2).abs() < 1e-4);
        assert!((f.landmarks[0][1] - 38.4).abs() < 1e-4);
        assert!((f.landmarks[4][1] - 64.0).abs() < 1e-4);
    }

    #[test]
    fn scores_below_the_threshold_are_dropped() {
        let out = StrideOutput {
            stride: 32,
            cls: &[0.3],
            obj: &[1.0],
            bbox: &[0.0; 4],
            kps: &[0.0; 10],
        };
        // sqrt(0.3) = 0.548 < 0.6
        assert!(decode(&[out], 32, 0.6).is_empty());
        assert_eq!(decode(&[out], 32, 0.5).len(), 1);
    }

    fn face(x: f32, score: f32) -> Face {
        Face {
            bbox: [x, 0.0, 10.0, 10.0],
            score,
            landmarks: [[0.0; 2]; 5],
        }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_and_all_separate_ones() {
        // 0 and 2 overlap by IoU 8/12 = 0.67; 30 is apart; 5 overlaps 0 by 5/15 = 0.33
        let kept = nms(
            vec![
                face(2.0, 0.7),
                face(0.0, 0.9),
                face(30.0, 0.8),
                face(5.0, 0.65),
            ],
            0.3,
            5000,
        );
        let xs: Vec<f32> = kept.iter().map(|f| f.bbox[0]).collect();
        assert_eq!(xs, vec![0.0, 30.0]);
        let kept = nms(vec![face(0.0, 0.9), face(5.0, 0.65)], 0.4, 5000);
        assert_eq!(kept.len(), 2);
        assert_eq!(nms(vec![face(0.0, 0.9), face(50.0, 0.8)], 0.3, 1).len(), 1);
    }

    #[test]
    fn iou_of_identical_disjoint_and_half_boxes() {
        let a = [0.0, 0.0, 10.0, 10.0];
        assert!((iou(&a, &a) - 1.0).abs() < 1e-6);
        assert_eq!(iou(&a, &[20.0, 0.0, 10.0, 10.0]), 0.0);
        assert!((iou(&a, &[5.0, 0.0, 10.0, 10.0]) - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn a_wide_image_is_letterboxed_top_left_and_mapped_back() {
        let spec = spec();
        let img = Mat::new_rows_cols_with_default(
            100,
            200,
            opencv::core::CV_8UC3,
            Scalar::new(10.0, 20.0, 30.0, 0.0),
        )
        .unwrap();
        let lb = letterbox(&img, spec.width, spec.height).unwrap();
        assert!((lb.scale - 3.2).abs() < 1e-6);
        let plane = 640 * 640;
        assert_eq!(lb.data.len(), 3 * plane);
        // inside the image: B, G, R planes; below row 320: padding
        assert_eq!(lb.data[0], 10.0);
        assert_eq!(lb.data[plane], 20.0);
        assert_eq!(lb.data[2 * plane], 30.0);
        assert_eq!(lb.data[319 * 640 + 639], 10.0);
        assert_eq!(lb.data[320 * 640], 0.0);
        let mut faces = vec![Face {
            bbox: [64.0, 32.0, 320.0, 160.0],
            score: 0.9,
            landmarks: [[320.0, 160.0]; 5],
        }];
        unletterbox(&mut faces, lb.scale);
        assert_eq!(faces[0].bbox, [20.0, 10.0, 100.0, 50.0]);
        assert_eq!(faces[0].landmarks[3], [100.0, 50.0]);
    }
}
