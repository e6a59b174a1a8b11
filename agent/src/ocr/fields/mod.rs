//! Document fields from recognised lines: the lines are straightened (the photo's tilt
//! taken out), grouped into rows, labels found at the start of text pieces, each label's
//! value read to its right and continued on the rows below in its column. Values are
//! normalised (dates, look-alike characters in numbers, full-width punctuation) and the
//! numbers checked (GB 11643, GB 32100).

use std::collections::BTreeMap;

use branchd_drivers::checks;
use serde::Serialize;

use super::engine::Line;
use super::rec::Readings;

mod repair;

/// Which document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    /// Resident ID card (either side).
    IdCard,
    /// Business licence.
    Licence,
}

/// Which side of an ID card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Photo, name, number.
    Front,
    /// Issuing authority, validity.
    Back,
}

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// An ID card.
    IdCard,
    /// A business licence.
    Licence,
    /// Detect it.
    Auto,
}

impl std::str::FromStr for Requested {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "id-card" | "id_card" => Ok(Requested::IdCard),
            "licence" | "license" => Ok(Requested::Licence),
            "auto" => Ok(Requested::Auto),
            other => Err(format!(
                "unknown document kind {other:?}: use id-card, licence or auto"
            )),
        }
    }
}

/// One field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Field {
    /// The normalised value.
    pub value: String,
    /// The lowest confidence of the lines it was read from.
    pub confidence: f32,
    /// On fields with a check rule: whether it passes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
    /// When invalid and exactly one look-alike correction makes it valid: that value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

/// The fields of one document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    /// Which document.
    pub kind: DocKind,
    /// ID cards: which side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// Field key → field.
    pub fields: BTreeMap<String, Field>,
}

/// The image does not hold the document asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WrongKind(pub String);

// ---------------------------------------------------------------------------- layout

#[derive(Debug, Clone)]
struct Piece {
    text: String,
    x0: f32,
    x1: f32,
    yc: f32,
    h: f32,
    conf: f32,
    /// Per character of `text`, the recogniser's readings (empty when not known).
    readings: Vec<Readings>,
}

#[derive(Debug, Clone)]
struct Row {
    pieces: Vec<Piece>,
    yc: f32,
    h: f32,
}

