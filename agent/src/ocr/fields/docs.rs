//! The fields of each document: the ID card's front and back, the business licence; the
//! numbers checked by their rules (GB 11643, GB 32100).

use std::collections::BTreeMap;

use branchd_drivers::checks;

use super::*;

pub(super) fn id_number_field(candidates: Vec<(String, f32)>) -> Option<Field> {
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

pub(super) fn id_front(rows: &[Row]) -> BTreeMap<String, Field> {
    let found = read_fields(rows, ID_FRONT_LABELS);
    let mut out = BTreeMap::new();
    let get = |key: &str| found.iter().find(|f| f.key == key && !f.text.is_empty());
    if let Some(f) = get("name") {
        let v = cjk_only(&f.text);
        if !v.is_empty() {
            out.insert("name".into(), field(v, f.conf));
        }
    }
    if let Some(f) = get("gender")
        && let Some(g) = f.text.chars().find(|c| *c == '男' || *c == '女')
    {
        out.insert("gender".into(), field(g.to_string(), f.conf));
    }
    if let Some(f) = get("nation") {
        let v = cjk_only(&f.text);
        let v = v.strip_suffix('族').unwrap_or(&v).to_string();
        if !v.is_empty() {
            out.insert("nation".into(), field(v, f.conf));
        }
    }
    if let Some(f) = get("birth_date")
        && let Some(d) = parse_date(&f.text)
    {
        out.insert("birth_date".into(), field(d, f.conf));
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
pub(super) fn cross_check(out: &mut BTreeMap<String, Field>, id: &str) {
    if let Some(birth) = checks::citizen_id_birth_date(id)
        && let Some(f) = out.get_mut("birth_date")
    {
        f.valid = Some(f.value == birth.format("%Y-%m-%d").to_string());
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

pub(super) fn id_back(rows: &[Row]) -> BTreeMap<String, Field> {
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
    if let Some(f) = found.iter().find(|f| f.key == "validity")
        && let Some((from, to)) = parse_period(&f.text)
    {
        if let Some(from) = from {
            out.insert("valid_from".into(), field(from, f.conf));
        }
        out.insert("valid_to".into(), field(to, f.conf));
    }
    out
}

/// Company types as registered (the start of a type field's value).
const COMPANY_TYPES: [&str; 12] = [
    "有限责任公司",
    "股份有限公司",
    "其他有限责任公司",
    "其他股份有限公司",
    "个人独资企业",
    "个体工商户",
    "普通合伙企业",
    "有限合伙企业",
    "特殊普通合伙企业",
    "农民专业合作社",
    "全民所有制",
    "集体所有制",
];

/// Province-level divisions, with which every address starts.
const PROVINCES: [&str; 34] = [
    "北京",
    "天津",
    "上海",
    "重庆",
    "河北",
    "山西",
    "辽宁",
    "吉林",
    "黑龙江",
    "江苏",
    "浙江",
    "安徽",
    "福建",
    "江西",
    "山东",
    "河南",
    "湖北",
    "湖南",
    "广东",
    "海南",
    "四川",
    "贵州",
    "云南",
    "陕西",
    "甘肃",
    "青海",
    "台湾",
    "内蒙古",
    "广西",
    "西藏",
    "宁夏",
    "新疆",
    "香港",
    "澳门",
];

/// Endings of registered names.
const NAME_ENDINGS: [&str; 10] = [
    "公司",
    "中心",
    "店",
    "部",
    "厂",
    "馆",
    "行",
    "社",
    "事务所",
    "工作室",
];

/// Which field a line that joined no label is, judged by its words alone: the label lost
/// by the recogniser, the value is still recognisable (a company type, a name, an amount,
/// an address, a term). An amount read together with its misread label starts at its
/// first numeral or at 人民币: the value's text is returned too.
fn field_by_content(text: &str) -> Option<(&'static str, &str)> {
    let digits = text.chars().any(|c| c.is_ascii_digit());
    if COMPANY_TYPES.iter().any(|t| text.starts_with(t)) {
        return Some(("type", text));
    }
    if text.contains('万')
        && (text.contains('元') || text.contains("人民币"))
        && text.chars().count() <= 24
    {
        let start = text
            .char_indices()
            .find(|&(i, c)| {
                c.is_ascii_digit()
                    || "壹贰叁肆伍陆柒捌玖拾".contains(c)
                    || text[i..].starts_with("人民币")
            })
            .map_or(0, |(i, _)| i);
        return Some(("registered_capital", &text[start..]));
    }
    if PROVINCES.iter().any(|p| text.starts_with(p)) && digits {
        return Some(("address", text));
    }
    if text.contains('至') && digits && parse_period(text).is_some() {
        return Some(("term", text));
    }
    if !digits && text.chars().count() >= 4 && NAME_ENDINGS.iter().any(|e| text.ends_with(e)) {
        return Some(("name", text));
    }
    None
}

/// A period broken after its `至` (`2000年01月09日至` over `2030年01月08日`) is one line
/// again: a stray line ending so, and the stray line after it starting with a date or
/// 长期.
pub(super) fn join_broken_periods(orphans: Vec<(String, f32)>) -> Vec<(String, f32)> {
    let mut out: Vec<(String, f32)> = Vec::with_capacity(orphans.len());
    for (text, conf) in orphans {
        match out.last_mut() {
            Some((prev, c))
                if prev.ends_with('至')
                    && (text.starts_with(|ch: char| ch.is_ascii_digit())
                        || text.starts_with("长期")) =>
            {
                prev.push_str(&text);
                *c = c.min(conf);
            }
            _ => out.push((text, conf)),
        }
    }
    out
}

pub(super) fn licence(rows: &[Row]) -> BTreeMap<String, Field> {
    let (mut found, orphans) = read_fields_and_orphans(rows, LICENCE_LABELS);
    let orphans = join_broken_periods(orphans);
    // fields whose label was not read: a line that joined no label and that only that
    // field's value could be, when exactly one such line is left
    for key in ["name", "type", "registered_capital", "address", "term"] {
        if found.iter().any(|f| f.key == key && !f.text.is_empty()) {
            continue;
        }
        let mut hits = orphans.iter().filter_map(|(text, conf)| {
            field_by_content(text)
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| (v, conf))
        });
        if let (Some((text, conf)), None) = (hits.next(), hits.next()) {
            found.push(Found {
                key,
                text: text.to_string(),
                conf: *conf,
                label_x: 0.0,
                value_x: None,
                value_x_exact: false,
                yc: 0.0,
            });
        }
    }
    scope_heading_to_scope(&mut found);
    let mut out = BTreeMap::new();
    let get = |key: &str| found.iter().find(|f| f.key == key && !f.text.is_empty());
    for key in ["name", "type", "address", "scope"] {
        if let Some(f) = get(key) {
            let v = cjk_punct(strip_leading_punct(&f.text));
            let v = match key {
                "scope" => fix_scope(&v),
                "address" => fix_address(&v),
                "type" => fix_type(&v),
                // the second character of 名称 run into the value (`称昆明…`)
                "name" => v.strip_prefix('称').unwrap_or(&v).to_string(),
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
        let v = capital(&f.text);
        if !v.is_empty() {
            out.insert("registered_capital".into(), field(v, f.conf));
        }
    }
    if let Some(f) = get("established")
        && let Some(d) = parse_date(&f.text)
    {
        out.insert("established".into(), field(d, f.conf));
    }
    if let Some(f) = get("term")
        && let Some((from, to)) = parse_period(&f.text)
    {
        let v = match from {
            Some(from) => format!("{from}至{to}"),
            None => to,
        };
        out.insert("term".into(), field(v, f.conf));
    }
    if let Some(code) = credit_code_field(rows) {
        out.insert("credit_code".into(), code);
    }
    out
}

/// A scope begins with its heading (`一般项目：`); a field above it that took the scope's
/// first line as its own last one (a table's cell read as one column with the cell above)
/// gives that line back, when the scope does not already begin so.
pub(super) fn scope_heading_to_scope(found: &mut [Found]) {
    const HEADING: &str = "一般项目";
    let Some(scope) = found.iter().position(|f| f.key == "scope") else {
        return;
    };
    if found[scope].text.contains(HEADING) {
        return;
    }
    let Some((from, at)) = found
        .iter()
        .enumerate()
        .filter(|(_, f)| f.key != "scope")
        .find_map(|(i, f)| f.text.find(HEADING).filter(|&at| at > 0).map(|at| (i, at)))
    else {
        return;
    };
    let tail = found[from].text.split_off(at);
    found[scope].text.insert_str(0, &tail);
}

/// The credit code: under or after its label, else any 18-character run, one that passes
/// its check first. A code that fails its check is repaired from the recogniser's readings
/// when exactly one repair is plausible ([`repair`]); otherwise it stays as read, invalid,
/// with the look-alike suggestion when there is one.
pub(super) fn credit_code_field(rows: &[Row]) -> Option<Field> {
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
        if labelled && let Some(next) = rows.get(i + 1) {
            for p in &next.pieces {
                let slots = credit_slots(p);
                if slots.len() >= 18 {
                    runs.insert(0, (slots, p.conf));
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
