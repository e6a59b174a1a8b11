//! The product shelf (理财货架): head office's products (`product.upsert`,
//! `product.delete`) — deposits, wealth products, funds, insurance and loans with their
//! rates or expected returns, terms, minimums, risk levels, channels, marketing scripts and
//! validity — browsed, filtered and compared on the PAD, ranked by head office's sales
//! figure plus this branch's own STM sales, and shown on the screen of the STM a customer
//! stands at (the `show_product` op, through [`Devices::send_command`]).
//!
//! [`calc`] holds the calculators (time deposits, wealth returns, loan schedules) and the
//! suitability rule; the routes put them together with a product and a customer's risk
//! tolerance (from [`crate::customers`]).

pub mod calc;
pub mod command;
pub mod demo;
mod http;
/// The JSON bodies of this module's routes, public for the fuzz targets (agent/fuzz).
#[doc(hidden)]
pub use http::{DepositCalc, LoanCalc, ShowBody, WealthCalc};

use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::clock::rfc3339;
use crate::core::Core;
use crate::devices::Devices;
use crate::http::Route;
use crate::retention::Bounded;
use crate::store::{Event, Schema, StoreError, Tx};

/// This module's tables.
pub const SCHEMA: Schema = Schema {
    module: "products",
    steps: &[
        // 1: head office's products, and this branch's STM sales of each.
        "CREATE TABLE products (
             code TEXT PRIMARY KEY,
             data TEXT NOT NULL,
             updated_at TEXT NOT NULL
         ) STRICT;
         CREATE TABLE products_sales (
             code TEXT PRIMARY KEY,
             count INTEGER NOT NULL,
             amount INTEGER NOT NULL
         ) STRICT;",
    ],
};

/// The shelf does not grow with use.
pub const BOUNDED: &[Bounded] = &[
    Bounded {
        table: "products",
        why: "head office's shelf",
    },
    Bounded {
        table: "products_sales",
        why: "one row per product",
    },
];

/// This module's OpenAPI fragment.
pub const OPENAPI: &str = include_str!("openapi.json");

crate::store::text_enum! {
    /// What kind of product.
    pub enum ProductType {
        /// A time deposit (定期存款).
        Deposit = "deposit",
        /// A bank wealth product (理财).
        Wealth = "wealth",
        /// A fund sold by the bank (基金).
        Fund = "fund",
        /// Insurance sold by the bank (保险).
        Insurance = "insurance",
        /// A loan (贷款).
        Loan = "loan",
    }
}

impl<'de> Deserialize<'de> for ProductType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A product as head office describes it. Rates are basis points a year, money fen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Head office's code.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// What kind.
    #[serde(rename = "type")]
    pub kind: ProductType,
    /// Annual rate (deposits, loans).
    pub rate_bp: Option<u32>,
    /// The demand rate an early withdrawal earns (deposits).
    pub demand_rate_bp: Option<u32>,
    /// Lowest expected annual return (wealth, funds).
    pub return_min_bp: Option<u32>,
    /// Highest expected annual return.
    pub return_max_bp: Option<u32>,
    /// Term in months (deposits; a loan's longest term).
    pub term_months: Option<u32>,
    /// Holding period in days (wealth).
    pub term_days: Option<u32>,
    /// Smallest amount.
    pub min_amount_fen: i64,
    /// Risk level 1–5 (`R1`–`R5`).
    #[serde(serialize_with = "ser_risk", deserialize_with = "de_risk")]
    pub risk: u8,
    /// `counter`, `stm`, `pad`.
    pub channels: Vec<String>,
    /// Marketing script, Chinese.
    pub script_zh: Option<String>,
    /// Marketing script, English.
    pub script_en: Option<String>,
    /// First day on sale.
    pub valid_from: Option<NaiveDate>,
    /// Last day on sale.
    pub valid_to: Option<NaiveDate>,
    /// Head office's sales figure for the ranking.
    pub hq_sales: u64,
}

fn ser_risk<S: serde::Serializer>(r: &u8, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("R{r}"))
}

fn de_risk<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let s = String::deserialize(d)?;
    command::parse_risk(&s).ok_or_else(|| serde::de::Error::custom(format!("bad risk `{s}`")))
}

impl Product {
    /// Whether it is on sale on `day`.
    pub fn on_sale(&self, day: NaiveDate) -> bool {
        self.valid_from.is_none_or(|f| f <= day) && self.valid_to.is_none_or(|t| day <= t)
    }

    /// Whether it is sold at the STMs.
    pub fn on_stm(&self) -> bool {
        self.channels.iter().any(|c| c == "stm")
    }

    /// The card an STM shows.
    pub fn card(&self) -> branchd_drivers::stm::ProductCard {
        branchd_drivers::stm::ProductCard {
            code: self.code.clone(),
            name_zh: self.name_zh.clone(),
            name_en: self.name_en.clone(),
            kind: self.kind.as_str().to_string(),
            rate_bp: self.rate_bp,
            return_min_bp: self.return_min_bp,
            return_max_bp: self.return_max_bp,
            term_months: self.term_months,
            term_days: self.term_days,
            min_amount_fen: self.min_amount_fen.max(0) as u64,
            risk: format!("R{}", self.risk),
            script_zh: self.script_zh.clone(),
            script_en: self.script_en.clone(),
        }
    }
}

