//! `software.update`: the daemon (unprivileged) reports installed and candidate versions
//! and writes a request; the one-shot script `scripts/branchd-update` (run by
//! branchd-update.service as root) installs the version and goes back to the previous one
//! when the new daemon does not become active. The script runs here against a fake apt,
//! dpkg-query and systemctl that keep the "installed" version in a file.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::common::{TestBox, wait_until};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/branchd-update")
}

/// A fake system in `dir`: `installed` holds the installed version; installing
/// `9.9.9-1` fails; a daemon of version `0.3.0-1` never becomes active. `calls` logs every
/// apt-get and systemctl call.
fn fake_system(dir: &Path, installed: &str) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(dir.join("installed"), installed).unwrap();
    let d = dir.display();
    let tools = [
        ("dpkg-query", format!("#!/bin/sh\ncat {d}/installed\n")),
        (
            "apt-get",
            format!(
                "#!/bin/sh\necho \"apt-get $*\" >>{d}/calls\n\
                 [ \"$1\" = update ] && exit 0\n\
                 for a; do last=$a; done\n\
                 v=${{last#*=}}\n\
                 [ \"$v\" = 9.9.9-1 ] && {{ echo 'E: Version not found' >&2; exit 100; }}\n\
                 printf '%s' \"$v\" >{d}/installed\n"
            ),
        ),
        (
            "systemctl",
            format!(
                "#!/bin/sh\necho \"systemctl $*\" >>{d}/calls\n\
                 [ \"$1\" = is-active ] || exit 0\n\
                 [ \"$(cat {d}/installed)\" != 0.3.0-1 ]\n"
            ),
        ),
        (
            "apt-cache",
            format!(
                "#!/bin/sh\n[ \"$1 $2\" = 'policy branchd' ] || exit 1\n\
                 printf 'branchd:\\n  Installed: %s\\n  Candidate: 0.2.0-1\\n  Version table:\\n' \"$(cat {d}/installed)\"\n"
            ),
        ),
    ];
    for (name, text) in tools {
        let p = bin.join(name);
        std::fs::write(&p, text).unwrap();
        let st = Command::new("chmod").arg("+x").arg(&p).status().unwrap();
        assert!(st.success());
    }
}