fn median(v: &mut [f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

fn clean_text(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The readings of the characters `clean_text` keeps; empty when they do not match the
/// text.
fn clean_readings(line: &Line) -> Vec<Readings> {
    if line.readings.len() != line.text.chars().count() {
        return Vec::new();
    }
    line.text
        .chars()
        .zip(&line.readings)
        .filter(|(c, _)| !c.is_whitespace())
        .map(|(_, r)| r.clone())
        .collect()
}

/// Straighten the lines by their median tilt and group them into rows, top to bottom,
/// each left to right.
fn rows(lines: &[Line]) -> Vec<Row> {
    let mut angles: Vec<f32> = lines
        .iter()
        .filter_map(|l| {
            let q = l.quad;
            let (dx, dy) = ((q[1][0] - q[0][0]) as f32, (q[1][1] - q[0][1]) as f32);
            let h = ((q[3][0] - q[0][0]) as f32).hypot((q[3][1] - q[0][1]) as f32);
            (dx.hypot(dy) > 2.0 * h).then(|| dy.atan2(dx))
        })
        .collect();
    let a = median(&mut angles);
    let (s, c) = (-a).sin_cos();
    let mut pieces: Vec<Piece> = lines
        .iter()
        .filter_map(|l| {
            let text = clean_text(&l.text);
            if text.is_empty() {
                return None;
            }
            let pts = l.quad.map(|p| {
                let (x, y) = (p[0] as f32, p[1] as f32);
                (x * c - y * s, x * s + y * c)
            });
            let x0 = pts.iter().map(|p| p.0).fold(f32::MAX, f32::min);
            let x1 = pts.iter().map(|p| p.0).fold(f32::MIN, f32::max);
            let y0 = pts.iter().map(|p| p.1).fold(f32::MAX, f32::min);
            let y1 = pts.iter().map(|p| p.1).fold(f32::MIN, f32::max);
            Some(Piece {
                text,
                x0,
                x1,
                yc: (y0 + y1) / 2.0,
                h: (y1 - y0).max(1.0),
                conf: l.confidence,
                readings: clean_readings(l),
            })
        })
        .collect();
    pieces.sort_by(|a, b| a.yc.total_cmp(&b.yc));
    let mut out: Vec<Row> = Vec::new();
    for p in pieces {
        match out.last_mut() {
            Some(row) if (p.yc - row.yc).abs() < 0.5 * row.h.min(p.h) => {
                let n = row.pieces.len() as f32;
                row.yc = (row.yc * n + p.yc) / (n + 1.0);
                row.h = row.h.max(p.h);
                row.pieces.push(p);
            }
            _ => out.push(Row {
                yc: p.yc,
                h: p.h,
                pieces: vec![p],
            }),
        }
    }
    for row in &mut out {
        row.pieces.sort_by(|a, b| a.x0.total_cmp(&b.x0));
    }
    out
}

// ---------------------------------------------------------------------------- labels

/// A label as printed and the field it introduces (`""`: a label whose value is not a
/// field but which ends the field above it).
type Label = (&'static str, &'static str);

const ID_FRONT_LABELS: &[Label] = &[
    ("公民身份号码", "id_number"),
    ("姓名", "name"),
    ("性别", "gender"),
    ("民族", "nation"),
    ("出生", "birth_date"),
    ("住址", "address"),
];
const ID_BACK_LABELS: &[Label] = &[
    ("签发机关", "issuing_authority"),
    ("有效期限", "validity"),
    ("中华人民共和国", ""),
    ("居民身份证", ""),
];
const LICENCE_LABELS: &[Label] = &[
    ("统一社会信用代码", "credit_code"),
    ("法定代表人", "legal_person"),
    ("经营者", "legal_person"),
    ("投资人", "legal_person"),
    ("负责人", "legal_person"),
    ("执行事务合伙人", "legal_person"),
    ("经营范围", "scope"),
    ("注册资本", "registered_capital"),
    ("出资额", "registered_capital"),
    ("成立日期", "established"),
    ("营业期限", "term"),
    ("经营场所", "address"),
    ("主要经营场所", "address"),
    ("住所", "address"),
    ("名称", "name"),
    ("类型", "type"),
    ("组成形式", "type"),
    ("登记机关", ""),
];

/// Whether `label` is at `chars[at..]`: exact for short labels, one character off
/// allowed from four characters on.
fn label_at(chars: &[char], at: usize, label: &str) -> bool {
    let l: Vec<char> = label.chars().collect();
    if at + l.len() > chars.len() {
        return false;
    }
    let wrong = l
        .iter()
        .zip(&chars[at..at + l.len()])
        .filter(|(a, b)| a != b)
        .count();
    wrong == 0 || (l.len() >= 4 && wrong <= 1 && chars[at] == l[0])
}

#[derive(Debug, Clone)]
struct Found {
    key: &'static str,
    text: String,
    conf: f32,
    /// Where the label starts: the field's column.
    label_x: f32,
    last_yc: f32,
    open: bool,
}

/// Split a row into (pieces before the first label, [(label key, label x, value x, value
/// text, confidence)]). A label may span pieces (letter-spaced labels are often cut
/// apart); it counts only where a piece starts, or anywhere for labels of three or more
/// characters.
#[allow(clippy::type_complexity)]
fn split_row(
    row: &Row,
    labels: &[Label],
) -> (Vec<Piece>, Vec<(&'static str, f32, f32, String, f32)>) {
    // (char, x of its left edge, piece index, starts its piece)
    let mut chars: Vec<(char, f32, usize, bool)> = Vec::new();
    for (pi, p) in row.pieces.iter().enumerate() {
        let n = p.text.chars().count().max(1) as f32;
        for (i, c) in p.text.chars().enumerate() {
            chars.push((c, p.x0 + (p.x1 - p.x0) * i as f32 / n, pi, i == 0));
        }
    }
    let text: Vec<char> = chars.iter().map(|c| c.0).collect();
    let mut hits: Vec<(usize, usize, &'static str)> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let hit = labels.iter().find(|(l, _)| {
            (chars[i].3 || l.chars().count() >= 3 || *l == "民族") && label_at(&text, i, l)
        });
        match hit {
            Some((l, key)) => {
                let end = i + l.chars().count();
                hits.push((i, end, key));
                i = end;
            }
            None => i += 1,
        }
    }
    let first = hits.first().map_or(text.len(), |h| h.0);
    let mut before: Vec<Piece> = Vec::new();
    let mut last_piece = usize::MAX;
    for c in &chars[..first] {
        if c.2 == last_piece {
            if let Some(b) = before.last_mut() {
                b.text.push(c.0);
            }
        } else {
            before.push(Piece {
                text: c.0.to_string(),
                x0: c.1,
                readings: Vec::new(),
                ..row.pieces[c.2].clone()
            });
            last_piece = c.2;
        }
    }
    let mut found = Vec::new();
    for (k, &(start, end, key)) in hits.iter().enumerate() {
        let stop = hits.get(k + 1).map_or(text.len(), |h| h.0);
        // a wide gap ends the value: what follows belongs to the next column
        let mut cut = stop;
        for j in (end + 1)..stop {
            let (prev, cur) = (chars[j - 1].2, chars[j].2);
            if prev != cur && row.pieces[cur].x0 - row.pieces[prev].x1 > 3.0 * row.h {
                cut = j;
                break;
            }
        }
        let value: String = text[end..cut].iter().collect();
        let conf = chars[start..cut]
            .iter()
            .map(|c| row.pieces[c.2].conf)
            .fold(1.0f32, f32::min);
        let value_x = chars
            .get(end)
            .filter(|_| end < cut)
            .map_or(chars[start].1, |c| c.1);
        found.push((key, chars[start].1, value_x, value, conf));
        let mut last_piece = usize::MAX;
        for c in &chars[cut..stop] {
            if c.2 == last_piece {
                if let Some(b) = before.last_mut() {
                    b.text.push(c.0);
                }
            } else {
                before.push(Piece {
                    text: c.0.to_string(),
                    x0: c.1,
                    readings: Vec::new(),
                    ..row.pieces[c.2].clone()
                });
                last_piece = c.2;
            }
        }
    }
    (before, found)
}

/// Read labelled fields with their continuation lines.
fn read_fields(rows: &[Row], labels: &[Label]) -> Vec<Found> {
    let mut fields: Vec<Found> = Vec::new();
    let line_h = {
        let mut hs: Vec<f32> = rows.iter().map(|r| r.h).collect();
        median(&mut hs)
    };
    for row in rows {
        let (before, found) = split_row(row, labels);
        // continuation pieces go to the open field of their column
        for p in before {
            let col = fields
                .iter_mut()
                .filter(|f| {
                    f.open
                        && f.label_x <= p.x0 + line_h
                        && row.yc - f.last_yc <= 2.6 * line_h
                        && row.yc > f.last_yc
                })
                .max_by(|a, b| a.label_x.total_cmp(&b.label_x));
            if let Some(f) = col {
                f.text.push_str(&p.text);
                f.conf = f.conf.min(p.conf);
                f.last_yc = row.yc;
            }
        }
        for (key, label_x, _value_x, text, conf) in found {
            // a new label closes the field above it in the same column
            for f in fields.iter_mut() {
                if (f.label_x - label_x).abs() < 2.0 * line_h {
                    f.open = false;
                }
            }
            fields.push(Found {
                key,
                text,
                conf,
                label_x,
                last_yc: row.yc,
                open: true,
            });
        }
    }
    fields
}

// ---------------------------------------------------------------------------- values

/// Map look-alikes into the characters an ID number may hold.
fn id_chars(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '0'..='9' => Some(c),
            'X' | 'x' | '×' | 'Χ' | 'χ' => Some('X'),
            'O' | 'o' | 'D' | 'Q' | 'U' => Some('0'),
            'I' | 'l' | '|' | 'i' | 'L' => Some('1'),
            'Z' | 'z' => Some('2'),
            'S' | 's' => Some('5'),
            'B' => Some('8'),
            'G' | 'b' => Some('6'),
            _ => None,
        })
        .collect()
}

