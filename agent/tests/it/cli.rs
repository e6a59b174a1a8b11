//! The `branchd` binary: exit codes, config checks, users, and a clean SIGTERM.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::config_text;

const BIN: &str = env!("CARGO_BIN_EXE_branchd");

fn branchd(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().expect("run branchd")
}

#[test]
fn check_config_exit_codes_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, config_text(dir.path(), "")).unwrap();
    let out = branchd(&["check-config", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        config_text(
            dir.path(),
            "\n[[counters]]\nid = \"1\"\nservices = [\"forex\"]\n",
        ),
    )
    .unwrap();
    let out = branchd(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("counters[0].services") && err.contains("unknown service `forex`"),
        "{err}"
    );
    assert!(err.contains("line 12"), "{err}");

    let out = branchd(&["check-config", "/no/such/file.toml"]);
    assert_eq!(out.status.code(), Some(64));
    let out = branchd(&["run", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "run refuses a bad config");
}

#[test]
fn bad_usage_is_64_and_help_is_0() {
    assert_eq!(branchd(&["frobnicate"]).status.code(), Some(64));
    assert_eq!(
        branchd(&[
            "user",
            "add",
            "x",
            "--role",
            "janitor",
            "--password-stdin",
            "--data-dir",
            "/tmp"
        ])
        .status
        .code(),
        Some(64)
    );
    assert_eq!(branchd(&["--help"]).status.code(), Some(0));
    let v = branchd(&["--version"]);
    assert_eq!(v.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("branchd "));
}

fn user_add(dir: &std::path::Path, name: &str, role: &str, password: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args([
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            "--data-dir",
        ])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn user_add_reads_the_password_from_stdin_and_refuses_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let out = user_add(dir.path(), "amy", "supervisor", "a long password");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = user_add(dir.path(), "amy", "supervisor", "a long password");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = user_add(dir.path(), "bo", "supervisor", "short");
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, config_text(dir.path(), "")).unwrap();
    let child = Command::new(BIN)
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it has opened the database (the WAL file appears).
    let start = Instant::now();
    while !dir.path().join("branchd.db-wal").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id() as i32;
    let st = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("SIGTERM") && log.contains("all tasks finished"),
        "{log}"
    );
}

#[test]
fn systemd_hears_ready_watchdog_pings_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, config_text(dir.path(), "")).unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // systemd sets WATCHDOG_PID to the service's pid: `exec` keeps the shell's.
    let child = Command::new("sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" run --config \"$1\""])
        .arg(BIN)
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let mut next = || {
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    let first = next();
    assert!(first.contains("READY=1"), "{first}");
    let mut pings = 0;
    while pings < 3 {
        if next().contains("WATCHDOG=1") {
            pings += 1;
        }
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut stopping = false;
    for _ in 0..20 {
        if next().contains("STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "no STOPPING=1");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

fn kiosk_add(dir: &std::path::Path, name: &str, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["user", "add", name, "--role", "kiosk"])
        .args(extra)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The device token a `user add --role kiosk` printed.
fn printed_token(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("device token"))
        .unwrap_or_else(|| panic!("no token in {text}"));
    line.rsplit(' ').next().unwrap().to_string()
}

#[test]
fn user_add_of_a_kiosk_prints_a_device_token_once_and_again_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = kiosk_add(dir.path(), "kiosk1", &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let first = printed_token(&out);
    assert!(first.len() >= 64, "{first}");
    let out = kiosk_add(dir.path(), "kiosk1", &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let second = printed_token(&out);
    assert_ne!(first, second);
    let store = branchd::app::open_store(&dir.path().join("branchd.db")).unwrap();
    let found = |t: String| {
        store
            .read_blocking(move |c| branchd::users::device_account(c, &t))
            .unwrap()
            .map(|u| u.username)
    };
    assert_eq!(found(first), None, "the first token no longer works");
    assert_eq!(found(second), Some("kiosk1".to_string()));
    store.close();
    // A kiosk takes no password; a member of staff needs one; a staff name is not a kiosk.
    let out = kiosk_add(dir.path(), "kiosk2", &["--password-stdin"]);
    assert_eq!(out.status.code(), Some(64));
    let out = Command::new(BIN)
        .args(["user", "add", "amy", "--role", "supervisor", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = user_add(dir.path(), "amy", "supervisor", "a long password");
    assert_eq!(out.status.code(), Some(0));
    let out = kiosk_add(dir.path(), "amy", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}
