//! The data of head office's product commands (`product.upsert`, `product.delete`), read
//! strictly: every problem named, nothing applied unless all is well.

use serde_json::{Map, Value};

use super::{Product, ProductType};
use crate::command::Fields;

/// The channels a product is sold through.
pub const CHANNELS: &[&str] = &["counter", "stm", "pad"];

/// The largest rate or return: 100 % a year.
const MAX_BP: i64 = 10_000;

/// `R1`…`R5` as 1–5.
pub fn parse_risk(s: &str) -> Option<u8> {
    match s.as_bytes() {
        [b'R', d @ b'1'..=b'5'] => Some(d - b'0'),
        _ => None,
    }
}

/// Parse and check the `data` of `product.upsert`; the error names every problem.
pub fn upsert(data: &Map<String, Value>) -> Result<Product, String> {
    let mut f = Fields::new(data);
    let code = f.id("code");
    let name_zh = f.string("name_zh", 60);
    let name_en = f.string("name_en", 120);
    let kind = f
        .one_of(
            "type",
            &ProductType::ALL
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>(),
        )
        .and_then(|t| t.parse::<ProductType>().ok());
    let bp = |f: &mut Fields<'_>, k: &'static str| f.opt_int(k, 0, MAX_BP).map(|v| v as u32);
    let rate_bp = bp(&mut f, "rate_bp");
    let demand_rate_bp = bp(&mut f, "demand_rate_bp");
    let return_min_bp = bp(&mut f, "return_min_bp");
    let return_max_bp = bp(&mut f, "return_max_bp");
    let term_months = f.opt_int("term_months", 1, 600).map(|v| v as u32);
    let term_days = f.opt_int("term_days", 1, 3_650).map(|v| v as u32);
    let min_amount_fen = f
        .opt_int("min_amount_fen", 0, 10_000_000_000_000)
        .unwrap_or(0);
    let risk = f.string("risk", 2).and_then(|r| {
        let v = parse_risk(&r);
        if v.is_none() {
            f.problem("`risk` must be one of R1, R2, R3, R4, R5");
        }
        v
    });
    let channels = match f.opt_strings("channels", 3, 16) {
        None if !f.has("channels") => {
            f.problem("`channels` is required");
            Vec::new()
        }
        None => Vec::new(),
        Some(c) => {
            if c.is_empty() {
                f.problem("`channels` must name at least one of counter, stm, pad");
            }
            for ch in &c {
                if !CHANNELS.contains(&ch.as_str()) {
                    f.problem(format!(
                        "`channels`: `{ch}` is not one of counter, stm, pad"
                    ));
                }
            }
            c
        }
    };
    let script_zh = f.opt_string("script_zh", 300);
    let script_en = f.opt_string("script_en", 600);
    let valid_from = f.opt_date("valid_from");
    let valid_to = f.opt_date("valid_to");
    if let (Some(a), Some(b)) = (valid_from, valid_to)
        && a > b
    {
        f.problem("`valid_from` is after `valid_to`");
    }
    let hq_sales = f.opt_int("sales", 0, 1_000_000_000).unwrap_or(0) as u64;
    // What each type needs, and what it cannot have.
    if let Some(t) = kind {
        let given = |f: &Fields<'_>, k: &str| f.has(k);
        let need: &[&str] = match t {
            ProductType::Deposit => &["rate_bp", "term_months", "demand_rate_bp"],
            ProductType::Loan => &["rate_bp", "term_months"],
            ProductType::Wealth => &["return_min_bp", "return_max_bp", "term_days"],
            ProductType::Fund => &["return_min_bp", "return_max_bp"],
            ProductType::Insurance => &[],
        };
        let forbid: &[&str] = match t {
            ProductType::Deposit | ProductType::Loan => &["return_min_bp", "return_max_bp"],
            ProductType::Wealth | ProductType::Fund | ProductType::Insurance => {
                &["rate_bp", "demand_rate_bp"]
            }
        };
        for k in need {
            if !given(&f, k) {
                f.problem(format!("`{k}` is required for a {t} product"));
            }
        }
        for k in forbid {
            if given(&f, k) {
                f.problem(format!("`{k}` does not apply to a {t} product"));
            }
        }
        if t == ProductType::Loan && given(&f, "demand_rate_bp") {
            f.problem("`demand_rate_bp` does not apply to a loan product");
        }
    }
    if let (Some(a), Some(b)) = (return_min_bp, return_max_bp)
        && a > b
    {
        f.problem("`return_min_bp` is above `return_max_bp`");
    }
    if return_min_bp.is_some() != return_max_bp.is_some() {
        f.problem("give both `return_min_bp` and `return_max_bp` (equal for a single figure)");
    }
    f.finish()?;
    Ok(Product {
        code: code.unwrap_or_default(),
        name_zh: name_zh.unwrap_or_default(),
        name_en: name_en.unwrap_or_default(),
        kind: kind.unwrap_or(ProductType::Deposit),
        rate_bp,
        demand_rate_bp,
        return_min_bp,
        return_max_bp,
        term_months,
        term_days,
        min_amount_fen,
        risk: risk.unwrap_or(1),
        channels,
        script_zh,
        script_en,
        valid_from,
        valid_to,
        hq_sales,
    })
}

