//! `[[services]]`, `[[counters]]` and `[queue]`: the lobby queue's services, counters and rules.

use std::time::Duration;

use super::{Section, Unique};

/// `[[services]]`
#[derive(Debug, Clone)]
pub struct Service {
    /// Code used in the API.
    pub code: String,
    /// Ticket prefix letter(s).
    pub prefix: String,
    /// Chinese name.
    pub name: String,
    /// English name.
    pub name_en: String,
    /// Digits in a ticket number (A001: 3).
    pub number_width: u8,
    /// Weight of this service's tickets in the call order.
    pub priority_weight: f64,
    /// Target wait: a ticket waiting longer raises a queue alert.
    pub target_wait: Duration,
    /// Opening hours in branch-local time (`hours = "08:30-17:00"`); `None`: always open.
    pub hours: Option<(chrono::NaiveTime, chrono::NaiveTime)>,
}

/// `[queue]`: rules of the lobby queue.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Branch-local hour (0–23) at which daily ticket numbering restarts; default 4.
    pub reset_hour: u32,
    /// After this many priority calls in a row, the next call takes a normal ticket; default 3.
    pub fairness_after: u32,
    /// A called ticket recalled this many times becomes a no-show on the next recall; default 2.
    pub no_show_after_recalls: u32,
    /// Service of tickets issued by an ID card swipe; default the first service.
    pub swipe_service: Option<String>,
    /// Assumed service time until real ones have been recorded; default 300 s.
    pub default_service_time: Duration,
    /// How often the ticket printer's status is polled; default 5 s.
    pub printer_poll: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            reset_hour: 4,
            fairness_after: 3,
            no_show_after_recalls: 2,
            swipe_service: None,
            default_service_time: Duration::from_secs(300),
            printer_poll: Duration::from_secs(5),
        }
    }
}

/// `[[counters]]`
#[derive(Debug, Clone)]
pub struct Counter {
    /// Counter id, e.g. `3`.
    pub id: String,
    /// Services it serves.
    pub services: Vec<String>,
    /// Display name.
    pub name: String,
}

pub(super) fn read_services(root: &mut Section<'_, '_>) -> Option<Vec<Service>> {
    let mut codes = Unique::new("service code");
    let mut prefixes = Unique::new("ticket prefix");
    let mut out = Vec::new();
    let mut ok = true;
    for mut s in root.tables("services") {
        let code = s.req_str("code");
        if let Some(c) = &code {
            if !c
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
            {
                s.problem("code", "must be lower-case letters, digits or '_'");
                ok = false;
            }
            ok &= codes.check(&s, "code", c);
        }
        let prefix = s.req_str("prefix");
        if let Some(p) = &prefix {
            if p.len() > 2 || !p.chars().all(|c| c.is_ascii_uppercase()) {
                s.problem("prefix", "must be one or two capital letters");
                ok = false;
            }
            ok &= prefixes.check(&s, "prefix", p);
        }
        let name = s.req_str("name");
        let name_en = s.opt_str("name_en");
        let number_width = s.opt_int("number_width", 2..=5).unwrap_or(3) as u8;
        let priority_weight = s.opt_float("priority_weight", 0.1..=10.0).unwrap_or(1.0);
        let target_wait = Duration::from_secs(
            60 * s
                .opt_int("target_wait_min", 1..=600)
                .map(|v| v as u64)
                .unwrap_or(15),
        );
        let hours = s.opt_parsed("hours", parse_hours);
        s.finish();
        match (code, prefix, name) {
            (Some(code), Some(prefix), Some(name)) => out.push(Service {
                name_en: name_en.unwrap_or_else(|| code.clone()),
                code,
                prefix,
                name,
                number_width,
                priority_weight,
                target_wait,
                hours,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

pub(super) fn read_counters(
    root: &mut Section<'_, '_>,
    services: Option<&[Service]>,
) -> Option<Vec<Counter>> {
    let mut ids = Unique::new("counter id");
    let mut out = Vec::new();
    let mut ok = true;
    for mut s in root.tables("counters") {
        let id = s.req_str("id");
        if let Some(id) = &id {
            ok &= ids.check(&s, "id", id);
        }
        let list = s.opt_str_list("services");
        match &list {
            None => {
                if !s.has("services") {
                    s.problem(
                        "services",
                        "missing required key (expected a list of service codes)",
                    );
                }
                ok = false;
            }
            Some(l) if l.is_empty() => {
                s.problem("services", "a counter must serve at least one service");
                ok = false;
            }
            Some(l) => {
                if let Some(services) = services {
                    for code in l {
                        if !services.iter().any(|sv| &sv.code == code) {
                            s.problem("services", format!("unknown service `{code}`"));
                            ok = false;
                        }
                    }
                }
            }
        }
        let name = s.opt_str("name");
        s.finish();
        match (id, list) {
            (Some(id), Some(services)) => out.push(Counter {
                name: name.unwrap_or_else(|| format!("{id}号窗口")),
                id,
                services,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

pub(super) fn parse_hours(s: &str) -> Result<(chrono::NaiveTime, chrono::NaiveTime), String> {
    let bad = || format!("`{s}`: expected opening hours as \"HH:MM-HH:MM\", e.g. \"08:30-17:00\"");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let t = |x: &str| chrono::NaiveTime::parse_from_str(x.trim(), "%H:%M").map_err(|_| bad());
    let (open, close) = (t(a)?, t(b)?);
    if open >= close {
        return Err(format!(
            "`{s}`: the opening time must come before the closing time"
        ));
    }
    Ok((open, close))
}

pub(super) fn read_queue(
    root: &mut Section<'_, '_>,
    services: Option<&[Service]>,
) -> Option<QueueConfig> {
    let mut q = QueueConfig::default();
    let Some(mut s) = root.opt_table("queue") else {
        return Some(q);
    };
    if let Some(h) = s.opt_int("reset_hour", 0..=23) {
        q.reset_hour = h as u32;
    }
    if let Some(n) = s.opt_int("fairness_after", 1..=50) {
        q.fairness_after = n as u32;
    }
    if let Some(k) = s.opt_int("no_show_after_recalls", 0..=10) {
        q.no_show_after_recalls = k as u32;
    }
    if let Some(code) = s.opt_str("swipe_service") {
        if services.is_some_and(|sv| !sv.iter().any(|x| x.code == code)) {
            s.problem("swipe_service", format!("unknown service `{code}`"));
        }
        q.swipe_service = Some(code);
    }
    if let Some(t) = s.opt_int("default_service_time_s", 10..=7200) {
        q.default_service_time = Duration::from_secs(t as u64);
    }
    if let Some(ms) = s.opt_int("printer_poll_ms", 100..=600_000) {
        q.printer_poll = Duration::from_millis(ms as u64);
    }
    s.finish();
    Some(q)
}
