//! Arbitrary answers of an ESC/POS printer to DLE EOT 1–4 into the status parser: it must
//! never panic, accept exactly the bytes with the fixed bits `0xx1xx10`, refuse an unknown
//! query, and a status it accepts must be what a printer in that state answers (the
//! simulator's encoding decodes to the same status).
#![no_main]

use branchd_drivers::printer::{PrinterStatus, StatusError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(&bytes) = data.first_chunk::<4>() else {
        return;
    };
    let fixed = |b: u8| b & 0b1001_0011 == 0b0001_0010;
    match PrinterStatus::from_bytes(bytes) {
        Ok(status) => {
            assert!(bytes.iter().all(|&b| fixed(b)));
            let answers = [1, 2, 3, 4].map(|n| status.byte(n));
            assert_eq!(PrinterStatus::from_bytes(answers), Ok(status));
        }
        Err(StatusError::FixedBits(b)) => {
            assert!(!fixed(b));
            assert_eq!(bytes.iter().find(|&&x| !fixed(x)), Some(&b));
        }
        Err(e) => panic!("unexpected {e}"),
    }
    // The rest as (n, byte) pairs folded into one status, as the client does.
    let mut status = PrinterStatus::default();
    for pair in data[4..].chunks_exact(2) {
        let (n, b) = (pair[0], pair[1]);
        let before = status;
        match status.apply(n, b) {
            Ok(()) => assert!((1..=4).contains(&n) && fixed(b)),
            Err(StatusError::Query(q)) => {
                assert_eq!(q, n);
                assert!(!(1..=4).contains(&n));
                assert_eq!(status, before);
            }
            Err(_) => {
                assert!((1..=4).contains(&n) && !fixed(b));
                assert_eq!(status, before);
            }
        }
    }
});
