//! The lobby's set-up shared by the queue benchmarks (included with
//! `#[path = "common/lobby.rs"] mod lobby;`).

use branchd::queue::{Queue, counters};
use branchd::users::{self, Role};

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
