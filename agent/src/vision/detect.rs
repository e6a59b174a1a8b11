//! Face detection with YuNet at the image's own size: pad bottom-right with 0 to the
//! model's stride, decode the anchor-free outputs of every stride (score = sqrt(cls·obj)),
//! non-maximum suppression, and map boxes and landmarks back to the original image. An
//! image larger than the configured longest side runs as [`passes`]: scaled down whole, and
//! in overlapping full-resolution tiles.

use opencv::core::{Mat, Rect, Size, ToInputArray, Vec3b};
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

/// One run of the detector: an image (or a part of one) scaled by `scale`, laid out as
/// CHW floats (BGR, 0–255) and padded bottom-right with 0 to a multiple of the stride.
#[derive(Debug)]
pub struct Input {
    /// `[1, 3, height, width]` values.
    pub data: Vec<f32>,
    /// Padded width.
    pub width: usize,
    /// Padded height.
    pub height: usize,
    /// Input pixels per image pixel.
    pub scale: f32,
}

/// Scale `img` by `scale` (1: as it is) and pad it to a multiple of `stride`.
pub fn prepare(
    img: &(impl MatTraitConst + ToInputArray),
    scale: f32,
    stride: usize,
) -> opencv::Result<Input> {
    if scale == 1.0 {
        return padded(img, stride, scale);
    }
    let w = ((img.cols() as f32 * scale).round() as i32).max(1);
    let h = ((img.rows() as f32 * scale).round() as i32).max(1);
    let mut out = Mat::default();
    let how = if scale < 1.0 {
        imgproc::INTER_AREA
    } else {
        imgproc::INTER_LINEAR
    };
    imgproc::resize(img, &mut out, Size::new(w, h), 0.0, 0.0, how)?;
    padded(&out, stride, scale)
}

fn padded(img: &impl MatTraitConst, stride: usize, scale: f32) -> opencv::Result<Input> {
    let up = |v: i32| (v.max(1) as usize).div_ceil(stride) * stride;
    let (width, height) = (up(img.cols()), up(img.rows()));
    Ok(Input {
        data: bgr_chw_padded(img, width, height)?,
        width,
        height,
        scale,
    })
}

/// A BGR u8 image (continuous or a region of a larger one) as CHW floats in a
/// `width`×`height` canvas, 0 where the image does not reach.
pub fn bgr_chw_padded(
    img: &impl MatTraitConst,
    width: usize,
    height: usize,
) -> opencv::Result<Vec<f32>> {
    let plane = width * height;
    let mut out = vec![0.0f32; 3 * plane];
    let (b, rest) = out.split_at_mut(plane);
    let (g, r) = rest.split_at_mut(plane);
    for y in 0..(img.rows().max(0) as usize).min(height) {
        let row = img.at_row::<Vec3b>(y as i32)?;
        let at = y * width;
        for (x, px) in row.iter().take(width).enumerate() {
            b[at + x] = f32::from(px[0]);
            g[at + x] = f32::from(px[1]);
            r[at + x] = f32::from(px[2]);
        }
    }
    Ok(out)
}

/// A part of the image the detector runs on, at a scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pass {
    /// The part, in image pixels.
    pub rect: Rect,
    /// Input pixels per image pixel.
    pub scale: f32,
}

/// The scale that brings a `w`×`h` image within `max_side` pixels per side (1: it fits).
pub fn fit(w: i32, h: i32, max_side: i32) -> f32 {
    let long = w.max(h);
    if long <= max_side {
        1.0
    } else {
        max_side as f32 / long as f32
    }
}

/// How to detect in a `w`×`h` image with at most `max_side` input pixels per side (a
/// multiple of the stride). An image that fits runs once at its own size. A larger one runs
/// scaled down to fit, which finds the faces large enough to survive that, and in
/// full-resolution tiles of `max_side`×`max_side` overlapping by a quarter of it, which find
/// the small ones: a face up to that overlap lies whole in some tile.
pub fn passes(w: i32, h: i32, max_side: i32) -> Vec<Pass> {
    let whole = Pass {
        rect: Rect::new(0, 0, w, h),
        scale: fit(w, h, max_side),
    };
    if whole.scale == 1.0 {
        return vec![whole];
    }
    let mut out = vec![whole];
    let step = max_side - max_side / 4;
    let starts = |len: i32| -> Vec<i32> {
        if len <= max_side {
            return vec![0];
        }
        let mut v: Vec<i32> = (0..)
            .map(|i| i * step)
            .take_while(|x| x + max_side < len)
            .collect();
        v.push(len - max_side);
        v
    };
    for y in starts(h) {
        for x in starts(w) {
            out.push(Pass {
                rect: Rect::new(x, y, max_side.min(w), max_side.min(h)),
                scale: 1.0,
            });
        }
    }
    out
}

