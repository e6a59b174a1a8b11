//! `branchd demo`: a shelf as head office would send it — time deposits, a large-sum
//! certificate, two wealth products, a fund, an annuity and two loans.

use chrono::{Duration as ChronoDuration, NaiveDate};

use super::{Product, ProductType, upsert};
use crate::store::{Store, StoreError};

#[allow(clippy::too_many_arguments)]
fn product(
    code: &str,
    name_zh: &str,
    name_en: &str,
    kind: ProductType,
    risk: u8,
    channels: &[&str],
    hq_sales: u64,
    script_zh: &str,
    script_en: &str,
) -> Product {
    Product {
        code: code.into(),
        name_zh: name_zh.into(),
        name_en: name_en.into(),
        kind,
        rate_bp: None,
        demand_rate_bp: None,
        return_min_bp: None,
        return_max_bp: None,
        term_months: None,
        term_days: None,
        min_amount_fen: 0,
        risk,
        channels: channels.iter().map(|c| (*c).to_string()).collect(),
        script_zh: Some(script_zh.into()),
        script_en: Some(script_en.into()),
        valid_from: None,
        valid_to: None,
        hq_sales,
    }
}

/// The demo's products; the wealth products are on sale for a while around `today`.
pub fn products(today: NaiveDate) -> Vec<Product> {
    use ProductType::*;
    let deposit = |code, zh, en, rate, months, min, channels: &[&str], sales, s_zh, s_en| Product {
        rate_bp: Some(rate),
        demand_rate_bp: Some(5),
        term_months: Some(months),
        min_amount_fen: min,
        ..product(code, zh, en, Deposit, 1, channels, sales, s_zh, s_en)
    };
    vec![
        deposit(
            "TD-1Y",
            "一年期整存整取",
            "1-year time deposit",
            95,
            12,
            5_000,
            &["counter", "stm", "pad"],
            3_200,
            "一年期定期，50元起存，到期本息一次支取。",
            "One year, from 50 yuan; principal and interest paid together at maturity.",
        ),
        deposit(
            "TD-3Y",
            "三年期整存整取",
            "3-year time deposit",
            125,
            36,
            5_000,
            &["counter", "stm"],
            2_100,
            "三年期定期，利率1.25%，适合长期稳健储蓄。",
            "Three years at 1.25 %, for steady long-term saving.",
        ),
        deposit(
            "CD-3Y",
            "三年期大额存单",
            "3-year large certificate of deposit",
            155,
            36,
            20_000_000,
            &["counter", "pad"],
            800,
            "20万元起存，利率高于普通定期，可转让。",
            "From 200,000 yuan, a higher rate than a plain deposit, transferable.",
        ),
        Product {
            return_min_bp: Some(230),
            return_max_bp: Some(280),
            term_days: Some(91),
            min_amount_fen: 1_000_000,
            valid_from: Some(today - ChronoDuration::days(30)),
            valid_to: Some(today + ChronoDuration::days(60)),
            ..product(
                "WM-91",
                "稳利91天",
                "Steady Income 91 Days",
                Wealth,
                2,
                &["stm", "pad"],
                5_400,
                "业绩比较基准2.30%–2.80%，91天封闭，1万元起购。理财非存款，产品有风险，投资须谨慎。",
                "Benchmark 2.30–2.80 %, 91 days, from 10,000 yuan. Wealth products are not deposits and carry risk.",
            )
        },
        Product {
            return_min_bp: Some(260),
            return_max_bp: Some(340),
            term_days: Some(365),
            min_amount_fen: 1_000_000,
            valid_from: Some(today - ChronoDuration::days(10)),
            valid_to: Some(today + ChronoDuration::days(90)),
            ..product(
                "WM-365",
                "鑫享一年",
                "Prosper One Year",
                Wealth,
                3,
                &["counter", "pad"],
                1_800,
                "一年期，业绩比较基准2.60%–3.40%，适合稳健型以上客户。",
                "One year, benchmark 2.60–3.40 %, for balanced customers and above.",
            )
        },
        Product {
            return_min_bp: Some(150),
            return_max_bp: Some(900),
            term_days: Some(365),
            min_amount_fen: 100_000,
            ..product(
                "FD-GROW",
                "优选成长混合基金",
                "Select Growth Mixed Fund",
                Fund,
                4,
                &["pad"],
                950,
                "过往年化1.5%–9.0%，波动较大，适合进取型客户；过往业绩不代表未来表现。",
                "Past annualised 1.5–9.0 %, volatile, for growth investors; past results do not promise future ones.",
            )
        },
        Product {
            term_months: Some(120),
            min_amount_fen: 1_000_000,
            ..product(
                "IN-ANNU",
                "安心年金保险",
                "Peace of Mind Annuity",
                Insurance,
                2,
                &["counter"],
                400,
                "十年交费，终身领取，为退休生活添一份保障。",
                "Ten years of premiums, an income for life after retirement.",
            )
        },
        Product {
            rate_bp: Some(360),
            term_months: Some(60),
            min_amount_fen: 3_000_000,
            ..product(
                "LN-CAR",
                "安驾车贷",
                "Easy Drive Car Loan",
                Loan,
                1,
                &["counter", "pad"],
                300,
                "年利率3.60%，最长5年，可选等额本息或等额本金。",
                "3.60 % a year, up to 5 years, equal instalments or equal principal.",
            )
        },
        Product {
            rate_bp: Some(310),
            term_months: Some(360),
            min_amount_fen: 10_000_000,
            ..product(
                "LN-HOME",
                "个人住房贷款",
                "Home Mortgage",
                Loan,
                1,
                &["counter"],
                600,
                "首套房利率3.10%，最长30年。",
                "3.10 % for a first home, up to 30 years.",
            )
        },
    ]
}

/// Put the demo's products on the shelf, as head office would.
pub fn seed(store: &Store, today: NaiveDate) -> Result<(), StoreError> {
    let list = products(today);
    store.write_blocking(move |tx| {
        for p in &list {
            upsert(tx, p, "demo")?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_products_pass_head_offices_checks() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        for p in products(today) {
            let mut v = serde_json::to_value(&p).unwrap();
            let m = v.as_object_mut().unwrap();
            // the command names head office's figure `sales` and leaves out what is not set
            let sales = m.remove("hq_sales").unwrap();
            m.insert("sales".into(), sales);
            m.retain(|_, v| !v.is_null());
            let parsed =
                super::super::command::upsert(m).unwrap_or_else(|e| panic!("{}: {e}", p.code));
            assert_eq!(parsed, p);
        }
    }
}
