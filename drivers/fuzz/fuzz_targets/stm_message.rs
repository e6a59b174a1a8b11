//! Arbitrary payloads of every STM-Link packet type into the typed message decoder (the
//! first byte picks the type, the rest is the payload): it must never panic, a decoded
//! message must be of its packet's type, and a decoded message must survive its own
//! encoding: re-encoded and decoded again it is the same message and the same bytes.
#![no_main]

use branchd_drivers::stm::codec::{MAX_PAYLOAD, Packet, PacketType};
use branchd_drivers::stm::message::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&code, payload)) = data.split_first() else {
        return;
    };
    let Some(kind) = PacketType::from_code(code) else {
        return;
    };
    if payload.len() > MAX_PAYLOAD {
        return;
    }
    let packet = Packet::new(7, kind, payload.to_vec());
    let Ok(message) = Message::from_packet(&packet) else {
        return;
    };
    assert_eq!(message.packet_type(), kind);
    // A message decoded from a payload close to the limit may re-encode a little longer
    // (numbers, escapes); the round trip is asserted whenever it fits a frame.
    let Ok(again) = message.to_packet(7) else {
        return;
    };
    assert_eq!(again.kind, kind);
    let decoded = Message::from_packet(&again).expect("an encoded message decodes");
    assert_eq!(decoded.payload(), message.payload());
    assert_eq!(decoded, message);
});
