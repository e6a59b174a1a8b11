//! A daemon started in-process on a free port with a temporary data dir.

use std::time::Duration;

use branchd::app::{self, Running};
use branchd::clock::Clock;
use branchd::config::Config;
use branchd::store::Store;
use branchd::users::{self, Role};

pub const PASSWORD: &str = "correct horse";

/// One user per role, named after it.
pub const STAFF: [(&str, Role); 4] = [
    ("lobby_manager", Role::LobbyManager),
    ("device_admin", Role::DeviceAdmin),
    ("supervisor", Role::Supervisor),
    ("branch_manager", Role::BranchManager),
];

/// The device account of the test box's kiosk, and its device token.
pub const KIOSK: (&str, &str) = ("kiosk", "test-kiosk-device-token");

pub struct TestBox {
    pub running: Option<Running>,
    pub base: String,
    /// Removed when the box is dropped.
    _dir: tempfile::TempDir,
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn config_text(dir: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
[branch]
id = "T001"
name = "测试支行"
data_dir = "{}"

[http]
listen = "127.0.0.1:0"
{extra}
"#,
        dir.display()
    )
}

impl TestBox {
    pub async fn start() -> TestBox {
        Self::start_with("").await
    }

    /// `extra` is appended to the `[http]` table (or adds tables after it).
    pub async fn start_with(extra: &str) -> TestBox {
        Self::start_prepared(extra, |_| {}).await
    }

    /// Like `start_with`, with `prepare` run on the database before the daemon starts.
    pub async fn start_prepared(
        extra: &str,
        prepare: impl FnOnce(&Store) + Send + 'static,
    ) -> TestBox {
        Self::start_prepared_at(extra, prepare, Clock::new()).await
    }

    /// Like `start_with`, with the daemon's clock reading what `clock` reads.
    pub async fn start_at(extra: &str, clock: Clock) -> TestBox {
        Self::start_prepared_at(extra, |_| {}, clock).await
    }

    async fn start_prepared_at(
        extra: &str,
        prepare: impl FnOnce(&Store) + Send + 'static,
        clock: Clock,
    ) -> TestBox {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = Config::parse(&config_text(dir.path(), extra)).expect("test config");
        let db = cfg.db_path();
        tokio::task::spawn_blocking(move || {
            let store = branchd::app::open_store(&db).expect("open");
            for (name, role) in STAFF {
                let hash = users::hash_password(PASSWORD);
                store
                    .write_blocking(move |tx| users::insert_user(tx, name, role, &hash))
                    .expect("user");
            }
            let stored = users::stored_device_token(KIOSK.1);
            store
                .write_blocking(move |tx| {
                    users::set_device_token(tx, KIOSK.0, Role::Kiosk, &stored)
                })
                .expect("kiosk");
            prepare(&store);
            store.close();
        })
        .await
        .unwrap();
        let running = app::start_with_clock(cfg, clock).await.expect("start");
        let base = format!("http://{}", running.addr);
        TestBox {
            running: Some(running),
            base,
            _dir: dir,
        }
    }

    /// A box over a daemon the test started itself, keeping `dir` until it is dropped.
    pub fn from_running(running: Running, dir: tempfile::TempDir) -> TestBox {
        TestBox {
            base: format!("http://{}", running.addr),
            running: Some(running),
            _dir: dir,
        }
    }

    /// Stop the daemon and hand back its directory (for a test that starts it again).
    pub async fn stop_keep_dir(mut self) -> tempfile::TempDir {
        if let Some(r) = self.running.take() {
            assert!(
                r.shutdown(Duration::from_secs(5)).await,
                "tasks did not drain"
            );
        }
        self._dir
    }

    pub fn core(&self) -> &branchd::core::Core {
        &self.running.as_ref().expect("running").core
    }

    pub fn modules(&self) -> &branchd::modules::Modules {
        &self.running.as_ref().expect("running").modules
    }

    /// Every route the daemon declared.
    pub fn routes(&self) -> Vec<branchd::http::RouteSpec> {
        self.running.as_ref().expect("running").routes()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap()
    }

    /// A client logged in as `user`.
    pub async fn login(&self, user: &str) -> reqwest::Client {
        let c = Self::client();
        let r = c
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({"username": user, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login as {user}");
        c
    }

    /// A client signed in as the kiosk, with its device token.
    pub async fn kiosk(&self) -> reqwest::Client {
        let c = Self::client();
        let r = c
            .post(self.url("/api/v1/kiosk/session"))
            .json(&serde_json::json!({"token": KIOSK.1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "kiosk sign-in");
        c
    }

    /// Stop the daemon, run `between` on its data dir, and start it again on the same
    /// config and database.
    pub async fn restart_with(
        mut self,
        between: impl FnOnce(&std::path::Path) + Send + 'static,
    ) -> TestBox {
        let running = self.running.take().expect("running");
        let cfg = (*running.core.cfg).clone();
        assert!(
            running.shutdown(Duration::from_secs(5)).await,
            "tasks did not drain"
        );
        let dir = cfg.branch.data_dir.clone();
        tokio::task::spawn_blocking(move || between(&dir))
            .await
            .unwrap();
        let running = app::start(cfg).await.expect("restart");
        TestBox {
            base: format!("http://{}", running.addr),
            running: Some(running),
            _dir: self._dir,
        }
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            assert!(
                r.shutdown(Duration::from_secs(5)).await,
                "tasks did not drain"
            );
        }
    }
}

/// The `error.code` of an error response.
pub async fn error_code(r: reqwest::Response) -> String {
    let v: serde_json::Value = r.json().await.expect("an error body in JSON");
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.code in {v}"))
        .to_string()
}

/// The fetched models (`python3 models/fetch.py`): `$BRANCHD_MODELS`, else
/// `$BRANCHD_CACHE/models`, else `~/.cache/branchd/models`; `needed` must be there.
pub fn models_dir(needed: &str) -> std::path::PathBuf {
    use std::path::PathBuf;
    let dir = if let Some(d) = std::env::var_os("BRANCHD_MODELS") {
        PathBuf::from(d)
    } else if let Some(c) = std::env::var_os("BRANCHD_CACHE") {
        PathBuf::from(c).join("models")
    } else {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/branchd/models")
    };
    assert!(
        dir.join(needed).exists(),
        "{needed} not found in {} (run python3 models/fetch.py)",
        dir.display()
    );
    dir
}

/// The data of every committed event of `kind`, oldest first.
pub async fn event_data(b: &TestBox, kind: &'static str) -> Vec<String> {
    b.core()
        .store
        .read(move |c| {
            let mut st = c.prepare("SELECT data FROM events WHERE kind = ?1 ORDER BY seq")?;
            let rows = st.query_map([kind], |r| r.get::<_, String>(0))?;
            Ok::<_, branchd::store::StoreError>(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .unwrap()
}

/// The data of every event of `kind` the box has committed, oldest first, parsed.
pub async fn events(b: &TestBox, kind: &'static str) -> Vec<serde_json::Value> {
    event_data(b, kind)
        .await
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// Wait until `cond` holds, checking every 20 ms, for at most `secs` seconds.
pub async fn wait_until<F, Fut>(what: &str, secs: u64, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
