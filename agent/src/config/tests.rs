use super::*;

const MINIMAL: &str = r#"
[branch]
id = "NJ0101"
name = "南京分行营业部"
data_dir = "/var/lib/branchd"

[http]
listen = "0.0.0.0:8443"
"#;

#[test]
fn the_fixed_keys_alone_make_a_valid_config() {
    let cfg = Config::parse(MINIMAL).expect("valid");
    assert_eq!(cfg.branch.id, "NJ0101");
    assert_eq!(cfg.http.listen.port(), 8443);
    // Customers' QR codes: the box's name on the network at the listen port by default.
    assert_eq!(cfg.http.public_url, "http://branchd.local:8443");
    assert!(cfg.mqtt.is_none());
    assert!(cfg.http.tls.is_none());
    assert_eq!(cfg.branch.utc_offset.local_minus_utc(), 8 * 3600);
}

#[test]
fn the_contract_example_is_valid() {
    let src = r#"
[branch]
id = "NJ0101"
name = "南京分行营业部"
data_dir = "/var/lib/branchd"

[http]
listen = "0.0.0.0:8443"

[mqtt]
url = "mqtts://hq.example.cn:8883"

[[devices]]
id = "STM-01"
kind = "stm"
path = "/dev/serial/by-id/usb-STM01"
baud = 115200

[[services]]
code = "personal"
prefix = "A"
name = "个人业务"

[[counters]]
id = "1"
services = ["personal"]

[[cameras]]
id = "entrance"
source = "rtsp://10.0.0.20/stream1"
"#;
    let cfg = Config::parse(src).expect("valid");
    let mqtt = cfg.mqtt.expect("mqtt");
    assert_eq!(
        (mqtt.tls, mqtt.host.as_str(), mqtt.port),
        (true, "hq.example.cn", 8883)
    );
    assert_eq!(mqtt.prefix, "bank/NJ0101");
    assert_eq!(cfg.devices[0].kind, DeviceKind::Stm);
    assert_eq!(cfg.counters[0].services, vec!["personal".to_string()]);
}

#[test]
fn the_shipped_configs_are_valid() {
    Config::parse(DEMO_CONFIG).expect("the embedded demo config must be valid");
    let example = include_str!("../../../systemd/branchd.example.toml");
    let cfg = Config::parse(example).expect("systemd/branchd.example.toml must be valid");
    assert_eq!(cfg.devices.len(), 4);
    // As shipped it names no file a fresh box cannot have (check-config passes on it); the
    // TLS lines wait, commented, for the certificates.
    assert!(cfg.http.tls.is_none() && cfg.mqtt.is_some());
    assert!(example.contains("# tls_cert = ") && example.contains("# client_cert = "));
}

#[test]
fn files_the_config_names_must_be_readable_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("present.pem");
    std::fs::write(&file, "x").unwrap();
    let cfg_path = dir.path().join("branchd.toml");
    let write = |http: &str, mqtt: &str| {
        let text = format!(
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n\
             [http]\nlisten = \"0.0.0.0:1\"\n{http}\n{mqtt}"
        );
        std::fs::write(&cfg_path, text).unwrap();
    };
    let present = file.display();
    let missing = dir.path().join("missing.pem");
    let missing = missing.display();
    let a_dir = dir.path().display();
    // (http lines, mqtt lines, keys named)
    let cases: Vec<(String, String, Vec<&str>)> = vec![
        (
            format!("tls_cert = \"{present}\"\ntls_key = \"{present}\""),
            format!(
                "[mqtt]\nurl = \"mqtts://h\"\npassword_file = \"{present}\"\nca_file = \"{present}\""
            ),
            vec![],
        ),
        (
            format!("tls_cert = \"{missing}\"\ntls_key = \"{a_dir}\""),
            String::new(),
            vec!["http.tls_cert", "http.tls_key"],
        ),
        (
            String::new(),
            format!(
                "[mqtt]\nurl = \"mqtts://h\"\npassword_file = \"{missing}\"\nca_file = \"{present}\"\n\
                 client_cert = \"{present}\"\nclient_key = \"{missing}\""
            ),
            vec!["mqtt.password_file", "mqtt.client_key"],
        ),
    ];
    for (http, mqtt, keys) in cases {
        write(&http, &mqtt);
        let named: Vec<String> = match Config::load(&cfg_path) {
            Ok(_) => vec![],
            Err(ConfigError::Invalid(problems)) => problems.into_iter().map(|p| p.key).collect(),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(named, keys, "{http} {mqtt}");
    }
}

