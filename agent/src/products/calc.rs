//! The lobby's calculators, each rule the one Chinese banks publish, in its own function.
//!
//! Money is integer fen (1 yuan = 100 fen); rates are basis points a year (1 bp = 0.01 %).
//! Every amount is rounded once, to the fen, half up (四舍五入), from an exact integer
//! quotient — except the equal-instalment payment, whose closed formula has a power in it:
//! it is computed in double precision and then rounded half up to the fen, and the last
//! instalment pays whatever balance is left, so the principal is always repaid exactly.

use serde::Serialize;

/// An amount of money in fen.
pub type Fen = i64;

/// `num / den` rounded half up, for `num >= 0` and `den > 0`.
fn div_half_up(num: i128, den: i128) -> i128 {
    (2 * num + den) / (2 * den)
}

fn to_fen(v: i128) -> Fen {
    Fen::try_from(v).unwrap_or(Fen::MAX)
}

/// Interest of a time deposit (整存整取) held to maturity: principal × annual rate × months
/// / 12, rounded half up to the fen.
///
/// Rule: 中国人民银行《人民币利率管理规定》(1999) 第二十五条 — a term of whole years or months
/// earns 本金 × 年(月)数 × 年(月)利率, with 月利率 = 年利率 ÷ 12.
pub fn time_deposit_interest(principal: Fen, rate_bp: u32, months: u32) -> Fen {
    let num = i128::from(principal.max(0)) * i128::from(rate_bp) * i128::from(months);
    to_fen(div_half_up(num, 10_000 * 12))
}

/// Interest at the demand rate for `days` days (活期, and a time deposit withdrawn before
/// maturity): principal × annual rate × days / 360, rounded half up to the fen.
///
/// Rules: 《储蓄管理条例》第二十七条 — a time deposit withdrawn early earns the demand rate
/// published on the day of withdrawal; 《人民币利率管理规定》第二十五条 — 日利率 = 年利率 ÷ 360,
/// interest = 本金 × 实际天数 × 日利率.
pub fn demand_interest(principal: Fen, rate_bp: u32, days: u32) -> Fen {
    let num = i128::from(principal.max(0)) * i128::from(rate_bp) * i128::from(days);
    to_fen(div_half_up(num, 10_000 * 360))
}

/// Expected return of a wealth product over a holding period: amount × annual rate × days
/// / 365, rounded half up to the fen.
///
/// Rule: the formula bank wealth-product prospectuses state for the performance benchmark
/// (业绩比较基准): 预期收益 = 投资本金 × 业绩比较基准 × 持有天数 ÷ 365.
pub fn expected_return(amount: Fen, rate_bp: u32, days: u32) -> Fen {
    let num = i128::from(amount.max(0)) * i128::from(rate_bp) * i128::from(days);
    to_fen(div_half_up(num, 10_000 * 365))
}

/// One month of a repayment schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Instalment {
    /// 1-based month.
    pub n: u32,
    /// What is paid this month (`principal + interest`).
    pub payment: Fen,
    /// The principal repaid this month.
    pub principal: Fen,
    /// The interest of this month.
    pub interest: Fen,
    /// The principal still owed after this month.
    pub balance: Fen,
}

/// A month's interest on `balance`: balance × annual rate / 12, rounded half up.
fn month_interest(balance: Fen, rate_bp: u32) -> Fen {
    to_fen(div_half_up(
        i128::from(balance.max(0)) * i128::from(rate_bp),
        10_000 * 12,
    ))
}

/// The monthly payment of an equal-instalment loan (等额本息):
/// P × r × (1 + r)^n ÷ ((1 + r)^n − 1) with r = annual rate ÷ 12 (P ÷ n without interest),
/// computed in double precision and rounded half up to the fen.
///
/// Rule: the formula the banks publish for 等额本息还款法 (e.g. in their mortgage contracts
/// under 中国人民银行《个人住房贷款管理办法》): 每月还款额 = 贷款本金 × 月利率 × (1 + 月利率)^还款月数
/// ÷ ((1 + 月利率)^还款月数 − 1).
pub fn equal_instalment_payment(principal: Fen, rate_bp: u32, months: u32) -> Fen {
    if months == 0 || principal <= 0 {
        return principal.max(0);
    }
    if rate_bp == 0 {
        return to_fen(div_half_up(i128::from(principal), i128::from(months)));
    }
    let p = principal as f64;
    let r = f64::from(rate_bp) / 120_000.0;
    let q = (1.0 + r).powi(months as i32);
    (p * r * q / (q - 1.0)).round() as Fen
}

