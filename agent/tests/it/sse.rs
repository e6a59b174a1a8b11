//! The event stream: every committed event, once, in order, resumable by seq.

use std::time::Duration;

use branchd::store::StoreError;
use futures_util::StreamExt;

use crate::common::TestBox;

#[derive(Debug)]
pub struct SseEvent {
    pub id: u64,
    pub kind: String,
    pub data: serde_json::Value,
}

/// Reads SSE frames from a response body.
pub struct Reader {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Reader {
    pub fn new(r: reqwest::Response) -> Self {
        Reader {
            body: Box::pin(r.bytes_stream()),
            buf: String::new(),
        }
    }

    pub async fn next(&mut self) -> SseEvent {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("an event within 10 s")
    }

    /// The next event, or `None` when none comes within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (None, None, String::new());
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        kind = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let (Some(id), Some(kind)) = (id, kind) {
                    return Some(SseEvent {
                        id,
                        kind,
                        data: serde_json::from_str(&data).unwrap(),
                    });
                }
                continue; // a keep-alive comment
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()?
                .expect("the stream is open")
                .unwrap();
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn commit(b: &TestBox, n: usize) {
    for i in 0..n {
        b.core()
            .store
            .write(move |tx| -> Result<(), StoreError> {
                tx.emit("test.tick", serde_json::json!({"i": i}))?;
                Ok(())
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_stream_delivers_new_events_in_the_envelope() {
    let b = TestBox::start().await;
    let c = b.login("lobby_manager").await;
    let r = c.get(b.url("/api/v1/events")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut s = Reader::new(r);
    commit(&b, 3).await;
    for seq in 1..=3 {
        let ev = s.next().await;
        assert_eq!(ev.id, seq);
        assert_eq!(ev.kind, "test.tick");
        assert_eq!(ev.data["seq"], seq);
        assert_eq!(ev.data["v"], 1);
        assert_eq!(ev.data["branch"], "T001");
        assert_eq!(ev.data["data"]["i"], seq - 1);
        assert!(ev.data["id"].as_str().unwrap().len() == 26, "a ULID");
    }
    b.stop().await;
}

#[tokio::test]
async fn last_event_id_resumes_after_that_seq_with_no_gap() {
    let b = TestBox::start().await;
    commit(&b, 1200).await; // more than one backfill page
    let c = b.login("lobby_manager").await;
    for (how, req) in [
        (
            "header",
            c.get(b.url("/api/v1/events")).header("last-event-id", "5"),
        ),
        ("query", c.get(b.url("/api/v1/events?last_event_id=5"))),
    ] {
        let mut s = Reader::new(req.send().await.unwrap());
        for seq in 6..=1200 {
            assert_eq!(s.next().await.id, seq, "{how}");
        }
        commit(&b, 1).await;
        let next = s.next().await.id;
        assert!(
            next > 1200,
            "{how}: live events follow the backlog, got {next}"
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn a_burst_larger_than_the_bus_reaches_a_client_complete() {
    let b = TestBox::start().await;
    let c = b.login("supervisor").await;
    let mut s = Reader::new(c.get(b.url("/api/v1/events")).send().await.unwrap());
    // One transaction with more events than the in-process bus holds: the stream must
    // notice the lag and refill from the outbox.
    b.core()
        .store
        .write(|tx| -> Result<(), StoreError> {
            for i in 0..5000 {
                tx.emit("test.burst", serde_json::json!({"i": i}))?;
            }
            Ok(())
        })
        .await
        .unwrap();
    for seq in 1..=5000 {
        assert_eq!(s.next().await.id, seq);
    }
    b.stop().await;
}
