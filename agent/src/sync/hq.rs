//! `branchd hq`: a small head-office console. `watch` follows a branch's events and proves
//! `seq` continuity (gaps and duplicates reported, non-zero exit on a gap); `send`
//! publishes one command and waits for its `ack`; `coupon` signs a coupon token and
//! `coupon-key` makes a signing key (what head office's rights platform does).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS, Transport};
use serde_json::Value;

use super::Topics;

/// `branchd hq …`
#[derive(Debug, Args)]
pub struct HqArgs {
    #[command(subcommand)]
    command: HqCommand,
}

#[derive(Debug, Subcommand)]
enum HqCommand {
    /// Follow a branch's events; report gaps and duplicates in `seq` (exit 1 on a gap).
    Watch {
        #[command(flatten)]
        link: Link,
        /// Stop after this many distinct events.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long, value_name = "S")]
        timeout: Option<u64>,
        /// Print each event's data after its seq and kind.
        #[arg(long)]
        data: bool,
    },
    /// Sign a coupon and print its token (`BRC1.…`), e.g. for a QR code.
    Coupon(CouponArgs),
    /// Make a coupon signing key: prints the secret (keep it at head office) and the
    /// public key (`[rights] public_key` on every box).
    CouponKey,
    /// Write every branch's events and states into PostgreSQL, idempotently by
    /// (branch, seq), tracking each branch's gap-free seq, gaps and state.
    Ingest(super::ingest::IngestArgs),
    /// Send one command (a JSON file with the command envelope) and print its ack.
    Send {
        #[command(flatten)]
        link: Link,
        /// The command, e.g. `{"v":1,"id":"c-1","ts":"2026-11-22T09:15:02Z","kind":"rebirth","data":{}}`
        /// (the box refuses a command without `ts`, or older than its maximum age).
        #[arg(value_name = "FILE.json")]
        file: PathBuf,
        /// Give up waiting for the ack after this many seconds.
        #[arg(long, value_name = "S", default_value_t = 30)]
        timeout: u64,
    },
}

#[derive(Debug, Args)]
struct CouponArgs {
    /// A file holding the secret key as 64 hex digits (from `branchd hq coupon-key`).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "demo",
        conflicts_with = "demo"
    )]
    key_file: Option<PathBuf>,
    /// Sign with the demo's key and hash with the demo's salt (`branchd demo` accepts it).
    #[arg(long)]
    demo: bool,
    /// The coupon id.
    #[arg(long)]
    id: String,
    /// The customer's hash (`id_hash` of `customer.upsert`), 64 hex digits.
    #[arg(
        long,
        required_unless_present = "id_number",
        conflicts_with = "id_number"
    )]
    customer_hash: Option<String>,
    /// The customer's ID number, hashed here with `--salt` (or the demo's salt).
    #[arg(long)]
    id_number: Option<String>,
    /// The salt ID numbers are hashed with (`[customers] id_salt`).
    #[arg(long)]
    salt: Option<String>,
    /// cash_voucher (value in fen), fee_waiver (times), rate_bonus (basis points) or gift.
    #[arg(long)]
    right: String,
    /// How much.
    #[arg(long)]
    value: i64,
    /// First valid day (YYYY-MM-DD; default today).
    #[arg(long)]
    from: Option<chrono::NaiveDate>,
    /// Last valid day (default 30 days after the first).
    #[arg(long)]
    until: Option<chrono::NaiveDate>,
}

/// How head office's tools reach the broker.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Broker, mqtt://host[:port] or mqtts://host[:port].
    #[arg(long)]
    url: String,
    /// CA bundle (PEM) to verify an mqtts:// broker.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// User name.
    #[arg(long, requires = "password_file")]
    username: Option<String>,
    /// A file holding the password (its first line).
    #[arg(long, value_name = "FILE", requires = "username")]
    password_file: Option<PathBuf>,
}

impl BrokerArgs {
    /// Connection options for `client_id` (keep-alive 30 s, packets up to 16 MiB).
    pub async fn options(&self, client_id: &str) -> anyhow::Result<MqttOptions> {
        let (tls, host, port) =
            crate::config::parse_mqtt_url(&self.url).map_err(|e| anyhow::anyhow!("--url: {e}"))?;
        let mut o = MqttOptions::new(client_id, host, port);
        o.set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(16 << 20, 16 << 20);
        if let (Some(user), Some(file)) = (&self.username, &self.password_file) {
            let text = tokio::fs::read_to_string(file)
                .await
                .with_context(|| format!("cannot read --password-file {}", file.display()))?;
            let password = text.lines().next().unwrap_or_default().to_string();
            o.set_credentials(user.clone(), password);
        }
        if tls {
            let cfg = crate::tls::client_config(
                self.ca_file.as_deref(),
                self.cert.as_deref(),
                self.key.as_deref(),
            )?;
            o.set_transport(Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(cfg),
            ));
        }
        Ok(o)
    }
}

