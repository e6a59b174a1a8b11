//! Rights and coupons (权益核销): a coupon is a token head office signs ([`token`]); the PAD
//! reads it from the customer's phone (camera) or has it typed, and the box checks it
//! offline against `[rights] public_key`, refusing what is forged, expired or not yet
//! valid, revoked (`rights.revoke`), another customer's, or already redeemed. A redemption
//! is one transaction with its `rights.redeemed` event, which reaches head office through
//! the outbox whenever the link is up — redemption works with head office down, and head
//! office reconciles (对账) by coupon id.
//!
//! Head office may also tell the box of the coupons it gave a customer (`rights.grant`):
//! they show on the customer's arrival card, and can be redeemed by typing their id.

pub mod demo;
mod http;
/// The JSON bodies of this module's routes, public for the fuzz targets (agent/fuzz).
#[doc(hidden)]
pub use http::{CheckBody, RedeemBody};
pub mod token;

use chrono::{DateTime, NaiveDate, Utc};
use ed25519_dalek::VerifyingKey;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::clock::rfc3339;
use crate::command::Fields;
use crate::config::marketing::RightsConfig;
use crate::core::Core;
use crate::customers;
use crate::http::Route;
use crate::retention::Bounded;
use crate::store::{Schema, StoreError, Tx};

pub use token::{Coupon, TokenError};

/// This module's tables.
pub const SCHEMA: Schema = Schema {
    module: "rights",
    steps: &[
        // 1: coupons head office told the box of, revoked coupon ids, redemptions.
        "CREATE TABLE rights_coupons (
             coupon_id TEXT PRIMARY KEY,
             customer_hash TEXT NOT NULL,
             token TEXT NOT NULL,
             granted_at TEXT NOT NULL
         ) STRICT;
         CREATE INDEX rights_coupons_customer ON rights_coupons(customer_hash);
         CREATE TABLE rights_revoked (
             coupon_id TEXT PRIMARY KEY,
             revoked_at TEXT NOT NULL,
             command TEXT
         ) STRICT;
         CREATE TABLE rights_redemptions (
             coupon_id TEXT PRIMARY KEY,
             customer_id TEXT NOT NULL,
             right TEXT NOT NULL,
             value INTEGER NOT NULL,
             redeemed_at TEXT NOT NULL,
             by TEXT NOT NULL
         ) STRICT;",
    ],
};

/// The rights tables are kept whole: a coupon must never be redeemed twice, whatever its
/// validity, and a redemption is a row of about 100 bytes.
pub const BOUNDED: &[Bounded] = &[
    Bounded {
        table: "rights_coupons",
        why: "one row per coupon head office grants (a few hundred bytes), kept with the redemptions",
    },
    Bounded {
        table: "rights_revoked",
        why: "kept so a revoked coupon stays refused",
    },
    Bounded {
        table: "rights_redemptions",
        why: "kept so a coupon is never redeemed twice (about 100 bytes a redemption)",
    },
];

/// This module's OpenAPI fragment.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Head office's key, when configured.
pub fn key(cfg: &RightsConfig) -> Option<VerifyingKey> {
    cfg.public_key
        .and_then(|k| VerifyingKey::from_bytes(&k).ok())
}

/// A validated rights command.
#[derive(Debug, Clone, PartialEq)]
pub enum RightsCmd {
    /// `rights.grant`: a coupon given to a customer.
    Grant {
        /// The coupon.
        coupon: Coupon,
        /// Its token.
        token: String,
    },
    /// `rights.revoke`: coupons no longer valid.
    Revoke(Vec<String>),
}

/// Parse and check the `data` of a `rights.*` command; a granted coupon must carry head
/// office's signature.
pub fn parse(
    kind: &str,
    data: &Map<String, Value>,
    cfg: &RightsConfig,
) -> Result<RightsCmd, String> {
    let mut f = Fields::new(data);
    let cmd = match kind {
        "rights.grant" => {
            let token = f.string("token", 2048);
            let coupon = match (&token, key(cfg)) {
                (Some(_), None) => {
                    f.problem("no `[rights] public_key` is configured: a coupon cannot be checked");
                    None
                }
                (Some(t), Some(k)) => match token::verify(&k, t) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        f.problem(format!("`token`: {e}"));
                        None
                    }
                },
                (None, _) => None,
            };
            f.finish()?;
            RightsCmd::Grant {
                coupon: coupon.ok_or("no coupon")?,
                token: token.unwrap_or_default(),
            }
        }
        "rights.revoke" => {
            let ids = f.opt_strings("ids", 1000, 64);
            match &ids {
                None if !f.has("ids") => f.problem("`ids` is required"),
                Some(v) if v.is_empty() => f.problem("`ids` must name at least one coupon"),
                Some(v) => {
                    for id in v {
                        if !crate::command::is_code(id) {
                            f.problem(format!("`ids`: `{id}` is not a coupon id"));
                        }
                    }
                }
                None => {}
            }
            f.finish()?;
            RightsCmd::Revoke(ids.unwrap_or_default())
        }
        k => return Err(format!("unknown command kind `{k}`")),
    };
    Ok(cmd)
}

