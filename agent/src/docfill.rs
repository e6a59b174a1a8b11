//! The ID card fields staff fill into a record from a recognised document (OCR back-fill,
//! 反填): the request's shape, the checks every field passes, and what of a fill may be told
//! outside the record (the field names and their sources, never a value).
//!
//! The owners of the records use it — an order's customer section (`orders`), a walk-in
//! customer of the day (`customers`) — each storing the values in its own tables.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Where a filled value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Read from the photo (and checked, perhaps corrected, by the staff).
    Photo,
    /// Taken from the card's chip.
    Chip,
}

/// One filled field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filled {
    /// The value as confirmed.
    pub value: String,
    /// Where it came from.
    pub source: Source,
    /// The staff changed the recognised value before filling it in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub edited: bool,
}

/// The body of a fill request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FillBody {
    /// Field key → value and source.
    pub fields: BTreeMap<String, Filled>,
    /// The recognition the values come from (`id` of the OCR answer).
    #[serde(default)]
    pub ocr_id: Option<String>,
}

/// The ID card fields a record takes, each with its longest value.
pub const FIELDS: &[(&str, usize)] = &[
    ("name", 64),
    ("gender", 2),
    ("nation", 16),
    ("birth_date", 10),
    ("address", 200),
    ("id_number", 18),
    ("issuing_authority", 64),
    ("valid_from", 10),
    ("valid_to", 10),
];

/// Why a fill is refused: the field (none when the request names no field) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{why}")]
pub struct FillError {
    /// The first bad field.
    pub field: Option<String>,
    /// Why.
    pub why: String,
}

fn is_date(v: &str) -> bool {
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()
}

/// Why a field cannot be filled in, if it cannot.
fn problem(key: &str, value: &str) -> Option<String> {
    let Some(&(_, max)) = FIELDS.iter().find(|(k, _)| *k == key) else {
        return Some(format!("`{key}` is not a field of an ID card"));
    };
    if value.is_empty() {
        return Some(format!("`{key}` is empty"));
    }
    if value.chars().count() > max {
        return Some(format!("`{key}` is longer than {max} characters"));
    }
    match key {
        "gender" if value != "男" && value != "女" => Some("`gender` must be 男 or 女".into()),
        "birth_date" | "valid_from" if !is_date(value) => {
            Some(format!("`{key}` must be a date YYYY-MM-DD"))
        }
        "valid_to" if value != "长期" && !is_date(value) => {
            Some("`valid_to` must be a date YYYY-MM-DD or 长期".into())
        }
        "id_number" => branchd_drivers::checks::validate_citizen_id(value)
            .err()
            .map(|e| format!("`id_number` is not a valid citizen ID number: {e}")),
        _ => None,
    }
}

/// The fields as they will be stored (values trimmed, the ID number upper-case), or the
/// first bad one.
pub fn validate(body: FillBody) -> Result<FillBody, FillError> {
    if body.fields.is_empty() {
        return Err(FillError {
            field: None,
            why: "`fields` is empty: name at least one field to fill in".into(),
        });
    }
    if body
        .ocr_id
        .as_deref()
        .is_some_and(|id| id.is_empty() || id.len() > 64)
    {
        return Err(FillError {
            field: Some("ocr_id".into()),
            why: "`ocr_id` must be 1 to 64 characters".into(),
        });
    }
    let mut fields = BTreeMap::new();
    for (key, mut f) in body.fields {
        f.value = f.value.trim().to_string();
        if key == "id_number" {
            f.value = f.value.to_ascii_uppercase();
        }
        if let Some(why) = problem(&key, &f.value) {
            return Err(FillError {
                field: Some(key),
                why,
            });
        }
        fields.insert(key, f);
    }
    Ok(FillBody {
        fields,
        ocr_id: body.ocr_id,
    })
}

/// What may be told of a fill outside the record (events, the audit trail): the fields
/// filled in, the source of each, the ones the staff corrected, the recognition — never a
/// value.
pub fn summary(body: &FillBody) -> Value {
    let sources: BTreeMap<&str, Source> = body
        .fields
        .iter()
        .map(|(k, f)| (k.as_str(), f.source))
        .collect();
    let edited: Vec<&str> = body
        .fields
        .iter()
        .filter(|(_, f)| f.edited)
        .map(|(k, _)| k.as_str())
        .collect();
    json!({"fields": body.fields.keys().collect::<Vec<_>>(), "sources": sources,
           "edited": edited, "ocr_id": body.ocr_id})
}

/// An ID number for a screen: the first and last four characters.
pub fn mask_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 8))
}

/// Stored fields (`{key: {value, source, edited}}`) as the staff see them: the ID number
/// masked.
pub fn for_screen(mut fields: Value) -> Value {
    if let Some(v) = fields["id_number"]["value"].as_str() {
        fields["id_number"]["value"] = json!(mask_id(v));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(fields: Value) -> FillBody {
        serde_json::from_value(json!({"fields": fields})).unwrap()
    }

    #[test]
    fn values_are_trimmed_and_the_id_number_upper_cased() {
        let b = validate(body(json!({
            "name": {"value": " 张三 ", "source": "chip"},
            "id_number": {"value": "11010519491231002x", "source": "photo", "edited": true},
            "valid_to": {"value": "长期", "source": "photo"},
        })))
        .unwrap();
        assert_eq!(b.fields["name"].value, "张三");
        assert_eq!(b.fields["id_number"].value, "11010519491231002X");
        assert_eq!(
            summary(&b),
            json!({"fields": ["id_number", "name", "valid_to"],
                   "sources": {"id_number": "photo", "name": "chip", "valid_to": "photo"},
                   "edited": ["id_number"], "ocr_id": null})
        );
    }

    #[test]
    fn the_first_bad_field_is_named() {
        let e = validate(body(
            json!({"birth_date": {"value": "1978-02-30", "source": "photo"}}),
        ))
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("birth_date"));
        let e = validate(body(json!({}))).unwrap_err();
        assert_eq!(e.field, None);
    }

    #[test]
    fn an_id_number_is_masked_for_the_screen() {
        let f = for_screen(json!({"id_number": {"value": "321083197812162119", "source": "chip"}}));
        assert_eq!(f["id_number"]["value"], "3210**********2119");
        assert_eq!(mask_id("1234"), "****");
    }
}
