//! Five-point face alignment: the least-squares similarity transform (rotation, uniform
//! scale, translation) of the detector's landmarks onto the embedder's template, applied
//! with OpenCV's `warpAffine`.

use opencv::core::{BORDER_CONSTANT, Mat, Scalar, Size};
use opencv::imgproc;

/// A 2×3 affine matrix `[[a, -b, tx], [b, a, ty]]`.
pub type Similarity = [[f64; 3]; 2];

/// The similarity transform that best maps `src` onto `dst` (least squares).
pub fn estimate(src: &[[f32; 2]; 5], dst: &[[f32; 2]; 5]) -> Similarity {
    let n = src.len() as f64;
    let mean = |p: &[[f32; 2]; 5]| {
        let (mut x, mut y) = (0.0, 0.0);
        for q in p {
            x += f64::from(q[0]);
            y += f64::from(q[1]);
        }
        (x / n, y / n)
    };
    let (spx, spy) = mean(src);
    let (dqx, dqy) = mean(dst);
    let (mut num_a, mut num_b, mut den) = (0.0, 0.0, 0.0);
    for (p, q) in src.iter().zip(dst) {
        let (px, py) = (f64::from(p[0]) - spx, f64::from(p[1]) - spy);
        let (qx, qy) = (f64::from(q[0]) - dqx, f64::from(q[1]) - dqy);
        num_a += px * qx + py * qy;
        num_b += px * qy - py * qx;
        den += px * px + py * py;
    }
    let (a, b) = if den > 1e-12 {
        (num_a / den, num_b / den)
    } else {
        (1.0, 0.0)
    };
    let tx = dqx - (a * spx - b * spy);
    let ty = dqy - (b * spx + a * spy);
    [[a, -b, tx], [b, a, ty]]
}

/// Apply a similarity to one point.
pub fn apply(m: &Similarity, p: [f32; 2]) -> [f32; 2] {
    let (x, y) = (f64::from(p[0]), f64::from(p[1]));
    [
        (m[0][0] * x + m[0][1] * y + m[0][2]) as f32,
        (m[1][0] * x + m[1][1] * y + m[1][2]) as f32,
    ]
}

/// The template in pixels of a `size`-square input.
pub fn template_px(template: &[[f32; 2]; 5], size: usize) -> [[f32; 2]; 5] {
    template.map(|p| p.map(|v| v * size as f32))
}

/// Crop the face at `landmarks` out of `img`, aligned onto `template` in a `size`-square.
pub fn align(
    img: &Mat,
    landmarks: &[[f32; 2]; 5],
    template: &[[f32; 2]; 5],
    size: usize,
) -> opencv::Result<Mat> {
    let m = estimate(landmarks, &template_px(template, size));
    let mat = Mat::from_slice_2d(&[m[0], m[1]])?;
    let mut out = Mat::default();
    imgproc::warp_affine(
        img,
        &mut out,
        &mat,
        Size::new(size as i32, size as i32),
        imgproc::INTER_LINEAR,
        BORDER_CONSTANT,
        Scalar::all(0.0),
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::prelude::*;

    const TEMPLATE: [[f32; 2]; 5] = [
        [0.3156, 0.4616],
        [0.6826, 0.4616],
        [0.5003, 0.6405],
        [0.3495, 0.8247],
        [0.6534, 0.8247],
    ];

    #[test]
    fn a_rotated_scaled_shifted_copy_of_the_template_is_mapped_back_exactly() {
        let dst = template_px(&TEMPLATE, 128);
        let (s, th, tx, ty) = (2.5f64, 0.4f64, 37.0f64, -12.0f64);
        let src = dst.map(|p| {
            let (x, y) = (f64::from(p[0]), f64::from(p[1]));
            [
                (s * (th.cos() * x - th.sin() * y) + tx) as f32,
                (s * (th.sin() * x + th.cos() * y) + ty) as f32,
            ]
        });
        let m = estimate(&src, &dst);
        for (p, q) in src.iter().zip(dst) {
            let r = apply(&m, *p);
            assert!(
                (r[0] - q[0]).abs() < 1e-3 && (r[1] - q[1]).abs() < 1e-3,
                "{r:?} {q:?}"
            );
        }
        // scale of the inverse is 1 / 2.5
        let scale = (m[0][0].powi(2) + m[1][0].powi(2)).sqrt();
        assert!((scale - 0.4).abs() < 1e-6, "{scale}");
    }

    #[test]
    fn noisy_points_get_the_least_squares_fit_not_a_reflection() {
        let dst = template_px(&TEMPLATE, 128);
        let mut src = dst;
        src[0][0] += 3.0;
        src[4][1] -= 2.0;
        let m = estimate(&src, &dst);
        // a similarity: [[a, -b], [b, a]]
        assert_eq!(m[0][0], m[1][1]);
        assert_eq!(m[0][1], -m[1][0]);
        let err: f32 = src
            .iter()
            .zip(dst)
            .map(|(p, q)| {
                let r = apply(&m, *p);
                (r[0] - q[0]).powi(2) + (r[1] - q[1]).powi(2)
            })
            .sum();
        // identity would leave 9 + 4 = 13; the fit must do better
        assert!(err < 13.0, "{err}");
    }

    #[test]
    fn align_puts_a_marked_eye_where_the_template_says() {
        let mut img =
            Mat::new_rows_cols_with_default(400, 400, opencv::core::CV_8UC3, Scalar::all(0.0))
                .unwrap();
        // the image's landmarks: the template at scale 2 shifted by (50, 60)
        let lm = template_px(&TEMPLATE, 256).map(|p| [p[0] + 50.0, p[1] + 60.0]);
        let (ex, ey) = (lm[0][0].round() as i32, lm[0][1].round() as i32);
        imgproc::circle(
            &mut img,
            opencv::core::Point::new(ex, ey),
            4,
            Scalar::all(255.0),
            -1,
            imgproc::LINE_8,
            0,
        )
        .unwrap();
        let out = align(&img, &lm, &TEMPLATE, 128).unwrap();
        assert_eq!((out.cols(), out.rows()), (128, 128));
        let (tx, ty) = (
            (TEMPLATE[0][0] * 128.0).round() as i32,
            (TEMPLATE[0][1] * 128.0).round() as i32,
        );
        let px = out.at_2d::<opencv::core::Vec3b>(ty, tx).unwrap();
        assert!(
            px[0] > 200,
            "the eye mark lands on the template's right eye: {px:?}"
        );
        let far = out.at_2d::<opencv::core::Vec3b>(10, 10).unwrap();
        assert_eq!(far[0], 0);
    }
}
