//! The day's figures for the branch manager, read through the modules that own them:
//! tickets and waits by service (queue), STM transactions by type, the consumables and cash
//! of each STM's latest status (devices).
//!
//! Read-only: no tables and no events of its own.

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde_json::{Value, json};

use crate::clock::{business_day, rfc3339};
use crate::config::Config;
use crate::core::Core;
use crate::http::{Access, Route, ok_json};
use crate::store::{Schema, StoreError};
use crate::users::Role;
use crate::{devices, queue};

/// No tables: the figures come from the other modules' records.
pub const SCHEMA: Schema = Schema {
    module: "stats",
    steps: &[],
};

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

/// `GET /api/v1/stats`.
pub fn routes(core: &Core) -> Vec<Route> {
    vec![
        Route::get(
            "/api/v1/stats",
            Access::Roles(&[Role::BranchManager, Role::LobbyManager]),
        )
        .to(core.clone(), |core, _| async move {
            let cfg = core.cfg.clone();
            let now = core.clock.now();
            Ok(ok_json(
                &core.store.read(move |c| today(c, &cfg, now)).await?,
            ))
        }),
    ]
}

/// The figures of the business day that contains `now`.
pub fn today(c: &Connection, cfg: &Config, now: DateTime<Utc>) -> Result<Value, StoreError> {
    let day = business_day(cfg, now);
    // The branch's local midnight, as a UTC timestamp comparable with the devices' records.
    let midnight = now
        .with_timezone(&cfg.branch.utc_offset)
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(cfg.branch.utc_offset).single())
        .map(|t| rfc3339(t.with_timezone(&Utc)))
        .unwrap_or_default();
    Ok(json!({
        "date": day,
        "tickets": {"by_service": queue::view::day_by_service(c, cfg, &day)?},
        "transactions": {"by_type": devices::db::transactions_by_type(c, &midnight)?},
        "consumables": {"items": devices::db::consumables(c)?},
        "cash": {"cassettes": devices::db::cassettes(c)?},
    }))
}
