//! Head-office order commands (`order.create`, `order.update`, `order.cancel`): validated
//! completely before anything changes, then applied in the transaction that records the
//! command as handled.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::config::{MAX_SLA_S, OrdersConfig, RecallAction, StepSpec, is_key};
use super::model::{self, Customer, NewOrder, OrderError, OrderUpdate};
use crate::store::{StoreError, Tx};

/// A validated order command.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderCmd {
    /// `order.create`
    Create(Box<NewOrder>),
    /// `order.update`
    Update(Box<OrderUpdate>),
    /// `order.cancel`
    Cancel {
        /// Order id.
        id: String,
        /// Why.
        reason: Option<String>,
    },
}

/// Parse and validate the `data` of an `order.*` command. The error names every problem.
pub fn parse(
    kind: &str,
    data: &Map<String, Value>,
    cfg: &OrdersConfig,
) -> Result<OrderCmd, String> {
    let mut f = Fields::new(data);
    let cmd = match kind {
        "order.create" => {
            let id = f.order_id();
            let business_type = f.key_str("business_type");
            let title = f.opt_string("title", 100);
            let channel = f.opt_string("channel", 32);
            let priority = f.opt_string("priority", 32);
            let customer = f.customer(true);
            let appointment_at = f.opt_time("appointment_at");
            let fields = f.opt_object("fields");
            let steps = f.opt_steps(cfg);
            let template = business_type.as_deref().and_then(|b| cfg.template(b));
            if !data.contains_key("steps") && template.is_none() {
                if let Some(b) = &business_type {
                    f.problems.push(format!(
                        "`business_type`: no step template for `{b}` in this branch; give `steps`"
                    ));
                }
            }
            f.finish()?;
            let business_type = business_type.unwrap_or_default();
            OrderCmd::Create(Box::new(NewOrder {
                id: id.unwrap_or_default(),
                title: title
                    .or_else(|| template.map(|t| t.title.clone()))
                    .unwrap_or_else(|| business_type.clone()),
                steps: steps
                    .or_else(|| template.map(|t| t.steps.clone()))
                    .unwrap_or_default(),
                business_type,
                channel: channel.unwrap_or_else(|| "app".into()),
                priority: priority.unwrap_or_else(|| "appointment".into()),
                customer: customer.unwrap_or(Customer {
                    name: String::new(),
                    phone: None,
                    id_number: None,
                }),
                appointment_at,
                fields: fields.unwrap_or_default(),
            }))
        }
        "order.update" => {
            let id = f.order_id();
            let u = OrderUpdate {
                id: String::new(),
                title: f.opt_string("title", 100),
                channel: f.opt_string("channel", 32),
                priority: f.opt_string("priority", 32),
                customer: f.customer(false),
                appointment_at: f.opt_time("appointment_at"),
                fields: f.opt_object("fields"),
                steps: f.opt_steps(cfg),
            };
            if f.problems.is_empty() && f.data.len() == 1 {
                f.problems.push("nothing to change".into());
            }
            f.finish()?;
            OrderCmd::Update(Box::new(OrderUpdate {
                id: id.unwrap_or_default(),
                ..u
            }))
        }
        "order.cancel" => {
            let id = f.order_id();
            let reason = f.opt_string("reason", 200);
            f.finish()?;
            OrderCmd::Cancel {
                id: id.unwrap_or_default(),
                reason,
            }
        }
        k => return Err(format!("unknown command kind `{k}`")),
    };
    Ok(cmd)
}

