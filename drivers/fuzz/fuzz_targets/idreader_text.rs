//! Arbitrary 256-byte text blocks of an ID card into the text decoder: it must never
//! panic, and a block it accepts must describe a card that encodes to a block decoding to
//! the same card (so nothing it accepts is lost or changed on the way to the store).
#![no_main]

use branchd_drivers::idreader::{CardText, TEXT_LEN, TextError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(card) = CardText::parse(data) else {
        if data.len() != TEXT_LEN {
            assert_eq!(CardText::parse(data), Err(TextError::Length(data.len())));
        }
        return;
    };
    assert_eq!(data.len(), TEXT_LEN);
    assert!(card.nation().is_some());
    let block = card.encode();
    assert_eq!(CardText::parse(&block), Ok(card));
});