#[derive(Debug, Args)]
struct Link {
    #[command(flatten)]
    broker: BrokerArgs,
    /// The branch id.
    #[arg(long)]
    branch: String,
    /// Topic prefix (default bank/<branch>).
    #[arg(long)]
    prefix: Option<String>,
}

impl Link {
    fn topics(&self) -> Topics {
        Topics::new(
            &self
                .prefix
                .clone()
                .unwrap_or_else(|| format!("bank/{}", self.branch)),
        )
    }

    async fn connect(&self, role: &str) -> anyhow::Result<(AsyncClient, rumqttc::EventLoop)> {
        let id = format!("hq-{role}-{}", ulid::Ulid::new());
        Ok(AsyncClient::new(self.broker.options(&id).await?, 64))
    }
}

/// Run `branchd hq`.
pub fn run(args: HqArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match args.command {
        HqCommand::Watch {
            link,
            count,
            timeout,
            data,
        } => rt.block_on(watch(link, count, timeout.map(Duration::from_secs), data)),
        HqCommand::Ingest(args) => {
            drop(rt);
            super::ingest::run(args)
        }
        HqCommand::Coupon(args) => coupon(args),
        HqCommand::CouponKey => {
            let key = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
            out(&format!("secret: {}", hex::encode(key.to_bytes())));
            out(&format!(
                "public_key: {}",
                hex::encode(key.verifying_key().to_bytes())
            ));
            Ok(ExitCode::SUCCESS)
        }
        HqCommand::Send {
            link,
            file,
            timeout,
        } => rt.block_on(send(link, file, Duration::from_secs(timeout))),
    }
}

/// `seq` continuity as events arrive.
#[derive(Debug, Default)]
pub struct Continuity {
    seen: BTreeSet<u64>,
    highest: Option<u64>,
    /// Redeliveries of an already seen `seq`.
    pub duplicates: u64,
    /// Ranges skipped when a higher `seq` arrived (`first..=last`).
    pub gaps: Vec<(u64, u64)>,
}

impl Continuity {
    /// Record one `seq`; returns what to report about it, if anything.
    pub fn see(&mut self, seq: u64) -> Option<String> {
        if !self.seen.insert(seq) {
            self.duplicates += 1;
            return Some(format!("duplicate {seq}"));
        }
        let note = match self.highest {
            Some(h) if seq > h + 1 => {
                self.gaps.push((h + 1, seq - 1));
                Some(format!("gap: {}..={} missing", h + 1, seq - 1))
            }
            Some(h) if seq < h => Some(format!("late {seq} (after {h})")),
            _ => None,
        };
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        note
    }

    /// Distinct events seen.
    pub fn distinct(&self) -> u64 {
        self.seen.len() as u64
    }

