//! The command line: parse, validate, dispatch. Exit codes: 0 success, 64 bad usage or
//! bad config (the message names the key), 73 a data dir that takes no writes, 1 runtime
//! failure.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError, LogFormat};
use crate::store::Store;
use crate::users::{self, Role};

/// Open the daemon's database in `data_dir` for a command.
fn open_data_dir(data_dir: &std::path::Path) -> anyhow::Result<Store> {
    crate::app::open_store(&data_dir.join("branchd.db"))
        .with_context(|| format!("cannot open the database in {}", data_dir.display()))
}

pub use crate::config::EX_USAGE;

/// Exit code of `branchd run` on a data dir that takes no writes (sysexits EX_CANTCREAT).
pub const EX_CANTCREAT: u8 = 73;

/// branchd — the edge daemon of a smart bank branch.
#[derive(Debug, Parser)]
#[command(name = "branchd", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the production daemon (what systemd runs).
    Run {
        /// The config file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run everything on this machine with simulated devices and an embedded config.
    Demo {
        /// Where the demo keeps its database.
        #[arg(long, value_name = "DIR", default_value = "./demo-data")]
        data_dir: PathBuf,
        /// HTTP listen address.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Head-office MQTT broker, e.g. mqtt://127.0.0.1:1883.
        #[arg(long, value_name = "URL")]
        mqtt: Option<String>,
        /// The branch id (default the demo config's); head office tells boxes apart by it.
        #[arg(long, value_name = "ID")]
        branch: Option<String>,
        /// No entrance camera and no face recognition (lighter; for many demo boxes).
        #[arg(long)]
        no_camera: bool,
        /// A customer takes a ticket every this many seconds (default 20).
        #[arg(long, value_name = "SECONDS", value_parser = crate::demo::parse_every)]
        customer_every: Option<std::time::Duration>,
        /// Stop issuing tickets after this many customers (default: never).
        #[arg(long, value_name = "N")]
        customers: Option<u64>,
    },
    /// Manage staff accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Run one device simulator on a new pseudo-terminal (prints `device: /dev/pts/N`).
    Sim {
        /// Which device.
        #[arg(value_enum)]
        kind: SimKind,
        /// STM device id (stm only).
        #[arg(long, default_value = "STM-01")]
        id: String,
        /// Also keep a stable symlink to the device at this path.
        #[arg(long, value_name = "PATH")]
        link: Option<PathBuf>,
    },
    /// Head-office console: watch a branch's events, send it a command.
    Hq(crate::sync::hq::HqArgs),
    /// Recognise one photo of an ID card or business licence.
    Ocr(crate::ocr::cli::OcrArgs),
    /// Detect faces in one photo.
    Faces(crate::vision::cli::FacesArgs),
    /// VIP customers for face recognition.
    Vip {
        #[command(subcommand)]
        command: crate::vision::cli::VipCommand,
    },
    /// Past figures for the statistics and forecasts.
    History {
        #[command(subcommand)]
        command: HistoryCommand,
    },
    /// Validate a config file and say exactly what is wrong.
    CheckConfig {
        /// The config file (TOML).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input (one line). A kiosk (role
    /// `kiosk`) has no password: a device token is printed once instead, and adding the
    /// kiosk again replaces its token (the old one stops working, its sessions end).
    Add {
        /// Login name.
        name: String,
        /// lobby_manager, device_admin, supervisor, branch_manager or kiosk.
        #[arg(long, value_parser = clap::builder::ValueParser::new(parse_role))]
        role: Role,
        /// Read the password from standard input (required for staff: never on the
        /// command line; refused for a kiosk).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        target: DataTarget,
    },
}

#[derive(Debug, Subcommand)]
enum HistoryCommand {
    /// Load past daily ticket volumes from a previous queue system (CSV with a header:
    /// date, service, issued, and optionally served, no_show, avg_wait_s, avg_service_s).
    /// Every row is checked first; one bad row and nothing is loaded.
    Import {
        /// The CSV file.
        #[arg(value_name = "FILE.csv")]
        file: PathBuf,
        #[command(flatten)]
        target: DataTarget,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SimKind {
    Stm,
    Printer,
    Idreader,
}

/// Start a simulator, print its device path, and run until SIGINT/SIGTERM.
#[allow(clippy::print_stdout)]
fn run_sim(kind: SimKind, id: &str, link: Option<PathBuf>) -> anyhow::Result<()> {
    use branchd_drivers::{idreader, printer, stm};
    let keep: (PathBuf, Box<dyn std::any::Any>) = match kind {
        SimKind::Stm => {
            let mut config = stm::StmSimConfig::new(id);
            config.link_path = link;
            let sim = stm::StmSim::spawn(config).context("cannot start the STM simulator")?;
            (sim.path(), Box::new(sim))
        }
        SimKind::Printer => {
            let sim = printer::sim::PrinterSim::spawn(printer::TextEncoding::Gb18030, link)
                .context("cannot start the printer simulator")?;
            (sim.path(), Box::new(sim))
        }
        SimKind::Idreader => {
            let sim = idreader::sim::IdReaderSim::spawn(link)
                .context("cannot start the ID reader simulator")?;
            sim.put_card(idreader::CardText::sample(), Vec::new());
            (sim.path(), Box::new(sim))
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "device: {}", keep.0.display())?;
    out.flush()?;
    drop(out);
    runtime()?.block_on(crate::app::shutdown_signal());
    drop(keep);
    Ok(())
}

/// `branchd user add NAME --role kiosk`: the account with a new device token, printed
/// once (the box keeps only its hash).
fn add_device(data_dir: &std::path::Path, name: &str, role: Role) -> anyhow::Result<ExitCode> {
    if let Err(e) = users::validate_name(name) {
        report(&format!("error: {e}"));
        return Ok(ExitCode::from(EX_USAGE));
    }
    let (token, stored) = users::new_device_token();
    let store = open_data_dir(data_dir)?;
    let n = name.to_string();
    let r = store.write_blocking(move |tx| users::set_device_token(tx, &n, role, &stored));
    store.close();
    let (_, replaced) = r?;
    let mut out = std::io::stdout().lock();
    if replaced {
        writeln!(
            out,
            "new device token for {name} ({role}); the old one no longer works"
        )?;
    } else {
        writeln!(out, "added {name} ({role})")?;
    }
    writeln!(
        out,
        "device token (shown once; open /#/kiosk?token=TOKEN on the kiosk): {token}"
    )?;
    Ok(ExitCode::SUCCESS)
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct DataTarget {
    /// The daemon's data directory.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The daemon's config file (its `branch.data_dir` is used).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EX_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            report(&format!("error: {e:#}"));
            ExitCode::from(1)
        }
    }
}

#[allow(clippy::print_stderr)]
fn report(msg: &str) {
    eprintln!("{msg}");
}

fn load_config(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        match &e {
            ConfigError::Read { .. } => report(&format!("error: {e}")),
            ConfigError::Invalid(_) => report(&format!("{}: {e}", path.display())),
        }
        ExitCode::from(EX_USAGE)
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("branchd")
        .build()
        .context("cannot start the async runtime")
}

#[allow(clippy::print_stdout)]
fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => {
            let cfg = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            crate::logging::init(&cfg.log.level, cfg.log.format);
            match runtime()?.block_on(crate::app::run(cfg)) {
                Ok(crate::app::Ended::Stopped) => Ok(ExitCode::SUCCESS),
                Ok(crate::app::Ended::Restart) => {
                    Ok(ExitCode::from(crate::updates::config::EX_RESTART))
                }
                Err(e) if e.is::<crate::app::DataDirUnwritable>() => {
                    report(&format!("error: {e:#}"));
                    Ok(ExitCode::from(EX_CANTCREAT))
                }
                Err(e) => Err(e),
            }
        }
        Command::Demo {
            data_dir,
            listen,
            mqtt,
            branch,
            no_camera,
            customer_every,
            customers,
        } => {
            if let Some(url) = &mqtt
                && let Err(e) = crate::config::parse_mqtt_url(url)
            {
                report(&format!("error: --mqtt: {e}"));
                return Ok(ExitCode::from(EX_USAGE));
            }
            crate::logging::init("info", LogFormat::Text);
            runtime()?.block_on(crate::demo::run(crate::demo::DemoOptions {
                data_dir,
                listen,
                mqtt,
                branch,
                camera: !no_camera,
                customer_every: customer_every.unwrap_or(crate::demo::CUSTOMER_EVERY),
                customers,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim { kind, id, link } => {
            crate::logging::init("info", LogFormat::Text);
            run_sim(kind, &id, link)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Hq(args) => crate::sync::hq::run(args),
        Command::Ocr(args) => crate::ocr::cli::run(args),
        Command::Faces(args) => crate::vision::cli::run(args),
        Command::Vip { command } => crate::vision::cli::run_vip(command, open_data_dir),
        Command::CheckConfig { file } => match load_config(&file) {
            Ok(cfg) => {
                println!(
                    "{}: ok (branch {}, {} device(s), {} service(s), {} counter(s), {} camera(s), mqtt {})",
                    file.display(),
                    cfg.branch.id,
                    cfg.devices.len(),
                    cfg.services.len(),
                    cfg.counters.len(),
                    cfg.cameras.len(),
                    cfg.mqtt.as_ref().map_or("off", |m| m.url.as_str()),
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(code) => Ok(code),
        },
        Command::History {
            command: HistoryCommand::Import { file, target },
        } => {
            // With a config, service codes are checked against its services.
            let (data_dir, services) = match (target.data_dir, target.config) {
                (Some(d), _) => (d, None),
                (None, Some(c)) => match load_config(&c) {
                    Ok(cfg) => (
                        cfg.branch.data_dir,
                        Some(cfg.services.iter().map(|s| s.code.clone()).collect()),
                    ),
                    Err(code) => return Ok(code),
                },
                (None, None) => unreachable!("clap requires one of them"),
            };
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let store = open_data_dir(&data_dir)?;
            let name = file
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let r = crate::stats::import_file(&store, &text, &name, services);
            store.close();
            match r {
                Ok(n) => {
                    println!("imported {n} day(s) of figures from {}", file.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(crate::stats::import::ImportError::Rows(bad)) => {
                    for b in &bad {
                        report(&format!("{}: {b}", file.display()));
                    }
                    report(&format!(
                        "error: {} bad row(s) in {}; nothing was imported",
                        bad.len(),
                        file.display()
                    ));
                    Ok(ExitCode::from(EX_USAGE))
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::User {
            command:
                UserCommand::Add {
                    name,
                    role,
                    password_stdin,
                    target,
                },
        } => {
            match (role.is_staff(), password_stdin) {
                (true, false) => {
                    report(
                        "error: --password-stdin is required: a password is never given on the command line",
                    );
                    return Ok(ExitCode::from(EX_USAGE));
                }
                (false, true) => {
                    report(&format!(
                        "error: a {role} has no password: it signs in with the device token printed when it is added"
                    ));
                    return Ok(ExitCode::from(EX_USAGE));
                }
                _ => {}
            }
            let data_dir = match (target.data_dir, target.config) {
                (Some(d), _) => d,
                (None, Some(c)) => match load_config(&c) {
                    Ok(cfg) => cfg.branch.data_dir,
                    Err(code) => return Ok(code),
                },
                (None, None) => unreachable!("clap requires one of them"),
            };
            if !role.is_staff() {
                return add_device(&data_dir, &name, role);
            }
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']).to_string();
            if let Err(e) = users::validate_new(&name, &password) {
                report(&format!("error: {e}"));
                return Ok(ExitCode::from(EX_USAGE));
            }
            let hash = users::hash_password(&password);
            let store = open_data_dir(&data_dir)?;
            let n = name.clone();
            let r = store.write_blocking(move |tx| users::insert_user(tx, &n, role, &hash));
            store.close();
            r?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "added user {name} ({role})")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
