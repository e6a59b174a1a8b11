//! Typed STM-Link payloads, matching the JSON of the specification field for field.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::codec::{EncodeError, NakReason, Packet, PacketType};

/// HELLO: the device introduces itself after every (re)connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Device id, e.g. `STM-01`.
    pub device_id: String,
    /// Hardware model.
    pub model: String,
    /// Firmware version.
    pub firmware: String,
    /// Modules fitted, e.g. `card_reader`, `cash_out`.
    pub modules: Vec<String>,
}

/// The service state of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Not signed in for the day; serves nobody.
    SignedOut,
    /// Signed in and serving customers.
    InService,
    /// Temporarily paused.
    Paused,
    /// Under maintenance.
    Maintenance,
    /// Out of order.
    Fault,
}

/// HEARTBEAT: sent every 2 s; never retransmitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Current state.
    pub state: DeviceState,
    /// Seconds since the device started.
    pub uptime_s: u64,
}

/// The condition of one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleStatus {
    /// Working.
    Ok,
    /// Working, needs attention.
    Warn,
    /// Not working.
    Fault,
    /// Switched off by an operator.
    Disabled,
}

/// One cash cassette.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cassette {
    /// Cassette id, e.g. `C1`.
    pub id: String,
    /// Note value in whole yuan.
    pub denom: u32,
    /// Notes in the cassette.
    pub count: u32,
}

/// Cash position of the current cycle. Money is in whole yuan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cash {
    /// Cash cycle id, e.g. `2026-11-22-1`.
    pub cycle_id: String,
    /// Cassettes.
    pub cassettes: Vec<Cassette>,
    /// Deposited this cycle.
    pub deposited: u64,
    /// Dispensed this cycle.
    pub dispensed: u64,
}

/// STATUS: the full device status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Service state.
    pub state: DeviceState,
    /// Module conditions by module name.
    pub modules: BTreeMap<String, ModuleStatus>,
    /// Consumable counts (and `receipt_paper_pct`) by name.
    pub consumables: BTreeMap<String, u32>,
    /// Cash position.
    pub cash: Cash,
}

/// The business type of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum TxnType {
    OpenAccount,
    IssueCard,
    Deposit,
    Withdrawal,
    Transfer,
    WealthPurchase,
    Statement,
    Other,
}

/// A completed (or failed) transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Transaction id.
    pub txn_id: String,
    /// Business type.
    pub txn_type: TxnType,
    /// Amount in whole yuan (0 when none).
    pub amount: i64,
    /// Whether it succeeded.
    pub ok: bool,
    /// Duration in seconds.
    pub duration_s: u64,
    /// The code of the product sold, when the transaction sold one (an extension of
    /// STM-Link v1: a peer that does not know it leaves it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
}

/// A device exception; open until an admin records how it was handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    /// Code, e.g. `CASH_JAM`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// The customer of an authorisation request (already masked by the device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthCustomer {
    /// Customer name.
    pub name: String,
    /// Masked ID number, e.g. `3201**********1234`.
    pub id_number_masked: String,
}

/// A transaction waiting for a supervisor's approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// Request id, echoed by `auth_result`.
    pub request_id: String,
    /// Business type.
    pub txn_type: TxnType,
    /// Customer.
    pub customer: AuthCustomer,
    /// Transaction elements to review (amount, payee …).
    pub elements: Map<String, Value>,
    /// Why approval is needed, e.g. `amount_over_limit`.
    pub reason: String,
}

/// A consumable was used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumableUsed {
    /// Item, e.g. `debit_card`.
    pub item: String,
    /// How many.
    pub count: u32,
}

/// The kind-specific part of an EVENT.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventBody {
    /// `transaction`.
    Transaction(Transaction),
    /// `exception`.
    Exception(Exception),
    /// `auth_request`.
    AuthRequest(AuthRequest),
    /// `consumable_used`.
    ConsumableUsed(ConsumableUsed),
    /// A kind this version does not know, kept as raw JSON fields.
    Unknown {
        /// The `kind` string.
        kind: String,
        /// Every field except `event_id`, `kind` and `ts`.
        fields: Map<String, Value>,
    },
}

impl EventBody {
    /// The `kind` string.
    pub fn kind(&self) -> &str {
        match self {
            EventBody::Transaction(_) => "transaction",
            EventBody::Exception(_) => "exception",
            EventBody::AuthRequest(_) => "auth_request",
            EventBody::ConsumableUsed(_) => "consumable_used",
            EventBody::Unknown { kind, .. } => kind,
        }
    }
}