/// The schedule of an equal-instalment loan (等额本息): every month pays
/// [`equal_instalment_payment`]; its interest is the month's interest on the balance
/// (rounded half up), the rest repays principal; the last month repays the balance left,
/// so the principal is repaid to the fen.
pub fn equal_instalments(principal: Fen, rate_bp: u32, months: u32) -> Vec<Instalment> {
    let payment = equal_instalment_payment(principal, rate_bp, months);
    let mut balance = principal.max(0);
    (1..=months)
        .map(|n| {
            let interest = month_interest(balance, rate_bp);
            let principal_part = if n == months {
                balance
            } else {
                (payment - interest).clamp(0, balance)
            };
            balance -= principal_part;
            Instalment {
                n,
                payment: principal_part + interest,
                principal: principal_part,
                interest,
                balance,
            }
        })
        .collect()
}

/// The schedule of an equal-principal loan (等额本金): each month repays principal ÷ months
/// (the fen that do not divide evenly are repaid one each in the first months) plus the
/// month's interest on the balance, rounded half up; payments fall month by month.
///
/// Rule: the formula the banks publish for 等额本金还款法: 每月还款额 = 贷款本金 ÷ 还款月数 +
/// (贷款本金 − 已归还本金累计额) × 月利率.
pub fn equal_principal(principal: Fen, rate_bp: u32, months: u32) -> Vec<Instalment> {
    if months == 0 {
        return Vec::new();
    }
    let principal = principal.max(0);
    let base = principal / Fen::from(months);
    let extra = principal % Fen::from(months);
    let mut balance = principal;
    (1..=months)
        .map(|n| {
            let interest = month_interest(balance, rate_bp);
            let principal_part = base + Fen::from(Fen::from(n) <= extra);
            balance -= principal_part;
            Instalment {
                n,
                payment: principal_part + interest,
                principal: principal_part,
                interest,
                balance,
            }
        })
        .collect()
}

/// Whether a product suits a customer's risk tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Suitability {
    /// The product's risk is at or below the customer's level.
    Suitable,
    /// The product's risk is above the customer's level: a warning.
    Exceeds,
    /// The customer's level is not known: assess before selling.
    Unknown,
}

