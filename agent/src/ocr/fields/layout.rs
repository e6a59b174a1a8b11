//! The page's layout: recognised lines straightened and grouped into rows, labels found at
//! the start of text pieces, each label's value read to its right and continued below it.

use super::*;

#[derive(Debug, Clone)]
pub(super) struct Piece {
    pub(super) text: String,
    pub(super) x0: f32,
    pub(super) x1: f32,
    pub(super) yc: f32,
    pub(super) h: f32,
    pub(super) conf: f32,
    /// Per character of `text`, the recogniser's readings (empty when not known).
    pub(super) readings: Vec<Readings>,
}

#[derive(Debug, Clone)]
pub(super) struct Row {
    pub(super) pieces: Vec<Piece>,
    pub(super) yc: f32,
    pub(super) h: f32,
}

pub(super) fn median(v: &mut [f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

pub(super) fn clean_text(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The readings of the characters `clean_text` keeps; empty when they do not match the
/// text.
pub(super) fn clean_readings(line: &Line) -> Vec<Readings> {
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
pub(super) fn rows(lines: &[Line]) -> Vec<Row> {
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
pub(super) type Label = (&'static str, &'static str);

pub(super) const ID_FRONT_LABELS: &[Label] = &[
    ("公民身份号码", "id_number"),
    ("姓名", "name"),
    ("性别", "gender"),
    ("民族", "nation"),
    ("出生", "birth_date"),
    ("住址", "address"),
];

pub(super) const ID_BACK_LABELS: &[Label] = &[
    ("签发机关", "issuing_authority"),
    ("有效期限", "validity"),
    ("中华人民共和国", ""),
    ("居民身份证", ""),
];

pub(super) const LICENCE_LABELS: &[Label] = &[
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
pub(super) fn label_at(chars: &[char], at: usize, label: &str) -> bool {
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
pub(super) struct Found {
    pub(super) key: &'static str,
    pub(super) text: String,
    pub(super) conf: f32,
    /// Where the label starts: the field's column.
    pub(super) label_x: f32,
    pub(super) last_yc: f32,
    pub(super) open: bool,
}

/// Text of a row that belongs to no label, kept as pieces (one per piece it came from).
fn keep_unlabelled(row: &Row, chars: &[(char, f32, usize, bool)], out: &mut Vec<Piece>) {
    let mut last_piece = usize::MAX;
    for c in chars {
        if c.2 == last_piece {
            if let Some(b) = out.last_mut() {
                b.text.push(c.0);
            }
        } else {
            out.push(Piece {
                text: c.0.to_string(),
                x0: c.1,
                readings: Vec::new(),
                ..row.pieces[c.2].clone()
            });
            last_piece = c.2;
        }
    }
}

/// Split a row into (pieces before the first label, [(label key, label x, value x, value
/// text, confidence)]). A label may span pieces (letter-spaced labels are often cut
/// apart); it counts only where a piece starts, or anywhere for labels of three or more
/// characters.
#[allow(clippy::type_complexity)]
pub(super) fn split_row(
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
    keep_unlabelled(row, &chars[..first], &mut before);
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
        keep_unlabelled(row, &chars[cut..stop], &mut before);
    }
    (before, found)
}

/// Read labelled fields with their continuation lines.
pub(super) fn read_fields(rows: &[Row], labels: &[Label]) -> Vec<Found> {
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
