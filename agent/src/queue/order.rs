//! The waiting tickets in call order, each with its estimated wait and the `why` of its
//! position.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::Serialize;

use super::counters::open_sessions;
use super::policy::{self, Candidate, Why};
use super::tickets::{QueueError, Ticket, TicketState, avg_service_s, call_state};
use crate::clock::rfc3339;
use crate::config::Config;

fn candidate(cfg: &Config, t: &Ticket) -> Candidate {
    Candidate {
        id: t.id,
        number: t.number.clone(),
        service: t.service.clone(),
        priority: t.priority,
        vip_tier: t
            .customer_level
            .as_deref()
            .and_then(|l| crate::vips::tier(l).ok().flatten()),
        appointment: t.appointment_id.is_some(),
        transferred_from: t.transferred_from.clone(),
        issued_at: t.issued_at,
        weight: cfg.service(&t.service).map_or(1.0, |s| s.priority_weight),
        moved: t.moved.clone(),
    }
}

/// Which counters a wait estimate counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EstimateBasis {
    /// The open counters serving the ticket's service.
    Open,
    /// None of them is open: every counter configured for the service, as if they were.
    Configured,
}

/// A waiting ticket in the call order.
#[derive(Debug, Clone, Serialize)]
pub struct WaitingView {
    /// 1-based position.
    pub position: usize,
    /// Number.
    pub number: String,
    /// Service code.
    pub service: String,
    /// 0 normal, 1–3 priority.
    pub priority: u8,
    /// Seconds waited since the original issue.
    pub waited_s: u64,
    /// Estimated seconds until called.
    pub estimated_wait_s: u64,
    /// Which counters the estimate counts.
    pub estimate_basis: EstimateBasis,
    /// Issue time.
    pub issued_at: String,
    /// Customer level, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_level: Option<String>,
    /// Customer id, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Appointment id, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointment_id: Option<String>,
    /// Only this counter will call it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counter: Option<String>,
    /// Whether a paper ticket came out.
    pub printed: bool,
    /// Why it stands here.
    pub why: Vec<Why>,
}

/// The waiting tickets in call order with their estimates (all of them, or those a
/// counter may call).
pub fn ordered(
    c: &Connection,
    cfg: &Config,
    now: DateTime<Utc>,
    open: &[Ticket],
    for_counter: Option<&str>,
) -> Result<Vec<(Ticket, WaitingView)>, QueueError> {
    let waiting: Vec<&Ticket> = open
        .iter()
        .filter(|t| t.state == TicketState::Waiting)
        .filter(|t| match for_counter {
            None => true,
            Some(cid) => match &t.target_counter {
                Some(target) => target == cid,
                None => cfg
                    .counters
                    .iter()
                    .any(|k| k.id == cid && k.services.contains(&t.service)),
            },
        })
        .collect();
    let cands: Vec<Candidate> = waiting.iter().map(|t| candidate(cfg, t)).collect();
    let placed = policy::order(&cands, now, call_state(c)?, cfg.queue.fairness_after);
    let Estimates { avg, shared } = estimates(c, cfg)?;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(placed.len());
    for (pos, p) in placed.into_iter().enumerate() {
        let t = waiting[p.index];
        let (est, basis) = estimate(cfg, &avg, &shared, &t.service, &seen);
        *seen.entry(t.service.as_str()).or_default() += 1;
        out.push((
            t.clone(),
            WaitingView {
                position: pos + 1,
                number: t.number.clone(),
                service: t.service.clone(),
                priority: t.priority,
                waited_s: policy::waited_s(t.issued_at, now),
                estimated_wait_s: est,
                estimate_basis: basis,
                issued_at: rfc3339(t.issued_at),
                customer_level: t.customer_level.clone(),
                customer_id: t.customer_id.clone(),
                appointment_id: t.appointment_id.clone(),
                counter: t.target_counter.clone(),
                printed: t.printed,
                why: p.why,
            },
        ));
    }
    Ok(out)
}

