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
    /// A new message to deliver.
    Delivered(Message),
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

#[derive(Debug)]
pub(crate) struct Engine {
    timing: Timing,
    decoder: Decoder,
    next_seq: u8,
    last_rx_seq: Option<u8>,
    queue: VecDeque<(u64, Message)>,
    in_flight: Option<InFlight>,
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
                Err(e) => self.reject_frame(&e, out, happened),
            }
        }
    }

    fn reject_frame(
        &mut self,
        e: &FrameError,
        out: &mut Vec<Vec<u8>>,
        happened: &mut Vec<Happening>,
    ) {
        send_nak(e.seq().unwrap_or(0), e.nak_reason(), out);
        happened.push(Happening::Rejected(e.to_string()));
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
                send_nak(packet.seq, e.nak_reason(), out);
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
                if let Some(f) = self.in_flight.as_mut().filter(|f| f.seq == packet.seq) {
                    if f.retransmits < self.timing.max_retransmits {
                        f.retransmits += 1;
                        f.sent_at = now;
                        out.push(f.wire.clone());
                    }
                }
            }
            msg => {
                if let Ok(ack) = Packet::ack(packet.seq).encode() {
                    out.push(ack);
                }
                let is_hello = packet.kind == PacketType::Hello;
                if !is_hello && self.last_rx_seq == Some(packet.seq) {
                    return;
                }
                self.last_rx_seq = Some(packet.seq);
                happened.push(Happening::Delivered(msg));
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
}
