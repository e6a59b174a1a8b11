//! Text detection: PP-OCR DB model pre-processing and post-processing (binarise the
//! probability map, contours, minimum-area boxes scored on the map, unclip), with the
//! geometry done by OpenCV.

use opencv::core::{Mat, Point, Point2f, Scalar, Size, Vector};
use opencv::imgproc;
use opencv::prelude::*;

/// Four corners, clockwise from top-left, in image pixels.
pub type Quad = [[f32; 2]; 4];

/// DB post-processing settings (the manifest's `[models.input]` of `ocr_det`).
#[derive(Debug, Clone, Copy)]
pub struct DetParams {
    /// Shorter side scaled up to at least this (`limit_type = "min"`), or the longer side
    /// scaled down to at most this when `limit_max` is set.
    pub limit_side_len: i32,
    /// `limit_type = "max"` instead of `"min"`.
    pub limit_max: bool,
    /// Whole-image guard: longer side at most this.
    pub max_side_len: i32,
    /// Binarisation threshold on the probability map.
    pub thresh: f32,
    /// Minimum mean probability inside a box.
    pub box_thresh: f32,
    /// Unclip ratio (distance = area × ratio / perimeter).
    pub unclip_ratio: f32,
    /// At most this many contours are considered.
    pub max_candidates: usize,
    /// Boxes whose shorter side is under this are dropped.
    pub min_size: f32,
}

impl Default for DetParams {
    fn default() -> Self {
        DetParams {
            limit_side_len: 960,
            limit_max: true,
            max_side_len: 2000,
            thresh: 0.3,
            box_thresh: 0.5,
            unclip_ratio: 1.6,
            max_candidates: 1000,
            min_size: 3.0,
        }
    }
}

/// The detector's input: NCHW f32 data and the scale from input back to the image.
#[derive(Debug)]
pub struct DetInput {
    /// `[1, 3, h, w]` values.
    pub data: Vec<f32>,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Image x = input x × `sx`.
    pub sx: f32,
    /// Image y = input y × `sy`.
    pub sy: f32,
}

/// Resize (each side a multiple of 32) and normalise a BGR image for the detector.
pub fn preprocess(img: &Mat, p: &DetParams) -> opencv::Result<DetInput> {
    let (w0, h0) = (img.cols() as f32, img.rows() as f32);
    let mut ratio = 1.0f32;
    if w0.max(h0) > p.max_side_len as f32 {
        ratio = p.max_side_len as f32 / w0.max(h0);
    }
    let (w1, h1) = (w0 * ratio, h0 * ratio);
    let limit = p.limit_side_len as f32;
    let r2 = if p.limit_max {
        if w1.max(h1) > limit {
            limit / w1.max(h1)
        } else {
            1.0
        }
    } else if w1.min(h1) < limit {
        limit / w1.min(h1)
    } else {
        1.0
    };
    let ratio = ratio * r2;
    let round32 = |v: f32| (((v / 32.0).round() as i32) * 32).max(32);
    let (w, h) = (round32(w0 * ratio), round32(h0 * ratio));
    let data = normalise_chw(img, w, h, w as usize)?;
    Ok(DetInput {
        data,
        h: h as usize,
        w: w as usize,
        sx: w0 / w as f32,
        sy: h0 / h as f32,
    })
}

/// Resize a BGR u8 image to `w`×`h`, normalise to (v/255 − 0.5)/0.5 and lay it out CHW
/// with rows `stride` wide (the rest of each row stays 0.0).
pub fn normalise_chw(img: &Mat, w: i32, h: i32, stride: usize) -> opencv::Result<Vec<f32>> {
    let mut resized = Mat::default();
    imgproc::resize(
        img,
        &mut resized,
        Size::new(w, h),
        0.0,
        0.0,
        imgproc::INTER_LINEAR,
    )?;
    let mut f = Mat::default();
    resized.convert_to(&mut f, opencv::core::CV_32FC3, 1.0 / 127.5, -1.0)?;
    let mut planes = Vector::<Mat>::new();
    opencv::core::split(&f, &mut planes)?;
    let (wu, hu) = (w as usize, h as usize);
    let mut out = vec![0.0f32; 3 * hu * stride];
    for (c, plane) in planes.iter().enumerate().take(3) {
        let plane = if plane.is_continuous() {
            plane
        } else {
            plane.try_clone()?
        };
        let src = plane.data_typed::<f32>()?;
        for y in 0..hu {
            let dst = (c * hu + y) * stride;
            out[dst..dst + wu].copy_from_slice(&src[y * wu..(y + 1) * wu]);
        }
    }
    Ok(out)
}