/// A look-alike mapped into the credit-code charset (no I O S V Z); `None` for a
/// character that cannot be part of a code.
fn credit_char(c: char) -> Option<char> {
    let c = c.to_ascii_uppercase();
    match c {
        'O' => Some('0'),
        'I' => Some('1'),
        'Z' => Some('2'),
        'S' => Some('5'),
        'V' => Some('U'),
        '0'..='9' | 'A'..='Z' => Some(c),
        _ => None,
    }
}

/// The credit-code characters of a piece, each with its readings mapped into the charset
/// (readings of one character that map to the same one add up).
fn credit_slots(p: &Piece) -> Vec<repair::Slot> {
    let known = p.readings.len() == p.text.chars().count();
    p.text
        .chars()
        .enumerate()
        .filter_map(|(i, c)| {
            let c = credit_char(c)?;
            let raw = if known { p.readings[i].as_slice() } else { &[] };
            let Some(&(_, p0)) = raw.first() else {
                return Some(repair::Slot::only(c, p.conf));
            };
            let mut slot = repair::Slot {
                readings: vec![(c, p0)],
                // readings end where the recogniser stopped listing them
                unlisted: if raw.len() >= super::rec::READINGS {
                    raw.iter().map(|r| r.1).fold(p0, f32::min)
                } else {
                    p0
                },
            };
            for &(a, prob) in raw.iter().skip(1) {
                let Some(a) = credit_char(a) else { continue };
                match slot.readings.iter_mut().find(|s| s.0 == a) {
                    Some(s) => s.1 += prob,
                    None => slot.readings.push((a, prob)),
                }
            }
            Some(slot)
        })
        .collect()
}