/// Apply head office's `product.upsert` (`product.upserted`).
pub fn upsert(tx: &mut Tx<'_>, p: &Product, command: &str) -> Result<(), StoreError> {
    tx.conn().execute(
        "INSERT INTO products(code, data, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT(code) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
        params![p.code, serde_json::to_string(p)?, rfc3339(tx.now())],
    )?;
    tx.emit(
        "product.upserted",
        json!({"code": p.code, "type": p.kind, "command": command}),
    )?;
    Ok(())
}

/// Apply head office's `product.delete` (`product.deleted` when there was one; its branch
/// sales go with it).
pub fn delete(tx: &mut Tx<'_>, code: &str, command: &str) -> Result<(), StoreError> {
    let n = tx
        .conn()
        .execute("DELETE FROM products WHERE code = ?1", [code])?;
    tx.conn()
        .execute("DELETE FROM products_sales WHERE code = ?1", [code])?;
    if n > 0 {
        tx.emit("product.deleted", json!({"code": code, "command": command}))?;
    }
    Ok(())
}

/// One product.
pub fn get(c: &Connection, code: &str) -> Result<Option<Product>, StoreError> {
    let data: Option<String> = c
        .query_row("SELECT data FROM products WHERE code = ?1", [code], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(data.and_then(|d| serde_json::from_str(&d).ok()))
}

/// A product on the shelf with its sales and place in the ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shelved {
    /// The product.
    #[serde(flatten)]
    pub product: Product,
    /// This branch's STM sales (count).
    pub branch_sales: u64,
    /// This branch's STM sales (yuan).
    pub branch_amount: i64,
    /// Head office's figure plus this branch's.
    pub sales: u64,
    /// 1-based place by `sales` (ties by code).
    pub rank: usize,
    /// Whether it is on sale today.
    pub on_sale: bool,
}

/// Every product, ranked: head office's sales figure plus this branch's STM sales, most
/// first (ties by code).
pub fn ranked(c: &Connection, today: NaiveDate) -> Result<Vec<Shelved>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT p.data, coalesce(s.count, 0), coalesce(s.amount, 0) \
         FROM products p LEFT JOIN products_sales s ON s.code = p.code ORDER BY p.code",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (data, count, amount) = row?;
        let Ok(product) = serde_json::from_str::<Product>(&data) else {
            continue;
        };
        let branch_sales = count.max(0) as u64;
        out.push(Shelved {
            on_sale: product.on_sale(today),
            sales: product.hq_sales + branch_sales,
            product,
            branch_sales,
            branch_amount: amount,
            rank: 0,
        });
    }
    out.sort_by(|a, b| {
        b.sales
            .cmp(&a.sales)
            .then_with(|| a.product.code.cmp(&b.product.code))
    });
    for (i, s) in out.iter_mut().enumerate() {
        s.rank = i + 1;
    }
    Ok(out)
}

/// The durable consumer that counts this branch's STM sales.
pub const SALES: &str = "products.sales";

/// Whether `ev` is a successful STM transaction that names a product.
pub fn is_sale(ev: &Event) -> bool {
    ev.kind == "device.transaction"
        && ev.data.get("ok") == Some(&json!(true))
        && ev.data.get("product").is_some_and(|p| p.is_string())
}

/// Count one sale for its product (a product the box does not know is not counted).
pub fn sold(tx: &mut Tx<'_>, ev: &Event) -> Result<(), StoreError> {
    let Some(code) = ev.data.get("product").and_then(|p| p.as_str()) else {
        return Ok(());
    };
    let amount = ev.data.get("amount").and_then(|a| a.as_i64()).unwrap_or(0);
    tx.conn().execute(
        "INSERT INTO products_sales(code, count, amount) \
         SELECT ?1, 1, ?2 WHERE EXISTS (SELECT 1 FROM products WHERE code = ?1) \
         ON CONFLICT(code) DO UPDATE SET count = count + 1, amount = amount + excluded.amount",
        params![code, amount],
    )?;
    Ok(())
}

/// The product shelf's handle.
#[derive(Debug, Clone)]
pub struct Products {
    core: Core,
    /// Shows products on the STMs.
    devices: Devices,
}

impl Products {
    /// The shelf; `devices` puts products on the STMs' screens.
    pub fn new(core: &Core, devices: &Devices) -> Products {
        Products {
            core: core.clone(),
            devices: devices.clone(),
        }
    }

    /// Start counting this branch's STM sales.
    pub fn start(&self) {
        let core = &self.core;
        core.spawn(crate::store::consume(
            core.store.clone(),
            SALES,
            core.cancel.clone(),
            is_sale,
            sold,
        ));
    }

    /// The routes (see `http.rs`).
    pub fn routes(&self) -> Vec<Route> {
        http::routes(self)
    }
}