/// Faces closer than this to a side of a tile that lies inside the image are cut by it.
const CUT_MARGIN: f32 = 2.0;

/// Move faces found in `pass` (in its pixels) into the image (`w`×`h`), dropping those a
/// side of the tile inside the image cuts: another pass has them whole.
pub fn place(faces: &mut Vec<Face>, pass: &Pass, w: i32, h: i32) {
    let r = pass.rect;
    let (x0, y0) = (r.x as f32, r.y as f32);
    faces.retain(|f| {
        let [x, y, fw, fh] = f.bbox;
        let cut_left = r.x > 0 && x < CUT_MARGIN;
        let cut_top = r.y > 0 && y < CUT_MARGIN;
        let cut_right = r.x + r.width < w && x + fw > r.width as f32 - CUT_MARGIN;
        let cut_bottom = r.y + r.height < h && y + fh > r.height as f32 - CUT_MARGIN;
        !(cut_left || cut_top || cut_right || cut_bottom)
    });
    for f in faces.iter_mut() {
        f.bbox[0] += x0;
        f.bbox[1] += y0;
        for l in &mut f.landmarks {
            l[0] += x0;
            l[1] += y0;
        }
    }
}

/// A BGR u8 image as CHW floats (0–255).
pub fn bgr_chw(img: &Mat) -> opencv::Result<Vec<f32>> {
    bgr_chw_padded(img, img.cols().max(0) as usize, img.rows().max(0) as usize)
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
    suppress(faces, iou_threshold)
}

/// Keep each face, in the given order, unless it overlaps a kept one by more than
/// `iou_threshold`.
pub fn suppress(faces: Vec<Face>, iou_threshold: f32) -> Vec<Face> {
    let mut kept: Vec<Face> = Vec::new();
    for f in faces {
        if kept.iter().all(|k| iou(&k.bbox, &f.bbox) <= iou_threshold) {
            kept.push(f);
        }
    }
    kept
}

/// Map faces from input pixels back to the image.
pub fn unscale(faces: &mut [Face], scale: f32) {
    if scale == 1.0 {
        return;
    }
    let inv = 1.0 / scale;
    for f in faces {
        f.bbox = f.bbox.map(|v| v * inv);
        f.landmarks = f.landmarks.map(|p| p.map(|v| v * inv));
    }
}

