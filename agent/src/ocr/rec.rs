//! Line recognition: the angle classifier's input and decision, the recogniser's batched
//! input, and CTC greedy decoding with the model's dictionary. Besides the text, decoding
//! keeps the recogniser's next most likely readings of every character, so that field
//! extraction can repair a number whose check character fails.

use opencv::core::Mat;
use opencv::prelude::*;

use super::det::normalise_chw;

/// Recogniser and classifier input height.
pub const HEIGHT: i32 = 48;
/// Classifier input width.
pub const CLS_WIDTH: i32 = 192;
/// Minimum recogniser batch width.
pub const REC_MIN_WIDTH: i32 = 320;
/// Lines per recogniser / classifier batch.
pub const BATCH: usize = 6;
/// Lines scoring below this are dropped.
pub const TEXT_SCORE: f32 = 0.5;
/// The classifier's "180" label must score above this to turn a line over.
pub const ROTATE_THRESH: f32 = 0.9;

/// Width of a crop resized to height 48, capped at `max_w`.
pub fn scaled_width(img: &Mat, max_w: i32) -> i32 {
    let ratio = img.cols() as f32 / img.rows().max(1) as f32;
    ((HEIGHT as f32 * ratio).ceil() as i32).clamp(1, max_w)
}

/// NCHW data of a batch: each crop resized to height 48 and its own width (at most
/// `width`), right-padded with 0.0 to `width`.
pub fn batch_input(crops: &[&Mat], width: i32) -> opencv::Result<Vec<f32>> {
    let plane = (HEIGHT * width) as usize;
    let mut out = Vec::with_capacity(crops.len() * 3 * plane);
    for crop in crops {
        let w = scaled_width(crop, width);
        out.extend(normalise_chw(crop, w, HEIGHT, width as usize)?);
    }
    Ok(out)
}

/// The recogniser's batch width for crops: 48 × the widest aspect ratio, at least 320.
pub fn rec_batch_width(crops: &[&Mat]) -> i32 {
    let max_ratio = crops
        .iter()
        .map(|c| c.cols() as f32 / c.rows().max(1) as f32)
        .fold(REC_MIN_WIDTH as f32 / HEIGHT as f32, f32::max);
    // bounded so that a freak sliver cannot ask for a huge tensor
    ((HEIGHT as f32 * max_ratio) as i32).min(HEIGHT * 60)
}

/// Readings kept per character: the chosen one and the next most likely.
pub const READINGS: usize = 4;

/// The most likely readings of one recognised character, most likely first; the first is
/// the character in the text. Each with its probability (the highest over the time steps
/// the character was read from).
pub type Readings = Vec<(char, f32)>;

/// One decoded line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    /// The text (greedy decode).
    pub text: String,
    /// Mean probability of the kept symbols.
    pub confidence: f32,
    /// Per character of `text`, its readings.
    pub readings: Vec<Readings>,
}

/// The CTC alphabet: class 0 is the blank, 1..=n the dictionary lines, n+1 a space.
#[derive(Debug, Clone)]
pub struct Dictionary {
    symbols: Vec<String>,
}

impl Dictionary {
    /// From the model's `character` metadata (one symbol per line).
    pub fn from_metadata(text: &str) -> Dictionary {
        let mut symbols = vec![String::new()];
        symbols.extend(text.lines().map(str::to_string));
        symbols.push(" ".to_string());
        Dictionary { symbols }
    }

    /// Number of classes, blank included.
    pub fn classes(&self) -> usize {
        self.symbols.len()
    }

    /// Greedy CTC decode of one line: `probs` is `steps × classes`, row-major. Takes the
    /// most likely class per step, merges repeats, drops blanks; the confidence is the
    /// mean probability of the kept symbols (0 when none).
    pub fn decode(&self, probs: &[f32], classes: usize) -> (String, f32) {
        let d = self.decode_readings(probs, classes, 1);
        (d.text, d.confidence)
    }

    /// Greedy CTC decode as [`Dictionary::decode`], keeping for every character up to `k`
    /// readings: the classes most likely over the time steps of its run, blank and
    /// multi-character symbols left out.
    pub fn decode_readings(&self, probs: &[f32], classes: usize, k: usize) -> Decoded {
        let classes = classes.max(1);
        let best = argmax_rows(probs, classes);
        let mut out = Decoded::default();
        let mut sum = 0.0f32;
        let mut n = 0usize;
        let mut t = 0;
        while t < best.len() {
            let (class, p) = best[t];
            // the run of steps with the same most likely class
            let mut end = t + 1;
            while end < best.len() && best[end].0 == class {
                end += 1;
            }
            if class != 0
                && let Some(s) = self.symbols.get(class)
            {
                out.text.push_str(s);
                sum += p;
                n += 1;
                let mut one = s.chars();
                match (one.next(), one.next()) {
                    (Some(c), None) => {
                        let rows = &probs[t * classes..end * classes];
                        out.readings.push(self.top_readings(rows, classes, c, p, k));
                    }
                    _ => out.readings.extend(s.chars().map(|c| vec![(c, p)])),
                }
            }
            t = end;
        }
        out.confidence = if n == 0 { 0.0 } else { sum / n as f32 };
        out
    }