/// Product risk `R1`–`R5` (1–5) against the customer's assessed level `C1`–`C5` (1–5).
///
/// Rule: 《商业银行理财业务监督管理办法》(2018) 第二十六条 — a bank sells a customer only
/// products whose risk level is at or below the customer's assessed risk tolerance.
pub fn suitability(product_risk: u8, customer_risk: Option<u8>) -> Suitability {
    match customer_risk {
        None => Suitability::Unknown,
        Some(c) if product_risk <= c => Suitability::Suitable,
        Some(_) => Suitability::Exceeds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const YUAN: Fen = 100;

    /// (what, principal, rate bp, months, interest) — worked examples.
    #[test]
    fn time_deposit_interest_worked_examples() {
        let cases: &[(&str, Fen, u32, u32, Fen)] = &[
            // 10 万元, 3 years at 2.75 %: 100000 × 2.75 % × 3 = 8250.00
            ("3 years", 100_000 * YUAN, 275, 36, 8_250 * YUAN),
            // 5 万元, 6 months at 1.55 %: 50000 × 1.55 % × 6 / 12 = 387.50
            ("6 months", 50_000 * YUAN, 155, 6, 38_750),
            // 1 万元, 3 months at 1.25 %: 10000 × 1.25 % / 4 = 31.25
            ("3 months", 10_000 * YUAN, 125, 3, 3_125),
            // rounding: 1 yuan, 1 year at 0.50 % is exactly half a fen → 1 fen (half up)
            ("half a fen rounds up", YUAN, 50, 12, 1),
            // 1 yuan, 1 year at 0.49 % is 0.49 fen → 0
            ("below half a fen rounds down", YUAN, 49, 12, 0),
            // 333.33 yuan, 1 month at 1.10 %: 33333 × 0.011 / 12 = 30.555… fen → 31
            ("a third of a fen over half", 33_333, 110, 1, 31),
            ("no rate", 100_000 * YUAN, 0, 12, 0),
        ];
        for (what, p, rate, months, want) in cases {
            assert_eq!(time_deposit_interest(*p, *rate, *months), *want, "{what}");
        }
    }

    #[test]
    fn early_withdrawal_earns_the_demand_rate_by_the_day() {
        let cases: &[(&str, Fen, u32, u32, Fen)] = &[
            // 10 万元 withdrawn after 200 days at 0.35 %: 100000 × 0.35 % × 200 / 360 = 194.444… → 194.44
            ("200 days", 100_000 * YUAN, 35, 200, 19_444),
            // 2 万元 after 90 days at 0.10 %: 20000 × 0.1 % × 90 / 360 = 5.00
            ("90 days", 20_000 * YUAN, 10, 90, 500),
            // 7200 fen (72 yuan) after 1 day at 0.25 %: 7200 × 0.0025 / 360 = 0.05 fen → 0
            ("a day on a small sum", 7_200, 25, 1, 0),
            // 72 000 fen after 1 day at 0.25 %: 0.5 fen exactly → 1 (half up)
            ("exactly half a fen", 72_000, 25, 1, 1),
            ("the same day", 100_000 * YUAN, 35, 0, 0),
        ];
        for (what, p, rate, days, want) in cases {
            assert_eq!(demand_interest(*p, *rate, *days), *want, "{what}");
        }
    }

    #[test]
    fn expected_return_worked_examples() {
        let cases: &[(&str, Fen, u32, u32, Fen)] = &[
            // 5 万元 for 91 days at 3.00 %: 50000 × 3 % × 91 / 365 = 373.972… → 373.97
            ("91 days at 3.00 %", 50_000 * YUAN, 300, 91, 37_397),
            // and at 3.50 %: 436.301… → 436.30
            ("91 days at 3.50 %", 50_000 * YUAN, 350, 91, 43_630),
            // 1 万元 for a year at 2.80 %: 280.00
            ("a year", 10_000 * YUAN, 280, 365, 28_000),
            // 73 000 fen for one day at 2.50 %: 73000 × 0.025 / 365 = 5.0 fen
            ("whole fen", 73_000, 250, 1, 5),
            // 7 300 fen for one day at 2.50 %: 0.5 fen → 1 (half up)
            ("half a fen", 7_300, 250, 1, 1),
        ];
        for (what, p, rate, days, want) in cases {
            assert_eq!(expected_return(*p, *rate, *days), *want, "{what}");
        }
    }

    #[test]
    fn equal_instalments_worked_example_a_mortgage() {
        // The figure every bank's mortgage calculator shows: 100 万元 over 30 years at
        // 4.90 % — 5,307.27 yuan a month.
        let s = equal_instalments(1_000_000 * YUAN, 490, 360);
        assert_eq!(s.len(), 360);
        assert_eq!(s[0].payment, 530_727);
        assert_eq!(s[0].interest, 408_333, "1,000,000 × 4.9 % / 12 = 4,083.33");
        assert_eq!(s[0].principal, 122_394);
        assert!(s[..359].iter().all(|i| i.payment == 530_727));
        assert_eq!(s.iter().map(|i| i.principal).sum::<Fen>(), 1_000_000 * YUAN);
        assert_eq!(s[359].balance, 0);
        // Total interest ≈ 5,307.27 × 360 − 1,000,000 = 910,617.20; the last month's
        // rounding moves it by a few fen at most.
        let interest: Fen = s.iter().map(|i| i.interest).sum();
        assert!((interest - 91_061_720).abs() <= 360, "{interest}");
    }

    #[test]
    fn equal_instalments_worked_example_a_car_loan() {
        // 12 万元 over 36 months at 3.60 %: 120000 × 0.003 × 1.003^36 / (1.003^36 − 1)
        // = 3,521.57 a month (3,521.565…).
        let s = equal_instalments(120_000 * YUAN, 360, 36);
        assert_eq!(s[0].payment, 352_157);
        assert_eq!(s[0].interest, 36_000);
        assert_eq!(s.iter().map(|i| i.principal).sum::<Fen>(), 120_000 * YUAN);
        // Without interest: 1,000 yuan over 3 months is 333.33, 333.33, 333.34.
        let s = equal_instalments(1_000 * YUAN, 0, 3);
        let payments: Vec<Fen> = s.iter().map(|i| i.payment).collect();
        assert_eq!(payments, [33_333, 33_333, 33_334]);
    }

    #[test]
    fn equal_principal_worked_example_a_mortgage() {
        // 100 万元 over 30 years at 4.90 %: the first month repays 2,777.78 of principal
        // and 4,083.33 of interest, 6,861.11 in all; each month about 11.34 less.
        let s = equal_principal(1_000_000 * YUAN, 490, 360);
        assert_eq!(s[0].payment, 686_111);
        assert_eq!((s[0].principal, s[0].interest), (277_778, 408_333));
        assert_eq!(s[0].payment - s[1].payment, 1_134);
        // 1,000,000 = 360 × 2,777.77 + 2.80: the first 280 months repay one fen more.
        assert_eq!(s[279].principal, 277_778);
        assert_eq!(s[280].principal, 277_777);
        assert_eq!(s.last().unwrap().balance, 0);
        // Total interest: P × r × (n + 1) / 2 = 737,041.67, within the rounding of 360 months.
        let interest: Fen = s.iter().map(|i| i.interest).sum();
        assert!((interest - 73_704_167).abs() <= 180, "{interest}");
    }

    #[test]
    fn suitability_compares_the_product_risk_with_the_customer_level() {
        let cases = [
            (3, Some(3), Suitability::Suitable),
            (2, Some(5), Suitability::Suitable),
            (4, Some(3), Suitability::Exceeds),
            (5, Some(1), Suitability::Exceeds),
            (1, None, Suitability::Unknown),
        ];
        for (product, customer, want) in cases {
            assert_eq!(
                suitability(product, customer),
                want,
                "R{product} C{customer:?}"
            );
        }
    }

    /// Schedules are consistent row by row: payment = principal + interest, the balance
    /// falls by the principal, the interest is the month's on the balance before.
    fn consistent(s: &[Instalment], principal: Fen, rate_bp: u32, months: u32) {
        assert_eq!(s.len() as u32, months);
        let mut balance = principal;
        for i in s {
            assert_eq!(i.payment, i.principal + i.interest, "{i:?}");
            assert!(i.principal >= 0 && i.interest >= 0, "{i:?}");
            assert_eq!(i.interest, month_interest(balance, rate_bp), "{i:?}");
            balance -= i.principal;
            assert_eq!(i.balance, balance, "{i:?}");
            assert!(balance >= 0, "{i:?}");
        }
        assert_eq!(balance, 0, "repaid in full");
        assert_eq!(s.iter().map(|i| i.principal).sum::<Fen>(), principal);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn equal_instalments_repay_the_principal_exactly(
            principal in 100_000i64..=10_000_000_000,
            rate_bp in 0u32..=2_400,
            months in 1u32..=360,
        ) {
            let s = equal_instalments(principal, rate_bp, months);
            consistent(&s, principal, rate_bp, months);
            let payment = equal_instalment_payment(principal, rate_bp, months);
            // Every month but the last pays the same; the last differs by the rounding
            // carried over the term: at most half a fen of the payment and half a fen of
            // interest a month, each growing with interest — (1 + r)^n − 1) ÷ r in all.
            prop_assert!(s[..s.len() - 1].iter().all(|i| i.payment == payment));
            let last = s.last().unwrap().payment;
            let r = f64::from(rate_bp) / 120_000.0;
            let carried = if rate_bp == 0 {
                f64::from(months)
            } else {
                ((1.0 + r).powi(months as i32) - 1.0) / r
            };
            prop_assert!(
                ((last - payment).abs() as f64) <= carried.ceil() + 1.0,
                "last {last}, regular {payment}, bound {carried}"
            );
        }

        #[test]
        fn equal_principal_repays_the_principal_exactly_and_payments_never_rise(
            principal in 1i64..=10_000_000_000,
            rate_bp in 0u32..=2_400,
            months in 1u32..=360,
        ) {
            let s = equal_principal(principal, rate_bp, months);
            consistent(&s, principal, rate_bp, months);
            prop_assert!(s.windows(2).all(|w| w[1].payment <= w[0].payment));
            let max = s.iter().map(|i| i.principal).max().unwrap();
            let min = s.iter().map(|i| i.principal).min().unwrap();
            prop_assert!(max - min <= 1, "principal parts differ by at most a fen");
        }

        #[test]
        fn longer_and_dearer_never_earns_less(
            principal in 0i64..=10_000_000_000,
            rate_bp in 0u32..=1_000,
            days in 0u32..=3_650,
        ) {
            prop_assert!(expected_return(principal, rate_bp, days + 1) >= expected_return(principal, rate_bp, days));
            prop_assert!(expected_return(principal, rate_bp + 1, days) >= expected_return(principal, rate_bp, days));
            prop_assert!(demand_interest(principal, rate_bp, days + 1) >= demand_interest(principal, rate_bp, days));
        }
    }
}
