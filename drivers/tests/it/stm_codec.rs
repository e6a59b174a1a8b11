//! STM-Link framing: the specification's test vectors and the decoder's promises.

use branchd_drivers::stm::codec::{
    self, Decoder, FrameError, MAX_PAYLOAD, NakReason, Packet, PacketType,
};
use branchd_drivers::stm::{DeviceState, Message, message::Heartbeat};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

#[test]
fn crc_check_value() {
    assert_eq!(codec::crc16(b"123456789"), 0x29B1);
}

#[test]
fn spec_test_vectors() {
    fn check(seq: u8, kind: PacketType, payload: &str, wire: &str) {
        let packet = Packet::new(seq, kind, payload.as_bytes().to_vec());
        let expect = hex(wire);
        assert_eq!(packet.encode().unwrap(), expect, "encode seq {seq}");
        let decoded = Decoder::new().feed(&expect);
        assert_eq!(decoded, vec![Ok(packet)], "decode seq {seq}");
    }
    check(0, PacketType::Ack, "", "02 01 04 7F 74 D4 00");
    check(
        1,
        PacketType::Heartbeat,
        r#"{"state":"in_service","uptime_s":42}"#,
        "2A 01 01 02 7B 22 73 74 61 74 65 22 3A 22 69 6E 5F 73 65 72 76 69 63 65 22 2C 22 75 70 74 69 6D 65 5F 73 22 3A 34 32 7D 11 51 00",
    );
    check(
        2,
        PacketType::Command,
        r#"{"cmd_id":"c-1","op":"sign_in","args":{}}"#,
        "2F 01 02 10 7B 22 63 6D 64 5F 69 64 22 3A 22 63 2D 31 22 2C 22 6F 70 22 3A 22 73 69 67 6E 5F 69 6E 22 2C 22 61 72 67 73 22 3A 7B 7D 7D 8B 51 00",
    );
}

#[test]
fn spec_event_vector_seq_255() {
    let json = r#"{"event_id":"STM-01-7","kind":"exception","ts":"2026-11-22T09:00:00+08:00","code":"CASH_JAM","message":"现金卡钞"}"#;
    let packet = Packet::new(255, PacketType::Event, json.as_bytes().to_vec());
    let wire = packet.encode().unwrap();
    assert!(wire.starts_with(&hex("7C 01 FF 04 7B 22 65 76 65 6E 74 5F 69 64")));
    assert!(wire.ends_with(&hex(
        "22 E7 8E B0 E9 87 91 E5 8D A1 E9 92 9E 22 7D 39 88 00"
    )));
    // The typed message serialises to exactly the same text.
    let msg = Message::from_packet(&packet).unwrap();
    assert_eq!(msg.payload(), json.as_bytes());
    assert_eq!(msg.to_packet(255).unwrap().encode().unwrap(), wire);
}

