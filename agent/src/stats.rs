//! The day's figures for the branch manager, read from what the domain modules record:
//! tickets and waits by service (queue), STM transactions by type (device events), the
//! consumables and cash of each STM's latest status.
//!
//! Read-only: no tables and no events of its own.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde_json::{Value, json};
use warp::Filter;
use warp::reply::Response;

use crate::app::App;
use crate::config::Config;
use crate::http::auth::{Authed, guard, respond};
use crate::http::error::ApiError;
use crate::http::ok_json;
use crate::http::routes::{Access, RouteSpec, route};
use crate::store::{Schema, StoreError};
use crate::users::Role;

/// No tables: the figures come from the other modules' records.
pub const SCHEMA: Schema = Schema {
    module: "stats",
    steps: &[],
};

/// This module's routes.
pub const ROUTES: &[RouteSpec] = &[route(
    "GET",
    "/api/v1/stats",
    Access::Roles(&[Role::BranchManager, Role::LobbyManager]),
    "/api/v1/stats",
)];

/// This module's OpenAPI fragment.
pub const OPENAPI: &str = r##"{"paths":{"/api/v1/stats":{"get":{
  "summary":"today's figures: tickets and waits by service, STM transactions by type, consumables, cash per cassette",
  "tags":["stats"],
  "responses":{
    "200":{"description":"the day's figures","content":{"application/json":{"schema":{"type":"object",
      "properties":{"date":{"type":"string","format":"date"},
        "tickets":{"type":"object"},"transactions":{"type":"object"},
        "consumables":{"type":"object"},"cash":{"type":"object"}}}}}},
    "401":{"$ref":"#/components/responses/Error"},
    "403":{"$ref":"#/components/responses/Error"}}}}}}"##;

/// The route.
pub fn routes(app: &App) -> warp::filters::BoxedFilter<(Response,)> {
    let app = app.clone();
    warp::path!("api" / "v1" / "stats")
        .and(warp::get())
        .and(guard(&app, "GET", "/api/v1/stats"))
        .then(move |_: Authed| {
            let app = app.clone();
            async move {
                let cfg = app.cfg.clone();
                let now = Utc::now();
                let r = app
                    .store
                    .read(move |c| today(c, &cfg, now))
                    .await
                    .map(|v| ok_json(&v))
                    .map_err(ApiError::from);
                respond(r)
            }
        })
        .boxed()
}

/// The figures of the business day that contains `now`.
pub fn today(c: &Connection, cfg: &Config, now: DateTime<Utc>) -> Result<Value, StoreError> {
    let day = crate::queue::ops::business_day(cfg, now);
    Ok(json!({
        "date": day,
        "tickets": {"by_service": tickets_by_service(c, cfg, &day)?},
        "transactions": {"by_type": transactions_by_type(c, cfg, now)?},
        "consumables": {"items": consumables(c)?},
        "cash": {"cassettes": cassettes(c)?},
    }))
}

fn tickets_by_service(c: &Connection, cfg: &Config, day: &str) -> Result<Vec<Value>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT service, COUNT(*),
                SUM(state = 'served'),
                AVG(CASE WHEN called_at IS NOT NULL
                    THEN (julianday(called_at) - julianday(issued_at)) * 86400.0 END),
                MAX(CASE WHEN called_at IS NOT NULL
                    THEN (julianday(called_at) - julianday(issued_at)) * 86400.0 END)
         FROM queue_tickets WHERE day = ?1 GROUP BY service",
    )?;
    let mut rows: BTreeMap<String, (i64, i64, Option<f64>, Option<f64>)> = BTreeMap::new();
    for r in stmt.query_map([day], |r| {
        Ok((
            r.get::<_, String>(0)?,
            (
                r.get(1)?,
                r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                r.get(3)?,
                r.get(4)?,
            ),
        ))
    })? {
        let (service, v) = r?;
        rows.insert(service, v);
    }
    // Every configured service, in config order, even with no ticket yet.
    Ok(cfg
        .services
        .iter()
        .map(|s| {
            let (issued, served, avg, max) = rows.get(&s.code).copied().unwrap_or_default();
            json!({
                "service": s.code, "name": s.name, "issued": issued, "served": served,
                "avg_wait_s": avg.map(|v| v.round() as i64),
                "max_wait_s": max.map(|v| v.round() as i64),
            })
        })
        .collect())
}

fn transactions_by_type(
    c: &Connection,
    cfg: &Config,
    now: DateTime<Utc>,
) -> Result<Vec<Value>, StoreError> {
    // The branch's local midnight, as a UTC timestamp comparable with `received_at`.
    let local = now.with_timezone(&cfg.branch.utc_offset);
    let midnight = local
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(cfg.branch.utc_offset).single())
        .map(|t| crate::store::rfc3339(t.with_timezone(&Utc)))
        .unwrap_or_default();
    let mut stmt = c.prepare(
        "SELECT COALESCE(json_extract(data, '$.txn_type'), 'other'), COUNT(*),
                COALESCE(SUM(json_extract(data, '$.amount')), 0)
         FROM device_events WHERE kind = 'transaction' AND received_at >= ?1
         GROUP BY 1 ORDER BY 2 DESC",
    )?;
    let rows = stmt.query_map([midnight], |r| {
        Ok(
            json!({"txn_type": r.get::<_, String>(0)?, "count": r.get::<_, i64>(1)?,
                  "amount": r.get::<_, f64>(2)?}),
        )
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Each STM's latest status row.
fn latest_status(c: &Connection) -> Result<Vec<(String, Value, Value)>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT h.device_id, h.consumables, h.cash FROM device_status_history h
         WHERE h.id = (SELECT MAX(id) FROM device_status_history WHERE device_id = h.device_id)
         ORDER BY h.device_id",
    )?;
    let rows = stmt.query_map([], |r| {
        let parse = |s: String| serde_json::from_str(&s).unwrap_or(Value::Null);
        Ok((r.get(0)?, parse(r.get(1)?), parse(r.get(2)?)))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn consumables(c: &Connection) -> Result<Vec<Value>, StoreError> {
    let mut items = Vec::new();
    for (device, consumables, _) in latest_status(c)? {
        if let Value::Object(m) = consumables {
            for (item, remaining) in m {
                items.push(json!({"item": item, "device_id": device, "remaining": remaining}));
            }
        }
    }
    Ok(items)
}

fn cassettes(c: &Connection) -> Result<Vec<Value>, StoreError> {
    let mut out = Vec::new();
    for (device, _, cash) in latest_status(c)? {
        let Some(list) = cash.get("cassettes").and_then(Value::as_array) else {
            continue;
        };
        for k in list {
            let mut k = k.clone();
            if let Value::Object(m) = &mut k {
                m.insert("device_id".into(), json!(device));
            }
            out.push(k);
        }
    }
    Ok(out)
}
