//! `[[devices]]`, `[stm]`, `[id_reader]` and `[[cameras]]`: what the box drives and the rules it
//! drives them by.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Section, Unique, is_id_char, secs};

/// The kinds of device a box drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A smart teller machine (STM-Link).
    Stm,
    /// The ESC/POS ticket printer.
    Printer,
    /// The SAM ID card reader.
    IdReader,
}

impl DeviceKind {
    /// The name used in config and API.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Stm => "stm",
            DeviceKind::Printer => "printer",
            DeviceKind::IdReader => "id_reader",
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[devices]]`
#[derive(Debug, Clone)]
pub struct Device {
    /// Unique id, e.g. `STM-01`.
    pub id: String,
    /// What it is.
    pub kind: DeviceKind,
    /// Serial path (`/dev/serial/by-id/...`), a PTY, or `/dev/usb/lp0` for a printer.
    pub path: String,
    /// Baud rate, default 115200.
    pub baud: u32,
    /// Text encoding of a printer: `gb18030` (default), `gbk`, `utf-8`.
    pub encoding: String,
}

/// `[stm]`: how the box drives its STMs and when it raises their alerts.
#[derive(Debug, Clone)]
pub struct StmRules {
    /// How long a remote command waits for the device's RESULT (then 504).
    pub command_timeout: Duration,
    /// How long an authorisation task may wait before the timeout alert.
    pub auth_timeout: Duration,
    /// A cassette holding fewer notes than this raises a `device.cassette_low` alert.
    pub cassette_low_notes: u32,
    /// `[stm.consumables_low]`: item → the count under which an alert is raised.
    pub consumables_low: Vec<(String, u32)>,
}

/// The consumables an STM reports, with their default alert thresholds.
pub const STM_CONSUMABLES: &[(&str, u32)] = &[
    ("debit_card", 20),
    ("ukey", 5),
    ("cheque_book", 2),
    ("deposit_cert", 10),
    ("receipt_paper_pct", 10),
];

/// `[id_reader]`: the lobby ID card reader.
#[derive(Debug, Clone)]
pub struct IdReaderRules {
    /// How often the reader is asked for a card.
    pub poll_interval: Duration,
    /// Keep the chip photo (an opaque WLT blob) in the database; dropped by default.
    pub keep_photo: bool,
    /// How long the last card's chip text stays in memory for checking a photo of it
    /// (`chip_check_s`; 0 keeps nothing).
    pub chip_check_window: Duration,
}

pub(super) fn read_stm(root: &mut Section<'_, '_>) -> Option<StmRules> {
    let mut r = StmRules {
        command_timeout: Duration::from_secs(15),
        auth_timeout: Duration::from_secs(180),
        cassette_low_notes: 200,
        consumables_low: STM_CONSUMABLES
            .iter()
            .map(|(k, v)| ((*k).to_string(), *v))
            .collect(),
    };
    if let Some(mut s) = root.opt_table("stm") {
        r.command_timeout = secs(&mut s, "command_timeout_s", 15, 300);
        r.auth_timeout = secs(&mut s, "auth_timeout_s", 180, 3600);
        if let Some(n) = s.opt_int("cassette_low_notes", 0..=100_000) {
            r.cassette_low_notes = n as u32;
        }
        if let Some(mut t) = s.opt_table("consumables_low") {
            for (item, threshold) in &mut r.consumables_low {
                if let Some(n) = t.opt_int(item, 0..=1_000_000) {
                    *threshold = n as u32;
                }
            }
            t.finish();
        }
        s.finish();
    }
    Some(r)
}

pub(super) fn read_id_reader(root: &mut Section<'_, '_>) -> Option<IdReaderRules> {
    let mut r = IdReaderRules {
        poll_interval: Duration::from_millis(500),
        keep_photo: false,
        chip_check_window: Duration::from_secs(300),
    };
    if let Some(mut s) = root.opt_table("id_reader") {
        if let Some(ms) = s.opt_int("poll_ms", 50..=10_000) {
            r.poll_interval = Duration::from_millis(ms as u64);
        }
        if let Some(k) = s.opt_bool("keep_photo") {
            r.keep_photo = k;
        }
        if let Some(secs) = s.opt_int("chip_check_s", 0..=3600) {
            r.chip_check_window = Duration::from_secs(secs as u64);
        }
        s.finish();
    }
    Some(r)
}

const BAUDS: &[i64] = &[
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 921_600,
];

pub(super) fn read_devices(root: &mut Section<'_, '_>) -> Option<Vec<Device>> {
    let mut ids = Unique::new("device id");
    let mut out = Vec::new();
    let mut ok = true;
    for mut s in root.tables("devices") {
        let id = s.req_str("id");
        if let Some(id) = &id {
            if !id.chars().all(is_id_char) {
                s.problem("id", "must be letters, digits, '-' or '_'");
                ok = false;
            }
            ok &= ids.check(&s, "id", id);
        }
        let kind = s.req_str("kind").and_then(|k| match k.as_str() {
            "stm" => Some(DeviceKind::Stm),
            "printer" => Some(DeviceKind::Printer),
            "id_reader" => Some(DeviceKind::IdReader),
            other => {
                s.problem(
                    "kind",
                    format!("unknown kind `{other}` (expected stm, printer or id_reader)"),
                );
                None
            }
        });
        let path = s.req_str("path");
        let baud = match s.opt_int("baud", 1..=4_000_000) {
            Some(b) if !BAUDS.contains(&b) => {
                s.problem("baud", format!("{b} is not a standard baud rate"));
                None
            }
            Some(b) => Some(b as u32),
            None => Some(115_200),
        };
        let encoding = s.opt_str("encoding");
        if let Some(e) = &encoding {
            if kind != Some(DeviceKind::Printer) {
                s.problem("encoding", "only a printer has an encoding");
            } else if !["gb18030", "gbk", "utf-8"].contains(&e.as_str()) {
                s.problem(
                    "encoding",
                    format!("unknown encoding `{e}` (gb18030, gbk or utf-8)"),
                );
            }
        }
        s.finish();
        match (id, kind, path, baud) {
            (Some(id), Some(kind), Some(path), Some(baud)) => out.push(Device {
                id,
                kind,
                path,
                baud,
                encoding: encoding.unwrap_or_else(|| "gb18030".into()),
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// `[[cameras]]`
#[derive(Debug, Clone)]
pub struct Camera {
    /// Camera id.
    pub id: String,
    /// RTSP URL, V4L2 device, video file or image folder.
    pub source: String,
    /// Play a video file or image folder again from the start when it ends (`loop`;
    /// for demos and soak runs; live sources always reconnect).
    pub looped: bool,
}

pub(super) fn read_cameras(root: &mut Section<'_, '_>) -> Option<Vec<Camera>> {
    let mut ids = Unique::new("camera id");
    let mut out = Vec::new();
    let mut ok = true;
    for mut s in root.tables("cameras") {
        let id = s.req_str("id");
        if let Some(id) = &id {
            ok &= ids.check(&s, "id", id);
        }
        let source = s.req_str("source");
        let looped = s.opt_bool("loop").unwrap_or(false);
        if looped
            && let Some(src) = &source
            && SourceKind::of(src).is_live()
        {
            s.problem("loop", "only a video file or an image folder can loop");
        }
        s.finish();
        match (id, source) {
            (Some(id), Some(source)) => out.push(Camera { id, source, looped }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// What kind of source a camera's `source` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A network stream (rtsp://, http(s)://): frames arrive at the camera's pace.
    Stream(String),
    /// A V4L2 device such as /dev/video0.
    Device(String),
    /// A video file, played at its own frame rate (for tests and demos).
    File(PathBuf),
    /// A folder of JPEG/PNG images, one per sample (for tests).
    Folder(PathBuf),
}

impl SourceKind {
    /// Classify a configured source.
    pub fn of(source: &str) -> SourceKind {
        let lower = source.to_ascii_lowercase();
        if ["rtsp://", "rtsps://", "http://", "https://", "rtmp://"]
            .iter()
            .any(|p| lower.starts_with(p))
        {
            SourceKind::Stream(source.to_string())
        } else if source.starts_with("/dev/") {
            SourceKind::Device(source.to_string())
        } else if Path::new(source).is_dir() {
            SourceKind::Folder(PathBuf::from(source))
        } else {
            SourceKind::File(PathBuf::from(source))
        }
    }

    /// Whether the end of the source is a loss (live) rather than its natural end.
    pub fn is_live(&self) -> bool {
        matches!(self, SourceKind::Stream(_) | SourceKind::Device(_))
    }
}