/// Each case: text appended to (or replacing part of) a minimal config, the key that must
/// be named, a fragment of the message, and the line the problem must be reported on.
#[test]
fn bad_configs_name_the_key_and_the_line() {
    let cases: &[(&str, &str, &str, &str, usize)] = &[
        // (what, config, key, message fragment, line)
        (
            "missing branch id",
            "[branch]\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n",
            "branch.id",
            "missing required key",
            1,
        ),
        (
            "missing http table",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n",
            "http",
            "missing required key",
            0,
        ),
        (
            "wrong type",
            "[branch]\nid = 7\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n",
            "branch.id",
            "expected a string, found integer",
            2,
        ),
        (
            "unknown key",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\ncolour = \"red\"\n[http]\nlisten = \"0.0.0.0:1\"\n",
            "branch.colour",
            "unknown key",
            5,
        ),
        (
            "unknown table",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n[printer]\nx = 1\n",
            "printer",
            "unknown key",
            7,
        ),
        (
            "bad address",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"localhost\"\n",
            "http.listen",
            "is not an address",
            6,
        ),
        (
            "public url without a scheme",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\npublic_url = \"branch.example\"\n",
            "http.public_url",
            "must start with http:// or https://",
            7,
        ),
        (
            "public url with a query",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\npublic_url = \"http://b.example/?x=1\"\n",
            "http.public_url",
            "without a query",
            7,
        ),
        (
            "duplicate device id",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n\
             [[devices]]\nid = \"STM-01\"\nkind = \"stm\"\npath = \"/dev/a\"\n\
             [[devices]]\nid = \"STM-01\"\nkind = \"stm\"\npath = \"/dev/b\"\n",
            "devices[1].id",
            "duplicate device id `STM-01`",
            12,
        ),
        (
            "counter naming an unknown service",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n\
             [[services]]\ncode = \"personal\"\nprefix = \"A\"\nname = \"个人\"\n\
             [[counters]]\nid = \"1\"\nservices = [\"personal\", \"forex\"]\n",
            "counters[0].services",
            "unknown service `forex`",
            13,
        ),
        (
            "unknown device kind",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n\
             [[devices]]\nid = \"X\"\nkind = \"fax\"\npath = \"/dev/a\"\n",
            "devices[0].kind",
            "unknown kind `fax`",
            9,
        ),
        (
            "odd baud rate",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n\
             [[devices]]\nid = \"X\"\nkind = \"stm\"\npath = \"/dev/a\"\nbaud = 12345\n",
            "devices[0].baud",
            "not a standard baud rate",
            11,
        ),
        (
            "bad mqtt scheme",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n\
             [mqtt]\nurl = \"http://hq\"\n",
            "mqtt.url",
            "must start with mqtt:// or mqtts://",
            8,
        ),
        (
            "tls cert without key",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\ntls_cert = \"/c.pem\"\n",
            "http.tls_key",
            "tls_key is missing",
            0,
        ),
        (
            "branch id with a topic wildcard",
            "[branch]\nid = \"NJ/#\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n",
            "branch.id",
            "part of MQTT topics",
            2,
        ),
        (
            "duplicate ticket prefix",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n\
             [[services]]\ncode = \"a\"\nprefix = \"A\"\nname = \"甲\"\n\
             [[services]]\ncode = \"b\"\nprefix = \"A\"\nname = \"乙\"\n",
            "services[1].prefix",
            "duplicate ticket prefix `A`",
            13,
        ),
        (
            "counter serving nothing",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n\
             [[counters]]\nid = \"1\"\nservices = []\n",
            "counters[0].services",
            "at least one service",
            9,
        ),
        (
            "out of range",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n[daemon]\nshutdown_grace_s = 0\n",
            "daemon.shutdown_grace_s",
            "out of range",
            8,
        ),
        (
            "ocr queue out of range",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n[ocr]\nqueue = 0\n",
            "ocr.queue",
            "out of range",
            8,
        ),
        (
            "short id salt",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n[customers]\nid_salt = \"short\"\n",
            "customers.id_salt",
            "at least 16 characters",
            8,
        ),
        (
            "coupon key that is no key",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n[rights]\npublic_key = \"abcd\"\n",
            "rights.public_key",
            "64 hex digits",
            8,
        ),
        (
            "unknown key in customers",
            "[branch]\nid = \"A\"\nname = \"x\"\ndata_dir = \"/d\"\n[http]\nlisten = \"0.0.0.0:1\"\n[customers]\nmaturity = 3\n",
            "customers.maturity",
            "unknown key",
            8,
        ),
        (
            "not TOML at all",
            "[branch\nid = \"A\"\n",
            "",
            "not valid TOML",
            1,
        ),
    ];
    for (what, src, key, fragment, line) in cases {
        let problems = match Config::parse(src) {
            Ok(_) => panic!("{what}: accepted a bad config"),
            Err(p) => p,
        };
        let hit = problems
            .iter()
            .find(|p| p.key == *key && p.message.contains(fragment));
        let Some(hit) = hit else {
            panic!("{what}: no problem naming `{key}` with `{fragment}` in {problems:#?}");
        };
        if *line > 0 {
            assert_eq!(hit.line, Some(*line), "{what}: wrong line in {hit}");
        }
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let src = "[branch]\nid = 1\nname = 2\n[http]\nlisten = \"nowhere\"\nbogus = true\n";
    let problems = Config::parse(src).unwrap_err();
    let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "branch.id",
        "branch.name",
        "branch.data_dir",
        "http.listen",
        "http.bogus",
    ] {
        assert!(keys.contains(&key), "{key} not reported in {keys:?}");
    }
}

