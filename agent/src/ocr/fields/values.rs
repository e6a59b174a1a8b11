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
        // a stray digit read before the year (`22005年02月25日`): the year is its last four
        [y, m, d, ..] if y.len() >= 4 && y.len() != 8 => (
            y[y.len() - 4..].parse().ok()?,
            m.parse().ok()?,
            d.parse().ok()?,
        ),
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
            '丶' => '、',
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
/// (OCR often reads `：`); a fixed sentence read with up to [`SENTENCE_EDITS`] characters
/// wrong, missing or extra, or cut short at the end of the scope, is restored, and the
/// full stop that always precedes it put back when it was lost.
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
    restore_heading(&mut chars, 0);
    for sentence in SCOPE_SENTENCES {
        let want: Vec<char> = sentence.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            match sentence_at(&chars[i..], &want) {
                Some(len) => {
                    chars.splice(i..i + len, want.iter().copied());
                    // the items end with a full stop before the sentence (often read as a
                    // dot or comma, or lost)
                    if i > 0 && matches!(chars[i - 1], '·' | '，' | '、' | '.') {
                        chars[i - 1] = '。';
                    } else if i > 0 && !matches!(chars[i - 1], '。' | '；') {
                        chars.insert(i, '。');
                        i += 1;
                    }
                    i += want.len();
                    // the permitted items follow the general ones' sentence
                    restore_heading(&mut chars, i);
                }
                None => i += 1,
            }
        }
    }
    chars.into_iter().collect()
}

/// The headings of a scope's two parts (the general items, those needing a permit).
const SCOPE_HEADINGS: [&str; 2] = ["一般项目：", "许可项目："];

/// Restore the heading at `chars[at..]` when it was read with up to two characters wrong,
/// lost or extra (`般项目：`, `一服项目，`, `许可目；`): a run of three to six characters
/// ending in a colon or the like, nearer one heading than the other. The pre-2021 headings
/// (`一般经营项目：`) are further off and stay as printed.
fn restore_heading(chars: &mut Vec<char>, at: usize) {
    let rest = &chars[at.min(chars.len())..];
    // (edits, length) of the nearest reading of `heading` at the start of `rest`
    let nearest = |heading: &str| {
        (3..=rest.len().min(6))
            .filter(|&len| matches!(rest[len - 1], '：' | ':' | '；' | ';' | '，' | ','))
            .map(|len| {
                let got: String = rest[..len].iter().collect();
                (strsim::levenshtein(&got, heading), len)
            })
            .filter(|&(d, _)| d <= 2)
            .min()
    };
    let [general, permit] = SCOPE_HEADINGS;
    let found = match (nearest(general), nearest(permit)) {
        (Some(g), Some(p)) if g.0 == p.0 => None,
        (Some(g), Some(p)) => Some(if g.0 < p.0 { (g, general) } else { (p, permit) }),
        (Some(g), None) => Some((g, general)),
        (None, Some(p)) => Some((p, permit)),
        (None, None) => None,
    };
    if let Some(((d, len), heading)) = found
        && d > 0
    {
        chars.splice(at..at + len, heading.chars());
    }
}

/// Enterprise types as the registration rules name them, as a licence's 类型 prints them.
const ENTERPRISE_TYPES: [&str; 42] = [
    "有限责任公司（自然人投资或控股）",
    "有限责任公司（自然人独资）",
    "有限责任公司（自然人投资或控股的法人独资）",
    "有限责任公司（非自然人投资或控股的法人独资）",
    "有限责任公司（国有独资）",
    "有限责任公司（国有控股）",
    "有限责任公司（外商投资、非独资）",
    "有限责任公司（外国法人独资）",
    "有限责任公司（外国自然人独资）",
    "有限责任公司（中外合资）",
    "有限责任公司（中外合作）",
    "有限责任公司（台港澳投资、非独资）",
    "有限责任公司（台港澳法人独资）",
    "有限责任公司（台港澳自然人独资）",
    "有限责任公司（台港澳与境内合资）",
    "有限责任公司分公司（自然人投资或控股）",
    "有限责任公司分公司（自然人独资）",
    "有限责任公司分公司（非自然人投资或控股的法人独资）",
    "股份有限公司（上市、自然人投资或控股）",
    "股份有限公司（非上市、自然人投资或控股）",
    "股份有限公司（上市、国有控股）",
    "股份有限公司（非上市、国有控股）",
    "股份有限公司（中外合资、上市）",
    "股份有限公司（中外合资、未上市）",
    "股份有限公司（外商投资、上市）",
    "股份有限公司（外商投资、未上市）",
    "股份有限公司分公司（上市、自然人投资或控股）",
    "股份有限公司分公司（非上市、自然人投资或控股）",
    "其他有限责任公司",
    "其他有限责任公司分公司",
    "其他股份有限公司（上市）",
    "其他股份有限公司（非上市）",
    "个人独资企业",
    "个人独资企业分支机构",
    "普通合伙企业",
    "特殊普通合伙企业",
    "有限合伙企业",
    "合伙企业分支机构",
    "个体工商户",
    "农民专业合作社",
    "全民所有制",
    "集体所有制",
];