/// Run the one-shot script as branchd-update.service would, with the fakes.
fn run_script(system: &Path, software_dir: &Path) {
    let bin = system.join("bin");
    let out = Command::new("sh")
        .arg(script())
        .env("BRANCHD_SOFTWARE_DIR", software_dir)
        .env("APT_GET", bin.join("apt-get"))
        .env("DPKG_QUERY", bin.join("dpkg-query"))
        .env("SYSTEMCTL", bin.join("systemctl"))
        .env("BRANCHD_UPDATE_WAIT_S", "2")
        .env("BRANCHD_UPDATE_STABLE_S", "0")
        .env("BRANCHD_UPDATE_POLL_S", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the script exits 0 whatever happens: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn installs(system: &Path) -> Vec<String> {
    std::fs::read_to_string(system.join("calls"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("apt-get install"))
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
        .collect()
}

/// (requested, installed before, ok, code, installed after, apt-get installs)
type ScriptCase<'a> = (&'a str, &'a str, bool, &'a str, &'a str, &'a [&'a str]);

#[test]
fn the_one_shot_script_installs_rolls_back_or_reports_why_not() {
    let cases: &[ScriptCase] = &[
        (
            "0.2.0-1",
            "0.1.0-1",
            true,
            "installed",
            "0.2.0-1",
            &["branchd=0.2.0-1"],
        ),
        (
            "0.1.0-1",
            "0.1.0-1",
            true,
            "already_installed",
            "0.1.0-1",
            &[],
        ),
        (
            "0.3.0-1",
            "0.1.0-1",
            false,
            "rolled_back",
            "0.1.0-1",
            &["branchd=0.3.0-1", "branchd=0.1.0-1"],
        ),
        (
            "9.9.9-1",
            "0.1.0-1",
            false,
            "install_failed",
            "0.1.0-1",
            &["branchd=9.9.9-1"],
        ),
        (
            "0.3.0-1",
            "",
            false,
            "rollback_failed",
            "0.3.0-1",
            &["branchd=0.3.0-1"],
        ),
        ("1.0;reboot", "0.1.0-1", false, "bad_request", "", &[]),
    ];
    for (version, before, ok, code, after, apt) in cases {
        let sys = tempfile::tempdir().unwrap();
        fake_system(sys.path(), before);
        let sw = sys.path().join("software");
        std::fs::create_dir_all(&sw).unwrap();
        let request = json!({"command": "sw-1", "package": "branchd", "version": version});
        std::fs::write(sw.join("request.json"), request.to_string()).unwrap();
        run_script(sys.path(), &sw);
        let result: Value =
            serde_json::from_slice(&std::fs::read(sw.join("result.json")).unwrap()).unwrap();
        let what = format!("{version} over {before:?}: {result}");
        assert_eq!(result["ok"], json!(ok), "{what}");
        assert_eq!(result["code"], json!(code), "{what}");
        if !after.is_empty() {
            assert_eq!(result["installed"], json!(after), "{what}");
        }
        assert_eq!(result["request"], request, "{what}");
        assert_eq!(installs(sys.path()), *apt, "{what}");
        assert!(
            !sw.join("request.json").exists(),
            "{what}: the request is taken"
        );
        assert!(!sw.join("inflight.json").exists(), "{what}");
    }
    // No request, nothing to do.
    let sys = tempfile::tempdir().unwrap();
    fake_system(sys.path(), "0.1.0-1");
    run_script(sys.path(), &sys.path().join("software"));
    assert!(installs(sys.path()).is_empty());
}

async fn send(b: &TestBox, id: &str, data: Value) -> branchd::sync::commands::Outcome {
    let payload = json!({"v": 1, "id": id, "ts": chrono::Utc::now().to_rfc3339(), "kind": "software.update", "data": data});
    branchd::sync::commands::handle(&b.modules().sync, payload.to_string().as_bytes())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reports_versions_requests_an_update_and_reports_its_result() {
    let sys = tempfile::tempdir().unwrap();
    fake_system(sys.path(), "0.1.0-1");
    let sw = sys.path().join("software");
    let b = TestBox::start_with(&format!(
        "[updates]\napt_cache = \"{}\"\nsoftware_dir = \"{}\"\n",
        sys.path().join("bin/apt-cache").display(),
        sw.display()
    ))
    .await;
    // telemetry: installed and candidate, from apt-cache policy
    wait_until("the versions are read", 30, || async {
        let t = b
            .core()
            .store
            .read(branchd::updates::software::telemetry)
            .await
            .unwrap();
        t["installed"] == "0.1.0-1" && t["candidate"] == "0.2.0-1"
    })
    .await;

    let bad = send(&b, "sw-0", json!({"version": "latest"})).await;
    assert!(!bad.ok);
    assert!(bad.error.unwrap().contains("not a Debian package version"));
    assert!(!sw.join("request.json").exists());

    let ack = send(&b, "sw-1", json!({"version": "0.2.0-1"})).await;
    assert!(ack.ok, "{:?}", ack.error);
    let request: Value =
        serde_json::from_slice(&std::fs::read(sw.join("request.json")).unwrap()).unwrap();
    assert_eq!(
        request,
        json!({"command": "sw-1", "package": "branchd", "version": "0.2.0-1"})
    );
    let busy = send(&b, "sw-2", json!({"version": "0.2.0-1"})).await;
    assert!(!busy.ok, "one request at a time");
    assert!(busy.error.unwrap().contains("waiting to be installed"));

    // branchd-update.service runs; the daemon reports its result once
    run_script(sys.path(), &sw);
    wait_until("the result is reported", 30, || async {
        !crate::common::event_data(&b, "software.updated")
            .await
            .is_empty()
    })
    .await;
    let done: Value =
        serde_json::from_str(&crate::common::event_data(&b, "software.updated").await[0]).unwrap();
    assert_eq!(done["command"], "sw-1");
    assert_eq!(done["code"], "installed");
    assert_eq!(done["previous"], "0.1.0-1");
    assert_eq!(done["installed"], "0.2.0-1");
    wait_until("the result file is removed", 10, || async {
        !sw.join("result.json").exists()
    })
    .await;
    let requested = crate::common::event_data(&b, "software.update.requested").await;
    assert_eq!(requested.len(), 1);
    b.stop().await;
}
