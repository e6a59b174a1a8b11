//! `GET /api/v1/rights`, `POST /api/v1/rights/check`, `POST /api/v1/rights/redeem`.

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;

use super::{CouponView, RedeemError, Refusal, Rights, available, judge, key, read_code, redeem};
use crate::clock::business_date;
use crate::customers::{SERVING, presence};
use crate::http::error::ApiError;
use crate::http::{Route, ok_json};

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        let (code, msg) = (r.code(), r.to_string());
        let status = match r {
            Refusal::NotConfigured => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
            Refusal::Unknown(_) | Refusal::CustomerUnknown(_) => StatusCode::NOT_FOUND,
            Refusal::Revoked(_) | Refusal::Redeemed(..) => StatusCode::CONFLICT,
            Refusal::Forged
            | Refusal::NotYetValid(..)
            | Refusal::Expired(..)
            | Refusal::WrongCustomer(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, code, msg)
    }
}

impl From<RedeemError> for ApiError {
    fn from(e: RedeemError) -> ApiError {
        match e {
            RedeemError::Refused(r) => r.into(),
            RedeemError::Store(e) => e.into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RightsQuery {
    /// One customer's rights; without it, those of everyone in the branch today.
    customer_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    /// The scanned token or a typed coupon id.
    code: String,
    /// Who presents it.
    customer_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemBody {
    code: String,
    customer_id: String,
}

pub(super) fn routes(r: &Rights) -> Vec<Route> {
    vec![
        Route::get("/api/v1/rights", SERVING).to(r.core.clone(), |core, req| async move {
            let q: RightsQuery = req.query()?;
            let Some(k) = key(&core.cfg.rights) else {
                return Ok(ok_json(&json!({"rights": []})));
            };
            let now = core.clock.now();
            let today = business_date(&core.cfg, now);
            let customer = q.customer_id.filter(|c| !c.is_empty());
            let cfg = core.cfg.clone();
            let rights = core
                .store
                .read(move |c| -> Result<Vec<serde_json::Value>, ApiError> {
                    let who: Vec<String> = match customer {
                        Some(c) => vec![c],
                        None => presence::today(c, &cfg, now)?
                            .into_iter()
                            .map(|p| p.customer_id)
                            .collect(),
                    };
                    let mut out = Vec::new();
                    for id in who {
                        for cp in available(c, &k, &id, today)? {
                            let mut v = serde_json::to_value(&cp).unwrap_or_default();
                            v["customer_id"] = json!(id);
                            out.push(v);
                        }
                    }
                    Ok(out)
                })
                .await?;
            Ok(ok_json(&json!({ "rights": rights })))
        }),
        Route::post("/api/v1/rights/check", SERVING).json().to(r.core.clone(), |core, req| async move {
            let b: CheckBody = req.json()?;
            let k = key(&core.cfg.rights).ok_or(Refusal::NotConfigured)?;
            let today = business_date(&core.cfg, core.clock.now());
            let answer = core
                .store
                .read(move |c| -> Result<serde_json::Value, ApiError> {
                    let coupon = match read_code(c, &k, &b.code) {
                        Ok(cp) => cp,
                        Err(r) => {
                            return Ok(json!({"coupon": null, "status": r.code(), "message": r.to_string()}));
                        }
                    };
                    let view = CouponView::from(&coupon);
                    let customer = b.customer_id.as_deref().filter(|c| !c.is_empty());
                    let owner = crate::customers::by_hash(c, &coupon.cust)?;
                    Ok(match judge(c, &coupon, customer, today) {
                        Ok(()) => json!({"coupon": view, "status": "valid", "owner": owner}),
                        Err(r) => json!({"coupon": view, "status": r.code(), "message": r.to_string(), "owner": owner}),
                    })
                })
                .await?;
            Ok(ok_json(&answer))
        }),
        Route::post("/api/v1/rights/redeem", SERVING).json().to(r.core.clone(), |core, req| async move {
            let b: RedeemBody = req.json()?;
            let by = req.username()?;
            let k = key(&core.cfg.rights).ok_or(Refusal::NotConfigured)?;
            let now = core.clock.now();
            let today = business_date(&core.cfg, now);
            let done = core
                .store
                .write(move |tx| -> Result<_, ApiError> {
                    Ok(redeem(tx, &k, &b.code, &b.customer_id, today, now, &by)?)
                })
                .await?;
            Ok(ok_json(&done))
        }),
    ]
}
