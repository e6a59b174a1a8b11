//! The waiting tickets in call order, each with its estimated wait and the `why` of its
//! position.

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::Serialize;

use super::counters::open_sessions;
use super::policy::{self, Candidate, Placed, Why};
use super::tickets::{QueueError, Ticket, TicketState, avg_service_s, call_state};
use crate::clock::rfc3339;
use crate::config::Config;

fn candidate<'a>(cfg: &Config, t: &'a Ticket) -> Candidate<'a> {
    Candidate {
        id: t.id,
        number: &t.number,
        service: &t.service,
        priority: t.priority,
        vip_tier: t
            .customer_level
            .as_deref()
            .and_then(|l| crate::vips::tier(l).ok().flatten()),
        appointment: t.appointment_id.is_some(),
        transferred_from: t.transferred_from.as_deref(),
        issued_at: t.issued_at,
        weight: cfg.service(&t.service).map_or(1.0, |s| s.priority_weight),
        moved: t.moved.as_ref(),
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
/// counter may call). Positions and estimates are worked out for all; a ticket's view
/// (with the `why` of its position) only when asked for, so an operation that needs one
/// ticket's place does not build a thousand.
#[derive(Debug)]
pub struct Ordered<'t> {
    now: DateTime<Utc>,
    fairness_after: u32,
    waiting: Vec<&'t Ticket>,
    cands: Vec<Candidate<'t>>,
    placed: Vec<Placed>,
    /// The estimate of each position.
    estimates: Vec<(u64, EstimateBasis)>,
}

impl<'t> Ordered<'t> {
    /// How many tickets are in the order.
    pub fn len(&self) -> usize {
        self.placed.len()
    }

    /// Whether no ticket waits.
    pub fn is_empty(&self) -> bool {
        self.placed.is_empty()
    }

    /// The ticket at 0-based `index` of the order.
    pub fn ticket(&self, index: usize) -> &'t Ticket {
        self.waiting[self.placed[index].index]
    }

    /// The 0-based index of the ticket with this row id.
    pub fn index_of(&self, id: i64) -> Option<usize> {
        self.placed
            .iter()
            .position(|p| self.cands[p.index].id == id)
    }

    /// The view of the ticket at 0-based `index`.
    pub fn view(&self, index: usize) -> WaitingView {
        let p = &self.placed[index];
        let t = self.waiting[p.index];
        let (estimated_wait_s, estimate_basis) = self.estimates[index];
        WaitingView {
            position: index + 1,
            number: t.number.clone(),
            service: t.service.clone(),
            priority: t.priority,
            waited_s: policy::waited_s(t.issued_at, self.now),
            estimated_wait_s,
            estimate_basis,
            issued_at: rfc3339(t.issued_at),
            customer_level: t.customer_level.clone(),
            customer_id: t.customer_id.clone(),
            appointment_id: t.appointment_id.clone(),
            counter: t.target_counter.clone(),
            printed: t.printed,
            why: policy::explain(&self.cands[p.index], p, self.now, self.fairness_after),
        }
    }

    /// Every ticket's view, in call order.
    pub fn views(&self) -> Vec<WaitingView> {
        (0..self.len()).map(|i| self.view(i)).collect()
    }
}

/// The waiting tickets of `open` in call order (all of them, or those `for_counter` may
/// call), with their estimated waits.
pub fn ordered<'t>(
    c: &Connection,
    cfg: &Config,
    now: DateTime<Utc>,
    open: &'t [Ticket],
    for_counter: Option<&str>,
) -> Result<Ordered<'t>, QueueError> {
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
    let cands: Vec<Candidate<'t>> = waiting.iter().map(|t| candidate(cfg, t)).collect();
    let fairness_after = cfg.queue.fairness_after;
    let placed = policy::order(&cands, now, call_state(c)?, fairness_after);
    let est = estimates(c, cfg)?;
    let mut seen = vec![0usize; cfg.services.len()];
    let mut ests = Vec::with_capacity(placed.len());
    for p in &placed {
        let k = service_index(cfg, cands[p.index].service);
        ests.push(est.estimate(k, &seen));
        if let Some(k) = k {
            seen[k] += 1;
        }
    }
    Ok(Ordered {
        now,
        fairness_after,
        waiting,
        cands,
        placed,
        estimates: ests,
    })
}

/// What the wait estimates are made of, for each configured service (by its index in
/// `cfg.services`): its average service time, the services sharing its counters, and how
/// many counters on which basis.
struct Estimates {
    per: Vec<Shared>,
}

struct Shared {
    avg: f64,
    /// Indexes of the services whose tickets the same counters take (itself included).
    shares: Vec<usize>,
    counters: usize,
    basis: EstimateBasis,
}

/// The index of a service in `cfg.services`.
fn service_index(cfg: &Config, code: &str) -> Option<usize> {
    cfg.services.iter().position(|s| s.code == code)
}

/// Estimates: tickets ahead that the same counters could take, times the average service
/// time, over the open counters serving the service — or, while none of them is open,
/// over every counter configured for it (the basis says which).
fn estimates(c: &Connection, cfg: &Config) -> Result<Estimates, QueueError> {
    let sessions = open_sessions(c)?;
    let mut per = Vec::with_capacity(cfg.services.len());
    for (i, s) in cfg.services.iter().enumerate() {
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
        let mut shares: Vec<usize> = counters
            .iter()
            .flat_map(|k| k.services.iter().filter_map(|x| service_index(cfg, x)))
            .chain(std::iter::once(i))
            .collect();
        shares.sort_unstable();
        shares.dedup();
        per.push(Shared {
            avg: avg_service_s(c, cfg, &s.code)?,
            shares,
            counters: counters.len().max(1),
            basis,
        });
    }
    Ok(Estimates { per })
}

impl Estimates {
    /// Tickets ahead of one of service `k` that its counters could take, of `ahead[j]`
    /// tickets of each service before it.
    fn people_ahead(&self, k: usize, ahead: &[usize]) -> usize {
        self.per[k].shares.iter().map(|&j| ahead[j]).sum()
    }

    /// The estimated wait of a ticket of service `k` (`None`: not configured).
    fn estimate(&self, k: Option<usize>, ahead: &[usize]) -> (u64, EstimateBasis) {
        match k {
            Some(k) => {
                let s = &self.per[k];
                let n = self.people_ahead(k, ahead);
                (
                    (n as f64 * s.avg / s.counters as f64).round() as u64,
                    s.basis,
                )
            }
            None => (0, EstimateBasis::Configured),
        }
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
    let est = estimates(c, cfg)?;
    let mut waiting = vec![0usize; cfg.services.len()];
    for t in open.iter().filter(|t| t.state == TicketState::Waiting) {
        if let Some(k) = service_index(cfg, &t.service) {
            waiting[k] += 1;
        }
    }
    Ok(cfg
        .services
        .iter()
        .enumerate()
        .map(|(k, s)| Prospect {
            service: s.code.clone(),
            waiting: waiting[k],
            people_ahead: est.people_ahead(k, &waiting),
            estimated_wait_s: est.estimate(Some(k), &waiting).0,
        })
        .collect())
}
