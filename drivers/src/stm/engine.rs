//! The reliability rules of STM-Link, free of IO and clocks, shared by the box's link and
//! the device simulator.
//!
//! Callers pass the current time in and get frames to write and things that happened out,
//! so the same rules run under tokio's (possibly paused) clock and on a plain thread.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::codec::{Decoder, EncodeError, FrameError, Packet, PacketType};
use super::message::{Message, Nak, PayloadError};

/// Retransmission parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub ack_timeout: Duration,
    pub max_retransmits: u32,
}

/// Something the engine saw or decided.
#[derive(Debug)]
pub(crate) enum Happening {
    /// A valid packet arrived (including ACKs and duplicates): the peer is alive.
    Alive,
    /// A new message to deliver, with the receipt to pass to [`Engine::settle`] when its
    /// ACK waits for the owner (see [`Engine::defer_acks`]).
    Delivered(Message, Option<u64>),
    /// The reliable packet sent under this token was acknowledged.
    Acked(u64),
    /// The reliable packet sent under this token was not acknowledged after all retransmits.
    GaveUp(u64),
    /// A frame or payload was rejected (and a NAK sent).
    Rejected(String),
    /// The peer rejected one of our packets.
    NakReceived(Nak),
}

#[derive(Debug)]
struct InFlight {
    token: u64,
    seq: u8,
    wire: Vec<u8>,
    sent_at: Instant,
    retransmits: u32,
}

/// At most this many NAKs are sent per [`NAK_WINDOW`]; the rest of a babbling peer's bad
/// frames are dropped unanswered (a reliable sender retransmits on its own timeout anyway),
/// so a flood of garbage cannot turn into a flood of writes.
pub(crate) const MAX_NAKS: u32 = 10;
/// The window [`MAX_NAKS`] counts in.
pub(crate) const NAK_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Engine {
    timing: Timing,
    decoder: Decoder,
    next_seq: u8,
    last_rx_seq: Option<u8>,
    queue: VecDeque<(u64, Message)>,
    in_flight: Option<InFlight>,
    /// EVENT and STATUS are acknowledged only once their owner has settled them.
    defer_acks: bool,
    /// Delivered packets whose ACK waits for the owner: (receipt, seq).
    awaiting: Vec<(u64, u8)>,
    next_receipt: u64,
    /// NAKs sent in the current window, and when it began.
    naks: (u32, Option<Instant>),
}

impl Engine {
    pub fn new(timing: Timing) -> Engine {
        Engine {
            timing,
            decoder: Decoder::new(),
            next_seq: 0,
            last_rx_seq: None,
            queue: VecDeque::new(),
            in_flight: None,
            defer_acks: false,
            awaiting: Vec::new(),
            next_receipt: 0,
            naks: (0, None),
        }
    }

    /// Acknowledge EVENT and STATUS packets only when [`Engine::settle`] says their content
    /// is safe (committed), not on arrival: a crash in between then costs a retransmit, not
    /// the packet. A retransmit that arrives while its owner is still busy is neither
    /// delivered again nor acknowledged early.
    pub fn defer_acks(mut self) -> Engine {
        self.defer_acks = true;
        self
    }

    /// The owner is done with the packet delivered under `receipt`: `kept` sends its ACK;
    /// otherwise no ACK is sent and the peer's retransmit is delivered again. Receipts of an
    /// earlier session (before [`Engine::clear`] or a HELLO) are ignored: their seq may
    /// already name another packet.
    pub fn settle(&mut self, receipt: u64, kept: bool, out: &mut Vec<Vec<u8>>) {
        let Some(at) = self.awaiting.iter().position(|&(r, _)| r == receipt) else {
            return;
        };
        let (_, seq) = self.awaiting.remove(at);
        if kept {
            send_ack(seq, out);
        } else if self.last_rx_seq == Some(seq) {
            self.last_rx_seq = None;
        }
    }