/// Decode, suppress and map back: the post-processing of one run on an input `input_w`
/// wide, made at `scale`.
pub fn postprocess(
    outputs: &[StrideOutput<'_>],
    spec: &DetectorSpec,
    input_w: usize,
    scale: f32,
) -> Vec<Face> {
    let raw = decode(outputs, input_w, spec.score_threshold);
    let mut faces = nms(raw, spec.nms_iou, spec.top_k);
    unscale(&mut faces, scale);
    faces
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn image(cols: i32, rows: i32, bgr: [f64; 3]) -> Mat {
        Mat::new_rows_cols_with_default(
            rows,
            cols,
            opencv::core::CV_8UC3,
            opencv::core::Scalar::new(bgr[0], bgr[1], bgr[2], 0.0),
        )
        .unwrap()
    }

    #[test]
    fn an_image_runs_at_its_own_size_padded_bottom_right_to_the_stride() {
        let input = prepare(&image(100, 70, [10.0, 20.0, 30.0]), 1.0, 32).unwrap();
        assert_eq!((input.width, input.height), (128, 96));
        let plane = 128 * 96;
        assert_eq!(input.data.len(), 3 * plane);
        // B, G, R planes inside the image; 0 right of column 100 and below row 70
        assert_eq!(input.data[0], 10.0);
        assert_eq!(input.data[plane + 69 * 128 + 99], 20.0);
        assert_eq!(input.data[2 * plane + 5 * 128], 30.0);
        assert_eq!(input.data[5 * 128 + 100], 0.0);
        assert_eq!(input.data[70 * 128], 0.0);
        // a frame that is already a multiple of the stride is not padded
        let frame = prepare(&image(640, 480, [1.0; 3]), 1.0, 32).unwrap();
        assert_eq!((frame.width, frame.height), (640, 480));
        assert!(frame.data.iter().all(|v| *v == 1.0));
    }

    #[test]
    fn a_region_of_an_image_and_a_scaled_image_are_read_as_themselves() {
        let mut img = image(200, 100, [0.0; 3]);
        {
            let mut right = Mat::roi_mut(&mut img, Rect::new(100, 0, 100, 100)).unwrap();
            right.set_to_def(&opencv::core::Scalar::all(50.0)).unwrap();
        }
        let roi = Mat::roi(&img, Rect::new(90, 0, 64, 64)).unwrap();
        let input = prepare(&roi, 1.0, 32).unwrap();
        assert_eq!((input.width, input.height), (64, 64));
        assert_eq!(input.data[9], 0.0, "column 99 of the image");
        assert_eq!(input.data[10], 50.0, "column 100 of the image");
        let half = prepare(&img, 0.5, 32).unwrap();
        assert_eq!((half.width, half.height, half.scale), (128, 64, 0.5));
        let mut faces = vec![Face {
            bbox: [10.0, 5.0, 20.0, 30.0],
            score: 0.9,
            landmarks: [[20.0, 10.0]; 5],
        }];
        unscale(&mut faces, half.scale);
        assert_eq!(faces[0].bbox, [20.0, 10.0, 40.0, 60.0]);
        assert_eq!(faces[0].landmarks[3], [40.0, 20.0]);
    }

    #[test]
    fn an_image_that_fits_is_one_pass_and_a_larger_one_is_scaled_whole_and_tiled() {
        assert_eq!(
            passes(640, 480, 640),
            [Pass {
                rect: Rect::new(0, 0, 640, 480),
                scale: 1.0
            }]
        );
        let (w, h, side) = (2333, 1434, 640);
        let p = passes(w, h, side);
        assert_eq!(p[0].rect, Rect::new(0, 0, w, h));
        assert!((p[0].scale - 640.0 / 2333.0).abs() < 1e-6);
        let tiles = &p[1..];
        assert!(tiles.iter().all(|t| t.scale == 1.0
            && t.rect.width == side
            && t.rect.height == side
            && t.rect.x + side <= w
            && t.rect.y + side <= h));
        // every face up to a quarter of the side lies whole in some tile, wherever it is
        let face = side / 4;
        for y in (0..=h - face).step_by(7) {
            for x in (0..=w - face).step_by(7) {
                assert!(
                    tiles.iter().any(|t| t.rect.x <= x
                        && t.rect.y <= y
                        && x + face <= t.rect.x + side
                        && y + face <= t.rect.y + side),
                    "a face at {x},{y}"
                );
            }
        }
        // a long strip is tiled along its length only
        let strip = passes(3000, 500, 640);
        assert!(
            strip[1..]
                .iter()
                .all(|t| t.rect.y == 0 && t.rect.height == 500)
        );
    }

    #[test]
    fn faces_a_tile_cuts_are_dropped_and_the_rest_move_into_the_image() {
        let at = |x: f32, y: f32, size: f32| Face {
            bbox: [x, y, size, size],
            score: 0.9,
            landmarks: [[x, y]; 5],
        };
        // a tile in the middle of the image: every side is inside it
        let inner = Pass {
            rect: Rect::new(480, 480, 640, 640),
            scale: 1.0,
        };
        let mut faces = vec![
            at(0.5, 100.0, 50.0),   // cut by the left side
            at(100.0, 600.0, 50.0), // cut by the bottom
            at(100.0, 100.0, 50.0), // whole
        ];
        place(&mut faces, &inner, 2000, 2000);
        assert_eq!(faces.len(), 1);
        assert_eq!(faces[0].bbox, [580.0, 580.0, 50.0, 50.0]);
        assert_eq!(faces[0].landmarks[0], [580.0, 580.0]);
        // the image's own border cuts nothing
        let corner = Pass {
            rect: Rect::new(0, 0, 640, 640),
            scale: 1.0,
        };
        let mut faces = vec![at(0.0, 0.0, 50.0), at(600.0, 10.0, 50.0)];
        place(&mut faces, &corner, 640, 640);
        assert_eq!(faces.len(), 2);
    }
}