/// Boxes from the detector's `[h, w]` probability map, in image pixels (of an image
/// `img_w`×`img_h`), sorted top to bottom then left to right.
pub fn postprocess(
    prob: &[f32],
    input: &DetInput,
    img_w: i32,
    img_h: i32,
    p: &DetParams,
) -> opencv::Result<Vec<(Quad, f32)>> {
    let (h, w) = (input.h as i32, input.w as i32);
    if prob.len() < input.h * input.w {
        return Ok(Vec::new());
    }
    let map: Mat = Mat::new_rows_cols_with_data(h, w, &prob[..input.h * input.w])?.try_clone()?;
    let mut bin = Mat::default();
    imgproc::threshold(
        &map,
        &mut bin,
        f64::from(p.thresh),
        255.0,
        imgproc::THRESH_BINARY,
    )?;
    let mut bin8 = Mat::default();
    bin.convert_to(&mut bin8, opencv::core::CV_8U, 1.0, 0.0)?;
    let kernel = Mat::new_rows_cols_with_default(2, 2, opencv::core::CV_8U, Scalar::all(1.0))?;
    let mut dil = Mat::default();
    imgproc::dilate(
        &bin8,
        &mut dil,
        &kernel,
        Point::new(-1, -1),
        1,
        opencv::core::BORDER_CONSTANT,
        imgproc::morphology_default_border_value()?,
    )?;
    let mut contours = Vector::<Vector<Point>>::new();
    imgproc::find_contours(
        &dil,
        &mut contours,
        imgproc::RETR_LIST,
        imgproc::CHAIN_APPROX_SIMPLE,
        Point::new(0, 0),
    )?;
    let mut out = Vec::new();
    for contour in contours.iter().take(p.max_candidates) {
        if contour.len() < 3 {
            continue;
        }
        let rect = imgproc::min_area_rect(&contour)?;
        let (rw, rh) = (rect.size.width, rect.size.height);
        if rw.min(rh) < p.min_size {
            continue;
        }
        let corners = rect_corners(rect.center, rw, rh, rect.angle);
        let score = box_score(&map, &corners)?;
        if score < p.box_thresh {
            continue;
        }
        // unclip: offsetting a rectangle by d grows each side by 2d
        let d = rw * rh * p.unclip_ratio / (2.0 * (rw + rh));
        let (uw, uh) = (rw + 2.0 * d, rh + 2.0 * d);
        if uw.min(uh) < p.min_size + 2.0 {
            continue;
        }
        let big = rect_corners(rect.center, uw, uh, rect.angle);
        let mut q = order_quad(big);
        for pt in &mut q {
            pt[0] = (pt[0] * input.sx).round().clamp(0.0, img_w as f32);
            pt[1] = (pt[1] * input.sy).round().clamp(0.0, img_h as f32);
        }
        let qw = dist(q[0], q[1]);
        let qh = dist(q[0], q[3]);
        if qw <= 3.0 || qh <= 3.0 {
            continue;
        }
        out.push((q, score));
    }
    sort_reading_order(&mut out);
    Ok(out)
}

fn rect_corners(c: Point2f, w: f32, h: f32, angle_deg: f32) -> [[f32; 2]; 4] {
    let (s, co) = angle_deg.to_radians().sin_cos();
    let (hw, hh) = (w / 2.0, h / 2.0);
    [(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)]
        .map(|(x, y)| [c.x + x * co - y * s, c.y + x * s + y * co])
}

/// Order four corners as top-left, top-right, bottom-right, bottom-left (PP-OCR's rule:
/// of the two leftmost points the upper is top-left; of the two rightmost the upper is
/// top-right).
pub fn order_quad(mut pts: [[f32; 2]; 4]) -> Quad {
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let (tl, bl) = if pts[1][1] > pts[0][1] {
        (pts[0], pts[1])
    } else {
        (pts[1], pts[0])
    };
    let (tr, br) = if pts[3][1] > pts[2][1] {
        (pts[2], pts[3])
    } else {
        (pts[3], pts[2])
    };
    [tl, tr, br, bl]
}

/// Distance between two points.
pub fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

