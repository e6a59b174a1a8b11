//! `GET /api/v1/events`: Server-Sent Events of committed domain events, resumable with
//! `Last-Event-ID` (= `seq`).
//!
//! Each stream is a [`Follower`](crate::store::Follower) of the store, so a client sees
//! every event once, in order, with no gap, even across a reconnect or when it is slower
//! than the bus (a lagging stream refills from the outbox).

use std::convert::Infallible;
use std::time::Duration;

use serde::Deserialize;
use warp::Reply;

use super::route::{Access, Route};
use crate::core::Core;
use crate::store::Event;

/// Keeps the `branchd_sse_clients` gauge right however the stream ends.
struct ClientGauge(Core);

impl Drop for ClientGauge {
    fn drop(&mut self) {
        self.0.metrics.sse_clients.dec();
    }
}

fn to_sse(ev: &Event, branch: &str) -> warp::sse::Event {
    warp::sse::Event::default()
        .id(ev.seq.to_string())
        .event(ev.kind.clone())
        .data(ev.envelope(branch).to_string())
}

#[derive(Debug, Deserialize)]
struct Resume {
    /// A page that reopens the stream itself cannot set the header: it may pass
    /// `?last_event_id=N` instead.
    last_event_id: Option<String>,
}

/// The route.
pub fn routes(core: &Core) -> Vec<Route> {
    vec![
        Route::get("/api/v1/events", Access::Staff).to(core.clone(), |core, req| async move {
            let from_header = req.header("last-event-id").and_then(|v| v.parse::<u64>().ok());
            let from_query = req
                .query::<Resume>()
                .ok()
                .and_then(|q| q.last_event_id?.parse::<u64>().ok());
            // Without Last-Event-ID a client starts at "now".
            let last = from_header
                .or(from_query)
                .unwrap_or_else(|| *core.store.committed().borrow());
            let role = req.who()?.user.role;
            core.metrics.sse_clients.inc();
            let state = (
                core.store.follow(last),
                core.cancel.clone(),
                core.cfg.branch.id.clone(),
                ClientGauge(core.clone()),
            );
            let stream = futures_util::stream::unfold(state, move |(mut f, cancel, branch, gauge)| async move {
                // Events this role may not see are skipped (see `visibility`).
                let ev = loop {
                    let ev = tokio::select! {
                        _ = cancel.cancelled() => return None,
                        ev = f.next() => match ev {
                            Ok(ev) => ev,
                            Err(e) => {
                                tracing::warn!(error = %e, "event stream backfill failed; closing it");
                                return None;
                            }
                        },
                    };
                    if super::visibility::may_see_event(role, &ev.kind, &ev.data) {
                        break ev;
                    }
                };
                let sse = to_sse(&ev, &branch);
                Some((Ok::<_, Infallible>(sse), (f, cancel, branch, gauge)))
            });
            Ok(warp::sse::reply(
                warp::sse::keep_alive()
                    .interval(Duration::from_secs(15))
                    .stream(stream),
            )
            .into_response())
        }),
    ]
}
