//! Repairing a number whose check character fails, from the recogniser's readings.
//!
//! A number read with one wrong character fails its check, and the check alone cannot say
//! which character is wrong: in a credit code every position has exactly one replacement
//! that makes the check pass. What tells them apart is the recogniser: at the misread
//! place it usually gave the right character a fair probability too (a `Q` read as `0`
//! with `Q` second), while anywhere else the one replacement that passes is a character it
//! all but ruled out.
//!
//! So each candidate (one character replaced, or two at the least certain places) gets the
//! weight `Π p(replacement) / p(character read)`, and the best valid candidate is taken
//! only when it is plausible on its own ([`MIN_WEIGHT`]) and holds most of the weight of
//! every valid candidate ([`MIN_SHARE`]), counting for each position whose passing
//! replacement the recogniser did not list the most it could weigh (the weight of the
//! least likely reading kept there). Otherwise nothing is repaired and the caller keeps
//! the number as read.

/// One character of a number as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// `(character, probability)`, the character read first, then the recogniser's
    /// other readings that are in the number's alphabet.
    pub readings: Vec<(char, f32)>,
    /// The most a character not in `readings` can have: the probability of the least
    /// likely reading the recogniser kept, or of the character read when it kept no
    /// others (then nothing is known against any replacement there).
    pub unlisted: f32,
}

impl Slot {
    /// A character read with no other readings.
    pub fn only(c: char, p: f32) -> Slot {
        Slot {
            readings: vec![(c, p)],
            unlisted: p,
        }
    }

    /// The character read.
    pub fn read(&self) -> char {
        self.readings.first().map_or('?', |r| r.0)
    }
}

/// A candidate must be at least this likely relative to the number as read.
pub const MIN_WEIGHT: f32 = 0.02;
/// The candidate taken must hold this share of the weight of every valid candidate.
pub const MIN_SHARE: f32 = 0.9;
/// Pairs of replacements are tried among this many least certain positions.
const PAIR_POSITIONS: usize = 6;

/// A repaired number.
#[derive(Debug, Clone, PartialEq)]
pub struct Repaired {
    /// The number with the replacements.
    pub value: String,
    /// The lowest probability of a replacement character.
    pub probability: f32,
    /// Its weight relative to the number as read.
    pub weight: f32,
    /// Its share of the weight of all valid candidates.
    pub share: f32,
}

/// One position's alternatives: `(character, weight relative to the character read,
/// probability)`, best first, and the most an unlisted character could weigh.
struct Options {
    alts: Vec<(char, f32, f32)>,
    floor: f32,
}

fn options(slot: &Slot) -> Options {
    let p0 = slot
        .readings
        .first()
        .map_or(0.0, |r| r.1)
        .max(f32::MIN_POSITIVE);
    let c0 = slot.read();
    let mut alts: Vec<(char, f32, f32)> = slot
        .readings
        .iter()
        .skip(1)
        .filter(|r| r.0 != c0)
        .map(|&(c, p)| (c, p / p0, p))
        .collect();
    alts.sort_by(|a, b| b.1.total_cmp(&a.1));
    Options {
        alts,
        floor: (slot.unlisted / p0).min(1.0),
    }
}

