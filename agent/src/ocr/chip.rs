//! Cross-check of an ID card photo against the chip of the same card (比对).
//!
//! The chip text comes from the lobby ID reader (kept in memory for a short while after a
//! read, never stored) or, for `branchd ocr --chip`, from a JSON file. Each field the chip
//! and the photo both carry is compared after the normalisation both sides share (no
//! spaces, full-width ASCII folded, dates as `YYYY-MM-DD`); a field the photo did not yield
//! is `missing`, never a match.

use std::collections::BTreeMap;

use branchd_drivers::idreader::{CardText, Gender, Validity};
use serde::{Deserialize, Serialize};

use super::OcrResult;
use super::fields::{DocKind, Side};

/// The verdict on one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Photo and chip agree.
    Match,
    /// They differ.
    Mismatch,
    /// The photo did not yield this field.
    Missing,
}

/// The per-field report (`chip_check` in the OCR answer).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChipCheck {
    /// Where the chip data came from (a reader id, or `file`).
    pub source: String,
    /// Seconds between the chip read and the check (readers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_s_ago: Option<u64>,
    /// Verdict per field.
    pub fields: BTreeMap<String, Verdict>,
    /// The fields that differ, for the staff's attention.
    pub mismatches: Vec<String>,
    /// The chip's values, so staff can take the chip's where the photo differs (only in
    /// the answer to staff, never in an event).
    pub chip: BTreeMap<String, String>,
    /// Every compared field matched.
    pub all_match: bool,
}

/// The chip's fields under the OCR answer's keys and value formats, for one side.
pub fn chip_fields(chip: &CardText, side: Side) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    match side {
        Side::Front => {
            m.insert("name", chip.name.clone());
            m.insert(
                "gender",
                match chip.gender {
                    Gender::Male => "男",
                    Gender::Female => "女",
                }
                .to_string(),
            );
            if let Some(n) = chip.nation() {
                m.insert("nation", n.to_string());
            }
            m.insert("birth_date", chip.birth.format("%Y-%m-%d").to_string());
            m.insert("address", chip.address.clone());
            m.insert("id_number", chip.id_number.clone());
        }
        Side::Back => {
            m.insert("issuing_authority", chip.issuer.clone());
            m.insert("valid_from", chip.valid_from.format("%Y-%m-%d").to_string());
            m.insert(
                "valid_to",
                match chip.valid_to {
                    Validity::Until(d) => d.format("%Y-%m-%d").to_string(),
                    Validity::LongTerm => "长期".to_string(),
                },
            );
        }
    }
    m
}

/// Why a photo cannot be checked against a chip.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// Only ID cards have a chip.
    #[error("only an ID card can be checked against the chip, this is a {0}")]
    NotAnIdCard(&'static str),
}

/// Compare the recognised fields with the chip's.
pub fn check(
    result: &OcrResult,
    chip: &CardText,
    source: &str,
    read_s_ago: Option<u64>,
) -> Result<ChipCheck, CheckError> {
    if result.kind != DocKind::IdCard {
        return Err(CheckError::NotAnIdCard("business licence"));
    }
    let side = result.side.unwrap_or(Side::Front);
    let mut fields = BTreeMap::new();
    let values = chip_fields(chip, side);
    for (key, want) in &values {
        let (key, want) = (*key, want.as_str());
        let verdict = match result.fields.get(key) {
            None => Verdict::Missing,
            Some(f) if same(&f.value, want) => Verdict::Match,
            Some(_) => Verdict::Mismatch,
        };
        fields.insert(key.to_string(), verdict);
    }
    let mismatches: Vec<String> = fields
        .iter()
        .filter(|(_, v)| **v == Verdict::Mismatch)
        .map(|(k, _)| k.clone())
        .collect();
    let all_match = fields.values().all(|v| *v == Verdict::Match);
    Ok(ChipCheck {
        source: source.to_string(),
        read_s_ago,
        fields,
        mismatches,
        all_match,
        chip: values
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    })
}

fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            // full-width ASCII (digits, letters, brackets) as printed on cards
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

fn same(photo: &str, chip: &str) -> bool {
    normalise(photo) == normalise(chip)
}

/// Chip text as given to `branchd ocr --chip FILE` (the reader's fields, in the OCR
/// answer's formats).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChipFile {
    name: String,
    gender: String,
    nation: String,
    birth_date: String,
    address: String,
    id_number: String,
    #[serde(default)]
    issuing_authority: Option<String>,
    #[serde(default)]
    valid_from: Option<String>,
    #[serde(default)]
    valid_to: Option<String>,
}

