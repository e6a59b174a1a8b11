//! ESC/POS: golden ticket bytes, status bits, and a ticket printed on a PTY simulator.

use std::time::Duration;

use branchd_drivers::printer::sim::{Op, Paper, PrinterSim, parse_op};
use branchd_drivers::printer::{
    Printer, PrinterError, PrinterPort, PrinterStatus, Receipt, ReceiptStep, StatusError,
    TextEncoding, Ticket, cmd,
};

fn ticket() -> Ticket {
    Ticket {
        bank_name: "示例银行".into(),
        branch_name: "南京路支行".into(),
        service_zh: "个人业务".into(),
        service_en: "Personal".into(),
        number: "A023".into(),
        people_ahead: 5,
        estimated_wait_min: 12,
        issued_at: "2026-11-22 09:05".into(),
        qr_data: "https://q.example/t/A023".into(),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn golden_ticket_bytes() {
    let bytes = ticket().render(TextEncoding::Gb18030);
    let head: &[u8] = &[0x1B, 0x40, 0x1B, 0x61, 0x01, 0x1C, 0x26, 0x1B, 0x45, 0x01];
    assert!(bytes.starts_with(head));
    // 示例银行 in GB18030.
    assert_eq!(
        &bytes[head.len()..head.len() + 9],
        &[0xCA, 0xBE, 0xC0, 0xFD, 0xD2, 0xF8, 0xD0, 0xD0, 0x0A]
    );
    // The number at 4×4, bold.
    let big = [&[0x1D, 0x21, 0x33, 0x1B, 0x45, 0x01][..], b"A023\n"].concat();
    assert!(find(&bytes, &big).is_some());
    // QR: model 2, module 6, EC M, store with pL pH = 24 + 3, print.
    let qr = [
        &[0x1D, 0x28, 0x6B, 0x04, 0x00, 0x31, 0x41, 0x32, 0x00][..],
        &[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x43, 0x06],
        &[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x45, 0x31],
        &[0x1D, 0x28, 0x6B, 27, 0x00, 0x31, 0x50, 0x30],
        b"https://q.example/t/A023",
        &[0x1D, 0x28, 0x6B, 0x03, 0x00, 0x31, 0x51, 0x30],
    ]
    .concat();
    assert!(find(&bytes, &qr).is_some());
    assert!(bytes.ends_with(&[0x1B, 0x64, 0x04, 0x1D, 0x56, 0x01]));
    // UTF-8 printers get UTF-8 and no Chinese mode.
    let utf8 = ticket().render(TextEncoding::Utf8);
    assert!(find(&utf8, "示例银行".as_bytes()).is_some());
    assert!(find(&utf8, &cmd::CHINESE_ON).is_none());
}

#[test]
fn qr_store_length_bytes() {
    for (len, pl, ph) in [
        (0usize, 3u8, 0u8),
        (1, 4, 0),
        (252, 255, 0),
        (253, 0, 1),
        (700, 0xBF, 2),
    ] {
        let data = vec![b'x'; len];
        let v = cmd::qr_store(&data);
        assert_eq!(&v[3..5], &[pl, ph], "len {len}");
        assert_eq!(v.len(), 8 + len);
    }
    assert_eq!(cmd::size(1, 1), [0x1D, 0x21, 0x00]);
    assert_eq!(cmd::size(8, 8), [0x1D, 0x21, 0x77]);
    assert_eq!(cmd::size(2, 3), [0x1D, 0x21, 0x12]);
}

#[test]
fn status_bits() {
    // ([n=1, n=2, n=3, n=4], expected)
    let ok = PrinterStatus {
        online: true,
        ..PrinterStatus::default()
    };
    let cases = [
        ([0x12, 0x12, 0x12, 0x12], Ok(ok)),
        (
            [0x1A, 0x16, 0x12, 0x12],
            Ok(PrinterStatus {
                cover_open: true,
                ..PrinterStatus::default()
            }),
        ),
        (
            [0x12, 0x12, 0x12, 0x1E],
            Ok(PrinterStatus {
                paper_near_end: true,
                ..ok
            }),
        ),
        ([0x12, 0x12, 0x12, 0x16], Ok(ok)), // only one near-end bit: not near end
        (
            [0x1A, 0x32, 0x12, 0x7E],
            Ok(PrinterStatus {
                paper_end_stop: true,
                paper_near_end: true,
                paper_out: true,
                ..PrinterStatus::default()
            }),
        ),
        (
            [0x12, 0x52, 0x3A, 0x12],
            Ok(PrinterStatus {
                error: true,
                autocutter_error: true,
                unrecoverable_error: true,
                ..ok
            }),
        ),
        ([0x13, 0x12, 0x12, 0x12], Err(StatusError::FixedBits(0x13))),
        ([0x12, 0x02, 0x12, 0x12], Err(StatusError::FixedBits(0x02))),
        ([0x12, 0x12, 0x92, 0x12], Err(StatusError::FixedBits(0x92))),
        ([0x12, 0x12, 0x12, 0x10], Err(StatusError::FixedBits(0x10))),
    ];
    for (bytes, expect) in cases {
        assert_eq!(PrinterStatus::from_bytes(bytes), expect, "{bytes:02X?}");
    }
    // Round trip through the byte a simulator answers.
    let s = PrinterStatus {
        cover_open: true,
        paper_near_end: true,
        ..PrinterStatus::default()
    };
    assert_eq!(
        PrinterStatus::from_bytes([1, 2, 3, 4].map(|n| s.byte(n))),
        Ok(s)
    );
}

#[test]
fn parser_elements() {
    type Case<'a> = (&'a [u8], Option<(Op, usize)>);
    let cases: [Case; 8] = [
        (&[0x1B, 0x40], Some((Op::Init, 2))),
        (&[0x1B], None),
        (&[0x10, 0x04, 0x02], Some((Op::StatusQuery(2), 3))),
        (&[0x1D, 0x56, 0x41, 0x00], Some((Op::Cut, 4))),
        (
            &[0x1D, 0x28, 0x6B, 0x05, 0x00, 0x31, 0x50, 0x30, b'h'],
            None,
        ),
        (
            &[0x1D, 0x28, 0x6B, 0x04, 0x00, 0x31, 0x50, 0x30, b'h'],
            Some((Op::QrStore(b"h".to_vec()), 9)),
        ),
        (
            &[0x1B, 0x7A, 0x01],
            Some((Op::Unknown(vec![0x1B, 0x7A]), 2)),
        ),
        (&[0x07], Some((Op::Unknown(vec![0x07]), 1))),
    ];
    for (input, expect) in cases {
        assert_eq!(parse_op(input), expect, "{input:02X?}");
    }
}

#[test]
fn prints_tickets_on_a_pty_and_reports_status() {
    let sim = PrinterSim::spawn(TextEncoding::Gb18030, None).unwrap();
    let port = PrinterPort::Serial {
        path: sim.path(),
        baud: 115_200,
    };
    let mut printer = Printer::open(&port).unwrap();
    assert_eq!(
        printer.status().unwrap(),
        PrinterStatus {
            online: true,
            ..PrinterStatus::default()
        }
    );

    printer
        .print(&ticket().render(TextEncoding::Gb18030))
        .unwrap();
    assert!(sim.wait_for(Duration::from_secs(3), |r| r.tickets.len() == 1));
    let printed = &sim.record().tickets[0];
    assert_eq!(printed.lines, ticket().lines());
    assert!(printed.text().contains("A023"));
    assert_eq!(printed.qr, ["https://q.example/t/A023"]);

    // (state, expected status, prints?)
    let cases = [
        (Paper::NearEnd, false, false, true),
        (Paper::Out, false, false, false),
        (Paper::Ok, true, false, false),
        (Paper::Ok, false, true, false),
        (Paper::Ok, false, false, true),
    ];
    for (paper, cover_open, offline, prints) in cases {
        sim.set_paper(paper);
        sim.set_cover_open(cover_open);
        sim.set_offline(offline);
        let status = printer.status().unwrap();
        assert_eq!(status, sim.status());
        assert_eq!(
            status.online, prints,
            "{paper:?} cover={cover_open} offline={offline}"
        );
        assert_eq!(status.paper_out, paper == Paper::Out);
        assert_eq!(status.paper_near_end, paper != Paper::Ok);
        assert_eq!(status.cover_open, cover_open);
        let before = sim.record();
        printer
            .print(&ticket().render(TextEncoding::Gb18030))
            .unwrap();
        assert!(sim.wait_for(Duration::from_secs(3), |r| {
            r.tickets.len() + r.lost_tickets == before.tickets.len() + before.lost_tickets + 1
        }));
        assert_eq!(
            sim.record().tickets.len() - before.tickets.len(),
            usize::from(prints)
        );
    }
    printer.print(&[0x1B, 0x7A, 0x01]).unwrap();
    assert!(sim.wait_for(Duration::from_secs(3), |r| !r.unknown_commands.is_empty()));
}

fn receipt() -> Receipt {
    Receipt {
        bank_name: "示例银行".into(),
        branch_name: "南京路支行".into(),
        order_id: "HO-2026-0042".into(),
        title: "个人贷款面签".into(),
        business_type: "loan_signing".into(),
        steps: vec![
            ReceiptStep {
                label: "资料审核".into(),
                started: "09:05".into(),
                finished: "09:12".into(),
            },
            ReceiptStep {
                label: "合同签署".into(),
                started: "09:13".into(),
                finished: "09:30".into(),
            },
        ],
        delivered_at: "2026-11-22 09:31".into(),
        qr_data: "https://branch.example/c/b0HxYz".into(),
    }
}

#[test]
fn a_receipt_prints_its_order_steps_and_qr_on_a_pty() {
    let sim = PrinterSim::spawn(TextEncoding::Gb18030, None).unwrap();
    let mut printer = Printer::open(&PrinterPort::Serial {
        path: sim.path(),
        baud: 115_200,
    })
    .unwrap();
    printer
        .print(&receipt().render(TextEncoding::Gb18030))
        .unwrap();
    assert!(sim.wait_for(Duration::from_secs(3), |r| r.tickets.len() == 1));
    let record = sim.record();
    let printed = &record.tickets[0];
    let mut lines = receipt().lines();
    lines.push(Receipt::FOOTER.to_string());
    assert_eq!(printed.lines, lines);
    assert!(
        printed
            .lines
            .contains(&"单号 / Order: HO-2026-0042".to_string())
    );
    assert!(printed.lines.contains(&"09:13 - 09:30".to_string()));
    assert_eq!(printed.qr, ["https://branch.example/c/b0HxYz"]);
    assert!(
        record.unknown_commands.is_empty(),
        "{:?}",
        record.unknown_commands
    );
}

#[test]
fn lp_device_without_answers_reports_status_unavailable() {
    // A PTY opened as a plain file, like /dev/usb/lp0; the other end never answers.
    let pty = branchd_drivers::pty::Pty::open().unwrap();
    let mut printer = Printer::open(&PrinterPort::UsbLp {
        path: pty.slave_path().into(),
    })
    .unwrap();
    printer.set_status_timeout(Duration::from_millis(50));
    printer.print(b"\x1b@hello\n").unwrap();
    assert!(matches!(
        printer.status(),
        Err(PrinterError::StatusUnavailable)
    ));
    let mut got = vec![0u8; 64];
    std::thread::sleep(Duration::from_millis(20));
    let n = pty.read_available(&mut got).unwrap();
    assert!(got[..n].starts_with(b"\x1b@hello\n"));
}
