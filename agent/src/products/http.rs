//! The shelf's routes: the products (filtered, ranked, with their suitability for a
//! customer), one product, "show on STM", and the calculators.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warp::http::StatusCode;

use super::calc::{self, Fen, Instalment, Suitability};
use super::{Product, ProductType, Products, Shelved, get, ranked};
use crate::clock::business_date;
use crate::core::Core;
use crate::customers::{self, SERVING};
use crate::http::error::ApiError;
use crate::http::{Route, ok_json};
use crate::store::StoreError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShelfQuery {
    /// Only this type.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Only products sold through this channel.
    channel: Option<String>,
    /// Only products of at most this risk (`R1`–`R5`).
    risk_max: Option<String>,
    /// Search in names and code.
    q: Option<String>,
    /// Whose suitability to judge.
    customer_id: Option<String>,
    /// `true`: also products not on sale today.
    all: Option<bool>,
}

/// The suitability of a product for a customer, as the PAD shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct SuitabilityView {
    customer_id: String,
    product_risk: String,
    customer_risk: Option<String>,
    verdict: Suitability,
}

fn suitability(p: &Product, customer_id: &str, customer_risk: Option<u8>) -> SuitabilityView {
    SuitabilityView {
        customer_id: customer_id.to_string(),
        product_risk: format!("R{}", p.risk),
        customer_risk: customer_risk.map(|r| format!("C{r}")),
        verdict: calc::suitability(p.risk, customer_risk),
    }
}

/// The customer's risk tolerance; 404 for a customer the box does not know.
fn customer_risk(c: &rusqlite::Connection, customer_id: &str) -> Result<Option<u8>, ApiError> {
    match customers::profile(c, customer_id)? {
        Some(p) => Ok(p.risk_level),
        None => Err(ApiError::not_found(
            "customer_unknown",
            format!("no customer `{customer_id}` on this box"),
        )),
    }
}

fn shelf_item(s: &Shelved, suit: Option<&SuitabilityView>) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Some(x) = suit {
        v["suitability"] = serde_json::to_value(x).unwrap_or(Value::Null);
    }
    v
}

async fn product(core: &Core, code: String) -> Result<Product, ApiError> {
    let c2 = code.clone();
    core.store
        .read(move |c| get(c, &c2))
        .await?
        .ok_or_else(|| ApiError::not_found("product_unknown", format!("no product `{code}`")))
}

/// The product named in a calculator request, and the suitability for its customer.
async fn context(
    core: &Core,
    code: Option<String>,
    customer_id: Option<String>,
) -> Result<(Option<Product>, Option<SuitabilityView>), ApiError> {
    let p = match code {
        Some(code) => Some(product(core, code).await?),
        None => None,
    };
    let suit = match (&p, customer_id) {
        (Some(p), Some(cid)) => {
            let id = cid.clone();
            let risk = core.store.read(move |c| customer_risk(c, &id)).await?;
            Some(suitability(p, &cid, risk))
        }
        _ => None,
    };
    Ok((p, suit))
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_calculation", message)
}

fn amount(v: Fen) -> Result<Fen, ApiError> {
    if (1..=10_000_000_000_000).contains(&v) {
        Ok(v)
    } else {
        Err(invalid("`amount_fen` must be 1 fen to 1,000 亿元"))
    }
}

fn bp(key: &str, v: Option<u32>, from: Option<u32>) -> Result<u32, ApiError> {
    match v.or(from) {
        Some(x) if x <= 10_000 => Ok(x),
        Some(_) => Err(invalid(format!("`{key}` must be 0–10000 basis points"))),
        None => Err(invalid(format!(
            "`{key}` is required (or a product that has it)"
        ))),
    }
}

