//! `branchd demo`: the whole daemon on one machine with no hardware.
//!
//! It runs the embedded demo config on a local data dir, creates the demo staff accounts,
//! and prints the address and the logins.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

use crate::app;
use crate::config::{Config, DEMO_CONFIG};
use crate::core::Core;
use crate::queue::{self, Queue};
use crate::store::{Store, StoreError};
use crate::users::{self, Role, UserError};

/// Options of `branchd demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Data directory (default `./demo-data`).
    pub data_dir: PathBuf,
    /// HTTP listen address (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Head-office broker, if any.
    pub mqtt: Option<String>,
    /// The branch id, instead of the demo config's.
    pub branch: Option<String>,
    /// Whether the entrance camera plays (and faces are recognised).
    pub camera: bool,
    /// How often a customer takes a ticket.
    pub customer_every: Duration,
    /// How many customers take a ticket in all (`None`: no end).
    pub customers: Option<u64>,
}

/// `--customer-every SECONDS`: a positive number of seconds, at least 0.01.
pub fn parse_every(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.01 {
        return Err(format!("`{s}`: at least 0.01 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The demo staff: (user name, role, password).
pub const DEMO_USERS: &[(&str, Role, &str)] = &[
    ("lobby", Role::LobbyManager, "lobby-demo"),
    ("admin", Role::DeviceAdmin, "admin-demo"),
    ("super", Role::Supervisor, "super-demo"),
    ("manager", Role::BranchManager, "manager-demo"),
];

/// The demo's self-service kiosk: (account, device token). A real kiosk's token is random
/// and shown once (`branchd user add NAME --role kiosk`); the demo's is fixed, like its
/// passwords, so that `/kiosk?token=…` can be opened from the README.
pub const DEMO_KIOSK: (&str, &str) = ("kiosk", "kiosk-demo");

/// The demo's config with the options applied.
pub fn demo_config(opts: &DemoOptions) -> anyhow::Result<toml_edit::DocumentMut> {
    let mut doc: toml_edit::DocumentMut = DEMO_CONFIG.parse().context("the demo config")?;
    doc["branch"]["data_dir"] = toml_edit::value(opts.data_dir.display().to_string());
    doc["http"]["listen"] = toml_edit::value(opts.listen.to_string());
    if let Some(id) = &opts.branch {
        doc["branch"]["id"] = toml_edit::value(id.as_str());
    }
    if !opts.camera {
        doc["faces"]["enabled"] = toml_edit::value(false);
    }
    if let Some(url) = &opts.mqtt {
        let mut t = toml_edit::Table::new();
        t["url"] = toml_edit::value(url.as_str());
        doc["mqtt"] = toml_edit::Item::Table(t);
    }
    Ok(doc)
}

/// The password of the demo's counter staff ([`queue::DEMO_STAFF`], role supervisor: the
/// tellers at the counters).
pub const DEMO_STAFF_PASSWORD: &str = "teller-demo";

/// Create the demo accounts that do not exist yet: the logins and the counter staff.
pub fn ensure_demo_users(store: &Store) -> anyhow::Result<()> {
    let staff = queue::DEMO_STAFF
        .iter()
        .map(|(_, name)| (*name, Role::Supervisor, DEMO_STAFF_PASSWORD));
    for (name, role, password) in DEMO_USERS.iter().copied().chain(staff) {
        let hash = users::hash_password(password);
        let name = name.to_string();
        match store.write_blocking(move |tx| users::insert_user(tx, &name, role, &hash)) {
            Ok(_) | Err(UserError::Exists(_)) => {}
            Err(e) => return Err(e).context("creating the demo users"),
        }
    }
    let known = store.read_blocking(|c| users::device_account(c, DEMO_KIOSK.1))?;
    if known.is_none() {
        let stored = users::stored_device_token(DEMO_KIOSK.1);
        store
            .write_blocking(move |tx| {
                users::set_device_token(tx, DEMO_KIOSK.0, Role::Kiosk, &stored)
            })
            .context("creating the demo kiosk")?;
    }
    Ok(())
}

/// Run the demo until SIGINT/SIGTERM.
#[allow(clippy::print_stdout)]
pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    let mut doc = demo_config(&opts)?;
    // Simulators first: their pseudo-terminal paths go into the config's devices.
    let _simulators = crate::modules::demo_prepare(&mut doc)?;
    if !opts.camera {
        doc.remove("cameras");
    }
    let cfg = Config::parse(&doc.to_string()).map_err(|p| {
        anyhow::anyhow!(crate::config::ConfigError::Invalid(p)).context("the demo config")
    })?;
    let db_path = cfg.db_path();
    std::fs::create_dir_all(&cfg.branch.data_dir)
        .with_context(|| format!("cannot create {}", cfg.branch.data_dir.display()))?;
    let cfg2 = cfg.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let store = app::open_store(&db_path)?;
        let r = ensure_demo_users(&store).and_then(|()| {
            crate::modules::demo_seed(&store, &cfg2).context("the demo's products and customers")
        });
        if r.is_ok()
            && let Err(e) = crate::vision::demo::enrol(&store, &cfg2)
        {
            tracing::warn!(error = %format!("{e:#}"), "demo: the VIP could not be enrolled");
        }
        store.close();
        r
    })
    .await??;
    let grace = cfg.daemon.shutdown_grace;
    if let Some(id) = cfg.cameras.first().map(|c| &c.id) {
        let vip = crate::vision::demo::demo_vip();
        println!(
            "demo camera: {id} plays a looped video; VIP {} arrives (relationship manager: {})",
            vip.name,
            vip.relationship_manager.as_deref().unwrap_or("-")
        );
    }
    let running = app::start(cfg).await?;
    let (core, q) = (running.core.clone(), running.modules.queue.clone());
    core.spawn(customers_arrive(
        core.clone(),
        q.clone(),
        opts.customer_every,
        opts.customers,
    ));
    core.spawn(vips_take_tickets(core.clone(), q, VIP_TICKET_AFTER));
    println!("branchd demo is running: http://{}/", running.addr);
    println!("logins (user / password):");
    for (name, role, password) in DEMO_USERS {
        println!("  {name:<8} / {password:<13} {role}");
    }
    let staff: Vec<String> = queue::DEMO_STAFF
        .iter()
        .map(|(counter, name)| format!("{counter}: {name}"))
        .collect();
    println!(
        "counters open with their staff ({}; password {DEMO_STAFF_PASSWORD})",
        staff.join(", ")
    );
    println!(
        "self-service kiosk (account {}): http://{}/#/kiosk?token={}",
        DEMO_KIOSK.0, running.addr, DEMO_KIOSK.1
    );
    println!("press Ctrl-C to stop");
    app::notify_systemd(&running.core);
    app::shutdown_signal().await;
    running.shutdown(grace).await;
    Ok(())
}

/// How often a customer takes a ticket at the kiosk in the demo's compressed day.
pub const CUSTOMER_EVERY: Duration = Duration::from_secs(20);

/// The demo's lobby: one customer per service and one more are waiting at the start, then
/// one takes a ticket at the kiosk every `every`, for a random service; about one in six is
/// a VIP. Customers head office described to the branch take theirs with their customer id
/// (the first two at once, then one every few tickets). Stops when the daemon stops, or
/// after `limit` customers.
pub async fn customers_arrive(core: Core, queue: Queue, every: Duration, limit: Option<u64>) {
    use rand::Rng as _;
    let services: Vec<String> = core.cfg.services.iter().map(|s| s.code.clone()).collect();
    if services.is_empty() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    let mut first = true;
    let mut known = crate::customers::demo::TICKET_CUSTOMERS.iter();
    let mut n: u32 = 0;
    loop {
        tokio::select! {
            () = core.cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if limit.is_some_and(|l| u64::from(n) >= l) {
            return;
        }
        // The first customers: one for each service, so every queue has someone waiting.
        for i in 0..if first { services.len() + 1 } else { 1 } {
            if limit.is_some_and(|l| u64::from(n) >= l) {
                break;
            }
            let (service, level) = {
                let mut rng = rand::thread_rng();
                let pick = if first && i < services.len() {
                    i
                } else {
                    rng.gen_range(0..services.len())
                };
                let service = services[pick].clone();
                let level = rng
                    .gen_ratio(1, 6)
                    .then(|| format!("vip{}", rng.gen_range(1..=3)));
                (service, level)
            };
            n += 1;
            // 王芳 and 李建国 first, 赵敏 with the eighth ticket.
            let customer_id = if n <= 2 || n == 8 {
                known.next().map(|c| (*c).to_string())
            } else {
                None
            };
            let req = queue::IssueRequest {
                service,
                customer_level: if customer_id.is_some() { None } else { level },
                customer_id,
                appointment_id: None,
                source: queue::Source::Pad,
            };
            if let Err(e) = queue.issue(req).await {
                tracing::info!(error = %e, "demo: a customer could not take a ticket");
            }
        }
        first = false;
    }
}

/// How long after the camera recognises her the demo's VIP takes a ticket.
pub const VIP_TICKET_AFTER: Duration = Duration::from_secs(20);

/// The demo's VIPs walk from the door to the kiosk: `after` each `vip.arrived`, the
/// customer takes a ticket for the first service (it carries her level and is linked to
/// the arrival).
pub async fn vips_take_tickets(core: Core, queue: Queue, after: Duration) {
    let mut events = core.store.follow(*core.store.committed().borrow());
    loop {
        let ev = tokio::select! {
            () = core.cancel.cancelled() => return,
            ev = events.next() => ev,
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "demo: cannot follow the events");
                continue;
            }
        };
        if ev.kind != "vip.arrived" {
            continue;
        }
        let (Some(customer), Some(service)) = (
            ev.data["customer_id"].as_str().map(str::to_string),
            core.cfg.services.first().map(|s| s.code.clone()),
        ) else {
            continue;
        };
        let (cancel, queue) = (core.cancel.clone(), queue.clone());
        core.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(after) => {}
            }
            let req = queue::IssueRequest {
                service,
                customer_id: Some(customer),
                customer_level: None,
                appointment_id: None,
                source: queue::Source::Pad,
            };
            if let Err(e) = queue.issue(req).await {
                tracing::info!(error = %e, "demo: the VIP could not take a ticket");
            }
        });
    }
}