fn box_score(map: &Mat, corners: &[[f32; 2]; 4]) -> opencv::Result<f32> {
    let (w, h) = (map.cols(), map.rows());
    let xs = corners.iter().map(|p| p[0]);
    let ys = corners.iter().map(|p| p[1]);
    let clampx = |v: f32| (v as i32).clamp(0, w - 1);
    let clampy = |v: f32| (v as i32).clamp(0, h - 1);
    let xmin = clampx(xs.clone().fold(f32::MAX, f32::min).floor());
    let xmax = clampx(xs.fold(f32::MIN, f32::max).ceil());
    let ymin = clampy(ys.clone().fold(f32::MAX, f32::min).floor());
    let ymax = clampy(ys.fold(f32::MIN, f32::max).ceil());
    let roi_rect = opencv::core::Rect::new(xmin, ymin, xmax - xmin + 1, ymax - ymin + 1);
    let mut mask = Mat::new_rows_cols_with_default(
        roi_rect.height,
        roi_rect.width,
        opencv::core::CV_8U,
        Scalar::all(0.0),
    )?;
    let poly: Vector<Point> = corners
        .iter()
        .map(|p| Point::new((p[0] as i32) - xmin, (p[1] as i32) - ymin))
        .collect();
    let mut polys = Vector::<Vector<Point>>::new();
    polys.push(poly);
    imgproc::fill_poly(
        &mut mask,
        &polys,
        Scalar::all(1.0),
        imgproc::LINE_8,
        0,
        Point::new(0, 0),
    )?;
    let roi = Mat::roi(map, roi_rect)?;
    let m = opencv::core::mean(&roi, &mask)?;
    Ok(m[0] as f32)
}

/// Sort boxes top to bottom, and left to right within 10 px of the same top.
pub fn sort_reading_order(boxes: &mut [(Quad, f32)]) {
    boxes.sort_by(|a, b| {
        a.0[0][1]
            .total_cmp(&b.0[0][1])
            .then(a.0[0][0].total_cmp(&b.0[0][0]))
    });
    for i in 0..boxes.len() {
        let mut j = i;
        while j > 0
            && (boxes[j].0[0][1] - boxes[j - 1].0[0][1]).abs() < 10.0
            && boxes[j].0[0][0] < boxes[j - 1].0[0][0]
        {
            boxes.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// Cut a quadrilateral out of the image, rectified to an upright rectangle (rotated by
/// 90° when it is much taller than wide, as a vertical line).
pub fn crop(img: &Mat, q: &Quad) -> opencv::Result<Mat> {
    let w = dist(q[0], q[1]).max(dist(q[2], q[3])).max(1.0);
    let h = dist(q[0], q[3]).max(dist(q[1], q[2])).max(1.0);
    let src: Vector<Point2f> = q.iter().map(|p| Point2f::new(p[0], p[1])).collect();
    let dst: Vector<Point2f> = [[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]]
        .iter()
        .map(|p| Point2f::new(p[0], p[1]))
        .collect();
    let m = imgproc::get_perspective_transform(&src, &dst, opencv::core::DECOMP_LU)?;
    let mut out = Mat::default();
    imgproc::warp_perspective(
        img,
        &mut out,
        &m,
        Size::new(w as i32, h as i32),
        imgproc::INTER_CUBIC,
        opencv::core::BORDER_REPLICATE,
        Scalar::default(),
    )?;
    if h / w >= 1.5 {
        let mut rot = Mat::default();
        opencv::core::rotate(&out, &mut rot, opencv::core::ROTATE_90_COUNTERCLOCKWISE)?;
        return Ok(rot);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corners_are_ordered_clockwise_from_top_left() {
        let q = order_quad([[10.0, 20.0], [0.0, 0.0], [10.0, 0.0], [0.0, 20.0]]);
        assert_eq!(q, [[0.0, 0.0], [10.0, 0.0], [10.0, 20.0], [0.0, 20.0]]);
    }

    #[test]
    fn a_filled_rectangle_on_the_map_gives_one_unclipped_box() {
        // 64x128 map with a 10x60 text blob at rows 20..30, cols 30..90
        let (h, w) = (64usize, 128usize);
        let mut prob = vec![0.0f32; h * w];
        for y in 20..30 {
            for x in 30..90 {
                prob[y * w + x] = 0.9;
            }
        }
        let input = DetInput {
            data: Vec::new(),
            h,
            w,
            sx: 2.0,
            sy: 2.0,
        };
        let boxes = postprocess(&prob, &input, 256, 128, &DetParams::default()).unwrap();
        assert_eq!(boxes.len(), 1);
        let (q, score) = boxes[0];
        assert!(score > 0.8, "{score}");
        // the blob is 60x10 (+1 from dilation); unclip adds 2·d, d = 61·11·1.6/(2·72) ≈ 7.5
        let bw = dist(q[0], q[1]) / 2.0;
        let bh = dist(q[0], q[3]) / 2.0;
        assert!((bw - 76.0).abs() < 3.0, "{bw}");
        assert!((bh - 26.0).abs() < 3.0, "{bh}");
    }
}
