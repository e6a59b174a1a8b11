//! The data of head office's customer commands (`customer.upsert`, `customer.delete`), read
//! strictly: every problem named, nothing applied unless all is well.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::command::Fields;

/// A maturing deposit or wealth product of a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maturity {
    /// `deposit` or `wealth`.
    pub kind: String,
    /// When it matures.
    pub date: NaiveDate,
    /// The product's code, when head office gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
}

/// A customer as head office describes them to the box. The ID number itself never
/// reaches the box: only its salted hash (`id_hash`).
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRecord {
    /// Head office's customer id.
    pub customer_id: String,
    /// HMAC-SHA256 of the ID number under `[customers] id_salt`, 64 hex digits.
    pub id_hash: Option<String>,
    /// Display name.
    pub name: String,
    /// Customer level, e.g. `vip2`.
    pub level: Option<String>,
    /// Assessed risk tolerance `C1`–`C5`, as 1–5.
    pub risk_level: Option<u8>,
    /// Birthday, month and day.
    pub birthday: Option<(u32, u32)>,
    /// The relationship manager's user name.
    pub relationship_manager: Option<String>,
    /// Deposits and wealth products and when they mature.
    pub maturities: Vec<Maturity>,
}

/// Whether `s` is a hash as head office sends it: 64 lower-case hex digits.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// `C1`…`C5` as 1–5.
pub fn parse_risk_level(s: &str) -> Option<u8> {
    match s.as_bytes() {
        [b'C', d @ b'1'..=b'5'] => Some(d - b'0'),
        _ => None,
    }
}

/// `MM-DD` as (month, day).
fn parse_birthday(s: &str) -> Option<(u32, u32)> {
    let (m, d) = s.split_once('-')?;
    if m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (m, d) = (m.parse().ok()?, d.parse().ok()?);
    // 2024 is a leap year: 02-29 is a birthday too.
    NaiveDate::from_ymd_opt(2024, m, d).map(|_| (m, d))
}

/// Parse and check the `data` of `customer.upsert`; the error names every problem.
pub fn upsert(data: &Map<String, Value>) -> Result<CustomerRecord, String> {
    let mut f = Fields::new(data);
    let customer_id = f.id("customer_id");
    let id_hash = f.opt_string("id_hash", 64);
    if let Some(h) = &id_hash
        && !is_hash(h)
    {
        f.problem("`id_hash` must be 64 lower-case hex digits (HMAC-SHA256 of the ID number)");
    }
    let name = f.string("name", 100);
    let level = f.opt_string("level", 32);
    let risk_level = f.opt_string("risk_level", 2).and_then(|r| {
        let v = parse_risk_level(&r);
        if v.is_none() {
            f.problem("`risk_level` must be one of C1, C2, C3, C4, C5");
        }
        v
    });
    let birthday = f.opt_string("birthday", 5).and_then(|b| {
        let v = parse_birthday(&b);
        if v.is_none() {
            f.problem("`birthday` must be a month and day, MM-DD");
        }
        v
    });
    let relationship_manager = f.opt_string("relationship_manager", 64);
    let maturities = maturities(&mut f);
    f.finish()?;
    Ok(CustomerRecord {
        customer_id: customer_id.unwrap_or_default(),
        id_hash,
        name: name.unwrap_or_default(),
        level,
        risk_level,
        birthday,
        relationship_manager,
        maturities,
    })
}

/// `maturities`: at most 50 of `{"kind":"deposit"|"wealth","date":"YYYY-MM-DD","product"?}`.
fn maturities(f: &mut Fields<'_>) -> Vec<Maturity> {
    let Some(v) = f.get("maturities") else {
        return Vec::new();
    };
    let Some(list) = v.as_array().filter(|a| a.len() <= 50) else {
        f.problem("`maturities` must be a list of at most 50 entries");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let Some(m) = m.as_object() else {
            f.problem(format!("`maturities[{i}]` must be an object"));
            continue;
        };
        for k in m.keys() {
            if !["kind", "date", "product"].contains(&k.as_str()) {
                f.problem(format!("`maturities[{i}].{k}`: unknown key"));
            }
        }
        let kind = m
            .get("kind")
            .and_then(Value::as_str)
            .filter(|k| ["deposit", "wealth"].contains(k));
        if kind.is_none() {
            f.problem(format!(
                "`maturities[{i}].kind` must be one of deposit, wealth"
            ));
        }
        let date = m
            .get("date")
            .and_then(Value::as_str)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        if date.is_none() {
            f.problem(format!("`maturities[{i}].date` must be a date, YYYY-MM-DD"));
        }
        let product = match m.get("product") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if crate::command::is_code(p) => Some(p.clone()),
            Some(_) => {
                f.problem(format!(
                    "`maturities[{i}].product` must be 1–64 letters, digits, '-' or '_'"
                ));
                None
            }
        };
        if let (Some(kind), Some(date)) = (kind, date) {
            out.push(Maturity {
                kind: kind.to_string(),
                date,
                product,
            });
        }
    }
    out
}

/// Parse the `data` of `customer.delete`: the customer id.
pub fn delete(data: &Map<String, Value>) -> Result<String, String> {
    let mut f = Fields::new(data);
    let c = f.id("customer_id");
    f.finish()?;
    Ok(c.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn bad_records_name_every_problem() {
        let cases: &[(Value, &str)] = &[
            (json!({"name": "王芳"}), "`customer_id` is required"),
            (
                json!({"customer_id": "C1", "name": "王芳", "id_hash": "321083197812162119"}),
                "`id_hash` must be 64 lower-case hex digits",
            ),
            (
                json!({"customer_id": "C1", "name": "王芳", "risk_level": "R3"}),
                "`risk_level` must be one of C1",
            ),
            (
                json!({"customer_id": "C1", "name": "王芳", "birthday": "02-30"}),
                "`birthday` must be a month and day",
            ),
            (
                json!({"customer_id": "C1", "name": "王芳", "maturities": [{"kind": "bond", "date": "2026-11-30"}]}),
                "`maturities[0].kind` must be one of deposit, wealth",
            ),
            (
                json!({"customer_id": "C1", "name": "王芳", "maturities": [{"kind": "deposit", "date": "30/11"}]}),
                "`maturities[0].date` must be a date",
            ),
            (
                json!({"customer_id": "C1", "name": "王芳", "id_number": "321083197812162119"}),
                "unknown key `id_number`",
            ),
        ];
        for (data, want) in cases {
            let got = upsert(&map(data.clone())).expect_err("refused");
            assert!(got.contains(want), "{data}: `{got}` lacks `{want}`");
        }
    }

    #[test]
    fn a_full_record_is_read() {
        let hash = "a".repeat(64);
        let c = upsert(&map(json!({
            "customer_id": "C-10001", "id_hash": hash, "name": "王芳", "level": "vip1",
            "risk_level": "C3", "birthday": "02-29", "relationship_manager": "manager",
            "maturities": [{"kind": "deposit", "date": "2026-11-28", "product": "TD-3Y"}]
        })))
        .expect("valid");
        assert_eq!(c.risk_level, Some(3));
        assert_eq!(c.birthday, Some((2, 29)));
        assert_eq!(c.maturities[0].product.as_deref(), Some("TD-3Y"));
        assert_eq!(
            delete(&map(json!({"customer_id": "C-10001"}))),
            Ok("C-10001".into())
        );
    }
}
