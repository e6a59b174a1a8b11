//! Arbitrary bytes into the STM-Link stream decoder, in arbitrary chunks: it must never
//! panic, never grow without bound, and only yield packets that re-encode to a frame that
//! decodes to the same packet (i.e. valid CRC, version, type and length).
#![no_main]

use branchd_drivers::stm::codec::{Decoder, MAX_PACKET, Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split).max(1);
    let mut decoder = Decoder::new();
    for part in bytes.chunks(chunk) {
        for packet in decoder.feed(part).into_iter().flatten() {
            let decoded = packet.to_bytes().expect("a decoded packet re-encodes");
            assert!(decoded.len() <= MAX_PACKET);
            let wire = packet.encode().expect("a decoded packet re-encodes");
            assert_eq!(Packet::decode_frame(&wire[..wire.len() - 1]), Ok(packet));
        }
    }
});