#[test]
fn typed_messages_match_spec_json() {
    let hb = Message::Heartbeat(Heartbeat {
        state: DeviceState::InService,
        uptime_s: 42,
    });
    assert_eq!(hb.payload(), br#"{"state":"in_service","uptime_s":42}"#);
    fn check(kind: PacketType, json: &str) {
        let packet = Packet::new(3, kind, json.as_bytes().to_vec());
        let msg = Message::from_packet(&packet).unwrap_or_else(|e| panic!("{json}: {e}"));
        let back: serde_json::Value = serde_json::from_slice(&msg.payload()).unwrap();
        let orig: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(back, orig, "round trip of {json}");
    }
    check(
        PacketType::Hello,
        r#"{"device_id":"STM-01","model":"X","firmware":"1","modules":["card_reader","cash_in"]}"#,
    );
    check(
        PacketType::Status,
        r#"{"state":"in_service","modules":{"card_reader":"ok","cash_out":"warn","receipt_printer":"fault","ukey_dispenser":"disabled"},"consumables":{"debit_card":120,"ukey":35,"cheque_book":10,"deposit_cert":48,"receipt_paper_pct":62},"cash":{"cycle_id":"2026-11-22-1","cassettes":[{"id":"C1","denom":100,"count":1800},{"id":"C2","denom":50,"count":400}],"deposited":52300,"dispensed":181000}}"#,
    );
    check(
        PacketType::Event,
        r#"{"event_id":"E1","kind":"transaction","ts":"2026-11-22T09:00:00+08:00","txn_id":"T1","txn_type":"withdrawal","amount":500,"ok":true,"duration_s":95}"#,
    );
    check(
        PacketType::Event,
        r#"{"event_id":"E2","kind":"auth_request","ts":"2026-11-22T09:00:00+08:00","request_id":"R1","txn_type":"transfer","customer":{"name":"张三","id_number_masked":"3201**********1234"},"elements":{"amount":50000,"payee":"x"},"reason":"amount_over_limit"}"#,
    );
    check(
        PacketType::Event,
        r#"{"event_id":"E3","kind":"consumable_used","ts":"2026-11-22T09:00:00+08:00","item":"debit_card","count":1}"#,
    );
    check(
        PacketType::Event,
        r#"{"event_id":"E4","kind":"door_open","ts":"2026-11-22T09:00:00+08:00","door":"safe","n":[1,2]}"#,
    );
    check(
        PacketType::Command,
        r#"{"cmd_id":"c-9","op":"auth_result","args":{"request_id":"R1","decision":"redo","redo":["face"],"by":"u1","comment":""}}"#,
    );
    check(
        PacketType::Result,
        r#"{"cmd_id":"c-9","ok":false,"error":"unknown op","data":null}"#,
    );
    check(PacketType::Nak, r#"{"reason":"crc"}"#);
}

#[test]
fn unknown_event_kind_is_kept_raw() {
    let json = r#"{"event_id":"E4","kind":"door_open","ts":"t","door":"safe"}"#;
    let msg = Message::from_packet(&Packet::new(0, PacketType::Event, json.into())).unwrap();
    let Message::Event(e) = msg else {
        panic!("not an event")
    };
    assert_eq!(e.body.kind(), "door_open");
}

/// Builds the decoded bytes of a packet with arbitrary header fields and a valid CRC.
fn raw(version: u8, seq: u8, kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![version, seq, kind];
    b.extend_from_slice(payload);
    let crc = codec::crc16(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

fn frame(decoded: &[u8]) -> Vec<u8> {
    let mut w = cobs::encode_vec(decoded);
    w.push(0);
    w
}

#[test]
fn rejected_frames_name_their_nak_reason() {
    fn check(wire: Vec<u8>, expect: NakReason) {
        let got = Decoder::new().feed(&wire);
        assert_eq!(got.len(), 1, "{wire:02X?}");
        let err = got[0].clone().expect_err("must be rejected");
        assert_eq!(err.nak_reason(), expect, "{err}");
    }
    let mut bad_crc = raw(1, 5, 0x02, b"{}");
    *bad_crc.last_mut().unwrap() ^= 0x01;
    check(frame(&bad_crc), NakReason::Crc);
    check(frame(&raw(2, 5, 0x02, b"{}")), NakReason::Version);
    check(frame(&raw(1, 5, 0x05, b"{}")), NakReason::Type);
    check(frame(&raw(1, 5, 0x02, &[])[..4]), NakReason::Length);
    check(
        frame(&raw(1, 5, 0x02, &vec![b'a'; MAX_PAYLOAD + 1])),
        NakReason::Length,
    );
    check(vec![0x05, 0x01, 0x00], NakReason::Crc); // COBS block runs past the frame
    // Payload that is not the type's JSON is a message-level rejection.
    let p = Packet::from_bytes(&raw(1, 5, 0x02, b"{\"state\":1}")).unwrap();
    assert_eq!(
        Message::from_packet(&p).unwrap_err().nak_reason(),
        NakReason::Json
    );
}

#[test]
fn max_size_packets() {
    let max = Packet::new(9, PacketType::Event, vec![b'x'; MAX_PAYLOAD]);
    let wire = max.encode().unwrap();
    assert_eq!(Decoder::new().feed(&wire), vec![Ok(max)]);
    let too_big = Packet::new(9, PacketType::Event, vec![b'x'; MAX_PAYLOAD + 1]);
    assert!(too_big.encode().is_err());
    // A run without delimiter longer than any packet is dropped, then decoding resumes.
    let mut d = Decoder::new();
    assert!(d.feed(&vec![0x42; 10_000]).is_empty());
    let ack = Packet::ack(3);
    let got = d.feed(&[&[0u8][..], &ack.encode().unwrap()].concat());
    assert_eq!(got, vec![Err(FrameError::TooLong), Ok(ack)]);
}

#[test]
fn cobs_edge_cases() {
    // (decoded payload, description) — each must survive encode → decode, and the COBS
    // body must contain no zero.
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "empty payload"),
        (vec![0; 10], "all zeros"),
        (vec![0x11; 249], "payload making a 254-byte non-zero run"),
        (vec![0x11; 250], "payload making a 255-byte non-zero run"),
        (vec![0x11; 251], "256"),
        (
            [vec![0x11; 253], vec![0], vec![0x22; 300]].concat(),
            "zero after long run",
        ),
        (vec![0xFF; 1000], "0xFF bytes"),
    ];
    for (payload, what) in cases {
        let p = Packet::new(0x7A, PacketType::Status, payload);
        let wire = p.encode().unwrap();
        assert!(
            !wire[..wire.len() - 1].contains(&0),
            "{what}: zero inside frame"
        );
        assert_eq!(Decoder::new().feed(&wire), vec![Ok(p)], "{what}");
    }
    // Both encodings of a block that ends exactly after a 254-byte run decode alike:
    // with (Cheshire's original) and without the trailing 0x01 code.
    let data = raw(1, 1, 0x03, &[0x33; 249]); // 254 bytes, no zero
    assert!(!data.contains(&0));
    let mut canonical = vec![0xFF];
    canonical.extend_from_slice(&data);
    let mut with_tail = canonical.clone();
    with_tail.push(0x01);
    for wire in [canonical, with_tail] {
        let got = Decoder::new().feed(&[&wire[..], &[0]].concat());
        assert!(
            matches!(&got[..], [Ok(p)] if p.payload == vec![0x33; 249]),
            "{got:?}"
        );
    }
}

/// xorshift64*: a small seeded generator for reproducible noise.
struct Prng(u64);
impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn noise_never_yields_a_corrupted_packet() {
    let mut rng = Prng(0x5EED_1234_ABCD_0001);
    for round in 0..300 {
        let mut stream = Vec::new();
        let mut sent = Vec::new();
        for i in 0..8u8 {
            // Noise, sometimes with zeros, sometimes bit-flipped copies of a real frame.
            let noise_len = (rng.next() % 40) as usize;
            for _ in 0..noise_len {
                stream.push(rng.next() as u8);
            }
            let len = (rng.next() % 200) as usize;
            let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let p = Packet::new(i, PacketType::Event, payload);
            let mut wire = p.encode().unwrap();
            if rng.next().is_multiple_of(3) {
                let at = (rng.next() as usize) % (wire.len() - 1);
                wire[at] ^= 1 << (rng.next() % 8);
                stream.push(0);
                stream.extend_from_slice(&wire);
            } else {
                stream.push(0);
                stream.extend_from_slice(&wire);
                sent.push(p);
            }
        }
        let mut d = Decoder::new();
        let mut got = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let n = 1 + (rng.next() % 64) as usize;
            let end = (at + n).min(stream.len());
            got.extend(d.feed(&stream[at..end]).into_iter().filter_map(Result::ok));
            at = end;
        }
        // Every delivered packet is one that was sent intact (CRC-16 collisions aside,
        // which a corrupted copy of a real frame would need to hit by chance).
        for p in &got {
            assert!(
                sent.contains(p),
                "round {round}: corrupted packet delivered: {p:?}"
            );
        }
        for p in &sent {
            assert!(got.contains(p), "round {round}: intact packet lost: {p:?}");
        }
    }
}
