//! The call order: who is called next, and why.
//!
//! 1. **Priority classes first.** A ticket's `priority` is its VIP tier (1–3), at least 1 for
//!    an appointment or a transferred ticket, 0 for everyone else. Priority tickets are
//!    ordered by class, then by score.
//! 2. **Score = service weight × waiting time** (Novo SGA's weight × wait; with equal weights
//!    this is Qmatic's call-by-max-wait). Waiting time counts from the original issue time,
//!    so a transferred ticket keeps its place in time.
//! 3. **Fairness:** after `fairness_after` priority calls in a row, the next call takes the
//!    best normal ticket (if any), so normal tickets are never starved.
//! 4. **Manual moves** by the lobby manager win over all of the above: a ticket moved to
//!    position p stays p − (calls since the move), never below 1.
//!
//! The order is a pure function of the waiting tickets, the clock and the two persisted
//! counters (calls made, current priority streak), so it is identical after a restart.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

/// A manual reorder.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    /// The position asked for (1-based).
    pub position: u32,
    /// The branch's call counter at the time of the move.
    pub calls_at: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who moved it.
    pub by: String,
    /// The reason given.
    pub reason: Option<String>,
}

/// A waiting ticket, as the policy sees it (borrowed from the ticket: the order is
/// worked out for every waiting ticket on every operation).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate<'a> {
    /// Row id (the final tie-break: earlier issued first).
    pub id: i64,
    /// e.g. `A001`.
    pub number: &'a str,
    /// Service code.
    pub service: &'a str,
    /// 0 normal, 1–3 priority classes.
    pub priority: u8,
    /// VIP tier, if the customer has one.
    pub vip_tier: Option<u8>,
    /// From an appointment.
    pub appointment: bool,
    /// The service it was transferred from, if it was.
    pub transferred_from: Option<&'a str>,
    /// Original issue time.
    pub issued_at: DateTime<Utc>,
    /// The service's weight.
    pub weight: f64,
    /// A manual move, if any.
    pub moved: Option<&'a Moved>,
}

/// One line of the explanation of a position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Why {
    /// `vip`, `appointment`, `transferred`, `moved`, `fairness`, `fifo`.
    pub code: &'static str,
    /// What the PAD's text for the code needs: `vip` {tier}; `transferred` {from} (a
    /// service code); `moved` {position, by, reason}; `fairness` {after}; `fifo` {min,
    /// weight}; `appointment` none.
    pub params: Value,
}

fn why(code: &'static str, params: Value) -> Why {
    Why { code, params }
}

/// A ticket in the call order.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    /// Index into the candidates given to [`order`].
    pub index: usize,
    /// A normal ticket that stands here by the fairness rule.
    pub fairness: bool,
}

/// The counters the order depends on (persisted with every call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallState {
    /// Calls made so far (all counters).
    pub calls: u64,
    /// Priority calls in a row since the last normal call.
    pub streak: u32,
}

impl CallState {
    /// The state after calling a ticket of this priority.
    pub fn after_call(self, priority: u8) -> CallState {
        CallState {
            calls: self.calls + 1,
            streak: if priority > 0 { self.streak + 1 } else { 0 },
        }
    }
}

/// Seconds waited at `now` (never negative).
pub fn waited_s(issued_at: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    (now - issued_at).num_seconds().max(0) as u64
}

fn score(c: &Candidate, now: DateTime<Utc>) -> f64 {
    c.weight * (now - c.issued_at).num_milliseconds().max(0) as f64
}

/// Why `c` stands where [`order`] placed it (`p`): the reasons the PAD shows beside it.
pub fn explain(c: &Candidate, p: &Placed, now: DateTime<Utc>, fairness_after: u32) -> Vec<Why> {
    let mut out = Vec::new();
    if p.fairness {
        out.push(why("fairness", json!({"after": fairness_after})));
    }
    if let Some(m) = &c.moved {
        out.push(why(
            "moved",
            json!({"position": m.position, "by": m.by, "reason": m.reason}),
        ));
    }
    if let Some(tier) = c.vip_tier {
        out.push(why("vip", json!({"tier": tier})));
    }
    if c.appointment {
        out.push(why("appointment", json!({})));
    }
    if let Some(from) = &c.transferred_from {
        out.push(why("transferred", json!({"from": from})));
    }
    let min = waited_s(c.issued_at, now) / 60;
    out.push(why("fifo", json!({"min": min, "weight": c.weight})));
    out
}

