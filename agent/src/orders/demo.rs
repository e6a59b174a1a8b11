//! Sample orders for `branchd demo`, so the orders screen has content.

use chrono::{DateTime, Duration, Utc};
use serde_json::Map;

use super::model::{self, Customer, NewOrder, OrderError};
use crate::config::orders::{OrdersConfig, RecallAction, StepSpec};
use crate::store::{StoreError, Tx};

fn step(key: &str, name: &str, label: &str, sla_s: u32, cfg: &OrdersConfig) -> StepSpec {
    StepSpec {
        key: key.into(),
        name: name.into(),
        customer_label: Some(label.into()),
        sla_s,
        near_pct: cfg.near_pct,
        recall_after_s: cfg.recall_after_s,
        recall_action: RecallAction::Pool,
    }
}

fn steps_for(cfg: &OrdersConfig, business_type: &str) -> (String, Vec<StepSpec>) {
    if let Some(t) = cfg.template(business_type) {
        return (t.title.clone(), t.steps.clone());
    }
    let s = match business_type {
        "corporate_account" => vec![
            step("pre_review", "预审", "资料预审", 900, cfg),
            step("document_check", "证照核验", "证件核验", 600, cfg),
            step("account_opening", "开户", "开立账户", 1200, cfg),
            step("delivery", "交付", "领取材料", 300, cfg),
        ],
        _ => vec![
            step("document_check", "证件核验", "证件核验", 300, cfg),
            step("account_opening", "开户", "开立账户", 600, cfg),
            step("card_issuance", "发卡", "领取银行卡", 300, cfg),
        ],
    };
    let title = match business_type {
        "corporate_account" => "企业开户",
        "large_deposit" => "大额存单预约",
        _ => "个人开户",
    };
    (title.into(), s)
}

/// Create the sample orders that do not exist yet; one is approved with a step running.
pub fn create_samples(
    tx: &mut Tx<'_>,
    cfg: &OrdersConfig,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let samples = [
        ("DEMO-1001", "account_opening", "周先生", "13800000001", 30),
        (
            "DEMO-1002",
            "corporate_account",
            "南京示范科技有限公司",
            "13800000002",
            -20,
        ),
        ("DEMO-1003", "large_deposit", "李女士", "13800000003", 120),
    ];
    let mut created = 0;
    for (id, business_type, name, phone, minutes) in samples {
        if model::get(tx.conn(), id)?.is_some() {
            continue;
        }
        let (title, steps) = steps_for(cfg, business_type);
        let first = steps.first().map(|s| s.key.clone());
        let order = NewOrder {
            id: id.into(),
            business_type: business_type.into(),
            title,
            channel: "app".into(),
            priority: "appointment".into(),
            customer: Customer {
                name: name.into(),
                phone: Some(phone.into()),
                id_number: None,
            },
            appointment_at: Some(now + Duration::minutes(minutes)),
            fields: Map::new(),
            steps,
        };
        let r = (|| -> Result<(), OrderError> {
            model::create(tx, &order, None)?;
            if id == "DEMO-1002" {
                model::approve(tx, id, "lobby")?;
                if let Some(first) = &first {
                    model::start_step(tx, id, first, "lobby", now - Duration::seconds(240))?;
                }
            }
            Ok(())
        })();
        match r {
            Ok(()) => created += 1,
            Err(OrderError::Store(e)) => return Err(e),
            Err(e) => tracing::warn!(error = %e, order = id, "demo order skipped"),
        }
    }
    Ok(created)
}