    /// Restarts sequence numbering at `seq` (a device that restarts).
    pub fn set_next_seq(&mut self, seq: u8) {
        self.next_seq = seq;
    }

    /// Forgets partial input and everything not yet acknowledged; returns the tokens
    /// dropped (in flight first, then queued). The duplicate filter and seq counter stay.
    pub fn clear(&mut self) -> Vec<u64> {
        self.decoder.reset();
        self.awaiting.clear();
        let mut dropped: Vec<u64> = self.in_flight.take().map(|f| f.token).into_iter().collect();
        dropped.extend(self.queue.drain(..).map(|(t, _)| t));
        dropped
    }

    pub fn is_idle(&self) -> bool {
        self.in_flight.is_none() && self.queue.is_empty()
    }

    fn take_seq(&mut self) -> u8 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        seq
    }

    /// Queues a message to be sent reliably (stop-and-wait: one packet in flight).
    pub fn send_reliable(
        &mut self,
        token: u64,
        msg: Message,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), EncodeError> {
        msg.to_packet(0)?;
        self.queue.push_back((token, msg));
        self.pump(now, out);
        Ok(())
    }

    /// Sends a message once, never retransmitted (HEARTBEAT). Skipped, returning false,
    /// while a reliable packet is in flight, so that the receiver's last-seq duplicate
    /// filter never sees an older seq after a newer one.
    pub fn send_unreliable(&mut self, msg: &Message, out: &mut Vec<Vec<u8>>) -> bool {
        if !self.is_idle() {
            return false;
        }
        let seq = self.take_seq();
        match msg.to_packet(seq).and_then(|p| p.encode()) {
            Ok(wire) => {
                out.push(wire);
                true
            }
            Err(_) => false,
        }
    }

    fn pump(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        while self.in_flight.is_none() {
            let Some((token, msg)) = self.queue.pop_front() else {
                return;
            };
            let seq = self.next_seq;
            // Sizes were checked when queued, so encoding cannot fail here.
            let Ok(wire) = msg.to_packet(seq).and_then(|p| p.encode()) else {
                continue;
            };
            self.take_seq();
            out.push(wire.clone());
            self.in_flight = Some(InFlight {
                token,
                seq,
                wire,
                sent_at: now,
                retransmits: 0,
            });
        }
    }

    /// Handles received bytes.
    pub fn on_bytes(
        &mut self,
        bytes: &[u8],
        now: Instant,
        out: &mut Vec<Vec<u8>>,
        happened: &mut Vec<Happening>,
    ) {
        for result in self.decoder.feed(bytes) {
            match result {
                Ok(packet) => self.on_packet(packet, now, out, happened),
                Err(e) => self.reject_frame(&e, now, out, happened),
            }
        }
    }

    fn reject_frame(
        &mut self,
        e: &FrameError,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
        happened: &mut Vec<Happening>,
    ) {
        self.nak(e.seq().unwrap_or(0), e.nak_reason(), now, out, happened);
        happened.push(Happening::Rejected(e.to_string()));
    }

    /// Send a NAK unless [`MAX_NAKS`] have gone out in this [`NAK_WINDOW`].
    fn nak(
        &mut self,
        seq: u8,
        reason: super::codec::NakReason,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
        happened: &mut Vec<Happening>,
    ) {
        let (sent, since) = &mut self.naks;
        if since.is_none_or(|t| now.saturating_duration_since(t) >= NAK_WINDOW) {
            *sent = 0;
            *since = Some(now);
        }
        if *sent < MAX_NAKS {
            *sent += 1;
            send_nak(seq, reason, out);
        } else if *sent == MAX_NAKS {
            *sent += 1;
            happened.push(Happening::Rejected(format!(
                "more than {MAX_NAKS} bad frames within {} s: the rest go unanswered",
                NAK_WINDOW.as_secs()
            )));
        }
    }

    fn on_packet(
        &mut self,
        packet: Packet,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
        happened: &mut Vec<Happening>,
    ) {
        let msg = match Message::from_packet(&packet) {
            Ok(msg) => msg,
            Err(e @ PayloadError { .. }) => {
                self.nak(packet.seq, e.nak_reason(), now, out, happened);
                happened.push(Happening::Rejected(e.to_string()));
                return;
            }
        };
        happened.push(Happening::Alive);
        match msg {
            Message::Ack => {
                if self.in_flight.as_ref().is_some_and(|f| f.seq == packet.seq) {
                    if let Some(f) = self.in_flight.take() {
                        happened.push(Happening::Acked(f.token));
                    }
                    self.pump(now, out);
                }
            }
            Message::Nak(nak) => {
                happened.push(Happening::NakReceived(nak));
                if let Some(f) = self.in_flight.as_mut().filter(|f| f.seq == packet.seq)
                    && f.retransmits < self.timing.max_retransmits
                {
                    f.retransmits += 1;
                    f.sent_at = now;
                    out.push(f.wire.clone());
                }
            }
            msg => {
                let is_hello = packet.kind == PacketType::Hello;
                if is_hello {
                    // The peer restarted: what it sent before is re-sent under new seqs.
                    self.awaiting.clear();
                } else if self.awaiting.iter().any(|&(_, seq)| seq == packet.seq) {
                    // A retransmit while the owner is still busy with the first copy.
                    return;
                }
                if !is_hello && self.last_rx_seq == Some(packet.seq) {
                    send_ack(packet.seq, out);
                    return;
                }
                self.last_rx_seq = Some(packet.seq);
                let defer = self.defer_acks
                    && matches!(packet.kind, PacketType::Event | PacketType::Status);
                let receipt = if defer {
                    let receipt = self.next_receipt;
                    self.next_receipt += 1;
                    self.awaiting.push((receipt, packet.seq));
                    Some(receipt)
                } else {
                    send_ack(packet.seq, out);
                    None
                };
                happened.push(Happening::Delivered(msg, receipt));
            }
        }
    }

    /// When [`Engine::on_timer`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.in_flight
            .as_ref()
            .map(|f| f.sent_at + self.timing.ack_timeout)
    }

    /// Retransmits or gives up on the packet in flight when its ACK is overdue.
    pub fn on_timer(
        &mut self,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
        happened: &mut Vec<Happening>,
    ) {
        let Some(f) = self.in_flight.as_mut() else {
            return;
        };
        if now < f.sent_at + self.timing.ack_timeout {
            return;
        }
        if f.retransmits < self.timing.max_retransmits {
            f.retransmits += 1;
            f.sent_at = now;
            out.push(f.wire.clone());
        } else {
            let token = f.token;
            self.in_flight = None;
            happened.push(Happening::GaveUp(token));
        }
    }
}

