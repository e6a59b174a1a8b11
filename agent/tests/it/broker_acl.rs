//! The broker ACL head office is told to use (docs/head-office/mosquitto.acl) on a real
//! Mosquitto: a branch box works under it, and one branch can neither read another's
//! commands nor publish events under another's prefix; anonymous clients are refused.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, Event, Incoming, MqttOptions, QoS};
use serde_json::{Value, json};

use crate::common::{TestBox, wait_until};
use crate::mqtt::{BRANCH, Broker};

const ACL: &str = include_str!("../../../docs/head-office/mosquitto.acl");

fn passwords(dir: &Path, users: &[(&str, &str)]) -> std::path::PathBuf {
    let file = dir.join("passwords");
    for (i, (user, password)) in users.iter().enumerate() {
        let mut cmd = std::process::Command::new("mosquitto_passwd");
        if i == 0 {
            cmd.arg("-c");
        }
        let ok = cmd
            .arg("-b")
            .arg(&file)
            .args([user, password])
            .status()
            .expect("mosquitto_passwd");
        assert!(ok.success());
    }
    file
}

type Inbox = Arc<Mutex<Vec<(String, Value)>>>;

/// A client logged in as `user` (or anonymous) that subscribes to `filters`; what it
/// receives, and how its CONNACK answered.
fn client(
    port: u16,
    id: &str,
    login: Option<(&str, &str)>,
    filters: &[&str],
) -> (AsyncClient, Inbox, Arc<Mutex<Option<ConnectReturnCode>>>) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    if let Some((u, p)) = login {
        o.set_credentials(u, p);
    }
    let (c, mut el) = AsyncClient::new(o, 50);
    let inbox: Inbox = Arc::default();
    let code = Arc::new(Mutex::new(None));
    let (i2, k2, c2) = (inbox.clone(), code.clone(), c.clone());
    let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(a))) => {
                    *k2.lock().unwrap() = Some(a.code);
                    for f in &filters {
                        let _ = c2.try_subscribe(f, QoS::AtLeastOnce);
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    i2.lock().unwrap().push((p.topic.clone(), v));
                }
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(c)) => {
                    *k2.lock().unwrap() = Some(c);
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    (c, inbox, code)
}

fn topics(inbox: &Inbox) -> Vec<String> {
    inbox
        .lock()
        .unwrap()
        .iter()
        .map(|(t, _)| t.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_branch_is_confined_to_its_own_prefix_and_anonymous_clients_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pw = passwords(
        dir.path(),
        &[
            (BRANCH, "t001-secret"),
            ("T002", "t002-secret"),
            ("hq", "hq-secret"),
        ],
    );
    let acl = dir.path().join("acl");
    std::fs::write(&acl, ACL).unwrap();
    let broker = Broker::start(
        dir.path(),
        &format!(
            "allow_anonymous false\npassword_file {}\nacl_file {}\n",
            pw.display(),
            acl.display()
        ),
    );
    let (hq, seen, hq_code) = client(
        broker.port,
        "hq-test",
        Some(("hq", "hq-secret")),
        &["bank/#"],
    );
    let (t2, t2_inbox, t2_code) = client(
        broker.port,
        "branchd-T002",
        Some(("T002", "t002-secret")),
        &[&format!("bank/{BRANCH}/#"), "bank/+/cmd"],
    );
    let (_anon, _, anon_code) = client(broker.port, "anonymous", None, &["bank/#"]);
    wait_until("the logins answered", 10, || async {
        hq_code.lock().unwrap().is_some()
            && t2_code.lock().unwrap().is_some()
            && anon_code.lock().unwrap().is_some()
    })
    .await;
    assert_eq!(*hq_code.lock().unwrap(), Some(ConnectReturnCode::Success));
    assert_eq!(*t2_code.lock().unwrap(), Some(ConnectReturnCode::Success));
    assert_ne!(
        *anon_code.lock().unwrap(),
        Some(ConnectReturnCode::Success),
        "an anonymous client is refused"
    );
    tokio::time::sleep(Duration::from_millis(300)).await; // the subscriptions settle

    // The box, logged in as its branch id, works under the ACL.
    let secret = dir.path().join("mqtt-password");
    std::fs::write(&secret, "t001-secret\n").unwrap();
    let b = TestBox::start_with(&format!(
        "\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nkeep_alive_s = 5\nusername = \"{BRANCH}\"\npassword_file = \"{}\"\n",
        broker.port,
        secret.display()
    ))
    .await;
    let state = format!("bank/{BRANCH}/state");
    wait_until("the box's birth at head office", 20, || async {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(t, v)| *t == state && v["online"] == json!(true))
    })
    .await;
    let now = || chrono::Utc::now().to_rfc3339();
    let cmd = json!({"v":1,"id":"acl-1","ts":now(),"kind":"rebirth","data":{}});
    hq.publish(
        format!("bank/{BRANCH}/cmd"),
        QoS::AtLeastOnce,
        false,
        cmd.to_string(),
    )
    .await
    .unwrap();
    let ack = format!("bank/{BRANCH}/events/ack");
    wait_until("the command's ack at head office", 20, || async {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(t, v)| *t == ack && v["data"]["ref"] == json!("acl-1"))
    })
    .await;

    // Another branch forges an event under T001's prefix: head office never gets it.
    let forged = json!({"v":1,"seq":999999,"id":"forged","ts":now(),
                        "branch":BRANCH,"kind":"ticket.issued","data":{}});
    t2.publish(
        format!("bank/{BRANCH}/events/ticket/issued"),
        QoS::AtLeastOnce,
        false,
        forged.to_string(),
    )
    .await
    .unwrap();
    // And a message head office sends T001 after that, as a marker that delivery went on.
    let cmd2 = json!({"v":1,"id":"acl-2","ts":now(),"kind":"rebirth","data":{}});
    hq.publish(
        format!("bank/{BRANCH}/cmd"),
        QoS::AtLeastOnce,
        false,
        cmd2.to_string(),
    )
    .await
    .unwrap();
    wait_until("the second command's ack", 20, || async {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(t, v)| *t == ack && v["data"]["ref"] == json!("acl-2"))
    })
    .await;
    assert!(
        !seen
            .lock()
            .unwrap()
            .iter()
            .any(|(_, v)| v["id"] == json!("forged")),
        "a forged event reached head office"
    );
    let t2_saw = topics(&t2_inbox);
    assert!(
        t2_saw.is_empty(),
        "T002 read another branch's traffic: {t2_saw:?}"
    );
    b.stop().await;
}
