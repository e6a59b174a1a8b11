//! Head-office order commands (`order.create`, `order.update`, `order.cancel`): validated
//! completely before anything changes, then applied in the transaction that records the
//! command as handled.

use serde_json::{Map, Value};

use super::model::{self, Customer, NewOrder, OrderError, OrderUpdate};
use crate::command::{Fields, is_key, text};
use crate::config::orders::{MAX_SLA_S, OrdersConfig, RecallAction, StepSpec};
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
            let id = f.id("order_id");
            let business_type = f.key("business_type");
            let title = f.opt_string("title", 100);
            let channel = f.opt_string("channel", 32);
            let priority = f.opt_string("priority", 32);
            let customer = customer(&mut f, true);
            let appointment_at = f.opt_time("appointment_at");
            let fields = f.opt_object("fields", 100);
            let steps = steps(&mut f, cfg);
            let template = business_type.as_deref().and_then(|b| cfg.template(b));
            if !data.contains_key("steps")
                && template.is_none()
                && let Some(b) = &business_type
            {
                f.problem(format!(
                    "`business_type`: no step template for `{b}` in this branch; give `steps`"
                ));
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
            let id = f.id("order_id");
            let u = OrderUpdate {
                id: String::new(),
                title: f.opt_string("title", 100),
                channel: f.opt_string("channel", 32),
                priority: f.opt_string("priority", 32),
                customer: customer(&mut f, false),
                appointment_at: f.opt_time("appointment_at"),
                fields: f.opt_object("fields", 100),
                steps: steps(&mut f, cfg),
            };
            if f.is_clean() && f.len() == 1 {
                f.problem("nothing to change");
            }
            f.finish()?;
            OrderCmd::Update(Box::new(OrderUpdate {
                id: id.unwrap_or_default(),
                ..u
            }))
        }
        "order.cancel" => {
            let id = f.id("order_id");
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

/// `customer`: name (required), phone, ID number (checked by GB 11643).
fn customer(f: &mut Fields<'_>, required: bool) -> Option<Customer> {
    let v = match f.get("customer") {
        None => {
            if required {
                f.problem("`customer` is required");
            }
            return None;
        }
        Some(Value::Object(m)) => m,
        Some(_) => {
            f.problem("`customer` must be an object");
            return None;
        }
    };
    let mut p = Vec::new();
    for k in v.keys() {
        if !["name", "phone", "id_number"].contains(&k.as_str()) {
            p.push(format!("`customer.{k}`: unknown key"));
        }
    }
    let get = |k: &str| v.get(k).filter(|x| !x.is_null());
    let name = match get("name") {
        None => {
            p.push("`customer.name` is required".into());
            None
        }
        some => text(some, "customer.name", 100, &mut p),
    };
    let phone = text(get("phone"), "customer.phone", 32, &mut p);
    if let Some(ph) = &phone
        && !ph
            .chars()
            .all(|c| c.is_ascii_digit() || c == '+' || c == '-' || c == ' ')
    {
        p.push("`customer.phone` must be digits, '+', '-' or spaces".into());
    }
    let id_number = text(get("id_number"), "customer.id_number", 18, &mut p);
    if let Some(n) = &id_number
        && let Err(e) = branchd_drivers::checks::validate_citizen_id(n)
    {
        p.push(format!(
            "`customer.id_number` is not a valid ID number: {e}"
        ));
    }
    let ok = p.is_empty();
    f.problems(p);
    ok.then(|| Customer {
        name: name.unwrap_or_default(),
        phone,
        id_number,
    })
}

/// `steps`: 1–20 steps, each with a key and a service time; timer settings default to
/// `[orders]`.
fn steps(f: &mut Fields<'_>, cfg: &OrdersConfig) -> Option<Vec<StepSpec>> {
    let v = f.get("steps")?;
    let Some(arr) = v.as_array().filter(|a| (1..=20).contains(&a.len())) else {
        f.problem("`steps` must be a list of 1–20 steps");
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
        let get = |k: &str| m.get(k).filter(|x| !x.is_null());
        let name = text(get("name"), "steps[].name", 64, &mut p);
        let label = text(get("customer_label"), "steps[].customer_label", 64, &mut p);
        let int = |k: &str, lo: i64, hi: i64, p: &mut Vec<String>| -> Option<i64> {
            let v = get(k)?;
            match v.as_i64() {
                Some(n) if (lo..=hi).contains(&n) => Some(n),
                _ => {
                    p.push(format!("`steps[{i}].{k}` must be an integer {lo}–{hi}"));
                    None
                }
            }
        };
        let sla = int("sla_s", 1, MAX_SLA_S, &mut p);
        if sla.is_none() && get("sla_s").is_none() {
            p.push(format!("`steps[{i}].sla_s` is required"));
        }
        let near = int("near_timeout_pct", 1, 99, &mut p);
        let recall_after = int("recall_after_s", 0, MAX_SLA_S, &mut p);
        let action = match get("recall_action") {
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
    f.problems(p);
    ok.then_some(out)
}
