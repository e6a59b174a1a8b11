//! `branchd demo`: head office's leads for the demo's customers.

use chrono::{DateTime, Duration as ChronoDuration, Utc};

use super::{NewLead, push};
use crate::customers::demo::{LI_JIANGUO, ROSE, WANG_FANG, ZHANG_SAN, ZHAO_MIN};
use crate::store::{Store, StoreError};

/// The demo's leads, valid for two weeks from `now`.
pub fn leads(now: DateTime<Utc>) -> Vec<NewLead> {
    let lead = |id: &str, customer: &str, product: &str, reason: &str| NewLead {
        lead_id: id.into(),
        customer_id: customer.into(),
        product: product.into(),
        reason: reason.into(),
        expires_at: now + ChronoDuration::days(14),
    };
    vec![
        lead("L-DEMO-01", WANG_FANG, "WM-91", "deposit_maturing"),
        lead("L-DEMO-02", LI_JIANGUO, "WM-365", "wealth_maturing"),
        lead("L-DEMO-03", ZHANG_SAN, "LN-CAR", "loan_need"),
        lead("L-DEMO-04", ZHAO_MIN, "FD-GROW", "product_fit"),
        lead("L-DEMO-05", ROSE, "CD-3Y", "birthday"),
    ]
}

/// Push the demo's leads that are not there yet (an answer given in an earlier run stays).
pub fn seed(store: &Store, now: DateTime<Utc>) -> Result<(), StoreError> {
    let list = leads(now);
    store.write_blocking(move |tx| {
        for l in &list {
            let known: bool = tx
                .conn()
                .query_row(
                    "SELECT count(*) FROM leads WHERE lead_id = ?1",
                    [&l.lead_id],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n > 0)?;
            if !known {
                // Never past: two weeks ahead.
                let _ = push(tx, l, "demo")?;
            }
        }
        Ok(())
    })
}
