//! The box under hostile clients on the branch LAN: login floods, idle and slow
//! connections, made-up methods.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{PASSWORD, TestBox, error_code};

/// Another client on the LAN: loopback has all of 127/8.
const OTHER_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn client_from(addr: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .local_address(addr)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A field of this process's `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

#[tokio::test]
async fn a_flood_of_parallel_bad_logins_gets_no_more_guesses_than_a_sequence() {
    const FLOOD: usize = 300;
    const MAX_FAILURES: usize = 5;
    let b = TestBox::start_with(
        "login_max_failures = 5\nlogin_lockout_s = 300\nlogin_concurrency = 2\n\
         max_connections = 1024\nmax_connections_per_client = 1024",
    )
    .await;
    // Reset this process's peak resident size, so the peak below is the flood's.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS");
    let attacker = TestBox::client();
    let url = b.url("/api/v1/auth/login");
    let flood = (0..FLOOD).map(|i| {
        let (c, url) = (attacker.clone(), url.clone());
        tokio::spawn(async move {
            c.post(url)
                .json(&serde_json::json!({"username": "branch_manager", "password": format!("guess {i}")}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    });
    let statuses = futures_util::future::join_all(flood).await;
    let peak_growth_mib = status_kib("VmHWM").saturating_sub(before) / 1024;
    let count = |s: u16| {
        statuses
            .iter()
            .filter(|r| *r.as_ref().unwrap() == s)
            .count()
    };
    let (checked, locked, busy) = (count(401), count(429), count(503));
    assert_eq!(
        checked + locked + busy,
        FLOOD,
        "only 401, 429 or 503: {statuses:?}"
    );
    assert!(
        checked <= MAX_FAILURES,
        "{checked} passwords were checked; a sequence gets {MAX_FAILURES}"
    );
    // Two argon2 checks of 19 MiB at a time, not three hundred.
    assert!(
        peak_growth_mib < 256,
        "resident memory grew by {peak_growth_mib} MiB at its peak"
    );

    // Going on one guess at a time, the client gets exactly the guesses a sequence gets,
    // and then the lockout holds, even for the right password ...
    let mut guesses = checked;
    for i in 0..2 * MAX_FAILURES {
        let r = attacker
            .post(&url)
            .json(&serde_json::json!({"username": "branch_manager", "password": format!("again {i}")}))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            401 => guesses += 1,
            429 => break,
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!(guesses, MAX_FAILURES);
    let r = attacker
        .post(&url)
        .json(&serde_json::json!({"username": "branch_manager", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(error_code(r).await, "too_many_attempts");
    // ... while the branch manager on her own tablet still logs in (slowed, not locked).
    let tablet = client_from(OTHER_CLIENT);
    let r = tablet
        .post(&url)
        .json(&serde_json::json!({"username": "branch_manager", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = reqwest::get(b.url("/healthz")).await.unwrap();
    assert_eq!(h.status(), 200);
    b.stop().await;
}

#[tokio::test]
async fn more_logins_than_password_check_slots_answer_503_with_a_retry() {
    // One slot, held by logins that each wait out the per-name delay first: many names
    // that failed before, then one parallel burst over all of them.
    let b = TestBox::start_with(
        "login_max_failures = 1\nlogin_concurrency = 1\n\
         max_connections_per_client = 1024",
    )
    .await;
    let url = b.url("/api/v1/auth/login");
    let burst = (0..40).map(|i| {
        let c = client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 1, i as u8 + 1)));
        let url = url.clone();
        tokio::spawn(async move {
            c.post(url)
                .json(&serde_json::json!({"username": format!("nobody{i}"), "password": "x"}))
                .send()
                .await
                .unwrap()
        })
    });
    let mut busy = 0;
    for r in futures_util::future::join_all(burst).await {
        let r = r.unwrap();
        match r.status().as_u16() {
            401 => {}
            503 => {
                busy += 1;
                assert_eq!(r.headers()["retry-after"], "1");
                assert_eq!(error_code(r).await, "login_busy");
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert!(
        busy > 0,
        "40 parallel checks on one slot: some must be refused"
    );
    let metrics = reqwest::get(b.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("branchd_login_busy_total {busy}")),
        "{metrics}"
    );
    b.stop().await;
}

/// Whether the server closes `s` (EOF or reset) within `within`.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // a response; keep waiting for the close
        }
    }
}

#[tokio::test]
async fn a_thousand_idle_sockets_are_closed_and_do_not_keep_out_a_real_request() {
    let b = TestBox::start_with(
        "header_timeout_s = 1\nmax_connections = 512\nmax_connections_per_client = 32",
    )
    .await;
    let addr = b.running.as_ref().unwrap().addr;
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(
            TcpStream::connect(addr)
                .await
                .expect("the kernel accepts the socket"),
        );
    }
    // A PAD on another address is served at once.
    let r = client_from(OTHER_CLIENT)
        .get(b.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Every idle socket is closed: the ones over the cap at once, the others when they
    // have sent no request in time.
    let mut open = 0;
    for s in &mut idle {
        if !closed_by_server(s, Duration::from_secs(20)).await {
            open += 1;
        }
    }
    assert_eq!(open, 0, "sockets the server kept open");
    let metrics = reqwest::get(b.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    assert!(value("branchd_http_connections_refused_total") >= 1000 - 32);
    assert!(value("branchd_http_connections_timed_out_total") >= 1);
    b.stop().await;
}

#[tokio::test]
async fn slow_and_silent_clients_are_cut_off_after_the_header_timeout() {
    let b = TestBox::start_with("header_timeout_s = 1").await;
    let addr = b.running.as_ref().unwrap().addr;
    // (what the client sends, then goes quiet)
    let cases: [(&str, &[u8]); 4] = [
        ("nothing", b""),
        ("half a request line", b"GET /heal"),
        (
            "a head without its end",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        ),
        (
            "one whole request, then nothing on the kept-alive connection",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
    ];
    for (what, bytes) in cases {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        assert!(
            closed_by_server(&mut s, Duration::from_secs(20)).await,
            "{what}: still open"
        );
    }
    b.stop().await;
}

#[tokio::test]
async fn made_up_methods_add_no_metric_labels() {
    let b = TestBox::start().await;
    let c = TestBox::client();
    for m in ["BREW", "PROPFIND", "X-ANYTHING-GOES"] {
        let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
        let r = c.request(method, b.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 405, "{m}");
    }
    let metrics = reqwest::get(b.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for m in ["BREW", "PROPFIND", "X-ANYTHING-GOES"] {
        assert!(!metrics.contains(m), "{m} became a label: {metrics}");
    }
    assert!(
        metrics.contains("method=\"other\",status=\"4xx\""),
        "{metrics}"
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_finishes_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let st = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(st.status.success(), "{st:?}");
    let b = TestBox::start_with(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\nheader_timeout_s = 1",
        cert.display(),
        key.display()
    ))
    .await;
    let addr = b.running.as_ref().unwrap().addr;
    // (what the client sends, then goes quiet)
    let cases: [(&str, &[u8]); 2] = [
        ("nothing", b""),
        // The first bytes of a TLS record header for a ClientHello, and no more.
        ("half a ClientHello", &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]),
    ];
    for (what, bytes) in cases {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        assert!(
            closed_by_server(&mut s, Duration::from_secs(20)).await,
            "{what}: still open"
        );
    }
    let text = b.core().metrics.render();
    assert!(
        text.lines().any(
            |l| l.starts_with("branchd_http_connections_timed_out_total ") && !l.ends_with(" 0")
        ),
        "{text}"
    );
    b.stop().await;
}
