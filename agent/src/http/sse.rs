//! `GET /api/v1/events`: Server-Sent Events of committed domain events, resumable with
//! `Last-Event-ID` (= `seq`).
//!
//! The stream subscribes to the bus *before* reading any backlog from the outbox, and
//! drops anything at or below the last `seq` it sent, so a client sees every event once, in
//! order, with no gap, even across a reconnect or a slow consumer (a lagging subscriber
//! refills from the database).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::auth::guard;
use crate::app::App;
use crate::store::{Event, Store};

const BACKFILL: usize = 500;

struct Stream {
    rx: broadcast::Receiver<Arc<Event>>,
    store: Store,
    branch: String,
    last: u64,
    pending: VecDeque<Event>,
    more_in_db: bool,
    cancel: CancellationToken,
    _client: ClientGauge,
}

/// Keeps the `branchd_sse_clients` gauge right however the stream ends.
struct ClientGauge(App);

impl Drop for ClientGauge {
    fn drop(&mut self) {
        self.0.metrics.sse_clients.dec();
    }
}

impl Stream {
    async fn refill(&mut self) -> bool {
        match self.store.events_after(self.last, BACKFILL).await {
            Ok(events) => {
                self.more_in_db = events.len() == BACKFILL;
                self.pending.extend(events);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "event stream backfill failed; closing it");
                false
            }
        }
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                if ev.seq <= self.last {
                    continue;
                }
                self.last = ev.seq;
                return Some(ev);
            }
            if self.more_in_db {
                if !self.refill().await {
                    return None;
                }
                continue;
            }
            let got = tokio::select! {
                _ = self.cancel.cancelled() => return None,
                got = self.rx.recv() => got,
            };
            match got {
                Ok(ev) if ev.seq <= self.last => continue,
                Ok(ev) if ev.seq == self.last + 1 => {
                    self.last = ev.seq;
                    return Some((*ev).clone());
                }
                // A gap (we subscribed while a backlog was committing) or a lag: the
                // outbox has everything, in order.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    if !self.refill().await {
                        return None;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

fn to_sse(ev: &Event, branch: &str) -> warp::sse::Event {
    warp::sse::Event::default()
        .id(ev.seq.to_string())
        .event(ev.kind.clone())
        .data(ev.envelope(branch).to_string())
}

/// The route.
pub fn route(app: &App) -> warp::filters::BoxedFilter<(Response,)> {
    let app = app.clone();
    warp::path!("api" / "v1" / "events")
        .and(warp::get())
        .and(guard(&app, "GET", "/api/v1/events"))
        .and(warp::sse::last_event_id::<u64>())
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .then(
            move |_who,
                  header_id: Option<u64>,
                  query: std::collections::HashMap<String, String>| {
                let app = app.clone();
                // A page that reopens the stream itself cannot set the header: it may pass
                // `?last_event_id=N` instead.
                let last_event_id = header_id.or_else(|| query.get("last_event_id")?.parse().ok());
                async move {
                    let rx = app.store.subscribe();
                    // Without Last-Event-ID a client starts at "now".
                    let committed = *app.store.committed().borrow();
                    let last = last_event_id.unwrap_or(committed);
                    app.metrics.sse_clients.inc();
                    let state = Stream {
                        rx,
                        store: app.store.clone(),
                        branch: app.cfg.branch.id.clone(),
                        last,
                        pending: VecDeque::new(),
                        more_in_db: last < committed,
                        cancel: app.cancel.clone(),
                        _client: ClientGauge(app.clone()),
                    };
                    let stream = futures_util::stream::unfold(state, |mut st| async move {
                        let ev = st.next().await?;
                        let sse = to_sse(&ev, &st.branch);
                        Some((Ok::<_, Infallible>(sse), st))
                    });
                    warp::sse::reply(
                        warp::sse::keep_alive()
                            .interval(Duration::from_secs(15))
                            .stream(stream),
                    )
                    .into_response()
                }
            },
        )
        .boxed()
}
