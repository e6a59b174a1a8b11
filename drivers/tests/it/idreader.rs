//! SAM ID reader: the specification's frames byte for byte, and a client on a PTY.

use std::time::Duration;

use branchd_drivers::idreader::sim::{IdReaderSim, ReplyFault, answer};
use branchd_drivers::idreader::{
    CardText, Gender, IdReader, IdReaderError, Reply, Request, Sw3, Validity, decode_frame,
    nation_name,
};
use chrono::NaiveDate;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

#[test]
fn command_frames() {
    let cases = [
        (Request::SamStatus, "AA AA AA 96 69 00 03 11 FF ED"),
        (Request::Find, "AA AA AA 96 69 00 03 20 01 22"),
        (Request::Select, "AA AA AA 96 69 00 03 20 02 21"),
        (Request::Read, "AA AA AA 96 69 00 03 30 01 32"),
    ];
    for (req, wire) in cases {
        assert_eq!(req.frame(), hex(wire), "{req:?}");
    }
}

#[test]
fn reply_frames() {
    let card = Some((CardText::sample(), vec![0x5A; 1024]));
    let cases: [(Request, bool, &str); 3] = [
        (
            Request::Find,
            true,
            "AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97",
        ),
        (Request::Find, false, "AA AA AA 96 69 00 04 00 00 80 84"),
        (
            Request::Select,
            true,
            "AA AA AA 96 69 00 0C 00 00 90 00 00 00 00 00 00 00 00 9C",
        ),
    ];
    for (req, present, wire) in cases {
        let reply = answer(&req.body(), if present { card.as_ref() } else { None });
        assert_eq!(reply.frame(), hex(wire), "{req:?} present={present}");
    }
    let read = answer(&Request::Read.body(), card.as_ref()).frame();
    assert!(read.starts_with(&hex("AA AA AA 96 69 05 08 00 00 90 01 00 04 00")));
    assert_eq!(read.len(), 7 + 0x0508);
    let body = decode_frame(&read).unwrap();
    assert_eq!(Reply::from_body(&body).unwrap().sw3, Sw3::Ok);
}

#[test]
fn damaged_frames_are_typed_errors() {
    let mut bad = hex("AA AA AA 96 69 00 04 00 00 80 84");
    *bad.last_mut().unwrap() = 0x85;
    assert!(matches!(
        decode_frame(&bad),
        Err(IdReaderError::Checksum {
            computed: 0x84,
            received: 0x85
        })
    ));
    assert!(matches!(
        decode_frame(&bad[..8]),
        Err(IdReaderError::Truncated)
    ));
}

#[test]
fn text_block_fields() {
    let text = CardText {
        name: "欧阳娜娜".into(),
        gender: Gender::Female,
        nation_code: 5,
        birth: NaiveDate::from_ymd_opt(1988, 7, 30).unwrap(),
        address: "内蒙古自治区呼和浩特市新城区某某路100号".into(),
        id_number: "150102198807303035".into(),
        issuer: "呼和浩特市公安局新城分局".into(),
        valid_from: NaiveDate::from_ymd_opt(2010, 1, 2).unwrap(),
        valid_to: Validity::LongTerm,
    };
    let block = text.encode();
    // name at 0..30 in UCS-2LE: 欧 = U+6B27
    assert_eq!(&block[0..2], &[0x27, 0x6B]);
    assert_eq!(&block[30..32], &[b'2', 0]);
    assert_eq!(&block[32..36], &[b'0', 0, b'5', 0]);
    assert_eq!(&block[204..208], &[0x7F, 0x95, 0x1F, 0x67]); // 长期
    assert_eq!(&block[220..222], &[0x20, 0x00]); // reserved, space-padded
    let parsed = CardText::parse(&block).unwrap();
    assert_eq!(parsed, text);
    assert_eq!(parsed.nation(), Some("维吾尔"));
    let names = [
        (1, Some("汉")),
        (56, Some("基诺")),
        (0, None),
        (57, None),
        (10, Some("朝鲜")),
    ];
    for (code, name) in names {
        assert_eq!(nation_name(code), name, "{code}");
    }
}

#[test]
fn reads_a_card_over_a_pty() {
    let sim = IdReaderSim::spawn(None).unwrap();
    let path = sim.path().to_string_lossy().into_owned();
    let mut reader = IdReader::open(&path, 115_200).unwrap();
    reader.sam_status().unwrap();
    assert_eq!(reader.poll_card().unwrap(), None);

    let photo: Vec<u8> = (0..1024).map(|i| (i % 251) as u8).collect();
    sim.put_card(CardText::sample(), photo.clone());
    std::thread::sleep(Duration::from_millis(50));
    let card = reader.poll_card().unwrap().expect("card");
    assert_eq!(card.text, CardText::sample());
    assert_eq!(card.text.id_number, "321083197812162119");
    assert_eq!(card.photo_wlt, photo);

    // A damaged reply yields an error and no card data; the next poll works again.
    for fault in [ReplyFault::BadChecksum, ReplyFault::Truncate] {
        sim.inject(fault);
        std::thread::sleep(Duration::from_millis(30));
        reader.set_reply_timeout(Duration::from_millis(300));
        let err = reader.poll_card().unwrap_err();
        match fault {
            ReplyFault::BadChecksum => {
                assert!(matches!(err, IdReaderError::Checksum { .. }), "{err}")
            }
            _ => assert!(matches!(err, IdReaderError::Truncated), "{err}"),
        }
        assert!(reader.poll_card().unwrap().is_some());
    }

    sim.take_card();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(reader.poll_card().unwrap(), None);
    let seen = sim.requests();
    assert_eq!(
        &seen[..4],
        &[
            Request::SamStatus,
            Request::Find,
            Request::Find,
            Request::Select
        ]
    );
}
