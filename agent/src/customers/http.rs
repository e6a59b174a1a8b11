//! `GET /api/v1/customers/present`: who is in the branch today, searched and filtered.

use chrono::NaiveTime;
use nucleo_matcher::pattern::{CaseMatching, Normalization, Pattern};
use nucleo_matcher::{Config as MatchConfig, Matcher, Utf32Str};
use serde::Deserialize;
use serde_json::json;

use super::{Customers, SERVING, presence, walkin};
use crate::clock::{business_day, parse};
use crate::config::Config;
use crate::http::error::ApiError;
use crate::http::{Route, ok_json};

/// The filters of the list; every one is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filters {
    /// Fuzzy search on the name (and the customer id).
    q: Option<String>,
    /// Exact level.
    level: Option<String>,
    /// Arrived at or after (`HH:MM`, branch time).
    arrived_after: Option<String>,
    /// Arrived before.
    arrived_before: Option<String>,
    /// `with` or `without` a ticket.
    ticket: Option<String>,
    /// Ticket taken at or after (`HH:MM`).
    ticket_after: Option<String>,
    /// Ticket taken before.
    ticket_before: Option<String>,
    /// Waited at least this many seconds.
    min_wait_s: Option<u64>,
}

fn hhmm(key: &str, v: &Option<String>) -> Result<Option<NaiveTime>, ApiError> {
    v.as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| {
                ApiError::bad_request("invalid_query", format!("`{key}` must be a time, HH:MM"))
            })
        })
        .transpose()
}

/// The branch-local time of day of a stored timestamp.
fn local_time(cfg: &Config, ts: &str) -> Option<NaiveTime> {
    parse(ts).map(|t| t.with_timezone(&cfg.branch.utc_offset).time())
}

fn within(t: Option<NaiveTime>, after: Option<NaiveTime>, before: Option<NaiveTime>) -> bool {
    match t {
        Some(t) => after.is_none_or(|a| t >= a) && before.is_none_or(|b| t < b),
        None => after.is_none() && before.is_none(),
    }
}

/// Apply the filters, then the search: the best matches first when there is a query,
/// first arrivals first otherwise.
fn select(
    cfg: &Config,
    list: Vec<presence::Present>,
    f: &Filters,
) -> Result<Vec<presence::Present>, ApiError> {
    let (aa, ab) = (
        hhmm("arrived_after", &f.arrived_after)?,
        hhmm("arrived_before", &f.arrived_before)?,
    );
    let (ta, tb) = (
        hhmm("ticket_after", &f.ticket_after)?,
        hhmm("ticket_before", &f.ticket_before)?,
    );
    let with_ticket = match f.ticket.as_deref() {
        None | Some("") => None,
        Some("with") => Some(true),
        Some("without") => Some(false),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "`ticket` must be `with` or `without`",
            ));
        }
    };
    let kept: Vec<presence::Present> = list
        .into_iter()
        .filter(|p| {
            f.level
                .as_deref()
                .filter(|l| !l.is_empty())
                .is_none_or(|l| p.level.as_deref() == Some(l))
        })
        .filter(|p| within(local_time(cfg, &p.arrived_at), aa, ab))
        .filter(|p| with_ticket.is_none_or(|w| p.ticket.is_some() == w))
        .filter(|p| {
            (ta.is_none() && tb.is_none())
                || within(
                    p.ticket_at.as_deref().and_then(|t| local_time(cfg, t)),
                    ta,
                    tb,
                )
        })
        .filter(|p| f.min_wait_s.is_none_or(|m| p.waited_s >= m))
        .collect();
    let Some(q) = f.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) else {
        return Ok(kept);
    };
    let pattern = Pattern::parse(q, CaseMatching::Ignore, Normalization::Smart);
    let mut matcher = Matcher::new(MatchConfig::DEFAULT);
    let mut buf = Vec::new();
    let mut scored: Vec<(u32, presence::Present)> = kept
        .into_iter()
        .filter_map(|p| {
            let hay = format!("{} {}", p.name.as_deref().unwrap_or(""), p.customer_id);
            pattern
                .score(Utf32Str::new(&hay, &mut buf), &mut matcher)
                .map(|s| (s, p))
        })
        .collect();
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    Ok(scored.into_iter().map(|(_, p)| p).collect())
}

pub(super) fn routes(c: &Customers) -> Vec<Route> {
    let mut routes = walk_in_routes(c);
    routes.push(Route::get("/api/v1/customers/present", SERVING).to(
        c.core.clone(),
        |core, req| async move {
            let f: Filters = req.query()?;
            let now = core.clock.now();
            let cfg = core.cfg.clone();
            let list = core
                .store
                .read(move |c| presence::today(c, &cfg, now))
                .await?;
            let customers = select(&core.cfg, list, &f)?;
            Ok(ok_json(&json!({
                "day": business_day(&core.cfg, now),
                "customers": customers,
            })))
        },
    ));
    routes
}

