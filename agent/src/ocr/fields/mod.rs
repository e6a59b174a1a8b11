//! Document fields from recognised lines: the lines are straightened (the photo's tilt
//! taken out), grouped into rows, labels found at the start of text pieces (also with a
//! character lost), each label's value read to its right; the other lines of a value are
//! those that start where it starts, grouped into blocks by the column's line pitch (a
//! value may continue below its label or be centred beside it, as in a table). A licence
//! field whose label was not read is known by its words when only one stray line could be
//! it. Values are normalised (dates, look-alike characters in numbers, full-width
//! punctuation, the fixed headings and sentences of a business scope, the registered
//! company types) and the numbers checked (GB 11643, GB 32100).

use std::collections::BTreeMap;

use serde::Serialize;

use super::engine::Line;
use super::rec::Readings;

mod docs;
mod layout;
mod repair;
mod values;

use docs::*;
use layout::*;
use values::*;

/// Which document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    /// Resident ID card (either side).
    IdCard,
    /// Business licence.
    Licence,
}

/// Which side of an ID card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Photo, name, number.
    Front,
    /// Issuing authority, validity.
    Back,
}

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// An ID card.
    IdCard,
    /// A business licence.
    Licence,
    /// Detect it.
    Auto,
}

impl std::str::FromStr for Requested {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "id-card" | "id_card" => Ok(Requested::IdCard),
            "licence" | "license" => Ok(Requested::Licence),
            "auto" => Ok(Requested::Auto),
            other => Err(format!(
                "unknown document kind {other:?}: use id-card, licence or auto"
            )),
        }
    }
}

/// One field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    /// The normalised value.
    pub value: String,
    /// The lowest confidence of the lines it was read from.
    pub confidence: f32,
    /// On fields with a check rule: whether it passes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
    /// When invalid and exactly one look-alike correction makes it valid: that value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

/// The fields of one document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    /// Which document.
    pub kind: DocKind,
    /// ID cards: which side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// Field key → field.
    pub fields: BTreeMap<String, Field>,
}

/// The image does not hold the document asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WrongKind(pub String);

// ---------------------------------------------------------------------------- layout

fn field(value: String, conf: f32) -> Field {
    Field {
        value,
        confidence: (conf * 1000.0).round() / 1000.0,
        valid: None,
        suggestion: None,
    }
}

fn checked(value: String, conf: f32, valid: bool, suggestion: Option<String>) -> Field {
    Field {
        valid: Some(valid),
        suggestion: if valid { None } else { suggestion },
        ..field(value, conf)
    }
}

// ---------------------------------------------------------------------------- documents

fn score(text: &str, labels: &[&str]) -> usize {
    labels.iter().filter(|l| text.contains(*l)).count()
}

fn all_text(lines: &[Line]) -> String {
    lines.iter().map(|l| clean_text(&l.text)).collect()
}

fn kind_scores(lines: &[Line]) -> (usize, usize, usize) {
    let t = all_text(lines);
    let front = score(
        &t,
        &["姓名", "性别", "民族", "出生", "住址", "公民身份号码"],
    );
    let back = score(
        &t,
        &["中华人民共和国", "居民身份证", "签发机关", "有效期限"],
    );
    let lic = score(
        &t,
        &[
            "营业执照",
            "统一社会信用代码",
            "名称",
            "类型",
            "法定代表人",
            "经营范围",
            "注册资本",
            "成立日期",
            "营业期限",
            "住所",
            "登记机关",
        ],
    );
    (front, back, lic)
}

/// Read the fields of the requested document.
pub fn extract(lines: &[Line], requested: Requested) -> Result<Document, WrongKind> {
    let (front, back, lic) = kind_scores(lines);
    let id = front.max(back);
    let kind = match requested {
        Requested::IdCard if id == 0 && lic >= 2 => {
            return Err(WrongKind(
                "this looks like a business licence, not an ID card".into(),
            ));
        }
        Requested::Licence if lic < 2 && id >= 2 => {
            return Err(WrongKind(
                "this looks like an ID card, not a business licence".into(),
            ));
        }
        Requested::IdCard => DocKind::IdCard,
        Requested::Licence => DocKind::Licence,
        Requested::Auto if lic >= 2 && lic > id => DocKind::Licence,
        Requested::Auto => DocKind::IdCard,
    };
    let rows = rows(lines);
    Ok(match kind {
        DocKind::Licence => Document {
            kind,
            side: None,
            fields: licence(&rows),
        },
        DocKind::IdCard if back > front => Document {
            kind,
            side: Some(Side::Back),
            fields: id_back(&rows),
        },
        DocKind::IdCard => Document {
            kind,
            side: Some(Side::Front),
            fields: id_front(&rows),
        },
    })
}

#[cfg(test)]
mod tests;