/// EVENT: something happened on the device.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique per device, stable across retransmits and reconnects.
    pub event_id: String,
    /// RFC 3339 timestamp as sent by the device.
    pub ts: String,
    /// Kind and kind-specific fields.
    pub body: EventBody,
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields = match &self.body {
            EventBody::Transaction(b) => serde_json::to_value(b),
            EventBody::Exception(b) => serde_json::to_value(b),
            EventBody::AuthRequest(b) => serde_json::to_value(b),
            EventBody::ConsumableUsed(b) => serde_json::to_value(b),
            EventBody::Unknown { fields, .. } => Ok(Value::Object(fields.clone())),
        }
        .map_err(serde::ser::Error::custom)?;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("event_id", &self.event_id)?;
        map.serialize_entry("kind", self.body.kind())?;
        map.serialize_entry("ts", &self.ts)?;
        if let Value::Object(fields) = fields {
            for (k, v) in &fields {
                if !matches!(k.as_str(), "event_id" | "kind" | "ts") {
                    map.serialize_entry(k, v)?;
                }
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Event, D::Error> {
        let mut fields = Map::deserialize(d)?;
        let mut take = |name: &str| match fields.remove(name) {
            Some(Value::String(s)) => Ok(s),
            _ => Err(D::Error::custom(format!("missing string field `{name}`"))),
        };
        let event_id = take("event_id")?;
        let kind = take("kind")?;
        let ts = take("ts")?;
        fn typed<T: serde::de::DeserializeOwned, E: serde::de::Error>(
            fields: Map<String, Value>,
        ) -> Result<T, E> {
            serde_json::from_value(Value::Object(fields)).map_err(E::custom)
        }
        let body = match kind.as_str() {
            "transaction" => EventBody::Transaction(typed(fields)?),
            "exception" => EventBody::Exception(typed(fields)?),
            "auth_request" => EventBody::AuthRequest(typed(fields)?),
            "consumable_used" => EventBody::ConsumableUsed(typed(fields)?),
            _ => EventBody::Unknown { kind, fields },
        };
        Ok(Event { event_id, ts, body })
    }
}

/// COMMAND: an operation for the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Unique id, echoed in the RESULT.
    pub cmd_id: String,
    /// Operation, e.g. `sign_in` (see [`ops`](super::ops)).
    pub op: String,
    /// Arguments (an object, `{}` when none).
    pub args: Value,
}

/// RESULT: the outcome of a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The command's id.
    pub cmd_id: String,
    /// Whether the command succeeded.
    pub ok: bool,
    /// Error text when it did not.
    pub error: Option<String>,
    /// Op-specific data.
    pub data: Option<Value>,
}

/// A supervisor's decision on an authorisation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Approve the transaction.
    Approve,
    /// Reject it.
    Reject,
    /// Ask the customer to redo some steps.
    Redo,
}

/// A step the customer must redo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedoStep {
    /// Face verification.
    Face,
    /// Transaction elements.
    Elements,
    /// Signature.
    Signature,
}

/// Arguments of the `auth_result` op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResultArgs {
    /// The request decided.
    pub request_id: String,
    /// The decision.
    pub decision: Decision,
    /// Steps to redo (for `redo`).
    #[serde(default)]
    pub redo: Vec<RedoStep>,
    /// User id of the supervisor.
    pub by: String,
    /// Free comment.
    #[serde(default)]
    pub comment: String,
}

/// Arguments of `module_enable` / `module_disable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleArgs {
    /// Module name, e.g. `card_reader`.
    pub module: String,
}

/// Arguments of `show_product` (an extension of STM-Link v1): the product card the STM
/// puts on its screen for the customer standing at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShowProductArgs {
    /// What to show.
    pub product: ProductCard,
    /// The customer's ticket, when the lobby knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// A product as an STM shows it. Rates are in basis points (1 bp = 0.01 %), money in fen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductCard {
    /// Head office's product code.
    pub code: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// `deposit`, `wealth`, `fund`, `insurance` or `loan`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Annual rate (deposits, loans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_bp: Option<u32>,
    /// Lowest expected annual return (wealth, funds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_min_bp: Option<u32>,
    /// Highest expected annual return (wealth, funds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_max_bp: Option<u32>,
    /// Term in months.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term_months: Option<u32>,
    /// Term (holding period) in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term_days: Option<u32>,
    /// Smallest amount, in fen.
    pub min_amount_fen: u64,
    /// Risk level `R1`…`R5`.
    pub risk: String,
    /// Marketing script, Chinese.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_zh: Option<String>,
    /// Marketing script, English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_en: Option<String>,
}

/// The `data` of a successful `show_product` RESULT: what the screen now shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Showing {
    /// The code of the product on the screen.
    pub showing: String,
}

/// The `data` of a successful `screenshot` RESULT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Screenshot {
    /// A PNG thumbnail, base64 (standard alphabet, padded).
    pub png_base64: String,
}

/// NAK payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nak {
    /// Why the packet was rejected.
    pub reason: NakReason,
}

/// Any STM-Link message, typed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    /// HELLO.
    Hello(Hello),
    /// HEARTBEAT.
    Heartbeat(Heartbeat),
    /// STATUS.
    Status(Status),
    /// EVENT.
    Event(Event),
    /// COMMAND.
    Command(Command),
    /// RESULT.
    Result(CommandResult),
    /// NAK.
    Nak(Nak),
    /// ACK.
    Ack,
}

/// The deepest nesting of arrays and objects a payload may have: the specification's
/// messages need four; a device's own `detail` objects get some room beyond that.
pub const MAX_JSON_DEPTH: usize = 16;