/// The call order of `candidates` at `now`, given the persisted call state and the fairness
/// rule (`fairness_after` priority calls, then one normal ticket).
pub fn order(
    candidates: &[Candidate],
    now: DateTime<Utc>,
    state: CallState,
    fairness_after: u32,
) -> Vec<Placed> {
    let scores: Vec<f64> = candidates.iter().map(|c| score(c, now)).collect();
    let by_score = |a: &usize, b: &usize| {
        let (x, y) = (&candidates[*a], &candidates[*b]);
        scores[*b]
            .total_cmp(&scores[*a])
            .then(x.issued_at.cmp(&y.issued_at))
            .then(x.id.cmp(&y.id))
    };
    let unmoved = (0..candidates.len()).filter(|i| candidates[*i].moved.is_none());
    let (mut prio, mut normal): (Vec<usize>, Vec<usize>) =
        unmoved.partition(|i| candidates[*i].priority > 0);
    prio.sort_by(|a, b| {
        candidates[*b]
            .priority
            .cmp(&candidates[*a].priority)
            .then_with(|| by_score(a, b))
    });
    normal.sort_by(by_score);

    let mut out: Vec<Placed> = Vec::with_capacity(candidates.len());
    let (mut p, mut n) = (prio.into_iter().peekable(), normal.into_iter().peekable());
    let mut streak = state.streak;
    loop {
        let take_prio = match (p.peek(), n.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(_), Some(_)) => streak < fairness_after,
        };
        if take_prio {
            let i = p.next().expect("peeked");
            streak += 1;
            out.push(Placed {
                index: i,
                fairness: false,
            });
        } else {
            let i = n.next().expect("peeked");
            let fairness = streak >= fairness_after && p.peek().is_some();
            streak = 0;
            out.push(Placed { index: i, fairness });
        }
    }

    // Manual moves, oldest move first, each at its position less the calls made since.
    let mut moved: Vec<usize> = (0..candidates.len())
        .filter(|i| candidates[*i].moved.is_some())
        .collect();
    moved.sort_by(|a, b| {
        let (x, y) = (&candidates[*a], &candidates[*b]);
        let (mx, my) = (
            x.moved.as_ref().expect("moved"),
            y.moved.as_ref().expect("moved"),
        );
        mx.at.cmp(&my.at).then(x.id.cmp(&y.id))
    });
    for i in moved {
        let m = candidates[i].moved.as_ref().expect("moved");
        let since = state.calls.saturating_sub(m.calls_at);
        let target = u64::from(m.position).saturating_sub(since).max(1) as usize;
        let at = (target - 1).min(out.len());
        out.insert(
            at,
            Placed {
                index: i,
                fairness: false,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap()
    }

    /// (number, priority, vip tier, minutes waited, weight)
    fn cand(id: i64, spec: (&str, u8, Option<u8>, i64, f64)) -> Candidate<'_> {
        let (number, priority, vip_tier, waited_min, weight) = spec;
        Candidate {
            id,
            number,
            service: "personal",
            priority,
            vip_tier,
            appointment: false,
            transferred_from: None,
            issued_at: t0() + chrono::Duration::minutes(60 - waited_min),
            weight,
            moved: None,
        }
    }

    fn numbers(cs: &[Candidate], state: CallState, n: u32) -> Vec<String> {
        let now = t0() + chrono::Duration::minutes(60);
        order(cs, now, state, n)
            .into_iter()
            .map(|p| cs[p.index].number.to_string())
            .collect()
    }

    type Spec = (&'static str, u8, Option<u8>, i64, f64);

    #[test]
    fn the_order_follows_class_then_weight_times_wait_then_fairness() {
        let st = CallState::default();
        #[allow(clippy::type_complexity)]
        let cases: &[(&str, &[Spec], CallState, u32, &[&str])] = &[
            (
                "equal weights: longest wait first (call-by-max-wait)",
                &[
                    ("A002", 0, None, 5, 1.0),
                    ("A001", 0, None, 9, 1.0),
                    ("A003", 0, None, 1, 1.0),
                ],
                st,
                3,
                &["A001", "A002", "A003"],
            ),
            (
                "weight × wait: 1.5 × 4 min beats 1.0 × 5 min",
                &[("A001", 0, None, 5, 1.0), ("C001", 0, None, 4, 1.5)],
                st,
                3,
                &["C001", "A001"],
            ),
            (
                "a priority ticket goes ahead of longer-waiting normal ones",
                &[("A001", 0, None, 20, 1.0), ("A002", 1, Some(1), 0, 1.0)],
                st,
                3,
                &["A002", "A001"],
            ),
            (
                "a higher VIP tier goes ahead of a lower one",
                &[("A001", 1, Some(1), 10, 1.0), ("A002", 2, Some(2), 1, 1.0)],
                st,
                3,
                &["A002", "A001"],
            ),
            (
                "after N priority calls one normal ticket",
                &[
                    ("N1", 0, None, 30, 1.0),
                    ("P1", 1, None, 5, 1.0),
                    ("P2", 1, None, 4, 1.0),
                    ("P3", 1, None, 3, 1.0),
                    ("N2", 0, None, 20, 1.0),
                ],
                st,
                2,
                &["P1", "P2", "N1", "P3", "N2"],
            ),
            (
                "the persisted streak counts: one priority call left before a normal one",
                &[
                    ("N1", 0, None, 30, 1.0),
                    ("P1", 1, None, 5, 1.0),
                    ("P2", 1, None, 4, 1.0),
                ],
                CallState {
                    calls: 7,
                    streak: 1,
                },
                2,
                &["P1", "N1", "P2"],
            ),
            (
                "only priority tickets: no fairness gap",
                &[("P1", 1, None, 5, 1.0), ("P2", 1, None, 4, 1.0)],
                CallState {
                    calls: 0,
                    streak: 5,
                },
                1,
                &["P1", "P2"],
            ),
            (
                "equal scores: issued first, then row id",
                &[("A002", 0, None, 5, 1.0), ("A001", 0, None, 5, 1.0)],
                st,
                3,
                &["A002", "A001"],
            ),
        ];
        for (name, specs, state, n, want) in cases {
            let cs: Vec<Candidate> = specs
                .iter()
                .enumerate()
                .map(|(i, s)| cand(i as i64, *s))
                .collect();
            assert_eq!(numbers(&cs, *state, *n), *want, "{name}");
        }
    }

    #[test]
    fn a_moved_ticket_keeps_its_position_and_advances_with_each_call() {
        let mut cs: Vec<Candidate> = (0..5)
            .map(|i| {
                cand(
                    i,
                    (
                        ["A1", "A2", "A3", "A4", "A5"][i as usize],
                        0,
                        None,
                        10 - i,
                        1.0,
                    ),
                )
            })
            .collect();
        let moved = Moved {
            position: 2,
            calls_at: 10,
            at: t0(),
            by: "lm".into(),
            reason: Some("elderly".into()),
        };
        cs[4].moved = Some(&moved);
        let st = CallState {
            calls: 10,
            streak: 0,
        };
        assert_eq!(numbers(&cs, st, 3), ["A1", "A5", "A2", "A3", "A4"]);
        // One call later (A1 gone), it is first.
        let rest = cs[1..].to_vec();
        assert_eq!(
            numbers(&rest, st.after_call(0), 3),
            ["A5", "A2", "A3", "A4"]
        );
        // Moved past the end of a shorter list: last.
        let past_the_end = Moved {
            position: 99,
            ..moved.clone()
        };
        cs[4].moved = Some(&past_the_end);
        assert_eq!(numbers(&cs, st, 3), ["A1", "A2", "A3", "A4", "A5"]);
    }

    #[test]
    fn every_position_is_explained() {
        let mut cs = vec![
            cand(0, ("A001", 2, Some(2), 6, 1.0)),
            cand(1, ("C001", 0, None, 3, 1.2)),
        ];
        cs[1].appointment = true;
        cs[1].priority = 1;
        cs[1].transferred_from = Some("corporate");
        let now = t0() + chrono::Duration::minutes(60);
        let placed = order(&cs, now, CallState::default(), 3);
        let why: Vec<Vec<(&str, Value)>> = placed
            .iter()
            .map(|p| {
                explain(&cs[p.index], p, now, 3)
                    .into_iter()
                    .map(|w| (w.code, w.params))
                    .collect()
            })
            .collect();
        assert_eq!(
            why[0],
            [
                ("vip", json!({"tier": 2})),
                ("fifo", json!({"min": 6, "weight": 1.0}))
            ]
        );
        assert_eq!(
            why[1],
            [
                ("appointment", json!({})),
                ("transferred", json!({"from": "corporate"})),
                ("fifo", json!({"min": 3, "weight": 1.2}))
            ]
        );
    }

    #[test]
    fn the_fairness_pick_says_so() {
        let cs = vec![
            cand(0, ("P1", 1, None, 5, 1.0)),
            cand(1, ("N1", 0, None, 9, 1.0)),
            cand(2, ("P2", 1, None, 4, 1.0)),
        ];
        let now = t0() + chrono::Duration::minutes(60);
        let placed = order(&cs, now, CallState::default(), 1);
        let why = |k: usize| explain(&cs[placed[k].index], &placed[k], now, 1);
        assert_eq!(placed[1].index, 1);
        assert_eq!(why(1)[0].code, "fairness");
        assert_eq!(why(1)[0].params, json!({"after": 1}));
        assert!(why(0).iter().all(|w| w.code != "fairness"));
    }

    #[test]
    fn a_moved_ticket_says_first_who_moved_it_and_why() {
        let mut cs = vec![
            cand(0, ("A1", 0, None, 9, 1.0)),
            cand(1, ("A2", 0, None, 3, 1.0)),
        ];
        let moved = Moved {
            position: 1,
            calls_at: 0,
            at: t0(),
            by: "lm".into(),
            reason: Some("elderly".into()),
        };
        cs[1].moved = Some(&moved);
        let now = t0() + chrono::Duration::minutes(60);
        let placed = order(&cs, now, CallState::default(), 3);
        assert_eq!(placed[0].index, 1);
        let why = explain(&cs[1], &placed[0], now, 3);
        assert_eq!(why[0].code, "moved");
        assert_eq!(
            why[0].params,
            json!({"position": 1, "by": "lm", "reason": "elderly"})
        );
        assert_eq!(why.last().map(|w| w.code), Some("fifo"));
    }
}
