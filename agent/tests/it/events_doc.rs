//! docs/head-office-events.md as a checked list: every event kind the box emits has its
//! `###` heading there, every heading there is a kind the box emits, and the alert kinds
//! that stay on the box are the ones it lists.
//!
//! Read from the sources: the kind passed to every `emit(…)` call of `agent/src` outside
//! test code (`tests.rs` files and `#[cfg(test)]` blocks). A kind that is not a literal at
//! its call is listed in [`NON_LITERAL`] with the kinds it takes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::sources::{non_test_code, rust_files, without_tests};

/// Calls whose kind is not a string literal where `emit` is called: the file (under
/// `agent/src`), the kind argument as written, the kinds it takes, and why.
const NON_LITERAL: &[(&str, &str, &[&str], &str)] = &[
    (
        "devices/db.rs",
        "kind",
        &["device.signed_in", "device.signed_out"],
        "`on_signed` records a sign-in or a sign-out, chosen by its flag",
    ),
    (
        "orders/timers.rs",
        "&kind",
        &["order.near_timeout", "order.timeout"],
        "`order.` and the step timer's level, which is also the alert's kind",
    ),
    (
        "updates/model.rs",
        "kind",
        &[],
        "the module's wrapper `emit(up, kind, data)`: its callers' kinds are read from its \
         calls (WRAPPERS)",
    ),
    (
        "updates/model.rs",
        "event",
        &["model.update.failed", "model.rollback.failed"],
        "`fail` emits the failure kind of its job, each job's `FAILED` constant",
    ),
    (
        "updates/software.rs",
        "kind",
        &["software.updated", "software.update.failed"],
        "the one-shot unit's result, a success or a failure",
    ),
];