/// The deepest nesting of `[` and `{` in JSON text, outside strings (a scan, no parse).
fn json_depth(text: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// A payload that is not the JSON its packet type requires (NAK reason `json`).
#[derive(Debug, thiserror::Error)]
#[error("invalid {kind:?} payload: {source}")]
pub struct PayloadError {
    /// The packet type.
    pub kind: PacketType,
    /// What serde said.
    #[source]
    pub source: serde_json::Error,
}

impl PayloadError {
    /// Always [`NakReason::Json`].
    pub fn nak_reason(&self) -> NakReason {
        NakReason::Json
    }
}

impl Message {
    /// The packet type carrying this message.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Message::Hello(_) => PacketType::Hello,
            Message::Heartbeat(_) => PacketType::Heartbeat,
            Message::Status(_) => PacketType::Status,
            Message::Event(_) => PacketType::Event,
            Message::Command(_) => PacketType::Command,
            Message::Result(_) => PacketType::Result,
            Message::Nak(_) => PacketType::Nak,
            Message::Ack => PacketType::Ack,
        }
    }

    /// The compact JSON payload (empty for ACK).
    pub fn payload(&self) -> Vec<u8> {
        let json = match self {
            Message::Hello(m) => serde_json::to_vec(m),
            Message::Heartbeat(m) => serde_json::to_vec(m),
            Message::Status(m) => serde_json::to_vec(m),
            Message::Event(m) => serde_json::to_vec(m),
            Message::Command(m) => serde_json::to_vec(m),
            Message::Result(m) => serde_json::to_vec(m),
            Message::Nak(m) => serde_json::to_vec(m),
            Message::Ack => return Vec::new(),
        };
        // Serialising these plain data types into a Vec cannot fail.
        json.unwrap_or_default()
    }

    /// The packet with sequence number `seq`; fails if the payload is too long.
    pub fn to_packet(&self, seq: u8) -> Result<Packet, EncodeError> {
        let packet = Packet::new(seq, self.packet_type(), self.payload());
        packet.to_bytes()?;
        Ok(packet)
    }

    /// Parses a packet's payload according to its type. A payload nested deeper than
    /// [`MAX_JSON_DEPTH`] is refused before it is parsed (its size is bounded by the
    /// frame: [`super::codec::MAX_PAYLOAD`]).
    pub fn from_packet(packet: &Packet) -> Result<Message, PayloadError> {
        let p = &packet.payload[..];
        let err = |source| PayloadError {
            kind: packet.kind,
            source,
        };
        if json_depth(p) > MAX_JSON_DEPTH {
            return Err(err(<serde_json::Error as serde::de::Error>::custom(
                format!("JSON nested deeper than {MAX_JSON_DEPTH} levels"),
            )));
        }
        Ok(match packet.kind {
            PacketType::Hello => Message::Hello(serde_json::from_slice(p).map_err(err)?),
            PacketType::Heartbeat => Message::Heartbeat(serde_json::from_slice(p).map_err(err)?),
            PacketType::Status => Message::Status(serde_json::from_slice(p).map_err(err)?),
            PacketType::Event => Message::Event(serde_json::from_slice(p).map_err(err)?),
            PacketType::Command => Message::Command(serde_json::from_slice(p).map_err(err)?),
            PacketType::Result => Message::Result(serde_json::from_slice(p).map_err(err)?),
            PacketType::Nak => Message::Nak(serde_json::from_slice(p).map_err(err)?),
            PacketType::Ack => Message::Ack,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_nested_too_deep_are_refused_before_parsing() {
        let nested = |depth: usize| {
            format!(
                "{{\"event_id\":\"E1\",\"kind\":\"exception\",\"ts\":\"2026-11-22T09:00:00+08:00\",\
                 \"detail\":{}1{}}}",
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            )
        };
        // (depth of the payload, whether the depth check refuses it)
        let cases = [
            (2, false),
            (MAX_JSON_DEPTH, false),
            (MAX_JSON_DEPTH + 1, true),
            (5000, true),
        ];
        for (depth, refused) in cases {
            let packet = Packet::new(1, PacketType::Event, nested(depth).into_bytes());
            assert_eq!(json_depth(&packet.payload), depth);
            let got = Message::from_packet(&packet);
            let by_depth = got
                .as_ref()
                .err()
                .is_some_and(|e| e.to_string().contains("nested deeper"));
            assert_eq!(by_depth, refused, "depth {depth}: {got:?}");
        }
        // Brackets inside strings do not count.
        assert_eq!(json_depth(br#"{"a":"[[[[{{{\"]]]"}"#), 1);
    }

    #[test]
    fn numbers_survive_a_decode_and_encode_unchanged() {
        // serde_json parses floats exactly only with `float_roundtrip`: without it, this
        // value of a device's own event field came back one unit in the last place lower.
        let payload = br#"{"event_id":"E1","kind":"meter","ts":"2026-11-22T09:00:00+08:00","x":3.3333333333333336e+41}"#;
        let packet = Packet::new(1, PacketType::Event, payload.to_vec());
        let message = Message::from_packet(&packet).expect("an event");
        assert_eq!(message.payload(), payload.to_vec());
    }
}