type UrlCase = (
    &'static str,
    Result<(bool, &'static str, u16), &'static str>,
);

#[test]
fn mqtt_urls() {
    let cases: &[UrlCase] = &[
        ("mqtt://127.0.0.1:1883", Ok((false, "127.0.0.1", 1883))),
        ("mqtts://hq.example.cn", Ok((true, "hq.example.cn", 8883))),
        ("mqtt://broker", Ok((false, "broker", 1883))),
        ("mqtt://[::1]:1884", Ok((false, "::1", 1884))),
        ("tcp://x", Err("must start with")),
        ("mqtt://", Err("must be mqtt[s]://host")),
        ("mqtt://user:pw@host", Err("credentials")),
        ("mqtt://host:99999", Err("bad port")),
    ];
    for (url, expect) in cases {
        let got = parse_mqtt_url(url);
        match (expect, &got) {
            (Ok((tls, host, port)), Ok(g)) => {
                assert_eq!((g.0, g.1.as_str(), g.2), (*tls, *host, *port), "{url}")
            }
            (Err(frag), Err(e)) => assert!(e.contains(frag), "{url}: {e}"),
            _ => panic!("{url}: expected {expect:?}, got {got:?}"),
        }
    }
}

#[test]
fn queue_rules_and_opening_hours_are_read_and_checked() {
    let services = "\n[[services]]\ncode = \"personal\"\nprefix = \"A\"\nname = \"个人业务\"\n";
    let cfg = Config::parse(MINIMAL).expect("valid");
    assert_eq!(cfg.queue.reset_hour, 4);
    assert_eq!(cfg.queue.fairness_after, 3);
    assert_eq!(cfg.queue.no_show_after_recalls, 2);
    let src = format!(
        "{MINIMAL}{services}hours = \"08:30-17:00\"\n\n[queue]\nreset_hour = 0\nfairness_after = 2\n\
         no_show_after_recalls = 1\nswipe_service = \"personal\"\nprinter_poll_ms = 250\n"
    );
    let cfg = Config::parse(&src).expect("valid");
    assert_eq!(
        cfg.services[0]
            .hours
            .map(|(a, b)| (a.to_string(), b.to_string())),
        Some(("08:30:00".into(), "17:00:00".into()))
    );
    assert_eq!(cfg.queue.reset_hour, 0);
    assert_eq!(cfg.queue.swipe_service.as_deref(), Some("personal"));
    assert_eq!(cfg.queue.printer_poll, Duration::from_millis(250));
    for (bad, key) in [
        (
            format!("{MINIMAL}{services}hours = \"17:00-08:30\"\n"),
            "services[0].hours",
        ),
        (
            format!("{MINIMAL}{services}hours = \"nine to five\"\n"),
            "services[0].hours",
        ),
        (
            format!("{MINIMAL}{services}\n[queue]\nreset_hour = 24\n"),
            "queue.reset_hour",
        ),
        (
            format!("{MINIMAL}{services}\n[queue]\nswipe_service = \"gold\"\n"),
            "queue.swipe_service",
        ),
        (
            format!("{MINIMAL}{services}\n[queue]\nfairness = 2\n"),
            "queue.fairness",
        ),
    ] {
        let problems = Config::parse(&bad).expect_err(&bad);
        assert!(
            problems.iter().any(|p| p.key == key),
            "{key} not named in {problems:?}"
        );
    }
}

#[test]
fn stm_and_id_reader_rules_have_defaults_and_are_checked() {
    let cfg = Config::parse(MINIMAL).expect("valid");
    assert_eq!(cfg.stm.command_timeout, Duration::from_secs(15));
    assert_eq!(cfg.stm.auth_timeout, Duration::from_secs(180));
    assert_eq!(cfg.stm.cassette_low_notes, 200);
    assert!(cfg.stm.consumables_low.contains(&("ukey".to_string(), 5)));
    assert!(!cfg.id_reader.keep_photo);
    assert_eq!(cfg.id_reader.poll_interval, Duration::from_millis(500));

    let src = format!(
        "{MINIMAL}\n[stm]\ncommand_timeout_s = 5\nauth_timeout_s = 60\n\
         [stm.consumables_low]\nukey = 9\n[id_reader]\nkeep_photo = true\npoll_ms = 200\n"
    );
    let cfg = Config::parse(&src).expect("valid");
    assert_eq!(cfg.stm.command_timeout, Duration::from_secs(5));
    assert_eq!(cfg.stm.auth_timeout, Duration::from_secs(60));
    assert!(cfg.stm.consumables_low.contains(&("ukey".to_string(), 9)));
    assert!(cfg.id_reader.keep_photo);

    for (extra, key, fragment) in [
        (
            "[stm]\nauth_timeout_s = 0\n",
            "stm.auth_timeout_s",
            "out of range",
        ),
        (
            "[stm.consumables_low]\nkeys = 3\n",
            "stm.consumables_low.keys",
            "unknown key",
        ),
        (
            "[id_reader]\nkeep_photo = \"yes\"\n",
            "id_reader.keep_photo",
            "true or false",
        ),
        (
            "[id_reader]\npoll_ms = 5\n",
            "id_reader.poll_ms",
            "out of range",
        ),
    ] {
        let problems = Config::parse(&format!("{MINIMAL}\n{extra}")).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.key == key && p.message.contains(fragment)),
            "{extra}: {problems:#?}"
        );
    }
}

#[test]
fn only_a_file_or_folder_camera_can_loop() {
    let cam = |source: &str, looped: bool| {
        format!("{MINIMAL}\n[[cameras]]\nid = \"door\"\nsource = \"{source}\"\nloop = {looped}\n")
    };
    let cfg = Config::parse(&cam("/srv/videos/door.avi", true)).expect("a looped file");
    assert!(cfg.cameras[0].looped);
    let cfg = Config::parse(&cam("rtsp://10.0.0.20/stream1", false)).expect("a stream");
    assert!(!cfg.cameras[0].looped);
    for live in ["rtsp://10.0.0.20/stream1", "/dev/video0"] {
        let problems = Config::parse(&cam(live, true)).expect_err(live);
        assert!(
            problems
                .iter()
                .any(|p| p.key == "cameras[0].loop" && p.message.contains("only a video file")),
            "{problems:?}"
        );
    }
}
