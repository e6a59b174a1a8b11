//! The lobby's set-up shared by the queue benchmarks (included with
//! `#[path = "common/lobby.rs"] mod lobby;`).

#![allow(dead_code)] // each benchmark uses its own subset

use branchd::queue::{IssueRequest, Queue, Source, counters};
use branchd::users::{self, Role};

/// The lobby's two services, as config text: personal, and corporate weighted 1.2.
pub const SERVICES: &str = r#"
[[services]]
code = "personal"
prefix = "A"
name = "个人业务"
number_width = 5
[[services]]
code = "corporate"
prefix = "B"
name = "对公业务"
number_width = 5
priority_weight = 1.2
"#;

/// The benchmarks' `i`-th ticket: every third for the corporate service, every tenth a
/// VIP's.
pub fn request(i: usize) -> IssueRequest {
    IssueRequest {
        service: if i.is_multiple_of(3) {
            "corporate"
        } else {
            "personal"
        }
        .into(),
        customer_id: None,
        customer_level: i.is_multiple_of(10).then(|| "vip1".to_string()),
        appointment_id: None,
        source: Source::Pad,
    }
}

/// Only an open counter calls: a member of staff opens the three counters.
pub async fn open_counters(store: &branchd::store::Store, q: &Queue) -> anyhow::Result<()> {
    store
        .write(|tx| users::insert_user(tx, "teller", Role::LobbyManager, "unused"))
        .await?;
    for counter in ["1", "2", "3"] {
        q.operate(move |tx, cfg, now| counters::open(tx, cfg, now, counter, "teller"))
            .await?;
    }
    Ok(())
}
