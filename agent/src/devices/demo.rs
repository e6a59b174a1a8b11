//! `branchd demo`: two simulated STMs and one ID card reader on pseudo-terminals, and a
//! script that keeps them busy (transactions, consumables used, an authorisation request
//! about every minute, an open cash jam on STM-01, a card on the reader now and then, and a
//! customer buying the product the lobby manager showed on an STM a little later).

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use branchd_drivers::idreader::CardText;
use branchd_drivers::idreader::sim::IdReaderSim;
use branchd_drivers::stm::sim::sample_auth_request;
use branchd_drivers::stm::{StmSim, StmSimConfig, TxnType};

/// The running demo devices; dropping it stops the script and the simulators.
#[derive(Debug)]
pub struct DemoDevices {
    stop: Arc<AtomicBool>,
    script: Option<JoinHandle<()>>,
}

impl Drop for DemoDevices {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.script.take() {
            let _ = t.join();
        }
    }
}

fn add_device(doc: &mut toml_edit::DocumentMut, id: &str, kind: &str, path: &str) {
    let mut t = toml_edit::Table::new();
    t["id"] = toml_edit::value(id);
    t["kind"] = toml_edit::value(kind);
    t["path"] = toml_edit::value(path);
    match doc
        .entry("devices")
        .or_insert(toml_edit::Item::ArrayOfTables(Default::default()))
    {
        toml_edit::Item::ArrayOfTables(a) => a.push(t),
        other => {
            let mut a = toml_edit::ArrayOfTables::new();
            a.push(t);
            *other = toml_edit::Item::ArrayOfTables(a);
        }
    }
}

/// Start the simulators, add them to the config's `[[devices]]`, start the script.
pub fn prepare(doc: &mut toml_edit::DocumentMut) -> anyhow::Result<Vec<Box<dyn Any + Send>>> {
    let stm1 = StmSim::spawn(StmSimConfig {
        seed: 11,
        ..StmSimConfig::new("STM-01")
    })
    .context("starting the STM-01 simulator")?;
    let mut cfg2 = StmSimConfig::new("STM-02");
    cfg2.seed = 12;
    // Low on U-keys: the demo opens with a consumable alert.
    cfg2.consumables.insert("ukey".into(), 4);
    let stm2 = StmSim::spawn(cfg2).context("starting the STM-02 simulator")?;
    let reader = IdReaderSim::spawn(None).context("starting the ID reader simulator")?;
    add_device(doc, "STM-01", "stm", &stm1.path().display().to_string());
    add_device(doc, "STM-02", "stm", &stm2.path().display().to_string());
    add_device(
        doc,
        "IDR-01",
        "id_reader",
        &reader.path().display().to_string(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let script = std::thread::Builder::new()
        .name("demo-devices".into())
        .spawn(move || run_script(&stm1, &stm2, &reader, &flag))
        .context("starting the demo device script")?;
    Ok(vec![Box::new(DemoDevices {
        stop,
        script: Some(script),
    })])
}

/// Seconds after a product is shown on an STM until the customer at it buys it.
const SALE_AFTER_S: u64 = 15;

/// One tick a second; the simulators live (and die) with this thread.
fn run_script(stm1: &StmSim, stm2: &StmSim, reader: &IdReaderSim, stop: &AtomicBool) {
    let stms = [stm1, stm2];
    let kinds = [
        (TxnType::Withdrawal, 2000),
        (TxnType::Deposit, 5000),
        (TxnType::Transfer, 0),
        (TxnType::IssueCard, 0),
        (TxnType::Statement, 0),
    ];
    let mut t: u64 = 0;
    let mut auth_n = 0;
    // Per STM: product cards seen on its screen, and the sales still to come (due, code).
    let mut shown = [0usize; 2];
    let mut sales: Vec<(u64, usize, String)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        t += 1;
        for (i, stm) in stms.iter().enumerate() {
            let record = stm.record();
            for card in record.shown.iter().skip(shown[i]) {
                sales.push((t + SALE_AFTER_S, i, card.product.code.clone()));
            }
            shown[i] = record.shown.len();
        }
        sales.retain(|(due, i, code)| {
            if *due > t {
                return true;
            }
            stms[*i].sale(code, 50_000);
            false
        });
        if t == 8 {
            stm1.exception("CASH_JAM", "钞箱 C1 卡钞 / cash jam in cassette C1");
        }
        if t.is_multiple_of(17) {
            let stm = stms[(t / 17) as usize % 2];
            let (kind, amount) = kinds[(t / 17) as usize % kinds.len()];
            stm.simple_transaction(kind, amount);
            if kind == TxnType::IssueCard {
                stm.consumable_used("debit_card", 1);
            }
        }
        if t % 60 == 20 {
            auth_n += 1;
            stm2.auth_request(sample_auth_request(
                &format!("R{auth_n:04}"),
                50_000 + 1000 * auth_n,
            ));
        }
        if t % 45 == 30 {
            reader.put_card(CardText::sample(), vec![0x57; 64]);
        }
        if t % 45 == 36 {
            reader.take_card();
        }
        if t % 90 == 50 {
            stm1.consumable_used("receipt_paper_pct", 1);
        }
    }
}