/// What the wait estimates are made of: each service's average service time, and the
/// services sharing its counters with how many counters and on which basis.
struct Estimates<'a> {
    avg: HashMap<&'a str, f64>,
    shared: HashMap<&'a str, (HashSet<&'a str>, usize, EstimateBasis)>,
}

/// Estimates: tickets ahead that the same counters could take, times the average service
/// time, over the open counters serving the service — or, while none of them is open,
/// over every counter configured for it (the basis says which).
fn estimates<'a>(c: &Connection, cfg: &'a Config) -> Result<Estimates<'a>, QueueError> {
    let mut avg: HashMap<&str, f64> = HashMap::new();
    for s in &cfg.services {
        avg.insert(s.code.as_str(), avg_service_s(c, cfg, &s.code)?);
    }
    let sessions = open_sessions(c)?;
    let mut shared: HashMap<&str, (HashSet<&str>, usize, EstimateBasis)> = HashMap::new();
    for s in &cfg.services {
        let configured: Vec<_> = cfg
            .counters
            .iter()
            .filter(|k| k.services.contains(&s.code))
            .collect();
        let open: Vec<_> = configured
            .iter()
            .copied()
            .filter(|k| sessions.contains_key(&k.id))
            .collect();
        let (counters, basis) = if open.is_empty() {
            (configured, EstimateBasis::Configured)
        } else {
            (open, EstimateBasis::Open)
        };
        let set = counters
            .iter()
            .flat_map(|k| k.services.iter().map(String::as_str))
            .chain(std::iter::once(s.code.as_str()))
            .collect();
        shared.insert(s.code.as_str(), (set, counters.len().max(1), basis));
    }
    Ok(Estimates { avg, shared })
}

/// The estimated wait of a ticket of `service` with `ahead` tickets (by service) before it.
fn estimate(
    cfg: &Config,
    avg: &HashMap<&str, f64>,
    shared: &HashMap<&str, (HashSet<&str>, usize, EstimateBasis)>,
    service: &str,
    ahead: &HashMap<&str, usize>,
) -> (u64, EstimateBasis) {
    match shared.get(service) {
        Some((set, n, basis)) => {
            let ahead: usize = set.iter().map(|s| ahead.get(s).copied().unwrap_or(0)).sum();
            let a = avg
                .get(service)
                .copied()
                .unwrap_or(cfg.queue.default_service_time.as_secs_f64());
            ((ahead as f64 * a / *n as f64).round() as u64, *basis)
        }
        None => (0, EstimateBasis::Configured),
    }
}

/// A service as a customer choosing one sees it: how many wait for it, and the estimated
/// wait of an ordinary ticket taken now (behind every ticket waiting for its counters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Prospect {
    /// Service code.
    pub service: String,
    /// Tickets waiting for this service.
    pub waiting: usize,
    /// People ahead of a ticket taken now (those waiting for the counters it shares).
    pub people_ahead: usize,
    /// Estimated seconds until a ticket taken now is called.
    pub estimated_wait_s: u64,
}

/// Every configured service's [`Prospect`].
pub fn prospects(
    c: &Connection,
    cfg: &Config,
    open: &[Ticket],
) -> Result<Vec<Prospect>, QueueError> {
    let Estimates { avg, shared } = estimates(c, cfg)?;
    let mut waiting: HashMap<&str, usize> = HashMap::new();
    for t in open.iter().filter(|t| t.state == TicketState::Waiting) {
        *waiting.entry(t.service.as_str()).or_default() += 1;
    }
    Ok(cfg
        .services
        .iter()
        .map(|s| {
            let (estimated_wait_s, _) = estimate(cfg, &avg, &shared, &s.code, &waiting);
            let people_ahead = shared.get(s.code.as_str()).map_or(0, |(set, _, _)| {
                set.iter()
                    .map(|x| waiting.get(x).copied().unwrap_or(0))
                    .sum()
            });
            Prospect {
                service: s.code.clone(),
                waiting: waiting.get(s.code.as_str()).copied().unwrap_or(0),
                people_ahead,
                estimated_wait_s,
            }
        })
        .collect())
}