fn pick_number(
    candidates: impl Iterator<Item = String>,
    valid: impl Fn(&str) -> bool,
) -> Option<String> {
    let all: Vec<String> = candidates.filter(|s| s.chars().count() == 18).collect();
    all.iter()
        .find(|s| valid(s))
        .or_else(|| all.first())
        .cloned()
}

/// Every 18-character window of a run, for a number read together with other text.
fn windows18(s: String) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 18 {
        return vec![s];
    }
    (0..=chars.len() - 18)
        .map(|i| chars[i..i + 18].iter().collect())
        .collect()
}

/// `YYYY-MM-DD` from text like `1981年1月1日`, `2005年01月24日`, `2022.06.02`,
/// `20220602`.
pub fn parse_date(s: &str) -> Option<String> {
    let groups: Vec<String> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect();
    let (y, m, d) = match groups.as_slice() {
        [one, ..] if one.len() == 8 => (
            one[..4].parse().ok()?,
            one[4..6].parse().ok()?,
            one[6..].parse().ok()?,
        ),
        [y, m, d, ..] if y.len() == 4 => (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?),
        _ => return None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(y, m, d)?;
    Some(date.format("%Y-%m-%d").to_string())
}

/// Two dates or a date and `长期` from a period (`2015.03.12-2035.03.12`,
/// `2015年03月12日至长期`, `长期`).
fn parse_period(s: &str) -> Option<(Option<String>, String)> {
    let s = s.replace(['一', '—', '–', '~', '〜'], "-");
    let (a, b) = match s.find('至') {
        Some(i) => (&s[..i], &s[i + '至'.len_utf8()..]),
        None => match s.find('-') {
            Some(i) => (&s[..i], &s[i + 1..]),
            None => {
                if s.contains("长期") {
                    return Some((None, "长期".into()));
                }
                // dates run together: split the digits in half
                let digits: String = s.chars().filter(char::is_ascii_digit).collect();
                if digits.len() == 16 {
                    return Some((parse_date(&digits[..8]), parse_date(&digits[8..])?));
                }
                return None;
            }
        },
    };
    let from = parse_date(a);
    let to = if b.contains("长期") || (b.contains('长') && b.contains('期')) {
        "长期".to_string()
    } else {
        parse_date(b)?
    };
    Some((from, to))
}

/// Full-width punctuation as printed in Chinese text.
fn cjk_punct(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '(' => '（',
            ')' => '）',
            ':' => '：',
            ';' => '；',
            ',' => '，',
            _ => c,
        })
        .collect::<String>()
        .replace('.', "。")
}