/// Free functions named `emit` that wrap `Tx::emit`: the file and which argument (from 0)
/// is the kind. Their calls are read like `tx.emit(…)`.
const WRAPPERS: &[(&str, usize)] = &[("updates/model.rs", 1)];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The arguments of a call, `rest` starting just after its `(`: each as written, with its
/// whitespace collapsed. Brackets and string literals are skipped over.
fn arguments(rest: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                current.push(c);
                while let Some(s) = chars.next() {
                    current.push(s);
                    match s {
                        '\\' => current.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
                continue;
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => break,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                args.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        args.push(current);
    }
    args.into_iter()
        .map(|a| a.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The string literals of a piece of code.
fn literals(code: &str) -> Vec<String> {
    code.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// One `emit` call's kind argument: its literals, or the argument as written when it has
/// none.
#[derive(Debug, PartialEq)]
enum Kind {
    Literals(Vec<String>),
    Expr(String),
}

/// The kind argument of every `emit(…)` call in `code` (of file `file`): `tx.emit(KIND, …)`
/// and the calls of a wrapper of [`WRAPPERS`]. A free call to an `emit` not listed there is an
/// error, as is a call whose kind argument cannot be found.
fn emit_calls(file: &str, code: &str) -> Result<Vec<Kind>, String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find("emit(") {
        let at = from + i;
        from = at + "emit(".len();
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            || code[..at].trim_end().ends_with("fn")
        {
            // another name ending in `emit`, or a definition
            continue;
        }
        let index = if before == Some('.') {
            0
        } else {
            match WRAPPERS.iter().find(|(f, _)| *f == file) {
                Some((_, index)) => *index,
                None => {
                    return Err(format!(
                        "{file}: a call of a free function `emit`: add it to WRAPPERS with the \
                         place of its kind argument"
                    ));
                }
            }
        };
        let args = arguments(&code[from..]);
        let Some(arg) = args.get(index) else {
            return Err(format!(
                "{file}: an `emit` call without a kind argument: {args:?}"
            ));
        };
        let lits = literals(arg);
        out.push(if lits.is_empty() {
            Kind::Expr(arg.clone())
        } else {
            Kind::Literals(lits)
        });
    }
    Ok(out)
}

/// Every kind the box emits, with the files that emit it; problems found on the way.
fn emitted() -> (BTreeMap<String, BTreeSet<String>>, Vec<String>) {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut kinds: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut non_literal_seen = BTreeSet::new();
    for f in &files {
        let rel = f
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let calls = match emit_calls(&rel, &non_test_code(f)) {
            Ok(c) => c,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        for call in calls {
            let found: Vec<String> = match call {
                Kind::Literals(l) => l,
                Kind::Expr(e) => {
                    let Some((_, _, ks, _)) = NON_LITERAL
                        .iter()
                        .find(|(file, expr, _, _)| *file == rel && *expr == e)
                    else {
                        problems.push(format!(
                            "{rel}: `emit({e}, …)` has no literal kind: add it to NON_LITERAL \
                             with the kinds it takes"
                        ));
                        continue;
                    };
                    non_literal_seen.insert((rel.clone(), e));
                    ks.iter().map(|k| k.to_string()).collect()
                }
            };
            for k in found {
                kinds.entry(k).or_default().insert(rel.clone());
            }
        }
    }
    for (file, expr, _, _) in NON_LITERAL {
        if !non_literal_seen.contains(&(file.to_string(), expr.to_string())) {
            problems.push(format!(
                "NON_LITERAL lists `emit({expr}, …)` in {file}, which has no such call any more"
            ));
        }
    }
    (kinds, problems)
}

fn doc() -> String {
    let path = root().join("../docs/head-office-events.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The kinds the document lists: every `###` heading, each exactly one kind in backticks.
fn documented(doc: &str) -> (BTreeSet<String>, Vec<String>) {
    let mut kinds = BTreeSet::new();
    let mut problems = Vec::new();
    let mut fenced = false;
    for (n, line) in doc.lines().enumerate() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        let Some(heading) = line.strip_prefix("### ").filter(|_| !fenced) else {
            continue;
        };
        let kind = heading
            .strip_prefix('`')
            .and_then(|h| h.strip_suffix('`'))
            .filter(|k| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
        match kind {
            Some(k) if !kinds.insert(k.to_string()) => {
                problems.push(format!("line {}: `{k}` is documented twice", n + 1));
            }
            Some(_) => {}
            None => problems.push(format!(
                "line {}: `{line}` is not an event kind's heading (### `kind`)",
                n + 1
            )),
        }
    }
    (kinds, problems)
}

#[test]
fn every_event_kind_the_box_emits_is_documented_and_every_documented_kind_is_emitted() {
    let (emitted, mut problems) = emitted();
    let (documented, doc_problems) = documented(&doc());
    problems.extend(doc_problems);
    for (kind, files) in &emitted {
        if !documented.contains(kind) {
            let files: Vec<&str> = files.iter().map(String::as_str).collect();
            problems.push(format!(
                "`{kind}` (emitted in {}) is not in docs/head-office-events.md",
                files.join(", ")
            ));
        }
    }
    for kind in &documented {
        if !emitted.contains_key(kind) {
            problems.push(format!(
                "`{kind}` is in docs/head-office-events.md but nothing emits it"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(emitted.len() > 50, "only {} kinds found", emitted.len());
}

#[test]
fn the_alert_kinds_kept_on_the_box_are_those_the_document_lists() {
    let local: BTreeSet<String> = branchd::alerts::KINDS
        .iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| {
            branchd::sync::upstream::local_only("alert.raised", &json!({"kind": k}))
                && branchd::sync::upstream::local_only("alert.cleared", &json!({"kind": k}))
        })
        .collect();
    let doc = doc();
    let table: BTreeSet<String> = doc
        .lines()
        .skip_while(|l| !l.starts_with("| alert kind |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cell = l.split('|').nth(1)?.trim();
            Some(cell.strip_prefix('`')?.strip_suffix('`')?.to_string())
        })
        .collect();
    assert!(!local.is_empty(), "no alert kind stays on the box");
    assert_eq!(
        table, local,
        "the table `| alert kind |` of docs/head-office-events.md against the alert kinds \
         sync::upstream keeps on the box"
    );
}

#[test]
fn the_reader_of_emit_calls_sees_literals_choices_and_wrappers_and_skips_the_rest() {
    let code = r#"
        pub fn emit(&mut self, kind: &str) {}
        tx.emit("ticket.issued", json!({"number": n, "at": f(a, b)}))?;
        tx.emit(
            if reprint { "ticket.reprint" } else { "ticket.printed" },
            data,
        )?;
        tx.emit(&kind, data)?;
        tx.re_emit("x.y");
        emit(up, "model.update.progress", json!({"stage": "verify"})).await?;
        #[cfg(test)]
        mod tests { fn t() { tx.emit("only.in_tests", x); } }
    "#;
    let code = without_tests(code);
    let got = emit_calls("updates/model.rs", &code).unwrap();
    assert_eq!(
        got,
        [
            Kind::Literals(vec!["ticket.issued".into()]),
            Kind::Literals(vec!["ticket.reprint".into(), "ticket.printed".into()]),
            Kind::Expr("&kind".into()),
            Kind::Literals(vec!["model.update.progress".into()]),
        ]
    );
    // A free `emit` of a file without a wrapper is not silently read.
    assert!(emit_calls("queue/ops.rs", "emit(a, \"x.y\");").is_err());
    // Comment lines are not code.
    assert!(without_tests("// tx.emit(\"a.b\", x)").is_empty());
    let (kinds, problems) = documented("### `a.b`\n```\n### not a kind\n```\n### `a.b`\n### A b\n");
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["a.b"]);
    assert_eq!(problems.len(), 2, "{problems:?}");
}
