//! Values normalised: look-alike characters in numbers, dates and periods, full-width
//! punctuation, the known phrasing of business scopes and addresses.

use super::*;

/// Map look-alikes into the characters an ID number may hold.
pub(super) fn id_chars(s: &str) -> String {
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
pub(super) fn credit_char(c: char) -> Option<char> {
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
pub(super) fn credit_slots(p: &Piece) -> Vec<repair::Slot> {
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
                unlisted: if raw.len() >= crate::ocr::rec::READINGS {
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

pub(super) fn pick_number(
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
pub(super) fn windows18(s: String) -> Vec<String> {
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
pub(super) fn parse_period(s: &str) -> Option<(Option<String>, String)> {
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
pub(super) fn cjk_punct(s: &str) -> String {
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
pub(super) const SCOPE_SENTENCES: [&str; 2] = [
    "（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）",
    "（依法须经批准的项目，经相关部门批准后方可开展经营活动）",
];

/// Repair the scope's punctuation and its fixed sentences: items are separated by `；`
/// (OCR often reads `：`), and a fixed sentence read with one or two wrong characters
/// (same length) is restored.
pub(super) fn fix_scope(s: &str) -> String {
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
pub(super) const ADDRESS_FIXES: [(&str, &str); 3] = [
    ("白治区", "自治区"),
    ("白治州", "自治州"),
    ("白治县", "自治县"),
];

pub(super) fn fix_address(s: &str) -> String {
    ADDRESS_FIXES
        .iter()
        .fold(s.to_string(), |acc, (bad, good)| acc.replace(bad, good))
}

pub(super) fn cjk_only(s: &str) -> String {
    s.chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c) || *c == '·')
        .collect()
}

pub(super) fn strip_leading_punct(s: &str) -> &str {
    s.trim_start_matches([':', '：', '.', '。', ',', '，', '、', ';', '；'])
}