/// The best valid repair of `slots` (the characters of a number that fails `valid`), if
/// one is plausible and unambiguous.
pub fn repair(slots: &[Slot], valid: impl Fn(&str) -> bool) -> Option<Repaired> {
    let read: Vec<char> = slots.iter().map(Slot::read).collect();
    let opts: Vec<Options> = slots.iter().map(options).collect();
    let text = |changes: &[(usize, char)]| -> String {
        let mut c = read.clone();
        for &(i, a) in changes {
            c[i] = a;
        }
        c.into_iter().collect()
    };
    // (value, weight, lowest probability of a replacement)
    let mut found: Vec<(String, f32, f32)> = Vec::new();
    let mut unlisted = 0.0f32;
    for (i, o) in opts.iter().enumerate() {
        let mut listed = false;
        for &(a, w, p) in &o.alts {
            let v = text(&[(i, a)]);
            if valid(&v) {
                found.push((v, w, p));
                listed = true;
            }
        }
        if !listed {
            unlisted += o.floor;
        }
    }
    // two replacements, among the positions the recogniser was least sure of
    let mut unsure: Vec<usize> = (0..opts.len())
        .filter(|&i| !opts[i].alts.is_empty())
        .collect();
    unsure.sort_by(|&a, &b| opts[b].alts[0].1.total_cmp(&opts[a].alts[0].1));
    unsure.truncate(PAIR_POSITIONS);
    for (n, &i) in unsure.iter().enumerate() {
        for &j in &unsure[n + 1..] {
            for &(a, wa, pa) in &opts[i].alts {
                for &(b, wb, pb) in &opts[j].alts {
                    let v = text(&[(i, a), (j, b)]);
                    if valid(&v) {
                        found.push((v, wa * wb, pa.min(pb)));
                    }
                }
            }
        }
    }
    let total: f32 = found.iter().map(|f| f.1).sum::<f32>() + unlisted;
    let (value, weight, probability) = found.into_iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let share = weight / total;
    (weight >= MIN_WEIGHT && share >= MIN_SHARE).then_some(Repaired {
        value,
        probability,
        weight,
        share,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use branchd_drivers::checks;

    const CHARSET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

    fn valid(s: &str) -> bool {
        checks::validate_credit_code(s).is_ok()
    }

    /// A code with its check character.
    fn code(first17: &str) -> String {
        format!(
            "{first17}{}",
            checks::credit_code_check_char(first17).unwrap()
        )
    }

    /// The one character at `at` that makes `s` pass.
    fn fix_at(s: &str, at: usize) -> char {
        CHARSET
            .chars()
            .find(|&c| {
                let mut v: Vec<char> = s.chars().collect();
                v[at] = c;
                v[at] != s.chars().nth(at).unwrap() && valid(&v.into_iter().collect::<String>())
            })
            .unwrap()
    }

    /// `(position, other reading, its probability, probability of the character read)`.
    type Alt = (usize, char, f32, f32);

    /// Slots read as `s`: every character at 0.97 with runner-ups at 0.001 (a confident
    /// read), then `alts` added as `(position, character, probability)`, the character
    /// read at that position getting `read_p`.
    fn slots(s: &str, alts: &[Alt]) -> Vec<Slot> {
        let mut out: Vec<Slot> = s
            .chars()
            .map(|c| Slot {
                readings: vec![(c, 0.97), ('7', 0.001), ('K', 0.001), ('M', 0.001)]
                    .into_iter()
                    .filter(|r| r.0 != c || r.1 > 0.5)
                    .collect(),
                unlisted: 0.001,
            })
            .collect();
        for &(at, c, p, read_p) in alts {
            out[at].readings[0].1 = read_p;
            out[at].readings.insert(1, (c, p));
        }
        out
    }

    fn with(s: &str, at: usize, c: char) -> String {
        let mut v: Vec<char> = s.chars().collect();
        v[at] = c;
        v.into_iter().collect()
    }

    #[test]
    fn a_letter_read_as_zero_is_restored_from_its_second_reading() {
        let truth = code("9135020305Q01A4Y3");
        assert!(valid(&truth));
        let read = with(&truth, 10, '0');
        assert!(!valid(&read));
        let r = repair(&slots(&read, &[(10, 'Q', 0.35, 0.6)]), valid).unwrap();
        assert_eq!(r.value, truth);
        assert!((r.probability - 0.35).abs() < 1e-6);
        assert!(r.share >= MIN_SHARE && r.share < 1.0, "{r:?}");
    }

    #[test]
    fn a_wrong_check_character_is_restored_too() {
        let truth = code("91310115591693856");
        let want = truth.chars().nth(17).unwrap();
        let read = with(&truth, 17, if want == '8' { 'B' } else { '8' });
        let r = repair(&slots(&read, &[(17, want, 0.3, 0.65)]), valid).unwrap();
        assert_eq!(r.value, truth);
    }

    #[test]
    fn two_misreads_at_the_least_certain_places_are_restored_together() {
        let truth = code("91440300MA5DUQ1X2");
        let read = with(&with(&truth, 12, '0'), 13, '0');
        let r = repair(
            &slots(&read, &[(12, 'U', 0.4, 0.55), (13, 'Q', 0.3, 0.6)]),
            valid,
        )
        .unwrap();
        assert_eq!(r.value, truth);
        assert!((r.weight - (0.4 / 0.55) * (0.3 / 0.6)).abs() < 1e-4);
    }

    #[test]
    fn what_is_not_plausible_or_not_unambiguous_is_not_repaired() {
        let truth = code("9135020305Q01A4Y3");
        let read = with(&truth, 10, '0');
        // the replacement that passes somewhere else, as likely as the right one
        let other = fix_at(&read, 4);
        let cases: Vec<(&str, Vec<Alt>)> = vec![
            (
                "two equally good repairs",
                vec![(10, 'Q', 0.35, 0.6), (4, other, 0.35, 0.6)],
            ),
            (
                "the right one only a little ahead",
                vec![(10, 'Q', 0.35, 0.6), (4, other, 0.2, 0.7)],
            ),
            (
                "the right reading far too unlikely",
                vec![(10, 'Q', 0.01, 0.98)],
            ),
            ("no second readings at all", vec![]),
        ];
        for (why, alts) in cases {
            assert_eq!(repair(&slots(&read, &alts), valid), None, "{why}");
        }
        // without readings, a position's replacement cannot be weighed: never repaired
        let blind: Vec<Slot> = read.chars().map(|c| Slot::only(c, 0.9)).collect();
        assert_eq!(repair(&blind, valid), None);
    }

    #[test]
    fn an_uncertain_read_elsewhere_makes_the_repair_ambiguous() {
        let truth = code("9135020305Q01A4Y3");
        let read = with(&truth, 10, '0');
        let mut s = slots(&read, &[(10, 'Q', 0.35, 0.6)]);
        assert!(repair(&s, valid).is_some());
        // a blurred character whose readings stop at a high probability: the replacement
        // that passes there could be about as likely, so the repair is not taken
        s[3].readings = vec![(read.chars().nth(3).unwrap(), 0.4), ('7', 0.25)];
        s[3].unlisted = 0.2;
        assert_eq!(repair(&s, valid), None);
    }
}