/// Apply a validated command. The inner `Err` is a refusal against the current state
/// (nothing changed).
pub fn apply(
    tx: &mut Tx<'_>,
    command_id: &str,
    cmd: OrderCmd,
) -> Result<Result<(), String>, StoreError> {
    let r = match cmd {
        OrderCmd::Create(o) => model::create(tx, &o, Some(command_id)),
        OrderCmd::Update(u) => model::update(tx, &u, Some(command_id)),
        OrderCmd::Cancel { id, reason } => {
            model::cancel(tx, &id, reason.as_deref(), Some(command_id))
        }
    };
    match r {
        Ok(()) => Ok(Ok(())),
        Err(OrderError::Store(e)) => Err(e),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// A strict reader of a command's `data`: every problem collected, unknown keys refused.
struct Fields<'a> {
    data: &'a Map<String, Value>,
    used: Vec<&'static str>,
    problems: Vec<String>,
}

impl<'a> Fields<'a> {
    fn new(data: &'a Map<String, Value>) -> Self {
        Fields {
            data,
            used: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.data.get(key).filter(|v| !v.is_null())
    }

    fn order_id(&mut self) -> Option<String> {
        match self.get("order_id") {
            None => {
                self.problems.push("`order_id` is required".into());
                None
            }
            Some(Value::String(s))
                if !s.is_empty()
                    && s.len() <= 64
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                Some(s.clone())
            }
            Some(_) => {
                self.problems
                    .push("`order_id` must be 1–64 letters, digits, '-' or '_'".into());
                None
            }
        }
    }

    fn key_str(&mut self, key: &'static str) -> Option<String> {
        match self.get(key) {
            None => {
                self.problems.push(format!("`{key}` is required"));
                None
            }
            Some(Value::String(s)) if is_key(s) => Some(s.clone()),
            Some(_) => {
                self.problems.push(format!(
                    "`{key}` must be lower-case letters, digits or '_' (at most 64)"
                ));
                None
            }
        }
    }

    fn opt_string(&mut self, key: &'static str, max: usize) -> Option<String> {
        text(self.get(key), key, max, &mut self.problems)
    }

    fn opt_time(&mut self, key: &'static str) -> Option<DateTime<Utc>> {
        match self.get(key)? {
            Value::String(s) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(_) => {
                    self.problems.push(format!(
                        "`{key}` must be an RFC 3339 time, e.g. 2026-11-23T09:30:00+08:00"
                    ));
                    None
                }
            },
            _ => {
                self.problems
                    .push(format!("`{key}` must be an RFC 3339 time string"));
                None
            }
        }
    }

    fn opt_object(&mut self, key: &'static str) -> Option<Map<String, Value>> {
        match self.get(key)? {
            Value::Object(m) if m.len() <= 100 => Some(m.clone()),
            _ => {
                self.problems
                    .push(format!("`{key}` must be an object of at most 100 entries"));
                None
            }
        }
    }

    fn customer(&mut self, required: bool) -> Option<Customer> {
        let v = match self.get("customer") {
            None => {
                if required {
                    self.problems.push("`customer` is required".into());
                }
                return None;
            }
            Some(Value::Object(m)) => m,
            Some(_) => {
                self.problems.push("`customer` must be an object".into());
                return None;
            }
        };
        let mut p = Vec::new();
        for k in v.keys() {
            if !["name", "phone", "id_number"].contains(&k.as_str()) {
                p.push(format!("`customer.{k}`: unknown key"));
            }
        }
        let name = match v.get("name").filter(|x| !x.is_null()) {
            None => {
                p.push("`customer.name` is required".into());
                None
            }
            some => text(some, "customer.name", 100, &mut p),
        };
        let phone = text(
            v.get("phone").filter(|x| !x.is_null()),
            "customer.phone",
            32,
            &mut p,
        );
        if let Some(ph) = &phone {
            if !ph
                .chars()
                .all(|c| c.is_ascii_digit() || c == '+' || c == '-' || c == ' ')
            {
                p.push("`customer.phone` must be digits, '+', '-' or spaces".into());
            }
        }
        let id_number = text(
            v.get("id_number").filter(|x| !x.is_null()),
            "customer.id_number",
            18,
            &mut p,
        );
        if let Some(n) = &id_number {
            if let Err(e) = branchd_drivers::checks::validate_citizen_id(n) {
                p.push(format!(
                    "`customer.id_number` is not a valid ID number: {e}"
                ));
            }
        }
        let ok = p.is_empty();
        self.problems.extend(p);
        ok.then(|| Customer {
            name: name.unwrap_or_default(),
            phone,
            id_number,
        })
    }

    fn opt_steps(&mut self, cfg: &OrdersConfig) -> Option<Vec<StepSpec>> {
        let v = self.get("steps")?;
        let Some(arr) = v.as_array().filter(|a| (1..=20).contains(&a.len())) else {
            self.problems
                .push("`steps` must be a list of 1–20 steps".into());
            return None;
        };
        let mut out: Vec<StepSpec> = Vec::new();
        let mut keys: Vec<&str> = Vec::new();
        let mut p = Vec::new();
        for (i, s) in arr.iter().enumerate() {
            let Some(m) = s.as_object() else {
                p.push(format!("`steps[{i}]` must be an object"));
                continue;
            };
            for k in m.keys() {
                if ![
                    "key",
                    "name",
                    "customer_label",
                    "sla_s",
                    "near_timeout_pct",
                    "recall_after_s",
                    "recall_action",
                ]
                .contains(&k.as_str())
                {
                    p.push(format!("`steps[{i}].{k}`: unknown key"));
                }
            }
            let key = match m.get("key").and_then(Value::as_str) {
                Some(k) if is_key(k) => Some(k.to_string()),
                _ => {
                    p.push(format!(
                        "`steps[{i}].key` must be lower-case letters, digits or '_' (at most 64)"
                    ));
                    None
                }
            };
            if let Some(k) = m.get("key").and_then(Value::as_str) {
                if keys.contains(&k) {
                    p.push(format!("`steps[{i}].key`: duplicate step `{k}`"));
                }
                keys.push(k);
            }
            let name = text(
                m.get("name").filter(|x| !x.is_null()),
                "steps[].name",
                64,
                &mut p,
            );
            let label = text(
                m.get("customer_label").filter(|x| !x.is_null()),
                "steps[].customer_label",
                64,
                &mut p,
            );
            let int = |k: &str, lo: i64, hi: i64, p: &mut Vec<String>| -> Option<i64> {
                let v = m.get(k).filter(|x| !x.is_null())?;
                match v.as_i64() {
                    Some(n) if (lo..=hi).contains(&n) => Some(n),
                    _ => {
                        p.push(format!("`steps[{i}].{k}` must be an integer {lo}–{hi}"));
                        None
                    }
                }
            };
            let sla = int("sla_s", 1, MAX_SLA_S, &mut p);
            if sla.is_none() && m.get("sla_s").is_none_or(Value::is_null) {
                p.push(format!("`steps[{i}].sla_s` is required"));
            }
            let near = int("near_timeout_pct", 1, 99, &mut p);
            let recall_after = int("recall_after_s", 0, MAX_SLA_S, &mut p);
            let action = match m.get("recall_action").filter(|x| !x.is_null()) {
                None => Some(cfg.recall_action),
                Some(a) => {
                    let r = a.as_str().and_then(RecallAction::parse);
                    if r.is_none() {
                        p.push(format!(
                            "`steps[{i}].recall_action` must be \"pool\" or \"escalate\""
                        ));
                    }
                    r
                }
            };
            if let (Some(key), Some(sla), Some(action)) = (key, sla, action) {
                out.push(StepSpec {
                    name: name.unwrap_or_else(|| key.clone()),
                    key,
                    customer_label: label,
                    sla_s: sla as u32,
                    near_pct: near.map(|n| n as u8).unwrap_or(cfg.near_pct),
                    recall_after_s: recall_after.map(|r| r as u32).unwrap_or(cfg.recall_after_s),
                    recall_action: action,
                });
            }
        }
        let ok = p.is_empty();
        self.problems.extend(p);
        ok.then_some(out)
    }

    fn finish(self) -> Result<(), String> {
        let mut problems = self.problems;
        for k in self.data.keys() {
            if !self.used.contains(&k.as_str()) {
                problems.push(format!("unknown key `{k}`"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

fn text(v: Option<&Value>, key: &str, max: usize, problems: &mut Vec<String>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() && s.chars().count() <= max => Some(s.clone()),
        _ => {
            problems.push(format!(
                "`{key}` must be a non-empty string of at most {max} characters"
            ));
            None
        }
    }
}
