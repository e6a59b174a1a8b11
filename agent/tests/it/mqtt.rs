//! A real MQTT broker and a head-office subscriber for the tests that talk to head office.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, Transport};
use serde_json::{Value, json};

use crate::common::free_port;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// The branch of the test configs.
pub const BRANCH: &str = "T001";

/// A Mosquitto of our own, with persistence (so a subscriber's queued messages survive a
/// restart), killed on drop.
pub struct Broker {
    pub port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Broker {
    pub fn start(dir: &Path, extra: &str) -> Broker {
        let port = free_port();
        let data = dir.join("mosquitto");
        std::fs::create_dir_all(&data).unwrap();
        let conf = dir.join("mosquitto.conf");
        // Mosquitto started as root drops to its own user, who cannot read our temp files.
        let user = if std::os::unix::fs::MetadataExt::uid(&dir.metadata().unwrap()) == 0 {
            "user root\n"
        } else {
            ""
        };
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\nmax_queued_messages 0\nlog_dest file {}/log\n{user}{extra}",
                data.display(),
                data.display()
            ),
        )
        .unwrap();
        let mut b = Broker {
            port,
            conf,
            child: None,
        };
        b.restart();
        b
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("mosquitto did not listen on {}", self.port);
    }

    /// Stop it (SIGTERM: it saves its sessions, as a broker restarted by its operator does).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What a head-office subscriber on `bank/T001/#` (with a persistent session) received.
#[derive(Clone, Default)]
pub struct Seen(
    Arc<Mutex<Vec<(String, Value)>>>,
    Arc<std::sync::atomic::AtomicBool>,
);

impl Seen {
    /// Wait until the broker has confirmed the subscription.
    pub async fn subscribed(&self) {
        let flag = self.1.clone();
        self.wait_for("the head-office subscription", 10, move |_| {
            flag.load(std::sync::atomic::Ordering::SeqCst)
        })
        .await;
    }

    /// The `seq` of every event, in arrival order.
    pub fn events(&self) -> Vec<u64> {
        let v = self.0.lock().unwrap();
        v.iter()
            .filter(|(t, _)| t.contains("/events/"))
            .filter_map(|(_, v)| v["seq"].as_u64())
            .collect()
    }

    /// Every message on a topic ending so.
    pub fn on(&self, topic_end: &str) -> Vec<Value> {
        let v = self.0.lock().unwrap();
        v.iter()
            .filter(|(t, _)| t.ends_with(topic_end))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Wait until `cond` holds.
    pub async fn wait_for(&self, what: &str, secs: u64, cond: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !cond(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The kind of every event, in arrival order.
    pub fn kinds(&self) -> Vec<String> {
        let v = self.0.lock().unwrap();
        v.iter()
            .filter(|(t, _)| t.contains("/events/"))
            .filter_map(|(_, e)| e["kind"].as_str().map(String::from))
            .collect()
    }

    /// Wait for the branch's birth: its link is up and subscribed to commands.
    pub async fn wait_online(&self) {
        self.wait_for("the branch online", 10, |s| {
            s.on("/state").iter().any(|e| e["online"] == json!(true))
        })
        .await;
    }

    /// Wait for an event of `kind`.
    pub async fn wait_for_kind(&self, kind: &str) {
        self.wait_for(&format!("head office to see {kind}"), 10, |s| {
            s.kinds().iter().any(|k| k == kind)
        })
        .await;
    }

    /// Everything the branch published (not head office's own commands).
    pub fn all_text(&self) -> String {
        let v = self.0.lock().unwrap();
        v.iter()
            .filter(|(t, _)| !t.ends_with("/cmd"))
            .map(|(_, e)| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Subscribe as head office: what arrives, and the client (to publish commands).
pub fn subscriber(
    port: u16,
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
) -> (Seen, AsyncClient) {
    let mut o = MqttOptions::new(format!("hq-test-{port}"), "127.0.0.1", port);
    o.set_clean_session(false)
        .set_keep_alive(Duration::from_secs(5))
        // Head office may send (and, subscribed to the branch's whole prefix, read back)
        // commands up to the box's packet limit.
        .set_max_packet_size(32 << 20, 32 << 20);
    if let Some(cfg) = tls {
        o.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(cfg),
        ));
    }
    let (client, mut el) = AsyncClient::new(o, 100);
    let seen = Seen::default();
    let s = seen.clone();
    let c = client.clone();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    let _ = c.try_subscribe(format!("bank/{BRANCH}/#"), QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Incoming::SubAck(_))) => {
                    s.1.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    s.0.lock().unwrap().push((p.topic.clone(), v));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    (seen, client)
}
