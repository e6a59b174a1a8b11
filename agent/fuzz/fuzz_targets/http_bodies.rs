//! Arbitrary request bodies into every JSON body type of the HTTP API, through the
//! router's body reader (`http::route::json_body`, what `Request::json` runs): it must
//! never panic, and a body it accepts must be a single JSON object (not an array of the
//! fields, not trailing data).
#![no_main]

use branchd::http::route::json_body;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn read<T: DeserializeOwned>(data: &[u8]) -> bool {
    match json_body::<T>(data) {
        Ok(_) => {
            let v = serde_json::from_slice::<Value>(data).expect("an accepted body is JSON");
            assert!(v.is_object(), "accepted a body that is not an object");
            true
        }
        Err(e) => {
            assert_eq!(e.code, "invalid_json");
            false
        }
    }
}

fuzz_target!(|data: &[u8]| {
    use branchd::{devices, http, leads, orders, products, queue, rights};
    let _ = [
        read::<http::auth::Login>(data),
        read::<http::auth::KioskLogin>(data),
        read::<orders::NoteBody>(data),
        read::<orders::ReasonBody>(data),
        read::<orders::RatingBody>(data),
        read::<rights::CheckBody>(data),
        read::<rights::RedeemBody>(data),
        read::<queue::IssueBody>(data),
        read::<queue::KioskIssueBody>(data),
        read::<queue::TransferBody>(data),
        read::<queue::MoveBody>(data),
        read::<queue::OpenBody>(data),
        read::<leads::FeedbackBody>(data),
        read::<products::DepositCalc>(data),
        read::<products::WealthCalc>(data),
        read::<products::LoanCalc>(data),
        read::<products::ShowBody>(data),
        read::<devices::CommandBody>(data),
        read::<devices::ResolveBody>(data),
        read::<devices::DecideBody>(data),
    ];
});