    /// The `k` most likely single-character readings over `rows` (steps × classes), the
    /// chosen character `c` first, each with its highest probability over the steps.
    fn top_readings(&self, rows: &[f32], classes: usize, c: char, p: f32, k: usize) -> Readings {
        if k <= 1 {
            return vec![(c, p)];
        }
        // the k + 1 most likely classes (blank excluded): c is usually one of them
        let keep = k + 1;
        let mut top: Vec<(usize, f32)> = Vec::with_capacity(keep + 1);
        for step in rows.chunks_exact(classes) {
            for (i, &v) in step.iter().enumerate().skip(1) {
                if top.len() == keep && v <= top[keep - 1].1 {
                    continue;
                }
                match top.iter().position(|e| e.0 == i) {
                    Some(j) if top[j].1 >= v => continue,
                    Some(j) => {
                        top.remove(j);
                    }
                    None => {}
                }
                let at = top.iter().position(|e| e.1 < v).unwrap_or(top.len());
                top.insert(at, (i, v));
                top.truncate(keep);
            }
        }
        let mut out: Readings = vec![(c, p)];
        for (i, v) in top {
            let mut chars = self.symbols.get(i).map_or("", String::as_str).chars();
            match (chars.next(), chars.next()) {
                (Some(a), None) if a == c => out[0].1 = out[0].1.max(v),
                (Some(a), None) if out.len() < k => out.push((a, v)),
                _ => {}
            }
        }
        out
    }
}

/// The most likely class of each step and its probability.
fn argmax_rows(probs: &[f32], classes: usize) -> Vec<(usize, f32)> {
    let steps = probs.len() / classes.max(1);
    if steps == 0 {
        return Vec::new();
    }
    let probs = &probs[..steps * classes];
    // OpenCV's row-wise argmax (vectorised); the plain loop if it cannot run
    let fast = || -> opencv::Result<Vec<(usize, f32)>> {
        let m = Mat::new_rows_cols_with_data(steps as i32, classes as i32, probs)?;
        let mut idx = Mat::default();
        opencv::core::reduce_arg_max(&m, &mut idx, 1, false)?;
        let idx = idx.data_typed::<i32>()?;
        Ok(idx
            .iter()
            .enumerate()
            .map(|(t, &i)| {
                let i = usize::try_from(i).unwrap_or(0).min(classes - 1);
                (i, probs[t * classes + i])
            })
            .collect())
    };
    fast().unwrap_or_else(|_| {
        probs
            .chunks_exact(classes)
            .map(|step| {
                step.iter()
                    .enumerate()
                    .fold(
                        (0usize, f32::MIN),
                        |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
                    )
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict() -> Dictionary {
        Dictionary::from_metadata("a\nb\nc")
    }

    fn steps(classes: usize, best: &[(usize, f32)]) -> Vec<f32> {
        let mut v = vec![0.0; best.len() * classes];
        for (t, &(c, p)) in best.iter().enumerate() {
            for k in 0..classes {
                v[t * classes + k] = (1.0 - p) / (classes - 1) as f32;
            }
            v[t * classes + c] = p;
        }
        v
    }

    #[test]
    fn the_alphabet_has_a_blank_first_and_a_space_last() {
        let d = dict();
        assert_eq!(d.classes(), 5);
        let (text, _) = d.decode(&steps(5, &[(4, 0.9), (1, 0.9)]), 5);
        assert_eq!(text, " a");
    }

    #[test]
    fn ctc_merges_repeats_and_drops_blanks() {
        let d = dict();
        let probs = steps(
            5,
            &[
                (1, 0.9),
                (1, 0.8),
                (0, 0.9),
                (1, 0.7),
                (2, 0.6),
                (2, 0.9),
                (0, 0.9),
                (3, 1.0),
            ],
        );
        let (text, conf) = d.decode(&probs, 5);
        assert_eq!(text, "aabc");
        // confidence: mean of the first step of each kept run: 0.9, 0.7, 0.6, 1.0
        assert!((conf - 0.8).abs() < 1e-5, "{conf}");
    }

    #[test]
    fn all_blank_decodes_to_nothing_with_zero_confidence() {
        let d = dict();
        assert_eq!(
            d.decode(&steps(5, &[(0, 0.99); 6]), 5),
            (String::new(), 0.0)
        );
        assert_eq!(d.decode(&[], 5), (String::new(), 0.0));
    }

    #[test]
    fn readings_keep_the_runner_ups_of_each_character_over_its_run() {
        let d = dict();
        // classes: blank, a, b, c, space
        let probs = [
            [0.05, 0.6, 0.3, 0.04, 0.01],
            [0.05, 0.7, 0.02, 0.2, 0.03],
            [0.9, 0.02, 0.03, 0.03, 0.02],
            [0.02, 0.01, 0.15, 0.8, 0.02],
        ]
        .concat();
        let r = d.decode_readings(&probs, 5, 3);
        assert_eq!(r.text, "ac");
        assert_eq!(
            r.readings,
            vec![
                vec![('a', 0.7), ('b', 0.3), ('c', 0.2)],
                vec![('c', 0.8), ('b', 0.15), (' ', 0.02)],
            ]
        );
        // the same text and confidence as the plain decode
        assert_eq!(d.decode(&probs, 5), (r.text.clone(), r.confidence));
        assert!((r.confidence - 0.7).abs() < 1e-6);
    }

    #[test]
    fn batch_width_follows_the_widest_crop_but_at_least_320() {
        let narrow = Mat::new_rows_cols_with_default(
            48,
            100,
            opencv::core::CV_8UC3,
            opencv::core::Scalar::all(0.0),
        )
        .unwrap();
        let wide = Mat::new_rows_cols_with_default(
            24,
            480,
            opencv::core::CV_8UC3,
            opencv::core::Scalar::all(0.0),
        )
        .unwrap();
        assert_eq!(rec_batch_width(&[&narrow]), 320);
        assert_eq!(rec_batch_width(&[&narrow, &wide]), 960);
        let data = batch_input(&[&narrow], 320).unwrap();
        assert_eq!(data.len(), 3 * 48 * 320);
        // a black crop normalises to -1, the padding stays 0
        assert_eq!(data[0], -1.0);
        assert_eq!(data[319], 0.0);
    }
}
