//! `branchd demo`: the customers head office would have described to the branch — a few
//! with a birthday this week or a deposit maturing soon, one known by the ID card the demo
//! reader shows (`张三`), and the VIP the entrance camera recognises.

use chrono::{Datelike, Duration as ChronoDuration, NaiveDate};

use super::{CustomerRecord, Maturity, id_hash, upsert};
use crate::config::Config;
use crate::store::{Store, StoreError};

/// The ID number on the demo customer 王芳's card (the standard's own example).
pub const WANG_FANG_ID_NUMBER: &str = "11010519491231002X";
/// The ID number head office knows Rose Leslie by (her coupons are hashed with it).
pub const ROSE_ID_NUMBER: &str = "310105199003074218";
/// The ID number of the card the demo reader shows now and then.
pub const ZHANG_SAN_ID_NUMBER: &str = "321083197812162119";
/// 王芳: takes a ticket as soon as the demo opens.
pub const WANG_FANG: &str = "C-10001";
/// 李建国: takes a ticket as soon as the demo opens.
pub const LI_JIANGUO: &str = "C-10002";
/// 张三: recognised by his ID card on the lobby reader.
pub const ZHANG_SAN: &str = "C-10003";
/// 赵敏: takes a ticket later in the demo.
pub const ZHAO_MIN: &str = "C-10004";
/// Rose Leslie: the VIP the entrance camera recognises.
pub const ROSE: &str = "C-20931";

/// The customers who take tickets with their customer id in the demo, in turn.
pub const TICKET_CUSTOMERS: &[&str] = &[WANG_FANG, LI_JIANGUO, ZHAO_MIN];

fn md(d: NaiveDate) -> Option<(u32, u32)> {
    Some((d.month(), d.day()))
}

/// The demo's customer records, with marks relative to `today`.
pub fn records(salt: Option<&str>, today: NaiveDate) -> Vec<CustomerRecord> {
    let days = |n: i64| today + ChronoDuration::days(n);
    let this_week = |weekday: u32| {
        today - ChronoDuration::days(i64::from(today.weekday().num_days_from_monday()))
            + ChronoDuration::days(i64::from(weekday))
    };
    let hash = |n: &str| salt.map(|s| id_hash(s, n));
    let maturity = |kind: &str, date: NaiveDate, product: &str| Maturity {
        kind: kind.into(),
        date,
        product: Some(product.into()),
    };
    vec![
        CustomerRecord {
            customer_id: WANG_FANG.into(),
            id_hash: hash(WANG_FANG_ID_NUMBER),
            name: "王芳".into(),
            level: Some("vip1".into()),
            risk_level: Some(2),
            birthday: md(today),
            relationship_manager: Some("manager".into()),
            maturities: vec![maturity("deposit", days(5), "TD-1Y")],
        },
        CustomerRecord {
            customer_id: LI_JIANGUO.into(),
            id_hash: None,
            name: "李建国".into(),
            level: Some("normal".into()),
            risk_level: Some(3),
            birthday: None,
            relationship_manager: Some("manager".into()),
            maturities: vec![maturity("wealth", days(3), "WM-91")],
        },
        CustomerRecord {
            customer_id: ZHANG_SAN.into(),
            id_hash: hash(ZHANG_SAN_ID_NUMBER),
            name: "张三".into(),
            level: Some("normal".into()),
            risk_level: Some(4),
            birthday: None,
            relationship_manager: None,
            maturities: Vec::new(),
        },
        CustomerRecord {
            customer_id: ZHAO_MIN.into(),
            id_hash: None,
            name: "赵敏".into(),
            level: Some("vip3".into()),
            risk_level: Some(5),
            birthday: md(this_week(6)),
            relationship_manager: Some("manager".into()),
            maturities: vec![maturity("wealth", days(6), "WM-365")],
        },
        CustomerRecord {
            customer_id: ROSE.into(),
            id_hash: hash(ROSE_ID_NUMBER),
            name: "Rose Leslie".into(),
            level: Some("vip2".into()),
            risk_level: Some(3),
            birthday: md(this_week(3)),
            relationship_manager: Some("manager".into()),
            maturities: vec![maturity("deposit", days(6), "TD-3Y")],
        },
    ]
}

/// Describe the demo's customers to the box, as head office would.
pub fn seed(store: &Store, cfg: &Config, today: NaiveDate) -> Result<(), StoreError> {
    let records = records(cfg.customers.id_salt.as_deref(), today);
    store.write_blocking(move |tx| {
        for r in &records {
            upsert(tx, r, "demo")?;
        }
        Ok(())
    })
}
