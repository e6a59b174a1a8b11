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
    /// Per character of `text`, the x of its left edge (the line's width shared out by
    /// character width, the whitespace `text` no longer holds included).
    pub(super) xs: Vec<f32>,
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

/// Half-width characters (digits, Latin letters, ASCII punctuation and space) take about
/// half the width of a Chinese character.
fn width_of(c: char) -> f32 {
    if c.is_ascii() { 0.5 } else { 1.0 }
}

/// The left edge of each character `clean_text` keeps, for a line spanning `x0..x1`.
fn char_xs(text: &str, x0: f32, x1: f32) -> Vec<f32> {
    let total: f32 = text.chars().map(width_of).sum::<f32>().max(0.5);
    let mut at = 0.0;
    let mut out = Vec::new();
    for c in text.chars() {
        if !c.is_whitespace() {
            out.push(x0 + (x1 - x0) * at / total);
        }
        at += width_of(c);
    }
    out
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
                xs: char_xs(&l.text, x0, x1),
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
        // boxes are taller than their text: lines set close together overlap, and two
        // pieces one above the other are never one row
        let stacked = |row: &Row| {
            row.pieces.iter().any(|q| {
                let overlap = p.x1.min(q.x1) - p.x0.max(q.x0);
                overlap > 0.6 * (p.x1 - p.x0).min(q.x1 - q.x0)
            })
        };
        match out.last_mut() {
            Some(row) if (p.yc - row.yc).abs() < 0.5 * row.h.min(p.h) && !stacked(row) => {
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

/// Whether `label` of four or more characters is at `chars[at..]` with one character
/// after its first lost (`成日期` for `成立日期`, the letter-spaced label's gap swallowing
/// it).
pub(super) fn label_at_one_lost(chars: &[char], at: usize, label: &str) -> bool {
    let l: Vec<char> = label.chars().collect();
    if l.len() < 4 || at + l.len() - 1 > chars.len() || chars[at] != l[0] {
        return false;
    }
    let got = &chars[at..at + l.len() - 1];
    (1..l.len()).any(|lost| {
        l.iter()
            .enumerate()
            .filter(|&(k, _)| k != lost)
            .map(|(_, c)| c)
            .eq(got.iter())
    })
}

#[derive(Debug, Clone)]
pub(super) struct Found {
    pub(super) key: &'static str,
    pub(super) text: String,
    pub(super) conf: f32,
    /// Where the label starts: the field's column.
    pub(super) label_x: f32,
    /// Where its value starts (its other lines start under it); not known while the
    /// label's row held no value.
    pub(super) value_x: Option<f32>,
    /// Whether `value_x` is where a piece starts (else it is estimated inside a piece that
    /// holds the label too).
    pub(super) value_x_exact: bool,
    /// The label's row.
    pub(super) yc: f32,
}

/// Text of a row that belongs to no label, kept as pieces (one per piece it came from).
fn keep_unlabelled(row: &Row, chars: &[(char, f32, usize, bool)], out: &mut Vec<Piece>) {
    let mut last_piece = usize::MAX;
    for c in chars {
        if c.2 == last_piece {
            if let Some(b) = out.last_mut() {
                b.text.push(c.0);
                b.xs.push(c.1);
            }
        } else {
            out.push(Piece {
                text: c.0.to_string(),
                x0: c.1,
                readings: Vec::new(),
                xs: vec![c.1],
                ..row.pieces[c.2].clone()
            });
            last_piece = c.2;
        }
    }
}

/// A two-character label spread over the label column (`名　　称`) often comes out of the
/// recogniser with one character lost: the row then starts with the first character alone
/// (`名`, the value in the next piece) or with the second one run into the value
/// (`所四川省…`). Either counts as the label when it opens the row (`first`, the text of
/// the piece opening it, and whether more pieces follow); the label's key.
fn half_label(first: &str, more: bool, labels: &[Label]) -> Option<&'static str> {
    let first: Vec<char> = first.chars().collect();
    labels.iter().find_map(|(l, key)| {
        let l: Vec<char> = l.chars().collect();
        match (l.as_slice(), first.as_slice()) {
            ([a, _], [c]) if a == c && more => Some(*key),
            ([_, b], [c, _, ..]) if b == c => Some(*key),
            _ => None,
        }
    })
}

/// The label found by [`half_label`] at the start of the row or of a column of it (a
/// piece after a gap wider than [`COLUMN_GAP`] line heights), in the row's characters.
fn half_label_in(row: &Row, labels: &[Label]) -> Option<(usize, usize, &'static str)> {
    let mut at = 0;
    for (k, p) in row.pieces.iter().enumerate() {
        let opens = k == 0 || p.x0 - row.pieces[k - 1].x1 > COLUMN_GAP * row.h;
        if opens && let Some(key) = half_label(&p.text, k + 1 < row.pieces.len(), labels) {
            return Some((at, at + 1, key));
        }
        at += p.text.chars().count();
    }
    None
}

/// Split a row into (pieces before the first label, [(label key, label x, (value x,
/// whether it starts a piece) when the row holds a value, value text, confidence, y of
/// the value's first piece, else of the label's)]). A label may span pieces
/// (letter-spaced labels are often cut apart); it counts only where a piece starts, or
/// anywhere for labels of three or more characters.
#[allow(clippy::type_complexity)]
pub(super) fn split_row(
    row: &Row,
    labels: &[Label],
) -> (
    Vec<Piece>,
    Vec<(&'static str, f32, Option<(f32, bool)>, String, f32, f32)>,
) {
    // (char, x of its left edge, piece index, starts its piece)
    let mut chars: Vec<(char, f32, usize, bool)> = Vec::new();
    for (pi, p) in row.pieces.iter().enumerate() {
        for (i, c) in p.text.chars().enumerate() {
            let x = p.xs.get(i).copied().unwrap_or(p.x0);
            chars.push((c, x, pi, i == 0));
        }
    }
    let text: Vec<char> = chars.iter().map(|c| c.0).collect();
    let mut hits: Vec<(usize, usize, &'static str)> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let hit = labels
            .iter()
            .find(|(l, _)| {
                (chars[i].3 || l.chars().count() >= 3 || *l == "民族") && label_at(&text, i, l)
            })
            .map(|(l, key)| (l.chars().count(), key))
            .or_else(|| {
                labels
                    .iter()
                    .find(|(l, _)| chars[i].3 && label_at_one_lost(&text, i, l))
                    .map(|(l, key)| (l.chars().count() - 1, key))
            });
        match hit {
            Some((len, key)) => {
                let end = i + len;
                hits.push((i, end, key));
                i = end;
            }
            None => i += 1,
        }
    }
    if let Some(hit) = half_label_in(row, labels)
        && !hits.iter().any(|h| h.0 < hit.1 && hit.0 < h.1 + 1)
    {
        let at = hits.partition_point(|h| h.0 < hit.0);
        hits.insert(at, hit);
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
            if prev != cur && row.pieces[cur].x0 - row.pieces[prev].x1 > COLUMN_GAP * row.h {
                cut = j;
                break;
            }
        }
        let value: String = text[end..cut].iter().collect();
        let conf = chars[start..cut]
            .iter()
            .map(|c| row.pieces[c.2].conf)
            .fold(1.0f32, f32::min);
        let value_x = chars.get(end).filter(|_| end < cut).map(|c| (c.1, c.3));
        let yc = row.pieces[chars
            .get(end)
            .filter(|_| end < cut)
            .unwrap_or(&chars[start])
            .2]
            .yc;
        found.push((key, chars[start].1, value_x, value, conf, yc));
        keep_unlabelled(row, &chars[cut..stop], &mut before);
    }
    (before, found)
}

/// How far (in line heights) a value's line may start from where its first line starts.
const ALIGN: f32 = 1.2;
/// The same where the first line's start is estimated inside a piece holding the label.
const ALIGN_ESTIMATED: f32 = 2.0;
/// A piece this many times the median line height is a title, not a value.
const TALL: f32 = 1.8;
/// The widest gap (in line heights) between two pieces of one line of a value.
const GAP: f32 = 2.0;
/// A vertical gap this many times a column's line pitch starts a new block of lines.
const BLOCK_GAP: f32 = 1.25;
/// A gap this many line heights wide between two pieces of a row starts another column.
const COLUMN_GAP: f32 = 3.0;
/// How far (in line heights) above or below a label standing alone its value may be.
const NEAR: f32 = 3.0;
/// How far (in line heights) to the right of a label standing alone its value may start.
const REACH: f32 = 10.0;

/// Text of one row that belongs to no label: one or more pieces close together.
#[derive(Debug)]
struct Loose {
    x0: f32,
    h: f32,
    x1: f32,
    yc: f32,
    text: String,
    conf: f32,
}

/// The rows' loose pieces, the pieces of one row close together joined into one.
fn loose_lines(rows: &[Row], labels: &[Label], line_h: f32) -> (Vec<Loose>, Vec<Found>) {
    let mut loose: Vec<Loose> = Vec::new();
    let mut fields: Vec<Found> = Vec::new();
    for row in rows {
        let (before, found) = split_row(row, labels);
        let first = loose.len();
        for p in before {
            match loose[first..].last_mut() {
                Some(l) if p.x0 >= l.x1 - line_h && p.x0 - l.x1 <= GAP * line_h => {
                    l.text.push_str(&p.text);
                    l.x1 = l.x1.max(p.x1);
                    l.conf = l.conf.min(p.conf);
                    l.h = l.h.max(p.h);
                }
                _ => loose.push(Loose {
                    x0: p.x0,
                    h: p.h,
                    x1: p.x1,
                    yc: p.yc,
                    text: p.text,
                    conf: p.conf,
                }),
            }
        }
        for (key, label_x, value_x, text, conf, yc) in found {
            fields.push(Found {
                key,
                text,
                conf,
                label_x,
                value_x: value_x.map(|v| v.0),
                value_x_exact: value_x.is_some_and(|v| v.1),
                yc,
            });
        }
    }
    (loose, fields)
}

/// Read labelled fields with the rest of their values.
///
/// A value's lines start where its first line starts: the fields whose values start at
/// about the same x form a column, and each loose line joins the column it starts in
/// (anything else, a seal's lettering, a footer, the title, belongs to no field). Within
/// a column the lines and label rows fall into blocks wherever the gap between them is
/// clearly wider than the column's line pitch (the space between fields, or a table's
/// rule). A block's lines belong to its labels: a value that starts on its label's row
/// takes the lines below it; a label centred beside its value (a table cell) takes as many
/// lines above it as below, and where a column has a label standing alone between two
/// lines, the lines between two labels are shared out that way. A block without a label
/// (a footer, a stray line) belongs to no field.
pub(super) fn read_fields(rows: &[Row], labels: &[Label]) -> Vec<Found> {
    read_fields_and_orphans(rows, labels).0
}

/// [`read_fields`], and the lines (text, confidence) that joined no field.
pub(super) fn read_fields_and_orphans(
    rows: &[Row],
    labels: &[Label],
) -> (Vec<Found>, Vec<(String, f32)>) {
    let line_h = {
        let mut hs: Vec<f32> = rows.iter().map(|r| r.h).collect();
        median(&mut hs).max(1.0)
    };
    let (mut loose, mut fields) = loose_lines(rows, labels, line_h);
    // a title or heading is not a value's line
    loose.retain(|l| l.h <= TALL * line_h);
    // a label alone on its row: its value starts where the nearest loose line to its
    // right starts
    for f in fields.iter_mut().filter(|f| f.value_x.is_none()) {
        f.value_x_exact = true;
        f.value_x = loose
            .iter()
            .filter(|l| {
                l.x0 > f.label_x - line_h
                    && l.x0 - f.label_x <= REACH * line_h
                    && (l.yc - f.yc).abs() <= NEAR * line_h
            })
            .min_by(|a, b| (a.yc - f.yc).abs().total_cmp(&(b.yc - f.yc).abs()))
            .map(|l| l.x0);
    }
    // the fields whose value starts within reach of x
    let column_of = |x: f32| -> Vec<usize> {
        fields
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                let reach = if f.value_x_exact {
                    ALIGN
                } else {
                    ALIGN_ESTIMATED
                };
                f.value_x.is_some_and(|v| (x - v).abs() <= reach * line_h)
            })
            .map(|(i, _)| i)
            .collect()
    };
    // a label row (its field) or a loose line (its index)
    enum Item {
        Label(usize),
        Line(usize),
    }
    let columns: Vec<Vec<usize>> = loose.iter().map(|l| column_of(l.x0)).collect();
    let mut owner: Vec<Option<usize>> = vec![None; loose.len()];
    let mut done = vec![false; loose.len()];
    for (li, col) in columns.iter().enumerate() {
        if done[li] || col.is_empty() {
            continue;
        }
        // every label row and loose line of this column, top to bottom
        let mut items: Vec<(f32, Item)> = col
            .iter()
            .map(|&i| (fields[i].yc, Item::Label(i)))
            .collect();
        for (lj, m) in loose.iter().enumerate() {
            if !done[lj] && columns[lj].iter().any(|i| col.contains(i)) {
                items.push((m.yc, Item::Line(lj)));
                done[lj] = true;
            }
        }
        items.sort_by(|a, b| a.0.total_cmp(&b.0));
        // the column's lines of text: loose lines and label rows holding a value (a
        // label alone sits between lines and says nothing of their pitch)
        let texty = |it: &Item| match it {
            Item::Label(i) => !fields[*i].text.is_empty(),
            Item::Line(_) => true,
        };
        let ys: Vec<f32> = items.iter().filter(|i| texty(&i.1)).map(|i| i.0).collect();
        let mut gaps: Vec<f32> = ys
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|g| *g > 0.5 * line_h)
            .collect();
        gaps.sort_by(f32::total_cmp);
        let pitch = gaps.get(gaps.len() / 5).copied().unwrap_or(line_h);
        // blocks: runs of lines without a wide gap; a label alone joins the block it is
        // nearest to
        let mut blocks: Vec<Vec<&(f32, Item)>> = Vec::new();
        let mut last_y: Option<f32> = None;
        let mut alone: Vec<&(f32, Item)> = Vec::new();
        for item in &items {
            if !texty(&item.1) {
                alone.push(item);
                continue;
            }
            match (blocks.last_mut(), last_y) {
                (Some(b), Some(y)) if item.0 - y <= BLOCK_GAP * pitch => b.push(item),
                _ => blocks.push(vec![item]),
            }
            last_y = Some(item.0);
        }
        for item in alone {
            let distance = |b: &Vec<&(f32, Item)>| {
                let (top, bottom) = (b[0].0, b[b.len() - 1].0);
                (top - item.0).max(item.0 - bottom).max(0.0)
            };
            match blocks
                .iter_mut()
                .min_by(|a, b| distance(a).total_cmp(&distance(b)))
            {
                Some(b) => {
                    let at = b.partition_point(|i| i.0 <= item.0);
                    b.insert(at, item);
                }
                None => blocks.push(vec![item]),
            }
        }
        // labels centred beside their values (a table): a label standing alone between
        // two lines of the same block
        let centred = blocks.iter().any(|b| {
            b.windows(3)
                .any(|w| texty(&w[0].1) && !texty(&w[1].1) && texty(&w[2].1))
        });
        for block in blocks {
            let labels: Vec<(usize, usize)> = block
                .iter()
                .enumerate()
                .filter_map(|(k, (_, it))| match it {
                    Item::Label(i) => Some((k, *i)),
                    Item::Line(_) => None,
                })
                .collect();
            // a block without a label (a footer, a stray line) belongs to no field
            let Some(&(first_k, first)) = labels.first() else {
                continue;
            };
            let lines_between = |from: usize, to: usize| -> Vec<usize> {
                block[from..to]
                    .iter()
                    .filter_map(|(_, it)| match it {
                        Item::Line(lj) => Some(*lj),
                        Item::Label(_) => None,
                    })
                    .collect()
            };
            if centred {
                // as many of a label's lines below it as above: of the lines between two
                // labels, the upper one takes as many as it had above, the lower the rest
                let mut above = lines_between(0, first_k);
                for &lj in &above {
                    owner[lj] = Some(first);
                }
                for (n, &(k, i)) in labels.iter().enumerate() {
                    let end = labels.get(n + 1).map_or(block.len(), |l| l.0);
                    let run = lines_between(k + 1, end);
                    let take = if n + 1 == labels.len() {
                        run.len()
                    } else {
                        above.len().min(run.len())
                    };
                    for &lj in &run[..take] {
                        owner[lj] = Some(i);
                    }
                    if let Some(&(_, next)) = labels.get(n + 1) {
                        for &lj in &run[take..] {
                            owner[lj] = Some(next);
                        }
                    }
                    above = run[take..].to_vec();
                }
                continue;
            }
            // lines above the first label are its value centred beside it only when as
            // many of its lines follow it, or one fewer (a label centred between two
            // lines shares its row with the lower one)
            let below = labels.get(1).map_or(block.len(), |l| l.0) - first_k - 1;
            let mut current = (first_k <= below + 1).then_some(first);
            for (_, it) in block {
                match it {
                    Item::Label(i) => current = Some(*i),
                    Item::Line(lj) => owner[*lj] = current,
                }
            }
        }
    }
    // the lines joined to their fields top to bottom (a centred label's lines above it
    // come before its own row's text)
    let mut parts: Vec<Vec<(f32, f32, String, f32)>> = fields
        .iter()
        .map(|f| vec![(f.yc, f.value_x.unwrap_or(f.label_x), f.text.clone(), f.conf)])
        .collect();
    let mut orphans = Vec::new();
    for (lj, l) in loose.into_iter().enumerate() {
        match owner[lj] {
            Some(i) => parts[i].push((l.yc, l.x0, l.text, l.conf)),
            None => orphans.push((l.text, l.conf)),
        }
    }
    for (f, mut p) in fields.iter_mut().zip(parts) {
        p.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        f.text = p.iter().map(|x| x.2.as_str()).collect();
        f.conf = p.iter().map(|x| x.3).fold(1.0, f32::min);
    }
    (fields, orphans)
}

// ---------------------------------------------------------------------------- values
