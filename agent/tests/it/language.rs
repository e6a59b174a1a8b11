//! Every text a person reads comes from the PAD's locales: each alert kind and each error
//! code the backend has must have its label (and an alert its message) in zh-CN and in en,
//! and the backend's lists must hold every kind and code its sources use.

use std::collections::BTreeSet;
use std::path::Path;

use regex::Regex;
use serde_json::Value;

fn locale(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../web-ui/src/locales")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push((
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

#[test]
fn every_error_code_in_the_sources_is_in_the_backends_list() {
    let direct = Regex::new(r#"ApiError::\w+\(\s*(?:StatusCode::\w+,\s*)?"([a-z_]+)""#).unwrap();
    let inner = Regex::new(r#"Self::new\(\s*StatusCode::\w+,\s*"([a-z_]+)""#).unwrap();
    let mut found = BTreeSet::new();
    for (_, text) in sources() {
        for re in [&direct, &inner] {
            found.extend(re.captures_iter(&text).map(|c| c[1].to_string()));
        }
    }
    assert!(found.len() > 40, "the scan finds the codes: {found:?}");
    let listed: BTreeSet<String> = branchd::http::error::CODES
        .iter()
        .map(|c| c.to_string())
        .collect();
    let missing: Vec<_> = found.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "codes not in http::error::CODES: {missing:?}"
    );
}

#[test]
fn every_alert_kind_and_error_code_has_its_text_in_both_locales() {
    let placeholder = Regex::new(r"\{(\w+)\}").unwrap();
    let han = Regex::new(r"\p{Han}").unwrap();
    for name in ["zh-CN", "en"] {
        let l = locale(name);
        let mut problems = Vec::new();
        for (kind, fields) in branchd::alerts::KINDS {
            let key = kind.replace('.', "_");
            let label = l["alertKinds"][&key].as_str();
            let message = l["alertMessages"][&key].as_str();
            if label.is_none_or(str::is_empty) {
                problems.push(format!("alertKinds.{key}"));
            }
            match message {
                None | Some("") => problems.push(format!("alertMessages.{key}")),
                Some(m) => {
                    // the PAD adds the customer's name from its own lists
                    for p in placeholder.captures_iter(m) {
                        if !fields.contains(&&p[1]) && &p[1] != "name" {
                            problems.push(format!("alertMessages.{key} uses {{{}}}", &p[1]));
                        }
                    }
                }
            }
        }
        for code in branchd::http::error::CODES {
            if l["errorCodes"][*code].as_str().is_none_or(str::is_empty) {
                problems.push(format!("errorCodes.{code}"));
            }
        }
        // No Chinese in the English texts, and every Chinese text is Chinese.
        for group in ["alertKinds", "alertMessages", "errorCodes"] {
            for (k, v) in l[group].as_object().unwrap() {
                let v = v.as_str().unwrap_or_default();
                if (name == "en") == han.is_match(v) {
                    problems.push(format!("{group}.{k} is not in {name}: {v}"));
                }
            }
        }
        assert!(problems.is_empty(), "{name}: {problems:#?}");
    }
}