/// The two sentences every business scope ends its parts with (fixed wording).
const SCOPE_SENTENCES: [&str; 2] = [
    "（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）",
    "（依法须经批准的项目，经相关部门批准后方可开展经营活动）",
];

/// Repair the scope's punctuation and its fixed sentences: items are separated by `；`
/// (OCR often reads `：`), and a fixed sentence read with one or two wrong characters
/// (same length) is restored.
fn fix_scope(s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for i in 0..chars.len() {
        if chars[i] == '：' {
            let before: String = chars[i.saturating_sub(2)..i].iter().collect();
            if before != "项目" {
                chars[i] = '；';
            }
        }
    }
    for sentence in SCOPE_SENTENCES {
        let want: Vec<char> = sentence.chars().collect();
        let mut i = 0;
        while i + want.len() <= chars.len() {
            let window = &chars[i..i + want.len()];
            let wrong = window.iter().zip(&want).filter(|(a, b)| a != b).count();
            if wrong > 0 && wrong <= 2 && window[0] == want[0] {
                chars.splice(i..i + want.len(), want.iter().copied());
                i += want.len();
            } else {
                i += 1;
            }
        }
    }
    chars.into_iter().collect()
}

/// Characters OCR confuses in place names, and the word they belong to.
const ADDRESS_FIXES: [(&str, &str); 3] = [
    ("白治区", "自治区"),
    ("白治州", "自治州"),
    ("白治县", "自治县"),
];

fn fix_address(s: &str) -> String {
    ADDRESS_FIXES
        .iter()
        .fold(s.to_string(), |acc, (bad, good)| acc.replace(bad, good))
}

fn cjk_only(s: &str) -> String {
    s.chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c) || *c == '·')
        .collect()
}

fn strip_leading_punct(s: &str) -> &str {
    s.trim_start_matches([':', '：', '.', '。', ',', '，', '、', ';', '；'])
}

fn field(value: String, conf: f32) -> Field {
    Field {
        value,
        confidence: (conf * 1000.0).round() / 1000.0,
        valid: None,
        suggestion: None,
    }
}

fn checked(value: String, conf: f32, valid: bool, suggestion: Option<String>) -> Field {
    Field {
        valid: Some(valid),
        suggestion: if valid { None } else { suggestion },
        ..field(value, conf)
    }
}

// ---------------------------------------------------------------------------- documents

fn score(text: &str, labels: &[&str]) -> usize {
    labels.iter().filter(|l| text.contains(*l)).count()
}

fn all_text(lines: &[Line]) -> String {
    lines.iter().map(|l| clean_text(&l.text)).collect()
}

fn kind_scores(lines: &[Line]) -> (usize, usize, usize) {
    let t = all_text(lines);
    let front = score(
        &t,
        &["姓名", "性别", "民族", "出生", "住址", "公民身份号码"],
    );
    let back = score(
        &t,
        &["中华人民共和国", "居民身份证", "签发机关", "有效期限"],
    );
    let lic = score(
        &t,
        &[
            "营业执照",
            "统一社会信用代码",
            "名称",
            "类型",
            "法定代表人",
            "经营范围",
            "注册资本",
            "成立日期",
            "营业期限",
            "住所",
            "登记机关",
        ],
    );
    (front, back, lic)
}