/// Parse the `data` of `product.delete`: the product code.
pub fn delete(data: &Map<String, Value>) -> Result<String, String> {
    let mut f = Fields::new(data);
    let c = f.id("code");
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

    fn deposit() -> Value {
        json!({"code": "TD-3Y", "name_zh": "三年期定期存款", "name_en": "3-year time deposit",
               "type": "deposit", "rate_bp": 275, "demand_rate_bp": 35, "term_months": 36,
               "min_amount_fen": 5_000, "risk": "R1", "channels": ["counter", "stm"],
               "script_zh": "三年期，利率2.75%。", "sales": 1200})
    }

    #[test]
    fn a_deposit_and_a_wealth_product_are_read() {
        let p = upsert(&map(deposit())).expect("valid");
        assert_eq!(
            (p.kind, p.rate_bp, p.term_months, p.risk),
            (ProductType::Deposit, Some(275), Some(36), 1)
        );
        assert_eq!(p.hq_sales, 1200);
        let w = upsert(&map(json!({"code": "WM-91", "name_zh": "稳利91天", "name_en": "Steady 91",
            "type": "wealth", "return_min_bp": 280, "return_max_bp": 340, "term_days": 91,
            "risk": "R2", "channels": ["pad"], "valid_from": "2026-11-01", "valid_to": "2026-12-31"})))
        .expect("valid");
        assert_eq!(
            (w.return_min_bp, w.return_max_bp, w.term_days),
            (Some(280), Some(340), Some(91))
        );
    }

    #[test]
    fn bad_products_name_every_problem() {
        let with = |k: &str, v: Value| {
            let mut d = deposit();
            d[k] = v;
            d
        };
        let without = |k: &str| {
            let mut d = deposit();
            d.as_object_mut().unwrap().remove(k);
            d
        };
        let cases: Vec<(Value, &str)> = vec![
            (without("code"), "`code` is required"),
            (
                with("type", json!("bond")),
                "`type` must be one of deposit, wealth, fund, insurance, loan",
            ),
            (with("risk", json!("C3")), "`risk` must be one of R1"),
            (
                with("rate_bp", json!(-1)),
                "`rate_bp` must be an integer 0–10000",
            ),
            (
                with("rate_bp", json!(2.75)),
                "`rate_bp` must be an integer 0–10000",
            ),
            (
                without("demand_rate_bp"),
                "`demand_rate_bp` is required for a deposit product",
            ),
            (
                with("return_min_bp", json!(100)),
                "`return_min_bp` does not apply to a deposit product",
            ),
            (
                with("channels", json!(["web"])),
                "`channels`: `web` is not one of counter, stm, pad",
            ),
            (without("channels"), "`channels` is required"),
            (
                with("valid_to", json!("31/12/2026")),
                "`valid_to` must be a date",
            ),
            (
                with("script_zh", json!("话".repeat(301))),
                "`script_zh` must be a non-empty string of at most 300",
            ),
            (with("colour", json!("red")), "unknown key `colour`"),
        ];
        for (data, want) in cases {
            let got = upsert(&map(data.clone())).expect_err("refused");
            assert!(got.contains(want), "{data}: `{got}` lacks `{want}`");
        }
        let got = upsert(&map(
            json!({"code": "WM-1", "name_zh": "理财", "name_en": "W", "type": "wealth",
            "return_min_bp": 400, "return_max_bp": 300, "risk": "R2", "channels": ["pad"],
            "valid_from": "2026-12-01", "valid_to": "2026-11-01"}),
        ))
        .expect_err("refused");
        for want in [
            "`return_min_bp` is above",
            "`term_days` is required",
            "`valid_from` is after",
        ] {
            assert!(got.contains(want), "`{got}` lacks `{want}`");
        }
        assert!(delete(&map(json!({"code": "a b"}))).is_err());
    }
}