fn send_ack(seq: u8, out: &mut Vec<Vec<u8>>) {
    if let Ok(ack) = Packet::ack(seq).encode() {
        out.push(ack);
    }
}

fn send_nak(seq: u8, reason: super::codec::NakReason, out: &mut Vec<Vec<u8>>) {
    let msg = Message::Nak(Nak { reason });
    if let Ok(wire) = msg.to_packet(seq).and_then(|p| p.encode()) {
        out.push(wire);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stm::message::{DeviceState, Heartbeat};

    #[test]
    fn a_babbling_peer_gets_a_bounded_number_of_naks_per_second() {
        let mut e = deferring();
        let t0 = Instant::now();
        let (mut out, mut happened) = (Vec::new(), Vec::new());
        let mut garbage = Vec::new();
        for seq in 0..200u8 {
            // A frame whose CRC is wrong, and a frame whose payload is not JSON.
            let mut bad = wire(seq, PacketType::Event, EVENT);
            let n = bad.len();
            bad[n / 2] ^= 0x55;
            garbage.extend(bad);
            garbage.extend(wire(seq, PacketType::Event, "not json"));
        }
        e.on_bytes(&garbage, t0, &mut out, &mut happened);
        assert_eq!(out.len() as u32, MAX_NAKS, "NAKs within one window");
        // The next window answers again.
        out.clear();
        e.on_bytes(&garbage, t0 + NAK_WINDOW, &mut out, &mut happened);
        assert_eq!(out.len() as u32, MAX_NAKS);
        // Good packets are still acknowledged in a flooded window.
        out.clear();
        let mut e = Engine::new(Timing {
            ack_timeout: Duration::from_millis(500),
            max_retransmits: 3,
        });
        e.on_bytes(&garbage, t0, &mut out, &mut happened);
        out.clear();
        e.on_bytes(
            &wire(9, PacketType::Heartbeat, HB),
            t0,
            &mut out,
            &mut happened,
        );
        assert_eq!(acks(&mut out), [9]);
    }

    #[test]
    fn heartbeats_are_never_retransmitted_nor_sent_over_a_packet_in_flight() {
        let timing = Timing {
            ack_timeout: Duration::from_millis(500),
            max_retransmits: 3,
        };
        let mut e = Engine::new(timing);
        let t0 = Instant::now();
        let hb = Message::Heartbeat(Heartbeat {
            state: DeviceState::InService,
            uptime_s: 1,
        });
        let (mut out, mut happened) = (Vec::new(), Vec::new());
        assert!(e.send_unreliable(&hb, &mut out));
        e.on_timer(t0 + Duration::from_secs(10), &mut out, &mut happened);
        assert_eq!(out.len(), 1);
        assert!(happened.is_empty());
        e.send_reliable(1, hb.clone(), t0, &mut out).unwrap();
        assert!(
            !e.send_unreliable(&hb, &mut out),
            "in flight: heartbeat skipped"
        );
        assert_eq!(out.len(), 2);
    }

    fn wire(seq: u8, kind: PacketType, json: &str) -> Vec<u8> {
        Packet::new(seq, kind, json.as_bytes().to_vec())
            .encode()
            .unwrap()
    }

    fn acks(out: &mut Vec<Vec<u8>>) -> Vec<u8> {
        out.drain(..)
            .flat_map(|w| Decoder::new().feed(&w))
            .map(|p| p.unwrap())
            .filter(|p| p.kind == PacketType::Ack)
            .map(|p| p.seq)
            .collect()
    }

    fn receipts(happened: &mut Vec<Happening>) -> Vec<Option<u64>> {
        happened
            .drain(..)
            .filter_map(|h| match h {
                Happening::Delivered(_, r) => Some(r),
                _ => None,
            })
            .collect()
    }

    const EVENT: &str = r#"{"event_id":"STM-01-7","kind":"exception","ts":"2026-11-22T09:00:00+08:00","code":"CASH_JAM","message":"jam"}"#;
    const STATUS: &str = r#"{"state":"in_service","modules":{},"consumables":{},"cash":{"cycle_id":"c","cassettes":[],"deposited":0,"dispensed":0}}"#;
    const HB: &str = r#"{"state":"in_service","uptime_s":1}"#;
    const HELLO: &str = r#"{"device_id":"STM-01","model":"m","firmware":"f","modules":[]}"#;

    fn deferring() -> Engine {
        Engine::new(Timing {
            ack_timeout: Duration::from_millis(500),
            max_retransmits: 3,
        })
        .defer_acks()
    }

    #[test]
    fn a_deferred_event_is_acked_only_when_its_owner_kept_it() {
        let (mut e, t) = (deferring(), Instant::now());
        let (mut out, mut happened) = (Vec::new(), Vec::new());
        e.on_bytes(
            &wire(4, PacketType::Event, EVENT),
            t,
            &mut out,
            &mut happened,
        );
        let got = receipts(&mut happened);
        assert!(matches!(got[..], [Some(_)]), "{got:?}");
        assert!(acks(&mut out).is_empty(), "no ACK before the owner settles");

        // The peer retransmits while the owner is still writing: no second delivery, no ACK.
        e.on_bytes(
            &wire(4, PacketType::Event, EVENT),
            t,
            &mut out,
            &mut happened,
        );
        assert!(receipts(&mut happened).is_empty());
        assert!(acks(&mut out).is_empty());

        e.settle(got[0].unwrap(), true, &mut out);
        assert_eq!(acks(&mut out), [4]);
        // A late retransmit (our ACK was lost) is acknowledged again, not delivered.
        e.on_bytes(
            &wire(4, PacketType::Event, EVENT),
            t,
            &mut out,
            &mut happened,
        );
        assert!(receipts(&mut happened).is_empty());
        assert_eq!(acks(&mut out), [4]);
        // Settling twice sends nothing more.
        e.settle(got[0].unwrap(), true, &mut out);
        assert!(acks(&mut out).is_empty());
    }

    #[test]
    fn a_released_event_is_not_acked_and_its_retransmit_is_delivered_again() {
        let (mut e, t) = (deferring(), Instant::now());
        let (mut out, mut happened) = (Vec::new(), Vec::new());
        e.on_bytes(
            &wire(9, PacketType::Status, STATUS),
            t,
            &mut out,
            &mut happened,
        );
        let first = receipts(&mut happened);
        e.settle(first[0].unwrap(), false, &mut out);
        assert!(acks(&mut out).is_empty());
        e.on_bytes(
            &wire(9, PacketType::Status, STATUS),
            t,
            &mut out,
            &mut happened,
        );
        let again = receipts(&mut happened);
        assert!(
            matches!(again[..], [Some(r)] if Some(r) != first[0]),
            "{again:?}"
        );
        e.settle(again[0].unwrap(), true, &mut out);
        assert_eq!(acks(&mut out), [9]);
    }

    #[test]
    fn heartbeats_and_hellos_are_acked_at_once_and_a_hello_voids_older_receipts() {
        let (mut e, t) = (deferring(), Instant::now());
        let (mut out, mut happened) = (Vec::new(), Vec::new());
        e.on_bytes(
            &wire(1, PacketType::Event, EVENT),
            t,
            &mut out,
            &mut happened,
        );
        let stale = receipts(&mut happened)[0].unwrap();
        e.on_bytes(
            &wire(2, PacketType::Heartbeat, HB),
            t,
            &mut out,
            &mut happened,
        );
        assert_eq!(receipts(&mut happened), [None]);
        assert_eq!(acks(&mut out), [2]);
        // The device restarted; its seq 1 will be a different packet from now on.
        e.on_bytes(
            &wire(0, PacketType::Hello, HELLO),
            t,
            &mut out,
            &mut happened,
        );
        assert_eq!(receipts(&mut happened), [None]);
        assert_eq!(acks(&mut out), [0]);
        e.settle(stale, true, &mut out);
        assert!(
            acks(&mut out).is_empty(),
            "a receipt from before the HELLO acks nothing"
        );
        // After a reconnect too.
        e.on_bytes(
            &wire(1, PacketType::Event, EVENT),
            t,
            &mut out,
            &mut happened,
        );
        let before = receipts(&mut happened)[0].unwrap();
        e.clear();
        e.settle(before, true, &mut out);
        assert!(acks(&mut out).is_empty());
    }

    #[test]
    fn without_deferral_every_packet_is_acked_on_arrival() {
        let mut e = Engine::new(Timing {
            ack_timeout: Duration::from_millis(500),
            max_retransmits: 3,
        });
        let (mut out, mut happened) = (Vec::new(), Vec::new());
        e.on_bytes(
            &wire(3, PacketType::Event, EVENT),
            Instant::now(),
            &mut out,
            &mut happened,
        );
        assert_eq!(receipts(&mut happened), [None]);
        assert_eq!(acks(&mut out), [3]);
    }
}