impl ChipFile {
    /// Into the reader's card text; every problem is named.
    pub fn into_card(self) -> Result<CardText, String> {
        let mut problems = Vec::new();
        let date = |k: &str, v: &str, problems: &mut Vec<String>| {
            chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| problems.push(format!("`{k}` must be YYYY-MM-DD, not {v:?}")))
                .ok()
        };
        let gender = match self.gender.as_str() {
            "男" => Some(Gender::Male),
            "女" => Some(Gender::Female),
            g => {
                problems.push(format!("`gender` must be 男 or 女, not {g:?}"));
                None
            }
        };
        let nation_code = (1..=56u8)
            .find(|&c| branchd_drivers::idreader::nation_name(c) == Some(self.nation.as_str()));
        if nation_code.is_none() {
            problems.push(format!("`nation` {:?} is not one of the 56", self.nation));
        }
        let birth = date("birth_date", &self.birth_date, &mut problems);
        let valid_from = match &self.valid_from {
            Some(v) => date("valid_from", v, &mut problems),
            None => chrono::NaiveDate::from_ymd_opt(1970, 1, 1),
        };
        let valid_to = match self.valid_to.as_deref() {
            None | Some("长期") => Some(Validity::LongTerm),
            Some(v) => date("valid_to", v, &mut problems).map(Validity::Until),
        };
        match (gender, nation_code, birth, valid_from, valid_to) {
            (Some(gender), Some(nation_code), Some(birth), Some(valid_from), Some(valid_to))
                if problems.is_empty() =>
            {
                Ok(CardText {
                    name: self.name,
                    gender,
                    nation_code,
                    birth,
                    address: self.address,
                    id_number: self.id_number,
                    issuer: self.issuing_authority.unwrap_or_default(),
                    valid_from,
                    valid_to,
                })
            }
            _ => Err(problems.join("; ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocr::engine::Timing;
    use crate::ocr::fields::Field;

    fn result(side: Side, fields: &[(&str, &str)]) -> OcrResult {
        OcrResult {
            id: None,
            kind: DocKind::IdCard,
            side: Some(side),
            fields: fields
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        Field {
                            value: v.to_string(),
                            confidence: 0.9,
                            valid: None,
                            suggestion: None,
                        },
                    )
                })
                .collect(),
            lines: Vec::new(),
            timing_ms: Timing::default(),
            chip_check: None,
            expiry: None,
            image: None,
        }
    }

    #[test]
    fn each_front_field_is_matched_mismatched_or_missing() {
        let chip = CardText::sample();
        let front = chip_fields(&chip, Side::Front);
        let mut photo: Vec<(&str, &str)> = front.iter().map(|(k, v)| (*k, v.as_str())).collect();
        photo.retain(|(k, _)| *k != "nation");
        let wrong = format!("{}X", front["address"]);
        for f in &mut photo {
            if f.0 == "address" {
                f.1 = &wrong;
            }
        }
        let c = check(&result(Side::Front, &photo), &chip, "IDR-01", Some(3)).unwrap();
        assert_eq!(c.fields["name"], Verdict::Match);
        assert_eq!(c.fields["id_number"], Verdict::Match);
        assert_eq!(c.fields["birth_date"], Verdict::Match);
        assert_eq!(c.fields["nation"], Verdict::Missing);
        assert_eq!(c.fields["address"], Verdict::Mismatch);
        assert_eq!(c.mismatches, ["address"]);
        assert!(!c.all_match);
        assert_eq!(c.fields.len(), 6);
    }

    #[test]
    fn spacing_and_full_width_digits_do_not_make_a_mismatch() {
        let chip = CardText::sample();
        let front = chip_fields(&chip, Side::Front);
        let spaced: String = front["name"].chars().flat_map(|c| [c, ' ']).collect();
        let wide: String = front["id_number"]
            .chars()
            .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap())
            .collect();
        let mut photo: Vec<(&str, String)> = front.iter().map(|(k, v)| (*k, v.clone())).collect();
        for f in &mut photo {
            match f.0 {
                "name" => f.1 = spaced.clone(),
                "id_number" => f.1 = wide.to_lowercase(),
                _ => {}
            }
        }
        let photo: Vec<(&str, &str)> = photo.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let c = check(&result(Side::Front, &photo), &chip, "file", None).unwrap();
        assert!(c.all_match, "{c:?}");
        assert!(c.mismatches.is_empty());
    }

    #[test]
    fn the_back_compares_authority_and_validity_and_a_licence_is_refused() {
        let chip = CardText::sample();
        let back = chip_fields(&chip, Side::Back);
        let photo: Vec<(&str, &str)> = back.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let c = check(&result(Side::Back, &photo), &chip, "file", None).unwrap();
        assert_eq!(
            c.fields.keys().collect::<Vec<_>>(),
            ["issuing_authority", "valid_from", "valid_to"]
        );
        assert!(c.all_match);
        let mut licence = result(Side::Front, &[]);
        licence.kind = DocKind::Licence;
        licence.side = None;
        assert!(matches!(
            check(&licence, &chip, "file", None),
            Err(CheckError::NotAnIdCard(_))
        ));
    }

    #[test]
    fn a_chip_file_names_every_problem() {
        let bad: ChipFile = serde_json::from_value(serde_json::json!({
            "name": "张三", "gender": "M", "nation": "火星", "birth_date": "1978/12/16",
            "address": "x", "id_number": "1"
        }))
        .unwrap();
        let e = bad.into_card().unwrap_err();
        for want in ["`gender`", "`nation`", "`birth_date`"] {
            assert!(e.contains(want), "{e}");
        }
        let chip = CardText::sample();
        let front = chip_fields(&chip, Side::Front);
        let good: ChipFile = serde_json::from_value(serde_json::json!({
            "name": front["name"], "gender": front["gender"], "nation": front["nation"],
            "birth_date": front["birth_date"], "address": front["address"],
            "id_number": front["id_number"]
        }))
        .unwrap();
        let card = good.into_card().unwrap();
        assert_eq!(chip_fields(&card, Side::Front), front);
    }
}