/// Read the fields of the requested document.
pub fn extract(lines: &[Line], requested: Requested) -> Result<Document, WrongKind> {
    let (front, back, lic) = kind_scores(lines);
    let id = front.max(back);
    let kind = match requested {
        Requested::IdCard if id == 0 && lic >= 2 => {
            return Err(WrongKind(
                "this looks like a business licence, not an ID card".into(),
            ));
        }
        Requested::Licence if lic < 2 && id >= 2 => {
            return Err(WrongKind(
                "this looks like an ID card, not a business licence".into(),
            ));
        }
        Requested::IdCard => DocKind::IdCard,
        Requested::Licence => DocKind::Licence,
        Requested::Auto if lic >= 2 && lic > id => DocKind::Licence,
        Requested::Auto => DocKind::IdCard,
    };
    let rows = rows(lines);
    Ok(match kind {
        DocKind::Licence => Document {
            kind,
            side: None,
            fields: licence(&rows),
        },
        DocKind::IdCard if back > front => Document {
            kind,
            side: Some(Side::Back),
            fields: id_back(&rows),
        },
        DocKind::IdCard => Document {
            kind,
            side: Some(Side::Front),
            fields: id_front(&rows),
        },
    })
}

fn id_number_field(candidates: Vec<(String, f32)>) -> Option<Field> {
    let conf_of = |s: &str| {
        candidates
            .iter()
            .find(|(c, _)| windows18(c.clone()).iter().any(|w| w == s))
            .map_or(0.0, |c| c.1)
    };
    let best = pick_number(
        candidates.iter().flat_map(|(c, _)| windows18(c.clone())),
        |s| checks::validate_citizen_id(s).is_ok(),
    )?;
    let valid = checks::validate_citizen_id(&best).is_ok();
    let conf = conf_of(&best);
    let suggestion = checks::suggest_citizen_id(&best);
    Some(checked(best, conf, valid, suggestion))
}

fn id_front(rows: &[Row]) -> BTreeMap<String, Field> {
    let found = read_fields(rows, ID_FRONT_LABELS);
    let mut out = BTreeMap::new();
    let get = |key: &str| found.iter().find(|f| f.key == key && !f.text.is_empty());
    if let Some(f) = get("name") {
        let v = cjk_only(&f.text);
        if !v.is_empty() {
            out.insert("name".into(), field(v, f.conf));
        }
    }
    if let Some(f) = get("gender") {
        if let Some(g) = f.text.chars().find(|c| *c == '男' || *c == '女') {
            out.insert("gender".into(), field(g.to_string(), f.conf));
        }
    }
    if let Some(f) = get("nation") {
        let v = cjk_only(&f.text);
        let v = v.strip_suffix('族').unwrap_or(&v).to_string();
        if !v.is_empty() {
            out.insert("nation".into(), field(v, f.conf));
        }
    }
    if let Some(f) = get("birth_date") {
        if let Some(d) = parse_date(&f.text) {
            out.insert("birth_date".into(), field(d, f.conf));
        }
    }
    if let Some(f) = get("address") {
        let v = fix_address(&cjk_punct(strip_leading_punct(&f.text)));
        if !v.is_empty() {
            out.insert("address".into(), field(v, f.conf));
        }
    }
    // the number: after its label, else any 18-character run of digits
    let mut candidates: Vec<(String, f32)> = found
        .iter()
        .filter(|f| f.key == "id_number")
        .map(|f| (id_chars(&f.text), f.conf))
        .collect();
    for row in rows {
        for p in &row.pieces {
            let s = id_chars(&p.text);
            if s.len() >= 18 && p.text.chars().filter(char::is_ascii_digit).count() >= 14 {
                candidates.push((s, p.conf));
            }
        }
    }
    if let Some(id) = id_number_field(candidates) {
        if id.valid == Some(true) {
            cross_check(&mut out, &id.value);
        }
        out.insert("id_number".into(), id);
    }
    out
}

/// Gender and birth date checked against a valid ID number.
fn cross_check(out: &mut BTreeMap<String, Field>, id: &str) {
    if let Some(birth) = checks::citizen_id_birth_date(id) {
        if let Some(f) = out.get_mut("birth_date") {
            f.valid = Some(f.value == birth.format("%Y-%m-%d").to_string());
        }
    }
    let male = id
        .chars()
        .nth(16)
        .and_then(|c| c.to_digit(10))
        .map(|d| d % 2 == 1);
    if let (Some(male), Some(f)) = (male, out.get_mut("gender")) {
        f.valid = Some((f.value == "男") == male);
    }
}

