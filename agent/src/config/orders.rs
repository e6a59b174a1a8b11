//! The `[orders]` section: step templates per business type and the timer defaults.
//!
//! ```toml
//! [orders]
//! near_timeout_pct = 80      # near-timeout warning at this share of a step's service time
//! recall_after_s = 300       # after a timeout, recall the order this much later
//! recall_action = "pool"     # "pool": back to the pool; "escalate": to the branch manager
//! overdue_grace_min = 15     # a booked customer not here this long after the time: alert
//!
//! [[orders.templates]]
//! business_type = "account_opening"
//! title = "个人开户"
//! [[orders.templates.steps]]
//! key = "pre_review"
//! name = "预审"
//! customer_label = "资料审核"
//! sla_s = 600
//! ```

use super::Section;

/// What a timeout recall does to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecallAction {
    /// The step is reset and the order returns to the pool for any member of staff.
    Pool,
    /// The step keeps running and the branch manager is alerted.
    Escalate,
}

impl RecallAction {
    /// The name used in config, commands and events.
    pub fn as_str(self) -> &'static str {
        match self {
            RecallAction::Pool => "pool",
            RecallAction::Escalate => "escalate",
        }
    }

    /// Parse a config or command value.
    pub fn parse(s: &str) -> Option<RecallAction> {
        match s {
            "pool" => Some(RecallAction::Pool),
            "escalate" => Some(RecallAction::Escalate),
            _ => None,
        }
    }
}

/// One step of an order, with its service time and timer settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    /// Stable key, e.g. `pre_review`.
    pub key: String,
    /// Name for the staff.
    pub name: String,
    /// Plain words for the customer (default: the name).
    pub customer_label: Option<String>,
    /// Service time in seconds.
    pub sla_s: u32,
    /// Near-timeout warning at this percentage of `sla_s`.
    pub near_pct: u8,
    /// Seconds after the timeout before the recall.
    pub recall_after_s: u32,
    /// What the recall does.
    pub recall_action: RecallAction,
}

/// The steps of one business type.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// Business type, e.g. `account_opening`.
    pub business_type: String,
    /// Display title of orders of this type.
    pub title: String,
    /// Steps in order.
    pub steps: Vec<StepSpec>,
}

/// `[orders]`
#[derive(Debug, Clone, PartialEq)]
pub struct OrdersConfig {
    /// Default near-timeout percentage.
    pub near_pct: u8,
    /// Default recall delay after a timeout.
    pub recall_after_s: u32,
    /// Default recall action.
    pub recall_action: RecallAction,
    /// Step templates per business type.
    pub templates: Vec<Template>,
    /// Minutes after an appointment's time before a customer not yet arrived is reported
    /// late (`order.overdue`).
    pub overdue_grace_min: u32,
    /// Create sample orders at start (the demo).
    pub demo_samples: bool,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        OrdersConfig {
            near_pct: 80,
            recall_after_s: 300,
            recall_action: RecallAction::Pool,
            templates: Vec::new(),
            overdue_grace_min: 15,
            demo_samples: false,
        }
    }
}

impl OrdersConfig {
    /// The template of a business type.
    pub fn template(&self, business_type: &str) -> Option<&Template> {
        self.templates
            .iter()
            .find(|t| t.business_type == business_type)
    }
}

/// Longest service time of a step: one week.
pub const MAX_SLA_S: i64 = 7 * 24 * 3600;

/// Whether `key` is a valid key name (step keys, business types): lower-case letters,
/// digits or `_`, 1–64 long.
pub fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Read `[orders]` (absent: defaults, no templates).
pub fn read(root: &mut Section<'_, '_>) -> Option<OrdersConfig> {
    let mut cfg = OrdersConfig::default();
    let Some(mut s) = root.opt_table("orders") else {
        return Some(cfg);
    };
    let mut ok = true;
    if let Some(p) = s.opt_int("near_timeout_pct", 1..=99) {
        cfg.near_pct = p as u8;
    }
    if let Some(r) = s.opt_int("recall_after_s", 0..=MAX_SLA_S) {
        cfg.recall_after_s = r as u32;
    }
    if let Some(a) = s.opt_str("recall_action") {
        match RecallAction::parse(&a) {
            Some(a) => cfg.recall_action = a,
            None => {
                s.problem(
                    "recall_action",
                    format!("`{a}`: expected \"pool\" or \"escalate\""),
                );
                ok = false;
            }
        }
    }
    if let Some(g) = s.opt_int("overdue_grace_min", 0..=24 * 60) {
        cfg.overdue_grace_min = g as u32;
    }
    cfg.demo_samples = s.opt_bool("demo_samples").unwrap_or(false);
    let defaults = cfg.clone();
    for mut t in s.tables("templates") {
        let business_type = t.req_str("business_type");
        if let Some(b) = &business_type {
            if !is_key(b) {
                t.problem(
                    "business_type",
                    "must be lower-case letters, digits or '_' (at most 64)",
                );
                ok = false;
            } else if cfg.templates.iter().any(|x| &x.business_type == b) {
                t.problem("business_type", format!("duplicate business type `{b}`"));
                ok = false;
            }
        }
        let title = t.opt_str("title");
        let mut steps = Vec::new();
        for mut st in t.tables("steps") {
            match read_step(&mut st, &defaults) {
                Some(step) => {
                    if steps.iter().any(|x: &StepSpec| x.key == step.key) {
                        st.problem("key", format!("duplicate step key `{}`", step.key));
                        ok = false;
                    }
                    steps.push(step);
                }
                None => ok = false,
            }
            st.finish();
        }
        if steps.is_empty() && ok {
            t.problem("steps", "a template needs at least one step");
            ok = false;
        }
        t.finish();
        if let Some(b) = business_type {
            cfg.templates.push(Template {
                title: title.unwrap_or_else(|| b.clone()),
                business_type: b,
                steps,
            });
        }
    }
    s.finish();
    ok.then_some(cfg)
}

fn read_step(s: &mut Section<'_, '_>, d: &OrdersConfig) -> Option<StepSpec> {
    let key = s.req_str("key").filter(|k| {
        let ok = is_key(k);
        if !ok {
            s.problem(
                "key",
                "must be lower-case letters, digits or '_' (at most 64)",
            );
        }
        ok
    });
    let name = s.opt_str("name");
    let customer_label = s.opt_str("customer_label");
    let sla = if s.has("sla_s") {
        s.opt_int("sla_s", 1..=MAX_SLA_S)
    } else {
        s.problem(
            "sla_s",
            "missing required key (expected the service time in seconds)",
        );
        None
    };
    let near = s.opt_int("near_timeout_pct", 1..=99);
    let recall_after = s.opt_int("recall_after_s", 0..=MAX_SLA_S);
    let action = match s.opt_str("recall_action") {
        None => Some(d.recall_action),
        Some(a) => {
            let p = RecallAction::parse(&a);
            if p.is_none() {
                s.problem(
                    "recall_action",
                    format!("`{a}`: expected \"pool\" or \"escalate\""),
                );
            }
            p
        }
    };
    let (key, sla, action) = (key?, sla?, action?);
    Some(StepSpec {
        name: name.unwrap_or_else(|| key.clone()),
        key,
        customer_label,
        sla_s: sla as u32,
        near_pct: near.map(|n| n as u8).unwrap_or(d.near_pct),
        recall_after_s: recall_after.map(|r| r as u32).unwrap_or(d.recall_after_s),
        recall_action: action,
    })
}
