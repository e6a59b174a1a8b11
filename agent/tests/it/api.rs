//! Sessions and roles on every route of the route table.

use branchd::http::Access;
use branchd::users::Role;
use reqwest::Method;

use crate::common::{PASSWORD, STAFF, TestBox, error_code};

fn method(m: &str) -> Method {
    m.parse().unwrap()
}

#[tokio::test]
async fn every_api_route_but_login_answers_401_without_a_session() {
    let b = TestBox::start().await;
    let c = TestBox::client();
    let mut checked = 0;
    for r in b.routes().iter().filter(|r| r.path.starts_with("/api/v1/")) {
        let resp = c
            .request(method(r.method), b.url(&r.sample()))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        if r.access == Access::Public {
            assert_ne!(resp.status(), 401, "{} {} is public", r.method, r.path);
            continue;
        }
        assert_eq!(resp.status(), 401, "{} {}", r.method, r.path);
        assert_eq!(
            error_code(resp).await,
            "unauthorized",
            "{} {}",
            r.method,
            r.path
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} routes checked");
    b.stop().await;
}

#[tokio::test]
async fn a_forged_or_ended_session_is_401() {
    let b = TestBox::start().await;
    let c = reqwest::Client::new();
    let r = c
        .get(b.url("/api/v1/auth/me"))
        .header("cookie", "branchd_session=00ff")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let lm = b.login("lobby_manager").await;
    assert_eq!(
        lm.get(b.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let out = lm.post(b.url("/api/v1/auth/logout")).send().await.unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(
        lm.get(b.url("/api/v1/auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    b.stop().await;
}

#[tokio::test]
async fn each_role_gets_403_exactly_where_the_route_table_says() {
    let b = TestBox::start().await;
    let mut forbidden = 0;
    let mut clients = Vec::new();
    for (user, role) in STAFF {
        clients.push((b.login(user).await, role));
    }
    clients.push((b.kiosk().await, Role::Kiosk));
    for (c, role) in clients {
        for r in b.routes().iter().filter(|r| r.access != Access::Public) {
            if r.path == "/api/v1/auth/logout" {
                continue; // would end this client's session
            }
            let resp = c
                .request(method(r.method), b.url(&r.sample()))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = resp.status();
            if r.access.allows(role) {
                assert!(
                    status != 401 && status != 403,
                    "{role} on {} {}: {status}",
                    r.method,
                    r.path
                );
            } else {
                assert_eq!(status, 403, "{role} on {} {}", r.method, r.path);
                assert_eq!(error_code(resp).await, "forbidden");
                forbidden += 1;
            }
        }
    }
    assert!(forbidden > 0, "the table has no role-restricted route");
    b.stop().await;
}

/// Found by the OpenAPI fuzz (`scripts/apifuzz.sh`): every answer to a body that is not
/// JSON, or to a path whose ids name nothing, is a status the document lists for that
/// operation, in the error shape.
#[tokio::test]
async fn answers_to_a_bad_body_or_an_unknown_id_are_documented() {
    let b = TestBox::start().await;
    let doc: serde_json::Value = b
        .login("branch_manager")
        .await
        .get(b.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut checked = 0;
    let mut clients = Vec::new();
    for (user, role) in STAFF {
        clients.push((b.login(user).await, role));
    }
    clients.push((b.kiosk().await, Role::Kiosk));
    for (c, role) in clients {
        for r in b.routes().iter().filter(|r| r.access != Access::Public) {
            // Logout would end this client's session; the event stream never ends.
            if !r.access.allows(role) || ["/api/v1/auth/logout", "/api/v1/events"].contains(&r.path)
            {
                continue;
            }
            let resp = c
                .request(method(r.method), b.url(&r.sample()))
                .header("content-type", "application/json")
                .body("{not json")
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let op = &doc["paths"][r.path][r.method.to_lowercase()];
            assert!(
                op["responses"][status.to_string()].is_object(),
                "{role} on {} {}: {status} is not in the document",
                r.method,
                r.path
            );
            if status >= 400 {
                assert!(!error_code(resp).await.is_empty());
            }
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} answers checked");
    b.stop().await;
}

#[tokio::test]
async fn login_sets_a_strict_httponly_cookie_and_answers_who() {
    let b = TestBox::start().await;
    let r = TestBox::client()
        .post(b.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "supervisor", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["branchd_session=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    let me: serde_json::Value = r.json().await.unwrap();
    assert_eq!(me["role"], "supervisor");
    b.stop().await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let b = TestBox::start().await;
    let c = TestBox::client();
    let cases: &[(&str, String, u16, &str)] = &[
        (
            "wrong password",
            r#"{"username":"supervisor","password":"nope"}"#.into(),
            401,
            "bad_credentials",
        ),
        (
            "unknown user",
            r#"{"username":"ghost","password":"x"}"#.into(),
            401,
            "bad_credentials",
        ),
        ("not json", "{user".into(), 400, "invalid_json"),
        (
            "fields as an array",
            r#"["supervisor","x"]"#.into(),
            400,
            "invalid_json",
        ),
        (
            "missing field",
            r#"{"username":"supervisor"}"#.into(),
            400,
            "invalid_json",
        ),
        (
            "unknown field",
            r#"{"username":"a","password":"b","admin":true}"#.into(),
            400,
            "invalid_json",
        ),
        (
            "too large",
            format!(r#"{{"username":"{}","password":"x"}}"#, "a".repeat(100_000)),
            413,
            "payload_too_large",
        ),
    ];
    for (what, body, status, code) in cases {
        let r = c
            .post(b.url("/api/v1/auth/login"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), *status, "{what}");
        assert_eq!(error_code(r).await, *code, "{what}");
    }
    let r = c.get(b.url("/api/v1/no/such/route")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "not_found");
    b.stop().await;
}

#[tokio::test]
async fn repeated_bad_logins_lock_the_account_even_for_the_right_password() {
    let b = TestBox::start_with("login_max_failures = 3\nlogin_lockout_s = 120").await;
    let c = TestBox::client();
    let attempt = |password: &'static str| {
        let c = c.clone();
        let url = b.url("/api/v1/auth/login");
        async move {
            c.post(url)
                .json(&serde_json::json!({"username": "lobby_manager", "password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(attempt("wrong").await.status(), 401);
    }
    let locked = attempt(PASSWORD).await;
    assert_eq!(locked.status(), 429);
    let retry: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=120).contains(&retry), "retry-after {retry}");
    assert_eq!(error_code(locked).await, "too_many_attempts");
    // Another account from another client is not locked by user name; the same address is.
    let metrics = reqwest::get(b.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("branchd_login_failures_total 3"),
        "{metrics}"
    );
    b.stop().await;
}

#[tokio::test]
async fn health_metrics_openapi_and_the_app_are_served() {
    let b = TestBox::start().await;
    let h: serde_json::Value = reqwest::get(b.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["branch"], "T001");
    let page = reqwest::get(b.url("/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<html"));
    let c = b.login("branch_manager").await;
    let spec: serde_json::Value = c
        .get(b.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.0.3");
    // The OpenAPI files and the route declarations describe the same routes, with the same
    // access: public ones need no session, the others document their 403, and the
    // roles the document names are the roles the router lets in.
    let routes = b.routes();
    for r in &routes {
        let what = format!("{} {}", r.method, r.path);
        let op = &spec["paths"][r.path][r.method.to_lowercase()];
        assert!(op.is_object(), "{what} missing from openapi.json");
        let public = op["security"].as_array().is_some_and(|s| s.is_empty());
        assert_eq!(
            public,
            r.access == Access::Public,
            "{what}: `security: []` iff public"
        );
        if r.access != Access::Public {
            assert!(
                op["responses"]["403"].is_object(),
                "{what} documents no 403"
            );
        }
        let roles: Vec<String> = r.access.roles().iter().map(|x| x.to_string()).collect();
        assert_eq!(op["x-roles"], serde_json::json!(roles), "{what}");
    }
    let paths = spec["paths"].as_object().unwrap();
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        routes.len(),
        "openapi.json documents routes that are not declared"
    );
    let audit: serde_json::Value = c
        .get(b.url("/api/v1/audit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "auth.login"),
        "{audit}"
    );
    b.stop().await;
}

// Multi-threaded: the test blocks on curl while the daemon serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_files_the_api_speaks_https_and_the_cookie_is_secure() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let st = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(st.status.success(), "{st:?}");
    let extra = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    );
    let b = TestBox::start_with(&extra).await;
    let https = b.base.replace("http://", "https://");
    let run = |args: Vec<String>| {
        std::process::Command::new("curl")
            .args(["-s", "-i", "--cacert"])
            .arg(&cert)
            .args(args)
            .output()
            .expect("curl")
    };
    let out = run(vec![format!("{https}/healthz")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("200") && text.contains("\"status\":\"ok\""),
        "{text}"
    );
    let out = run(vec![
        "-H".into(),
        "content-type: application/json".into(),
        "-d".into(),
        format!(r#"{{"username":"supervisor","password":"{PASSWORD}"}}"#),
        format!("{https}/api/v1/auth/login"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("; Secure"), "{text}");
    // Plain HTTP on the TLS port gets nothing useful.
    let plain = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap()
        .get(b.url("/healthz"))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    b.stop().await;
}
