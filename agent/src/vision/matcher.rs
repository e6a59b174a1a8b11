//! Matching an embedding against the VIP gallery: cosine similarity with a threshold and
//! a margin over the second-best customer, quality gates on the face, and confirmation over
//! several consecutive sampled frames before a customer counts as seen.

use super::detect::Face;
use super::engine::cosine;

/// One enrolled customer's embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrolled {
    /// Head office's customer id.
    pub customer_id: String,
    /// L2-normalised embedding.
    pub embedding: Vec<f32>,
}

/// The enrolled embeddings of one embedder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gallery {
    /// Every enrolled customer (one or more embeddings each).
    pub entries: Vec<Enrolled>,
}

/// The matching rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// Minimum cosine.
    pub threshold: f32,
    /// Minimum lead over the best other customer.
    pub margin: f32,
    /// Minimum face size (shorter box side, pixels).
    pub min_face_px: f32,
    /// Minimum detector score.
    pub min_score: f32,
}

impl From<&crate::config::faces::FacesConfig> for Rules {
    fn from(c: &crate::config::faces::FacesConfig) -> Self {
        Rules {
            threshold: c.match_threshold,
            margin: c.match_margin,
            min_face_px: c.min_face_px,
            min_score: c.min_score,
        }
    }
}

/// A gallery match.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// Who.
    pub customer_id: String,
    /// Cosine of the best embedding of this customer.
    pub score: f32,
    /// Best cosine of any other customer (0 when there is none).
    pub second: f32,
}

impl Gallery {
    /// The number of customers with an embedding.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nobody is enrolled.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Best cosine per customer, best first.
    pub fn ranked(&self, embedding: &[f32]) -> Vec<(String, f32)> {
        let mut best: Vec<(String, f32)> = Vec::new();
        for e in &self.entries {
            let s = cosine(&e.embedding, embedding);
            match best.iter_mut().find(|(c, _)| *c == e.customer_id) {
                Some(b) => b.1 = b.1.max(s),
                None => best.push((e.customer_id.clone(), s)),
            }
        }
        best.sort_by(|a, b| b.1.total_cmp(&a.1));
        best
    }

    /// The customer this embedding belongs to, if the best cosine reaches the threshold and
    /// beats every other customer by the margin.
    pub fn best(&self, embedding: &[f32], rules: &Rules) -> Option<Match> {
        let ranked = self.ranked(embedding);
        let (customer_id, score) = ranked.first()?.clone();
        let second = ranked.get(1).map_or(0.0, |r| r.1.max(0.0));
        (score >= rules.threshold && score - second >= rules.margin).then_some(Match {
            customer_id,
            score,
            second,
        })
    }
}

/// Whether a detected face is good enough to be matched at all.
pub fn passes_quality(face: &Face, rules: &Rules) -> bool {
    face.score >= rules.min_score && face.size() >= rules.min_face_px
}

/// Per-camera confirmation: a customer is confirmed when `frames` consecutive sampled
/// frames matched them. A frame without that customer resets their count.
#[derive(Debug, Clone, Default)]
pub struct Confirmer {
    frames: u32,
    counts: Vec<(String, u32, f32)>,
}

impl Confirmer {
    /// Require `frames` consecutive frames.
    pub fn new(frames: u32) -> Confirmer {
        Confirmer {
            frames: frames.max(1),
            counts: Vec::new(),
        }
    }

    /// Feed one frame's matches; returns the customers confirmed by this frame (each once
    /// per run of consecutive frames) with their best confidence over the run.
    pub fn frame(&mut self, matches: &[Match]) -> Vec<(String, f32)> {
        let mut next: Vec<(String, u32, f32)> = Vec::new();
        let mut confirmed = Vec::new();
        for m in matches {
            if next.iter().any(|(c, _, _)| *c == m.customer_id) {
                continue;
            }
            let (n, best) = self
                .counts
                .iter()
                .find(|(c, _, _)| *c == m.customer_id)
                .map_or((0, 0.0), |(_, n, b)| (*n, *b));
            let n = n.saturating_add(1);
            let best = best.max(m.score);
            if n == self.frames {
                confirmed.push((m.customer_id.clone(), best));
            }
            next.push((m.customer_id.clone(), n, best));
        }
        self.counts = next;
        confirmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        super::super::engine::normalise(v.to_vec()).unwrap()
    }