/// Apply a validated rights command (`rights.granted`, `rights.revoked`).
pub fn apply(tx: &mut Tx<'_>, command: &str, cmd: RightsCmd) -> Result<(), StoreError> {
    let now = rfc3339(tx.now());
    match cmd {
        RightsCmd::Grant { coupon, token } => {
            tx.conn().execute(
                "INSERT INTO rights_coupons(coupon_id, customer_hash, token, granted_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT(coupon_id) DO UPDATE SET \
                 customer_hash = excluded.customer_hash, token = excluded.token",
                params![coupon.id, coupon.cust, token, now],
            )?;
            tx.emit(
                "rights.granted",
                json!({"coupon_id": coupon.id, "right": coupon.right, "value": coupon.value,
                       "from": coupon.from, "until": coupon.until, "command": command}),
            )?;
        }
        RightsCmd::Revoke(ids) => {
            for id in &ids {
                tx.conn().execute(
                    "INSERT INTO rights_revoked(coupon_id, revoked_at, command) VALUES (?1, ?2, ?3) \
                     ON CONFLICT(coupon_id) DO NOTHING",
                    params![id, now, command],
                )?;
            }
            tx.emit("rights.revoked", json!({"ids": ids, "command": command}))?;
        }
    }
    Ok(())
}

/// Why a coupon cannot be redeemed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `[rights] public_key`.
    #[error("no [rights] public_key is configured on this box")]
    NotConfigured,
    /// Not a coupon.
    #[error("{0}")]
    Malformed(String),
    /// The signature is not head office's.
    #[error("the coupon's signature is not head office's")]
    Forged,
    /// A typed id the box was not told of.
    #[error("no coupon `{0}` is known on this box; scan the customer's code instead")]
    Unknown(String),
    /// Revoked by head office.
    #[error("coupon `{0}` was revoked by head office")]
    Revoked(String),
    /// Redeemed already.
    #[error("coupon `{0}` was redeemed at {1}")]
    Redeemed(String, String),
    /// Before its first day.
    #[error("coupon `{0}` is valid from {1}")]
    NotYetValid(String, NaiveDate),
    /// After its last day.
    #[error("coupon `{0}` expired after {1}")]
    Expired(String, NaiveDate),
    /// The customer is not known to the box by their hashed ID.
    #[error("customer `{0}` has no hashed ID on this box: their coupons cannot be checked")]
    CustomerUnknown(String),
    /// Another customer's coupon.
    #[error("coupon `{0}` belongs to another customer")]
    WrongCustomer(String),
}

impl Refusal {
    /// The stable code the PAD translates.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotConfigured => "rights_not_configured",
            Refusal::Malformed(_) => "coupon_malformed",
            Refusal::Forged => "coupon_forged",
            Refusal::Unknown(_) => "coupon_unknown",
            Refusal::Revoked(_) => "coupon_revoked",
            Refusal::Redeemed(..) => "coupon_redeemed",
            Refusal::NotYetValid(..) => "coupon_not_yet_valid",
            Refusal::Expired(..) => "coupon_expired",
            Refusal::CustomerUnknown(_) => "customer_unknown",
            Refusal::WrongCustomer(_) => "coupon_wrong_customer",
        }
    }
}

/// A coupon read from a scanned token or a typed id: a token is checked as it is; an id
/// is looked up among the coupons head office granted (and their token checked again).
pub fn read_code(c: &Connection, key: &VerifyingKey, code: &str) -> Result<Coupon, Refusal> {
    let code = code.trim();
    let token = if token::looks_like_token(code) {
        code.to_string()
    } else if crate::command::is_code(code) {
        c.query_row(
            "SELECT token FROM rights_coupons WHERE coupon_id = ?1",
            [code],
            |r| r.get::<_, String>(0),
        )
        .optional()
        .ok()
        .flatten()
        .ok_or_else(|| Refusal::Unknown(code.to_string()))?
    } else {
        return Err(Refusal::Malformed(
            "not a coupon: neither a token nor a coupon id".into(),
        ));
    };
    token::verify(key, &token).map_err(|e| match e {
        TokenError::Forged => Refusal::Forged,
        TokenError::Malformed(m) => Refusal::Malformed(format!("not a coupon: {m}")),
    })
}

