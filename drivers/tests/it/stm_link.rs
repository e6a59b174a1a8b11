//! The box's link against the STM simulator over real pseudo-terminals.

use std::time::Duration;

use base64::Engine as _;
use branchd_drivers::stm::sim::sample_auth_request;
use branchd_drivers::stm::{
    CommandError, Decision, DeviceState, EventBody, Faults, LinkEvent, LinkOptions, ModuleStatus,
    StmLink, StmSim, StmSimConfig, ops,
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(5);

/// Waits for the first event matching `pred`, skipping others.
async fn wait_for(
    events: &mut mpsc::Receiver<LinkEvent>,
    what: &str,
    pred: impl Fn(&LinkEvent) -> bool,
) -> LinkEvent {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = events.recv().await.expect("link ended");
            if pred(&ev) {
                return ev;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test]
async fn session_with_simulator() {
    let sim = StmSim::spawn(StmSimConfig::new("STM-01")).unwrap();
    let cancel = CancellationToken::new();
    let (link, mut events, task) =
        StmLink::spawn(sim.path(), LinkOptions::default(), cancel.clone());

    assert_eq!(events.recv().await, Some(LinkEvent::Connected));
    let hello = wait_for(&mut events, "hello", |e| matches!(e, LinkEvent::Hello(_))).await;
    let LinkEvent::Hello(hello) = hello else {
        unreachable!()
    };
    assert_eq!(hello.device_id, "STM-01");
    assert_eq!(hello.modules.len(), 10);
    wait_for(
        &mut events,
        "status",
        |e| matches!(e, LinkEvent::Status(s) if s.state == DeviceState::SignedOut),
    )
    .await;

    // (op, args, ok, error) — every op of the specification, and an unknown one.
    let cases = [
        (ops::SIGN_IN, json!({}), true, None),
        (ops::PAUSE, json!({}), true, None),
        (ops::RESUME, json!({}), true, None),
        (ops::GET_STATUS, json!({}), true, None),
        (
            ops::MODULE_DISABLE,
            json!({"module": "cash_in"}),
            true,
            None,
        ),
        (ops::MODULE_ENABLE, json!({"module": "cash_in"}), true, None),
        (
            ops::MODULE_ENABLE,
            json!({"module": "teleporter"}),
            false,
            Some("unknown module teleporter"),
        ),
        (ops::SCREENSHOT, json!({}), true, None),
        (
            ops::SHOW_PRODUCT,
            json!({"product": {"code": "WM-91", "name_zh": "稳利91天", "name_en": "Steady 91 days",
                   "type": "wealth", "return_min_bp": 280, "return_max_bp": 340, "term_days": 91,
                   "min_amount_fen": 1_000_000, "risk": "R2"}, "ticket": "C007"}),
            true,
            None,
        ),
        (
            ops::SHOW_PRODUCT,
            json!({"product": {"code": "WM-91"}}),
            false,
            Some("invalid args: missing field `name_zh`"),
        ),
        ("self_destruct", json!({}), false, Some("unknown op")),
    ];
    for (op, args, ok, error) in cases {
        let r = link
            .send_command(op, args, T)
            .await
            .unwrap_or_else(|e| panic!("{op}: {e}"));
        assert_eq!((r.ok, r.error.as_deref()), (ok, error), "{op}");
        if op == ops::SCREENSHOT {
            let b64 = r.data.as_ref().unwrap()["png_base64"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(b64.len() <= 3072);
            let png = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        }
        if op == ops::SHOW_PRODUCT && ok {
            assert_eq!(
                r.data,
                Some(json!({"showing": "WM-91"})),
                "the screen's answer"
            );
        }
    }
    let shown = sim.record();
    assert_eq!(shown.showing(), Some("WM-91"));
    assert_eq!(shown.shown.len(), 1, "a refused card is not shown");
    assert_eq!(shown.shown[0].ticket.as_deref(), Some("C007"));
    assert_eq!(shown.shown[0].product.return_max_bp, Some(340));
    wait_for(
        &mut events,
        "in service",
        |e| matches!(e, LinkEvent::Status(s) if s.state == DeviceState::InService),
    )
    .await;
    assert_eq!(
        sim.record().ops(),
        [
            "sign_in",
            "pause",
            "resume",
            "get_status",
            "module_disable",
            "module_enable",
            "module_enable",
            "screenshot",
            "show_product",
            "show_product",
            "self_destruct"
        ]
    );

    // Scripted events arrive once, and the simulator learns they were acknowledged.
    let exc = sim.exception("CASH_JAM", "现金卡钞");
    let ev = wait_for(&mut events, "exception", |e| {
        matches!(e, LinkEvent::Event(_))
    })
    .await;
    let LinkEvent::Event(ev) = ev else {
        unreachable!()
    };
    assert_eq!(ev.event_id, exc);
    assert!(matches!(&ev.body, EventBody::Exception(x) if x.code == "CASH_JAM"));
    assert!(sim.wait_for(T, |r| r.acked_events.contains(&exc)));

    // An authorisation round trip: the decision reaches the device.
    sim.auth_request(sample_auth_request("R-1", 50_000));
    wait_for(
        &mut events,
        "auth request",
        |e| matches!(e, LinkEvent::Event(ev) if ev.body.kind() == "auth_request"),
    )
    .await;
    let args = json!({"request_id": "R-1", "decision": "redo", "redo": ["face"], "by": "sup1", "comment": "again"});
    let r = link.send_command(ops::AUTH_RESULT, args, T).await.unwrap();
    assert!(r.ok, "{r:?}");
    let last = sim.record().last_auth_result().cloned().unwrap();
    assert_eq!(
        (last.request_id.as_str(), last.decision, last.by.as_str()),
        ("R-1", Decision::Redo, "sup1")
    );

    // Module changes are reported by STATUS.
    sim.set_module("receipt_printer", ModuleStatus::Fault);
    wait_for(&mut events, "fault status", |e| {
        matches!(e, LinkEvent::Status(s) if s.modules.get("receipt_printer") == Some(&ModuleStatus::Fault))
    })
    .await;

    cancel.cancel();
    task.await.unwrap();
    let r = link.send_command(ops::SIGN_IN, json!({}), T).await;
    assert_eq!(r, Err(CommandError::Closed));
}

#[tokio::test]
async fn events_get_through_corruption_and_loss() {
    let sim = StmSim::spawn(StmSimConfig::new("STM-02")).unwrap();
    let cancel = CancellationToken::new();
    let (_link, mut events, task) =
        StmLink::spawn(sim.path(), LinkOptions::default(), cancel.clone());
    wait_for(&mut events, "hello", |e| matches!(e, LinkEvent::Hello(_))).await;
    sim.set_faults(Faults {
        corrupt_pct: 0.1,
        drop_pct: 10.0,
        silent: false,
    });
    let ids: Vec<String> = (0..15)
        .map(|i| sim.consumable_used("debit_card", i % 2 + 1))
        .collect();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(40), async {
        while !ids.iter().all(|id| got.contains(id)) {
            if let Some(LinkEvent::Event(e)) = events.recv().await {
                got.push(e.keep().event_id);
            }
        }
    })
    .await
    .expect("all events delivered");
    // Nothing but what was sent; duplicates only across a re-HELLO (de-duplicated by the
    // daemon by event_id).
    assert!(got.iter().all(|id| ids.contains(id)));
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn device_vanishes_and_comes_back_on_the_same_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StmSimConfig::new("STM-03");
    cfg.link_path = Some(dir.path().join("stm-03"));
    let sim = StmSim::spawn(cfg).unwrap();
    let options = LinkOptions {
        backoff_initial: Duration::from_millis(100),
        ..LinkOptions::default()
    };
    let cancel = CancellationToken::new();
    let (link, mut events, task) = StmLink::spawn(sim.path(), options, cancel.clone());
    wait_for(&mut events, "hello", |e| matches!(e, LinkEvent::Hello(_))).await;

    sim.vanish();
    wait_for(&mut events, "down", |e| matches!(e, LinkEvent::Down(_))).await;
    let r = link.send_command(ops::SIGN_IN, json!({}), T).await;
    assert_eq!(r, Err(CommandError::NotConnected));
    tokio::time::sleep(Duration::from_millis(300)).await;
    sim.come_back();
    wait_for(&mut events, "reconnected", |e| *e == LinkEvent::Connected).await;
    wait_for(&mut events, "hello again", |e| {
        matches!(e, LinkEvent::Hello(_))
    })
    .await;
    let r = link.send_command(ops::SIGN_IN, json!({}), T).await.unwrap();
    assert!(r.ok);
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn silent_device_goes_offline_and_back_online() {
    let mut cfg = StmSimConfig::new("STM-04");
    cfg.heartbeat_interval = Duration::from_millis(100);
    let sim = StmSim::spawn(cfg).unwrap();
    let options = LinkOptions {
        offline_after: Duration::from_millis(600),
        ..LinkOptions::default()
    };
    let cancel = CancellationToken::new();
    let (_link, mut events, task) = StmLink::spawn(sim.path(), options, cancel.clone());
    wait_for(&mut events, "online", |e| *e == LinkEvent::Online).await;
    wait_for(&mut events, "heartbeat", |e| {
        matches!(e, LinkEvent::Heartbeat(_))
    })
    .await;
    sim.go_silent(true);
    wait_for(&mut events, "offline", |e| *e == LinkEvent::Offline).await;
    sim.go_silent(false);
    wait_for(&mut events, "online again", |e| *e == LinkEvent::Online).await;
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn device_restart_says_hello_again() {
    let sim = StmSim::spawn(StmSimConfig::new("STM-05")).unwrap();
    let cancel = CancellationToken::new();
    let (link, mut events, task) =
        StmLink::spawn(sim.path(), LinkOptions::default(), cancel.clone());
    wait_for(&mut events, "hello", |e| matches!(e, LinkEvent::Hello(_))).await;
    link.send_command(ops::SIGN_IN, json!({}), T).await.unwrap();
    let r = link.send_command(ops::RESTART, json!({}), T).await.unwrap();
    assert!(r.ok);
    wait_for(&mut events, "hello after restart", |e| {
        matches!(e, LinkEvent::Hello(_))
    })
    .await;
    wait_for(
        &mut events,
        "signed out",
        |e| matches!(e, LinkEvent::Status(s) if s.state == DeviceState::SignedOut),
    )
    .await;
    cancel.cancel();
    task.await.unwrap();
}