    /// Gaps still open (a late arrival may have filled part of one).
    pub fn open_gaps(&self) -> Vec<(u64, u64)> {
        self.gaps
            .iter()
            .filter(|(a, b)| (*a..=*b).any(|s| !self.seen.contains(&s)))
            .copied()
            .collect()
    }
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

/// `branchd hq coupon`: sign one coupon and print its token.
fn coupon(a: CouponArgs) -> anyhow::Result<ExitCode> {
    use crate::rights::token;
    let key = if a.demo {
        crate::rights::demo::signing_key()
    } else {
        let path = a.key_file.as_deref().context("--key-file or --demo")?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let bytes = hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .with_context(|| format!("{}: not a secret key (64 hex digits)", path.display()))?;
        ed25519_dalek::SigningKey::from_bytes(&bytes)
    };
    let cust = match (a.customer_hash, a.id_number) {
        (Some(h), _) => h,
        (None, Some(n)) => {
            let salt = match (a.salt, a.demo) {
                (Some(s), _) => s,
                (None, true) => crate::config::Config::parse(crate::config::DEMO_CONFIG)
                    .map_err(|_| anyhow::anyhow!("the demo config"))?
                    .customers
                    .id_salt
                    .context("the demo config has no salt")?,
                (None, false) => anyhow::bail!("--id-number needs --salt"),
            };
            crate::customers::id_hash(&salt, &n)
        }
        (None, None) => anyhow::bail!("--customer-hash or --id-number"),
    };
    let from = a.from.unwrap_or_else(|| chrono::Local::now().date_naive());
    let c = token::Coupon {
        id: a.id,
        cust,
        right: a.right,
        value: a.value,
        from,
        until: a.until.unwrap_or(from + chrono::Duration::days(30)),
    };
    token::check(&c).map_err(|e| anyhow::anyhow!("the coupon: {e}"))?;
    out(&token::sign(&key, &c));
    Ok(ExitCode::SUCCESS)
}

async fn watch(
    link: Link,
    count: Option<u64>,
    timeout: Option<Duration>,
    data: bool,
) -> anyhow::Result<ExitCode> {
    let topics = link.topics();
    let (client, mut el) = link.connect("watch").await?;
    client
        .subscribe(topics.events_filter(), QoS::AtLeastOnce)
        .await?;
    client.subscribe(topics.state(), QoS::AtLeastOnce).await?;
    let mut c = Continuity::default();
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    loop {
        if count.is_some_and(|n| c.distinct() >= n) {
            break;
        }
        let ev = match deadline {
            Some(d) => match tokio::time::timeout_at(d, el.poll()).await {
                Ok(ev) => ev,
                Err(_) => break,
            },
            None => el.poll().await,
        };
        match ev {
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                if p.topic == topics.state() {
                    out(&format!("state {v}"));
                    continue;
                }
                let Some(seq) = v["seq"].as_u64() else {
                    out(&format!("malformed event on {}", p.topic));
                    continue;
                };
                let note = c.see(seq);
                let kind = v["kind"].as_str().unwrap_or("?");
                if data {
                    out(&format!("{seq} {kind} {}", v["data"]));
                } else {
                    out(&format!("{seq} {kind}"));
                }
                if let Some(n) = note {
                    out(&n);
                }
            }
            Ok(Event::Incoming(Incoming::SubAck(_))) => out("subscribed"),
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                // A reconnection: subscribe again (clean session).
                let _ = client.try_subscribe(topics.events_filter(), QoS::AtLeastOnce);
                let _ = client.try_subscribe(topics.state(), QoS::AtLeastOnce);
            }
            Ok(_) => {}
            Err(e) => {
                out(&format!("connection: {e}"));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let gaps = c.open_gaps();
    out(&format!(
        "summary: {} events, {} duplicates, {} gaps{}",
        c.distinct(),
        c.duplicates,
        gaps.len(),
        c.seen
            .first()
            .zip(c.seen.last())
            .map(|(a, b)| format!(", seq {a}..={b}"))
            .unwrap_or_default()
    ));
    Ok(if gaps.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn send(link: Link, file: PathBuf, timeout: Duration) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let cmd: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", file.display()))?;
    let id = cmd["id"]
        .as_str()
        .with_context(|| format!("{}: the command has no string `id`", file.display()))?
        .to_string();
    let topics = link.topics();
    let (client, mut el) = link.connect("send").await?;
    client
        .subscribe(topics.event("ack"), QoS::AtLeastOnce)
        .await?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let ev = tokio::time::timeout_at(deadline, el.poll())
            .await
            .map_err(|_| anyhow::anyhow!("no ack for `{id}` within {}s", timeout.as_secs()))?
            .context("mqtt connection")?;
        match ev {
            Event::Incoming(Incoming::SubAck(_)) => {
                client
                    .publish(topics.cmd(), QoS::AtLeastOnce, false, text.clone())
                    .await?;
            }
            Event::Incoming(Incoming::Publish(p)) => {
                let v: Value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                if v["data"]["ref"].as_str() == Some(id.as_str()) {
                    out(&v.to_string());
                    let _ = client.disconnect().await;
                    return Ok(if v["data"]["ok"] == Value::Bool(true) {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    });
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuity_counts_duplicates_and_gaps() {
        let mut c = Continuity::default();
        for s in [1, 2, 2, 3, 6, 4, 7] {
            c.see(s);
        }
        assert_eq!(c.duplicates, 1);
        assert_eq!(c.gaps, vec![(4, 5)]);
        assert_eq!(c.open_gaps(), vec![(4, 5)]);
        c.see(5);
        assert!(c.open_gaps().is_empty());
        assert_eq!(c.distinct(), 7);
    }
}