/// Whether `coupon` may be redeemed by `customer_id` on business day `today`; the order
/// of the checks is the order of the refusals' precedence.
pub fn judge(
    c: &Connection,
    coupon: &Coupon,
    customer_id: Option<&str>,
    today: NaiveDate,
) -> Result<(), Refusal> {
    let id = coupon.id.clone();
    let db = |e: rusqlite::Error| Refusal::Malformed(format!("database: {e}"));
    let revoked = c
        .query_row(
            "SELECT 1 FROM rights_revoked WHERE coupon_id = ?1",
            [&id],
            |_| Ok(()),
        )
        .optional()
        .map_err(db)?;
    if revoked.is_some() {
        return Err(Refusal::Revoked(id));
    }
    let redeemed: Option<String> = c
        .query_row(
            "SELECT redeemed_at FROM rights_redemptions WHERE coupon_id = ?1",
            [&id],
            |r| r.get(0),
        )
        .optional()
        .map_err(db)?;
    if let Some(at) = redeemed {
        return Err(Refusal::Redeemed(id, at));
    }
    if today < coupon.from {
        return Err(Refusal::NotYetValid(id, coupon.from));
    }
    if today > coupon.until {
        return Err(Refusal::Expired(id, coupon.until));
    }
    if let Some(customer) = customer_id {
        let hash = customers::profile(c, customer)
            .map_err(|e| Refusal::Malformed(format!("database: {e}")))?
            .and_then(|p| p.id_hash)
            .ok_or_else(|| Refusal::CustomerUnknown(customer.to_string()))?;
        if hash != coupon.cust {
            return Err(Refusal::WrongCustomer(id));
        }
    }
    Ok(())
}

/// A redemption, as answered to the PAD.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Redemption {
    /// The coupon.
    pub coupon: CouponView,
    /// Who redeemed it.
    pub customer_id: String,
    /// When.
    pub redeemed_at: String,
    /// Which member of staff.
    pub by: String,
}

/// A coupon as the PAD shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CouponView {
    /// Coupon id.
    pub coupon_id: String,
    /// The right.
    pub right: String,
    /// Its value.
    pub value: i64,
    /// First valid day.
    pub valid_from: NaiveDate,
    /// Last valid day.
    pub valid_until: NaiveDate,
}

impl From<&Coupon> for CouponView {
    fn from(c: &Coupon) -> CouponView {
        CouponView {
            coupon_id: c.id.clone(),
            right: c.right.clone(),
            value: c.value,
            valid_from: c.from,
            valid_until: c.until,
        }
    }
}

/// An error of [`redeem`]: a refusal, or the database.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    /// The coupon cannot be redeemed.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Redeem a coupon for `customer_id`, once (`rights.redeemed`, for head office's
/// reconciliation).
pub fn redeem(
    tx: &mut Tx<'_>,
    key: &VerifyingKey,
    code: &str,
    customer_id: &str,
    today: NaiveDate,
    now: DateTime<Utc>,
    by: &str,
) -> Result<Redemption, RedeemError> {
    let coupon = read_code(tx.conn(), key, code)?;
    judge(tx.conn(), &coupon, Some(customer_id), today)?;
    let at = rfc3339(now);
    tx.conn()
        .execute(
            "INSERT INTO rights_redemptions(coupon_id, customer_id, right, value, redeemed_at, by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![coupon.id, customer_id, coupon.right, coupon.value, at, by],
        )
        .map_err(StoreError::from)?;
    tx.emit(
        "rights.redeemed",
        json!({"coupon_id": coupon.id, "customer_id": customer_id, "right": coupon.right,
               "value": coupon.value, "redeemed_at": at, "by": by, "channel": "pad"}),
    )?;
    Ok(Redemption {
        coupon: CouponView::from(&coupon),
        customer_id: customer_id.to_string(),
        redeemed_at: at,
        by: by.to_string(),
    })
}

/// A customer's coupons head office granted that can still be redeemed on `today`.
pub fn available(
    c: &Connection,
    key: &VerifyingKey,
    customer_id: &str,
    today: NaiveDate,
) -> Result<Vec<CouponView>, StoreError> {
    let Some(hash) = customers::profile(c, customer_id)?.and_then(|p| p.id_hash) else {
        return Ok(Vec::new());
    };
    let mut stmt = c.prepare_cached(
        "SELECT token FROM rights_coupons WHERE customer_hash = ?1 ORDER BY coupon_id",
    )?;
    let tokens = stmt
        .query_map([hash], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(tokens
        .iter()
        .filter_map(|t| token::verify(key, t).ok())
        .filter(|cp| judge(c, cp, Some(customer_id), today).is_ok())
        .map(|cp| CouponView::from(&cp))
        .collect())
}

/// The rights module's handle.
#[derive(Debug, Clone)]
pub struct Rights {
    core: Core,
}

impl Rights {
    /// The rights module (with `[rights] public_key`, if any).
    pub fn new(core: &Core) -> Rights {
        Rights { core: core.clone() }
    }

    /// The routes (see `http.rs`).
    pub fn routes(&self) -> Vec<Route> {
        http::routes(self)
    }
}

#[cfg(test)]
mod tests;