/// A company type cut short inside its parentheses is the one registered type it can be
/// the start of; one read with a character or two wrong (`自然人税货`) is the registered
/// type it is nearest to, when exactly one is that near. Anything else stays as read.
pub(super) fn fix_type(s: &str) -> String {
    if ENTERPRISE_TYPES.contains(&s) {
        return s.to_string();
    }
    let n = s.chars().count();
    if n >= 8 && s.contains('（') && !s.contains('）') {
        let mut starts = ENTERPRISE_TYPES.iter().filter(|t| t.starts_with(s));
        if let (Some(t), None) = (starts.next(), starts.next()) {
            return (*t).to_string();
        }
    }
    let allowed = if n >= 8 { 2 } else { 1 };
    let mut near: Vec<(usize, &str)> = ENTERPRISE_TYPES
        .iter()
        .map(|t| (strsim::levenshtein(s, t), *t))
        .filter(|(d, _)| *d <= allowed)
        .collect();
    near.sort();
    match near.as_slice() {
        [(_, t)] => (*t).to_string(),
        [(d0, t), (d1, _), ..] if d0 < d1 => (*t).to_string(),
        _ => s.to_string(),
    }
}

/// At most this many characters of a fixed scope sentence may be misread, lost or added.
const SENTENCE_EDITS: usize = 3;

/// The length of the text at the start of `text` that is `want` misread (at most
/// [`SENTENCE_EDITS`] edits), or its beginning cut off by the end of `text` (at least
/// three quarters of it); `None` when it is not there.
fn sentence_at(text: &[char], want: &[char]) -> Option<usize> {
    if text.first() != want.first() || text.get(1) != want.get(1) {
        return None;
    }
    let whole: String = want.iter().collect();
    let distance = |len: usize| {
        let got: String = text[..len].iter().collect();
        strsim::levenshtein(&got, &whole)
    };
    let lo = want.len().saturating_sub(SENTENCE_EDITS);
    let hi = (want.len() + SENTENCE_EDITS).min(text.len());
    let best = (lo..=hi)
        .map(|len| (distance(len), len))
        .min()
        .filter(|&(d, _)| d <= SENTENCE_EDITS);
    if let Some((_, len)) = best {
        return Some(len);
    }
    // cut short: the scope ends inside the sentence
    let n = text.len();
    if n < want.len() && n * 4 >= want.len() * 3 {
        let cut: String = want[..n].iter().collect();
        let got: String = text.iter().collect();
        if strsim::levenshtein(&got, &cut) <= SENTENCE_EDITS {
            return Some(n);
        }
    }
    None
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

/// A registered capital as printed: Chinese words and numerals, Arabic digits and the
/// decimal point (`伍佰万元整`, `3000万元人民币`, `100.000000万人民币`); full-width digits
/// and points read as their ASCII forms.
pub(super) fn capital(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32),
            '．' | '。' => Some('.'),
            '0'..='9' | '.' => Some(c),
            _ => is_cjk(c).then_some(c),
        })
        .collect::<String>()
        .trim_matches('.')
        .to_string()
}

/// A Chinese character, or the dot between the parts of a transcribed name.
fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c) || c == '·'
}

pub(super) fn cjk_only(s: &str) -> String {
    s.chars().filter(|&c| is_cjk(c)).collect()
}

/// The value without the punctuation, or a table's rule read as a bar, before it.
pub(super) fn strip_leading_punct(s: &str) -> &str {
    s.trim_start_matches([
        ':', '：', '.', '。', ',', '，', '、', ';', '；', '|', '｜', '丨',
    ])
}