/// `POST /api/v1/customers/walk-ins` (record a walk-in customer of today from a confirmed
/// ID card) and `GET` (today's).
fn walk_in_routes(c: &Customers) -> Vec<Route> {
    vec![
        Route::post("/api/v1/customers/walk-ins", SERVING)
            .json()
            .to(c.core.clone(), |core, req| async move {
                let by = req.username()?;
                let body = crate::docfill::validate(req.json()?).map_err(|e| {
                    let field = e.field.clone();
                    ApiError::bad_request("invalid_customer_field", e.why)
                        .with_details(json!({"field": field}))
                })?;
                let day = business_day(&core.cfg, core.clock.now());
                let rec = core
                    .store
                    .write(move |tx| walkin::record(tx, &day, &by, &body))
                    .await?;
                Ok(ok_json(&rec))
            }),
        Route::get("/api/v1/customers/walk-ins", SERVING).to(
            c.core.clone(),
            |core, _| async move {
                let day = business_day(&core.cfg, core.clock.now());
                let d = day.clone();
                let list = core.store.read(move |c| walkin::of_day(c, &d)).await?;
                Ok(ok_json(&json!({"day": day, "walk_ins": list})))
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::parse(
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n",
        )
        .unwrap()
    }

    fn present(
        id: &str,
        name: &str,
        level: &str,
        arrived: &str,
        ticket: Option<&str>,
        waited: u64,
    ) -> presence::Present {
        presence::Present {
            customer_id: id.into(),
            name: Some(name.into()),
            level: Some(level.into()),
            risk_level: None,
            relationship_manager: None,
            via: vec![presence::Via::Ticket],
            arrived_at: arrived.into(),
            ticket: ticket.map(|_| "A001".into()),
            ticket_at: ticket.map(String::from),
            called_at: None,
            left_at: None,
            state: "waiting",
            waited_s: waited,
            marks: Vec::new(),
        }
    }

    fn ids(v: &[presence::Present]) -> Vec<&str> {
        v.iter().map(|p| p.customer_id.as_str()).collect()
    }

    #[test]
    fn filters_and_fuzzy_search() {
        let cfg = cfg();
        // 09:05, 10:20 and 11:40 Beijing time
        let list = vec![
            present(
                "C1",
                "王芳",
                "vip1",
                "2026-11-23T01:05:00.000Z",
                Some("2026-11-23T01:06:00.000Z"),
                1200,
            ),
            present(
                "C2",
                "王小芳",
                "vip2",
                "2026-11-23T02:20:00.000Z",
                None,
                300,
            ),
            present(
                "C3",
                "Rose Leslie",
                "vip2",
                "2026-11-23T03:40:00.000Z",
                Some("2026-11-23T03:41:00.000Z"),
                60,
            ),
        ];
        let run = |f: Filters| ids(&select(&cfg, list.clone(), &f).unwrap()).join(",");
        assert_eq!(run(Filters::default()), "C1,C2,C3");
        assert_eq!(
            run(Filters {
                q: Some("王芳".into()),
                ..Default::default()
            }),
            "C1,C2"
        );
        assert_eq!(
            run(Filters {
                q: Some("rose".into()),
                ..Default::default()
            }),
            "C3"
        );
        assert_eq!(
            run(Filters {
                q: Some("lesle".into()),
                ..Default::default()
            }),
            "C3",
            "a letter left out still finds her"
        );
        assert_eq!(
            run(Filters {
                level: Some("vip2".into()),
                ..Default::default()
            }),
            "C2,C3"
        );
        assert_eq!(
            run(Filters {
                arrived_after: Some("10:00".into()),
                ..Default::default()
            }),
            "C2,C3"
        );
        assert_eq!(
            run(Filters {
                arrived_before: Some("10:00".into()),
                ..Default::default()
            }),
            "C1"
        );
        assert_eq!(
            run(Filters {
                ticket: Some("without".into()),
                ..Default::default()
            }),
            "C2"
        );
        assert_eq!(
            run(Filters {
                ticket_after: Some("11:00".into()),
                ..Default::default()
            }),
            "C3"
        );
        assert_eq!(
            run(Filters {
                min_wait_s: Some(300),
                ..Default::default()
            }),
            "C1,C2"
        );
        let bad = select(
            &cfg,
            list.clone(),
            &Filters {
                arrived_after: Some("9am".into()),
                ..Default::default()
            },
        );
        assert!(bad.is_err_and(|e| e.message.contains("`arrived_after` must be a time")));
    }
}
