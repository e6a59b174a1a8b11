//! The head-office link against a real Mosquitto started by each test on a free port:
//! store-and-forward across broker and daemon crashes, birth and Will, commands handled
//! exactly once, and mutual TLS.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use branchd::app;
use branchd::config::Config;
use branchd::store::StoreError;
use rumqttc::QoS;
use serde_json::{Value, json};

use crate::common::config_text;
use crate::mqtt::{BRANCH, Broker, subscriber};

fn mqtt_table(port: u16) -> String {
    format!(
        "\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nkeep_alive_s = 5\ntelemetry_interval_s = 1\nmax_inflight = 50\n"
    )
}

fn config_for(dir: &Path, mqtt: &str) -> Config {
    Config::parse(&config_text(dir, mqtt)).expect("test config")
}

/// Commit `n` events offline, straight into the database (the daemon is not running).
fn commit_offline(db: &Path, n: usize) -> u64 {
    let store = branchd::app::open_store(db).unwrap();
    let mut last = 0;
    for chunk in 0..n.div_ceil(500) {
        let k = 500.min(n - chunk * 500);
        last = store
            .write_blocking(move |tx| -> Result<u64, StoreError> {
                let mut s = 0;
                for i in 0..k {
                    s = tx.emit("test.backlog", json!({"i": i}))?;
                }
                Ok(s)
            })
            .unwrap();
    }
    store.close();
    last
}

/// Every seq from 1 to `last` arrived, first arrivals in order; returns the duplicates.
fn check_complete(seqs: &[u64], last: u64) -> usize {
    let mut first = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for s in seqs {
        if seen.insert(*s) {
            first.push(*s);
        }
    }
    let expected: Vec<u64> = (1..=last).collect();
    assert_eq!(first.len() as u64, last, "distinct events seen");
    assert_eq!(first, expected, "first arrivals in seq order, none missing");
    seqs.len() - first.len()
}

