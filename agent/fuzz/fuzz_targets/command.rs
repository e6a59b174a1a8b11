//! Arbitrary payloads on `<prefix>/cmd` into the head-office command reader
//! (`sync::commands::check`: the envelope, its age and every kind's `data` reader, as
//! `handle` runs them before anything changes), against the demo branch's config with
//! its devices. It must never panic; a command it accepts must be a JSON object with
//! exactly the envelope's keys, `v` 1, the id and kind it reports and an RFC 3339 `ts`;
//! a refusal must give a reason, and the id it names must be the envelope's.
#![no_main]

use std::sync::LazyLock;

use branchd::config::{Config, DEMO_CONFIG};
use branchd::sync::commands::check;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

static CFG: LazyLock<Config> = LazyLock::new(|| {
    let devices = "\n[[devices]]\nid = \"STM-01\"\nkind = \"stm\"\npath = \"/dev/null\"\n\
                   \n[[devices]]\nid = \"PRN-01\"\nkind = \"printer\"\npath = \"/dev/null\"\n";
    Config::parse(&format!("{DEMO_CONFIG}{devices}")).expect("the demo config is valid")
});

static NOW: LazyLock<chrono::DateTime<chrono::Utc>> =
    LazyLock::new(|| branchd::clock::parse("2026-11-23T10:00:00+08:00").expect("a time"));

fuzz_target!(|data: &[u8]| {
    let envelope = serde_json::from_slice::<Value>(data).ok();
    let field = |k: &str| envelope.as_ref().and_then(|v| v.get(k)).cloned();
    match check(data, &CFG, *NOW) {
        Ok((id, kind)) => {
            let env = envelope
                .as_ref()
                .and_then(Value::as_object)
                .expect("an accepted command is a JSON object");
            assert!(
                env.keys()
                    .all(|k| ["v", "id", "ts", "kind", "data"].contains(&k.as_str()))
            );
            assert_eq!(env.get("v"), Some(&json!(1)));
            assert!(!id.is_empty() && id.len() <= 128);
            assert_eq!(field("id"), Some(json!(id)));
            assert_eq!(field("kind"), Some(json!(kind)));
            let ts = field("ts").expect("an accepted command has a `ts`");
            assert!(branchd::clock::parse(ts.as_str().expect("`ts` is text")).is_some());
            assert!(matches!(
                field("data"),
                None | Some(Value::Null | Value::Object(_))
            ));
        }
        Err((id, reason)) => {
            assert!(!reason.is_empty(), "a refusal without a reason");
            if let Some(id) = id {
                assert_eq!(field("id"), Some(json!(id)), "the refusal names another id");
            }
        }
    }
});