fn kind_is(p: &Option<Product>, kinds: &[ProductType], calc: &str) -> Result<(), ApiError> {
    match p {
        Some(p) if !kinds.contains(&p.kind) => Err(invalid(format!(
            "`{}` is a {} product; the {calc} calculator takes {}",
            p.code,
            p.kind,
            kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(" or ")
        ))),
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepositCalc {
    amount_fen: Fen,
    product: Option<String>,
    rate_bp: Option<u32>,
    term_months: Option<u32>,
    demand_rate_bp: Option<u32>,
    /// Withdrawn early after this many days.
    early_days: Option<u32>,
    customer_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WealthCalc {
    amount_fen: Fen,
    product: Option<String>,
    return_min_bp: Option<u32>,
    return_max_bp: Option<u32>,
    days: Option<u32>,
    customer_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoanCalc {
    amount_fen: Fen,
    product: Option<String>,
    rate_bp: Option<u32>,
    months: Option<u32>,
    customer_id: Option<String>,
}

#[derive(Debug, Serialize)]
struct Schedule {
    first_payment_fen: Fen,
    last_payment_fen: Fen,
    total_interest_fen: Fen,
    total_fen: Fen,
    schedule: Vec<Instalment>,
}

fn schedule(rows: Vec<Instalment>) -> Schedule {
    let total_interest_fen = rows.iter().map(|i| i.interest).sum();
    Schedule {
        first_payment_fen: rows.first().map_or(0, |i| i.payment),
        last_payment_fen: rows.last().map_or(0, |i| i.payment),
        total_interest_fen,
        total_fen: rows.iter().map(|i| i.payment).sum(),
        schedule: rows,
    }
}

fn with_context(
    mut v: Value,
    p: &Option<Product>,
    amount: Fen,
    suit: Option<SuitabilityView>,
) -> Value {
    if let Some(p) = p {
        v["product"] = json!(p.code);
        v["below_minimum"] = json!(amount < p.min_amount_fen);
        v["min_amount_fen"] = json!(p.min_amount_fen);
    }
    if let Some(s) = suit {
        v["suitability"] = serde_json::to_value(s).unwrap_or(Value::Null);
    }
    v
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowBody {
    device: String,
    ticket: Option<String>,
}

pub(super) fn routes(p: &Products) -> Vec<Route> {
    let core = p.core.clone();
    vec![
        Route::get("/api/v1/shelf/stms", SERVING).to(p.clone(), |p, _| async move {
            let stms: Vec<Value> = p
                .core
                .cfg
                .devices
                .iter()
                .filter(|d| d.kind == crate::config::DeviceKind::Stm)
                .map(|d| json!({"id": d.id, "online": p.devices.is_online(&d.id)}))
                .collect();
            Ok(ok_json(&json!({ "stms": stms })))
        }),
        Route::get("/api/v1/products", SERVING).to(core.clone(), |core, req| async move {
            let q: ShelfQuery = req.query()?;
            let today = business_date(&core.cfg, core.clock.now());
            let cid = q.customer_id.clone().filter(|c| !c.is_empty());
            let (list, risk) = core
                .store
                .read(move |c| -> Result<_, ApiError> {
                    let risk = match &cid {
                        Some(id) => Some(customer_risk(c, id)?),
                        None => None,
                    };
                    Ok((ranked(c, today)?, risk))
                })
                .await?;
            let risk_max = match q.risk_max.as_deref().filter(|r| !r.is_empty()) {
                None => None,
                Some(r) => Some(super::command::parse_risk(r).ok_or_else(|| {
                    ApiError::bad_request("invalid_query", "`risk_max` must be one of R1–R5")
                })?),
            };
            let needle = q.q.as_deref().map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
            let items: Vec<Value> = list
                .iter()
                .filter(|s| q.all == Some(true) || s.on_sale)
                .filter(|s| q.kind.as_deref().filter(|k| !k.is_empty()).is_none_or(|k| s.product.kind.as_str() == k))
                .filter(|s| q.channel.as_deref().filter(|c| !c.is_empty()).is_none_or(|c| s.product.channels.iter().any(|x| x == c)))
                .filter(|s| risk_max.is_none_or(|r| s.product.risk <= r))
                .filter(|s| {
                    needle.as_deref().is_none_or(|n| {
                        [&s.product.code, &s.product.name_zh, &s.product.name_en]
                            .iter()
                            .any(|h| h.to_lowercase().contains(n))
                    })
                })
                .map(|s| {
                    let suit = q.customer_id.as_deref().filter(|c| !c.is_empty()).map(|cid| {
                        suitability(&s.product, cid, risk.flatten())
                    });
                    shelf_item(s, suit.as_ref())
                })
                .collect();
            Ok(ok_json(&json!({"products": items, "date": today})))
        }),
        Route::get("/api/v1/products/{code}", SERVING).to(core.clone(), |core, req| async move {
            let code = req.param("code")?.to_string();
            let today = business_date(&core.cfg, core.clock.now());
            let list = core.store.read(move |c| ranked(c, today)).await?;
            let s = list
                .iter()
                .find(|s| s.product.code == code)
                .ok_or_else(|| ApiError::not_found("product_unknown", format!("no product `{code}`")))?;
            Ok(ok_json(&shelf_item(s, None)))
        }),
        Route::post("/api/v1/products/{code}/show", SERVING).json().to(p.clone(), |p, req| async move {
            let body: ShowBody = req.json()?;
            let user = req.username()?;
            let prod = product(&p.core, req.param("code")?.to_string()).await?;
            if !prod.on_stm() {
                return Err(ApiError::conflict(
                    "not_on_stm",
                    format!("`{}` is not sold at the STMs", prod.code),
                ));
            }
            let today = business_date(&p.core.cfg, p.core.clock.now());
            if !prod.on_sale(today) {
                return Err(ApiError::conflict(
                    "not_on_sale",
                    format!("`{}` is not on sale today", prod.code),
                ));
            }
            if let Some(t) = &body.ticket
                && (t.is_empty() || t.len() > 16) {
                    return Err(ApiError::bad_request("invalid_ticket", "`ticket` must be 1–16 characters"));
                }
            let args = branchd_drivers::stm::ShowProductArgs {
                product: prod.card(),
                ticket: body.ticket.clone(),
            };
            let args = serde_json::to_value(&args).map_err(|e| ApiError::from(StoreError::from(e)))?;
            let r = p.devices.send_command(&body.device, "show_product", args, &user).await?;
            if !r.ok {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "device_refused",
                    format!(
                        "{} refused to show `{}`: {}",
                        body.device,
                        prod.code,
                        r.error.unwrap_or_else(|| "no reason given".into())
                    ),
                ));
            }
            let showing = r
                .data
                .as_ref()
                .and_then(|d| d.get("showing"))
                .and_then(Value::as_str)
                .map(str::to_string);
            Ok(ok_json(&json!({"device": body.device, "product": prod.code, "showing": showing})))
        }),
        Route::post("/api/v1/calc/deposit", SERVING).json().to(core.clone(), |core, req| async move {
            let b: DepositCalc = req.json()?;
            let amount_fen = amount(b.amount_fen)?;
            let (p, suit) = context(&core, b.product.clone(), b.customer_id.clone()).await?;
            kind_is(&p, &[ProductType::Deposit], "deposit")?;
            let rate = bp("rate_bp", b.rate_bp, p.as_ref().and_then(|p| p.rate_bp))?;
            let months = match b.term_months.or(p.as_ref().and_then(|p| p.term_months)) {
                Some(m) if (1..=600).contains(&m) => m,
                Some(_) => return Err(invalid("`term_months` must be 1–600")),
                None => return Err(invalid("`term_months` is required (or a product that has it)")),
            };
            let interest = calc::time_deposit_interest(amount_fen, rate, months);
            let mut v = json!({
                "amount_fen": amount_fen, "rate_bp": rate, "term_months": months,
                "interest_fen": interest, "total_fen": amount_fen + interest,
            });
            if let Some(days) = b.early_days {
                if days > 36_600 {
                    return Err(invalid("`early_days` must be 0–36600"));
                }
                let demand = bp("demand_rate_bp", b.demand_rate_bp, p.as_ref().and_then(|p| p.demand_rate_bp))?;
                let early = calc::demand_interest(amount_fen, demand, days);
                v["early"] = json!({
                    "days": days, "demand_rate_bp": demand, "interest_fen": early,
                    "total_fen": amount_fen + early, "forgone_fen": interest - early,
                });
            }
            Ok(ok_json(&with_context(v, &p, amount_fen, suit)))
        }),
        Route::post("/api/v1/calc/wealth", SERVING).json().to(core.clone(), |core, req| async move {
            let b: WealthCalc = req.json()?;
            let amount_fen = amount(b.amount_fen)?;
            let (p, suit) = context(&core, b.product.clone(), b.customer_id.clone()).await?;
            kind_is(&p, &[ProductType::Wealth, ProductType::Fund], "expected-return")?;
            let lo = bp("return_min_bp", b.return_min_bp, p.as_ref().and_then(|p| p.return_min_bp))?;
            let hi = bp("return_max_bp", b.return_max_bp, p.as_ref().and_then(|p| p.return_max_bp))?;
            if lo > hi {
                return Err(invalid("`return_min_bp` is above `return_max_bp`"));
            }
            let days = match b.days.or(p.as_ref().and_then(|p| p.term_days)) {
                Some(d) if (1..=36_600).contains(&d) => d,
                Some(_) => return Err(invalid("`days` must be 1–36600")),
                None => return Err(invalid("`days` is required (or a product that has a term)")),
            };
            let v = json!({
                "amount_fen": amount_fen, "days": days,
                "return_min_bp": lo, "return_max_bp": hi,
                "return_min_fen": calc::expected_return(amount_fen, lo, days),
                "return_max_fen": calc::expected_return(amount_fen, hi, days),
            });
            Ok(ok_json(&with_context(v, &p, amount_fen, suit)))
        }),
        Route::post("/api/v1/calc/loan", SERVING).json().to(core, |core, req| async move {
            let b: LoanCalc = req.json()?;
            let amount_fen = amount(b.amount_fen)?;
            let (p, suit) = context(&core, b.product.clone(), b.customer_id.clone()).await?;
            kind_is(&p, &[ProductType::Loan], "loan")?;
            let rate = bp("rate_bp", b.rate_bp, p.as_ref().and_then(|p| p.rate_bp))?;
            let longest = p.as_ref().and_then(|p| p.term_months).unwrap_or(600);
            let months = match b.months.or(p.as_ref().and_then(|p| p.term_months)) {
                Some(m) if (1..=longest).contains(&m) => m,
                Some(_) => return Err(invalid(format!("`months` must be 1–{longest}"))),
                None => return Err(invalid("`months` is required (or a product that has a term)")),
            };
            let v = json!({
                "amount_fen": amount_fen, "rate_bp": rate, "months": months,
                "equal_instalments": schedule(calc::equal_instalments(amount_fen, rate, months)),
                "equal_principal": schedule(calc::equal_principal(amount_fen, rate, months)),
            });
            Ok(ok_json(&with_context(v, &p, amount_fen, suit)))
        }),
    ]
}