fn sessions(states: &[Value]) -> Vec<(bool, u64)> {
    states
        .iter()
        .map(|v| {
            (
                v["online"].as_bool().unwrap(),
                v["session"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_arrives_in_order_across_broker_restart_and_daemon_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), "");
    let (seen, _sub) = subscriber(broker.port, None);
    seen.subscribed().await;

    // Phase 1: the daemon in-process under continuous load; the broker goes away and back.
    let data = dir.path().join("data");
    let cfg = config_for(&data, &mqtt_table(broker.port));
    let db = cfg.db_path();
    let running = app::start(cfg).await.unwrap();
    let store = running.core.store.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                store
                    .write(move |tx| tx.emit("test.load", json!({"n": n})))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    seen.wait_for("events before the outage", 20, |s| s.events().len() >= 100)
        .await;
    broker.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    broker.restart();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    let last1 = *store.committed().borrow();
    seen.wait_for("every event of phase 1", 30, |s| {
        s.events().iter().max().copied() >= Some(last1)
    })
    .await;
    assert!(
        running.shutdown(Duration::from_secs(5)).await,
        "tasks drained"
    );

    // Phase 2: a real daemon process with a backlog, SIGKILLed mid-publish, restarted.
    let backlog = commit_offline(&db, 30_000);
    let conf = dir.path().join("branchd.toml");
    std::fs::write(&conf, config_text(&data, &mqtt_table(broker.port))).unwrap();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_branchd"))
            .arg("run")
            .arg("--config")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = spawn();
    seen.wait_for("the backlog flowing", 30, |s| {
        s.events().iter().max().copied() > Some(last1 + 1000)
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let depth = branchd::app::open_store(&db)
        .and_then(|s| {
            let d = s.read_blocking(branchd::store::outbox_depth);
            s.close();
            d
        })
        .unwrap();
    assert!(depth > 0, "killed mid-publish: events still unacknowledged");
    seen.wait_for("the Will", 10, |s| {
        s.on("/state").iter().any(|v| v["online"] == json!(false))
    })
    .await;
    let last = commit_offline(&db, 1_000);
    assert_eq!(last, backlog + 1_000);
    let mut child = spawn();
    seen.wait_for("every event", 60, |s| {
        s.events().iter().max().copied() >= Some(last)
    })
    .await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success(), "clean exit on SIGTERM");
    seen.wait_for("the goodbye", 10, |s| {
        sessions(&s.on("/state"))
            .last()
            .is_some_and(|(online, _)| !online)
    })
    .await;

    let dups = check_complete(&seen.events(), last);
    assert!(dups < last as usize, "duplicates are bounded ({dups})");
    // Every connection takes a new session number, attempts that never connected too: at
    // least two births in process (the broker restart) and one per process; the killed
    // process's session ends with its Will, the stopped one's with its goodbye.
    let states = sessions(&seen.on("/state"));
    let births: Vec<u64> = states.iter().filter(|s| s.0).map(|s| s.1).collect();
    assert!(births.len() >= 4, "births and deaths seen: {states:?}");
    assert!(
        births.windows(2).all(|w| w[1] > w[0]),
        "a new number for every connection: {births:?}"
    );
    for b in &births[births.len() - 2..] {
        let born = states.iter().position(|s| *s == (true, *b)).unwrap();
        assert!(
            states[born..].contains(&(false, *b)),
            "session {b} ends with its Will or goodbye: {states:?}"
        );
    }
    let telemetry = seen.on("/telemetry");
    assert!(
        telemetry
            .iter()
            .any(|t| t["outbox_depth"].is_u64() && t["rss_bytes"].as_u64() > Some(0)),
        "telemetry with outbox depth and RSS"
    );
}

fn cmd(id: &str, kind: &str, data: Value) -> String {
    json!({"v": 1, "id": id, "ts": chrono::Utc::now().to_rfc3339(), "kind": kind, "data": data})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_handled_once_and_refusals_keep_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), "");
    let (seen, hq) = subscriber(broker.port, None);
    seen.subscribed().await;
    let extra = format!(
        "{}\n[[services]]\ncode = \"personal\"\nprefix = \"A\"\nname = \"个人业务\"\n",
        mqtt_table(broker.port)
    );
    let running = app::start(config_for(&dir.path().join("data"), &extra))
        .await
        .unwrap();
    seen.wait_for("the birth", 10, |s| !s.on("/state").is_empty())
        .await;
    let topic = format!("bank/{BRANCH}/cmd");
    let upsert = cmd(
        "c-1",
        "vip.upsert",
        json!({"customer_id": "C100", "name": "王先生", "level": "gold", "tags": ["birthday"],
               "relationship_manager": "RM-7", "consent": true, "embedding": vec![0.25; 256],
               "model_id": "face_reidentification_retail_0095"}),
    );
    let sends: Vec<Vec<u8>> = vec![
        upsert.clone().into_bytes(),
        upsert.into_bytes(),
        b"{not json".to_vec(),
        cmd("c-2", "teleport", json!({})).into_bytes(),
        cmd("c-3", "vip.upsert", json!({"name": "x", "consent": "yes"})).into_bytes(),
        cmd(
            "c-4",
            "config.update",
            json!({"services": {"personal": {"target_wait_min": 12}}}),
        )
        .into_bytes(),
        cmd("c-5", "order.create", json!({})).into_bytes(),
        cmd("c-6", "rebirth", json!({})).into_bytes(),
        cmd(
            "c-8",
            "vip.upsert",
            json!({"customer_id": "C101", "name": "李女士", "level": "gold", "consent": true,
                   "embedding": vec![0.25; 512], "model_id": "arcface-r100"}),
        )
        .into_bytes(),
        // Over the 8 MiB a command may have: refused and acknowledged, not a dropped link.
        cmd(
            "c-9",
            "vip.upsert",
            json!({"customer_id": "C102", "photo": "A".repeat(9 << 20)}),
        )
        .into_bytes(),
        {
            let mut other: Value =
                serde_json::from_str(&cmd("c-10", "rebirth", json!({}))).unwrap();
            other["branch"] = json!("SH0202");
            other.to_string().into_bytes()
        },
    ];
    for p in sends {
        hq.publish(&topic, QoS::AtLeastOnce, false, p)
            .await
            .unwrap();
    }
    seen.wait_for("eleven acks", 30, |s| s.on("/events/ack").len() >= 11)
        .await;
    let acks: Vec<Value> = seen
        .on("/events/ack")
        .iter()
        .map(|e| e["data"].clone())
        .collect();
    let by_ref =
        |r: Value| -> Vec<Value> { acks.iter().filter(|a| a["ref"] == r).cloned().collect() };
    assert_eq!(
        by_ref(json!("c-1")),
        vec![json!({"ref":"c-1","ok":true}); 2],
        "acked twice"
    );
    let reason = |r: Value| {
        by_ref(r)[0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(reason(Value::Null).contains("malformed JSON"));
    assert!(reason(json!("c-2")).contains("unknown command kind `teleport`"));
    let invalid = reason(json!("c-3"));
    assert!(
        invalid.contains("`customer_id` is required")
            && invalid.contains("`consent` must be true or false"),
        "{invalid}"
    );
    assert!(reason(json!("c-5")).contains("`order_id` is required"));
    assert_eq!(by_ref(json!("c-8"))[0]["ok"], json!(false));
    assert!(
        reason(json!("c-8")).contains(
            "`model_id` `arcface-r100` does not match this branch's face embedder `face_reidentification_retail_0095`"
        ),
        "{}",
        reason(json!("c-8"))
    );
    assert_eq!(by_ref(json!("c-4"))[0]["ok"], json!(true));
    assert_eq!(by_ref(json!("c-6"))[0]["ok"], json!(true));
    assert!(
        reason(json!("c-9")).starts_with("the command is too large ("),
        "{}",
        reason(json!("c-9"))
    );
    assert!(reason(json!("c-10")).contains("for branch `SH0202`"));
    let births = seen.on("/state");
    assert!(
        births.iter().all(|b| b["session"] == json!(1)),
        "one session throughout: no command dropped the link: {births:?}"
    );

    // State changed once: one record, one change event, no biometrics upstream.
    let app = &running.core;
    let (vips, upserts, overrides) = app
        .store
        .read(|c| -> Result<(i64, i64, Value), StoreError> {
            let q = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
            Ok((
                q("SELECT count(*) FROM vips")?,
                q("SELECT count(*) FROM events WHERE kind = 'vip.upserted'")?,
                branchd::sync::commands::overrides_json(c)?,
            ))
        })
        .await
        .unwrap();
    assert_eq!((vips, upserts), (1, 1));
    assert_eq!(overrides, json!({"personal": {"target_wait_min": 12}}));
    let vip = app
        .store
        .read(|c| branchd::vips::get(c, "C100"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        vip.model_id.as_deref(),
        Some("face_reidentification_retail_0095")
    );
    let upstream = seen.on("/events/vip/upserted");
    assert!(
        upstream.iter().all(|e| !e.to_string().contains("0.25")),
        "no embedding upstream"
    );

    // Rebirth: state and a full snapshot again.
    seen.wait_for("the rebirth", 10, |s| {
        s.on("/state").len() >= 2
            && s.on("/telemetry")
                .iter()
                .any(|t| t["snapshot"] == json!(true))
    })
    .await;

    // The console: `branchd hq send` waits for the ack and says it.
    let file = dir.path().join("cmd.json");
    std::fs::write(
        &file,
        cmd("c-7", "vip.delete", json!({"customer_id": "C100"})),
    )
    .unwrap();
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_branchd"))
        .args([
            "hq",
            "send",
            "--url",
            &url,
            "--branch",
            BRANCH,
            "--timeout",
            "20",
        ])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ack: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ack["data"], json!({"ref": "c-7", "ok": true}));
    assert!(running.shutdown(Duration::from_secs(5)).await);
}

fn openssl(dir: &Path, args: &[&str]) {
    let st = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "openssl {args:?}");
}

/// A test CA, a server certificate for 127.0.0.1 and a client certificate.
fn make_pki(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=test-ca",
                "-days",
                "2",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, cn) in [("server", "127.0.0.1"), ("client", "branchd-T001")] {
        let subj = format!("/CN={cn}");
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        openssl(
            dir,
            &[
                &["req"][..],
                &ec,
                &["-keyout", &key, "-out", &csr, "-subj", &subj],
            ]
            .concat(),
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_link_delivers_events() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_pki(&pki);
    let p = |f: &str| pki.join(f).display().to_string();
    let broker = Broker::start(
        dir.path(),
        &format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            p("ca.pem"),
            p("server.pem"),
            p("server.key")
        ),
    );
    let tls = branchd::tls::client_config(
        Some(&pki.join("ca.pem")),
        Some(&pki.join("client.pem")),
        Some(&pki.join("client.key")),
    )
    .unwrap();
    let (seen, _sub) = subscriber(broker.port, Some(tls));
    seen.subscribed().await;
    let extra = format!(
        "\n[mqtt]\nurl = \"mqtts://127.0.0.1:{}\"\nca_file = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
        broker.port,
        p("ca.pem"),
        p("client.pem"),
        p("client.key")
    );
    let running = app::start(config_for(&dir.path().join("data"), &extra))
        .await
        .unwrap();
    running
        .core
        .store
        .write(|tx| tx.emit("test.tls", json!({})))
        .await
        .unwrap();
    seen.wait_for("the event over mutual TLS", 20, |s| s.events() == vec![1])
        .await;
    let births = seen.on("/state");
    assert_eq!(births[0]["online"], json!(true));
    assert_eq!(births[0]["session"], json!(1));
    assert!(running.shutdown(Duration::from_secs(5)).await);
}

/// A box linked to head office's broker, with one simulated STM (`STM-01`) online.
struct StmBox {
    _dir: tempfile::TempDir,
    _broker: Broker,
    seen: crate::mqtt::Seen,
    hq: rumqttc::AsyncClient,
    sim: branchd_drivers::stm::StmSim,
    running: app::Running,
}

impl StmBox {
    /// `seed` for the simulator; the box waits `command_timeout_s` for an STM's answer.
    async fn start(seed: u64, command_timeout_s: u64) -> StmBox {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(dir.path(), "");
        let (seen, hq) = subscriber(broker.port, None);
        seen.subscribed().await;
        let (sim, link) = crate::devices::stm_sim(&dir, "STM-01", seed);
        let extra = format!(
            "{}{}\n[stm]\ncommand_timeout_s = {command_timeout_s}\n",
            mqtt_table(broker.port),
            crate::devices::stm_table("STM-01", &link)
        );
        let running = app::start(config_for(&dir.path().join("data"), &extra))
            .await
            .unwrap();
        seen.wait_for("STM-01 online", 15, |s| {
            !s.on("/events/device/online").is_empty()
        })
        .await;
        StmBox {
            _dir: dir,
            _broker: broker,
            seen,
            hq,
            sim,
            running,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_command_from_head_office_reaches_the_stm_once_and_its_answer_is_acked() {
    let StmBox {
        _dir,
        _broker,
        seen,
        hq,
        sim,
        running,
    } = StmBox::start(11, 2).await;

    let topic = format!("bank/{BRANCH}/cmd");
    let pause = cmd(
        "d-1",
        "device.command",
        json!({"device": "STM-01", "op": "pause"}),
    );
    let sends = [
        pause.clone(),
        // The broker redelivers: answered again from the record, not sent again.
        pause,
        cmd(
            "d-2",
            "device.command",
            json!({"device": "STM-01", "op": "module_disable", "args": {"module": "teleporter"}}),
        ),
        cmd(
            "d-3",
            "device.command",
            json!({"device": "STM-99", "op": "pause"}),
        ),
    ];
    for (i, p) in sends.into_iter().enumerate() {
        hq.publish(&topic, QoS::AtLeastOnce, false, p.into_bytes())
            .await
            .unwrap();
        // In order: the second d-1 must find the first one recorded.
        seen.wait_for("its ack", 20, |s| s.on("/events/ack").len() > i)
            .await;
    }
    seen.wait_for("four acks", 20, |s| s.on("/events/ack").len() >= 4)
        .await;
    let acks: Vec<Value> = seen
        .on("/events/ack")
        .iter()
        .map(|e| e["data"].clone())
        .collect();
    let by_ref =
        |r: &str| -> Vec<Value> { acks.iter().filter(|a| a["ref"] == r).cloned().collect() };
    assert_eq!(by_ref("d-1"), vec![json!({"ref": "d-1", "ok": true}); 2]);
    let refused = &by_ref("d-2")[0];
    assert_eq!(refused["ok"], false);
    let why = refused["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("STM-01 refused `module_disable`")
            && why.contains("unknown module teleporter"),
        "{why}"
    );
    let unknown = &by_ref("d-3")[0];
    assert_eq!(unknown["ok"], false);
    assert!(
        unknown["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no device `STM-99`"),
        "{unknown}"
    );

    // The device saw each command once; the state it reported reached the database.
    let ops: Vec<String> = sim.record().ops().into_iter().map(String::from).collect();
    assert_eq!(
        ops.iter().filter(|o| *o == "pause").count(),
        1,
        "sent once: {ops:?}"
    );
    assert_eq!(
        ops.iter().filter(|o| *o == "module_disable").count(),
        1,
        "{ops:?}"
    );
    // Audited under head office's command id, and announced upstream.
    let audited = running
        .core
        .store
        .read(|c| -> Result<Vec<(String, String)>, StoreError> {
            let mut s = c.prepare(
                "SELECT actor, detail FROM audit WHERE action = 'device.command' ORDER BY id",
            )?;
            let rows = s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
        .unwrap();
    let actors: Vec<&str> = audited.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actors, ["hq:d-1", "hq:d-2"]);
    assert!(audited[0].1.contains("\"ok\":true"), "{}", audited[0].1);
    seen.wait_for("device.command events upstream", 10, |s| {
        s.on("/events/device/command").len() >= 2
    })
    .await;
    let upstream = seen.on("/events/device/command");
    assert_eq!(upstream[0]["data"]["by"], "hq:d-1");
    assert_eq!(upstream[0]["data"]["op"], "pause");
    assert!(running.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_device_command_stalls_neither_the_outbox_nor_telemetry() {
    let StmBox {
        _dir,
        _broker,
        seen,
        hq,
        sim,
        running,
    } = StmBox::start(12, 15).await;
    // The STM stops answering: head office's command waits for its RESULT.
    sim.go_silent(true);
    hq.publish(
        format!("bank/{BRANCH}/cmd"),
        QoS::AtLeastOnce,
        false,
        cmd(
            "s-1",
            "device.command",
            json!({"device": "STM-01", "op": "pause"}),
        ),
    )
    .await
    .unwrap();
    let store = running.core.store.clone();
    let sending = || {
        let store = store.clone();
        async move {
            store
                .read(|c| branchd::store::meta_get(c, "sync.sending.s-1"))
                .await
                .unwrap()
                .is_some()
        }
    };
    crate::common::wait_until("the command being sent", 10, &sending).await;
    let telemetry_before = seen.on("/telemetry").len();
    running
        .core
        .store
        .write(|tx| tx.emit("test.during", json!({"n": 1})))
        .await
        .unwrap();
    seen.wait_for(
        "the event and more telemetry, while the command waits",
        5,
        |s| {
            !s.on("/events/test/during").is_empty()
                && s.on("/telemetry").len() > telemetry_before + 1
        },
    )
    .await;
    assert!(
        sending().await,
        "the command was still waiting for the STM when the event and telemetry went out"
    );
    assert!(
        seen.on("/events/ack").is_empty(),
        "its answer is not in yet"
    );
    // It ends in its own time, answered once.
    seen.wait_for("the command's ack", 30, |s| !s.on("/events/ack").is_empty())
        .await;
    let ack = &seen.on("/events/ack")[0]["data"];
    assert_eq!(ack["ref"], "s-1");
    assert_eq!(ack["ok"], false, "{ack}");
    assert!(running.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_notifications_about_customers_and_their_acknowledgements_reach_head_office_only_as_markers_in_a_gap_free_sequence()
 {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), "");
    let (seen, _hq) = subscriber(broker.port, None);
    seen.subscribed().await;
    let running = app::start(config_for(
        &dir.path().join("data"),
        &mqtt_table(broker.port),
    ))
    .await
    .unwrap();
    let raise = |kind: &'static str, data: Value| {
        let store = running.core.store.clone();
        async move {
            store
                .write(move |tx| {
                    branchd::alerts::raise(
                        tx,
                        &branchd::alerts::NewAlert {
                            kind,
                            level: branchd::alerts::Level::Info,
                            source: Some("entrance"),
                            key: None,
                            message: kind,
                            data,
                        },
                    )
                })
                .await
                .unwrap()
                .unwrap()
        }
    };
    let vip = raise(
        "vip.arrived",
        json!({"arrival_id": 7, "customer_id": "C-ROSE", "level": "gold", "camera": "entrance",
               "notify": {"users": ["rm-li"]}}),
    )
    .await;
    let offline = raise("device.offline", json!({"device_id": "STM-01"})).await;
    // A member of staff acknowledges both: who acknowledged a customer's alert stays here too.
    for id in [vip, offline] {
        running
            .core
            .store
            .write(move |tx| branchd::alerts::ack(tx, id, "lobby-wang"))
            .await
            .unwrap();
    }
    seen.wait_for("both alerts' events and their acknowledgements", 15, |s| {
        s.on("/events/local").len() == 2 && s.on("/events/alert/acked").len() == 1
    })
    .await;
    let acked = seen.on("/events/alert/acked");
    assert_eq!(acked[0]["data"]["kind"], "device.offline");
    assert_eq!(acked[0]["data"]["by"], "lobby-wang");
    let marker = &seen.on("/events/local")[0];
    assert_eq!(marker["kind"], "local");
    assert_eq!(marker["data"], json!({}));
    assert!(marker["seq"].is_u64() && marker["id"].is_string());
    let everything = seen.all_text();
    assert!(
        !everything.contains("C-ROSE") && !everything.contains("rm-li"),
        "nothing of the customer's alert reached head office"
    );
    let raised = seen.on("/events/alert/raised");
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0]["data"]["kind"], "device.offline");
    let mut seqs = seen.events();
    seqs.sort_unstable();
    let last = *seqs.last().unwrap();
    assert_eq!(check_complete(&seqs, last), 0, "no gap: {seqs:?}");
    assert!(running.shutdown(Duration::from_secs(5)).await);
}

/// The open `sync.refused` alert's data, if one is open.
async fn refused_alert(b: &crate::common::TestBox) -> Option<Value> {
    b.core()
        .store
        .read(|c| -> Result<Option<String>, StoreError> {
            use rusqlite::OptionalExtension;
            Ok(c.query_row(
                "SELECT data FROM alerts WHERE key = 'sync.refused' AND cleared_at IS NULL",
                [],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
        .unwrap()
        .map(|d| serde_json::from_str(&d).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_refuses_an_event_gets_back_off_and_an_alert_and_loses_nothing() {
    use crate::common::{TestBox, wait_until};
    let dir = tempfile::tempdir().unwrap();
    // Mosquitto drops a client that sends a packet over its limit, as a broker does with a
    // topic or a size it refuses.
    let mut broker = Broker::start(dir.path(), "max_packet_size 16384\n");
    let (seen, _hq) = subscriber(broker.port, None);
    seen.subscribed().await;
    let big = "x".repeat(64 * 1024);
    let b = TestBox::start_prepared(&mqtt_table(broker.port), move |store| {
        store
            .write_blocking(move |tx| -> Result<(), StoreError> {
                tx.emit("test.small", json!({"i": 1}))?;
                tx.emit("test.big", json!({"pad": big}))?;
                tx.emit("test.small", json!({"i": 2}))?;
                Ok(())
            })
            .unwrap();
    })
    .await;
    let metrics = &b.core().metrics;

    wait_until("the sync.refused alert", 30, || async {
        refused_alert(&b).await.is_some()
    })
    .await;
    let alert = refused_alert(&b).await.unwrap();
    assert_eq!(
        alert["topic"],
        json!(format!("bank/{BRANCH}/events/test/big"))
    );
    assert_eq!(alert["kind"], json!("test.big"));
    assert_eq!(alert["seq"], json!(2));
    assert_eq!(alert["attempts"], json!(3));
    assert!(!alert["reason"].as_str().unwrap().is_empty(), "{alert}");
    // No hot loop: the back-off kept growing across the refused connections instead of
    // starting again from one second after each of them.
    wait_until("the back-off to grow", 10, || async {
        metrics.mqtt_backoff_ms.get() >= 4000
    })
    .await;
    // Nothing is lost or skipped: the refused event and everything after it wait.
    let delivered: std::collections::BTreeSet<u64> = seen.events().into_iter().collect();
    assert_eq!(
        delivered,
        [1].into(),
        "only the event before the refused one (at least once)"
    );
    assert!(
        seen.on("/events/test/small")
            .iter()
            .all(|e| e["seq"] == json!(1)),
        "nothing after the refused event went out of order"
    );
    let depth = b
        .core()
        .store
        .read(branchd::store::outbox_depth)
        .await
        .unwrap();
    assert!(
        depth >= 2,
        "the refused event and its successor stay in the outbox: {depth}"
    );

    // Head office raises the limit: everything arrives in order and the alert clears.
    broker.stop();
    let conf = dir.path().join("mosquitto.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace("max_packet_size 16384", "max_packet_size 1048576"),
    )
    .unwrap();
    broker.restart();
    let last = *b.core().store.committed().borrow();
    seen.wait_for("every event after the refusal", 40, |s| {
        s.events().iter().any(|seq| *seq >= last)
    })
    .await;
    let upto: Vec<u64> = seen.events().into_iter().filter(|s| *s <= last).collect();
    check_complete(&upto, last);
    wait_until("the alert cleared", 10, || async {
        refused_alert(&b).await.is_none()
    })
    .await;
    assert!(metrics.mqtt_connects.get() >= 4);
    b.stop().await;
}

/// Head office orders a branch's states by session, and within one session the Will wins.
/// A box killed after its CONNECT but before it stored the session number would otherwise
/// come back with the same number, and the Will of its killed connection would keep it
/// offline at head office for good: the number is stored before the CONNECT goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_number_is_stored_before_its_connect_never_used_twice_and_given_back_when_refused()
 {
    // A "broker" that takes the connection and never answers it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in silent.incoming().take(2) {
            conns.push(c);
        }
        std::thread::sleep(Duration::from_secs(30));
        drop(conns);
    });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stored = async |running: &app::Running| {
        running
            .core
            .store
            .read(branchd::sync::link::session)
            .await
            .unwrap()
    };
    let mut seen: Vec<u64> = Vec::new();
    for _ in 0..2 {
        let running = app::start(config_for(&data, &mqtt_table(port)))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let before = seen.last().copied().unwrap_or(0);
        let taken = loop {
            let n = stored(&running).await;
            if n > before {
                break n;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no session number was stored while the CONNECT waited for an answer"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        seen.push(taken);
        // Stopped before any CONNACK came.
        assert!(running.shutdown(Duration::from_secs(5)).await);
    }
    assert!(seen[1] > seen[0], "each start took a new number: {seen:?}");

    // Refused at TCP (the broker is down): no CONNECT went out, the number is given back.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = nobody.local_addr().unwrap().port();
    drop(nobody);
    let running = app::start(config_for(&data, &mqtt_table(closed)))
        .await
        .unwrap();
    // The back-off is set once an attempt has ended (and its number was given back).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while running.core.metrics.mqtt_backoff_ms.get() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no attempt ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        stored(&running).await,
        seen[1],
        "refused attempts leave the number where it was"
    );
    assert!(running.shutdown(Duration::from_secs(5)).await);
    drop(held);
}
