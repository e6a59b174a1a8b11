//! Arbitrary bytes from a SAM ID reader's serial line into the frame reader, the frame
//! decoder, the reply parser and the read-data parser: none may panic; a frame read from
//! the line starts with the preamble and holds exactly LEN bytes; a decoded frame is the
//! encoding of its body; a parsed reply re-frames to the same frame; a parsed card read
//! has a 256-byte text block that re-encodes to the same card.
#![no_main]

use std::io::Cursor;
use std::time::{Duration, Instant};

use branchd_drivers::idreader::{
    CardText, PREAMBLE, Reply, Request, Sw3, decode_frame, encode_frame, parse_read_data,
    read_frame,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The whole input as the line: the reader resynchronises on the preamble.
    let deadline = Instant::now() + Duration::from_secs(60);
    if let Ok(frame) = read_frame(&mut Cursor::new(data), deadline) {
        assert!(frame.starts_with(&PREAMBLE));
        let len = usize::from(u16::from_be_bytes([frame[5], frame[6]]));
        assert_eq!(frame.len(), 7 + len);
    }

    // The whole input as one frame.
    let Ok(body) = decode_frame(data) else {
        return;
    };
    let framed = encode_frame(&body);
    assert_eq!(framed[..], data[..framed.len()]);
    assert_eq!(
        decode_frame(&framed).expect("an encoded frame decodes"),
        body
    );
    if let Some(request) = Request::from_body(&body) {
        assert_eq!(request.frame(), framed);
    }
    let Ok(reply) = Reply::from_body(&body) else {
        assert!(body.len() < 3);
        return;
    };
    assert_eq!(Sw3::from_byte(reply.sw3.byte()), reply.sw3);
    assert_eq!(reply.frame(), framed);
    if let Ok(card) = parse_read_data(&reply.data) {
        let block = card.text.encode();
        assert_eq!(CardText::parse(&block), Ok(card.text));
    }
});