fn id_back(rows: &[Row]) -> BTreeMap<String, Field> {
    let found = read_fields(rows, ID_BACK_LABELS);
    let mut out = BTreeMap::new();
    if let Some(f) = found
        .iter()
        .find(|f| f.key == "issuing_authority" && !f.text.is_empty())
    {
        let v = cjk_only(&f.text);
        if !v.is_empty() {
            out.insert("issuing_authority".into(), field(v, f.conf));
        }
    }
    if let Some(f) = found.iter().find(|f| f.key == "validity") {
        if let Some((from, to)) = parse_period(&f.text) {
            if let Some(from) = from {
                out.insert("valid_from".into(), field(from, f.conf));
            }
            out.insert("valid_to".into(), field(to, f.conf));
        }
    }
    out
}

fn licence(rows: &[Row]) -> BTreeMap<String, Field> {
    let found = read_fields(rows, LICENCE_LABELS);
    let mut out = BTreeMap::new();
    let get = |key: &str| found.iter().find(|f| f.key == key && !f.text.is_empty());
    for key in ["name", "type", "address", "scope"] {
        if let Some(f) = get(key) {
            let v = cjk_punct(strip_leading_punct(&f.text));
            let v = match key {
                "scope" => fix_scope(&v),
                "address" => fix_address(&v),
                _ => v,
            };
            if !v.is_empty() {
                out.insert(key.into(), field(v, f.conf));
            }
        }
    }
    if let Some(f) = get("legal_person") {
        let v = cjk_only(&f.text);
        if !v.is_empty() {
            out.insert("legal_person".into(), field(v, f.conf));
        }
    }
    if let Some(f) = get("registered_capital") {
        let v = cjk_only(&f.text);
        if !v.is_empty() {
            out.insert("registered_capital".into(), field(v, f.conf));
        }
    }
    if let Some(f) = get("established") {
        if let Some(d) = parse_date(&f.text) {
            out.insert("established".into(), field(d, f.conf));
        }
    }
    if let Some(f) = get("term") {
        if let Some((from, to)) = parse_period(&f.text) {
            let v = match from {
                Some(from) => format!("{from}至{to}"),
                None => to,
            };
            out.insert("term".into(), field(v, f.conf));
        }
    }
    if let Some(code) = credit_code_field(rows) {
        out.insert("credit_code".into(), code);
    }
    out
}

/// The credit code: under or after its label, else any 18-character run, one that passes
/// its check first. A code that fails its check is repaired from the recogniser's readings
/// when exactly one repair is plausible ([`repair`]); otherwise it stays as read, invalid,
/// with the look-alike suggestion when there is one.
fn credit_code_field(rows: &[Row]) -> Option<Field> {
    // (characters with their readings, confidence of the piece)
    let mut runs: Vec<(Vec<repair::Slot>, f32)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let labelled = row.pieces.iter().any(|p| p.text.contains("信用代码"));
        for p in &row.pieces {
            let slots = credit_slots(p);
            if slots.len() >= 18 {
                runs.push((slots, p.conf));
            }
        }
        if labelled {
            if let Some(next) = rows.get(i + 1) {
                for p in &next.pieces {
                    let slots = credit_slots(p);
                    if slots.len() >= 18 {
                        runs.insert(0, (slots, p.conf));
                    }
                }
            }
        }
    }
    let text = |w: &[repair::Slot]| -> String { w.iter().map(repair::Slot::read).collect() };
    let windows: Vec<(&[repair::Slot], f32)> = runs
        .iter()
        .flat_map(|(slots, conf)| slots.windows(18).map(move |w| (w, *conf)))
        .collect();
    let is_valid = |s: &str| checks::validate_credit_code(s).is_ok();
    if let Some((w, conf)) = windows.iter().find(|(w, _)| is_valid(&text(w))) {
        return Some(checked(text(w), *conf, true, None));
    }
    let (w, conf) = windows.first()?;
    let raw = text(w);
    if let Some(r) = repair::repair(w, is_valid) {
        return Some(checked(r.value, conf.min(r.probability), true, None));
    }
    let suggestion = checks::suggest_credit_code(&raw);
    Some(checked(raw, *conf, false, suggestion))
}

#[cfg(test)]
mod tests;