    fn gallery() -> Gallery {
        Gallery {
            entries: vec![
                Enrolled {
                    customer_id: "A".into(),
                    embedding: unit(&[1.0, 0.0, 0.0]),
                },
                Enrolled {
                    customer_id: "B".into(),
                    embedding: unit(&[0.0, 1.0, 0.0]),
                },
                Enrolled {
                    customer_id: "B".into(),
                    embedding: unit(&[0.0, 1.0, 0.3]),
                },
            ],
        }
    }

    const RULES: Rules = Rules {
        threshold: 0.5,
        margin: 0.1,
        min_face_px: 40.0,
        min_score: 0.7,
    };

    #[test]
    fn the_closest_customer_above_threshold_and_margin_matches() {
        let m = gallery().best(&unit(&[0.9, 0.1, 0.0]), &RULES).unwrap();
        assert_eq!(m.customer_id, "A");
        assert!(m.score > 0.99 && m.second > 0.1 && m.second < 0.2, "{m:?}");
    }

    #[test]
    fn below_the_threshold_nobody_matches() {
        assert!(gallery().best(&unit(&[0.3, 0.0, 1.0]), &RULES).is_none());
        assert!(
            Gallery::default()
                .best(&unit(&[1.0, 0.0, 0.0]), &RULES)
                .is_none()
        );
    }

    #[test]
    fn an_ambiguous_face_between_two_customers_does_not_match() {
        // equally close to A and B: both above threshold, no margin
        let v = unit(&[1.0, 1.0, 0.0]);
        let ranked = gallery().ranked(&v);
        assert!(ranked[0].1 > 0.6 && ranked[1].1 > 0.6);
        assert!(gallery().best(&v, &RULES).is_none());
    }

    #[test]
    fn a_customer_with_two_embeddings_counts_once_with_the_best() {
        let ranked = gallery().ranked(&unit(&[0.0, 1.0, 0.3]));
        assert_eq!(ranked.len(), 2);
        assert_eq!(ranked[0].0, "B");
        assert!((ranked[0].1 - 1.0).abs() < 1e-5);
    }

    #[test]
    fn quality_gates_refuse_small_or_unsure_faces() {
        let face = |w: f32, score: f32| Face {
            bbox: [0.0, 0.0, w, w * 1.2],
            score,
            landmarks: [[0.0; 2]; 5],
        };
        assert!(passes_quality(&face(60.0, 0.9), &RULES));
        assert!(!passes_quality(&face(30.0, 0.9), &RULES));
        assert!(!passes_quality(&face(60.0, 0.6), &RULES));
    }

    fn m(c: &str, s: f32) -> Match {
        Match {
            customer_id: c.into(),
            score: s,
            second: 0.0,
        }
    }

    #[test]
    fn a_customer_is_confirmed_once_after_n_consecutive_frames() {
        let mut c = Confirmer::new(3);
        assert!(c.frame(&[m("A", 0.5)]).is_empty());
        assert!(c.frame(&[m("A", 0.7), m("B", 0.6)]).is_empty());
        assert_eq!(
            c.frame(&[m("A", 0.6), m("B", 0.6)]),
            vec![("A".into(), 0.7)]
        );
        // the fourth frame confirms B (its third) but not A again
        assert_eq!(
            c.frame(&[m("A", 0.6), m("B", 0.6)]),
            vec![("B".into(), 0.6)]
        );
    }

    #[test]
    fn a_frame_without_the_customer_resets_the_count() {
        let mut c = Confirmer::new(2);
        assert!(c.frame(&[m("A", 0.5)]).is_empty());
        assert!(c.frame(&[]).is_empty());
        assert!(c.frame(&[m("A", 0.5)]).is_empty());
        assert_eq!(c.frame(&[m("A", 0.5)]).len(), 1);
    }
}
